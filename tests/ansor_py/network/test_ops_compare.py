"""The comparison and logical ops (``less``, ``less_equal``, ``greater``, ``greater_equal``,
``logical_not``, ``logical_and``, ``logical_or``) end to end, on random inputs with ties:

1. ``reference`` against onnxruntime running the one-node ONNX model of the op;
2. ``declare`` evaluated by ``ir.reference.evaluate`` against ``reference``, and compiled
   with ``codegen.build.build(dag, None, "llvm")`` (NaN operands included: every
   comparison with NaN is false, as in ONNX and numpy);
3. ONNX import (Less, LessOrEqual, Greater, GreaterOrEqual, Not, And, Or at opsets 13-21)
   against onnxruntime, and the writer's round trip;
4. the pattern of ``take``'s negative-index lowering, ``where(i < 0, i + n, i)``, built by
   ``build_network``;
5. operands of the wrong kind raise GraphError naming the op, the input and its dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper
from onnx_cases import Case as OnnxCase
from onnx_cases import check_case, node

from ansor_py.network.executor import build_network
from ansor_py.network.frontend.onnx import from_onnx
from ansor_py.network.graph import Graph, Node
from ansor_py.network.onnx_writer import to_onnx
from ansor_py.network.ops import OPS
from ansor_py.network.ops.base import OpPattern
from ansor_py.network.reference import run_reference
from ansor_py.network.types import GraphError, TensorType
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.reference import evaluate

RNG = np.random.default_rng(20261208)
COMPARE = {
    "less": "Less",
    "less_equal": "LessOrEqual",
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
}
LOGICAL = {"logical_and": "And", "logical_or": "Or"}


def halves(*shape: int) -> np.ndarray:
    """Random multiples of 0.5 in [-2, 2]: equal values are frequent, so < and <= differ."""
    return (RNG.integers(-4, 5, shape) / 2).astype(np.float32)


def ints(*shape: int, dtype: type = np.int64) -> np.ndarray:
    return RNG.integers(-3, 4, shape).astype(dtype)


def bools(*shape: int) -> np.ndarray:
    return RNG.random(shape) < 0.5


@dataclass
class Case:
    op: str
    inputs: list[np.ndarray]
    compile: bool = False


def with_nan(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out.flat[::5] = np.nan
    return out


LABELLED: list[tuple[str, Case]] = [
    *((f"{op}-f32-broadcast", Case(op, [halves(2, 3, 4), halves(3, 1)], compile=True)) for op in COMPARE),
    *((f"{op}-i64", Case(op, [ints(4, 5), ints(5)])) for op in COMPARE),
    *((f"{op}-nan", Case(op, [with_nan(halves(4, 5)), halves(4, 5)], compile=True)) for op in COMPARE),
    ("less-i32-0d", Case("less", [ints(6, dtype=np.int32), np.array(0, np.int32)], compile=True)),
    ("logical_not", Case("logical_not", [bools(3, 5)], compile=True)),
    *((f"{op}-broadcast", Case(op, [bools(2, 1, 4), bools(3, 4)], compile=True)) for op in LOGICAL),
    # the scalar that leaves the other side as it is (and True, or False)
    ("logical_and-scalar", Case("logical_and", [bools(3, 4), np.array(True)], compile=True)),
    ("logical_or-scalar", Case("logical_or", [np.array(False), bools(3, 4)])),
]
CASES = [pytest.param(c, id=label) for label, c in LABELLED]
COMPILED = [pytest.param(c, id=label) for label, c in LABELLED if c.compile]

ONNX_NAME = {**COMPARE, **LOGICAL, "logical_not": "Not"}


def infer(c: Case) -> TensorType:
    (out,) = OPS[c.op].infer({}, [TensorType.of(a) for a in c.inputs])
    return out


def onnxruntime_one_node(onnx_op: str, arrays: Sequence[np.ndarray], opset: int = 17) -> np.ndarray:
    names = [f"x{n}" for n in range(len(arrays))]
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in zip(names, arrays, strict=True)
    ]
    output = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(np.dtype(bool)), None)
    graph = helper.make_graph([helper.make_node(onnx_op, names, ["y"])], onnx_op.lower(), inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, dict(zip(names, arrays, strict=True)))[0])


def declare_dag(c: Case) -> ComputeDAG:
    placeholders = [
        te.placeholder(a.shape, TensorType.of(a).dtype, name=f"p{n}") for n, a in enumerate(c.inputs)
    ]
    return ComputeDAG(placeholders + OPS[c.op].declare({}, placeholders, f"{c.op}_node"))


@pytest.mark.parametrize("c", CASES)
def test_reference_matches_onnxruntime(c: Case) -> None:
    (ref,) = OPS[c.op].reference({}, c.inputs)
    assert TensorType.of(ref) == infer(c) and ref.dtype == np.bool_
    expected = onnxruntime_one_node(ONNX_NAME[c.op], c.inputs)
    np.testing.assert_array_equal(ref, expected)
    assert 0 < ref.sum() < ref.size or ref.size == 1, "a constant result checks little"


@pytest.mark.parametrize("c", CASES)
def test_declare_matches_reference(c: Case) -> None:
    (ref,) = OPS[c.op].reference({}, c.inputs)
    (got,) = evaluate(declare_dag(c), c.inputs)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("c", COMPILED)
def test_compiled_matches_reference(c: Case) -> None:
    (ref,) = OPS[c.op].reference({}, c.inputs)
    out = ~ref  # every element wrong until the kernel writes it
    build(declare_dag(c), None, "llvm")(*c.inputs, out)
    np.testing.assert_array_equal(out, ref)


def test_patterns() -> None:
    for op in (*COMPARE, *LOGICAL):
        assert OPS[op].pattern == OpPattern.BROADCAST, op
    assert OPS["logical_not"].pattern == OpPattern.ELEMWISE


@pytest.mark.parametrize(
    ("op", "types", "message"),
    [
        ("less", [TensorType((3,), "bool")] * 2, r"op 'less': input 0 has dtype bool"),
        ("greater", [TensorType((3,), "float32"), TensorType((3,), "int64")], r"input 1 is int64"),
        ("logical_and", [TensorType((3,), "float32")] * 2, r"op 'logical_and': input 0 has dtype float32"),
        (
            "logical_not",
            [TensorType((3,), "int32")],
            r"op 'logical_not': input 0 has dtype int32, the op needs bool",
        ),
        ("logical_or", [TensorType((3,), "bool"), TensorType((2,), "bool")], r"do not broadcast"),
    ],
)
def test_wrong_operands_are_named(op: str, types: list[TensorType], message: str) -> None:
    with pytest.raises(GraphError, match=message):
        OPS[op].infer({}, types)


# ------------------------------------------------------------------------------------------
# ONNX import and writing


def import_case(onnx_op: str) -> OnnxCase:
    if onnx_op == "Not":
        return OnnxCase("not", [node("Not", ["a"], ["y"])], {"a": ((3, 4), "bool")}, {"y": "bool"})
    dtype = "bool" if onnx_op in ("And", "Or") else "float32"
    inputs = {"a": ((2, 3, 4), dtype), "b": ((3, 1), dtype)}
    return OnnxCase(onnx_op.lower(), [node(onnx_op, ["a", "b"], ["y"])], inputs, {"y": "bool"})


@pytest.mark.parametrize("opset", [13, 17, 21])
@pytest.mark.parametrize("onnx_op", sorted(ONNX_NAME.values()))
def test_onnx_import_matches_onnxruntime(onnx_op: str, opset: int) -> None:
    graph = check_case(import_case(onnx_op), opset)
    assert [n.op for n in graph.nodes] == [next(k for k, v in ONNX_NAME.items() if v == onnx_op)]


def test_integer_comparisons_import() -> None:
    inputs = {"a": ((4, 5), "int64"), "b": ((5,), "int64")}
    nodes = [node("Less", ["a", "b"], ["lt"]), node("GreaterOrEqual", ["a", "b"], ["ge"])]
    nodes += [node("Or", ["lt", "ge"], ["all"]), node("Not", ["all"], ["none"])]
    case = OnnxCase("int-compare", nodes, inputs, {"lt": "bool", "ge": "bool", "none": "bool"})
    check_case(case, 17)


def compare_graph() -> Graph:
    nodes = [Node(op, ("x", "y"), (op,), {}) for op in COMPARE]
    nodes += [
        Node("logical_and", ("less", "greater_equal"), ("both",), {}),
        Node("logical_or", ("less_equal", "greater"), ("either",), {}),
        Node("logical_not", ("both",), ("neither",), {}),
    ]
    types = {"x": TensorType((3, 4), "float32"), "y": TensorType((4,), "float32")}
    return Graph(types, nodes, ["neither", "either", "less"], {}, name="compare")


@pytest.mark.parametrize("opset", [13, 17])
def test_writer_round_trip(opset: int) -> None:
    graph = compare_graph()
    inputs = {"x": halves(3, 4), "y": halves(4)}
    expected = run_reference(graph, inputs)
    model = to_onnx(graph, opset=opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for got, want in zip(session.run(None, inputs), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    imported = from_onnx(model)
    assert sorted(n.op for n in imported.nodes) == sorted(n.op for n in graph.nodes)
    for got, want in zip(run_reference(imported, inputs), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore::ansor_py.network.executor.NetworkBuildWarning")
def test_negative_index_pattern_builds() -> None:
    """``take`` with indices wrapped as PyTorch's exporters write it: where(i < 0, i + n, i)."""
    table = RNG.standard_normal((7, 5)).astype(np.float32)
    nodes = [
        Node("less", ("ids", "zero"), ("negative",), {}),
        Node("add", ("ids", "n"), ("wrapped",), {}),
        Node("where", ("negative", "wrapped", "ids"), ("index",), {}),
        Node("take", ("table", "index"), ("rows",), {"axis": 0}),
        Node("relu", ("rows",), ("out",), {}),
    ]
    constants: dict[str, np.ndarray] = {
        "zero": np.array(0, np.int64),
        "n": np.array(7, np.int64),
        "table": table,
    }
    graph = Graph({"ids": TensorType((2, 6), "int64")}, nodes, ["out"], constants, name="gather")
    ids = np.array([[0, -1, 3, -7, 6, 2], [-3, 1, 5, -2, 4, 0]], np.int64)
    (expected,) = run_reference(graph, {"ids": ids})
    np.testing.assert_array_equal(expected, np.maximum(table[ids % 7], 0))
    (got,) = build_network(graph).run_inputs({"ids": ids})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)
