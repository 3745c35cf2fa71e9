"""Ansor's loop state: stages of iterators plus the history of steps that made them.

Paper section 4.1 ("the loop state is a lightweight IR"): a ``LoopState`` is what the
search mutates, far cheaper than a full loop-nest program. It is immutable; every
transform step returns a new one, so evolution can share parents freely.

Each stage keeps, beside Ansor's iterators, the *relations* that connect its leaf
iterators to the op's axes (``SplitRelation``, ``FuseRelation``, recorded in order).
Lowering reads them to express each axis of the op as a function of the loop variables
("after split(i, [f]): i == i.0 * f + i.1").

Attach points name the target stage by id and the target iterator by name; steps that
rename iterators (split, fuse) or insert stages (cache_read, cache_write, rfactor) keep
them up to date.
"""

from __future__ import annotations

from collections.abc import Iterator as PyIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ir.expr import IterVarKind
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind, StageKind
from ir.te import ComputeOp, Operation, PlaceholderOp
from ir.tir import MemoryScope

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.steps.base import Step


class ScheduleError(ValueError):
    """An illegal transform step. The message names the stage, the iterator and the reason;
    the search skips a candidate on this error and nothing else."""


@dataclass(frozen=True)
class Range:
    """``[min, min + extent)``; ``extent`` None while unknown (a split not yet filled, or
    a stage attached before bound inference)."""

    min: int
    extent: int | None

    def __str__(self) -> str:
        return "(None)" if self.extent is None else f"({self.min},{self.extent})"


@dataclass(frozen=True)
class Iterator:
    """One loop of a stage (Ansor's Iterator): name, range, kind and annotation."""

    name: str
    range: Range
    kind: IteratorKind
    annotation: IteratorAnnotation = IteratorAnnotation.NONE

    @property
    def extent(self) -> int | None:
        return self.range.extent


@dataclass(frozen=True)
class SplitRelation:
    """``parent`` was split into ``children`` (outer to inner).

    ``lengths[k]`` is child k's extent, except at ``remainder_index`` whose extent is
    ceil(parent extent / product of the others) (the outermost child when splitting inner
    to outer, the innermost otherwise). None marks a length not chosen yet (a sketch).
    parent == sum_k child_k * prod_{m > k} extent(child_m).
    """

    parent: str
    children: tuple[str, ...]
    lengths: tuple[int | None, ...]
    remainder_index: int


@dataclass(frozen=True)
class FuseRelation:
    """``parents`` (outer to inner, consecutive) were fused into ``fused``:
    fused == sum_k parent_k * prod_{m > k} extent(parent_m)."""

    parents: tuple[str, ...]
    fused: str


Relation = SplitRelation | FuseRelation


@dataclass(frozen=True)
class AttachPoint:
    """A stage computed at iterator ``iter_name`` of stage ``stage_id``."""

    stage_id: int
    iter_name: str


@dataclass(frozen=True)
class StorageAlign:
    """Pad the buffer's dimension ``axis`` so its stride is ``factor * k + offset``."""

    axis: int
    factor: int
    offset: int


@dataclass(frozen=True)
class Stage:
    """One operation of the DAG and how its loops are arranged (Ansor's Stage)."""

    op: Operation
    op_type: StageKind
    iters: tuple[Iterator, ...]
    #: the op's axes (spatial then reduce) as iterators; their ranges are what bound
    #: inference computes for attached stages
    root_iters: tuple[Iterator, ...]
    compute_at: ComputeAtKind = ComputeAtKind.ROOT
    attach: AttachPoint | None = None
    relations: tuple[Relation, ...] = ()
    auto_unroll_max_step: int = 0
    storage_offset: int = 0
    storage_align: tuple[StorageAlign, ...] = ()
    #: (iterator name, pragma) pairs other than auto_unroll_max_step
    pragmas: tuple[tuple[str, str], ...] = ()
    scope: MemoryScope = MemoryScope.GLOBAL

    @property
    def name(self) -> str:
        return self.op.name

    def iter_index(self, name: str) -> int:
        for index, it in enumerate(self.iters):
            if it.name == name:
                return index
        raise ScheduleError(f"stage '{self.name}' has no iterator named '{name}'")

    def find_iter(self, name: str) -> Iterator | None:
        return next((it for it in self.iters if it.name == name), None)


