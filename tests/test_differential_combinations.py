"""Transform steps combined, built with LLVM and run against numpy.

Ansor's CPU sketches (paper section 4.1: multi-level tiling "SSRSRS" with cache_write,
tiling with fusion, always-inline, rfactor) on matmul, conv2d, transposed and depthwise
convolutions and softmax, and steps whose effect depends on where they land: stages
computed inside parallel, vectorized or unrolled loops, storage alignment inside a parallel
loop, reductions whose axis does not start at 0, integer reductions. Every case goes
through ``check_schedule`` (naive and scheduled kernels against the numpy reference, replay
and record round trip); shapes are small and odd (7, 13, 31, extent 1, non-dividing splits).
"""

from __future__ import annotations

import pytest
from differential import check_schedule, iter_extents, workloads

from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.tir import Allocate, ForKind, walk
from ir.topi.workloads import conv2d_bn_relu, conv2d_layer, depthwise, t2d

# steps inside parallel, vectorized and unrolled loops; odd reductions -------------------


def test_parallel_loop_with_a_stage_attached_inside() -> None:
    """Each thread needs its own tile of C: the allocation must live inside the parallel
    loop (a shared one races)."""
    dag = ComputeDAG(workloads.matmul_relu(61, 7, 31))

    def schedule(s: State) -> None:
        s.split("D", "i", [2])
        s.parallel("D", "i.0")
        s.compute_at("C", "D", "i.0")

    checked = check_schedule(dag, schedule)
    (parallel,) = checked.loops(ForKind.PARALLEL)
    assert [x for x in walk(parallel.body) if isinstance(x, Allocate)]


def test_nested_parallel_loops() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 5))

    def schedule(s: State) -> None:
        s.parallel("C", "i")
        s.parallel("C", "j")

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.PARALLEL) == 2


@pytest.mark.parametrize("annotation", ["vectorize", "unroll", "parallel"])
def test_compute_at_under_an_annotated_loop(annotation: str) -> None:
    dag = ComputeDAG(workloads.matmul_relu(5, 8, 3))

    def schedule(s: State) -> None:
        s.annotate("D", "j", annotation)
        s.compute_at("C", "D", "j")

    check_schedule(dag, schedule)


def test_storage_align_of_a_stage_inside_a_parallel_loop() -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 5))

    def schedule(s: State) -> None:
        s.split("D", "i", [4])
        s.parallel("D", "i.0")
        s.compute_at("C", "D", "i.0")
        s.storage_align("C", "i", 8, 2)

    check_schedule(dag, schedule)


def test_reduce_axis_not_starting_at_zero_split_unrolled() -> None:
    dag = ComputeDAG(workloads.shifted_row_sum(5, 2, 13))

    def schedule(s: State) -> None:
        s.split("shifted_sum", "r", [4], inner_to_outer=False)
        s.unroll("shifted_sum", "r.1")
        s.parallel("shifted_sum", "i")

    check_schedule(dag, schedule)


def test_reduce_axis_not_starting_at_zero_rfactor_vectorized() -> None:
    dag = ComputeDAG(workloads.shifted_row_sum(5, 2, 13))

    def schedule(s: State) -> None:
        s.split("shifted_sum", "r", [4])
        s.rfactor("shifted_sum", "r.1", 1)
        s.vectorize("shifted_sum.rf", "r.1")

    check_schedule(dag, schedule)


def test_int32_max_rfactor_parallel_partials() -> None:
    dag = ComputeDAG(workloads.row_reduce(5, 13, "max", "int32"))

    def schedule(s: State) -> None:
        s.split("row_max", "r", [4])
        s.rfactor("row_max", "r.0", 0)
        s.parallel("row_max.rf", "r.0")

    check_schedule(dag, schedule)


def test_max_pool_fused_outer_vectorized_window_row() -> None:
    dag = ComputeDAG(workloads.max_pool2d(1, 3, 9, 9, 3, 2))

    def schedule(s: State) -> None:
        fused = s.fuse("pool_max", ["b", "ch", "y"])
        s.reorder("pool_max", [fused, "ry", "rx", "x"])
        s.parallel("pool_max", fused)
        s.vectorize("pool_max", "x")

    check_schedule(dag, schedule)


