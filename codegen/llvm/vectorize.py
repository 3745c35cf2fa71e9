"""Vectorized loops: the whole body emitted once on ``<extent x T>`` vectors.

Every expression of the body is classified as it is emitted (TVM's ``Vectorizer``):

* ``Uniform``: the same in every lane (does not depend on the loop variable): a scalar,
  broadcast only where it meets a vector;
* ``Ramp(base, stride)``: an integer affine in the loop variable, lane ``l`` holds
  ``base + l * stride``; a buffer index of stride 1 is one contiguous vector load/store;
* ``Lanes``: anything else, a real LLVM vector; as a buffer index it is a gather or scatter,
  done lane by lane.

A conditional (``Select`` with a memory-reading side, or ``IfThenElse``) on a per-lane
condition narrows a lane *mask*: loads and stores under a mask are ``llvm.masked.load/
store`` (contiguous) or per-lane branches (gather/scatter), so a lane never touches memory
its condition excludes. A store of a lane-dependent value to a lane-independent address
is a reduction over the vectorized axis, which the loop state forbids: ``CodegenError``.

Bodies with inner loops or allocations are not widened: they become a serial loop with
``llvm.loop.vectorize.enable`` metadata (correct first; LLVM may still vectorize it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llvmlite import ir

from codegen.llvm import ops
from codegen.llvm.analysis import (
    check_store_dtype,
    flat_index,
    is_speculatable,
    match_fmuladd,
    reads_buffer,
    vectorize_obstacle,
)
from codegen.llvm.errors import CodegenError
from codegen.llvm.protocols import Emitter
from codegen.llvm.tables import I1, I32, intrinsic_suffix, memory_type
from ir import dtype as dt
from ir.expr import (
    LOGICAL_OPS,
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    IterVar,
    Not,
    Select,
    Var,
)
from ir.tir import Buffer, BufferLoad, BufferStore, For, IfThenElse, LetStmt, SeqStmt, Stmt


@dataclass(frozen=True)
class Uniform:
    value: ir.Value


@dataclass(frozen=True)
class Ramp:
    base: ir.Value
    stride: int


@dataclass(frozen=True)
class Lanes:
    value: ir.Value


VValue = Uniform | Ramp | Lanes


def emit_vectorized(fe: Emitter, loop: For) -> None:
    """Emit a VECTORIZED loop: widened in chunks of at most ``max_vector_lanes`` lanes, or
    a serial loop with vectorize metadata when the body cannot be widened."""
    lo, extent = fe.loop_bounds(loop)
    count = ops.int_constant(extent)
    if count is None or vectorize_obstacle(loop.body) is not None:
        fe.serial(loop, fe.mc.loop_metadata(("llvm.loop.vectorize.enable", True)))
        return
    if count <= 1:
        fe.unrolled(loop)
        return
    dtype = loop.loop_var.dtype
    width = min(count, fe.mc.options.max_vector_lanes)
    full, tail = divmod(count, width)

    def offset(base: ir.Value, amount: int | ir.Value) -> ir.Value:
        amount_value = ops.constant(dtype, amount) if isinstance(amount, int) else amount
        return ops.binary(fe.mc, fe.b, BinaryOp.ADD, base, amount_value, dtype)

    if full == 1:
        VectorEmitter(fe, loop, lo, width).stmt(loop.body)
    else:
        chunk = Var(f"{loop.loop_var.name}.chunk", dtype)

        def chunk_body() -> None:
            start = ops.binary(fe.mc, fe.b, BinaryOp.MUL, fe.var(chunk), ops.constant(dtype, width), dtype)
            VectorEmitter(fe, loop, offset(lo, start), width).stmt(loop.body)

        fe.counted_loop(chunk, ops.constant(dtype, 0), ops.constant(dtype, full), chunk_body)
    if tail:
        VectorEmitter(fe, loop, offset(lo, full * width), tail).stmt(loop.body)


class VectorEmitter:
    """Emits one pass of a vectorized loop body at ``lanes`` lanes starting at ``base``."""

    def __init__(self, fe: Emitter, loop: For, base: ir.Value, lanes: int):
        self.fe = fe
        self.mc = fe.mc
        self.b = fe.b
        self.loop = loop
        self.lanes = lanes
        self.env: dict[Var, VValue] = {loop.loop_var: Ramp(base, 1)}
        self.mask: ir.Value | None = None  # <lanes x i1>; None means every lane is active

    # ---------------------------------------------------------------------------------------
    # statements

    def stmt(self, s: Stmt) -> None:
        rule = _STMT_RULES.get(type(s))
        if rule is None:  # vectorize_obstacle() admits only the kinds of _STMT_RULES
            raise CodegenError(f"cannot vectorize a {type(s).__name__}")
        rule(self, s)

    def _seq(self, s: SeqStmt) -> None:
        for child in s.stmts:
            self.stmt(child)

    def _let(self, s: LetStmt) -> None:
        value = self._cast_vvalue(self.expr(s.value), s.value.dtype, s.var.dtype)
        previous = self.env.get(s.var)
        self.env[s.var] = value
        self.stmt(s.body)
        if previous is None:
            del self.env[s.var]
        else:
            self.env[s.var] = previous

    def _if(self, s: IfThenElse) -> None:
        cond = self.expr(s.condition)
        if isinstance(cond, Uniform):
            known = ops.int_constant(cond.value)
            if known is not None:
                taken = s.then_case if known else s.else_case
                if taken is not None:
                    self.stmt(taken)
                return
            with self.b.if_else(cond.value) as (then, otherwise):
                with then:
                    self.stmt(s.then_case)
                with otherwise:
                    if s.else_case is not None:
                        self.stmt(s.else_case)
            return
        lane_cond = self.materialize(cond, "bool")
        outer = self.mask
        self.mask = self._and_mask(outer, lane_cond)
        self.stmt(s.then_case)
        if s.else_case is not None:
            self.mask = self._and_mask(outer, self.b.not_(lane_cond))
            self.stmt(s.else_case)
        self.mask = outer

    def _store(self, s: BufferStore) -> None:
        check_store_dtype(s)
        buffer = s.buffer
        index_expr = flat_index(buffer, s.indices)
        value = self.expr(s.value)
        index = self.expr(index_expr)
        if isinstance(index, Uniform):
            if not isinstance(value, Uniform) or reads_buffer(s.value, buffer):
                raise CodegenError(
                    f"store to {buffer.name}[{index_expr}] inside vectorized loop "
                    f"'{self.loop.loop_var.name}' writes one address from every lane (a reduction "
                    "over the vectorized axis); vectorize a spatial axis instead"
                )
            scalar_index, scalar_value = index.value, value.value
            self._when_any_lane(
                lambda: self.fe.store_scalar(buffer, scalar_index, index_expr.dtype, scalar_value)
            )
            return
        vector = self.materialize(value, buffer.dtype)
        if buffer.dtype == "bool":
            vector = self.b.zext(vector, memory_type("bool", self.lanes))
        if isinstance(index, Ramp) and index.stride == 1:
            ptr = self._vector_ptr(buffer, index.base, index_expr.dtype)
            align = dt.itemsize(buffer.dtype)
            if self.mask is None:
                self.b.store(vector, ptr, align=align)
            else:
                name = f"llvm.masked.store.{intrinsic_suffix(_memory_dtype(buffer.dtype), self.lanes)}.p0"
                fn = self.mc.declare(name, ir.VoidType(), [vector.type, ptr.type, I32, self.mask.type])
                self.b.call(fn, [vector, ptr, ir.Constant(I32, align), self.mask])
            return

        def store_lane(lane: int) -> None:
            element = self.b.extract_element(vector, ir.Constant(I32, lane))
            ptr = self.fe.element_ptr(
                buffer, self._lane_index(index, lane, index_expr.dtype), index_expr.dtype
            )
            self.b.store(element, ptr, align=dt.itemsize(buffer.dtype))

        for lane in range(self.lanes):  # scatter, in lane order
            self._when_lane(lane, functools.partial(store_lane, lane))

    # ---------------------------------------------------------------------------------------
    # expressions

    def expr(self, e: Expr) -> VValue:
        rule = _EXPR_RULES.get(type(e))
        if rule is None:
            raise CodegenError(f"cannot vectorize expression {e} ({type(e).__name__})")
        return rule(self, e)

    def _var(self, e: Var) -> VValue:
        found = self.env.get(e)
        return found if found is not None else Uniform(self.fe.var(e))

    def _const(self, e: Const) -> VValue:
        return Uniform(ops.constant(e.dtype, e.value))

    def _compare(self, e: Compare) -> VValue:
        a, b = self.expr(e.a), self.expr(e.b)
        return self._lanewise(lambda x, y: ops.compare(self.b, e.op, x, y, e.a.dtype), [a, b], e.a.dtype)

    def _not(self, e: Not) -> VValue:
        return self._lanewise(lambda x: ops.logical_not(self.b, x), [self.expr(e.a)], "bool")

    def _cast(self, e: Cast) -> VValue:
        return self._cast_vvalue(self.expr(e.value), e.value.dtype, e.dtype)

    def _call(self, e: Call) -> VValue:
        args = [self.expr(a) for a in e.args]
        return self._lanewise(
            lambda *xs: ops.intrinsic(self.mc, self.b, e.intrinsic, list(xs), e.dtype), args, e.dtype
        )

    def _binary(self, e: Binary) -> VValue:
        fma = match_fmuladd(e)
        if fma is not None:
            parts = [self.expr(t) for t in fma]
            return self._lanewise(
                lambda x, y, z: ops.fmuladd(self.mc, self.b, x, y, z, e.dtype), parts, e.dtype
            )
        dtype = "bool" if e.op in LOGICAL_OPS else e.a.dtype
        a, b = self.expr(e.a), self.expr(e.b)
        ramp = self._ramp_arith(e.op, a, b, dtype)
        if ramp is not None:
            return ramp
        return self._lanewise(lambda x, y: ops.binary(self.mc, self.b, e.op, x, y, dtype), [a, b], dtype)

    def _ramp_arith(self, op: BinaryOp, a: VValue, b: VValue, dtype: str) -> VValue | None:
        """Keep affine integer indices as ramps: ramp +- uniform, ramp +- ramp, ramp * constant."""
        if not dt.is_int(dtype) or not (isinstance(a, Ramp) or isinstance(b, Ramp)):
            return None
        if isinstance(a, Lanes) or isinstance(b, Lanes):
            return None

        def base(v: Uniform | Ramp) -> ir.Value:
            return v.base if isinstance(v, Ramp) else v.value

        def stride(v: Uniform | Ramp) -> int:
            return v.stride if isinstance(v, Ramp) else 0

        if op in (BinaryOp.ADD, BinaryOp.SUB):
            sign = 1 if op is BinaryOp.ADD else -1
            new_base = ops.binary(self.mc, self.b, op, base(a), base(b), dtype)
            return _ramp(new_base, stride(a) + sign * stride(b))
        if op is BinaryOp.MUL:
            ramp, other = (a, b) if isinstance(a, Ramp) else (b, a)
            factor = ops.int_constant(base(other)) if isinstance(other, Uniform) else None
            if isinstance(ramp, Ramp) and factor is not None:
                new_base = ops.binary(self.mc, self.b, op, ramp.base, base(other), dtype)
                return _ramp(new_base, ramp.stride * factor)
        return None

    def _cast_vvalue(self, v: VValue, src: str, dst: str) -> VValue:
        if src == dst:
            return v
        if isinstance(v, Ramp) and dt.is_int(dst) and dt.bits(dst) >= dt.bits(src):
            return Ramp(ops.cast(self.b, v.base, src, dst), v.stride)
        return self._lanewise(lambda x: ops.cast(self.b, x, src, dst), [v], src)

    def _load(self, e: BufferLoad) -> VValue:
        buffer = e.buffer
        index_expr = flat_index(buffer, e.indices)
        index = self.expr(index_expr)
        if isinstance(index, Uniform):
            return Uniform(self._uniform_load(e, index.value, index_expr.dtype))
        align = dt.itemsize(buffer.dtype)
        vec_type = memory_type(buffer.dtype, self.lanes)
        if isinstance(index, Ramp) and index.stride == 1:
            ptr = self._vector_ptr(buffer, index.base, index_expr.dtype)
            if self.mask is None:
                loaded = self.b.load(ptr, align=align)
            else:
                name = f"llvm.masked.load.{intrinsic_suffix(_memory_dtype(buffer.dtype), self.lanes)}.p0"
                fn = self.mc.declare(name, vec_type, [ptr.type, I32, self.mask.type, vec_type])
                zero = ir.Constant(vec_type, None)
                loaded = self.b.call(fn, [ptr, ir.Constant(I32, align), self.mask, zero])
        else:  # gather, lane by lane; masked-off lanes read nothing and hold 0
            loaded = ir.Constant(vec_type, None)
            for lane in range(self.lanes):
                loaded = self._gather_lane(buffer, index, index_expr.dtype, lane, loaded)
        if buffer.dtype == "bool":
            return Lanes(self.b.icmp_unsigned("!=", loaded, ir.Constant(vec_type, None)))
        return Lanes(loaded)

    def _gather_lane(
        self, buffer: Buffer, index: VValue, index_dtype: str, lane: int, vector: ir.Value
    ) -> ir.Value:
        lane_const = ir.Constant(I32, lane)

        def load() -> ir.Value:
            ptr = self.fe.element_ptr(buffer, self._lane_index(index, lane, index_dtype), index_dtype)
            return self.b.insert_element(
                vector, self.b.load(ptr, align=dt.itemsize(buffer.dtype)), lane_const
            )

        if self.mask is None:
            return load()
        return self._guarded(self.b.extract_element(self.mask, lane_const), load, vector)

    def _uniform_load(self, e: BufferLoad, index: ir.Value, index_dtype: str) -> ir.Value:
        """One scalar load for all lanes; under a mask only if some lane is active."""
        if self.mask is None:
            return self.fe.load_scalar(e.buffer, index, index_dtype)
        zero = ops.constant(e.dtype, 0)
        return self._guarded(
            self._any_lane(), lambda: self.fe.load_scalar(e.buffer, index, index_dtype), zero
        )

    def _select(self, e: Select) -> VValue:
        cond = self.expr(e.cond)
        speculate = is_speculatable(e.true_value) and is_speculatable(e.false_value)
        if isinstance(cond, Uniform):
            known = ops.int_constant(cond.value)
            if known is not None:
                return self.expr(e.true_value if known else e.false_value)
            if speculate:
                t, f = self.expr(e.true_value), self.expr(e.false_value)
                return self._lanewise(lambda x, y: self.b.select(cond.value, x, y), [t, f], e.dtype)
            return self._branch_select(cond.value, e)
        lane_cond = self.materialize(cond, "bool")
        if speculate:
            t, f = self.expr(e.true_value), self.expr(e.false_value)
            return Lanes(self.b.select(lane_cond, self.materialize(t, e.dtype), self.materialize(f, e.dtype)))
        outer = self.mask
        self.mask = self._and_mask(outer, lane_cond)
        t_vec = self.materialize(self.expr(e.true_value), e.dtype)
        self.mask = self._and_mask(outer, self.b.not_(lane_cond))
        f_vec = self.materialize(self.expr(e.false_value), e.dtype)
        self.mask = outer
        return Lanes(self.b.select(lane_cond, t_vec, f_vec))

    def _branch_select(self, cond: ir.Value, e: Select) -> VValue:
        """A lane-independent condition guarding memory reads: branch, then phi."""
        with self.b.if_else(cond) as (then, otherwise):
            with then:
                t = self.materialize(self.expr(e.true_value), e.dtype)
                t_block = self.b.block
            with otherwise:
                f = self.materialize(self.expr(e.false_value), e.dtype)
                f_block = self.b.block
        phi = self.b.phi(t.type)
        phi.add_incoming(t, t_block)
        phi.add_incoming(f, f_block)
        return Lanes(phi)

    # ---------------------------------------------------------------------------------------
    # helpers

    def materialize(self, v: VValue, dtype: str) -> ir.Value:
        """``v`` as a ``<lanes x T>`` LLVM vector."""
        if isinstance(v, Lanes):
            return v.value
        if isinstance(v, Uniform):
            return ops.splat(self.b, v.value, self.lanes)
        start = ops.int_constant(v.base)
        if start is not None:
            return ops.constant_vector(dtype, [start + v.stride * lane for lane in range(self.lanes)])
        steps = ops.constant_vector(dtype, [v.stride * lane for lane in range(self.lanes)])
        return self.b.add(ops.splat(self.b, v.base, self.lanes), steps)

    def _lanewise(self, fn: Callable[..., ir.Value], args: list[VValue], dtype: str) -> VValue:
        """Apply ``fn`` to scalars when every argument is uniform, else to vectors
        (``dtype`` is the arguments' dtype, used to widen ramps)."""
        if all(isinstance(a, Uniform) for a in args):
            return Uniform(fn(*(a.value for a in args)))  # type: ignore[union-attr]
        return Lanes(fn(*(self.materialize(a, dtype) for a in args)))

    def _lane_index(self, index: VValue, lane: int, dtype: str) -> ir.Value:
        if isinstance(index, Ramp):
            step = ops.constant(dtype, index.stride * lane)
            return ops.binary(self.mc, self.b, BinaryOp.ADD, index.base, step, dtype)
        if isinstance(index, Lanes):
            return self.b.extract_element(index.value, ir.Constant(I32, lane))
        return index.value

    def _vector_ptr(self, buffer: Buffer, base: ir.Value, index_dtype: str) -> ir.Value:
        ptr = self.fe.element_ptr(buffer, base, index_dtype)
        return self.b.bitcast(ptr, memory_type(buffer.dtype, self.lanes).as_pointer())

    def _and_mask(self, outer: ir.Value | None, cond: ir.Value) -> ir.Value:
        return cond if outer is None else self.b.and_(outer, cond)

    def _any_lane(self) -> ir.Value:
        assert self.mask is not None
        fn = self.mc.declare(f"llvm.vector.reduce.or.v{self.lanes}i1", I1, [self.mask.type])
        return self.b.call(fn, [self.mask])

    def _when_any_lane(self, emit: Callable[[], None]) -> None:
        if self.mask is None:
            emit()
            return
        with self.b.if_then(self._any_lane()):
            emit()

    def _when_lane(self, lane: int, emit: Callable[[], None]) -> None:
        if self.mask is None:
            emit()
            return
        with self.b.if_then(self.b.extract_element(self.mask, ir.Constant(I32, lane))):
            emit()

    def _guarded(self, cond: ir.Value, compute: Callable[[], ir.Value], otherwise: ir.Value) -> ir.Value:
        """``cond ? compute() : otherwise``, running ``compute`` only when cond holds."""
        before = self.b.block
        with self.b.if_then(cond):
            value = compute()
            then_block = self.b.block
        phi = self.b.phi(value.type)
        phi.add_incoming(value, then_block)
        phi.add_incoming(otherwise, before)
        return phi


_STMT_RULES: dict[type, Callable[[VectorEmitter, Any], None]] = {
    SeqStmt: VectorEmitter._seq,
    BufferStore: VectorEmitter._store,
    LetStmt: VectorEmitter._let,
    IfThenElse: VectorEmitter._if,
}

_EXPR_RULES: dict[type, Callable[[VectorEmitter, Any], VValue]] = {
    Var: VectorEmitter._var,
    IterVar: VectorEmitter._var,
    Const: VectorEmitter._const,
    Binary: VectorEmitter._binary,
    Compare: VectorEmitter._compare,
    Not: VectorEmitter._not,
    Cast: VectorEmitter._cast,
    Call: VectorEmitter._call,
    BufferLoad: VectorEmitter._load,
    Select: VectorEmitter._select,
}


def _ramp(base: ir.Value, stride: int) -> VValue:
    return Uniform(base) if stride == 0 else Ramp(base, stride)


def _memory_dtype(dtype: str) -> str:
    """The dtype whose intrinsic suffix names memory elements (bool is a byte)."""
    return "int8" if dtype == "bool" else dtype
