"""ONNX import of the elementwise and tensor ops, per op and attribute variant, against
onnxruntime: arithmetic with broadcasting, activations, Clip, Gelu (opset 20+), Cast,
Where, Equal, and the shape ops (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat,
Split, Slice, Gather, Shape, Constant, ConstantOfShape, Expand, Range, Identity, Dropout)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the ONNX frontend needs onnx (pip install onnx)")
pytest.importorskip("onnxruntime", reason="the ONNX import tests compare with onnxruntime")

from onnx import TensorProto, helper, numpy_helper
from onnx_cases import Case, check_case, ints, node, weights

F = "float32"


def const(name, array):
    return node(
        "Constant", [], [name], name=f"const_{name}", value=numpy_helper.from_array(np.asarray(array))
    )


def binary(op, a=(2, 3, 4), b=(3, 1), dtype=F, positive=False, opsets=(13, 21)):
    return Case(
        f"{op.lower()}-{'x'.join(map(str, a))}-{'x'.join(map(str, b))}-{dtype}",
        [node(op, ["a", "b"], ["y"])],
        {"a": (a, dtype), "b": (b, dtype)},
        {"y": "bool" if op == "Equal" else dtype},
        opsets=opsets,
        positive=positive,
    )


def unary(op, positive=False, shape=(2, 3, 5)):
    return Case(
        op.lower(), [node(op, ["x"], ["y"])], {"x": (shape, F)}, {"y": F}, opsets=(13, 21), positive=positive
    )


NONZERO = np.array([[1], [-2], [3]], np.int32)
MATH_CASES = [
    binary("Add"),
    binary("Add", (4,), (2, 3, 4)),
    binary("Sub", (1, 3, 1), (2, 1, 4)),
    binary("Mul"),
    binary("Div"),
    binary("Pow", positive=True),
    binary("Equal", (2, 3), (3,), dtype="int64"),
    binary("Add", (2, 3), (2, 3), dtype="int64"),
    Case(
        "div-int32-truncates",
        [node("Div", ["a", "b"], ["y"])],
        {"a": ((2, 3, 4), "int32"), "b": ((3, 1), "int32")},
        {"y": "int32"},
        opsets=(13,),
        feeds={"b": NONZERO},
    ),
    Case(
        "pow-int-exponent",
        [node("Pow", ["x", "e"], ["y"])],
        {"x": ((2, 3), F)},
        {"y": F},
        {"e": np.array([1, 2, 3], np.int64)},
        opsets=(13, 21),
    ),
    Case(
        "max-3-inputs",
        [node("Max", ["a", "b", "c"], ["y"])],
        {"a": ((2, 3), F), "b": ((3,), F), "c": ((2, 1), F)},
        {"y": F},
    ),
    Case("min-2-inputs", [node("Min", ["a", "b"], ["y"])], {"a": ((2, 3), F), "b": ((1, 3), F)}, {"y": F}),
    Case(
        "max-1-input", [node("Max", ["a"], ["y"]), node("Relu", ["y"], ["z"])], {"a": ((2, 3), F)}, {"z": F}
    ),
    unary("Sqrt", positive=True),
    unary("Neg"),
    unary("Abs"),
    unary("Exp"),
    unary("Relu"),
    unary("Sigmoid"),
    unary("Tanh"),
    unary("Erf"),
    Case(
        "clip-min-max",
        [node("Clip", ["x", "lo", "hi"], ["y"])],
        {"x": ((3, 4), F)},
        {"y": F},
        {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)},
    ),
    Case(
        "clip-max-only",
        [node("Clip", ["x", "", "hi"], ["y"])],
        {"x": ((3, 4), F)},
        {"y": F},
        {"hi": np.array(0.2, np.float32)},
    ),
    Case(
        "clip-const-min",
        [const("lo", np.float32(0.0)), node("Clip", ["x", "lo"], ["y"])],
        {"x": ((3, 4), F)},
        {"y": F},
    ),
    Case("clip-none", [node("Clip", ["x"], ["y"])], {"x": ((3, 4), F)}, {"y": F}),
    Case("gelu", [node("Gelu", ["x"], ["y"])], {"x": ((3, 7), F)}, {"y": F}, opsets=(20, 21)),
    Case(
        "gelu-tanh",
        [node("Gelu", ["x"], ["y"], approximate="tanh")],
        {"x": ((3, 7), F)},
        {"y": F},
        opsets=(20, 21),
    ),
    Case(
        "cast-float-int32",
        [node("Cast", ["x"], ["y"], to=TensorProto.INT32)],
        {"x": ((3, 4), F)},
        {"y": "int32"},
        feeds={"x": np.linspace(-5.7, 5.7, 12, dtype=np.float32).reshape(3, 4)},
    ),
    Case(
        "cast-int64-float",
        [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        {"x": ((3, 4), "int64")},
        {"y": F},
    ),
    Case("cast-noop", [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], {"x": ((3, 4), F)}, {"y": F}),
    Case(
        "where-broadcast",
        [node("Where", ["c", "a", "b"], ["y"])],
        {"c": ((3, 1), "bool"), "a": ((1, 4), F), "b": ((3, 4), F)},
        {"y": F},
    ),
    Case(
        "equal-where",
        [node("Equal", ["a", "b"], ["c"]), node("Where", ["c", "x", "z"], ["y"])],
        {"a": ((2, 3), "int64"), "b": ((2, 3), "int64"), "x": ((2, 3), F)},
        {"y": F},
        {"z": weights(3)},
    ),
]


def shape_op(case_id, nodes, x=(2, 3, 4), out=F, inits=None, opsets=(13, 18, 21), dtype=F):
    return Case(case_id, nodes, {"x": (x, dtype)}, {"y": out}, inits or {}, opsets)


def split_nodes(opset):
    if opset < 18:
        return [node("Split", ["x"], ["y", "z", "w"], axis=1)]
    return [node("Split", ["x"], ["y", "z", "w"], axis=1, num_outputs=3)]


TENSOR_CASES = [
    shape_op("reshape-0-minus1", [node("Reshape", ["x", "s"], ["y"])], inits={"s": ints(0, -1)}),
    shape_op("reshape-const-node", [const("s", ints(4, 1, 6)), node("Reshape", ["x", "s"], ["y"])]),
    shape_op(
        "reshape-allowzero",
        [node("Reshape", ["x", "s"], ["y"], allowzero=1)],
        inits={"s": ints(6, 4)},
        opsets=(18,),
    ),
    shape_op("flatten-default", [node("Flatten", ["x"], ["y"])]),
    shape_op("flatten-axis0", [node("Flatten", ["x"], ["y"], axis=0)]),
    shape_op("flatten-neg-axis", [node("Flatten", ["x"], ["y"], axis=-1)]),
    shape_op("squeeze-axes", [node("Squeeze", ["x", "a"], ["y"])], x=(1, 3, 1, 2), inits={"a": ints(0, -2)}),
    shape_op("squeeze-all", [node("Squeeze", ["x"], ["y"])], x=(1, 3, 1, 2)),
    shape_op("unsqueeze-neg", [node("Unsqueeze", ["x", "a"], ["y"])], inits={"a": ints(-1, 0)}),
    shape_op("transpose-default", [node("Transpose", ["x"], ["y"])]),
    shape_op("transpose-perm", [node("Transpose", ["x"], ["y"], perm=[1, 2, 0])]),
    Case(
        "concat-neg-axis",
        [node("Concat", ["a", "b", "c"], ["y"], axis=-1)],
        {"a": ((2, 3, 1), F), "b": ((2, 3, 4), F)},
        {"y": F},
        {"c": weights(2, 3, 2)},
    ),
    Case(
        "split-sizes",
        [node("Split", ["x", "s"], ["y", "z"], axis=-1)],
        {"x": ((2, 3, 7), F)},
        {"y": F, "z": F},
        {"s": ints(3, 4)},
    ),
    Case(
        "split-equal",
        [node("Split", ["x"], ["y", "z"], axis=0)],
        {"x": ((4, 3), F)},
        {"y": F, "z": F},
        opsets=(13, 17),
    ),
    Case(
        "split-num-outputs-uneven",
        split_nodes,
        {"x": ((2, 7), F)},
        {"y": F, "z": F, "w": F},
        opsets=(18, 21),
    ),
    Case(
        "split-three-even",
        split_nodes,
        {"x": ((2, 9), F)},
        {"y": F, "z": F, "w": F},
        opsets=(13, 17, 18, 21),
    ),
    shape_op(
        "slice-basic",
        [node("Slice", ["x", "st", "en"], ["y"])],
        x=(5, 6, 7),
        inits={"st": ints(1, -4), "en": ints(100, -1)},
    ),
    shape_op(
        "slice-axes-steps",
        [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
        x=(5, 6, 7),
        inits={"st": ints(-1, 1), "en": ints(-100, 7), "ax": ints(-1, 0), "sp": ints(-2, 3)},
    ),
    shape_op(
        "slice-negative-step-partial",
        [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
        x=(5, 6),
        inits={"st": ints(100, 4), "en": ints(1, 0), "ax": ints(0, 1), "sp": ints(-1, -3)},
    ),
    shape_op(
        "slice-negative-step-clamped-start",
        [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
        x=(5, 4),
        inits={"st": ints(-100, 2), "en": ints(-200, -100), "ax": ints(0, 1), "sp": ints(-1, -1)},
    ),
    shape_op(
        "slice-empty",
        [node("Slice", ["x", "st", "en", "ax"], ["y"]), node("Concat", ["y", "x"], ["z"], axis=0)],
        x=(5, 6),
        inits={"st": ints(3), "en": ints(2), "ax": ints(0)},
    ),
    Case(
        "gather-axis0-negative",
        [node("Gather", ["x", "i"], ["y"])],
        {"x": ((5, 3), F)},
        {"y": F},
        {"i": ints(0, -1, 3, -5)},
    ),
    Case(
        "gather-axis1-2d-int32",
        [node("Gather", ["x", "i"], ["y"], axis=1)],
        {"x": ((2, 5, 3), F), "i": ((2, 2), "int32")},
        {"y": F},
        feeds={"i": np.array([[0, 4], [-2, 1]], np.int32)},
    ),
    Case(
        "gather-scalar",
        [node("Gather", ["x", "i"], ["y"], axis=1)],
        {"x": ((2, 5), F)},
        {"y": F},
        {"i": ints(2)[0]},
    ),
    Case(
        "embedding",
        [node("Gather", ["table", "ids"], ["y"])],
        {"ids": ((2, 3), "int64")},
        {"y": F},
        {"table": weights(10, 4)},
        feeds={"ids": np.array([[1, 9, 0], [3, 3, 7]], np.int64)},
    ),
    shape_op(
        "shape-gather-concat-reshape",
        [
            node("Shape", ["x"], ["s"]),
            node("Gather", ["s", "i"], ["d0"], axis=0),
            node("Unsqueeze", ["d0", "zero"], ["d0v"]),
            node("Concat", ["d0v", "m1"], ["target"], axis=0),
            node("Reshape", ["x", "target"], ["y"]),
        ],
        inits={"i": ints(0)[0], "zero": ints(0), "m1": ints(-1)},
    ),
    shape_op(
        "shape-start-end",
        [
            node("Shape", ["x"], ["s"], start=1, end=-1),
            node("Reshape", ["x", "s2"], ["y"]),
            node("Identity", ["s"], ["t"]),
        ],
        inits={"s2": ints(-1, 4)},
        opsets=(15, 18, 21),
    ),
    shape_op(
        "constant-forms",
        [
            node("Constant", [], ["cf"], name="cf", value_float=0.5),
            node("Constant", [], ["cfs"], name="cfs", value_floats=[1.0, 2.0, 3.0, 4.0]),
            node("Constant", [], ["ci"], name="ci", value_int=2),
            node("Constant", [], ["cis"], name="cis", value_ints=[1, 2, 3, 4]),
            node("Cast", ["cis"], ["cisf"], to=TensorProto.FLOAT),
            node("Cast", ["ci"], ["cif"], to=TensorProto.FLOAT),
            node("Mul", ["x", "cf"], ["a"]),
            node("Add", ["a", "cfs"], ["b"]),
            node("Sub", ["b", "cisf"], ["c"]),
            node("Mul", ["c", "cif"], ["y"]),
        ],
    ),
    shape_op(
        "constant-of-shape",
        [
            node(
                "ConstantOfShape", ["s"], ["ones"], value=numpy_helper.from_array(np.array([1.5], np.float32))
            ),
            node("ConstantOfShape", ["s"], ["zeros"]),
            node("Add", ["x", "ones"], ["a"]),
            node("Add", ["a", "zeros"], ["y"]),
        ],
        inits={"s": ints(3, 4)},
    ),
    shape_op("pad-all-axes", [node("Pad", ["x", "p"], ["y"])], inits={"p": ints(0, 1, 2, 1, 0, 3)}),
    shape_op(
        "pad-value",
        [node("Pad", ["x", "p", "v"], ["y"], mode="constant")],
        inits={"p": ints(1, 0, 0, 0, 2, 1), "v": np.array(-1.5, np.float32)},
    ),
    shape_op(
        "pad-axes",
        [node("Pad", ["x", "p", "", "ax"], ["y"])],
        inits={"p": ints(1, 2, 3, 0), "ax": ints(-1, 0)},
        opsets=(18, 21),
    ),
    shape_op("expand", [node("Expand", ["x", "s"], ["y"])], x=(3, 1), inits={"s": ints(2, 1, 4)}),
    shape_op("expand-noop", [node("Expand", ["x", "s"], ["y"])], x=(3, 4), inits={"s": ints(1, 1)}),
    shape_op(
        "range-add",
        [
            node("Range", ["st", "lim", "d"], ["r"]),
            node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
            node("Add", ["x", "rf"], ["y"]),
        ],
        inits={"st": np.array(10, np.int64), "lim": np.array(2, np.int64), "d": np.array(-2, np.int64)},
    ),
    shape_op("identity", [node("Identity", ["x"], ["t"]), node("Relu", ["t"], ["y"])]),
    Case(
        "dropout-mask",
        [node("Dropout", ["x", "r"], ["y", "mask"])],
        {"x": ((2, 3), F)},
        {"y": F, "mask": "bool"},
        {"r": np.array(0.5, np.float32)},
    ),
]

ALL = MATH_CASES + TENSOR_CASES


@pytest.mark.parametrize(
    ("case", "opset"), [pytest.param(c, o, id=f"{c.id}-opset{o}") for c in ALL for o in c.opsets]
)
def test_op_matches_onnxruntime(case, opset):
    check_case(case, opset)


def test_shape_arithmetic_folds_to_constants():
    case = next(c for c in TENSOR_CASES if c.id == "shape-gather-concat-reshape")
    graph = check_case(case, 13)
    assert [n.op for n in graph.nodes] == ["reshape"]
    assert graph.nodes[0].attrs["shape"] == (2, 12)
    assert graph.nodes[0].name == "reshape_y"


def test_split_becomes_slices_with_the_model_names():
    graph = check_case(TENSOR_CASES[12], 13)
    assert [n.op for n in graph.nodes] == ["slice", "slice"]
    assert graph.outputs == ("y", "z")
    assert [n.attrs["starts"] for n in graph.nodes] == [(0, 0, 0), (0, 0, 3)]


def test_identity_and_dropout_alias_their_input():
    graph = check_case(next(c for c in TENSOR_CASES if c.id == "identity"), 13)
    assert [n.op for n in graph.nodes] == ["relu"] and graph.nodes[0].inputs == ("x",)
    graph = check_case(TENSOR_CASES[-1], 13)
    assert graph.nodes == () and graph.outputs[0] == "x"


def test_constant_dtypes_follow_the_value_attribute():
    model_case = Case(
        "c",
        [node("Constant", [], ["y"], value=helper.make_tensor("v", TensorProto.INT32, [2], [3, -4]))],
        {},
        {"y": "int32"},
    )
    graph = check_case(model_case, 13)
    assert graph.constants["y"].dtype == np.int32 and graph.outputs == ("y",)
