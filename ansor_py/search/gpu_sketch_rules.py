"""The sketch rules only a GPU search uses, and the GPU rule list (TVM ``sketch_policy_rules.cc``;
Ansor paper section 4.1: "for GPU, shared-memory caching and cross-thread reduction").

- ``RuleAddCacheRead``: a tiled stage reads each of its direct inputs through a
  shared-memory copy (``.shared``), computed at the last reduction iterator of its
  outermost reduction tile, so a thread block loads a tile once and its threads reuse it;
- ``RuleCrossThreadReduction``: a reduction with little spatial parallelism (a tiled stage
  whose space is smaller than its reduction and fits one block, or any reduction longer
  than a warp) splits its fused reduction by the warp size and binds the inner part to
  threadIdx.x, so the threads of a block reduce together; where its single consumer
  shares outer iterators and is not tiled itself, the reduction follows the consumer's
  split and is computed inside it (softmax's max and sum inside the normalisation);
- ``RuleSpecialComputeLocationGPU``: a stage that would be inlined into a consumer whose
  constant-tensor indices are unrolled (Winograd's transforms) is computed just outside
  the consumer's first unrolled iterator instead.

The rules shared with the CPU (``sketch_rules``) read the target: a GPU inlines every
inlineable stage, tiles with ``gpu_multi_level_tiling_structure``, always fuses a tiled
stage into its element-wise consumer at the third (thread) level and always caches its
writes in registers (``.local``).
"""

from __future__ import annotations

from ansor_py.search.sketch_rules import (
    ADD_CACHE_WRITE,
    ALWAYS_INLINE,
    MULTI_LEVEL_TILING,
    MULTI_LEVEL_TILING_WITH_FUSION,
    SIMPLIFY_COMPUTE_WITH_CONST_TENSOR,
    SKIP_STAGE,
    ConditionKind,
    RuleContext,
    SketchRule,
    Successors,
    should_always_be_inlined,
)
from ansor_py.search.stage_queries import (
    consumers,
    direct_producers,
    has_cache_write_stage,
    has_cross_thread_reduction,
    has_reduce_iter,
    last_reduce_iter_of_outermost_reduce_tile,
    needs_multi_level_tiling,
    num_common_outer_iterators,
    producers,
    single_consumer_id,
    space_and_reduce_lengths,
    split_step_ids,
)
from ir.access_analysis import SIMPLIFY_CONST_TENSOR_INDICES
from ir.loop_state.api import State
from ir.loop_state.enums import IteratorAnnotation, IteratorKind
from ir.loop_state.state import LoopState, ScheduleError
from ir.te import ComputeOp

THREAD_X = IteratorAnnotation.THREAD_X.value

# ---------------------------------------------------------------------------------------
# shared-memory copies of a tiled stage's inputs


def _cache_read_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    task = ctx.search_task
    readers = consumers(task, state, stage_id)
    if not readers:
        return ConditionKind.SKIP
    target = readers[0]
    if not needs_multi_level_tiling(task, state, target) or has_cross_thread_reduction(state, target):
        return ConditionKind.SKIP
    if stage_id not in direct_producers(task, state, target):
        return ConditionKind.SKIP
    return ConditionKind.APPLY_AND_SKIP_REST


def _cache_read_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    """One ``.shared`` copy per consumer, each computed in its reader at the last
    reduction iterator of the outermost reduction tile; every copy is inserted right
    after the stage, so each later reader's id moves up by one."""
    s = State(ctx.search_task.compute_dag, state)
    for inserted, reader in enumerate(consumers(ctx.search_task, state, stage_id)):
        target = reader + inserted
        s.cache_read(stage_id, "shared", [target])
        target += 1
        where = last_reduce_iter_of_outermost_reduce_tile(s.stages[target])
        s.compute_at(stage_id + 1, target, where)
    return [(s.loop_state, stage_id)]


# ---------------------------------------------------------------------------------------
# cross-thread reduction


def _cross_thread_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    task = ctx.search_task
    if has_cache_write_stage(state, stage_id):
        return ConditionKind.SKIP  # the intermediate state of RuleAddCacheWrite
    stage = state.stages[stage_id]
    if not isinstance(stage.op, ComputeOp):
        return ConditionKind.SKIP
    space, reduce = space_and_reduce_lengths(stage)
    hardware = task.hardware_params
    if needs_multi_level_tiling(task, state, stage_id):
        if space > hardware.max_threads_per_block:
            return ConditionKind.SKIP  # enough parallelism on the space iterators
        return ConditionKind.APPLY if space < reduce else ConditionKind.SKIP
    if reduce > 1:
        return ConditionKind.APPLY if reduce > hardware.warp_size else ConditionKind.SKIP
    return ConditionKind.SKIP


