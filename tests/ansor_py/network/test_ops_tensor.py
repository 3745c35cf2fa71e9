"""The tensor op family (``ansor_py.network.ops.tensor``) on random inputs:

1. ``reference`` against onnxruntime running the one-node ONNX model of the op (opset 17:
   Reshape, Transpose, Concat, Slice, Gather, Expand, Pad);
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

from ansor_py.network.ops import OPS
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


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def slice_case(
    label: str,
    x: np.ndarray,
    starts: tuple[int, ...],
    ends: tuple[int, ...],
    steps: tuple[int, ...],
    **kw: Any,
) -> Any:
    """A slice and its ONNX Slice: an end of -1 under a negative step ("through index 0")
    is -(dim + 1) in ONNX, where -1 would mean the last element."""
    onnx_ends = tuple(
        -(n + 1) if (s < 0 and e == -1) else e for e, s, n in zip(ends, steps, x.shape, strict=True)
    )
    constants = [i64(*starts), i64(*onnx_ends), i64(*range(x.ndim)), i64(*steps)]
    attrs = {"starts": starts, "ends": ends, "steps": steps}
    return case(label, "slice", attrs, [x], "Slice", onnx_constants=constants, **kw)


def pad_case(label: str, x: np.ndarray, pads: tuple[int, ...], value: Any, **kw: Any) -> Any:
    constants = [i64(*pads), np.array(value, x.dtype)]
    return case(label, "pad", {"pads": pads, "value": value}, [x], "Pad", onnx_constants=constants, **kw)


CASES = [
    case(
        "reshape",
        "reshape",
        {"shape": (5, 3, 1)},
        [floats(3, 5)],
        "Reshape",
        onnx_constants=[i64(5, 3, 1)],
        compile=True,
    ),
    case(
        "reshape-4d",
        "reshape",
        {"shape": (2, 12)},
        [floats(2, 3, 2, 2)],
        "Reshape",
        onnx_constants=[i64(2, 12)],
    ),
    case(
        "reshape-to-scalar",
        "reshape",
        {"shape": ()},
        [floats(1, 1)],
        "Reshape",
        onnx_constants=[i64()],
        compile=True,
    ),
    case(
        "reshape-int64",
        "reshape",
        {"shape": (7,)},
        [ints(7, 1)],
        "Reshape",
        onnx_constants=[i64(7)],
        compile=True,
    ),
    case(
        "transpose",
        "transpose",
        {"perm": (0, 2, 3, 1)},
        [floats(2, 3, 5, 7)],
        "Transpose",
        onnx_attrs={"perm": [0, 2, 3, 1]},
        compile=True,
    ),
    case(
        "transpose-2d",
        "transpose",
        {"perm": (1, 0)},
        [ints(3, 5, dtype=np.int32)],
        "Transpose",
        onnx_attrs={"perm": [1, 0]},
    ),
    case(
        "concat",
        "concat",
        {"axis": 1},
        [floats(2, 3, 5), floats(2, 1, 5), floats(2, 4, 5)],
        "Concat",
        onnx_attrs={"axis": 1},
        compile=True,
    ),
    case("concat-one", "concat", {"axis": 0}, [floats(3)], "Concat", onnx_attrs={"axis": 0}),
    case(
        "concat-int64-last",
        "concat",
        {"axis": 1},
        [ints(2, 1), ints(2, 3)],
        "Concat",
        onnx_attrs={"axis": 1},
        compile=True,
    ),
    slice_case("slice", floats(5, 7), (1, 0), (4, 7), (1, 2), compile=True),
    slice_case("slice-negative-step", floats(6, 5), (5, 3), (-1, 0), (-2, -1), compile=True),
    slice_case("slice-reverse", floats(4, 3), (3, 0), (-1, 3), (-1, 1)),
    slice_case("slice-negative-step-stop", floats(9), (7,), (2,), (-3,)),
    slice_case("slice-4d", floats(2, 3, 8, 5), (0, 1, 7, 0), (2, 3, 0, 5), (1, 1, -3, 2), compile=True),
    slice_case("slice-int64", ints(10), (2,), (9,), (3,)),
    case(
        "take",
        "take",
        {"axis": 0},
        [floats(7, 3), i64(0, 6, -1, -7, 3)],
        "Gather",
        onnx_attrs={"axis": 0},
        compile=True,
    ),
    case(
        "take-axis1-2d-indices",
        "take",
        {"axis": 1},
        [floats(2, 5, 3), np.array([[-1, 0], [4, -5]], np.int64)],
        "Gather",
        onnx_attrs={"axis": 1},
        compile=True,
    ),
    case(
        "take-scalar-index",
        "take",
        {"axis": 2},
        [floats(2, 3, 4), np.array(-2, np.int64)],
        "Gather",
        onnx_attrs={"axis": 2},
    ),
    case(
        "take-int32-indices",
        "take",
        {"axis": 0},
        [ints(6, 2), np.array([5, -6, 2], np.int32)],
        "Gather",
        onnx_attrs={"axis": 0},
        compile=True,
    ),
    case(
        "take-embedding",
        "take",
        {"axis": 0},
        [floats(11, 4), RNG.integers(-11, 11, (2, 5)).astype(np.int64)],
        "Gather",
        onnx_attrs={"axis": 0},
    ),
    case(
        "broadcast_to",
        "broadcast_to",
        {"shape": (2, 3, 4, 5)},
        [floats(5)],
        "Expand",
        onnx_constants=[i64(2, 3, 4, 5)],
        compile=True,
    ),
    case(
        "broadcast_to-middle",
        "broadcast_to",
        {"shape": (3, 4, 5)},
        [floats(3, 1, 5)],
        "Expand",
        onnx_constants=[i64(3, 4, 5)],
    ),
    case(
        "broadcast_to-scalar",
        "broadcast_to",
        {"shape": (2, 3)},
        [np.array(1.5, np.float32)],
        "Expand",
        onnx_constants=[i64(2, 3)],
    ),
    case(
        "broadcast_to-int64",
        "broadcast_to",
        {"shape": (4, 3)},
        [ints(1, 3)],
        "Expand",
        onnx_constants=[i64(4, 3)],
        compile=True,
    ),
    pad_case("pad", floats(1, 3, 5, 5), (0, 0, 1, 2, 0, 0, 2, 1), 0.0, compile=True),
    pad_case("pad-value", floats(3, 4), (1, 0, 2, 3), -1.5, compile=True),
    pad_case("pad-int64", ints(5), (2, 1), 7, compile=True),
    pad_case("pad-numpy-value", floats(2, 3), (1, 1, 0, 2), np.float32(0.5)),
    pad_case("pad-minus-inf", floats(3, 2), (2, 0, 1, 1), float("-inf"), compile=True),
    pad_case("pad-none", floats(2, 3), (0, 0, 0, 0), 1.0),
]


def _out_type(c: Case) -> TensorType:
    return OPS[c.op].infer(c.attrs, [TensorType.of(a) for a in c.inputs])[0]


@pytest.mark.parametrize("c", CASES)
def test_reference_matches_onnxruntime(c: Case) -> None:
    out_type = _out_type(c)
    (ref,) = OPS[c.op].reference(c.attrs, c.inputs)
    assert TensorType.of(ref) == out_type
    ort_out = run_onnxruntime(c.onnx_op, c.inputs, out_type, c.onnx_attrs, c.onnx_constants, c.opset)
    assert ort_out.dtype == ref.dtype
    assert_close(ref, ort_out)


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


def test_slice_end_minus_one_means_through_index_zero() -> None:
    x = np.arange(5, dtype=np.float32)
    attrs = {"starts": (3,), "ends": (-1,), "steps": (-1,)}
    (ref,) = OPS["slice"].reference(attrs, [x])
    np.testing.assert_array_equal(ref, [3, 2, 1, 0])
    (got,) = evaluate(declare_dag("slice", attrs, [x]), [x])
    np.testing.assert_array_equal(got, ref)


def test_take_reference_rejects_an_index_out_of_range() -> None:
    with pytest.raises(GraphError, match=r"op 'take': index 5 is out of range \[-5, 4\] for axis 0"):
        OPS["take"].reference({"axis": 0}, [floats(5, 2), i64(1, 5)])


def test_patterns() -> None:
    ops = ("reshape", "transpose", "concat", "slice", "take", "broadcast_to", "pad")
    assert {OPS[op].pattern.name for op in ops} == {"INJECTIVE"}


# ------------------------------------------------------------------------------------------
# errors

F32 = TensorType((2, 3), "float32")
I64 = TensorType((2, 3), "int64")
SLICE = {"starts": (0, 0), "ends": (2, 3), "steps": (1, 1)}

ERRORS = [
    (
        "reshape",
        {"shape": (4, 2)},
        [F32],
        r"op 'reshape': attribute 'shape' \(4, 2\) holds 8 elements, input 0 \[2, 3\] holds 6",
    ),
    ("reshape", {"shape": (-1, 3)}, [F32], r"op 'reshape': attribute 'shape' \(-1, 3\) has a negative entry"),
    ("reshape", {"shape": "23"}, [F32], r"op 'reshape': attribute 'shape' is '23', expected a tuple of ints"),
    ("reshape", {}, [F32], r"op 'reshape' needs attribute 'shape'"),
    (
        "transpose",
        {"perm": (0, 0)},
        [F32],
        r"op 'transpose': attribute 'perm' \(0, 0\) is not a permutation of 0..1",
    ),
    (
        "transpose",
        {"perm": (1, 0, 2)},
        [F32],
        r"op 'transpose': attribute 'perm' \(1, 0, 2\) has 3 entries, expected 2",
    ),
    ("concat", {"axis": 2}, [F32, F32], r"op 'concat': attribute 'axis' is 2, expected an int in 0..1"),
    (
        "concat",
        {"axis": 0},
        [F32, TensorType((2, 4))],
        r"op 'concat': input 1 \[2, 4\] does not match input 0 \[2, 3\] outside axis 0",
    ),
    (
        "concat",
        {"axis": 0},
        [F32, I64],
        r"op 'concat': operand dtypes differ: input 0 is float32, input 1 is int64",
    ),
    ("slice", {**SLICE, "steps": (1, 0)}, [F32], r"op 'slice': attribute 'steps' \(1, 0\) has 0 at axis 1"),
    ("slice", {**SLICE, "ends": (2, 4)}, [F32], r"op 'slice': axis 1 \(extent 3\) start 0 end 4 step 1"),
    (
        "slice",
        {"starts": (3, 0), "ends": (-1, 3), "steps": (-1, 1)},
        [F32],
        r"op 'slice': axis 0 \(extent 2\) start 3 end -1 step -1: a negative step needs 1 >= start",
    ),
    (
        "slice",
        {"starts": (0,), "ends": (2,), "steps": (1,)},
        [F32],
        r"op 'slice': attribute 'starts' \(0,\) has 1 entries, expected 2",
    ),
    (
        "take",
        {"axis": 0},
        [F32, TensorType((4,), "float32")],
        r"op 'take': input 1 \(indices\) has dtype float32",
    ),
    (
        "take",
        {"axis": 2},
        [F32, TensorType((4,), "int64")],
        r"op 'take': attribute 'axis' is 2, expected an int in 0..1",
    ),
    (
        "broadcast_to",
        {"shape": (4, 3)},
        [F32],
        r"op 'broadcast_to': shapes \[2, 3\] and \[4, 3\] do not broadcast",
    ),
    (
        "broadcast_to",
        {"shape": (3,)},
        [TensorType((2, 3))],
        r"op 'broadcast_to': attribute 'shape' \(3,\) is not the broadcast of input 0 \[2, 3\]",
    ),
    ("pad", {"pads": (0, 1, 0)}, [F32], r"op 'pad': attribute 'pads' \(0, 1, 0\) has 3 entries, expected 4"),
    (
        "pad",
        {"pads": (0, -1, 0, 0)},
        [F32],
        r"op 'pad': attribute 'pads' \(0, -1, 0, 0\) has a negative entry",
    ),
    (
        "pad",
        {"pads": (0, 1, 0, 0), "value": 0.5},
        [I64],
        r"op 'pad': attribute 'value' 0.5 is not an integer, the input is int64",
    ),
]


@pytest.mark.parametrize(("op", "attrs", "types", "match"), ERRORS)
def test_bad_operands_and_attributes(
    op: str, attrs: dict[str, Any], types: list[TensorType], match: str
) -> None:
    with pytest.raises(GraphError, match=match):
        OPS[op].infer(attrs, types)
