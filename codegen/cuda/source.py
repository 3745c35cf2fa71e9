"""A lowered GPU program -> CUDA C or OpenCL C text, one kernel per root stage.

Input: a ``PrimFunc`` lowered from a GPU schedule (Ansor paper section 4: the sketch's
tiles bound to ``blockIdx``, ``vthread`` and ``threadIdx``; shared and local cache stages;
barriers around shared-memory fills). Output: a ``GPUProgram``, the program text plus
what the host needs to run it: the kernels in launch order with their grid and block
sizes, and the global scratch buffers (workspace) the host allocates.

As TVM's ``SplitHostDevice`` does, every statement at the top of the function (under the
global allocations) becomes its own kernel: a root stage's loops bound to ``blockIdx`` and
``threadIdx`` become the launch grid, and consecutive kernels are ordered by their launches.
Inside a kernel:

* a loop bound to ``blockIdx.*`` / ``threadIdx.*`` is not a loop: its variable is the
  built-in index. The launch takes, per axis, the largest extent bound to it in the
  kernel; a loop with a smaller extent runs under ``if (index < extent)`` (a barrier there
  would be reached by only some threads, so it is refused). Nested loops bound to the same
  axis (a cooperative fetch into shared memory inside the consumer's thread loop) read the
  same index, which is what makes the fetch cooperative;
* a ``vthread`` loop is a serial loop that every thread runs (TVM's InjectVirtualThread
  interleaves its iterations; running them one after another computes the same values);
* ``shared`` buffers are declared once at the top of the kernel (OpenCL requires it),
  ``local`` ones where they are allocated (registers when indexed by constants);
* an unrolled loop, and a loop under ``pragma_auto_unroll_max_step = N`` whose total step
  count is at most N (TVM ``UnrollLoop``), is preceded by ``#pragma unroll``;
* a statement with no thread binding (a stage the schedule left unbound) runs as a kernel
  of one thread: slow, but it computes what the program says.

A cross-thread reduction arrives lowered (``ir.lower.schedule_ops``: lanes in shared
memory, a tree of pairwise combines between barriers), so it needs nothing here.

Expressions keep TVM's semantics (those of the LLVM back end): ``//`` and ``%`` round toward
minus infinity (plain C ``/`` and ``%`` where both sides are provably non-negative),
``max``/``min`` are ``a > b ? a : b``, ``round`` is half to even.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from codegen.cuda.dialect import DIALECTS, Dialect
from codegen.llvm.analysis import count_steps
from codegen.llvm.errors import CodegenError
from ir import dtype as dt
from ir.expr import (
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    Intrinsic,
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
    ForKind,
    IfThenElse,
    LetStmt,
    MemoryScope,
    PrimFunc,
    SeqStmt,
    Stmt,
    walk,
)

AUTO_UNROLL_PRAGMA = "pragma_auto_unroll_max_step"
#: the axes a launch has, in the order of a (x, y, z) size
BLOCK_AXES = ("blockIdx.x", "blockIdx.y", "blockIdx.z")
THREAD_AXES = ("threadIdx.x", "threadIdx.y", "threadIdx.z")
VTHREAD = "vthread"

_C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "bool",
        "half",
        "global",
        "local",
        "kernel",
        "private",
        "constant",
    ]
)


@dataclass(frozen=True)
class Launch:
    """A kernel's grid (blocks per axis) and block (threads per axis), x then y then z."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def threads_per_block(self) -> int:
        return math.prod(self.block)


@dataclass(frozen=True)
class GPUKernel:
    """One ``__global__`` function of the program and its launch."""

    name: str
    launch: Launch


@dataclass(frozen=True)
class GPUProgram:
    """A lowered function as GPU source.

    Every kernel takes the same arguments: one pointer per buffer of ``params`` (the
    function's tensors in call order) and then of ``workspace`` (intermediate tensors in
    global memory, allocated by the host). The kernels run one after another, in order.
    """

    name: str
    dialect: str
    source: str
    kernels: tuple[GPUKernel, ...]
    params: tuple[Buffer, ...]
    workspace: tuple[Buffer, ...]

    def __str__(self) -> str:
        return self.source