def test_every_extent_1() -> None:
    dag = ComputeDAG(workloads.matmul(1, 1, 1))

    def schedule(s: State) -> None:
        s.split("C", "i", [4])
        s.parallel("C", "i.0")
        s.vectorize("C", "j")
        s.unroll("C", "k")

    check_schedule(dag, schedule)


def test_follow_fused_split_of_a_cache_write_tile() -> None:
    dag = ComputeDAG(workloads.matmul(13, 31, 7))

    def schedule(s: State) -> None:
        s.cache_write("C", "local")
        s.split("C.local", "i.c", [2, 2])  # step 1
        s.split("C.local", "j.c", [4, 2])  # step 2
        s.follow_fused_split("C", "i", [1, 2], 0, True)  # C.i by 2 * 4
        s.compute_at("C.local", "C", "i.0")

    checked = check_schedule(dag, schedule)
    assert iter_extents(checked.state, "C")[:2] == [2, 8]


def test_compute_at_a_split_of_a_fused_loop() -> None:
    dag = ComputeDAG(workloads.matmul_relu(13, 7, 5))

    def schedule(s: State) -> None:
        outer, inner = s.split("D", s.fuse("D", ["i", "j"]), [5])  # 91 = 18 * 5 + 1
        s.compute_at("C", "D", outer)
        s.vectorize("D", inner)

    check_schedule(dag, schedule)


def test_compute_at_nested_two_levels_non_dividing() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(13, 31, 7))

    def schedule(s: State) -> None:
        s.split("relu", "i", [4])
        s.split("relu", "j", [8])
        s.reorder("relu", ["i.0", "j.0", "i.1", "j.1"])
        s.compute_at("biased", "relu", "j.0")
        s.split("biased", "j", [3])
        s.compute_at("C", "biased", "j.0")
        s.vectorize("relu", "j.1")

    check_schedule(dag, schedule)


def test_cache_read_of_an_intermediate_at_a_tile() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(7, 13, 5))

    def schedule(s: State) -> None:
        s.cache_read("C", "local", ["biased"])
        s.split("biased", "j", [4])
        s.compute_at("C.local", "biased", "j.0")
        s.vectorize("biased", "j.1")
        s.parallel("C", "i")

    check_schedule(dag, schedule)


# combinations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "tiles"),
    [
        pytest.param((31, 13, 7), ((2, 2, 2), (1, 2, 4), 4), id="31x13x7"),
        pytest.param((16, 24, 8), ((2, 2, 2), (1, 3, 8), 2), id="16x24x8"),
        pytest.param((1, 7, 13), ((1, 1, 1), (1, 1, 7), 13), id="1x7x13"),
    ],
)
def test_ansor_cpu_ssrsrs_matmul(
    shape: tuple[int, int, int], tiles: tuple[tuple[int, ...], tuple[int, ...], int]
) -> None:
    """Ansor's CPU sketch (paper section 4.1, Figure 5): cache_write, SSRSRS multi-level
    tiling of the cache, the output following its outer tiles, outer loops fused and
    parallel, innermost spatial loop vectorized, auto-unroll pragma."""
    n, m, k = shape
    ti, tj, tk = tiles
    dag = ComputeDAG(workloads.matmul(n, m, k))

    def schedule(s: State) -> None:
        s.cache_write("C", "local")
        i0, i1, i2, i3 = s.split("C.local", "i.c", list(ti))  # steps 1, 2
        j0, j1, j2, j3 = s.split("C.local", "j.c", list(tj))
        k0, k1 = s.split("C.local", "k", [tk])
        s.reorder("C.local", [i0, j0, i1, j1, k0, i2, j2, k1, i3, j3])
        s.follow_split("C", "i", 1, 2)
        s.follow_split("C", "j", 2, 2)
        s.reorder("C", ["i.0", "j.0", "i.1", "j.1", "i.2", "j.2"])
        s.compute_at("C.local", "C", "j.1")
        outer = s.fuse("C", ["i.0", "j.0", "i.1", "j.1"])
        s.parallel("C", outer)
        s.pragma("C", outer, "auto_unroll_max_step$16")
        s.vectorize("C.local", j3)
        s.vectorize("C", "j.2")

    checked = check_schedule(dag, schedule)
    fused_extent = checked.state["C"].iters[0].extent
    assert checked.count(ForKind.PARALLEL) == (1 if fused_extent != 1 else 0)


