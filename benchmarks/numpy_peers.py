"""numpy and PyTorch formulations of the Ansor paper's single-operator suite.

``benchmarks/tune_ops.py`` times every tuned kernel beside what a user would otherwise
call: the fastest natural numpy formulation of the operator (OpenBLAS underneath wherever
the operator is a contraction) and, when PyTorch is installed, its CPU operator. Each
formulation here computes exactly the declaration of ``ir/topi/workloads.py`` (same
layouts, strides, padding, dilation, groups), which ``tests/test_benchmark_peers.py``
checks against ``ir.reference.evaluate`` on small random inputs.

Operators and their configuration tuples (the paper's App. C, batch excluded):

========  ===============================  =============================================
op        config                           numpy formulation(s)
========  ===============================  =============================================
C1D/2D/3D (*spatial, Cin, Cout, k, s, p)   im2col (strided windows) + one matmul
GRP       C2D + groups = 4                 im2col + one batched matmul over the groups
DIL       C2D + dilation = 2               im2col over dilated windows + one matmul
GMM       (N, M, K)                        ``a @ b``
DEP       (H, W, C, k, s, p)               one multiply-add per kernel tap
T2D       (H, W, Cin, Cout, k, s, p)       matmul then scatter-add (col2im); or dilate,
                                           pad and convolve with the flipped kernel
CAP       (H, W, Cin, Cout, k, s, p, c)    im2col over (window, pose K, channel) + matmul
NRM       (M, N)                           ``einsum("bij,bij->b")``; or a BLAS dot
MBR       (N, M, K)                        ``a @ b``, ``+= bias``, ``maximum(.., 0)``
softmax   (rows, cols)                     max, ``exp(x - max)``, sum, divide, in place
========  ===============================  =============================================

A numpy formulation writes the operator's output into a preallocated ``out`` (as the
compiled kernels do), using ``out=`` on its last operation. A PyTorch formulation gets its
inputs converted once, outside the timed call, to the layout PyTorch wants (NHWC data
becomes a channels-last NCHW view, kernels become OIHW), as a framework keeps its weights;
its result is converted back to the declaration's layout for the check only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: GRP and DIL are C2D with these (``ir.topi.workloads._grp`` / ``_dil``)
GRP_GROUPS = 4
DIL_DILATION = 2

Arrays = Sequence[np.ndarray]


class PeerError(ValueError):
    """An operator name or configuration the peers do not know."""


@dataclass(frozen=True)
class Formulation:
    """A numpy formulation: ``run(inputs, out)`` writes the operator's output into ``out``."""

    label: str
    run: Callable[[Arrays, np.ndarray], None]


@dataclass(frozen=True)
class TorchFormulation:
    """A PyTorch formulation: ``prepare(inputs)`` converts the numpy inputs once (untimed),
    ``run(*prepared)`` is the timed call, ``to_numpy(result)`` gives the declaration's layout."""

    label: str
    prepare: Callable[[Arrays], tuple[Any, ...]]
    run: Callable[..., Any]
    to_numpy: Callable[[Any], np.ndarray]


# ------------------------------------------------------------------------------------------
# numpy: convolutions


def _pad_spatial(data: np.ndarray, ndim: int, before: int, after: int | None = None) -> np.ndarray:
    """``data`` [N, *spatial, ...] zero-padded on its ``ndim`` spatial axes."""
    after = before if after is None else after
    if before == 0 and after == 0:
        return data
    widths = [(0, 0), *[(before, after)] * ndim] + [(0, 0)] * (data.ndim - ndim - 1)
    return np.pad(data, widths)


def _windows(padded: np.ndarray, ndim: int, ksizes: Sequence[int], stride: int, dilation: int) -> np.ndarray:
    """Strided view [N, *out, <trailing axes>, *ksizes] of the (dilated) kernel windows of
    ``padded`` [N, *spatial, <trailing axes>]: no copy."""
    dilated = [(k - 1) * dilation + 1 for k in ksizes]
    windows = sliding_window_view(padded, dilated, axis=tuple(range(1, ndim + 1)))
    trailing = padded.ndim - ndim - 1
    index = (
        slice(None),
        *[slice(None, None, stride)] * ndim,
        *[slice(None)] * trailing,
        *[slice(None, None, dilation)] * ndim,
    )
    return windows[index]


