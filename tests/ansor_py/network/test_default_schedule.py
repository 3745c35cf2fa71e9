"""``default_schedule``: valid, deterministic and really tiled, parallel and vectorised.

Every DAG kind a network task declares is scheduled, compiled with ``codegen.build.build``
and run on random inputs, then compared with the DAG's numpy reference
(``ir.reference.evaluate``). Convolutions and dense layers are also checked for the
structure that makes them fast: a multi-level tiled stage, a parallel outer loop, a
vectorised inner loop and an unroll pragma.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import ir.topi as topi
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.tasks import extract_tasks
from ansor_py.network.zoo import NETWORKS
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, StageKind
from ir.loop_state.state import LoopState
from ir.loop_state.steps import PragmaStep, SplitStep
from ir.reference import evaluate, random_inputs


def _data_weight(data: tuple[int, ...], weight: tuple[int, ...]) -> tuple[te.Tensor, te.Tensor]:
    """The float32 placeholders ``data`` and ``weight`` of these shapes."""
    return te.placeholder(data, name="data"), te.placeholder(weight, name="weight")


def _bias_relu(data: te.Tensor, weight: te.Tensor, conv: te.Tensor, channels: int) -> ComputeDAG:
    """``conv`` (an NHWC convolution of ``data`` by ``weight``) plus a per-channel bias, then relu."""
    bias = te.placeholder((channels,), name="bias")
    out = topi.relu(topi.add(conv, bias, name=f"{conv.name}_bias"), name=f"{conv.name}_relu")
    return ComputeDAG([data, weight, bias, out])


def _conv2d_bias_relu() -> ComputeDAG:
    data, weight = _data_weight((1, 56, 56, 64), (3, 3, 64, 64))
    return _bias_relu(data, weight, topi.conv2d_nhwc(data, weight, 1, 1, name="conv"), 64)


def _conv2d_1x1_stride2_residual() -> ComputeDAG:
    data, weight = _data_weight((1, 28, 28, 64), (1, 1, 64, 128))
    residual = te.placeholder((1, 14, 14, 128), name="residual")
    conv = topi.conv2d_nhwc(data, weight, 2, 0, name="conv")
    out = topi.clip(topi.add(conv, residual, name="conv_add"), 0.0, 6.0, name="conv_clip")
    return ComputeDAG([data, weight, residual, out])


def _conv1d() -> ComputeDAG:
    data, weight = _data_weight((1, 30, 24), (3, 24, 40))
    return ComputeDAG([data, weight, topi.conv1d_nwc(data, weight, 1, 1, name="conv")])


def _depthwise_stride2() -> ComputeDAG:
    data, weight = _data_weight((1, 28, 28, 32), (3, 3, 32, 1))
    return _bias_relu(data, weight, topi.depthwise_conv2d_nhwc(data, weight, 2, 1, name="dw"), 32)


def _conv3d() -> ComputeDAG:
    data, weight = _data_weight((1, 6, 10, 10, 8), (3, 3, 3, 8, 16))
    return ComputeDAG([data, weight, topi.relu(topi.conv3d_ndhwc(data, weight, 1, 1, name="c3d"), name="r")])


def _conv2d_transpose() -> ComputeDAG:
    data, weight = _data_weight((1, 8, 8, 32), (4, 4, 32, 16))
    return ComputeDAG([data, weight, topi.conv2d_transpose_nhwc(data, weight, 2, 1, name="t2d")])


def _conv2d_large_weights() -> ComputeDAG:
    data, weight = _data_weight((1, 7, 7, 256), (3, 3, 256, 256))
    return _bias_relu(data, weight, topi.conv2d_nhwc(data, weight, 1, 1, name="conv"), 256)


def _dense_bias() -> ComputeDAG:
    data, weight = _data_weight((1, 2048), (1000, 2048))
    bias = te.placeholder((1000,), name="bias")
    return ComputeDAG([data, weight, bias, topi.dense(data, weight, bias, name="fc")])


def _batch_matmul() -> ComputeDAG:
    a = te.placeholder((12, 128, 64), name="a")
    b = te.placeholder((12, 64, 128), name="b")
    return ComputeDAG([a, b, topi.batch_matmul(a, b, transpose_b=False, name="bmm")])


def _softmax() -> ComputeDAG:
    x = te.placeholder((12, 128, 128), name="x")
    return ComputeDAG([x, topi.softmax(x, axis=-1, name="sm")])


def _layer_norm() -> ComputeDAG:
    x = te.placeholder((128, 768), name="x")
    gamma = te.placeholder((768,), name="gamma")
    beta = te.placeholder((768,), name="beta")
    return ComputeDAG([x, gamma, beta, topi.layer_norm(x, gamma, beta, axis=-1, name="ln")])


def _max_pool() -> ComputeDAG:
    x = te.placeholder((1, 56, 56, 64), name="x")
    return ComputeDAG([x, topi.max_pool2d(x, 3, 2, 1, layout="NHWC", name="pool")])


def _global_avg_pool() -> ComputeDAG:
    x = te.placeholder((1, 7, 7, 512), name="x")
    return ComputeDAG([x, topi.global_avg_pool(x, layout="NHWC", name="gap")])


def _reduce_mean() -> ComputeDAG:
    x = te.placeholder((4, 96, 50), name="x")
    total = topi.sum(x, axis=(0, 2), keepdims=True, name="total")
    return ComputeDAG([x, topi.divide(total, 200.0, name="mean")])


def _reshape_transpose_concat() -> ComputeDAG:
    x = te.placeholder((2, 12, 64), name="x")
    y = te.placeholder((2, 4, 12, 16), name="y")
    r = topi.reshape(x, (2, 12, 4, 16), name="r")
    t = topi.transpose(r, (0, 2, 1, 3), name="t")
    c = topi.concatenate([t, y], axis=3, name="c")
    return ComputeDAG([x, y, topi.sigmoid(c, name="s")])


def _take_int64() -> ComputeDAG:
    table = te.placeholder((100, 48), name="table")
    indices = te.placeholder((3, 7), name="indices", dtype="int64")
    return ComputeDAG([table, indices, topi.take(table, indices, axis=0, name="gather")])


CASES: dict[str, Callable[[], ComputeDAG]] = {
    "conv2d_bias_relu": _conv2d_bias_relu,
    "conv2d_1x1_stride2_residual": _conv2d_1x1_stride2_residual,
    "conv2d_large_weights": _conv2d_large_weights,
    "conv1d": _conv1d,
    "depthwise_stride2": _depthwise_stride2,
    "conv3d": _conv3d,
    "conv2d_transpose": _conv2d_transpose,
    "dense_bias": _dense_bias,
    "batch_matmul": _batch_matmul,
    "softmax": _softmax,
    "layer_norm": _layer_norm,
    "max_pool": _max_pool,
    "global_avg_pool": _global_avg_pool,
    "reduce_mean": _reduce_mean,
    "reshape_transpose_concat": _reshape_transpose_concat,
    "take_int64": _take_int64,
}


def _run(dag: ComputeDAG, state: LoopState) -> None:
    kernel = build(dag, state, "llvm")
    inputs = random_inputs(dag, seed=1)
    outputs = [np.empty(t.shape, dtype=t.dtype) for t in dag.outputs]
    kernel(*inputs, *outputs)
    expected = evaluate(dag, inputs)
    for got, want in zip(outputs, expected, strict=True):
        # long float32 sums in another order: an output that cancels to near zero is off by
        # the rounding of its terms, so the absolute tolerance follows the output's scale
        scale = float(np.abs(want).max()) if want.size else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, scale))


@pytest.mark.parametrize("name", list(CASES))
def test_default_schedule_matches_reference(name: str) -> None:
    dag = CASES[name]()
    _run(dag, default_schedule(dag, "llvm"))


def _dense_odd() -> ComputeDAG:
    data, weight = _data_weight((3, 13), (7, 13))
    return ComputeDAG([data, weight, topi.relu(topi.dense(data, weight, name="fc"), name="fc_relu")])


def _conv_odd_channels() -> ComputeDAG:
    data, weight = _data_weight((1, 9, 9, 3), (3, 3, 3, 5))
    return ComputeDAG([data, weight, topi.conv2d_nhwc(data, weight, 2, 1, name="conv")])


def _sum_all() -> ComputeDAG:
    x = te.placeholder((5, 33), name="x")
    return ComputeDAG([x, topi.sum(x, axis=None, keepdims=True, name="total")])


def _conv_nchw_grouped_dilated() -> ComputeDAG:
    data, weight = _data_weight((1, 8, 12, 12), (6, 4, 3, 3))
    return ComputeDAG([data, weight, topi.conv2d_nchw(data, weight, 1, 2, 2, groups=2, name="conv")])


def _batch_matmul_transposed_b() -> ComputeDAG:
    a = te.placeholder((4, 32, 64), name="a")
    b = te.placeholder((4, 48, 64), name="b")
    return ComputeDAG([a, b, topi.batch_matmul(a, b, name="bmm")])


ODD_CASES: dict[str, Callable[[], ComputeDAG]] = {
    "conv_nchw_grouped_dilated": _conv_nchw_grouped_dilated,
    "batch_matmul_transposed_b": _batch_matmul_transposed_b,
    "dense_odd": _dense_odd,
    "conv_odd_channels": _conv_odd_channels,
    "sum_all": _sum_all,
}


@pytest.mark.parametrize("name", list(ODD_CASES))
def test_default_schedule_handles_odd_shapes(name: str) -> None:
    dag = ODD_CASES[name]()
    _run(dag, default_schedule(dag, "llvm"))


# ---------------------------------------------------------------------------------------
# structure: tiled, parallel, vectorised, unrolled; deterministic; sized by the target


def _annotated(state: LoopState, annotation: IteratorAnnotation) -> list[tuple[str, str, int | None]]:
    return [
        (stage.name, it.name, it.extent)
        for stage in state.stages
        for it in stage.iters
        if it.annotation is annotation
    ]


def _unroll_pragmas(state: LoopState) -> list[str]:
    return [step.pragma_type for step in state.transform_steps if isinstance(step, PragmaStep)]


@pytest.mark.parametrize(
    "name", ["conv2d_bias_relu", "conv2d_1x1_stride2_residual", "conv3d", "batch_matmul"]
)
def test_compute_intensive_ops_are_tiled_parallel_and_vectorised(name: str) -> None:
    dag = CASES[name]()
    state = default_schedule(dag, "llvm -mcpu=skylake-avx512")
    tiled = [s for s in state.stages if any(it.name.endswith(".3") for it in s.iters)]
    assert len(tiled) == 1, str(state)
    tile = tiled[0]
    # the innermost tile: two AVX-512 vectors of output channels (all 16 of conv3d's),
    # vectorised, under a tile of rows
    assert tile.iters[-1].annotation is IteratorAnnotation.VECTORIZE, str(state)
    assert tile.iters[-1].extent == min(32, dag.outputs[0].shape[-1]), str(state)
    assert tile.iters[-2].extent is not None and tile.iters[-2].extent > 1, str(state)
    assert tile.attach is not None, "the tile is computed inside its consumer's parallel loop"
    parallel = _annotated(state, IteratorAnnotation.PARALLEL)
    assert any(stage == state.stages[tile.attach.stage_id].name for stage, _, _ in parallel), str(state)
    assert all(extent is not None and extent >= 4 for _, _, extent in parallel), parallel
    assert "auto_unroll_max_step$64" in _unroll_pragmas(state)


def test_dense_uses_the_dot_product_form() -> None:
    dag = CASES["dense_bias"]()
    state = default_schedule(dag, "llvm -mcpu=skylake-avx512")
    rf = next(s for s in state.stages if s.name == "fc.rf")
    # lanes along the reduction, one AVX-512 vector, under a tile of output columns
    assert rf.iters[-1].name.startswith("k") and rf.iters[-1].extent == 16, str(state)
    assert rf.iters[-1].annotation is IteratorAnnotation.VECTORIZE, str(state)
    assert rf.attach is not None and state.stages[rf.attach.stage_id].name == "fc", str(state)
    assert ("fc", "i.0@j.0@", 100) in _annotated(state, IteratorAnnotation.PARALLEL), str(state)


def test_the_vector_width_follows_the_target() -> None:
    dag = CASES["conv2d_bias_relu"]()
    for target, columns in (("llvm -mcpu=skylake-avx512", 32), ("llvm -mcpu=haswell", 16)):
        state = default_schedule(dag, target)
        conv = next(s for s in state.stages if s.name == "conv")
        assert conv.iters[-1].extent == columns, f"{target}\n{state}"


@pytest.mark.parametrize("name", ["conv2d_bias_relu", "dense_bias", "softmax", "max_pool"])
def test_default_schedule_is_deterministic(name: str) -> None:
    first = default_schedule(CASES[name](), "llvm")
    second = default_schedule(CASES[name](), "llvm")
    assert first.transform_steps == second.transform_steps
    assert str(first) == str(second)


def test_pooling_vectorises_channels_inside_the_window() -> None:
    state = default_schedule(CASES["max_pool"](), "llvm")
    pool = next(s for s in state.stages if s.name == "pool")
    assert [it.kind.value for it in pool.iters][-3:] == ["reduction", "reduction", "spatial"], str(state)
    assert pool.iters[-1].annotation is IteratorAnnotation.VECTORIZE, str(state)
    assert pool.iters[0].annotation is IteratorAnnotation.PARALLEL, str(state)


def test_padding_is_inlined_into_pooling_but_not_into_a_tiled_convolution() -> None:
    """A pooling window reads its input through the pad's branch (no padded copy); a
    convolution, tiled, keeps the padded copy at the root."""
    pooled = default_schedule(CASES["max_pool"](), "llvm")
    pads = [s for s in pooled.stages if s.op_type is StageKind.COMPUTE and s.name != "pool"]
    assert pads and all(s.compute_at is ComputeAtKind.INLINED for s in pads), str(pooled)
    convolved = default_schedule(CASES["conv2d_bias_relu"](), "llvm")
    pad = next(s for s in convolved.stages if "pad" in s.name)
    assert pad.compute_at is ComputeAtKind.ROOT, str(convolved)


def test_a_transposed_convolution_with_its_epilogue_keeps_its_tiles() -> None:
    """DCGAN's stride-2 transposed convolutions, bias and relu fused: the phase interleave
    the tile is computed in is not inlined (that would fail to lower and drop the tiling)."""
    tasks, _ = extract_tasks(NETWORKS["dcgan"](), "llvm")
    strided = [
        t
        for t in tasks
        if t.desc.startswith("conv2d_transpose") and "relu, " in t.desc and "stride 2" in t.desc
    ]
    assert len(strided) == 3, [t.desc for t in tasks]
    for task in strided:
        state = default_schedule(task.compute_dag, "llvm")
        tiles = [s for s in state.stages if s.name.endswith(".local")]
        assert len(tiles) == 1 and tiles[0].attach is not None, (task.desc, str(state))


def test_no_split_length_is_left_unknown() -> None:
    for make in CASES.values():
        state = default_schedule(make(), "llvm")
        assert state.concrete
        assert all(None not in step.lengths for step in state.transform_steps if isinstance(step, SplitStep))


def test_large_weights_are_blocked_for_reuse() -> None:
    """2304 x 32 weights per column tile (288 KiB) outgrow L1: the output rows are blocked
    around an inner reduction level of 64 input channels, so each 8 KiB slice of weights
    serves all 7 rows (8 column tiles still make 4 parallel chunks per core); a conv whose
    weights fit is not blocked."""
    target = "llvm -mcpu=skylake-avx512 -num-cores=2"
    state = default_schedule(CASES["conv2d_large_weights"](), target)
    conv = next(s for s in state.stages if s.name == "conv")
    names = [it.name for it in conv.iters]
    extents = {it.name: it.extent for it in conv.iters}
    assert extents["yy.2"] == 7 and extents["rc.1"] == 64 and extents["xx.3"] == 7, str(state)
    assert names.index("rc.0") < names.index("yy.2") < names.index("rc.1") < names.index("xx.3"), str(state)
    small = default_schedule(CASES["conv2d_1x1_stride2_residual"](), target)
    conv = next(s for s in small.stages if s.name == "conv")
    assert all(it.extent == 1 for it in conv.iters if it.name.endswith(".2")), str(small)


@pytest.mark.parametrize(("name", "stage"), [("softmax", "sm_maxelem"), ("layer_norm", "ln_mean")])
def test_reductions_along_the_contiguous_axis_are_vectorised(name: str, stage: str) -> None:
    """A serial max or sum along the last axis is one long dependency chain: the default
    schedule factors it into a vector of 16 partial results (rfactor) reduced at the end."""
    state = default_schedule(CASES[name](), "llvm -mcpu=skylake-avx512")
    rf = next(s for s in state.stages if s.name == f"{stage}.rf")
    assert rf.iters[-1].annotation is IteratorAnnotation.VECTORIZE and rf.iters[-1].extent == 16, str(state)
    assert rf.attach is not None and state.stages[rf.attach.stage_id].name == stage, str(state)
