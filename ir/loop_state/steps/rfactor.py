"""RfactorStep: factor a reduction into a new stage (TVM ``transform_step.cc``).

Ansor's rule "add rfactor" (paper section 4.1) turns a reduction with little spatial
parallelism (a row sum, a norm) into two stages: ``T.rf`` computes partial reductions with
the chosen reduction leaf as an extra spatial axis, which can then be parallelized or
vectorized, and ``T`` reduces the partials:

    split(k, [4]) then rfactor(C, k.1, 1):
        C.rf[i, k.1] = sum over k.0 of body(k = k.0 * 4 + k.1)
        C[i]         = sum over k.1.v of C.rf[i, k.1.v]

The ops are built by ``dag_rewrite.rfactor_ops``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ir.expr import Reduce
from ir.loop_state.dag_rewrite import insert_stage, rewrite_ops, rfactor_ops, unique_name
from ir.loop_state.enums import IteratorKind
from ir.loop_state.state import LoopState, ScheduleError, Step, make_stage
from ir.loop_state.steps.base import (
    check_record,
    compute_stage_at,
    finish,
    iter_at,
    python_names,
    quote,
    record_int,
)
from ir.te import ComputeOp

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.python_names import PythonNames


@dataclass(frozen=True)
class RfactorStep(Step):
    """Factor stage ``stage_id``'s reduction over its reduction leaf ``iter_id``; the leaf
    becomes spatial axis ``factor_iter_id`` of the new stage ``T.rf`` inserted before T.
    Both stages get fresh iterators; T keeps its compute location."""

    record_prefix = "RF"
    record_fields = ("stage_id", "iter_id", "factor_iter_id")

    iter_id: int
    factor_iter_id: int

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "rfactor")
        it = iter_at(stage, self.iter_id, "rfactor")
        op = stage.op
        assert isinstance(op, ComputeOp)
        what = f"cannot rfactor iterator '{it.name}' of stage '{stage.name}'"
        if not isinstance(op.body, Reduce):
            raise ScheduleError(f"{what}: the stage has no reduction")
        if op.body.is_tuple:
            raise ScheduleError(f"{what}: it is a tuple reduction ({op.body.reducer.name})")
        if it.kind is IteratorKind.SPATIAL:
            raise ScheduleError(f"{what}: it is a spatial iterator; pick a reduction iterator")
        mixed = [x.name for x in stage.iters if x.kind is IteratorKind.MIXED]
        if mixed:
            raise ScheduleError(
                f"{what}: iterator(s) {', '.join(mixed)} fuse spatial and reduction iterators"
            )
        if isinstance(self.factor_iter_id, bool) or not 0 <= self.factor_iter_id <= len(op.axis):
            raise ScheduleError(
                f"{what}: factor_iter_id {self.factor_iter_id!r} must be in 0..{len(op.axis)} "
                f"(a position among the {len(op.axis)} spatial axes)"
            )
        attached = [
            s.name for s in state.stages if s.attach is not None and s.attach.stage_id == self.stage_id
        ]
        if attached:
            raise ScheduleError(f"{what}: stage(s) {', '.join(attached)} are computed at its iterators")
        name = unique_name(f"{stage.name}.rf", [s.name for s in state.stages])
        rf, target = rfactor_ops(op, stage, it.name, self.factor_iter_id, name)
        new_ops = rewrite_ops([s.op for s in state.stages], {id(op): target.op})
        new_target = replace(
            make_stage(target.op, stage.scope), compute_at=stage.compute_at, attach=stage.attach
        )
        stages, new_dag = insert_stage(
            state, dag, new_ops, {self.stage_id: new_target}, make_stage(rf.op), self.stage_id
        )
        return finish(state, stages, self, current_compute_dag=new_dag)

    def to_record(self) -> list[Any]:
        return ["RF", self.stage_id, self.iter_id, self.factor_iter_id]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> RfactorStep:
        fields = check_record(cls, record)
        values = [record_int(record, v, n) for v, n in zip(fields, cls.record_fields, strict=True)]
        return cls(*values)

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        return f"s.rfactor({quote(stage.name)}, {it_var}, {self.factor_iter_id})"
