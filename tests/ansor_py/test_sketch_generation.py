"""Sketch generation: the counts and structures of TVM's own tests
(``test_auto_scheduler_sketch_generation.py``, CPU part), user rules, and parameters.

As in TVM's tests the task has 4 cores, which decides the rfactor rule for the small
matmul and the pooling reduction.
"""

from __future__ import annotations

import pytest
import search_workloads as W

from ansor_py.cost_model import RandomModel
from ansor_py.search import PreloadCustomSketchRule, SketchParams, SketchParamsError, SketchPolicy
from ansor_py.search.sketch_rules import CPU_SKETCH_RULES
from ansor_py.search.stage_queries import has_cache_write_stage, has_rfactor_stage, is_tiled
from ansor_py.search_task import SearchTask
from ir.loop_state.enums import ComputeAtKind
from ir.loop_state.state import LoopState
from ir.loop_state.steps import RfactorStep, SplitStep

TARGET = "llvm -num-cores=4"


def sketches_of(func, args, target: str = TARGET, **policy_kwargs) -> list[LoopState]:
    task = SearchTask(func=func, args=args, target=target)
    policy = SketchPolicy(task, RandomModel(seed=0), seed=0, verbose=0, **policy_kwargs)
    return policy.generate_sketches()


@pytest.mark.parametrize(
    ("func", "args", "cpu_count", "gpu_count"),
    [
        (W.search_test_matmul, (512, 512, 512), 3, 1),
        (W.search_test_matmul, (8, 8, 512), 5, 2),
        (W.search_test_double_matmul, (512,), 9, 1),
        (W.search_test_conv2d_nchw_bn_relu, (1, 56, 56, 512, 512, 3, 1, 1), 3, 1),
        (W.search_test_max_pool2d, (1, 56, 56, 512, 1), 1, 1),
        (W.search_test_min_nm, (10, 1024), 3, 2),
        (W.search_test_softmax_nm, (1, 1024), 9, 4),
        (W.search_test_softmax_abcd, (1, 12, 128, 128), 9, 4),
        (W.search_test_zero_rank_reduce, (128,), 3, 2),
    ],
    ids=[
        "matmul512",
        "matmul8x8x512",
        "double_matmul",
        "conv2d_bn_relu",
        "max_pool2d",
        "min",
        "softmax_nm",
        "softmax_abcd",
        "zero_rank",
    ],
)
def test_sketch_counts_match_tvm(func, args, cpu_count, gpu_count):
    """TVM's sketch-generation tests, for x86 and for CUDA (the GPU rules)."""
    for target, count in ((TARGET, cpu_count), ("cuda -arch=sm_80", gpu_count)):
        sketches = sketches_of(func, args, target=target)
        assert len(sketches) == count, target
        printed = {str(s) + repr([step.to_record() for step in s.transform_steps]) for s in sketches}
        assert len(printed) == count, target


def test_matmul_sketches_tile_and_cache():
    s0, s1, s2 = sketches_of(W.search_test_matmul, (512, 512, 512))
    # No.0: plain multi-level tiling "SSRSRS": 4 + 4 + 2 loops
    assert is_tiled(s0.stages[2]) and len(s0.stages[2].iters) == 10
    assert [it.name for it in s0.stages[2].iters] == [
        "i.0",
        "j.0",
        "i.1",
        "j.1",
        "k.0",
        "i.2",
        "j.2",
        "k.1",
        "i.3",
        "j.3",
    ]
    assert not s0.concrete
    # No.1, No.2: a cache-write stage tiled and computed at the written-back copy, which
    # follows its outer 1 or 2 spatial levels
    for sketch, level in ((s1, 1), (s2, 2)):
        assert [s.name for s in sketch.stages] == ["A", "B", "C.local", "C"]
        assert has_cache_write_stage(sketch, 2)
        assert is_tiled(sketch.stages[2])
        assert sketch.stages[2].compute_at is ComputeAtKind.ITER
        assert sketch.stages[2].attach.stage_id == 3
        assert sketch.stages[2].attach.iter_name == f"j.{level - 1}"
        assert len(sketch.stages[3].iters) == 2 * (level + 1)
    assert str(s1) != str(s2)


