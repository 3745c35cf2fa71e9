"""Loop steps on the shared workloads: split, follow splits, fuse, reorder, annotations,
pragmas, storage_align and compute location; each checked for the iterators it leaves
(names, extents, kinds, annotations), the attach map, and every illegal use."""

from __future__ import annotations

import pytest
import workloads

from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, IteratorKind
from ir.loop_state.state import (
    AttachPoint,
    FuseRelation,
    Range,
    ScheduleError,
    SplitRelation,
    Stage,
    StorageAlign,
)
from ir.loop_state.steps import AnnotationStep, ComputeAtStep, FuseStep, SplitStep


def matmul_state(n: int = 16, m: int = 12, k: int = 8) -> State:
    return get_init_state(ComputeDAG(workloads.matmul(n, m, k)))


def names(stage: Stage) -> list[str]:
    return [it.name for it in stage.iters]


def extents(stage: Stage) -> list[int | None]:
    return [it.extent for it in stage.iters]


# split ------------------------------------------------------------------------------------


def test_split_inner_to_outer_names_extents_and_relation() -> None:
    s = matmul_state(n=10)
    i, _, _ = s["C"].iters
    outs = s.split("C", i, [3])
    assert [it.name for it in outs] == ["i.0", "i.1"]
    assert names(s["C"]) == ["i.0", "i.1", "j", "k"]
    assert extents(s["C"]) == [4, 3, 12, 8]  # ceil(10 / 3) outer
    assert all(it.kind is IteratorKind.SPATIAL for it in outs)
    assert s["C"].relations == (SplitRelation("i", ("i.0", "i.1"), (None, 3), 0),)
    assert s.concrete
    assert s.transform_steps == (SplitStep(2, 0, 10, (3,), True),)


def test_split_outer_lengths_with_nparts() -> None:
    s = matmul_state(n=10)
    s.split("C", "i", [3], inner_to_outer=False)
    assert extents(s["C"])[:2] == [3, 4]
    assert s["C"].relations[0] == SplitRelation("i", ("i.0", "i.1"), (3, None), 1)


def test_multi_level_split_of_reduction_keeps_kind() -> None:
    s = matmul_state(k=8)
    outs = s.split("C", "k", [2, 2])
    assert names(s["C"]) == ["i", "j", "k.0", "k.1", "k.2"]
    assert extents(s["C"]) == [16, 12, 2, 2, 2]
    assert all(it.kind is IteratorKind.REDUCTION for it in outs)


def test_split_with_unknown_length_makes_state_not_concrete() -> None:
    s = matmul_state()
    s.split("C", "i", [None, 4])
    assert not s.concrete
    assert [it.range for it in s["C"].iters[:3]] == [Range(0, None), Range(0, None), Range(0, 4)]
    assert s.transform_steps[-1].to_record() == ["SP", 2, 0, 16, [0, 4], 1]


def test_split_moves_attached_stages_to_innermost_child_and_keeps_others() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.compute_at("C", "D", "j")
    s.split("D", "i", [4])  # C stays at j
    assert s["C"].attach == AttachPoint(3, "j")
    s.split("D", "j", [2, 3])
    assert s["C"].attach == AttachPoint(3, "j.2")
    assert s.loop_state.attached_stages(3, "j.2") == [2]


def test_split_of_fused_away_iterator_is_stale() -> None:
    s = matmul_state()
    i, j, _ = s["C"].iters
    s.fuse("C", [i, j])
    with pytest.raises(ScheduleError, match=r"iterator 'i' of stage 'C' no longer exists"):
        s.split("C", i, [4])


def test_split_errors() -> None:
    s = matmul_state()
    with pytest.raises(ScheduleError, match=r"iterator index 7 of stage 'C' is out of range \(it has 3"):
        s.split("C", 7, [4])
    with pytest.raises(ScheduleError, match=r"cannot split stage 'C': iterator index 5 is out of range"):
        SplitStep(2, 5, None, (4,)).apply(s.loop_state, s.dag)
    with pytest.raises(ScheduleError, match=r"cannot split iterator 'i' of stage 'C': length 0 must be"):
        s.split("C", "i", [0])
    with pytest.raises(ScheduleError, match=r"cannot split iterator 'i' of stage 'C': no lengths given"):
        s.split("C", "i", [])
    with pytest.raises(ScheduleError, match=r"cannot split stage 'A': it is a placeholder"):
        SplitStep(0, 0, None, (4,)).apply(s.loop_state, s.dag)
    with pytest.raises(ScheduleError, match=r"stage id 9 is out of range \(the state has 3 stages\)"):
        s.split(9, 0, [4])
    with pytest.raises(ScheduleError, match=r"stage 'C' has no iterator named 'x'"):
        s.split("C", "x", [4])
    s.bind("C", "i", "threadIdx.x")
    with pytest.raises(
        ScheduleError, match=r"cannot split iterator 'i' of stage 'C': it is already annotated threadIdx.x"
    ):
        s.split("C", "i", [4])


