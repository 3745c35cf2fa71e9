"""Branch-free vector ``exp``, ``log``, ``tanh``, ``sigmoid`` and ``erf`` written in LLVM IR.

Why: LLVM has no vector math library in this pipeline, so ``llvm.exp.v16f32`` is split
into sixteen ``expf`` calls. Softmax (the paper's TBS subgraph and BERT attention, section
7), GELU and sigmoid kernels then run at libm speed however well the search vectorizes
them. Here each function is a short straight-line
sequence of multiplies, FMAs, integer bit operations and selects that works on any vector
width (odd widths included) and on every target LLVM can legalise vectors for.

Each routine is emitted once per module and vector type as an internal ``alwaysinline``
function (``ansor.vmath.exp.v16f32``) and called from the loop body; O3 inlines it, so the
unoptimised IR stays readable and the optimised code has no call. Scalars get the same
routine (``ansor.vmath.exp.f32``) instead of a libm call, so LLVM's loop vectorizer can
widen a serial loop around it: an ``exp`` stage left unvectorized by the schedule still
runs at vector speed (one short instruction sequence per vector instead of a libm call
per element).

What is covered (``supports``, from ``tables.VECTOR_MATH_DTYPES``): float32 all five;
float64 ``exp``, ``log`` and ``sigmoid`` (``tanh``/``erf`` in float64 would need long
polynomials: they stay libm, lane by lane); float16 vectors are widened to float32,
computed, and rounded back once.

Algorithms and their accuracy (checked against float64/mpmath on dense sweeps in
``tests/codegen/test_llvm_vector_math.py``):

* ``exp`` (Cephes ``expf``; Cody-Waite reduction): ``n = round(x * log2 e)``,
  ``r = x - n * ln2_hi - n * ln2_lo`` (two constants so ``n * ln2_hi`` is exact),
  ``exp(r)`` by a polynomial on ``|r| <= ln2 / 2`` (Cephes degree 5 for float32, Taylor
  degree 13 for float64), then multiplied by ``2^n`` built by shifting ``n + bias`` into
  the exponent field. ``2^n`` is applied in two halves (``2^(n//2) * 2^(n - n//2)``) so
  results that overflow become ``+inf`` and results below the smallest normal underflow
  gradually (correctly rounded subnormals, no flush to zero). ``x`` is clamped first so
  the integer ``n`` stays in range; NaN in gives NaN out.
* ``log`` (frexp-style): subnormals are scaled into the normal range, the exponent ``e``
  and mantissa ``m`` in ``[sqrt(1/2), sqrt(2))`` are taken from the bits, then float32
  uses Cephes ``logf`` (polynomial in ``m - 1``) and float64 the fdlibm identity
  ``log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2)))`` with ``s = f / (2 + f)`` and ``R``
  the Taylor series of ``2 atanh``; ``e * ln 2`` is added in two parts. ``log(0) = -inf``,
  ``log(x < 0) = NaN``, ``log(inf) = inf``, ``log(NaN) = NaN``.
* ``tanh`` (float32): ``|x| < 0.625`` uses Cephes ``tanhf``'s odd polynomial (accurate near
  0 where the exp form cancels); otherwise ``(1 - e) / (1 + e)`` with ``e = exp(-2|x|)``;
  the sign is restored with ``copysign`` (so ``tanh(-0) = -0``).
* ``sigmoid``: with ``e = exp(-|x|)``, ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)``
  for ``x < 0`` (one division, no overflow, correct subnormal tails for large negative x).
* ``erf`` (float32; the ARM optimized-routines / SLEEF structure, constants fitted for this
  file): ``|x| < 0.921875``: ``x + x * P(x^2)`` (degree 5, fit error 1.6e-8 relative);
  ``0.921875 <= |x| < 3.925``: ``1 - exp(-Q(|x|))`` (``Q`` degree 6 fitted to
  ``-log(erfc)``, weighted fit error 1.5e-9); beyond, ``erf`` rounds to 1 in float32. Both
  pieces are minimax fits by Lawson's iteratively reweighted least squares on 3000
  Chebyshev nodes against mpmath at 40 digits. Abramowitz-Stegun 7.1.26 (1.5e-7 absolute,
  up to 1e-4 relative near 0) is not accurate enough.

Largest relative errors seen on about 4e5 points per function: float32 exp 8.2e-8, log
7.7e-8, tanh 1.4e-7, sigmoid 1.7e-7, erf 8.0e-8; float64 exp and log 0.65 ulp, sigmoid
1.4 ulp. The tests bound them by 4e-7 (exp, log, sigmoid), 1e-6 or 1e-7 absolute (tanh,
erf) and 4 ulp (float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

from codegen.llvm.context import ModuleContext
from codegen.llvm.errors import CodegenError
from codegen.llvm.tables import VECTOR_MATH_DTYPES, VECTOR_MATH_HALF_VIA, intrinsic_suffix, register_type
from ir.expr import Intrinsic

# ------------------------------------------------------------------------------------------
# what is covered


@dataclass(frozen=True)
class FloatFormat:
    """The IEEE-754 layout of one float dtype, as the bit tricks need it."""

    dtype: str
    int_bits: int  # width of the same-size integer
    mantissa_bits: int  # stored fraction bits (23 / 52)
    bias: int  # exponent bias (127 / 1023)
    #: adding and subtracting this rounds to the nearest integer (1.5 * 2^mantissa_bits)
    round_magic: float
    #: exp(x) is +inf above this (a little over log(max float)), and 0 below ``exp_low``
    exp_high: float
    exp_low: float

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def mantissa_mask(self) -> int:
        return (1 << self.mantissa_bits) - 1


FLOAT32 = FloatFormat("float32", 32, 23, 127, 1.5 * 2.0**23, exp_high=89.0, exp_low=-104.0)
FLOAT64 = FloatFormat("float64", 64, 52, 1023, 1.5 * 2.0**52, exp_high=710.0, exp_low=-746.0)
FORMATS: dict[str, FloatFormat] = {"float32": FLOAT32, "float64": FLOAT64}


def supports(fn: Intrinsic, dtype: str, lanes: int) -> bool:
    """True when ``fn`` on ``lanes`` lanes of ``dtype`` (1 for a scalar) has a routine here.

    Scalars use the same routine as vectors rather than libm: a loop whose body calls
    ``expf`` stays scalar (LLVM cannot widen a libm call without a vector math library),
    while the inlined straight-line routine is widened by LLVM's loop vectorizer. This is
    what makes elementwise stages the search leaves unvectorized (softmax's ``exp``, a
    long row the annotation does not split) run at vector speed."""
    if lanes < 1 or fn not in VECTOR_MATH_DTYPES:
        return False
    return (VECTOR_MATH_HALF_VIA if dtype == "float16" else dtype) in VECTOR_MATH_DTYPES[fn]


def emit(mc: ModuleContext, b: ir.IRBuilder, fn: Intrinsic, x: ir.Value, dtype: str) -> ir.Value:
    """``fn(x)`` for a scalar or vector ``x`` of ``dtype`` (``supports`` must hold): a call
    of the module's internal routine for this function and type."""
    lanes = x.type.count if isinstance(x.type, ir.VectorType) else 1
    if not supports(fn, dtype, lanes):
        covered = sorted(VECTOR_MATH_DTYPES.get(fn, ()))
        raise CodegenError(
            f"no vector routine for {fn.value} on {lanes} lane(s) of {dtype}: vector_math covers "
            f"{fn.value} on vectors of {', '.join(covered) or 'no dtype'} (and float16 via float32)"
        )
    if dtype == "float16":
        wide = b.fpext(x, register_type(VECTOR_MATH_HALF_VIA, lanes))
        return b.fptrunc(emit(mc, b, fn, wide, VECTOR_MATH_HALF_VIA), x.type)
    return b.call(_routine(mc, fn, dtype, lanes), [x])