def test_small_matmul_gets_two_rfactor_sketches_first():
    sketches = sketches_of(W.search_test_matmul, (8, 8, 512))
    for rf_sketch in sketches[:2]:
        assert has_rfactor_stage(rf_sketch, 2)
        assert [s.name for s in rf_sketch.stages] == ["A", "B", "C.rf", "C"]
        # the split feeding rfactor is left unknown, to be sampled
        steps = rf_sketch.transform_steps
        rf_index = next(i for i, step in enumerate(steps) if isinstance(step, RfactorStep))
        assert isinstance(steps[rf_index - 1], SplitStep) and steps[rf_index - 1].lengths == (None,)
    # the variant factoring the inner part puts the new spatial axis innermost (vectorizable)
    assert [it.name for it in sketches[0].stages[2].iters] == ["i", "j", "k.0", "k.1"]
    assert [it.name for it in sketches[1].stages[2].iters] == ["i", "j", "k.0", "k.1"]
    assert sketches[0].stages[2].iters[2].kind.value == "spatial"
    assert sketches[1].stages[2].iters[3].kind.value == "spatial"
    assert is_tiled(sketches[2].stages[2]) and not has_cache_write_stage(sketches[2], 2)
    assert has_cache_write_stage(sketches[3], 2) and has_cache_write_stage(sketches[4], 2)


def test_conv2d_bn_relu_fuses_into_relu():
    sketches = sketches_of(W.search_test_conv2d_nchw_bn_relu, (1, 56, 56, 512, 512, 3, 1, 1))
    names = [s.name for s in sketches[0].stages]
    conv, relu = names.index("conv2d_nchw"), names.index("T_relu")
    for index, sketch in enumerate(sketches):
        kinds = {s.name: s.compute_at for s in sketch.stages}
        # the padding is not strictly inlineable (it branches): kept at the root, untiled
        assert kinds["conv2d_nchw_pad"] is ComputeAtKind.ROOT
        assert not is_tiled(sketch.stages[names.index("conv2d_nchw_pad")])
        for elementwise in ("Bias_add", "Bn_mul", "Bn_add"):
            assert kinds[elementwise] is ComputeAtKind.INLINED
        assert is_tiled(sketch.stages[conv])
        fused = index < 2
        assert kinds["conv2d_nchw"] is (ComputeAtKind.ITER if fused else ComputeAtKind.ROOT)
        assert is_tiled(sketch.stages[relu]) is fused


def test_reductions_without_reuse_get_rfactor_or_nothing():
    (pool,) = sketches_of(W.search_test_max_pool2d, (1, 56, 56, 512, 1))
    assert pool.transform_steps == ()
    m0, m1, m2 = sketches_of(W.search_test_min_nm, (10, 1024))
    assert has_rfactor_stage(m0, 1) and has_rfactor_stage(m1, 1) and str(m0) != str(m1)
    assert m2.transform_steps == ()
    softmax = sketches_of(W.search_test_softmax_nm, (1, 1024))
    assert softmax[8].transform_steps == ()
    # both reductions (max and sum) get an rfactor in the first 2 x 2 sketches
    assert all(sum(isinstance(st, RfactorStep) for st in s.transform_steps) == 2 for s in softmax[:2])


def test_custom_rule_runs_before_builtin_rules():
    def meet_condition(policy, state, stage_id):
        return PreloadCustomSketchRule.APPLY_AND_SKIP_REST

    def apply(policy, state, stage_id):
        tiled = state.copy()
        tiled.split("C", tiled["C"].iters[0], [8, 2])
        return [[state, -1], [tiled, -1]]

    sketches = sketches_of(
        W.search_test_matmul,
        (512, 512, 512),
        init_search_callbacks=[PreloadCustomSketchRule(meet_condition, apply, "MyRule")],
    )
    assert len(sketches) == 2
    assert [it.extent for it in sketches[0].stages[2].iters] == [512, 512, 512]
    assert [it.extent for it in sketches[1].stages[2].iters] == [32, 8, 2, 512, 512]


