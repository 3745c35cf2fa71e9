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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ir.expr import Const, Expr, Var, children, const
from ir.printer import expr_to_str


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

    def str_parts(self, fmt: Callable[[Expr], str]) -> str:
        return f"{self.buffer.name}[{', '.join(fmt(i) for i in self.indices)}]"


# ------------------------------------------------------------------------------------------
# statements


class Stmt:
    """Base of statements. ``str(stmt)`` prints C-like nested loops."""

    def __str__(self) -> str:
        return "\n".join(stmt_lines(self, 0))


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

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class BufferStore(Stmt):
    buffer: Buffer
    value: Expr
    indices: tuple[Expr, ...]

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class Allocate(Stmt):
    """Storage for ``buffer`` (in its scope) live during ``body``."""

    buffer: Buffer
    body: Stmt

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class IfThenElse(Stmt):
    condition: Expr
    then_case: Stmt
    else_case: Stmt | None = None

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class LetStmt(Stmt):
    """Bind ``var = value`` for ``body`` (hoisted index arithmetic lives here)."""

    var: Var
    value: Expr
    body: Stmt

    __str__ = Stmt.__str__


@dataclass(frozen=True, eq=False)
class SeqStmt(Stmt):
    stmts: tuple[Stmt, ...]

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
        params = ", ".join(f"{b.dtype} {b.name}[{', '.join(map(str, b.shape))}]" for b in self.params)
        lines = [f"void {self.name}({params}) {{"]
        lines += stmt_lines(self.body, 1)
        lines.append("}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# traversal and printing


def stmt_children(s: Stmt) -> Iterator[Stmt]:
    if isinstance(s, (For, Allocate, LetStmt)):
        yield s.body
    elif isinstance(s, IfThenElse):
        yield s.then_case
        if s.else_case is not None:
            yield s.else_case
    elif isinstance(s, SeqStmt):
        yield from s.stmts


def walk(s: Stmt) -> Iterator[Stmt]:
    """All statements under ``s``, parents before children."""
    yield s
    for child in stmt_children(s):
        yield from walk(child)


def stmt_exprs(s: Stmt) -> Iterator[Expr]:
    """The expressions held directly by ``s`` (not by its child statements)."""
    if isinstance(s, For):
        yield s.min
        yield s.extent
    elif isinstance(s, BufferStore):
        yield s.value
        yield from s.indices
    elif isinstance(s, IfThenElse):
        yield s.condition
    elif isinstance(s, LetStmt):
        yield s.value


def all_exprs(e: Expr) -> Iterator[Expr]:
    yield e
    for c in children(e):
        yield from all_exprs(c)


def _extent_text(e: Expr) -> str:
    return str(e.value) if isinstance(e, Const) else expr_to_str(e)


def stmt_lines(s: Stmt, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(s, For):
        head = s.kind.value if s.kind is not ForKind.THREAD_BINDING else f"bind {s.thread_tag}"
        pragmas = "".join(f" // {k}={v}" for k, v in sorted(s.annotations.items()))
        lines = [
            f"{pad}{head} ({s.loop_var.name}, {_extent_text(s.min)}, {_extent_text(s.extent)}) {{{pragmas}"
        ]
        return lines + stmt_lines(s.body, depth + 1) + [f"{pad}}}"]
    if isinstance(s, BufferStore):
        index = ", ".join(expr_to_str(i) for i in s.indices)
        return [f"{pad}{s.buffer.name}[{index}] = {expr_to_str(s.value)}"]
    if isinstance(s, Allocate):
        b = s.buffer
        return [f"{pad}allocate {b.name}[{b.dtype} * {b.num_elements}] {b.scope.value}"] + stmt_lines(
            s.body, depth
        )
    if isinstance(s, IfThenElse):
        lines = [f"{pad}if ({expr_to_str(s.condition)}) {{"] + stmt_lines(s.then_case, depth + 1)
        if s.else_case is not None:
            lines += [f"{pad}}} else {{"] + stmt_lines(s.else_case, depth + 1)
        return lines + [f"{pad}}}"]
    if isinstance(s, LetStmt):
        return [f"{pad}{s.var.dtype} {s.var.name} = {expr_to_str(s.value)}"] + stmt_lines(s.body, depth)
    if isinstance(s, SeqStmt):
        return [line for child in s.stmts for line in stmt_lines(child, depth)]
    if isinstance(s, Barrier):
        return [f"{pad}barrier({s.scope.value})"]
    raise TypeError(f"no printer for statement {type(s).__name__}")


def index_const(value: int) -> Const:
    return const(value, "int32")
