"""``simplify``: drop the nodes that compute nothing (Relay's ``SimplifyExpr`` for these
cases).

A node is a no-op when its single output equals its first input element for element:

- ``reshape`` to the shape it already has, ``broadcast_to`` its own shape;
- ``transpose`` by the identity permutation;
- ``cast`` to the dtype it already has;
- ``slice`` keeping every element in order (every step 1, output shape == input shape);
- ``pad`` by zero everywhere; ``concat`` of one input; ``clip`` with neither bound.

Its consumers read its input instead. A ``reshape`` of a ``reshape`` reads the inner
one's input (the inner one goes when nothing else reads it).

A dropped value that is a graph output keeps its name: the node producing the input is
renamed to define it, when that input is a node's output returned nowhere else; otherwise
(the input is a graph input, a constant or another graph output) the no-op node stays,
since a graph output needs a defining node or value of its own name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansor_py.network.graph import Graph, Node
from ansor_py.network.passes.rewrite import rename_values, used_constants
from ansor_py.network.types import TensorType


def _same_shape(attrs: Mapping[str, Any], given: TensorType, result: TensorType) -> bool:
    return given.shape == result.shape


def _identity_perm(attrs: Mapping[str, Any], given: TensorType, result: TensorType) -> bool:
    return tuple(attrs["perm"]) == tuple(range(given.ndim))


def _same_dtype(attrs: Mapping[str, Any], given: TensorType, result: TensorType) -> bool:
    return given.dtype == result.dtype


def _full_slice(attrs: Mapping[str, Any], given: TensorType, result: TensorType) -> bool:
    return all(step == 1 for step in attrs["steps"]) and given.shape == result.shape


def _zero_pads(attrs: Mapping[str, Any], given: TensorType, result: TensorType) -> bool:
    return all(p == 0 for p in attrs["pads"])


def _no_bounds(attrs: Mapping[str, Any], given: TensorType, result: TensorType) -> bool:
    return attrs.get("min") is None and attrs.get("max") is None


#: op -> "is this node a no-op?" (it is asked only of single-output nodes whose output has
#: the type of their first input)
NO_OP_RULES: dict[str, Callable[[Mapping[str, Any], TensorType, TensorType], bool]] = {
    "reshape": _same_shape,
    "broadcast_to": _same_shape,
    "transpose": _identity_perm,
    "cast": _same_dtype,
    "slice": _full_slice,
    "pad": _zero_pads,
    "concat": _same_shape,
    "clip": _no_bounds,
}


def is_no_op(node: Node, graph: Graph) -> bool:
    """Whether ``node`` returns its first input unchanged (see the module docstring)."""
    rule = NO_OP_RULES.get(node.op)
    if rule is None or len(node.outputs) != 1 or not node.inputs:
        return False
    if node.op == "concat" and len(node.inputs) != 1:
        return False
    given, result = graph.types[node.inputs[0]], graph.types[node.output]
    return given == result and rule(node.attrs, given, result)


def simplify(graph: Graph) -> Graph:
    """``graph`` without its no-op nodes, and with each reshape of a reshape reading the
    inner reshape's input (see the module docstring)."""
    producer = graph.producer()
    graph_outputs = set(graph.outputs)
    alias: dict[str, str] = {}  # dropped value -> the value it equals
    rename: dict[str, str] = {}  # a producer's value -> the graph output it now defines
    bypassed: set[str] = set()  # reshapes a later reshape no longer reads through
    nodes: list[Node] = []
    emitted: dict[str, Node] = {}  # value -> the kept node defining it
    for node in graph.nodes:
        inputs = tuple(alias.get(v, v) for v in node.inputs)
        inner = emitted.get(inputs[0]) if inputs else None
        if node.op == "reshape" and inner is not None and inner.op == "reshape":
            bypassed.add(inner.name)
            inputs = (inner.inputs[0], *inputs[1:])
        if inputs != node.inputs:
            node = node.with_(inputs=inputs)
        if is_no_op(node, graph):
            source = node.inputs[0]
            if node.output not in graph_outputs:
                alias[node.output] = source
                continue
            renamable = source in producer and source not in graph_outputs and source not in rename
            if renamable:
                alias[node.output] = source
                rename[source] = node.output
                continue
        nodes.append(node)
        emitted.update(dict.fromkeys(node.outputs, node))
    read = {v for node in nodes for v in node.inputs} | graph_outputs
    nodes = [n for n in nodes if n.name not in bypassed or any(v in read for v in n.outputs)]
    nodes = rename_values(nodes, rename)
    return graph.replace(nodes=nodes, constants=used_constants(graph.constants, nodes, graph.outputs))
