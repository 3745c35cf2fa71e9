"""The search's fast paths through bound inference and the simplifier give exactly what
the plain computation gives: the BoundCache the search passes in, the linear forms built
without expression trees, the structural keys built alongside them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ir.compute_dag import ComputeDAG
from ir.expr import Binary, BinaryOp, Var, const, structural_key, substitute
from ir.loop_state.api import get_init_state
from ir.loop_state.state import Iterator, LoopState
from ir.lower.bound import BoundCache, _substituted_linear, infer_bound, infer_bound_with_regions
from ir.lower.lower import lower
from ir.lower.simplify import Linear, Simplifier, linear_to_expr, linear_to_expr_keyed
from ir.topi.workloads import conv2d_layer


def conv_state() -> tuple[ComputeDAG, LoopState]:
    """A conv2d whose padding stage is attached inside a tiled, fused, parallel output
    nest with a non-dividing split (guards, divisions, an attached region)."""
    dag = ComputeDAG(conv2d_layer(1, 9, 9, 4, 8, 3, 1, 1, layout="NHWC"))
    s = get_init_state(dag)
    conv = "conv2d_nhwc"
    nn, yy, xx, ff, ry, rx, rc = s[conv].iters
    yo, yi = s.split(conv, yy, [3])
    xo, xi = s.split(conv, xx, [4])  # 9 = 3 * 4 - 3: a guarded, non-dividing split
    s.reorder(conv, [nn, yo, xo, ff, yi, xi, ry, rx, rc])
    fused = s.fuse(conv, [nn, yo, xo])
    s.parallel(conv, fused)
    s.compute_at("conv2d_nhwc_pad", conv, ff)
    return dag, s.loop_state


@pytest.fixture(scope="module")
def conv() -> tuple[ComputeDAG, LoopState]:
    return conv_state()


def test_bound_facts_are_kept_in_the_cache_for_the_state_and_the_bound_state(conv):
    dag, state = conv
    cache = BoundCache()
    first = infer_bound_with_regions(dag, state, cache)
    again = infer_bound_with_regions(dag, state, cache)
    assert again.stages is first.stages and again.ranges is first.ranges  # a lookup
    bound = first.state
    on_bound = infer_bound_with_regions(dag, bound, cache)
    assert on_bound.state is bound and on_bound.stages is first.stages
    assert len(cache) == 2  # the state's stages and the bound stages
    op = state.stages[-1].op
    assert cache.op_reads(op) is cache.op_reads(op)  # each op's reads are found once
    assert str(bound) == str(infer_bound(dag, state))
    # without a cache, nothing is kept: every call infers again
    assert infer_bound_with_regions(dag, state).stages is not first.stages


def test_a_state_with_other_stages_does_not_reuse_the_facts(conv):
    dag, state = conv
    cache = BoundCache()
    infer_bound_with_regions(dag, state, cache)
    assert cache.facts(state.stages) is not None
    root = len(state.stages) - 1
    stage = state.stages[root]
    unparallel = tuple(dataclasses.replace(it, annotation=type(it.annotation).NONE) for it in stage.iters)
    stages = list(state.stages)
    stages[root] = dataclasses.replace(stage, iters=unparallel)
    other = dataclasses.replace(state, stages=tuple(stages))
    assert cache.facts(other.stages) is None
    got = infer_bound(dag, other, cache)
    assert "parallel" in str(infer_bound(dag, state, cache)) and "parallel" not in str(got)
    assert str(got) == str(infer_bound(dag, other))
    # found by identity: an equal copy of the stages tuple is another key
    assert cache.facts(tuple(list(state.stages))) is None


def test_the_cache_drops_its_oldest_entries_past_max_entries(conv):
    dag, state = conv
    cache = BoundCache(max_entries=2)
    bound = infer_bound(dag, state, cache)
    assert cache.facts(state.stages) is not None and cache.facts(bound.stages) is not None
    other = dataclasses.replace(state, stages=tuple(list(state.stages)))
    infer_bound(dag, other, cache)
    assert len(cache) == 2
    assert cache.facts(state.stages) is None and cache.facts(other.stages) is not None
    with pytest.raises(ValueError, match="max_entries 0 must be >= 1"):
        BoundCache(max_entries=0)


def test_lowering_with_the_cache_gives_the_same_program(conv):
    dag, state = conv
    cold = str(lower(dag, state))
    cache = BoundCache()
    bound = infer_bound(dag, state, cache)
    assert str(lower(dag, state, cache=cache)) == cold
    assert str(lower(dag, bound, cache=cache)) == cold


def test_a_loop_state_prints_once_and_stays_frozen(conv):
    _, state = conv
    text = str(state)
    assert str(state) is text  # computed once, from the fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.stages = ()  # type: ignore[misc]
    copy = dataclasses.replace(state)
    assert copy == state and str(copy) == text
    assert "_text" not in [f.name for f in dataclasses.fields(state)]


def test_filled_iterators_are_built_from_all_of_iterators_fields():
    # _with_ranges builds Iterator(name, range, kind, annotation) directly: a new field
    # must be carried there too
    assert [f.name for f in dataclasses.fields(Iterator)] == ["name", "range", "kind", "annotation"]


def random_linear(rng: np.random.Generator, atoms: list, dtype: str = "int32") -> Linear:
    lin = Linear.of_const(int(rng.integers(-20, 20)), dtype)
    for _ in range(int(rng.integers(0, 5))):
        atom = atoms[int(rng.integers(len(atoms)))]
        lin = lin.add(Linear.of_atom(atom, int(rng.choice([-3, -1, 1, 2, 5]))))
    return lin


def test_keyed_printing_gives_the_structural_key_of_the_expression():
    x, y, z = Var("x"), Var("y"), Var("z")
    atoms = [x, y, z, Binary(BinaryOp.FLOORDIV, x + y * 3, const(4)), Binary(BinaryOp.FLOORMOD, z, const(7))]
    rng = np.random.default_rng(0)
    for _ in range(300):
        lin = random_linear(rng, atoms)
        expr, key = linear_to_expr_keyed(lin)
        assert key == structural_key(expr)
        assert structural_key(linear_to_expr(lin)) == key


def random_index(rng: np.random.Generator, leaves: list, depth: int = 3):
    if depth == 0 or rng.random() < 0.3:
        leaf = leaves[int(rng.integers(len(leaves)))]
        return leaf if rng.random() < 0.8 else const(int(rng.integers(-3, 9)))
    op = [BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.FLOORDIV, BinaryOp.FLOORMOD][
        int(rng.integers(5))
    ]
    a = random_index(rng, leaves, depth - 1)
    b = const(int(rng.integers(1, 6))) if op is not BinaryOp.ADD and rng.random() < 0.7 else None
    return Binary(op, a, b if b is not None else random_index(rng, leaves, depth - 1))


def test_substituted_linear_form_equals_simplifying_the_substituted_expression():
    axes = [Var(f"a{i}") for i in range(3)]
    loops = [Var(f"l{i}") for i in range(4)]
    ranges = {v: (0, e) for v, e in zip(loops, (3, 8, 5, 16), strict=True)}
    f = loops[3]
    values = {
        axes[0]: loops[0] * 8 + loops[1],
        axes[1]: Binary(BinaryOp.FLOORDIV, f, const(4)) * 5 + loops[2],
        axes[2]: Binary(BinaryOp.FLOORMOD, f, const(4)),
    }
    simp = Simplifier(ranges)
    rng = np.random.default_rng(1)
    for _ in range(300):
        index = random_index(rng, axes + loops[:1])
        memo: dict = {}
        got = _substituted_linear(index, values, memo, simp)
        want = simp.linear(substitute(index, values))
        assert structural_key(linear_to_expr(got)) == structural_key(linear_to_expr(want)), str(index)
