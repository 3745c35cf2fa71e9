"""Annotation steps: AnnotationStep, PragmaStep, StorageAlignStep (TVM ``transform_step.cc``).

Annotations say how a loop runs (Ansor paper section 4.2, "random annotation"): in
parallel across cores, as one vector instruction, unrolled, or bound to a GPU grid or
block axis. Pragmas carry hints to lowering (``auto_unroll_max_step$N`` unrolls small
inner loops up to N steps). Storage alignment pads a buffer dimension so shared-memory
rows avoid bank conflicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ir.loop_state.enums import THREAD_BINDINGS, IteratorAnnotation, IteratorKind
from ir.loop_state.state import LoopState, ScheduleError, Step, StorageAlign
from ir.loop_state.steps.base import (
    RecordError,
    check_record,
    compute_stage_at,
    finish,
    iter_at,
    python_names,
    quote,
    record_int,
)

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.python_names import PythonNames

#: the verb of an annotation in messages ("cannot vectorize ...")
_VERBS = {
    IteratorAnnotation.PARALLEL: "parallelize",
    IteratorAnnotation.VECTORIZE: "vectorize",
    IteratorAnnotation.UNROLL: "unroll",
    IteratorAnnotation.TENSORIZE: "tensorize",
}

#: annotations a loop over (part of) a reduction may not take: its iterations must run in order
_SPATIAL_ONLY = frozenset({IteratorAnnotation.PARALLEL, IteratorAnnotation.VECTORIZE})

AUTO_UNROLL_PRAGMA = "auto_unroll_max_step"


def annotation_verb(annotation: IteratorAnnotation) -> str:
    return _VERBS.get(annotation, f"bind to {annotation.value}")


@dataclass(frozen=True)
class AnnotationStep(Step):
    """Annotate iterator ``iter_id`` (parallel, vectorize, unroll, vthread, blockIdx.*,
    threadIdx.*, tensorize). The record stores the annotation's int code (0..11)."""

    record_prefix = "AN"
    record_fields = ("stage_id", "iter_id", "annotation")

    iter_id: int
    annotation: IteratorAnnotation

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        verb = annotation_verb(self.annotation)
        stage = compute_stage_at(state, self.stage_id, verb)
        it = iter_at(stage, self.iter_id, verb)
        where = f"iterator '{it.name}' of stage '{stage.name}'"
        if self.annotation is IteratorAnnotation.NONE:
            raise ScheduleError(f"cannot annotate {where} with 'none': give an annotation")
        if it.annotation is not IteratorAnnotation.NONE:
            raise ScheduleError(f"cannot {verb} {where}: it is already annotated {it.annotation.value}")
        if self.annotation in _SPATIAL_ONLY and it.kind is IteratorKind.REDUCTION:
            raise ScheduleError(f"cannot {verb} {where}: it is a reduction iterator")
        if self.annotation in _SPATIAL_ONLY and it.kind is IteratorKind.MIXED:
            raise ScheduleError(f"cannot {verb} {where}: it fuses spatial and reduction iterators")
        iters = list(stage.iters)
        iters[self.iter_id] = replace(it, annotation=self.annotation)
        stages = list(state.stages)
        stages[self.stage_id] = replace(stage, iters=tuple(iters))
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["AN", self.stage_id, self.iter_id, self.annotation.record_code]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> AnnotationStep:
        stage_id, iter_id, code = check_record(cls, record)
        code = record_int(record, code, "annotation")
        if not 0 <= code < len(IteratorAnnotation):
            raise RecordError(
                f"malformed AN record {list(record)!r}: annotation code {code} is not in "
                f"0..{len(IteratorAnnotation) - 1}"
            )
        return cls(
            record_int(record, stage_id, "stage_id"),
            record_int(record, iter_id, "iter_id"),
            IteratorAnnotation.from_record_code(code),
        )

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        if self.annotation in THREAD_BINDINGS:
            return f"s.bind({quote(stage.name)}, {it_var}, {quote(self.annotation.value)})"
        if self.annotation is IteratorAnnotation.TENSORIZE:
            return f's.annotate({quote(stage.name)}, {it_var}, "tensorize")'
        method = {
            IteratorAnnotation.PARALLEL: "parallel",
            IteratorAnnotation.VECTORIZE: "vectorize",
            IteratorAnnotation.UNROLL: "unroll",
        }[self.annotation]
        return f"s.{method}({quote(stage.name)}, {it_var})"


