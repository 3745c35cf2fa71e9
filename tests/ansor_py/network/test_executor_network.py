"""``build_network`` end to end on a small NCHW graph as an ONNX import gives it (conv,
batch_norm, relu, max_pool, a residual add, global_avg_pool, reshape, dense, softmax):
optimised, fused, compiled and run against the graph's numpy reference; a record written
for one task of ``extract_tasks`` is what ``build_network`` compiles that task with."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.network.executor import Network, NetworkBuildWarning, build_network
from ansor_py.network.graph import Graph, Node
from ansor_py.network.reference import InputError, run_reference
from ansor_py.network.tasks import extract_tasks
from ansor_py.network.types import TensorType
from ansor_py.network.zoo.builder import random_inputs as zoo_inputs
from ansor_py.network.zoo.mobilenet import mobilenet_v2
from ansor_py.records import save_records
from ir.loop_state.api import get_init_state

CONV = {
    "layout": "NCHW",
    "kernel_layout": "OIHW",
    "strides": (1, 1),
    "pads": (1, 1, 1, 1),
    "dilations": (1, 1),
    "groups": 1,
}
POOL = {
    "layout": "NCHW",
    "kernel": (2, 2),
    "strides": (2, 2),
    "pads": (0, 0, 0, 0),
    "dilations": (1, 1),
    "ceil_mode": False,
}


def small_network() -> Graph:
    rng = np.random.default_rng(0)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-0.5, 0.5, shape).astype(np.float32)

    constants = {
        "w1": uniform(8, 3, 3, 3),
        "gamma": uniform(8) + 1,
        "beta": uniform(8),
        "mean": uniform(8),
        "var": np.abs(uniform(8)) + 0.5,
        "w2": uniform(8, 8, 3, 3),
        "fc_w": uniform(10, 8),
        "fc_b": uniform(10),
    }
    nodes = [
        Node("conv", ("x", "w1"), ("c1",), CONV, "conv1"),
        Node(
            "batch_norm",
            ("c1", "gamma", "beta", "mean", "var"),
            ("bn1",),
            {"epsilon": 1e-5, "axis": 1},
            "bn1",
        ),
        Node("relu", ("bn1",), ("r1",), {}, "relu1"),
        Node("max_pool", ("r1",), ("p1",), POOL, "pool1"),
        Node("conv", ("p1", "w2"), ("c2",), CONV, "conv2"),
        Node("add", ("c2", "p1"), ("res",), {}, "residual"),
        Node("relu", ("res",), ("r2",), {}, "relu2"),
        Node("global_avg_pool", ("r2",), ("gap",), {"layout": "NCHW"}, "gap"),
        Node("reshape", ("gap",), ("flat",), {"shape": (1, 8)}, "flatten"),
        Node("dense", ("flat", "fc_w"), ("fc",), {}, "fc"),
        Node("add", ("fc", "fc_b"), ("logits",), {}, "fc_bias"),
        Node("softmax", ("logits",), ("prob",), {"axis": 1}, "softmax"),
    ]
    return Graph({"x": TensorType((1, 3, 16, 16))}, nodes, ["prob", "r1"], constants, name="small")


def random_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)


@pytest.fixture(scope="module", params=["NHWC", "NCHW"])
def built(request: pytest.FixtureRequest) -> tuple[Graph, Network]:
    graph = small_network()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)
        return graph, build_network(graph, layout=request.param)


def test_network_matches_the_reference(built: tuple[Graph, Network]) -> None:
    graph, net = built
    for seed in (0, 1):
        image = random_image(seed)
        expected = run_reference(graph, {"x": image})
        got = net.run(x=image, copy=True)
        assert [a.shape for a in got] == [a.shape for a in expected]
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert net.peak_memory_bytes < net.plan.total_bytes
    assert len(net.calls) >= 5  # fused: far fewer calls than the 12 nodes, but not one


def test_network_input_errors(built: tuple[Graph, Network]) -> None:
    _, net = built
    with pytest.raises(InputError, match=r"network 'small': input 'x' is float32\[1, 3, 16, 15\]"):
        net.run(x=np.zeros((1, 3, 16, 15), np.float32))
    with pytest.raises(InputError, match=r"input 'x' is int32\[1, 3, 16, 16\]"):
        net.run(x=np.zeros((1, 3, 16, 16), np.int32))
    with pytest.raises(InputError, match=r"input 'x' .* is missing"):
        net.run()


def test_build_network_uses_the_record_of_an_extracted_task(tmp_path: Path) -> None:
    graph = small_network()
    tasks, weights = extract_tasks(graph, "llvm")
    assert sum(weights) >= len(tasks) >= 5
    task = next(t for t in tasks if "conv" in t.desc)
    state = get_init_state(task.compute_dag)  # a schedule the default would never pick
    last = len(state.stages) - 1
    state.parallel(last, 0)
    log = tmp_path / "small.json"
    result = MeasureResult((2e-5,), MeasureErrorNo.NO_ERROR, timestamp=1.0)
    save_records(log, [MeasureInput(task, state.loop_state)], [result])
    with pytest.warns(
        NetworkBuildWarning, match=f"{len(tasks) - 1} of {len(tasks)} tasks have no tuning record"
    ):
        net = build_network(graph, records=log)
    (tuned,) = [k for k in net.kernels if k.tuned]
    assert tuned.workload_key == task.workload_key
    assert tuned.state.transform_steps == state.transform_steps
    rows = [line for line in net.summary().splitlines() if " tuned " in line]
    assert len(rows) == sum(1 for call in net.calls if call.kernel is tuned) >= 1
    image = random_image(2)
    for a, b in zip(net.run(x=image), run_reference(graph, {"x": image}), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_mobilenet_v2_from_the_zoo_matches_the_reference() -> None:
    graph = mobilenet_v2(size=96)  # depthwise convs, clip (relu6), residual adds, dense
    inputs = zoo_inputs(graph)
    with pytest.warns(NetworkBuildWarning, match="tasks have no tuning record"):
        net = build_network(graph)
    assert len(net.kernels) < len(net.calls)  # repeated blocks share kernels
    assert net.peak_memory_bytes < net.plan.total_bytes / 2
    for a, b in zip(net.run_inputs(inputs), run_reference(graph, inputs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
