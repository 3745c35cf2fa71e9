"""Operations on LLVM values, written once for scalars and vectors alike.

Every function takes llvmlite values that are either scalars or ``<n x T>`` vectors and
returns a value of the same shape; the builder methods, ``select`` and the overloaded
``llvm.*`` intrinsics all accept both. Integer constants are folded here (unrolled loops
bind their variable to a constant, so register-tile indices become constants before LLVM
sees them, and SROA can promote the tile to registers).

Semantics follow TVM, as ``ir.expr.BINARY_FUNCTIONS`` states them (and the folding here
computes them): ``//`` and ``%`` round toward minus infinity (floordiv/floormod), float
``max``/``min`` are ``a > b ? a : b``, casts from float to int truncate.
"""

from __future__ import annotations

import functools
import math

from llvmlite import ir

from codegen.llvm import vector_math
from codegen.llvm.context import ModuleContext
from codegen.llvm.errors import CodegenError
from codegen.llvm.tables import (
    BINARY_METHODS,
    COMPARE_PREDICATES,
    I1,
    LIBM_FUNCTIONS,
    LIBM_HALF_VIA,
    LLVM_INTRINSICS,
    Kind,
    intrinsic_suffix,
    kind_of,
    register_type,
)
from ir import dtype as dt
from ir.expr import BINARY_FUNCTIONS, COMPARE_FUNCTIONS, BinaryOp, CompareOp, Intrinsic

# ------------------------------------------------------------------------------------------
# constants and shapes


def lanes_of(value: ir.Value) -> int:
    return value.type.count if isinstance(value.type, ir.VectorType) else 1


def constant(dtype: str, value: int | float | bool, lanes: int = 1) -> ir.Constant:
    """A constant of ``dtype``; a splat vector when ``lanes > 1``.

    Equal constants are one shared object (an llvmlite constant is never changed once made,
    and a shared one formats its text once): unrolled loops emit the same few index
    constants thousands of times."""
    # -0.0 == 0.0 in Python but not in LLVM IR: the sign of a float is part of the key
    sign = math.copysign(1.0, value) if isinstance(value, float) else 0.0
    return _shared_constant(dtype, value, lanes, sign)


@functools.lru_cache(maxsize=1 << 14)
def _shared_constant(dtype: str, value: int | float | bool, lanes: int, sign: float) -> ir.Constant:
    scalar = ir.Constant(register_type(dtype), _python_value(dtype, value))
    return scalar if lanes == 1 else ir.Constant(register_type(dtype, lanes), [scalar] * lanes)


def constant_vector(dtype: str, values: list[int] | list[float]) -> ir.Constant:
    """A vector constant with one value per lane."""
    scalars = [ir.Constant(register_type(dtype), _python_value(dtype, v)) for v in values]
    return ir.Constant(register_type(dtype, len(values)), scalars)


def int_constant(value: ir.Value) -> int | None:
    """The Python value of a scalar integer constant, else None."""
    if isinstance(value, ir.Constant) and isinstance(value.type, ir.IntType):
        raw = value.constant
        if isinstance(raw, bool | int):
            return int(raw)
    return None


