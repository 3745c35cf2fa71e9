"""The numpy reference executor of a whole graph: the oracle of the network layer.

``run_reference(graph, inputs)`` runs each node's ``OpDef.reference`` in graph order. A
compiled network, every graph pass and the ONNX importer are checked against it (and it
against onnxruntime), so it is written for clarity, not speed; it is still fast enough for
the five benchmark networks at batch 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ansor_py.network.graph import Graph
from ansor_py.network.ops import get_op
from ansor_py.network.types import GraphError, TensorType


class InputError(ValueError):
    """Network inputs that do not match the graph: a missing or unknown name, a wrong
    shape or dtype."""


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``inputs`` checked against ``graph.inputs`` (every name given, none unknown, shapes
    and dtypes exact), as C-contiguous arrays."""
    unknown = sorted(set(inputs) - set(graph.inputs))
    if unknown:
        raise InputError(
            f"network '{graph.name}' has no input {unknown}; its inputs are {list(graph.inputs)}"
        )
    checked: dict[str, np.ndarray] = {}
    for name, ttype in graph.inputs.items():
        if name not in inputs:
            raise InputError(f"network '{graph.name}': input {name!r} ({ttype}) is missing")
        array = inputs[name]
        if not isinstance(array, np.ndarray):
            raise InputError(
                f"network '{graph.name}': input {name!r} must be a numpy array, got {type(array).__name__}"
            )
        given = TensorType.of(array)
        if given != ttype:
            raise InputError(f"network '{graph.name}': input {name!r} is {given}, the network takes {ttype}")
        checked[name] = np.require(array, requirements="C")
    return checked


def run_reference(graph: Graph, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs (in ``graph.outputs`` order) for ``inputs`` (name -> array)."""
    values: dict[str, np.ndarray] = dict(graph.constants)
    values.update(check_inputs(graph, inputs))
    remaining_uses: dict[str, int] = {}
    for node in graph.nodes:
        for value in node.inputs:
            remaining_uses[value] = remaining_uses.get(value, 0) + 1
    keep = set(graph.outputs) | set(graph.constants)
    for node in graph.nodes:
        opdef = get_op(node.op, node=node.name)
        results = opdef.reference(node.attrs, [values[v] for v in node.inputs])
        for value, array in zip(node.outputs, results, strict=True):
            expected = graph.types[value]
            if TensorType.of(np.asarray(array)) != expected:
                raise GraphError(
                    f"node {node.name!r} ({node.op}): reference gave {TensorType.of(np.asarray(array))}, "
                    f"its shape function says {expected}"
                )
            values[value] = np.asarray(array)
        for value in node.inputs:  # free what no later node reads
            remaining_uses[value] -= 1
            if remaining_uses[value] == 0 and value not in keep:
                del values[value]
    return [values[v] for v in graph.outputs]
