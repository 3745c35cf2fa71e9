"""Write a graph as an ONNX model: ``to_onnx(graph, opset=17)`` and ``save_onnx``.

The reverse of ``ansor_py.network.frontend.onnx``: the zoo's networks go to onnxruntime,
the independent oracle the compiled networks are checked against, and through the importer
(a round trip). Like the importer it is a converter table (TVM's ONNX frontend, onnx2torch's
registry): ``CONVERTERS`` maps each graph op to one small function that emits the ONNX
nodes for it; the writing loop never grows an if/elif.

Mapping (graph op -> ONNX), opsets 13 to 21:

- unary and binary arithmetic: Relu, Sigmoid, Tanh, Erf, Sqrt, Neg, Exp, Add, Sub, Mul,
  Div, Pow, Max, Min, Equal, Less, LessOrEqual, Greater, GreaterOrEqual, Not, And, Or,
  Where; ``clip`` -> Clip (bounds as scalar inputs), ``cast``
  -> Cast; ``gelu`` -> Gelu from opset 20, before that its formula (Erf or Tanh form);
- ``reshape``/``broadcast_to``/``pad`` -> Reshape/Expand/Pad with int64 initializers,
  ``transpose`` -> Transpose, ``concat`` -> Concat, ``take`` -> Gather, ``slice`` -> Slice
  (a negative step's end -1, "through index 0", is written -dim-1: ONNX reads -1 as dim-1);
- ``conv`` -> Conv, ``conv_transpose`` -> ConvTranspose, ``dense`` -> Gemm(transB=1),
  ``matmul`` -> MatMul, ``batch_norm`` -> BatchNormalization, ``layer_norm`` ->
  LayerNormalization (opset >= 17), ``softmax`` -> Softmax, ``max_pool``/``avg_pool``/
  ``global_avg_pool`` -> MaxPool/AveragePool/GlobalAveragePool, ``reduce_*`` ->
  ReduceMean/ReduceSum/ReduceMax (axes as an input where the opset wants one).

ONNX knows only channels-first convolutions and pools: a channels-last node (after the
layout pass) is written between two Transposes, and a ``*IO`` kernel is transposed by a
Transpose node on the weight; a ``batch_norm`` over another axis than 1 likewise. So any
graph of the compiler can be checked by onnxruntime, not only the zoo's NCHW ones.

Value names are kept (graph values are ONNX value names; constants are initializers);
helper values the writer adds get fresh names. A graph output that is an input or a
constant is written through an Identity node to a fresh name.

``onnx`` is imported by this module only (and the importer): the rest of the network layer
does not need it installed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ansor_py.network.graph import Graph, Node, unique_name
from ansor_py.network.types import GraphError
from ir import dtype as dt

#: ONNX's 2 GB protobuf limit, with a margin: larger weights go to an external data file
EXTERNAL_DATA_BYTES = 1 << 30
MIN_OPSET = 13
MAX_OPSET = 21


class OnnxWriteError(GraphError):
    """A graph the writer cannot express: an op without a converter, an attribute value
    or opset ONNX does not have."""


def onnx_dtype(dtype: str) -> int:
    """The ``TensorProto`` element type of an ``ir.dtype`` name."""
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dt.to_numpy(dtype))))


class Writer:
    """The ONNX nodes and initializers written so far, and fresh names for helper values."""

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken: set[str] = set(graph.types) | {node.name for node in graph.nodes}

    def fresh(self, base: str) -> str:
        name = unique_name(base, self._taken)
        self._taken.add(name)
        return name

    def emit(
        self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str, **attrs: Any
    ) -> None:
        self.nodes.append(
            helper.make_node(op_type, list(inputs), list(outputs), name=self.fresh(name), **attrs)
        )

    def constant(self, base: str, array: np.ndarray) -> str:
        """A new initializer holding ``array``; returns its name."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def int64s(self, base: str, values: Sequence[int]) -> str:
        return self.constant(base, np.array(list(values), dtype=np.int64))

    def scalar_like(self, base: str, value: float, like: str) -> str:
        """A rank-0 initializer of the dtype of value ``like``."""
        return self.constant(base, np.array(value, dtype=dt.to_numpy(self.graph.types[like].dtype)))

    def transpose(self, value: str, perm: Sequence[int], base: str) -> str:
        out = self.fresh(base)
        self.emit("Transpose", [value], [out], name=base, perm=list(perm))
        return out

    def require_opset(self, node: Node, least: int, what: str) -> None:
        if self.opset < least:
            raise OnnxWriteError(
                f"node {node.name!r} ({node.op}): {what} needs ONNX opset >= {least}, writing {self.opset}"
            )


