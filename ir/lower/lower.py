"""``lower(dag, state)``: a loop state becomes a loop-nest program (PrimFunc).

Ansor measures every candidate it proposes (paper section 4.1: the loop state is lowered
and compiled); this is the lowering. It reads top to bottom as a list of passes, each a
function from one IR to the next; ``debug=True`` prints the program after each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ir.loop_state.state import LoopState
from ir.lower.bound import infer_bound_with_regions
from ir.lower.passes import flatten_indices, hoist_invariant_indices, simplify_stmt
from ir.lower.schedule_ops import plan_buffers, schedule_ops
from ir.tir import PrimFunc, Stmt

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG


def lower(
    dag: ComputeDAG, state: Any = None, name: str = "default_function", debug: bool = False
) -> PrimFunc:
    """The PrimFunc computing ``dag`` as scheduled by ``state``.

    ``state`` is a LoopState, a ``State`` handle (its ``.loop_state``), or None for the
    naive initial state. Parameters: one global buffer per tensor of ``dag.tensors``, in
    that order, named after the tensor.
    """
    loop_state = as_loop_state(dag, state)
    tensors = [(t.name, t.shape, t.dtype) for t in dag.tensors]

    # bound inference: every loop's extent, attached stages' regions, guards, axis values
    bounds = infer_bound_with_regions(dag, loop_state)
    if debug:
        print(f"// after infer_bound\n{bounds.state}")
    # buffers: parameters for the DAG's tensors, allocations (full or compact) for the rest
    plan = plan_buffers(tensors, bounds)
    # loop nests of the stages, attached stages at their attach loops, inlined ones substituted
    body = _after("schedule_ops", schedule_ops(bounds, plan), debug)
    # one flat index per access, from the buffers' (aligned) strides
    body = _after("flatten_indices", flatten_indices(body), debug)
    # canonical affine indices; guards proven true dropped, divisions removed where ranges allow
    body = _after("simplify", simplify_stmt(body, bounds.ranges), debug)
    # loop-invariant index parts computed once, outside the inner loops (strength reduction)
    body = _after("hoist_invariant_indices", hoist_invariant_indices(body), debug)
    return PrimFunc(name, plan.params, body)


def _after(pass_name: str, body: Stmt, debug: bool) -> Stmt:
    if debug:
        print(f"// after {pass_name}\n{body}\n")
    return body


def as_loop_state(dag: ComputeDAG, state: Any) -> LoopState:
    """Accept None (the DAG's initial state), a LoopState, or a handle with ``.loop_state``."""
    if state is None:
        return dag.init_state
    if isinstance(state, LoopState):
        return state
    inner = getattr(state, "loop_state", None)
    if isinstance(inner, LoopState):
        return inner
    raise TypeError(f"lower() takes a LoopState, a State handle or None as state, got {type(state).__name__}")