def emit_source(func: PrimFunc, dialect: str = "cuda") -> GPUProgram:
    """``func`` as CUDA C (``dialect="cuda"``) or OpenCL C (``"opencl"``); see the module
    docstring. Raises CodegenError for what a GPU cannot run as written (a parallel loop,
    a block loop inside a serial loop, a barrier reached by part of a block, a thread
    extent that is not a constant)."""
    if dialect not in DIALECTS:
        raise ValueError(f"GPU dialect {dialect!r} is not one of {', '.join(DIALECTS)}")
    lang = DIALECTS[dialect]
    names = _Names()
    param_names = [names.buffer(b) for b in func.params]
    workspace, statements = _split_kernels(func.body)
    workspace_names = [names.buffer(b) for b in workspace]
    arguments = ", ".join(
        lang.param_format.format(ctype=lang.ctype(b.dtype), name=n)
        for b, n in zip((*func.params, *workspace), (*param_names, *workspace_names), strict=True)
    )
    lines: list[str] = [*lang.prelude]
    helpers = _Helpers(lang)
    kernels: list[GPUKernel] = []
    bodies: list[str] = []
    for index, statement in enumerate(statements):
        kernel_name = _c_name(func.name) + (f"_kernel{index}" if len(statements) > 1 else "_kernel")
        launch = _launch_of(statement, kernel_name)
        printer = _KernelPrinter(lang, names, launch, helpers, kernel_name)
        body = printer.kernel(statement)
        qualifier = lang.kernel_qualifier.format(
            threads=launch.threads_per_block,
            block_x=launch.block[0],
            block_y=launch.block[1],
            block_z=launch.block[2],
        )
        bodies.append(f"{qualifier} {kernel_name}({arguments}) {{\n{body}}}\n")
        kernels.append(GPUKernel(kernel_name, launch))
    lines.extend(helpers.definitions())
    source = "\n".join([*lines, "", *bodies])
    return GPUProgram(func.name, dialect, source, tuple(kernels), tuple(func.params), tuple(workspace))


# ------------------------------------------------------------------------------------------
# kernels and launches


def _split_kernels(body: Stmt) -> tuple[list[Buffer], list[Stmt]]:
    """The global buffers allocated around the kernels, and the kernels' statements."""
    workspace: list[Buffer] = []
    statements: list[Stmt] = []

    def visit(s: Stmt, wrappers: tuple[Buffer, ...]) -> None:
        if isinstance(s, Allocate) and s.buffer.scope is MemoryScope.GLOBAL:
            workspace.append(s.buffer)
            visit(s.body, wrappers)
        elif isinstance(s, Allocate):
            visit(s.body, (*wrappers, s.buffer))
        elif isinstance(s, SeqStmt):
            for child in s.stmts:
                visit(child, wrappers)
        else:
            for buffer in reversed(wrappers):
                s = Allocate(buffer, s)
            statements.append(s)

    visit(body, ())
    return workspace, statements


def _launch_of(kernel: Stmt, name: str) -> Launch:
    """Per axis, the largest extent bound to it (1 where nothing is)."""
    extents: dict[str, int] = {}
    for s in walk(kernel):
        if isinstance(s, For) and s.kind is ForKind.THREAD_BINDING and s.thread_tag != VTHREAD:
            if s.thread_tag not in (*BLOCK_AXES, *THREAD_AXES):
                raise CodegenError(
                    f"{name}: loop '{s.loop_var.name}' is bound to unknown axis {s.thread_tag!r}"
                )
            if not isinstance(s.extent, Const) or not isinstance(s.min, Const) or s.min.value != 0:
                raise CodegenError(
                    f"{name}: loop '{s.loop_var.name}' bound to {s.thread_tag} needs a constant range "
                    f"from 0, got min {s.min} extent {s.extent}"
                )
            extents[s.thread_tag] = max(extents.get(s.thread_tag, 1), int(s.extent.value))
    grid = tuple(extents.get(axis, 1) for axis in BLOCK_AXES)
    block = tuple(extents.get(axis, 1) for axis in THREAD_AXES)
    return Launch(grid, block)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# names


