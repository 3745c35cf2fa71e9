"""Transposed 2-D convolution (the paper's T2D workload; the DCGAN generator's layers).

A transposed convolution with stride s, padding p and kernel k is the gradient of a
direct one: dilate the input by s (insert s - 1 zeros between pixels), pad it by
``k - 1 - p`` (plus ``output_padding`` at the bottom/right), and run a stride-1 direct
convolution with the kernel flipped in space and its in/out channels swapped. Output
extent: ``(H - 1) * s - p_top - p_bottom + k + output_padding``.

Two declarations of that math, after the two sources the benchmarks come from:

* ``conv2d_transpose_nchw`` follows TVM's topi: separate ops ``{name}_dilate``,
  ``{name}_pad``, ``{name}_kernel`` (the flipped kernel, [Cout, Cin, kh, kw]) and the
  convolution. Kernel layout [Cin, Cout, kh, kw] ("IOHW").
* ``conv2d_transpose_nhwc`` follows Ansor's benchmark script: the input is padded
  undilated and the dilation is folded into the convolution's read as a guarded
  ``h % s == 0`` select, so that unrolling the window skips the multiplications by the
  inserted zeros (the "zero-skipping unroll" behind Ansor's T2D result, paper section
  7.1). Kernel layout [kh, kw, Cin, Cout] ("HWIO") or ONNX's [kh, kw, Cout, Cin]
  ("HWOI"). The op carries the benchmark's ``auto_scheduler_always_unroll_inner`` hint.

Both take ``dilation`` (the kernel's taps spaced d apart: the back-padding becomes
``(k - 1) * d - p``) and ``groups`` (input channel group g feeds output channels
[g * Cout/groups, (g + 1) * Cout/groups), as ONNX ConvTranspose).
"""

from __future__ import annotations

from ir import te
from ir.expr import Expr, IterVar, const
from ir.te import Tensor
from ir.topi.nn_conv import IntOrTuple
from ir.topi.pad import dilate, pad
from ir.topi.utils import TopiError, as_tuple, check_rank, op_label, padding_nd, positive, scaled


def _transpose_args(
    op: str,
    kernel_hw: tuple[int, int],
    stride: IntOrTuple,
    padding: IntOrTuple,
    output_padding: IntOrTuple,
    dilation: IntOrTuple,
) -> tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int]]:
    """Validated strides and dilations, and the back-padding (top, left, bottom, right)
    of the dilated input."""
    sh, sw = as_tuple(stride, 2, "stride", op)
    positive((sh, sw), "stride", op)
    dh, dw = as_tuple(dilation, 2, "dilation", op)
    positive((dh, dw), "dilation", op)
    (pt, pl), (pb, pr) = padding_nd(padding, 2, op)
    oh, ow = as_tuple(output_padding, 2, "output_padding", op)
    # the dilated kernel spans (k - 1) * d + 1 pixels
    eh, ew = (kernel_hw[0] - 1) * dh, (kernel_hw[1] - 1) * dw
    for p, e, d, side in (
        (pt, eh, dh, "top"),
        (pb, eh, dh, "bottom"),
        (pl, ew, dw, "left"),
        (pr, ew, dw, "right"),
    ):
        if p > e:
            what = "dilated kernel size" if d > 1 else "kernel size"
            raise TopiError(f"{op}: {side} padding {p} larger than {what} - 1 = {e}")
    for o, s, dim in ((oh, sh, "height"), (ow, sw, "width")):
        if not 0 <= o < s:
            raise TopiError(f"{op}: output_padding {o} along {dim} must be in [0, stride {s})")
    back_pad = (eh - pt, ew - pl, eh - pb + oh, ew - pr + ow)
    return (sh, sw), back_pad, (dh, dw)


def _check_groups(op: str, in_c: int, k_in: int, groups: int, kernel: Tensor) -> int:
    """Input channels per group, after checking the kernel's input channel extent."""
    if not isinstance(groups, int) or groups < 1:
        raise TopiError(f"{op}: groups {groups!r} must be a positive int")
    if k_in != in_c:
        raise TopiError(f"{op}: kernel {list(kernel.shape)} has {k_in} input channels, data has {in_c}")
    if in_c % groups:
        raise TopiError(f"{op}: input channels {in_c} not divisible by groups {groups}")
    return in_c // groups