def _routine(mc: ModuleContext, fn: Intrinsic, dtype: str, lanes: int) -> ir.Function:
    """The internal function ``ansor.vmath.<fn>.<v{lanes}f32>`` (``.f32`` for a scalar),
    defined on first use."""
    name = f"ansor.vmath.{fn.value}.{intrinsic_suffix(dtype, lanes)}"
    existing = mc.module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    vec = register_type(dtype, lanes)
    func = ir.Function(mc.module, ir.FunctionType(vec, [vec]), name=name)
    func.linkage = "internal"
    func.attributes.add("alwaysinline")
    func.attributes.add("nounwind")
    v = _VectorBuilder(mc, ir.IRBuilder(func.append_basic_block("entry")), FORMATS[dtype], lanes)
    v.b.ret(_BODIES[fn](v, func.args[0]))
    return func


# ------------------------------------------------------------------------------------------
# a builder for splat constants and lane-wise operations


class _VectorBuilder:
    """Lane-wise float and integer operations on ``<lanes x T>`` values of one format (plain
    ``T`` when ``lanes`` is 1), with constants splatted for the caller: the algorithms below
    read like the scalar maths."""

    def __init__(self, mc: ModuleContext, b: ir.IRBuilder, fmt: FloatFormat, lanes: int):
        self.mc, self.b, self.fmt, self.lanes = mc, b, fmt, lanes
        self.ftype = register_type(fmt.dtype, lanes)
        int_type = ir.IntType(fmt.int_bits)
        self.itype = int_type if lanes == 1 else ir.VectorType(int_type, lanes)

    def _splat(self, type_: ir.Type, value: float | int) -> ir.Constant:
        if isinstance(type_, ir.VectorType):
            return ir.Constant(type_, [ir.Constant(type_.element, value)] * self.lanes)
        return ir.Constant(type_, value)

    def f(self, value: float) -> ir.Constant:
        return self._splat(self.ftype, value)

    def i(self, value: int) -> ir.Constant:
        return self._splat(self.itype, value)

    def call(self, name: str, *args: ir.Value) -> ir.Value:
        suffix = intrinsic_suffix(self.fmt.dtype, self.lanes)
        callee = self.mc.declare(f"{name}.{suffix}", self.ftype, [self.ftype] * len(args))
        return self.b.call(callee, list(args))

    def fma(self, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
        """``x * y + z``, fused where the target has FMA (``llvm.fmuladd``)."""
        return self.call("llvm.fmuladd", x, y, z)

    def poly(self, x: ir.Value, coefficients: Sequence[float]) -> ir.Value:
        """``c[0] + c[1] x + ... + c[n] x^n`` by Horner's rule (coefficients low to high)."""
        acc: ir.Value = self.f(coefficients[-1])
        for c in reversed(coefficients[:-1]):
            acc = self.fma(acc, x, self.f(c))
        return acc

    def lt(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("<", x, y)

    def is_nan(self, x: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", x, x)

    def to_bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, self.itype)

    def from_bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, self.ftype)

    def pow2(self, n: ir.Value) -> ir.Value:
        """``2^n`` for integer lanes ``n`` in the normal exponent range."""
        biased = self.b.add(n, self.i(self.fmt.bias))
        return self.from_bits(self.b.shl(biased, self.i(self.fmt.mantissa_bits)))


# ------------------------------------------------------------------------------------------
# exp

#: ln 2 split for Cody-Waite reduction: ``n * LN2_HI`` is exact for the n that occur
LN2_HI = {"float32": 0.693359375, "float64": 0.693145751953125}
LN2_LO = {"float32": -2.12194440e-4, "float64": 1.42860682030941723212e-6}

#: exp(r) on |r| <= ln2/2 for float32 (Cephes expf): exp(r) = 1 + r + r^2 * P(r)
EXP_F32_P = (
    5.0000001201e-1,
    1.6666665459e-1,
    4.1665795894e-2,
    8.3334519073e-3,
    1.3981999507e-3,
    1.9875691500e-4,
)
#: float64: Taylor to degree 13 (truncation error 4e-18 relative on |r| <= ln2/2)
EXP_F64_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(14))


