"""Tables of the LLVM back end: dtypes to LLVM types, operators to builder methods,
intrinsics to ``llvm.*`` intrinsics, libm or the vector routines of ``vector_math.py``
(code generation as tables plus one emitter, so that adding an operator is adding a row).
Everything that is a plain lookup lives here; the sequences that need more than one
instruction (floor division, casts, sigmoid) live in ``ops.py``, the vector math functions
in ``vector_math.py``.
"""

from __future__ import annotations

import enum
import functools

from llvmlite import ir

from ir import dtype as dt
from ir.expr import BinaryOp, CompareOp, Intrinsic

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()
I8_PTR = ir.PointerType(I8)

#: dtype name -> LLVM scalar type as held in a register (bool is i1)
REGISTER_TYPES: dict[str, ir.Type] = {
    "bool": I1,
    "int8": I8,
    "int16": ir.IntType(16),
    "int32": I32,
    "int64": I64,
    "uint8": I8,
    "uint16": ir.IntType(16),
    "uint32": I32,
    "uint64": I64,
    "float16": ir.HalfType(),
    "float32": ir.FloatType(),
    "float64": ir.DoubleType(),
}

#: dtype name -> LLVM type of one element in memory (bool takes a byte, as in numpy)
MEMORY_TYPES: dict[str, ir.Type] = {**REGISTER_TYPES, "bool": I8}

#: suffix used to name overloaded intrinsics ("llvm.exp.f32", "llvm.exp.v8f32")
INTRINSIC_SUFFIX: dict[str, str] = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "bool": "i1",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "i8",
    "uint16": "i16",
    "uint32": "i32",
    "uint64": "i64",
}


class Kind(enum.Enum):
    """How an operation treats a dtype: the column picked in the operator tables."""

    SINT = "sint"
    UINT = "uint"
    FLOAT = "float"
    BOOL = "bool"


@functools.cache
def kind_of(dtype: str) -> Kind:
    if dt.is_float(dtype):
        return Kind.FLOAT
    if dt.is_bool(dtype):
        return Kind.BOOL
    return Kind.SINT if dt.is_signed_int(dtype) else Kind.UINT


@functools.cache
def register_type(dtype: str, lanes: int = 1) -> ir.Type:
    """The LLVM type of a value of ``dtype`` in a register, a vector when ``lanes > 1``.
    (One shared object per type: llvmlite types are never changed once made, and a shared
    one formats its text once. The same holds for ``memory_type``.)"""
    scalar = REGISTER_TYPES[dt.check_dtype(dtype)]
    return scalar if lanes == 1 else ir.VectorType(scalar, lanes)


@functools.cache
def memory_type(dtype: str, lanes: int = 1) -> ir.Type:
    scalar = MEMORY_TYPES[dt.check_dtype(dtype)]
    return scalar if lanes == 1 else ir.VectorType(scalar, lanes)


def intrinsic_suffix(dtype: str, lanes: int = 1) -> str:
    scalar = INTRINSIC_SUFFIX[dtype]
    return scalar if lanes == 1 else f"v{lanes}{scalar}"


#: binary operators that are one builder method: op -> {kind: IRBuilder method name}
BINARY_METHODS: dict[BinaryOp, dict[Kind, str]] = {
    BinaryOp.ADD: {Kind.SINT: "add", Kind.UINT: "add", Kind.FLOAT: "fadd"},
    BinaryOp.SUB: {Kind.SINT: "sub", Kind.UINT: "sub", Kind.FLOAT: "fsub"},
    BinaryOp.MUL: {Kind.SINT: "mul", Kind.UINT: "mul", Kind.FLOAT: "fmul"},
    # '/' on integers is rejected by ir.expr; truncating division if a pass makes one
    BinaryOp.DIV: {Kind.SINT: "sdiv", Kind.UINT: "udiv", Kind.FLOAT: "fdiv"},
    BinaryOp.AND: {Kind.BOOL: "and_"},
    BinaryOp.OR: {Kind.BOOL: "or_"},
}

#: comparison -> (icmp predicate, fcmp ordered-or-unordered method, predicate).
#: ``!=`` on floats is unordered (true when either side is NaN), as in C and numpy.
COMPARE_PREDICATES: dict[CompareOp, tuple[str, str]] = {
    CompareOp.LT: ("<", "fcmp_ordered"),
    CompareOp.LE: ("<=", "fcmp_ordered"),
    CompareOp.GT: (">", "fcmp_ordered"),
    CompareOp.GE: (">=", "fcmp_ordered"),
    CompareOp.EQ: ("==", "fcmp_ordered"),
    CompareOp.NE: ("!=", "fcmp_unordered"),
}

#: intrinsics that are one overloaded LLVM intrinsic: ``llvm.<name>.<type suffix>``
LLVM_INTRINSICS: dict[Intrinsic, str] = {
    Intrinsic.EXP: "llvm.exp",
    Intrinsic.EXP2: "llvm.exp2",
    Intrinsic.LOG: "llvm.log",
    Intrinsic.LOG2: "llvm.log2",
    Intrinsic.LOG10: "llvm.log10",
    Intrinsic.SQRT: "llvm.sqrt",
    Intrinsic.TANH: "llvm.tanh",
    Intrinsic.POW: "llvm.pow",
    Intrinsic.FLOOR: "llvm.floor",
    Intrinsic.CEIL: "llvm.ceil",
    # numpy rounds half to even; llvm.roundeven does too, independent of the FP mode
    Intrinsic.ROUND: "llvm.roundeven",
    Intrinsic.TRUNC: "llvm.trunc",
    Intrinsic.SIN: "llvm.sin",
    Intrinsic.COS: "llvm.cos",
}

#: intrinsics with no LLVM intrinsic: the libm function per float dtype
LIBM_FUNCTIONS: dict[Intrinsic, dict[str, str]] = {
    Intrinsic.ERF: {"float32": "erff", "float64": "erf"},
}

#: the libm function used for float16 (computed in float32, then rounded back)
LIBM_HALF_VIA = "float32"

#: intrinsics computed by ``vector_math.py``'s branch-free routines (on vectors and scalars,
#: never through libm), and the dtypes each covers; float16 is computed in
#: ``VECTOR_MATH_HALF_VIA``
VECTOR_MATH_DTYPES: dict[Intrinsic, frozenset[str]] = {
    Intrinsic.EXP: frozenset({"float32", "float64"}),
    Intrinsic.LOG: frozenset({"float32", "float64"}),
    Intrinsic.SIGMOID: frozenset({"float32", "float64"}),
    Intrinsic.TANH: frozenset({"float32"}),
    Intrinsic.ERF: frozenset({"float32"}),
}
VECTOR_MATH_HALF_VIA = "float32"
