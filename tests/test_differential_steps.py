"""Every transform step on its own, built with LLVM and run against numpy.

Each case schedules a shared workload through the State API, and
``check_schedule`` builds the naive and the scheduled program with LLVM, runs both on the
same random inputs, compares them with the numpy reference, and checks that replaying the
steps and round-tripping their records give the same program and result. Shapes are small
and odd on purpose (primes 7, 13, 31, extent-1 axes, splits that do not divide) so that
boundary guards are exercised. Besides the numbers, each case checks the step left its
mark (the loop names, or the loop kinds of the lowered program), so a step silently dropped
by lowering fails too.

The step kinds (Ansor paper section 4.1, TVM ``transform_step.h``): split (SP), follow_split
(FSP), follow_fused_split (FFSP), fuse (FU), reorder (RE), annotation (AN: parallel,
vectorize, unroll), pragma (PR), storage_align (SA), compute_at (CA), compute_inline (CI),
compute_root (CR), cache_read (CHR), cache_write (CHW), rfactor (RF). GPU bindings do not
build for LLVM targets; that they fail cleanly is checked in ``tests/codegen/test_build.py``.
Steps combined (Ansor's sketches, steps inside parallel or vectorized loops) are in
``test_differential_combinations.py``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from differential import check_schedule, elementwise_chain, iter_extents, iter_names, workloads

from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.loop_state.replay import replay_steps
from ir.loop_state.steps import SplitStep
from ir.tir import Allocate, ForKind, walk

# split ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "lengths", "inner_to_outer", "expected"),
    [
        pytest.param(12, [4], True, [3, 4], id="dividing"),
        pytest.param(13, [4], True, [4, 4], id="non-dividing"),
        pytest.param(13, [3], False, [3, 5], id="nparts"),
        pytest.param(31, [2, 3], True, [6, 2, 3], id="three-levels"),
        pytest.param(31, [2, 3], False, [2, 3, 6], id="three-levels-nparts"),
        pytest.param(7, [16], True, [1, 16], id="factor-above-extent"),
        pytest.param(1, [4], True, [1, 4], id="extent-1"),
        pytest.param(13, [1, 13, 1], True, [1, 1, 13, 1], id="unit-lengths"),
    ],
)
def test_split_spatial(n: int, lengths: list[int], inner_to_outer: bool, expected: list[int]) -> None:
    dag = ComputeDAG(workloads.matmul(n, 7, 5))
    checked = check_schedule(dag, lambda s: s.split("C", "i", lengths, inner_to_outer))
    assert iter_extents(checked.state, "C")[: len(expected)] == expected


@pytest.mark.parametrize(
    ("k", "lengths"),
    [pytest.param(8, [2, 2], id="dividing"), pytest.param(7, [2, 2], id="non-dividing")],
)
def test_split_reduction(k: int, lengths: list[int]) -> None:
    dag = ComputeDAG(workloads.matmul(5, 3, k))
    checked = check_schedule(dag, lambda s: s.split("C", "k", lengths))
    assert iter_names(checked.state, "C") == ["i", "j", "k.0", "k.1", "k.2"]


@pytest.mark.parametrize(
    "filled",
    [
        pytest.param((2, 3), id="dividing-13x6"),
        pytest.param((4, 4), id="over-13"),
        pytest.param((1, 1), id="ones"),
    ],
)
def test_split_with_unknown_lengths_filled_later(filled: tuple[int, int]) -> None:
    """A sketch's split leaves lengths unknown; the search fills them in the step and
    replays (Ansor paper section 4.2): the filled state must build and compute."""
    dag = ComputeDAG(workloads.matmul(13, 31, 7))

    def schedule(s: State) -> None:
        s.split("C", "i", [None, None])
        s.split("C", "j", [None])
        assert not s.concrete
        steps = [
            replace(step, lengths=filled if len(step.lengths) == 2 else (8,))
            if isinstance(step, SplitStep)
            else step
            for step in s.transform_steps
        ]
        s.loop_state = replay_steps(dag, steps)
        s.parallel("C", "i.0")
        s.vectorize("C", "j.1")

    checked = check_schedule(dag, schedule)
    assert checked.state.concrete
    assert iter_extents(checked.state, "C")[1:3] == list(filled)


def test_follow_split_copies_the_lengths_of_another_stage() -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 5))

    def schedule(s: State) -> None:
        s.split("D", "i", [2, 3])  # step 0
        s.follow_split("C", "i", 0, 2)  # C.i into [?, 2, 3]
        s.follow_split("C", "j", 0, 1)  # C.j into [?, 6]

    checked = check_schedule(dag, schedule)
    assert iter_extents(checked.state, "C") == [3, 2, 3, 2, 6, 5]


@pytest.mark.parametrize(
    ("level", "factor"),
    [
        pytest.param(0, True, id="level0-factor"),
        pytest.param(1, True, id="level1-factor"),
        pytest.param(0, False, id="level0-nparts"),
    ],
)
def test_follow_fused_split(level: int, factor: bool) -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 5))

    def schedule(s: State) -> None:
        s.split("D", "i", [2, 3])  # step 0
        s.split("D", "j", [3, 2])  # step 1
        s.follow_fused_split("C", "i", [0, 1], level, factor)

    checked = check_schedule(dag, schedule)
    length = [6, 6][level]
    assert iter_extents(checked.state, "C")[1 if factor else 0] == length


# fuse and reorder -------------------------------------------------------------------------


def test_fuse_two_spatial_axes() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))
    checked = check_schedule(dag, lambda s: s.fuse("C", ["i", "j"]))
    assert iter_names(checked.state, "C") == ["i@j@", "k"] and iter_extents(checked.state, "C") == [91, 5]


def test_fuse_with_extent_1_axes_and_reduce_axes() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=3, h=7, w=5, co=1))

    def schedule(s: State) -> None:
        s.fuse("conv", ["nn", "ff", "yy"])
        s.fuse("conv", ["rc", "ry", "rx"])

    checked = check_schedule(dag, schedule)
    assert iter_extents(checked.state, "conv") == [7, 5, 27]


def test_fuse_after_split() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))

    def schedule(s: State) -> None:
        _, i1 = s.split("C", "i", [4])
        j0, _ = s.split("C", "j", [3])
        s.reorder("C", ["i.0", j0, i1, "j.1", "k"])
        s.fuse("C", [i1, "j.1"])

    checked = check_schedule(dag, schedule)
    assert iter_names(checked.state, "C") == ["i.0", "j.0", "i.1@j.1@", "k"]


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(["k", "j", "i"], id="kji"),
        pytest.param(["j", "k", "i"], id="jki"),
        pytest.param(["i", "k", "j"], id="ikj"),
    ],
)
def test_reorder(order: list[str]) -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))
    checked = check_schedule(dag, lambda s: s.reorder("C", order))
    assert iter_names(checked.state, "C") == order


def test_reorder_split_reduction_between_spatial_tiles() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 31))

    def schedule(s: State) -> None:
        s.split("C", "i", [4])
        s.split("C", "k", [8])
        s.reorder("C", ["k.0", "i.0", "j", "k.1", "i.1"])

    check_schedule(dag, schedule)


# annotations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "factor"),
    [
        pytest.param(13, 4, id="non-dividing"),
        pytest.param(12, 3, id="dividing"),
        pytest.param(1, 2, id="extent-1"),
    ],
)
def test_parallel_outer_split(n: int, factor: int) -> None:
    dag = ComputeDAG(workloads.matmul(n, 7, 5))

    def schedule(s: State) -> None:
        io, _ = s.split("C", "i", [factor])
        s.parallel("C", io)

    checked = check_schedule(dag, schedule)
    if n > factor:
        assert checked.count(ForKind.PARALLEL) == 1


def test_parallel_fused_axes_of_a_reduction() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 31))

    def schedule(s: State) -> None:
        s.parallel("C", s.fuse("C", ["i", "j"]))

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.PARALLEL) == 1


def test_parallel_two_root_stages() -> None:
    dag = ComputeDAG(workloads.softmax(7, 13))

    def schedule(s: State) -> None:
        for stage in ("row_max", "exp", "row_sum", "softmax"):
            s.parallel(stage, "i")

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.PARALLEL) == 4


@pytest.mark.parametrize("width", [1, 3, 7, 8, 16])
def test_vectorize_inner_split(width: int) -> None:
    dag = ComputeDAG(workloads.matmul(5, 13, 7))

    def schedule(s: State) -> None:
        s.split("C", "j", [width])
        s.reorder("C", ["i", "j.0", "k", "j.1"])
        s.vectorize("C", "j.1")

    checked = check_schedule(dag, schedule)
    if width > 1:
        assert checked.count(ForKind.VECTORIZED) >= 1


@pytest.mark.parametrize("m", [1, 3, 7])
def test_vectorize_whole_innermost_axis(m: int) -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(5, m, 6))

    def schedule(s: State) -> None:
        for stage in ("biased", "relu"):
            s.vectorize(stage, "j")

    checked = check_schedule(dag, schedule)
    if m > 1:
        assert checked.count(ForKind.VECTORIZED) == 2


def test_vectorize_after_fuse() -> None:
    dag = ComputeDAG(elementwise_chain(7, 13))

    def schedule(s: State) -> None:
        fused = s.fuse("out", ["i", "j"])
        _, inner = s.split("out", fused, [8])  # 91 = 11 * 8 + 3
        s.vectorize("out", inner)
        s.vectorize("scaled", s.fuse("scaled", ["i", "j"]))

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.VECTORIZED) == 2


def test_vectorize_padding_select() -> None:
    """The padding stage reads its input under a condition: masked vector loads."""
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=2, h=5, w=7, co=3, pad=1))

    def schedule(s: State) -> None:
        s.vectorize("pad_temp", "i3")
        s.split("conv", "xx", [4])
        s.reorder("conv", ["nn", "ff", "yy", "xx.0", "rc", "ry", "rx", "xx.1"])
        s.vectorize("conv", "xx.1")

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.VECTORIZED) >= 2  # the reduction's init loop is one more


def test_vectorize_int_matmul() -> None:
    dag = ComputeDAG(workloads.matmul(5, 7, 6, dtype="int32"))

    def schedule(s: State) -> None:
        s.reorder("C", ["i", "k", "j"])
        s.vectorize("C", "j")

    check_schedule(dag, schedule)


@pytest.mark.parametrize(
    ("stage_iter", "split"),
    [
        pytest.param("j.1", [3], id="inner-spatial"),
        pytest.param("k", None, id="reduction"),
        pytest.param("j.0", [3], id="outer-non-dividing"),
    ],
)
def test_unroll(stage_iter: str, split: list[int] | None) -> None:
    dag = ComputeDAG(workloads.matmul(5, 7, 6))

    def schedule(s: State) -> None:
        if split is not None:
            s.split("C", "j", split)
        s.unroll("C", stage_iter)

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.UNROLLED) >= 1


@pytest.mark.parametrize("max_step", [0, 4, 16, 512])
def test_pragma_auto_unroll_max_step(max_step: int) -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))

    def schedule(s: State) -> None:
        s.split("C", "j", [3])
        s.split("C", "i", [2])
        s.reorder("C", ["i.0", "j.0", "k", "i.1", "j.1"])
        s.pragma("C", "i.0", f"auto_unroll_max_step${max_step}")

    checked = check_schedule(dag, schedule)
    assert checked.state["C"].auto_unroll_max_step == max_step
    pragmas = [
        loop.annotations["pragma_auto_unroll_max_step"]
        for kind in ForKind
        for loop in checked.loops(kind)
        if "pragma_auto_unroll_max_step" in loop.annotations
    ]
    assert pragmas == ([max_step] if max_step else [])


@pytest.mark.parametrize(("factor", "offset"), [(8, 1), (4, 0), (16, 3)])
def test_storage_align(factor: int, offset: int) -> None:
    dag = ComputeDAG(workloads.matmul_relu(7, 13, 5))

    def schedule(s: State) -> None:
        s.storage_align("C", "i", factor, offset)

    checked = check_schedule(dag, schedule)
    (allocation,) = [x for x in walk(checked.func.body) if isinstance(x, Allocate)]
    stride = allocation.buffer.strides[0]
    assert stride >= 13 and stride % factor == offset % factor


def test_storage_align_of_a_cache_read_at_a_loop() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))

    def schedule(s: State) -> None:
        s.cache_read("A", "local", ["C"])
        s.split("C", "i", [4])
        s.compute_at("A.local", "C", "i.0")
        s.storage_align("A.local", "ax0", 8, 3)

    check_schedule(dag, schedule)


# compute location -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["i", "j"])
def test_compute_at_consumer_loop(target: str) -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 5))
    checked = check_schedule(dag, lambda s: s.compute_at("C", "D", target))
    assert checked.state["C"].attach is not None


@pytest.mark.parametrize(
    "target",
    ["i.0", "i.1", "j.0", "j.2"],
)
def test_compute_at_levels_of_non_dividing_consumer_splits(target: str) -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 31, 7))

    def schedule(s: State) -> None:
        s.split("D", "i", [4])
        s.split("D", "j", [3, 2])
        s.reorder("D", ["i.0", "j.0", "i.1", "j.1", "j.2"])
        s.compute_at("C", "D", target)

    check_schedule(dag, schedule)


def test_compute_at_producer_with_its_own_tiles() -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 31))

    def schedule(s: State) -> None:
        s.split("D", "i", [4])
        s.compute_at("C", "D", "i.0")
        s.split("C", "k", [8])
        s.reorder("C", ["k.0", "i", "j", "k.1"])
        s.vectorize("D", "j")

    check_schedule(dag, schedule)


def test_compute_at_chain_of_three_stages() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(7, 13, 5))

    def schedule(s: State) -> None:
        s.split("relu", "j", [4])
        s.compute_at("biased", "relu", "j.0")
        s.compute_at("C", "biased", "j")

    check_schedule(dag, schedule)


def test_compute_inline_pad_into_conv() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=3, h=7, w=5, co=2, pad=1))
    checked = check_schedule(dag, lambda s: s.compute_inline("pad_temp"))
    assert not [x for x in walk(checked.func.body) if isinstance(x, Allocate)]


def test_compute_inline_elementwise_chain() -> None:
    dag = ComputeDAG(elementwise_chain(7, 13))

    def schedule(s: State) -> None:
        s.compute_inline("scaled")
        s.compute_inline("mag")

    checked = check_schedule(dag, schedule)
    assert not [x for x in walk(checked.func.body) if isinstance(x, Allocate)]


def test_compute_inline_bias_between_matmul_and_relu() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(7, 13, 5))
    check_schedule(dag, lambda s: s.compute_inline("biased"))


def test_compute_root_undoes_compute_at() -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 5))

    def schedule(s: State) -> None:
        s.split("D", "i", [4])
        s.compute_at("C", "D", "i.0")
        s.compute_root("C")
        s.parallel("C", "i")

    checked = check_schedule(dag, schedule)
    assert checked.state["C"].attach is None


# stage-inserting steps --------------------------------------------------------------------


@pytest.mark.parametrize("at", ["j.0", "k"])
def test_cache_read_packing_at_a_tile(at: str) -> None:
    """Pack the column tile of B that a j tile of C reads (a packing, Ansor's CPU layout)."""
    dag = ComputeDAG(workloads.matmul(13, 31, 7))

    def schedule(s: State) -> None:
        s.cache_read("B", "local", ["C"])
        s.split("C", "j", [8])
        s.reorder("C", ["j.0", "i", "k", "j.1"])
        s.compute_at("B.local", "C", at)
        s.vectorize("C", "j.1")

    check_schedule(dag, schedule)


def test_cache_read_at_root_for_some_readers() -> None:
    dag = ComputeDAG(workloads.softmax(7, 13))

    def schedule(s: State) -> None:
        s.cache_read("exp", "local", ["row_sum"])
        s.parallel("exp.local", "ax0")

    check_schedule(dag, schedule)


@pytest.mark.parametrize(("fi", "fj"), [(4, 3), (2, 8), (13, 1)])
def test_cache_write_register_tile(fi: int, fj: int) -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))

    def schedule(s: State) -> None:
        s.cache_write("C", "local")
        s.split("C", "i", [fi])
        s.split("C", "j", [fj])
        s.reorder("C", ["i.0", "j.0", "i.1", "j.1"])
        s.compute_at("C.local", "C", "j.0")

    checked = check_schedule(dag, schedule)
    (allocation,) = [x for x in walk(checked.func.body) if isinstance(x, Allocate)]
    assert allocation.buffer.num_elements <= fi * fj  # the cache holds one tile


