"""The NN ops' numpy references against onnxruntime on one-node ONNX models (opset 17).

Channels-last layouts have no ONNX form: their reference is checked against the ONNX
result of the channels-first model with the data and weight transposed, which also checks
that every layout pairing computes the same convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pytest
from op_checks import (
    MATMUL_SHAPES,
    RandomArrays,
    assert_scaled_close,
    checked_reference,
    conv_attrs,
    pool_attrs,
    run_onnxruntime,
)

RTOL = 1e-4
ARRAYS = RandomArrays(12)
rand = ARRAYS.floats
#: the op's reference, checked against its own ``infer``
run_op = checked_reference
check = partial(assert_scaled_close, rtol=RTOL)


def onnx_run(op_type: str, arrays: Sequence[np.ndarray], opset: int = 17, **attrs: Any) -> np.ndarray:
    """Run one ONNX node on ``arrays`` with onnxruntime (CPU)."""
    return run_onnxruntime(op_type, arrays, attrs=attrs, opset=opset)


def to_last(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1)


def to_first(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 1)


# ------------------------------------------------------------------------------------------
# conv

CONV_CASES = [
    # (data shape NC..., out channels, kernel, strides, pads, dilations, groups)
    ((1, 3, 7, 9), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 3, 7, 9), 5, (3, 2), (2, 2), (1, 0, 2, 1), (1, 1), 1),
    ((1, 4, 9, 7), 6, (3, 3), (1, 2), (2, 1, 0, 2), (2, 2), 2),
    ((1, 6, 7, 9), 6, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 6),
    ((1, 4, 8, 8), 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 4),
    ((1, 8, 5, 5), 16, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((2, 3, 11), 4, (3,), (2,), (1, 2), (1,), 1),
    ((1, 4, 10), 6, (3,), (1,), (2, 0), (2,), 2),
    ((1, 3, 5, 7, 6), 4, (3, 3, 3), (1, 2, 2), (1, 1, 1, 0, 1, 2), (1, 1, 1), 1),
    ((1, 4, 6, 5, 5), 4, (2, 3, 3), (2, 1, 1), (0, 1, 1, 1, 1, 1), (1, 2, 1), 4),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_reference_matches_onnxruntime(case):
    shape, out_c, kernel, strides, pads, dilations, groups = case
    nsp = len(kernel)
    x, w = rand(*shape), rand(out_c, shape[1] // groups, *kernel)
    want = onnx_run("Conv", [x, w], strides=strides, pads=pads, dilations=dilations, group=groups)
    sp = "WHD"[:nsp][::-1]
    first = conv_attrs(f"NC{sp}", f"OI{sp}", strides, pads, dilations, groups)
    check(run_op("conv", first, [x, w]), want)
    last = conv_attrs(f"N{sp}C", f"{sp}IO", strides, pads, dilations, groups)
    w_last = np.moveaxis(np.moveaxis(w, 0, -1), 0, -2)  # O I k.. -> k.. I O
    check(to_first(run_op("conv", last, [to_last(x), w_last])), want)
    mixed = conv_attrs(f"N{sp}C", f"OI{sp}", strides, pads, dilations, groups)
    check(to_first(run_op("conv", mixed, [to_last(x), w])), want)


# ------------------------------------------------------------------------------------------
# conv_transpose

CONV_T_CASES = [
    # (data shape NCHW, out channels per group, kernel, strides, pads, dilations, output_padding, groups)
    ((1, 3, 4, 4), 2, (4, 4), (2, 2), (1, 1, 1, 1), (1, 1), (0, 0), 1),
    ((2, 3, 5, 7), 4, (3, 3), (2, 2), (1, 0, 2, 1), (1, 1), (1, 0), 1),
    ((1, 4, 3, 5), 3, (3, 2), (1, 2), (2, 1, 0, 1), (2, 1), (0, 1), 2),
    ((1, 4, 6, 5), 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 4),
    ((1, 2, 3, 3), 2, (5, 5), (3, 3), (1, 2, 3, 0), (1, 1), (2, 2), 1),
]


@pytest.mark.parametrize("case", CONV_T_CASES)
def test_conv_transpose_reference_matches_onnxruntime(case):
    shape, out_per_group, kernel, strides, pads, dilations, output_padding, groups = case
    x, w = rand(*shape), rand(shape[1], out_per_group, *kernel)
    want = onnx_run(
        "ConvTranspose",
        [x, w],
        strides=strides,
        pads=pads,
        dilations=dilations,
        output_padding=output_padding,
        group=groups,
    )
    attrs = conv_attrs("NCHW", "IOHW", strides, pads, dilations, groups, output_padding=output_padding)
    check(run_op("conv_transpose", attrs, [x, w]), want)
    w_hwoi = w.transpose(2, 3, 1, 0)
    last = dict(attrs, layout="NHWC", kernel_layout="HWOI")
    check(to_first(run_op("conv_transpose", last, [to_last(x), w_hwoi])), want)


# ------------------------------------------------------------------------------------------
# dense, matmul


def test_dense_reference_matches_onnxruntime():
    x, w = rand(3, 17), rand(5, 17)
    check(run_op("dense", {}, [x, w]), onnx_run("Gemm", [x, w], transB=1))


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_SHAPES)
def test_matmul_reference_matches_onnxruntime(a_shape, b_shape):
    a, b = rand(*a_shape), rand(*b_shape)
    check(run_op("matmul", {}, [a, b]), onnx_run("MatMul", [a, b]))


# ------------------------------------------------------------------------------------------
# normalisations


@pytest.mark.parametrize(("shape", "axis"), [((2, 3, 5, 4), 1), ((2, 5, 4, 3), 3), ((4, 3), 1)])
def test_batch_norm_reference_matches_onnxruntime(shape, axis):
    x = rand(*shape)
    c = shape[axis]
    gamma, beta, mean = rand(c), rand(c), rand(c)
    var = ARRAYS.uniform(0.5, 2.0, c)
    got = run_op("batch_norm", {"epsilon": 1e-3, "axis": axis}, [x, gamma, beta, mean, var])
    moved = [np.moveaxis(x, axis, 1), gamma, beta, mean, var]
    want = onnx_run("BatchNormalization", moved, epsilon=1e-3)
    check(got, np.moveaxis(want, 1, axis))


@pytest.mark.parametrize(("shape", "axis"), [((2, 7, 16), 2), ((2, 3, 4, 5), 2), ((3, 8), 0)])
def test_layer_norm_reference_matches_onnxruntime(shape, axis):
    x, gamma, beta = rand(*shape), rand(*shape[axis:]), rand(*shape[axis:])
    got = run_op("layer_norm", {"axis": axis, "epsilon": 1e-5}, [x, gamma, beta])
    check(got, onnx_run("LayerNormalization", [x, gamma, beta], axis=axis, epsilon=1e-5))


@pytest.mark.parametrize(("shape", "axis"), [((2, 3, 7), 2), ((2, 3, 7), 1), ((4, 9), 0)])
def test_softmax_reference_matches_onnxruntime(shape, axis):
    x = rand(*shape) * 4
    check(run_op("softmax", {"axis": axis}, [x]), onnx_run("Softmax", [x], axis=axis))


@pytest.mark.parametrize("op", ["reduce_mean", "reduce_sum", "reduce_max"])
@pytest.mark.parametrize(("axes", "keepdims"), [((1,), True), ((0, 2), False), ((2, 3), True), ((3,), False)])
def test_reduce_reference_matches_onnxruntime(op, axes, keepdims):
    x = rand(2, 3, 5, 4)
    onnx_op = {"reduce_mean": "ReduceMean", "reduce_sum": "ReduceSum", "reduce_max": "ReduceMax"}[op]
    if op == "reduce_sum":  # axes became an input in opset 13
        want = run_onnxruntime(
            onnx_op, [x], attrs={"keepdims": int(keepdims)}, constants=[np.array(axes, np.int64)]
        )
    else:
        want = onnx_run(onnx_op, [x], axes=axes, keepdims=int(keepdims))
    check(run_op(op, {"axes": axes, "keepdims": keepdims}, [x]), want)


# ------------------------------------------------------------------------------------------
# pooling

POOL_CASES = [
    # (data shape NC..., kernel, strides, pads, dilations, ceil_mode)
    ((1, 3, 7, 9), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    ((2, 3, 7, 9), (3, 2), (2, 2), (1, 0, 2, 1), (1, 1), False),
    ((1, 2, 8, 7), (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), True),
    ((1, 2, 9, 8), (3, 2), (2, 3), (1, 0, 1, 1), (1, 1), True),
    ((1, 2, 9, 9), (2, 2), (1, 2), (1, 1, 0, 1), (2, 2), False),
    ((1, 2, 10, 9), (2, 3), (3, 2), (1, 0, 0, 1), (2, 2), True),
    ((2, 3, 11), (3,), (2,), (1, 2), (1,), True),
    ((1, 2, 5, 7, 6), (3, 3, 2), (2, 2, 1), (1, 1, 0, 1, 0, 1), (1, 1, 1), False),
    ((1, 2, 5, 7, 6), (2, 3, 2), (2, 2, 2), (0, 1, 1, 0, 1, 0), (1, 1, 1), True),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_reference_matches_onnxruntime(case):
    shape, kernel, strides, pads, dilations, ceil_mode = case
    x = rand(*shape)
    want = onnx_run(
        "MaxPool",
        [x],
        kernel_shape=kernel,
        strides=strides,
        pads=pads,
        dilations=dilations,
        ceil_mode=int(ceil_mode),
    )
    sp = "WHD"[: len(kernel)][::-1]
    attrs = pool_attrs(f"NC{sp}", kernel, strides, pads, dilations, ceil_mode)
    check(run_op("max_pool", attrs, [x]), want)
    last = dict(attrs, layout=f"N{sp}C")
    check(to_first(run_op("max_pool", last, [to_last(x)])), want)


@pytest.mark.parametrize("include", [False, True])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool_reference_matches_onnxruntime(case, include):
    shape, kernel, strides, pads, dilations, ceil_mode = case
    x = rand(*shape)
    extra = {"dilations": dilations} if dilations != (1,) * len(kernel) else {}
    want = onnx_run(
        "AveragePool",
        [x],
        opset=19 if extra else 17,  # AveragePool takes dilations from opset 19
        kernel_shape=kernel,
        strides=strides,
        pads=pads,
        ceil_mode=int(ceil_mode),
        count_include_pad=int(include),
        **extra,
    )
    sp = "WHD"[: len(kernel)][::-1]
    attrs = pool_attrs(f"NC{sp}", kernel, strides, pads, dilations, ceil_mode, count_include_pad=include)
    check(run_op("avg_pool", attrs, [x]), want)
    last = dict(attrs, layout=f"N{sp}C")
    check(to_first(run_op("avg_pool", last, [to_last(x)])), want)


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 4, 3, 5, 6), (2, 3, 11)])
def test_global_avg_pool_reference_matches_onnxruntime(shape):
    x = rand(*shape)
    want = onnx_run("GlobalAveragePool", [x])
    sp = "WHD"[: len(shape) - 2][::-1]
    check(run_op("global_avg_pool", {"layout": f"NC{sp}"}, [x]), want)
    check(to_first(run_op("global_avg_pool", {"layout": f"N{sp}C"}, [to_last(x)])), want)


# ------------------------------------------------------------------------------------------
# network-sized layers: the references stay accurate and fast where whole networks need them


@pytest.mark.parametrize(
    ("shape", "out_c", "kernel", "strides", "pads"),
    [
        ((1, 3, 224, 224), 64, (7, 7), (2, 2), (3, 3, 3, 3)),  # ResNet-50's stem
        ((1, 64, 28, 28), 128, (3, 3), (1, 1), (1, 1, 1, 1)),
        pytest.param(
            (1, 3, 16, 112, 112), 64, (3, 7, 7), (1, 2, 2), (1, 3, 3, 1, 3, 3), marks=pytest.mark.slow
        ),  # 3D-ResNet-18's stem
    ],
)
def test_conv_reference_at_network_scale(shape, out_c, kernel, strides, pads):
    x, w = rand(*shape), rand(out_c, shape[1], *kernel) * 0.1
    nsp = len(kernel)
    want = onnx_run("Conv", [x, w], strides=strides, pads=pads)
    sp = "WHD"[:nsp][::-1]
    attrs = conv_attrs(f"NC{sp}", f"OI{sp}", strides, pads, (1,) * nsp, 1)
    check(run_op("conv", attrs, [x, w]), want)
