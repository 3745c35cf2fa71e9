"""Questions the LLVM emitter asks about the loop-nest IR before emitting it.

* which variables and buffers a loop body reads from outside (parallel outlining captures
  exactly those in its closure),
* how many statements a loop nest executes (``pragma_auto_unroll_max_step``, TVM's
  ``UnrollLoop`` pass),
* whether an expression may be evaluated when its value is not needed (a ``Select`` side
  that loads from memory or divides must not be),
* whether a loop body can be widened to vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codegen.llvm.errors import CodegenError
from ir import dtype as dt
from ir.expr import Binary, BinaryOp, Expr, Reduce, TensorRead, Var, const, is_const, post_order
from ir.tir import (
    Allocate,
    Buffer,
    BufferLoad,
    BufferStore,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
    stmt_children,
    stmt_exprs,
    walk,
)

#: steps counted for a loop whose extent is not a constant: never unrolled
UNBOUNDED_STEPS = 1 << 62


def flat_index(buffer: Buffer, indices: tuple[Expr, ...]) -> Expr:
    """One flat element index: lowering emits one already; a full index tuple is
    flattened with the buffer's strides."""
    if len(indices) == 1:
        return indices[0]
    if len(indices) != len(buffer.shape):
        raise CodegenError(
            f"buffer '{buffer.name}' has {len(buffer.shape)} dimensions but is indexed with "
            f"{len(indices)} indices"
        )
    if not indices:
        return const(0, "int32")
    total: Expr | None = None
    for index, stride in zip(indices, buffer.strides, strict=True):
        term = index * stride
        total = term if total is None else total + term
    assert total is not None
    return total


def free_symbols(body: Stmt, bound_vars: tuple[Var, ...] = ()) -> tuple[list[Var], list[Buffer]]:
    """Variables and buffers that ``body`` uses but does not define, in first-use order.

    Defined inside: loop variables, LetStmt variables, Allocate buffers. ``bound_vars``
    are treated as defined (the outlined loop's own variable).
    """
    defined_vars: set[int] = {id(v) for v in bound_vars}
    defined_buffers: set[int] = set()
    for s in walk(body):
        defines = _DEFINED_VAR.get(type(s))
        if defines is not None:
            defined_vars.add(id(defines(s)))
        elif isinstance(s, Allocate):
            defined_buffers.add(id(s.buffer))
    variables: dict[int, Var] = {}
    buffers: dict[int, Buffer] = {}
    for s in walk(body):
        if isinstance(s, BufferStore) and id(s.buffer) not in defined_buffers:
            buffers.setdefault(id(s.buffer), s.buffer)
        for e in stmt_exprs(s):
            for node in post_order(e):
                if isinstance(node, Var) and id(node) not in defined_vars:
                    variables.setdefault(id(node), node)
                elif isinstance(node, BufferLoad) and id(node.buffer) not in defined_buffers:
                    buffers.setdefault(id(node.buffer), node.buffer)
    return list(variables.values()), list(buffers.values())


#: the variable a statement defines for its body
_DEFINED_VAR: dict[type, Callable[[Any], Var]] = {
    For: lambda s: s.loop_var,
    LetStmt: lambda s: s.var,
}


def count_steps(s: Stmt) -> int:
    """Statements executed by ``s``: a store is 1, a serial or unrolled loop multiplies
    its body by its extent, a vectorized loop counts as one pass over its body (its lanes
    run together). Loops with a non-constant extent count as unbounded."""
    if isinstance(s, BufferStore):
        return 1
    if isinstance(s, For):
        inner = count_steps(s.body)
        if s.kind is ForKind.VECTORIZED:
            return inner
        if not is_const(s.extent):
            return UNBOUNDED_STEPS
        return min(UNBOUNDED_STEPS, int(s.extent.value) * inner)  # type: ignore[attr-defined]
    return min(UNBOUNDED_STEPS, sum(count_steps(c) for c in stmt_children(s)))


def is_speculatable(e: Expr) -> bool:
    """True when evaluating ``e`` can neither fault nor trap: no memory reads and no
    integer division by a non-constant. Such a Select side may be computed eagerly."""
    for node in post_order(e):
        if isinstance(node, BufferLoad | TensorRead):
            return False
        if (
            isinstance(node, Binary)
            and node.op in (BinaryOp.FLOORDIV, BinaryOp.FLOORMOD, BinaryOp.DIV)
            and not dt.is_float(node.dtype)
            and not (is_const(node.b) and node.b.value != 0)  # type: ignore[attr-defined]
        ):
            return False
    return True


def reads_buffer(e: Expr, buffer: Buffer) -> bool:
    return any(isinstance(n, BufferLoad) and n.buffer is buffer for n in post_order(e))


def vectorize_obstacle(body: Stmt) -> str | None:
    """Why the vector emitter cannot widen ``body`` (None when it can): only stores,
    sequences, lets and conditionals of plain expressions are widened."""
    for s in walk(body):
        if not isinstance(s, BufferStore | SeqStmt | LetStmt | IfThenElse):
            return f"the body contains a {type(s).__name__}"
        for e in stmt_exprs(s):
            for node in post_order(e):
                if isinstance(node, Reduce | TensorRead):
                    return f"the body contains a {type(node).__name__} expression"
    return None


def written_buffers(body: Stmt) -> list[Buffer]:
    """Buffers stored to anywhere in ``body``, in first-store order."""
    seen: dict[int, Buffer] = {}
    for s in walk(body):
        if isinstance(s, BufferStore):
            seen.setdefault(id(s.buffer), s.buffer)
    return list(seen.values())


def match_fmuladd(e: Binary) -> tuple[Expr, Expr, Expr] | None:
    """``(x, y, z)`` when ``e`` is ``x * y + z`` or ``z + x * y`` on floats."""
    if e.op is not BinaryOp.ADD or not dt.is_float(e.dtype):
        return None
    for product, addend in ((e.a, e.b), (e.b, e.a)):
        if isinstance(product, Binary) and product.op is BinaryOp.MUL:
            return product.a, product.b, addend
    return None


def check_store_dtype(s: BufferStore) -> None:
    if s.value.dtype != s.buffer.dtype:
        raise CodegenError(
            f"store of a {s.value.dtype} value into {s.buffer.dtype} buffer '{s.buffer.name}': "
            "cast the value first"
        )