def make_stage(op: Operation, scope: MemoryScope = MemoryScope.GLOBAL) -> Stage:
    """The initial stage of ``op``: one iterator per axis, spatial then reduce."""
    if isinstance(op, PlaceholderOp):
        return Stage(op, StageKind.PLACEHOLDER, (), (), scope=scope)
    assert isinstance(op, ComputeOp)
    iters = tuple(
        Iterator(
            axis.name,
            Range(axis.dom_min, axis.extent),
            IteratorKind.SPATIAL if axis.kind is IterVarKind.SPATIAL else IteratorKind.REDUCTION,
        )
        for axis in op.axis + op.reduce_axis
    )
    return Stage(op, StageKind.COMPUTE, iters, iters, scope=scope)


@dataclass(frozen=True)
class LoopState:
    """Immutable loop state: the stages, the steps that made them, and the current DAG
    (differs from the task's DAG once cache_read, cache_write or rfactor added stages)."""

    stages: tuple[Stage, ...]
    transform_steps: tuple[Step, ...] = ()
    current_compute_dag: ComputeDAG | None = None
    concrete: bool = True
    #: memoised printed form, the de-duplication key of the search
    _text: list[str] = field(default_factory=list, compare=False, repr=False)
    #: memoised bound inference (``ir.lower.bound``): at most one ``(stages, facts)`` pair,
    #: valid only while ``stages`` is this state's own stages tuple (checked by identity,
    #: so a state made with ``replace`` never reuses facts of other stages)
    _bound_memo: list[tuple[tuple[Stage, ...], object]] = field(
        default_factory=list, compare=False, repr=False
    )

    def stage_id(self, name: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.name == name:
                return index
        raise ScheduleError(f"no stage named '{name}'; stages: {', '.join(s.name for s in self.stages)}")

    def attached_stages(self, stage_id: int, iter_name: str) -> list[int]:
        """Ids of the stages computed at iterator ``iter_name`` of stage ``stage_id``."""
        return [
            index
            for index, stage in enumerate(self.stages)
            if stage.attach is not None and stage.attach == AttachPoint(stage_id, iter_name)
        ]

    def with_stage(self, stage_id: int, stage: Stage) -> LoopState:
        stages = list(self.stages)
        stages[stage_id] = stage
        return replace(self, stages=tuple(stages), _text=[])

    def with_step(self, step: Step) -> LoopState:
        return replace(self, transform_steps=self.transform_steps + (step,), _text=[])

    def __str__(self) -> str:
        if not self._text:
            self._text.append(print_state(self))
        return self._text[0]


def print_state(state: LoopState, delete_trivial_loop: bool = True) -> str:
    """Ansor's loop tree: placeholders, then each root stage with attached stages nested."""
    lines = ["Placeholder: " + ", ".join(s.name for s in state.stages if s.op_type is StageKind.PLACEHOLDER)]
    for stage_id, stage in enumerate(state.stages):
        if stage.op_type is StageKind.COMPUTE and stage.compute_at is ComputeAtKind.ROOT:
            lines.extend(_stage_lines(state, stage_id, 0, delete_trivial_loop))
    return "\n".join(lines) + "\n"


def _stage_lines(state: LoopState, stage_id: int, base: int, delete_trivial_loop: bool) -> PyIterator[str]:
    stage = state.stages[stage_id]
    if stage.auto_unroll_max_step:
        yield " " * base + f"{stage.name} auto_unroll: {stage.auto_unroll_max_step}"
    if stage.storage_offset:
        yield " " * base + f"{stage.name} storage_offset: {stage.storage_offset}"
    indent = 0
    for it in stage.iters:
        if not (delete_trivial_loop and it.range.extent == 1):
            yield " " * (base + indent) + f"{it.annotation.value} {it.name} {it.range}"
            indent += 2
        for attached in state.attached_stages(stage_id, it.name):
            yield from _stage_lines(state, attached, base + indent, delete_trivial_loop)
    yield " " * (base + indent) + f"{stage.name} = ..."
