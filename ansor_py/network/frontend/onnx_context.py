"""The state of one ONNX import, and the contract every op converter meets.

The importer (``frontend.onnx``) walks the model's nodes in order and hands each to the
converter registered for its op type and opset (a ``Converter``: TVM's ONNX frontend keeps
the same table, ``_get_convert_map``). A converter reads the node (an ``OnnxNode``: inputs
already resolved to graph values, attributes as plain Python values and numpy arrays) and
builds graph nodes through the ``ImportContext``:

- ``ctx.emit(node, op, inputs, attrs)`` adds one graph node and returns its output values.
  When every input is a constant the node is evaluated at once by the op's numpy
  ``reference`` and its outputs become constants instead (shape arithmetic such as
  ``Shape -> Gather -> Concat -> Reshape`` folds away at import, as Relay's ``FoldConstant``
  does after TVM's importer);
- ``ctx.constant_value(node, index, what)`` is a shape-valued input that must be constant
  after folding (a Reshape's shape, Slice's starts...): otherwise ``OnnxImportError`` naming
  the node;
- a converter returns one graph value per ONNX output (``None`` for an output the model
  does not read); returning an input value aliases it (Identity, Dropout), with no node.

Names: the first graph node made for an ONNX node takes the ONNX node's name, the others
``<name>/<op>`` (a folded node takes none); the node's final outputs keep the model's
value names, intermediate values get fresh names that never clash with a name the model
uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ansor_py.network.graph import Graph, Node, unique_name
from ansor_py.network.ops import get_op
from ansor_py.network.reference import run_reference
from ansor_py.network.types import GraphError, TensorType


class OnnxImportError(GraphError):
    """A model the importer cannot take: an unsupported op, attribute, value or opset, a
    dynamic shape without an override, a corrupt or missing file. Raised before anything
    is compiled; the message names the model's node, input or file."""


#: ONNX ``TensorProto.DataType`` codes -> dtype names (the fixed table of onnx.proto3)
ONNX_DTYPES: Mapping[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}


def onnx_dtype(code: int, what: str) -> str:
    """The dtype name of an ONNX element type code; ``what`` names the value for the error."""
    if code not in ONNX_DTYPES:
        supported = ", ".join(f"{k} ({v})" for k, v in ONNX_DTYPES.items())
        raise OnnxImportError(f"{what}: ONNX element type {code} is not supported; supported: {supported}")
    return ONNX_DTYPES[code]


@dataclass(frozen=True)
class OnnxNode:
    """One ONNX node as a converter sees it. ``inputs`` are graph values ("" for an omitted
    optional input), ``outputs`` the model's output names ("" for an unused one)."""

    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    opset: int

    def __str__(self) -> str:
        return f"{self.op_type} node {self.name!r}"

    def input(self, index: int) -> str:
        """Input ``index``, or "" when the model omits it."""
        return self.inputs[index] if index < len(self.inputs) else ""

    def attr(self, key: str, default: Any = ...) -> Any:
        if key in self.attrs:
            return self.attrs[key]
        if default is ...:
            raise OnnxImportError(f"{self}: attribute '{key}' is required (given: {sorted(self.attrs)})")
        return default

    def unsupported(self, key: str, value: Any, accepted: str) -> OnnxImportError:
        """The error for an attribute (or input) value the importer does not take."""
        return OnnxImportError(
            f"{self}: {key}={value!r} is not supported (opset {self.opset}); supported: {accepted}"
        )


ConvertFn = Callable[["ImportContext", OnnxNode], Sequence[str | None]]


@dataclass(frozen=True)
class Converter:
    """The converter of ``op_type`` for default-domain opsets ``since..until`` (inclusive);
    ``attrs`` lists the attributes it understands (any other is an OnnxImportError)."""

    op_type: str
    since: int
    until: int
    convert: ConvertFn
    attrs: frozenset[str] = frozenset()


def normalize_axis(node: OnnxNode, axis: int, rank: int, key: str = "axis") -> int:
    """``axis`` in ``[-rank, rank)`` made non-negative."""
    if not -rank <= axis < rank:
        raise OnnxImportError(
            f"{node}: {key}={axis} is out of range for rank {rank} (allowed {-rank}..{rank - 1})"
        )
    return axis + rank if axis < 0 else axis


def normalize_axes(node: OnnxNode, axes: Sequence[int], rank: int, key: str = "axes") -> tuple[int, ...]:
    """Each axis normalised; a repeated axis is an error."""
    result = tuple(normalize_axis(node, int(a), rank, key) for a in axes)
    if len(set(result)) != len(result):
        raise OnnxImportError(f"{node}: {key}={list(axes)} names an axis twice (rank {rank})")
    return result


def contiguous(array: np.ndarray) -> np.ndarray:
    """A C-contiguous array of the same shape (``np.ascontiguousarray`` makes a 0-d array 1-d)."""
    return np.require(np.asarray(array), requirements="C")


