"""The executor on hand-made subgraphs (DAGs declared with ir.topi, cut as fusion would):
results against numpy, kernel sharing, buffer sharing that must not corrupt values,
pre-bound calls, the output contract, input errors, and records making a task "tuned"."""

from __future__ import annotations

import json
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.executor import Network, NetworkBuildWarning, RecordsLike, build_subgraphs
from ansor_py.network.reference import InputError
from ansor_py.network.subgraph import Subgraph
from ansor_py.network.types import TensorType
from ansor_py.records import ApplyHistoryBest, dump_record_to_string, save_records
from ansor_py.search_task import SearchTask
from codegen.llvm.errors import KernelArgumentError
from ir import te, topi
from ir.compute_dag import ComputeDAG

H, W, C, CLASSES = 6, 6, 8, 10


def conv_relu(
    name: str, inputs: tuple[str, str, str], output: str, size: int = H, channels: int = C
) -> Subgraph:
    """relu(conv3x3_nhwc(p0, p1, pad 1) + p2), named canonically (no graph value names)."""
    data = te.placeholder((1, size, size, channels), name="p0")
    weight = te.placeholder((3, 3, channels, channels), name="p1")
    bias = te.placeholder((channels,), name="p2")
    conv = topi.conv2d_nhwc(data, weight, padding=1, name="conv")
    out = topi.relu(topi.add(conv, bias, name="conv_add"), name="conv_add_relu")
    dag = ComputeDAG([data, weight, bias, out])
    return Subgraph(
        name, (), inputs, (output,), dag, f"conv2d_nhwc + bias + relu, 1x{size}x{size}x{channels}"
    )


def add(name: str, inputs: tuple[str, str], output: str) -> Subgraph:
    a = te.placeholder((1, H, W, C), name="p0")
    b = te.placeholder((1, H, W, C), name="p1")
    out = topi.add(a, b, name="add")
    return Subgraph(name, (), inputs, (output,), ComputeDAG([a, b, out]), "add")


def dense(name: str, inputs: tuple[str, str, str, str], output: str) -> Subgraph:
    """dense(reshape(p0), p1) + p2 + p3: the classifier, with a second network input."""
    data = te.placeholder((1, H, W, C), name="p0")
    weight = te.placeholder((CLASSES, H * W * C), name="p1")
    bias = te.placeholder((CLASSES,), name="p2")
    shift = te.placeholder((1, CLASSES), name="p3")
    flat = topi.reshape(data, (1, H * W * C), name="reshape")
    out = topi.add(topi.dense(flat, weight, bias, name="dense"), shift, name="dense_add")
    return Subgraph(
        name, (), inputs, (output,), ComputeDAG([data, weight, bias, shift, out]), "dense + bias + add"
    )


def make_weights(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = {}
    for i in (1, 2, 3):
        weights[f"w{i}"] = rng.uniform(-0.3, 0.3, (3, 3, C, C)).astype(np.float32)
        weights[f"b{i}"] = rng.uniform(-0.2, 0.2, (C,)).astype(np.float32)
    weights["wd"] = rng.uniform(-0.2, 0.2, (CLASSES, H * W * C)).astype(np.float32)
    weights["bd"] = rng.uniform(-0.2, 0.2, (CLASSES,)).astype(np.float32)
    return weights


#: x -> c1 -> c2 -> c3 (three identical conv tasks), s = c1 + c3 (c1 outlives c2, which a
#: planner freeing too early would clobber), d = dense(s) + z; c2, the input x and the
#: constant bd are outputs too
SUBGRAPHS = [
    conv_relu("fused_conv_relu_0", ("x", "w1", "b1"), "c1"),
    conv_relu("fused_conv_relu_1", ("c1", "w2", "b2"), "c2"),
    conv_relu("fused_conv_relu_2", ("c2", "w3", "b3"), "c3"),
    add("fused_add_3", ("c1", "c3"), "s"),
    dense("fused_dense_add_4", ("s", "wd", "bd", "z"), "d"),
]
INPUTS = {"x": TensorType((1, H, W, C)), "z": TensorType((1, CLASSES))}
OUTPUTS = ["d", "c2", "x", "bd"]


def reference(x: np.ndarray, z: np.ndarray, w: dict[str, np.ndarray]) -> list[np.ndarray]:
    def conv(data: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        padded = np.pad(data.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros(data.shape)
        for dy in range(3):
            for dx in range(3):
                out += np.einsum("nhwc,co->nhwo", padded[:, dy : dy + H, dx : dx + W], weight[dy, dx])
        return np.maximum(out + bias, 0)

    c1 = conv(x, w["w1"], w["b1"])
    c2 = conv(c1, w["w2"], w["b2"])
    c3 = conv(c2, w["w3"], w["b3"])
    d = (c1 + c3).reshape(1, -1) @ w["wd"].T.astype(np.float64) + w["bd"] + z
    return [d, c2, x, w["bd"]]


def random_inputs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.uniform(-1, 1, (1, H, W, C)).astype(np.float32),
        "z": rng.uniform(-1, 1, (1, CLASSES)).astype(np.float32),
    }


def build(records: RecordsLike = None) -> Network:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)
        return build_subgraphs(SUBGRAPHS, INPUTS, OUTPUTS, make_weights(), records=records, name="toy")


@pytest.fixture(scope="module")
def net() -> Network:
    return build()


def check_outputs(outputs: list[np.ndarray], inputs: dict[str, np.ndarray]) -> None:
    expected = reference(inputs["x"], inputs["z"], make_weights())
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected, strict=True):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_outputs_match_numpy_on_random_inputs(net: Network) -> None:
    inputs = random_inputs(0)
    check_outputs(net.run(x=inputs["x"], z=inputs["z"]), inputs)
    inputs = random_inputs(1)
    check_outputs(net.run_inputs(inputs), inputs)


