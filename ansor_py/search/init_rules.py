"""Random annotation: turn a sketch into a complete program (Ansor paper section 4.2;
TVM ``sketch_policy_rules.cc``, "Init Population").

A sketch leaves tile sizes unknown and loops unannotated. The init rules, applied in
order to a randomly chosen sketch, fill every unknown split length with a random exact
factorization, move untiled stages to a random compute location, parallelize outer
loops, pick a random ``auto_unroll_max_step`` and vectorize inner loops. Each rule takes
(policy, state, rng) and returns the new state, or None when the candidate is invalid;
an illegal step (``ScheduleError``) also makes the candidate invalid.

One extension of Ansor: a candidate whose register tile (the spatial loops inside the
innermost reduction loop of a tiled stage) needs more vector accumulators than the target
has registers is invalid (``fits_register_file``); ``replay`` applies it, so the tile-size
mutation obeys it too.

These rules run for every candidate of every sampled population (2048 at a time), so they
apply step objects to immutable ``LoopState`` values directly, with no State handle, and
run bound inference only when a step left an extent unknown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ansor_py.search.gpu_limits import fits_gpu_limits
from ansor_py.search.sketch_rules import RuleContext
from ansor_py.search.stage_queries import (
    ALWAYS_UNROLL_INNER,
    attached_iters,
    compute_location_candidates,
    extent_or_unknown,
    has_reduce_iter,
    is_gpu_task,
    is_tiled,
    needs_multi_level_tiling,
    original_iterators,
)
from ansor_py.search.state_cache import StateCache
from ansor_py.search.tiling import SplitFactorizationMemo
from codegen.target import Target
from ir.dtype import itemsize
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind, StageKind
from ir.loop_state.state import LoopState, ScheduleError, Stage
from ir.loop_state.steps import (
    AnnotationStep,
    ComputeAtStep,
    ComputeInlineStep,
    ComputeRootStep,
    FuseStep,
    PragmaStep,
    SplitStep,
    Step,
)
from ir.te import ComputeOp

#: the auto_unroll_max_step values sampled on CPUs (TVM auto_unroll_configs_cpu)
CPU_AUTO_UNROLL_CONFIGS = (0, 16, 64, 512)
#: ... and on GPUs (TVM auto_unroll_configs_gpu)
GPU_AUTO_UNROLL_CONFIGS = (0, 16, 64, 512, 1024)
#: tile-size draws per candidate before InitFillTileSize gives up on a sketch
FILL_ATTEMPTS = 8


class PopulationContext(RuleContext, Protocol):
    """What init and mutation rules read from the policy: the task, the params, the memo
    of split factorizations and the replay cache."""

    split_memo: SplitFactorizationMemo
    state_cache: StateCache


@dataclass(frozen=True)
class InitRule:
    """A named random-annotation rule; ``apply`` returns None for an invalid candidate."""

    name: str
    apply: Callable[[PopulationContext, LoopState, np.random.Generator], LoopState | None]


# ---------------------------------------------------------------------------------------
# helpers


def replay(ctx: PopulationContext, steps: Sequence[Step]) -> LoopState | None:
    """The state ``steps`` make from the task's initial state, or None if one is illegal,
    its register tile overflows the vector register file (``fits_register_file``) or, on
    a GPU, a block exceeds the launch limits (``gpu_limits.fits_gpu_limits``, checked on
    the bound state, which is then returned)."""
    state = ctx.state_cache.replay(steps)
    if state is None or not fits_register_file(ctx, state):
        return None
    task = ctx.search_task
    if is_gpu_task(task):
        bound = ctx.state_cache.bind(state)
        return bound if bound is not None and fits_gpu_limits(task.hardware_params, bound) else None
    return state


@functools.lru_cache(maxsize=64)
def vector_registers(target: Target) -> int:
    """Vector registers an LLVM CPU target has: 32 with AVX-512 (zmm0-31) and on AArch64
    (v0-v31), 16 otherwise (ymm0-15 with AVX2, xmm0-15 with SSE)."""
    if target.arch_name != "x86_64":
        return 32
    return 32 if "avx512f" in target.enabled_features() else 16


def register_tile_accumulators(stage: Stage, lanes: int) -> int:
    """Vector accumulators of a tiled reduction's register tile: the spatial loops inside
    its innermost non-trivial reduction loop accumulate across that loop, the innermost one
    in vectors of ``lanes`` elements (``ceil(extent / lanes)`` of them), each other one
    multiplying the count. 0 for a stage with no reduction loop of extent > 1."""
    inner: list[int] = []
    for it in reversed(stage.iters):
        extent = extent_or_unknown(it.extent)
        if it.kind is IteratorKind.REDUCTION and extent != 1:
            break
        if it.kind is IteratorKind.SPATIAL and extent > 1:
            inner.append(extent)
    else:
        return 0
    if not inner:
        return 0
    return -(-inner[0] // lanes) * math.prod(inner[1:])


def fits_register_file(ctx: PopulationContext, state: LoopState) -> bool:
    """Whether every tiled reduction stage's register tile keeps its accumulators, one
    vector of the other operand and one broadcast in the target's vector registers.

    Ansor samples tile sizes from all factorizations (section 4.2) and leaves the cost
    model to learn that an inner tile of 8 x 32 floats (32 ymm accumulators) spills on a
    16-register AVX2 CPU; the model, trained on a few hundred noisy samples, often does
    not, and the best program of a short search spills (an extension of Ansor: such tiles
    are rejected as candidates, as a BLAS kernel designer sizes MR x NR to the register
    file). Only LLVM CPU targets are checked."""
    target = ctx.search_task.target
    if target.kind != "llvm":
        return True
    budget = vector_registers(target) - 2
    vector_bytes = ctx.search_task.hardware_params.vector_unit_bytes
    for stage in state.stages:
        if stage.op_type is not StageKind.COMPUTE or stage.compute_at is ComputeAtKind.INLINED:
            continue
        if not has_reduce_iter(stage) or not is_tiled(stage):
            continue
        lanes = max(1, vector_bytes // _dtype_bytes(stage))
        if register_tile_accumulators(stage, lanes) > budget:
            return False
    return True


def _dtype_bytes(stage: Stage) -> int:
    return itemsize(stage.op.dtype) if isinstance(stage.op, ComputeOp) else 4


def ensure_bound(ctx: PopulationContext, state: LoopState) -> LoopState | None:
    """``state`` with all extents known (bound inference if any is unknown), or None when
    bound inference rejects it."""
    return ctx.state_cache.bind(state)


# ---------------------------------------------------------------------------------------
# the rules


def fill_tile_sizes(ctx: PopulationContext, state: LoopState, rng: np.random.Generator) -> LoopState | None:
    """InitFillTileSize: every split with unknown lengths gets a uniformly random exact
    factorization of its extent (innermost <= max_innermost_split_factor), or, for a
    register-tile split (``StateCache.register_tile_splits``) with probability
    ``padded_tile_probability``, a padded one (``SplitFactorizationMemo.padded_schemes``:
    the 12-accumulator tiles of a 16-register CPU over a power-of-two extent); then the
    steps are replayed, so the stages show the chosen tiles. A draw whose register tile
    overflows the register file (``fits_register_file``) is drawn again, up to
    ``FILL_ATTEMPTS`` times."""
    limit = ctx.params.max_innermost_split_factor
    open_splits = [
        index
        for index, step in enumerate(state.transform_steps)
        if isinstance(step, SplitStep) and any(length is None for length in step.lengths)
    ]
    if not open_splits:
        return state
    padding = ctx.params.padded_tile_probability
    tile_splits = ctx.state_cache.register_tile_splits(state.transform_steps) if padding > 0 else frozenset()
    for _ in range(FILL_ATTEMPTS):
        steps = list(state.transform_steps)
        for index in open_splits:
            step = steps[index]
            assert isinstance(step, SplitStep)
            if step.extent is None:
                return None
            schemes = ctx.split_memo.factorization_schemes(step.extent, len(step.lengths), limit)
            if index in tile_splits and rng.random() < padding:
                schemes = ctx.split_memo.padded_schemes(step.extent, len(step.lengths), limit) or schemes
            if not schemes:
                return None
            lengths = schemes[int(rng.integers(len(schemes)))]
            steps[index] = SplitStep(step.stage_id, step.iter_id, step.extent, lengths, step.inner_to_outer)
        filled = replay(ctx, steps)
        if filled is not None:
            return filled
    return None


def change_compute_location(
    ctx: PopulationContext, state: LoopState, rng: np.random.Generator
) -> LoopState | None:
    """InitChangeComputeLocation: from the last stage to the first, each stage that is not
    tiled and needs no tiling is inlined (if it is attached and does not reduce), put at
    the root, or computed at one of its candidate locations, uniformly; then bound
    inference (a failure makes the candidate invalid)."""
    if ctx.params.disable_change_compute_location:
        return ensure_bound(ctx, state)
    task = ctx.search_task
    dag = task.compute_dag
    for stage_id in range(len(state.stages) - 1, -1, -1):
        stage = state.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is ComputeAtKind.INLINED:
            continue
        if is_tiled(stage) or needs_multi_level_tiling(task, state, stage_id):
            continue
        candidates = compute_location_candidates(task, state, stage_id)
        choice = int(rng.integers(len(candidates) + 2))
        if choice == 0:
            if not has_reduce_iter(stage) and stage.compute_at is ComputeAtKind.ITER:
                state = ComputeInlineStep(stage_id).apply(state, dag)
        elif choice == 1:
            if stage.compute_at is not ComputeAtKind.ROOT:
                state = ComputeRootStep(stage_id).apply(state, dag)
        else:
            target_id, iter_id = candidates[choice - 2]
            state = ComputeAtStep(stage_id, target_id, iter_id).apply(state, dag)
    return ensure_bound(ctx, state)


def annotate_parallel(ctx: PopulationContext, state: LoopState, rng: np.random.Generator) -> LoopState | None:
    """InitParallel: in every root stage, fuse the outermost spatial loops until their
    product exceeds 16 x num_cores or a stage is computed inside, and parallelize the
    fused loop; when that loop would run once, look for parallelism in the stages
    computed inside it and in the next loop instead."""
    dag = ctx.search_task.compute_dag
    enough = ctx.search_task.hardware_params.num_cores * 16

    def annotate(state: LoopState, stage_id: int, offset: int) -> LoopState:
        stage = state.stages[stage_id]
        attached = attached_iters(state)
        to_fuse: list[int] = []
        degree = 1
        iter_id = offset
        while iter_id < len(stage.iters):
            it = stage.iters[iter_id]
            if it.kind is IteratorKind.REDUCTION or it.annotation is not IteratorAnnotation.NONE:
                break
            to_fuse.append(iter_id)
            degree *= extent_or_unknown(it.extent)
            if degree > enough or (stage_id, it.name) in attached:
                break
            iter_id += 1
        if degree == 1 and iter_id < len(stage.iters):
            name = stage.iters[iter_id].name
            if (stage_id, name) in attached:
                for child in state.attached_stages(stage_id, name):
                    state = annotate(state, child, 0)
                state = annotate(state, stage_id, iter_id + 1)
        if len(to_fuse) > 1:
            state = FuseStep(stage_id, tuple(to_fuse)).apply(state, dag)
        if to_fuse:
            state = AnnotationStep(stage_id, to_fuse[0], IteratorAnnotation.PARALLEL).apply(state, dag)
        return state

    for stage_id, stage in enumerate(state.stages):
        if stage.op_type is StageKind.COMPUTE and stage.compute_at is ComputeAtKind.ROOT:
            state = annotate(state, stage_id, 0)
    return state


def annotate_unroll(ctx: PopulationContext, state: LoopState, rng: np.random.Generator) -> LoopState | None:
    """InitUnroll: unroll the innermost-tile iterators an op names in
    ``auto_scheduler_always_unroll_inner``; give every stage with a reduction a pragma
    ``auto_unroll_max_step$N`` with N uniform in {0, 16, 64, 512} (a GPU: also 1024)."""
    dag = ctx.search_task.compute_dag
    configs = GPU_AUTO_UNROLL_CONFIGS if is_gpu_task(ctx.search_task) else CPU_AUTO_UNROLL_CONFIGS
    for stage_id in range(len(state.stages)):
        stage = state.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is ComputeAtKind.INLINED:
            continue
        to_unroll = set(getattr(stage.op, "attrs", {}).get(ALWAYS_UNROLL_INNER, ()))
        if to_unroll:
            visited: set[str] = set()
            for iter_id in range(len(stage.iters) - 1, -1, -1):
                it = state.stages[stage_id].iters[iter_id]
                names = original_iterators(it.name)
                if names <= visited:
                    break  # a second iterator of the same axis: out of the innermost tile
                visited |= names
                if len(names) == 1 and names <= to_unroll and it.annotation is IteratorAnnotation.NONE:
                    state = AnnotationStep(stage_id, iter_id, IteratorAnnotation.UNROLL).apply(state, dag)
        if has_reduce_iter(stage):
            value = configs[int(rng.integers(len(configs)))]
            state = PragmaStep(stage_id, 0, f"auto_unroll_max_step${value}").apply(state, dag)
    return state


def annotate_vectorization(
    ctx: PopulationContext, state: LoopState, rng: np.random.Generator
) -> LoopState | None:
    """InitVectorization: count the innermost spatial, unannotated loops with no stage
    computed at them (only one in a tiled stage, whose inner two loops are not both
    contiguous) while their product stays <= max_vectorize_size; fuse a random number
    1..count-1 of them (all of them when count is 1) and vectorize the result."""
    dag = ctx.search_task.compute_dag
    limit = ctx.params.max_vectorize_size
    for stage_id in range(len(state.stages)):
        stage = state.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is ComputeAtKind.INLINED:
            continue
        attached = attached_iters(state)
        tiled = is_tiled(stage)
        n = len(stage.iters)
        product = 1
        count = 0
        while count < n:
            it = stage.iters[n - 1 - count]
            if (stage_id, it.name) in attached:
                break
            if it.kind is IteratorKind.REDUCTION or it.annotation is not IteratorAnnotation.NONE:
                break
            if tiled and count != 0:
                break
            product *= extent_or_unknown(it.extent)
            if product > limit:
                break
            count += 1
        if count > 1:
            count = 1 + int(rng.integers(count - 1))
        if count == 1:
            state = AnnotationStep(stage_id, n - 1, IteratorAnnotation.VECTORIZE).apply(state, dag)
        elif count > 1:
            fused = tuple(range(n - count, n))
            state = FuseStep(stage_id, fused).apply(state, dag)
            state = AnnotationStep(stage_id, n - count, IteratorAnnotation.VECTORIZE).apply(state, dag)
    return state


INIT_FILL_TILE_SIZE = InitRule("InitFillTileSize", fill_tile_sizes)
INIT_CHANGE_COMPUTE_LOCATION = InitRule("InitChangeComputeLocation", change_compute_location)
INIT_PARALLEL = InitRule("InitParallel", annotate_parallel)
INIT_UNROLL = InitRule("InitUnroll", annotate_unroll)
INIT_VECTORIZATION = InitRule("InitVectorization", annotate_vectorization)

#: CPU order (TVM): sizes first (every later rule reads extents), then locations (bound
#: inference fills the attached stages' extents), then the annotations, outer to inner.
CPU_INIT_RULES: tuple[InitRule, ...] = (
    INIT_FILL_TILE_SIZE,
    INIT_CHANGE_COMPUTE_LOCATION,
    INIT_PARALLEL,
    INIT_UNROLL,
    INIT_VECTORIZATION,
)


def apply_init_rules(
    ctx: PopulationContext, sketch: LoopState, rules: Sequence[InitRule], rng: np.random.Generator
) -> LoopState | None:
    """One random program from ``sketch``: the rules in order; None if any finds it invalid."""
    state: LoopState | None = sketch
    try:
        for rule in rules:
            assert state is not None
            state = rule.apply(ctx, state, rng)
            if state is None:
                return None
    except ScheduleError:
        return None
    return state
