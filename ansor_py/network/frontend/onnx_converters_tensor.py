"""ONNX converters of the data-movement and shape ops (contract: ``frontend.onnx_context``).

The graph's tensor ops are static: ``reshape`` takes a full shape, ``slice`` one clamped
(start, end, step) per axis. So the ONNX forms that compute shapes are resolved here:
Reshape's 0 and -1, Flatten, Squeeze and Unsqueeze become ``reshape``; Split becomes one
``slice`` per output; Slice's negative and out-of-range indices are clamped as the ONNX
spec says; Shape, Range and ConstantOfShape make constants directly (their inputs are
static or constant), and Identity and Dropout alias their input (no node), as TVM's
importer does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ansor_py.network.frontend.onnx_context import (
    Converter,
    ImportContext,
    OnnxImportError,
    OnnxNode,
    normalize_axes,
    normalize_axis,
)


def int_list(ctx: ImportContext, node: OnnxNode, index: int, what: str) -> list[int]:
    """A constant 1-D integer input as a list."""
    array = ctx.constant_value(node, index, what)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise OnnxImportError(
            f"{node}: {what} must be a 1-D integer tensor, got {array.dtype}{list(array.shape)}"
        )
    return [int(v) for v in array]


def reshape_target(
    node: OnnxNode, shape_in: Sequence[int], shape: Sequence[int], allowzero: bool
) -> tuple[int, ...]:
    """Reshape's target with 0 (copy the input's dim, unless ``allowzero``) and one -1
    (whatever size is left) resolved."""
    if not allowzero and any(d == 0 and i >= len(shape_in) for i, d in enumerate(shape)):
        raise OnnxImportError(
            f"{node}: shape {list(shape)} copies a dimension past the input's rank {len(shape_in)}"
        )
    dims = [shape_in[i] if d == 0 and not allowzero else d for i, d in enumerate(shape)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise OnnxImportError(f"{node}: shape {list(shape)} has more than one -1 or a negative dimension")
    size = int(np.prod(shape_in, dtype=np.int64))
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise OnnxImportError(f"{node}: cannot reshape {list(shape_in)} to {list(shape)}")
        dims[dims.index(-1)] = size // known
    if int(np.prod(dims, dtype=np.int64)) != size:
        raise OnnxImportError(f"{node}: cannot reshape {list(shape_in)} ({size} elements) to {list(shape)}")
    return tuple(dims)


def convert_reshape(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data = node.input(0)
    shape = int_list(ctx, node, 1, "shape")
    target = reshape_target(node, ctx.type_of(data).shape, shape, bool(node.attr("allowzero", 0)))
    return [ctx.reshape(node, data, target, outputs=node.outputs)]


def convert_flatten(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data = node.input(0)
    shape = ctx.type_of(data).shape
    axis = int(node.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise OnnxImportError(f"{node}: axis={axis} is out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    target = (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64)))
    return [ctx.reshape(node, data, target, outputs=node.outputs)]


def convert_squeeze(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Squeeze (opset 13+: axes is an optional input; none squeezes every 1)."""
    data = node.input(0)
    shape = ctx.type_of(data).shape
    if node.input(1):
        axes = normalize_axes(node, int_list(ctx, node, 1, "axes"), len(shape))
    else:
        axes = tuple(i for i, d in enumerate(shape) if d == 1)
    wrong = [a for a in axes if shape[a] != 1]
    if wrong:
        raise OnnxImportError(f"{node}: cannot squeeze axes {wrong} of shape {list(shape)} (not 1)")
    target = tuple(d for i, d in enumerate(shape) if i not in axes)
    return [ctx.reshape(node, data, target, outputs=node.outputs)]