def _exp(v: _VectorBuilder, x: ir.Value) -> ir.Value:
    """``exp(x)`` lane-wise: Cody-Waite reduction, polynomial, two-step scaling by 2^n."""
    b, fmt = v.b, v.fmt
    # clamp so that n fits the exponent field (NaN becomes exp_high here, restored below)
    xc = b.select(b.fcmp_unordered(">", x, v.f(fmt.exp_high)), v.f(fmt.exp_high), x)
    xc = b.select(v.lt(xc, v.f(fmt.exp_low)), v.f(fmt.exp_low), xc)
    # n = round(x / ln 2): adding 1.5 * 2^mantissa_bits rounds to an integer
    magic = v.f(fmt.round_magic)
    n_float = b.fsub(v.fma(xc, v.f(1.0 / math.log(2.0)), magic), magic)
    r = v.fma(n_float, v.f(-LN2_HI[fmt.dtype]), xc)
    r = v.fma(n_float, v.f(-LN2_LO[fmt.dtype]), r)
    if fmt is FLOAT32:
        p = v.poly(r, EXP_F32_P)
        exp_r = b.fadd(v.fma(p, b.fmul(r, r), r), v.f(1.0))
    else:
        exp_r = v.poly(r, EXP_F64_TAYLOR)
    # 2^n in two halves: each is a normal number even when 2^n overflows or is subnormal
    n = b.fptosi(n_float, v.itype)
    n_half = b.ashr(n, v.i(1))
    scaled = b.fmul(b.fmul(exp_r, v.pow2(n_half)), v.pow2(b.sub(n, n_half)))
    return b.select(v.is_nan(x), x, scaled)