Converter = Callable[[Writer, Node], None]


# --- elementwise -----------------------------------------------------------------------------


def _same(op_type: str) -> Converter:
    """An op whose ONNX node has the same inputs and outputs and no attributes."""

    def convert(w: Writer, node: Node) -> None:
        w.emit(op_type, node.inputs, node.outputs, name=node.name)

    return convert


def _clip(w: Writer, node: Node) -> None:
    x = node.inputs[0]
    low, high = node.attrs.get("min"), node.attrs.get("max")
    bounds = [
        ("" if v is None else w.scalar_like(f"{node.name}.{k}", v, x))
        for k, v in (("min", low), ("max", high))
    ]
    while bounds and bounds[-1] == "":
        bounds.pop()
    w.emit("Clip", [x, *bounds], node.outputs, name=node.name)


def _cast(w: Writer, node: Node) -> None:
    w.emit("Cast", node.inputs, node.outputs, name=node.name, to=onnx_dtype(node.attrs["dtype"]))


def _gelu(w: Writer, node: Node) -> None:
    x, out = node.inputs[0], node.output
    approximate = node.attrs.get("approximate", "none")
    if w.opset >= 20:
        w.emit("Gelu", [x], [out], name=node.name, approximate=approximate)
        return

    def step(op_type: str, inputs: list[str], base: str, result: str | None = None) -> str:
        result = result or w.fresh(f"{node.name}.{base}")
        w.emit(op_type, inputs, [result], name=f"{node.name}.{base}")
        return result

    def scalar(base: str, value: float) -> str:
        return w.scalar_like(f"{node.name}.{base}", value, x)

    if approximate == "none":  # 0.5 * x * (1 + erf(x / sqrt(2)))
        scaled = step("Div", [x, scalar("sqrt2", math.sqrt(2))], "div")
        inner = step("Erf", [scaled], "erf")
    else:  # 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
        cube = step("Mul", [x, step("Mul", [x, x], "square")], "cube")
        cubic = step("Add", [x, step("Mul", [cube, scalar("c", 0.044715)], "cubic")], "sum")
        inner = step("Tanh", [step("Mul", [cubic, scalar("k", math.sqrt(2 / math.pi))], "k")], "tanh")
    shifted = step("Add", [inner, scalar("one", 1.0)], "add")
    half = step("Mul", [x, scalar("half", 0.5)], "half")
    step("Mul", [half, shifted], "mul", result=out)


# --- tensor ---------------------------------------------------------------------------------


def _with_int64s(op_type: str, key: str) -> Converter:
    """Reshape and Expand: the attribute ``key`` becomes an int64 second input."""

    def convert(w: Writer, node: Node) -> None:
        shape = w.int64s(f"{node.name}.{key}", node.attrs[key])
        w.emit(op_type, [node.inputs[0], shape], node.outputs, name=node.name)

    return convert


def _transpose(w: Writer, node: Node) -> None:
    w.emit("Transpose", node.inputs, node.outputs, name=node.name, perm=list(node.attrs["perm"]))


def _concat(w: Writer, node: Node) -> None:
    w.emit("Concat", node.inputs, node.outputs, name=node.name, axis=int(node.attrs["axis"]))


