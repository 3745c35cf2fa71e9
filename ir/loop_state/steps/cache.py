"""Cache steps: CacheReadStep and CacheWriteStep (TVM ``transform_step.cc``).

Ansor's sketch rules add cache stages for data reuse (paper section 4.1, rule "add cache
stage"): ``cache_write(C, "local")`` computes C into a small local buffer tiled with the
consumer, and GPU sketches ``cache_read`` inputs into shared memory. Both insert a stage,
so every stage id at or after the insertion point shifts by one for later steps; the op
construction lives in ``dag_rewrite.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ir.loop_state.dag_rewrite import cache_read_op, cache_write_ops, insert_stage, rewrite_ops, unique_name
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation
from ir.loop_state.state import LoopState, ScheduleError, Step, make_stage
from ir.loop_state.steps.base import (
    RecordError,
    check_record,
    compute_stage_at,
    finish,
    quote,
    record_int,
    record_ints,
    stage_at,
)
from ir.te import ComputeOp, Tensor
from ir.tir import MemoryScope

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.python_names import PythonNames


def parse_scope(scope_name: str, action: str, stage_name: str) -> MemoryScope:
    try:
        return MemoryScope(scope_name)
    except ValueError:
        scopes = ", ".join(s.value for s in MemoryScope)
        raise ScheduleError(
            f"cannot {action} stage '{stage_name}': unknown memory scope {scope_name!r} "
            f"(expected one of {scopes})"
        ) from None


def _record_scope(record: Sequence[Any], value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError(f"malformed {record[0]} record {list(record)!r}: scope_name must be a string")
    return value


@dataclass(frozen=True)
class CacheReadStep(Step):
    """Insert stage ``T.<scope>`` (``T.<scope>[ax] = T[ax]``) right after stage ``stage_id``;
    the ``reader_stage_ids`` read it instead of T and keep their iterators."""

    record_prefix = "CHR"
    record_fields = ("stage_id", "scope_name", "reader_stage_ids")

    scope_name: str
    reader_stage_ids: tuple[int, ...]

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = stage_at(state, self.stage_id, "cache_read")
        what = f"cannot cache_read stage '{stage.name}'"
        scope = parse_scope(self.scope_name, "cache_read", stage.name)
        if stage.compute_at is ComputeAtKind.INLINED:
            raise ScheduleError(f"{what}: it is inlined")
        if stage.op.num_outputs > 1:
            raise ScheduleError(f"{what}: it has {stage.op.num_outputs} outputs (a tuple reduction)")
        if not self.reader_stage_ids:
            raise ScheduleError(f"{what}: no reader stages given")
        if len(set(self.reader_stage_ids)) != len(self.reader_stage_ids):
            raise ScheduleError(f"{what}: reader stages {list(self.reader_stage_ids)} repeat")
        tensor = stage.op.output
        readers = [s.name for s in state.stages if any(t.op is stage.op for t in s.op.input_tensors)]
        redirects: dict[int, dict[int, Tensor]] = {}
        name = unique_name(f"{stage.name}.{scope.value}", [s.name for s in state.stages])
        cache = cache_read_op(tensor, name)
        for reader_id in self.reader_stage_ids:
            reader = compute_stage_at(state, reader_id, f"cache_read '{stage.name}' for")
            if reader.name not in readers:
                raise ScheduleError(
                    f"{what} for stage '{reader.name}': '{reader.name}' does not read '{stage.name}' "
                    f"(its readers: {', '.join(readers) or 'none'})"
                )
            redirects[id(reader.op)] = {id(stage.op): cache}
        new_ops = rewrite_ops([s.op for s in state.stages], {}, redirects)
        stages, new_dag = insert_stage(
            state, dag, new_ops, {}, make_stage(cache.op, scope), self.stage_id + 1
        )
        return finish(state, stages, self, current_compute_dag=new_dag)

    def to_record(self) -> list[Any]:
        return ["CHR", self.stage_id, self.scope_name, list(self.reader_stage_ids)]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> CacheReadStep:
        stage_id, scope_name, readers = check_record(cls, record)
        return cls(
            record_int(record, stage_id, "stage_id"),
            _record_scope(record, scope_name),
            record_ints(record, readers, "reader_stage_ids"),
        )

    def iterator_stages(self, state_before: LoopState) -> tuple[int, ...]:
        return ()

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        stage = state_before.stages[self.stage_id]
        readers = ", ".join(quote(state_before.stages[r].name) for r in self.reader_stage_ids)
        return f"s.cache_read({quote(stage.name)}, {quote(self.scope_name)}, [{readers}])"


@dataclass(frozen=True)
class CacheWriteStep(Step):
    """Insert stage ``T.<scope>`` computing T's body before stage ``stage_id``; T becomes
    the copy ``T[i] = T.<scope>[i]`` with fresh iterators. As in TVM, it must come before
    any split, fuse, reorder or annotation of T."""

    record_prefix = "CHW"
    record_fields = ("stage_id", "scope_name")

    scope_name: str

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "cache_write")
        what = f"cannot cache_write stage '{stage.name}'"
        scope = parse_scope(self.scope_name, "cache_write", stage.name)
        if stage.compute_at is ComputeAtKind.INLINED:
            raise ScheduleError(f"{what}: it is inlined")
        if stage.op.num_outputs > 1:
            raise ScheduleError(f"{what}: it has {stage.op.num_outputs} outputs (a tuple reduction)")
        names = [it.name for it in stage.iters]
        touched = stage.relations or any(it.annotation is not IteratorAnnotation.NONE for it in stage.iters)
        if touched or names != [it.name for it in stage.root_iters]:
            raise ScheduleError(
                f"{what}: its loops were already transformed (iterators {', '.join(names)}); "
                "cache_write must come before splits, fuses, reorders and annotations of the stage"
            )
        assert isinstance(stage.op, ComputeOp)
        cache, target = cache_write_ops(
            stage.op, unique_name(f"{stage.name}.{scope.value}", [s.name for s in state.stages])
        )
        for other in state.stages:
            if other.attach is not None and other.attach.stage_id == self.stage_id:
                raise ScheduleError(
                    f"{what}: stage '{other.name}' is computed at its iterator '{other.attach.iter_name}' "
                    "and would read from the cache stage; cache_write must come before compute_at into it"
                )
        new_ops = rewrite_ops([s.op for s in state.stages], {id(stage.op): target.op})
        new_target = replace(
            make_stage(target.op, stage.scope),
            compute_at=stage.compute_at,
            attach=stage.attach,
            auto_unroll_max_step=stage.auto_unroll_max_step,
        )
        stages, new_dag = insert_stage(
            state, dag, new_ops, {self.stage_id: new_target}, make_stage(cache.op, scope), self.stage_id
        )
        return finish(state, stages, self, current_compute_dag=new_dag)

    def to_record(self) -> list[Any]:
        return ["CHW", self.stage_id, self.scope_name]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> CacheWriteStep:
        stage_id, scope_name = check_record(cls, record)
        return cls(record_int(record, stage_id, "stage_id"), _record_scope(record, scope_name))

    def iterator_stages(self, state_before: LoopState) -> tuple[int, ...]:
        return ()

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        return f"s.cache_write({quote(state_before.stages[self.stage_id].name)}, {quote(self.scope_name)})"
