"""Loop-order steps: FuseStep and ReorderStep (TVM ``transform_step.cc``).

Fusion (Ansor paper section 4.2: fuse the outer tiles of spatial loops, then parallelize)
replaces consecutive iterators ``a, b`` by one iterator ``a@b@`` of extent
extent(a) * extent(b), recorded as a ``FuseRelation``:

    a@b@ == a * extent(b) + b

Reorder permutes a stage's iterators; the relations stay valid because they name
iterators, not positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ir.loop_state.enums import IteratorAnnotation, IteratorKind
from ir.loop_state.state import FuseRelation, Iterator, LoopState, Range, ScheduleError, Step
from ir.loop_state.steps.base import (
    attached_names,
    check_record,
    compute_stage_at,
    finish,
    iter_at,
    move_attached,
    python_names,
    quote,
    record_int,
    record_ints,
)

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.python_names import PythonNames


@dataclass(frozen=True)
class FuseStep(Step):
    """Fuse the consecutive iterators ``fused_ids`` (outer to inner) into one.

    Only the innermost of them may have stages computed at it (they move to the fused
    iterator); fusing an outer one would move those stages inside loops they were outside.
    """

    record_prefix = "FU"
    record_fields = ("stage_id", "fused_ids")
    defines_iterators = True

    fused_ids: tuple[int, ...]

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "fuse")
        if not self.fused_ids:
            raise ScheduleError(f"cannot fuse stage '{stage.name}': no iterators given")
        iters = [iter_at(stage, i, "fuse") for i in self.fused_ids]
        for prev, cur, a, b in zip(self.fused_ids, self.fused_ids[1:], iters, iters[1:]):
            if cur != prev + 1:
                raise ScheduleError(
                    f"cannot fuse iterators '{a.name}' and '{b.name}' of stage '{stage.name}': "
                    f"they are not adjacent (positions {prev} and {cur}); fuse consecutive iterators, "
                    "outer to inner"
                )
        attached = attached_names(state, self.stage_id)
        for it in iters:
            if it.annotation is not IteratorAnnotation.NONE:
                raise ScheduleError(
                    f"cannot fuse iterator '{it.name}' of stage '{stage.name}': "
                    f"it is already annotated {it.annotation.value}"
                )
        for it in iters[:-1]:
            if it.name in attached:
                raise ScheduleError(
                    f"cannot fuse iterator '{it.name}' of stage '{stage.name}': stage(s) "
                    f"{', '.join(attached[it.name])} are computed at it; only the innermost fused "
                    "iterator may have attached stages"
                )
        name = "".join(f"{it.name}@" for it in iters)
        extents = [it.range.extent for it in iters]
        extent = None if any(e is None for e in extents) else math.prod(e for e in extents if e is not None)
        kinds = {it.kind for it in iters}
        kind = iters[0].kind if len(kinds) == 1 else IteratorKind.MIXED
        fused = Iterator(name, Range(0, extent), kind)
        first, last = self.fused_ids[0], self.fused_ids[-1]
        new_stage = replace(
            stage,
            iters=(*stage.iters[:first], fused, *stage.iters[last + 1 :]),
            relations=(*stage.relations, FuseRelation(tuple(it.name for it in iters), name)),
        )
        stages = list(state.stages)
        stages[self.stage_id] = new_stage
        move_attached(stages, self.stage_id, iters[-1].name, name)
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["FU", self.stage_id, list(self.fused_ids)]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> FuseStep:
        stage_id, fused_ids = check_record(cls, record)
        return cls(record_int(record, stage_id, "stage_id"), record_ints(record, fused_ids, "fused_ids"))

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        iters = [stage.iters[i] for i in self.fused_ids]
        args = ", ".join(names.iter_var(stage.name, it.name) for it in iters)
        out = names.iter_var(stage.name, "".join(f"{it.name}@" for it in iters))
        return f"{out} = s.fuse({quote(stage.name)}, [{args}])"


@dataclass(frozen=True)
class ReorderStep(Step):
    """Put the stage's iterators in the order ``after_ids`` (a permutation of positions)."""

    record_prefix = "RE"
    record_fields = ("stage_id", "after_ids")

    after_ids: tuple[int, ...]

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "reorder")
        n = len(stage.iters)
        if sorted(self.after_ids) != list(range(n)):
            raise ScheduleError(
                f"cannot reorder stage '{stage.name}': {list(self.after_ids)} is not a permutation of its "
                f"{n} iterator positions 0..{n - 1} ({', '.join(it.name for it in stage.iters)})"
            )
        new_stage = replace(stage, iters=tuple(stage.iters[i] for i in self.after_ids))
        stages = list(state.stages)
        stages[self.stage_id] = new_stage
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["RE", self.stage_id, list(self.after_ids)]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> ReorderStep:
        stage_id, after_ids = check_record(cls, record)
        return cls(record_int(record, stage_id, "stage_id"), record_ints(record, after_ids, "after_ids"))

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        order = ", ".join(names.iter_var(stage.name, stage.iters[i].name) for i in self.after_ids)
        return f"s.reorder({quote(stage.name)}, [{order}])"