def _take(w: Writer, node: Node) -> None:
    w.emit("Gather", node.inputs, node.outputs, name=node.name, axis=int(node.attrs["axis"]))


def _slice(w: Writer, node: Node) -> None:
    shape = w.graph.types[node.inputs[0]].shape
    starts, ends, steps = (list(node.attrs[k]) for k in ("starts", "ends", "steps"))
    ends = [
        -dim - 1 if step < 0 and end == -1 else end for dim, end, step in zip(shape, ends, steps, strict=True)
    ]
    inputs = [node.inputs[0]]
    for key, values in (("starts", starts), ("ends", ends), ("axes", range(len(shape))), ("steps", steps)):
        inputs.append(w.int64s(f"{node.name}.{key}", values))
    w.emit("Slice", inputs, node.outputs, name=node.name)


def _pad(w: Writer, node: Node) -> None:
    x = node.inputs[0]
    pads = w.int64s(f"{node.name}.pads", node.attrs["pads"])
    value = w.scalar_like(f"{node.name}.value", node.attrs.get("value", 0.0), x)
    w.emit("Pad", [x, pads, value], node.outputs, name=node.name, mode="constant")


# --- nn -------------------------------------------------------------------------------------


def _channels_first(w: Writer, node: Node, layout: str, emit: Callable[[str, str], None]) -> None:
    """Run ``emit(data, out)`` on channels-first data: directly for an NC... layout, else
    between Transposes (N...C -> NC... and back)."""
    if layout.startswith("NC"):
        emit(node.inputs[0], node.output)
        return
    rank = len(layout)
    data = w.transpose(node.inputs[0], (0, rank - 1, *range(1, rank - 1)), f"{node.name}.to_nc")
    result = w.fresh(f"{node.name}.nc")
    emit(data, result)
    w.emit("Transpose", [result], [node.output], name=f"{node.name}.to_nhwc", perm=[0, *range(2, rank), 1])


def _kernel_first(w: Writer, node: Node, kernel_layout: str) -> str:
    """The weight in ONNX's order (O, I, k... for Conv; I, O, k... for ConvTranspose): a
    spatial-first kernel (``*IO``, ``*OI``) is transposed, its last two axes first."""
    weight = node.inputs[1]
    if kernel_layout[:2] in ("OI", "IO"):
        return weight
    rank = len(kernel_layout)
    return w.transpose(weight, (rank - 1, rank - 2, *range(rank - 2)), f"{node.name}.kernel")


def _conv(w: Writer, node: Node) -> None:
    a = node.attrs
    weight = _kernel_first(w, node, a["kernel_layout"])

    def emit(data: str, out: str) -> None:
        w.emit(
            "Conv",
            [data, weight, *node.inputs[2:]],
            [out],
            name=node.name,
            strides=list(a["strides"]),
            pads=list(a["pads"]),
            dilations=list(a["dilations"]),
            group=int(a.get("groups", 1)),
        )

    _channels_first(w, node, a["layout"], emit)


def _conv_transpose(w: Writer, node: Node) -> None:
    a = node.attrs
    weight = _kernel_first(w, node, a["kernel_layout"])
    spatial = len(a["strides"])

    def emit(data: str, out: str) -> None:
        w.emit(
            "ConvTranspose",
            [data, weight],
            [out],
            name=node.name,
            strides=list(a["strides"]),
            pads=list(a["pads"]),
            dilations=list(a.get("dilations", (1,) * spatial)),
            output_padding=list(a.get("output_padding", (0,) * spatial)),
            group=int(a.get("groups", 1)),
        )

    _channels_first(w, node, a["layout"], emit)


def _dense(w: Writer, node: Node) -> None:
    w.emit("Gemm", node.inputs, node.outputs, name=node.name, transB=1)


