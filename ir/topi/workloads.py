"""Workload builders for the Ansor paper's benchmark suite (paper section 7.1-7.2, App. C).

Each builder declares its inputs and returns ``[inputs..., outputs...]``, ready for
``ComputeDAG(tensors)`` or ``@register_workload``. The declarations follow Ansor's own
benchmark scripts (TVM's ``meta_schedule/testing/te_workload.py``): NHWC-style layouts by
default, placeholders ``data``/``kernel``.

``PAPER_SUITE`` lists, per operator of the single-operator and subgraph suites, the
builder and the paper's four configurations (without the batch size, which the paper
runs at 1 and 16); ``paper_workload("C2D", 0, batch=16)`` builds one. GRP's first
configuration is TVM's (56, 56, 64, 128, 3, 2, 1): the paper's first C2D shape has 3
input channels, which 4 groups cannot divide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ir import te
from ir.te import Tensor
from ir.topi.elemwise import add, multiply, relu
from ir.topi.nn_capsule import conv2d_capsule_nhwijc
from ir.topi.nn_conv import conv_nd
from ir.topi.nn_conv_transpose import conv2d_transpose_nchw, conv2d_transpose_nhwc
from ir.topi.nn_dense import batch_matmul, matmul
from ir.topi.nn_depthwise import depthwise_conv2d_nchw, depthwise_conv2d_nhwc
from ir.topi.nn_norm import softmax
from ir.topi.reduction import norm_bmn
from ir.topi.transform import transpose
from ir.topi.utils import TopiError

_CONV_LAYOUTS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def gemm(N: int, M: int, K: int, dtype: str = "float32") -> list[Tensor]:
    """GMM: ``C[N, M] = A[N, K] @ B[K, M]``."""
    A = te.placeholder((N, K), dtype, name="A")
    B = te.placeholder((K, M), dtype, name="B")
    return [A, B, matmul(A, B, name="C")]


def batch_gemm(batch: int, N: int, M: int, K: int, dtype: str = "float32") -> list[Tensor]:
    """GMM with a batch: ``C[b] = A[b] @ B[b]``, A [b, N, K], B [b, K, M]."""
    A = te.placeholder((batch, N, K), dtype, name="A")
    B = te.placeholder((batch, K, M), dtype, name="B")
    return [A, B, batch_matmul(A, B, transpose_b=False, name="C")]


def matmul_bias_relu(N: int, M: int, K: int, dtype: str = "float32") -> list[Tensor]:
    """``relu(A @ B + bias)``: the auto-scheduler tutorial's first subgraph."""
    A = te.placeholder((N, K), dtype, name="A")
    B = te.placeholder((K, M), dtype, name="B")
    bias = te.placeholder((M,), dtype, name="bias")
    out = relu(add(matmul(A, B), bias))
    return [A, B, bias, out]


