"""Questions the search rules ask about a stage of a loop state (TVM ``search_policy/utils.h``).

The sketch rules (Ansor paper section 4.1, Table 1) and the random-annotation and mutation
rules (section 4.2, 5.1) decide from a few facts about a stage: does it need multi-level
tiling (``HasDataReuse``), is it strictly inlineable, does it have a single element-wise
consumer (``HasFusibleConsumer``), would rfactor help (``HasMoreReductionParallel``), has
it been tiled, where may it be computed. The DAG-level facts come from the access analysis
of the state's *current* DAG (cache_write and rfactor add ops), the rest from the stage.

Stage ids in a step history refer to the state *at the time of the step*; steps that insert
a stage (cache_read, cache_write, rfactor) shift later ids. ``made_by_step`` walks the
history backwards through those shifts, ``stage_id_after`` forwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ir.access_analysis import AccessAnalyzer
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind, StageKind
from ir.loop_state.state import LoopState, ScheduleError, Stage
from ir.loop_state.steps import CacheReadStep, CacheWriteStep, RfactorStep, SplitStep, Step
from ir.te import ComputeOp

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask

#: op attribute naming iterators that multi-level tiling must not split (TVM's key)
NO_SPLIT_AT_INNER = "auto_scheduler_no_split_at_inner"
#: op attribute naming iterators of the innermost tile to unroll (TVM's key)
ALWAYS_UNROLL_INNER = "auto_scheduler_always_unroll_inner"

#: steps that insert a stage and so shift the ids of later stages
STAGE_CHANGING_STEPS = (CacheReadStep, CacheWriteStep, RfactorStep)


def analyzer(task: SearchTask, state: LoopState) -> AccessAnalyzer:
    """The access analysis of the DAG the state's stages come from."""
    dag = state.current_compute_dag if state.current_compute_dag is not None else task.compute_dag
    return dag.access_analyzer


def op_stage_ids(state: LoopState) -> dict[int, int]:
    """id(op) -> stage id."""
    return {id(stage.op): index for index, stage in enumerate(state.stages)}


# ---------------------------------------------------------------------------------------
# DAG-level facts about a stage


def is_strictly_inlineable(task: SearchTask, state: LoopState, stage_id: int) -> bool:
    return analyzer(task, state).is_strictly_inlineable(state.stages[stage_id].op)


def is_output(task: SearchTask, state: LoopState, stage_id: int) -> bool:
    return analyzer(task, state).is_output(state.stages[stage_id].op)


def needs_multi_level_tiling(task: SearchTask, state: LoopState, stage_id: int) -> bool:
    """Paper: HasDataReuse (see ``AccessAnalyzer.needs_multi_level_tiling``). Never for a
    tuple reduction (several outputs): it is scheduled as a plain reduction, since its
    tiling sketches would need cache_write, which such a stage refuses."""
    op = state.stages[stage_id].op
    return op.num_outputs == 1 and analyzer(task, state).needs_multi_level_tiling(op)


def consumers(task: SearchTask, state: LoopState, stage_id: int) -> list[int]:
    """Stage ids reading ``stage_id``, looking through inlined stages (TVM GetConsumers)."""
    ids = op_stage_ids(state)
    ops = analyzer(task, state).get_consumers(state.stages[stage_id].op, state.inlined_ops())
    return sorted(ids[id(op)] for op in ops)


def single_consumer_id(task: SearchTask, state: LoopState, stage_id: int) -> int | None:
    """The one consumer, or the common root stage all consumers are computed in; None if
    there is no consumer or no common root (TVM GetSingleConsumerId)."""
    found = consumers(task, state, stage_id)
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    roots = set()
    for consumer in found:
        attach = state.stages[consumer].attach
        roots.add(consumer if attach is None else attach.stage_id)
    return roots.pop() if len(roots) == 1 else None


