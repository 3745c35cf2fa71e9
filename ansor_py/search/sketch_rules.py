"""Sketch derivation rules as data (Ansor paper section 4.1, Table 1; TVM ``sketch_policy_rules.cc``).

A sketch fixes the *structure* of a program (which stages are inlined, tiled, fused,
cached, factored) and leaves the numbers (tile sizes, annotations) to random annotation.
Sketches are derived stage by stage, from the last stage to the first: each rule looks at
one (state, stage id) and answers

- ``SKIP``: does not apply; try the next rule;
- ``APPLY``: apply it (its successors join the work list) and also try the next rules;
- ``APPLY_AND_SKIP_REST``: apply it and try nothing else on this stage.

``apply`` returns the successor (state, next stage id) pairs; a next id below 0 marks a
finished sketch. Rules read the task and the params from the policy they are given
(``RuleContext``); user rules (``PreloadCustomSketchRule``) go through ``custom_sketch_rule``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ansor_py.search.stage_queries import (
    has_cache_write_stage,
    has_reduce_iter,
    is_gpu_task,
    is_output,
    is_strictly_inlineable,
    needs_multi_level_tiling,
    needs_rfactor,
    single_elementwise_consumer,
)
from ansor_py.search.tiling import follow_tiling, multi_level_tiling
from ir.access_analysis import SIMPLIFY_CONST_TENSOR_INDICES
from ir.loop_state.api import State, as_loop_state
from ir.loop_state.enums import IteratorKind, StageKind
from ir.loop_state.state import LoopState, ScheduleError
from ir.loop_state.steps import CacheWriteStep, ComputeInlineStep
from ir.te import ComputeOp

if TYPE_CHECKING:
    from ansor_py.search.params import SketchParams
    from ansor_py.search_task import SearchTask


class ConditionKind(enum.IntEnum):
    """A rule's verdict on a (state, stage); the ints are TVM's (PASS=0, APPLY=1,
    APPLY_AND_SKIP_REST=2), so user rules may return plain ints."""

    SKIP = 0
    APPLY = 1
    APPLY_AND_SKIP_REST = 2


class RuleContext(Protocol):
    """What rules read from the policy that runs them."""

    search_task: SearchTask
    params: SketchParams


Successors = list[tuple[LoopState, int]]


@dataclass(frozen=True)
class SketchRule:
    """A named derivation rule: ``condition`` decides, ``apply`` derives."""

    name: str
    condition: Callable[[RuleContext, LoopState, int], ConditionKind]
    apply: Callable[[RuleContext, LoopState, int], Successors]


def _handle(ctx: RuleContext, state: LoopState) -> State:
    return State(ctx.search_task.compute_dag, state)


# ---------------------------------------------------------------------------------------
# rule 1: skip the stage


def _skip_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    return ConditionKind.APPLY


def _skip_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    return [(state, stage_id - 1)]


# ---------------------------------------------------------------------------------------
# rule 2: always inline


def should_always_be_inlined(ctx: RuleContext, state: LoopState, stage_id: int) -> bool:
    """A stage that is no placeholder, no output and has no reduction: on a GPU always
    (every kernel launch costs, and its threads recompute cheaply), on a CPU when it is
    strictly inlineable (TVM ShouldAlwaysBeInlined)."""
    stage = state.stages[stage_id]
    task = ctx.search_task
    if stage.op_type is StageKind.PLACEHOLDER or is_output(task, state, stage_id) or has_reduce_iter(stage):
        return False
    return is_gpu_task(task) or is_strictly_inlineable(task, state, stage_id)


def _inline_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    if should_always_be_inlined(ctx, state, stage_id):
        return ConditionKind.APPLY_AND_SKIP_REST
    return ConditionKind.SKIP


def _inline_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    return [(ComputeInlineStep(stage_id).apply(state, ctx.search_task.compute_dag), stage_id - 1)]


# ---------------------------------------------------------------------------------------
# rule 3: multi-level tiling


def _tiling_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    if needs_multi_level_tiling(ctx.search_task, state, stage_id):
        return ConditionKind.APPLY_AND_SKIP_REST
    return ConditionKind.SKIP


def tiling_structure(ctx: RuleContext) -> str:
    """The multi-level tiling structure of the task's target: the CPU's ("SSRSRS") or the
    GPU's ("SSSRRSRS": block, vthread, thread, then the inner levels)."""
    params = ctx.params
    if is_gpu_task(ctx.search_task):
        return params.gpu_multi_level_tiling_structure
    return params.cpu_multi_level_tiling_structure


def _tiling_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    structure = tiling_structure(ctx)
    tiled, _ = multi_level_tiling(ctx.search_task.compute_dag, state, stage_id, structure)
    return [(tiled, stage_id - 1)]