def _batch_norm(w: Writer, node: Node) -> None:
    axis = int(node.attrs.get("axis", 1))
    rank = w.graph.types[node.inputs[0]].ndim
    epsilon = float(node.attrs["epsilon"])
    if axis == 1:
        w.emit("BatchNormalization", node.inputs, node.outputs, name=node.name, epsilon=epsilon)
        return
    perm = [i for i in range(rank) if i != axis]
    perm.insert(1, axis)
    data = w.transpose(node.inputs[0], perm, f"{node.name}.to_axis1")
    result = w.fresh(f"{node.name}.axis1")
    w.emit("BatchNormalization", [data, *node.inputs[1:]], [result], name=node.name, epsilon=epsilon)
    w.emit(
        "Transpose", [result], node.outputs, name=f"{node.name}.back", perm=[int(i) for i in np.argsort(perm)]
    )


def _layer_norm(w: Writer, node: Node) -> None:
    w.require_opset(node, 17, "LayerNormalization")
    a = node.attrs
    w.emit(
        "LayerNormalization",
        node.inputs,
        node.outputs,
        name=node.name,
        axis=int(a["axis"]),
        epsilon=float(a["epsilon"]),
    )


def _softmax(w: Writer, node: Node) -> None:
    w.emit("Softmax", node.inputs, node.outputs, name=node.name, axis=int(node.attrs["axis"]))


def _pool(op_type: str) -> Converter:
    def convert(w: Writer, node: Node) -> None:
        a = node.attrs
        spatial = len(a["kernel"])
        attrs: dict[str, Any] = {
            "kernel_shape": list(a["kernel"]),
            "strides": list(a.get("strides", (1,) * spatial)),
            "pads": list(a.get("pads", (0,) * 2 * spatial)),
            "ceil_mode": int(bool(a.get("ceil_mode", False))),
        }
        dilations = list(a.get("dilations", (1,) * spatial))
        if op_type == "AveragePool":
            attrs["count_include_pad"] = int(bool(a.get("count_include_pad", False)))
            if any(d != 1 for d in dilations):
                w.require_opset(node, 19, "a dilated AveragePool")
                attrs["dilations"] = dilations
        else:
            attrs["dilations"] = dilations

        def emit(data: str, out: str) -> None:
            w.emit(op_type, [data], [out], name=node.name, **attrs)

        _channels_first(w, node, a["layout"], emit)

    return convert


def _global_avg_pool(w: Writer, node: Node) -> None:
    def emit(data: str, out: str) -> None:
        w.emit("GlobalAveragePool", [data], [out], name=node.name)

    _channels_first(w, node, node.attrs["layout"], emit)


def _reduce(op_type: str, axes_input_from: int) -> Converter:
    """A reduction; from opset ``axes_input_from`` on its axes are an int64 input."""

    def convert(w: Writer, node: Node) -> None:
        axes = [int(a) for a in node.attrs["axes"]]
        keepdims = int(bool(node.attrs.get("keepdims", True)))
        if w.opset >= axes_input_from:
            axes_value = w.int64s(f"{node.name}.axes", axes)
            w.emit(op_type, [node.inputs[0], axes_value], node.outputs, name=node.name, keepdims=keepdims)
        else:
            w.emit(op_type, node.inputs, node.outputs, name=node.name, axes=axes, keepdims=keepdims)

    return convert