# ------------------------------------------------------------------------------------------
# log

#: log(1 + z) - z + z^2/2 = z^3 * P(z) on sqrt(1/2) - 1 <= z < sqrt(2) - 1 (Cephes logf)
LOG_F32_P = (
    3.3333331174e-1,
    -2.4999993993e-1,
    2.0000714765e-1,
    -1.6668057665e-1,
    1.4249322787e-1,
    -1.2420140846e-1,
    1.1676998740e-1,
    -1.1514610310e-1,
    7.0376836292e-2,
)
#: float64: R(z) = z (2/3 + 2/5 z + 2/7 z^2 + ...), the series of 2 atanh(s) - 2s over s,
#: in z = s^2 <= 0.0295; ten terms leave 2.3e-17 relative
LOG_F64_R = tuple(2.0 / (2 * k + 1) for k in range(1, 11))
#: ln 2 split for float64 (fdlibm): e * LN2_HI_F64 is exact for |e| < 2^11
LN2_HI_F64 = 6.93147180369123816490e-01
LN2_LO_F64 = 1.90821492927058770002e-10


def _log(v: _VectorBuilder, x: ir.Value) -> ir.Value:
    """``log(x)`` lane-wise: exponent and mantissa from the bits, polynomial on the mantissa."""
    b, fmt = v.b, v.fmt
    # subnormals: scale by 2^mantissa_bits into the normal range, and remember it in e
    subnormal = v.lt(x, v.f(fmt.min_normal))
    xs = b.select(subnormal, b.fmul(x, v.f(2.0**fmt.mantissa_bits)), x)
    e_bias = b.select(subnormal, v.i(-fmt.mantissa_bits), v.i(0))
    # x = m * 2^e with m in [0.5, 1): the exponent field, and the fraction with exponent -1
    bits = v.to_bits(xs)
    e = b.sub(b.lshr(bits, v.i(fmt.mantissa_bits)), v.i(fmt.bias - 1))
    half_exponent = (fmt.bias - 1) << fmt.mantissa_bits
    m = v.from_bits(b.or_(b.and_(bits, v.i(fmt.mantissa_mask)), v.i(half_exponent)))
    # m < sqrt(1/2): use 2m and e - 1, so the mantissa is in [sqrt(1/2), sqrt(2))
    low = v.lt(m, v.f(math.sqrt(0.5)))
    e = b.add(b.sub(e, b.zext(low, v.itype)), e_bias)
    m = b.select(low, b.fadd(m, m), m)
    f = b.fsub(m, v.f(1.0))  # exact
    ef = b.sitofp(e, v.ftype)
    if fmt is FLOAT32:
        z2 = b.fmul(f, f)
        y = b.fmul(b.fmul(v.poly(f, LOG_F32_P), f), z2)
        y = v.fma(ef, v.f(LN2_LO["float32"]), y)
        y = v.fma(z2, v.f(-0.5), y)
        result = v.fma(ef, v.f(LN2_HI["float32"]), b.fadd(f, y))
    else:
        s = b.fdiv(f, b.fadd(f, v.f(2.0)))
        z = b.fmul(s, s)
        r = b.fmul(z, v.poly(z, LOG_F64_R))
        hfsq = b.fmul(v.f(0.5), b.fmul(f, f))
        tail = v.fma(ef, v.f(LN2_LO_F64), b.fmul(s, b.fadd(hfsq, r)))
        log_m = b.fsub(f, b.fsub(hfsq, tail))
        result = v.fma(ef, v.f(LN2_HI_F64), log_m)
    # special values: +inf, zero (either sign), negative or NaN
    result = b.select(b.fcmp_ordered("==", x, v.f(math.inf)), x, result)
    result = b.select(b.fcmp_ordered("==", x, v.f(0.0)), v.f(-math.inf), result)
    return b.select(b.fcmp_unordered("<", x, v.f(0.0)), v.f(math.nan), result)