def test_positional_call_and_copies(net: Network) -> None:
    first, second = random_inputs(2), random_inputs(3)
    kept = net(first["x"], first["z"], copy=True)
    views = net(first["x"], first["z"])
    assert all(not v.flags.writeable for v in views)
    net(second["x"], second["z"])  # overwrites the views, never the copies
    check_outputs(kept, first)
    check_outputs(views, second)
    assert kept[2] is not first["x"] and not np.shares_memory(kept[2], first["x"])


def test_identical_subgraphs_share_one_kernel(net: Network) -> None:
    assert len(net.calls) == 5
    assert len(net.kernels) == 3
    assert net.calls[0].kernel is net.calls[1].kernel is net.calls[2].kernel
    assert len({k.symbol for k in net.kernels}) == 3


def test_buffers_are_shared_without_overlap_of_live_values(net: Network) -> None:
    plan = net.plan
    assert net.peak_memory_bytes == plan.arena_bytes < plan.total_bytes
    # c1 is alive from its kernel to the add; c2 dies before; c3 meets c1 at the add
    spans = {r.name: (r.first, r.last) for r in plan.requests}
    assert spans["c1"] == (1, 4) and spans["c2"] == (2, 6) and spans["c3"] == (3, 4)
    assert spans["x"] == (0, 6) and spans["z"] == (0, 5) and spans["s"] == (4, 5)
    shared = [
        (a.name, b.name)
        for a in plan.requests
        for b in plan.requests
        if a.name < b.name and plan.offsets[a.name] == plan.offsets[b.name]
    ]
    assert shared, "no two buffers share memory"
    for a in plan.requests:
        for b in plan.requests:
            if a.name < b.name and a.overlaps(b):
                a_mem = net.buffers[a.name]
                assert not np.shares_memory(a_mem, net.buffers[b.name]), (a.name, b.name)
    for array in net.buffers.values():
        assert array.ctypes.data % 64 == 0


def test_bound_calls_run_without_allocation(net: Network) -> None:
    inputs = random_inputs(4)
    net.run_inputs(inputs)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(50):
            for call in net.bound_calls:
                call()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "lineno") if stat.size_diff > 0)
    assert grown < 2048, f"bound calls allocated {grown} bytes"
    check_outputs(list(net._outputs), inputs)


def test_bind_checks_the_arrays_once(net: Network) -> None:
    kernel = net.calls[3].kernel.kernel  # the add
    a, b = (np.ones((1, H, W, C), np.float32) for _ in range(2))
    out = np.empty((1, H, W, C), np.float32)
    call = kernel.bind([a, b, out])
    a[...] = 2.0
    call()
    np.testing.assert_array_equal(out, 3.0)
    with pytest.raises(KernelArgumentError, match="argument 1 'p1': dtype float64"):
        kernel.bind([a, b.astype(np.float64), out])
    with pytest.raises(KernelArgumentError, match="takes 3 arrays"):
        kernel.bind([a, b])


