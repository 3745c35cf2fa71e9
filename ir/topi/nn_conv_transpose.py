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

Both still spend (s^2 - 1) / s^2 of their multiply-adds on inserted zeros unless a
schedule unrolls the window. ``conv2d_transpose_nhwc_phases`` (the network layer's
declaration) has none: one small dense convolution per output phase, stacked in one op,
then interleaved (see its docstring). Unrolling is then no longer needed for speed, and
the reduction is an ordinary one that Ansor's multi-level tiling and the default
schedule treat as a convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# ------------------------------------------------------------------------------------------
# the phase form: stride^2 small convolutions over the output phases, no inserted zeros


@dataclass(frozen=True)
class _PhaseAxis:
    """One spatial axis of the phase form: output ``y = s * a + r`` (phase ``r``).

    Phase ``r`` reads only the taps ``ky = (r + p) % s + s * t`` (``t < taps``) at input
    ``a + (r + p) // s - t``: the other taps meet inserted zeros. When the input is
    shorter than ``taps`` (a 1x1 latent) the reduction runs over the input pixels ``i``
    instead, at tap ``ky = s * a + r + p - i * s``, guarded to ``[0, k)``."""

    stride: int
    kernel: int
    pad: int  # the begin padding
    in_len: int
    out_len: int

    @property
    def phases(self) -> int:
        """Output rows per phase: ceil(out_len / s) (the last may fall past the end)."""
        return -(-self.out_len // self.stride)

    @property
    def taps(self) -> int:
        return -(-self.kernel // self.stride)

    @property
    def over_pixels(self) -> bool:
        return self.in_len < self.taps

    @property
    def reduce_extent(self) -> int:
        return self.in_len if self.over_pixels else self.taps

    def input_pad(self) -> tuple[int, int]:
        """Zeros before and after the input so that every tap's read is in bounds."""
        if self.over_pixels:
            return 0, 0
        s, p = self.stride, self.pad
        before = max(0, self.taps - 1 - p // s)
        after = max(0, self.phases - 1 + (s - 1 + p) // s - (self.in_len - 1))
        return before, after

    def reads(self, a: Expr, r: Expr | int, t: Expr) -> tuple[Expr, Expr, list[Expr]]:
        """(index into the padded input, kernel tap, conditions for the tap to exist)."""
        s, p, k = self.stride, self.pad, self.kernel
        if self.over_pixels:
            tap = scaled(a, s) + r + p - scaled(t, s)
            return t, tap, [tap >= 0, tap < k]
        before = self.input_pad()[0]
        if s == 1:
            return a + (p + before) - t, t, []
        tap = (r + p) % s + t * s
        return a + (r + p) // s + before - t, tap, ([tap < k] if k % s else [])


def conv2d_transpose_nhwc_phases(
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
    """``conv2d_transpose_nhwc`` without the inserted zeros: the same arguments and result.

    A stride-s transposed convolution is s_h x s_w direct convolutions, one per output
    phase (y % s_h, x % s_w), each with the ceil(k / s)^2 taps that phase meets (the
    sub-pixel form of Shi et al. 2016; onnxruntime's and PyTorch's CPU kernels avoid the
    zeros too, as a GEMM then col2im). They are one op ``{name}_phases`` [N, s_h, s_w,
    ceil(H_out / s_h), ceil(W_out / s_w), C_out], phases outermost so that each phase's
    taps and input offset are loop-invariant in the tiled inner loops: the multi-level
    tiling of paper section 4.1 sees a plain convolution (rows along the phase's width,
    columns along C_out). The output ``name`` interleaves the phases back (rows and
    columns past H_out/W_out are dropped). Its reads (``h // s``, ``h % s``) are not simple
    accesses, so Ansor neither inlines it nor fuses the tiled op into it: the tiled op
    gets a cache-write stage, and the interleave and the element-wise epilogue follow as
    parallel, vectorised copies of the output (measured: inlining the interleave into
    the epilogue gains nothing on DCGAN's layers). With stride 1 the phase op
    is the output itself (and fuses with the epilogue as a convolution does). A dilated
    kernel falls back to ``conv2d_transpose_nhwc``.
    """
    op = op_label("conv2d_transpose_nhwc_phases", name)
    if as_tuple(dilation, 2, "dilation", op) != (1, 1):
        return conv2d_transpose_nhwc(
            data, kernel, stride, padding, output_padding, dilation, groups, out_dtype, kernel_layout, name
        )
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
    (sh, sw), (bt, bl, bb, br), _ = _transpose_args(op, (kh, kw), stride, padding, output_padding, 1)
    ax_h = _PhaseAxis(sh, kh, kh - 1 - bt, in_h, (in_h - 1) * sh + 1 + bt + bb - (kh - 1))
    ax_w = _PhaseAxis(sw, kw, kw - 1 - bl, in_w, (in_w - 1) * sw + 1 + bl + br - (kw - 1))
    for ax, dim in ((ax_h, "height"), (ax_w, "width")):
        if ax.out_len < 1:
            raise TopiError(f"{op}: output {dim} {ax.out_len} must be at least 1 (input {ax.in_len})")
    (pt, pb), (pl, pr) = ax_h.input_pad(), ax_w.input_pad()
    padded = pad(data, [0, pt, pl, 0], [0, pb, pr, 0], name=f"{name}_pad") if pt + pb + pl + pr else data
    dtype = out_dtype or data.dtype
    th = te.reduce_axis((0, ax_h.reduce_extent), name="th")
    tw = te.reduce_axis((0, ax_w.reduce_extent), name="tw")
    rc = te.reduce_axis((0, in_per_group), name="rc")

    def conv(n: IterVar, rh: Expr | int, rw: Expr | int, a: Expr, b: Expr, co: IterVar) -> Expr:
        y, ky, conds_h = ax_h.reads(a, rh, th)
        x, kx, conds_w = ax_w.reads(b, rw, tw)
        channel, co_g = (
            (rc, co) if groups == 1 else (co // out_per_group * in_per_group + rc, co % out_per_group)
        )
        if kernel_layout == "HWIO":
            w = kernel[ky, kx, channel, co_g]
        else:
            w = kernel[ky, kx, co_g, channel]
        conds = conds_h + conds_w
        w = te.if_then_else(te.all(*conds), w, const(0, kernel.dtype)) if conds else w
        return te.sum(padded[n, y, x, channel].astype(dtype) * w.astype(dtype), axis=[th, tw, rc])

    out_c = out_per_group * groups
    if (sh, sw) == (1, 1):
        return te.compute(
            (batch, ax_h.out_len, ax_w.out_len, out_c),
            lambda n, h, w, co: conv(n, 0, 0, h, w, co),
            name=name,
            tag="conv2d_transpose_nhwc",
        )
    phases = te.compute(
        (batch, sh, sw, ax_h.phases, ax_w.phases, out_c),
        lambda n, ph, pw, a, b, co: conv(n, ph if sh > 1 else 0, pw if sw > 1 else 0, a, b, co),
        name=f"{name}_phases",
        tag="conv2d_transpose_nhwc_phases",
    )

    def interleave(n: IterVar, h: IterVar, w: IterVar, co: IterVar) -> Expr:
        rh, a = (h % sh, h // sh) if sh > 1 else (0, h)
        rw, b = (w % sw, w // sw) if sw > 1 else (0, w)
        return phases[n, rh, rw, a, b, co]

    return te.compute((batch, ax_h.out_len, ax_w.out_len, out_c), interleave, name=name, tag="injective")
