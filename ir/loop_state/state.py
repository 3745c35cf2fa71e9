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

A transform step (``Step``, below) is data: the history of steps is the "gene" of a state
that evolution mutates and that records store. The state and the step contract live in
one module because each names the other: a state holds its steps, and a step maps a
state to a new one. The fourteen step kinds live in ``ir.loop_state.steps``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator as PyIterator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from ir.expr import IterVarKind
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind, StageKind
from ir.te import ComputeOp, Operation, PlaceholderOp
from ir.tir import MemoryScope

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.python_names import PythonNames


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


def initial_state(dag: ComputeDAG) -> LoopState:
    """The naive loop state of ``dag``: one root stage per op, loops in axis order."""
    return LoopState(tuple(make_stage(op) for op in dag.ops), (), None, True)


@dataclass(frozen=True)
class LoopState:
    """Immutable loop state: the stages, the steps that made them, and the current DAG
    (differs from the task's DAG once cache_read, cache_write or rfactor added stages)."""

    stages: tuple[Stage, ...]
    transform_steps: tuple[Step, ...] = ()
    current_compute_dag: ComputeDAG | None = None
    concrete: bool = True

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
        return replace(self, stages=tuple(stages))

    def with_step(self, step: Step) -> LoopState:
        return replace(self, transform_steps=self.transform_steps + (step,))

    def inlined_ops(self) -> frozenset[Operation]:
        """The ops of the stages computed inline."""
        return frozenset(stage.op for stage in self.stages if stage.compute_at is ComputeAtKind.INLINED)

    @cached_property
    def _text(self) -> str:
        # the printed form, computed from the fields on first use (the search's
        # de-duplication key, asked for many times per state)
        return print_state(self)

    def __str__(self) -> str:
        return self._text


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


# ------------------------------------------------------------------------------------------
# the contract every transform step keeps (TVM ``transform_step.h``)


@dataclass(frozen=True)
class Step(abc.ABC):
    """One transform step on stage ``stage_id`` (an index into the state's stages).

    A step is a frozen dataclass: data, not code. It must be able to

    - ``apply(state, dag)``: check that it is legal on ``state`` and return a new LoopState
      with its effect and with itself appended to ``transform_steps``; an illegal step
      raises ``ScheduleError`` naming the stage, the iterator and the reason;
    - ``to_record()`` / ``from_record(record)``: write and read TVM's v0.6 JSON layout
      (``["SP", stage_id, iter_id, extent, [lengths], inner_to_outer]``, ...);
    - ``to_python(state_before)``: print one or a few lines calling the State API
      (``ir.loop_state.api``).

    Steps address stages and iterators by index, as records do; the State API turns
    iterator objects and names into indices before it makes a step. How to add a step
    kind: ``ir.loop_state.steps.base``.
    """

    #: the record tag (SP FSP FFSP FU RE AN PR SA CA CI CR CHR CHW RF)
    record_prefix: ClassVar[str] = ""
    #: names of the record fields after the tag, for error messages
    record_fields: ClassVar[tuple[str, ...]] = ("stage_id",)
    #: True when the step's Python line assigns the iterators it creates (split, fuse)
    defines_iterators: ClassVar[bool] = False

    stage_id: int

    @abc.abstractmethod
    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        """Return ``state`` transformed by this step, with the step appended to its history."""

    @abc.abstractmethod
    def to_record(self) -> list[Any]:
        """The step in TVM's v0.6 record layout: ``[tag, stage_id, ...]``."""

    @classmethod
    @abc.abstractmethod
    def from_record(cls, record: Sequence[Any]) -> Step:
        """Read a record written by ``to_record`` (or by TVM)."""

    @abc.abstractmethod
    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        """One or a few lines of Python that make this step through the State API ``s``."""

    def iterator_stages(self, state_before: LoopState) -> tuple[int, ...]:
        """Stage ids whose iterator variables the Python line names (the printer defines
        them first)."""
        return (self.stage_id,)