def _cross_thread_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    task = ctx.search_task
    warp = task.hardware_params.warp_size
    s = State(task.compute_dag, state)
    reduction = [it.name for it in s.stages[stage_id].iters if it.kind is IteratorKind.REDUCTION]
    fused = s.fuse(stage_id, reduction).name if len(reduction) > 1 else reduction[0]

    target = single_consumer_id(task, s.loop_state, stage_id)
    common = -1
    if target is not None:
        common = num_common_outer_iterators(task, s.loop_state, stage_id, target)
    if target is not None and common > 0 and not needs_multi_level_tiling(task, state, target):
        splits = split_step_ids(s.loop_state, target)
        if not splits:
            # an untiled consumer without reduction: split its last iterator by a warp
            target_stage = state.stages[target]
            if has_reduce_iter(target_stage):
                raise ScheduleError(
                    f"cross-thread reduction of stage '{state.stages[stage_id].name}': its consumer "
                    f"'{target_stage.name}' reduces but has no split to follow"
                )
            _, inner = s.split(target, target_stage.iters[-1].name, [warp])
            s.bind(target, inner.name, THREAD_X)
            splits = [len(s.transform_steps) - 2]  # the split, before the bind
        if len(splits) != 1:
            raise ScheduleError(
                f"cross-thread reduction of stage '{state.stages[stage_id].name}': its consumer has "
                f"{len(splits)} splits, expected one to follow"
            )
        target_iter = s.stages[target].iters[common - 1].name
        parts = s.follow_split(stage_id, fused, splits[0], 1)
        s.bind(stage_id, parts[1].name, THREAD_X)
        s.compute_at(stage_id, target, target_iter)
    else:
        parts = s.split(stage_id, fused, [warp])
        s.bind(stage_id, parts[1].name, THREAD_X)
    return [(s.loop_state, stage_id - 1)]


# ---------------------------------------------------------------------------------------
# the compute location of producers of constant-tensor stages


def _special_location_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    task = ctx.search_task
    if not producers(task, state, stage_id) or not should_always_be_inlined(ctx, state, stage_id):
        return ConditionKind.SKIP
    readers = consumers(task, state, stage_id)
    reader_attrs = getattr(state.stages[readers[0]].op, "attrs", {}) if len(readers) == 1 else {}
    if SIMPLIFY_CONST_TENSOR_INDICES in reader_attrs:
        return ConditionKind.APPLY_AND_SKIP_REST
    return ConditionKind.SKIP


def _special_location_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    """Compute the stage at its consumer's last iterator before the first unrolled one."""
    (reader,) = consumers(ctx.search_task, state, stage_id)
    s = State(ctx.search_task.compute_dag, state)
    iters = state.stages[reader].iters
    for index, it in enumerate(iters):
        if it.annotation is IteratorAnnotation.UNROLL:
            if index == 0:
                raise ScheduleError(
                    f"stage '{state.stages[reader].name}' unrolls its outermost iterator: no place "
                    f"outside it to compute '{state.stages[stage_id].name}' at"
                )
            s.compute_at(stage_id, reader, iters[index - 1].name)
            break
    return [(s.loop_state, stage_id - 1)]


# ---------------------------------------------------------------------------------------
# the rule list

ADD_CACHE_READ = SketchRule("RuleAddCacheRead", _cache_read_condition, _cache_read_apply)
CROSS_THREAD_REDUCTION = SketchRule("RuleCrossThreadReduction", _cross_thread_condition, _cross_thread_apply)
SPECIAL_COMPUTE_LOCATION_GPU = SketchRule(
    "RuleSpecialComputeLocationGPU", _special_location_condition, _special_location_apply
)

#: The GPU rules in TVM's order: the shared-memory copy of an input first (the input is a
#: placeholder or a computed stage that no other rule should claim), the special compute
#: location before inlining (it replaces inlining), cross-thread reduction (APPLY) before
#: the cache write, so a small-space reduction gets both sketches.
GPU_SKETCH_RULES: tuple[SketchRule, ...] = (
    ADD_CACHE_READ,
    SPECIAL_COMPUTE_LOCATION_GPU,
    ALWAYS_INLINE,
    SIMPLIFY_COMPUTE_WITH_CONST_TENSOR,
    CROSS_THREAD_REDUCTION,
    ADD_CACHE_WRITE,
    MULTI_LEVEL_TILING_WITH_FUSION,
    MULTI_LEVEL_TILING,
    SKIP_STAGE,
)
