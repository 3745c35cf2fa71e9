"""ComputeDAG: the declaration as a graph of operations in topological order.

Ansor (paper section 4.1) starts every search from this DAG: its ops become the stages of
the initial loop state, and its access analysis feeds the sketch rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ir.te import ComputeOp, Operation, PlaceholderOp, Tensor

if TYPE_CHECKING:
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState


class ComputeDAGError(ValueError):
    """A set of tensors that does not form a valid DAG (missing inputs, repeated names)."""


def topological_ops(outputs: Sequence[Tensor]) -> list[Operation]:
    """All ops reachable from ``outputs``, producers before consumers; ties keep the
    order in which a depth-first walk from the outputs first meets them."""
    order: list[Operation] = []
    visited: set[int] = set()

    def visit(op: Operation) -> None:
        if id(op) in visited:
            return
        visited.add(id(op))
        for t in op.input_tensors:
            visit(t.op)
        order.append(op)

    for t in outputs:
        visit(t.op)
    return order


class ComputeDAG:
    """The ops of a declaration, from its input and output tensors (TVM's ComputeDAG).

    ``tensors`` lists inputs then outputs, the order a built kernel takes its arrays in.
    Every placeholder an output depends on must be listed.
    """

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors: tuple[Tensor, ...] = tuple(tensors)
        for t in self.tensors:
            if not isinstance(t, Tensor):
                raise ComputeDAGError(f"ComputeDAG takes te tensors, got {t!r}")
        outputs = [t for t in self.tensors if isinstance(t.op, ComputeOp)]
        listed = [t for t in self.tensors if isinstance(t.op, PlaceholderOp)]
        self.ops: tuple[Operation, ...] = tuple(topological_ops(self.tensors))
        listed_ids = {id(t.op) for t in listed}
        missing = [op.name for op in self.ops if isinstance(op, PlaceholderOp) and id(op) not in listed_ids]
        if missing:
            raise ComputeDAGError(
                f"ComputeDAG: placeholder(s) {missing} are read but not among the tensors given; "
                "list every input tensor"
            )
        names = [op.name for op in self.ops]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ComputeDAGError(f"ComputeDAG: operation names {repeated} repeat; give each op a unique name")
        if not outputs:
            raise ComputeDAGError("ComputeDAG needs at least one compute (output) tensor")
        self.placeholders: tuple[Tensor, ...] = tuple(listed)
        self.outputs: tuple[Tensor, ...] = tuple(outputs)
        self._init_state: LoopState | None = None

    @property
    def init_state(self) -> LoopState:
        """The naive loop state: one root stage per op, loops in axis order."""
        if self._init_state is None:
            from ir.loop_state.state import LoopState, make_stage

            self._init_state = LoopState(tuple(make_stage(op) for op in self.ops), (), None, True)
        return self._init_state

    def op_by_name(self, name: str) -> Operation:
        for op in self.ops:
            if op.name == name:
                return op
        raise ComputeDAGError(f"ComputeDAG has no op named '{name}'")

    def get_init_state(self) -> State:
        """A mutable State handle on the initial loop state (TVM's ``get_init_state``)."""
        from ir.loop_state.api import State

        return State(self)
