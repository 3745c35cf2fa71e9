"""The schedule a network task runs with when no tuning record exists.

``default_schedule(dag, target)`` is deterministic, valid for every DAG the network layer
declares, and fast enough to run a whole network untuned (TVM falls back to its TOPI
schedules the same way when ``ApplyHistoryBest`` has no record for a workload).

It reuses Ansor's own structure rather than a second scheduler. The task's sketches come
from the CPU sketch rules (paper section 4.1: inline element-wise stages, multi-level
tiling "SSRSRS" with the element-wise consumer fused, cache-write stages), and the sketch
that fuses most (``_pick_sketch``) is taken. Where the search would then sample (section
4.2), fixed rules decide:

- tile sizes from the shapes and the hardware (``_spatial_tiles``): the innermost tile is
  a register tile, two vectors (``vector_unit_bytes / 4`` lanes each) of the last axis by
  a few rows of the axis before it (``hand_schedules.register_tile``: the accumulators
  stay in registers); when the weights one column tile reads outgrow L1, the next axis
  out is blocked around an inner reduction level of K_BLOCK, so each slice of weights
  is reused by a block of rows (a convolution's output rows); everything else is the
  outermost level, the parallel loops;
- untiled stages stay where the sketch put them (a padding stage at the root), except
  an element-wise stage (padding) whose consumers are all untiled reductions (pooling): it is
  inlined, so the consumer reads its input through the branch instead of a padded copy
  written and read back (``_inline_into_untiled_consumers``);
- the outer spatial loops of each root stage are fused and parallelised (InitParallel),
  the innermost spatial loop is vectorised (split to a few vectors if longer), and a
  stage with a reduction gets ``auto_unroll_max_step`` so its register tile is unrolled;
- an untiled reduction whose last spatial axis is contiguous in every read (pooling,
  global pooling over NHWC) gets that axis moved inside the reduction and vectorised;
  one whose reduction axis is the contiguous one instead (softmax, layer_norm over the
  last axis) is factored like the rfactor sketch that vectorises the factor (rule 6).

Matrix products whose operands are both contiguous along the reduction (``dense`` with
its [out, in] weight, ``batch_matmul`` with B transposed) would turn a vectorised output
axis into gathers; they get a dot-product form instead: the reduction is split by the
vector width and factored (``rfactor``), so the vector lanes run along k and a short
reduction over the lanes follows (TVM's dense schedules on x86 do the same with packing).

Every result is checked by lowering it; a state that fails falls back to the plain
annotated schedule (inline, parallel, vectorise) and, if even that fails, to the naive
loop nest, so the function never returns a state that does not lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ansor_py.hand_schedules import register_tile
from ansor_py.search.init_rules import annotate_parallel
from ansor_py.search.params import SketchParams
from ansor_py.search.sketch_generation import generate_sketches
from ansor_py.search.sketch_rules import CPU_SKETCH_RULES
from ansor_py.search.stage_queries import (
    analyzer,
    attached_iters,
    consumers,
    has_reduce_iter,
    is_output,
    is_strictly_inlineable,
    is_tiled,
    needs_multi_level_tiling,
)
from ansor_py.search.state_cache import StateCache
from ansor_py.search.tiling import SplitFactorizationMemo
from ansor_py.search_task import SearchTask
from codegen.target import Target, as_target
from ir.compute_dag import ComputeDAG
from ir.expr import TensorRead, Var, post_order
from ir.loop_state.api import State
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind, StageKind
from ir.loop_state.state import LoopState, ScheduleError, initial_state
from ir.loop_state.steps import ComputeAtStep, RfactorStep, SplitStep
from ir.lower.lower import lower
from ir.te import ComputeOp

#: ``auto_unroll_max_step`` of a tiled stage: covers its register tile, not the reduction
TILED_UNROLL_STEPS = 64
#: ``auto_unroll_max_step`` of other stages with a reduction (short windows: pooling)
REDUCTION_UNROLL_STEPS = 16
#: a vectorised loop is at most this many lanes (4 AVX-512 vectors of float32)
MAX_VECTOR_LANES = 64
#: the inner reduction level of a blocked tile (weights of K_BLOCK x cols floats: 8 KiB
#: for 32 columns, half of a 32 KiB L1)
K_BLOCK = 64
#: a shorter inner reduction level is not worth blocking for (the stem convolution's 3
#: input channels: the accumulators would be reloaded every 3 steps)
MIN_K_BLOCK = 16
#: block only when the weights of one column tile are at least this large: smaller ones
#: stay in L1/L2 anyway, and blocking reloads the accumulators once per outer step
MIN_BLOCKED_PANEL_BYTES = 65536
#: the accumulators of one cache block (level 2 x level 3) fit in this many bytes
L1_BLOCK_BYTES = 16384
#: the parallel loops of a tiled stage run at least this many chunks per core
PARALLEL_CHUNKS_PER_CORE = 4


@dataclass
class _Context:
    """What the sketch rules and InitParallel read from a policy (``PopulationContext``)."""

    search_task: SearchTask
    params: SketchParams
    split_memo: SplitFactorizationMemo
    state_cache: StateCache


def default_schedule(dag: ComputeDAG, target: str | Target = "llvm") -> LoopState:
    """A fixed, valid and fast schedule of ``dag`` for the LLVM ``target``: the dot-product
    form for a matrix product with a transposed weight, else the filled and annotated
    sketch, else the plain annotated nest, else the naive one; the first that lowers."""
    parsed = as_target(target)
    ctx = _Context(
        SearchTask(compute_dag=dag, target=parsed), SketchParams(), SplitFactorizationMemo(), StateCache(dag)
    )
    for make in (_dot_product_schedule, _tiled_schedule, _plain_schedule):
        state = make(ctx)
        if state is not None and _lowers(dag, state):
            return state
    return initial_state(dag)


def _lowers(dag: ComputeDAG, state: LoopState) -> bool:
    try:
        lower(dag, state)
    except ScheduleError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# the three schedules, tried in order


def _tiled_schedule(ctx: _Context) -> LoopState | None:
    """The preferred sketch (``_pick_sketch``), tiles filled, annotated."""
    sketch = _pick_sketch(generate_sketches(ctx, CPU_SKETCH_RULES))
    if sketch is None:
        return None
    try:
        state = _fill_tiles(ctx, sketch)
        if state is None:
            return None
        return _annotate(ctx, state)
    except ScheduleError:
        return None


def _pick_sketch(sketches: list[LoopState]) -> LoopState | None:
    """The first sketch without rfactor among those with the most compute-at steps.

    A compute-at step in a sketch is a tiled stage fused into its consumer (paper rule
    4), either the element-wise op that follows it or the copy a cache-write stage adds:
    its tile is then accumulated in a small local buffer the register allocator keeps,
    not in the output. Rfactor sketches are left out: the parallel outer loops come from
    the spatial axes, which every network op has enough of.
    """
    candidates = [
        sketch
        for sketch in sketches
        if not any(isinstance(step, RfactorStep) for step in sketch.transform_steps)
    ]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda sketch: sum(isinstance(step, ComputeAtStep) for step in sketch.transform_steps),
    )


def _dot_product_schedule(ctx: _Context) -> LoopState | None:
    """The dot-product form of a matrix product whose operands are both contiguous along
    the reduction (``dense``: data[i, k] * weight[j, k]); None for any other DAG.

    The reduction ``k`` is split by a vector of ``v`` lanes and the inner part factored
    out (rfactor): ``C.rf[i, j, k.1] = sum_{k.0} A[i, k.0 * v + k.1] * W[j, k.0 * v + k.1]``
    runs with ``k.1`` vectorised, over an ``ri x rj`` register tile of rows and columns
    computed inside C's loop over column tiles; C then sums the ``v`` lanes of each output.
    Every vector load then feeds ``ri`` or ``rj`` FMAs, where vectorising ``j`` would
    gather the weight one lane at a time.
    """
    task = ctx.search_task
    s = State(task.compute_dag)
    _inline_elementwise(ctx, s)
    tiled = [i for i in range(len(s.stages)) if needs_multi_level_tiling(task, s.loop_state, i)]
    if len(tiled) != 1:
        return None
    stage = s.stages[tiled[0]]
    op = stage.op
    assert isinstance(op, ComputeOp)
    if len(op.axis) < 2 or not op.reduce_axis:
        return None
    if _contiguous_in_reads(op, op.axis[-1]) or not _contiguous_in_reads(op, op.reduce_axis[-1]):
        return None
    lanes = max(1, task.hardware_params.vector_unit_bytes // 4)
    v = _largest_divisor(int(op.reduce_axis[-1].extent), lanes)
    if v < 4:
        return None
    name = stage.name
    rows = _largest_divisor(int(op.axis[-2].extent), 4)
    cols = _largest_divisor(int(op.axis[-1].extent), 16 // rows)
    try:
        _, k_inner = s.split(name, stage.iters[-1], [v])
        n_spatial = len(op.axis)
        rf_name = s.rfactor(name, k_inner, n_spatial).op.name
        # C: batch..., i.0, j.0, i.1, j.1, lanes; the rf tile is computed at j.0
        *batch, i, j, lane = (it.name for it in s[name].iters)
        i0, i1 = s.split(name, i, [rows])
        j0, j1 = s.split(name, j, [cols])
        s.reorder(name, [*batch, i0.name, j0.name, i1.name, j1.name, lane])
        s.compute_at(rf_name, name, j0.name)
        # C.rf: reductions outside, then the register tile, lanes innermost
        rf_iters = s[rf_name].iters
        spatial = [it.name for it in rf_iters if it.kind is IteratorKind.SPATIAL]
        reduce = [it.name for it in rf_iters if it.kind is not IteratorKind.SPATIAL]
        s.reorder(rf_name, [*spatial[:-3], *reduce, *spatial[-3:]])
        bound = ctx.state_cache.bind(s.loop_state)  # the rf tile's extents
        return None if bound is None else _annotate(ctx, bound)
    except ScheduleError:
        return None


def _inline_elementwise(ctx: _Context, s: State) -> None:
    """Inline every strictly inlineable stage that is not an output (sketch rule 2)."""
    for stage_id in range(len(s.stages) - 1, -1, -1):
        stage = s.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER or is_output(ctx.search_task, s.loop_state, stage_id):
            continue
        if not has_reduce_iter(stage) and is_strictly_inlineable(ctx.search_task, s.loop_state, stage_id):
            s.compute_inline(stage_id)


def _inline_into_untiled_consumers(ctx: _Context, s: State) -> None:
    """Inline each root, non-output, element-wise stage with simple reads (padding: a
    Select, so not strictly inlineable) that no stage is computed in and whose consumers
    all are untiled reductions needing no tiling (pooling windows).

    A pooling window then reads the input through the branch, one pass over it; at the
    root the padded copy is written whole and read back. A tiled consumer (a convolution)
    keeps the copy: inlined, the branch would sit in its innermost reduction loop. A stage
    a tile is computed in (the phase interleave of a transposed convolution) stays."""
    task = ctx.search_task
    for stage_id in range(len(s.stages) - 1, -1, -1):
        state = s.loop_state
        stage = state.stages[stage_id]
        if (
            stage.op_type is StageKind.PLACEHOLDER
            or stage.compute_at is not ComputeAtKind.ROOT
            or has_reduce_iter(stage)
            or is_output(task, state, stage_id)
            or not analyzer(task, state).is_simple_access(stage.op)
        ):
            continue
        if any(attached_stage == stage_id for attached_stage, _ in attached_iters(state)):
            continue
        readers = consumers(task, state, stage_id)
        if readers and all(_is_untiled_window(task, state, r) for r in readers):
            s.compute_inline(stage_id)


def _is_untiled_window(task: SearchTask, state: LoopState, stage_id: int) -> bool:
    """A reduction at the root that is neither tiled nor in need of tiling (pooling)."""
    stage = state.stages[stage_id]
    return (
        has_reduce_iter(stage)
        and stage.compute_at is ComputeAtKind.ROOT
        and not is_tiled(stage)
        and not needs_multi_level_tiling(task, state, stage_id)
    )


def _plain_schedule(ctx: _Context) -> LoopState | None:
    """Strictly inlineable stages inlined, then the same annotations: for a DAG whose
    tiled schedule does not lower."""
    s = State(ctx.search_task.compute_dag)
    _inline_elementwise(ctx, s)
    try:
        return _annotate(ctx, s.loop_state)
    except ScheduleError:
        return None


# ---------------------------------------------------------------------------------------
# tile sizes


def _fill_tiles(ctx: _Context, sketch: LoopState) -> LoopState | None:
    """``sketch`` with every unknown split length chosen, replayed from the DAG's initial
    state and bound.

    Under the CPU structure "SSRSRS" a spatial split has three lengths (levels 1 to 3)
    and a reduction split one; spatial splits get ``_spatial_tiles`` (per stage, in axis
    order, as ``multi_level_tiling`` made them), reduction splits 1: the reduction runs
    whole at its outer level, around the register tile.
    """
    assert ctx.params.cpu_multi_level_tiling_structure.upper() == "SSRSRS"
    rows, cols = register_tile(ctx.search_task.target)
    lanes = max(1, ctx.search_task.hardware_params.vector_unit_bytes // 4)
    steps = list(sketch.transform_steps)
    unknown: dict[int, list[tuple[int, SplitStep]]] = {}
    for index, step in enumerate(steps):
        if isinstance(step, SplitStep) and None in step.lengths:
            if step.extent is None:
                return None
            unknown.setdefault(step.stage_id, []).append((index, step))
    for stage_id, splits in unknown.items():
        op = sketch.stages[stage_id].op
        assert isinstance(op, ComputeOp)
        spatial = [(index, step) for index, step in splits if len(step.lengths) == 3]
        reduction = [(index, step) for index, step in splits if len(step.lengths) != 3]
        # the inner reduction level of a blocked tile: up to K_BLOCK of the innermost
        # reduction axis (the input channels of a convolution)
        k_inner = _largest_divisor(reduction[-1][1].extent or 1, K_BLOCK) if reduction else 1
        shape = TileShape(
            extents=[step.extent or 1 for _, step in spatial],
            k_inner=k_inner,
            k_outer=math.prod(step.extent or 1 for _, step in reduction) // k_inner,
            rows=rows,
            cols=cols,
            lanes=lanes,
            min_chunks=PARALLEL_CHUNKS_PER_CORE * ctx.search_task.hardware_params.num_cores,
        )
        blockable = _weight_free_axes(op) if len(spatial) == len(op.axis) else set()
        tiles = _spatial_tiles(shape, blockable)
        for (index, step), lengths in zip(spatial, tiles, strict=True):
            steps[index] = _with_lengths(step, lengths)
        # with rows blocked, the weights of k_inner x cols stay in L1 while the block goes
        # by; without, the reduction runs whole at its outer level
        blocked = any(tile[1] > 1 for tile in tiles)
        for position, (index, step) in enumerate(reduction):
            inner = k_inner if blocked and position == len(reduction) - 1 else 1
            steps[index] = _with_lengths(step, (inner,) * len(step.lengths))
    state = ctx.state_cache.replay(steps)
    # bound inference gives the attached stages' loops their extents, which the
    # annotations read
    return None if state is None else ctx.state_cache.bind(state)


def _with_lengths(step: SplitStep, lengths: tuple[int, ...]) -> SplitStep:
    return SplitStep(step.stage_id, step.iter_id, step.extent, lengths, step.inner_to_outer)


@dataclass(frozen=True)
class TileShape:
    """What the tile sizes of one multi-level tiled stage are chosen from."""

    #: extents of the spatial axes that are split, in axis order
    extents: list[int]
    #: the inner reduction level of a blocked tile, and the product of the rest
    k_inner: int
    k_outer: int
    #: register tile: rows x cols accumulators, cols a multiple of ``lanes`` where possible
    rows: int
    cols: int
    lanes: int
    #: the outermost (parallel) tile loops should run at least this many times together
    min_chunks: int


def _spatial_tiles(shape: TileShape, blockable: set[int]) -> list[tuple[int, int, int]]:
    """Lengths (level 1, level 2, level 3) of each spatial axis of an "SSRSRS" tiling.

    Level 3, the register tile: the last axis gets the column tile (``_column_tile``), the
    last axis before it longer than 1 (the row axis) the largest divisor of its extent up
    to the rows the register file holds. Level 2, the cache block: when the weights one
    column tile reads (reduction x cols) outgrow L1 (MIN_BLOCKED_PANEL_BYTES), the
    reduction splits into an inner level ``k_inner`` of at least MIN_K_BLOCK and an outer
    one, and the next axis out (``blockable``: one the weights do not
    depend on, the output rows of a convolution) is longer than 1, it gets the largest
    divisor whose accumulators fit L1_BLOCK_BYTES while the parallel loops keep
    ``min_chunks`` iterations; the inner reduction level then runs ``k_inner`` long over
    that block, each slice of weights reused by every row of it (paper section 4.1: the "SRS"
    of "SSRSRS"). Level 1 is 1: level 0, the remainder, makes the parallel loops.
    """
    extents = shape.extents
    tiles = [(1, 1, 1) for _ in extents]
    if not extents:
        return tiles
    last = len(extents) - 1
    col = _column_tile(extents[last], shape.cols, shape.lanes)
    tiles[last] = (1, 1, col)
    vectors = max(1, math.ceil(col / shape.lanes))
    row_limit = max(1, shape.rows * max(1, shape.cols // shape.lanes) // vectors)
    row_axis = next((axis for axis in range(last - 1, -1, -1) if extents[axis] > 1), None)
    if row_axis is None:
        return tiles
    row = _largest_divisor(extents[row_axis], row_limit)
    tiles[row_axis] = (1, 1, row)
    block_axis = next((axis for axis in range(row_axis - 1, -1, -1) if extents[axis] > 1), None)
    panel_bytes = 4 * shape.k_inner * shape.k_outer * col  # the weights one column tile reads
    if (
        shape.k_inner < MIN_K_BLOCK
        or shape.k_outer < 2
        or panel_bytes < MIN_BLOCKED_PANEL_BYTES
        or block_axis is None
        or block_axis not in blockable
    ):
        return tiles
    chunks = math.prod(extent // tile[2] for extent, tile in zip(extents, tiles, strict=True))
    limit = max(1, L1_BLOCK_BYTES // (4 * row * col))
    for block in sorted(_divisors(extents[block_axis]), reverse=True):
        if block <= limit and chunks // block >= shape.min_chunks:
            tiles[block_axis] = (1, block, 1)
            break
    return tiles


def _weight_free_axes(op: ComputeOp) -> set[int]:
    """Positions of the spatial axes of ``op`` that no read using its last axis depends
    on: blocking over them reuses what those reads load (the weights of a convolution do
    not depend on the output rows; the B of a batched matmul depends on the batch)."""
    last = op.axis[-1]
    reads = [node for node in post_order(op.body) if isinstance(node, TensorRead)]
    weight_vars = {
        id(var)
        for read in reads
        if any(n is last for index in read.indices for n in post_order(index))
        for index in read.indices
        for var in post_order(index)
        if isinstance(var, Var)
    }
    return {position for position, axis in enumerate(op.axis) if id(axis) not in weight_vars}


def _divisors(extent: int) -> list[int]:
    return [d for d in range(1, extent + 1) if extent % d == 0]


def _column_tile(extent: int, cols: int, lanes: int) -> int:
    """The divisor of ``extent`` up to ``cols`` that fills vectors best: a multiple of
    ``lanes`` if there is one, else the one sharing most factors of two with ``lanes``."""
    divisors = [d for d in range(1, min(extent, cols) + 1) if extent % d == 0]
    return max(divisors, key=lambda d: (math.gcd(d, lanes), d))


def _largest_divisor(extent: int, limit: int) -> int:
    return max(d for d in range(1, min(extent, limit) + 1) if extent % d == 0)


# ---------------------------------------------------------------------------------------
# annotations


def _annotate(ctx: _Context, state: LoopState) -> LoopState:
    """Inner spatial loops of reductions moved in, unroll pragmas, vectorisation, then the
    parallel outer loops (InitParallel's rule, which is deterministic)."""
    dag = ctx.search_task.compute_dag
    s = State(dag, state)
    _inline_into_untiled_consumers(ctx, s)
    lanes = max(1, ctx.search_task.hardware_params.vector_unit_bytes // 4)
    factored = [name for name in (stage.name for stage in s.stages) if _factor_reduction(s, name, lanes)]
    if factored:
        bound = ctx.state_cache.bind(s.loop_state)  # the factored stages' extents
        if bound is None:
            raise ScheduleError(f"bound inference rejects the factored reductions {factored}")
        s = State(dag, bound)
    for stage_id in range(len(s.stages)):
        stage = s.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is ComputeAtKind.INLINED:
            continue
        # a tile computed inside another stage's loop is a register tile too
        tile = is_tiled(stage) or stage.compute_at is ComputeAtKind.ITER
        if has_reduce_iter(stage) and not tile:
            _move_contiguous_spatial_inside(s, stage_id)
        _vectorize_innermost(s, stage_id)
        if has_reduce_iter(stage):
            steps = TILED_UNROLL_STEPS if tile else REDUCTION_UNROLL_STEPS
            s.pragma(stage_id, 0, f"auto_unroll_max_step${steps}")
    result = annotate_parallel(ctx, s.loop_state, np.random.default_rng(0))  # uses no randomness
    assert result is not None
    return result


def _factor_reduction(s: State, name: str, lanes: int) -> bool:
    """Vectorise an untiled reduction along its innermost reduction axis ``k`` when ``k``
    is the contiguous index of its reads and the last spatial axis is not (softmax's max
    and sum, layer_norm's mean and variance over the last axis); True if it did.

    As the rfactor sketch that moves the factor innermost (sketch rule 6): ``k`` is split
    by ``v`` lanes and its inner part factored out into ``T.rf[..., k.1] = reduce_{k.0}
    ...``, computed at T's innermost loop with ``k.1`` innermost (vectorised later), so
    ``v`` independent accumulators replace one serial chain; T then reduces the lanes.
    """
    stage_id = s.stage_id(name)
    stage = s.stages[stage_id]
    op = stage.op
    if (
        not isinstance(op, ComputeOp)
        or op.num_outputs != 1
        or not op.reduce_axis
        or stage.compute_at is not ComputeAtKind.ROOT
        or is_tiled(stage)
        or not any(it.kind is IteratorKind.SPATIAL for it in stage.iters)
    ):
        return False
    k = op.reduce_axis[-1]
    if _contiguous_in_reads(op, op.axis[-1]) or not _contiguous_in_reads(op, k):
        return False
    v = _largest_divisor(int(k.extent), lanes)
    if v < 4 or int(k.extent) < 2 * v:
        return False
    n_spatial = len(op.axis)
    _, k_inner = s.split(stage_id, stage.iters[-1], [v])
    rf_name = s.rfactor(stage_id, k_inner, n_spatial).op.name
    spatial = [it.name for it in s[name].iters if it.kind is IteratorKind.SPATIAL]
    s.compute_at(rf_name, name, spatial[-1])
    rf_iters = s[rf_name].iters
    rf_spatial = [it.name for it in rf_iters if it.kind is IteratorKind.SPATIAL]
    rf_reduce = [it.name for it in rf_iters if it.kind is not IteratorKind.SPATIAL]
    s.reorder(rf_name, [*rf_spatial[:-1], *rf_reduce, rf_spatial[-1]])
    return True


def _move_contiguous_spatial_inside(s: State, stage_id: int) -> None:
    """Reorder an untiled reduction stage to (spatial..., reduction..., last spatial) when
    the last spatial axis is the contiguous (last) index of every read that uses it; a
    last axis longer than MAX_VECTOR_LANES is split first and only its inner part moves
    in, so the outer part stays among the parallel loops."""
    stage = s.stages[stage_id]
    op = stage.op
    assert isinstance(op, ComputeOp)
    if not op.axis or stage.iters[-1].kind is IteratorKind.SPATIAL:
        return
    if not _contiguous_in_reads(op, op.axis[-1]):
        return
    last = next(it for it in reversed(stage.iters) if it.kind is IteratorKind.SPATIAL)
    if last.extent is not None and last.extent > MAX_VECTOR_LANES:
        inner = _largest_divisor(last.extent, MAX_VECTOR_LANES)
        if inner > 1:
            s.split(stage_id, last, [inner])
    iters = s.stages[stage_id].iters
    spatial = [it.name for it in iters if it.kind is IteratorKind.SPATIAL]
    reduce = [it.name for it in iters if it.kind is not IteratorKind.SPATIAL]
    s.reorder(stage_id, [*spatial[:-1], *reduce, spatial[-1]])


def _contiguous_in_reads(op: ComputeOp, var: Var) -> bool:
    """``var`` appears in the reads of ``op`` only in their last index."""
    for node in post_order(op.body):
        if not isinstance(node, TensorRead):
            continue
        for position, index in enumerate(node.indices):
            uses = any(n is var for n in post_order(index))
            if uses and position != len(node.indices) - 1:
                return False
    return True


def _vectorize_innermost(s: State, stage_id: int) -> None:
    """Vectorise the innermost loop when it is spatial, unannotated and no stage is
    computed at it; a loop longer than MAX_VECTOR_LANES is first split by the largest
    divisor of its extent up to 16 lanes."""
    stage = s.stages[stage_id]
    if not stage.iters:
        return
    it = stage.iters[-1]
    if (
        it.kind is not IteratorKind.SPATIAL
        or it.annotation is not IteratorAnnotation.NONE
        or it.extent is None
        or it.extent < 2
        or (stage_id, it.name) in attached_iters(s.loop_state)
    ):
        return
    if it.extent > MAX_VECTOR_LANES:
        inner = _largest_divisor(it.extent, 16)
        if inner < 2:
            return
        _, it = s.split(stage_id, it, [inner])
    s.vectorize(stage_id, it)