def test_follow_split_copies_lengths_and_multiplies_the_rest() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu(n=16, m=24)))
    s.split("C", "j", [2, 3, 2])  # step 0: j.0 .. j.3
    outs = s.follow_split("D", "j", 0, 2)
    assert [it.name for it in outs] == ["j.0", "j.1", "j.2"]
    assert extents(s["D"]) == [16, 2, 2, 6]  # lengths [2, 3 * 2]; remainder 24 / 12 = 2
    assert s["D"].relations[0].lengths == (None, 2, 6)
    with pytest.raises(ScheduleError, match=r"n_split 5 must be in 1..4"):
        s.follow_split("D", "i", 0, 5)
    with pytest.raises(ScheduleError, match=r"source step 9 is out of range \(the history has 2 steps\)"):
        s.follow_split("D", "i", 9, 2)


def test_follow_split_of_a_non_split_step_is_an_error() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.fuse("C", ["i", "j"])
    with pytest.raises(ScheduleError, match=r"source step 0 is a FU step, not a split \(SP\)"):
        s.follow_split("D", "i", 0, 1)


def test_follow_fused_split_multiplies_one_level() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu(n=16, m=24)))
    s.split("C", "i", [2, 4])  # step 0
    s.split("C", "j", [3, 2])  # step 1
    fused = s.fuse("D", ["i", "j"])
    outs = s.follow_fused_split("D", fused, [0, 1], 1, True)  # inner length 4 * 2
    assert [it.name for it in outs] == ["i@j@.0", "i@j@.1"]
    assert extents(s["D"]) == [48, 8]
    outs = s.follow_fused_split("D", outs[0], [0, 1], 0, False)  # outer length 2 * 3
    assert extents(s["D"]) == [6, 8, 8]
    with pytest.raises(ScheduleError, match=r"level 2 is out of range for source step 0 with 2 lengths"):
        s.follow_fused_split("D", 0, [0, 1], 2, True)


# fuse and reorder -------------------------------------------------------------------------


def test_fuse_names_extent_kind_and_relation() -> None:
    s = matmul_state()
    fused = s.fuse("C", ["i", "j"])
    assert fused.name == "i@j@" and fused.extent == 16 * 12 and fused.kind is IteratorKind.SPATIAL
    assert names(s["C"]) == ["i@j@", "k"]
    assert s["C"].relations == (FuseRelation(("i", "j"), "i@j@"),)
    mixed = s.fuse("C", ["i@j@", "k"])
    assert mixed.name == "i@j@@k@" and mixed.kind is IteratorKind.MIXED and mixed.extent == 16 * 12 * 8


def test_fuse_of_unknown_extent_is_unknown() -> None:
    s = matmul_state()
    s.split("C", "i", [None])
    assert s.fuse("C", ["i.0", "i.1"]).range == Range(0, None)


def test_fuse_errors() -> None:
    s = matmul_state()
    with pytest.raises(
        ScheduleError, match=r"cannot fuse iterators 'i' and 'k' of stage 'C': they are not adjacent"
    ):
        s.fuse("C", ["i", "k"])
    with pytest.raises(
        ScheduleError, match=r"cannot fuse iterators 'j' and 'i' of stage 'C': they are not adjacent"
    ):
        s.fuse("C", ["j", "i"])
    with pytest.raises(ScheduleError, match=r"cannot fuse stage 'C': no iterators given"):
        FuseStep(2, ()).apply(s.loop_state, s.dag)
    s.parallel("C", "i")
    with pytest.raises(
        ScheduleError, match=r"cannot fuse iterator 'i' of stage 'C': it is already annotated parallel"
    ):
        s.fuse("C", ["i", "j"])


def test_fuse_keeps_attached_stages_only_at_the_innermost() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.compute_at("C", "D", "i")
    with pytest.raises(
        ScheduleError, match=r"cannot fuse iterator 'i' of stage 'D': stage\(s\) C are computed at it"
    ):
        s.fuse("D", ["i", "j"])
    s.compute_at("C", "D", "j")
    fused = s.fuse("D", ["i", "j"])
    assert s["C"].attach == AttachPoint(3, fused.name)


def test_reorder_permutes_and_attach_points_follow_names() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.compute_at("C", "D", "i")
    s.reorder("D", ["j", "i"])
    assert names(s["D"]) == ["j", "i"]
    assert s["C"].attach == AttachPoint(3, "i")
    with pytest.raises(
        ScheduleError, match=r"cannot reorder stage 'D': \[1, 1\] is not a permutation of its 2"
    ):
        s.reorder("D", ["i", "i"])
    with pytest.raises(ScheduleError, match=r"is not a permutation"):
        s.reorder("D", ["i"])


