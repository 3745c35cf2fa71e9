"""The graph passes, in the order ``optimize`` runs them (Relay's ``Sequential`` of
``SimplifyInference``, ``FoldConstant``, ``ConvertLayout``, ... as TVM builds a network for
Ansor's tasks, paper section 6).

Each pass is a pure function ``Graph -> Graph`` in a module of its own, importable and
testable alone against the graph's reference executor; this list is the one place that
orders them.
"""

from __future__ import annotations

from ansor_py.network.graph import Graph
from ansor_py.network.passes.convert_layout import convert_layout
from ansor_py.network.passes.eliminate_dead_code import eliminate_dead_code
from ansor_py.network.passes.fold_batch_norm import fold_batch_norm
from ansor_py.network.passes.fold_constants import fold_constants
from ansor_py.network.passes.simplify import simplify

LAYOUTS = ("NCHW", "NHWC")


def optimize(graph: Graph, layout: str = "NHWC") -> Graph:
    """``graph`` made ready for fusion: no-ops and batch norms gone, constants folded and,
    for ``layout="NHWC"``, convolutions channel-last (``"NCHW"`` keeps the model's layout)."""
    if layout not in LAYOUTS:
        raise ValueError(f"optimize: layout {layout!r} is not one of {list(LAYOUTS)}")
    graph = simplify(graph)  # drop no-op reshapes, transposes, casts, slices
    graph = fold_constants(graph)  # compute what depends on constants alone
    graph = fold_batch_norm(graph)  # batch norms into conv/dense weights, or multiply + add
    if layout == "NHWC":
        graph = convert_layout(graph)  # convs NHWC, weights HWIO once, transposes cancelled
        graph = simplify(graph)  # reshapes the layout change made of transposes of 1-wide axes
    graph = fold_constants(graph)  # the weights transposed or scaled by the passes above
    return eliminate_dead_code(graph)  # nodes whose results nobody reads, unread constants


__all__ = [
    "convert_layout",
    "eliminate_dead_code",
    "fold_batch_norm",
    "fold_constants",
    "optimize",
    "simplify",
]
