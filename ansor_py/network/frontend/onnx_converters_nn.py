"""ONNX converters of the neural-network ops: convolutions, Gemm and MatMul, normalisation,
softmax, pooling and the reductions (contract: ``frontend.onnx_context``).

Each ONNX op maps onto one graph op of the ``nn`` family plus the elementwise glue ONNX
folds into it: a Conv's bias becomes an ``add`` of the bias reshaped to ``(C, 1, 1)``, a
Gemm becomes ``dense`` (after a ``transpose`` of B when ``transB`` is 0), a ``multiply`` by
alpha and an ``add`` of beta * C, the way TVM's ONNX frontend expands them (the graph passes
fold the constant parts again). ``auto_pad`` is resolved here into explicit pads from the
static input shape, so the graph ops only know explicit ``pads``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ansor_py.network.frontend.onnx_context import (
    Converter,
    ConvertFn,
    ImportContext,
    OnnxImportError,
    OnnxNode,
    normalize_axes,
    normalize_axis,
)

#: data layouts of the channel-first ONNX tensors by number of spatial axes
LAYOUTS = {1: ("NCW", "OIW"), 2: ("NCHW", "OIHW"), 3: ("NCDHW", "OIDHW")}
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def int_tuple(
    node: OnnxNode, key: str, default: Sequence[int], length: int, minimum: int = 0
) -> tuple[int, ...]:
    """An ints attribute of exactly ``length`` entries, each >= ``minimum``."""
    value = tuple(int(v) for v in node.attr(key, default))
    if len(value) != length or any(v < minimum for v in value):
        raise node.unsupported(key, list(value), f"{length} integers >= {minimum}")
    return value


def spatial_layout(node: OnnxNode, rank: int) -> tuple[str, str]:
    if rank - 2 not in LAYOUTS:
        raise node.unsupported("input rank", rank, "3, 4 or 5 (1 to 3 spatial axes)")
    return LAYOUTS[rank - 2]


def window_pads(
    node: OnnxNode,
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...]:
    """Explicit ``(begin..., end...)`` pads of a sliding window (Conv, pools) from ``pads``
    or ``auto_pad``: SAME_* gives ``ceil(size / stride)`` outputs, the odd pad at the end
    (UPPER) or the beginning (LOWER), as the ONNX operator spec says."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise node.unsupported("auto_pad", auto_pad, ", ".join(AUTO_PADS))
    spatial = len(sizes)
    if auto_pad == "NOTSET":
        return int_tuple(node, "pads", (0,) * (2 * spatial), 2 * spatial)
    if auto_pad == "VALID":
        return (0,) * (2 * spatial)
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def add_channel_bias(ctx: ImportContext, node: OnnxNode, value: str, bias: str, spatial: int) -> list[str]:
    """``value + bias`` with the per-channel bias reshaped to ``(C, 1, ...)``."""
    channels = ctx.type_of(bias).size
    bias = ctx.reshape(node, bias, (channels,) + (1,) * spatial)
    return ctx.emit(node, "add", [value, bias], outputs=node.outputs)