def test_cache_write_at_root() -> None:
    dag = ComputeDAG(workloads.matmul_relu(7, 13, 5))

    def schedule(s: State) -> None:
        s.cache_write("C", "local")
        s.vectorize("C", "j")

    check_schedule(dag, schedule)


@pytest.mark.parametrize(
    ("n", "factor", "which", "factor_iter"),
    [
        pytest.param(12, 4, 1, 1, id="inner-dividing"),
        pytest.param(13, 4, 1, 0, id="inner-non-dividing-first"),
        pytest.param(31, 8, 0, 1, id="outer-non-dividing"),
        pytest.param(7, 16, 1, 1, id="factor-above-extent"),
    ],
)
def test_rfactor_after_split(n: int, factor: int, which: int, factor_iter: int) -> None:
    dag = ComputeDAG(workloads.row_reduce(m=5, n=n))

    def schedule(s: State) -> None:
        parts = s.split("row_sum", "r", [factor])
        s.rfactor("row_sum", parts[which], factor_iter)

    checked = check_schedule(dag, schedule)
    assert [st.name for st in checked.state.stages] == ["A", "row_sum.rf", "row_sum"]


@pytest.mark.parametrize("kind", ["max", "min", "prod"])
def test_rfactor_other_reducers(kind: str) -> None:
    dag = ComputeDAG(workloads.row_reduce(m=3, n=13, kind=kind))
    stage = f"row_{kind}"

    def schedule(s: State) -> None:
        _, inner = s.split(stage, "r", [4])
        s.rfactor(stage, inner, 1)
        s.parallel(f"{stage}.rf", "i")

    check_schedule(dag, schedule)


def test_rfactor_after_fusing_two_reduce_axes() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=3, h=5, w=5, co=2, pad=0))

    def schedule(s: State) -> None:
        fused = s.fuse("conv", ["ry", "rx"])  # 9
        _, inner = s.split("conv", fused, [4])  # 3 x 4 covers 12 > 9
        s.rfactor("conv", inner, 4)

    checked = check_schedule(dag, schedule)
    assert "conv.rf" in [st.name for st in checked.state.stages]


def test_rfactor_then_vectorize_the_partials() -> None:
    dag = ComputeDAG(workloads.row_reduce(3, 31))

    def schedule(s: State) -> None:
        s.split("row_sum", "r", [8])
        s.rfactor("row_sum", "r.1", 1)
        s.reorder("row_sum.rf", ["i", "r.0", "r.1"])
        s.vectorize("row_sum.rf", "r.1")
        s.compute_at("row_sum.rf", "row_sum", "i")

    check_schedule(dag, schedule)
