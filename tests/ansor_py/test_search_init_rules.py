"""Random annotation (init rules): each rule's effect, and every program it makes computes
the same result as numpy (built with the LLVM back end)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import search_workloads as W
from search_workloads import check_program, small_policy

from ansor_py.search.init_rules import (
    CPU_AUTO_UNROLL_CONFIGS,
    CPU_INIT_RULES,
    INIT_CHANGE_COMPUTE_LOCATION,
    INIT_PARALLEL,
    INIT_UNROLL,
    INIT_VECTORIZATION,
    annotate_parallel,
    annotate_unroll,
    annotate_vectorization,
    apply_init_rules,
    change_compute_location,
    ensure_bound,
    fill_tile_sizes,
)
from ansor_py.search.stage_queries import has_nested_parallel
from ansor_py.search.state_cache import is_bound
from ir.loop_state.enums import ComputeAtKind, IteratorAnnotation
from ir.loop_state.steps import SplitStep

WORKLOADS = {
    "matmul": (W.search_test_matmul, (16, 24, 32)),
    "matmul_bias_relu": (W.search_test_matmul_bias_relu, (8, 16, 12)),
    "conv2d_bn_relu": (W.search_test_conv2d_nchw_bn_relu, (1, 6, 6, 4, 8, 3, 1, 1)),
    "softmax": (W.search_test_softmax_nm, (3, 40)),
    "chain": (W.search_test_elementwise_chain, (6, 10)),
}


def filled(policy, rng):
    """Every sketch of the policy with its tile sizes sampled and bound inferred."""
    result = []
    for sketch in policy.generate_sketches():
        state = fill_tile_sizes(policy, sketch, rng)
        assert state is not None
        bound = ensure_bound(policy, state)
        assert bound is not None
        result.append(bound)
    return result


def test_fill_tile_sizes_picks_exact_factorizations():
    policy = small_policy(
        W.search_test_matmul, (48, 64, 96), max_innermost_split_factor=8, padded_tile_probability=0.0
    )
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        for sketch in policy.generate_sketches():
            state = fill_tile_sizes(policy, sketch, rng)
            assert state is not None and state.concrete
            for step in state.transform_steps:
                if isinstance(step, SplitStep):
                    assert None not in step.lengths
                    assert step.extent % math.prod(step.lengths) == 0
                    assert step.lengths[-1] <= 8
                    seen.add(step.lengths)
    assert len(seen) > 10  # random, not one fixed choice


def test_padded_tiles_pad_register_tile_splits_only_and_compute_right():
    # 1024-like power-of-two extents: only padded schemes give 3- or 6-row tiles
    policy = small_policy(
        W.search_test_matmul, (32, 64, 16), max_innermost_split_factor=16, padded_tile_probability=1.0
    )
    rng = np.random.default_rng(4)
    padded_seen = 0
    for _ in range(6):
        for sketch in policy.generate_sketches():
            tile_splits = policy.state_cache.register_tile_splits(sketch.transform_steps)
            state = fill_tile_sizes(policy, sketch, rng)
            assert state is not None
            for index, step in enumerate(state.transform_steps):
                if not isinstance(step, SplitStep):
                    continue
                *outer, inner = step.lengths
                if step.extent % math.prod(step.lengths) == 0:
                    continue
                # a padded split: a register-tile split, its outer lengths dividing the
                # tile count, at most 1/32 of the extent computed past the edge
                assert index in tile_splits
                tiles = -(-step.extent // inner)
                assert tiles % math.prod(outer) == 0
                assert tiles * inner - step.extent <= step.extent / 32
                assert inner <= 16
                padded_seen += 1
            check_program(policy.search_task, ensure_bound(policy, state))
    assert padded_seen > 0


def test_register_tile_splits_are_the_spatial_splits_of_private_reduction_stages():
    policy = small_policy(W.search_test_matmul, (32, 64, 16))
    kinds = set()
    for sketch in policy.generate_sketches():
        steps = sketch.transform_steps
        tile_splits = policy.state_cache.register_tile_splits(steps)
        splits = {i: step for i, step in enumerate(steps) if isinstance(step, SplitStep)}
        assert tile_splits <= set(splits)
        cached = any(stage.name == "C.local" for stage in sketch.stages)
        for index, step in splits.items():
            # i of C.local (SSRSRS: 3 lengths) is a register-tile split; j (vectorized:
            # iterator 1) and k (1 length) are not, and nor is any split of C, a parameter
            on_local = sketch.stages[step.stage_id].name == "C.local"
            rows = len(step.lengths) == 3 and step.iter_id == 0
            assert (index in tile_splits) == (on_local and rows)
        kinds.add(cached)
    assert kinds == {True, False}  # the sketches with and without the cache stage


def test_rfactor_split_is_sampled_and_the_program_is_correct():
    policy = small_policy(W.search_test_matmul, (4, 4, 96))
    rng = np.random.default_rng(1)
    rf_sketch = policy.generate_sketches()[1]
    lengths = set()
    for _ in range(10):
        state = fill_tile_sizes(policy, rf_sketch, rng)
        lengths.add(next(s.lengths for s in state.transform_steps if isinstance(s, SplitStep)))
    assert len(lengths) > 2
    check_program(policy.search_task, ensure_bound(policy, state))


@pytest.mark.parametrize(
    "rule",
    [INIT_CHANGE_COMPUTE_LOCATION, INIT_PARALLEL, INIT_UNROLL, INIT_VECTORIZATION],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_each_init_rule_makes_correct_programs(rule, workload):
    func, args = WORKLOADS[workload]
    policy = small_policy(func, args, seed=2)
    rng = np.random.default_rng(3)
    states = filled(policy, rng)
    # two sketches per case keep the suite fast; the seed varies which
    for index in rng.choice(len(states), size=min(2, len(states)), replace=False):
        state = rule.apply(policy, states[int(index)], rng)
        assert state is not None
        state = ensure_bound(policy, state)
        assert state is not None and is_bound(state)
        check_program(policy.search_task, state)


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_all_init_rules_together_make_correct_programs(workload):
    func, args = WORKLOADS[workload]
    policy = small_policy(func, args, seed=4)
    population = policy.sample_initial_population()
    assert len(population) >= 1
    for state in population[:3]:
        assert is_bound(state) and state.concrete and not has_nested_parallel(state)
        check_program(policy.search_task, state)


def test_change_compute_location_tries_root_and_attach_points():
    policy = small_policy(W.search_test_elementwise_chain, (6, 10))
    (sketch,) = policy.generate_sketches()
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(30):
        state = change_compute_location(policy, sketch, rng)
        b = state.stages[state.stage_id("B")]
        outcomes.add((b.compute_at, b.attach.iter_name if b.attach else None))
    # B (exp, not inlineable) stays at the root or moves under either loop of C
    assert outcomes == {(ComputeAtKind.ROOT, None), (ComputeAtKind.ITER, "i"), (ComputeAtKind.ITER, "j")}


def test_change_compute_location_can_be_disabled():
    policy = small_policy(W.search_test_elementwise_chain, (6, 10), disable_change_compute_location=1)
    (sketch,) = policy.generate_sketches()
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert change_compute_location(policy, sketch, rng).transform_steps == ()


def test_parallel_fuses_outer_loops_up_to_enough_parallelism():
    policy = small_policy(W.search_test_matmul, (512, 512, 512), target="llvm -num-cores=4")
    rng = np.random.default_rng(0)
    plain = filled(policy, rng)[0]  # the plain tiled sketch: i.0 j.0 i.1 ...
    state = annotate_parallel(policy, plain, rng)
    outer = state.stages[2].iters[0]
    assert outer.annotation is IteratorAnnotation.PARALLEL
    assert outer.name.startswith("i.0")
    # it fused loops until the product passed 16 x 4 cores, or ran out of spatial loops
    assert outer.extent > 64 or "k" in state.stages[2].iters[1].name
    assert sum(it.annotation is IteratorAnnotation.PARALLEL for it in state.stages[2].iters) == 1


def test_unroll_pragma_on_reductions_only():
    policy = small_policy(W.search_test_matmul_bias_relu, (8, 16, 12))
    rng = np.random.default_rng(0)
    values = set()
    for state in filled(policy, rng) * 20:
        state = annotate_unroll(policy, state, rng)
        for stage in state.stages:
            if stage.name in ("C", "C.local") and stage.compute_at is not ComputeAtKind.INLINED:
                values.add(stage.auto_unroll_max_step)
            elif stage.name in ("E",):
                assert stage.auto_unroll_max_step == 0
    assert values == set(CPU_AUTO_UNROLL_CONFIGS)


def test_vectorization_respects_max_vectorize_size():
    policy = small_policy(W.search_test_elementwise_chain, (8, 4), max_vectorize_size=8)
    rng = np.random.default_rng(0)
    (state,) = filled(policy, rng)
    for _ in range(10):
        out = annotate_vectorization(policy, state, rng)
        for stage in out.stages[1:]:
            inner = stage.iters[-1]
            assert inner.annotation is IteratorAnnotation.VECTORIZE
            assert inner.extent <= 8


def test_init_rules_in_tvm_order():
    assert [rule.name for rule in CPU_INIT_RULES] == [
        "InitFillTileSize",
        "InitChangeComputeLocation",
        "InitParallel",
        "InitUnroll",
        "InitVectorization",
    ]


def test_apply_init_rules_is_reproducible():
    policy = small_policy(W.search_test_conv2d_nchw_bn_relu, (1, 6, 6, 4, 8, 3, 1, 1))
    sketches = policy.generate_sketches()

    def draw(seed):
        rng = np.random.default_rng(seed)
        return [str(apply_init_rules(policy, s, CPU_INIT_RULES, rng)) for s in sketches * 3]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