def test_conv2d_inlined_pad_tiled_output() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=3, h=7, w=13, co=5, pad=1))

    def schedule(s: State) -> None:
        s.compute_inline("pad_temp")
        s.split("conv", "ff", [2])
        s.split("conv", "yy", [3])
        s.split("conv", "xx", [4])
        s.reorder("conv", ["nn", "ff.0", "yy.0", "xx.0", "rc", "ry", "ff.1", "yy.1", "rx", "xx.1"])
        outer = s.fuse("conv", ["nn", "ff.0", "yy.0"])
        s.parallel("conv", outer)
        s.unroll("conv", "ry")
        s.vectorize("conv", "xx.1")

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.PARALLEL) == 1
    assert checked.count(ForKind.VECTORIZED) >= 1
    assert checked.count(ForKind.UNROLLED) >= 1


def test_ansor_cpu_conv2d_nhwc_ssrsrs() -> None:
    """Ansor's CPU sketch on a topi NHWC conv2d: padding inlined, cache_write, SSRSRS on
    the seven loops of the cache, the output following the spatial splits."""
    dag = ComputeDAG(conv2d_layer(1, 7, 7, 3, 5, 3, 1, 1))
    cache = "conv2d_nhwc.local"

    def schedule(s: State) -> None:
        s.compute_inline("conv2d_nhwc_pad")
        s.cache_write("conv2d_nhwc", "local")
        spatial = [
            s.split(cache, name, lengths)
            for name, lengths in (
                ("nn.c", [1, 1, 1]),
                ("yy.c", [1, 7, 1]),
                ("xx.c", [2, 1, 2]),
                ("ff.c", [1, 2, 2]),
            )
        ]  # steps 2..5
        reduce = [s.split(cache, name, [f]) for name, f in (("ry", 1), ("rx", 3), ("rc", 2))]
        order = [sp[0] for sp in spatial] + [sp[1] for sp in spatial] + [r[0] for r in reduce]
        order += [sp[2] for sp in spatial] + [r[1] for r in reduce] + [sp[3] for sp in spatial]
        s.reorder(cache, order)
        for name, src in zip(["nn", "yy", "xx", "ff"], [2, 3, 4, 5], strict=True):
            s.follow_split("conv2d_nhwc", name, src, 2)
        levels = [[f"{a}.{level}" for a in ("nn", "yy", "xx", "ff")] for level in range(3)]
        s.reorder("conv2d_nhwc", [name for level in levels for name in level])
        s.compute_at(cache, "conv2d_nhwc", "ff.1")
        outer = s.fuse("conv2d_nhwc", levels[0])
        s.parallel("conv2d_nhwc", outer)
        s.pragma("conv2d_nhwc", outer, "auto_unroll_max_step$64")
        s.vectorize(cache, spatial[3][3])
        s.vectorize("conv2d_nhwc", "ff.2")

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.PARALLEL) == 1


def test_conv_layer_nchw_fused_tail_computes_conv_at_a_tile() -> None:
    dag = ComputeDAG(conv2d_bn_relu(1, 5, 7, 2, 3, 3, 2, 1, layout="NCHW"))

    def schedule(s: State) -> None:
        for stage in ("conv2d_nchw_pad", "bias_add", "bn_mul", "bn_add"):
            s.compute_inline(stage)
        s.split("T_relu", "ax2", [2])
        s.split("T_relu", "ax3", [2])
        s.reorder("T_relu", ["ax0", "ax1", "ax2.0", "ax3.0", "ax2.1", "ax3.1"])
        s.compute_at("conv2d_nchw", "T_relu", "ax3.0")
        s.parallel("T_relu", "ax1")

    check_schedule(dag, schedule)


def test_t2d_tiled_unrolled_vectorized() -> None:
    dag = ComputeDAG(t2d(1, 4, 5, 3, 2, 4, 2, 1))
    stage = "conv2d_transpose_nhwc"

    def schedule(s: State) -> None:
        s.compute_inline(f"{stage}_pad")
        s.split(stage, "w", [3])
        s.reorder(stage, ["n", "h", "w.0", "rh", "rw", "rc", "w.1", "co"])
        s.vectorize(stage, "co")
        s.unroll(stage, "w.1")
        s.parallel(stage, "h")

    check_schedule(dag, schedule)