CONVERTERS: dict[str, Converter] = {
    **{
        op: _same(t) for op, t in [("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("erf", "Erf")]
    },
    **{op: _same(t) for op, t in [("sqrt", "Sqrt"), ("negative", "Neg"), ("exp", "Exp"), ("add", "Add")]},
    **{
        op: _same(t)
        for op, t in [("subtract", "Sub"), ("multiply", "Mul"), ("divide", "Div"), ("power", "Pow")]
    },
    **{
        op: _same(t)
        for op, t in [("maximum", "Max"), ("minimum", "Min"), ("equal", "Equal"), ("where", "Where")]
    },
    **{op: _same(t) for op, t in [("less", "Less"), ("less_equal", "LessOrEqual"), ("greater", "Greater")]},
    **{
        op: _same(t)
        for op, t in [("greater_equal", "GreaterOrEqual"), ("logical_not", "Not"), ("logical_and", "And")]
    },
    "logical_or": _same("Or"),
    "matmul": _same("MatMul"),
    "clip": _clip,
    "cast": _cast,
    "gelu": _gelu,
    "reshape": _with_int64s("Reshape", "shape"),
    "broadcast_to": _with_int64s("Expand", "shape"),
    "transpose": _transpose,
    "concat": _concat,
    "take": _take,
    "slice": _slice,
    "pad": _pad,
    "conv": _conv,
    "conv_transpose": _conv_transpose,
    "dense": _dense,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "softmax": _softmax,
    "max_pool": _pool("MaxPool"),
    "avg_pool": _pool("AveragePool"),
    "global_avg_pool": _global_avg_pool,
    "reduce_mean": _reduce("ReduceMean", 18),
    "reduce_sum": _reduce("ReduceSum", 13),
    "reduce_max": _reduce("ReduceMax", 18),
}


def _value_info(graph: Graph, value: str, name: str | None = None) -> onnx.ValueInfoProto:
    ttype = graph.types[value]
    return helper.make_tensor_value_info(name or value, onnx_dtype(ttype.dtype), list(ttype.shape))


def _add_initializer(onnx_graph: onnx.GraphProto, name: str, array: np.ndarray) -> None:
    """``array`` as a raw-data initializer of ``onnx_graph`` (little-endian, as ONNX wants)."""
    tensor = onnx_graph.initializer.add()
    tensor.name = name
    tensor.data_type = onnx_dtype(dt.from_numpy(array.dtype))
    tensor.dims.extend(array.shape)
    tensor.raw_data = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C").tobytes()


def to_onnx(graph: Graph, opset: int = 17) -> onnx.ModelProto:
    """``graph`` as an ONNX model of the default domain at ``opset`` (13 to 21): inputs and
    outputs keep their names and types, constants become initializers."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxWriteError(
            f"graph '{graph.name}': opset {opset} is outside the writer's {MIN_OPSET}..{MAX_OPSET}"
        )
    w = Writer(graph, opset)
    for node in graph.nodes:
        converter = CONVERTERS.get(node.op)
        if converter is None:
            raise OnnxWriteError(
                f"node {node.name!r}: op '{node.op}' has no ONNX converter; known: {sorted(CONVERTERS)}"
            )
        converter(w, node)
    outputs = []
    for value in graph.outputs:
        name = value
        if value in graph.inputs or value in graph.constants:
            name = w.fresh(f"{value}.output")
            w.emit("Identity", [value], [name], name=name)
        outputs.append(_value_info(graph, value, name))
    onnx_graph = helper.make_graph(
        w.nodes, graph.name, [_value_info(graph, name) for name in graph.inputs], outputs
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="ansor_py")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    # initializers are written into the model in place: make_graph and make_model copy
    # what they are given, a second of copying for BERT's 440 MB
    used = {v for n in graph.nodes for v in n.inputs} | set(graph.outputs)
    for name, array in graph.constants.items():
        if name in used:
            _add_initializer(model.graph, name, array)
    model.graph.initializer.extend(w.initializers)
    return model


def save_onnx(
    graph: Graph,
    path: str | os.PathLike[str],
    opset: int = 17,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
) -> Path:
    """Write ``to_onnx(graph, opset)`` to ``path``; weights of more than
    ``external_data_bytes`` in all go to ``{path}.data`` beside it (ONNX external data: a
    protobuf holds at most 2 GB)."""
    model = to_onnx(graph, opset)
    target = Path(path)
    external = graph.weight_bytes() > external_data_bytes
    onnx.save_model(
        model,
        target,
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=f"{target.name}.data",
    )
    return target
