"""Small helpers the graph passes share: fresh names, renaming values, dropping constants
nobody reads.

Every pass builds a new node list and a new constants dict and hands them to
``graph.replace``; these helpers keep that bookkeeping out of the passes' logic. None of
them changes its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ansor_py.network.graph import Graph, Node, unique_name


class Names:
    """Fresh value and node names for one rewrite of ``graph``: each name handed out is
    new to the graph and to every name handed out before."""

    def __init__(self, graph: Graph):
        self.values: set[str] = set(graph.types)
        self.nodes: set[str] = {node.name for node in graph.nodes}

    def value(self, base: str) -> str:
        name = unique_name(base, self.values)
        self.values.add(name)
        return name

    def node(self, base: str) -> str:
        name = unique_name(base, self.nodes)
        self.nodes.add(name)
        return name


def rename_values(nodes: Sequence[Node], mapping: Mapping[str, str]) -> list[Node]:
    """``nodes`` with every input and output value renamed through ``mapping`` (names not
    in it are kept)."""
    if not mapping:
        return list(nodes)
    renamed = []
    for node in nodes:
        inputs = tuple(mapping.get(v, v) for v in node.inputs)
        outputs = tuple(mapping.get(v, v) for v in node.outputs)
        renamed.append(
            node
            if (inputs, outputs) == (node.inputs, node.outputs)
            else node.with_(inputs=inputs, outputs=outputs)
        )
    return renamed


def used_constants(
    constants: Mapping[str, np.ndarray], nodes: Iterable[Node], outputs: Iterable[str]
) -> dict[str, np.ndarray]:
    """The constants a node reads or the graph returns, in their original order."""
    read = {v for node in nodes for v in node.inputs} | set(outputs)
    return {name: array for name, array in constants.items() if name in read}
