"""Bound inference: iterator extents after split/fuse/compute_at, symbolic regions of
attached stages, guards, and the errors of schedules it cannot give bounds to."""

from __future__ import annotations

import dataclasses

import pytest
import workloads

from ir import te
from ir.compute_dag import ComputeDAG
from ir.expr import Const, Var
from ir.loop_state.api import State, get_init_state
from ir.loop_state.enums import ComputeAtKind
from ir.loop_state.state import AttachPoint, LoopState, ScheduleError, SplitRelation, initial_state
from ir.lower.bound import infer_bound, infer_bound_from_state, infer_bound_with_regions


def extents(state: State | LoopState, stage: str) -> dict[str, int | None]:
    loop_state = state.loop_state if isinstance(state, State) else state
    return {it.name: it.extent for it in loop_state.stages[loop_state.stage_id(stage)].iters}


def region(state: State, stage: str) -> list[str]:
    info = infer_bound_with_regions(state.dag, state.loop_state)
    return [str(r) for r in info.stages[state.stage_id(stage)].region]


def test_naive_state_keeps_the_domains():
    a = te.placeholder((5, 9), name="A")
    k = te.reduce_axis((2, 9), name="k")  # a reduction axis not starting at 0
    b = te.compute((5,), lambda i: te.sum(a[i, k], axis=k), name="B")
    dag = ComputeDAG([a, b])
    state = infer_bound(dag, initial_state(dag))
    ranges = {it.name: (it.range.min, it.range.extent) for it in state.stages[1].iters}
    assert ranges == {"i": (0, 5), "k": (2, 7)}


def test_split_extents_divide_and_round_up():
    dag = ComputeDAG(workloads.matmul(16, 13, 8))
    s = get_init_state(dag)
    i, j, _ = s["C"].iters
    s.split("C", i, [4, 2])
    s.split("C", j, [5])  # 13 = 3 * 5 - 2: the outer loop rounds up
    got = extents(infer_bound_from_state(dag, s), "C")
    assert got == {"i.0": 2, "i.1": 4, "i.2": 2, "j.0": 3, "j.1": 5, "k": 8}


def test_nparts_split_puts_the_remainder_inside():
    dag = ComputeDAG(workloads.matmul(16, 13, 8))
    s = get_init_state(dag)
    s.split("C", "j", [4], inner_to_outer=False)
    assert extents(infer_bound_from_state(dag, s), "C")["j.1"] == 4  # ceil(13 / 4)


def test_fused_extent_is_the_product():
    dag = ComputeDAG(workloads.matmul(6, 5, 8))
    s = get_init_state(dag)
    s.fuse("C", ["i", "j"])
    assert extents(infer_bound_from_state(dag, s), "C") == {"i@j@": 30, "k": 8}


def test_compute_at_region_follows_the_consumer_tile():
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    s = get_init_state(dag)
    i, j = s["relu"].iters
    io, ii = s.split("relu", i, [4])
    jo, ji = s.split("relu", j, [3])
    s.reorder("relu", [io, jo, ii, ji])
    s.compute_at("biased", "relu", jo)
    assert extents(infer_bound_from_state(dag, s), "biased") == {"i": 4, "j": 3}
    assert region(s, "biased") == ["[i.0 * 4, +4)", "[j.0 * 3, +3)"]
    # attached one loop further out: the whole j range per i.0
    s2 = get_init_state(dag)
    io, ii = s2.split("relu", "i", [4])
    s2.compute_at("biased", "relu", io)
    assert region(s2, "biased") == ["[i.0 * 4, +4)", "[0, +12)"]


def test_attached_split_loops_are_cut_to_the_region():
    # biased computes a 4 x 3 tile per relu iteration; its own split lengths were chosen
    # for the whole domain: i.1 (2) and i.0 would waste trips, TVM's PassDownDomain cuts a
    # split's factor to min(parent extent, factor)
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    s = get_init_state(dag)
    io, ii = s.split("relu", "i", [4])
    jo, ji = s.split("relu", "j", [3])
    s.reorder("relu", [io, jo, ii, ji])
    s.split("biased", "i", [2, 2, 4])
    s.split("biased", "j", [8])
    s.compute_at("biased", "relu", jo)
    got = extents(infer_bound_from_state(dag, s), "biased")
    assert got == {"i.0": 1, "i.1": 1, "i.2": 1, "i.3": 4, "j.0": 1, "j.1": 3}
    info = infer_bound_with_regions(dag, s.loop_state)
    assert info.stages[s.stage_id("biased")].guards == ()


