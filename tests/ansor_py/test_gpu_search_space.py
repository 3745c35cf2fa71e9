"""The GPU search space: sketches (the structure TVM's CUDA sketch tests check; the counts
are in ``test_sketch_generation``) and random annotation with thread binding, within the
block limits of the target."""

from __future__ import annotations

import pytest
import search_workloads as W

from ansor_py.cost_model import RandomModel
from ansor_py.search import SketchPolicy
from ansor_py.search.gpu_limits import fits_gpu_limits
from ansor_py.search.gpu_sketch_rules import GPU_SKETCH_RULES
from ansor_py.search.stage_queries import (
    has_cache_write_stage,
    has_cross_thread_reduction,
    is_tiled,
    made_by_step,
)
from ansor_py.search_task import SearchTask
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation, StageKind
from ir.loop_state.state import LoopState
from ir.loop_state.steps import CacheReadStep

TARGET = "cuda -arch=sm_80"


#: a small sampling round: 256 candidates drawn per try, 64 valid ones kept
SMALL_SAMPLING = {"evolutionary_search_population": 256, "sample_init_min_population": 64}


def policy_of(func, args, target: str = TARGET, seed: int = 0) -> SketchPolicy:
    task = SearchTask(func=func, args=args, target=target)
    return SketchPolicy(task, RandomModel(seed=seed), params=SMALL_SAMPLING, seed=seed, verbose=0)


def sketches_of(func, args) -> list[LoopState]:
    return policy_of(func, args).generate_sketches()


def reads_through_shared(state: LoopState, stage_id: int) -> bool:
    """A cache_read step copied the stage now at ``stage_id`` (TVM HasCacheReadStage)."""
    return made_by_step(state.transform_steps, stage_id, CacheReadStep)


def at(state: LoopState, stage_id: int) -> ComputeAtKind:
    return state.stages[stage_id].compute_at


ROOT, ITER, INLINED = ComputeAtKind.ROOT, ComputeAtKind.ITER, ComputeAtKind.INLINED


def test_gpu_rule_order_is_tvms():
    names = [rule.name for rule in GPU_SKETCH_RULES]
    assert names == [
        "RuleAddCacheRead",
        "RuleSpecialComputeLocationGPU",
        "RuleAlwaysInline",
        "RuleSimplifyComputeWithConstTensor",
        "RuleCrossThreadReduction",
        "RuleAddCacheWrite",
        "RuleMultiLevelTilingWithFusion",
        "RuleMultiLevelTiling",
        "RuleSkipStage",
    ]


def test_matmul_reads_both_inputs_through_shared_memory_and_accumulates_in_registers():
    (sketch,) = sketches_of(W.search_test_matmul, (512, 512, 512))
    assert reads_through_shared(sketch, 0) and at(sketch, 1) is ITER  # A.shared
    assert reads_through_shared(sketch, 2) and at(sketch, 3) is ITER  # B.shared
    assert has_cache_write_stage(sketch, 4) and is_tiled(sketch.stages[4]) and at(sketch, 4) is ITER
    assert is_tiled(sketch.stages[5])
    names = [stage.op.name for stage in sketch.stages]
    assert names[1].endswith(".shared") and names[3].endswith(".shared") and names[4].endswith(".local")
    # SSSRRSRS: 5 levels per spatial axis, 3 per reduction axis
    assert len(sketch.stages[4].iters) == 2 * 5 + 3


def test_a_small_space_matmul_gets_a_cross_thread_reduction_first():
    cross, tiled = sketches_of(W.search_test_matmul, (8, 8, 1024))
    assert has_cross_thread_reduction(cross, 2)
    bound = [it for it in cross.stages[2].iters if it.annotation is IteratorAnnotation.THREAD_X]
    assert len(bound) == 1 and bound[0].extent == 32  # split by the warp
    assert reads_through_shared(tiled, 0) and reads_through_shared(tiled, 2)
    assert has_cache_write_stage(tiled, 4) and at(tiled, 4) is ITER and is_tiled(tiled.stages[5])


def test_double_matmul_tiles_one_and_keeps_the_other_at_the_root():
    (sketch,) = sketches_of(W.search_test_double_matmul, (512,))
    assert at(sketch, 5) is ROOT and at(sketch, 6) is ITER


def test_conv2d_bn_relu_inlines_the_epilogue_and_the_padding():
    (sketch,) = sketches_of(W.search_test_conv2d_nchw_bn_relu, (1, 56, 56, 512, 512, 3, 1, 1))
    assert reads_through_shared(sketch, 1) and at(sketch, 1) is INLINED and at(sketch, 2) is ITER
    assert reads_through_shared(sketch, 3) and at(sketch, 4) is ITER
    assert is_tiled(sketch.stages[5]) and at(sketch, 5) is ITER
    assert at(sketch, 7) is INLINED and at(sketch, 9) is INLINED and at(sketch, 11) is INLINED
    assert is_tiled(sketch.stages[12])


