"""Parallel loops: outline the body and run it on libgomp's thread team.

``parallel (i, min, extent) body`` becomes (what an OpenMP compiler emits for
``#pragma omp parallel``, with a static schedule)::

    closure = {buffer pointers, free variables, min, extent}     // in the caller's frame
    GOMP_parallel(trampoline, &closure, num_threads, 0)          // returns when all are done

    void trampoline(void* data):                                 // runs on every thread
        chunk = ceil(extent / omp_get_num_threads())
        lo = min(omp_get_thread_num() * chunk, extent); hi = min(lo + chunk, extent)
        worker(pointers..., variables..., min + lo, min + hi)

    void worker(T* noalias p0, ..., v0, ..., lo, hi):            // the body, serial
        for (i = lo; i < hi; ++i) body

The worker takes buffers as ``noalias`` arguments so LLVM vectorizes and hoists inside it
as it would in the caller. Parallel loops nested inside run serially (one team only).
Ansor (paper section 4.2) parallelises the outer fused spatial loops this way on CPUs.
"""

from __future__ import annotations

from llvmlite import ir

from codegen.llvm import ops
from codegen.llvm.analysis import free_symbols
from codegen.llvm.protocols import Emitter
from codegen.llvm.tables import I8_PTR, I32, VOID, memory_type, register_type
from ir.expr import BinaryOp, Var
from ir.tir import Buffer, For


def emit_parallel(fe: Emitter, loop: For) -> None:
    mc = fe.mc
    dtype = loop.loop_var.dtype
    lo, extent = fe.loop_bounds(loop)
    variables, buffers = free_symbols(loop.body, bound_vars=(loop.loop_var,))
    values = [fe.buffer_ptr(b) for b in buffers] + [fe.var(v) for v in variables]
    bound_type = register_type(dtype)
    fields = [v.type for v in values] + [bound_type, bound_type]
    closure_type = ir.LiteralStructType(fields)

    worker_name = mc.fresh_name(f"{fe.fn.name}_{_c_name(loop.loop_var.name)}_parallel")
    worker_type = ir.FunctionType(VOID, [*[v.type for v in values], bound_type, bound_type])
    worker = ir.Function(mc.module, worker_type, name=f"{worker_name}_worker")
    worker.linkage = "internal"
    trampoline = ir.Function(mc.module, ir.FunctionType(VOID, [I8_PTR]), name=worker_name)
    trampoline.linkage = "internal"

    # the caller: fill the closure, run the team
    closure = fe.entry_builder.alloca(closure_type, name=f"{worker_name}.closure")
    for position, value in enumerate([*values, lo, extent]):
        fe.b.store(value, fe.b.gep(closure, [ir.Constant(I32, 0), ir.Constant(I32, position)], inbounds=True))
    gomp = mc.declare("GOMP_parallel", VOID, [trampoline.type, I8_PTR, I32, I32])
    threads = ir.Constant(I32, mc.options.num_threads)
    fe.b.call(gomp, [trampoline, fe.b.bitcast(closure, I8_PTR), threads, ir.Constant(I32, 0)])

    _emit_trampoline(fe, trampoline, worker, closure_type, len(values), dtype)
    _emit_worker(fe, worker, loop, buffers, variables)


def _emit_trampoline(
    fe: Emitter,
    trampoline: ir.Function,
    worker: ir.Function,
    closure_type: ir.LiteralStructType,
    num_values: int,
    dtype: str,
) -> None:
    """Unpack the closure, take this thread's static chunk of the range, call the worker."""
    mc = fe.mc
    b = ir.IRBuilder(trampoline.append_basic_block("entry"))
    closure = b.bitcast(trampoline.args[0], closure_type.as_pointer())
    fields = [
        b.load(b.gep(closure, [ir.Constant(I32, 0), ir.Constant(I32, i)], inbounds=True))
        for i in range(num_values + 2)
    ]
    *values, lo, extent = fields
    thread = b.call(mc.declare("omp_get_thread_num", I32, []), [])
    team = b.call(mc.declare("omp_get_num_threads", I32, []), [])
    thread = ops.cast(b, thread, "int32", dtype)
    team = ops.cast(b, team, "int32", dtype)
    one = ops.constant(dtype, 1)
    chunk = b.sdiv(b.sub(b.add(extent, team), one), team)
    start = ops.binary(mc, b, BinaryOp.MIN, b.mul(thread, chunk), extent, dtype)
    stop = ops.binary(mc, b, BinaryOp.MIN, b.add(start, chunk), extent, dtype)
    b.call(worker, [*values, b.add(lo, start), b.add(lo, stop)])
    b.ret_void()


def _emit_worker(
    fe: Emitter, worker: ir.Function, loop: For, buffers: list[Buffer], variables: list[Var]
) -> None:
    """The loop body over [lo, hi), in its own function with noalias buffer arguments."""
    inner = fe.child(worker)
    args = list(worker.args)
    for buffer, arg in zip(buffers, args, strict=False):
        arg.add_attribute("noalias")
        inner.buffers[buffer] = arg
        assert arg.type == memory_type(buffer.dtype).as_pointer()
    for var, arg in zip(variables, args[len(buffers) :], strict=False):
        inner.vars[var] = arg
    lo, hi = args[-2], args[-1]
    inner.counted_loop(loop.loop_var, lo, hi, lambda: inner.stmt(loop.body))
    inner.b.ret_void()
    inner.finish()


def _c_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