def test_attached_split_loops_keep_the_guard_of_a_non_dividing_tail():
    # a region of 6 rows in steps of 4: two trips of i.2 and a guard for the last 2 rows
    dag = ComputeDAG(workloads.matmul_bias_relu(12, 12, 8))
    s = get_init_state(dag)
    io, _ii = s.split("relu", "i", [6])
    s.split("biased", "i", [2, 4])
    s.compute_at("biased", "relu", io)
    assert extents(infer_bound_from_state(dag, s), "biased") == {"i.0": 1, "i.1": 2, "i.2": 4, "j": 12}
    info = infer_bound_with_regions(dag, s.loop_state)
    assert [str(g) for g in info.stages[s.stage_id("biased")].guards] == ["i.1 * 4 + i.2 < 6"]


def test_a_split_loop_bound_to_a_thread_keeps_its_length():
    # 16 in [?, 4, 8]: i.1 needs 2 trips, but bound to threadIdx.x it keeps 4 (the launch's
    # thread count), as in TVM; the guard then drops the threads past the extent
    dag = ComputeDAG(workloads.matmul(16, 16, 8))
    s = get_init_state(dag)
    _i0, i1, _i2 = s.split("C", "i", [4, 8])
    assert extents(infer_bound_from_state(dag, s), "C")["i.1"] == 2
    s.bind("C", i1, "threadIdx.x")
    assert extents(infer_bound_from_state(dag, s), "C")["i.1"] == 4
    info = infer_bound_with_regions(dag, s.loop_state)
    assert [str(g) for g in info.stages[s.stage_id("C")].guards] == ["i.1 * 8 + i.2 < 16"]


def test_attached_reduction_keeps_its_reduction_domain():
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    s = get_init_state(dag)
    io, _ii = s.split("biased", "i", [2])
    s.compute_at("C", "biased", io)
    assert extents(infer_bound_from_state(dag, s), "C") == {"i": 2, "j": 12, "k": 8}
    assert region(s, "C") == ["[i.0 * 2, +2)", "[0, +12)", "[0, +8)"]


@pytest.mark.parametrize(("stride", "tile"), [(1, 2), (1, 3), (2, 2), (2, 3)])
def test_conv_pad_region_is_tile_minus_one_times_stride_plus_kernel(stride: int, tile: int):
    dag = ComputeDAG(workloads.conv2d_nchw(h=9, w=9, kh=3, kw=3, pad=1, stride=stride))
    s = get_init_state(dag)
    yo, _ = s.split("conv", "yy", [tile])
    s.compute_at("pad_temp", "conv", yo)
    got = extents(infer_bound_from_state(dag, s), "pad_temp")
    # the batch axis has extent 1; channels: all rc; width: all xx and rx
    assert got["i2"] == (tile - 1) * stride + 3
    assert got["i1"] == 4 and got["i3"] == 11
    assert region(s, "pad_temp")[2] == f"[yy.0 * {tile * stride}, +{(tile - 1) * stride + 3})"


def test_non_dividing_tile_guards_the_region_at_the_domain_edge():
    dag = ComputeDAG(workloads.conv2d_nchw(h=8, w=8, pad=1, stride=1))
    s = get_init_state(dag)
    yo, _ = s.split("conv", "yy", [3])  # 8 rows in tiles of 3: the last tile overhangs
    s.compute_at("pad_temp", "conv", yo)
    info = infer_bound_with_regions(dag, s.loop_state)
    pad = info.stages[s.stage_id("pad_temp")]
    assert [str(g) for g in pad.guards] == ["yy.0 * 3 + i2 < 10"]
    conv = info.stages[s.stage_id("conv")]
    assert [str(g) for g in conv.guards] == ["yy.0 * 3 + yy.1 < 8"]


def test_nested_attach_regions_compose():
    # C attached in biased attached in relu: C's region is per biased iteration
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    s = get_init_state(dag)
    io, _ii = s.split("relu", "i", [8])
    s.compute_at("biased", "relu", io)
    bi, _bj = s["biased"].iters
    bio, _bii = s.split("biased", bi, [2])
    s.compute_at("C", "biased", bio)
    assert extents(infer_bound_from_state(dag, s), "biased") == {"i.0": 4, "i.1": 2, "j": 12}
    assert extents(infer_bound_from_state(dag, s), "C") == {"i": 2, "j": 12, "k": 8}
    # names go in stage order: biased's i.0 comes before relu's (i.0_1)
    assert region(s, "C")[0] == "[i.0_1 * 8 + i.0 * 2, +2)"


