"""``conv`` and ``conv_transpose``: the graph ops of ONNX Conv and ConvTranspose.

Attributes (all tuples over the spatial axes, pads ONNX style: all begins, then all ends):
``layout`` (NCW/NCHW/NCDHW or NWC/NHWC/NDHWC), ``kernel_layout`` (conv: OIW/OIHW/OIDHW or
WIO/HWIO/DHWIO; conv_transpose: IOHW, HWOI or HWIO), ``strides``, ``pads``, ``dilations``,
``groups`` and, for conv_transpose, ``output_padding``. Any data layout goes with any kernel
layout of the same rank; declarations transpose the weight (an op ``{name}_weight``, inlined
by Ansor) only when topi's pairing (NCHW with OIHW, NHWC with HWIO) is not the one given.

References follow ONNX and run at network scale without loops over output elements: both
are one BLAS matmul per kernel offset (an im2col that never materialises the whole patch
matrix, so the 7x7x3 stem of 3D-ResNet-18 stays small), batched over groups; a depthwise
conv is a broadcast multiply per offset.

Declarations use ``ir.topi``: ``conv_nd`` (groups, dilation, asymmetric pads), the depthwise
convolution when ``groups == C_in == C_out`` in 2-D (so Ansor searches the depthwise space,
paper section 7.1's DEP), and the transposed convolutions of ``nn_conv_transpose``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ansor_py.network.ops.base import Attrs, OpDef, OpPattern
from ansor_py.network.ops.nn_common import (
    DATA_LAYOUTS,
    check_out,
    choice,
    float_input,
    int_attr,
    int_tuple,
    perm_between,
    rank_is,
    same_dtype,
    window_out,
)
from ansor_py.network.types import GraphError, TensorType
from ir import topi
from ir.te import Tensor
from ir.topi.nn_conv_transpose import conv2d_transpose_nhwc_phases

KERNEL_LAYOUTS = ("OIW", "OIHW", "OIDHW", "WIO", "HWIO", "DHWIO")
TRANSPOSE_LAYOUTS = ("NCHW", "NHWC")
TRANSPOSE_KERNEL_LAYOUTS = ("IOHW", "HWOI", "HWIO")
# the patch matrix of one im2col step holds at most this many elements (kernel offsets are
# taken in chunks that fit), so a 3-D stem needs no gigabytes
_IM2COL_ELEMENTS = 1 << 25


def _spatial_letters(layout: str) -> str:
    return "".join(c for c in layout if c in "DHW")


def _window_attrs(attrs: Attrs, op: str, nsp: int) -> tuple[tuple[int, ...], ...]:
    strides = int_tuple(attrs, "strides", op, nsp, 1, (1,) * nsp)
    pads = int_tuple(attrs, "pads", op, 2 * nsp, 0, (0,) * (2 * nsp))
    dilations = int_tuple(attrs, "dilations", op, nsp, 1, (1,) * nsp)
    return strides, pads, dilations


def _layouts(attrs: Attrs, op: str, layouts: Sequence[str], kernel_layouts: Sequence[str]) -> tuple[str, str]:
    layout = choice(attrs, "layout", op, layouts)
    kernel_layout = choice(attrs, "kernel_layout", op, kernel_layouts)
    if _spatial_letters(kernel_layout) != _spatial_letters(layout):
        raise GraphError(
            f"{op}: attribute 'kernel_layout' = {kernel_layout!r} does not match layout {layout!r}"
        )
    return layout, kernel_layout


def _check_inputs(op: str, types: Sequence[TensorType], layout: str, kernel_layout: str) -> None:
    rank_is(types[0], len(layout), "data", op, layout)
    rank_is(types[1], len(kernel_layout), "weight", op, kernel_layout)
    float_input(types[0], "data", op)
    same_dtype(types, ("data", "weight"), op)


def _dims(shape: Sequence[int], layout: str) -> dict[str, int]:
    return dict(zip(layout, shape, strict=True))


# ------------------------------------------------------------------------------------------
# conv


def conv_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "conv"
    layout, kernel_layout = _layouts(attrs, op, DATA_LAYOUTS, KERNEL_LAYOUTS)
    _check_inputs(op, types, layout, kernel_layout)
    nsp = len(layout) - 2
    strides, pads, dilations = _window_attrs(attrs, op, nsp)
    groups = int_attr(attrs, "groups", op, 1, 1)
    data, weight = _dims(types[0].shape, layout), _dims(types[1].shape, kernel_layout)
    in_c, out_c = data["C"], weight["O"]
    if in_c % groups or out_c % groups:
        raise GraphError(
            f"{op}: attribute 'groups' = {groups} must divide the input channels {in_c} "
            f"and the output channels {out_c}"
        )
    if weight["I"] != in_c // groups:
        raise GraphError(
            f"{op}: weight {list(types[1].shape)} ({kernel_layout}) has {weight['I']} input channels, "
            f"expected {in_c // groups} (= {in_c} / groups {groups})"
        )
    letters = _spatial_letters(layout)
    sizes = [
        window_out(data[c], weight[c], s, d, pads[i], pads[i + nsp])
        for i, (c, s, d) in enumerate(zip(letters, strides, dilations, strict=True))
    ]
    check_out(op, sizes, layout, types[0].shape)
    out = dict(data, C=out_c, **dict(zip(letters, sizes, strict=True)))
    return [TensorType(tuple(out[c] for c in layout), types[0].dtype)]


def _pad_spatial(x: np.ndarray, before: Sequence[int], after: Sequence[int]) -> np.ndarray:
    """Zero-pad the trailing spatial axes of a channels-first array."""
    if not any(before) and not any(after):
        return x
    return np.pad(x, [(0, 0), (0, 0), *zip(before, after, strict=True)])


def _window_slices(
    offset: Sequence[int], dilations: Sequence[int], strides: Sequence[int], sizes: Sequence[int]
) -> tuple[slice, ...]:
    """The input positions that kernel ``offset`` reads for every output position."""
    return tuple(
        slice(o * d, o * d + (n - 1) * s + 1, s)
        for o, d, s, n in zip(offset, dilations, strides, sizes, strict=True)
    )


def conv_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    layout, kernel_layout = attrs["layout"], attrs["kernel_layout"]
    letters = _spatial_letters(layout)
    nsp = len(letters)
    strides, pads, dilations = _window_attrs(attrs, "conv", nsp)
    groups = int(attrs.get("groups", 1))
    x = arrays[0].transpose(perm_between(layout, "NC" + letters))
    w = arrays[1].transpose(perm_between(kernel_layout, "OI" + letters))
    xp = _pad_spatial(x, pads[:nsp], pads[nsp:])
    batch, out_c, in_per_group = x.shape[0], w.shape[0], w.shape[1]
    ksizes = w.shape[2:]
    sizes = [
        window_out(n, k, s, d, b, a)
        for n, k, s, d, b, a in zip(
            x.shape[2:], ksizes, strides, dilations, pads[:nsp], pads[nsp:], strict=True
        )
    ]
    positions = math.prod(sizes)
    out_per_group = out_c // groups
    wg = w.reshape(groups, out_per_group, in_per_group, math.prod(ksizes))
    acc = np.zeros((batch, groups, out_per_group, positions), dtype=x.dtype)
    offsets = list(np.ndindex(*ksizes))
    chunk = 1 if in_per_group == 1 else max(1, _IM2COL_ELEMENTS // (batch * x.shape[1] * positions))
    for first in range(0, len(offsets), chunk):
        # im2col of a chunk of kernel offsets: [batch, groups, in_per_group * chunk, positions]
        taken = range(first, min(first + chunk, len(offsets)))
        windows = [
            xp[(slice(None), slice(None), *_window_slices(offsets[i], dilations, strides, sizes))]
            for i in taken
        ]
        cols = np.stack([win.reshape(batch, groups, in_per_group, positions) for win in windows], axis=3)
        w_chunk = wg[..., first : first + len(taken)]  # [groups, out_per_group, in_per_group, chunk]
        if in_per_group == 1:  # depthwise-like: a broadcast multiply per offset
            acc += w_chunk[None, :, :, 0, 0, None] * cols[:, :, 0, 0][:, :, None]
        else:
            k = in_per_group * len(taken)
            acc += np.matmul(
                w_chunk.reshape(groups, out_per_group, k), cols.reshape(batch, groups, k, positions)
            )
    out = acc.reshape(batch, out_c, *sizes)
    return [np.asarray(out.transpose(perm_between("NC" + letters, layout)), order="C")]


def _weight_as(w: Tensor, src: str, dst: str, name: str) -> Tensor:
    """``w`` transposed from layout ``src`` to ``dst`` (no op when they agree)."""
    if src == dst:
        return w
    return topi.transpose(w, perm_between(src, dst), name=f"{name}_weight")


def conv_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    layout, kernel_layout = attrs["layout"], attrs["kernel_layout"]
    letters = _spatial_letters(layout)
    nsp = len(letters)
    strides, pads, dilations = _window_attrs(attrs, "conv", nsp)
    groups = int(attrs.get("groups", 1))
    data, weight = tensors
    channels_last = layout[-1] == "C"
    in_c = data.shape[layout.index("C")]
    out_c = weight.shape[kernel_layout.index("O")]
    if nsp == 2 and groups > 1 and groups == in_c == out_c:
        # topi's depthwise kernels, [C, multiplier 1, kh, kw] and [kh, kw, C, 1], are the
        # weight in OIHW and HWOI order
        if channels_last:
            w = _weight_as(weight, kernel_layout, "HWOI", name)
            return [topi.depthwise_conv2d_nhwc(data, w, strides, pads, dilations, name=name)]
        w = _weight_as(weight, kernel_layout, "OIHW", name)
        return [topi.depthwise_conv2d_nchw(data, w, strides, pads, dilations, name=name)]
    w = _weight_as(weight, kernel_layout, letters + "IO" if channels_last else "OI" + letters, name)
    return [topi.conv_nd(data, w, nsp, channels_last, strides, pads, dilations, groups, None, name)]


CONV = OpDef("conv", OpPattern.OUT_ELEMWISE_FUSABLE, conv_infer, conv_reference, conv_declare, (2, 2))


# ------------------------------------------------------------------------------------------
# conv_transpose


def _transpose_attrs(attrs: Attrs, op: str) -> tuple[tuple[int, ...], ...]:
    strides, pads, dilations = _window_attrs(attrs, op, 2)
    output_padding = int_tuple(attrs, "output_padding", op, 2, 0, (0, 0))
    return strides, pads, dilations, output_padding


def conv_transpose_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "conv_transpose"
    layout, kernel_layout = _layouts(attrs, op, TRANSPOSE_LAYOUTS, TRANSPOSE_KERNEL_LAYOUTS)
    _check_inputs(op, types, layout, kernel_layout)
    strides, pads, dilations, output_padding = _transpose_attrs(attrs, op)
    groups = int_attr(attrs, "groups", op, 1, 1)
    data, weight = _dims(types[0].shape, layout), _dims(types[1].shape, kernel_layout)
    in_c = data["C"]
    if weight["I"] != in_c:
        raise GraphError(
            f"{op}: weight {list(types[1].shape)} ({kernel_layout}) has {weight['I']} input channels, "
            f"data has {in_c}"
        )
    if in_c % groups:
        raise GraphError(f"{op}: attribute 'groups' = {groups} must divide the input channels {in_c}")
    sizes = []
    for i, c in enumerate("HW"):
        k, s, d = weight[c], strides[i], dilations[i]
        for p in (pads[i], pads[i + 2]):
            if p > (k - 1) * d:
                raise GraphError(
                    f"{op}: attribute 'pads' = {pads!r}: pad {p} along {c} is larger than the "
                    f"dilated kernel extent - 1 = {(k - 1) * d}"
                )
        if output_padding[i] >= s:
            raise GraphError(
                f"{op}: attribute 'output_padding' = {output_padding!r} must be below the strides {strides!r}"
            )
        sizes.append(s * (data[c] - 1) + output_padding[i] + (k - 1) * d + 1 - pads[i] - pads[i + 2])
    check_out(op, sizes, layout, types[0].shape)
    out = dict(data, C=weight["O"] * groups, H=sizes[0], W=sizes[1])
    return [TensorType(tuple(out[c] for c in layout), types[0].dtype)]


def conv_transpose_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    layout, kernel_layout = attrs["layout"], attrs["kernel_layout"]
    strides, pads, dilations, output_padding = _transpose_attrs(attrs, "conv_transpose")
    groups = int(attrs.get("groups", 1))
    x = arrays[0].transpose(perm_between(layout, "NCHW"))
    w = arrays[1].transpose(perm_between(kernel_layout, "IOHW"))
    batch, in_c, *in_sizes = x.shape
    _, out_per_group, *ksizes = w.shape
    in_per_group = in_c // groups
    full = [
        s * (n - 1) + (k - 1) * d + 1 + o
        for n, k, s, d, o in zip(in_sizes, ksizes, strides, dilations, output_padding, strict=True)
    ]
    acc = np.zeros((batch, groups, out_per_group, *full), dtype=x.dtype)
    rows = x.reshape(batch, groups, in_per_group, math.prod(in_sizes))
    wg = w.reshape(groups, in_per_group, out_per_group, *ksizes)
    for offset in np.ndindex(*ksizes):
        w_off = wg[(Ellipsis, *offset)].transpose(0, 2, 1)  # [groups, out_per_group, in_per_group]
        if in_per_group == 1:
            part = w_off[None, :, :, 0, None] * rows
        else:
            part = np.matmul(w_off, rows)
        target: tuple[slice, ...] = (slice(None),) * 3 + _window_slices(offset, dilations, strides, in_sizes)
        acc[target] += part.reshape(batch, groups, out_per_group, *in_sizes)
    crop = tuple(slice(b, n - a) for b, a, n in zip(pads[:2], pads[2:], full, strict=True))
    out_sizes = [n - b - a for b, a, n in zip(pads[:2], pads[2:], full, strict=True)]
    out = acc[(slice(None),) * 3 + crop].reshape(batch, groups * out_per_group, *out_sizes)
    return [np.asarray(out.transpose(perm_between("NCHW", layout)), order="C")]


def conv_transpose_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    """NCHW: topi's zero-inserting form. NHWC: the phase form (``conv2d_transpose_nhwc_phases``:
    one small convolution per output phase, no multiply-adds by inserted zeros), reading an
    HWIO or HWOI weight as it is (HWIO keeps the output channels, the vectorised axis,
    contiguous)."""
    layout, kernel_layout = attrs["layout"], attrs["kernel_layout"]
    strides, pads, dilations, output_padding = _transpose_attrs(attrs, "conv_transpose")
    groups = int(attrs.get("groups", 1))
    data, weight = tensors
    if layout == "NCHW":
        w = _weight_as(weight, kernel_layout, "IOHW", name)
        out = topi.conv2d_transpose_nchw(data, w, strides, pads, output_padding, dilations, groups, name=name)
    else:
        window_first = kernel_layout if kernel_layout in ("HWIO", "HWOI") else "HWIO"
        w = _weight_as(weight, kernel_layout, window_first, name)
        out = conv2d_transpose_nhwc_phases(
            data, w, strides, pads, output_padding, dilations, groups, kernel_layout=window_first, name=name
        )
    return [out]


CONV_TRANSPOSE = OpDef(
    "conv_transpose",
    OpPattern.OUT_ELEMWISE_FUSABLE,
    conv_transpose_infer,
    conv_transpose_reference,
    conv_transpose_declare,
    (2, 2),
)

__all__ = ["CONV", "CONV_TRANSPOSE"]