def conv2d_transpose_nchw(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv2d_transpose_nchw",
) -> Tensor:
    """Transposed convolution, data [N, Cin, H, W], kernel [Cin, Cout/groups, kh, kw]
    (TVM's and ONNX's form); input channel group g feeds output channels
    [g * Cout/groups, (g + 1) * Cout/groups)."""
    op = op_label("conv2d_transpose_nchw", name)
    check_rank(data, 4, "data", op, "NCHW")
    check_rank(kernel, 4, "kernel", op, "[Cin, Cout/groups, kh, kw]")
    batch, in_c, _, _ = data.shape
    k_in, out_per_group, kh, kw = kernel.shape
    in_per_group = _check_groups(op, in_c, k_in, groups, kernel)
    (sh, sw), (bt, bl, bb, br), (dil_h, dil_w) = _transpose_args(
        op, (kh, kw), stride, padding, output_padding, dilation
    )
    dilated = data if (sh, sw) == (1, 1) else dilate(data, [1, 1, sh, sw], name=f"{name}_dilate")
    padded = (
        dilated
        if not (bt or bl or bb or br)
        else pad(dilated, [0, 0, bt, bl], [0, 0, bb, br], name=f"{name}_pad")
    )
    out_c = out_per_group * groups

    def flip(o: IterVar, i: IterVar, h: IterVar, w: IterVar) -> Expr:
        if groups == 1:
            return kernel[i, o, kh - 1 - h, kw - 1 - w]
        return kernel[o // out_per_group * in_per_group + i, o % out_per_group, kh - 1 - h, kw - 1 - w]

    flipped = te.compute((out_c, in_per_group, kh, kw), flip, name=f"{name}_kernel", tag="injective")
    out_h = padded.shape[2] - (kh - 1) * dil_h
    out_w = padded.shape[3] - (kw - 1) * dil_w
    dtype = out_dtype or data.dtype
    dc = te.reduce_axis((0, in_per_group), name="dc")
    dh = te.reduce_axis((0, kh), name="dh")
    dw = te.reduce_axis((0, kw), name="dw")

    def body(b: IterVar, c: IterVar, h: IterVar, w: IterVar) -> Expr:
        channel = dc if groups == 1 else c // out_per_group * in_per_group + dc
        x = padded[b, channel, h + scaled(dh, dil_h), w + scaled(dw, dil_w)]
        return te.sum(x.astype(dtype) * flipped[c, dc, dh, dw].astype(dtype), axis=[dc, dh, dw])

    return te.compute((batch, out_c, out_h, out_w), body, name=name, tag="conv2d_transpose_nchw")


def conv2d_transpose_nhwc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    kernel_layout: str = "HWIO",
    name: str = "conv2d_transpose_nhwc",
) -> Tensor:
    """Transposed convolution, data [N, H, W, Cin], kernel [kh, kw, Cin, Cout/groups]
    ("HWIO", Ansor's T2D form) or [kh, kw, Cout/groups, Cin] ("HWOI", ONNX's kernel with
    the window axes first)."""
    op = op_label("conv2d_transpose_nhwc", name)
    if kernel_layout not in ("HWIO", "HWOI"):
        raise TopiError(f"{op}: kernel_layout {kernel_layout!r} must be HWIO or HWOI")
    check_rank(data, 4, "data", op, "NHWC")
    check_rank(kernel, 4, "kernel", op, f"{kernel_layout}: [kh, kw, Cin, Cout/groups]")
    batch, in_h, in_w, in_c = data.shape
    if kernel_layout == "HWIO":
        kh, kw, k_in, out_per_group = kernel.shape
    else:
        kh, kw, out_per_group, k_in = kernel.shape
    in_per_group = _check_groups(op, in_c, k_in, groups, kernel)
    (sh, sw), (bt, bl, bb, br), (dil_h, dil_w) = _transpose_args(
        op, (kh, kw), stride, padding, output_padding, dilation
    )
    # pad the undilated input by ceil(back pad / stride) pixels; the read below starts
    # ``border`` dilated pixels into it so that it lines up with the back padding
    before = [0, -(-bt // sh), -(-bl // sw), 0]
    after = [0, -(-bb // sh), -(-br // sw), 0]
    padded = pad(data, before, after, name=f"{name}_pad") if any(before) or any(after) else data
    border_h, border_w = (sh - bt % sh) % sh, (sw - bl % sw) % sw
    out_h = (in_h - 1) * sh + 1 + bt + bb - (kh - 1) * dil_h
    out_w = (in_w - 1) * sw + 1 + bl + br - (kw - 1) * dil_w

    def dilated_read(n: IterVar, y: Expr, x: Expr, c: Expr) -> Expr:
        """``padded`` dilated by the stride, read at (y, x): zero between real pixels."""
        conds = []
        if sh != 1:
            conds.append(y % sh == 0)
            y = y // sh
        if sw != 1:
            conds.append(x % sw == 0)
            x = x // sw
        read = padded[n, y, x, c]
        return te.if_then_else(te.all(*conds), read, const(0, padded.dtype)) if conds else read

    def offset(e: Expr, border: int) -> Expr:
        return e + border if border else e

    dtype = out_dtype or data.dtype
    rh = te.reduce_axis((0, kh), name="rh")
    rw = te.reduce_axis((0, kw), name="rw")
    rc = te.reduce_axis((0, in_per_group), name="rc")

    def body(n: IterVar, h: IterVar, w: IterVar, co: IterVar) -> Expr:
        channel, co_g = (
            (rc, co) if groups == 1 else (co // out_per_group * in_per_group + rc, co % out_per_group)
        )
        y = offset(h + scaled(rh, dil_h), border_h)
        x = offset(w + scaled(rw, dil_w), border_w)
        if kernel_layout == "HWIO":
            k = kernel[kh - 1 - rh, kw - 1 - rw, channel, co_g]
        else:
            k = kernel[kh - 1 - rh, kw - 1 - rw, co_g, channel]
        return te.sum(dilated_read(n, y, x, channel).astype(dtype) * k.astype(dtype), axis=[rh, rw, rc])

    return te.compute(
        (batch, out_h, out_w, out_per_group * groups),
        body,
        name=name,
        tag="conv2d_transpose_nhwc",
        attrs={"auto_scheduler_always_unroll_inner": ["h", "w", "rh", "rw", "h_c", "w_c"]},
    )
