"""Shared helpers of the operator library: argument checking, padding tuples, shapes.

Every operator validates its arguments before it declares anything, and a bad argument
raises ``TopiError`` with the operator's name, the value and the limit it broke
("conv2d_nchw: input channels 64 not divisible by groups 3"). Shapes are static ints.

``compute_named`` declares a compute whose rank is only known at run time (elementwise ops,
reductions, pooling over any layout) with TVM's axis names ``ax0, ax1, ...``: ``te.compute``
names the axes after the parameters of its lambda, so the helper hands it a function whose
signature lists those names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ir.expr import Expr, ExprLike, IterVar
from ir.te import DeclarationError, Tensor, compute


class TopiError(DeclarationError):
    """Bad arguments to an operator of the library: a shape, stride or padding out of range."""


def compute_named(
    shape: Sequence[int],
    axis_names: Sequence[str],
    fbody: Callable[[tuple[IterVar, ...]], ExprLike],
    name: str,
    tag: str = "",
    attrs: dict[str, Any] | None = None,
) -> Tensor:
    """``te.compute(shape, ...)`` with the axes named ``axis_names``; ``fbody`` receives
    the axes as one tuple."""
    if len(axis_names) != len(shape):
        raise TopiError(f"{name}: {len(axis_names)} axis names for a shape of rank {len(shape)}")

    def fcompute(*axes: IterVar) -> ExprLike:
        return fbody(axes)

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in axis_names]
    fcompute.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return compute(tuple(shape), fcompute, name=name, tag=tag, attrs=attrs)


def ax_names(rank: int) -> list[str]:
    """TVM's names for the axes of a rank-generic op: ax0, ax1, ..."""
    return [f"ax{d}" for d in range(rank)]


def as_tuple(value: int | Sequence[int], length: int, what: str, op: str) -> tuple[int, ...]:
    """An int repeated ``length`` times, or a sequence of exactly ``length`` ints."""
    values = (value,) * length if isinstance(value, int) else tuple(value)
    if len(values) != length or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TopiError(f"{op}: {what} {value!r} must be an int or {length} ints")
    return values


def positive(values: Sequence[int], what: str, op: str) -> None:
    for v in values:
        if v < 1:
            raise TopiError(f"{op}: {what} {list(values)} must be positive, got {v}")


def padding_nd(padding: int | Sequence[int], ndim: int, op: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(before, after) per spatial dimension, from TVM's padding forms.

    ``padding`` is an int (all sides), ``ndim`` ints (symmetric per dimension), or
    ``2 * ndim`` ints: all the "before" pads then all the "after" pads, e.g. for 2-D
    (top, left, bottom, right) as TVM's ``get_pad_tuple``.
    """
    if isinstance(padding, bool):
        raise TopiError(f"{op}: padding {padding!r} must be an int, {ndim} ints or {2 * ndim} ints")
    if isinstance(padding, int):
        values: tuple[int, ...] = (padding,) * (2 * ndim)
    else:
        values = tuple(padding)
        if len(values) == ndim:
            values = values + values
        if len(values) != 2 * ndim or not all(isinstance(v, int) for v in values):
            raise TopiError(f"{op}: padding {padding!r} must be an int, {ndim} ints or {2 * ndim} ints")
    for v in values:
        if v < 0:
            raise TopiError(f"{op}: padding {list(values)} must be non-negative, got {v}")
    return values[:ndim], values[ndim:]


def conv_out_size(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int, op: str, dim: str
) -> int:
    """Output extent of a strided, dilated window: (size + pads - dilated kernel) // stride + 1."""
    dilated = (kernel - 1) * dilation + 1
    padded = size + before + after
    if dilated > padded:
        raise TopiError(f"{op}: kernel {dilated} larger than padded input {padded} along {dim}")
    return (padded - dilated) // stride + 1


def check_rank(t: Tensor, rank: int, what: str, op: str, layout: str = "") -> None:
    if t.ndim != rank:
        hint = f" ({layout})" if layout else ""
        raise TopiError(f"{op}: {what} must have {rank} dimensions{hint}, got shape {list(t.shape)}")


def normalize_axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise TopiError(f"{op}: axis {axis} out of range for a tensor of rank {rank}")
    return axis % rank


def scaled(e: Expr, factor: int) -> Expr:
    """``e * factor``, or ``e`` itself when the factor is 1 (keeps declarations readable)."""
    return e if factor == 1 else e * factor


def window_index(out: Expr, stride: int, offset: Expr, dilation: int) -> Expr:
    """The input index ``out * stride + offset * dilation`` read by a sliding window."""
    return scaled(out, stride) + scaled(offset, dilation)


def op_label(func: str, name: str) -> str:
    """How error messages name an operator call: ``conv2d_nchw``, or
    ``conv2d_nchw 'res2a'`` when the op was given another name."""
    return func if name == func else f"{func} '{name}'"
