"""``export_library``: one shared object per network, run with ctypes, from C, under qemu and
over SSH, compared with numpy on random inputs.

The network here is hand-made from Subgraphs (dense + bias + relu twice with one shared
kernel, an add reading an arena value and an output, an output that is a graph input), so
every kind of argument location and output copy of ``network_entry.c`` is exercised.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ssh_tools import AARCH64_SYSROOT, AARCH64_TARGET, ensure_tools, ssh_server

from ansor_py.network.executor import Network, NetworkBuildWarning, build_subgraphs
from ansor_py.network.export import (
    ExportError,
    KernelCall,
    NetworkProgram,
    export_library,
    weights_path,
)
from ansor_py.network.export_run import (
    build_driver,
    elf_machine,
    load_exported,
    read_description,
    run_exported_over_ssh,
)
from ansor_py.network.graph import Graph, Node
from ansor_py.network.reference import run_reference
from ansor_py.network.subgraph import Subgraph
from ansor_py.network.tasks import partition_network
from ansor_py.network.types import TensorType
from ir import te, topi
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState

M, K, N = 4, 8, 16


def dense_relu(name: str, rows: int, k: int, n: int) -> ComputeDAG:
    data = te.placeholder((rows, k), name="data")
    weight = te.placeholder((n, k), name="weight")
    bias = te.placeholder((n,), name="bias")
    out = topi.relu(topi.dense(data, weight, bias, name=f"{name}_dense"), name=f"{name}_relu")
    return ComputeDAG([data, weight, bias, out])


def add_dag(shape: tuple[int, ...]) -> ComputeDAG:
    a, b = te.placeholder(shape, name="a"), te.placeholder(shape, name="b")
    return ComputeDAG([a, b, topi.add(a, b, name="sum")])


def subgraph(name: str, dag: ComputeDAG, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Subgraph:
    return Subgraph(name, (), inputs, outputs, dag, name)


def small_network(schedule: bool = False) -> tuple[NetworkProgram, dict[str, np.ndarray]]:
    """x -> h1 = relu(x w1^T + b1) -> h2 = relu(h1 wa^T + ba) -> h3 = relu(h2 wb^T + bb)
    -> y = h3 + h1; outputs (y, h2, x). h2 and h3 share one kernel; h1, h3 live in the arena."""
    rng = np.random.default_rng(12)
    constants = {
        "w1": rng.standard_normal((N, K)).astype(np.float32),
        "b1": rng.standard_normal(N).astype(np.float32),
        "wa": rng.standard_normal((N, N)).astype(np.float32) * 0.3,
        "ba": rng.standard_normal(N).astype(np.float32),
        "wb": rng.standard_normal((N, N)).astype(np.float32) * 0.3,
        "bb": rng.standard_normal(N).astype(np.float32),
    }
    shared = dense_relu("fc", M, N, N)
    subs = [
        subgraph("fused_dense_relu_0", dense_relu("fc", M, K, N), ("x", "w1", "b1"), ("h1",)),
        subgraph("fused_dense_relu_1", shared, ("h1", "wa", "ba"), ("h2",)),
        subgraph("fused_dense_relu_2", shared, ("h2", "wb", "bb"), ("h3",)),
        subgraph("fused_add_3", add_dag((M, N)), ("h3", "h1"), ("y",)),
    ]
    states: list[LoopState | None] = [None] * len(subs)
    if schedule:  # a parallel outer loop, so the library needs libgomp
        states = []
        for sub in subs:
            state = get_init_state(sub.dag)
            last = sub.dag.outputs[-1].op.name
            state.parallel(last, state[last].iters[0])
            states.append(state.loop_state)
    types = {name: TensorType.of(array) for name, array in constants.items()}
    types |= {v: TensorType((M, N)) for v in ("h1", "h2", "h3", "y")} | {"x": TensorType((M, K))}
    program = NetworkProgram(
        name="small_mlp",
        inputs={"x": types["x"]},
        outputs=("y", "h2", "x"),
        constants=constants,
        types=types,
        calls=tuple(KernelCall(s, st) for s, st in zip(subs, states, strict=True)),
        arena_offsets={"h1": 0, "h3": 256},
        workspace_bytes=512,
    )
    return program, constants


def tiny_cnn() -> Graph:
    """conv 3x3 + bias + relu -> global average pool -> dense + bias -> softmax (NCHW, as
    ONNX would give it); outputs the probabilities and the logits."""
    rng = np.random.default_rng(0)
    constants = {
        "w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
        "b": rng.standard_normal((1, 8, 1, 1)).astype(np.float32),
        "fw": rng.standard_normal((10, 8)).astype(np.float32) * 0.3,
        "fb": rng.standard_normal((10,)).astype(np.float32),
    }
    conv = {"layout": "NCHW", "kernel_layout": "OIHW", "strides": (1, 1), "pads": (1, 1, 1, 1)}
    nodes = [
        Node("conv", ("x", "w"), ("c",), {**conv, "dilations": (1, 1), "groups": 1}, "conv0"),
        Node("add", ("c", "b"), ("cb",), {}, "bias0"),
        Node("relu", ("cb",), ("r",), {}, "relu0"),
        Node("global_avg_pool", ("r",), ("p",), {"layout": "NCHW"}, "gap"),
        Node("reshape", ("p",), ("f",), {"shape": (1, 8)}, "flat"),
        Node("dense", ("f", "fw"), ("d",), {}, "fc"),
        Node("add", ("d", "fb"), ("logits",), {}, "fc_bias"),
        Node("softmax", ("logits",), ("prob",), {"axis": 1}, "softmax"),
    ]
    return Graph({"x": TensorType((1, 3, 8, 8))}, nodes, ["prob", "logits"], constants, "tiny_cnn")


def build_tiny_cnn(graph: Graph, target: str) -> Network:
    """``build_network`` (partition with the NHWC layout, default schedules)."""
    optimized, subgraphs = partition_network(graph, "NHWC")
    with pytest.warns(NetworkBuildWarning, match=r"use the default schedule"):
        return build_subgraphs(
            subgraphs, optimized.inputs, optimized.outputs, optimized.constants, target, name=graph.name
        )


def reference(constants: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    def fc(v: np.ndarray, w: str, b: str) -> np.ndarray:
        return np.maximum(v @ constants[w].T + constants[b], 0)

    h1 = fc(x, "w1", "b1")
    h2 = fc(h1, "wa", "ba")
    return [fc(h2, "wb", "bb") + h1, h2, x]


def random_input(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((M, K)).astype(np.float32)


def assert_outputs(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def host_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    program, constants = small_network(schedule=True)
    path = tmp_path_factory.mktemp("export") / "small_mlp.so"
    export_library(program, path, "llvm")
    return path, constants


def test_host_export_runs_with_ctypes_and_matches_numpy(host_library):
    path, constants = host_library
    net = load_exported(path)
    assert list(net.inputs) == ["x"] and [name for name, _ in net.outputs] == ["y", "h2", "x"]
    assert net.workspace_bytes == 512
    for seed in (1, 2):
        x = random_input(seed)
        assert_outputs(net({"x": x}), reference(constants, x))
        net.library.ansor_network_release()  # frees the arena; the next run sets it up again
    # the two identical subgraphs share one hidden kernel symbol; the entry points are public
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True).stdout
    assert "ansor_network_run" in symbols and "ansor_k" not in symbols
    local = subprocess.run(["nm", str(path)], capture_output=True, text=True).stdout.split()
    kernels = {n for n in local if n.startswith("ansor_k") and "_compute" not in n}
    assert kernels == {"ansor_k0_fused_dense_relu_0", "ansor_k1_fused_dense_relu_1", "ansor_k2_fused_add_3"}


def test_an_executor_network_exports_and_matches_its_in_process_run(tmp_path):
    program, constants = small_network()
    subgraphs = [call.subgraph for call in program.calls]
    with pytest.warns(NetworkBuildWarning, match=r"3 of 3 tasks have no tuning record"):
        network = build_subgraphs(subgraphs, program.inputs, program.outputs, constants, "llvm", name="mlp")
    path = export_library(network, tmp_path / "mlp.so")
    exported = load_exported(path)
    # the library's arena holds the intermediates only (h1, h3: 256 bytes each, disjoint
    # lifetimes would share), never the inputs and outputs the caller owns
    assert 0 < exported.workspace_bytes <= 512 < network.plan.arena_bytes
    for seed in (7, 8):
        x = random_input(seed)
        got = exported(x=x)
        assert_outputs(got, network.run(x=x, copy=True))
        assert_outputs(got, reference(constants, x))


def test_embedded_weights_need_no_file_and_a_moved_library_still_runs(host_library, tmp_path):
    path, constants = host_library
    moved = tmp_path / "elsewhere" / "net.so"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    assert sorted(p.name for p in moved.parent.iterdir()) == ["net.so"]
    x = random_input(3)
    assert_outputs(load_exported(moved)(x=x), reference(constants, x))
    assert read_description(moved).weights == "embed"


def test_weights_file_beside_the_library_is_read_and_a_foreign_one_refused(tmp_path):
    program, constants = small_network()
    (tmp_path / "a").mkdir()
    path = export_library(program, tmp_path / "a" / "net.so", weights="file")
    sizes = [c.nbytes for c in constants.values()]  # in order of first use, each 64-byte aligned
    assert weights_path(path).stat().st_size == 64 + sum(-(-n // 64) * 64 for n in sizes[:-1]) + sizes[-1]
    x = random_input(4)
    assert_outputs(load_exported(path)(x=x), reference(constants, x))
    # another export with other weights: its file must not be taken for this one's
    other, _ = small_network()
    other.constants["w1"][0, 0] += 1.0
    (tmp_path / "b").mkdir()
    export_library(other, tmp_path / "b" / "net.so", weights="file")
    moved = tmp_path / "c" / "net.so"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    shutil.copy(tmp_path / "b" / "net.weights", moved.parent / "net.weights")
    with pytest.raises(RuntimeError, match=r"net\.weights is not this network's weights file"):
        load_exported(moved)(x=x)


def test_outputs_that_no_kernel_writes_are_copied(tmp_path):
    """Outputs: a kernel's value twice, a weight, a graph input; the arena is planned."""
    rng = np.random.default_rng(9)
    c = rng.standard_normal((M, N)).astype(np.float32)
    sub = subgraph("fused_add_0", add_dag((M, N)), ("a", "c"), ("s",))
    types = {v: TensorType((M, N)) for v in ("a", "c", "s")}
    program = NetworkProgram.planned(
        "copies", {"a": types["a"]}, ("s", "c", "s", "a"), {"c": c}, types, [KernelCall(sub, None)]
    )
    assert program.workspace_bytes == 0 and program.arena_offsets == {}
    net = load_exported(export_library(program, tmp_path / "copies.so"))
    a = rng.standard_normal((M, N)).astype(np.float32)
    assert_outputs(net(a=a), [a + c, c, a + c, a])


