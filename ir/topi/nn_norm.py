"""Normalisations: softmax, log_softmax, layer_norm, batch_norm (inference).

Each reduction is its own op (a reduction must be a whole compute body), so softmax is the
four ops of TVM's ``topi.nn.softmax``: ``{name}_maxelem`` (max over the axis),
``{name}_exp`` (exp(x - max)), ``{name}_expsum`` (sum over the axis) and ``name`` (the
division). This is the structure behind the paper's TBS subgraph and BERT's attention,
and the reason Ansor's rfactor and cross-thread-reduction rules exist (paper section 4.1).

Reduced tensors drop the reduced axes. Axes are named ``ax0, ax1, ...``, reduction axes
``k`` (or ``k0, k1, ...`` when several).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ir import te
from ir.expr import Expr, IterVar
from ir.te import Tensor
from ir.topi.utils import TopiError, ax_names, compute_named, normalize_axis, op_label


def _reduced(x: Tensor, axes: Sequence[int]) -> tuple[list[int], list[str]]:
    """Shape and axis names of ``x`` with ``axes`` removed."""
    keep = [d for d in range(x.ndim) if d not in axes]
    return [x.shape[d] for d in keep], ax_names(len(keep))


def _with_reduce(idx: Sequence[Expr], axes: Sequence[int], rk: Sequence[Expr]) -> tuple[Expr, ...]:
    """The full index of ``x`` from the reduced index ``idx`` and reduction vars ``rk``."""
    full: list[Expr] = []
    kept = iter(idx)
    red = dict(zip(axes, rk, strict=True))
    for d in range(len(idx) + len(axes)):
        full.append(red[d] if d in red else next(kept))
    return tuple(full)


def _drop(idx: Sequence[Expr], axes: Sequence[int]) -> tuple[Expr, ...]:
    return tuple(e for d, e in enumerate(idx) if d not in axes)


def softmax(x: Tensor, axis: int = -1, name: str = "T_softmax") -> Tensor:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``, in four ops (see module doc)."""
    ax = normalize_axis(axis, x.ndim, op_label("softmax", name))
    red_shape, red_names = _reduced(x, [ax])
    k = te.reduce_axis((0, x.shape[ax]), name="k")
    max_elem = compute_named(
        red_shape,
        red_names,
        lambda idx: te.max(x[_with_reduce(idx, [ax], [k])], axis=k),
        name=f"{name}_maxelem",
    )
    e = compute_named(
        x.shape, ax_names(x.ndim), lambda idx: te.exp(x[idx] - max_elem[_drop(idx, [ax])]), name=f"{name}_exp"
    )
    k2 = te.reduce_axis((0, x.shape[ax]), name="k")
    expsum = compute_named(
        red_shape,
        red_names,
        lambda idx: te.sum(e[_with_reduce(idx, [ax], [k2])], axis=k2),
        name=f"{name}_expsum",
    )
    return compute_named(
        x.shape,
        ax_names(x.ndim),
        lambda idx: e[idx] / expsum[_drop(idx, [ax])],
        name=name,
        tag="softmax_output",
        attrs={"axis": ax},
    )


def log_softmax(x: Tensor, axis: int = -1, name: str = "T_log_softmax") -> Tensor:
    """``x - max - log(sum(exp(x - max)))`` along ``axis``: ops ``{name}_maxelem``,
    ``{name}_expsum`` and ``name``."""
    ax = normalize_axis(axis, x.ndim, op_label("log_softmax", name))
    red_shape, red_names = _reduced(x, [ax])
    k = te.reduce_axis((0, x.shape[ax]), name="k")
    max_elem = compute_named(
        red_shape,
        red_names,
        lambda idx: te.max(x[_with_reduce(idx, [ax], [k])], axis=k),
        name=f"{name}_maxelem",
    )
    k2 = te.reduce_axis((0, x.shape[ax]), name="k")

    def expsum_body(idx: tuple[IterVar, ...]) -> Expr:
        return te.sum(te.exp(x[_with_reduce(idx, [ax], [k2])] - max_elem[idx]), axis=k2)

    expsum = compute_named(red_shape, red_names, expsum_body, name=f"{name}_expsum")

    def out(idx: tuple[IterVar, ...]) -> Expr:
        rest = _drop(idx, [ax])
        return x[idx] - max_elem[rest] - te.log(expsum[rest])

    return compute_named(
        x.shape, ax_names(x.ndim), out, name=name, tag="log_softmax_output", attrs={"axis": ax}
    )


