"""``dense`` and ``matmul``: the matrix products of a network (ONNX Gemm with transB=1 and
MatMul).

``dense`` takes data [M, K] and a weight [N, K] (TVM's ``nn.dense`` layout, the form a
fully connected layer's weight is stored in) and gives [M, N]. ``matmul`` is numpy's
matmul for ranks >= 2: [..., M, K] x [..., K, N] with the batch dimensions broadcast
(BERT's attention products and its projections against 2-D weights); the frontend turns
1-D operands into 2-D ones. Both are the GMM workload of the Ansor paper (section 7) and
declare through ``ir.topi`` (``dense``, ``matmul``, ``batch_matmul``) so the search sees
the multi-level tiling structure it expects. References are float32 BLAS products.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ansor_py.network.ops.base import Attrs, OpDef, OpPattern
from ansor_py.network.ops.nn_common import float_input, rank_is, same_dtype
from ansor_py.network.types import GraphError, TensorType
from ir import topi
from ir.te import Tensor


def dense_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "dense"
    rank_is(types[0], 2, "data", op, "[M, K]")
    rank_is(types[1], 2, "weight", op, "[N, K]")
    float_input(types[0], "data", op)
    same_dtype(types, ("data", "weight"), op)
    (m, k), (n, k_w) = types[0].shape, types[1].shape
    if k != k_w:
        raise GraphError(f"{op}: weight {list(types[1].shape)} has {k_w} input features, data has {k}")
    return [TensorType((m, n), types[0].dtype)]


def dense_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(np.matmul(arrays[0], arrays[1].T), order="C")]


def dense_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.dense(tensors[0], tensors[1], name=name)]


DENSE = OpDef("dense", OpPattern.OUT_ELEMWISE_FUSABLE, dense_infer, dense_reference, dense_declare, (2, 2))


def matmul_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "matmul"
    a, b = types
    for t, what in ((a, "a"), (b, "b")):
        if t.ndim < 2:
            raise GraphError(f"{op}: input '{what}' must have rank >= 2, got shape {list(t.shape)}")
    float_input(a, "a", op)
    same_dtype(types, ("a", "b"), op)
    if a.shape[-1] != b.shape[-2]:
        raise GraphError(
            f"{op}: reduction extents differ: a {list(a.shape)} has K={a.shape[-1]}, "
            f"b {list(b.shape)} has K={b.shape[-2]}"
        )
    try:
        batch = topi.broadcast_shape(a.shape[:-2], b.shape[:-2], op)
    except topi.TopiError as err:
        raise GraphError(str(err)) from None
    return [TensorType((*batch, a.shape[-2], b.shape[-1]), a.dtype)]


def matmul_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(np.matmul(arrays[0], arrays[1]), order="C")]


def matmul_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    a, b = tensors
    if a.ndim == 2 and b.ndim == 2:
        return [topi.matmul(a, b, name=name)]
    return [topi.batch_matmul(a, b, transpose_b=False, name=name)]


MATMUL = OpDef(
    "matmul", OpPattern.OUT_ELEMWISE_FUSABLE, matmul_infer, matmul_reference, matmul_declare, (2, 2)
)