def test_a_real_graph_exports_and_matches_run_reference(tmp_path):
    graph = tiny_cnn()
    network = build_tiny_cnn(graph, "llvm")
    net = load_exported(export_library(network, tmp_path / "tiny_cnn.so"))
    assert [name for name, _ in net.outputs] == ["prob", "logits"]
    for seed in (1, 2):
        x = np.random.default_rng(seed).standard_normal((1, 3, 8, 8)).astype(np.float32)
        got = net(x=x)
        assert_outputs(got, network.run(x=x, copy=True))
        assert_outputs(got, run_reference(graph, {"x": x}))


C_PROGRAM = r"""
#include <stdio.h>
#include <stdint.h>
#include <math.h>
int ansor_network_num_inputs(void); int ansor_network_num_outputs(void);
int64_t ansor_network_output_nbytes(int); const char* ansor_network_output_name(int);
int ansor_network_run(const void* const* inputs, void* const* outputs);
int main(void) {
    static float x[%(M)d * %(K)d], y[%(M)d * %(N)d], h2[%(M)d * %(N)d], xo[%(M)d * %(K)d];
    for (int i = 0; i < %(M)d * %(K)d; i++) x[i] = sinf(0.37f * i) * 2.0f;
    const void* inputs[1] = {x}; void* outputs[3] = {y, h2, xo};
    if (ansor_network_num_inputs() != 1 || ansor_network_num_outputs() != 3) return 2;
    for (int r = 0; r < 3; r++) if (ansor_network_run(inputs, outputs) != 0) return 3;
    double sum = 0, weighted = 0;
    for (int i = 0; i < %(M)d * %(N)d; i++) { sum += y[i] + h2[i]; weighted += (i %% 7) * y[i]; }
    for (int i = 0; i < %(M)d * %(K)d; i++) sum += xo[i];
    printf("%%s %%.6f %%.6f\n", ansor_network_output_name(0), sum, weighted);
    return 0;
}
"""


