"""Reductions over chosen axes, and the paper's NRM workload (matrix norm).

``sum``, ``max`` and ``min`` reduce ``axis`` (all axes by default) with one op named
``{data}_red`` unless told otherwise, as TVM's ``topi.sum``. ``norm_bmn`` is NRM of the
single-operator suite: the Frobenius norm of each matrix of a [B, M, N] batch, a sum of
squares over two axes followed by a square root. It is the workload where Ansor's
reduction factorisation (rfactor, paper section 4.1) pays most: the output has only B
elements to parallelise over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ir import te
from ir.expr import Expr, IterVar
from ir.te import Tensor
from ir.topi.utils import TopiError, check_rank, compute_named, normalize_axis, op_label


def _reduce(
    data: Tensor,
    axis: int | Sequence[int] | None,
    keepdims: bool,
    reducer: Callable[..., Expr],
    func: str,
    name: str | None,
) -> Tensor:
    name = name or f"{data.name}_red"
    op = op_label(func, name)
    raw = list(range(data.ndim)) if axis is None else [axis] if isinstance(axis, int) else list(axis)
    axes = sorted({normalize_axis(a, data.ndim, op) for a in raw})
    if not axes or len(axes) != len(raw):
        raise TopiError(f"{op}: axis {axis!r} must name one or more distinct axes")
    keep = [d for d in range(data.ndim) if d not in axes]
    if not keep and not keepdims:
        raise TopiError(f"{op}: reducing every axis of {list(data.shape)} needs keepdims=True")
    rk = [te.reduce_axis((0, data.shape[a]), name=f"k{m}") for m, a in enumerate(axes)]
    out_dims = list(range(data.ndim)) if keepdims else keep
    shape = [1 if d in axes else data.shape[d] for d in out_dims]
    names = [f"ax{m}" for m in range(len(out_dims))]

    def body(idx: tuple[IterVar, ...]) -> Expr:
        position = dict(zip(out_dims, idx, strict=True))
        red = dict(zip(axes, rk, strict=True))
        full = tuple(red[d] if d in red else position[d] for d in range(data.ndim))
        return reducer(data[full], axis=rk)

    return compute_named(shape, names, body, name=name, tag="comm_reduce")


def sum(  # noqa: A001 - TVM's name
    data: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None
) -> Tensor:
    """Sum over ``axis``; reduced axes are dropped unless ``keepdims``."""
    return _reduce(data, axis, keepdims, te.sum, "sum", name)


def max(  # noqa: A001 - TVM's name
    data: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None
) -> Tensor:
    """Maximum over ``axis``; reduced axes are dropped unless ``keepdims``."""
    return _reduce(data, axis, keepdims, te.max, "max", name)


def min(  # noqa: A001 - TVM's name
    data: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False, name: str | None = None
) -> Tensor:
    """Minimum over ``axis``; reduced axes are dropped unless ``keepdims``."""
    return _reduce(data, axis, keepdims, te.min, "min", name)


def norm_bmn(data: Tensor, name: str = "norm_bmn") -> Tensor:
    """``out[b] = sqrt(sum_{i, j} data[b, i, j] ** 2)`` for data [B, M, N] (the paper's
    NRM): ops ``{name}_sumsq`` (the reduction over i, j) and ``name`` (the root)."""
    check_rank(data, 3, "data", op_label("norm_bmn", name), "[B, M, N]")
    batch, m, n = data.shape
    i = te.reduce_axis((0, m), name="i")
    j = te.reduce_axis((0, n), name="j")
    sumsq = te.compute(
        (batch,),
        lambda b: te.sum(data[b, i, j] * data[b, i, j], axis=[i, j]),
        name=f"{name}_sumsq",
        tag="comm_reduce",
    )
    return te.compute((batch,), lambda b: te.sqrt(sumsq[b]), name=name, tag="elemwise")