def layer_norm(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-5,
    name: str = "T_layer_norm",
) -> Tensor:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta``, mean and (biased) variance over
    ``axis``; gamma and beta have the shape of the normalised axes. Ops ``{name}_mean``,
    ``{name}_var`` and ``name``."""
    op = op_label("layer_norm", name)
    raw = [axis] if isinstance(axis, int) else list(axis)
    axes = sorted({normalize_axis(a, x.ndim, op) for a in raw})
    if not axes or len(axes) != len(raw):
        raise TopiError(f"{op}: axis {axis!r} must name one or more distinct axes")
    norm_shape = tuple(x.shape[a] for a in axes)
    for what, t in (("gamma", gamma), ("beta", beta)):
        if t.shape != norm_shape:
            raise TopiError(
                f"{op}: {what} shape {list(t.shape)} must be {list(norm_shape)} "
                f"(axes {axes} of {list(x.shape)})"
            )
    if epsilon < 0:
        raise TopiError(f"{op}: epsilon {epsilon} must be non-negative")
    red_shape, red_names = _reduced(x, axes)
    inv_n = 1.0 / math.prod(norm_shape)

    def reduce_axes() -> list[IterVar]:
        if len(axes) == 1:
            return [te.reduce_axis((0, x.shape[axes[0]]), name="k")]
        return [te.reduce_axis((0, x.shape[a]), name=f"k{m}") for m, a in enumerate(axes)]

    rk = reduce_axes()
    mean = compute_named(
        red_shape,
        red_names,
        lambda idx: te.sum(x[_with_reduce(idx, axes, rk)] * inv_n, axis=rk),
        name=f"{name}_mean",
    )
    rv = reduce_axes()

    def var_body(idx: tuple[IterVar, ...]) -> Expr:
        d = x[_with_reduce(idx, axes, rv)] - mean[idx]
        return te.sum(d * d * inv_n, axis=rv)

    var = compute_named(red_shape, red_names, var_body, name=f"{name}_var")

    def out(idx: tuple[IterVar, ...]) -> Expr:
        rest, normed = _drop(idx, axes), tuple(idx[a] for a in axes)
        scale = te.rsqrt(var[rest] + epsilon)
        return (x[idx] - mean[rest]) * scale * gamma[normed] + beta[normed]

    return compute_named(x.shape, ax_names(x.ndim), out, name=name, tag="injective")


def batch_norm_inference(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    moving_mean: Tensor,
    moving_var: Tensor,
    axis: int = 1,
    epsilon: float = 1e-5,
    name: str = "T_batch_norm",
) -> Tensor:
    """``(x - mean[c]) / sqrt(var[c] + epsilon) * gamma[c] + beta[c]`` with c the index
    along ``axis`` (1 for NCHW, -1 for NHWC); one elementwise op with the statistics given."""
    op = op_label("batch_norm_inference", name)
    ax = normalize_axis(axis, x.ndim, op)
    channels = x.shape[ax]
    for what, t in (
        ("gamma", gamma),
        ("beta", beta),
        ("moving_mean", moving_mean),
        ("moving_var", moving_var),
    ):
        if t.shape != (channels,):
            raise TopiError(
                f"{op}: {what} shape {list(t.shape)} must be [{channels}] (axis {axis} of {list(x.shape)})"
            )
    if epsilon < 0:
        raise TopiError(f"{op}: epsilon {epsilon} must be non-negative")

    def out(idx: tuple[IterVar, ...]) -> Expr:
        c = idx[ax]
        return (x[idx] - moving_mean[c]) / te.sqrt(moving_var[c] + epsilon) * gamma[c] + beta[c]

    return compute_named(x.shape, ax_names(x.ndim), out, name=name, tag="broadcast")