def conv_channels_last(
    data: np.ndarray,
    kernel: np.ndarray,
    out: np.ndarray,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> None:
    """C1D/C2D/C3D/GRP/DIL: data [N, *spatial, Cin], kernel [*k, Cin/groups, Cout],
    out [N, *out_spatial, Cout]; im2col as strided windows, then one (batched) matmul."""
    ndim = data.ndim - 2
    ksizes = kernel.shape[:ndim]
    windows = _windows(_pad_spatial(data, ndim, padding), ndim, ksizes, stride, dilation)
    # [N, *out, Cin, *k] -> [N, *out, *k, Cin]: one im2col row per output pixel
    cols = windows.transpose(0, *range(1, ndim + 1), *range(ndim + 2, 2 * ndim + 2), ndim + 1)
    in_c, out_c = data.shape[-1], kernel.shape[-1]
    rows, taps = math.prod(out.shape[:-1]), math.prod(ksizes)
    if groups == 1:
        np.matmul(
            cols.reshape(rows, taps * in_c), kernel.reshape(taps * in_c, out_c), out=out.reshape(rows, -1)
        )
        return
    cig, cog = in_c // groups, out_c // groups
    group_cols = cols.reshape(rows, taps, groups, cig).transpose(2, 0, 1, 3).reshape(groups, rows, taps * cig)
    group_w = kernel.reshape(taps, cig, groups, cog).transpose(2, 0, 1, 3).reshape(groups, taps * cig, cog)
    # output channel f = g * cog + q: out viewed as [groups, rows, cog]
    np.matmul(group_cols, group_w, out=out.reshape(rows, groups, cog).transpose(1, 0, 2))


def depthwise_nhwc(
    data: np.ndarray,
    kernel: np.ndarray,
    out: np.ndarray,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> None:
    """DEP: data [N, H, W, C], kernel [kh, kw, C, m], out [N, H', W', C*m] (channel c*m + q);
    no reduction over channels, so no matmul: one multiply-add per kernel tap."""
    kh, kw, channels, mult = kernel.shape
    padded = _pad_spatial(data, 2, padding)
    n, oh, ow, _ = out.shape
    acc = out.reshape(n, oh, ow, channels, mult)
    product = np.empty_like(acc)
    for i in range(kh):
        for j in range(kw):
            y, x = i * dilation, j * dilation
            tap = padded[:, y : y + (oh - 1) * stride + 1 : stride, x : x + (ow - 1) * stride + 1 : stride]
            if i == 0 and j == 0:
                np.multiply(tap[..., None], kernel[i, j], out=acc)
            else:
                np.multiply(tap[..., None], kernel[i, j], out=product)
                acc += product


def conv2d_transpose_scatter(
    data: np.ndarray, kernel: np.ndarray, out: np.ndarray, stride: int, padding: int, output_padding: int = 0
) -> None:
    """T2D as PyTorch computes it (col2im): every input pixel times the kernel in one
    matmul, each tap's contribution scatter-added at ``stride`` into the full output,
    which is then cropped by ``padding``. No multiplications by inserted zeros."""
    n, h, w, ci = data.shape
    kh, kw, _, co = kernel.shape
    taps = kernel.transpose(2, 0, 1, 3).reshape(ci, kh * kw * co)
    contrib = (data.reshape(-1, ci) @ taps).reshape(n, h, w, kh, kw, co)
    full_h = (h - 1) * stride + kh + output_padding
    full_w = (w - 1) * stride + kw + output_padding
    full = np.zeros((n, full_h, full_w, co), data.dtype)
    span_h, span_w = (h - 1) * stride + 1, (w - 1) * stride + 1
    for i in range(kh):
        for j in range(kw):
            full[:, i : i + span_h : stride, j : j + span_w : stride] += contrib[:, :, :, i, j]
    out[...] = full[:, padding : padding + out.shape[1], padding : padding + out.shape[2]]


def conv2d_transpose_dilated(
    data: np.ndarray, kernel: np.ndarray, out: np.ndarray, stride: int, padding: int, output_padding: int = 0
) -> None:
    """T2D as its definition reads: dilate the input by ``stride`` (zeros between pixels),
    pad by ``k - 1 - padding``, convolve (stride 1) with the spatially flipped kernel."""
    n, h, w, ci = data.shape
    kh, kw, _, _ = kernel.shape
    dilated = np.zeros((n, (h - 1) * stride + 1, (w - 1) * stride + 1, ci), data.dtype)
    dilated[:, ::stride, ::stride] = data
    back_h, back_w = kh - 1 - padding, kw - 1 - padding
    widths = ((0, 0), (back_h, back_h + output_padding), (back_w, back_w + output_padding), (0, 0))
    padded = np.pad(dilated, widths)
    conv_channels_last(padded, kernel[::-1, ::-1], out)


def capsule_conv(data: np.ndarray, kernel: np.ndarray, out: np.ndarray, stride: int, padding: int) -> None:
    """CAP: data [N, H, W, I, K, Cin], kernel [kh, kw, K, J, Cin, Cout], out [N, H', W', I,
    J, Cout]; one im2col row per (pixel, pose row i) over (window, K, Cin), one matmul."""
    kh, kw, pose_k, pose_j, in_c, out_c = kernel.shape
    windows = _windows(_pad_spatial(data, 2, padding), 2, (kh, kw), stride, 1)
    # [N, H', W', I, K, Cin, kh, kw] -> [N, H', W', I, kh, kw, K, Cin]
    cols = windows.transpose(0, 1, 2, 3, 6, 7, 4, 5)
    rows, depth = math.prod(out.shape[:4]), kh * kw * pose_k * in_c
    weights = kernel.transpose(0, 1, 2, 4, 3, 5).reshape(depth, pose_j * out_c)
    np.matmul(cols.reshape(rows, depth), weights, out=out.reshape(rows, -1))


# ------------------------------------------------------------------------------------------
# numpy: the rest


def batch_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """GMM: ``out = a @ b`` (OpenBLAS sgemm per batch)."""
    np.matmul(a, b, out=out)


def norm_einsum(a: np.ndarray, out: np.ndarray) -> None:
    """NRM: ``out[b] = sqrt(sum_ij a[b, i, j] ** 2)``, the squares summed without a temporary."""
    np.sqrt(np.einsum("bij,bij->b", a, a), out=out)


def norm_dot(a: np.ndarray, out: np.ndarray) -> None:
    """NRM through BLAS: each matrix flattened, dotted with itself (sdot)."""
    flat = a.reshape(a.shape[0], -1)
    np.sqrt(np.matmul(flat[:, None, :], flat[:, :, None]).reshape(-1), out=out)


def matmul_bias_relu(a: np.ndarray, b: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """``relu(a @ b + bias)`` with every step in place in ``out``."""
    np.matmul(a, b, out=out)
    out += bias
    np.maximum(out, 0, out=out)


def softmax_last(x: np.ndarray, out: np.ndarray) -> None:
    """Softmax over the last axis, stabilised by the row maximum, in place in ``out``."""
    np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------
# configurations -> formulations


def _conv_layer(op: str, config: Sequence[int]) -> tuple[int, int, int, int, int]:
    """(spatial dims, stride, padding, dilation, groups) of a C1D/C2D/C3D/GRP/DIL config."""
    ndim = {"C1D": 1, "C3D": 3}.get(op, 2)
    stride, padding = config[-2], config[-1]
    dilation = DIL_DILATION if op == "DIL" else 1
    groups = GRP_GROUPS if op == "GRP" else 1
    return ndim, stride, padding, dilation, groups


def _conv_numpy(op: str, config: Sequence[int]) -> list[Formulation]:
    _, s, p, d, g = _conv_layer(op, config)
    label = "im2col + matmul" if g == 1 else "im2col + batched matmul"
    return [Formulation(label, lambda xs, out: conv_channels_last(xs[0], xs[1], out, s, p, d, g))]


def _t2d_numpy(config: Sequence[int]) -> list[Formulation]:
    s, p = config[-2], config[-1]

    def scatter(xs: Arrays, out: np.ndarray) -> None:
        conv2d_transpose_scatter(xs[0], xs[1], out, s, p)

    def dilated(xs: Arrays, out: np.ndarray) -> None:
        conv2d_transpose_dilated(xs[0], xs[1], out, s, p)

    return [Formulation("matmul + scatter-add", scatter), Formulation("dilate + flipped conv", dilated)]


_NUMPY: dict[str, Callable[[str, Sequence[int]], list[Formulation]]] = {
    "C1D": _conv_numpy,
    "C2D": _conv_numpy,
    "C3D": _conv_numpy,
    "GRP": _conv_numpy,
    "DIL": _conv_numpy,
    "GMM": lambda op, c: [Formulation("a @ b", lambda xs, out: batch_matmul(xs[0], xs[1], out))],
    "DEP": lambda op, c: [
        Formulation("multiply-add per tap", lambda xs, out: depthwise_nhwc(xs[0], xs[1], out, c[-2], c[-1]))
    ],
    "T2D": lambda op, c: _t2d_numpy(c),
    "CAP": lambda op, c: [
        Formulation("im2col + matmul", lambda xs, out: capsule_conv(xs[0], xs[1], out, c[-3], c[-2]))
    ],
    "NRM": lambda op, c: [
        Formulation("einsum", lambda xs, out: norm_einsum(xs[0], out)),
        Formulation("BLAS dot", lambda xs, out: norm_dot(xs[0], out)),
    ],
    "MBR": lambda op, c: [
        Formulation("a @ b, += bias, maximum", lambda xs, out: matmul_bias_relu(xs[0], xs[1], xs[2], out))
    ],
    "softmax": lambda op, c: [Formulation("max, exp, sum, divide", lambda xs, out: softmax_last(xs[0], out))],
}

#: the operators with peers, in the paper's order then the extras
OPS: tuple[str, ...] = tuple(_NUMPY)


def _known(op: str) -> None:
    if op not in _NUMPY:
        raise PeerError(f"no peer formulation for op {op!r}; known: {', '.join(OPS)}")


def numpy_formulations(op: str, config: Sequence[int]) -> list[Formulation]:
    """The numpy formulations of ``op`` with ``config`` (the benchmark quotes the fastest)."""
    _known(op)
    return _NUMPY[op](op, config)


# ------------------------------------------------------------------------------------------
# PyTorch


def _torch_conv(torch: ModuleType, op: str, config: Sequence[int]) -> TorchFormulation:
    ndim, s, p, d, g = _conv_layer(op, config)
    functional = torch.nn.functional
    conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[ndim]
    fmt = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}[ndim]
    to_first = (0, ndim + 1, *range(1, ndim + 1))  # NHWC -> NCHW (a channels-last view)

    def prepare(xs: Arrays) -> tuple[Any, ...]:
        data = torch.from_numpy(xs[0]).permute(to_first).contiguous(memory_format=fmt)
        # [*k, Cin/g, Cout] -> [Cout, Cin/g, *k]
        weight = torch.from_numpy(xs[1]).permute(ndim + 1, ndim, *range(ndim)).contiguous(memory_format=fmt)
        return data, weight

    return TorchFormulation(
        f"conv{ndim}d",
        prepare,
        lambda x, w: conv(x, w, stride=s, padding=p, dilation=d, groups=g),
        lambda y: y.permute(0, *range(2, ndim + 2), 1).numpy(),
    )


def _torch_depthwise(torch: ModuleType, config: Sequence[int]) -> TorchFormulation:
    s, p = config[-2], config[-1]

    def prepare(xs: Arrays) -> tuple[Any, ...]:
        kh, kw, channels, mult = xs[1].shape
        data = torch.from_numpy(xs[0]).permute(0, 3, 1, 2)
        # output channel c * m + q reads kernel[:, :, c, q]
        weight = torch.from_numpy(xs[1]).permute(2, 3, 0, 1).reshape(channels * mult, 1, kh, kw)
        weight = weight.contiguous(memory_format=torch.channels_last)
        return data, weight, channels

    return TorchFormulation(
        "conv2d groups=C",
        prepare,
        lambda x, w, c: torch.nn.functional.conv2d(x, w, stride=s, padding=p, groups=c),
        lambda y: y.permute(0, 2, 3, 1).numpy(),
    )


def _torch_t2d(torch: ModuleType, config: Sequence[int]) -> TorchFormulation:
    s, p = config[-2], config[-1]

    def prepare(xs: Arrays) -> tuple[Any, ...]:
        data = torch.from_numpy(xs[0]).permute(0, 3, 1, 2)
        weight = torch.from_numpy(xs[1]).permute(2, 3, 0, 1).contiguous(memory_format=torch.channels_last)
        return data, weight  # weight [Cin, Cout, kh, kw]

    return TorchFormulation(
        "conv_transpose2d",
        prepare,
        lambda x, w: torch.nn.functional.conv_transpose2d(x, w, stride=s, padding=p),
        lambda y: y.permute(0, 2, 3, 1).numpy(),
    )


def _torch_capsule(torch: ModuleType, config: Sequence[int]) -> TorchFormulation:
    """CAP as one conv2d: pose rows I join the batch, (K, Cin) the input channels and
    (J, Cout) the output channels."""
    s, p = config[-3], config[-2]

    def prepare(xs: Arrays) -> tuple[Any, ...]:
        n, h, w, pose_i, pose_k, in_c = xs[0].shape
        kh, kw, _, pose_j, _, out_c = xs[1].shape
        data = torch.from_numpy(xs[0]).permute(0, 3, 1, 2, 4, 5).reshape(n * pose_i, h, w, pose_k * in_c)
        # [kh, kw, K, J, Cin, Cout] -> [(J, Cout), (K, Cin), kh, kw]
        weight = torch.from_numpy(xs[1]).permute(3, 5, 2, 4, 0, 1)
        weight = weight.reshape(pose_j * out_c, pose_k * in_c, kh, kw)
        dims = (n, pose_i, pose_j, out_c)
        return data.permute(0, 3, 1, 2), weight.contiguous(memory_format=torch.channels_last), dims

    def run(x: Any, w: Any, dims: tuple[int, ...]) -> Any:
        return torch.nn.functional.conv2d(x, w, stride=s, padding=p), dims

    def to_numpy(result: Any) -> np.ndarray:
        conv, (n, pose_i, pose_j, out_c) = result
        # [N*I, J*Cout, H', W'] -> [N, H', W', I, J, Cout]
        grid = conv.reshape(n, pose_i, pose_j, out_c, *conv.shape[2:])
        return grid.permute(0, 4, 5, 1, 2, 3).numpy()

    return TorchFormulation("conv2d over (pose, channel)", prepare, run, to_numpy)


def _torch_simple(torch: ModuleType, op: str) -> TorchFormulation:
    def tensors(xs: Arrays) -> tuple[Any, ...]:
        return tuple(torch.from_numpy(x) for x in xs)

    runs: dict[str, tuple[str, Callable[..., Any]]] = {
        "GMM": ("torch.bmm", lambda a, b: torch.bmm(a, b)),
        "NRM": ("linalg.vector_norm", lambda a: torch.linalg.vector_norm(a, dim=(1, 2))),
        "MBR": ("addmm + relu_", lambda a, b, bias: torch.addmm(bias, a, b).relu_()),
        "softmax": ("torch.softmax", lambda x: torch.softmax(x, dim=-1)),
    }
    label, run = runs[op]
    return TorchFormulation(label, tensors, run, lambda y: y.numpy())


_TORCH: dict[str, Callable[[ModuleType, str, Sequence[int]], TorchFormulation]] = {
    "C1D": _torch_conv,
    "C2D": _torch_conv,
    "C3D": _torch_conv,
    "GRP": _torch_conv,
    "DIL": _torch_conv,
    "GMM": lambda torch, op, c: _torch_simple(torch, op),
    "DEP": lambda torch, op, c: _torch_depthwise(torch, c),
    "T2D": lambda torch, op, c: _torch_t2d(torch, c),
    "CAP": lambda torch, op, c: _torch_capsule(torch, c),
    "NRM": lambda torch, op, c: _torch_simple(torch, op),
    "MBR": lambda torch, op, c: _torch_simple(torch, op),
    "softmax": lambda torch, op, c: _torch_simple(torch, op),
}


def torch_formulation(op: str, config: Sequence[int], torch: ModuleType) -> TorchFormulation:
    """The PyTorch CPU formulation of ``op`` with ``config``; ``torch`` is the imported module."""
    _known(op)
    return _TORCH[op](torch, op, config)