# annotations ------------------------------------------------------------------------------


def test_annotations_set_each_iterator() -> None:
    s = matmul_state()
    i0, i1 = s.split("C", "i", [4])
    s.parallel("C", i0)
    s.unroll("C", "k")
    s.vectorize("C", "j")
    s.bind("C", i1, "vthread")
    ann = {it.name: it.annotation for it in s["C"].iters}
    assert ann == {
        "i.0": IteratorAnnotation.PARALLEL,
        "i.1": IteratorAnnotation.VTHREAD,
        "j": IteratorAnnotation.VECTORIZE,
        "k": IteratorAnnotation.UNROLL,
    }
    assert s.transform_steps[1] == AnnotationStep(2, 0, IteratorAnnotation.PARALLEL)


def test_unroll_with_max_unroll_skips_long_loops() -> None:
    s = matmul_state()
    s.unroll("C", "i", max_unroll=8)  # extent 16: left alone, as TVM
    assert s["C"].iters[0].annotation is IteratorAnnotation.NONE and not s.transform_steps
    s.unroll("C", "k", max_unroll=8)
    assert s["C"].iters[2].annotation is IteratorAnnotation.UNROLL


def test_reduction_iterators_may_be_bound_to_threads() -> None:
    s = matmul_state()
    s.bind("C", "k", "threadIdx.x")  # cross-thread reduction
    assert s["C"].iters[2].annotation is IteratorAnnotation.THREAD_X


def test_annotation_errors() -> None:
    s = matmul_state()
    with pytest.raises(
        ScheduleError, match=r"cannot vectorize iterator 'k' of stage 'C': it is a reduction iterator"
    ):
        s.vectorize("C", "k")
    with pytest.raises(
        ScheduleError, match=r"cannot parallelize iterator 'k' of stage 'C': it is a reduction"
    ):
        s.parallel("C", "k")
    s.reorder("C", ["i", "k", "j"])
    s.reorder("C", ["i", "j", "k"])
    mixed = s.fuse("C", ["j", "k"])
    with pytest.raises(
        ScheduleError, match=r"cannot parallelize iterator 'j@k@' of stage 'C': it fuses spatial"
    ):
        s.parallel("C", mixed)
    s.parallel("C", "i")
    with pytest.raises(
        ScheduleError, match=r"cannot unroll iterator 'i' of stage 'C': it is already annotated parallel"
    ):
        s.unroll("C", "i")
    with pytest.raises(ScheduleError, match=r"unknown annotation 'spin'"):
        s.annotate("C", mixed, "spin")
    with pytest.raises(ScheduleError, match=r"to 'warpIdx.x': expected one of blockIdx.x"):
        s.bind("C", mixed, "warpIdx.x")
    with pytest.raises(ScheduleError, match=r"with 'none': give an annotation"):
        s.annotate("C", mixed, "none")


def test_pragma_auto_unroll_and_others() -> None:
    s = matmul_state()
    s.pragma("C", "i", "auto_unroll_max_step$16")
    s.pragma("C", "j", "debug_skip_region")
    stage = s["C"]
    assert stage.auto_unroll_max_step == 16
    assert stage.pragmas == (("j", "debug_skip_region"),)
    assert str(s).splitlines()[1] == "C auto_unroll: 16"
    with pytest.raises(ScheduleError, match=r"pragma 'auto_unroll_max_step\$x' to stage 'C': write"):
        s.pragma("C", "i", "auto_unroll_max_step$x")
    with pytest.raises(ScheduleError, match=r"pragma 'auto_unroll_max_step' to stage 'C'"):
        s.pragma("C", "i", "auto_unroll_max_step")
    with pytest.raises(ScheduleError, match=r"a pragma is a non-empty string"):
        s.pragma("C", "i", "")


def test_storage_align_records_the_axis() -> None:
    s = matmul_state()
    s.storage_align("C", "j", 8, 1)
    assert s["C"].storage_align == (StorageAlign(1, 8, 1),)
    assert s["C"].storage_offset == 1
    assert "C storage_offset: 1" in str(s)
    s.split("C", "i", [4])
    with pytest.raises(
        ScheduleError, match=r"cannot storage_align iterator 'i.0' of stage 'C': it is not a spatial"
    ):
        s.storage_align("C", "i.0", 8, 1)
    with pytest.raises(ScheduleError, match=r"iterator 'k' of stage 'C': it is not a spatial axis"):
        s.storage_align("C", "k", 8, 1)
    with pytest.raises(ScheduleError, match=r"factor 0 must be a positive int"):
        s.storage_align("C", "j", 0, 1)
    with pytest.raises(ScheduleError, match=r"offset -1 must be a non-negative int"):
        s.storage_align("C", "j", 4, -1)


