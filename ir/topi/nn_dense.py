"""Matrix products: matmul, dense (fully connected) and batch_matmul (TVM's ``topi.nn``).

All three are one reduction over ``k``; they are the GMM workload of the paper's single-op
suite and the bulk of BERT. Ansor's multi-level tiling rule (paper section 4.1, "SSRSRS")
applies to them unchanged; the layouts follow TVM so tuned logs line up:
``dense`` takes the weight as [out, in], ``batch_matmul`` defaults to B transposed.
"""

from __future__ import annotations

from ir import te
from ir.expr import Expr, IterVar
from ir.layout_rewrite import layout_free_attrs
from ir.te import Tensor
from ir.topi.elemwise import broadcast_shape
from ir.topi.utils import TopiError, check_rank, compute_named, op_label


def matmul(
    A: Tensor,
    B: Tensor,
    transpose_a: bool = False,
    transpose_b: bool = False,
    out_dtype: str | None = None,
    name: str = "T_matmul",
) -> Tensor:
    """``C[i, j] = sum_k A[i, k] * B[k, j]`` with A stored [K, N] if ``transpose_a`` and B
    stored [M, K] if ``transpose_b``; products accumulate in ``out_dtype``."""
    op = op_label("matmul", name)
    check_rank(A, 2, "A", op)
    check_rank(B, 2, "B", op)
    n, k_a = (A.shape[1], A.shape[0]) if transpose_a else A.shape
    k_b, m = (B.shape[1], B.shape[0]) if transpose_b else B.shape
    if k_a != k_b:
        raise TopiError(
            f"{op}: reduction extents differ: A {list(A.shape)} gives K={k_a}, "
            f"B {list(B.shape)} gives K={k_b}"
        )
    dtype = out_dtype or A.dtype
    k = te.reduce_axis((0, k_a), name="k")

    def body(i: IterVar, j: IterVar) -> Expr:
        a = A[k, i] if transpose_a else A[i, k]
        b = B[j, k] if transpose_b else B[k, j]
        return te.sum(a.astype(dtype) * b.astype(dtype), axis=k)

    return te.compute((n, m), body, name=name, tag="matmul", attrs=layout_free_attrs(B))


def dense(
    data: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    out_dtype: str | None = None,
    name: str = "T_dense",
) -> Tensor:
    """``out[i, j] = sum_k data[i, k] * weight[j, k] (+ bias[j])``; weight is [out, in].

    With a bias the result is a second op ``{name}_bias`` (tag "broadcast"), as TVM.
    """
    op = op_label("dense", name)
    check_rank(data, 2, "data", op)
    check_rank(weight, 2, "weight", op, "[out_features, in_features]")
    batch, in_dim = data.shape
    out_dim, w_in = weight.shape
    if w_in != in_dim:
        raise TopiError(f"{op}: weight {list(weight.shape)} has {w_in} input features, data has {in_dim}")
    if bias is not None and bias.shape != (out_dim,):
        raise TopiError(f"{op}: bias shape {list(bias.shape)} must be [{out_dim}]")
    dtype = out_dtype or data.dtype
    k = te.reduce_axis((0, in_dim), name="k")
    out = te.compute(
        (batch, out_dim),
        lambda i, j: te.sum(data[i, k].astype(dtype) * weight[j, k].astype(dtype), axis=k),
        name=name,
        tag="dense",
        attrs=layout_free_attrs(weight),
    )
    if bias is None:
        return out
    return te.compute(
        (batch, out_dim), lambda i, j: out[i, j] + bias[j].astype(dtype), name=f"{name}_bias", tag="broadcast"
    )


def batch_matmul(
    A: Tensor,
    B: Tensor,
    transpose_a: bool = False,
    transpose_b: bool = True,
    out_dtype: str | None = None,
    name: str = "T_batch_matmul",
) -> Tensor:
    """``C[b..., i, j] = sum_k A[b..., i, k] * B[b..., j, k]`` (TVM's default, B transposed).

    A is [*batch, M, K] ([*batch, K, M] if ``transpose_a``); B is [*batch, N, K]
    ([*batch, K, N] without ``transpose_b``). Batch dimensions broadcast as numpy's
    matmul: they align on the right, so one operand may be a plain matrix (rank 2) shared
    by every batch, as BERT's projections against a 2-D weight.
    """
    op = op_label("batch_matmul", name)
    if min(A.ndim, B.ndim) < 2 or max(A.ndim, B.ndim) < 3:
        raise TopiError(
            f"{op}: A {list(A.shape)} and B {list(B.shape)} must have the same rank, at least 3 "
            "(or ranks >= 2 with one at least 3)"
        )
    nb = max(A.ndim, B.ndim) - 2
    m, k_a = (A.shape[-1], A.shape[-2]) if transpose_a else A.shape[-2:]
    n, k_b = B.shape[-2:] if transpose_b else (B.shape[-1], B.shape[-2])
    if k_a != k_b:
        raise TopiError(
            f"{op}: reduction extents differ: A {list(A.shape)} gives K={k_a}, "
            f"B {list(B.shape)} gives K={k_b}"
        )
    batch = broadcast_shape(A.shape[:-2], B.shape[:-2], op)
    dtype = out_dtype or A.dtype
    k = te.reduce_axis((0, k_a), name="k")

    def batch_index(t: Tensor, bidx: tuple[IterVar, ...]) -> list[Expr | int]:
        skip = nb - (t.ndim - 2)  # leading batch dimensions t does not have
        return [0 if t.shape[d - skip] == 1 and batch[d] != 1 else bidx[d] for d in range(skip, nb)]

    def body(idx: tuple[IterVar, ...]) -> Expr:
        bidx, i, j = idx[:nb], idx[nb], idx[nb + 1]
        a = A[(*batch_index(A, bidx), k, i)] if transpose_a else A[(*batch_index(A, bidx), i, k)]
        b = B[(*batch_index(B, bidx), j, k)] if transpose_b else B[(*batch_index(B, bidx), k, j)]
        return te.sum(a.astype(dtype) * b.astype(dtype), axis=k)

    batch_names = ["b"] if nb == 1 else [f"b{d}" for d in range(nb)]
    return compute_named(
        (*batch, m, n),
        [*batch_names, "i", "j"],
        body,
        name=name,
        tag="batch_matmul",
        attrs=layout_free_attrs(B),
    )