def _c_name(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name) or "v"
    if text[0].isdigit():
        text = "v" + text
    return text + "_" if text in _C_KEYWORDS else text


class _Names:
    """C identifiers for variables and buffers, unique within the program."""

    def __init__(self) -> None:
        self._by_object: dict[int, str] = {}
        self._taken: set[str] = set()
        self._keep: list[object] = []

    def _fresh(self, obj: object, name: str) -> str:
        key = id(obj)
        if key in self._by_object:
            return self._by_object[key]
        base = _c_name(name)
        text, n = base, 0
        while text in self._taken:
            n += 1
            text = f"{base}_{n}"
        self._taken.add(text)
        self._by_object[key] = text
        self._keep.append(obj)  # ids stay unique while the object is alive
        return text

    def var(self, v: Var) -> str:
        return self._fresh(v, v.name)

    def buffer(self, b: Buffer) -> str:
        return self._fresh(b, b.name)

    def known(self, obj: object) -> bool:
        return id(obj) in self._by_object


class _Helpers:
    """Helper functions the text calls (floor division of possibly negative integers)."""

    def __init__(self, lang: Dialect) -> None:
        self.lang = lang
        self._needed: dict[str, str] = {}

    def floor_op(self, op: BinaryOp, dtype: str) -> str:
        ctype = self.lang.ctype(dtype)
        kind = "floordiv" if op is BinaryOp.FLOORDIV else "floormod"
        name = f"ansor_{kind}_{_c_name(dtype)}"
        if name not in self._needed:
            q = self.lang.function_qualifier
            if kind == "floordiv":
                body = "  return (a % b != 0 && ((a < 0) != (b < 0))) ? a / b - 1 : a / b;"
            else:
                body = f"  {ctype} r = a % b;\n  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;"
            self._needed[name] = f"{q} {ctype} {name}({ctype} a, {ctype} b) {{\n{body}\n}}"
        return name

    def definitions(self) -> list[str]:
        return list(self._needed.values())


# ------------------------------------------------------------------------------------------
# one kernel