# compute location -------------------------------------------------------------------------


def test_compute_at_attaches_and_forgets_ranges() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.compute_at("C", "D", "i")
    stage = s["C"]
    assert stage.compute_at is ComputeAtKind.ITER and stage.attach == AttachPoint(3, "i")
    assert all(it.range == Range(0, None) for it in stage.iters)
    assert s.loop_state.attached_stages(3, "i") == [2]
    assert str(s).splitlines()[1:4] == ["for i (0,16)", "  for i (None)", "    for j (None)"]


def test_compute_at_through_an_inlined_consumer() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_bias_relu()))
    s.compute_inline("biased")
    s.compute_at("C", "relu", "j")
    assert s["C"].attach == AttachPoint(s.stage_id("relu"), "j")


def test_compute_at_errors() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_bias_relu()))
    with pytest.raises(
        ScheduleError,
        match=r"'relu' does not consume 'C' and does not run all of its consumers inside "
        r".*\(its consumers: biased\)",
    ):
        s.compute_at("C", "relu", "i")
    with pytest.raises(
        ScheduleError, match=r"cannot compute stage 'C' at iterator 'i' of stage 'C': a stage"
    ):
        s.compute_at("C", "C", "i")
    with pytest.raises(ScheduleError, match=r"cannot compute_at into stage 'A': it is a placeholder"):
        ComputeAtStep(2, 0, 0).apply(s.loop_state, s.dag)
    with pytest.raises(ScheduleError, match=r"stage 'A' is a placeholder and has no loops"):
        s.compute_at("C", "A", 0)
    s.compute_at("C", "biased", "j")
    with pytest.raises(ScheduleError, match=r"'C' is itself computed inside 'biased'"):
        s.compute_at("biased", "C", "i")
    s.compute_root("C")
    s.compute_inline("biased")
    with pytest.raises(ScheduleError, match=r"'biased' is inlined and has no loops"):
        s.compute_at("C", "biased", "i")


def test_compute_at_cycle_is_refused() -> None:
    s = matmul_state()
    s.cache_write("C", "local")
    s.compute_at("C.local", "C", "i")
    with pytest.raises(ScheduleError, match=r"'C.local' is itself computed inside 'C'"):
        s.compute_at("C", "C.local", "i.c")


def test_compute_root_undoes_compute_at() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.compute_at("C", "D", "j")
    s.compute_root("C")
    assert s["C"].compute_at is ComputeAtKind.ROOT and s["C"].attach is None
    assert s.loop_state.attached_stages(3, "j") == []


def test_compute_inline_marks_the_stage_and_hides_it() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_bias_relu()))
    s.compute_inline("biased")
    assert s["biased"].compute_at is ComputeAtKind.INLINED
    assert "biased" not in str(s)


def test_compute_inline_errors() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_bias_relu()))
    with pytest.raises(ScheduleError, match=r"cannot inline stage 'relu': it is an output of the DAG"):
        s.compute_inline("relu")
    with pytest.raises(ScheduleError, match=r"cannot inline stage 'C': it is a reduction \(sum\)"):
        s.compute_inline("C")
    with pytest.raises(ScheduleError, match=r"cannot compute_inline stage 'bias': it is a placeholder"):
        s.compute_inline("bias")
    s.compute_at("C", "biased", "i")
    with pytest.raises(
        ScheduleError, match=r"cannot inline stage 'biased': stage\(s\) 'C' \(at 'i'\) are computed"
    ):
        s.compute_inline("biased")


def test_steps_leave_the_previous_state_untouched() -> None:
    s = matmul_state()
    before = s.loop_state
    text = str(before)
    s.split("C", "i", [4])
    s.parallel("C", "i.0")
    assert str(before) == text and before.transform_steps == ()
    assert s.copy().loop_state is s.loop_state


def test_stages_resolve_from_ids_names_tensors_ops_and_stages() -> None:
    tensors = workloads.matmul_relu()
    dag = ComputeDAG(tensors)
    s = get_init_state(dag)
    c = dag.op_by_name("C").output
    assert s[2] is s["C"] is s[c] is s[c.op] is s[s["C"]]
    s.cache_write(c, "local")  # the task's tensor C still finds the (new) stage C
    assert s.stage_id(c) == 3 and s[c].op is not c.op
    assert s.stage_ops[2].name == "C.local"
    with pytest.raises(ScheduleError, match=r"no stage named 'E'; stages: A, B, C.local, C, D"):
        s["E"]
    with pytest.raises(ScheduleError, match=r"stage id 5 is out of range \(the state has 5 stages\)"):
        s[5]
