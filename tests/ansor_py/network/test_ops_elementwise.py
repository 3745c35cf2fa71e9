"""The elementwise op family (``ansor_py.network.ops.elementwise``): unary math (relu, the
sigmoid family, erf, gelu in both forms), clip and cast, and the broadcasting binary ops
and ``where``, on float, integer and bool operands.

Each ``case`` goes through the three levels of ``op_checks`` (onnxruntime, opset 17 and 20
for ``Gelu``; ``ir.reference.evaluate``; compiled, naive and parallel-vectorised). Beside
them: integer division truncates toward zero, and bad attributes and operands raise
GraphError naming the op, the attribute or operand and the value.
"""

from __future__ import annotations

import numpy as np
import pytest
from op_checks import RandomArrays, case, case_tests, declare_dag, infer_error_test

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops import OPS
from ansor_py.network.reference import run_reference
from ansor_py.network.types import GraphError, TensorType
from ir.reference import evaluate

ARRAYS = RandomArrays(20261207)
floats, positives, ints, nonzero_ints = ARRAYS.floats, ARRAYS.positives, ARRAYS.ints, ARRAYS.nonzero_ints


def c32(value: float) -> np.ndarray:
    return np.array(value, np.float32)


CASES = [
    case("relu", "relu", {}, [floats(3, 7)], "Relu", compile=True),
    case("relu-int32", "relu", {}, [ints(5, 3, dtype=np.int32)], "Relu"),
    case("sigmoid", "sigmoid", {}, [floats(2, 5, 3)], "Sigmoid", compile=True),
    case("tanh", "tanh", {}, [floats(11)], "Tanh", compile=True),
    case("erf", "erf", {}, [floats(4, 9) * 2], "Erf", compile=True),
    case("erf-scalar", "erf", {}, [c32(0.7)], "Erf", compile=True),
    case("sqrt", "sqrt", {}, [positives(3, 5)], "Sqrt"),
    case("negative", "negative", {}, [floats(1, 5)], "Neg"),
    case("negative-int64", "negative", {}, [ints(7)], "Neg"),
    case("exp", "exp", {}, [floats(2, 3, 5)], "Exp", compile=True),
    case("gelu", "gelu", {"approximate": "none"}, [floats(3, 13) * 3], "Gelu", opset=20, compile=True),
    case("gelu-default", "gelu", {}, [floats(5)], "Gelu", opset=20),
    case(
        "gelu-tanh",
        "gelu",
        {"approximate": "tanh"},
        [floats(3, 13) * 3],
        "Gelu",
        onnx_attrs={"approximate": "tanh"},
        opset=20,
        compile=True,
    ),
    case(
        "clip",
        "clip",
        {"min": -0.5, "max": 0.7},
        [floats(3, 7)],
        "Clip",
        onnx_constants=[c32(-0.5), c32(0.7)],
    ),
    case(
        "clip-relu6",
        "clip",
        {"min": 0.0, "max": 6.0},
        [floats(9) * 5],
        "Clip",
        onnx_constants=[c32(0), c32(6)],
    ),
    case(
        "clip-min-only", "clip", {"min": -0.2, "max": None}, [floats(6)], "Clip", onnx_constants=[c32(-0.2)]
    ),
    case("clip-max-only", "clip", {"max": 0.1}, [floats(6)], "Clip", onnx_constants=[None, c32(0.1)]),
    case(
        "clip-min>max",
        "clip",
        {"min": 0.5, "max": -0.5},
        [floats(6)],
        "Clip",
        onnx_constants=[c32(0.5), c32(-0.5)],
    ),
    case(
        "clip-numpy-bounds",
        "clip",
        {"min": np.float32(-0.25), "max": np.float64(1.0)},
        [floats(4, 3)],
        "Clip",
        onnx_constants=[c32(-0.25), c32(1.0)],
    ),
    case(
        "clip-int64",
        "clip",
        {"min": -3, "max": 4.0},
        [ints(2, 7)],
        "Clip",
        onnx_constants=[np.array(-3, np.int64), np.array(4, np.int64)],
        compile=True,
    ),
    case(
        "cast-f32-i64",
        "cast",
        {"dtype": "int64"},
        [floats(3, 5) * 4],
        "Cast",
        onnx_attrs={"to": 7},
        compile=True,
    ),
    case("cast-f32-i32", "cast", {"dtype": "int32"}, [floats(6) * 4], "Cast", onnx_attrs={"to": 6}),
    case(
        "cast-i64-f32", "cast", {"dtype": "float32"}, [ints(4, 3)], "Cast", onnx_attrs={"to": 1}, compile=True
    ),
    case("cast-i64-i32", "cast", {"dtype": "int32"}, [ints(4, 3)], "Cast", onnx_attrs={"to": 6}),
    case(
        "cast-f32-bool",
        "cast",
        {"dtype": "bool"},
        [np.round(floats(3, 7) * 2) / 2],  # zeros, halves and whole numbers
        "Cast",
        onnx_attrs={"to": 9},
        compile=True,
    ),
    case(
        "cast-bool-f32",
        "cast",
        {"dtype": "float32"},
        [floats(2, 5) > 0],
        "Cast",
        onnx_attrs={"to": 1},
        compile=True,
    ),
    case("cast-same", "cast", {"dtype": "float32"}, [floats(3)], "Cast", onnx_attrs={"to": 1}),
    case("add", "add", {}, [floats(3, 5), floats(3, 5)], "Add", compile=True),
    case("add-rank1-rank4", "add", {}, [floats(5), floats(2, 3, 4, 5)], "Add", compile=True),
    case("add-scalar", "add", {}, [floats(3, 1, 7), c32(1.5)], "Add", compile=True),
    case("add-int64", "add", {}, [ints(4, 1), ints(3)], "Add"),
    case("subtract", "subtract", {}, [floats(2, 1, 5), floats(3, 1)], "Sub", compile=True),
    case("subtract-int32", "subtract", {}, [ints(3, dtype=np.int32), ints(2, 3, dtype=np.int32)], "Sub"),
    case("multiply", "multiply", {}, [floats(1, 3, 1, 5), floats(2, 1, 4, 1)], "Mul", compile=True),
    case("multiply-int64-scalar", "multiply", {}, [np.array(7, np.int64), ints(5)], "Mul"),
    case("divide", "divide", {}, [floats(3, 5), positives(5)], "Div", compile=True),
    case("divide-int64", "divide", {}, [ints(4, 9, low=-50, high=50), nonzero_ints(9)], "Div", compile=True),
    case("divide-int32", "divide", {}, [ints(13, dtype=np.int32), nonzero_ints(13, dtype=np.int32)], "Div"),
    case("power", "power", {}, [positives(3, 5), floats(5)], "Pow", compile=True),
    case("power-scalar-exponent", "power", {}, [floats(2, 7), c32(2.0)], "Pow"),
    case("power-int64", "power", {}, [ints(3, 4), ints(4, low=0, high=4)], "Pow", compile=True),
    case("maximum", "maximum", {}, [floats(4, 1, 3), floats(5, 1)], "Max", compile=True),
    case("maximum-int64", "maximum", {}, [ints(6), ints(6)], "Max"),
    case("minimum", "minimum", {}, [floats(2, 3, 4, 5), floats(4, 1)], "Min", compile=True),
    case("minimum-int32", "minimum", {}, [ints(2, 3, dtype=np.int32), ints(1, dtype=np.int32)], "Min"),
    case("equal", "equal", {}, [ints(3, 4, low=0, high=3), ints(4, low=0, high=3)], "Equal", compile=True),
    case("equal-float", "equal", {}, [np.round(floats(3, 4)), np.round(floats(3, 1))], "Equal"),
    case("equal-bool", "equal", {}, [floats(5, 1) > 0, floats(4) > 0], "Equal", compile=True),
    case("where", "where", {}, [floats(3, 4) > 0, floats(3, 4), floats(3, 4)], "Where", compile=True),
    case(
        "where-broadcast",
        "where",
        {},
        [floats(4, 1) > 0, floats(2, 1, 5), np.array(-1.0, np.float32)],
        "Where",
        compile=True,
    ),
    case("where-int64", "where", {}, [floats(5) > 0, ints(2, 5), ints(1)], "Where", compile=True),
    case("where-scalar-cond", "where", {}, [np.array(True), floats(3), floats(2, 1)], "Where"),
]


