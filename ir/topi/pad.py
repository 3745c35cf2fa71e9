"""Padding and dilation, declared with ``if_then_else`` as TVM's ``topi.nn.pad`` / ``dilate``.

Both are injective ops that Ansor usually inlines into their consumer (paper section 4.1,
rule "always inline"); declaring them with a guarded read keeps the consumer's access
pattern visible to the search: ``padded[i] = before <= i < before + n ? data[i - before] : v``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ir import te
from ir.expr import Expr, IterVar, convert
from ir.te import Tensor
from ir.topi.utils import TopiError, compute_named


def pad(
    data: Tensor,
    pad_before: Sequence[int],
    pad_after: Sequence[int] | None = None,
    pad_value: float = 0.0,
    name: str = "pad",
) -> Tensor:
    """``data`` surrounded by ``pad_value``: one entry of ``pad_before``/``pad_after`` per
    dimension (``pad_after`` defaults to ``pad_before``). The axes are named ``i0, i1, ...``
    as in TVM's pad."""
    after = list(pad_before) if pad_after is None else list(pad_after)
    before = list(pad_before)
    for what, values in (("pad_before", before), ("pad_after", after)):
        if len(values) != data.ndim:
            raise TopiError(
                f"pad '{name}': {what} {values} has {len(values)} entries, "
                f"data '{data.name}' has {data.ndim} dimensions {list(data.shape)}"
            )
        for v in values:
            if not isinstance(v, int) or v < 0:
                raise TopiError(f"pad '{name}': {what} {values} must hold non-negative ints, got {v!r}")
    out_shape = [n + b + a for n, b, a in zip(data.shape, before, after, strict=True)]
    value = convert(pad_value, data.dtype)
    if value.dtype != data.dtype:
        raise TopiError(f"pad '{name}': pad_value {pad_value!r} does not fit data dtype {data.dtype}")

    def body(idx: tuple[IterVar, ...]) -> Expr:
        conds: list[Expr] = []
        source: list[Expr] = []
        for i, n, b, a in zip(idx, data.shape, before, after, strict=True):
            source.append(i - b if b else i)
            if b:
                conds.append(i >= b)
            if a:
                conds.append(i < b + n)
        read = data[tuple(source)]
        if not conds:
            return read
        return te.if_then_else(te.all(*conds), read, value)

    names = [f"i{d}" for d in range(data.ndim)]
    return compute_named(out_shape, names, body, name=name, tag="injective,pad")


def dilate(
    data: Tensor, strides: Sequence[int], dilation_value: float = 0.0, name: str = "DilatedInput"
) -> Tensor:
    """Insert ``strides[d] - 1`` copies of ``dilation_value`` between neighbours along each
    dimension d (TVM's ``topi.nn.dilate``): out extent ``(n - 1) * s + 1``,
    ``out[i] = data[i // s]`` where ``i % s == 0``."""
    strides = list(strides)
    if len(strides) != data.ndim:
        raise TopiError(
            f"dilate '{name}': strides {strides} has {len(strides)} entries, "
            f"data '{data.name}' has {data.ndim} dimensions"
        )
    for s in strides:
        if not isinstance(s, int) or s < 1:
            raise TopiError(f"dilate '{name}': strides {strides} must be positive ints, got {s!r}")
    out_shape = [(n - 1) * s + 1 for n, s in zip(data.shape, strides, strict=True)]
    value = convert(dilation_value, data.dtype)

    def body(idx: tuple[IterVar, ...]) -> Expr:
        conds = [i % s == 0 for i, s in zip(idx, strides, strict=True) if s != 1]
        read = data[tuple(i // s if s != 1 else i for i, s in zip(idx, strides, strict=True))]
        if not conds:
            return read
        return te.if_then_else(te.all(*conds), read, value)

    names = [f"i{d}" for d in range(data.ndim)]
    return compute_named(out_shape, names, body, name=name, tag="injective,dilate")
