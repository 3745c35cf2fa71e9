"""Split steps: SplitStep, FollowSplitStep, FollowFusedSplitStep (TVM ``transform_step.cc``).

Multi-level tiling (Ansor paper section 4.1, rule "multi-level tiling") is a chain of
splits. ``split(x, [l1, ..., ln])`` replaces iterator ``x`` by n + 1 iterators named
``x.0 .. x.n`` (outer to inner). With ``inner_to_outer`` the lengths give the inner n
extents and ``x.0`` takes the remainder ceil(extent(x) / prod(l)); otherwise they give the
outer n extents and ``x.n`` takes the remainder. In both cases

    x == sum_k x.k * prod_{m > k} extent(x.m)

which the stage records as a ``SplitRelation``. A length may be None (a sketch whose tile
sizes are filled in later); the state is then not ``concrete``. Stages computed at ``x``
move to the innermost child, the position that keeps their computation inside all of
``x``'s loops.

The two follow steps copy lengths from earlier split steps of the history (GPU cooperative
fetching and cache_write tiling use them so that two stages tile alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ir.loop_state.enums import IteratorAnnotation
from ir.loop_state.state import Iterator, LoopState, Range, ScheduleError, SplitRelation, Stage, Step
from ir.loop_state.steps.base import (
    RecordError,
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


def check_lengths(stage: Stage, it: Iterator, lengths: Sequence[int | None]) -> tuple[int | None, ...]:
    result = tuple(lengths)
    if not result:
        raise ScheduleError(f"cannot split iterator '{it.name}' of stage '{stage.name}': no lengths given")
    for length in result:
        if length is None:
            continue
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ScheduleError(
                f"cannot split iterator '{it.name}' of stage '{stage.name}': length {length!r} "
                "must be a positive int or None (unknown)"
            )
    return result


def split_state(
    state: LoopState,
    step: Step,
    iter_id: int,
    lengths: Sequence[int | None],
    inner_to_outer: bool,
) -> LoopState:
    """Apply a split of iterator ``iter_id`` of stage ``step.stage_id`` (TVM ApplySplitToState)."""
    stage_id = step.stage_id
    stage = compute_stage_at(state, stage_id, "split")
    it = iter_at(stage, iter_id, "split")
    if it.annotation is not IteratorAnnotation.NONE:
        raise ScheduleError(
            f"cannot split iterator '{it.name}' of stage '{stage.name}': "
            f"it is already annotated {it.annotation.value}"
        )
    lengths = check_lengths(stage, it, lengths)
    n = len(lengths)
    # child_lengths[k] is the chosen extent of child k (outer to inner); None at the remainder
    if inner_to_outer:
        child_lengths: list[int | None] = [None, *lengths]
        remainder_index, order = 0, range(n, 0, -1)
    else:
        child_lengths = [*lengths, None]
        remainder_index, order = n, range(n)
    # Ranges, as TVM: walking from the end given by the lengths, each known length divides
    # the extent left; once a length or the extent is unknown, the rest are unknown.
    ranges: list[Range] = [Range(0, None)] * (n + 1)
    left = it.range.extent
    for k in order:
        length = child_lengths[k]
        if length is not None and left is not None:
            ranges[k] = Range(0, length)
            left = -(-left // length)
        else:
            left = None
    ranges[remainder_index] = Range(0, left)
    names = [f"{it.name}.{k}" for k in range(n + 1)]
    children = tuple(Iterator(name, rng, it.kind) for name, rng in zip(names, ranges, strict=True))
    relation = SplitRelation(it.name, tuple(names), tuple(child_lengths), remainder_index)
    new_stage = replace(
        stage,
        iters=stage.iters[:iter_id] + children + stage.iters[iter_id + 1 :],
        relations=(*stage.relations, relation),
    )
    stages = list(state.stages)
    stages[stage_id] = new_stage
    move_attached(stages, stage_id, it.name, names[-1])
    concrete = state.concrete and all(length is not None for length in lengths)
    return finish(state, stages, step, concrete=concrete)


def split_python(
    step: Step, state_before: LoopState, iter_id: int, call: str, names: PythonNames | None, n_out: int
) -> str:
    """``C_i_0, C_i_1 = s.<call>`` with the children's variable names."""
    names = python_names(names)
    stage = state_before.stages[step.stage_id]
    it = stage.iters[iter_id]
    outs = [names.iter_var(stage.name, f"{it.name}.{k}") for k in range(n_out)]
    return f"{', '.join(outs)} = s.{call}"