def splat(b: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """Broadcast a scalar to ``lanes`` lanes."""
    if isinstance(value, ir.Constant) and not isinstance(value.type, ir.VectorType):
        return _splat_constant(value, lanes)
    vec_type = ir.VectorType(value.type, lanes)
    one = b.insert_element(ir.Constant(vec_type, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return b.shuffle_vector(
        one,
        ir.Constant(vec_type, ir.Undefined),
        ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes),
    )


@functools.lru_cache(maxsize=1 << 12)
def _splat_constant(value: ir.Constant, lanes: int) -> ir.Constant:
    """A scalar constant in every lane, shared as ``constant`` shares scalars (llvmlite
    constants hash and compare by their text, so equal keys mean the same vector text)."""
    return ir.Constant(ir.VectorType(value.type, lanes), [value] * lanes)


def to_i64(b: ir.IRBuilder, index: ir.Value, dtype: str) -> ir.Value:
    """Widen an integer index (scalar or vector) to i64 for address arithmetic."""
    return cast(b, index, dtype, "int64")


# ------------------------------------------------------------------------------------------
# arithmetic


def binary(
    mc: ModuleContext, b: ir.IRBuilder, op: BinaryOp, x: ir.Value, y: ir.Value, dtype: str
) -> ir.Value:
    """``x op y`` on values of ``dtype`` (the operand dtype; AND/OR take bools)."""
    folded = _fold_binary(op, x, y, dtype)
    if folded is not None:
        return folded
    kind = kind_of(dtype)
    methods = BINARY_METHODS.get(op)
    if methods is not None:
        if kind not in methods:
            raise CodegenError(f"operator {op.value} is not defined on {dtype}")
        return getattr(b, methods[kind])(x, y)
    if op in (BinaryOp.MAX, BinaryOp.MIN):
        pred = ">" if op is BinaryOp.MAX else "<"
        return b.select(_less_greater(b, pred, x, y, kind), x, y)
    if op is BinaryOp.FLOORDIV:
        return _floordiv(mc, b, x, y, kind)
    if op is BinaryOp.FLOORMOD:
        return _floormod(mc, b, x, y, kind)
    raise CodegenError(f"no LLVM lowering for operator {op.value} on {dtype}")


def fmuladd(
    mc: ModuleContext, b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value, dtype: str
) -> ir.Value:
    """``x * y + z`` as ``llvm.fmuladd`` (one FMA instruction where the target has it)."""
    suffix = intrinsic_suffix(dtype, lanes_of(x))
    fn = mc.declare(f"llvm.fmuladd.{suffix}", x.type, [x.type, x.type, x.type])
    return b.call(fn, [x, y, z])


def compare(b: ir.IRBuilder, op: CompareOp, x: ir.Value, y: ir.Value, dtype: str) -> ir.Value:
    """``x op y`` -> i1 (or a vector of i1)."""
    cx, cy = int_constant(x), int_constant(y)
    if cx is not None and cy is not None:
        return ir.Constant(I1, COMPARE_FUNCTIONS[op](cx, cy))
    pred, float_method = COMPARE_PREDICATES[op]
    kind = kind_of(dtype)
    if kind is Kind.FLOAT:
        return getattr(b, float_method)(pred, x, y)
    if kind is Kind.SINT:
        return b.icmp_signed(pred, x, y)
    return b.icmp_unsigned(pred, x, y)


def logical_not(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    cx = int_constant(x)
    if cx is not None:
        return ir.Constant(I1, not cx)
    return b.not_(x)


def select(b: ir.IRBuilder, cond: ir.Value, x: ir.Value, y: ir.Value) -> ir.Value:
    c = int_constant(cond)
    if c is not None:
        return x if c else y
    return b.select(cond, x, y)


def cast(b: ir.IRBuilder, x: ir.Value, src: str, dst: str) -> ir.Value:
    """Convert ``x`` from dtype ``src`` to ``dst`` (TVM/C rules: float->int truncates,
    nonzero -> True)."""
    if src == dst:
        return x
    lanes = lanes_of(x)
    to = register_type(dst, lanes)
    sk, dk = kind_of(src), kind_of(dst)
    cx = int_constant(x)
    if cx is not None and dk in (Kind.SINT, Kind.UINT, Kind.BOOL) and sk is not Kind.FLOAT:
        return constant(dst, cx)
    if dk is Kind.BOOL:
        zero = constant(src, 0, lanes)
        return b.fcmp_unordered("!=", x, zero) if sk is Kind.FLOAT else b.icmp_unsigned("!=", x, zero)
    if sk is Kind.BOOL:
        return b.uitofp(x, to) if dk is Kind.FLOAT else b.zext(x, to)
    if sk is Kind.FLOAT and dk is Kind.FLOAT:
        return b.fpext(x, to) if dt.bits(dst) > dt.bits(src) else b.fptrunc(x, to)
    if sk is Kind.FLOAT:
        return b.fptosi(x, to) if dk is Kind.SINT else b.fptoui(x, to)
    if dk is Kind.FLOAT:
        return b.sitofp(x, to) if sk is Kind.SINT else b.uitofp(x, to)
    src_bits, dst_bits = dt.bits(src), dt.bits(dst)
    if dst_bits < src_bits:
        return b.trunc(x, to)
    if dst_bits > src_bits:
        return b.sext(x, to) if sk is Kind.SINT else b.zext(x, to)
    return x  # same width, other signedness: LLVM integers are signless


# ------------------------------------------------------------------------------------------
# intrinsics


def intrinsic(
    mc: ModuleContext, b: ir.IRBuilder, fn: Intrinsic, args: list[ir.Value], dtype: str
) -> ir.Value:
    """Call a math intrinsic on scalar or vector arguments of ``dtype``. On vectors,
    exp/log/tanh/sigmoid/erf use the branch-free routines of ``vector_math`` (LLVM would
    otherwise call libm once per lane), and so do scalars of the covered dtypes (so that
    LLVM's loop vectorizer can widen the loop around them); the rest call libm."""
    x = args[0]
    lanes = lanes_of(x)
    if fn is Intrinsic.ABS:
        kind = kind_of(dtype)
        if kind is Kind.FLOAT:
            return _llvm_call(mc, b, "llvm.fabs", args, dtype)
        if kind is Kind.UINT:
            return x
        zero = constant(dtype, 0, lanes)
        return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)
    if not dt.is_float(dtype):
        raise CodegenError(f"intrinsic {fn.value} needs a float argument, got {dtype}")
    if vector_math.supports(fn, dtype, lanes):
        return vector_math.emit(mc, b, fn, x, dtype)
    if fn in LLVM_INTRINSICS:
        return _llvm_call(mc, b, LLVM_INTRINSICS[fn], args, dtype)
    one = constant(dtype, 1.0, lanes)
    if fn is Intrinsic.RSQRT:
        return b.fdiv(one, _llvm_call(mc, b, "llvm.sqrt", args, dtype))
    if fn is Intrinsic.SIGMOID:
        neg = b.fneg(x)
        return b.fdiv(one, b.fadd(one, _llvm_call(mc, b, "llvm.exp", [neg], dtype)))
    if fn is Intrinsic.FMOD:
        return b.frem(x, args[1])  # C fmod: the result takes the sign of x
    if fn in LIBM_FUNCTIONS:
        return _libm_call(mc, b, fn, x, dtype)
    raise CodegenError(f"no LLVM lowering for intrinsic {fn.value}")


def _llvm_call(mc: ModuleContext, b: ir.IRBuilder, name: str, args: list[ir.Value], dtype: str) -> ir.Value:
    ty = args[0].type
    fn = mc.declare(f"{name}.{intrinsic_suffix(dtype, lanes_of(args[0]))}", ty, [ty] * len(args))
    return b.call(fn, args)


def _libm_call(mc: ModuleContext, b: ir.IRBuilder, fn: Intrinsic, x: ir.Value, dtype: str) -> ir.Value:
    """A libm function, lane by lane for vectors; float16 goes through float32."""
    lanes = lanes_of(x)
    if lanes > 1:
        out = ir.Constant(x.type, ir.Undefined)
        for lane in range(lanes):
            index = ir.Constant(ir.IntType(32), lane)
            out = b.insert_element(out, _libm_call(mc, b, fn, b.extract_element(x, index), dtype), index)
        return out
    if dtype == "float16":
        wide = cast(b, x, dtype, LIBM_HALF_VIA)
        return cast(b, _libm_call(mc, b, fn, wide, LIBM_HALF_VIA), LIBM_HALF_VIA, dtype)
    ty = register_type(dtype)
    callee = mc.declare(LIBM_FUNCTIONS[fn][dtype], ty, [ty])
    return b.call(callee, [x])


# ------------------------------------------------------------------------------------------
# floor division and helpers


def _less_greater(b: ir.IRBuilder, pred: str, x: ir.Value, y: ir.Value, kind: Kind) -> ir.Value:
    if kind is Kind.FLOAT:
        return b.fcmp_ordered(pred, x, y)
    if kind is Kind.SINT:
        return b.icmp_signed(pred, x, y)
    return b.icmp_unsigned(pred, x, y)


def _floor_adjust(b: ir.IRBuilder, rem: ir.Value, divisor: ir.Value) -> ir.Value:
    """True where truncating division must be corrected toward minus infinity: the
    remainder is nonzero and its sign differs from the divisor's."""
    zero = ir.Constant(rem.type, None)
    nonzero = b.icmp_signed("!=", rem, zero)
    signs_differ = b.icmp_signed("<", b.xor(rem, divisor), zero)
    return b.and_(nonzero, signs_differ)


def _floordiv(mc: ModuleContext, b: ir.IRBuilder, x: ir.Value, y: ir.Value, kind: Kind) -> ir.Value:
    if kind is Kind.FLOAT:
        return _llvm_call(mc, b, "llvm.floor", [b.fdiv(x, y)], _float_dtype(x))
    if kind is Kind.BOOL:
        raise CodegenError("operator // is not defined on bool")
    guard = _DivisorGuard.of(b, y, kind)
    if kind is Kind.UINT:
        return guard.result(b, b.udiv(x, guard.divisor), x)
    quotient = b.sdiv(x, guard.divisor)
    adjust = _floor_adjust(b, b.srem(x, guard.divisor), guard.divisor)
    return guard.result(b, b.sub(quotient, b.zext(adjust, x.type)), x)


def _floormod(mc: ModuleContext, b: ir.IRBuilder, x: ir.Value, y: ir.Value, kind: Kind) -> ir.Value:
    if kind is Kind.FLOAT:  # x - floor(x / y) * y, as TVM
        floor = _llvm_call(mc, b, "llvm.floor", [b.fdiv(x, y)], _float_dtype(x))
        return b.fsub(x, b.fmul(floor, y))
    if kind is Kind.BOOL:
        raise CodegenError("operator % is not defined on bool")
    # x % 1 == 0 == numpy's x % 0 and x % -1: the guarded divisor alone gives the result
    divisor = _DivisorGuard.of(b, y, kind).divisor
    if kind is Kind.UINT:
        return b.urem(x, divisor)
    rem = b.srem(x, divisor)
    adjust = _floor_adjust(b, rem, divisor)
    return b.add(rem, b.select(adjust, divisor, ir.Constant(x.type, None)))


class _DivisorGuard:
    """An integer divisor made safe for ``sdiv``/``udiv``/``srem``/``urem``.

    x86 ``idiv`` traps (SIGFPE) on a zero divisor and on INT_MIN / -1, and LLVM calls
    both undefined. A divisor read at run time is replaced by 1 where it is 0 or (signed)
    -1, and ``result`` fixes the quotient up to numpy's answer: ``x // 0 == 0`` and
    ``x // -1 == -x`` (wrapping, so INT_MIN // -1 == INT_MIN), as ``ir.expr``'s
    INT_DIVISION_BY_ZERO states. A constant divisor that is neither 0 nor -1 (every
    index division of a schedule) needs no guard.
    """

    def __init__(self, divisor: ir.Value, is_zero: ir.Value | None, is_minus_one: ir.Value | None):
        self.divisor = divisor
        self.is_zero = is_zero
        self.is_minus_one = is_minus_one

    @staticmethod
    def of(b: ir.IRBuilder, y: ir.Value, kind: Kind) -> _DivisorGuard:
        values = _constant_lanes(y)
        if values is not None and all(v not in (0, -1) for v in values):
            return _DivisorGuard(y, None, None)
        zero = ir.Constant(y.type, None)
        is_zero = b.icmp_unsigned("==", y, zero)
        unsafe = is_zero
        is_minus_one = None
        if kind is Kind.SINT:
            is_minus_one = b.icmp_signed("==", y, _splat_like(y, -1))
            unsafe = b.or_(is_zero, is_minus_one)
        one = _splat_like(y, 1)
        return _DivisorGuard(b.select(unsafe, one, y), is_zero, is_minus_one)

    def result(self, b: ir.IRBuilder, quotient: ir.Value, x: ir.Value) -> ir.Value:
        """``x // y`` from the quotient by the guarded divisor (x itself where the divisor
        was replaced by 1)."""
        if self.is_minus_one is not None:
            quotient = b.select(self.is_minus_one, b.sub(ir.Constant(x.type, None), x), quotient)
        if self.is_zero is not None:
            quotient = b.select(self.is_zero, ir.Constant(x.type, None), quotient)
        return quotient


def _constant_lanes(value: ir.Value) -> list[int] | None:
    """The integer values of a constant scalar or vector (one per lane), else None."""
    scalar = int_constant(value)
    if scalar is not None:
        return [scalar]
    if isinstance(value, ir.Constant) and isinstance(value.type, ir.VectorType):
        lanes = value.constant
        if isinstance(lanes, list) and all(isinstance(v, ir.Constant) for v in lanes):
            values = [int_constant(v) for v in lanes]
            if all(v is not None for v in values):
                return [int(v) for v in values if v is not None]
    return None


def _splat_like(y: ir.Value, value: int) -> ir.Constant:
    """``value`` in every lane of y's integer type."""
    if isinstance(y.type, ir.VectorType):
        return ir.Constant(y.type, [ir.Constant(y.type.element, value)] * y.type.count)
    return ir.Constant(y.type, value)


def _float_dtype(x: ir.Value) -> str:
    scalar = x.type.element if isinstance(x.type, ir.VectorType) else x.type
    for name in ("float16", "float32", "float64"):
        if register_type(name) == scalar:
            return name
    raise CodegenError(f"expected a float value, got LLVM type {x.type}")


# ------------------------------------------------------------------------------------------
# constant folding of scalar integers


def _wrap(value: int, dtype: str) -> int:
    if dt.is_bool(dtype):
        return int(bool(value))
    bits = dt.bits(dtype)
    value &= (1 << bits) - 1
    if dt.is_signed_int(dtype) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _fold_binary(op: BinaryOp, x: ir.Value, y: ir.Value, dtype: str) -> ir.Value | None:
    """The result of ``x op y`` when it is known at compile time: both operands integer
    constants (folded with ``BINARY_FUNCTIONS``, wrapped to the dtype), or an identity."""
    if dt.is_float(dtype):
        return None
    cx, cy = int_constant(x), int_constant(y)
    if cx is not None and cy is not None:
        if op is BinaryOp.DIV:
            return None  # '/' is float only
        return constant(dtype, _wrap(int(BINARY_FUNCTIONS[op](cx, cy)), dtype))
    # identities that keep unrolled index arithmetic short
    if op is BinaryOp.ADD and cx == 0:
        return y
    if op in (BinaryOp.ADD, BinaryOp.SUB) and cy == 0:
        return x
    if op is BinaryOp.MUL and (cx == 1 or cy == 1):
        return y if cx == 1 else x
    if op is BinaryOp.MUL and (cx == 0 or cy == 0):
        return constant(dtype, 0)
    if op is BinaryOp.AND and (cx is not None or cy is not None):
        known, other = (cx, y) if cx is not None else (cy, x)
        return other if known else constant("bool", False)
    if op is BinaryOp.OR and (cx is not None or cy is not None):
        known, other = (cx, y) if cx is not None else (cy, x)
        return constant("bool", True) if known else other
    if op is BinaryOp.FLOORDIV and cy == 1:
        return x
    return None


def _python_value(dtype: str, value: int | float | bool) -> int | float | bool:
    if dt.is_float(dtype):
        return float(value)
    if dt.is_bool(dtype):
        return bool(value)
    return _wrap(int(value), dtype)
