"""Capsule 2-D convolution (the paper's CAP workload, from "Matrix capsules with EM
routing", ICLR 2018), declared as in Ansor's benchmark scripts (TVM's
``meta_schedule/testing/te_workload.py::conv2d_capsule_nhwijc``).

Every pixel holds, per channel, a pose *matrix* instead of a scalar; the convolution
multiplies input poses [I, K] by kernel poses [K, J] and sums over the window, the
input channels and the inner pose dimension::

    out[n, h, w, i, j, co] = sum_{rh, rw, cap_k, rc}
        pad[n, h*s + rh, w*s + rw, i, cap_k, rc] * kernel[rh, rw, cap_k, j, rc, co]

Layouts: data [N, H, W, I, K, Cin] ("nhwijc": batch, height, width, the pose's two
dimensions, channel), kernel [kh, kw, K, J, Cin, Cout], output [N, H', W', I, J, Cout].
The benchmark uses square 4x4 poses (I = J = K = capsule_size); other sizes are allowed.
Only the spatial dimensions are padded (op ``{name}_pad``).
"""

from __future__ import annotations

from ir import te
from ir.te import Tensor
from ir.topi.nn_conv import IntOrTuple
from ir.topi.pad import pad
from ir.topi.utils import (
    TopiError,
    as_tuple,
    check_rank,
    conv_out_size,
    op_label,
    padding_nd,
    positive,
    scaled,
)


def conv2d_capsule_nhwijc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    out_dtype: str | None = None,
    name: str = "conv2d_capsule_nhwijc",
) -> Tensor:
    """Capsule convolution (see the module docstring for the formula and layouts)."""
    op = op_label("conv2d_capsule_nhwijc", name)
    check_rank(data, 6, "data", op, "[N, H, W, I, K, Cin]")
    check_rank(kernel, 6, "kernel", op, "[kh, kw, K, J, Cin, Cout]")
    sh, sw = as_tuple(stride, 2, "stride", op)
    positive((sh, sw), "stride", op)
    (pt, pl), (pb, pr) = padding_nd(padding, 2, op)
    batch, in_h, in_w, pose_i, pose_k, in_c = data.shape
    kh, kw, kernel_pose_k, pose_j, k_in_c, out_c = kernel.shape
    if pose_k != kernel_pose_k:
        raise TopiError(
            f"{op}: data pose [I, K] = [{pose_i}, {pose_k}] and kernel pose [K, J] = "
            f"[{kernel_pose_k}, {pose_j}] disagree on K"
        )
    if k_in_c != in_c:
        raise TopiError(f"{op}: kernel {list(kernel.shape)} has {k_in_c} input channels, data has {in_c}")
    out_h = conv_out_size(in_h, kh, sh, 1, pt, pb, op, "height")
    out_w = conv_out_size(in_w, kw, sw, 1, pl, pr, op, "width")
    padded = (
        pad(data, [0, pt, pl, 0, 0, 0], [0, pb, pr, 0, 0, 0], name=f"{name}_pad")
        if pt or pl or pb or pr
        else data
    )
    dtype = out_dtype or data.dtype
    rh = te.reduce_axis((0, kh), name="rh")
    rw = te.reduce_axis((0, kw), name="rw")
    cap_k = te.reduce_axis((0, pose_k), name="cap_k")
    rc = te.reduce_axis((0, in_c), name="rc")
    return te.compute(
        (batch, out_h, out_w, pose_i, pose_j, out_c),
        lambda n, h, w, cap_i, cap_j, co: te.sum(
            padded[n, scaled(h, sh) + rh, scaled(w, sw) + rw, cap_i, cap_k, rc].astype(dtype)
            * kernel[rh, rw, cap_k, cap_j, rc, co].astype(dtype),
            axis=[rh, rw, cap_k, rc],
        ),
        name=name,
        tag="conv2d_capsule_nhwijc",
    )
