"""Random annotation for GPUs: thread binding and the launch limits (Ansor paper section 4.2;
TVM ``sketch_policy_rules.cc`` InitThreadBind, and ``VerifyGPUCode``'s limits).

A GPU program is a grid of thread blocks. ``bind_threads`` (InitThreadBind) maps each
kernel's loops onto it:

- a multi-level tiled root stage (``gpu_multi_level_tiling_structure`` "SSSRRSRS") fuses
  its outermost spatial tile (``.0``) into blockIdx.x, the second (``.1``) into a virtual
  thread (at most ``max_vthread_extent``) and the third (``.2``) into threadIdx.x (at least
  a warp unless the whole space is at most two warps; else the candidate is invalid);
- an untiled root stage fuses its outer spatial loops and binds them to threadIdx.x when
  they fit in a warp, else splits them by the warp size into blockIdx.x and threadIdx.x;
- the root of a cross-thread reduction binds its outer spatial loops to blockIdx.x (its
  reduction is already bound to threadIdx.x by the sketch);
- a shared-memory copy (``.shared``) fetches cooperatively: its loops are fused, an inner
  loop of 1 split off and vectorized, and the rest split to the thread count of the stage
  it is computed in (``follow_fused_split``), the inner part bound to threadIdx.x.

``gpu_limits.fits_gpu_limits`` then rejects a candidate whose block needs more threads than
``max_threads_per_block``, more virtual threads than ``max_vthread_extent`` or more shared
memory than ``max_shared_memory_per_block``, so that sampling keeps drawing until it has
a population of valid programs instead of filling it with ones no GPU launches (the
problem of TVM's PR 6713). The GPU rules run in TVM's order: tile sizes, thread binding,
unroll (``GPU_INIT_RULES``).
"""

from __future__ import annotations

import math

import numpy as np

from ansor_py.search.gpu_limits import fits_gpu_limits
from ansor_py.search.init_rules import (
    INIT_FILL_TILE_SIZE,
    INIT_UNROLL,
    InitRule,
    PopulationContext,
    ensure_bound,
)
from ansor_py.search.stage_queries import (
    attached_iters,
    extent_or_unknown,
    has_annotation,
    has_cross_thread_reduction,
    needs_multi_level_tiling,
    spatial_split_step_ids,
)
from ir.loop_state.api import State
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind, StageKind
from ir.loop_state.state import LoopState, ScheduleError
from ir.te import ComputeOp

BLOCK_X = IteratorAnnotation.BLOCK_X.value
THREAD_X = IteratorAnnotation.THREAD_X.value
VTHREAD = IteratorAnnotation.VTHREAD.value


def fuse_outer_space(s: State, stage_id: int) -> str:
    """Fuse the stage's outer spatial, unannotated loops, stopping after one that a stage
    is computed at (TVM FuseAllOuterSpaceIterators); the fused loop's name."""
    stage = s.stages[stage_id]
    attached = attached_iters(s.loop_state)
    names: list[str] = []
    for index, it in enumerate(stage.iters):
        if it.kind is IteratorKind.REDUCTION or it.annotation is not IteratorAnnotation.NONE:
            break
        if index > 0 and (stage_id, stage.iters[index - 1].name) in attached:
            break
        names.append(it.name)
    if not names:
        raise ScheduleError(f"stage '{stage.name}' has no outer spatial loop to bind")
    return names[0] if len(names) == 1 else s.fuse(stage_id, names).name


def _tile_level(s: State, stage_id: int, first: int, count: int, suffix: str) -> list[str]:
    """The names of the loops ``first .. first + count - 1`` of the stage that end in
    ``suffix`` (one tile level), stopping at the first that does not (an axis the tiling
    did not split)."""
    names = []
    for it in s.stages[stage_id].iters[first : first + count]:
        if not it.name.endswith(suffix):
            break
        names.append(it.name)
    if not names:
        raise ScheduleError(f"stage '{s.stages[stage_id].name}' has no '{suffix}' tile level at loop {first}")
    return names


