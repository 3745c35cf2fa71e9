"""Attribute checks and window arithmetic shared by the NN op family (conv, pool, norm).

Every check raises ``GraphError`` naming the op, the attribute and the value it rejects
("conv: attribute 'strides' = (0, 1) must hold 2 ints >= 1"), so a bad ONNX model fails at
graph construction with a message that points at the attribute, the way TVM's Relay type
relations reject a bad ``Conv2DAttrs`` before anything is lowered.

Spatial layouts are the strings of the op vocabulary: the data layout names each axis by a
letter (N batch, C channels, D/H/W spatial), the kernel layout likewise (O out channels,
I in channels per group, D/H/W kernel extents). ``perm_between`` gives the transpose
from one layout string to another; references and declarations use it to reach the one
layout their arithmetic is written for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansor_py.network.ops.base import Attrs, attr
from ansor_py.network.types import GraphError, TensorType
from ir import dtype as dt

DATA_LAYOUTS = ("NCW", "NCHW", "NCDHW", "NWC", "NHWC", "NDHWC")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_tuple(
    attrs: Attrs, key: str, op: str, length: int, minimum: int, default: Any = ...
) -> tuple[int, ...]:
    """``attrs[key]`` as ``length`` ints, each >= ``minimum``."""
    value = attr(attrs, key, op, default)
    if not isinstance(value, tuple | list) or len(value) != length or not all(is_int(v) for v in value):
        raise GraphError(f"{op}: attribute '{key}' = {value!r} must be a tuple of {length} ints")
    if any(v < minimum for v in value):
        raise GraphError(f"{op}: attribute '{key}' = {tuple(value)!r} must hold ints >= {minimum}")
    return tuple(value)


def int_attr(attrs: Attrs, key: str, op: str, minimum: int, default: Any = ...) -> int:
    value = attr(attrs, key, op, default)
    if not is_int(value) or value < minimum:
        raise GraphError(f"{op}: attribute '{key}' = {value!r} must be an int >= {minimum}")
    return int(value)


def bool_attr(attrs: Attrs, key: str, op: str, default: Any = ...) -> bool:
    value = attr(attrs, key, op, default)
    if not isinstance(value, bool | int) or value not in (0, 1):
        raise GraphError(f"{op}: attribute '{key}' = {value!r} must be a bool")
    return bool(value)


def float_attr(attrs: Attrs, key: str, op: str, minimum: float, default: Any = ...) -> float:
    value = attr(attrs, key, op, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= minimum:
        raise GraphError(f"{op}: attribute '{key}' = {value!r} must be a number >= {minimum}")
    return float(value)


def choice(attrs: Attrs, key: str, op: str, allowed: Sequence[str], default: Any = ...) -> str:
    value = attr(attrs, key, op, default)
    if value not in allowed:
        raise GraphError(f"{op}: attribute '{key}' = {value!r} must be one of {', '.join(allowed)}")
    return str(value)


def axes_attr(attrs: Attrs, key: str, op: str, rank: int) -> tuple[int, ...]:
    """Distinct axes in [0, rank), sorted; the frontend has made them non-negative."""
    value = attr(attrs, key, op)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, tuple | list) or not value or not all(is_int(v) for v in value):
        raise GraphError(f"{op}: attribute '{key}' = {value!r} must be a non-empty tuple of ints")
    if len(set(value)) != len(value) or any(not 0 <= v < rank for v in value):
        raise GraphError(f"{op}: attribute '{key}' = {tuple(value)!r} must hold distinct axes in [0, {rank})")
    return tuple(sorted(value))


def float_input(t: TensorType, what: str, op: str) -> None:
    if not dt.is_float(t.dtype):
        raise GraphError(f"{op}: input '{what}' has dtype {t.dtype}, a float dtype is needed")


def same_dtype(types: Sequence[TensorType], names: Sequence[str], op: str) -> None:
    for t, what in zip(types[1:], names[1:], strict=True):
        if t.dtype != types[0].dtype:
            raise GraphError(
                f"{op}: input '{what}' has dtype {t.dtype}, input '{names[0]}' has {types[0].dtype}"
            )


def rank_is(t: TensorType, rank: int, what: str, op: str, layout: str = "") -> None:
    if t.ndim != rank:
        hint = f" ({layout})" if layout else ""
        raise GraphError(f"{op}: input '{what}' must have rank {rank}{hint}, got shape {list(t.shape)}")


def spatial_axes(layout: str) -> list[int]:
    """Positions of the D/H/W axes of a layout string."""
    return [d for d, c in enumerate(layout) if c in "DHW"]


def perm_between(src: str, dst: str) -> tuple[int, ...]:
    """The transpose taking an array in layout ``src`` to layout ``dst`` (same letters)."""
    return tuple(src.index(c) for c in dst)


def window_out(size: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    """Floor-mode output extent of a strided, dilated window; may be < 1 (caller checks)."""
    return (size + before + after - ((kernel - 1) * dilation + 1)) // stride + 1


def check_out(op: str, sizes: Sequence[int], layout: str, in_shape: Sequence[int]) -> None:
    for size in sizes:
        if size < 1:
            raise GraphError(
                f"{op}: the window does not fit input {list(in_shape)} ({layout}): output extent {size}"
            )
