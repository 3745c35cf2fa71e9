"""The arithmetic simplifier: linear canonical form, division removal by range proofs,
min/max and comparison proofs, constant folding; and a randomised check that simplifying
never changes an expression's value."""

from __future__ import annotations

import random

import pytest

from ir.expr import Binary, BinaryOp, Const, Expr, Select, Var, const, max_expr, min_expr, select
from ir.lower.simplify import Simplifier, bounds, prove, simplify


def v(name: str) -> Var:
    return Var(name, "int32")


I0, I1, J, F = v("i.0"), v("i.1"), v("j"), v("f")
RANGES = {I0: (0, 4), I1: (0, 32), J: (0, 8), F: (0, 24)}


def text(e: Expr, ranges: dict[Var, tuple[int, int]] | None = RANGES) -> str:
    return str(simplify(e, ranges))


# ------------------------------------------------------------------------------------------
# linear form


def test_linear_form_collects_terms_in_first_seen_order():
    assert text((I0 * 32 + I1) * 64 + J + 5 - 3) == "i.0 * 2048 + i.1 * 64 + j + 2"
    assert text(J - J) == "0"
    assert text(I0 * 3 - I1 * 2 - 7) == "i.0 * 3 - i.1 * 2 - 7"
    assert text(2 * (J + 1) - J) == "j + 2"


