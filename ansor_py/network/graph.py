"""The graph IR of an inference network: operators of ``ir.topi`` joined by named tensors.

A ``Graph`` is what a frontend (``ansor_py.network.frontend``) produces, what the graph
passes rewrite, and what fusion cuts into tasks (Ansor paper section 6: a network is a set
of subgraphs, each tuned as one task). It is deliberately small:

- a *value* is a tensor named by a string, with a static ``TensorType`` (shape, dtype);
  every value is a graph input, a constant (a numpy array: weights, folded shapes) or the
  output of exactly one node;
- a ``Node`` applies one operator of the op registry (``ansor_py.network.ops.OPS``) to
  input values and produces output values; ``attrs`` are plain Python data (ints, floats,
  strings, tuples), never arrays (arrays are constant values);
- ``nodes`` are kept in topological order: every input of a node is defined before it.

Graphs are immutable in spirit: a pass builds a new ``Graph`` (``graph.replace(...)``) and
never changes the nodes, dicts or arrays of its argument. ``infer_types`` (run by the
constructor) checks the graph and fills ``types`` from the ops' shape functions, so a
graph that exists is well formed: a node of an unknown op, a value used before it is
defined or defined twice, or an op rejecting its input types raises ``GraphError`` naming
the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ansor_py.network.ops import get_op
from ansor_py.network.types import GraphError, TensorType


@dataclass(frozen=True)
class Node:
    """``outputs = op(*inputs, **attrs)``. ``name`` is unique in its graph (the frontend
    keeps the model's node names, so errors point at the model)."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", dict(self.attrs))
        if not self.name:
            object.__setattr__(self, "name", f"{self.op}:{self.outputs[0] if self.outputs else '?'}")

    @property
    def output(self) -> str:
        """The single output (most ops have one)."""
        if len(self.outputs) != 1:
            raise GraphError(f"node {self.name!r} ({self.op}) has {len(self.outputs)} outputs, not one")
        return self.outputs[0]

    def __hash__(self) -> int:
        return hash((self.op, self.inputs, self.outputs, self.name))

    def with_(self, **changes: Any) -> Node:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)


class Graph:
    """An inference network: typed inputs, constant arrays, nodes in topological order and
    the output values (see the module docstring for the invariants)."""

    def __init__(
        self,
        inputs: Mapping[str, TensorType],
        nodes: Sequence[Node],
        outputs: Sequence[str],
        constants: Mapping[str, np.ndarray] | None = None,
        name: str = "network",
    ):
        self.name = name
        self.inputs: dict[str, TensorType] = dict(inputs)
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.outputs: tuple[str, ...] = tuple(outputs)
        self.constants: dict[str, np.ndarray] = dict(constants or {})
        self.types: dict[str, TensorType] = infer_types(self)

    # --- queries -------------------------------------------------------------------------

    def producer(self) -> dict[str, Node]:
        """Value name -> the node that defines it (inputs and constants have none)."""
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        """Value name -> the nodes that read it, in graph order (a node reading a value
        twice is listed once)."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for value in dict.fromkeys(node.inputs):
                users.setdefault(value, []).append(node)
        return users

    def is_constant(self, value: str) -> bool:
        return value in self.constants

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def weight_bytes(self) -> int:
        return int(sum(array.nbytes for array in self.constants.values()))

    # --- building new graphs ---------------------------------------------------------------

    def replace(
        self,
        *,
        inputs: Mapping[str, TensorType] | None = None,
        nodes: Sequence[Node] | None = None,
        outputs: Sequence[str] | None = None,
        constants: Mapping[str, np.ndarray] | None = None,
        name: str | None = None,
    ) -> Graph:
        """A new graph with some parts replaced (the others are shared, never mutated)."""
        return Graph(
            self.inputs if inputs is None else inputs,
            self.nodes if nodes is None else nodes,
            self.outputs if outputs is None else outputs,
            self.constants if constants is None else constants,
            self.name if name is None else name,
        )

    def __str__(self) -> str:
        return print_graph(self)

    def __repr__(self) -> str:
        nodes, inputs, outputs = len(self.nodes), list(self.inputs), list(self.outputs)
        return f"Graph({self.name!r}, {nodes} nodes, inputs={inputs}, outputs={outputs})"


def infer_types(graph: Graph) -> dict[str, TensorType]:
    """Check the graph's invariants and return the type of every value, in definition
    order: inputs, constants, then node outputs from each op's shape function."""
    types: dict[str, TensorType] = {}
    for name, ttype in graph.inputs.items():
        if not isinstance(ttype, TensorType):
            raise GraphError(f"graph input {name!r}: expected a TensorType, got {type(ttype).__name__}")
        types[name] = ttype
    for name, array in graph.constants.items():
        if name in types:
            raise GraphError(f"value {name!r} is both a graph input and a constant")
        if not isinstance(array, np.ndarray):
            raise GraphError(f"constant {name!r}: expected a numpy array, got {type(array).__name__}")
        types[name] = TensorType.of(array)
    seen_nodes: set[str] = set()
    for node in graph.nodes:
        if node.name in seen_nodes:
            raise GraphError(f"two nodes are named {node.name!r}")
        seen_nodes.add(node.name)
        opdef = get_op(node.op, node=node.name)
        opdef.check_arity(len(node.inputs), node.name)
        missing = [v for v in node.inputs if v not in types]
        if missing:
            raise GraphError(f"node {node.name!r} ({node.op}) reads {missing}, not defined before it")
        try:
            out_types = opdef.infer(node.attrs, [types[v] for v in node.inputs])
        except GraphError as err:
            raise GraphError(f"node {node.name!r} ({node.op}): {err}") from None
        if len(out_types) != len(node.outputs):
            raise GraphError(
                f"node {node.name!r} ({node.op}) names {len(node.outputs)} outputs, "
                f"the op gives {len(out_types)}"
            )
        for value, ttype in zip(node.outputs, out_types, strict=True):
            if value in types:
                raise GraphError(f"node {node.name!r} ({node.op}) redefines value {value!r}")
            types[value] = ttype
    for value in graph.outputs:
        if value not in types:
            raise GraphError(f"graph output {value!r} is not defined")
    return types


def _format_attr(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_format_attr(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


def print_graph(graph: Graph, max_constant_elements: int = 0) -> str:
    """One line per input, constant and node, in the manner of Relay's text format::

    %x: float32[1, 3, 224, 224]
    %w0 = constant float32[64, 3, 7, 7]
    %c0 = conv(%x, %w0, layout='NCHW', strides=(2, 2), ...)  # float32[1, 64, 112, 112]
    return %y
    """
    lines = [f"graph {graph.name}("]
    lines += [f"  %{name}: {ttype}," for name, ttype in graph.inputs.items()]
    lines.append(") {")
    for name, array in graph.constants.items():
        text = f"  %{name} = constant {TensorType.of(array)}"
        if 0 < array.size <= max_constant_elements:
            text += f" {array.tolist()}"
        lines.append(text)
    for node in graph.nodes:
        args = [f"%{v}" for v in node.inputs]
        args += [f"{k}={_format_attr(v)}" for k, v in node.attrs.items()]
        outs = ", ".join(f"%{v}" for v in node.outputs)
        out_types = ", ".join(str(graph.types[v]) for v in node.outputs)
        lines.append(f"  {outs} = {node.op}({', '.join(args)})  # {out_types}")
    lines.append(f"  return {', '.join('%' + v for v in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines)


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, ... the first not in ``taken``."""
    used = set(taken)
    if base not in used:
        return base
    index = 1
    while f"{base}_{index}" in used:
        index += 1
    return f"{base}_{index}"
