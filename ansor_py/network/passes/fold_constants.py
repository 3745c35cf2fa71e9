"""``fold_constants``: evaluate, once and at compile time, every node whose inputs are all
constants (Relay's ``FoldConstant``).

The node's op ``reference`` computes its outputs, which become constants of the graph; its
consumers then see constants and may fold in turn (nodes are visited in topological
order, so one sweep folds whole constant chains: a weight transposed and then reshaped, a
batch-norm scale computed from its parameters). Constants that nobody reads any more, and
that are no graph output, are dropped.
"""

from __future__ import annotations

import numpy as np

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops import get_op
from ansor_py.network.passes.rewrite import used_constants


def fold_constants(graph: Graph) -> Graph:
    """``graph`` with every all-constant node replaced by its computed value."""
    constants = dict(graph.constants)
    nodes: list[Node] = []
    for node in graph.nodes:
        if not node.inputs or not all(v in constants for v in node.inputs):
            nodes.append(node)
            continue
        results = get_op(node.op, node=node.name).reference(node.attrs, [constants[v] for v in node.inputs])
        for value, array in zip(node.outputs, results, strict=True):
            constants[value] = np.asarray(array, order="C")
    return graph.replace(nodes=nodes, constants=used_constants(constants, nodes, graph.outputs))