def test_a_c_program_calls_the_entry_point_without_python(host_library, tmp_path):
    path, constants = host_library
    source = tmp_path / "main.c"
    source.write_text(C_PROGRAM % {"M": M, "K": K, "N": N})
    exe = tmp_path / "main"
    link = [f"-L{path.parent}", f"-l:{path.name}", f"-Wl,-rpath,{path.parent}", "-lm"]
    subprocess.run(["cc", "-O1", "-o", str(exe), str(source), *link], check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    name, total, weighted = done.stdout.split()
    x = (np.sin(np.float32(0.37) * np.arange(M * K, dtype=np.float32)) * 2).reshape(M, K)
    y, h2, x_out = reference(constants, x.astype(np.float32))
    assert name == "y"
    assert float(total) == pytest.approx(float(y.sum() + h2.sum() + x_out.sum()), rel=1e-5, abs=1e-3)
    assert float(weighted) == pytest.approx(float(((np.arange(M * N) % 7) * y.ravel()).sum()), rel=1e-5)


def test_bad_plans_and_inputs_are_refused_with_names(host_library, tmp_path):
    program, _ = small_network()
    overlapping = NetworkProgram(**{**program.__dict__, "arena_offsets": {"h1": 0, "h3": 128}})
    with pytest.raises(ExportError, match=r"'h3' and 'h1'|'h1' and 'h3'"):
        export_library(overlapping, tmp_path / "x.so")
    unplanned = NetworkProgram(**{**program.__dict__, "arena_offsets": {"h1": 0}})
    with pytest.raises(ExportError, match=r"value 'h3' has no place in the memory plan"):
        export_library(unplanned, tmp_path / "x.so")
    with pytest.raises(ExportError, match=r"weights='inline' is not one of embed, file"):
        export_library(program, tmp_path / "x.so", weights="inline")
    net = load_exported(host_library[0])
    with pytest.raises(ExportError, match=r"input 'x' is float32\[4, 9\], expected float32\[4, 8\]"):
        net(x=np.zeros((M, 9), np.float32))
    with pytest.raises(ExportError, match=r"missing \['x'\], unknown \['z'\]"):
        net(z=random_input(1))


# AArch64 --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aarch64_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    ensure_tools()
    program, constants = small_network(schedule=True)
    path = tmp_path_factory.mktemp("export_arm") / "small_mlp_arm.so"
    export_library(program, path, AARCH64_TARGET)
    return path, constants


@pytest.mark.slow
def test_aarch64_export_runs_under_qemu(aarch64_library, tmp_path):
    path, constants = aarch64_library
    assert elf_machine(path) == "aarch64"
    with pytest.raises(ExportError, match=r"built for aarch64 .*run_exported_over_ssh"):
        load_exported(path)
    driver = build_driver(AARCH64_TARGET)
    x = random_input(5)
    (tmp_path / "in_0.bin").write_bytes(x.tobytes())
    done = subprocess.run(
        ["qemu-aarch64", "-L", AARCH64_SYSROOT, str(driver), str(path), str(tmp_path), "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("TIMES ") and float(done.stdout.split()[1]) > 0
    want = reference(constants, x)
    got = [np.fromfile(tmp_path / f"out_{j}.bin", np.float32).reshape(w.shape) for j, w in enumerate(want)]
    assert_outputs(got, want)


@pytest.fixture(scope="module")
def server():
    yield from ssh_server()


@pytest.mark.slow
def test_aarch64_export_runs_over_ssh_on_a_qemu_board(aarch64_library, server, tmp_path):
    path, constants = aarch64_library
    x = random_input(6)
    remote = tmp_path / "board"
    outputs, times = run_exported_over_ssh(
        server.host(), path, {"x": x}, repeat=2,
        command_prefix=f"qemu-aarch64 -L {AARCH64_SYSROOT}", remote_dir=str(remote), timeout=60,
    )  # fmt: skip
    assert_outputs(outputs, reference(constants, x))
    assert len(times) == 2 and all(t > 0 for t in times)
    # the run directory is gone; the cached driver stays for the next run
    assert [p.name.startswith("network-driver-") for p in remote.iterdir()] == [True]


@pytest.mark.slow
def test_a_real_graph_with_a_weights_file_runs_over_ssh_on_a_qemu_board(server, tmp_path):
    """The executor's host build, exported for AArch64 (kernels recompiled for the board,
    weights in a file sent along), matches run_reference."""
    graph = tiny_cnn()
    network = build_tiny_cnn(graph, "llvm")
    path = export_library(network, tmp_path / "tiny_cnn_arm.so", AARCH64_TARGET, weights="file")
    assert elf_machine(path) == "aarch64" and weights_path(path).exists()
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    remote = tmp_path / "board"
    outputs, times = run_exported_over_ssh(
        server.host(command_prefix=f"qemu-aarch64 -L {AARCH64_SYSROOT}"), path, {"x": x},
        repeat=1, remote_dir=str(remote), timeout=60,
    )  # fmt: skip
    assert_outputs(outputs, run_reference(graph, {"x": x}))
    assert len(times) == 1
