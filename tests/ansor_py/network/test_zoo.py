"""The five zoo networks, end to end: each is built, its architecture checked (op counts and
the parameter count of the torchvision / PyTorch / HuggingFace original), written to an
ONNX file that onnxruntime runs, imported back, and compiled with default schedules; every
path must equal the graph's numpy reference (relative error 1e-4 of the output's largest
magnitude) on seeded random inputs.

One module-scoped fixture per network prepares the graph, inputs, reference output, ONNX
file and onnxruntime output once; pytest groups the tests by network, so one network's
arrays are freed before the next is built. All but DCGAN are marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ansor_py.network.executor import NetworkBuildWarning, build_network
from ansor_py.network.frontend.onnx import from_onnx
from ansor_py.network.graph import Graph
from ansor_py.network.onnx_writer import save_onnx
from ansor_py.network.reference import run_reference
from ansor_py.network.zoo import NETWORKS, bert_base, dcgan, random_inputs


@dataclass(frozen=True)
class Expected:
    """What the original architecture has: node counts per op and trainable parameters
    (batch norm running statistics excluded, as PyTorch counts them)."""

    ops: dict[str, int]
    parameters: int
    output_shape: tuple[int, ...]
    inputs: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)


IMAGE = {"input": ((1, 3, 224, 224), "float32")}
EXPECTED = {
    # torchvision.models.resnet50(): 25,557,032 parameters
    "resnet50": Expected(
        {
            "conv": 53,
            "batch_norm": 53,
            "relu": 49,
            "add": 17,
            "max_pool": 1,
            "global_avg_pool": 1,
            "dense": 1,
        },
        25_557_032,
        (1, 1000),
        IMAGE,
    ),
    # torchvision.models.mobilenet_v2(): 3,504,872 parameters; 17 of the convs are depthwise
    "mobilenet_v2": Expected(
        {"conv": 52, "batch_norm": 52, "clip": 35, "add": 11, "global_avg_pool": 1, "dense": 1},
        3_504_872,
        (1, 1000),
        IMAGE,
    ),
    # torchvision.models.video.r3d_18(): 33,371,472 parameters
    "resnet3d_18": Expected(
        {"conv": 20, "batch_norm": 20, "relu": 17, "add": 9, "global_avg_pool": 1, "dense": 1},
        33_371_472,
        (1, 400),
        {"input": ((1, 3, 16, 112, 112), "float32")},
    ),
    # the PyTorch DCGAN example's generator (nz 100, ngf 64): 3,576,704 parameters
    "dcgan": Expected(
        {"conv_transpose": 5, "batch_norm": 4, "relu": 4, "tanh": 1, "reshape": 1},
        3_576_704,
        (1, 3, 64, 64),
        {"z": ((1, 100), "float32")},
    ),
    # transformers' BertModel (bert-base-uncased) without its pooler: 109,482,240 - 590,592
    "bert_base": Expected(
        {"take": 3, "layer_norm": 25, "dense": 72, "matmul": 24, "softmax": 12, "erf": 12, "transpose": 48},
        108_891_648,
        (1, 128, 768),
        {"input_ids": ((1, 128), "int64"), "token_type_ids": ((1, 128), "int64")},
    ),
}


@dataclass
class Prepared:
    name: str
    graph: Graph
    inputs: dict[str, np.ndarray]
    reference: np.ndarray
    onnx_path: Path
    onnxruntime: np.ndarray
    seconds: dict[str, float]


def assert_matches(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def onnxruntime_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def trainable_parameters(graph: Graph) -> int:
    """Elements of the float weight arrays, without running statistics and scalars."""
    return sum(
        array.size
        for name, array in graph.constants.items()
        if array.ndim >= 1 and array.dtype.kind == "f" and not name.endswith(("running_mean", "running_var"))
    )


def op_counts_reading_inputs(graph: Graph) -> dict[str, int]:
    """Op counts of the nodes that depend on a graph input (the rest could be folded)."""
    dynamic = set(graph.inputs)
    counts: dict[str, int] = {}
    for node in graph.nodes:
        if dynamic.intersection(node.inputs):
            dynamic.update(node.outputs)
            counts[node.op] = counts.get(node.op, 0) + 1
    return counts


SLOW = pytest.mark.slow


@pytest.fixture(
    scope="module",
    params=[
        "dcgan",
        pytest.param("mobilenet_v2", marks=SLOW),
        pytest.param("resnet50", marks=SLOW),
        pytest.param("resnet3d_18", marks=SLOW),
        pytest.param("bert_base", marks=SLOW),
    ],
)
def network(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    name = request.param
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    graph = NETWORKS[name]()
    seconds["build"] = time.perf_counter() - start
    inputs = random_inputs(graph, seed=1)
    start = time.perf_counter()
    reference = run_reference(graph, inputs)[0]
    seconds["reference"] = time.perf_counter() - start
    path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
    start = time.perf_counter()
    save_onnx(graph, path)
    session = onnxruntime_session(path)
    out = np.asarray(session.run(None, inputs)[0])
    seconds["onnx"] = time.perf_counter() - start
    yield Prepared(name, graph, inputs, reference, path, out, seconds)
    path.unlink()


def test_architecture(network: Prepared) -> None:
    expected = EXPECTED[network.name]
    graph = network.graph
    counts = graph.op_counts()
    assert {op: counts.get(op, 0) for op in expected.ops} == expected.ops
    assert trainable_parameters(graph) == expected.parameters
    assert {k: (t.shape, t.dtype) for k, t in graph.inputs.items()} == expected.inputs
    assert [graph.types[v].shape for v in graph.outputs] == [expected.output_shape]
    if network.name == "mobilenet_v2":
        depthwise = [n for n in graph.nodes if n.op == "conv" and n.attrs["groups"] > 1]
        assert len(depthwise) == 17


def test_activations_are_of_order_one(network: Prepared) -> None:
    """Calibrated batch norms (and BERT's layer norms) keep the output finite, spread and
    not saturated: a relative error bound of 1e-4 then tests every layer."""
    out = network.reference
    assert np.isfinite(out).all()
    assert 0.1 < float(out.std()) < 10.0, out.std()
    assert float(np.abs(out).max()) < 50.0
    if network.name == "dcgan":  # tanh: most pixels away from +-1
        assert float(np.mean(np.abs(out) > 0.99)) < 0.05


def test_onnx_file_runs_in_onnxruntime_like_the_reference(network: Prepared) -> None:
    onnx.checker.check_model(str(network.onnx_path))
    model = onnx.load(str(network.onnx_path), load_external_data=False)
    assert [i.name for i in model.graph.input] == list(network.graph.inputs)
    assert_matches(network.onnxruntime, network.reference)
    print(f"{network.name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in network.seconds.items()))


def test_imported_onnx_file_gives_the_same_graph(network: Prepared) -> None:
    imported = from_onnx(network.onnx_path)
    # the importer may fold nodes of constants only (BERT's position-embedding lookup)
    full, unfoldable = network.graph.op_counts(), op_counts_reading_inputs(network.graph)
    counts = imported.op_counts()
    assert set(counts) <= set(full)
    assert all(unfoldable.get(op, 0) <= counts.get(op, 0) <= full[op] for op in full), (counts, full)
    assert imported.inputs == network.graph.inputs
    assert_matches(run_reference(imported, network.inputs)[0], network.reference)


@pytest.mark.parametrize("source", ["zoo", "onnx"])
def test_built_network_matches_onnxruntime(network: Prepared, source: str) -> None:
    """The network compiled with default schedules, from the zoo's graph and from its ONNX
    file, against onnxruntime and the graph's numpy reference."""
    graph = network.graph if source == "zoo" else from_onnx(network.onnx_path)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)  # untuned: default schedules
        built = build_network(graph)
    compiled = time.perf_counter() - start
    out = np.array(built.run(**network.inputs)[0])
    assert_matches(out, network.onnxruntime)
    assert_matches(out, network.reference)
    print(f"{network.name} ({source}): build_network {compiled:.1f} s, {len(built.kernels)} kernels")