def single_elementwise_consumer(task: SearchTask, state: LoopState, stage_id: int) -> int | None:
    """The id of the stage's only consumer when it is element-wise matched, not both
    stages reduce and the consumer is no shared-memory copy (``.shared``, which a GPU
    sketch adds for its tiled reader) (paper: HasFusibleConsumer); else None."""
    found = consumers(task, state, stage_id)
    if len(found) != 1:
        return None
    target = found[0]
    stages = state.stages
    if not analyzer(task, state).elementwise_match(stages[stage_id].op, stages[target].op):
        return None
    if has_reduce_iter(stages[stage_id]) and has_reduce_iter(stages[target]):
        return None
    if stages[target].op.name.endswith(".shared"):
        return None
    return target


def producers(task: SearchTask, state: LoopState, stage_id: int) -> list[int]:
    """Stage ids ``stage_id`` reads, looking through inlined stages (TVM GetProducers)."""
    ids = op_stage_ids(state)
    ops = analyzer(task, state).get_producers(state.stages[stage_id].op, state.inlined_ops())
    return sorted(ids[id(op)] for op in ops)


def direct_producers(task: SearchTask, state: LoopState, stage_id: int) -> list[int]:
    """Stage ids whose ops ``stage_id``'s body reads, inlined or not (TVM GetDirectProducers)."""
    ids = op_stage_ids(state)
    return sorted(ids[id(op)] for op in analyzer(task, state).get_direct_producers(state.stages[stage_id].op))


def num_common_outer_iterators(task: SearchTask, state: LoopState, stage_id: int, target_id: int) -> int:
    """How many outer iterators ``stage_id`` shares with its consumer ``target_id``
    (TVM GetNumCommonOuterIterator)."""
    stages = state.stages
    return analyzer(task, state).num_common_outer_iterators(stages[stage_id].op, stages[target_id].op)


def is_gpu_task(task: SearchTask) -> bool:
    """Whether the task's target is a GPU (TVM IsGPUTask: the target's keys name "gpu")."""
    return "gpu" in task.target.keys


def needs_rfactor(task: SearchTask, state: LoopState, stage_id: int) -> bool:
    """Paper: HasMoreReductionParallel (CPU). A tiled op: only when the space is no larger
    than the reduction and at most 16 x num_cores; any other reduction: when the
    reduction is longer than num_cores."""
    stage = state.stages[stage_id]
    if not isinstance(stage.op, ComputeOp) or stage.op.num_outputs > 1:
        return False  # rfactor refuses tuple reductions
    space, reduce = space_and_reduce_lengths(stage)
    num_cores = task.hardware_params.num_cores
    if needs_multi_level_tiling(task, state, stage_id):
        return not (space > reduce or space > num_cores * 16)
    return reduce > 1 and reduce > num_cores


# ---------------------------------------------------------------------------------------
# facts about a stage's loops


def has_reduce_iter(stage: Stage) -> bool:
    return any(it.kind is not IteratorKind.SPATIAL for it in stage.iters)