def _split_step_at(state: LoopState, src_step_id: int, action: str, stage_name: str) -> SplitStep:
    steps = state.transform_steps
    if isinstance(src_step_id, bool) or not isinstance(src_step_id, int) or not 0 <= src_step_id < len(steps):
        raise ScheduleError(
            f"cannot {action} stage '{stage_name}': source step {src_step_id!r} is out of range "
            f"(the history has {len(steps)} steps)"
        )
    source = steps[src_step_id]
    if not isinstance(source, SplitStep):
        raise ScheduleError(
            f"cannot {action} stage '{stage_name}': source step {src_step_id} is a "
            f"{source.record_prefix} step, not a split (SP)"
        )
    return source


@dataclass(frozen=True)
class SplitStep(Step):
    """Split iterator ``iter_id`` by ``lengths`` (None = unknown); ``extent`` is the
    iterator's extent when the step was made (None if unknown), kept for tile-size filling."""

    record_prefix = "SP"
    record_fields = ("stage_id", "iter_id", "extent", "lengths", "inner_to_outer")
    defines_iterators = True

    iter_id: int
    extent: int | None
    lengths: tuple[int | None, ...]
    inner_to_outer: bool = True

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        return split_state(state, self, self.iter_id, self.lengths, self.inner_to_outer)

    def to_record(self) -> list[Any]:
        lengths = [0 if length is None else length for length in self.lengths]
        return [
            "SP",
            self.stage_id,
            self.iter_id,
            self.extent or 0,
            lengths,
            int(self.inner_to_outer),
        ]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> SplitStep:
        stage_id, iter_id, extent, lengths, inner_to_outer = check_record(cls, record)
        extent = record_int(record, extent, "extent")
        parsed = record_ints(record, lengths, "lengths")
        if inner_to_outer not in (0, 1):
            raise RecordError(f"malformed SP record {list(record)!r}: inner_to_outer must be 0 or 1")
        return cls(
            record_int(record, stage_id, "stage_id"),
            record_int(record, iter_id, "iter_id"),
            extent or None,
            tuple(length or None for length in parsed),
            bool(inner_to_outer),
        )

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        lengths = list(self.lengths)
        flag = "" if self.inner_to_outer else ", inner_to_outer=False"
        call = f"split({quote(stage.name)}, {it_var}, {lengths}{flag})"
        return split_python(self, state_before, self.iter_id, call, names, len(self.lengths) + 1)


@dataclass(frozen=True)
class FollowSplitStep(Step):
    """Split iterator ``iter_id`` like the earlier SplitStep ``src_step_id``: its first
    ``n_split - 1`` lengths, then the product of the rest, giving ``n_split + 1`` loops
    (TVM ``FollowSplitStep::ExtractSplitLengths``)."""

    record_prefix = "FSP"
    record_fields = ("stage_id", "iter_id", "src_step_id", "n_split")
    defines_iterators = True

    iter_id: int
    src_step_id: int
    n_split: int

    def lengths(self, state: LoopState) -> tuple[int | None, ...]:
        """The lengths this step splits by, read from ``state``'s history."""
        stage_name = state.stages[self.stage_id].name if 0 <= self.stage_id < len(state.stages) else "?"
        source = _split_step_at(state, self.src_step_id, "follow_split", stage_name)
        if isinstance(self.n_split, bool) or not 1 <= self.n_split <= len(source.lengths) + 1:
            raise ScheduleError(
                f"cannot follow_split stage '{stage_name}': n_split {self.n_split!r} must be in "
                f"1..{len(source.lengths) + 1} for source step {self.src_step_id} with "
                f"{len(source.lengths)} lengths"
            )
        lengths = list(source.lengths[: self.n_split - 1])
        last: int | None = 1
        for length in source.lengths[self.n_split - 1 :]:
            last = None if length is None or last is None else last * length
        return (*lengths, last)

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        compute_stage_at(state, self.stage_id, "follow_split")
        return split_state(state, self, self.iter_id, self.lengths(state), True)

    def to_record(self) -> list[Any]:
        return ["FSP", self.stage_id, self.iter_id, self.src_step_id, self.n_split]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> FollowSplitStep:
        fields = check_record(cls, record)
        values = [record_int(record, v, n) for v, n in zip(fields, cls.record_fields, strict=True)]
        return cls(*values)

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        call = f"follow_split({quote(stage.name)}, {it_var}, {self.src_step_id}, {self.n_split})"
        return split_python(self, state_before, self.iter_id, call, names, self.n_split + 1)