# ------------------------------------------------------------------------------------------
# tanh and sigmoid

#: tanh(z) = z + z^3 * P(z^2) for |z| < 0.625 (Cephes tanhf)
TANH_F32_P = (
    -3.33332819422e-1,
    1.33314422036e-1,
    -5.37397155531e-2,
    2.06390887954e-2,
    -5.70498872745e-3,
)
TANH_SMALL = 0.625


def _tanh(v: _VectorBuilder, x: ir.Value) -> ir.Value:
    """``tanh(x) = sign(x) (1 - e) / (1 + e)``, ``e = exp(-2|x|)``; a polynomial near 0."""
    b = v.b
    a = v.call("llvm.fabs", x)
    z = b.fmul(a, a)
    small = v.fma(b.fmul(v.poly(z, TANH_F32_P), z), a, a)
    e = _exp(v, b.fmul(a, v.f(-2.0)))
    large = b.fdiv(b.fsub(v.f(1.0), e), b.fadd(v.f(1.0), e))
    magnitude = b.select(v.lt(a, v.f(TANH_SMALL)), small, large)
    return v.call("llvm.copysign", magnitude, x)


def _sigmoid(v: _VectorBuilder, x: ir.Value) -> ir.Value:
    """``1 / (1 + exp(-x))`` as ``1 / (1 + e)`` (x >= 0) or ``e / (1 + e)`` (x < 0) with
    ``e = exp(-|x|) <= 1``: no overflow, and tiny results keep their precision."""
    b = v.b
    e = _exp(v, b.fneg(v.call("llvm.fabs", x)))
    numerator = b.select(v.lt(x, v.f(0.0)), e, v.f(1.0))
    return b.fdiv(numerator, b.fadd(v.f(1.0), e))


# ------------------------------------------------------------------------------------------
# erf

#: erf(x) = x + x * P(x^2) on |x| < ERF_SPLIT (fit error 1.6e-8 relative)
ERF_SMALL_P = (
    0.1283791495685915,
    -0.3761249371518396,
    0.11281816353331828,
    -0.02676662124340752,
    0.004993186142295365,
    -0.0005990878988862118,
)
#: erf(a) = 1 - exp(-Q(a)) on ERF_SPLIT <= a <= ERF_ONE (fit of -log(erfc), error 1.5e-9)
ERF_LARGE_Q = (
    0.00019855453607269295,
    1.12766373405797,
    0.6372022688490632,
    0.10391402834989885,
    -0.022218452835858084,
    0.0030410934312265115,
    -0.00019572072666394728,
)
ERF_SPLIT = 0.921875
#: beyond this erf(a) rounds to 1 in float32 (erfc(3.925) = 5.5e-9 < 2^-25)
ERF_ONE = 3.925


def _erf(v: _VectorBuilder, x: ir.Value) -> ir.Value:
    """``erf(x)``: a polynomial in x^2 near 0, ``1 - exp(-Q(|x|))`` beyond, sign restored."""
    b = v.b
    a = v.call("llvm.fabs", x)
    small = v.fma(a, v.poly(b.fmul(a, a), ERF_SMALL_P), a)
    a_clamped = b.select(v.lt(a, v.f(ERF_ONE)), a, v.f(ERF_ONE))  # NaN -> ERF_ONE
    large = b.fsub(v.f(1.0), _exp(v, b.fneg(v.poly(a_clamped, ERF_LARGE_Q))))
    magnitude = b.select(v.lt(a, v.f(ERF_SPLIT)), small, large)
    return b.select(v.is_nan(x), x, v.call("llvm.copysign", magnitude, x))


_BODIES: dict[Intrinsic, Callable[[_VectorBuilder, ir.Value], ir.Value]] = {
    Intrinsic.EXP: _exp,
    Intrinsic.LOG: _log,
    Intrinsic.TANH: _tanh,
    Intrinsic.SIGMOID: _sigmoid,
    Intrinsic.ERF: _erf,
}