def test_cache_read_packing_region_is_a_panel():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    s.cache_read("B", "global", ["C"])
    i, j, k = s["C"].iters
    jo, ji = s.split("C", j, [4])
    s.reorder("C", [jo, i, k, ji])
    s.compute_at("B.global", "C", jo)
    assert region(s, "B.global") == ["[0, +8)", "[j.0 * 4, +4)"]


def test_shared_buffer_region_covers_every_thread_of_the_block():
    dag = ComputeDAG(workloads.matmul(16, 16, 8))
    s = get_init_state(dag)
    s.cache_read("A", "shared", ["C"])
    i, j, k = s["C"].iters
    bi, ti, ii = s.split("C", i, [4, 2])
    ko, ki = s.split("C", k, [4])
    s.reorder("C", [bi, ti, j, ko, ki, ii])
    s.bind("C", bi, "blockIdx.x")
    s.bind("C", ti, "threadIdx.x")
    s.compute_at("A.shared", "C", ko)
    # threadIdx (i.1) is outside the attach point but shared memory serves all threads
    assert region(s, "A.shared") == ["[i.0 * 8, +8)", "[k.0 * 4, +4)"]
    s.loop_state = dataclasses.replace(
        s.loop_state,
        stages=tuple(
            dataclasses.replace(st, scope=st.scope.LOCAL) if st.name == "A.shared" else st for st in s.stages
        ),
    )
    # a local buffer is private to its thread
    assert region(s, "A.shared") == ["[i.0 * 8 + i.1 * 2, +2)", "[k.0 * 4, +4)"]


def test_extent_one_loops_become_constants():
    dag = ComputeDAG(workloads.conv2d_nchw())
    info = infer_bound_with_regions(dag, initial_state(dag))
    conv = info.stages[initial_state(dag).stage_id("conv")]
    assert isinstance(conv.loop_vars[0], Const) and conv.loop_vars[0].value == 0  # nn, extent 1
    assert all(isinstance(v, Var) for v in conv.loop_vars[1:])


def test_loop_names_are_unique_across_stages():
    dag = ComputeDAG(workloads.matmul_bias_relu(4, 4, 4))
    info = infer_bound_with_regions(dag, initial_state(dag))
    names = [v.name for b in info.stages.values() for v in b.loop_vars if isinstance(v, Var)]
    assert len(names) == len(set(names))
    assert names[:3] == ["i", "j", "k"] and "i_1" in names


def test_infer_bound_from_state_accepts_both_kinds_of_state():
    dag = ComputeDAG(workloads.matmul(8, 8, 8))
    s = get_init_state(dag)
    s.split("C", "i", [4])
    handle = infer_bound_from_state(dag, s)
    assert isinstance(handle, State) and handle is not s
    plain = infer_bound_from_state(dag, s.loop_state)
    assert isinstance(plain, LoopState)
    assert str(plain) == str(handle)


def test_unfilled_split_length_is_an_error():
    dag = ComputeDAG(workloads.matmul(8, 8, 8))
    s = get_init_state(dag)
    s.split("C", "i", [None])
    with pytest.raises(ScheduleError, match=r"split of 'i' has length None for 'i.1'"):
        infer_bound(dag, s.loop_state)


def test_zero_split_length_is_an_error():
    dag = ComputeDAG(workloads.matmul(8, 8, 8))
    s = get_init_state(dag)
    s.split("C", "i", [4])
    stage = s["C"]
    (relation,) = stage.relations
    assert isinstance(relation, SplitRelation)
    bad = dataclasses.replace(stage, relations=(dataclasses.replace(relation, lengths=(None, 0)),))
    with pytest.raises(ScheduleError, match=r"length 0 for 'i.1' \(lengths must be filled and positive\)"):
        infer_bound(dag, s.loop_state.with_stage(s.stage_id("C"), bad))


def test_consumer_outside_the_attach_loop_is_an_error():
    # exp feeds both row_sum and softmax; attached inside row_sum, softmax cannot see it
    # (the compute_at step refuses this; a state built by hand must not lower either)
    dag = ComputeDAG(workloads.softmax())
    state = initial_state(dag)
    exp_id, row_sum_id = state.stage_id("exp"), state.stage_id("row_sum")
    attached = dataclasses.replace(
        state.stages[exp_id], compute_at=ComputeAtKind.ITER, attach=AttachPoint(row_sum_id, "k2")
    )
    with pytest.raises(ScheduleError, match=r"consumer 'softmax' is not computed inside that loop"):
        infer_bound(dag, state.with_stage(exp_id, attached))