def test_input_errors_name_the_input(net: Network) -> None:
    good = random_inputs(5)
    with pytest.raises(
        InputError, match=r"input 'x' is float32\[1, 6, 6, 9\], the network takes float32\[1, 6, 6, 8\]"
    ):
        net.run(x=np.zeros((1, H, W, C + 1), np.float32), z=good["z"])
    with pytest.raises(InputError, match=r"input 'z' is float64\[1, 10\]"):
        net.run(x=good["x"], z=good["z"].astype(np.float64))
    with pytest.raises(InputError, match=r"input 'z' .* is missing"):
        net.run(x=good["x"])
    with pytest.raises(InputError, match=r"has no input \['y'\]"):
        net.run(x=good["x"], z=good["z"], y=good["z"])
    with pytest.raises(InputError, match="input 'x' must be a numpy array, got list"):
        net.run(x=good["x"].tolist(), z=good["z"])
    with pytest.raises(InputError, match=r"takes 2 inputs \(x, z\), got 1"):
        net(good["x"])
    # a failed call leaves the network usable; non-contiguous inputs are accepted
    x = np.asfortranarray(good["x"])
    check_outputs(net.run(x=x, z=good["z"]), good)


def test_summary_and_warning_without_records() -> None:
    with pytest.warns(NetworkBuildWarning, match="3 of 3 tasks have no tuning record") as caught:
        net = build_subgraphs(SUBGRAPHS, INPUTS, OUTPUTS, make_weights(), name="toy")
    assert len([w for w in caught if issubclass(w.category, NetworkBuildWarning)]) == 1
    text = net.summary()
    assert text.count("default") >= 5 and "tuned" not in text.splitlines()[2]
    assert "fused_dense_add_4" in text and "dense + bias + add" in text
    assert "5 kernel calls, 3 distinct kernels (0 tuned, 3 default)" in text


def test_a_record_makes_its_task_tuned(tmp_path: Path) -> None:
    add_dag = SUBGRAPHS[3].dag
    task = SearchTask(compute_dag=add_dag, target="llvm", desc="add")
    state = default_schedule(add_dag, "llvm")
    log = tmp_path / "toy.json"
    save_records(
        log, [MeasureInput(task, state)], [MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR, timestamp=1.0)]
    )
    for records in (str(log), [log], ApplyHistoryBest(log)):
        with pytest.warns(NetworkBuildWarning, match="2 of 3 tasks have no tuning record"):
            net = build_subgraphs(SUBGRAPHS, INPUTS, OUTPUTS, make_weights(), records=records, name="toy")
        tuned = [k for k in net.kernels if k.tuned]
        assert [k.workload_key for k in tuned] == [task.workload_key]
        assert tuned[0].state.transform_steps == state.transform_steps
        line = next(line for line in net.summary().splitlines() if "fused_add_3" in line)
        assert " tuned " in line
        inputs = random_inputs(6)
        check_outputs(net.run_inputs(inputs), inputs)
    with ApplyHistoryBest(log), pytest.warns(NetworkBuildWarning, match="2 of 3 tasks"):
        build_subgraphs(SUBGRAPHS, INPUTS, OUTPUTS, make_weights(), name="toy")


def test_a_record_that_does_not_replay_falls_back_to_the_default(tmp_path: Path) -> None:
    add_dag = SUBGRAPHS[3].dag
    task = SearchTask(compute_dag=add_dag, target="llvm")
    record = json.loads(
        dump_record_to_string(
            MeasureInput(task, default_schedule(add_dag, "llvm")),
            MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR, timestamp=1.0),
        )
    )
    record["i"][1][1] = [["AN", 7, 0, 1]]  # annotate a stage the add does not have
    log = tmp_path / "bad.json"
    log.write_text(json.dumps(record) + "\n")
    with pytest.warns(
        NetworkBuildWarning, match=r"3 of 3 tasks .* fused_add_3 \(add\) \[its record does not replay"
    ):
        net = build_subgraphs(SUBGRAPHS, INPUTS, OUTPUTS, make_weights(), records=log, name="toy")
    assert not any(k.tuned for k in net.kernels)
    inputs = random_inputs(7)
    check_outputs(net.run_inputs(inputs), inputs)
