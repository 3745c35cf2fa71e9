"""Schedules written by hand through the State API, as a person who knows the CPU would.

They show what the loop state can express (Ansor paper section 4.1) and set the bar the
search must beat: the demo, ``benchmarks/manual_schedules.py`` and tests use them. The
register tile is sized from the target's vector width so accumulators stay in registers.
"""

from __future__ import annotations

from codegen.target import Target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state


def register_tile(target: Target) -> tuple[int, int]:
    """Rows x columns of the register tile: two vectors wide; 8 rows where the CPU has 32
    vector registers (AVX-512), 6 where it has 16 (AVX2: BLIS's 6x16, 12 accumulators, 2
    more than the FMA latency times the FMA pipes), so the accumulators stay in registers.
    6 rows seldom divide the extent; lowering computes the last tile's extra rows into the
    private accumulator buffer without a branch."""
    lanes = target.hardware_params.vector_unit_bytes // 4
    return (8 if lanes >= 16 else 6), 2 * lanes


def schedule_gemm(dag: ComputeDAG, target: Target) -> State:
    """A BLIS-like GEMM ``C = A @ B`` (placeholders A, B; one output): packed B panels, an
    MR x NR register tile (C.local), parallel columns.

    C's loops are j.0 (column panels of NR, parallel), i.0 (row tiles of MR), then the copy
    of the tile; C.local accumulates an MR x NR tile over all of k with i unrolled and j
    vectorized; B.global packs the K x NR panel of B at j.0, so the inner loop reads it
    contiguously.
    """
    mr, nr = register_tile(target)
    out, rhs = dag.outputs[0].name, dag.placeholders[1].name
    s = get_init_state(dag)
    local = s.cache_write(out, "local").name
    packed = s.cache_read(rhs, "global", [local]).name
    i, j = s[out].iters
    i0, i1 = s.split(out, i, [mr])
    j0, j1 = s.split(out, j, [nr])
    s.reorder(out, [j0, i0, i1, j1])
    s.parallel(out, j0)
    s.vectorize(out, j1)
    s.compute_at(local, out, i0)
    s.compute_at(packed, out, j0)
    ci, cj, ck = s[local].iters
    s.reorder(local, [ck, ci, cj])
    s.unroll(local, ci)
    s.vectorize(local, cj)
    s.vectorize(packed, s[packed].iters[-1])
    return s


def schedule_conv2d_nhwc(dag: ComputeDAG, target: Target) -> State:
    """NHWC conv with the padding inlined: an MR (x) by NR (channel) register tile
    accumulated over (ry, rx, rc), rows of the output fused with the batch and parallel."""
    mr, nr = register_tile(target)
    s = get_init_state(dag)
    out = dag.outputs[0].name
    if any(stage.name == f"{out}_pad" for stage in s.stages):
        s.compute_inline(f"{out}_pad")
    local = s.cache_write(out, "local").name
    n, y, x, f = s[out].iters
    x0, x1 = s.split(out, x, [mr])
    f0, f1 = s.split(out, f, [nr])
    s.reorder(out, [n, y, f0, x0, x1, f1])
    fused = s.fuse(out, [n, y])
    s.parallel(out, fused)
    s.vectorize(out, f1)
    s.compute_at(local, out, x0)
    ln, ly, lx, lf, ry, rx, rc = s[local].iters
    s.reorder(local, [ln, ly, ry, rx, rc, lx, lf])
    s.unroll(local, lx)
    s.vectorize(local, lf)
    return s