def parse_auto_unroll(stage_name: str, pragma: str) -> int:
    """N from ``auto_unroll_max_step$N``."""
    _, sep, value = pragma.partition("$")
    if pragma.split("$")[0] != AUTO_UNROLL_PRAGMA or not sep or not value.isdigit():
        raise ScheduleError(
            f"cannot apply pragma {pragma!r} to stage '{stage_name}': write '{AUTO_UNROLL_PRAGMA}$N' "
            "with N a non-negative integer"
        )
    return int(value)


@dataclass(frozen=True)
class PragmaStep(Step):
    """Attach pragma ``pragma_type`` to iterator ``iter_id``.

    ``auto_unroll_max_step$N`` sets the stage's ``auto_unroll_max_step`` to N (printed as
    ``C auto_unroll: N``); any other pragma is kept in ``stage.pragmas`` as
    (iterator name, pragma) for lowering.
    """

    record_prefix = "PR"
    record_fields = ("stage_id", "iter_id", "pragma_type")

    iter_id: int
    pragma_type: str

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "apply a pragma to")
        it = iter_at(stage, self.iter_id, "apply a pragma to")
        if not isinstance(self.pragma_type, str) or not self.pragma_type:
            raise ScheduleError(
                f"cannot apply pragma {self.pragma_type!r} to iterator '{it.name}' of stage "
                f"'{stage.name}': a pragma is a non-empty string"
            )
        if self.pragma_type.startswith(AUTO_UNROLL_PRAGMA):
            new_stage = replace(stage, auto_unroll_max_step=parse_auto_unroll(stage.name, self.pragma_type))
        else:
            new_stage = replace(stage, pragmas=(*stage.pragmas, (it.name, self.pragma_type)))
        stages = list(state.stages)
        stages[self.stage_id] = new_stage
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["PR", self.stage_id, self.iter_id, self.pragma_type]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> PragmaStep:
        stage_id, iter_id, pragma = check_record(cls, record)
        if not isinstance(pragma, str):
            raise RecordError(f"malformed PR record {list(record)!r}: pragma_type must be a string")
        return cls(record_int(record, stage_id, "stage_id"), record_int(record, iter_id, "iter_id"), pragma)

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        return f"s.pragma({quote(stage.name)}, {it_var}, {quote(self.pragma_type)})"


@dataclass(frozen=True)
class StorageAlignStep(Step):
    """Align the stride of the buffer dimension of iterator ``iter_id`` (a spatial root
    iterator: the axis itself, not split or fused) to ``factor * k + offset`` elements.

    Records ``StorageAlign(axis, factor, offset)`` on the stage and, as TVM, sets the
    stage's ``storage_offset`` (printed as ``C storage_offset: N``).
    """

    record_prefix = "SA"
    record_fields = ("stage_id", "iter_id", "factor", "offset")

    iter_id: int
    factor: int
    offset: int

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        stage = compute_stage_at(state, self.stage_id, "storage_align")
        it = iter_at(stage, self.iter_id, "storage_align")
        where = f"iterator '{it.name}' of stage '{stage.name}'"
        spatial_roots = [r.name for r in stage.root_iters if r.kind is IteratorKind.SPATIAL]
        if it.name not in spatial_roots:
            raise ScheduleError(
                f"cannot storage_align {where}: it is not a spatial axis of the op "
                f"(axes: {', '.join(spatial_roots)}); align before splitting or fusing it"
            )
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 1:
            raise ScheduleError(
                f"cannot storage_align {where}: factor {self.factor!r} must be a positive int"
            )
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or not self.offset >= 0:
            raise ScheduleError(
                f"cannot storage_align {where}: offset {self.offset!r} must be a non-negative int"
            )
        axis = spatial_roots.index(it.name)
        aligns = tuple(a for a in stage.storage_align if a.axis != axis)
        new_stage = replace(
            stage,
            storage_align=(*aligns, StorageAlign(axis, self.factor, self.offset)),
            storage_offset=self.offset,
        )
        stages = list(state.stages)
        stages[self.stage_id] = new_stage
        return finish(state, stages, self)

    def to_record(self) -> list[Any]:
        return ["SA", self.stage_id, self.iter_id, self.factor, self.offset]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> StorageAlignStep:
        fields = check_record(cls, record)
        values = [record_int(record, v, n) for v, n in zip(fields, cls.record_fields, strict=True)]
        return cls(*values)

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        return f"s.storage_align({quote(stage.name)}, {it_var}, {self.factor}, {self.offset})"
