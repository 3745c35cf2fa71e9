"""The tensor op family: injective data movement (reshape, transpose, concat, slice, take,
broadcast_to, constant pad), TVM's ``topi.transform`` / ``topi.nn.pad``.

Each output element reads input elements through an index map and computes nothing, so
every op is ``INJECTIVE`` (TVM's ``TOpPattern`` for the same Relay ops): FuseOps puts it in
the group of its consumer and Ansor inlines it into the consumer's loop nest (paper
section 4.1, "always inline" for injective ops).

Attributes are static and already normalised by the frontend (ONNX's dynamic shape inputs
folded to tuples, negative axes made non-negative, slice bounds clamped). The conventions
that differ from numpy are stated where they matter: ``slice`` with a negative step reads
``end == -1`` as "through index 0" (Python's ``range``, not numpy's "up to the last
element"); ``take`` counts negative indices from the end, as ONNX Gather; ``pad`` is
ONNX's constant mode with non-negative pads.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ansor_py.network.ops.base import Attrs, OpDef, OpPattern, attr, op_table
from ansor_py.network.ops.elementwise import broadcast_shapes, check_same_dtype
from ansor_py.network.types import GraphError, TensorType
from ir import dtype as dt
from ir import topi
from ir.te import Tensor


def _int_tuple(attrs: Attrs, key: str, op: str, length: int | None = None) -> tuple[int, ...]:
    """``attrs[key]`` as a tuple of ints (of ``length`` entries when given)."""
    value = attr(attrs, key, op)
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value
    ):
        raise GraphError(f"op '{op}': attribute '{key}' is {value!r}, expected a tuple of ints")
    values = tuple(int(v) for v in value)
    if length is not None and len(values) != length:
        raise GraphError(
            f"op '{op}': attribute '{key}' {values} has {len(values)} entries, expected {length}"
        )
    return values


def _axis(attrs: Attrs, op: str, rank: int) -> int:
    axis = attr(attrs, "axis", op)
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not 0 <= axis < rank:
        raise GraphError(f"op '{op}': attribute 'axis' is {axis!r}, expected an int in 0..{rank - 1}")
    return int(axis)


# --- reshape ---------------------------------------------------------------------------


def _reshape_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    shape = _int_tuple(attrs, "shape", "reshape")
    if any(d < 0 for d in shape):
        raise GraphError(
            f"op 'reshape': attribute 'shape' {shape} has a negative entry (the frontend resolves -1)"
        )
    if math.prod(shape) != types[0].size:
        raise GraphError(
            f"op 'reshape': attribute 'shape' {shape} holds {math.prod(shape)} elements, "
            f"input 0 {list(types[0].shape)} holds {types[0].size}"
        )
    return [TensorType(shape, types[0].dtype)]


def _reshape_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.reshape(arrays[0], _int_tuple(attrs, "shape", "reshape"))]


def _reshape_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.reshape(tensors[0], _int_tuple(attrs, "shape", "reshape"), name=name)]


# --- transpose -------------------------------------------------------------------------


def _perm(attrs: Attrs, rank: int) -> tuple[int, ...]:
    perm = _int_tuple(attrs, "perm", "transpose", rank)
    if sorted(perm) != list(range(rank)):
        raise GraphError(f"op 'transpose': attribute 'perm' {perm} is not a permutation of 0..{rank - 1}")
    return perm


def _transpose_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    perm = _perm(attrs, types[0].ndim)
    return [TensorType(tuple(types[0].shape[p] for p in perm), types[0].dtype)]


def _transpose_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    return [np.asarray(np.transpose(x, _perm(attrs, x.ndim)), order="C")]


def _transpose_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.transpose(tensors[0], _perm(attrs, tensors[0].ndim), name=name)]


# --- concat ----------------------------------------------------------------------------


def _concat_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    first = types[0]
    if first.ndim == 0:
        raise GraphError("op 'concat': input 0 is a scalar; concat needs tensors of rank >= 1")
    axis = _axis(attrs, "concat", first.ndim)
    dtype = check_same_dtype("concat", types)
    for n, t in enumerate(types[1:], start=1):
        if t.ndim != first.ndim or any(t.shape[d] != first.shape[d] for d in range(first.ndim) if d != axis):
            raise GraphError(
                f"op 'concat': input {n} {list(t.shape)} does not match input 0 {list(first.shape)} "
                f"outside axis {axis}"
            )
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [TensorType(tuple(shape), dtype)]


def _concat_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate([np.asarray(a) for a in arrays], axis=int(attr(attrs, "axis", "concat")))]


def _concat_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    axis = _axis(attrs, "concat", tensors[0].ndim)
    parts = [t for t in tensors if t.shape[axis] > 0]
    return [topi.concatenate(parts, axis, name=name)]


# --- slice -----------------------------------------------------------------------------


def _slice_attrs(attrs: Attrs, shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(start, end, step) per axis, checked against the clamped convention."""
    rank = len(shape)
    starts = _int_tuple(attrs, "starts", "slice", rank)
    ends = _int_tuple(attrs, "ends", "slice", rank)
    steps = _int_tuple(attrs, "steps", "slice", rank)
    for d, (b, e, s, n) in enumerate(zip(starts, ends, steps, shape, strict=True)):
        if s == 0:
            raise GraphError(f"op 'slice': attribute 'steps' {steps} has 0 at axis {d}")
        if s > 0 and not 0 <= b <= e <= n:
            raise GraphError(
                f"op 'slice': axis {d} (extent {n}) start {b} end {e} step {s}: a positive step "
                f"needs 0 <= start <= end <= {n}"
            )
        if s < 0 and not n - 1 >= b >= e >= -1:
            raise GraphError(
                f"op 'slice': axis {d} (extent {n}) start {b} end {e} step {s}: a negative step "
                f"needs {n - 1} >= start >= end >= -1"
            )
    return list(zip(starts, ends, steps, strict=True))


