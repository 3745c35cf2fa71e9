"""Scalar code of the LLVM back end against numpy: operators, casts, intrinsics, Select,
LetStmt, IfThenElse and Allocate, on random inputs. Each kernel is built by hand from
``ir.tir`` nodes; the same bodies also run in vectorized loops (VECTORIZED parameter)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from codegen_helpers import empty_like_buffer, loop, random_array

from codegen.llvm import build
from ir import expr as E
from ir.expr import BinaryOp, CompareOp, Intrinsic, Var, call, cast, const, select
from ir.tir import (
    Allocate,
    Buffer,
    BufferLoad,
    BufferStore,
    ForKind,
    IfThenElse,
    LetStmt,
    MemoryScope,
    PrimFunc,
    seq,
)

N = 29  # odd on purpose: vectorized loops have no convenient multiple of the width
KINDS = [ForKind.SERIAL, ForKind.VECTORIZED]

NUMPY_BINARY = {
    BinaryOp.ADD: np.add,
    BinaryOp.SUB: np.subtract,
    BinaryOp.MUL: np.multiply,
    BinaryOp.MAX: np.maximum,
    BinaryOp.MIN: np.minimum,
    BinaryOp.FLOORDIV: np.floor_divide,
    BinaryOp.FLOORMOD: np.mod,
}
NUMPY_COMPARE = {
    CompareOp.LT: np.less,
    CompareOp.LE: np.less_equal,
    CompareOp.GT: np.greater,
    CompareOp.GE: np.greater_equal,
    CompareOp.EQ: np.equal,
    CompareOp.NE: np.not_equal,
}


def _elementwise(
    name: str, inputs: list[Buffer], outputs: list[tuple[Buffer, E.Expr]], i: Var, kind
) -> PrimFunc:
    stores = [BufferStore(out, value, (i,)) for out, value in outputs]
    return PrimFunc(name, (*inputs, *(o for o, _ in outputs)), loop(i, N, seq(*stores), kind))


def _run_elementwise(func: PrimFunc, inputs: list[np.ndarray]) -> list[np.ndarray]:
    outs = [empty_like_buffer(b) for b in func.params[len(inputs) :]]
    build(func)(*inputs, *outs)
    return outs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["int32", "int64", "int8", "uint32", "float32", "float64"])
def test_binary_ops_match_numpy(dtype, kind):
    rng = np.random.default_rng(1)
    A, B = Buffer("A", (N,), dtype), Buffer("B", (N,), dtype)
    i = Var("i")
    a_val, b_val = BufferLoad(A, (i,)), BufferLoad(B, (i,))
    ops = dict(NUMPY_BINARY)
    if dtype.startswith("float"):
        ops[BinaryOp.DIV] = np.divide
    outputs = [(Buffer(f"out_{op.name}", (N,), dtype), E.Binary(op, a_val, b_val)) for op in ops]
    func = _elementwise("binary", [A, B], outputs, i, kind)
    low = 0 if dtype.startswith("uint") else -9
    a = random_array(rng, (N,), dtype, low, 10)
    b = random_array(rng, (N,), dtype, 1 if dtype.startswith("uint") else -9, 10)
    b[b == 0] = 3  # no division by zero
    results = _run_elementwise(func, [a, b])
    for (op, ref), got in zip(ops.items(), results, strict=True):
        with np.errstate(all="ignore"):
            expected = ref(a, b).astype(dtype)
        if dtype.startswith("float"):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=op.name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=op.name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["int32", "uint8", "float32", "float64", "bool"])
def test_compare_ops_match_numpy(dtype, kind):
    rng = np.random.default_rng(2)
    A, B = Buffer("A", (N,), dtype), Buffer("B", (N,), dtype)
    i = Var("i")
    a_val, b_val = BufferLoad(A, (i,)), BufferLoad(B, (i,))
    outputs = [(Buffer(f"out_{op.name}", (N,), "bool"), E.Compare(op, a_val, b_val)) for op in NUMPY_COMPARE]
    func = _elementwise("compare", [A, B], outputs, i, kind)
    a = random_array(rng, (N,), dtype, 0, 4)
    b = random_array(rng, (N,), dtype, 0, 4)
    if dtype.startswith("float"):
        b[::3] = a[::3]  # exercise equality
    results = _run_elementwise(func, [a, b])
    assert any(r.any() for r in results) and not all(r.all() for r in results)
    for (op, ref), got in zip(NUMPY_COMPARE.items(), results, strict=True):
        np.testing.assert_array_equal(got, ref(a, b), err_msg=op.name)


@pytest.mark.parametrize("kind", KINDS)
def test_logical_ops_and_not(kind):
    rng = np.random.default_rng(3)
    A, B = Buffer("A", (N,), "bool"), Buffer("B", (N,), "bool")
    i = Var("i")
    a_val, b_val = BufferLoad(A, (i,)), BufferLoad(B, (i,))
    outputs = [
        (Buffer("and_", (N,), "bool"), a_val & b_val),
        (Buffer("or_", (N,), "bool"), a_val | b_val),
        (Buffer("not_", (N,), "bool"), ~a_val),
    ]
    a, b = random_array(rng, (N,), "bool"), random_array(rng, (N,), "bool")
    got = _run_elementwise(_elementwise("logic", [A, B], outputs, i, kind), [a, b])
    np.testing.assert_array_equal(got[0], a & b)
    np.testing.assert_array_equal(got[1], a | b)
    np.testing.assert_array_equal(got[2], ~a)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_floordiv_floormod_round_toward_minus_infinity(dtype, kind):
    values = np.array([-7, -6, -5, -1, 0, 1, 5, 6, 7, -13, 13, 2**20 + 3, -(2**20) - 3], dtype=dtype)
    divisors = np.array([2, 3, -2, -3, 4, -4, 1, -1, 5, -5])
    a = np.repeat(values, len(divisors)).astype(dtype)
    b = np.tile(divisors, len(values)).astype(dtype)
    n = a.size
    A, B = Buffer("A", (n,), dtype), Buffer("B", (n,), dtype)
    Q, R = Buffer("Q", (n,), dtype), Buffer("R", (n,), dtype)
    i = Var("i")
    body = seq(
        BufferStore(Q, BufferLoad(A, (i,)) // BufferLoad(B, (i,)), (i,)),
        BufferStore(R, BufferLoad(A, (i,)) % BufferLoad(B, (i,)), (i,)),
    )
    q, r = empty_like_buffer(Q), empty_like_buffer(R)
    build(PrimFunc("floordiv", (A, B, Q, R), loop(i, n, body, kind)))(a, b, q, r)
    np.testing.assert_array_equal(q, np.floor_divide(a, b))
    np.testing.assert_array_equal(r, np.mod(a, b))


def test_float_floordiv_floormod():
    rng = np.random.default_rng(4)
    A, B = Buffer("A", (N,), "float32"), Buffer("B", (N,), "float32")
    Q, R = Buffer("Q", (N,), "float32"), Buffer("R", (N,), "float32")
    i = Var("i")
    body = seq(
        BufferStore(Q, BufferLoad(A, (i,)) // BufferLoad(B, (i,)), (i,)),
        BufferStore(R, BufferLoad(A, (i,)) % BufferLoad(B, (i,)), (i,)),
    )
    a = random_array(rng, (N,), "float32", -10, 10)
    b = random_array(rng, (N,), "float32", 0.5, 3) * rng.choice([-1, 1], N).astype("float32")
    q, r = empty_like_buffer(Q), empty_like_buffer(R)
    build(PrimFunc("ffloordiv", (A, B, Q, R), loop(i, N, body)))(a, b, q, r)
    np.testing.assert_allclose(q, np.floor(a / b), rtol=1e-6)
    np.testing.assert_allclose(r, a - np.floor(a / b) * b, rtol=1e-5, atol=1e-5)


TABLE_INT_VALUES = (-13, -7, -1, 0, 1, 5, 7, 2**20 + 3)
TABLE_INT_DIVISORS = (-4, -3, -1, 1, 2, 3)
TABLE_FLOAT_VALUES = (-7.5, -1.0, 0.0, 1.0, 2.5, 0.3, math.nan)
TABLE_FLOAT_DIVISORS = (0.1, -2.0, 3.0, -0.25, math.nan)


def _same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == y


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["int32", "float64"])
def test_binary_ops_agree_with_the_operator_table(dtype, kind):
    """The kernel computes what ``ir.expr.BINARY_FUNCTIONS`` says: floor division, float
    floor division as floor(a / b), max/min as selects (NaN included)."""
    is_int = dtype == "int32"
    values = TABLE_INT_VALUES if is_int else TABLE_FLOAT_VALUES
    divisors = TABLE_INT_DIVISORS if is_int else TABLE_FLOAT_DIVISORS
    a = np.array([x for x in values for _ in divisors], dtype=dtype)
    b = np.array([y for _ in values for y in divisors], dtype=dtype)
    n = a.size
    A, B = Buffer("A", (n,), dtype), Buffer("B", (n,), dtype)
    i = Var("i")
    a_val, b_val = BufferLoad(A, (i,)), BufferLoad(B, (i,))
    excluded = (BinaryOp.AND, BinaryOp.OR, BinaryOp.DIV) if is_int else (BinaryOp.AND, BinaryOp.OR)
    ops = [op for op in BinaryOp if op not in excluded]
    outputs = [(Buffer(f"out_{op.name}", (n,), dtype), E.Binary(op, a_val, b_val)) for op in ops]
    stores = [BufferStore(out, value, (i,)) for out, value in outputs]
    func = PrimFunc("table", (A, B, *(o for o, _ in outputs)), loop(i, n, seq(*stores), kind))
    outs = [empty_like_buffer(o) for o, _ in outputs]
    build(func)(a, b, *outs)
    for op, got in zip(ops, outs, strict=True):
        expected = [E.BINARY_FUNCTIONS[op](x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
        assert all(_same(x, y) for x, y in zip(got.tolist(), expected, strict=True)), op.name


def test_constant_folding_agrees_with_the_operator_table():
    """Integer operations on constants are folded at compile time (``ops.py``) with the
    same table, including floor division of negative operands."""
    pairs = [(x, y) for x in TABLE_INT_VALUES for y in TABLE_INT_DIVISORS]
    ops = [op for op in BinaryOp if op not in (BinaryOp.DIV, BinaryOp.AND, BinaryOp.OR)]
    out = Buffer("out", (len(ops) * len(pairs),), "int32")
    cmp_out = Buffer("cmp", (len(CompareOp) * len(pairs),), "bool")
    stores = []
    for k, (op, (x, y)) in enumerate((op, pair) for op in ops for pair in pairs):
        stores.append(BufferStore(out, E.Binary(op, const(x), const(y)), (const(k),)))
    for k, (op, (x, y)) in enumerate((op, pair) for op in CompareOp for pair in pairs):
        stores.append(BufferStore(cmp_out, E.Compare(op, const(x), const(y)), (const(k),)))
    got, got_cmp = empty_like_buffer(out), empty_like_buffer(cmp_out)
    build(PrimFunc("folded", (out, cmp_out), seq(*stores)))(got, got_cmp)
    expected = [E.BINARY_FUNCTIONS[op](x, y) for op in ops for x, y in pairs]
    expected_cmp = [E.COMPARE_FUNCTIONS[op](x, y) for op in CompareOp for x, y in pairs]
    assert got.tolist() == expected
    assert got_cmp.tolist() == expected_cmp


CASTS = [
    ("float32", "int32"),
    ("float64", "int64"),
    ("float32", "uint8"),
    ("int32", "float32"),
    ("uint32", "float64"),
    ("float32", "float64"),
    ("float64", "float32"),
    ("float32", "float16"),
    ("float16", "float32"),
    ("int32", "int8"),
    ("int8", "int32"),
    ("uint8", "int32"),
    ("int64", "int32"),
    ("int32", "uint32"),
    ("int32", "bool"),
    ("float32", "bool"),
    ("bool", "float32"),
    ("bool", "int32"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_casts_match_numpy(kind):
    rng = np.random.default_rng(5)
    i = Var("i")
    inputs, outputs, arrays = [], [], []
    for n, (src, dst) in enumerate(CASTS):
        buf = Buffer(f"in{n}", (N,), src)
        inputs.append(buf)
        outputs.append((Buffer(f"out{n}", (N,), dst), cast(dst, BufferLoad(buf, (i,)))))
        if src.startswith("float") and dst in ("uint8",):
            arrays.append(random_array(rng, (N,), src, 0, 250))
        elif src.startswith("float"):
            arrays.append(random_array(rng, (N,), src, -300, 300))
        elif src == "int32" and dst == "int8":
            arrays.append(random_array(rng, (N,), src, -1000, 1000))  # wraps, as numpy does
        else:
            arrays.append(random_array(rng, (N,), src, 0 if src.startswith("uint") else -50, 200))
        arrays[-1][0] = 0  # zero -> False
    results = _run_elementwise(_elementwise("casts", inputs, outputs, i, kind), arrays)
    for (src, dst), a, got in zip(CASTS, arrays, results, strict=True):
        expected = a.astype(dst)  # numpy truncates float -> int toward zero, like C
        if dst.startswith("float"):
            np.testing.assert_allclose(
                got, expected, rtol=1e-3 if dst == "float16" else 1e-7, err_msg=f"{src}->{dst}"
            )
        else:
            np.testing.assert_array_equal(got, expected, err_msg=f"{src}->{dst}")


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype("float64"))


INTRINSIC_REFS = {
    Intrinsic.EXP: (np.exp, -3, 3),
    Intrinsic.EXP2: (np.exp2, -3, 3),
    Intrinsic.LOG: (np.log, 0.1, 9),
    Intrinsic.LOG2: (np.log2, 0.1, 9),
    Intrinsic.LOG10: (np.log10, 0.1, 9),
    Intrinsic.SQRT: (np.sqrt, 0.1, 9),
    Intrinsic.RSQRT: (lambda x: 1 / np.sqrt(x), 0.1, 9),
    Intrinsic.TANH: (np.tanh, -3, 3),
    Intrinsic.SIGMOID: (lambda x: 1 / (1 + np.exp(-x)), -6, 6),
    Intrinsic.ERF: (_erf, -2.5, 2.5),
    Intrinsic.ABS: (np.abs, -5, 5),
    Intrinsic.FLOOR: (np.floor, -5, 5),
    Intrinsic.CEIL: (np.ceil, -5, 5),
    Intrinsic.ROUND: (np.round, -5, 5),
    Intrinsic.TRUNC: (np.trunc, -5, 5),
    Intrinsic.SIN: (np.sin, -4, 4),
    Intrinsic.COS: (np.cos, -4, 4),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_intrinsic_matches_numpy(dtype, kind):
    assert set(INTRINSIC_REFS) | {Intrinsic.POW, Intrinsic.FMOD} == set(Intrinsic)
    rng = np.random.default_rng(6)
    i = Var("i")
    inputs, outputs, arrays = [], [], []
    for fn, (_, low, high) in INTRINSIC_REFS.items():
        buf = Buffer(f"in_{fn.value}", (N,), dtype)
        inputs.append(buf)
        outputs.append((Buffer(f"out_{fn.value}", (N,), dtype), call(fn, BufferLoad(buf, (i,)))))
        values = random_array(rng, (N,), dtype, low, high)
        if fn is Intrinsic.ROUND:
            values[:4] = [0.5, 1.5, 2.5, -2.5]  # halves round to even, like numpy
        arrays.append(values)
    # binary intrinsics share two extra inputs
    X, Y = Buffer("X", (N,), dtype), Buffer("Y", (N,), dtype)
    x = random_array(rng, (N,), dtype, 0.2, 3)
    y = random_array(rng, (N,), dtype, -2, 2)
    x_val, y_val = BufferLoad(X, (i,)), BufferLoad(Y, (i,))
    outputs.append((Buffer("out_pow", (N,), dtype), call("pow", x_val, y_val)))
    outputs.append((Buffer("out_fmod", (N,), dtype), call("fmod", y_val * 5.0, x_val)))
    results = _run_elementwise(_elementwise("intrinsics", [*inputs, X, Y], outputs, i, kind), [*arrays, x, y])
    expected = [ref(a) for (ref, _, _), a in zip(INTRINSIC_REFS.values(), arrays, strict=True)]
    expected += [np.power(x, y), np.fmod(y * dtype_cast(5.0, dtype), x)]
    names = [fn.value for fn in INTRINSIC_REFS] + ["pow", "fmod"]
    for name, got, want in zip(names, results, expected, strict=True):
        np.testing.assert_allclose(got, want.astype(dtype), rtol=1e-5, atol=1e-6, err_msg=name)


def dtype_cast(value: float, dtype: str):
    return np.dtype(dtype).type(value)


def test_integer_abs():
    rng = np.random.default_rng(7)
    A, B = Buffer("A", (N,), "int32"), Buffer("B", (N,), "int32")
    i = Var("i")
    a = random_array(rng, (N,), "int32", -100, 100)
    b = empty_like_buffer(B)
    build(PrimFunc("iabs", (A, B), loop(i, N, BufferStore(B, abs(BufferLoad(A, (i,))), (i,)))))(a, b)
    np.testing.assert_array_equal(b, np.abs(a))


@pytest.mark.parametrize("kind", KINDS)
def test_select_pads_without_reading_outside(kind):
    """B[i] = (1 <= i <= n) ? A[i - 1] : -1 over n + 2 outputs (the page-guard version of
    this test is in test_llvm_guard_page.py)."""
    rng = np.random.default_rng(8)
    n = 13
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n + 2,), "float32")
    i = Var("i")
    inside = (i >= 1) & (i <= n)
    body = BufferStore(B, select(inside, BufferLoad(A, (i - 1,)), const(-1.0)), (i,))
    a = random_array(rng, (n,), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("pad", (A, B), loop(i, n + 2, body, kind)))(a, b)
    np.testing.assert_array_equal(b, np.concatenate([[-1.0], a, [-1.0]]).astype("float32"))


@pytest.mark.parametrize("kind", KINDS)
def test_let_stmt_binds_a_value(kind):
    rng = np.random.default_rng(9)
    A, B = Buffer("A", (N,), "float32"), Buffer("B", (N,), "float32")
    i, x, j = Var("i"), Var("x", "float32"), Var("j")
    body = LetStmt(j, N - 1 - i, LetStmt(x, BufferLoad(A, (j,)) * 2.0, BufferStore(B, x * x + x, (i,))))
    a = random_array(rng, (N,), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("let", (A, B), loop(i, N, body, kind)))(a, b)
    rev = a[::-1] * 2
    np.testing.assert_allclose(b, rev * rev + rev, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_if_then_else_statement(kind):
    rng = np.random.default_rng(10)
    A, B, C = Buffer("A", (N,), "float32"), Buffer("B", (N,), "float32"), Buffer("C", (N,), "float32")
    i = Var("i")
    a_val = BufferLoad(A, (i,))
    body = seq(
        IfThenElse(a_val > 0.0, BufferStore(B, a_val * 3.0, (i,)), BufferStore(B, -a_val, (i,))),
        IfThenElse(i % 3 == 0, BufferStore(C, a_val, (i,))),  # no else: C keeps its value elsewhere
    )
    a = random_array(rng, (N,), "float32")
    b, c = empty_like_buffer(B), empty_like_buffer(C)
    build(PrimFunc("ite", (A, B, C), loop(i, N, body, kind)))(a, b, c)
    np.testing.assert_allclose(b, np.where(a > 0, a * 3, -a), rtol=1e-6)
    expected_c = np.full(N, 77, "float32")
    expected_c[::3] = a[::3]
    np.testing.assert_array_equal(c, expected_c)


def test_allocate_local_accumulator_row_sum():
    rng = np.random.default_rng(11)
    rows, cols = 9, 23
    A, B = Buffer("A", (rows, cols), "float32"), Buffer("B", (rows,), "float32")
    acc = Buffer("acc", (1,), "float32", scope=MemoryScope.LOCAL)
    i, k = Var("i"), Var("k")
    zero = const(0, "int32")
    body = Allocate(
        acc,
        seq(
            BufferStore(acc, const(0.0), (zero,)),
            loop(
                k, cols, BufferStore(acc, BufferLoad(acc, (zero,)) + BufferLoad(A, (i * cols + k,)), (zero,))
            ),
            BufferStore(B, BufferLoad(acc, (zero,)), (i,)),
        ),
    )
    a = random_array(rng, (rows, cols), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("rowsum", (A, B), loop(i, rows, body)))(a, b)
    np.testing.assert_allclose(b, a.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_large_allocate_goes_to_the_heap_and_works():
    """A 256 KiB scratch buffer (above the 64 KiB stack limit): copy in, reverse out."""
    rng = np.random.default_rng(12)
    n = 64 * 1024
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    tmp = Buffer("tmp", (n,), "float32")
    i, j = Var("i"), Var("j")
    body = Allocate(
        tmp,
        seq(
            loop(i, n, BufferStore(tmp, BufferLoad(A, (i,)) + 1.0, (i,))),
            loop(j, n, BufferStore(B, BufferLoad(tmp, (n - 1 - j,)), (j,))),
        ),
    )
    module = build(PrimFunc("heap", (A, B), body))
    assert "aligned_alloc" in module.get_ir(optimized=False)
    a = random_array(rng, (n,), "float32")
    b = empty_like_buffer(B)
    module(a, b)
    np.testing.assert_allclose(b, (a + 1)[::-1], rtol=1e-6)


def test_multi_dimensional_indices_are_flattened_with_strides():
    rng = np.random.default_rng(13)
    A, B = Buffer("A", (3, 5), "float32"), Buffer("B", (5, 3), "float32")
    i, j = Var("i"), Var("j")
    body = loop(i, 3, loop(j, 5, BufferStore(B, BufferLoad(A, (i, j)), (j, i))))
    a = random_array(rng, (3, 5), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("transpose", (A, B), body))(a, b)
    np.testing.assert_array_equal(b, a.T)


def test_float16_arithmetic():
    rng = np.random.default_rng(14)
    A, B = Buffer("A", (N,), "float16"), Buffer("B", (N,), "float16")
    i = Var("i")
    a_val = BufferLoad(A, (i,))
    body = BufferStore(B, a_val * a_val + call("erf", a_val), (i,))
    a = random_array(rng, (N,), "float16", -2, 2)
    b = empty_like_buffer(B)
    build(PrimFunc("half", (A, B), loop(i, N, body)))(a, b)
    expected = a.astype("float64") ** 2 + _erf(a)
    np.testing.assert_allclose(b.astype("float64"), expected, rtol=1e-2, atol=1e-2)
