"""Print expressions as C-like infix text; one precedence table decides parentheses."""

from __future__ import annotations

from ir.expr import (
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    CompareOp,
    Const,
    Expr,
    Not,
    Reduce,
    Select,
    TensorRead,
    Var,
)

#: binding strength of infix operators; higher binds tighter
PRECEDENCE: dict[BinaryOp | CompareOp, int] = {
    BinaryOp.OR: 1,
    BinaryOp.AND: 2,
    CompareOp.EQ: 3,
    CompareOp.NE: 3,
    CompareOp.LT: 4,
    CompareOp.LE: 4,
    CompareOp.GT: 4,
    CompareOp.GE: 4,
    BinaryOp.ADD: 5,
    BinaryOp.SUB: 5,
    BinaryOp.MUL: 6,
    BinaryOp.DIV: 6,
    BinaryOp.FLOORDIV: 6,
    BinaryOp.FLOORMOD: 6,
}
ATOM = 10
FUNCTION_STYLE = (BinaryOp.MAX, BinaryOp.MIN)


def format_const(c: Const) -> str:
    if c.dtype == "bool":
        return "True" if c.value else "False"
    if c.dtype in ("float32",):
        return f"{c.value!r}f"
    if c.dtype == "int64":
        return f"{c.value}i64"
    return repr(c.value)


def _precedence(e: Expr) -> int:
    if isinstance(e, (Binary, Compare)) and e.op not in FUNCTION_STYLE:
        return PRECEDENCE[e.op]
    if isinstance(e, Select):
        return 0
    return ATOM


def expr_to_str(e: Expr) -> str:
    """The expression as text; subclasses from other modules print via ``str_parts``."""
    if isinstance(e, Const):
        return format_const(e)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, (Binary, Compare)):
        if e.op in FUNCTION_STYLE:
            return f"{e.op.value}({expr_to_str(e.a)}, {expr_to_str(e.b)})"
        p = PRECEDENCE[e.op]
        left = _wrap(e.a, p, strict=False)
        right = _wrap(e.b, p, strict=True)
        return f"{left} {e.op.value} {right}"
    if isinstance(e, Not):
        return f"!{_wrap(e.a, ATOM, strict=True)}"
    if isinstance(e, Select):
        return f"select({expr_to_str(e.cond)}, {expr_to_str(e.true_value)}, {expr_to_str(e.false_value)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({expr_to_str(e.value)})"
    if isinstance(e, Call):
        return f"{e.intrinsic.value}({', '.join(expr_to_str(a) for a in e.args)})"
    if isinstance(e, TensorRead):
        return f"{e.tensor.name}[{', '.join(expr_to_str(i) for i in e.indices)}]"
    if isinstance(e, Reduce):
        axes = ", ".join(a.name for a in e.axis)
        where = "" if e.condition is None else f", where={expr_to_str(e.condition)}"
        return f"{e.reducer.name}({expr_to_str(e.source)}, axis=[{axes}]{where})"
    str_parts = getattr(e, "str_parts", None)
    if str_parts is not None:
        return str(str_parts(expr_to_str))
    raise TypeError(f"no printer for expression node {type(e).__name__}")


def _wrap(e: Expr, parent: int, strict: bool) -> str:
    text = expr_to_str(e)
    p = _precedence(e)
    if p < parent or (strict and p == parent):
        return f"({text})"
    return text