@dataclass
class _KernelPrinter:
    lang: Dialect
    names: _Names
    launch: Launch
    helpers: _Helpers
    kernel_name: str
    lines: list[str] = field(default_factory=list)
    shared: dict[str, str] = field(default_factory=dict)
    #: variables known to be >= 0 (loop and thread indices from 0, lets of such values)
    nonneg: set[int] = field(default_factory=set)
    unroll_max_step: int = 0

    def kernel(self, s: Stmt) -> str:
        self.stmt(s, 1)
        shared = [f"  {decl}" for decl in self.shared.values()]
        return "\n".join([*shared, *self.lines]) + "\n"

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    # statements ---------------------------------------------------------------------------
    def stmt(self, s: Stmt, depth: int) -> None:
        if isinstance(s, For):
            self.loop(s, depth)
        elif isinstance(s, BufferStore):
            (index,) = _flat(s.indices, s.buffer)
            value = self.expr(s.value)
            if s.buffer.dtype == "bool" and self.lang.ctype("bool") != "bool":
                value = f"({value} ? 1 : 0)"
            self.emit(depth, f"{self.names.buffer(s.buffer)}[{self.expr(index)}] = {value};")
        elif isinstance(s, SeqStmt):
            for child in s.stmts:
                self.stmt(child, depth)
        elif isinstance(s, LetStmt):
            if self._is_nonneg(s.value):
                self.nonneg.add(id(s.var))
            self.emit(
                depth, f"const {self.lang.ctype(s.var.dtype)} {self.names.var(s.var)} = {self.expr(s.value)};"
            )
            self.stmt(s.body, depth)
        elif isinstance(s, IfThenElse):
            self.emit(depth, f"if ({self.expr(s.condition)}) {{")
            self.stmt(s.then_case, depth + 1)
            if s.else_case is not None:
                self.emit(depth, "} else {")
                self.stmt(s.else_case, depth + 1)
            self.emit(depth, "}")
        elif isinstance(s, Allocate):
            self.allocate(s, depth)
        elif isinstance(s, Barrier):
            self.emit(depth, self.lang.barrier)
        else:
            raise CodegenError(f"{self.kernel_name}: no GPU code for statement {type(s).__name__}")

    def allocate(self, s: Allocate, depth: int) -> None:
        b = s.buffer
        decl = f"{self.lang.ctype(b.dtype)} {self.names.buffer(b)}[{b.num_elements}];"
        if b.scope is MemoryScope.SHARED:
            self.shared[self.names.buffer(b)] = f"{self.lang.shared_qualifier} {decl}"
        elif b.scope is MemoryScope.LOCAL:
            self.emit(depth, decl)
        else:
            raise CodegenError(
                f"{self.kernel_name}: global buffer {b.name} is allocated inside a kernel; "
                "global scratch must be allocated around the kernels"
            )
        self.stmt(s.body, depth)

    def loop(self, s: For, depth: int) -> None:
        var = self.names.var(s.loop_var)
        if s.kind is ForKind.PARALLEL:
            raise CodegenError(
                f"{self.kernel_name}: loop '{s.loop_var.name}' is parallel, a CPU annotation; "
                "on a GPU bind it to blockIdx or threadIdx"
            )
        if s.kind is ForKind.THREAD_BINDING and s.thread_tag != VTHREAD:
            self.thread_loop(s, var, depth)
            return
        saved = self.unroll_max_step
        step = s.annotations.get(AUTO_UNROLL_PRAGMA)
        if step is not None:
            self.unroll_max_step = int(step)
        if isinstance(s.min, Const) and s.min.value >= 0:
            self.nonneg.add(id(s.loop_var))
        if s.kind is ForKind.UNROLLED or (
            0 < count_steps(s) <= self.unroll_max_step and isinstance(s.extent, Const)
        ):
            self.emit(depth, "#pragma unroll")
        ctype = self.lang.ctype(s.loop_var.dtype)
        lo = self.expr(s.min)
        hi = (
            self.expr(s.extent)
            if isinstance(s.min, Const) and s.min.value == 0
            else f"{lo} + {self.expr(s.extent)}"
        )
        note = "  // vthread" if s.kind is ForKind.THREAD_BINDING else ""
        self.emit(depth, f"for ({ctype} {var} = {lo}; {var} < {hi}; ++{var}) {{{note}")
        self.stmt(s.body, depth + 1)
        self.emit(depth, "}")
        self.unroll_max_step = saved

    def thread_loop(self, s: For, var: str, depth: int) -> None:
        tag = s.thread_tag
        assert isinstance(s.extent, Const)  # checked in _launch_of
        extent = int(s.extent.value)
        axes = BLOCK_AXES if tag.startswith("blockIdx") else THREAD_AXES
        size = (self.launch.grid if tag.startswith("blockIdx") else self.launch.block)[axes.index(tag)]
        self.nonneg.add(id(s.loop_var))
        self.emit(depth, f"const {self.lang.ctype(s.loop_var.dtype)} {var} = {self.lang.thread_index[tag]};")
        if extent == size:
            self.stmt(s.body, depth)
            return
        if any(isinstance(inner, Barrier) for inner in walk(s.body)):
            raise CodegenError(
                f"{self.kernel_name}: loop '{s.loop_var.name}' binds {extent} of the {size} threads of "
                f"{tag} and holds a barrier, which the other threads would never reach"
            )
        self.emit(depth, f"if ({var} < {extent}) {{")
        self.stmt(s.body, depth + 1)
        self.emit(depth, "}")

    # expressions --------------------------------------------------------------------------
    def expr(self, e: Expr) -> str:
        if isinstance(e, Const):
            return self.constant(e)
        if isinstance(e, Var):
            if not self.names.known(e):
                raise CodegenError(f"{self.kernel_name}: variable '{e.name}' is used but never defined")
            return self.names.var(e)
        if isinstance(e, BufferLoad):
            (index,) = _flat(e.indices, e.buffer)
            return f"{self.names.buffer(e.buffer)}[{self.expr(index)}]"
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Compare):
            return f"({self.expr(e.a)} {e.op.value} {self.expr(e.b)})"
        if isinstance(e, Not):
            return f"(!{self.expr(e.a)})"
        if isinstance(e, Select):
            return f"({self.expr(e.cond)} ? {self.expr(e.true_value)} : {self.expr(e.false_value)})"
        if isinstance(e, Cast):
            if e.dtype == "bool":
                return f"({self.expr(e.value)} != 0)"
            return f"(({self.lang.ctype(e.dtype)})({self.expr(e.value)}))"
        if isinstance(e, Call):
            return self.call(e)
        raise CodegenError(f"{self.kernel_name}: no GPU code for expression {type(e).__name__} ({e})")

    def constant(self, c: Const) -> str:
        value = c.value
        if isinstance(value, bool) or c.dtype == "bool":
            return "1" if value else "0"
        if dt.is_float(c.dtype):
            v = float(value)
            if math.isnan(v):
                return f"(({self.lang.ctype(c.dtype)})NAN)"
            if math.isinf(v):
                inf = self.lang.infinity[c.dtype]
                return inf if v > 0 else f"(-{inf})"
            text = repr(v)
            if "e" not in text and "." not in text:
                text += ".0"
            return text + ("f" if c.dtype == "float32" else "")
        text = str(int(value))
        if c.dtype in ("int64", "uint64"):
            return f"(({self.lang.ctype(c.dtype)}){text})"
        if c.dtype.startswith("uint"):
            return text + "u"
        return text

    def binary(self, e: Binary) -> str:
        a, b = self.expr(e.a), self.expr(e.b)
        op = e.op
        if op in (BinaryOp.MAX, BinaryOp.MIN):
            cmp = ">" if op is BinaryOp.MAX else "<"
            return f"(({a}) {cmp} ({b}) ? ({a}) : ({b}))"
        if op in (BinaryOp.FLOORDIV, BinaryOp.FLOORMOD):
            if dt.is_float(e.dtype):
                floor = self.lang.math_function(Intrinsic.FLOOR, e.dtype)
                quotient = f"{floor}({a} / {b})"
                return quotient if op is BinaryOp.FLOORDIV else f"({a} - {quotient} * {b})"
            if (self._is_nonneg(e.a) and self._is_nonneg(e.b)) or e.dtype.startswith("uint"):
                return f"({a} {'/' if op is BinaryOp.FLOORDIV else '%'} {b})"
            return f"{self.helpers.floor_op(op, e.dtype)}({a}, {b})"
        return f"({a} {op.value} {b})"

    def call(self, e: Call) -> str:
        args = [self.expr(a) for a in e.args]
        fn = e.intrinsic
        if fn is Intrinsic.ABS and not dt.is_float(e.dtype):
            return f"(({args[0]}) < 0 ? -({args[0]}) : ({args[0]}))"
        if not dt.is_float(e.dtype):
            raise CodegenError(
                f"{self.kernel_name}: intrinsic {fn.value} needs a float argument, got {e.dtype}"
            )
        if fn is Intrinsic.SIGMOID:
            one = "1.0f" if e.dtype == "float32" else "1.0"
            return f"({one} / ({one} + {self.lang.math_function(Intrinsic.EXP, e.dtype)}(-({args[0]}))))"
        return f"{self.lang.math_function(fn, e.dtype)}({', '.join(args)})"

    def _is_nonneg(self, e: Expr) -> bool:
        if isinstance(e, Const):
            return not dt.is_float(e.dtype) and e.value >= 0
        if isinstance(e, Var):
            return id(e) in self.nonneg
        if isinstance(e, Binary) and e.op in (
            BinaryOp.ADD,
            BinaryOp.MUL,
            BinaryOp.FLOORDIV,
            BinaryOp.FLOORMOD,
            BinaryOp.MAX,
            BinaryOp.MIN,
        ):
            return self._is_nonneg(e.a) and self._is_nonneg(e.b)
        return False


def _flat(indices: tuple[Expr, ...], buffer: Buffer) -> tuple[Expr]:
    if len(indices) != 1:
        raise CodegenError(
            f"buffer {buffer.name} is indexed by {len(indices)} indices; lowering flattens them to one"
        )
    return (indices[0],)
