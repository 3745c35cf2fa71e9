"""Mutation rules: each changes exactly the gene it owns, keeps the program legal, and the
mutated program computes the same result as numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import search_workloads as W
from search_workloads import check_program, small_policy

from ansor_py.search.init_rules import CPU_AUTO_UNROLL_CONFIGS, ensure_bound
from ansor_py.search.mutation_rules import (
    CPU_MUTATION_RULES,
    mutate_auto_unroll,
    mutate_compute_location,
    mutate_parallel,
    mutate_tile_size,
)
from ir.loop_state.enums import IteratorAnnotation
from ir.loop_state.state import initial_state
from ir.loop_state.steps import AnnotationStep, ComputeAtStep, FuseStep, PragmaStep, SplitStep


def first_mutation(policy, rule, seed=0):
    """(parent, child): the first sampled program the rule mutates, its child bound."""
    rng = np.random.default_rng(seed)
    for _ in range(4):
        for parent in policy.sample_initial_population():
            child = rule(policy, parent, rng)
            if child is not None:
                bound = ensure_bound(policy, child)
                assert bound is not None, f"{rule.__name__} made an unbindable program"
                return parent, bound
    raise AssertionError(f"{rule.__name__} mutated none of the sampled programs")


def changed_steps(parent, child):
    assert len(parent.transform_steps) == len(child.transform_steps)
    return [
        (index, a, b)
        for index, (a, b) in enumerate(zip(parent.transform_steps, child.transform_steps, strict=True))
        if a != b
    ]


def test_weights_are_tvms():
    assert [(r.name, r.weight) for r in CPU_MUTATION_RULES] == [
        ("MutateTileSize", 0.90),
        ("MutateAutoUnroll", 0.04),
        ("MutateComputeLocation", 0.05),
        ("MutateParallel", 0.01),
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_mutate_tile_size_moves_one_factor(seed):
    policy = small_policy(W.search_test_matmul, (16, 24, 32), seed=seed, max_innermost_split_factor=8)
    parent, child = first_mutation(policy, mutate_tile_size, seed)
    ((_, old, new),) = changed_steps(parent, child)
    assert isinstance(old, SplitStep) and isinstance(new, SplitStep)
    assert (old.stage_id, old.iter_id, old.extent) == (new.stage_id, new.iter_id, new.extent)
    assert old.lengths != new.lengths
    assert new.extent % math.prod(new.lengths) == 0 and new.lengths[-1] <= 8
    # a divisor moved between two levels: the full products (with the outer level) agree
    assert str(child) != str(parent)
    check_program(policy.search_task, child)


def test_mutate_auto_unroll_changes_one_pragma():
    policy = small_policy(W.search_test_matmul, (16, 24, 32), seed=3)
    rng = np.random.default_rng(0)
    for parent in policy.sample_initial_population():
        child = mutate_auto_unroll(policy, parent, rng)
        assert child is not None
        diff = changed_steps(parent, child)
        assert len(diff) <= 1  # the new value may equal the old one
        for _, old, new in diff:
            assert isinstance(old, PragmaStep) and isinstance(new, PragmaStep)
            value = int(new.pragma_type.split("$")[1])
            assert value in CPU_AUTO_UNROLL_CONFIGS
            assert child.stages[new.stage_id].auto_unroll_max_step == value
            check_program(policy.search_task, child)
            return
    raise AssertionError("no pragma value changed")


def test_mutate_compute_location_moves_an_attached_stage():
    policy = small_policy(W.search_test_conv2d_nchw_bn_relu, (1, 6, 6, 4, 8, 3, 1, 1), seed=0)
    parent, child = first_mutation(policy, mutate_compute_location)
    diff = changed_steps(parent, child)
    assert len(diff) == 1
    (_, old, new) = diff[0]
    assert isinstance(old, ComputeAtStep) and isinstance(new, ComputeAtStep)
    assert old.stage_id == new.stage_id
    assert (old.target_stage_id, old.target_iter_id) != (new.target_stage_id, new.target_iter_id)
    check_program(policy.search_task, child)


def test_mutate_parallel_refuses_outer_loops():
    policy = small_policy(W.search_test_matmul, (64, 64, 64), seed=0, target="llvm -num-cores=1")
    parent, child = first_mutation(policy, mutate_parallel)
    (index, old, new), *renumbered = changed_steps(parent, child)
    assert isinstance(old, FuseStep) and isinstance(new, FuseStep)
    assert old.fused_ids[0] == new.fused_ids[0] == 0 and len(old.fused_ids) != len(new.fused_ids)
    annotation = child.transform_steps[index + 1]
    assert isinstance(annotation, AnnotationStep) and annotation.annotation is IteratorAnnotation.PARALLEL
    # later annotations and pragmas of the stage follow their loops to new positions
    for _, a, b in renumbered:
        assert isinstance(a, (AnnotationStep, PragmaStep)) and a.iter_id != b.iter_id
    assert str(child) != str(parent)
    check_program(policy.search_task, child)


def test_rules_report_nothing_to_mutate():
    policy = small_policy(W.search_test_matmul, (16, 24, 32))
    naive = initial_state(policy.search_task.compute_dag)
    rng = np.random.default_rng(0)
    for rule in CPU_MUTATION_RULES:
        assert rule.apply(policy, naive, rng) is None, rule.name
