"""Feature extraction, phase 1: walk a loop-nest program once and write integer tables.

Ansor's cost model scores a program by features of each BufferStore (paper section 5.2;
TVM ``src/auto_scheduler/feature.cc``). Those features need, per store, the loops around
it and, per buffer it touches, how each index moves with each loop. ``summarise`` walks a
program (an ``ir.tir`` statement) once and appends exactly that to a ``SummaryTables``
shared by a whole batch of programs; ``feature_math.compute_features`` then computes the
feature rows of the whole batch at once with numpy. The walk is the only per-program
Python work.

Index analysis (``affine``). Every index is put in affine form over the loop positions
(0 is the outermost loop around the store); a loop then spans ``c_l * (extent_l - 1)`` of
the index, a non-affine atom ``c_a * (hi_a - lo_a)``. With the loops inside level k
relaxed and the outer ones fixed at their minimum, an index covers ``[const + negative
spans, const + positive spans]``: the region TVM's ``ComputeRegion`` bounds with its
integer analyzer.

Flat or multi-dimensional indices. The program may come from ``lower()`` (one flat index
per access, loop-invariant parts hoisted into LetStmts) or from the lowering passes before
flattening (one index per dimension, what TVM analyses on the CPU). LetStmt variables
stand for their values, and a flat index into a multi-dimensional buffer is split by the
buffer's strides, so both forms give the same tables for the usual programs. The split
is a guess where one loop moves several dimensions at once (a fused loop indexing
``A[f // 16, f % 16]`` is ``f * 32`` once flattened) or where a guarded-off iteration runs
past a dimension (a split that does not divide); ``lower(dag, state,
stop_after="schedule_ops")`` gives the per-dimension form, which is the reference.

Operation counts (feature group 1) follow TVM's ``MathOpCounter`` on the stored value,
with two differences stated here: ``a * b + c`` on floats counts as one fused
multiply-add (TVM left MAD detection as a TODO, so its ``float_mad`` is always 0), and
index arithmetic is counted on the canonical per-dimension affine form (one add per extra
term, one multiply per coefficient other than +-1), so that both program forms agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansor_py.cost_model.affine import IndexAnalyzer, Lin, children
from ir import dtype as dt
from ir.expr import (
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    Not,
    Select,
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
    SeqStmt,
    Stmt,
)

# Access types and op-count slots, in the order of the feature vector (TVM's enums).
ACC_READ, ACC_WRITE, ACC_READ_WRITE = 0, 1, 2
(
    F_MAD,
    F_ADDSUB,
    F_MUL,
    F_DIVMOD,
    F_CMP,
    F_MATH,
    F_OTHER,
    I_MAD,
    I_ADDSUB,
    I_MUL,
    I_DIVMOD,
    I_CMP,
    I_MATH,
    I_OTHER,
    BOOL_OP,
    SELECT_OP,
) = range(16)
N_OP_COUNTS = 16
#: per store, after the 16 op counts: float ops, auto_unroll_max_step, 9 annotation
#: numbers (vectorize/unroll/parallel: count, product, innermost extent), is_gpu and
#: the 7 thread-axis lengths
N_STORE_SCALARS = N_OP_COUNTS + 2 + 9 + 8
THREAD_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z")

_BINARY_SLOT = {
    BinaryOp.ADD: (F_ADDSUB, I_ADDSUB),
    BinaryOp.SUB: (F_ADDSUB, I_ADDSUB),
    BinaryOp.MUL: (F_MUL, I_MUL),
    BinaryOp.DIV: (F_DIVMOD, I_DIVMOD),
    BinaryOp.FLOORDIV: (F_DIVMOD, I_DIVMOD),
    BinaryOp.FLOORMOD: (F_DIVMOD, I_DIVMOD),
    BinaryOp.MAX: (F_CMP, I_CMP),
    BinaryOp.MIN: (F_CMP, I_CMP),
}
#: op-count slot of an index atom's root operation (integer arithmetic)
_ATOM_SLOT: dict[object, int] = {op: slots[1] for op, slots in _BINARY_SLOT.items()}
_ATOM_SLOT["select"] = SELECT_OP


@dataclass
class SummaryTables:
    """Loop nests of a batch of programs as flat tables (ids are global to the batch).

    Rows are the feature rows (one per buffer a program stores to or allocates), stores
    the BufferStore statements in program order, groups the (store, buffer) pairs and
    accesses the index tuples of a group. Dimensions are numbered from the innermost
    (``d`` = 0 is the fastest-varying), loops from the outermost (``k`` = 0).
    """

    #: first row of each program; a program whose row range is empty has no stores
    program_first_row: list[int] = field(default_factory=list)
    #: per row: (allocated bytes, allocated elements, product of loops outside the Allocate)
    row_alloc: list[tuple[float, float, float]] = field(default_factory=list)
    store_row: list[int] = field(default_factory=list)
    store_depth: list[int] = field(default_factory=list)
    # The tables below are flat lists of fixed-size records (numpy reads a flat list of
    # numbers several times faster than a list of tuples).
    #: per store, N_STORE_SCALARS numbers (see the constant)
    store_scalars: list[float] = field(default_factory=list)
    #: (store, k, extent, loop id) for every loop around every store
    store_loops: list[int] = field(default_factory=list)
    group_store: list[int] = field(default_factory=list)
    group_buffer: list[int] = field(default_factory=list)
    group_access_type: list[int] = field(default_factory=list)
    group_elem_bytes: list[int] = field(default_factory=list)
    #: (group, d, extent) for every dimension of the group's buffer
    group_shape: list[int] = field(default_factory=list)
    access_group: list[int] = field(default_factory=list)
    #: (access, d, value): the index of dimension d with every loop at its minimum
    access_const: list[int] = field(default_factory=list)
    #: (access, d, k, span): dimension d moves by ``span`` when loop k runs its range
    access_span: list[int] = field(default_factory=list)
    #: (access, k, |flat coefficient|) for every loop k the index reads: how far the flat
    #: offset moves per step of loop k (0 when only a non-affine term reads it)
    access_loop: list[int] = field(default_factory=list)
    n_loops: int = 0
    n_buffers: int = 0

    def begin_program(self) -> None:
        self.program_first_row.append(len(self.row_alloc))


@dataclass
class GpuUsage:
    """What a GPU program asks of one thread block (checked against HardwareParams)."""

    max_threads_per_block: int = 1
    shared_bytes: int = 0
    max_vthread: int = 1


def summarise(body: Stmt, tables: SummaryTables) -> GpuUsage:
    """Append the program ``body`` to ``tables`` (call ``tables.begin_program()`` first)."""
    walker = _Walker(tables)
    walker.visit(body)
    return walker.gpu


class _Loop:
    __slots__ = ("extent", "id", "kind", "min", "tag")

    def __init__(self, min_: int, extent: int, kind: ForKind, tag: str, loop_id: int):
        self.min = min_
        self.extent = extent
        self.kind = kind
        self.tag = tag
        self.id = loop_id


class _Walker:
    def __init__(self, tables: SummaryTables):
        self.t = tables
        self.index = IndexAnalyzer()
        self.loops: list[_Loop] = []
        self.rows: dict[str, int] = {}
        self.buffer_ids: dict[str, int] = {}
        self.outer_prod = 1.0
        self.auto_unroll = 0
        self.is_gpu = False
        self.thread_len = dict.fromkeys(THREAD_TAGS, 1)
        self.vthread = 1
        self.gpu = GpuUsage()

    # statements -------------------------------------------------------------------------
    def visit(self, s: Stmt) -> None:
        rule = _STMT_RULES.get(type(s))
        if rule is None:
            raise TypeError(f"feature extraction: no rule for statement {type(s).__name__}")
        rule(self, s)

    def visit_seq(self, s: SeqStmt) -> None:
        for child in s.stmts:
            self.visit(child)

    def visit_let(self, s: LetStmt) -> None:
        self.index.bind_let(s.var, s.value)
        self.visit(s.body)

    def visit_allocate(self, s: Allocate) -> None:
        self.visit(s.body)
        self.allocation_row(s.buffer)

    def visit_if(self, s: IfThenElse) -> None:
        # as TVM: conditions are ignored and both branches counted
        self.visit(s.then_case)
        if s.else_case is not None:
            self.visit(s.else_case)

    def visit_barrier(self, s: Barrier) -> None:
        pass

    def visit_for(self, s: For) -> None:
        extent_expr, min_expr = s.extent, s.min
        if type(extent_expr) is Const and type(min_expr) is Const:
            lo, extent = int(min_expr.value), max(int(extent_expr.value), 1)
        else:
            lo_bound, _ = self.index.interval(min_expr)
            _, ext_hi = self.index.interval(extent_expr)
            extent = max(int(ext_hi), 1) if math.isfinite(ext_hi) else 1
            lo = int(lo_bound) if math.isfinite(lo_bound) else 0
        loop = _Loop(lo, extent, s.kind, s.thread_tag, self.t.n_loops)
        self.t.n_loops += 1
        saved_unroll = self.auto_unroll
        if s.annotations and "pragma_auto_unroll_max_step" in s.annotations:
            self.auto_unroll = int(s.annotations["pragma_auto_unroll_max_step"])
        binding = s.kind is ForKind.THREAD_BINDING
        if binding:
            saved_threads, saved_vthread = dict(self.thread_len), self.vthread
            self.enter_thread_axis(s.thread_tag, extent)
        self.index.var_pos[id(s.loop_var)] = len(self.loops)
        self.loops.append(loop)
        self.index.loops.append(loop)
        self.outer_prod *= extent
        self.visit(s.body)
        self.outer_prod /= extent
        self.loops.pop()
        self.index.loops.pop()
        del self.index.var_pos[id(s.loop_var)]
        self.auto_unroll = saved_unroll
        if binding:
            self.thread_len, self.vthread = saved_threads, saved_vthread

    def enter_thread_axis(self, tag: str, extent: int) -> None:
        """A loop bound to a GPU axis: a loop for the outer product (TVM makes it a fake
        parallel For), and a length for the thread features."""
        self.is_gpu = True
        if tag == "vthread":
            self.vthread *= extent
            self.gpu.max_vthread = max(self.gpu.max_vthread, self.vthread)
        elif tag in self.thread_len:
            self.thread_len[tag] = extent
            threads = self.thread_len["threadIdx.x"] * self.thread_len["threadIdx.y"]
            threads *= self.thread_len["threadIdx.z"]
            self.gpu.max_threads_per_block = max(self.gpu.max_threads_per_block, threads)

    def row_of(self, name: str) -> int:
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = len(self.t.row_alloc)
            self.t.row_alloc.append((0.0, 0.0, 0.0))
        return row

    def allocation_row(self, buffer: Buffer) -> None:
        elements = float(buffer.num_elements)
        row = self.row_of(buffer.name)
        self.t.row_alloc[row] = (elements * dt.itemsize(buffer.dtype), elements, self.outer_prod)
        if buffer.scope is MemoryScope.SHARED:
            self.gpu.shared_bytes += int(elements) * dt.itemsize(buffer.dtype)

    # one BufferStore --------------------------------------------------------------------
    def visit_store(self, s: BufferStore) -> None:
        counts = [0] * N_OP_COUNTS
        # buffer name -> [access type, buffer, accesses (per-dimension affine forms)]
        groups: dict[str, list] = {s.buffer.name: [ACC_WRITE, s.buffer, [self.dims(s.buffer, s.indices)]]}
        self.count(s.value, counts, groups)
        t = self.t
        store = len(t.store_row)
        t.store_row.append(self.row_of(s.buffer.name))
        t.store_depth.append(len(self.loops))
        flops = 2 * counts[F_MAD] + sum(counts[F_ADDSUB : F_OTHER + 1])
        t.store_scalars.extend(counts)
        t.store_scalars.extend((flops, self.auto_unroll))
        t.store_scalars.extend(self.annotation_numbers())
        t.store_scalars.append(float(self.is_gpu))
        t.store_scalars.extend([self.thread_len[tag] for tag in THREAD_TAGS])
        t.store_scalars.append(self.vthread)
        for k, loop in enumerate(self.loops):
            t.store_loops.extend((store, k, loop.extent, loop.id))
        for name, (acc_type, buffer, accesses) in groups.items():
            self.write_group(store, name, acc_type, buffer, accesses)

    def annotation_numbers(self) -> list[int]:
        """(count, product of extents, innermost extent) of the vectorized, unrolled and
        parallel loops around the store."""
        out: list[int] = []
        for kind in (ForKind.VECTORIZED, ForKind.UNROLLED, ForKind.PARALLEL):
            extents = [loop.extent for loop in self.loops if loop.kind is kind]
            if extents:
                out += [len(extents), math.prod(extents), extents[-1]]
            else:
                out += [0, 0, 0]
        return out

    def write_group(self, store: int, name: str, acc_type: int, buffer: Buffer, accesses: list) -> None:
        t = self.t
        group = len(t.group_store)
        buffer_id = self.buffer_ids.get(name)
        if buffer_id is None:
            buffer_id = self.buffer_ids[name] = t.n_buffers
            t.n_buffers += 1
        t.group_store.append(store)
        t.group_buffer.append(buffer_id)
        t.group_access_type.append(acc_type)
        t.group_elem_bytes.append(dt.itemsize(buffer.dtype))
        ndim = len(buffer.shape)
        for d, extent in enumerate(buffer.shape):
            t.group_shape.extend((group, ndim - 1 - d, extent))
        for dims in accesses:
            access = len(t.access_group)
            t.access_group.append(group)
            flat: dict[int, int] = {}
            reads: set[int] = set()
            for d, (terms, const, atoms) in enumerate(dims):
                stride = buffer.strides[d]
                d_inner = ndim - 1 - d
                for k, c in terms.items():
                    loop = self.loops[k]
                    const += c * loop.min
                    t.access_span.extend((access, d_inner, k, c * (loop.extent - 1)))
                    flat[k] = flat.get(k, 0) + c * stride
                    reads.add(k)
                for atom in atoms.values():
                    const += atom.coef * atom.lo
                    if atom.positions:
                        inner = atom.positions[-1]
                        t.access_span.extend((access, d_inner, inner, atom.coef * (atom.hi - atom.lo)))
                        flat[inner] = flat.get(inner, 0) + atom.coef * stride
                        reads.update(atom.positions)
                t.access_const.extend((access, d_inner, const))
            for k in reads:
                t.access_loop.extend((access, k, abs(flat.get(k, 0))))

    # expressions ------------------------------------------------------------------------
    def count(self, e: Expr, counts: list[int], groups: dict[str, list]) -> None:
        """Op counts of ``e`` into ``counts``; buffer reads into ``groups``."""
        rule = _COUNT_RULES.get(type(e))
        if rule is not None:  # no rule: a Const or Var, nothing to count
            rule(self, e, counts, groups)

    def count_children(self, e: Expr, counts: list[int], groups: dict[str, list]) -> None:
        for child in children(e):
            self.count(child, counts, groups)

    def count_load(self, e: BufferLoad, counts: list[int], groups: dict[str, list]) -> None:
        dims = self.dims(e.buffer, e.indices)
        for terms, const, atoms in dims:
            n_items = len(terms) + len(atoms) + (const != 0)
            counts[I_ADDSUB] += max(n_items - 1, 0)
            counts[I_MUL] += sum(1 for c in terms.values() if abs(c) != 1)
            for atom in atoms.values():
                counts[_ATOM_SLOT.get(atom.root, I_OTHER)] += 1
                counts[I_MUL] += abs(atom.coef) != 1
        group = groups.get(e.buffer.name)
        if group is None:
            groups[e.buffer.name] = [ACC_READ, e.buffer, [dims]]
        elif group[0] == ACC_WRITE:
            group[0] = ACC_READ_WRITE  # an update: its indices are the write's
        elif group[0] == ACC_READ:
            group[2].append(dims)

    def count_binary(self, e: Binary, counts: list[int], groups: dict[str, list]) -> None:
        is_float = dt.is_float(e.a.dtype)
        if e.op is BinaryOp.ADD and is_float:
            for mul, other in ((e.a, e.b), (e.b, e.a)):
                if isinstance(mul, Binary) and mul.op is BinaryOp.MUL:
                    counts[F_MAD] += 1
                    self.count(mul.a, counts, groups)
                    self.count(mul.b, counts, groups)
                    self.count(other, counts, groups)
                    return
        if e.op in _BINARY_SLOT:
            counts[_BINARY_SLOT[e.op][0 if is_float else 1]] += 1
        else:
            counts[BOOL_OP] += 1  # && ||
        self.count_children(e, counts, groups)

    def count_compare(self, e: Compare, counts: list[int], groups: dict[str, list]) -> None:
        counts[F_CMP if dt.is_float(e.a.dtype) else I_CMP] += 1
        self.count_children(e, counts, groups)

    def count_not(self, e: Not, counts: list[int], groups: dict[str, list]) -> None:
        counts[BOOL_OP] += 1
        self.count_children(e, counts, groups)

    def count_select(self, e: Select, counts: list[int], groups: dict[str, list]) -> None:
        counts[SELECT_OP] += 1
        self.count_children(e, counts, groups)

    def count_call(self, e: Call, counts: list[int], groups: dict[str, list]) -> None:
        # every intrinsic of ir.expr is a pure math function
        counts[F_MATH if dt.is_float(e.dtype) else I_MATH] += 1
        self.count_children(e, counts, groups)

    def count_cast(self, e: Cast, counts: list[int], groups: dict[str, list]) -> None:
        self.count(e.value, counts, groups)

    def dims(self, buffer: Buffer, indices: tuple[Expr, ...]) -> list[Lin]:
        return self.index.dims(buffer.shape, buffer.strides, indices, buffer.name)


_STMT_RULES: dict[type, Callable[[_Walker, Any], None]] = {
    For: _Walker.visit_for,
    BufferStore: _Walker.visit_store,
    SeqStmt: _Walker.visit_seq,
    LetStmt: _Walker.visit_let,
    Allocate: _Walker.visit_allocate,
    IfThenElse: _Walker.visit_if,
    Barrier: _Walker.visit_barrier,
}

_COUNT_RULES: dict[type, Callable[[_Walker, Any, list[int], dict[str, list]], None]] = {
    BufferLoad: _Walker.count_load,
    Binary: _Walker.count_binary,
    Compare: _Walker.count_compare,
    Not: _Walker.count_not,
    Select: _Walker.count_select,
    Call: _Walker.count_call,
    Cast: _Walker.count_cast,
}
