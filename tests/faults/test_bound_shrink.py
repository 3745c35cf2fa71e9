"""Issue 11, "The DSL and the API": bound inference cuts the split loops of a stage
computed at a consumer to the trips its region needs.

The program is the CPU sketch of Ansor's rules "add cache write" and "multi-level tiling
with fusion" (paper section 4.1), written with the State API as the rules write it: the
cache stage C.local tiled SSRSRS, the consumer C tiled like C.local's two outer spatial
levels (follow_split), and C.local computed at C's last loop of the second level. Per
iteration of that loop C.local computes one tile of ``f2 * f3`` rows and ``g2 * g3``
columns, so its loops of the two outer levels (``i.0 i.1 j.0 j.1``) need one trip each
(TVM ``PassDownDomain``: a split's inner extent is ``min(parent extent, factor)``). Before
this change they kept the lengths chosen for the whole domain (``i.1 = f1``,
``j.1 = g1``) and a guard threw away all but one trip of each: here 2 * 4 = 8 times the
loop trips of the tile.
"""

from __future__ import annotations

import math

from differential import check_schedule, workloads

from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.lower.bound import infer_bound_from_state, infer_bound_with_regions

#: C.local's SSRSRS tile sizes (the inner lengths of each split, outer to inner)
I_LENGTHS, J_LENGTHS, K_LENGTHS = [2, 2, 4], [4, 2, 8], [4]
N, M, K = 32, 128, 16


def fused_multi_level_tiling(s: State) -> None:
    """The sketch of rules 5 and 4 with its tile sizes filled, plus the annotations the
    init rules add (parallel outer loop, vectorized innermost loops)."""
    s.cache_write("C", "local")
    i, j, k = s["C.local"].iters
    i_parts = s.split("C.local", i, I_LENGTHS)
    i_step = len(s.transform_steps) - 1
    j_parts = s.split("C.local", j, J_LENGTHS)
    j_step = len(s.transform_steps) - 1
    k_parts = s.split("C.local", k, K_LENGTHS)
    s.reorder(
        "C.local",
        [i_parts[0], j_parts[0], i_parts[1], j_parts[1], k_parts[0], i_parts[2], j_parts[2], k_parts[1]]
        + [i_parts[3], j_parts[3]],
    )
    ci = s.follow_split("C", "i", i_step, 2)
    cj = s.follow_split("C", "j", j_step, 2)
    s.reorder("C", [ci[0], cj[0], ci[1], cj[1], ci[2], cj[2]])
    s.compute_at("C.local", "C", cj[1])
    outer = s.fuse("C", [ci[0], cj[0]])
    s.parallel("C", outer)
    s.vectorize("C.local", j_parts[3])
    s.vectorize("C", cj[2])


def test_attached_stage_outer_split_loops_run_once_per_consumer_tile():
    dag = ComputeDAG(workloads.matmul(N, M, K))
    checked = check_schedule(dag, fused_multi_level_tiling)  # the kernel matches numpy
    s = checked.state
    bound = infer_bound_from_state(dag, s)
    extents = {it.name: it.extent for it in bound["C.local"].iters}
    # the tile: f2 * f3 = 8 rows and g2 * g3 = 16 columns per C iteration
    assert extents == {
        "i.c.0": 1, "j.c.0": 1, "i.c.1": 1, "j.c.1": 1, "k.0": 4,
        "i.c.2": 2, "j.c.2": 2, "k.1": 4, "i.c.3": 4, "j.c.3": 8,
    }  # fmt: skip
    info = infer_bound_with_regions(dag, s.loop_state)
    local = info.stages[s.stage_id("C.local")]
    assert [r.extent for r in local.region] == [8, 16, K]
    assert local.guards == ()  # every trip computes an element of the tile
    # the update runs once per point of the iteration space: C's loops down to the
    # attach point (fused i.0 j.0, i.1, j.1) times C.local's loops
    c_extents = {it.name: it.extent for it in bound["C"].iters}
    outside = [c_extents[name] for name in ("i.0@j.0@", "i.1", "j.1")]
    assert math.prod(outside) * math.prod(extents.values()) == N * M * K  # before: 8x
