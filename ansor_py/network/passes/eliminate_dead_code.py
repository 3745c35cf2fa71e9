"""``eliminate_dead_code``: drop the nodes none of whose outputs reaches a graph output,
and the constants nobody reads (Relay's ``DeadCodeElimination``).

One backward sweep over the topologically ordered nodes: a node is live when one of its
outputs is a graph output or an input of a live node.
"""

from __future__ import annotations

from ansor_py.network.graph import Graph
from ansor_py.network.passes.rewrite import used_constants


def eliminate_dead_code(graph: Graph) -> Graph:
    """``graph`` with its dead nodes and unread constants dropped."""
    needed = set(graph.outputs)
    live = []
    for node in reversed(graph.nodes):
        if any(v in needed for v in node.outputs):
            live.append(node)
            needed.update(node.inputs)
    nodes = live[::-1]
    return graph.replace(nodes=nodes, constants=used_constants(graph.constants, nodes, graph.outputs))
