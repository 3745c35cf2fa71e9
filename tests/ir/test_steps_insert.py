"""Stage-inserting steps (cache_read, cache_write, rfactor) and combinations of steps.

Structure is checked directly (stage order, names, scopes, iterators, attach map); values
two ways: the rewritten DAG against the task's DAG with the numpy reference evaluator, and
the whole scheduled state lowered and interpreted against the same reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import workloads

from ir.compute_dag import ComputeDAG
from ir.expr import Reduce, TensorRead, post_order
from ir.loop_state.api import State, get_init_state
from ir.loop_state.enums import ComputeAtKind, IteratorKind
from ir.loop_state.state import AttachPoint, ScheduleError, Stage
from ir.lower.interpreter import run
from ir.lower.lower import lower
from ir.reference import evaluate, random_inputs
from ir.te import ComputeOp
from ir.tir import MemoryScope


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def assert_dag_equivalent(dag: ComputeDAG, s: State, seed: int = 3) -> None:
    """The state's current DAG computes the task DAG's outputs."""
    current = s.loop_state.current_compute_dag
    assert current is not None
    inputs = random_inputs(dag, seed=seed, low=0.5, high=1.5)
    for got, want in zip(evaluate(current, inputs), evaluate(dag, inputs), strict=True):
        assert_close(got, want)


def assert_lowered_matches(dag: ComputeDAG, s: State, seed: int = 4) -> None:
    """The scheduled program, lowered and interpreted, matches the reference."""
    inputs = random_inputs(dag, seed=seed, low=0.5, high=1.5)
    outputs = {t.name: np.full(t.shape, np.nan, dtype=t.dtype) for t in dag.outputs}
    arrays = {t.name: a for t, a in zip(dag.placeholders, inputs, strict=True)} | outputs
    run(lower(dag, s), arrays)
    for tensor, want in zip(dag.outputs, evaluate(dag, inputs), strict=True):
        assert_close(outputs[tensor.name], want)


def reads(stage: Stage) -> set[str]:
    assert isinstance(stage.op, ComputeOp)
    return {n.tensor.name for n in post_order(stage.op.body) if isinstance(n, TensorRead)}


def summary(stage: Stage) -> list[tuple[str, int | None, str]]:
    return [(it.name, it.extent, it.kind.value) for it in stage.iters]


# cache_write ------------------------------------------------------------------------------


def test_cache_write_inserts_the_cache_before_the_stage() -> None:
    dag = ComputeDAG(workloads.matmul())
    s = get_init_state(dag)
    tensor = s.cache_write("C", "local")
    assert tensor.name == "C.local"
    assert [st.name for st in s.stages] == ["A", "B", "C.local", "C"]
    assert summary(s["C.local"]) == [("i.c", 16, "spatial"), ("j.c", 12, "spatial"), ("k", 8, "reduction")]
    assert summary(s["C"]) == [("i", 16, "spatial"), ("j", 12, "spatial")]
    assert s["C.local"].scope is MemoryScope.LOCAL and s["C"].scope is MemoryScope.GLOBAL
    assert reads(s["C"]) == {"C.local"} and reads(s["C.local"]) == {"A", "B"}
    current = s.loop_state.current_compute_dag
    assert current is not None and [t.name for t in current.tensors] == ["A", "B", "C"]
    assert current.outputs[0].op is s["C"].op
    assert_dag_equivalent(dag, s)


def test_cache_write_shifts_attach_points_and_keeps_the_location() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu())
    s = get_init_state(dag)
    s.compute_at("biased", "relu", "i")
    s.cache_write("C", "local")
    assert [st.name for st in s.stages] == ["A", "B", "C.local", "C", "bias", "biased", "relu"]
    assert s["biased"].attach == AttachPoint(6, "i")
    assert reads(s["biased"]) == {"C", "bias"}
    assert_dag_equivalent(dag, s)


def test_cache_write_errors() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    with pytest.raises(ScheduleError, match=r"cannot cache_write stage 'C': unknown memory scope 'texture'"):
        s.cache_write("C", "texture")
    with pytest.raises(ScheduleError, match=r"cannot cache_write stage 'A': it is a placeholder"):
        s.cache_write("A", "local")
    s.split("C", "i", [4])
    with pytest.raises(
        ScheduleError, match=r"cannot cache_write stage 'C': its loops were already transformed"
    ):
        s.cache_write("C", "local")
    s2 = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s2.cache_read("A", "shared", ["C"])
    s2.compute_at("A.shared", "C", "k")
    with pytest.raises(ScheduleError, match=r"stage 'A.shared' is computed at its iterator 'k'"):
        s2.cache_write("C", "local")


# cache_read -------------------------------------------------------------------------------


def test_cache_read_inserts_the_copy_after_the_tensor() -> None:
    dag = ComputeDAG(workloads.matmul_relu())
    s = get_init_state(dag)
    s.compute_at("C", "D", "j")
    tensor = s.cache_read("A", "shared", ["C"])
    assert tensor.name == "A.shared" and tensor.shape == (16, 8)
    assert [st.name for st in s.stages] == ["A", "A.shared", "B", "C", "D"]
    assert summary(s["A.shared"]) == [("ax0", 16, "spatial"), ("ax1", 8, "spatial")]
    assert s["A.shared"].scope is MemoryScope.SHARED
    assert reads(s["C"]) == {"A.shared", "B"}
    assert s["C"].attach == AttachPoint(4, "j")  # D moved from 3 to 4
    assert [it.name for it in s["C"].iters] == ["i", "j", "k"]  # readers keep their iterators
    assert_dag_equivalent(dag, s)


def test_cache_read_of_an_intermediate_for_some_readers() -> None:
    dag = ComputeDAG(workloads.softmax())
    s = get_init_state(dag)
    s.cache_read("exp", "local", ["row_sum"])
    assert reads(s["row_sum"]) == {"exp.local"} and reads(s["softmax"]) == {"exp", "row_sum"}
    assert [st.name for st in s.stages] == ["X", "row_max", "exp", "exp.local", "row_sum", "softmax"]
    assert_dag_equivalent(dag, s)
    assert_lowered_matches(dag, s)


def test_cache_read_twice_keeps_names_unique() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s.cache_read("A", "shared", ["C"])
    second = s.cache_read("A.shared", "shared", ["C"])
    assert second.name == "A.shared.shared"
    third = s.cache_read("A", "shared", ["A.shared"])
    assert third.name == "A.shared.1"


def test_cache_read_errors() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    with pytest.raises(
        ScheduleError,
        match=r"cannot cache_read stage 'A' for stage 'D': 'D' does not read 'A' \(its readers: C\)",
    ):
        s.cache_read("A", "shared", ["D"])
    with pytest.raises(ScheduleError, match=r"cannot cache_read stage 'A': no reader stages given"):
        s.cache_read("A", "shared", [])
    with pytest.raises(ScheduleError, match=r"reader stages \[2, 2\] repeat"):
        s.cache_read("A", "shared", ["C", "C"])
    with pytest.raises(ScheduleError, match=r"unknown memory scope 'warp'"):
        s.cache_read("A", "warp", ["C"])


# rfactor ----------------------------------------------------------------------------------


def test_rfactor_of_a_split_reduction() -> None:
    dag = ComputeDAG(workloads.matmul(k=8))
    s = get_init_state(dag)
    _, k1 = s.split("C", "k", [4])
    tensor = s.rfactor("C", k1, 2)
    assert tensor.name == "C.rf" and tensor.shape == (16, 12, 4)
    assert [st.name for st in s.stages] == ["A", "B", "C.rf", "C"]
    assert summary(s["C.rf"]) == [
        ("i", 16, "spatial"),
        ("j", 12, "spatial"),
        ("k.1", 4, "spatial"),
        ("k.0", 2, "reduction"),
    ]
    assert summary(s["C"]) == [("i", 16, "spatial"), ("j", 12, "spatial"), ("k.1.v", 4, "reduction")]
    assert str(s["C"].op.body) == "sum(C.rf[i, j, k.1.v], axis=[k.1.v])"
    assert str(s["C.rf"].op.body) == "sum(A[i, k.0 * 4 + k.1] * B[k.0 * 4 + k.1, j], axis=[k.0])"
    assert_dag_equivalent(dag, s)


@pytest.mark.parametrize("kind", ["sum", "max", "min", "prod"])
def test_rfactor_with_a_non_dividing_split_guards_the_overflow(kind: str) -> None:
    dag = ComputeDAG(workloads.row_reduce(m=3, n=10, kind=kind))
    s = get_init_state(dag)
    stage = f"row_{kind}"
    k0, _ = s.split(stage, "r", [3])  # 4 x 3 covers 12 > 10
    s.rfactor(stage, k0, 0)
    body = s[f"{stage}.rf"].op.body
    assert isinstance(body, Reduce) and str(body.condition) == "r.0 * 3 + r.1 < 10"
    assert_dag_equivalent(dag, s)
    assert_lowered_matches(dag, s)


def test_rfactor_of_a_split_and_fused_reduction() -> None:
    dag = ComputeDAG(workloads.matmul(n=4, m=3, k=14))
    s = get_init_state(dag)
    k0, k1 = s.split("C", "k", [4])
    fused = s.fuse("C", [k0, k1])
    outer, _ = s.split("C", fused, [3])
    s.rfactor("C", outer, 0)
    assert summary(s["C.rf"])[0] == ("k.0@k.1@.0", 6, "spatial")
    s.parallel("C.rf", "k.0@k.1@.0")
    assert_dag_equivalent(dag, s)
    assert_lowered_matches(dag, s)


def test_rfactor_over_a_reduce_axis_not_starting_at_zero() -> None:
    dag = ComputeDAG(workloads.shifted_row_sum(begin=2, end=9))
    s = get_init_state(dag)
    _, r1 = s.split("shifted_sum", "r", [2])
    s.rfactor("shifted_sum", r1, 1)
    assert_dag_equivalent(dag, s)
    assert_lowered_matches(dag, s)


def test_rfactor_over_the_whole_reduction_leaves_no_reduce_in_rf() -> None:
    dag = ComputeDAG(workloads.row_reduce(m=3, n=5))
    s = get_init_state(dag)
    s.rfactor("row_sum", "r", 1)
    assert not isinstance(s["row_sum.rf"].op.body, Reduce)
    assert_dag_equivalent(dag, s)


def test_rfactor_keeps_the_compute_location() -> None:
    dag = ComputeDAG(workloads.matmul_relu())
    s = get_init_state(dag)
    s.compute_at("C", "D", "i")
    s.split("C", "k", [2])
    s.rfactor("C", "k.0", 2)
    assert s["C"].compute_at is ComputeAtKind.ITER and s["C"].attach == AttachPoint(4, "i")
    assert s["C.rf"].compute_at is ComputeAtKind.ROOT
    assert_lowered_matches(dag, s)


def test_rfactor_errors() -> None:
    s = get_init_state(ComputeDAG(workloads.matmul_relu()))
    with pytest.raises(
        ScheduleError, match=r"cannot rfactor iterator 'i' of stage 'C': it is a spatial iterator"
    ):
        s.rfactor("C", "i", 0)
    with pytest.raises(
        ScheduleError, match=r"cannot rfactor iterator 'i' of stage 'D': the stage has no reduction"
    ):
        s.rfactor("D", "i", 0)
    with pytest.raises(ScheduleError, match=r"factor_iter_id 3 must be in 0..2"):
        s.rfactor("C", "k", 3)
    s.split("C", "k", [None])
    with pytest.raises(ScheduleError, match=r"the extent of reduction iterator 'k.0' is unknown"):
        s.rfactor("C", "k.1", 0)
    s2 = get_init_state(ComputeDAG(workloads.matmul_relu()))
    mixed = s2.fuse("C", ["j", "k"])
    with pytest.raises(ScheduleError, match=r"iterator\(s\) j@k@ fuse spatial and reduction iterators"):
        s2.rfactor("C", mixed, 0)
    s3 = get_init_state(ComputeDAG(workloads.matmul_relu()))
    s3.cache_read("A", "shared", ["C"])
    s3.compute_at("A.shared", "C", "k")
    with pytest.raises(ScheduleError, match=r"stage\(s\) A.shared are computed at its iterators"):
        s3.rfactor("C", "k", 0)


# combinations, lowered and run ------------------------------------------------------------


def tile_ssrsrs(
    s: State, stage: str, spatial: list[tuple[str, list[int]]], reduce: list[tuple[str, list[int]]]
) -> None:
    """Ansor's CPU multi-level tiling: S S R S R S (lengths inner factors, 3 per spatial
    axis, 1 per reduce axis)."""
    levels: list[list[str]] = [[], [], [], [], [], []]
    for name, lengths in spatial:
        parts = [it.name for it in s.split(stage, name, lengths)]
        for level, part in zip((0, 1, 3, 5), parts, strict=True):
            levels[level].append(part)
    for name, lengths in reduce:
        parts = [it.name for it in s.split(stage, name, lengths)]
        for level, part in zip((2, 4), parts, strict=True):
            levels[level].append(part)
    s.reorder(stage, [name for level in levels for name in level])


def test_tiled_matmul_with_cache_write_fusion_parallel_and_vectorize() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(n=16, m=12, k=8))
    s = get_init_state(dag)
    s.compute_inline("biased")
    s.cache_write("C", "local")
    tile_ssrsrs(s, "C.local", [("i.c", [2, 2, 2]), ("j.c", [1, 3, 2])], [("k", [4])])
    i0, i1 = s.split("C", "i", [8])
    j0, j1 = s.split("C", "j", [6])
    s.reorder("C", [i0, j0, i1, j1])
    s.compute_at("C.local", "C", j0)
    fused = s.fuse("C", [i0, j0])
    s.parallel("C", fused)
    s.vectorize("C.local", "j.c.3")
    s.vectorize("C", j1)
    _, r1 = s.split("relu", "j", [4])
    s.vectorize("relu", r1)
    assert s["C.local"].attach == AttachPoint(3, "i.0@j.0@")
    assert [it.name for it in s["C.local"].iters] == [
        "i.c.0", "j.c.0", "i.c.1", "j.c.1", "k.0", "i.c.2", "j.c.2", "k.1", "i.c.3", "j.c.3"
    ]  # fmt: skip
    assert_lowered_matches(dag, s)


def test_conv2d_with_inlined_padding_tiled_and_parallel() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=3, h=6, w=6, co=4))
    s = get_init_state(dag)
    s.compute_inline("pad_temp")
    ff0, ff1 = s.split("conv", "ff", [2])
    yy0, yy1 = s.split("conv", "yy", [3])
    s.reorder("conv", ["nn", ff0, yy0, "xx", "rc", "ry", "rx", ff1, yy1])
    fused = s.fuse("conv", ["nn", ff0, yy0])
    s.parallel("conv", fused)
    s.unroll("conv", "rx")
    assert [it.kind for it in s["conv"].iters][2:5] == [IteratorKind.REDUCTION] * 3
    assert_lowered_matches(dag, s)


def test_cache_read_then_compute_at_the_reader() -> None:
    dag = ComputeDAG(workloads.matmul(n=8, m=6, k=8))
    s = get_init_state(dag)
    s.cache_read("B", "shared", ["C"])
    k0, k1 = s.split("C", "k", [4])
    s.reorder("C", [k0, "i", "j", k1])
    s.compute_at("B.shared", "C", k0)
    assert s["B.shared"].attach == AttachPoint(3, "k.0")
    assert_lowered_matches(dag, s)
