"""The graph operators: one ``OpDef`` per op (the contract is in ``ops.base``).

Families, one module each: ``elementwise`` (unary and broadcasting binary arithmetic,
comparisons, ``where``, ``cast``), ``tensor`` (injective data movement: reshape,
transpose, concat, slice, take, broadcast_to, pad) and ``nn`` (convolutions, dense and
matmul, pooling, normalisation, softmax, reductions). ``OPS`` is their union, the table the
graph, the passes, fusion and the reference executor dispatch through.
"""

from __future__ import annotations

from ansor_py.network.ops.base import OpDef, OpPattern
from ansor_py.network.ops.elementwise import ELEMENTWISE_OPS
from ansor_py.network.ops.nn import NN_OPS
from ansor_py.network.ops.tensor import TENSOR_OPS
from ansor_py.network.types import GraphError

OPS: dict[str, OpDef] = {}
for _table in (ELEMENTWISE_OPS, TENSOR_OPS, NN_OPS):
    for _name in _table:
        if _name in OPS:
            raise ValueError(f"op '{_name}' is defined in two op families")
    OPS.update(_table)


def get_op(op: str, node: str = "") -> OpDef:
    """The ``OpDef`` named ``op``; an unknown name is a GraphError naming the node."""
    found = OPS.get(op)
    if found is None:
        where = f"node {node!r}: " if node else ""
        raise GraphError(f"{where}unknown op '{op}'; known ops: {', '.join(sorted(OPS))}")
    return found


__all__ = ["OPS", "GraphError", "OpDef", "OpPattern", "get_op"]
