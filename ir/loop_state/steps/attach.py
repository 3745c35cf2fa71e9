"""Compute-location steps: ComputeAtStep, ComputeInlineStep, ComputeRootStep.

Where a stage is computed decides locality (Ansor paper section 4.1, rules "always
inline" and "multi-level tiling with fusion"; section 4.2 "change compute location"):
inlined into its consumers, at the root (its own loop nest), or inside a loop of a
consumer (``compute_at``), producing just the tile that loop iteration needs.

After ``compute_at`` (and ``compute_root``) the moved stage's iterator ranges are unknown,
as in Ansor, until bound inference (``ir.lower.bound.infer_bound_from_state``) refills them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ir.expr import Reduce
from ir.loop_state.enums import ComputeAtKind
from ir.loop_state.state import AttachPoint, Iterator, LoopState, Range, ScheduleError, Stage, Step
from ir.loop_state.steps.base import (
    attached_names,
    check_record,
    compute_stage_at,
    current_dag,
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


def direct_consumers(state: LoopState, stage_id: int) -> list[int]:
    """Ids of the stages whose op reads the output of stage ``stage_id``."""
    op = state.stages[stage_id].op
    return [
        index for index, stage in enumerate(state.stages) if any(t.op is op for t in stage.op.input_tensors)
    ]


def consumers(state: LoopState, stage_id: int) -> list[int]:
    """Stages that read ``stage_id``'s output directly or through inlined stages (the
    stages it may be computed at; TVM ``GetConsumers``)."""
    result: list[int] = []
    frontier = direct_consumers(state, stage_id)
    seen: set[int] = set()
    while frontier:
        index = frontier.pop(0)
        if index in seen:
            continue
        seen.add(index)
        if state.stages[index].compute_at is ComputeAtKind.INLINED:
            frontier.extend(direct_consumers(state, index))
        else:
            result.append(index)
    return sorted(result)


def _unknown_ranges(stage: Stage) -> tuple[Iterator, ...]:
    return tuple(replace(it, range=Range(0, None)) for it in stage.iters)


@dataclass(frozen=True)
class ComputeAtStep(Step):
    """Compute stage ``stage_id`` at iterator ``target_iter_id`` of ``target_stage_id``.

    The target must consume the stage (directly or through inlined stages), or run all of
    its consumers inside the target iterator (they are computed there, at any depth), and
    must not itself be computed inside the stage.
    """

    record_prefix = "CA"
    record_fields = ("stage_id", "target_stage_id", "target_iter_id")

    target_stage_id: int
    target_iter_id: int

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "compute_at")
        target = compute_stage_at(state, self.target_stage_id, "compute_at into")
        it = iter_at(target, self.target_iter_id, "compute_at into")
        what = f"cannot compute stage '{stage.name}' at iterator '{it.name}' of stage '{target.name}'"
        if self.stage_id == self.target_stage_id:
            raise ScheduleError(f"{what}: a stage cannot be computed at itself")
        if target.compute_at is ComputeAtKind.INLINED:
            raise ScheduleError(f"{what}: '{target.name}' is inlined and has no loops")
        holder = target
        while holder.attach is not None:
            if holder.attach.stage_id == self.stage_id:
                raise ScheduleError(f"{what}: '{target.name}' is itself computed inside '{stage.name}'")
            holder = state.stages[holder.attach.stage_id]
        users = consumers(state, self.stage_id)
        if not users or not all(self._runs_inside(state, u, it.name) for u in users):
            names = ", ".join(state.stages[i].name for i in users) or "none"
            raise ScheduleError(
                f"{what}: '{target.name}' does not consume '{stage.name}' and does not run all of its "
                f"consumers inside '{it.name}' (its consumers: {names})"
            )
        new_stage = replace(
            stage,
            iters=_unknown_ranges(stage),
            compute_at=ComputeAtKind.ITER,
            attach=AttachPoint(self.target_stage_id, it.name),
        )
        stages = list(state.stages)
        stages[self.stage_id] = new_stage
        return finish(state, stages, self)

    def _runs_inside(self, state: LoopState, user: int, iter_name: str) -> bool:
        """True if stage ``user`` is the target, or is computed (through a chain of attach
        points) inside the target at ``iter_name`` or deeper: then the target's loops
        enclose every read of the stage, as with a B panel packed at a GEMM's column loop
        for a register tile computed further in."""
        if user == self.target_stage_id:
            return True
        target = state.stages[self.target_stage_id]
        point = state.stages[user].attach
        while point is not None:
            if point.stage_id == self.target_stage_id:
                return target.iter_index(point.iter_name) >= target.iter_index(iter_name)
            point = state.stages[point.stage_id].attach
        return False

    def to_record(self) -> list[Any]:
        return ["CA", self.stage_id, self.target_stage_id, self.target_iter_id]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> ComputeAtStep:
        fields = check_record(cls, record)
        values = [record_int(record, v, n) for v, n in zip(fields, cls.record_fields, strict=True)]
        return cls(*values)

    def iterator_stages(self, state_before: LoopState) -> tuple[int, ...]:
        return (self.target_stage_id,)

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        target = state_before.stages[self.target_stage_id]
        it_var = names.iter_var(target.name, target.iters[self.target_iter_id].name)
        return f"s.compute_at({quote(stage.name)}, {quote(target.name)}, {it_var})"


@dataclass(frozen=True)
class ComputeInlineStep(Step):
    """Inline stage ``stage_id`` into its consumers: no reduction, not an output of the
    DAG, and no stage computed at it."""

    record_prefix = "CI"

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "compute_inline")
        what = f"cannot inline stage '{stage.name}'"
        assert isinstance(stage.op, ComputeOp)
        if isinstance(stage.op.body, Reduce):
            raise ScheduleError(f"{what}: it is a reduction ({stage.op.body.reducer.name})")
        outputs = {t.name for t in current_dag(state, dag).outputs}
        if stage.name in outputs:
            raise ScheduleError(f"{what}: it is an output of the DAG")
        attached = attached_names(state, self.stage_id)
        if attached:
            holders = ", ".join(f"'{n}' (at '{it}')" for it, ns in attached.items() for n in ns)
            raise ScheduleError(f"{what}: stage(s) {holders} are computed at its iterators")
        stages = list(state.stages)
        stages[self.stage_id] = replace(stage, compute_at=ComputeAtKind.INLINED, attach=None)
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["CI", self.stage_id]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> ComputeInlineStep:
        (stage_id,) = check_record(cls, record)
        return cls(record_int(record, stage_id, "stage_id"))

    def iterator_stages(self, state_before: LoopState) -> tuple[int, ...]:
        return ()

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        return f"s.compute_inline({quote(state_before.stages[self.stage_id].name)})"


@dataclass(frozen=True)
class ComputeRootStep(Step):
    """Give stage ``stage_id`` its own loop nest at the root (undo compute_at or inline);
    its iterator ranges become unknown until bound inference, as in TVM."""

    record_prefix = "CR"

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "compute_root")
        stages = list(state.stages)
        stages[self.stage_id] = replace(
            stage, iters=_unknown_ranges(stage), compute_at=ComputeAtKind.ROOT, attach=None
        )
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["CR", self.stage_id]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> ComputeRootStep:
        (stage_id,) = check_record(cls, record)
        return cls(record_int(record, stage_id, "stage_id"))

    def iterator_stages(self, state_before: LoopState) -> tuple[int, ...]:
        return ()

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        return f"s.compute_root({quote(state_before.stages[self.stage_id].name)})"