# ---------------------------------------------------------------------------------------
# rule 4: multi-level tiling with fusion of the element-wise consumer


def _fusion_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    task = ctx.search_task
    if (
        needs_multi_level_tiling(task, state, stage_id)
        and single_elementwise_consumer(task, state, stage_id) is not None
    ):
        # a cache-write stage exists only to be fused, so nothing else is tried on it; a
        # GPU stage is always fused (its consumer needs the same thread binding)
        if has_cache_write_stage(state, stage_id) or is_gpu_task(task):
            return ConditionKind.APPLY_AND_SKIP_REST
        return ConditionKind.APPLY
    return ConditionKind.SKIP


def _fusion_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    """Tile the stage, tile its consumer like the stage's outer 1 or 2 spatial levels,
    and compute the stage inside the consumer's last loop of that level (two sketches); on
    a GPU like its outer 3 levels (block, vthread, thread: one sketch)."""
    dag = ctx.search_task.compute_dag
    target_id = single_elementwise_consumer(ctx.search_task, state, stage_id)
    assert target_id is not None
    structure = tiling_structure(ctx).upper()
    tiled, split_step_ids = multi_level_tiling(dag, state, stage_id, structure)
    result: Successors = []
    for level in (3,) if is_gpu_task(ctx.search_task) else (1, 2):
        if structure[level - 1] != "S":
            continue
        s = State(dag, follow_tiling(dag, tiled, target_id, split_step_ids, level))
        target_iter = s.stages[target_id].iters[level * len(split_step_ids) - 1]
        s.compute_at(stage_id, target_id, target_iter.name)
        result.append((s.loop_state, stage_id - 1))
    return result


# ---------------------------------------------------------------------------------------
# rule 5: add a cache-write stage


def _cache_write_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    task = ctx.search_task
    if (
        needs_multi_level_tiling(task, state, stage_id)
        and single_elementwise_consumer(task, state, stage_id) is None
    ):
        # on a CPU APPLY, not APPLY_AND_SKIP_REST: the stage is also tiled without a
        # cache; a GPU stage always accumulates in registers ("local")
        return ConditionKind.APPLY_AND_SKIP_REST if is_gpu_task(task) else ConditionKind.APPLY
    return ConditionKind.SKIP


def _cache_write_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    # the same stage id now names the cache stage, which rule 4 then tiles and fuses
    return [(CacheWriteStep(stage_id, "local").apply(state, ctx.search_task.compute_dag), stage_id)]


# ---------------------------------------------------------------------------------------
# rule 6: reduction factorization


def _rfactor_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    if needs_rfactor(ctx.search_task, state, stage_id) and not has_cache_write_stage(state, stage_id):
        return ConditionKind.APPLY
    return ConditionKind.SKIP


def _rfactor_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    """Fuse the reduction iterators, split by 1 and rfactor either part (two sketches: the
    outer part parallelizes, the inner one, moved innermost, vectorizes). The split's
    length is reset to unknown after generation and sampled later."""
    base = _handle(ctx, state)
    stage = base.stages[stage_id]
    space = [it.name for it in stage.iters if it.kind is IteratorKind.SPATIAL]
    reduce = [it.name for it in stage.iters if it.kind is IteratorKind.REDUCTION]
    fused = base.fuse(stage_id, reduce).name if len(reduce) > 1 else reduce[0]
    parts = base.split(stage_id, fused, [1])
    result: Successors = []
    for index, part in enumerate(parts):
        s = base.copy()
        s.rfactor(stage_id, part.name, len(space))
        rf_iters = [it.name for it in s.stages[stage_id].iters]
        if index == 1:
            factor = rf_iters.pop(len(space))
            s.reorder(stage_id, [*rf_iters, factor])
        result.append((s.loop_state, stage_id - 1))
    return result


# ---------------------------------------------------------------------------------------
# rule 7: simplify computation with constant tensors (Winograd transforms)


def _const_tensor_condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
    attrs = getattr(state.stages[stage_id].op, "attrs", {})
    return ConditionKind.APPLY_AND_SKIP_REST if SIMPLIFY_CONST_TENSOR_INDICES in attrs else ConditionKind.SKIP


