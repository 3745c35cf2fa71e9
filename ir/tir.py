"""The loop-nest IR that lowering produces and code generators consume (TVM's TIR, small).

A ``PrimFunc`` is a function over flat buffers: ``params`` are the DAG's input and output
tensors in the order a kernel is called with, ``body`` is a tree of statements. Loops carry
their kind (serial, parallel, vectorized, unrolled, or bound to a GPU thread axis) and
pragmas; allocations carry a memory scope ("global", "local", "shared").

Buffer indices are expressions over loop variables. Lowering emits one flat index per
access (``len(indices) == 1``) into a buffer whose ``shape`` is its logical shape and
``strides`` its element strides; code generators only ever see flat indices.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ir.expr import Const, Expr, Var, children, const
from ir.printer import PRINTER


class ForKind(enum.Enum):
    """How a loop runs; the value is the printed keyword."""

    SERIAL = "for"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"
    THREAD_BINDING = "bind"


class MemoryScope(enum.Enum):
    GLOBAL = "global"
    LOCAL = "local"
    SHARED = "shared"


@dataclass(frozen=True, eq=False)
class Buffer:
    """A named array: logical ``shape``, element ``strides`` (row-major unless padded by
    storage_align), and the memory ``scope`` it lives in."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scope: MemoryScope = MemoryScope.GLOBAL
    strides: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.strides:
            strides, acc = [], 1
            for extent in reversed(self.shape):
                strides.append(acc)
                acc *= extent
            object.__setattr__(self, "strides", tuple(reversed(strides)))

    @property
    def num_elements(self) -> int:
        """Elements the allocation needs (covers padding from storage_align)."""
        if not self.shape:
            return 1
        return sum(s * (e - 1) for s, e in zip(self.strides, self.shape, strict=True)) + 1

    def __repr__(self) -> str:
        return f"Buffer({self.name}, {list(self.shape)}, {self.dtype}, {self.scope.value})"


@dataclass(frozen=True, eq=False, repr=False)
class BufferLoad(Expr):
    buffer: Buffer
    indices: tuple[Expr, ...]
    dtype: str = field(init=False)
    child_fields = ("indices",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", self.buffer.dtype)

    def key_fields(self) -> tuple[Any, ...]:
        return (id(self.buffer),)


# ------------------------------------------------------------------------------------------
# statements


class Stmt:
    """Base of statements. ``str(stmt)`` prints C-like nested loops (``ir.printer``)."""

    #: names of the fields holding child statements (a field may hold a tuple or None)
    stmt_fields: ClassVar[tuple[str, ...]] = ()
    #: names of the fields holding the expressions the statement itself evaluates, in
    #: evaluation order (a field may hold a tuple)
    expr_fields: ClassVar[tuple[str, ...]] = ()

    def __str__(self) -> str:
        return "\n".join(PRINTER.stmt_lines(self, 0))


@dataclass(frozen=True, eq=False)
class For(Stmt):
    """``for loop_var in [min, min + extent)``.

    ``thread_tag`` names the GPU axis when kind is THREAD_BINDING ("blockIdx.x", ...).
    ``annotations`` holds pragmas, e.g. ``{"pragma_auto_unroll_max_step": 16}``.
    """

    loop_var: Var
    min: Expr
    extent: Expr
    kind: ForKind
    body: Stmt
    thread_tag: str = ""
    annotations: dict[str, Any] = field(default_factory=dict)
    stmt_fields = ("body",)
    expr_fields = ("min", "extent")

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class BufferStore(Stmt):
    buffer: Buffer
    value: Expr
    indices: tuple[Expr, ...]
    expr_fields = ("value", "indices")

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class Allocate(Stmt):
    """Storage for ``buffer`` (in its scope) live during ``body``."""

    buffer: Buffer
    body: Stmt
    stmt_fields = ("body",)

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class IfThenElse(Stmt):
    condition: Expr
    then_case: Stmt
    else_case: Stmt | None = None
    stmt_fields = ("then_case", "else_case")
    expr_fields = ("condition",)

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class LetStmt(Stmt):
    """Bind ``var = value`` for ``body`` (hoisted index arithmetic lives here)."""

    var: Var
    value: Expr
    body: Stmt
    stmt_fields = ("body",)
    expr_fields = ("value",)

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class SeqStmt(Stmt):
    stmts: tuple[Stmt, ...]
    stmt_fields = ("stmts",)

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class Barrier(Stmt):
    """Synchronise the threads of a block over ``scope`` memory (GPU ``__syncthreads``)."""

    scope: MemoryScope = MemoryScope.SHARED

    __str__ = Stmt.__str__


def seq(*stmts: Stmt | None) -> Stmt:
    """A SeqStmt of the given statements, flattening nested sequences and dropping None."""
    flat: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, SeqStmt):
            flat.extend(s.stmts)
        else:
            flat.append(s)
    return flat[0] if len(flat) == 1 else SeqStmt(tuple(flat))


@dataclass(frozen=True, eq=False)
class PrimFunc:
    """A kernel: ``params`` buffers in call order (inputs then outputs) and a body."""

    name: str
    params: tuple[Buffer, ...]
    body: Stmt
    attrs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return PRINTER.primfunc(self)


# ------------------------------------------------------------------------------------------
# traversal


def stmt_children(s: Stmt) -> Iterator[Stmt]:
    """The direct child statements of ``s`` in field order."""
    return _field_values(s, s.stmt_fields)


def walk(s: Stmt) -> Iterator[Stmt]:
    """All statements under ``s``, parents before children."""
    yield s
    for child in stmt_children(s):
        yield from walk(child)


def stmt_exprs(s: Stmt) -> Iterator[Expr]:
    """The expressions held directly by ``s`` (not by its child statements)."""
    return _field_values(s, s.expr_fields)


def _field_values(s: Stmt, names: tuple[str, ...]) -> Iterator[Any]:
    for name in names:
        value = getattr(s, name)
        if isinstance(value, tuple):
            yield from value
        elif value is not None:
            yield value


def all_exprs(e: Expr) -> Iterator[Expr]:
    yield e
    for c in children(e):
        yield from all_exprs(c)


def index_const(value: int) -> Const:
    return const(value, "int32")
