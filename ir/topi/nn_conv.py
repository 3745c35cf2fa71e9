"""Direct convolutions in 1, 2 and 3 spatial dimensions, channels first or last.

These are the C1D, C2D, C3D, GRP (``groups``) and DIL (``dilation``) workloads of the
paper's single-operator suite (Ansor paper section 7.1) and the bulk of ResNet-50 and
3D-ResNet-18. Each is declared as TVM's topi does: an optional padding op
(``{name}_pad``, inlined by Ansor) and one reduction over input channels and kernel
offsets::

    out[n, f, y, x] = sum_{rc, ry, rx} pad[n, g(f) + rc, y*s + ry*d, x*s + rx*d] * w[f, rc, ry, rx]

with ``g(f) = f // (Cout / groups) * (Cin / groups)`` the first input channel of f's
group. Layouts and names follow TVM:

============  ======================  ============================  ====================
op            data                    kernel                        axes (reduce)
============  ======================  ============================  ====================
conv1d_ncw    [N, Cin, W]             [Cout, Cin/g, kw]             nn ff xx (rc rx)
conv1d_nwc    [N, W, Cin]             [kw, Cin/g, Cout]             nn xx ff (rx rc)
conv2d_nchw   [N, Cin, H, W]          [Cout, Cin/g, kh, kw]         nn ff yy xx (rc ry rx)
conv2d_nhwc   [N, H, W, Cin]          [kh, kw, Cin/g, Cout]         nn yy xx ff (ry rx rc)
conv3d_ncdhw  [N, Cin, D, H, W]       [Cout, Cin/g, kd, kh, kw]     nn ff zz yy xx (...)
conv3d_ndhwc  [N, D, H, W, Cin]       [kd, kh, kw, Cin/g, Cout]     nn zz yy xx ff (...)
============  ======================  ============================  ====================

``padding`` is an int, one int per spatial dimension, or all "before" pads then all
"after" pads (2-D: top, left, bottom, right, as TVM's ``get_pad_tuple``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ir import te
from ir.expr import Expr, IterVar
from ir.layout_rewrite import layout_free_attrs
from ir.te import Tensor
from ir.topi.pad import pad
from ir.topi.utils import (
    TopiError,
    as_tuple,
    check_rank,
    compute_named,
    conv_out_size,
    op_label,
    padding_nd,
    positive,
    window_index,
)

IntOrTuple = int | Sequence[int]

_SPATIAL_NAMES = {1: ("xx",), 2: ("yy", "xx"), 3: ("zz", "yy", "xx")}
_LAYOUTS = {
    (1, False): ("NCW", "OIW"),
    (1, True): ("NWC", "WIO"),
    (2, False): ("NCHW", "OIHW"),
    (2, True): ("NHWC", "HWIO"),
    (3, False): ("NCDHW", "OIDHW"),
    (3, True): ("NDHWC", "DHWIO"),
}


def conv_nd(
    data: Tensor,
    kernel: Tensor,
    ndim: int,
    channels_last: bool,
    stride: IntOrTuple,
    padding: IntOrTuple,
    dilation: IntOrTuple,
    groups: int,
    out_dtype: str | None,
    name: str,
) -> Tensor:
    """The convolution every public function here declares (see the module docstring)."""
    data_layout, kernel_layout = _LAYOUTS[(ndim, channels_last)]
    op = op_label(f"conv{ndim}d_{data_layout.lower()}", name)
    check_rank(data, ndim + 2, "data", op, data_layout)
    check_rank(kernel, ndim + 2, "kernel", op, kernel_layout)
    strides = as_tuple(stride, ndim, "stride", op)
    dilations = as_tuple(dilation, ndim, "dilation", op)
    positive(strides, "stride", op)
    positive(dilations, "dilation", op)
    before, after = padding_nd(padding, ndim, op)
    if not isinstance(groups, int) or groups < 1:
        raise TopiError(f"{op}: groups {groups!r} must be a positive int")

    if channels_last:
        batch, *in_sizes, in_c = data.shape
        *k_sizes, k_in, out_c = kernel.shape
    else:
        batch, in_c, *in_sizes = data.shape
        out_c, k_in, *k_sizes = kernel.shape
    if in_c % groups:
        raise TopiError(f"{op}: input channels {in_c} not divisible by groups {groups}")
    if out_c % groups:
        raise TopiError(f"{op}: output channels {out_c} not divisible by groups {groups}")
    if k_in != in_c // groups:
        raise TopiError(
            f"{op}: kernel {list(kernel.shape)} ({kernel_layout}) has {k_in} input channels, "
            f"expected {in_c // groups} (= {in_c} / groups {groups})"
        )
    spatial = _SPATIAL_NAMES[ndim]
    out_sizes = [
        conv_out_size(size, k, s, d, b, a, op, dim)
        for size, k, s, d, b, a, dim in zip(
            in_sizes, k_sizes, strides, dilations, before, after, spatial, strict=True
        )
    ]

    if any(before) or any(after):
        pad_before = [0, *before, 0] if channels_last else [0, 0, *before]
        pad_after = [0, *after, 0] if channels_last else [0, 0, *after]
        padded = pad(data, pad_before, pad_after, name=f"{name}_pad")
    else:
        padded = data
    in_per_group, out_per_group = in_c // groups, out_c // groups
    dtype = out_dtype or data.dtype
    rc = te.reduce_axis((0, in_per_group), name="rc")
    rk = [te.reduce_axis((0, k), name=f"r{n[0]}") for k, n in zip(k_sizes, spatial, strict=True)]

    def body(idx: tuple[IterVar, ...]) -> Expr:
        n = idx[0]
        f, out_pos = (idx[-1], idx[1:-1]) if channels_last else (idx[1], idx[2:])
        channel = rc if groups == 1 else f // out_per_group * in_per_group + rc
        pos = [window_index(o, s, r, d) for o, s, r, d in zip(out_pos, strides, rk, dilations, strict=True)]
        if channels_last:
            x, w = padded[(n, *pos, channel)], kernel[(*rk, rc, f)]
            axes = [*rk, rc]
        else:
            x, w = padded[(n, channel, *pos)], kernel[(f, rc, *rk)]
            axes = [rc, *rk]
        return te.sum(x.astype(dtype) * w.astype(dtype), axis=axes)

    if channels_last:
        shape, names = (batch, *out_sizes, out_c), ("nn", *spatial, "ff")
    else:
        shape, names = (batch, out_c, *out_sizes), ("nn", "ff", *spatial)
    tag = f"conv{ndim}d_{data_layout.lower()}" if groups == 1 else f"group_conv{ndim}d_{data_layout.lower()}"
    return compute_named(shape, names, body, name=name, tag=tag, attrs=layout_free_attrs(kernel))


def conv1d_ncw(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv1d_ncw",
) -> Tensor:
    """1-D convolution, data [N, Cin, W], kernel [Cout, Cin/groups, kw]."""
    return conv_nd(data, kernel, 1, False, stride, padding, dilation, groups, out_dtype, name)


def conv1d_nwc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv1d_nwc",
) -> Tensor:
    """1-D convolution, data [N, W, Cin], kernel [kw, Cin/groups, Cout] (the paper's C1D)."""
    return conv_nd(data, kernel, 1, True, stride, padding, dilation, groups, out_dtype, name)


def conv2d_nchw(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv2d_nchw",
) -> Tensor:
    """2-D convolution, data [N, Cin, H, W], kernel [Cout, Cin/groups, kh, kw]."""
    return conv_nd(data, kernel, 2, False, stride, padding, dilation, groups, out_dtype, name)


def conv2d_nhwc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv2d_nhwc",
) -> Tensor:
    """2-D convolution, data [N, H, W, Cin], kernel [kh, kw, Cin/groups, Cout] (C2D, GRP, DIL)."""
    return conv_nd(data, kernel, 2, True, stride, padding, dilation, groups, out_dtype, name)


def conv3d_ncdhw(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv3d_ncdhw",
) -> Tensor:
    """3-D convolution, data [N, Cin, D, H, W], kernel [Cout, Cin/groups, kd, kh, kw]."""
    return conv_nd(data, kernel, 3, False, stride, padding, dilation, groups, out_dtype, name)


def conv3d_ndhwc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv3d_ndhwc",
) -> Tensor:
    """3-D convolution, data [N, D, H, W, Cin], kernel [kd, kh, kw, Cin/groups, Cout] (C3D)."""
    return conv_nd(data, kernel, 3, True, stride, padding, dilation, groups, out_dtype, name)