#: the three levels (``op_checks``), each a test parametrized by CASES
(
    test_reference_matches_onnxruntime,
    test_declare_matches_reference,
    test_compiled_matches_reference,
    test_parallel_vectorized_schedule_matches_reference,
) = case_tests(CASES)


def test_integer_divide_truncates_toward_zero() -> None:
    a = np.array([7, -7, 7, -7, 6, -6, 0], np.int64)
    b = np.array([2, 2, -2, -2, 3, -3, 5], np.int64)
    (ref,) = OPS["divide"].reference({}, [a, b])
    np.testing.assert_array_equal(ref, [3, -3, -3, 3, 2, 2, 0])
    (got,) = evaluate(declare_dag("divide", {}, [a, b]), [a, b])
    np.testing.assert_array_equal(got, ref)


def test_patterns() -> None:
    assert {OPS[op].pattern.name for op in ("relu", "gelu", "cast", "clip")} == {"ELEMWISE"}
    assert {OPS[op].pattern.name for op in ("add", "power", "equal", "where")} == {"BROADCAST"}


# ------------------------------------------------------------------------------------------
# errors

F32 = TensorType((2, 3), "float32")
I64 = TensorType((2, 3), "int64")
BOOL = TensorType((2, 3), "bool")

ERRORS = [
    ("add", {}, [F32, I64], r"op 'add': operand dtypes differ: input 0 is float32, input 1 is int64"),
    ("where", {}, [BOOL, F32, I64], r"op 'where': .*input 1 is float32, input 2 is int64"),
    ("where", {}, [F32, F32, F32], r"op 'where': input 0 \(the condition\) has dtype float32"),
    (
        "multiply",
        {},
        [F32, TensorType((4,), "float32")],
        r"op 'multiply': shapes \[2, 3\] and \[4\] do not broadcast",
    ),
    ("where", {}, [BOOL, F32, TensorType((5, 1, 2), "float32")], r"op 'where': shapes .*\[5, 1, 2\] do not"),
    ("sigmoid", {}, [I64], r"op 'sigmoid': input 0 has dtype int64, the op needs a float dtype"),
    ("add", {}, [BOOL, BOOL], r"op 'add': input 0 has dtype bool"),
    ("gelu", {"approximate": "fast"}, [F32], r"op 'gelu': attribute 'approximate' is 'fast'"),
    ("clip", {"min": "a"}, [F32], r"op 'clip': attribute 'min' is 'a'"),
    ("clip", {"max": 2.5}, [I64], r"op 'clip': attribute 'max' 2.5 is not an integer, the input is int64"),
    ("cast", {"dtype": "float8"}, [F32], r"op 'cast': attribute 'dtype' is 'float8'"),
    ("cast", {}, [F32], r"op 'cast' needs attribute 'dtype'"),
]


test_bad_operands_and_attributes = infer_error_test(ERRORS)


def test_graph_names_the_node_and_checks_arity() -> None:
    x = TensorType((3, 4), "float32")
    good = Graph({"x": x}, [Node("relu", ("x",), ("y",), name="act")], ["y"])
    (out,) = run_reference(good, {"x": floats(3, 4)})
    assert out.shape == (3, 4) and out.min() >= 0
    with pytest.raises(GraphError, match=r"node 'mix' \(add\): op 'add': operand dtypes differ"):
        Graph({"x": x, "i": TensorType((4,), "int64")}, [Node("add", ("x", "i"), ("y",), name="mix")], ["y"])
    with pytest.raises(GraphError, match=r"op 'where' takes 3 inputs, got 2"):
        Graph({"x": x}, [Node("where", ("x", "x"), ("y",), name="w")], ["y"])
