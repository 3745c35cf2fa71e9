"""The LLVM emitter: one PrimFunc statement tree -> one LLVM function (scalar code).

``FunctionEmitter`` walks statements top to bottom and keeps two maps: variables to LLVM
values and buffers to base pointers. Loops are emitted by kind:

* SERIAL: a plain counted loop (phi induction variable); LLVM may still vectorize it.
* UNROLLED, and every serial loop nest under ``pragma_auto_unroll_max_step = N`` whose
  total step count is at most N (TVM ``UnrollLoop``): the body is emitted once per
  iteration with the loop variable bound to a constant, so register-tile indices fold to
  constants and SROA turns a ``local`` tile into registers (Ansor paper section 4.2:
  the innermost tile of a multi-level tiling lives in registers).
* VECTORIZED: ``vectorize.py`` widens the body to ``<extent x T>`` vectors.
* PARALLEL: ``parallel.py`` outlines the body and runs it with libgomp's GOMP_parallel.
* THREAD_BINDING: rejected (GPU only).

The two loop emitters get this emitter as an argument, typed by ``protocols.Emitter``; they
never import this module.

Expressions are emitted by ``ops.py`` through the tables; ``a * b + c`` on floats becomes
``llvm.fmuladd`` (one FMA). ``Select`` evaluates only the taken side when a side reads
memory or divides (branches and a phi); otherwise it is a branch-free ``select``.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from codegen.llvm import ops
from codegen.llvm.analysis import check_store_dtype, count_steps, flat_index, is_speculatable, match_fmuladd
from codegen.llvm.context import ModuleContext
from codegen.llvm.errors import CodegenError
from codegen.llvm.parallel import emit_parallel
from codegen.llvm.tables import I8_PTR, memory_type, register_type
from codegen.llvm.vectorize import emit_vectorized
from ir import dtype as dt
from ir.expr import (
    LOGICAL_OPS,
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
    SeqStmt,
    Stmt,
)

AUTO_UNROLL_PRAGMA = "pragma_auto_unroll_max_step"
ALLOCA_ALIGN = 64


class FunctionEmitter:
    """Emits statements into ``fn``; allocas go to the entry block, code to the rest."""

    def __init__(self, mc: ModuleContext, fn: ir.Function, *, in_parallel: bool = False):
        self.mc = mc
        self.fn = fn
        self.in_parallel = in_parallel
        self.unroll_max_step = 0
        self.vars: dict[Var, ir.Value] = {}
        self.buffers: dict[Buffer, ir.Value] = {}
        self._stack_slots: dict[Buffer, ir.Value] = {}
        entry = fn.append_basic_block("entry")
        self._body_block = fn.append_basic_block("body")
        self.entry_builder = ir.IRBuilder(entry)
        self.b = ir.IRBuilder(self._body_block)

    def child(self, fn: ir.Function) -> FunctionEmitter:
        """An emitter for an outlined parallel body: same module, same unroll pragma."""
        inner = FunctionEmitter(self.mc, fn, in_parallel=True)
        inner.unroll_max_step = self.unroll_max_step
        return inner

    def finish(self) -> None:
        """Close the entry block (call after the function's last instruction)."""
        self.entry_builder.branch(self._body_block)

    # ---------------------------------------------------------------------------------------
    # variables, buffers, memory

    def var(self, v: Var) -> ir.Value:
        try:
            return self.vars[v]
        except KeyError:
            raise CodegenError(
                f"variable '{v.name}' is used but not defined (no loop or let binds it)"
            ) from None

    def buffer_ptr(self, buffer: Buffer) -> ir.Value:
        try:
            return self.buffers[buffer]
        except KeyError:
            raise CodegenError(
                f"buffer '{buffer.name}' is used but is neither a parameter nor allocated around the use"
            ) from None

    def element_ptr(self, buffer: Buffer, index: ir.Value, index_dtype: str) -> ir.Value:
        """Address of element ``index`` (a scalar integer value) of ``buffer``."""
        offset = ops.to_i64(self.b, index, index_dtype)
        return self.b.gep(self.buffer_ptr(buffer), [offset], inbounds=True)

    def load_scalar(self, buffer: Buffer, index: ir.Value, index_dtype: str) -> ir.Value:
        ptr = self.element_ptr(buffer, index, index_dtype)
        value = self.b.load(ptr, align=dt.itemsize(buffer.dtype))
        return self.b.icmp_unsigned("!=", value, ops.constant("int8", 0)) if buffer.dtype == "bool" else value

    def store_scalar(self, buffer: Buffer, index: ir.Value, index_dtype: str, value: ir.Value) -> None:
        if buffer.dtype == "bool":
            value = self.b.zext(value, memory_type("bool"))
        self.b.store(value, self.element_ptr(buffer, index, index_dtype), align=dt.itemsize(buffer.dtype))

    # ---------------------------------------------------------------------------------------
    # statements

    def stmt(self, s: Stmt) -> None:
        handler = _STMT_HANDLERS.get(type(s))
        if handler is None:
            raise CodegenError(f"the LLVM back end has no rule for statement {type(s).__name__}")
        handler(self, s)

    def _seq(self, s: SeqStmt) -> None:
        for child in s.stmts:
            self.stmt(child)

    def _store(self, s: BufferStore) -> None:
        check_store_dtype(s)
        index_expr = flat_index(s.buffer, s.indices)
        value = self.expr(s.value)
        self.store_scalar(s.buffer, self.expr(index_expr), index_expr.dtype, value)

    def _let(self, s: LetStmt) -> None:
        value = ops.cast(self.b, self.expr(s.value), s.value.dtype, s.var.dtype)
        with self.bind(s.var, value):
            self.stmt(s.body)

    def _if(self, s: IfThenElse) -> None:
        cond = self.expr(s.condition)
        known = ops.int_constant(cond)
        if known is not None:
            taken = s.then_case if known else s.else_case
            if taken is not None:
                self.stmt(taken)
            return
        if s.else_case is None:
            with self.b.if_then(cond):
                self.stmt(s.then_case)
            return
        with self.b.if_else(cond) as (then, otherwise):
            with then:
                self.stmt(s.then_case)
            with otherwise:
                self.stmt(s.else_case)

    def _allocate(self, s: Allocate) -> None:
        """Small buffers: an aligned entry-block alloca (SROA promotes register tiles).
        Large ones (above ``stack_alloc_max_bytes``): aligned_alloc / free around the body."""
        buf = s.buffer
        elem = memory_type(buf.dtype)
        count = buf.num_elements
        nbytes = count * dt.itemsize(buf.dtype)
        if nbytes <= self.mc.options.stack_alloc_max_bytes:
            # one slot per buffer and function: unrolled copies of the Allocate share it
            base = self._stack_slots.get(buf)
            if base is None:
                storage = self.entry_builder.alloca(ir.ArrayType(elem, count), name=buf.name)
                storage.align = ALLOCA_ALIGN
                base = self._stack_slots[buf] = self.entry_builder.bitcast(storage, elem.as_pointer())
            with self.bind_buffer(buf, base):
                self.stmt(s.body)
            return
        rounded = (nbytes + ALLOCA_ALIGN - 1) // ALLOCA_ALIGN * ALLOCA_ALIGN
        size_t = ir.IntType(self.mc.target.pointer_bits)  # 32-bit on armv7l
        alloc = self.mc.declare("aligned_alloc", I8_PTR, [size_t, size_t])
        free = self.mc.declare("free", ir.VoidType(), [I8_PTR])
        raw = self.b.call(alloc, [ir.Constant(size_t, ALLOCA_ALIGN), ir.Constant(size_t, rounded)])
        with self.bind_buffer(buf, self.b.bitcast(raw, elem.as_pointer())):
            self.stmt(s.body)
        self.b.call(free, [raw])

    def _barrier(self, s: Barrier) -> None:
        raise CodegenError(
            f"barrier({s.scope.value}) synchronises GPU threads: the LLVM back end runs CPU code only"
        )

    # ---------------------------------------------------------------------------------------
    # loops

    def _for(self, s: For) -> None:
        if s.kind is ForKind.THREAD_BINDING:
            raise CodegenError(
                f"loop '{s.loop_var.name}' is bound to {s.thread_tag}: the LLVM back end runs CPU code only"
            )
        saved = self.unroll_max_step
        if AUTO_UNROLL_PRAGMA in s.annotations:
            self.unroll_max_step = _pragma_int(s, AUTO_UNROLL_PRAGMA)
        try:
            if s.kind is ForKind.VECTORIZED:
                emit_vectorized(self, s)
            elif s.kind is ForKind.PARALLEL and not self.in_parallel:
                emit_parallel(self, s)
            elif s.kind is ForKind.UNROLLED or self._auto_unrolls(s):
                self.unrolled(s)
            else:  # serial, or a parallel loop nested in a parallel one
                self.serial(s)
        finally:
            self.unroll_max_step = saved

    def _auto_unrolls(self, s: For) -> bool:
        return (
            s.kind is ForKind.SERIAL
            and self.unroll_max_step > 0
            and isinstance(s.extent, Const)
            and count_steps(s) <= self.unroll_max_step
        )

    def loop_bounds(self, s: For) -> tuple[ir.Value, ir.Value]:
        """(min, extent) of ``s`` as values of the loop variable's type."""
        dtype = s.loop_var.dtype
        lo = ops.cast(self.b, self.expr(s.min), s.min.dtype, dtype)
        extent = ops.cast(self.b, self.expr(s.extent), s.extent.dtype, dtype)
        return lo, extent

    def serial(self, s: For, metadata: ir.MDValue | None = None) -> None:
        lo, extent = self.loop_bounds(s)
        hi = ops.binary(self.mc, self.b, BinaryOp.ADD, lo, extent, s.loop_var.dtype)
        self.counted_loop(s.loop_var, lo, hi, lambda: self.stmt(s.body), metadata)

    def unrolled(self, s: For) -> None:
        """The body once per iteration, the loop variable a constant (or min + constant)."""
        lo, extent = self.loop_bounds(s)
        count = ops.int_constant(extent)
        if count is None or count > self.mc.options.max_unroll_extent:
            metadata = self.mc.loop_metadata(("llvm.loop.unroll.enable", True))
            self.serial(s, metadata)
            return
        dtype = s.loop_var.dtype
        for step in range(count):
            value = ops.binary(self.mc, self.b, BinaryOp.ADD, lo, ops.constant(dtype, step), dtype)
            with self.bind(s.loop_var, value):
                self.stmt(s.body)

    def counted_loop(
        self,
        var: Var,
        lo: ir.Value,
        hi: ir.Value,
        emit_body: Callable[[], None],
        metadata: ir.MDValue | None = None,
    ) -> None:
        """``for (var = lo; var < hi; ++var) body`` with a phi induction variable."""
        dtype = var.dtype
        if ops.int_constant(lo) is not None and ops.int_constant(lo) == ops.int_constant(hi):
            return
        pre = self.b.block
        header = self.fn.append_basic_block(f"{var.name}.header")
        body = self.fn.append_basic_block(f"{var.name}.body")
        exit_block = self.fn.append_basic_block(f"{var.name}.exit")
        self.b.branch(header)
        self.b.position_at_end(header)
        iv = self.b.phi(register_type(dtype), name=var.name)
        iv.add_incoming(lo, pre)
        self.b.cbranch(ops.compare(self.b, CompareOp.LT, iv, hi, dtype), body, exit_block)
        self.b.position_at_end(body)
        with self.bind(var, iv):
            emit_body()
        step = self.b.add(iv, ops.constant(dtype, 1), flags=["nsw"])
        back = self.b.branch(header)
        if metadata is not None:
            back.set_metadata("llvm.loop", metadata)
        iv.add_incoming(step, self.b.block)
        self.b.position_at_end(exit_block)

    # ---------------------------------------------------------------------------------------
    # scoped bindings

    def bind(self, var: Var, value: ir.Value) -> _Binding:
        return _Binding(self.vars, var, value)

    def bind_buffer(self, buffer: Buffer, ptr: ir.Value) -> _Binding:
        return _Binding(self.buffers, buffer, ptr)

    # ---------------------------------------------------------------------------------------
    # expressions

    def expr(self, e: Expr) -> ir.Value:
        if isinstance(e, Var):
            return self.var(e)
        handler = _EXPR_HANDLERS.get(type(e))
        if handler is None:
            raise CodegenError(f"the LLVM back end cannot compile expression {e} ({type(e).__name__})")
        return handler(self, e)

    def _const(self, e: Const) -> ir.Value:
        return ops.constant(e.dtype, e.value)

    def _binary(self, e: Binary) -> ir.Value:
        fma = match_fmuladd(e)
        if fma is not None:
            x, y, z = (self.expr(t) for t in fma)
            return ops.fmuladd(self.mc, self.b, x, y, z, e.dtype)
        dtype = "bool" if e.op in LOGICAL_OPS else e.a.dtype
        return ops.binary(self.mc, self.b, e.op, self.expr(e.a), self.expr(e.b), dtype)

    def _compare(self, e: Compare) -> ir.Value:
        return ops.compare(self.b, e.op, self.expr(e.a), self.expr(e.b), e.a.dtype)

    def _not(self, e: Not) -> ir.Value:
        return ops.logical_not(self.b, self.expr(e.a))

    def _cast(self, e: Cast) -> ir.Value:
        return ops.cast(self.b, self.expr(e.value), e.value.dtype, e.dtype)

    def _call(self, e: Call) -> ir.Value:
        return ops.intrinsic(self.mc, self.b, e.intrinsic, [self.expr(a) for a in e.args], e.dtype)

    def _load(self, e: BufferLoad) -> ir.Value:
        index_expr = flat_index(e.buffer, e.indices)
        return self.load_scalar(e.buffer, self.expr(index_expr), index_expr.dtype)

    def _select(self, e: Select) -> ir.Value:
        cond = self.expr(e.cond)
        known = ops.int_constant(cond)
        if known is not None:
            return self.expr(e.true_value if known else e.false_value)
        if is_speculatable(e.true_value) and is_speculatable(e.false_value):
            return self.b.select(cond, self.expr(e.true_value), self.expr(e.false_value))
        # only the taken side runs: a guarded out-of-bounds read is never executed
        with self.b.if_else(cond) as (then, otherwise):
            with then:
                true_value = self.expr(e.true_value)
                true_block = self.b.block
            with otherwise:
                false_value = self.expr(e.false_value)
                false_block = self.b.block
        phi = self.b.phi(true_value.type)
        phi.add_incoming(true_value, true_block)
        phi.add_incoming(false_value, false_block)
        return phi

    def _unlowered(self, e: Expr) -> ir.Value:
        raise CodegenError(
            f"expression {e} is a {type(e).__name__}: lower the declaration to a PrimFunc before codegen"
        )


class _Binding:
    """``with`` scope that maps a key to a value and restores the previous mapping."""

    def __init__(self, table: dict, key: object, value: ir.Value):
        self.table, self.key, self.value = table, key, value

    def __enter__(self) -> None:
        self.previous = self.table.get(self.key)
        self.table[self.key] = self.value

    def __exit__(self, *exc: object) -> None:
        if self.previous is None:
            del self.table[self.key]
        else:
            self.table[self.key] = self.previous


def _pragma_int(s: For, key: str) -> int:
    value = s.annotations[key]
    if isinstance(value, Const):
        value = value.value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CodegenError(f"loop '{s.loop_var.name}': {key} must be a non-negative integer, got {value!r}")
    return value


_STMT_HANDLERS: dict[type, Callable[..., None]] = {
    SeqStmt: FunctionEmitter._seq,
    BufferStore: FunctionEmitter._store,
    LetStmt: FunctionEmitter._let,
    IfThenElse: FunctionEmitter._if,
    Allocate: FunctionEmitter._allocate,
    Barrier: FunctionEmitter._barrier,
    For: FunctionEmitter._for,
}

_EXPR_HANDLERS: dict[type, Callable[..., ir.Value]] = {
    Const: FunctionEmitter._const,
    Binary: FunctionEmitter._binary,
    Compare: FunctionEmitter._compare,
    Not: FunctionEmitter._not,
    Cast: FunctionEmitter._cast,
    Call: FunctionEmitter._call,
    BufferLoad: FunctionEmitter._load,
    Select: FunctionEmitter._select,
    Reduce: FunctionEmitter._unlowered,
    TensorRead: FunctionEmitter._unlowered,
}