def is_tiled(stage: Stage) -> bool:
    """Split or fused: the stage no longer has one loop per axis."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    return len(stage.iters) != len(op.axis) + len(op.reduce_axis)


def has_annotation(stage: Stage, annotation: IteratorAnnotation) -> bool:
    return any(it.annotation is annotation for it in stage.iters)


def has_cross_thread_reduction(state: LoopState, stage_id: int) -> bool:
    """Whether the stage, or a stage computed at one of its iterators, binds a reduction
    iterator to threadIdx.x (TVM HasCrossThreadReduction)."""

    def reduces_across_threads(stage: Stage) -> bool:
        return any(
            it.annotation is IteratorAnnotation.THREAD_X and it.kind is IteratorKind.REDUCTION
            for it in stage.iters
        )

    if reduces_across_threads(state.stages[stage_id]):
        return True
    attached = (s for s in state.stages if s.attach is not None and s.attach.stage_id == stage_id)
    return any(reduces_across_threads(s) for s in attached)


def last_reduce_iter_of_outermost_reduce_tile(stage: Stage) -> str:
    """The name of the last reduction iterator of the outermost reduction tile: the first
    one, walking outside in, after which every (splittable) reduction axis has appeared
    (TVM GetLastReduceIteratorInOutermostReduceTile; where a GPU sketch computes the
    shared-memory copies of a tiled stage's inputs)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    skip = no_split_at_inner(stage)
    reduce_count = sum(1 for axis in op.reduce_axis if axis.name not in skip)
    reduction = [it for it in stage.iters if it.kind is IteratorKind.REDUCTION]
    if not reduction:
        raise ScheduleError(f"stage '{stage.name}' has no reduction iterator")
    if reduce_count == 0:
        return reduction[0].name
    seen: set[str] = set()
    for it in reduction:
        seen |= original_iterators(it.name)
        if len(seen) == reduce_count:
            return it.name
    raise ScheduleError(f"stage '{stage.name}': no reduction iterator closes its outermost reduction tile")


def space_and_reduce_lengths(stage: Stage) -> tuple[int, int]:
    """Products of the spatial and of the reduction iterators' extents (-1 per unknown one,
    as TVM)."""
    space = math.prod(extent_or_unknown(it.extent) for it in stage.iters if it.kind is IteratorKind.SPATIAL)
    reduce = math.prod(
        extent_or_unknown(it.extent) for it in stage.iters if it.kind is IteratorKind.REDUCTION
    )
    return space, reduce


def extent_or_unknown(extent: int | None) -> int:
    """A loop's extent, or -1 (TVM's unknown extent) where bound inference has not set it."""
    return -1 if extent is None else extent


def attached_iters(state: LoopState) -> set[tuple[int, str]]:
    """(stage id, iterator name) of every iterator some stage is computed at."""
    return {(s.attach.stage_id, s.attach.iter_name) for s in state.stages if s.attach is not None}


def no_split_at_inner(stage: Stage) -> frozenset[str]:
    return (
        frozenset(stage.op.attrs.get(NO_SPLIT_AT_INNER, ()))
        if isinstance(stage.op, ComputeOp)
        else frozenset()
    )


def original_iterators(name: str) -> set[str]:
    """The axis names an iterator name is made of: ``i.0@j.1@`` -> {i, j} (TVM
    ExtractOriginalIterators: '.' separates split levels, '@' fused parts)."""
    result: set[str] = set()
    for fused in name.split("@"):
        part = fused.split(".")[0]
        if part and not part[0].isdigit():
            result.add(part)
    return result


def has_nested_parallel(state: LoopState) -> bool:
    """Two parallel loops on one path from a root stage (invalid on CPUs)."""
    attached: dict[tuple[int, str], list[int]] = {}
    for index, stage in enumerate(state.stages):
        if stage.attach is not None:
            attached.setdefault((stage.attach.stage_id, stage.attach.iter_name), []).append(index)

    def count(stage_id: int) -> int:
        stage = state.stages[stage_id]
        if stage.compute_at is ComputeAtKind.INLINED:
            return 0
        total = 0
        for it in stage.iters:
            if it.annotation is IteratorAnnotation.PARALLEL:
                total += 1
            for child in attached.get((stage_id, it.name), ()):
                total += count(child)
        return total

    return any(
        count(index) >= 2
        for index, stage in enumerate(state.stages)
        if stage.op_type is StageKind.COMPUTE and stage.compute_at is ComputeAtKind.ROOT
    )


# ---------------------------------------------------------------------------------------
# the step history


def made_by_step(steps: Sequence[Step], stage_id: int, step_type: type[Step]) -> bool:
    """Whether a step of ``step_type`` made, walking back through ``steps``, the stage now
    at ``stage_id`` (TVM HasCacheWriteStage / HasRfactorStage / HasCacheReadStage)."""
    for step in reversed(steps):
        if isinstance(step, step_type) and step.stage_id == stage_id:
            return True
        if isinstance(step, STAGE_CHANGING_STEPS) and stage_id > step.stage_id:
            stage_id -= 1
    return False


def has_cache_write_stage(state: LoopState, stage_id: int) -> bool:
    return made_by_step(state.transform_steps, stage_id, CacheWriteStep)


def has_rfactor_stage(state: LoopState, stage_id: int) -> bool:
    return made_by_step(state.transform_steps, stage_id, RfactorStep)


def stage_id_after(steps: Sequence[Step], step_index: int) -> int:
    """The id, once all ``steps`` ran, of the stage step ``step_index`` worked on."""
    stage_id = steps[step_index].stage_id
    for step in steps[step_index + 1 :]:
        if isinstance(step, CacheReadStep):
            if stage_id > step.stage_id:
                stage_id += 1
        elif isinstance(step, (CacheWriteStep, RfactorStep)) and stage_id >= step.stage_id:
            stage_id += 1
    return stage_id


def split_step_ids(state: LoopState, stage_id: int) -> list[int]:
    """Indices of every split step of the stage now at ``stage_id``, last first (TVM
    GetSplitStepIds)."""
    result: list[int] = []
    steps = state.transform_steps
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if isinstance(step, SplitStep) and step.stage_id == stage_id:
            result.append(index)
        if isinstance(step, STAGE_CHANGING_STEPS) and stage_id > step.stage_id:
            stage_id -= 1
    return result


def spatial_split_step_ids(state: LoopState, stage_id: int) -> list[int]:
    """Indices of the split steps on the spatial axes of a multi-level tiled stage, last
    first (TVM GetSpatialSplitStepIds: reduction splits come after spatial ones)."""
    stage = state.stages[stage_id]
    op = stage.op
    assert isinstance(op, ComputeOp)
    skip = no_split_at_inner(stage)
    reduce_count = sum(1 for axis in op.reduce_axis if axis.name not in skip)
    result: list[int] = []
    steps = state.transform_steps
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if isinstance(step, STAGE_CHANGING_STEPS):
            if stage_id > step.stage_id:
                stage_id -= 1
        elif isinstance(step, SplitStep) and step.stage_id == stage_id:
            if reduce_count:
                reduce_count -= 1
            else:
                result.append(index)
    return result


# ---------------------------------------------------------------------------------------
# compute locations


def compute_location_candidates(task: SearchTask, state: LoopState, stage_id: int) -> list[tuple[int, int]]:
    """(stage id, iterator index) pairs where ``stage_id`` may be computed (TVM
    GetComputeLocationCandidates; paper section 4.2 "change compute location").

    The spatial loops of its single consumer, outside any reduction loop (for an untiled
    consumer) or outside the inner tile, never inside an unrolled loop, skipping extent-1
    loops and, when the consumer is itself attached, its ``.0`` loops; then, when the
    consumer is attached to a stage X, X's outer loops down to its first attach point.
    """
    target_id = single_consumer_id(task, state, stage_id)
    if target_id is None:
        return []
    target = state.stages[target_id]
    taken = attached_iters(state)
    attached_elsewhere = target.compute_at is ComputeAtKind.ITER
    target_tiled = is_tiled(target)
    candidates: list[tuple[int, int]] = []
    visited_reduce = False
    for index, it in enumerate(target.iters):
        if it.kind is IteratorKind.REDUCTION:
            visited_reduce = True
            if not target_tiled:
                break
        elif it.kind is IteratorKind.SPATIAL and visited_reduce:
            break
        if it.annotation is IteratorAnnotation.UNROLL:
            break
        if it.extent == 1:
            continue
        if attached_elsewhere and it.kind is IteratorKind.SPATIAL and it.name.endswith(".0"):
            continue
        candidates.append((target_id, index))
        if (target_id, it.name) in taken:
            break
    if attached_elsewhere:
        assert target.attach is not None
        outer_id = target.attach.stage_id
        for index, it in enumerate(state.stages[outer_id].iters):
            if it.kind is IteratorKind.REDUCTION or (outer_id, it.name) in taken:
                break
            if it.annotation is IteratorAnnotation.UNROLL:
                break
            if it.extent == 1:
                continue
            candidates.append((outer_id, index))
    return candidates