def bind_threads(ctx: PopulationContext, state: LoopState, rng: np.random.Generator) -> LoopState | None:
    """InitThreadBind (module docstring); None for an invalid candidate."""
    task = ctx.search_task
    hardware = task.hardware_params
    tiled_roots: set[int] = set()
    for stage_id, stage in enumerate(state.stages):
        if not needs_multi_level_tiling(task, state, stage_id) or stage.compute_at is ComputeAtKind.INLINED:
            continue
        if stage.attach is not None:
            tiled_roots.add(stage.attach.stage_id)
        elif not has_cross_thread_reduction(state, stage_id):
            raise ScheduleError(
                f"stage '{stage.name}' needs multi-level tiling but is neither computed in a tiled root "
                "nor a cross-thread reduction"
            )
    bound = ensure_bound(ctx, state)
    if bound is None:
        return None
    s = State(task.compute_dag, bound)
    for stage_id in range(len(bound.stages) - 1, -1, -1):
        stage = s.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is ComputeAtKind.INLINED:
            continue
        if has_cross_thread_reduction(s.loop_state, stage_id):
            if stage.compute_at is ComputeAtKind.ROOT:
                s.bind(stage_id, fuse_outer_space(s, stage_id), BLOCK_X)
            continue
        if has_annotation(stage, IteratorAnnotation.THREAD_X):
            continue
        if stage.compute_at is ComputeAtKind.ROOT:
            if stage_id not in tiled_roots:
                fused = fuse_outer_space(s, stage_id)
                if (
                    extent_or_unknown(s.stages[stage_id].iters[s.iter_id(stage_id, fused)].extent)
                    <= hardware.warp_size
                ):
                    s.bind(stage_id, fused, THREAD_X)
                else:
                    outer, inner = s.split(stage_id, fused, [hardware.warp_size])
                    s.bind(stage_id, outer.name, BLOCK_X)
                    s.bind(stage_id, inner.name, THREAD_X)
                continue
            op = stage.op
            assert isinstance(op, ComputeOp)
            # an op of at most two warps of iterations (spatial and reduction, as TVM counts
            # its root loops) may run on fewer threads than a warp
            iterations = math.prod(axis.extent for axis in (*op.axis, *op.reduce_axis))
            check_min_threads = iterations > 2 * hardware.warp_size
            axes = len(op.axis)
            block = s.fuse(stage_id, _tile_level(s, stage_id, 0, axes, ".0"))
            s.bind(stage_id, block.name, BLOCK_X)
            vthread = s.fuse(stage_id, _tile_level(s, stage_id, 1, axes, ".1"))
            if extent_or_unknown(vthread.extent) > hardware.max_vthread_extent:
                return None
            s.bind(stage_id, vthread.name, VTHREAD)
            thread = s.fuse(stage_id, _tile_level(s, stage_id, 2, axes, ".2"))
            if check_min_threads and extent_or_unknown(thread.extent) < hardware.warp_size:
                return None
            s.bind(stage_id, thread.name, THREAD_X)
        elif stage.compute_at is ComputeAtKind.ITER and stage.op.name.endswith(".shared"):
            assert stage.attach is not None
            follow = spatial_split_step_ids(s.loop_state, stage.attach.stage_id)
            fetch = s.fuse(stage_id, [it.name for it in stage.iters])
            outer, inner = s.split(stage_id, fetch.name, [1])
            s.vectorize(stage_id, inner.name)
            parts = s.follow_fused_split(stage_id, outer.name, follow, 1, True)
            s.bind(stage_id, parts[1].name, THREAD_X)
    result = ensure_bound(ctx, s.loop_state)
    return result if result is not None and fits_gpu_limits(hardware, result) else None


INIT_THREAD_BIND = InitRule("InitThreadBind", bind_threads)

#: GPU order (TVM): sizes first, then the binding (which reads the tile extents), then unroll.
GPU_INIT_RULES: tuple[InitRule, ...] = (INIT_FILL_TILE_SIZE, INIT_THREAD_BIND, INIT_UNROLL)
