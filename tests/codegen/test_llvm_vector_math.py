"""Vector exp/log/tanh/sigmoid/erf of the LLVM back end (``codegen/llvm/vector_math.py``)
against float64 (float32 inputs) or long double (float64 inputs) references, on dense
sweeps over each function's whole range, special values, gradual underflow, odd vector
widths and float16; then softmax and GELU from ``ir.topi`` scheduled with vectorized loops
against ``ir.reference.evaluate``.

Tolerances (module docstring of ``vector_math``): float32 exp, log and sigmoid 4e-7
relative; tanh and erf 1e-6 relative or 1e-7 absolute; float64 exp, log and sigmoid 4 ulp.
Results in the subnormal range must be within one subnormal step of the exact value
(gradual underflow, not flush to zero).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest
from codegen_helpers import loop
from llvmlite import ir

from codegen.llvm import CodegenError, build
from codegen.llvm import vector_math as vm
from codegen.llvm.context import ModuleContext
from codegen.target import as_target
from ir import te, topi
from ir.compute_dag import ComputeDAG
from ir.expr import Intrinsic, Var, call
from ir.loop_state.api import State
from ir.lower.lower import lower
from ir.reference import evaluate
from ir.tir import Buffer, BufferLoad, BufferStore, ForKind, PrimFunc, Stmt, seq

V = ForKind.VECTORIZED
FUNCTIONS = [Intrinsic.EXP, Intrinsic.LOG, Intrinsic.TANH, Intrinsic.SIGMOID, Intrinsic.ERF]
LIBM_NAMES = ("expf", "logf", "tanhf", "erff", "exp", "log", "tanh", "erf")


def _kernel(fns: list[Intrinsic], n: int, dtype: str, kind: ForKind = V, width: int = 16):
    """``out_f[i] = f(x[i])`` for each f, over ``n`` elements; a vectorized loop is split
    so each vector has ``width`` lanes (plus one shorter tail when ``width`` does not
    divide ``n``)."""
    X = Buffer("x", (n,), dtype)
    outs = [Buffer(f"out_{fn.value}", (n,), dtype) for fn in fns]
    i = Var("i")
    if kind is V and n > width:
        outer, inner = Var("i_outer"), Var("i_inner")
        full, tail = divmod(n, width)
        index = outer * width + inner
        stores = [BufferStore(o, call(fn, BufferLoad(X, (index,))), (index,)) for fn, o in zip(fns, outs)]
        body: Stmt = loop(outer, full, loop(inner, width, seq(*stores), V))
        if tail:
            tail_index = inner + full * width
            tail_stores = [
                BufferStore(o, call(fn, BufferLoad(X, (tail_index,))), (tail_index,))
                for fn, o in zip(fns, outs)
            ]
            body = seq(body, loop(inner, tail, seq(*tail_stores), V))
    else:
        stores = [BufferStore(o, call(fn, BufferLoad(X, (i,))), (i,)) for fn, o in zip(fns, outs)]
        body = loop(i, n, seq(*stores), kind)
    return build(PrimFunc("vmath", (X, *outs), body))


def _apply(fn: Intrinsic, x: np.ndarray, **kwargs) -> np.ndarray:
    out = np.full_like(x, 77)
    _kernel([fn], x.size, str(x.dtype), **kwargs)(x, out)
    return out


# ------------------------------------------------------------------------------------------
# references


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Sigmoid without overflow or cancellation, in x's (wide) dtype."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


REFERENCES: dict[Intrinsic, Callable[[np.ndarray], np.ndarray]] = {
    Intrinsic.EXP: np.exp,
    Intrinsic.LOG: np.log,
    Intrinsic.TANH: np.tanh,
    Intrinsic.SIGMOID: _sigmoid,
    Intrinsic.ERF: _erf,
}


def _reference(fn: Intrinsic, x: np.ndarray) -> np.ndarray:
    """Exact to well under float32 (float64 reference) or float64 (long double) precision."""
    wide = np.float64 if x.dtype != np.float64 else np.longdouble
    with np.errstate(all="ignore"):
        return REFERENCES[fn](x.astype(wide))


def _check(fn: Intrinsic, x: np.ndarray, got: np.ndarray, rtol: float, atol: float = 0.0) -> None:
    """``got`` against the exact value: specials exactly, normal results within ``rtol``
    relative (or ``atol`` absolute), subnormal results within one subnormal step."""
    exact = _reference(fn, x)
    with np.errstate(over="ignore"):
        rounded = exact.astype(x.dtype)
    info = np.finfo(x.dtype)
    special = ~np.isfinite(rounded)
    np.testing.assert_array_equal(got[special], rounded[special], err_msg=f"{fn.value} specials")
    subnormal = np.isfinite(rounded) & (np.abs(rounded) < info.tiny)
    step = float(info.smallest_subnormal)
    sub_err = np.abs(got[subnormal].astype(exact.dtype) - exact[subnormal])
    if sub_err.size:
        worst_x = x[subnormal][sub_err.argmax()]
        assert sub_err.max() <= step, (
            f"{fn.value}: subnormal off by {sub_err.max() / step:.2f} steps at {worst_x!r}"
        )
    normal = np.isfinite(rounded) & ~subnormal
    err = np.abs(got[normal].astype(exact.dtype) - exact[normal])
    excess = err - np.maximum(rtol * np.abs(exact[normal]), atol)
    worst = int(np.argmax(excess))
    assert excess[worst] <= 0, (
        f"{fn.value} {x.dtype}: error {float(err[worst]):.3g} at x={x[normal][worst]!r} "
        f"(exact {float(exact[normal][worst])!r}, got {got[normal][worst]!r}), over rtol={rtol} atol={atol}"
    )


def _log_uniform(rng: np.random.Generator, n: int, low_exp: float, high_exp: float) -> np.ndarray:
    return np.exp2(rng.uniform(low_exp, high_exp, n))


def _sweep(fn: Intrinsic, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Dense random points over the whole interesting range of ``fn``, plus the regions where
    an approximation switches pieces or loses accuracy."""
    n = 1 << 17
    f64 = dtype == "float64"
    if fn is Intrinsic.EXP:
        top, bottom = (709.9, -745.3) if f64 else (88.8, -104.0)
        parts = [rng.uniform(bottom, top, n), rng.uniform(-1, 1, n // 4), np.linspace(-0.35, 0.35, 4097)]
    elif fn is Intrinsic.LOG:
        lowest, highest = (-1074, 1024) if f64 else (-149, 128)
        near_one = 1 + rng.uniform(-1e-3, 1e-3, n // 4)
        parts = [_log_uniform(rng, n, lowest, highest), rng.uniform(0.5, 2.0, n), near_one]
    elif fn is Intrinsic.SIGMOID:
        bottom = -745.0 if f64 else -104.0
        parts = [rng.uniform(bottom, 40, n), rng.uniform(-4, 4, n // 2)]
    else:  # tanh and erf: odd, so both signs of magnitudes from tiny to saturated
        tiny_to_large = _log_uniform(rng, n // 2, -140, 3)
        magnitudes = [tiny_to_large, rng.uniform(0, 6, n), rng.uniform(0.55, 1.0, n // 4)]
        parts = [m * rng.choice([-1.0, 1.0], m.size) for m in magnitudes]
    return np.concatenate(parts).astype(dtype)


# ------------------------------------------------------------------------------------------
# accuracy, float32

F32_TOLERANCES = {
    Intrinsic.EXP: (4e-7, 0.0),
    Intrinsic.LOG: (4e-7, 0.0),
    Intrinsic.SIGMOID: (4e-7, 0.0),
    Intrinsic.TANH: (1e-6, 1e-7),
    Intrinsic.ERF: (1e-6, 1e-7),
}


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.value)
def test_float32_dense_sweep_is_accurate(fn):
    rng = np.random.default_rng(100 + FUNCTIONS.index(fn))
    x = _sweep(fn, "float32", rng)
    got = _apply(fn, x)
    rtol, atol = F32_TOLERANCES[fn]
    _check(fn, x, got, rtol, atol)


F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)
F32_SUB = float(np.finfo(np.float32).smallest_subnormal)
SPECIALS_F32 = [
    0.0, -0.0, 1.0, -1.0, 0.5, 2.0, math.inf, -math.inf, math.nan, -math.nan,
    F32_MAX, -F32_MAX, F32_TINY, -F32_TINY, F32_SUB, -F32_SUB, 3 * F32_SUB,
    88.72283, 88.72284, 88.7229, 89.0, 100.0, 1e30, -1e30,
    -87.33654, -87.3366, -100.0, -103.2789, -103.9720, -103.9721, -104.0, -150.0,
    0.625, -0.625, 0.921875, -0.921875, 3.925, 3.93, 9.0, 1e-20, -1e-20,
]  # fmt: skip


@pytest.mark.parametrize("kind", [V, ForKind.SERIAL], ids=["vector", "scalar"])
@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.value)
def test_float32_special_values(fn, kind):
    x = np.array(SPECIALS_F32, dtype="float32")
    got = _apply(fn, x, kind=kind)
    rtol, atol = F32_TOLERANCES[fn]
    _check(fn, x, got, rtol, atol)  # NaN, inf and the boundaries
    expected_nan = np.isnan(_reference(fn, x))
    np.testing.assert_array_equal(np.isnan(got), expected_nan, err_msg=f"{fn.value}: NaN pattern")
    if fn in (Intrinsic.TANH, Intrinsic.ERF):  # odd functions keep the sign of zero
        np.testing.assert_array_equal(np.signbit(got[:2]), [False, True])


def test_exp_overflows_to_inf_and_underflows_gradually():
    x = np.array([88.72283, 88.7229, 200.0, -87.3, -95.0, -100.0, -103.0, -103.97, -104.5, -1e4], "float32")
    got = _apply(Intrinsic.EXP, x)
    assert np.isfinite(got[0]) and got[0] > 3.4e38
    assert np.all(np.isinf(got[1:3]))
    assert np.all((got[4:8] > 0) & (got[4:8] < F32_TINY)), "subnormal results must not flush to zero"
    np.testing.assert_array_equal(got[8:], [0.0, 0.0])
    _check(Intrinsic.EXP, x, got, 4e-7)


def test_log_of_zero_negative_infinity_nan_and_subnormals():
    x = np.array(
        [0.0, -0.0, -1.0, -F32_SUB, -math.inf, math.inf, math.nan, F32_SUB, 1e-40, F32_TINY], "float32"
    )
    got = _apply(Intrinsic.LOG, x)
    np.testing.assert_array_equal(got[:2], [-math.inf, -math.inf])
    assert np.all(np.isnan(got[2:5])) and np.isnan(got[6])
    assert got[5] == math.inf
    np.testing.assert_allclose(got[7:], np.log(x[7:].astype(np.float64)), rtol=4e-7)


# ------------------------------------------------------------------------------------------
# accuracy, float64 (exp, log, sigmoid; tanh and erf stay libm)

F64_ULP = float(np.finfo(np.float64).eps)


@pytest.mark.parametrize("fn", [Intrinsic.EXP, Intrinsic.LOG, Intrinsic.SIGMOID], ids=lambda f: f.value)
def test_float64_dense_sweep_is_accurate(fn):
    rng = np.random.default_rng(200 + FUNCTIONS.index(fn))
    x = _sweep(fn, "float64", rng)
    specials = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 709.78, 709.79, -708.4, -745.1, -746.0]
    x = np.concatenate([x, np.array(specials)])
    got = _apply(fn, x, width=4)
    _check(fn, x, got, 4 * F64_ULP)


def test_float64_tanh_and_erf_keep_libm_and_stay_exact():
    x = np.random.default_rng(7).uniform(-3, 3, 37)
    module = _kernel([Intrinsic.TANH, Intrinsic.ERF], x.size, "float64", width=4)
    assert "ansor.vmath" not in module.get_ir(optimized=False)
    tanh, erf = np.full_like(x, 77), np.full_like(x, 77)
    module(x, tanh, erf)
    np.testing.assert_allclose(tanh, np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(erf, _erf(x), rtol=1e-15)


# ------------------------------------------------------------------------------------------
# code shape: vectors and scalars use the routines, odd widths, float16


@pytest.mark.parametrize("width", [3, 7, 16, 33])
def test_odd_vector_widths_use_the_vector_routines(width):
    rng = np.random.default_rng(width)
    n = 3 * width + 2  # three full vectors and a two-lane tail (one lane would be scalar)
    x = rng.uniform(-5, 5, n).astype("float32")
    x[0] = 0.75  # positive, so log is defined in lane 0
    module = _kernel(FUNCTIONS, n, "float32", width=width)
    source = module.get_ir(optimized=False)
    for fn in FUNCTIONS:
        assert f"ansor.vmath.{fn.value}.v{width}f32" in source
    optimized = module.get_ir(optimized=True)
    assert not [name for name in LIBM_NAMES if f"@{name}(" in optimized], "a libm call survived"
    outs = [np.full_like(x, 77) for _ in FUNCTIONS]
    module(x, *outs)
    for fn, got in zip(FUNCTIONS, outs):
        rtol, atol = F32_TOLERANCES[fn]
        _check(fn, x, got, rtol, atol)


def test_scalar_loops_use_the_routines_and_llvm_widens_them():
    """A serial loop around exp/log/... calls the scalar routine, not libm, so LLVM's loop
    vectorizer widens the whole loop (a libm call would keep it one element at a time)."""
    rng = np.random.default_rng(8)
    x = rng.uniform(0.1, 3, 1000).astype("float32")
    module = _kernel(FUNCTIONS, x.size, "float32", kind=ForKind.SERIAL)
    source = module.get_ir(optimized=False)
    for fn in FUNCTIONS:
        assert f"ansor.vmath.{fn.value}.f32" in source
    optimized = module.get_ir(optimized=True)
    assert not [name for name in LIBM_NAMES if f"@{name}(" in optimized], "a libm call survived"
    assert re.search(r"<(4|8|16) x float>", optimized), "LLVM did not vectorize the serial loop"
    outs = [np.full_like(x, 77) for _ in FUNCTIONS]
    module(x, *outs)
    for fn, got in zip(FUNCTIONS, outs):
        rtol, atol = F32_TOLERANCES[fn]
        _check(fn, x, got, rtol, atol)


def test_float64_scalar_tanh_and_erf_keep_libm():
    x = np.random.default_rng(11).uniform(-3, 3, 9)
    module = _kernel([Intrinsic.TANH, Intrinsic.ERF, Intrinsic.EXP], x.size, "float64", kind=ForKind.SERIAL)
    source = module.get_ir(optimized=False)
    assert "ansor.vmath.tanh" not in source and "ansor.vmath.erf" not in source
    assert "ansor.vmath.exp.f64" in source
    tanh, erf, exp = (np.full_like(x, 77) for _ in range(3))
    module(x, tanh, erf, exp)
    np.testing.assert_allclose(tanh, np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(erf, _erf(x), rtol=1e-15)
    np.testing.assert_allclose(exp, np.exp(x), rtol=4 * F64_ULP)


@pytest.mark.parametrize("kind", [V, ForKind.SERIAL], ids=["vector", "scalar"])
@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.value)
def test_float16_computes_in_float32(fn, kind):
    rng = np.random.default_rng(9)
    low = 0.01 if fn is Intrinsic.LOG else -6.0
    x = rng.uniform(low, 6.0, 45).astype("float16")
    x[:3] = [0.0, math.inf, math.nan] if fn is not Intrinsic.LOG else [0.0, math.inf, 1.0]
    module = _kernel([fn], x.size, "float16", kind=kind, width=8)
    routine = "v8f32" if kind is V else "f32"
    assert f"ansor.vmath.{fn.value}.{routine}" in module.get_ir(optimized=False)
    got = np.full_like(x, 77)
    module(x, got)
    expected = _reference(fn, x.astype("float32")).astype("float16")
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


def test_emit_rejects_what_it_does_not_cover():
    mc = ModuleContext("m", as_target("llvm"))
    func = ir.Function(mc.module, ir.FunctionType(ir.VoidType(), []), name="f")
    b = ir.IRBuilder(func.append_basic_block())
    vector = ir.Constant(ir.VectorType(ir.DoubleType(), 4), [ir.Constant(ir.DoubleType(), 1.0)] * 4)
    with pytest.raises(CodegenError, match=r"no vector routine for tanh on 4 lane\(s\) of float64.*float32"):
        vm.emit(mc, b, Intrinsic.TANH, vector, "float64")
    scalar = ir.Constant(ir.DoubleType(), 1.0)
    with pytest.raises(CodegenError, match=r"no vector routine for erf on 1 lane\(s\) of float64"):
        vm.emit(mc, b, Intrinsic.ERF, scalar, "float64")
    assert vm.supports(Intrinsic.ERF, "float16", 8) and not vm.supports(Intrinsic.SIN, "float32", 8)
    assert vm.supports(Intrinsic.EXP, "float32", 1) and not vm.supports(Intrinsic.EXP, "float32", 0)


# ------------------------------------------------------------------------------------------
# lowered workloads: softmax and GELU with vectorized inner loops

SOFTMAX_STAGES = ("T_softmax_maxelem", "T_softmax_exp", "T_softmax_expsum", "T_softmax")


def schedule_softmax(s: State, vector: int) -> None:
    """Rows in parallel; in each row the max and sum reductions are rfactored into
    ``vector`` partial lanes, and the exp and the division are vectorized."""
    maxelem, exp, expsum, out = SOFTMAX_STAGES
    for red in (maxelem, expsum):
        _, inner = s.split(red, "k", [vector])
        s.rfactor(red, inner, 1)
        s.reorder(f"{red}.rf", ["ax0", "k.0", "k.1"])
        s.vectorize(f"{red}.rf", "k.1")
        s.compute_at(f"{red}.rf", red, "ax0")
    for stage in (exp, out):
        _, inner = s.split(stage, "ax1", [vector])
        s.vectorize(stage, inner)
    for stage in (expsum, exp, maxelem):  # consumers first
        s.compute_at(stage, out, "ax0")
    s.parallel(out, "ax0")


@pytest.mark.parametrize(("rows", "cols", "vector"), [(5, 64, 16), (3, 45, 8), (4, 13, 16)])
def test_vectorized_softmax_matches_reference(rows, cols, vector):
    x = te.placeholder((rows, cols), name="x")
    dag = ComputeDAG([x, topi.softmax(x)])
    s = State(dag)
    schedule_softmax(s, vector)
    func = lower(dag, s, name="softmax")
    module = build(func)
    assert "ansor.vmath.exp" in module.get_ir(optimized=False)
    data = np.random.default_rng(rows * cols).uniform(-20, 20, (rows, cols)).astype("float32")
    got = np.full_like(data, 77)
    module(data, got)
    expected = evaluate(dag, [data])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "op", [topi.gelu, topi.sigmoid, topi.tanh, topi.exp], ids=["gelu", "sigmoid", "tanh", "exp"]
)
def test_vectorized_elementwise_topi_ops_match_reference(op):
    x = te.placeholder((6, 40), name="x")
    y = op(x)
    dag = ComputeDAG([x, y])
    s = State(dag)
    stage = y.op.name
    _, inner = s.split(stage, "ax1", [8])
    s.vectorize(stage, inner)
    s.parallel(stage, "ax0")
    module = build(lower(dag, s, name="elementwise"))
    assert "ansor.vmath" in module.get_ir(optimized=False)
    data = np.random.default_rng(11).uniform(-6, 6, (6, 40)).astype("float32")
    got = np.full_like(data, 77)
    module(data, got)
    expected = evaluate(dag, [data])[0]
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