class ImportContext:
    """Values, types, constants and nodes of the graph being built (see the module
    docstring). ``reserved`` holds every value name the model uses, so fresh names never
    take one."""

    def __init__(self, reserved: set[str], reserved_node_names: set[str]):
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        self._taken_values = set(reserved)
        self._taken_nodes = set(reserved_node_names)
        self._emitted_for: set[str] = set()

    # --- values ----------------------------------------------------------------------------

    def type_of(self, value: str) -> TensorType:
        return self.types[value]

    def is_constant(self, value: str) -> bool:
        return value in self.constants

    def add_input(self, name: str, ttype: TensorType) -> None:
        self._taken_values.add(name)
        self.types[name] = ttype

    def add_constant(self, array: np.ndarray, name: str = "", base: str = "const") -> str:
        """A new constant value (``name`` if given and free, else a fresh name from ``base``)."""
        if not name or name in self.types:
            name = unique_name(base, self._taken_values)
        self._taken_values.add(name)
        array = contiguous(array)
        self.constants[name] = array
        self.types[name] = TensorType.of(array)
        return name

    def constant_value(self, node: OnnxNode, index: int, what: str) -> np.ndarray:
        """Input ``index`` of ``node``, which must be a constant after folding."""
        value = node.input(index)
        if not value:
            raise OnnxImportError(f"{node}: input {index} ({what}) is required")
        if value not in self.constants:
            raise OnnxImportError(
                f"{node}: input {index} ({what}) is the value {value!r}, computed at run time; "
                "the importer needs it constant (computed from initializers, Constant nodes and "
                "static shapes only)"
            )
        return self.constants[value]

    def _fresh_value(self, base: str) -> str:
        name = unique_name(base, self._taken_values)
        self._taken_values.add(name)
        return name

    # --- nodes -----------------------------------------------------------------------------

    def emit(
        self,
        node: OnnxNode,
        op: str,
        inputs: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
        *,
        outputs: Sequence[str] = (),
        num_outputs: int = 1,
    ) -> list[str]:
        """``op(*inputs, **attrs)`` as a graph node made for ``node``, folded to constants
        when every input is constant. ``outputs`` are the value names to give (the model's),
        "" or a missing entry for a fresh name."""
        attrs = dict(attrs or {})
        count = max(num_outputs, len(outputs))
        names = []
        for i in range(count):
            wanted = outputs[i] if i < len(outputs) else ""
            if wanted and wanted not in self.types:
                self._taken_values.add(wanted)
                names.append(wanted)
            else:
                names.append(self._fresh_value(f"{node.name}/{op}"))
        if inputs and all(v in self.constants for v in inputs):  # folded: no node, no name taken
            self._fold(node, Node(op, tuple(inputs), tuple(names), attrs, f"{node.name}/{op}"))
            return names
        if node.name not in self._emitted_for:
            self._emitted_for.add(node.name)
            node_name = node.name
        else:
            node_name = unique_name(f"{node.name}/{op}", self._taken_nodes)
        self._taken_nodes.add(node_name)
        graph_node = Node(op, tuple(inputs), tuple(names), attrs, node_name)
        self._infer(node, graph_node)
        self.nodes.append(graph_node)
        return names

    def _infer(self, node: OnnxNode, graph_node: Node) -> None:
        try:
            opdef = get_op(graph_node.op, node=graph_node.name)
            opdef.check_arity(len(graph_node.inputs), graph_node.name)
            out_types = opdef.infer(graph_node.attrs, [self.types[v] for v in graph_node.inputs])
        except GraphError as err:
            raise OnnxImportError(f"{node}: graph op '{graph_node.op}' rejects it: {err}") from None
        for value, ttype in zip(graph_node.outputs, out_types, strict=True):
            self.types[value] = ttype

    def _fold(self, node: OnnxNode, graph_node: Node) -> None:
        """Evaluate a node of constant inputs (a one-node graph run by the reference)."""
        constants = {v: self.constants[v] for v in graph_node.inputs}
        try:
            tiny = Graph({}, [graph_node], graph_node.outputs, constants, name=f"fold {node.name}")
            arrays = run_reference(tiny, {})
        except GraphError as err:
            raise OnnxImportError(f"{node}: folding graph op '{graph_node.op}' failed: {err}") from None
        for value, array in zip(graph_node.outputs, arrays, strict=True):
            self.constants[value] = contiguous(array)
            self.types[value] = TensorType.of(array)

    # --- helpers shared by converters ------------------------------------------------------

    def reshape(self, node: OnnxNode, value: str, shape: Sequence[int], outputs: Sequence[str] = ()) -> str:
        """``value`` reshaped to ``shape`` (``outputs``: the name to give); the value itself,
        with no node, when it has that shape already."""
        shape = tuple(int(d) for d in shape)
        if self.types[value].shape == shape:
            return value
        return self.emit(node, "reshape", [value], {"shape": shape}, outputs=outputs)[0]

    def cast(self, node: OnnxNode, value: str, dtype: str) -> str:
        """``value`` as ``dtype`` (itself when it has that dtype)."""
        if self.types[value].dtype == dtype:
            return value
        return self.emit(node, "cast", [value], {"dtype": dtype})[0]

    # --- the result ------------------------------------------------------------------------

    def graph(self, inputs: Sequence[str], outputs: Sequence[str], name: str) -> Graph:
        """The finished graph; constants no node or output reads are dropped."""
        read = {v for n in self.nodes for v in n.inputs} | set(outputs)
        constants = {k: v for k, v in self.constants.items() if k in read}
        try:
            return Graph({v: self.types[v] for v in inputs}, self.nodes, outputs, constants, name=name)
        except GraphError as err:
            raise OnnxImportError(f"model '{name}': the imported graph is malformed: {err}") from None