def convert_conv(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data, weight, bias = node.input(0), node.input(1), node.input(2)
    xtype, wtype = ctx.type_of(data), ctx.type_of(weight)
    layout, kernel_layout = spatial_layout(node, xtype.ndim)
    spatial = xtype.ndim - 2
    kernel = wtype.shape[2:]
    if tuple(node.attr("kernel_shape", kernel)) != kernel:
        raise node.unsupported("kernel_shape", node.attr("kernel_shape"), f"the weight's {list(kernel)}")
    strides = int_tuple(node, "strides", (1,) * spatial, spatial, 1)
    dilations = int_tuple(node, "dilations", (1,) * spatial, spatial, 1)
    attrs = {
        "layout": layout,
        "kernel_layout": kernel_layout,
        "strides": strides,
        "pads": window_pads(node, xtype.shape[2:], kernel, strides, dilations),
        "dilations": dilations,
        "groups": int(node.attr("group", 1)),
    }
    if not bias:
        return ctx.emit(node, "conv", [data, weight], attrs, outputs=node.outputs)
    out = ctx.emit(node, "conv", [data, weight], attrs)[0]
    return add_channel_bias(ctx, node, out, bias, spatial)


def convert_conv_transpose(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """ConvTranspose (2-D only: the graph op is NCHW). With ``output_shape`` or SAME_*
    auto_pad the total pad is what the full output exceeds the wanted one by, split as
    the ONNX spec says (and onnxruntime does): the odd pad at the end for SAME_UPPER, at
    the beginning otherwise."""
    data, weight, bias = node.input(0), node.input(1), node.input(2)
    xtype, wtype = ctx.type_of(data), ctx.type_of(weight)
    if xtype.ndim != 4:
        raise node.unsupported(
            "input rank", xtype.ndim, "4 (NCHW; 1-D and 3-D ConvTranspose are not supported)"
        )
    kernel = wtype.shape[2:]
    if tuple(node.attr("kernel_shape", kernel)) != kernel:
        raise node.unsupported("kernel_shape", node.attr("kernel_shape"), f"the weight's {list(kernel)}")
    strides = int_tuple(node, "strides", (1, 1), 2, 1)
    dilations = int_tuple(node, "dilations", (1, 1), 2, 1)
    output_padding = int_tuple(node, "output_padding", (0, 0), 2, 0)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        raise node.unsupported("auto_pad", auto_pad, ", ".join(AUTO_PADS))
    sizes = xtype.shape[2:]
    full = [
        s * (n - 1) + p + (k - 1) * d + 1
        for n, s, p, k, d in zip(sizes, strides, output_padding, kernel, dilations, strict=True)
    ]
    if "output_shape" in node.attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if "output_shape" in node.attrs:
            wanted = tuple(int(v) for v in node.attrs["output_shape"])[-2:]
        else:
            wanted = tuple(n * s for n, s in zip(sizes, strides, strict=True))
        totals = [f - w for f, w in zip(full, wanted, strict=True)]
        if any(t < 0 for t in totals) or len(wanted) != 2:
            raise node.unsupported("output_shape", list(wanted), f"at most {full} per spatial axis")
        begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
        pads = tuple(begins + [t - b for t, b in zip(totals, begins, strict=True)])
    elif auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    else:
        pads = int_tuple(node, "pads", (0, 0, 0, 0), 4)
    attrs = {
        "layout": "NCHW",
        "kernel_layout": "IOHW",
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "output_padding": output_padding,
        "groups": int(node.attr("group", 1)),
    }
    if not bias:
        return ctx.emit(node, "conv_transpose", [data, weight], attrs, outputs=node.outputs)
    out = ctx.emit(node, "conv_transpose", [data, weight], attrs)[0]
    return add_channel_bias(ctx, node, out, bias, 2)


def convert_gemm(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """``alpha * A' @ B' + beta * C`` -> dense (+ multiply) (+ add)."""
    a, b, c = node.input(0), node.input(1), node.input(2)
    for value, label in ((a, "A"), (b, "B")):
        if ctx.type_of(value).ndim != 2:
            raise node.unsupported(f"rank of {label}", ctx.type_of(value).ndim, "2")
    if node.attr("transA", 0):
        a = ctx.emit(node, "transpose", [a], {"perm": (1, 0)})[0]
    if not node.attr("transB", 0):
        b = ctx.emit(node, "transpose", [b], {"perm": (1, 0)})[0]
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    steps: list[tuple[str, str]] = []
    if alpha != 1.0:
        steps.append(("multiply", ctx.add_constant(np.array(alpha, np.float32), base=f"{node.name}/alpha")))
    if c and beta != 0.0:
        if beta != 1.0:
            scale = ctx.add_constant(np.array(beta, np.float32), base=f"{node.name}/beta")
            c = ctx.emit(node, "multiply", [c, scale])[0]
        steps.append(("add", c))
    out = ctx.emit(node, "dense", [a, b], outputs=() if steps else node.outputs)[0]
    for i, (op, operand) in enumerate(steps):
        out = ctx.emit(node, op, [out, operand], outputs=node.outputs if i == len(steps) - 1 else ())[0]
    return [out]


def convert_matmul(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """numpy matmul; a 1-D operand is made a matrix and its axis dropped afterwards."""
    a, b = node.input(0), node.input(1)
    ashape, bshape = ctx.type_of(a).shape, ctx.type_of(b).shape
    if not ashape or not bshape:
        raise node.unsupported("operand rank", 0, "at least 1")
    if len(ashape) >= 2 and len(bshape) >= 2:
        return ctx.emit(node, "matmul", [a, b], outputs=node.outputs)
    if len(ashape) == 1:  # (K) x (..., K, N) -> (..., N); (K) x (K) -> ()
        result = bshape[:-2] + bshape[-1:] if len(bshape) > 1 else ()
    else:  # (..., M, K) x (K) -> (..., M)
        result = ashape[:-1]
    if len(ashape) == 1:
        a = ctx.reshape(node, a, (1, ashape[0]))
    if len(bshape) == 1:
        b = ctx.reshape(node, b, (bshape[0], 1))
    out = ctx.emit(node, "matmul", [a, b])[0]
    return [ctx.reshape(node, out, result, outputs=node.outputs)]


def convert_batch_norm(ctx: ImportContext, node: OnnxNode) -> list[str]:
    if node.attr("training_mode", 0):
        raise node.unsupported("training_mode", node.attr("training_mode"), "0 (inference)")
    if any(node.outputs[1:]):
        raise node.unsupported("outputs", list(node.outputs), "only Y (inference form)")
    attrs = {"epsilon": float(node.attr("epsilon", 1e-5)), "axis": 1}
    return ctx.emit(node, "batch_norm", list(node.inputs[:5]), attrs, outputs=node.outputs[:1])


def convert_layer_norm(ctx: ImportContext, node: OnnxNode) -> list[str]:
    if any(node.outputs[1:]):
        raise node.unsupported("outputs", list(node.outputs), "only Y (Mean and InvStdDev are not produced)")
    if node.attr("stash_type", 1) != 1:
        raise node.unsupported("stash_type", node.attr("stash_type"), "1 (float32)")
    data, scale, bias = node.input(0), node.input(1), node.input(2)
    axis = normalize_axis(node, int(node.attr("axis", -1)), ctx.type_of(data).ndim)
    if not bias:
        stype = ctx.type_of(scale)
        bias = ctx.add_constant(np.zeros(stype.shape, stype.dtype), base=f"{node.name}/bias")
    attrs = {"axis": axis, "epsilon": float(node.attr("epsilon", 1e-5))}
    return ctx.emit(node, "layer_norm", [data, scale, bias], attrs, outputs=node.outputs[:1])


def convert_softmax(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data = node.input(0)
    axis = normalize_axis(node, int(node.attr("axis", -1)), ctx.type_of(data).ndim)
    return ctx.emit(node, "softmax", [data], {"axis": axis}, outputs=node.outputs)


def pool_attrs(ctx: ImportContext, node: OnnxNode) -> dict[str, object]:
    """The window attributes MaxPool and AveragePool share."""
    xtype = ctx.type_of(node.input(0))
    layout, _ = spatial_layout(node, xtype.ndim)
    spatial = xtype.ndim - 2
    kernel = int_tuple(node, "kernel_shape", (), spatial, 1)
    strides = int_tuple(node, "strides", (1,) * spatial, spatial, 1)
    dilations = int_tuple(node, "dilations", (1,) * spatial, spatial, 1)
    return {
        "layout": layout,
        "kernel": kernel,
        "strides": strides,
        "pads": window_pads(node, xtype.shape[2:], kernel, strides, dilations),
        "dilations": dilations,
        "ceil_mode": bool(node.attr("ceil_mode", 0)),
    }


def convert_max_pool(ctx: ImportContext, node: OnnxNode) -> list[str]:
    if node.attr("storage_order", 0) != 0:
        raise node.unsupported("storage_order", node.attr("storage_order"), "0 (row major)")
    if any(node.outputs[1:]):
        raise node.unsupported("outputs", list(node.outputs), "only Y (the Indices output is not produced)")
    return ctx.emit(node, "max_pool", [node.input(0)], pool_attrs(ctx, node), outputs=node.outputs[:1])


def convert_avg_pool(ctx: ImportContext, node: OnnxNode) -> list[str]:
    attrs = pool_attrs(ctx, node)
    attrs["count_include_pad"] = bool(node.attr("count_include_pad", 0))
    return ctx.emit(node, "avg_pool", [node.input(0)], attrs, outputs=node.outputs)


def convert_global_avg_pool(ctx: ImportContext, node: OnnxNode) -> list[str]:
    layout, _ = spatial_layout(node, ctx.type_of(node.input(0)).ndim)
    return ctx.emit(node, "global_avg_pool", [node.input(0)], {"layout": layout}, outputs=node.outputs)


def reduce(ctx: ImportContext, node: OnnxNode, op: str, axes: Sequence[int] | None) -> list[str]:
    """The graph reduction ``op`` over ``axes`` (None or empty: every axis, or none with
    ``noop_with_empty_axes``). A scalar result is the reduction with kept dims reshaped
    to ``()`` (the graph ops keep at least rank 1 when reducing every axis)."""
    data = node.input(0)
    rank = ctx.type_of(data).ndim
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return [data]
        axes = range(rank)
    axes = tuple(sorted(normalize_axes(node, axes, rank)))
    keepdims = bool(node.attr("keepdims", 1))
    if keepdims or len(axes) < rank:
        return ctx.emit(node, op, [data], {"axes": axes, "keepdims": keepdims}, outputs=node.outputs)
    kept = ctx.emit(node, op, [data], {"axes": axes, "keepdims": True})[0]
    return [ctx.reshape(node, kept, (), outputs=node.outputs)]


def reduce_axes_attribute(op: str) -> ConvertFn:
    """ReduceMean/ReduceMax before opset 18: ``axes`` is an attribute."""

    def convert(ctx: ImportContext, node: OnnxNode) -> list[str]:
        return reduce(ctx, node, op, node.attr("axes", None))

    convert.__name__ = f"convert_{op}_axes_attribute"
    return convert


def reduce_axes_input(op: str) -> ConvertFn:
    """ReduceSum from opset 13, ReduceMean/ReduceMax from 18: ``axes`` is an optional
    (constant) input."""

    def convert(ctx: ImportContext, node: OnnxNode) -> list[str]:
        if not node.input(1):
            return reduce(ctx, node, op, None)
        axes = ctx.constant_value(node, 1, "axes")
        if axes.ndim != 1:
            raise OnnxImportError(f"{node}: axes must be 1-D, got shape {list(axes.shape)}")
        return reduce(ctx, node, op, [int(a) for a in axes])

    convert.__name__ = f"convert_{op}_axes_input"
    return convert


WINDOW = frozenset({"auto_pad", "dilations", "kernel_shape", "pads", "strides"})
AXES_INPUT_ATTRS = frozenset({"keepdims", "noop_with_empty_axes"})

NN_CONVERTERS = [
    Converter("Conv", 13, 21, convert_conv, WINDOW | {"group"}),
    Converter(
        "ConvTranspose", 13, 21, convert_conv_transpose, WINDOW | {"group", "output_padding", "output_shape"}
    ),
    Converter("Gemm", 13, 21, convert_gemm, frozenset({"alpha", "beta", "transA", "transB"})),
    Converter("MatMul", 13, 21, convert_matmul),
    Converter(
        "BatchNormalization", 13, 21, convert_batch_norm, frozenset({"epsilon", "momentum", "training_mode"})
    ),
    Converter("LayerNormalization", 17, 21, convert_layer_norm, frozenset({"axis", "epsilon", "stash_type"})),
    Converter("Softmax", 13, 21, convert_softmax, frozenset({"axis"})),
    Converter("MaxPool", 13, 21, convert_max_pool, WINDOW | {"ceil_mode", "storage_order"}),
    Converter("AveragePool", 13, 21, convert_avg_pool, WINDOW | {"ceil_mode", "count_include_pad"}),
    Converter("GlobalAveragePool", 13, 21, convert_global_avg_pool),
    Converter("ReduceMean", 13, 17, reduce_axes_attribute("reduce_mean"), frozenset({"axes", "keepdims"})),
    Converter("ReduceMean", 18, 21, reduce_axes_input("reduce_mean"), AXES_INPUT_ATTRS),
    Converter("ReduceMax", 13, 17, reduce_axes_attribute("reduce_max"), frozenset({"axes", "keepdims"})),
    Converter("ReduceMax", 18, 21, reduce_axes_input("reduce_max"), AXES_INPUT_ATTRS),
    Converter("ReduceSum", 13, 21, reduce_axes_input("reduce_sum"), AXES_INPUT_ATTRS),
]
