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
  7.1). Kernel layout [kh, kw, Cin, Cout]. The op carries the benchmark's
  ``auto_scheduler_always_unroll_inner`` hint.
"""

from __future__ import annotations

from ir import te
from ir.expr import Expr, IterVar, const
from ir.te import Tensor
from ir.topi.nn_conv import IntOrTuple
from ir.topi.pad import dilate, pad
from ir.topi.utils import TopiError, as_tuple, check_rank, op_label, padding_nd, positive


def _transpose_args(
    op: str, kernel_hw: tuple[int, int], stride: IntOrTuple, padding: IntOrTuple, output_padding: IntOrTuple
) -> tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int]]:
    """Validated strides, the back-padding (top, left, bottom, right) of the dilated
    input, and the output padding."""
    sh, sw = as_tuple(stride, 2, "stride", op)
    positive((sh, sw), "stride", op)
    (pt, pl), (pb, pr) = padding_nd(padding, 2, op)
    oh, ow = as_tuple(output_padding, 2, "output_padding", op)
    kh, kw = kernel_hw
    for p, k, side in ((pt, kh, "top"), (pb, kh, "bottom"), (pl, kw, "left"), (pr, kw, "right")):
        if p > k - 1:
            raise TopiError(f"{op}: {side} padding {p} larger than kernel size - 1 = {k - 1}")
    for o, s, dim in ((oh, sh, "height"), (ow, sw, "width")):
        if not 0 <= o < s:
            raise TopiError(f"{op}: output_padding {o} along {dim} must be in [0, stride {s})")
    back_pad = (kh - 1 - pt, kw - 1 - pl, kh - 1 - pb + oh, kw - 1 - pr + ow)
    return (sh, sw), back_pad, (oh, ow)


def conv2d_transpose_nchw(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    out_dtype: str | None = None,
    name: str = "conv2d_transpose_nchw",
) -> Tensor:
    """Transposed convolution, data [N, Cin, H, W], kernel [Cin, Cout, kh, kw] (TVM's form)."""
    op = op_label("conv2d_transpose_nchw", name)
    check_rank(data, 4, "data", op, "NCHW")
    check_rank(kernel, 4, "kernel", op, "[Cin, Cout, kh, kw]")
    batch, in_c, _, _ = data.shape
    k_in, out_c, kh, kw = kernel.shape
    if k_in != in_c:
        raise TopiError(f"{op}: kernel {list(kernel.shape)} has {k_in} input channels, data has {in_c}")
    (sh, sw), (bt, bl, bb, br), _ = _transpose_args(op, (kh, kw), stride, padding, output_padding)
    dilated = data if (sh, sw) == (1, 1) else dilate(data, [1, 1, sh, sw], name=f"{name}_dilate")
    padded = (
        dilated
        if not (bt or bl or bb or br)
        else pad(dilated, [0, 0, bt, bl], [0, 0, bb, br], name=f"{name}_pad")
    )
    flipped = te.compute(
        (out_c, in_c, kh, kw),
        lambda o, i, h, w: kernel[i, o, kh - 1 - h, kw - 1 - w],
        name=f"{name}_kernel",
        tag="injective",
    )
    out_h = padded.shape[2] - kh + 1
    out_w = padded.shape[3] - kw + 1
    dtype = out_dtype or data.dtype
    dc = te.reduce_axis((0, in_c), name="dc")
    dh = te.reduce_axis((0, kh), name="dh")
    dw = te.reduce_axis((0, kw), name="dw")
    return te.compute(
        (batch, out_c, out_h, out_w),
        lambda b, c, h, w: te.sum(
            padded[b, dc, h + dh, w + dw].astype(dtype) * flipped[c, dc, dh, dw].astype(dtype),
            axis=[dc, dh, dw],
        ),
        name=name,
        tag="conv2d_transpose_nchw",
    )


def conv2d_transpose_nhwc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    out_dtype: str | None = None,
    name: str = "conv2d_transpose_nhwc",
) -> Tensor:
    """Transposed convolution, data [N, H, W, Cin], kernel [kh, kw, Cin, Cout] (Ansor's T2D form)."""
    op = op_label("conv2d_transpose_nhwc", name)
    check_rank(data, 4, "data", op, "NHWC")
    check_rank(kernel, 4, "kernel", op, "[kh, kw, Cin, Cout]")
    batch, in_h, in_w, in_c = data.shape
    kh, kw, k_in, out_c = kernel.shape
    if k_in != in_c:
        raise TopiError(f"{op}: kernel {list(kernel.shape)} has {k_in} input channels, data has {in_c}")
    (sh, sw), (bt, bl, bb, br), _ = _transpose_args(op, (kh, kw), stride, padding, output_padding)
    # pad the undilated input by ceil(back pad / stride) pixels; the read below starts
    # ``border`` dilated pixels into it so that it lines up with the back padding
    before = [0, -(-bt // sh), -(-bl // sw), 0]
    after = [0, -(-bb // sh), -(-br // sw), 0]
    padded = pad(data, before, after, name=f"{name}_pad") if any(before) or any(after) else data
    border_h, border_w = (sh - bt % sh) % sh, (sw - bl % sw) % sw
    out_h = (in_h - 1) * sh + 1 + bt + bb - kh + 1
    out_w = (in_w - 1) * sw + 1 + bl + br - kw + 1

    def dilated_read(n: IterVar, y: Expr, x: Expr, c: IterVar) -> Expr:
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
    rc = te.reduce_axis((0, in_c), name="rc")
    return te.compute(
        (batch, out_h, out_w, out_c),
        lambda n, h, w, co: te.sum(
            dilated_read(n, offset(h + rh, border_h), offset(w + rw, border_w), rc).astype(dtype)
            * kernel[kh - 1 - rh, kw - 1 - rw, rc, co].astype(dtype),
            axis=[rh, rw, rc],
        ),
        name=name,
        tag="conv2d_transpose_nhwc",
        attrs={"auto_scheduler_always_unroll_inner": ["h", "w", "rh", "rw", "h_c", "w_c"]},
    )
