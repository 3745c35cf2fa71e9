"""``fold_batch_norm``: inference batch normalisation turned into weights and one add
(Relay's ``SimplifyInference`` followed by ``FoldScaleAxis``).

In inference, ``batch_norm(x) = x * s + t`` per channel ``c`` of its axis, with
``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s``. Two rewrites:

- **folded into the producer**: when the batch norm reads a ``conv`` (or a ``conv``
  followed by an add of a constant bias), an ungrouped ``conv_transpose`` or a ``dense``,
  whose channel axis is the batch norm's axis, whose weight is a constant and whose output
  (and the bias add's) nobody else reads, then ``conv(x, w) + b`` becomes
  ``conv(x, w * s) + (b * s + t)``: ``w`` scaled along its output-channel axis (O of OIHW,
  HWIO, IOHW or HWOI; N of dense's [N, K]), the bias a new constant of the broadcastable
  shape ``(C, 1, 1)`` (NCHW) or ``(C,)`` (NHWC). The network then runs no normalisation at
  all, which is why every convolution of ResNet arrives at fusion as conv + bias (+ relu);
- **elsewhere** it becomes ``multiply`` by ``s`` and ``add`` of ``t`` (constant vectors
  shaped to broadcast along the axis) when its parameters are constants, or the equivalent
  chain of elementwise ops on the reshaped parameters when they are not.

Either way the batch norm's output value keeps its name, so its consumers are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops.base import attr
from ansor_py.network.passes.rewrite import Names, used_constants

#: where the output channels are in a weight, for each kernel layout of ``conv``
OUT_CHANNEL_AXIS = {"OIW": 0, "OIHW": 0, "OIDHW": 0, "WIO": -1, "HWIO": -1, "DHWIO": -1}
#: the same for ``conv_transpose`` (IOHW: C_in x C_out x kh x kw), without groups
TRANSPOSE_OUT_CHANNEL_AXIS = {"IOHW": 1, "HWOI": 2}
#: the channel axis of a conv's output, for each data layout
CHANNEL_AXIS = {"NCW": 1, "NCHW": 1, "NCDHW": 1, "NWC": 2, "NHWC": 3, "NDHWC": 4}


@dataclass(frozen=True)
class _Fold:
    """A batch norm that folds into ``anchor`` (a conv or dense), through ``bias_add`` (an
    add of the constant ``bias``) when there is one."""

    anchor: Node
    weight_axis: int
    bias_add: Node | None
    bias: str | None


def _channel_axis(anchor: Node, rank: int) -> tuple[int, int] | None:
    """(channel axis of the anchor's output, output-channel axis of its weight), or None
    for an anchor whose output channels do not map to one weight axis."""
    if anchor.op == "dense":
        return 1, 0
    layout, kernel_layout = anchor.attrs.get("layout"), anchor.attrs.get("kernel_layout")
    if anchor.op == "conv" and layout in CHANNEL_AXIS and kernel_layout in OUT_CHANNEL_AXIS:
        return CHANNEL_AXIS[layout], OUT_CHANNEL_AXIS[kernel_layout] % rank
    grouped = anchor.attrs.get("groups", 1) != 1  # output channels spread over two weight axes
    if anchor.op == "conv_transpose" and layout in CHANNEL_AXIS and not grouped:
        return CHANNEL_AXIS[layout], TRANSPOSE_OUT_CHANNEL_AXIS[str(kernel_layout)]
    return None


def _find_fold(
    bn: Node, graph: Graph, producer: dict[str, Node], consumers: dict[str, list[Node]]
) -> _Fold | None:
    """The anchor ``bn`` folds into, or None (see the module docstring)."""
    outputs = set(graph.outputs)

    def private(value: str, reader: Node) -> bool:  # read by ``reader`` alone
        return value not in outputs and [n.name for n in consumers.get(value, [])] == [reader.name]

    data = bn.inputs[0]
    node = producer.get(data)
    if node is None or not private(data, bn):
        return None
    bias_add: Node | None = None
    bias: str | None = None
    if node.op == "add":
        constant = [v for v in node.inputs if graph.is_constant(v)]
        others = [v for v in node.inputs if not graph.is_constant(v)]
        if len(constant) != 1 or len(others) != 1 or others[0] not in producer:
            return None
        if graph.types[others[0]].shape != graph.types[node.output].shape or not private(others[0], node):
            return None
        bias_add, bias = node, constant[0]
        node = producer[others[0]]
    if node.op not in ("conv", "conv_transpose", "dense") or not graph.is_constant(node.inputs[1]):
        return None
    axes = _channel_axis(node, graph.types[node.inputs[1]].ndim)
    if axes is None or axes[0] != attr(bn.attrs, "axis", "batch_norm"):
        return None
    return _Fold(node, axes[1], bias_add, bias)


def _scale_shift(bn: Node, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s``, computed in float64."""
    gamma, beta, mean, var = (graph.constants[v].astype(np.float64) for v in bn.inputs[1:])
    scale = gamma / np.sqrt(var + float(attr(bn.attrs, "epsilon", "batch_norm")))
    return scale, beta - mean * scale


def _along(vector: np.ndarray, axis: int, rank: int) -> tuple[int, ...]:
    """The shape that puts ``vector`` on ``axis`` of a rank-``rank`` tensor when broadcast
    (trailing ones only: numpy aligns from the right)."""
    return (vector.size,) + (1,) * (rank - 1 - axis)


def fold_batch_norm(graph: Graph) -> Graph:
    """``graph`` without batch_norm nodes (see the module docstring)."""
    producer, consumers = graph.producer(), graph.consumers()
    names = Names(graph)
    constants = dict(graph.constants)
    replaced: dict[str, list[Node]] = {}  # node name -> the nodes standing in its place
    for bn in graph.nodes:
        if bn.op != "batch_norm":
            continue
        dtype = graph.types[bn.output].dtype
        rank = graph.types[bn.output].ndim
        axis = attr(bn.attrs, "axis", "batch_norm")
        if not all(graph.is_constant(v) for v in bn.inputs[1:]):
            replaced[bn.name] = _expand(bn, graph, names, constants)
            continue
        scale, shift = _scale_shift(bn, graph)
        fold = _find_fold(bn, graph, producer, consumers)
        if fold is None:
            scale_name, shift_name = names.value(f"{bn.name}_scale"), names.value(f"{bn.name}_shift")
            constants[scale_name] = scale.reshape(_along(scale, axis, rank)).astype(dtype)
            constants[shift_name] = shift.reshape(_along(shift, axis, rank)).astype(dtype)
            scaled = names.value(f"{bn.output}_scaled")
            replaced[bn.name] = [
                Node("multiply", (bn.inputs[0], scale_name), (scaled,), name=names.node(f"{bn.name}_mul")),
                Node("add", (scaled, shift_name), (bn.output,), name=names.node(f"{bn.name}_add")),
            ]
            continue
        anchor = fold.anchor
        weight = graph.constants[anchor.inputs[1]]
        weight_shape = [1] * weight.ndim
        weight_shape[fold.weight_axis] = scale.size
        new_weight = names.value(f"{anchor.inputs[1]}_bn")
        constants[new_weight] = (weight * scale.reshape(weight_shape)).astype(weight.dtype)
        replaced[anchor.name] = [anchor.with_(inputs=(anchor.inputs[0], new_weight, *anchor.inputs[2:]))]
        new_bias = names.value(f"{bn.name}_bias")
        bias_shape = _along(scale, axis, rank)
        if fold.bias_add is None or fold.bias is None:
            constants[new_bias] = shift.reshape(bias_shape).astype(dtype)
            add = Node("add", (anchor.output, new_bias), (bn.output,), name=names.node(f"{bn.name}_bias_add"))
            replaced[bn.name] = [add]
        else:
            old_bias = graph.constants[fold.bias].astype(np.float64)
            constants[new_bias] = (old_bias * scale.reshape(bias_shape) + shift.reshape(bias_shape)).astype(
                dtype
            )
            inputs = tuple(new_bias if v == fold.bias else v for v in fold.bias_add.inputs)
            replaced[fold.bias_add.name] = []
            replaced[bn.name] = [fold.bias_add.with_(inputs=inputs, outputs=(bn.output,))]
    nodes = [new for node in graph.nodes for new in replaced.get(node.name, [node])]
    return graph.replace(nodes=nodes, constants=used_constants(constants, nodes, graph.outputs))


def _expand(bn: Node, graph: Graph, names: Names, constants: dict[str, np.ndarray]) -> list[Node]:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` as elementwise nodes, each parameter
    reshaped to broadcast along the axis (for parameters that are not constants)."""
    data, gamma, beta, mean, var = bn.inputs
    out_type = graph.types[bn.output]
    axis = attr(bn.attrs, "axis", "batch_norm")
    shape = (out_type.shape[axis],) + (1,) * (out_type.ndim - 1 - axis)
    eps = names.value(f"{bn.name}_epsilon")
    constants[eps] = np.array(attr(bn.attrs, "epsilon", "batch_norm"), dtype=out_type.dtype)
    nodes: list[Node] = []

    def emit(op: str, inputs: tuple[str, ...], tag: str, out: str | None = None, **attrs: object) -> str:
        value = out or names.value(f"{bn.output}_{tag}")
        nodes.append(Node(op, inputs, (value,), attrs, name=names.node(f"{bn.name}_{tag}")))
        return value

    g, b, m, v = (
        emit("reshape", (p,), f"{tag}_r", shape=shape)
        for p, tag in [(gamma, "g"), (beta, "b"), (mean, "m"), (var, "v")]
    )
    centred = emit("subtract", (data, m), "centred")
    deviation = emit("sqrt", (emit("add", (v, eps), "var_eps"),), "std")
    normed = emit("divide", (centred, deviation), "normed")
    emit("add", (emit("multiply", (normed, g), "scaled"), b), "out", out=bn.output)
    return nodes
