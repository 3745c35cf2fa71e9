"""The tensor op family (``ansor_py.network.ops.tensor``): the injective ops that move
elements without arithmetic (reshape, transpose, concat, slice, take, broadcast_to, pad).

Each ``case`` is checked at the three levels of ``op_checks``, against the ONNX op that
imports to it (Reshape, Transpose, Concat, Slice, Gather, Expand, Pad at opset 17). Beside
them: slicing backwards through index 0, an out-of-range ``take`` index, and GraphErrors
that name the op, the attribute or operand and the value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from op_checks import RandomArrays, case, case_tests, declare_dag, infer_error_test

from ansor_py.network.ops import OPS
from ansor_py.network.types import GraphError, TensorType
from ir.reference import evaluate

ARRAYS = RandomArrays(20261207)
floats, ints = ARRAYS.floats, ARRAYS.ints


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
        [floats(11, 4), ints(2, 5, low=-11, high=11)],
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


#: the three levels (``op_checks``), each a test parametrized by CASES
(
    test_reference_matches_onnxruntime,
    test_declare_matches_reference,
    test_compiled_matches_reference,
    test_parallel_vectorized_schedule_matches_reference,
) = case_tests(CASES)


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


test_bad_operands_and_attributes = infer_error_test(ERRORS)
