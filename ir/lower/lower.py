"""``lower(dag, state)``: a loop state becomes a loop-nest program (PrimFunc).

Ansor measures every candidate it proposes (paper section 4.1: the loop state is lowered
and compiled); this is the lowering, the one pipeline from a DAG and a state to a program.
It reads top to bottom as a list of passes, each a function from one IR to the next;
``debug=True`` prints the program after each, and ``stop_after`` returns the program as one
pass left it (the feature extractor reads the loop nests right after ``schedule_ops``, one
index per buffer dimension, as TVM's does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ir.loop_state.api import as_loop_state, check_state_of
from ir.lower.bound import BoundCache, BoundInfo, infer_bound_with_regions
from ir.lower.passes import flatten_indices, hoist_invariant_indices, simplify_stmt
from ir.lower.schedule_ops import plan_buffers, schedule_ops
from ir.tir import PrimFunc, Stmt

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState

#: the passes that rewrite the program ``schedule_ops`` made, in order
_REWRITES: dict[str, Callable[[Stmt, BoundInfo], Stmt]] = {
    # one flat index per access, from the buffers' (aligned) strides
    "flatten_indices": lambda body, bounds: flatten_indices(body),
    # canonical affine indices; guards proven true dropped, divisions removed where ranges allow
    "simplify": lambda body, bounds: simplify_stmt(body, bounds.ranges),
    # loop-invariant index parts computed once, outside the inner loops (strength reduction)
    "hoist_invariant_indices": lambda body, bounds: hoist_invariant_indices(body),
}

#: the program passes of ``lower`` in order: the names ``stop_after`` takes
PASSES: tuple[str, ...] = ("schedule_ops", *_REWRITES)


def lower(
    dag: ComputeDAG,
    state: State | LoopState | None = None,
    name: str = "default_function",
    debug: bool = False,
    stop_after: str | None = None,
    cache: BoundCache | None = None,
) -> PrimFunc:
    """The PrimFunc computing ``dag`` as scheduled by ``state``.

    ``state`` is a State handle, a LoopState, or None for the naive initial state; it must
    be a concrete state of ``dag`` (``check_state_of``: ScheduleError otherwise).
    Parameters: one global buffer per tensor of ``dag.tensors``, in that order, named
    after the tensor. ``stop_after`` names a pass of ``PASSES``: the body is the program
    right after it (None: after the last). ``cache``: bound inference's results kept by
    the caller (a search lowers the states it has bound), see ``ir.lower.bound.BoundCache``.
    """
    if stop_after is not None and stop_after not in PASSES:
        raise ValueError(
            f"lower(): stop_after={stop_after!r} is not a pass; the passes are {', '.join(PASSES)}"
        )
    check_state_of(dag, state)
    loop_state = as_loop_state(dag, state)
    tensors = [(t.name, t.shape, t.dtype) for t in dag.tensors]

    # bound inference: every loop's extent, attached stages' regions, guards, axis values
    bounds = infer_bound_with_regions(dag, loop_state, cache)
    if debug:
        print(f"// after infer_bound\n{bounds.state}")
    # buffers: parameters for the DAG's tensors, allocations (full or compact) for the rest
    plan = plan_buffers(tensors, bounds)
    # loop nests of the stages, attached stages at their attach loops, inlined ones substituted
    body = _after("schedule_ops", schedule_ops(bounds, plan), debug)
    # then the rewrites, in order, up to ``stop_after``
    last = PASSES.index(stop_after or PASSES[-1])
    for pass_name in PASSES[1 : last + 1]:
        body = _after(pass_name, _REWRITES[pass_name](body, bounds), debug)
    return PrimFunc(name, plan.params, body)


def _after(pass_name: str, body: Stmt, debug: bool) -> Stmt:
    if debug:
        print(f"// after {pass_name}\n{body}\n")
    return body