def test_networks_are_deterministic_per_seed() -> None:
    first, again, reseeded = dcgan(), dcgan(), dcgan(seed=1)
    assert first.constants.keys() == again.constants.keys() == reseeded.constants.keys()
    for name, array in first.constants.items():
        np.testing.assert_array_equal(array, again.constants[name])
    assert not np.array_equal(reseeded.constants["main.0.weight"], first.constants["main.0.weight"])


def test_bert_inputs_index_the_embedding_tables() -> None:
    graph = bert_base(seq=16, layers=1)
    inputs = random_inputs(graph, seed=4)
    assert int(inputs["input_ids"].max()) >= 2  # word ids span the vocabulary, not just 0/1
    assert int(inputs["input_ids"].max()) < graph.constants["embeddings.word_embeddings.weight"].shape[0]
    assert set(np.unique(inputs["token_type_ids"])) <= {0, 1}
    with pytest.raises(ValueError, match=r"seq 513 must be in 1\.\.512"):
        bert_base(seq=513, layers=1)


def test_network_benchmark_runs_and_checks_its_peers(tmp_path: Path) -> None:
    """``benchmarks/networks.py`` on DCGAN, briefly: every peer checked, one table row."""
    root = Path(__file__).resolve().parents[3]
    command = [sys.executable, str(root / "benchmarks" / "networks.py"), "--networks", "dcgan"]
    command += ["--repeat", "1", "--min-repeat-ms", "1", "--pause", "0", "--no-torch"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ours: max error" in done.stdout and "onnxruntime: max error" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("| dcgan |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert len(cells) == 9 and float(cells[1]) > 0 and float(cells[2]) > 0 and cells[3] == "-"  # no torch