def test_depthwise_rfactor_of_the_fused_kernel_window() -> None:
    dag = ComputeDAG(depthwise(1, 5, 5, 3, 3, 1, 1, multiplier=2))
    stage = "depthwise_conv2d_nhwc"

    def schedule(s: State) -> None:
        s.compute_inline(f"{stage}_pad")
        outer, _ = s.split(stage, s.fuse(stage, ["di", "dj"]), [2])  # 5 x 2 covers 10 > 9
        s.rfactor(stage, outer, 3)
        s.parallel(f"{stage}.rf", "i")

    check_schedule(dag, schedule)


def test_softmax_inlined_exp_split_vectorized() -> None:
    dag = ComputeDAG(workloads.softmax(5, 31))

    def schedule(s: State) -> None:
        s.compute_inline("exp")
        s.split("softmax", "j", [8])
        s.vectorize("softmax", "j.1")
        s.compute_at("row_sum", "softmax", "i")
        s.compute_at("row_max", "softmax", "i")
        s.parallel("softmax", "i")

    check_schedule(dag, schedule)


def test_conv2d_strided_cache_write_tiles() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(n=1, ci=2, h=9, w=9, co=3, pad=1, stride=2))

    def schedule(s: State) -> None:
        s.compute_inline("pad_temp")
        s.cache_write("conv", "local")
        s.split("conv", "yy", [2])
        s.split("conv", "xx", [3])
        s.reorder("conv", ["nn", "ff", "yy.0", "xx.0", "yy.1", "xx.1"])
        s.compute_at("conv.local", "conv", "xx.0")
        s.parallel("conv", s.fuse("conv", ["nn", "ff"]))

    check_schedule(dag, schedule)


def test_softmax_with_compute_at() -> None:
    dag = ComputeDAG(workloads.softmax(7, 13))

    def schedule(s: State) -> None:
        # consumers first: a stage goes inside a loop that runs all of its consumers
        s.compute_at("row_sum", "softmax", "i")
        s.compute_at("exp", "softmax", "i")
        s.compute_at("row_max", "softmax", "i")
        s.parallel("softmax", "i")
        s.vectorize("softmax", "j")
        s.vectorize("exp", "j")

    checked = check_schedule(dag, schedule)
    assert checked.count(ForKind.PARALLEL) == 1


def test_softmax_rfactor_of_the_row_sum() -> None:
    dag = ComputeDAG(workloads.softmax(3, 31))

    def schedule(s: State) -> None:
        s.compute_inline("exp")
        _, inner = s.split("row_sum", "k2", [8])
        s.rfactor("row_sum", inner, 1)
        s.compute_at("row_sum.rf", "row_sum", "i")
        s.compute_at("row_sum", "softmax", "i")
        s.compute_at("row_max", "softmax", "i")

    check_schedule(dag, schedule)


@pytest.mark.parametrize("shape", [(13, 31, 7), (8, 16, 4), (1, 13, 1)])
def test_matmul_bias_relu_tiled_with_fusion(shape: tuple[int, int, int]) -> None:
    """Ansor's "multi-level tiling with fusion" (paper section 4.1): the elementwise tail is
    inlined, the matmul is computed at a tile of the fused consumer."""
    n, m, k = shape
    dag = ComputeDAG(workloads.matmul_bias_relu(n, m, k))

    def schedule(s: State) -> None:
        s.compute_inline("biased")
        s.split("relu", "i", [2, 2])  # step 1
        s.split("relu", "j", [2, 4])  # step 2
        s.reorder("relu", ["i.0", "j.0", "i.1", "j.1", "i.2", "j.2"])
        s.compute_at("C", "relu", "j.1")
        s.split("C", "k", [2])
        s.reorder("C", ["k.0", "i", "k.1", "j"])
        s.vectorize("C", "j")
        s.parallel("relu", s.fuse("relu", ["i.0", "j.0"]))
        s.vectorize("relu", "j.2")

    check_schedule(dag, schedule)


def test_int32_tiled_matmul_exact() -> None:
    dag = ComputeDAG(workloads.matmul(13, 7, 31, dtype="int32"))

    def schedule(s: State) -> None:
        s.cache_write("C", "local")
        s.split("C", "i", [4])
        s.split("C", "j", [4])
        s.reorder("C", ["i.0", "j.0", "i.1", "j.1"])
        s.compute_at("C.local", "C", "j.0")
        s.parallel("C", "i.0")
        s.vectorize("C", "j.1")

    check_schedule(dag, schedule)