def test_reductions_without_reuse_get_a_cross_thread_sketch_and_a_plain_one():
    assert [len(s.transform_steps) for s in sketches_of(W.search_test_max_pool2d, (1, 56, 56, 512, 0))] == [0]
    cross, plain = sketches_of(W.search_test_min_nm, (10, 1024))
    assert has_cross_thread_reduction(cross, 1) and not plain.transform_steps
    for args, func in (
        ((2, 1024), W.search_test_softmax_nm),
        ((1, 12, 128, 128), W.search_test_softmax_abcd),
    ):
        sketches = sketches_of(func, args)
        assert has_cross_thread_reduction(sketches[0], 1) and has_cross_thread_reduction(sketches[0], 3)
        assert not has_cross_thread_reduction(sketches[1], 1) and has_cross_thread_reduction(sketches[1], 3)
        assert has_cross_thread_reduction(sketches[2], 1) and not has_cross_thread_reduction(sketches[2], 3)
        assert all(at(s, 2) is INLINED for s in sketches)  # the exp is inlined everywhere


def thread_extent(stage) -> int:
    extents = [it.extent for it in stage.iters if it.annotation is IteratorAnnotation.THREAD_X]
    return extents[0] if extents else 1


@pytest.mark.parametrize(
    ("func", "args"),
    [
        (W.search_test_matmul, (512, 512, 512)),
        (W.search_test_conv2d_nchw_bn_relu, (1, 14, 14, 64, 64, 3, 1, 1)),
    ],
    ids=["matmul512", "conv2d_bn_relu"],
)
def test_sampled_programs_bind_block_vthread_and_thread_and_fetch_cooperatively(func, args):
    policy = policy_of(func, args)
    programs = policy.sample_initial_population()
    assert len(programs) >= 50
    hardware = policy.search_task.hardware_params
    for state in programs[:50]:
        assert fits_gpu_limits(hardware, state)
        roots = [
            (i, s)
            for i, s in enumerate(state.stages)
            if s.op_type is StageKind.COMPUTE and s.compute_at is ROOT
        ]
        for stage_id, stage in roots:
            annotations = [it.annotation for it in stage.iters]
            assert IteratorAnnotation.THREAD_X in annotations, (stage.name, str(state))
            if is_tiled(stage) and stage_id == len(state.stages) - 1:
                assert annotations[:3] == [
                    IteratorAnnotation.BLOCK_X,
                    IteratorAnnotation.VTHREAD,
                    IteratorAnnotation.THREAD_X,
                ]
                assert stage.iters[1].extent <= hardware.max_vthread_extent
                assert 32 <= stage.iters[2].extent <= hardware.max_threads_per_block
                shared = [s for s in state.stages if s.op.name.endswith(".shared")]
                assert shared and all(thread_extent(s) == stage.iters[2].extent for s in shared)
                assert all(s.iters[-1].annotation is IteratorAnnotation.VECTORIZE for s in shared)


def test_sampling_never_keeps_a_block_over_the_shared_memory_limit():
    """With 4 KiB of shared memory per block, every sampled matmul program's shared copies
    fit in 4 KiB: candidates over the limit are rejected, not kept."""
    policy = policy_of(
        W.search_test_matmul, (256, 256, 256), target=f"{TARGET} -max-shared-memory-per-block=4096"
    )
    programs = policy.sample_initial_population()
    assert programs
    for state in programs:
        shared = sum(4 * _elements(s) for s in state.stages if s.op.name.endswith(".shared"))
        assert 0 < shared <= 4096, str(state)


def _elements(stage) -> int:
    count = 1
    for it in stage.iters:
        count *= it.extent
    return count


def test_softmax_programs_bind_the_cross_thread_reduction_roots_to_blocks():
    policy = policy_of(W.search_test_softmax_nm, (2, 1024))
    programs = policy.sample_initial_population()
    assert len(programs) >= 30
    assert any(has_cross_thread_reduction(state, 1) for state in programs)
    for state in programs[:30]:
        for stage_id, stage in enumerate(state.stages):
            if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is not ROOT:
                continue
            annotations = {it.annotation for it in stage.iters}
            if has_cross_thread_reduction(state, stage_id):
                assert IteratorAnnotation.BLOCK_X in annotations, str(state)
            assert annotations & {IteratorAnnotation.THREAD_X, IteratorAnnotation.BLOCK_X}, str(state)


def test_tuning_a_gpu_task_with_the_local_builder_is_refused_before_any_search(tmp_path):
    import ansor_py as ansor

    task = SearchTask(func=W.search_test_matmul, args=(64, 64, 64), target=TARGET)
    log = ansor.RecordToFile(tmp_path / "l.json")
    options = ansor.TuningOptions(num_measure_trials=4, measure_callbacks=[log])
    refusal = r"auto_schedule: LocalBuilder compiles LLVM targets .* 'cuda -arch=sm_80'"
    with pytest.raises(ValueError, match=refusal):
        ansor.auto_schedule(task, options, SketchPolicy(task, RandomModel(seed=0), verbose=0))
    assert not (tmp_path / "l.json").exists()