def _slice_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    ranges = _slice_attrs(attrs, types[0].shape)
    return [TensorType(tuple(len(range(b, e, s)) for b, e, s in ranges), types[0].dtype)]


def _slice_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    index = tuple(_numpy_slice(b, e, s) for b, e, s in _slice_attrs(attrs, x.shape))
    return [np.asarray(x[index], order="C")]


def _numpy_slice(start: int, end: int, step: int) -> slice:
    """The numpy slice taking ``range(start, end, step)`` (numpy reads -1 as the last
    element; here a negative step's end -1 means "through index 0")."""
    if len(range(start, end, step)) == 0:
        return slice(0, 0, 1)
    return slice(start, None if (step < 0 and end == -1) else end, step)


def _slice_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    ranges = _slice_attrs(attrs, tensors[0].shape)
    starts, ends, steps = ([r[k] for r in ranges] for k in range(3))
    return [topi.strided_slice(tensors[0], starts, ends, steps, name=name)]


# --- take ------------------------------------------------------------------------------


def _take_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    data, indices = types
    if data.ndim == 0:
        raise GraphError("op 'take': input 0 (data) is a scalar; take needs a tensor of rank >= 1")
    axis = _axis(attrs, "take", data.ndim)
    if indices.dtype not in ("int32", "int64"):
        raise GraphError(f"op 'take': input 1 (indices) has dtype {indices.dtype}, expected int32 or int64")
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1 :]
    return [TensorType(shape, data.dtype)]


def _take_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """ONNX Gather: indices in [-n, n-1]; anything else is an error (naming the index)."""
    data, indices = np.asarray(arrays[0]), np.asarray(arrays[1])
    axis = _axis(attrs, "take", data.ndim)
    extent = data.shape[axis]
    bad = (indices < -extent) | (indices >= extent)
    if np.any(bad):
        value = int(indices[bad].flat[0])
        raise GraphError(
            f"op 'take': index {value} is out of range [{-extent}, {extent - 1}] for axis {axis}"
        )
    return [np.take(data, np.where(indices < 0, indices + extent, indices), axis=axis)]


