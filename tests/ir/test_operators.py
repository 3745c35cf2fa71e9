"""What each operator computes (``ir.expr.BINARY_FUNCTIONS`` and ``COMPARE_FUNCTIONS``), and
the evaluators of the ``ir`` package that must agree with it: the simplifier's constant
folding, the numpy reference and the Python interpreter of lowered programs. The LLVM back
end is checked against the same table in ``tests/codegen/test_llvm_scalar_ops.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ir import te
from ir.compute_dag import ComputeDAG
from ir.expr import (
    BINARY_FUNCTIONS,
    COMPARE_FUNCTIONS,
    Binary,
    BinaryOp,
    Compare,
    CompareOp,
    Const,
    const,
    floordiv,
    floormod,
    maximum,
    minimum,
)
from ir.lower.interpreter import run
from ir.lower.lower import lower
from ir.lower.simplify import FOLDED_FLOAT_OPS, simplify
from ir.reference import evaluate

INT_VALUES = (-13, -7, -6, -1, 0, 1, 5, 7, 13)
INT_DIVISORS = (-4, -3, -2, -1, 1, 2, 3, 4)
FLOAT_VALUES = (-7.5, -1.0, -0.0, 0.0, 1.0, 2.5, 0.3)
FLOAT_DIVISORS = (0.1, -2.0, 3.0, 0.5, -0.25)
#: operators defined on integer operands
INT_OPS = [op for op in BinaryOp if op not in (BinaryOp.DIV, BinaryOp.AND, BinaryOp.OR)]
FLOAT_OPS = [op for op in BinaryOp if op not in (BinaryOp.AND, BinaryOp.OR)]


def same(x: float, y: float) -> bool:
    """Equal, NaN equal to NaN."""
    return (math.isnan(x) and math.isnan(y)) or x == y


def test_integer_floor_division_rounds_toward_minus_infinity():
    assert (floordiv(-7, 2), floormod(-7, 2)) == (-4, 1)
    assert (floordiv(7, -2), floormod(7, -2)) == (-4, -1)
    for a in INT_VALUES:
        for b in INT_DIVISORS:
            q, r = floordiv(a, b), floormod(a, b)
            assert q * b + r == a
            assert r == 0 or (r > 0) == (b > 0), (a, b)


def test_float_floor_division_is_the_floor_of_the_quotient():
    assert 1.0 // 0.1 == 9.0  # Python's float //, which is not TVM's floordiv
    assert floordiv(1.0, 0.1) == 10.0
    assert floormod(1.0, 0.1) == 1.0 - 10.0 * 0.1
    assert floordiv(-7.5, 2.0) == -4.0 and floormod(-7.5, 2.0) == 0.5
    assert floordiv(math.inf, 2.0) == math.inf
    assert math.isnan(floordiv(math.nan, 2.0)) and math.isnan(floormod(math.nan, 2.0))


def test_max_and_min_are_the_selects_the_back_end_emits():
    assert maximum(3, 5) == 5 and minimum(3, 5) == 3
    assert maximum(math.nan, 1.0) == 1.0 and math.isnan(maximum(1.0, math.nan))
    assert minimum(math.nan, 1.0) == 1.0 and math.isnan(minimum(1.0, math.nan))
    assert BINARY_FUNCTIONS[BinaryOp.AND](True, False) is False
    assert BINARY_FUNCTIONS[BinaryOp.OR](False, True) is True


def test_every_operator_has_a_meaning():
    assert set(BINARY_FUNCTIONS) == set(BinaryOp)
    assert set(COMPARE_FUNCTIONS) == set(CompareOp)


@pytest.mark.parametrize("op", INT_OPS, ids=lambda op: op.name)
def test_simplifier_folds_integer_constants_with_the_table(op):
    for a in INT_VALUES:
        for b in INT_DIVISORS:
            folded = simplify(Binary(op, const(a), const(b)))
            assert isinstance(folded, Const) and folded.value == BINARY_FUNCTIONS[op](a, b), (op, a, b)


@pytest.mark.parametrize("op", sorted(FOLDED_FLOAT_OPS, key=lambda op: op.name), ids=lambda op: op.name)
def test_simplifier_folds_float_constants_with_the_table(op):
    for a in (*FLOAT_VALUES, math.nan):
        for b in FLOAT_DIVISORS:
            folded = simplify(Binary(op, const(a, "float64"), const(b, "float64")))
            assert isinstance(folded, Const) and same(folded.value, BINARY_FUNCTIONS[op](a, b)), (op, a, b)


@pytest.mark.parametrize("op", list(CompareOp), ids=lambda op: op.name)
def test_simplifier_decides_constant_comparisons_with_the_table(op):
    for a in INT_VALUES:
        for b in INT_DIVISORS:
            folded = simplify(Compare(op, const(a), const(b)))
            assert isinstance(folded, Const) and folded.value == COMPARE_FUNCTIONS[op](a, b)


def _pairs(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Every (value, divisor) pair of the dtype's test values, as two arrays; float pairs
    also put a NaN on each side."""
    if dtype.startswith("int"):
        values, divisors = INT_VALUES, INT_DIVISORS
    else:
        values, divisors = (*FLOAT_VALUES, math.nan), (*FLOAT_DIVISORS, math.nan)
    a = np.array([x for x in values for _ in divisors], dtype=dtype)
    b = np.array([y for _ in values for y in divisors], dtype=dtype)
    return a, b


def _elementwise_dag(ops: list[BinaryOp], n: int, dtype: str) -> ComputeDAG:
    A = te.placeholder((n,), name="A", dtype=dtype)
    B = te.placeholder((n,), name="B", dtype=dtype)

    def applied(op: BinaryOp) -> te.Tensor:
        return te.compute((n,), lambda i: Binary(op, A[i], B[i]), name=f"C_{op.name}")

    return ComputeDAG([A, B, *(applied(op) for op in ops)])


def _expected(op: BinaryOp, a: np.ndarray, b: np.ndarray) -> list[float]:
    return [BINARY_FUNCTIONS[op](x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]


@pytest.mark.parametrize("dtype", ["int32", "float64"])
def test_reference_applies_the_table_elementwise(dtype):
    ops = INT_OPS if dtype == "int32" else FLOAT_OPS
    a, b = _pairs(dtype)
    got = evaluate(_elementwise_dag(ops, a.size, dtype), [a, b])
    for op, values in zip(ops, got, strict=True):
        expected = _expected(op, a, b)
        assert all(same(x, y) for x, y in zip(values.tolist(), expected, strict=True)), op


@pytest.mark.parametrize("dtype", ["int32", "float64"])
def test_interpreter_applies_the_table(dtype):
    ops = INT_OPS if dtype == "int32" else FLOAT_OPS
    a, b = _pairs(dtype)
    dag = _elementwise_dag(ops, a.size, dtype)
    outs = [np.zeros(a.size, dtype=dtype) for _ in ops]
    run(lower(dag), [a, b, *outs])
    for op, values in zip(ops, outs, strict=True):
        expected = _expected(op, a, b)
        assert all(same(x, y) for x, y in zip(values.tolist(), expected, strict=True)), op
