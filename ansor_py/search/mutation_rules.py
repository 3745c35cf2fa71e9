"""Mutation rules of the evolutionary search (Ansor paper section 5.1; TVM
``sketch_policy_rules.cc``, "Mutate*").

A program's genes are its steps. Each rule edits one of them and rebuilds the state by
replaying the history (the only way to keep every later step consistent), returning None
when it finds nothing to mutate or the edited history is illegal. The search picks a rule
with probability proportional to its weight; TVM's CPU weights are kept (tile size 0.90,
auto-unroll 0.04, compute location 0.05, parallel 0.01). TVM implements no crossover (the
paper's node-based crossover is a TODO there), and neither does this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ansor_py.search.init_rules import (
    CPU_AUTO_UNROLL_CONFIGS,
    GPU_AUTO_UNROLL_CONFIGS,
    PopulationContext,
    replay,
)
from ansor_py.search.stage_queries import (
    STAGE_CHANGING_STEPS,
    attached_iters,
    compute_location_candidates,
    is_gpu_task,
    is_tiled,
    needs_multi_level_tiling,
    stage_id_after,
)
from ir.loop_state.enums import IteratorAnnotation, IteratorKind
from ir.loop_state.state import LoopState
from ir.loop_state.steps import AnnotationStep, ComputeAtStep, FuseStep, PragmaStep, SplitStep, Step
from ir.loop_state.steps.annotation import AUTO_UNROLL_PRAGMA, parse_auto_unroll


@dataclass(frozen=True)
class MutationRule:
    """A named mutation with its selection weight; ``apply`` returns None on failure."""

    name: str
    weight: float
    apply: Callable[[PopulationContext, LoopState, np.random.Generator], LoopState | None]


def mutate_tile_size(ctx: PopulationContext, state: LoopState, rng: np.random.Generator) -> LoopState | None:
    """Move a random divisor of one tile length of a random split to another level.

    The split's levels are (outer remainder, l_1, ..., l_n); in a random permutation of
    them, the first level with length > 1 gives a divisor > 1 of its length to the next
    level in the permutation (keeping the innermost <= max_innermost_split_factor).
    """
    limit = ctx.params.max_innermost_split_factor
    steps = state.transform_steps
    candidates = [
        index
        for index, step in enumerate(steps)
        if isinstance(step, SplitStep)
        and step.extent is not None
        and step.lengths[-1] is not None
        and step.lengths[-1] <= limit
        and all(length is not None for length in step.lengths)
    ]
    if not candidates:
        return None
    # pick a split with extent > 1, retrying a few times as TVM does
    for _ in range(len(candidates) * 4):
        step_id = candidates[int(rng.integers(len(candidates)))]
        split = steps[step_id]
        assert isinstance(split, SplitStep) and split.extent is not None
        if split.extent > 1:
            break
    else:
        return None
    inner = [length for length in split.lengths if length is not None]
    lengths = [-(-split.extent // math.prod(inner)), *inner]  # ceil: a padded split's tiles
    order = rng.permutation(len(lengths))
    for position, src in enumerate(order):
        length = lengths[src]
        if length <= 1:
            continue
        dst = int(order[(position + 1) % len(order)])
        factors = ctx.split_memo.factors(length)
        if dst == len(lengths) - 1:
            # keep the innermost length within the limit
            allowed = [f for f in factors[1:] if f * lengths[dst] <= limit]
            if not allowed:
                continue
            divide = allowed[int(rng.integers(len(allowed)))]
        else:
            divide = factors[1 + int(rng.integers(len(factors) - 1))]
        new = list(lengths)
        new[src] //= divide
        new[dst] *= divide
        new_step = replace(split, lengths=tuple(new[1:]))
        return replay(ctx, [*steps[:step_id], new_step, *steps[step_id + 1 :]])
    return None


def mutate_auto_unroll(
    ctx: PopulationContext, state: LoopState, rng: np.random.Generator
) -> LoopState | None:
    """Give one random ``auto_unroll_max_step`` pragma a new random value."""
    steps = state.transform_steps
    pragmas = [
        index
        for index, step in enumerate(steps)
        if isinstance(step, PragmaStep) and step.pragma_type.startswith(AUTO_UNROLL_PRAGMA)
    ]
    if not pragmas:
        return None
    step_id = pragmas[int(rng.integers(len(pragmas)))]
    old = steps[step_id]
    assert isinstance(old, PragmaStep)
    configs = GPU_AUTO_UNROLL_CONFIGS if is_gpu_task(ctx.search_task) else CPU_AUTO_UNROLL_CONFIGS
    value = configs[int(rng.integers(len(configs)))]
    new_step = replace(old, pragma_type=f"{AUTO_UNROLL_PRAGMA}${value}")
    new_steps = (*steps[:step_id], new_step, *steps[step_id + 1 :])
    if any(isinstance(step, STAGE_CHANGING_STEPS) for step in steps[step_id + 1 :]):
        return replay(ctx, new_steps)
    # nothing after the pragma renumbers stages: only the stage's attribute changes
    stage_id = old.stage_id
    stage = state.stages[stage_id]
    new_stage = replace(stage, auto_unroll_max_step=parse_auto_unroll(stage.name, new_step.pragma_type))
    return replace(state.with_stage(stage_id, new_stage), transform_steps=new_steps)


def mutate_compute_location(
    ctx: PopulationContext, state: LoopState, rng: np.random.Generator
) -> LoopState | None:
    """Move one stage placed by a compute_at step (untiled, needing no tiling) to another
    of its candidate locations, and replay."""
    if ctx.params.disable_change_compute_location:
        return None
    task = ctx.search_task
    steps = state.transform_steps
    movable: list[tuple[int, int]] = []  # (step index, stage id in the final state)
    for index, step in enumerate(steps):
        if not isinstance(step, ComputeAtStep):
            continue
        stage_id = stage_id_after(steps, index)
        if is_tiled(state.stages[stage_id]) or needs_multi_level_tiling(task, state, stage_id):
            continue
        movable.append((index, stage_id))
    if not movable:
        return None
    step_id, stage_id = movable[int(rng.integers(len(movable)))]
    old = steps[step_id]
    assert isinstance(old, ComputeAtStep)
    candidates = compute_location_candidates(task, state, stage_id)
    if not candidates:
        return None
    target_id, iter_id = candidates[int(rng.integers(len(candidates)))]
    shift = stage_id - old.stage_id
    new_step = ComputeAtStep(old.stage_id, target_id - shift, iter_id)
    return replay(ctx, [*steps[:step_id], new_step, *steps[step_id + 1 :]])


def mutate_parallel(ctx: PopulationContext, state: LoopState, rng: np.random.Generator) -> LoopState | None:
    """Re-fuse a different number of outer loops under a parallel annotation: only a
    ``parallel`` on iterator 0 right after a fuse starting at iterator 0 is mutated, and
    the later annotation and pragma steps of that stage are renumbered."""
    steps = state.transform_steps
    parallel_steps = [
        index
        for index, step in enumerate(steps)
        if isinstance(step, AnnotationStep)
        and step.annotation is IteratorAnnotation.PARALLEL
        and step.iter_id == 0
        and index > 0
        and isinstance(steps[index - 1], FuseStep)
        and steps[index - 1].fused_ids[0] == 0  # type: ignore[attr-defined]
    ]
    if not parallel_steps:
        return None
    step_id = parallel_steps[int(rng.integers(len(parallel_steps)))]
    fuse_step = steps[step_id - 1]
    assert isinstance(fuse_step, FuseStep)
    before = replay(ctx, steps[: step_id - 1])
    if before is None:
        return None
    stage_id = fuse_step.stage_id
    stage = before.stages[stage_id]
    attached = attached_iters(before)
    max_fusable = 0
    while max_fusable < len(stage.iters):
        it = stage.iters[max_fusable]
        if it.kind is IteratorKind.REDUCTION or it.annotation is not IteratorAnnotation.NONE:
            break
        if (stage_id, it.name) in attached:
            break
        max_fusable += 1
    if max_fusable == 0:
        return None
    fuse_to = int(rng.integers(max_fusable)) + 1
    offset = fuse_step.fused_ids[-1] - (fuse_to - 1)
    if offset == 0:
        return None
    new_steps: list[Step] = [*steps[: step_id - 1], FuseStep(stage_id, tuple(range(fuse_to))), steps[step_id]]
    for step in steps[step_id + 1 :]:
        if isinstance(step, STAGE_CHANGING_STEPS):
            return None  # later steps would need renumbering; TVM gives up too
        if step.stage_id == stage_id:
            if isinstance(step, (AnnotationStep, PragmaStep)):
                if step.iter_id != 0:
                    step = replace(step, iter_id=step.iter_id + offset)
            else:
                return None
        new_steps.append(step)
    return replay(ctx, new_steps)


MUTATE_TILE_SIZE = MutationRule("MutateTileSize", 0.90, mutate_tile_size)
MUTATE_AUTO_UNROLL = MutationRule("MutateAutoUnroll", 0.04, mutate_auto_unroll)
MUTATE_COMPUTE_LOCATION = MutationRule("MutateComputeLocation", 0.05, mutate_compute_location)
MUTATE_PARALLEL = MutationRule("MutateParallel", 0.01, mutate_parallel)

#: TVM's GPU mutation rules and weights: tile sizes and unrolling only (thread binding
#: follows the tiles; there is no parallel loop and no free compute location to move)
GPU_MUTATION_RULES: tuple[MutationRule, ...] = (
    MUTATE_TILE_SIZE,
    MutationRule("MutateAutoUnroll", 0.10, mutate_auto_unroll),
)

#: TVM's CPU mutation rules and weights
CPU_MUTATION_RULES: tuple[MutationRule, ...] = (
    MUTATE_TILE_SIZE,
    MUTATE_AUTO_UNROLL,
    MUTATE_COMPUTE_LOCATION,
    MUTATE_PARALLEL,
)
