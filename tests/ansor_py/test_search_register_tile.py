"""The register-file check of the init and mutation rules (``fits_register_file``): tile
sizes whose accumulators overflow the target's vector registers are never sampled, those
that fit still are, and the programs made under the check compute what numpy does."""

from __future__ import annotations

import numpy as np
import pytest
import search_workloads as W
from search_workloads import check_program, small_policy

from ansor_py.search.init_rules import (
    CPU_INIT_RULES,
    apply_init_rules,
    fill_tile_sizes,
    fits_register_file,
    register_tile_accumulators,
    vector_registers,
)
from ansor_py.search.mutation_rules import mutate_tile_size
from codegen.target import Target
from ir.loop_state.api import get_init_state
from ir.loop_state.enums import IteratorKind

AVX2 = "llvm -mcpu=znver3"
AVX512 = "llvm -mcpu=znver5"


def tiled_gemm(policy, mr: int, nr: int):
    """The GEMM with C computed in an mr x nr register tile accumulated over all of k."""
    dag = policy.search_task.compute_dag
    s = get_init_state(dag)
    i, j = s["C"].iters[:2]
    i0, i1 = s.split("C", i, [mr])
    j0, j1 = s.split("C", j, [nr])
    k = s["C"].iters[-1]
    s.reorder("C", [i0, j0, k, i1, j1])
    return s.loop_state


def test_vector_registers_follow_the_isa():
    assert vector_registers(Target.parse(AVX2)) == 16
    assert vector_registers(Target.parse(AVX512)) == 32
    assert vector_registers(Target.parse("llvm -mcpu=znver5 -mattr=-avx512f")) == 16
    assert vector_registers(Target.parse("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72")) == 32


@pytest.mark.parametrize(
    ("mr", "nr", "lanes", "expected"),
    [(4, 16, 8, 8), (8, 32, 8, 32), (6, 16, 8, 12), (3, 12, 8, 6), (8, 32, 16, 16), (1, 64, 16, 4)],
)
def test_accumulators_count_vectors_of_the_register_tile(mr, nr, lanes, expected):
    policy = small_policy(W.search_test_matmul, (48, 96, 64), target=AVX2)
    stage = tiled_gemm(policy, mr, nr).stages[-1]
    assert register_tile_accumulators(stage, lanes) == expected


def test_accumulators_skip_unit_loops_and_untiled_reductions():
    policy = small_policy(W.search_test_matmul, (48, 96, 64), target=AVX2)
    dag = policy.search_task.compute_dag
    s = get_init_state(dag)
    k = s["C"].iters[-1]
    k0, k1 = s.split("C", k, [1])  # k.1 has extent 1: the tile is what k.0 accumulates over
    i, j = s["C"].iters[:2]
    s.reorder("C", [k0, i, j, k1])
    stage = s.loop_state.stages[-1]
    assert stage.iters[-1].kind is IteratorKind.REDUCTION
    assert register_tile_accumulators(stage, 8) == 48 * 96 // 8
    naive = get_init_state(dag).loop_state.stages[-1]  # i, j, k: a scalar sum, no tile
    assert naive.iters[-1].kind is IteratorKind.REDUCTION
    assert register_tile_accumulators(naive, 8) == 0


@pytest.mark.parametrize(("target", "mr", "nr", "fits"), [
    (AVX2, 4, 16, True), (AVX2, 8, 16, False), (AVX2, 8, 32, False), (AVX2, 2, 32, True),
    (AVX512, 8, 32, True), (AVX512, 16, 32, False), (AVX512, 12, 32, True),
])  # fmt: skip
def test_fits_register_file_by_isa(target, mr, nr, fits):
    policy = small_policy(W.search_test_matmul, (48, 96, 64), target=target)
    assert fits_register_file(policy, tiled_gemm(policy, mr, nr)) is fits


def _inner_tiles(policy, state):
    lanes = policy.search_task.target.hardware_params.vector_unit_bytes // 4
    return [
        register_tile_accumulators(stage, lanes)
        for stage in state.stages
        if stage.op_type.value == "compute" and any(it.kind is IteratorKind.REDUCTION for it in stage.iters)
    ]


def test_sampled_tiles_fit_16_registers_and_still_vary():
    policy = small_policy(W.search_test_matmul, (96, 96, 64), target=AVX2, max_innermost_split_factor=64)
    rng = np.random.default_rng(3)
    counts = set()
    for _ in range(40):
        for sketch in policy.generate_sketches():
            state = fill_tile_sizes(policy, sketch, rng)
            assert state is not None
            for count in _inner_tiles(policy, state):
                assert count <= 14
                counts.add(count)
    assert len(counts) >= 4 and max(counts) >= 12  # the budget is used, not only tiny tiles


def test_mutated_tiles_fit_the_register_file():
    policy = small_policy(W.search_test_matmul, (256, 256, 64), target=AVX2)
    rng = np.random.default_rng(5)
    sketch = policy.generate_sketches()[0]
    mutated = 0
    for _ in range(30):
        state = apply_init_rules(policy, sketch, CPU_INIT_RULES, rng)
        assert state is not None
        for _ in range(5):
            child = mutate_tile_size(policy, state, rng)
            if child is not None:
                mutated += 1
                assert fits_register_file(policy, child)
                assert all(count <= 14 for count in _inner_tiles(policy, child))
    assert mutated > 20


def test_programs_sampled_under_the_check_are_correct():
    policy = small_policy(W.search_test_matmul, (32, 48, 40), target=AVX2)
    rng = np.random.default_rng(7)
    for sketch in policy.generate_sketches():
        state = apply_init_rules(policy, sketch, CPU_INIT_RULES, rng)
        assert state is not None and fits_register_file(policy, state)
        check_program(policy.search_task, state)