def _const_tensor_apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
    """Unroll the iterators indexing the constant tensors, tile the other spatial ones in
    two levels, and order: outer tiles, inner tiles, unrolled iterators."""
    s = _handle(ctx, state)
    stage = s.stages[stage_id]
    assert isinstance(stage.op, ComputeOp)
    const_indices = set(stage.op.attrs[SIMPLIFY_CONST_TENSOR_INDICES])
    outer: list[str] = []
    inner: list[str] = []
    unrolled: list[str] = []
    for it in stage.iters:
        if it.name in const_indices:
            unrolled.append(s.unroll(stage_id, it.name).name)
        elif it.kind is IteratorKind.SPATIAL:
            o, i = s.split(stage_id, it.name, [None])
            outer.append(o.name)
            inner.append(i.name)
        else:
            raise ScheduleError(
                f"cannot simplify stage '{stage.name}': reduction iterator '{it.name}' is not among "
                f"its constant-tensor indices {sorted(const_indices)}"
            )
    s.reorder(stage_id, outer + inner + unrolled)
    return [(s.loop_state, stage_id - 1)]


# ---------------------------------------------------------------------------------------
# the rule lists

SKIP_STAGE = SketchRule("RuleSkipStage", _skip_condition, _skip_apply)
ALWAYS_INLINE = SketchRule("RuleAlwaysInline", _inline_condition, _inline_apply)
MULTI_LEVEL_TILING = SketchRule("RuleMultiLevelTiling", _tiling_condition, _tiling_apply)
MULTI_LEVEL_TILING_WITH_FUSION = SketchRule(
    "RuleMultiLevelTilingWithFusion", _fusion_condition, _fusion_apply
)
ADD_CACHE_WRITE = SketchRule("RuleAddCacheWrite", _cache_write_condition, _cache_write_apply)
ADD_RFACTOR = SketchRule("RuleAddRfactor", _rfactor_condition, _rfactor_apply)
SIMPLIFY_COMPUTE_WITH_CONST_TENSOR = SketchRule(
    "RuleSimplifyComputeWithConstTensor", _const_tensor_condition, _const_tensor_apply
)

#: The CPU rules in TVM's order, which matters:
#: - AlwaysInline first: an inlined stage needs nothing else;
#: - SimplifyComputeWithConstTensor next: it replaces tiling for ops over constant tensors;
#: - AddRfactor (APPLY) before the tiling rules: the plain tiled sketch is derived too;
#: - AddCacheWrite (APPLY) before tiling: the cache stage keeps the same id, so the
#:   fusion rule then fuses it into the written-back copy, while MultiLevelTiling also
#:   tiles the stage without a cache;
#: - MultiLevelTilingWithFusion before MultiLevelTiling: with a fusible consumer both the
#:   fused (APPLY) and, unless a cache stage exists, the unfused sketch are made;
#: - SkipStage last: whatever no rule claimed moves on unchanged.
CPU_SKETCH_RULES: tuple[SketchRule, ...] = (
    ALWAYS_INLINE,
    SIMPLIFY_COMPUTE_WITH_CONST_TENSOR,
    ADD_RFACTOR,
    ADD_CACHE_WRITE,
    MULTI_LEVEL_TILING_WITH_FUSION,
    MULTI_LEVEL_TILING,
    SKIP_STAGE,
)


# ---------------------------------------------------------------------------------------
# user rules


def custom_sketch_rule(
    meet_condition_func: Callable[[Any, State, int], int],
    apply_func: Callable[[Any, State, int], Any],
    rule_name: str = "CustomSketchRule",
) -> SketchRule:
    """A user rule (TVM PreloadCustomSketchRule): both functions get (policy, a State
    handle of the state, stage id); ``meet_condition_func`` returns 0 (skip), 1 (apply) or
    2 (apply and skip the rest); ``apply_func`` returns [(state, next stage id), ...] with
    State handles or LoopStates."""

    def condition(ctx: RuleContext, state: LoopState, stage_id: int) -> ConditionKind:
        verdict = meet_condition_func(ctx, _handle(ctx, state), stage_id)
        try:
            return ConditionKind(int(verdict))
        except ValueError:
            raise ValueError(
                f"custom sketch rule '{rule_name}' returned condition {verdict!r}; expected 0 (skip), "
                "1 (apply) or 2 (apply and skip the rest)"
            ) from None

    def apply(ctx: RuleContext, state: LoopState, stage_id: int) -> Successors:
        result: Successors = []
        for pair in apply_func(ctx, _handle(ctx, state), stage_id):
            if len(pair) != 2:
                raise ValueError(
                    f"custom sketch rule '{rule_name}' returned {pair!r}; "
                    "expected [state, next_stage_id] pairs"
                )
            new_state, next_id = pair
            if not isinstance(new_state, (State, LoopState)):
                raise ValueError(
                    f"custom sketch rule '{rule_name}' returned a {type(new_state).__name__}; "
                    "expected a State or a LoopState"
                )
            result.append((as_loop_state(ctx.search_task.compute_dag, new_state), int(next_id)))
        return result

    return SketchRule(rule_name, condition, apply)