def _take_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    axis = _axis(attrs, "take", tensors[0].ndim)
    return [topi.take(tensors[0], tensors[1], axis, name=name)]


# --- broadcast_to ----------------------------------------------------------------------


def _broadcast_to_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    shape = _int_tuple(attrs, "shape", "broadcast_to")
    if broadcast_shapes("broadcast_to", [types[0].shape, shape]) != shape:
        raise GraphError(
            f"op 'broadcast_to': attribute 'shape' {shape} is not the broadcast of input 0 "
            f"{list(types[0].shape)} with it (the frontend gives the full output shape)"
        )
    return [TensorType(shape, types[0].dtype)]


def _broadcast_to_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    shape = _int_tuple(attrs, "shape", "broadcast_to")
    return [np.asarray(np.broadcast_to(arrays[0], shape), order="C")]


def _broadcast_to_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.broadcast_to(tensors[0], _int_tuple(attrs, "shape", "broadcast_to"), name=name)]


# --- pad -------------------------------------------------------------------------------


def _pad_attrs(attrs: Attrs, ttype: TensorType) -> tuple[tuple[int, ...], tuple[int, ...], Any]:
    rank = ttype.ndim
    pads = _int_tuple(attrs, "pads", "pad", 2 * rank)
    if any(p < 0 for p in pads):
        raise GraphError(f"op 'pad': attribute 'pads' {pads} has a negative entry (crop with slice)")
    given = attr(attrs, "value", "pad", 0.0)
    if isinstance(given, bool) or not isinstance(given, numbers.Real):
        raise GraphError(f"op 'pad': attribute 'value' is {given!r}, expected a number")
    value: float | int | bool = float(given)
    if dt.is_int(ttype.dtype):
        if not float(value).is_integer():
            raise GraphError(
                f"op 'pad': attribute 'value' {given!r} is not an integer, the input is {ttype.dtype}"
            )
        value = int(value)
    elif dt.is_bool(ttype.dtype):
        value = bool(value)
    return pads[:rank], pads[rank:], value


def _pad_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    before, after, _ = _pad_attrs(attrs, types[0])
    shape = tuple(n + b + a for n, b, a in zip(types[0].shape, before, after, strict=True))
    return [TensorType(shape, types[0].dtype)]


def _pad_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    before, after, value = _pad_attrs(attrs, TensorType.of(x))
    widths = list(zip(before, after, strict=True))
    return [np.pad(x, widths, mode="constant", constant_values=np.asarray(value, dtype=x.dtype))]


def _pad_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    x = tensors[0]
    before, after, value = _pad_attrs(attrs, TensorType(x.shape, x.dtype))
    return [topi.pad(x, list(before), list(after), value, name=name)]


TENSOR_OPS: dict[str, OpDef] = op_table(
    OpDef("reshape", OpPattern.INJECTIVE, _reshape_infer, _reshape_reference, _reshape_declare),
    OpDef("transpose", OpPattern.INJECTIVE, _transpose_infer, _transpose_reference, _transpose_declare),
    OpDef("concat", OpPattern.INJECTIVE, _concat_infer, _concat_reference, _concat_declare, arity=(1, None)),
    OpDef("slice", OpPattern.INJECTIVE, _slice_infer, _slice_reference, _slice_declare),
    OpDef("take", OpPattern.INJECTIVE, _take_infer, _take_reference, _take_declare, arity=(2, 2)),
    OpDef(
        "broadcast_to",
        OpPattern.INJECTIVE,
        _broadcast_to_infer,
        _broadcast_to_reference,
        _broadcast_to_declare,
    ),
    OpDef("pad", OpPattern.INJECTIVE, _pad_infer, _pad_reference, _pad_declare),
)
