"""The phase form of ``conv_transpose`` (``conv2d_transpose_nhwc_phases``) against the op's
numpy reference: evaluated by ``ir.reference.evaluate``, compiled with the naive schedule and
with ``default_schedule``, over strides 1-3, kernels 3-5, pads 0-2, output padding, odd and
1x1 inputs, groups and both window-first kernel layouts; plus the structure that makes it
fast (no multiply-adds by inserted zeros, a multi-level tiled phase op)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import ir.topi as topi
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.ops import get_op
from ansor_py.network.types import TensorType
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.enums import IteratorAnnotation
from ir.loop_state.state import LoopState
from ir.reference import evaluate
from ir.te import ComputeOp, Tensor
from ir.topi.nn_conv_transpose import conv2d_transpose_nhwc_phases
from ir.topi.utils import TopiError

RNG = np.random.default_rng(12)

# (input H, W, C_in, C_out per group, kernel (kh, kw), strides, pads (t, l, b, r),
#  output_padding, groups, kernel_layout)
CASES: list[tuple[Any, ...]] = [
    (4, 4, 8, 6, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), 1, "HWOI"),  # a DCGAN layer
    (4, 4, 8, 6, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), 1, "HWIO"),
    (1, 1, 10, 8, (4, 4), (1, 1), (0, 0, 0, 0), (0, 0), 1, "HWOI"),  # the latent layer
    (5, 3, 3, 4, (3, 3), (1, 1), (1, 1, 1, 1), (0, 0), 1, "HWIO"),
    (5, 7, 3, 4, (3, 3), (2, 2), (1, 0, 2, 1), (1, 0), 1, "HWOI"),
    (3, 4, 2, 5, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 1, "HWIO"),
    (4, 3, 3, 2, (3, 5), (3, 3), (0, 2, 1, 0), (2, 1), 1, "HWOI"),
    (3, 5, 4, 3, (4, 3), (3, 2), (2, 1, 0, 2), (0, 1), 1, "HWIO"),
    (2, 2, 3, 3, (5, 4), (3, 1), (2, 1, 1, 3), (2, 0), 1, "HWOI"),
    (1, 2, 4, 2, (5, 5), (2, 3), (1, 0, 0, 2), (1, 2), 1, "HWIO"),  # input shorter than the taps
    (4, 5, 4, 3, (3, 2), (2, 3), (1, 0, 2, 1), (1, 2), 2, "HWOI"),  # groups
    (6, 5, 4, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4, "HWIO"),  # depthwise
]


def _attrs(case: tuple[Any, ...], dilations: tuple[int, int] = (1, 1)) -> dict[str, Any]:
    _, _, _, _, _, strides, pads, output_padding, groups, kernel_layout = case
    return dict(
        layout="NHWC",
        kernel_layout=kernel_layout,
        strides=strides,
        pads=pads,
        dilations=dilations,
        output_padding=output_padding,
        groups=groups,
    )


def _arrays(case: tuple[Any, ...]) -> list[np.ndarray]:
    h, w, in_c, out_per_group, (kh, kw), *_, kernel_layout = case
    x = RNG.standard_normal((1, h, w, in_c)).astype(np.float32)
    shape = (kh, kw, in_c, out_per_group) if kernel_layout == "HWIO" else (kh, kw, out_per_group, in_c)
    return [x, RNG.standard_normal(shape).astype(np.float32)]


def _declared(attrs: dict[str, Any], arrays: list[np.ndarray]) -> ComputeDAG:
    placeholders = [te.placeholder(a.shape, "float32", name=f"in{i}") for i, a in enumerate(arrays)]
    return ComputeDAG([*placeholders, *get_op("conv_transpose").declare(attrs, placeholders, "node")])


def _close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))


def _run(
    dag: ComputeDAG, state: LoopState | None, arrays: list[np.ndarray], shape: tuple[int, ...]
) -> np.ndarray:
    result = np.full(shape, np.nan, np.float32)
    build(dag, state, "llvm")(*arrays, result)
    return result


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_declare_matches_reference(case: tuple[Any, ...]) -> None:
    attrs, arrays = _attrs(case), _arrays(case)
    opdef = get_op("conv_transpose")
    (out_type,) = opdef.infer(attrs, [TensorType.of(a) for a in arrays])
    (want,) = opdef.reference(attrs, arrays)
    dag = _declared(attrs, arrays)
    (got,) = evaluate(dag, arrays)
    assert TensorType.of(got) == out_type
    _close(got, want)


@pytest.mark.parametrize("case", CASES[:10:3] + CASES[-2:], ids=lambda c: f"{c[5]}-{c[4]}-{c[6]}")
def test_compiled_naive_and_default_schedules_match_reference(case: tuple[Any, ...]) -> None:
    attrs, arrays = _attrs(case), _arrays(case)
    (want,) = get_op("conv_transpose").reference(attrs, arrays)
    dag = _declared(attrs, arrays)
    _close(_run(dag, None, arrays, want.shape), want)
    _close(_run(dag, default_schedule(dag, "llvm"), arrays, want.shape), want)


def test_dilated_kernels_fall_back_to_the_zero_inserting_form() -> None:
    case = CASES[4]
    attrs, arrays = _attrs(case, dilations=(2, 1)), _arrays(case)
    (want,) = get_op("conv_transpose").reference(attrs, arrays)
    dag = _declared(attrs, arrays)
    assert not any(op.name.endswith("_phases") for op in dag.ops)
    (got,) = evaluate(dag, arrays)
    _close(got, want)


def _phase_op(out: Tensor) -> ComputeOp:
    op = out.op
    assert isinstance(op, ComputeOp)
    producers = [t.op for t in op.input_tensors if isinstance(t.op, ComputeOp) and t.op.reduce_axis]
    if op.reduce_axis:
        return op
    (phases,) = producers
    assert isinstance(phases, ComputeOp)
    return phases


def _multiply_adds(op: ComputeOp) -> int:
    spatial = math.prod(int(ax.extent) for ax in op.axis)
    return spatial * math.prod(int(ax.extent) for ax in op.reduce_axis)


@pytest.mark.parametrize(("stride", "kernel", "pad"), [(2, 4, 1), (3, 3, 0), (3, 6, 0)])
def test_no_multiply_adds_by_inserted_zeros(stride: int, kernel: int, pad: int) -> None:
    """With k % s == 0 every multiply-add of the phase op is useful: each output sums
    C_in x (k / s)^2 products, where the zero-inserting form sums C_in x k^2 (the output
    extents here are multiples of s: no phase row falls past the end)."""
    data = te.placeholder((1, 6, 6, 16), name="data")
    weight = te.placeholder((kernel, kernel, 16, 8), name="weight")
    out = conv2d_transpose_nhwc_phases(data, weight, stride, pad, name="t2d")
    phases = _phase_op(out)
    assert phases.name == "t2d_phases" and out.op.name == "t2d"
    n, out_h, out_w, out_c = out.shape
    useful = n * out_h * out_w * out_c * 16 * (kernel // stride) ** 2
    assert _multiply_adds(phases) == useful
    assert [int(ax.extent) for ax in phases.axis[:3]] == [1, stride, stride]


def test_inputs_shorter_than_the_taps_reduce_over_the_pixels() -> None:
    """A 1x1 latent (DCGAN's first layer): the reduction runs over its one pixel, not over
    the k^2 taps of which k^2 - 1 would read padding; stride 1 needs no interleaving op."""
    data = te.placeholder((1, 1, 1, 20), name="z")
    weight = te.placeholder((4, 4, 20, 12), name="weight")
    out = conv2d_transpose_nhwc_phases(data, weight, 1, 0, name="t2d")
    op = out.op
    assert isinstance(op, ComputeOp) and op.name == "t2d"
    assert [int(ax.extent) for ax in op.reduce_axis] == [1, 1, 20]
    assert list(out.shape) == [1, 4, 4, 12]


def test_default_schedule_tiles_the_phase_op() -> None:
    """A DCGAN layer with its epilogue: the phase op gets the multi-level tiling (a register
    tile of vectorised output channels under a parallel loop), and so do none of the
    cheap stages after it."""
    data = te.placeholder((1, 8, 8, 64), name="data")
    weight = te.placeholder((4, 4, 64, 32), name="weight")
    bias = te.placeholder((32,), name="bias")
    out = conv2d_transpose_nhwc_phases(data, weight, 2, 1, name="t2d")
    relu = topi.relu(topi.add(out, bias, name="t2d_bias"), name="relu")
    dag = ComputeDAG([data, weight, bias, relu])
    state = default_schedule(dag, "llvm -mcpu=skylake-avx512")
    tiled = [stage for stage in state.stages if any(it.name.endswith(".3") for it in stage.iters)]
    assert [stage.name for stage in tiled] == ["t2d_phases.local"], str(state)
    tile = tiled[0]
    assert tile.iters[-1].annotation is IteratorAnnotation.VECTORIZE and tile.iters[-1].extent == 32
    parallel = {
        stage.name
        for stage in state.stages
        for it in stage.iters
        if it.annotation is IteratorAnnotation.PARALLEL
    }
    assert {"t2d_phases", "relu"} <= parallel, str(state)
    arrays = [RNG.standard_normal(tuple(t.shape)).astype(np.float32) for t in (data, weight, bias)]
    (want,) = evaluate(dag, arrays)
    _close(_run(dag, state, arrays, tuple(relu.shape)), want)


def test_an_empty_output_is_rejected() -> None:
    data = te.placeholder((1, 1, 3, 4), name="data")
    weight = te.placeholder((3, 3, 4, 2), name="weight")
    with pytest.raises(TopiError, match=r"output height -1 must be at least 1 \(input 1\)"):
        conv2d_transpose_nhwc_phases(data, weight, 1, 2, name="t2d")
