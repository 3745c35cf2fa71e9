"""Run a PrimFunc in pure Python on numpy arrays, to test lowering without a back end.

``run(func, arrays)`` translates the loop nest into a Python function (one ``for`` per
loop, whatever its kind: parallel, vectorized, unrolled and thread-bound loops all run
serially) and calls it on flat views of the arrays, which it updates in place. Meant for
tiny shapes: every access is bounds-checked and raises ``InterpreterError`` naming the
buffer, the index and its size; ``Allocate`` gives fresh storage filled with NaN (floats)
or a sentinel (integers), so reading an element nobody wrote shows up in the result.
``select`` evaluates only the side it picks, as the IR requires.

Arithmetic uses numpy scalars of the buffers' dtypes (float32 stays float32), with the
meaning ``ir.expr.BINARY_FUNCTIONS`` gives each operator: floor division and modulo
(``floor(a / b)`` on floats), ``max(a, b) = a > b ? a : b``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir import dtype as dt
from ir.expr import (
    BINARY_FUNCTIONS,
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    Intrinsic,
    IterVar,
    Not,
    Select,
    Var,
)
from ir.tir import (
    Allocate,
    Barrier,
    Buffer,
    BufferLoad,
    BufferStore,
    For,
    IfThenElse,
    LetStmt,
    PrimFunc,
    SeqStmt,
    Stmt,
)


class InterpreterError(RuntimeError):
    """An out-of-bounds access or a malformed program met while interpreting."""


def run(func: PrimFunc, arrays: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> None:
    """Execute ``func`` on ``arrays`` (in parameter order, or by parameter name), in place."""
    if isinstance(arrays, Mapping):
        missing = [b.name for b in func.params if b.name not in arrays]
        if missing:
            raise InterpreterError(f"run({func.name}): no array given for parameter(s) {missing}")
        ordered = [arrays[b.name] for b in func.params]
    else:
        ordered = list(arrays)
        if len(ordered) != len(func.params):
            raise InterpreterError(
                f"run({func.name}): {len(ordered)} array(s) given for {len(func.params)} parameter(s)"
            )
    flat = [_flat_view(b, a) for b, a in zip(func.params, ordered, strict=True)]
    kernel = compile_primfunc(func)
    with np.errstate(all="ignore"):
        kernel(*flat)


def _flat_view(buffer: Buffer, array: np.ndarray) -> np.ndarray:
    if tuple(array.shape) != buffer.shape or array.dtype != dt.to_numpy(buffer.dtype):
        raise InterpreterError(
            f"parameter '{buffer.name}' expects {buffer.dtype}{list(buffer.shape)}, "
            f"got {array.dtype}{list(array.shape)}"
        )
    if not array.flags.c_contiguous:
        raise InterpreterError(f"parameter '{buffer.name}': array must be C-contiguous")
    return array.reshape(-1)


def compile_primfunc(func: PrimFunc) -> Any:
    """The Python function executing ``func`` (its source is ``python_source(func)``)."""
    source, names = _Translator(func).translate()
    namespace: dict[str, Any] = dict(_RUNTIME)
    exec(compile(source, f"<primfunc {func.name}>", "exec"), namespace)
    kernel = namespace["kernel"]
    kernel.source = source
    kernel.names = names
    return kernel


def python_source(func: PrimFunc) -> str:
    return _Translator(func).translate()[0]


# ------------------------------------------------------------------------------------------
# runtime helpers used by the generated code


def _load(buf: np.ndarray, index: int, name: str) -> Any:
    if not 0 <= index < buf.shape[0]:
        raise InterpreterError(f"read of {name}[{index}] outside its {buf.shape[0]} element(s)")
    return buf[index]


def _store(buf: np.ndarray, index: int, value: Any, name: str) -> None:
    if not 0 <= index < buf.shape[0]:
        raise InterpreterError(f"write of {name}[{index}] outside its {buf.shape[0]} element(s)")
    buf[index] = value


def _alloc(n: int, dtype: str) -> np.ndarray:
    np_dtype = dt.to_numpy(dtype)
    if dt.is_float(dtype):
        return np.full(n, np.nan, dtype=np_dtype)
    if dt.is_bool(dtype):
        return np.zeros(n, dtype=np_dtype)
    return np.full(n, np.iinfo(np_dtype).min, dtype=np_dtype)


def _to_int(x: Any, dtype: str) -> Any:
    """C semantics: floats truncate toward zero, narrowing integers wrap."""
    value = math.trunc(float(x)) if isinstance(x, (float, np.floating)) else int(x)
    return np.array(value, dtype=np.int64).astype(dt.to_numpy(dtype))[()]


def _round(x: Any) -> Any:
    """Round half away from zero (C ``round``)."""
    return type(x)(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


def _erf(x: Any) -> Any:
    return type(x)(math.erf(x)) if isinstance(x, np.generic) else math.erf(x)


def _sigmoid(x: Any) -> Any:
    return 1 / (1 + np.exp(-x))


def _rsqrt(x: Any) -> Any:
    return 1 / np.sqrt(x)


def _div(a: Any, b: Any) -> Any:
    return np.divide(a, b)


def _float_floordiv(a: Any, b: Any) -> Any:
    return np.floor(a / b)


def _float_floormod(a: Any, b: Any) -> Any:
    return a - np.floor(a / b) * b


_INTRINSICS: dict[Intrinsic, str] = {
    Intrinsic.EXP: "np.exp",
    Intrinsic.EXP2: "np.exp2",
    Intrinsic.LOG: "np.log",
    Intrinsic.LOG2: "np.log2",
    Intrinsic.LOG10: "np.log10",
    Intrinsic.SQRT: "np.sqrt",
    Intrinsic.RSQRT: "_rsqrt",
    Intrinsic.TANH: "np.tanh",
    Intrinsic.SIGMOID: "_sigmoid",
    Intrinsic.ERF: "_erf",
    Intrinsic.POW: "np.power",
    Intrinsic.ABS: "np.abs",
    Intrinsic.FLOOR: "np.floor",
    Intrinsic.CEIL: "np.ceil",
    Intrinsic.ROUND: "_round",
    Intrinsic.TRUNC: "np.trunc",
    Intrinsic.SIN: "np.sin",
    Intrinsic.COS: "np.cos",
    Intrinsic.FMOD: "np.fmod",
}

_RUNTIME: dict[str, Any] = {
    "np": np,
    "_load": _load,
    "_store": _store,
    "_alloc": _alloc,
    "_to_int": _to_int,
    "_erf": _erf,
    "_round": _round,
    "_sigmoid": _sigmoid,
    "_rsqrt": _rsqrt,
    "_div": _div,
    "_float_floordiv": _float_floordiv,
    # x // 0 == x % 0 == 0 on integers, Python ints included (INT_DIVISION_BY_ZERO)
    "_int_floordiv": BINARY_FUNCTIONS[BinaryOp.FLOORDIV],
    "_int_floormod": BINARY_FUNCTIONS[BinaryOp.FLOORMOD],
    "_float_floormod": _float_floormod,
    "_max": BINARY_FUNCTIONS[BinaryOp.MAX],
    "_min": BINARY_FUNCTIONS[BinaryOp.MIN],
    "_inf": math.inf,
    "_nan": math.nan,
}

#: Python source of each operator: (on integer operands, on the others); ``{a}`` and ``{b}``
#: stand for the operands' source
_PY_BINARY: dict[BinaryOp, tuple[str, str]] = {
    BinaryOp.ADD: ("({a} + {b})", "({a} + {b})"),
    BinaryOp.SUB: ("({a} - {b})", "({a} - {b})"),
    BinaryOp.MUL: ("({a} * {b})", "({a} * {b})"),
    BinaryOp.DIV: ("_div({a}, {b})", "_div({a}, {b})"),
    BinaryOp.FLOORDIV: ("_int_floordiv({a}, {b})", "_float_floordiv({a}, {b})"),
    BinaryOp.FLOORMOD: ("_int_floormod({a}, {b})", "_float_floormod({a}, {b})"),
    BinaryOp.MAX: ("_max({a}, {b})", "_max({a}, {b})"),
    BinaryOp.MIN: ("_min({a}, {b})", "_min({a}, {b})"),
    BinaryOp.AND: ("({a} and {b})", "({a} and {b})"),
    BinaryOp.OR: ("({a} or {b})", "({a} or {b})"),
}


# ------------------------------------------------------------------------------------------
# translation to Python source


class _Translator:
    def __init__(self, func: PrimFunc):
        self.func = func
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.used: set[str] = set(_RUNTIME)

    def translate(self) -> tuple[str, dict[int, str]]:
        params = [self.name(b, b.name) for b in self.func.params]
        self.lines.append(f"def kernel({', '.join(params)}):")
        self.stmt(self.func.body, 1)
        self.lines.append("    return None")
        return "\n".join(self.lines) + "\n", self.names

    def name(self, obj: Var | Buffer, text: str) -> str:
        """A Python identifier for a variable or buffer, unique in the function."""
        if id(obj) in self.names:
            return self.names[id(obj)]
        stem = "v_" + "".join(ch if ch.isalnum() else "_" for ch in text)
        candidate, n = stem, 0
        while candidate in self.used:
            n += 1
            candidate = f"{stem}_{n}"
        self.used.add(candidate)
        self.names[id(obj)] = candidate
        return candidate

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    # statements -------------------------------------------------------------------------
    def stmt(self, s: Stmt, depth: int) -> None:
        rule = _STMT_RULES.get(type(s))
        if rule is None:
            raise InterpreterError(f"cannot interpret statement {type(s).__name__}")
        rule(self, s, depth)

    def _for(self, s: For, depth: int) -> None:
        var = self.name(s.loop_var, s.loop_var.name)
        low, extent = self.expr(s.min), self.expr(s.extent)
        self.emit(depth, f"for {var} in range({low}, {low} + {extent}):")
        self.stmt(s.body, depth + 1)
        self.emit(depth + 1, "pass")

    def _store(self, s: BufferStore, depth: int) -> None:
        if len(s.indices) != 1:
            raise InterpreterError(f"store to '{s.buffer.name}' is not flattened ({len(s.indices)} indices)")
        buf = self.name(s.buffer, s.buffer.name)
        value = self.expr(s.value)
        self.emit(depth, f"_store({buf}, {self.expr(s.indices[0])}, {value}, {s.buffer.name!r})")

    def _allocate(self, s: Allocate, depth: int) -> None:
        buf = self.name(s.buffer, s.buffer.name)
        self.emit(depth, f"{buf} = _alloc({s.buffer.num_elements}, {s.buffer.dtype!r})")
        self.stmt(s.body, depth)

    def _if(self, s: IfThenElse, depth: int) -> None:
        self.emit(depth, f"if {self.expr(s.condition)}:")
        self.stmt(s.then_case, depth + 1)
        self.emit(depth + 1, "pass")
        if s.else_case is not None:
            self.emit(depth, "else:")
            self.stmt(s.else_case, depth + 1)
            self.emit(depth + 1, "pass")

    def _let(self, s: LetStmt, depth: int) -> None:
        self.emit(depth, f"{self.name(s.var, s.var.name)} = {self.expr(s.value)}")
        self.stmt(s.body, depth)

    def _seq(self, s: SeqStmt, depth: int) -> None:
        for child in s.stmts:
            self.stmt(child, depth)

    def _barrier(self, s: Barrier, depth: int) -> None:
        self.emit(depth, "pass  # barrier: threads run one after another here")

    # expressions ------------------------------------------------------------------------
    def expr(self, e: Expr) -> str:
        rule = _EXPR_RULES.get(type(e))
        if rule is None:
            raise InterpreterError(f"cannot interpret expression {type(e).__name__}: {e}")
        return rule(self, e)

    def var(self, e: Var) -> str:
        if id(e) not in self.names:
            raise InterpreterError(f"variable '{e.name}' is used but never bound")
        return self.names[id(e)]

    def load(self, e: BufferLoad) -> str:
        if len(e.indices) != 1:
            raise InterpreterError(f"load from '{e.buffer.name}' is not flattened ({len(e.indices)} indices)")
        return f"_load({self.name(e.buffer, e.buffer.name)}, {self.expr(e.indices[0])}, {e.buffer.name!r})"

    def compare(self, e: Compare) -> str:
        return f"({self.expr(e.a)} {e.op.value} {self.expr(e.b)})"

    def not_(self, e: Not) -> str:
        return f"(not {self.expr(e.a)})"

    def select(self, e: Select) -> str:
        return f"({self.expr(e.true_value)} if {self.expr(e.cond)} else {self.expr(e.false_value)})"

    def call(self, e: Call) -> str:
        args = ", ".join(self.expr(a) for a in e.args)
        return f"{_INTRINSICS[e.intrinsic]}({args})"

    def const(self, e: Const) -> str:
        if dt.is_bool(e.dtype):
            return repr(bool(e.value))
        if dt.is_float(e.dtype):
            value = float(e.value)
            text = (
                "_nan"
                if math.isnan(value)
                else "_inf"
                if value == math.inf
                else "-_inf"
                if value == -math.inf
                else repr(value)
            )
            return f"np.{e.dtype}({text})"
        return repr(int(e.value))

    def binary(self, e: Binary) -> str:
        on_int, on_other = _PY_BINARY[e.op]
        return (on_int if dt.is_int(e.dtype) else on_other).format(a=self.expr(e.a), b=self.expr(e.b))

    def cast(self, e: Cast) -> str:
        value = self.expr(e.value)
        if dt.is_float(e.dtype):
            return f"np.{e.dtype}({value})"
        if dt.is_bool(e.dtype):
            return f"bool({value})"
        return f"_to_int({value}, {e.dtype!r})"


_STMT_RULES: dict[type, Callable[[_Translator, Any, int], None]] = {
    For: _Translator._for,
    BufferStore: _Translator._store,
    Allocate: _Translator._allocate,
    IfThenElse: _Translator._if,
    LetStmt: _Translator._let,
    SeqStmt: _Translator._seq,
    Barrier: _Translator._barrier,
}

_EXPR_RULES: dict[type, Callable[[_Translator, Any], str]] = {
    Const: _Translator.const,
    Var: _Translator.var,
    IterVar: _Translator.var,
    BufferLoad: _Translator.load,
    Binary: _Translator.binary,
    Compare: _Translator.compare,
    Not: _Translator.not_,
    Select: _Translator.select,
    Cast: _Translator.cast,
    Call: _Translator.call,
}