def _conv_tensors(
    ndim: int,
    N: int,
    spatial: tuple[int, ...],
    CI: int,
    CO: int,
    k: int,
    layout: str,
    groups: int,
    dtype: str,
) -> tuple[Tensor, Tensor, bool]:
    last, first = _CONV_LAYOUTS[ndim]
    if layout not in (last, first):
        raise TopiError(f"conv{ndim}d workload: layout {layout!r} must be {last} or {first}")
    channels_last = layout == last
    if CI % groups:
        raise TopiError(f"conv{ndim}d workload: input channels {CI} not divisible by groups {groups}")
    data_shape = (N, *spatial, CI) if channels_last else (N, CI, *spatial)
    kernel_shape = (*(k,) * ndim, CI // groups, CO) if channels_last else (CO, CI // groups, *(k,) * ndim)
    data = te.placeholder(data_shape, dtype, name="data")
    kernel = te.placeholder(kernel_shape, dtype, name="kernel")
    return data, kernel, channels_last


def _conv_workload(
    ndim: int,
    N: int,
    spatial: tuple[int, ...],
    CI: int,
    CO: int,
    k: int,
    s: int,
    p: int,
    dilation: int,
    groups: int,
    layout: str,
    dtype: str,
) -> list[Tensor]:
    data, kernel, channels_last = _conv_tensors(ndim, N, spatial, CI, CO, k, layout, groups, dtype)
    name = f"conv{ndim}d_{layout.lower()}"
    out = conv_nd(data, kernel, ndim, channels_last, s, p, dilation, groups, None, name)
    return [data, kernel, out]


def conv1d(
    N: int,
    L: int,
    CI: int,
    CO: int,
    k: int,
    s: int = 1,
    p: int = 0,
    dilation: int = 1,
    groups: int = 1,
    layout: str = "NWC",
    dtype: str = "float32",
) -> list[Tensor]:
    """C1D: a 1-D convolution over length L."""
    return _conv_workload(1, N, (L,), CI, CO, k, s, p, dilation, groups, layout, dtype)


def conv2d_layer(
    N: int,
    H: int,
    W: int,
    CI: int,
    CO: int,
    k: int,
    s: int = 1,
    p: int = 0,
    dilation: int = 1,
    groups: int = 1,
    layout: str = "NHWC",
    dtype: str = "float32",
) -> list[Tensor]:
    """C2D (and GRP with ``groups``, DIL with ``dilation``): one 2-D convolution."""
    return _conv_workload(2, N, (H, W), CI, CO, k, s, p, dilation, groups, layout, dtype)


def conv3d(
    N: int,
    D: int,
    H: int,
    W: int,
    CI: int,
    CO: int,
    k: int,
    s: int = 1,
    p: int = 0,
    dilation: int = 1,
    groups: int = 1,
    layout: str = "NDHWC",
    dtype: str = "float32",
) -> list[Tensor]:
    """C3D: one 3-D convolution."""
    return _conv_workload(3, N, (D, H, W), CI, CO, k, s, p, dilation, groups, layout, dtype)


def depthwise(
    N: int,
    H: int,
    W: int,
    C: int,
    k: int,
    s: int = 1,
    p: int = 0,
    dilation: int = 1,
    multiplier: int = 1,
    layout: str = "NHWC",
    dtype: str = "float32",
) -> list[Tensor]:
    """DEP: a depthwise 2-D convolution with ``multiplier`` filters per channel."""
    if layout == "NHWC":
        data = te.placeholder((N, H, W, C), dtype, name="data")
        kernel = te.placeholder((k, k, C, multiplier), dtype, name="kernel")
        return [data, kernel, depthwise_conv2d_nhwc(data, kernel, s, p, dilation)]
    if layout == "NCHW":
        data = te.placeholder((N, C, H, W), dtype, name="data")
        kernel = te.placeholder((C, multiplier, k, k), dtype, name="kernel")
        return [data, kernel, depthwise_conv2d_nchw(data, kernel, s, p, dilation)]
    raise TopiError(f"depthwise workload: layout {layout!r} must be NHWC or NCHW")


def t2d(
    N: int,
    H: int,
    W: int,
    CI: int,
    CO: int,
    k: int,
    s: int = 1,
    p: int = 0,
    output_padding: int = 0,
    layout: str = "NHWC",
    dtype: str = "float32",
) -> list[Tensor]:
    """T2D: a transposed 2-D convolution (NHWC: Ansor's form; NCHW: TVM topi's)."""
    if layout == "NHWC":
        data = te.placeholder((N, H, W, CI), dtype, name="data")
        kernel = te.placeholder((k, k, CI, CO), dtype, name="kernel")
        return [data, kernel, conv2d_transpose_nhwc(data, kernel, s, p, output_padding)]
    if layout == "NCHW":
        data = te.placeholder((N, CI, H, W), dtype, name="data")
        kernel = te.placeholder((CI, CO, k, k), dtype, name="kernel")
        return [data, kernel, conv2d_transpose_nchw(data, kernel, s, p, output_padding)]
    raise TopiError(f"t2d workload: layout {layout!r} must be NHWC or NCHW")


def capsule(
    N: int,
    H: int,
    W: int,
    CI: int,
    CO: int,
    k: int,
    s: int = 1,
    p: int = 0,
    capsule_size: int = 4,
    dtype: str = "float32",
) -> list[Tensor]:
    """CAP: a capsule convolution with square ``capsule_size`` poses."""
    c = capsule_size
    data = te.placeholder((N, H, W, c, c, CI), dtype, name="data")
    kernel = te.placeholder((k, k, c, c, CI, CO), dtype, name="kernel")
    return [data, kernel, conv2d_capsule_nhwijc(data, kernel, s, p)]


def norm(B: int, M: int, N: int, dtype: str = "float32") -> list[Tensor]:
    """NRM: the Frobenius norm of each of B matrices [M, N]."""
    A = te.placeholder((B, M, N), dtype, name="A")
    return [A, norm_bmn(A)]


def conv2d_bn_relu(
    N: int,
    H: int,
    W: int,
    CI: int,
    CO: int,
    k: int,
    s: int = 1,
    p: int = 0,
    dilation: int = 1,
    layout: str = "NHWC",
    dtype: str = "float32",
) -> list[Tensor]:
    """ConvLayer: ``relu((conv2d(data, kernel) + bias) * bn_scale + bn_offset)``, the
    paper's conv subgraph (batch norm folded into a scale and an offset per channel)."""
    data, kernel, channels_last = _conv_tensors(2, N, (H, W), CI, CO, k, layout, 1, dtype)
    per_channel = (CO,) if channels_last else (CO, 1, 1)
    bias = te.placeholder(per_channel, dtype, name="bias")
    bn_scale = te.placeholder(per_channel, dtype, name="bn_scale")
    bn_offset = te.placeholder(per_channel, dtype, name="bn_offset")
    conv = conv_nd(data, kernel, 2, channels_last, s, p, dilation, 1, None, f"conv2d_{layout.lower()}")
    out = add(multiply(add(conv, bias, name="bias_add"), bn_scale, name="bn_mul"), bn_offset, name="bn_add")
    return [data, kernel, bias, bn_scale, bn_offset, relu(out)]


def tbs(batch: int, seq_len: int, n_head: int, n_dim: int, dtype: str = "float32") -> list[Tensor]:
    """TBS: BERT attention scores, ``softmax(Q^T K)`` per head: two transposes of
    [batch, seq, heads, dim] inputs, a batch matmul and a softmax over the last axis."""
    query = te.placeholder((batch, seq_len, n_head, n_dim), dtype, name="query")
    value = te.placeholder((batch, seq_len, n_head, n_dim), dtype, name="value")
    query_t = transpose(query, (0, 2, 1, 3), name="query_T")
    value_t = transpose(value, (0, 2, 3, 1), name="value_T")
    scores = batch_matmul(query_t, value_t, transpose_b=False, name="C")
    return [query, value, softmax(scores, axis=-1)]


# ------------------------------------------------------------------------------------------
# the paper's suite (App. C): builder(batch, *config) and four configurations each

Builder = Callable[..., list[Tensor]]
Config = tuple[int, ...]

_C2D: list[Config] = [
    (224, 224, 3, 64, 7, 2, 3),
    (56, 56, 64, 64, 1, 1, 0),
    (14, 14, 256, 256, 3, 1, 1),
    (7, 7, 512, 512, 3, 1, 1),
]


def _grp(N: int, H: int, W: int, CI: int, CO: int, k: int, s: int, p: int) -> list[Tensor]:
    """GRP: C2D with 4 groups."""
    return conv2d_layer(N, H, W, CI, CO, k, s, p, groups=4)


def _dil(N: int, H: int, W: int, CI: int, CO: int, k: int, s: int, p: int) -> list[Tensor]:
    """DIL: C2D with dilation 2."""
    return conv2d_layer(N, H, W, CI, CO, k, s, p, dilation=2)


PAPER_SUITE: dict[str, tuple[Builder, list[Config]]] = {
    "C1D": (
        conv1d,
        [(256, 64, 128, 3, 2, 1), (128, 128, 256, 1, 2, 0), (64, 256, 256, 5, 1, 2), (32, 512, 512, 3, 1, 1)],
    ),
    "C2D": (conv2d_layer, _C2D),
    "C3D": (conv3d, [(16, *c) for c in _C2D]),
    "GMM": (batch_gemm, [(128, 128, 128), (512, 32, 512), (512, 512, 512), (1024, 1024, 1024)]),
    "GRP": (_grp, [(56, 56, 64, 128, 3, 2, 1), *_C2D[1:]]),
    "DIL": (_dil, _C2D),
    "DEP": (
        depthwise,
        [(112, 112, 32, 3, 1, 1), (112, 112, 64, 3, 2, 1), (14, 14, 512, 3, 2, 1), (7, 7, 1024, 3, 1, 1)],
    ),
    "T2D": (
        t2d,
        [
            (4, 4, 512, 256, 4, 2, 1),
            (8, 8, 256, 128, 4, 2, 1),
            (16, 16, 128, 64, 4, 2, 1),
            (32, 32, 64, 3, 4, 2, 1),
        ],
    ),
    "CAP": (
        capsule,
        [
            (16, 16, 32, 32, 3, 2, 1, 4),
            (8, 8, 32, 32, 3, 1, 1, 4),
            (16, 16, 8, 16, 3, 2, 1, 4),
            (8, 8, 16, 16, 3, 1, 1, 4),
        ],
    ),
    "NRM": (norm, [(256, 256), (512, 512), (1024, 1024), (4096, 4096)]),
    "ConvLayer": (
        conv2d_bn_relu,
        [
            (224, 224, 3, 64, 7, 2, 3),
            (56, 56, 64, 64, 3, 2, 1),
            (28, 28, 128, 256, 1, 2, 0),
            (7, 7, 512, 512, 3, 1, 1),
        ],
    ),
    "TBS": (tbs, [(128, 12, 64), (128, 16, 64), (64, 12, 128), (128, 12, 128)]),
}


def paper_workload(op: str, index: int, batch: int = 1, **kwargs: Any) -> list[Tensor]:
    """Configuration ``index`` (0..3) of ``op`` from ``PAPER_SUITE`` at ``batch``."""
    if op not in PAPER_SUITE:
        raise TopiError(f"paper_workload: unknown op {op!r}; known: {', '.join(PAPER_SUITE)}")
    builder, configs = PAPER_SUITE[op]
    if not 0 <= index < len(configs):
        raise TopiError(f"paper_workload: index {index} out of range [0, {len(configs)}) for {op}")
    return builder(batch, *configs[index], **kwargs)
