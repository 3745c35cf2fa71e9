"""Layout transforms: transpose, reshape, concatenate, strided_slice, take, broadcast_to
(TVM's ``topi.transform``).

They move data without arithmetic, so each is one injective compute whose body is an
index mapping; Ansor inlines them into their consumers where it can (paper section 4.1).
``reshape`` goes through the row-major linear index with floordiv/floormod, the form
Ansor's access analysis and the lowering's index simplifier both understand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ir import dtype as dt
from ir import te
from ir.expr import Expr, ExprLike, IterVar, const, max_expr, min_expr
from ir.te import Tensor
from ir.topi.utils import TopiError, ax_names, compute_named, normalize_axis


def transpose(x: Tensor, axes: Sequence[int] | None = None, name: str = "T_transpose") -> Tensor:
    """``out[i_0, ..., i_{r-1}]`` reads ``x`` with ``index[axes[d]] = i_d``; axes default to
    reversed order, as numpy."""
    rank = x.ndim
    perm = (
        list(reversed(range(rank)))
        if axes is None
        else [normalize_axis(a, rank, f"transpose '{name}'") for a in axes]
    )
    if sorted(perm) != list(range(rank)):
        raise TopiError(f"transpose '{name}': axes {list(axes or [])} are not a permutation of 0..{rank - 1}")
    out_shape = [x.shape[a] for a in perm]

    def body(idx: tuple[IterVar, ...]) -> Expr:
        source: list[Expr] = [idx[0]] * rank
        for d, a in enumerate(perm):
            source[a] = idx[d]
        return x[tuple(source)]

    return compute_named(out_shape, ax_names(rank), body, name=name, tag="injective")


def _row_major_strides(shape: Sequence[int]) -> list[int]:
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    return strides


def reshape(x: Tensor, newshape: Sequence[int], name: str = "T_reshape") -> Tensor:
    """The same elements in row-major order under ``newshape``; one entry may be -1."""
    shape = list(newshape)
    total = math.prod(x.shape)
    if shape.count(-1) > 1:
        raise TopiError(f"reshape '{name}': newshape {shape} has more than one -1")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known <= 0 or total % known:
            raise TopiError(
                f"reshape '{name}': cannot infer -1 in {shape} for {total} elements of {list(x.shape)}"
            )
        shape[shape.index(-1)] = total // known
    if any(s < 1 for s in shape) or math.prod(shape) != total:
        raise TopiError(
            f"reshape '{name}': newshape {list(newshape)} holds {math.prod(shape)} elements, "
            f"data {list(x.shape)} holds {total}"
        )
    out_strides = _row_major_strides(shape)
    in_strides = _row_major_strides(x.shape)

    def body(idx: tuple[IterVar, ...]) -> Expr:
        linear: Expr | None = None
        for i, stride, extent in zip(idx, out_strides, shape, strict=True):
            if extent == 1:
                continue
            term = i * stride if stride != 1 else i
            linear = term if linear is None else linear + term
        source: list[ExprLike] = []
        for d, (stride, extent) in enumerate(zip(in_strides, x.shape, strict=True)):
            if linear is None or extent == 1:
                source.append(0)
                continue
            e = linear // stride if stride != 1 else linear
            source.append(e % extent if d > 0 else e)
        return x[tuple(source)]

    return compute_named(shape, ax_names(len(shape)), body, name=name, tag="injective")


def concatenate(tensors: Sequence[Tensor], axis: int = 0, name: str = "T_concat") -> Tensor:
    """``tensors`` joined along ``axis``; all other extents must agree."""
    if not tensors:
        raise TopiError(f"concatenate '{name}': needs at least one tensor")
    first = tensors[0]
    ax = normalize_axis(axis, first.ndim, f"concatenate '{name}'")
    for t in tensors[1:]:
        same_rest = t.ndim == first.ndim and all(
            t.shape[d] == first.shape[d] for d in range(first.ndim) if d != ax
        )
        if not same_rest or t.dtype != first.dtype:
            raise TopiError(
                f"concatenate '{name}': tensor '{t.name}' {list(t.shape)} {t.dtype} does not match "
                f"'{first.name}' {list(first.shape)} {first.dtype} outside axis {axis}"
            )
    offsets = [0]
    for t in tensors:
        offsets.append(offsets[-1] + t.shape[ax])
    out_shape = list(first.shape)
    out_shape[ax] = offsets[-1]

    def body(idx: tuple[IterVar, ...]) -> Expr:
        def read(k: int) -> Expr:
            source: list[Expr] = list(idx)
            source[ax] = idx[ax] - offsets[k] if offsets[k] else idx[ax]
            return tensors[k][tuple(source)]

        result = read(len(tensors) - 1)
        for k in range(len(tensors) - 2, -1, -1):
            result = te.if_then_else(idx[ax] < offsets[k + 1], read(k), result)
        return result

    return compute_named(out_shape, ax_names(len(out_shape)), body, name=name, tag="injective")


def strided_slice(
    x: Tensor, begin: Sequence[int], end: Sequence[int], strides: Sequence[int], name: str = "T_strided_slice"
) -> Tensor:
    """``out[i_d] = x[begin_d + i_d * strides_d]`` with ``len(range(begin_d, end_d, strides_d))``
    elements per axis (TVM's ``strided_slice`` on in-range, already clamped bounds). For a
    negative stride, ``end_d == -1`` runs through index 0, as Python's ``range`` does."""
    rank = x.ndim
    for what, values in (("begin", begin), ("end", end), ("strides", strides)):
        if len(values) != rank:
            raise TopiError(
                f"strided_slice '{name}': {what} {list(values)} has {len(values)} entries, "
                f"data '{x.name}' has {rank} dimensions"
            )
    out_shape: list[int] = []
    for d, (b, e, s, n) in enumerate(zip(begin, end, strides, x.shape, strict=True)):
        if s == 0:
            raise TopiError(f"strided_slice '{name}': stride of axis {d} is 0")
        length = len(range(b, e, s))
        if length < 1 or not (0 <= b < n and 0 <= b + (length - 1) * s < n):
            raise TopiError(
                f"strided_slice '{name}': axis {d} range({b}, {e}, {s}) selects {length} elements "
                f"of extent {n}; it must select at least one, inside 0..{n - 1}"
            )
        out_shape.append(length)

    def body(idx: tuple[IterVar, ...]) -> Expr:
        source: list[ExprLike] = []
        for i, b, s, n_out in zip(idx, begin, strides, out_shape, strict=True):
            if n_out == 1:
                source.append(b)
                continue
            term: Expr = i * s if s != 1 else i
            source.append(term + b if b else term)
        return x[tuple(source)]

    return compute_named(out_shape, ax_names(rank), body, name=name, tag="injective")


def take(data: Tensor, indices: Tensor, axis: int = 0, name: str = "T_take") -> Tensor:
    """``out[a..., j..., b...] = data[a..., indices[j...], b...]`` (numpy's ``take`` along one
    axis, ONNX Gather): a negative index counts from the end; an index still outside the
    axis is clamped into it (TVM's ``mode="clip"``), so no read leaves ``data``."""
    if not dt.is_int(indices.dtype):
        raise TopiError(f"take '{name}': indices '{indices.name}' have dtype {indices.dtype}, not an integer")
    ax = normalize_axis(axis, data.ndim, f"take '{name}'")
    extent = data.shape[ax]
    out_shape = [*data.shape[:ax], *indices.shape, *data.shape[ax + 1 :]]
    k = indices.ndim

    def body(idx: tuple[IterVar, ...]) -> Expr:
        raw = indices[tuple(idx[ax : ax + k])]
        size = const(extent, raw.dtype)
        wrapped = te.if_then_else(raw < const(0, raw.dtype), raw + size, raw)
        clamped = min_expr(max_expr(wrapped, const(0, raw.dtype)), const(extent - 1, raw.dtype))
        return data[(*idx[:ax], clamped, *idx[ax + k :])]

    return compute_named(out_shape, ax_names(len(out_shape)), body, name=name, tag="injective")


def broadcast_to(x: Tensor, shape: Sequence[int], name: str = "T_broadcast_to") -> Tensor:
    """``x`` stretched to ``shape`` by numpy's rules (dimensions align on the right, an
    extent of 1 stretches); ``shape`` must be the broadcast of itself with ``x.shape``."""
    target = tuple(shape)
    offset = len(target) - x.ndim
    fits = offset >= 0 and all(n in (1, target[offset + d]) for d, n in enumerate(x.shape))
    if not fits:
        raise TopiError(
            f"broadcast_to '{name}': cannot broadcast '{x.name}' {list(x.shape)} to {list(target)}"
        )

    def body(idx: tuple[IterVar, ...]) -> Expr:
        source: list[ExprLike] = []
        for d, n in enumerate(x.shape):
            source.append(0 if n == 1 else idx[offset + d])
        return x[tuple(source)]

    return compute_named(target, ax_names(len(target)), body, name=name, tag="broadcast")
