"""Layout rewrite (``ir.layout_rewrite``): the weights of a tiled conv2d NHWC, dense and
batch_matmul laid out in tile order give the same results as the original DAG (numpy
reference and compiled), the new shape follows the loop order, an untiled state leaves the
layout alone; a network built with and without the rewrite computes the same outputs;
the measurement builds and checks the rewritten kernel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from search_workloads import SMALL_PARAMS

from ansor_py.cost_model import RandomModel
from ansor_py.measure.local import LocalBuilder, LocalRunner
from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.network.executor import NetworkBuildWarning, build_network, random_inputs
from ansor_py.network.export import export_library
from ansor_py.network.export_run import load_exported
from ansor_py.network.graph import Graph, Node
from ansor_py.network.reference import run_reference
from ansor_py.network.tasks import partition_network
from ansor_py.network.types import TensorType
from ansor_py.records import load_records, save_records
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.tuning import apply_best, best_layout_rewrite
from ansor_py.workload_registry import register_workload
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.layout_rewrite import (
    LAYOUT_FREE_PLACEHOLDERS,
    LayoutRewriteOption,
    PlaceholderLayout,
    placeholder_layouts,
    rewrite_layout_from_state,
)
from ir.loop_state.api import get_init_state
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import initial_state
from ir.reference import evaluate
from ir.reference import random_inputs as dag_inputs
from ir.te import ComputeOp
from ir.topi.nn_conv import conv2d_nhwc
from ir.topi.nn_dense import batch_matmul, dense


def conv_relu_dag() -> ComputeDAG:
    data = te.placeholder((1, 14, 14, 32), name="data")
    kernel = te.placeholder((3, 3, 32, 64), name="kernel")
    out = conv2d_nhwc(data, kernel, 1, 1)
    relu = te.compute(out.shape, lambda *i: te.max(out[i], 0.0), name="relu")
    return ComputeDAG([data, kernel, relu])


def dense_dag() -> ComputeDAG:
    a = te.placeholder((16, 64), name="a")
    w = te.placeholder((48, 64), name="w")
    return ComputeDAG([a, w, dense(a, w)])


def batch_matmul_dag() -> ComputeDAG:
    a = te.placeholder((2, 16, 32), name="a")
    b = te.placeholder((2, 24, 32), name="b")
    return ComputeDAG([a, b, batch_matmul(a, b)])


WORKLOADS: dict[str, tuple[Callable[[], ComputeDAG], str]] = {
    "conv2d_nhwc": (conv_relu_dag, "kernel"),
    "dense": (dense_dag, "w"),
    "batch_matmul": (batch_matmul_dag, "b"),
}


def sampled_states(dag: ComputeDAG, count: int, seed: int = 0) -> list:
    task = SearchTask(compute_dag=dag)
    policy = SketchPolicy(task, RandomModel(seed=seed), params=SMALL_PARAMS, seed=seed, verbose=0)
    return policy.sample_initial_population()[:count]


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_rewritten_dag_with_transformed_weights_computes_the_same(workload: str) -> None:
    make, weight = WORKLOADS[workload]
    dag = make()
    marks = [
        op.attrs[LAYOUT_FREE_PLACEHOLDERS]
        for op in dag.ops
        if isinstance(op, ComputeOp) and LAYOUT_FREE_PLACEHOLDERS in op.attrs
    ]
    assert marks == [[weight]]  # topi marks the weight, as TVM's
    inputs = dag_inputs(dag, seed=3)
    expected = evaluate(dag, inputs)[0]
    position = [t.name for t in dag.placeholders].index(weight)
    rewritten = 0
    for index, state in enumerate(sampled_states(dag, 5)):
        rewrite = rewrite_layout_from_state(dag, state)
        if rewrite is None:
            continue
        rewritten += 1
        layout = rewrite.layouts[weight]
        new_inputs = rewrite.transform_inputs(inputs)
        assert new_inputs[position].shape == layout.new_shape != inputs[position].shape
        np.testing.assert_array_equal(layout.inverse(new_inputs[position]), inputs[position])
        assert rewrite.dag.placeholders[position].shape == layout.new_shape
        np.testing.assert_allclose(evaluate(rewrite.dag, new_inputs)[0], expected, rtol=1e-5, atol=1e-5)
        if index < 2:  # compiled: the same steps replay on the rewritten DAG
            kernel = build(rewrite.dag, replay_steps(rewrite.dag, state.transform_steps))
            out = np.full(expected.shape, np.nan, np.float32)
            kernel(*new_inputs, out)
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert rewritten >= 3  # the sampled multi-level tilings do tile the weight


def test_new_shape_follows_the_tile_order() -> None:
    dag = dense_dag()  # T_dense(i, j) += a[i, k] * w[j, k]; w is [48, 64]
    state = get_init_state(dag)
    i, j, k = state.stages[-1].iters
    i0, i1 = state.split("T_dense", i, [4])
    j0, j1 = state.split("T_dense", j, [8])
    k0, k1 = state.split("T_dense", k, [16])
    state.reorder("T_dense", [i0, j0, k0, i1, k1, j1])
    layout = placeholder_layouts(dag, state.loop_state)["w"]
    # loops over w's axes in loop order: j.0 (6), k.0 (4), k.1 (16), j.1 (8)
    assert layout.dims == ((0, 6), (1, 4), (1, 16), (0, 8))
    assert layout.new_shape == (6, 4, 16, 8)
    assert str(layout) == "6A4B16B8A"
    w = np.arange(48 * 64, dtype=np.float32).reshape(48, 64)
    new = layout.transform(w)
    # element (jo, ko, ki, ji) is w[jo*8 + ji, ko*16 + ki]: j.1 runs fastest in memory
    assert new[2, 3, 5, 7] == w[2 * 8 + 7, 3 * 16 + 5]
    np.testing.assert_array_equal(new[0, 0, 0, :], w[0:8, 0])


def test_non_dividing_split_pads_and_stays_correct() -> None:
    dag = dense_dag()
    state = get_init_state(dag)
    _, j, k = state.stages[-1].iters
    j0, j1 = state.split("T_dense", j, [5])  # 48 = 9 * 5 + 3: the last tile overshoots
    k0, k1 = state.split("T_dense", k, [16])
    state.reorder("T_dense", [state.stages[-1].iters[0], j0, k0, k1, j1])
    layout = placeholder_layouts(dag, state.loop_state)["w"]
    assert layout.new_shape == (10, 4, 16, 5)  # 10 * 5 = 50 >= 48 rows: two of zeros
    inputs = dag_inputs(dag, seed=4)
    new = layout.transform(inputs[1])
    assert np.count_nonzero(new == 0) >= 2 * 64
    np.testing.assert_array_equal(layout.inverse(new), inputs[1])
    rewrite = rewrite_layout_from_state(dag, state.loop_state)
    assert rewrite is not None
    kernel = build(rewrite.dag, replay_steps(rewrite.dag, state.loop_state.transform_steps))
    out = np.empty((16, 48), np.float32)
    kernel(inputs[0], new, out)
    np.testing.assert_allclose(out, inputs[0] @ inputs[1].T, rtol=1e-4, atol=1e-4)


def test_untiled_weight_axes_keep_the_layout() -> None:
    dag = dense_dag()
    assert rewrite_layout_from_state(dag, initial_state(dag)) is None
    state = get_init_state(dag)
    state.split("T_dense", state.stages[-1].iters[0], [4])  # tiles i, an axis w does not have
    assert placeholder_layouts(dag, state.loop_state) == {}
    # a placeholder nobody marked keeps its layout, however the loops run
    plain = ComputeDAG(list(dag.placeholders) + [_unmarked_dense(dag)])
    assert rewrite_layout_from_state(plain, sampled_states(dag, 1)[0]) is None


def _unmarked_dense(dag: ComputeDAG) -> te.Tensor:
    a, w = dag.placeholders
    k = te.reduce_axis((0, 64), name="k")
    return te.compute((16, 48), lambda i, j: te.sum(a[i, k] * w[j, k], axis=k), name="T_dense")


def test_layout_errors_name_the_placeholder() -> None:
    layout = PlaceholderLayout("w", (4, 6), ((1, 3), (0, 4), (1, 2)))
    with pytest.raises(ValueError, match=r"'w'.*\[5, 6\].*\[4, 6\]"):
        layout.transform(np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match=r"'w'.*rewritten shape \[3, 4, 2\]"):
        layout.inverse(np.zeros((4, 6), np.float32))


# ------------------------------------------------------------------------------------------
# networks


def small_network(seed: int = 0) -> Graph:
    """conv (constant weight) + bias + relu, then a matmul of two activations and a dense."""
    rng = np.random.default_rng(seed)
    constants = {
        "w1": rng.uniform(-1, 1, (16, 8, 3, 3)).astype(np.float32),
        "b1": rng.uniform(-1, 1, (1, 16, 1, 1)).astype(np.float32),
        "w2": rng.uniform(-1, 1, (24, 16 * 6 * 6)).astype(np.float32),
    }
    nodes = [
        Node("conv", ("x", "w1"), ("c",), _conv_attrs(), name="conv"),
        Node("add", ("c", "b1"), ("cb",), {}, name="bias"),
        Node("relu", ("cb",), ("r",), {}, name="relu"),
        Node("reshape", ("r",), ("flat",), {"shape": (1, 16 * 6 * 6)}, name="flatten"),
        Node("dense", ("flat", "w2"), ("d",), {}, name="dense"),
    ]
    return Graph({"x": TensorType((1, 8, 6, 6))}, nodes, ["d"], constants, "small")


def _conv_attrs() -> dict[str, object]:
    return {
        "layout": "NCHW",
        "kernel_layout": "OIHW",
        "strides": (1, 1),
        "pads": (1, 1, 1, 1),
        "dilations": (1, 1),
        "groups": 1,
    }


def test_fusion_marks_only_constant_weights() -> None:
    _, subgraphs = partition_network(small_network())
    conv = next(sg for sg in subgraphs if sg.desc.startswith("conv2d"))
    marks = [
        op.attrs[LAYOUT_FREE_PLACEHOLDERS]
        for op in conv.dag.ops
        if isinstance(op, ComputeOp) and LAYOUT_FREE_PLACEHOLDERS in op.attrs
    ]
    assert marks == [["p1"]]
    mm = Graph(
        {"a": TensorType((2, 4, 8)), "b": TensorType((2, 8, 5))},
        [Node("matmul", ("a", "b"), ("m",), {}, name="mm")],
        ["m"],
        {},
        "mm",
    )
    (sg,) = partition_network(mm)[1]
    assert all(not op.attrs.get(LAYOUT_FREE_PLACEHOLDERS) for op in sg.dag.ops if isinstance(op, ComputeOp))


def test_network_with_and_without_layout_rewrite_gives_the_same_outputs(tmp_path: Path) -> None:
    graph = small_network()
    _, subgraphs = partition_network(graph)
    conv = next(sg for sg in subgraphs if sg.desc.startswith("conv2d"))
    weight = conv.inputs[1]  # the weight as NHWC conversion left it (HWIO)
    task = SearchTask(
        compute_dag=conv.dag, layout_rewrite_option=LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED
    )
    state = next(s for s in sampled_states(conv.dag, 8, seed=1) if rewrite_layout_from_state(conv.dag, s))
    log = tmp_path / "small.json"
    save_records(
        log, [MeasureInput(task, state)], [MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR, timestamp=1.0)]
    )
    inputs = random_inputs(graph.inputs, seed=5)
    expected = run_reference(graph, inputs)[0]
    outputs = {}
    for option in (LayoutRewriteOption.NO_REWRITE, None):  # None: the network default, rewrite
        with pytest.warns(NetworkBuildWarning):
            net = build_network(graph, records=log, layout_rewrite_option=option)
        tuned = next(k for k in net.kernels if k.tuned)
        assert tuned.state.transform_steps == state.transform_steps
        rewritten = [k for k in net.kernels if k.layouts]
        if option is LayoutRewriteOption.NO_REWRITE:
            assert not rewritten
            assert weight in net.constants
        else:
            assert tuned in rewritten
            value = f"{weight}#{tuned.symbol}"
            assert weight not in net.constants  # only the transformed weight is kept
            assert net.constants[value].shape == tuned.layouts["p1"].new_shape
        outputs[option] = net.run_inputs(inputs, copy=True)[0]
        np.testing.assert_allclose(outputs[option], expected, rtol=1e-4, atol=1e-4)
        if option is None:  # the exported library embeds the transformed weights
            exported = load_exported(export_library(net, tmp_path / "small.so"))
            np.testing.assert_allclose(exported(**inputs)[0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(outputs[LayoutRewriteOption.NO_REWRITE], outputs[None], rtol=1e-5)


def test_measurement_builds_and_checks_the_rewritten_kernel() -> None:
    dag = conv_relu_dag()
    task = SearchTask(compute_dag=dag, layout_rewrite_option=LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED)
    states = [s for s in sampled_states(dag, 6, seed=2) if task.layout_rewrite(s) is not None][:3]
    assert len(states) == 3
    inputs = [MeasureInput(task, s) for s in states]
    built = LocalBuilder(n_parallel=2).build(inputs, verbose=0)
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        results = runner.run(inputs, built, verbose=0)
    assert task.layout_rewrite_option is LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED
    assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR] * 3, [r.error_msg for r in results]
    # the same libraries checked against the weights in their original layout (a task
    # without layout rewrite) fail: the runner above did feed the rewritten layouts
    plain = SearchTask(compute_dag=dag)  # a single operator's default: NO_REWRITE
    assert plain.layout_rewrite_option is LayoutRewriteOption.NO_REWRITE
    assert plain.layout_rewrite(states[0]) is None
    built = LocalBuilder(n_parallel=2).build(inputs, verbose=0)
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        results = runner.run([MeasureInput(plain, s) for s in states], built, verbose=0)
    assert all(r.error_no in (MeasureErrorNo.WRONG_ANSWER, MeasureErrorNo.RUNTIME_DEVICE) for r in results)


def test_apply_best_compiles_the_rewritten_dag_on_request(tmp_path: Path) -> None:
    dag = dense_dag()
    task = SearchTask(compute_dag=dag)
    state = next(s for s in sampled_states(dag, 6, seed=3) if rewrite_layout_from_state(dag, s))
    log = tmp_path / "dense.json"
    result = MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR, timestamp=1.0)
    save_records(log, [MeasureInput(task, state)], [result])
    inputs = dag_inputs(dag, seed=6)
    expected = inputs[0] @ inputs[1].T
    plain = apply_best(task, log)  # the default: the task's own layout
    out = np.empty((16, 48), np.float32)
    plain(*inputs, out)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    rewrite = best_layout_rewrite(task, log)
    assert rewrite is not None and rewrite.layouts["w"].new_shape != (48, 64)
    kernel = apply_best(task, log, layout_rewrite_option=LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED)
    out2 = np.full((16, 48), np.nan, np.float32)
    kernel(*rewrite.transform_inputs(inputs), out2)
    np.testing.assert_allclose(out2, expected, rtol=1e-4, atol=1e-4)


def test_records_carry_the_layout_rewrite_option(tmp_path: Path) -> None:
    """The task record's 5th field holds the option (TVM's v0.6 layout), so a log read back
    without the task still measures and applies candidates with the same weight layout."""

    @register_workload("layout_rewrite_records_dense", override=True)
    def dense_workload(n: int, k: int, m: int) -> list[te.Tensor]:
        data = te.placeholder((n, k), name="data")
        weight = te.placeholder((m, k), name="weight")
        return [data, weight, dense(data, weight)]

    results = []
    for option in (LayoutRewriteOption.NO_REWRITE, LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED):
        task = SearchTask(func=dense_workload, args=(4, 8, 16), layout_rewrite_option=option)
        inp = MeasureInput(task, initial_state(task.compute_dag))
        path = tmp_path / f"log_{int(option)}.json"
        save_records(path, [inp], [MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR, "", 0.1, 1.0)])
        assert f'"", {int(option)}, []]' in path.read_text()
        ((read, _),) = list(load_records(path))
        results.append(read.task.layout_rewrite_option)
    assert results == [LayoutRewriteOption.NO_REWRITE, LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED]
