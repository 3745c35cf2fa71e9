"""The NN ops' ``declare`` against their ``reference``, and ``infer``'s error messages.

Each declaration is evaluated by ``ir.reference.evaluate`` on the ComputeDAG of its
placeholders and outputs; a representative subset is also compiled with the naive schedule
(``codegen.build.build(dag, None, "llvm")``) and run. The references themselves are checked
against onnxruntime in ``test_ops_nn_reference.py``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest
from op_checks import MATMUL_SHAPES, RandomArrays, assert_scaled_close, conv_attrs, pool_attrs
from op_checks import check_declare as check_declare_close

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops import get_op
from ansor_py.network.reference import run_reference
from ansor_py.network.types import GraphError, TensorType
from ir.compute_dag import ComputeDAG
from ir.te import ComputeOp

ARRAYS = RandomArrays(7)
rand = ARRAYS.floats

#: float results to 1e-5 of each element plus 1e-5 of the largest magnitude
check_declare = partial(check_declare_close, close=assert_scaled_close)


def op_names(dag: ComputeDAG) -> list[str]:
    return [op.name for op in dag.ops]


# ------------------------------------------------------------------------------------------
# conv

CONV_CASES = [
    # (layout, kernel_layout, data shape in layout, out channels, kernel, strides, pads, dilations, groups)
    ("NCHW", "OIHW", (1, 3, 7, 9), 4, (3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1),
    ("NHWC", "HWIO", (1, 7, 9, 3), 4, (3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1),
    ("NCHW", "OIHW", (1, 4, 9, 7), 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 2),
    ("NHWC", "OIHW", (1, 9, 7, 4), 6, (3, 2), (1, 2), (2, 1, 0, 2), (2, 1), 2),
    ("NCHW", "HWIO", (1, 3, 6, 5), 2, (2, 3), (1, 1), (0, 1, 1, 0), (1, 1), 1),
    ("NCW", "OIW", (2, 3, 11), 4, (3,), (2,), (1, 2), (1,), 1),
    ("NWC", "WIO", (1, 10, 4), 6, (3,), (1,), (2, 0), (2,), 2),
    ("NCDHW", "OIDHW", (1, 3, 4, 5, 6), 2, (3, 2, 3), (1, 2, 2), (1, 1, 1, 0, 1, 2), (1, 1, 1), 1),
    ("NDHWC", "DHWIO", (1, 4, 5, 6, 3), 2, (2, 3, 3), (2, 1, 1), (0, 1, 1, 1, 1, 1), (1, 2, 1), 1),
]


def _weight_shape(
    kernel_layout: str, out_c: int, in_per_group: int, kernel: tuple[int, ...]
) -> tuple[int, ...]:
    sizes = dict(zip([c for c in kernel_layout if c in "DHW"], kernel, strict=True), O=out_c, I=in_per_group)
    return tuple(sizes[c] for c in kernel_layout)


def conv_case(case: tuple) -> tuple[dict[str, Any], list[np.ndarray]]:
    layout, kernel_layout, shape, out_c, kernel, strides, pads, dilations, groups = case
    in_c = shape[layout.index("C")]
    attrs = conv_attrs(layout, kernel_layout, strides, pads, dilations, groups)
    return attrs, [rand(*shape), rand(*_weight_shape(kernel_layout, out_c, in_c // groups, kernel))]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_declare_matches_reference(case):
    attrs, arrays = conv_case(case)
    check_declare("conv", attrs, arrays, compile_=case[0] in ("NCHW", "NDHWC"))


@pytest.mark.parametrize(
    ("layout", "kernel_layout", "weight_op"),
    [("NCHW", "OIHW", False), ("NHWC", "HWIO", True), ("NHWC", "OIHW", True), ("NCHW", "HWIO", True)],
)
def test_depthwise_conv_declares_topi_depthwise(layout, kernel_layout, weight_op):
    shape = (1, 6, 7, 9) if layout == "NCHW" else (1, 7, 9, 6)
    case = (layout, kernel_layout, shape, 6, (3, 3), (2, 2), (1, 0, 2, 1), (2, 1), 6)
    attrs, arrays = conv_case(case)
    dag = check_declare("conv", attrs, arrays, compile_=kernel_layout == "HWIO")
    assert isinstance(dag.ops[-1], ComputeOp)
    assert dag.ops[-1].tag == f"depthwise_conv2d_{layout.lower()}"
    assert ("conv_node_weight" in op_names(dag)) == weight_op


def test_conv_infer_rejects_bad_attributes():
    infer = get_op("conv").infer
    data, weight = TensorType((1, 4, 7, 9)), TensorType((6, 2, 3, 3))
    good: dict[str, Any] = dict(
        layout="NCHW", kernel_layout="OIHW", strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups=2
    )
    assert infer(good, [data, weight]) == [TensorType((1, 6, 5, 7))]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"strides": (0, 1)}, r"conv: attribute 'strides' = \(0, 1\) must hold ints >= 1"),
        ({"pads": (1, 1)}, r"conv: attribute 'pads' = \(1, 1\) must be a tuple of 4 ints"),
        ({"dilations": (1, -2)}, r"conv: attribute 'dilations' = \(1, -2\) must hold ints >= 1"),
        ({"groups": 3}, r"conv: attribute 'groups' = 3 must divide the input channels 4"),
        ({"groups": 1}, r"conv: weight \[6, 2, 3, 3\] \(OIHW\) has 2 input channels, expected 4"),
        ({"layout": "NCHWX"}, r"conv: attribute 'layout' = 'NCHWX' must be one of"),
        ({"kernel_layout": "OIW"}, r"conv: attribute 'kernel_layout' = 'OIW' does not match layout 'NCHW'"),
        ({"dilations": (4, 4)}, r"conv: the window does not fit input \[1, 4, 7, 9\]"),
    ]
    for change, message in bad:
        with pytest.raises(GraphError, match=message):
            infer({**good, **change}, [data, weight])
    with pytest.raises(GraphError, match=r"conv: input 'weight' must have rank 4 \(OIHW\)"):
        infer(good, [data, TensorType((6, 2, 3))])
    with pytest.raises(GraphError, match=r"conv: input 'data' has dtype int32, a float dtype is needed"):
        infer(good, [TensorType((1, 4, 7, 9), "int32"), TensorType((6, 2, 3, 3), "int32")])


# ------------------------------------------------------------------------------------------
# conv_transpose

CONV_T_CASES = [
    # (layout, kernel_layout, data shape NCHW, out channels per group, kernel, strides, pads,
    #  dilations, output_padding, groups)
    ("NCHW", "IOHW", (1, 3, 4, 4), 2, (4, 4), (2, 2), (1, 1, 1, 1), (1, 1), (0, 0), 1),
    ("NHWC", "HWOI", (1, 3, 4, 4), 2, (4, 4), (2, 2), (1, 1, 1, 1), (1, 1), (0, 0), 1),
    ("NCHW", "IOHW", (2, 3, 5, 7), 4, (3, 3), (2, 2), (1, 0, 2, 1), (1, 1), (1, 0), 1),
    ("NHWC", "HWOI", (1, 4, 3, 5), 3, (3, 2), (1, 2), (2, 1, 0, 1), (2, 1), (0, 1), 2),
    ("NCHW", "HWOI", (1, 4, 3, 5), 3, (3, 2), (3, 2), (2, 1, 0, 1), (2, 1), (2, 1), 2),
    ("NHWC", "IOHW", (1, 4, 6, 5), 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 4),
]


@pytest.mark.parametrize("case", CONV_T_CASES)
def test_conv_transpose_declare_matches_reference(case):
    layout, kernel_layout, shape, out_per_group, kernel, strides, pads, dilations, output_padding, groups = (
        case
    )
    x = rand(*shape)
    w = rand(shape[1], out_per_group, *kernel)  # IOHW
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if kernel_layout == "HWOI":
        w = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    attrs = conv_attrs(layout, kernel_layout, strides, pads, dilations, groups, output_padding=output_padding)
    check_declare("conv_transpose", attrs, [x, w], compile_=case in CONV_T_CASES[:2])


def test_conv_transpose_infer_rejects_bad_attributes():
    infer = get_op("conv_transpose").infer
    data, weight = TensorType((1, 4, 5, 5)), TensorType((4, 3, 3, 3))
    good: dict[str, Any] = dict(
        layout="NCHW", kernel_layout="IOHW", strides=(2, 2), pads=(1, 1, 1, 1), output_padding=(1, 0)
    )
    assert infer(good, [data, weight]) == [TensorType((1, 3, 10, 9))]
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {"pads": (3, 0, 0, 0)},
            r"conv_transpose: attribute 'pads' = \(3, 0, 0, 0\): pad 3 along H is larger",
        ),
        ({"output_padding": (2, 0)}, r"conv_transpose: attribute 'output_padding' = \(2, 0\) must be below"),
        ({"groups": 3}, r"conv_transpose: attribute 'groups' = 3 must divide the input channels 4"),
        ({"layout": "NCW"}, r"conv_transpose: attribute 'layout' = 'NCW' must be one of NCHW, NHWC"),
        ({"strides": (1,)}, r"conv_transpose: attribute 'strides' = \(1,\) must be a tuple of 2 ints"),
    ]
    for change, message in bad:
        with pytest.raises(GraphError, match=message):
            infer({**good, **change}, [data, weight])
    with pytest.raises(GraphError, match=r"weight \[5, 3, 3, 3\] \(IOHW\) has 5 input channels, data has 4"):
        infer(good, [data, TensorType((5, 3, 3, 3))])


# ------------------------------------------------------------------------------------------
# dense, matmul


def test_dense_declare_matches_reference():
    check_declare("dense", {}, [rand(3, 17), rand(5, 17)], compile_=True)


@pytest.mark.parametrize(("a_shape", "b_shape"), MATMUL_SHAPES)
def test_matmul_declare_matches_reference(a_shape, b_shape):
    check_declare("matmul", {}, [rand(*a_shape), rand(*b_shape)], compile_=a_shape == (2, 3, 4))


def test_dense_and_matmul_infer_reject_bad_inputs():
    with pytest.raises(GraphError, match=r"dense: weight \[5, 16\] has 16 input features, data has 17"):
        get_op("dense").infer({}, [TensorType((3, 17)), TensorType((5, 16))])
    with pytest.raises(GraphError, match=r"matmul: reduction extents differ: a \[2, 3, 4\] has K=4"):
        get_op("matmul").infer({}, [TensorType((2, 3, 4)), TensorType((5, 6))])
    with pytest.raises(GraphError, match=r"matmul: shapes \[2\] and \[3\] do not broadcast"):
        get_op("matmul").infer({}, [TensorType((2, 3, 4)), TensorType((3, 4, 6))])
    with pytest.raises(GraphError, match=r"matmul: input 'b' must have rank >= 2, got shape \[4\]"):
        get_op("matmul").infer({}, [TensorType((3, 4)), TensorType((4,))])


# ------------------------------------------------------------------------------------------
# normalisations and reductions


@pytest.mark.parametrize(("shape", "axis"), [((2, 3, 5, 4), 1), ((2, 5, 4, 3), 3)])
def test_batch_norm_declare_matches_reference(shape, axis):
    c = shape[axis]
    var = ARRAYS.uniform(0.5, 2.0, c)
    arrays = [rand(*shape), rand(c), rand(c), rand(c), var]
    check_declare("batch_norm", {"epsilon": 1e-3, "axis": axis}, arrays, compile_=axis == 1)


@pytest.mark.parametrize(("shape", "axis"), [((2, 7, 16), 2), ((2, 3, 4, 5), 2)])
def test_layer_norm_declare_matches_reference(shape, axis):
    arrays = [rand(*shape), rand(*shape[axis:]), rand(*shape[axis:])]
    check_declare(
        "layer_norm", {"axis": axis, "epsilon": 1e-5}, arrays, compile_=axis == 2 and len(shape) == 3
    )


@pytest.mark.parametrize("axis", [0, 2])
def test_softmax_declare_matches_reference(axis):
    check_declare("softmax", {"axis": axis}, [rand(2, 3, 7) * 4], compile_=axis == 2)


@pytest.mark.parametrize("op", ["reduce_mean", "reduce_sum", "reduce_max"])
@pytest.mark.parametrize(("axes", "keepdims"), [((1,), True), ((0, 2), False), ((2, 3), True)])
def test_reduce_declare_matches_reference(op, axes, keepdims):
    check_declare(op, {"axes": axes, "keepdims": keepdims}, [rand(2, 3, 5, 4)], compile_=axes == (2, 3))


def test_norm_and_reduce_infer_reject_bad_attributes():
    x = TensorType((2, 3, 4))
    with pytest.raises(GraphError, match=r"layer_norm: input 'gamma' has shape \[3\], expected \[4\]"):
        get_op("layer_norm").infer({"axis": 2}, [x, TensorType((3,)), TensorType((4,))])
    with pytest.raises(GraphError, match=r"softmax: attribute 'axis' = 3 out of range for input of rank 3"):
        get_op("softmax").infer({"axis": 3}, [x])
    with pytest.raises(GraphError, match=r"batch_norm: input 'var' has shape \[4\], expected \[3\]"):
        get_op("batch_norm").infer({"axis": 1}, [x, *[TensorType((3,))] * 3, TensorType((4,))])
    with pytest.raises(GraphError, match=r"reduce_sum: attribute 'axes' = \(0, 0\) must hold distinct axes"):
        get_op("reduce_sum").infer({"axes": (0, 0)}, [x])
    with pytest.raises(
        GraphError, match=r"reduce_max: attribute 'axes' = \(3,\) must hold distinct axes in \[0, 3\)"
    ):
        get_op("reduce_max").infer({"axes": (3,)}, [x])
    with pytest.raises(GraphError, match=r"reduce_mean: attribute 'keepdims' = False with axes \(0, 1, 2\)"):
        get_op("reduce_mean").infer({"axes": (0, 1, 2), "keepdims": False}, [x])


# ------------------------------------------------------------------------------------------
# pooling

POOL_CASES = [
    # (layout, data shape in layout, kernel, strides, pads, dilations, ceil_mode)
    ("NCHW", (1, 3, 7, 9), (3, 3), (2, 2), (1, 0, 2, 1), (1, 1), False),
    ("NHWC", (1, 9, 8, 2), (3, 2), (2, 3), (1, 0, 1, 1), (1, 1), True),
    ("NCHW", (1, 2, 10, 9), (2, 3), (3, 2), (1, 0, 0, 1), (2, 2), True),
    ("NWC", (2, 11, 3), (3,), (2,), (1, 2), (1,), True),
    ("NCDHW", (1, 2, 5, 7, 6), (2, 3, 2), (2, 2, 2), (0, 1, 1, 0, 1, 0), (1, 1, 1), True),
    ("NDHWC", (1, 5, 7, 6, 2), (3, 3, 2), (2, 2, 1), (1, 1, 0, 1, 0, 1), (1, 2, 1), False),
]


def case_pool_attrs(case: tuple, **more: Any) -> dict[str, Any]:
    layout, _, kernel, strides, pads, dilations, ceil_mode = case
    return pool_attrs(layout, kernel, strides, pads, dilations, ceil_mode, **more)


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_declare_matches_reference(case):
    check_declare("max_pool", case_pool_attrs(case), [rand(*case[1])], compile_=case[0] == "NHWC")


@pytest.mark.parametrize("include", [False, True])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool_declare_matches_reference(case, include):
    attrs = case_pool_attrs(case, count_include_pad=include)
    check_declare("avg_pool", attrs, [rand(*case[1])], compile_=case[0] in ("NHWC", "NCDHW"))


@pytest.mark.parametrize(
    ("layout", "shape"), [("NCHW", (2, 3, 7, 9)), ("NDHWC", (1, 3, 5, 6, 4)), ("NCW", (2, 3, 11))]
)
def test_global_avg_pool_declare_matches_reference(layout, shape):
    check_declare("global_avg_pool", {"layout": layout}, [rand(*shape)], compile_=layout == "NCHW")


def test_pool_infer_rejects_bad_attributes():
    infer = get_op("max_pool").infer
    x = TensorType((1, 2, 7, 9))
    good: dict[str, Any] = dict(
        layout="NCHW", kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=True
    )
    assert infer(good, [x]) == [TensorType((1, 2, 4, 5))]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"kernel": (3,)}, r"max_pool: attribute 'kernel' = \(3,\) must be a tuple of 2 ints"),
        (
            {"pads": (3, 0, 0, 0)},
            r"max_pool: attribute 'pads' = \(3, 0, 0, 0\) must be smaller than the kernel",
        ),
        ({"strides": (2, 0)}, r"max_pool: attribute 'strides' = \(2, 0\) must hold ints >= 1"),
        ({"ceil_mode": 2}, r"max_pool: attribute 'ceil_mode' = 2 must be a bool"),
        ({"kernel": (9, 3), "pads": (0, 0, 0, 0)}, r"max_pool: the window does not fit input \[1, 2, 7, 9\]"),
    ]
    for change, message in bad:
        with pytest.raises(GraphError, match=message):
            infer({**good, **change}, [x])
    with pytest.raises(GraphError, match=r"avg_pool: attribute 'count_include_pad' = 'yes' must be a bool"):
        get_op("avg_pool").infer({**good, "count_include_pad": "yes"}, [x])
    with pytest.raises(GraphError, match=r"global_avg_pool: input 'data' must have rank 5 \(NCDHW\)"):
        get_op("global_avg_pool").infer({"layout": "NCDHW"}, [x])


# ------------------------------------------------------------------------------------------
# in a graph


def test_nn_ops_in_a_graph():
    c = 4
    constants = {
        "w": rand(c, 3, 3, 3),
        "gamma": rand(c),
        "beta": rand(c),
        "mean": rand(c),
        "var": ARRAYS.uniform(0.5, 2.0, c),
    }
    conv = dict(layout="NCHW", kernel_layout="OIHW", strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1))
    pool = dict(layout="NCHW", kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=True)
    nodes = [
        Node("conv", ("x", "w"), ("c",), conv, name="c1"),
        Node("batch_norm", ("c", "gamma", "beta", "mean", "var"), ("b",), {"epsilon": 1e-5, "axis": 1}),
        Node("max_pool", ("b",), ("p",), pool),
        Node("global_avg_pool", ("p",), ("g",), {"layout": "NCHW"}),
    ]
    graph = Graph({"x": TensorType((1, 3, 7, 9))}, nodes, ["g"], constants)
    assert graph.types["p"] == TensorType((1, c, 4, 5))
    x = rand(1, 3, 7, 9)
    (got,) = run_reference(graph, {"x": x})
    conv_out = get_op("conv").reference(conv, [x, constants["w"]])[0]
    normed = (conv_out - constants["mean"][:, None, None]) / np.sqrt(constants["var"][:, None, None] + 1e-5)
    normed = normed * constants["gamma"][:, None, None] + constants["beta"][:, None, None]
    padded = np.pad(normed, [(0, 0), (0, 0), (1, 1), (1, 1)], constant_values=-np.inf)
    pooled = np.array(
        [
            [
                [
                    [padded[0, ch, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max() for j in range(5)]
                    for i in range(4)
                ]
            ]
            for ch in range(c)
        ]
    ).reshape(1, c, 4, 5)
    np.testing.assert_allclose(got, pooled.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    bad = [nodes[0].with_(attrs={**conv, "strides": (0, 1)}), *nodes[1:]]
    with pytest.raises(GraphError, match=r"node 'c1' \(conv\): conv: attribute 'strides' = \(0, 1\)"):
        Graph({"x": TensorType((1, 3, 7, 9))}, bad, ["g"], constants)
