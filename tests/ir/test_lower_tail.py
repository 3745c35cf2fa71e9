"""A cache stage computes the tail of a non-dividing tile instead of testing it.

``ir.lower.schedule_ops``: a stage whose values live in a compact buffer of its own runs
its spatial tail unguarded, its reads of full-size buffers clamped to the domain, while
the stage writing a parameter keeps its guards and reduction tails keep theirs. Every
schedule here is interpreted on random inputs (the interpreter refuses an out-of-bounds
access) and compared with the numpy reference; one is compiled and run.
"""

from __future__ import annotations

import numpy as np
import workloads

from codegen.build import build
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.lower.interpreter import run
from ir.lower.lower import lower
from ir.reference import evaluate, random_inputs
from ir.tir import BufferStore, For, IfThenElse, PrimFunc, Stmt, walk


def check(dag: ComputeDAG, state: State) -> PrimFunc:
    """Lower, interpret on random inputs, compare with the reference (outputs pre-filled
    with -7, so a slot never written shows)."""
    func = lower(dag, state)
    inputs = random_inputs(dag, seed=3)
    expected = evaluate(dag, inputs)
    outputs = [np.full(t.shape, -7, dtype=t.dtype) for t in dag.outputs]
    run(func, [*inputs, *outputs])
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))
    return func


def loop(func: PrimFunc, name: str) -> For:
    return next(s for s in walk(func.body) if isinstance(s, For) and s.loop_var.name == name)


def guards(stmt: Stmt) -> list[str]:
    return [str(s.condition) for s in walk(stmt) if isinstance(s, IfThenElse)]


def stores_to(stmt: Stmt, buffer: str) -> int:
    return sum(isinstance(s, BufferStore) and s.buffer.name == buffer for s in walk(stmt))


def register_tile(dag: ComputeDAG, mr: int, nr: int, pack: bool = False) -> State:
    """C.local accumulates an mr x nr tile over all of k at C's (i.0, j.0) loop;
    with ``pack`` a K x nr panel of B is copied at j.0 first (as ``schedule_gemm``)."""
    s = get_init_state(dag)
    local = s.cache_write("C", "local").name
    if pack:
        s.cache_read("B", "global", [local])
    i, j = s["C"].iters
    i0, i1 = s.split("C", i, [mr])
    j0, j1 = s.split("C", j, [nr])
    s.reorder("C", [j0, i0, i1, j1])
    s.compute_at(local, "C", i0)
    if pack:
        s.compute_at("B.global", "C", j0)
    ci, cj, ck = s[local].iters
    s.reorder(local, [ck, ci, cj])
    return s


def test_register_tile_tail_runs_without_a_branch():
    dag = ComputeDAG(workloads.matmul(30, 20, 17))  # 4-row tiles overhang 30 by 2
    func = check(dag, register_tile(dag, 4, 8))
    k_loop = loop(func, "k")
    assert guards(k_loop) == []
    assert "min(" in str(k_loop)  # A's rows clamped inside the domain
    # the parameter C is written only under its guards
    write_back = loop(func, "i.1")
    assert stores_to(write_back, "C") == 1 and guards(write_back)


def test_tail_over_a_packed_panel_reads_the_panel_unclamped():
    # both i and j overhang: the panel B.global is itself filled past B's 20 columns
    # (clamped reads of B), and C.local reads it with the plain column index
    dag = ComputeDAG(workloads.matmul(30, 20, 17))
    func = check(dag, register_tile(dag, 6, 16, pack=True))
    assert guards(loop(func, "k")) == []
    assert guards(loop(func, "ax1")) == []


def test_tiles_entirely_past_the_edge_stay_in_bounds():
    # 10 rows split [4, 2]: i.0 = 1, i.1 >= 1 are whole tiles past the edge
    dag = ComputeDAG(workloads.matmul(10, 8, 5))
    s = get_init_state(dag)
    local = s.cache_write("C", "local").name
    i, j = s["C"].iters
    i0, i1, i2 = s.split("C", i, [4, 2])
    s.reorder("C", [i0, i1, j, i2])
    s.compute_at(local, "C", i1)
    check(dag, s)


def test_reduction_tail_keeps_its_guard():
    dag = ComputeDAG(workloads.matmul(8, 8, 10))
    s = get_init_state(dag)
    local = s.cache_write("C", "local").name
    j = s["C"].iters[1]
    s.compute_at(local, "C", j)
    ck = s[local].iters[2]
    s.split(local, ck, [4])  # 10 = 3 x 4 - 2: adding past k would be wrong
    func = check(dag, s)
    assert any("k" in g for g in guards(func.body))


def test_stage_writing_a_parameter_keeps_its_guards():
    dag = ComputeDAG(workloads.matmul(30, 20, 17))
    s = get_init_state(dag)
    s.split("C", s["C"].iters[0], [4])
    func = check(dag, s)
    assert any("< 30" in g for g in guards(func.body))


def test_compiled_register_tile_with_a_tail_matches_numpy():
    dag = ComputeDAG(workloads.matmul(30, 40, 33))
    s = register_tile(dag, 6, 16, pack=True)
    i_c, j_c = s[dag.outputs[0].name + ".local"].iters[1:3]
    s.unroll(dag.outputs[0].name + ".local", i_c)
    s.vectorize(dag.outputs[0].name + ".local", j_c)
    kernel = build(dag, s)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((30, 33), dtype=np.float32)
    b = rng.standard_normal((33, 40), dtype=np.float32)
    c = np.full((30, 40), np.nan, dtype=np.float32)
    kernel(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