def test_constant_folding():
    assert text(const(3) * 4 + 2) == "14"
    assert text(const(7) // 2 + const(7) % 2) == "4"
    assert text(const(-7) // 2) == "-4"  # floor division
    assert text(const(1.5, "float32") * 2.0) == "3.0f"
    assert text(Binary(BinaryOp.MAX, const(2.0, "float32"), const(-1.0, "float32"))) == "2.0f"


def test_float_arithmetic_is_not_reassociated():
    x = Var("x", "float32")
    assert text(x * 2.0 + x * 3.0) == "x * 2.0f + x * 3.0f"


# ------------------------------------------------------------------------------------------
# division and modulo


def test_split_recombination_divides_out():
    assert text((I0 * 32 + I1) // 32) == "i.0"
    assert text((I0 * 32 + I1) % 32) == "i.1"
    assert text((I0 * 32 + I1 + 64) // 32) == "i.0 + 2"


def test_division_needs_the_range_proof():
    # without ranges i.1 could be >= 32: nothing can be removed
    assert text((I0 * 32 + I1) // 32, None) == "i.0 + i.1 // 32"
    assert text((I0 * 32 + I1) % 32, None) == "i.1 % 32"
    # with i.1 in [0, 33) the quotient may be i.0 + 1
    wide = {I0: (0, 4), I1: (0, 33)}
    assert text((I0 * 32 + I1) // 32, wide) == "i.0 + i.1 // 32"


def test_common_factor_division():
    f0, f1 = v("f.0"), v("f.1")
    ranges = {f0: (0, 16), f1: (0, 8)}
    assert text((f0 * 8 + f1) // 32, ranges) == "f.0 // 4"
    assert text((f0 * 8 + f1) % 32, ranges) == "f.0 % 4 * 8 + f.1"


def test_small_ranges_fold_division_to_a_constant():
    assert text(J // 8) == "0"
    assert text(J % 8) == "j"
    assert text((J + 8) // 8) == "1"
    assert text(J // 1) == "j"
    assert text(J % 1) == "0"


def test_nested_division_combines():
    assert text(F // 2 // 3, None) == "f // 6"


def test_fused_index_recombines_to_the_fused_variable():
    # fuse(i, j) with extent(j) = 6 gives i = f // 6, j = f % 6; A[i*6 + j] reads A[f]
    assert text(F // 6 * 6 + F % 6) == "f"
    assert text((F // 6 * 6 + F % 6) * 3 + J) == "f * 3 + j"
    # three fused loops of extents (2, 3, 4): ((f//12)*3 + (f//4)%3)*4 + f%4 == f
    assert text(F // 12 * 12 + F // 4 % 3 * 4 + F % 4) == "f"


# ------------------------------------------------------------------------------------------
# min, max, comparisons, logic


def test_min_max_by_range_proof():
    assert text(min_expr(J, 8)) == "j"
    assert text(max_expr(J, 8)) == "8"
    assert text(max_expr(J + 1, J)) == "j + 1"
    assert text(min_expr(J, 4)) == "min(j, 4)"


def test_comparisons_decided_by_ranges():
    assert text(I0 * 4 + I1 < 200) == "True"
    assert text(I0 * 4 + I1 >= 0) == "True"
    assert text(J > 8) == "False"
    assert text(I0 * 4 + I1 < 20) == "i.0 * 4 + i.1 < 20"
    assert text(J == J) == "True"
    assert text(J != J + 1) == "True"


def test_logic_with_constant_operands_collapses():
    cond = (J < 4) & (I0 < 10)
    assert text(cond) == "j < 4"
    assert text((J < 4) | (I0 < 10)) == "True"
    assert text(~(J < 100)) == "False"
    assert text(select(J < 100, I0, I1)) == "i.0"


def test_select_with_open_condition_is_kept_with_simplified_sides():
    e = simplify(select(J < 4, (I0 * 32 + I1) // 32, J % 8), RANGES)
    assert isinstance(e, Select)
    assert str(e) == "select(j < 4, i.0, j)"


def test_bounds_and_prove():
    assert bounds(I0 * 32 + I1, RANGES) == (0, 127)
    assert bounds(J * -2 + 3, RANGES) == (-11, 3)
    assert bounds(J % 3, RANGES) == (0, 2)
    assert bounds(J // 3, RANGES) == (0, 2)
    lo, hi = bounds(v("free"), RANGES)
    assert lo == float("-inf") and hi == float("inf")
    assert prove(J < 8, RANGES) is True
    assert prove(J < 7, RANGES) is None
    assert prove(J >= 8, RANGES) is False


# ------------------------------------------------------------------------------------------
# randomised: simplification preserves values


def _random_expr(rng: random.Random, variables: list[Var], depth: int) -> Expr:
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.7:
            return rng.choice(variables)
        return const(rng.randint(-5, 40))
    a = _random_expr(rng, variables, depth - 1)
    kind = rng.choice(["add", "sub", "mulc", "div", "mod", "min", "max", "select"])
    if kind == "add":
        return a + _random_expr(rng, variables, depth - 1)
    if kind == "sub":
        return a - _random_expr(rng, variables, depth - 1)
    if kind == "mulc":
        return a * rng.randint(-3, 9)
    if kind == "div":
        return a // rng.choice([1, 2, 3, 4, 8, 32])
    if kind == "mod":
        return a % rng.choice([1, 2, 3, 4, 8, 32])
    b = _random_expr(rng, variables, depth - 1)
    if kind == "min":
        return min_expr(a, b)
    if kind == "max":
        return max_expr(a, b)
    return select(a < b, a, b + 1)


def _evaluate(e: Expr, env: dict[int, int]) -> int:
    if isinstance(e, Const):
        return int(e.value)
    if isinstance(e, Var):
        return env[id(e)]
    if isinstance(e, Select):
        return _evaluate(e.true_value if _evaluate_bool(e.cond, env) else e.false_value, env)
    assert isinstance(e, Binary), e
    a, b = _evaluate(e.a, env), _evaluate(e.b, env)
    return {
        BinaryOp.ADD: lambda: a + b,
        BinaryOp.SUB: lambda: a - b,
        BinaryOp.MUL: lambda: a * b,
        BinaryOp.FLOORDIV: lambda: a // b,
        BinaryOp.FLOORMOD: lambda: a % b,
        BinaryOp.MIN: lambda: min(a, b),
        BinaryOp.MAX: lambda: max(a, b),
    }[e.op]()


def _evaluate_bool(e: Expr, env: dict[int, int]) -> bool:
    if isinstance(e, Const):
        return bool(e.value)
    a, b = _evaluate(e.a, env), _evaluate(e.b, env)  # type: ignore[attr-defined]
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[e.op.value]  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(6))
def test_simplify_preserves_value_on_random_expressions(seed: int):
    rng = random.Random(seed)
    variables = [v("a"), v("b"), v("c")]
    ranges = {x: (rng.randint(-4, 4), rng.randint(1, 40)) for x in variables}
    simp = Simplifier(ranges)
    changed = 0
    for _ in range(60):
        e = _random_expr(rng, variables, 4)
        s = simp.simplify(e)
        changed += str(s) != str(e)
        for _ in range(12):
            env = {id(x): rng.randrange(lo, lo + ext) for x, (lo, ext) in ranges.items()}
            assert _evaluate(s, env) == _evaluate(e, env), f"{e}  simplified to  {s}  at {env}"
            lo, hi = simp.bounds(e)
            assert lo <= _evaluate(e, env) <= hi, f"bounds {lo, hi} of {e} miss its value"
    assert changed > 20  # the rules fire: the test would be vacuous otherwise