def convert_unsqueeze(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Unsqueeze (opset 13+: axes is an input, counted in the output's rank)."""
    data = node.input(0)
    shape = list(ctx.type_of(data).shape)
    axes_in = int_list(ctx, node, 1, "axes")
    axes = sorted(normalize_axes(node, axes_in, len(shape) + len(axes_in)))
    for axis in axes:
        shape.insert(axis, 1)
    return [ctx.reshape(node, data, shape, outputs=node.outputs)]


def convert_transpose(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data = node.input(0)
    rank = ctx.type_of(data).ndim
    perm = tuple(int(p) for p in node.attr("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        raise node.unsupported("perm", list(perm), f"a permutation of 0..{rank - 1}")
    return ctx.emit(node, "transpose", [data], {"perm": perm}, outputs=node.outputs)


def convert_concat(ctx: ImportContext, node: OnnxNode) -> list[str]:
    inputs = [v for v in node.inputs if v]
    axis = normalize_axis(node, int(node.attr("axis")), ctx.type_of(inputs[0]).ndim)
    return ctx.emit(node, "concat", inputs, {"axis": axis}, outputs=node.outputs)


def slice_along(
    ctx: ImportContext, node: OnnxNode, data: str, axis: int, start: int, end: int, output: str
) -> str:
    """``data[..., start:end, ...]`` on ``axis`` (already clamped, step 1)."""
    shape = ctx.type_of(data).shape
    starts, ends = [0] * len(shape), list(shape)
    starts[axis], ends[axis] = start, end
    attrs = {"starts": tuple(starts), "ends": tuple(ends), "steps": (1,) * len(shape)}
    return ctx.emit(node, "slice", [data], attrs, outputs=[output])[0]


def split(ctx: ImportContext, node: OnnxNode, sizes: Sequence[int]) -> list[str | None]:
    data = node.input(0)
    shape = ctx.type_of(data).shape
    axis = normalize_axis(node, int(node.attr("axis", 0)), len(shape))
    if len(sizes) != len(node.outputs) or sum(sizes) != shape[axis] or min(sizes) < 0:
        raise OnnxImportError(
            f"{node}: split sizes {list(sizes)} do not cut axis {axis} of length {shape[axis]} "
            f"into {len(node.outputs)} outputs"
        )
    results: list[str | None] = []
    begin = 0
    for size, output in zip(sizes, node.outputs, strict=True):
        results.append(slice_along(ctx, node, data, axis, begin, begin + size, output) if output else None)
        begin += size
    return results


def equal_parts(length: int, parts: int, ceil: bool) -> list[int]:
    """``length`` cut into ``parts``: equal (opset 13 requires divisibility) or, with
    ``ceil`` (opset 18 num_outputs), ``ceil(length / parts)`` each with a smaller last."""
    if ceil:
        chunk = -(-length // parts)
        return [min(chunk, max(0, length - i * chunk)) for i in range(parts)]
    return [length // parts] * parts


def convert_split(ctx: ImportContext, node: OnnxNode) -> list[str | None]:
    """Split: sizes from the optional ``split`` input, else equal parts, else (opset 18)
    ``num_outputs`` parts of ``ceil(length / num_outputs)``."""
    if node.input(1):
        return split(ctx, node, int_list(ctx, node, 1, "split"))
    shape = ctx.type_of(node.input(0)).shape
    length = shape[normalize_axis(node, int(node.attr("axis", 0)), len(shape))]
    if "num_outputs" in node.attrs:
        if int(node.attrs["num_outputs"]) != len(node.outputs):
            raise node.unsupported(
                "num_outputs", node.attrs["num_outputs"], f"{len(node.outputs)} (the outputs)"
            )
        return split(ctx, node, equal_parts(length, len(node.outputs), ceil=True))
    return split(ctx, node, equal_parts(length, len(node.outputs), ceil=False))


def clamp_slice(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX Slice clamping: negatives count from the end; a positive step keeps
    ``0 <= start <= end <= dim``, a negative one ``dim-1 >= start >= end >= -1`` (start
    clamped to ``[0, dim-1]``, end to ``[-1, dim-1]``, -1 meaning through index 0)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return start, max(start, end)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, min(start, end)


def convert_slice(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data = node.input(0)
    shape = ctx.type_of(data).shape
    starts_in, ends_in = int_list(ctx, node, 1, "starts"), int_list(ctx, node, 2, "ends")
    axes_in = int_list(ctx, node, 3, "axes") if node.input(3) else list(range(len(starts_in)))
    steps_in = int_list(ctx, node, 4, "steps") if node.input(4) else [1] * len(starts_in)
    if not len(starts_in) == len(ends_in) == len(axes_in) == len(steps_in):
        raise OnnxImportError(
            f"{node}: starts, ends, axes and steps have lengths "
            f"{len(starts_in)}, {len(ends_in)}, {len(axes_in)}, {len(steps_in)}; they must agree"
        )
    if 0 in steps_in:
        raise node.unsupported("steps", steps_in, "non-zero steps")
    starts, ends, steps = [0] * len(shape), list(shape), [1] * len(shape)
    for axis, start, end, step in zip(
        normalize_axes(node, axes_in, len(shape)), starts_in, ends_in, steps_in
    ):
        starts[axis], ends[axis] = clamp_slice(start, end, step, shape[axis])
        steps[axis] = step
    attrs = {"starts": tuple(starts), "ends": tuple(ends), "steps": tuple(steps)}
    return ctx.emit(node, "slice", [data], attrs, outputs=node.outputs)


def convert_pad(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Pad in constant mode (opset 13: pads and constant_value inputs; 18: axes input);
    the pads must be constant and non-negative (a negative pad crops)."""
    mode = node.attr("mode", "constant")
    if mode != "constant":
        raise node.unsupported("mode", mode, "constant")
    data = node.input(0)
    rank = ctx.type_of(data).ndim
    given = int_list(ctx, node, 1, "pads")
    axes = normalize_axes(node, int_list(ctx, node, 3, "axes"), rank) if node.input(3) else tuple(range(rank))
    if len(given) != 2 * len(axes) or min(given, default=0) < 0:
        raise node.unsupported("pads", given, f"{2 * len(axes)} non-negative integers (begins then ends)")
    pads = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        pads[axis], pads[rank + axis] = given[i], given[len(axes) + i]
    value = 0.0
    if node.input(2):
        constant = ctx.constant_value(node, 2, "constant_value")
        if constant.size != 1:
            raise OnnxImportError(
                f"{node}: constant_value must be a scalar, got shape {list(constant.shape)}"
            )
        value = float(constant.reshape(()))
    return ctx.emit(node, "pad", [data], {"pads": tuple(pads), "value": value}, outputs=node.outputs)


def convert_gather(ctx: ImportContext, node: OnnxNode) -> list[str]:
    data, indices = node.input(0), node.input(1)
    if ctx.type_of(indices).dtype not in ("int32", "int64"):
        raise OnnxImportError(f"{node}: indices have dtype {ctx.type_of(indices).dtype}, not int32/int64")
    axis = normalize_axis(node, int(node.attr("axis", 0)), ctx.type_of(data).ndim)
    return ctx.emit(node, "take", [data, indices], {"axis": axis}, outputs=node.outputs)


def convert_shape(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Shape of a static tensor: a constant (``start``/``end``, opset 15, slice it as
    Python slicing does: negative from the end, clamped)."""
    shape = ctx.type_of(node.input(0)).shape
    start, end = int(node.attr("start", 0)), node.attr("end", None)
    dims = shape[start:] if end is None else shape[start : int(end)]
    return [ctx.add_constant(np.array(dims, np.int64), node.outputs[0])]


def convert_constant(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Constant in any ``value_*`` form but strings and sparse tensors."""
    if len(node.attrs) != 1:
        raise OnnxImportError(f"{node}: needs exactly one value attribute, has {sorted(node.attrs)}")
    ((key, value),) = node.attrs.items()
    forms = {
        "value": lambda v: np.asarray(v),
        "value_float": lambda v: np.array(v, np.float32),
        "value_floats": lambda v: np.array(v, np.float32).reshape(-1),
        "value_int": lambda v: np.array(v, np.int64),
        "value_ints": lambda v: np.array(v, np.int64).reshape(-1),
    }
    if key not in forms:
        raise node.unsupported(key, "...", ", ".join(forms))
    array = forms[key](value)
    if array.dtype.kind not in "biuf":
        raise node.unsupported(key, f"a tensor of {array.dtype}", "numeric or bool tensors")
    return [ctx.add_constant(array, node.outputs[0])]


def convert_constant_of_shape(ctx: ImportContext, node: OnnxNode) -> list[str]:
    shape = int_list(ctx, node, 0, "shape")
    value = np.asarray(node.attr("value", np.zeros(1, np.float32)))
    if value.size != 1 or min(shape, default=0) < 0:
        raise OnnxImportError(f"{node}: value must have one element and shape {shape} no negative dimension")
    return [ctx.add_constant(np.full(shape, value.reshape(()), value.dtype), node.outputs[0])]


def convert_expand(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Expand: bidirectional broadcast of the input with a constant shape."""
    data = node.input(0)
    shape_in = ctx.type_of(data).shape
    wanted = int_list(ctx, node, 1, "shape")
    try:
        target = tuple(int(d) for d in np.broadcast_shapes(shape_in, tuple(wanted)))
    except ValueError:
        raise OnnxImportError(f"{node}: cannot broadcast shape {list(shape_in)} with {wanted}") from None
    if target == shape_in:
        return [data]
    return ctx.emit(node, "broadcast_to", [data], {"shape": target}, outputs=node.outputs)


def convert_range(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Range of constant scalars: ``max(ceil((limit - start) / delta), 0)`` elements."""
    start, limit, delta = (ctx.constant_value(node, i, w) for i, w in enumerate(("start", "limit", "delta")))
    if start.size != 1 or limit.size != 1 or delta.size != 1 or float(delta) == 0:
        raise OnnxImportError(f"{node}: start, limit and delta must be scalars and delta non-zero")
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    values = (start.reshape(()) + np.arange(count) * delta.reshape(())).astype(start.dtype)
    return [ctx.add_constant(values, node.outputs[0])]


def convert_identity(ctx: ImportContext, node: OnnxNode) -> list[str]:
    return [node.input(0)]


def convert_dropout(ctx: ImportContext, node: OnnxNode) -> list[str | None]:
    """Dropout in inference: the input itself; the mask, if read, all true."""
    if node.input(2):
        training = ctx.constant_value(node, 2, "training_mode")
        if bool(training.reshape(-1)[0]):
            raise node.unsupported("training_mode", True, "false (inference)")
    data = node.input(0)
    if len(node.outputs) < 2 or not node.outputs[1]:
        return [data]
    mask = np.ones(ctx.type_of(data).shape, bool)
    return [data, ctx.add_constant(mask, node.outputs[1])]


TENSOR_CONVERTERS = [
    Converter("Reshape", 13, 21, convert_reshape, frozenset({"allowzero"})),
    Converter("Flatten", 13, 21, convert_flatten, frozenset({"axis"})),
    Converter("Squeeze", 13, 21, convert_squeeze),
    Converter("Unsqueeze", 13, 21, convert_unsqueeze),
    Converter("Transpose", 13, 21, convert_transpose, frozenset({"perm"})),
    Converter("Concat", 13, 21, convert_concat, frozenset({"axis"})),
    Converter("Split", 13, 17, convert_split, frozenset({"axis"})),
    Converter("Split", 18, 21, convert_split, frozenset({"axis", "num_outputs"})),
    Converter("Slice", 13, 21, convert_slice),
    Converter("Gather", 13, 21, convert_gather, frozenset({"axis"})),
    Converter("Pad", 13, 21, convert_pad, frozenset({"mode"})),
    Converter("Shape", 13, 14, convert_shape),
    Converter("Shape", 15, 21, convert_shape, frozenset({"start", "end"})),
    Converter(
        "Constant",
        13,
        21,
        convert_constant,
        frozenset({"value", "value_float", "value_floats"})
        | {"value_int", "value_ints", "value_string", "value_strings", "sparse_value"},
    ),
    Converter("ConstantOfShape", 13, 21, convert_constant_of_shape, frozenset({"value"})),
    Converter("Expand", 13, 21, convert_expand),
    Converter("Range", 13, 21, convert_range),
    Converter("Identity", 13, 21, convert_identity),
    Converter("Dropout", 13, 21, convert_dropout, frozenset({"seed"})),
]