@dataclass(frozen=True)
class FollowFusedSplitStep(Step):
    """Split iterator ``iter_id`` once by the product of the lengths at ``level`` of the
    earlier SplitSteps ``src_step_ids``; ``factor_or_nparts`` True makes it the inner
    length (a factor), False the outer one (nparts)."""

    record_prefix = "FFSP"
    record_fields = ("stage_id", "iter_id", "src_step_ids", "level", "factor_or_nparts")
    defines_iterators = True

    iter_id: int
    src_step_ids: tuple[int, ...]
    level: int
    factor_or_nparts: bool

    def length(self, state: LoopState) -> int | None:
        """The one split length, read from ``state``'s history (None if any is unknown)."""
        stage_name = state.stages[self.stage_id].name if 0 <= self.stage_id < len(state.stages) else "?"
        if not self.src_step_ids:
            raise ScheduleError(f"cannot follow_fused_split stage '{stage_name}': no source steps given")
        result: int | None = 1
        for src in self.src_step_ids:
            source = _split_step_at(state, src, "follow_fused_split", stage_name)
            if isinstance(self.level, bool) or not 0 <= self.level < len(source.lengths):
                raise ScheduleError(
                    f"cannot follow_fused_split stage '{stage_name}': level {self.level!r} is out of "
                    f"range for source step {src} with {len(source.lengths)} lengths"
                )
            length = source.lengths[self.level]
            result = None if length is None or result is None else result * length
        return result

    def apply(self, state: LoopState, dag: ComputeDAG) -> LoopState:
        compute_stage_at(state, self.stage_id, "follow_fused_split")
        return split_state(state, self, self.iter_id, (self.length(state),), self.factor_or_nparts)

    def to_record(self) -> list[Any]:
        return [
            "FFSP",
            self.stage_id,
            self.iter_id,
            list(self.src_step_ids),
            self.level,
            int(self.factor_or_nparts),
        ]

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> FollowFusedSplitStep:
        stage_id, iter_id, src_step_ids, level, factor_or_nparts = check_record(cls, record)
        if factor_or_nparts not in (0, 1):
            raise RecordError(f"malformed FFSP record {list(record)!r}: factor_or_nparts must be 0 or 1")
        return cls(
            record_int(record, stage_id, "stage_id"),
            record_int(record, iter_id, "iter_id"),
            record_ints(record, src_step_ids, "src_step_ids"),
            record_int(record, level, "level"),
            bool(factor_or_nparts),
        )

    def to_python(self, state_before: LoopState, names: PythonNames | None = None) -> str:
        names = python_names(names)
        stage = state_before.stages[self.stage_id]
        it_var = names.iter_var(stage.name, stage.iters[self.iter_id].name)
        call = (
            f"follow_fused_split({quote(stage.name)}, {it_var}, {list(self.src_step_ids)}, "
            f"{self.level}, {self.factor_or_nparts})"
        )
        return split_python(self, state_before, self.iter_id, call, names, 2)
