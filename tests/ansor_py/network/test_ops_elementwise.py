"""The elementwise op family (``ansor_py.network.ops.elementwise``) on random inputs:

1. ``reference`` against onnxruntime running the one-node ONNX model of the op (opset 17;
   ``Gelu`` needs opset 20);
2. ``declare`` evaluated by ``ir.reference.evaluate`` against ``reference``;
3. a representative subset compiled with ``codegen.build.build(dag, None, "llvm")`` and run,
   naive and with a parallel, vectorised schedule;
4. bad attributes and operands raise GraphError naming the op, the attribute/operand and
   the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops import OPS
from ansor_py.network.reference import run_reference
from ansor_py.network.types import GraphError, TensorType
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.reference import evaluate

RNG = np.random.default_rng(20261207)


def floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def positives(*shape: int) -> np.ndarray:
    return (RNG.random(shape) * 3.0 + 0.1).astype(np.float32)


def ints(*shape: int, low: int = -9, high: int = 10, dtype: type = np.int64) -> np.ndarray:
    return RNG.integers(low, high, shape).astype(dtype)


def nonzero_ints(*shape: int, dtype: type = np.int64) -> np.ndarray:
    values = ints(*shape, dtype=dtype)
    return np.where(values == 0, dtype(3), values).astype(dtype)


# ------------------------------------------------------------------------------------------
# the three checks


def run_onnxruntime(
    onnx_op: str,
    arrays: Sequence[np.ndarray],
    out_type: TensorType,
    attrs: Mapping[str, Any] | None = None,
    constants: Sequence[np.ndarray | None] = (),
    opset: int = 17,
) -> np.ndarray:
    """``onnx_op`` applied to ``arrays`` (graph inputs) and ``constants`` (initializers,
    None for an omitted optional input), one node, by onnxruntime on the CPU."""
    names = [f"x{n}" for n in range(len(arrays))]
    inits = []
    const_names = []
    for n, value in enumerate(constants):
        if value is None:
            const_names.append("")
            continue
        inits.append(numpy_helper.from_array(np.asarray(value), f"c{n}"))
        const_names.append(f"c{n}")
    node = helper.make_node(onnx_op, names + const_names, ["y"], **dict(attrs or {}))
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in zip(names, arrays, strict=True)
    ]
    out_dtype = helper.np_dtype_to_tensor_dtype(np.dtype(out_type.dtype))
    output = helper.make_tensor_value_info("y", out_dtype, out_type.shape)
    graph = helper.make_graph([node], onnx_op.lower(), inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, dict(zip(names, arrays, strict=True)))[0])


def declare_dag(op: str, attrs: Mapping[str, Any], arrays: Sequence[np.ndarray]) -> ComputeDAG:
    placeholders = [
        te.placeholder(a.shape, TensorType.of(a).dtype, name=f"p{n}") for n, a in enumerate(arrays)
    ]
    outputs = OPS[op].declare(attrs, placeholders, f"{op}_node")
    for t in outputs:
        assert t.op.name.startswith(f"{op}_node")
    return ComputeDAG(placeholders + outputs)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    if np.issubdtype(want.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


@dataclass
class Case:
    """One op call: graph op + attrs + inputs, and its ONNX equivalent."""

    label: str
    op: str
    attrs: dict[str, Any]
    inputs: list[np.ndarray]
    onnx_op: str
    onnx_attrs: dict[str, Any] = field(default_factory=dict)
    onnx_constants: list[np.ndarray | None] = field(default_factory=list)
    opset: int = 17
    compile: bool = False


def case(
    label: str, op: str, attrs: dict[str, Any], inputs: list[np.ndarray], onnx_op: str, **kw: Any
) -> Any:
    return pytest.param(Case(label, op, attrs, inputs, onnx_op, **kw), id=label)


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


def _out_type(c: Case) -> TensorType:
    return OPS[c.op].infer(c.attrs, [TensorType.of(a) for a in c.inputs])[0]


@pytest.mark.parametrize("c", CASES)
def test_reference_matches_onnxruntime(c: Case) -> None:
    out_type = _out_type(c)
    (ref,) = OPS[c.op].reference(c.attrs, c.inputs)
    assert TensorType.of(ref) == out_type
    ort_out = run_onnxruntime(c.onnx_op, c.inputs, out_type, c.onnx_attrs, c.onnx_constants, c.opset)
    assert_close(ref, ort_out.astype(ref.dtype))
    assert ort_out.dtype == ref.dtype


@pytest.mark.parametrize("c", CASES)
def test_declare_matches_reference(c: Case) -> None:
    (ref,) = OPS[c.op].reference(c.attrs, c.inputs)
    (got,) = evaluate(declare_dag(c.op, c.attrs, c.inputs), c.inputs)
    assert_close(got, ref)


@pytest.mark.parametrize("c", [p for p in CASES if p.values[0].compile])
def test_compiled_matches_reference(c: Case) -> None:
    (ref,) = OPS[c.op].reference(c.attrs, c.inputs)
    kernel = build(declare_dag(c.op, c.attrs, c.inputs), None, "llvm")
    out = np.full(ref.shape, 7, dtype=ref.dtype)
    kernel(*c.inputs, out)
    assert_close(out, ref)


@pytest.mark.parametrize("c", [p for p in CASES if p.values[0].compile and _out_type(p.values[0]).ndim > 0])
def test_parallel_vectorized_schedule_matches_reference(c: Case) -> None:
    """The output's loops fused, split by 8 (a tail when the extent does not divide),
    the outer loop parallel and the inner one vectorised: what a default schedule does."""
    (ref,) = OPS[c.op].reference(c.attrs, c.inputs)
    dag = declare_dag(c.op, c.attrs, c.inputs)
    state = get_init_state(dag)
    stage = dag.outputs[0].name
    iters = state[stage].iters
    fused = state.fuse(stage, list(iters)) if len(iters) > 1 else iters[0]
    outer, inner = state.split(stage, fused, [8])
    state.parallel(stage, outer)
    state.vectorize(stage, inner)
    out = np.full(ref.shape, 7, dtype=ref.dtype)
    build(dag, state, "llvm")(*c.inputs, out)
    assert_close(out, ref)


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


@pytest.mark.parametrize(("op", "attrs", "types", "match"), ERRORS)
def test_bad_operands_and_attributes(
    op: str, attrs: dict[str, Any], types: list[TensorType], match: str
) -> None:
    with pytest.raises(GraphError, match=match):
        OPS[op].infer(attrs, types)


def test_graph_names_the_node_and_checks_arity() -> None:
    x = TensorType((3, 4), "float32")
    good = Graph({"x": x}, [Node("relu", ("x",), ("y",), name="act")], ["y"])
    (out,) = run_reference(good, {"x": floats(3, 4)})
    assert out.shape == (3, 4) and out.min() >= 0
    with pytest.raises(GraphError, match=r"node 'mix' \(add\): op 'add': operand dtypes differ"):
        Graph({"x": x, "i": TensorType((4,), "int64")}, [Node("add", ("x", "i"), ("y",), name="mix")], ["y"])
    with pytest.raises(GraphError, match=r"op 'where' takes 3 inputs, got 2"):
        Graph({"x": x}, [Node("where", ("x", "x"), ("y",), name="w")], ["y"])