def test_custom_rule_bad_verdict_is_reported():
    rule = PreloadCustomSketchRule(lambda p, s, i: 7, lambda p, s, i: [], "Broken")
    with pytest.raises(ValueError, match=r"custom sketch rule 'Broken' returned condition 7"):
        sketches_of(W.search_test_matmul, (64, 64, 64), init_search_callbacks=[rule])


def test_cpu_rule_order_is_tvms():
    assert [rule.name for rule in CPU_SKETCH_RULES] == [
        "RuleAlwaysInline",
        "RuleSimplifyComputeWithConstTensor",
        "RuleAddRfactor",
        "RuleAddCacheWrite",
        "RuleMultiLevelTilingWithFusion",
        "RuleMultiLevelTiling",
        "RuleSkipStage",
    ]


def test_tiling_structure_param_changes_the_sketches():
    sketches = sketches_of(
        W.search_test_matmul, (512, 512, 512), params={"cpu_multi_level_tiling_structure": "SRS"}
    )
    assert [it.name for it in sketches[0].stages[2].iters] == ["i.0", "j.0", "k", "i.1", "j.1"]


def test_params_defaults_are_tvms_plus_padded_tiles_and_bad_values_are_named():
    params = SketchParams()
    assert params.as_dict() == {
        "eps_greedy": 0.05,
        "retry_search_one_round_on_empty": 1,
        "sample_init_min_population": 50,
        "sample_init_use_measured_ratio": 0.2,
        "evolutionary_search_population": 2048,
        "evolutionary_search_num_iters": 4,
        "evolutionary_search_mutation_prob": 0.85,
        "cpu_multi_level_tiling_structure": "SSRSRS",
        "gpu_multi_level_tiling_structure": "SSSRRSRS",
        "max_innermost_split_factor": 64,
        "max_vectorize_size": 16,
        "disable_change_compute_location": 0,
        "padded_tile_probability": 0.25,  # ours, not TVM's (0 gives TVM's space)
    }
    with pytest.raises(SketchParamsError, match=r"padded_tile_probability 2 must be a number in \[0.0, 1"):
        SketchParams(padded_tile_probability=2)
    given = {"eps_greedy": 0.1}
    assert SketchParams.from_any(given).eps_greedy == 0.1 and given == {"eps_greedy": 0.1}
    with pytest.raises(SketchParamsError, match=r"unknown parameter\(s\) \['eps'\]"):
        SketchParams.from_any({"eps": 0.1})
    with pytest.raises(SketchParamsError, match=r"eps_greedy 1.5 must be a number in \[0.0, 1.0\]"):
        SketchParams(eps_greedy=1.5)
    with pytest.raises(SketchParamsError, match=r"evolutionary_search_population 0 must be an int >= 1"):
        SketchParams(evolutionary_search_population=0)
    with pytest.raises(SketchParamsError, match=r"cpu_multi_level_tiling_structure 'SXS'"):
        SketchParams(cpu_multi_level_tiling_structure="SXS")


def test_a_gpu_target_gets_the_gpu_rules():
    task = SearchTask(func=W.search_test_matmul, args=(64, 64, 64), target="cuda -arch=sm_80")
    policy = SketchPolicy(task, RandomModel(seed=0), verbose=0)
    assert policy.sketch_rules[0].name == "RuleAddCacheRead"
    assert [r.name for r in policy.init_rules] == ["InitFillTileSize", "InitThreadBind", "InitUnroll"]
    weights = [(r.name, r.weight) for r in policy.mutation_rules]
    assert weights == [("MutateTileSize", 0.9), ("MutateAutoUnroll", 0.1)]


def test_const_tensor_rule_unrolls_constant_indices():
    from search_workloads import check_program, small_policy

    policy = small_policy(W.search_test_const_transform, (6, 8), seed=0)
    (sketch,) = policy.generate_sketches()
    names = [s.name for s in sketch.stages]
    assert sketch.stages[names.index("G")].compute_at is ComputeAtKind.INLINED  # a constant tensor
    transform = sketch.stages[names.index("transform")]
    assert [it.name for it in transform.iters] == ["p.0", "c.0", "p.1", "c.1", "eps", "r"]
    assert [it.annotation.value for it in transform.iters[-2:]] == ["unroll", "unroll"]
    for state in policy.sample_initial_population()[:2]:
        check_program(policy.search_task, state)
