"""Write each stage down as a loop nest (TVM's ScheduleOps and MakeLoopNest).

Input: bound inference's facts (``BoundInfo``) and the buffer plan. Output: one statement
holding every root stage's nest in stage order, attached stages emitted at their attach
loops, inlined stages already substituted into their consumers' bodies.

One stage's nest, from its leaf iterators outermost first:

* a ``For`` per leaf (kind from the annotation; an extent-1 loop is not emitted), with
  ``pragma_auto_unroll_max_step`` on the stage's outermost emitted loop;
* at the start of a loop's body, the stages attached there, each in its own Allocate
  (compact: the region bound inference found, indices offset by the region's min), with a
  Barrier before and after the fill when the buffer is shared and a GPU thread loop
  encloses it;
* each guard (a non-dividing split, an attached region leaving the domain) just inside the
  deepest loop it reads, so it is tested as early as possible; except that a stage whose
  values live in a compact buffer of its own (a cache stage attached inside a consumer)
  computes its spatial tail instead of testing it, when every such store stays inside the
  buffer: its reads of full-size buffers clamp the overshooting axes to the domain, so the
  extra iterations compute from real data into buffer slots no consumer keeps (the
  consumer's own stores stay guarded). The register tile of a GEMM then runs without a
  branch even when its MR or NR does not divide the extent (BLIS's 6x16 on AVX2), which
  is what lets LLVM keep the accumulators in registers (TVM keeps the guard and relies on
  LoopPartition instead);
* for a reduction, as TVM does: the init store before the outermost reduction loop, inside
  its own loops over the spatial iterators nested deeper, then
  ``acc = combine(acc, source)`` at the innermost level, guarded by the ``where`` condition.
  (When a spatial and a reduction loop were fused, the init instead fills the whole region
  at the top of the nest.)
* for a reduction with a reduction loop bound to ``threadIdx`` (a cross-thread reduction,
  TVM's MakeCrossThreadReduction), the threads of a block split the reduction: each
  accumulates its partial result in its own slot of a shared buffer (its lane), the lanes
  are combined pairwise in ``log2(threads)`` steps with a barrier after each, and lane 0
  stores the result. The statements read the same run one thread after another (the
  interpreter) or all at once (a GPU).

Indices stay multi-dimensional here; ``passes.flatten_indices`` flattens them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ir.expr import (
    Const,
    Expr,
    IterVar,
    Reduce,
    TensorRead,
    TupleReducer,
    Var,
    const,
    free_vars,
    map_children,
    max_expr,
    min_expr,
    substitute,
)
from ir.loop_state.enums import (
    THREAD_AXES,
    THREAD_BINDINGS,
    ComputeAtKind,
    IteratorAnnotation,
    IteratorKind,
    StageKind,
)
from ir.loop_state.state import FuseRelation, Iterator, ScheduleError, SplitRelation, Stage, StorageAlign
from ir.lower.bound import BoundInfo, attached_scope
from ir.lower.passes import map_stmt
from ir.lower.simplify import Simplifier
from ir.te import ComputeOp
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
    Stmt,
    seq,
)

#: loop kind for each annotation (thread axes and vthread bind to a GPU axis)
FOR_KIND: dict[IteratorAnnotation, ForKind] = {
    IteratorAnnotation.NONE: ForKind.SERIAL,
    IteratorAnnotation.UNROLL: ForKind.UNROLLED,
    IteratorAnnotation.VECTORIZE: ForKind.VECTORIZED,
    IteratorAnnotation.PARALLEL: ForKind.PARALLEL,
    IteratorAnnotation.TENSORIZE: ForKind.SERIAL,
    **{a: ForKind.THREAD_BINDING for a in THREAD_BINDINGS},
}


@dataclass(frozen=True)
class BufferPlan:
    """Where every stage's values live."""

    #: the kernel's parameters, one per DAG tensor, in ``dag.tensors`` order
    params: tuple[Buffer, ...]
    #: stage id -> its buffer (placeholders and compute stages with loops)
    buffers: dict[int, Buffer]
    #: stage id -> per-dimension region min, for compact buffers of attached stages
    offsets: dict[int, tuple[Expr, ...]]
    #: full-size allocations of root stages that are not parameters (outermost first)
    root_allocs: tuple[Buffer, ...]
    #: stage id -> buffer allocated at its attach point
    attached_allocs: dict[int, Buffer]
    #: stage id -> one parameter buffer per output, for a tuple reduction's stage
    outputs: dict[int, tuple[Buffer, ...]] = field(default_factory=dict)


def plan_buffers(tensor_names: list[tuple[str, tuple[int, ...], str]], info: BoundInfo) -> BufferPlan:
    """Buffers for ``(name, shape, dtype)`` parameters and for every other stage."""
    stages = info.state.stages
    params = tuple(Buffer(name, shape, dtype) for name, shape, dtype in tensor_names)
    by_name = {b.name: b for b in params}
    buffers: dict[int, Buffer] = {}
    offsets: dict[int, tuple[Expr, ...]] = {}
    root_allocs: list[Buffer] = []
    attached: dict[int, Buffer] = {}
    stage_names = {s.name for s in stages}
    outputs: dict[int, tuple[Buffer, ...]] = {}
    for k, stage in enumerate(stages):
        if stage.op.num_outputs > 1:  # the DAG lists every output of a tuple reduction
            outputs[k] = tuple(by_name[t.name] for t in stage.op.outputs)
            buffers[k] = outputs[k][0]
            stage_names.update(t.name for t in stage.op.outputs)
    for name in by_name:
        if name not in stage_names:
            raise ScheduleError(f"DAG tensor '{name}' is not a stage of the state ({sorted(stage_names)})")
    for k, stage in enumerate(stages):
        if k in outputs:
            continue
        if stage.name in by_name:
            if stage.compute_at is ComputeAtKind.INLINED:
                raise ScheduleError(f"stage '{stage.name}' is an output of the DAG and cannot be inlined")
            buffers[k] = by_name[stage.name]
            continue
        if stage.op_type is StageKind.PLACEHOLDER:
            raise ScheduleError(f"placeholder '{stage.name}' is not among the DAG's tensors")
        if stage.compute_at is ComputeAtKind.INLINED:
            continue
        op = stage.op
        assert isinstance(op, ComputeOp)
        region = info.stages[k].region[: len(op.axis)]
        if stage.compute_at is ComputeAtKind.ROOT:
            shape = op.shape
        else:
            shape = tuple(r.extent for r in region)
            offsets[k] = tuple(r.min for r in region)
        buffer = Buffer(stage.name, shape, op.dtype, storage_scope(info, k), aligned_strides(stage, shape))
        buffers[k] = buffer
        if stage.compute_at is ComputeAtKind.ROOT:
            root_allocs.append(buffer)
        else:
            attached[k] = buffer
    return BufferPlan(params, buffers, offsets, tuple(root_allocs), attached, outputs)


def storage_scope(info: BoundInfo, k: int) -> MemoryScope:
    """Where stage ``k``'s values live: its own scope, or for a stage attached inside GPU
    thread loops the one ``bound.attached_scope`` infers from them."""
    stage = info.state.stages[k]
    if stage.compute_at is not ComputeAtKind.ITER:
        return stage.scope
    enclosing = {info.state.stages[s].iters[j].annotation for s, j in info.stages[k].enclosing}
    return attached_scope(stage.scope, enclosing)


def aligned_strides(stage: Stage, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides, each dimension named by storage_align padded so that
    ``stride % factor == offset`` (TVM StorageFlatten)."""
    aligns: dict[int, StorageAlign] = {}
    for a in stage.storage_align:
        if not 0 <= a.axis < len(shape):
            raise ScheduleError(
                f"storage_align of stage '{stage.name}': axis {a.axis} is outside "
                f"its {len(shape)} dimension(s)"
            )
        if a.factor < 1:
            raise ScheduleError(f"storage_align of stage '{stage.name}': factor {a.factor} must be positive")
        aligns[a.axis] = a
    strides = [0] * len(shape)
    stride = 1
    for d in reversed(range(len(shape))):
        if d in aligns:
            a = aligns[d]
            stride += (a.factor + a.offset - stride % a.factor) % a.factor
        strides[d] = stride
        stride *= shape[d]
    return tuple(strides)


def schedule_ops(info: BoundInfo, plan: BufferPlan) -> Stmt:
    """Every root stage's nest in stage order, inside the root allocations."""
    return _Emitter(info, plan).program()


class _Emitter:
    def __init__(self, info: BoundInfo, plan: BufferPlan):
        self.info = info
        self.plan = plan
        self.stages = info.state.stages
        self.stage_of_op = {id(s.op): k for k, s in enumerate(self.stages)}
        self.attached: dict[tuple[int, int], list[int]] = {}
        for k in info.stages:
            stage = self.stages[k]
            if stage.compute_at is ComputeAtKind.ITER:
                assert stage.attach is not None
                pos = info.stages[k].enclosing[-1]
                self.attached.setdefault(pos, []).append(k)

    def program(self) -> Stmt:
        roots = [k for k in self.info.stages if self.stages[k].compute_at is ComputeAtKind.ROOT]
        body = seq(*(self.stage_nest(k) for k in roots))
        for buffer in reversed(self.plan.root_allocs):
            body = Allocate(buffer, body)
        return body

    # one stage ------------------------------------------------------------------------------
    def stage_nest(self, k: int) -> Stmt:
        return _StageNest(self, k).emit()

    def attached_stages(self, pos: tuple[int, int], rest: Stmt) -> Stmt:
        """The stages attached at loop ``pos``, then ``rest``, inside their allocations."""
        ids = self.attached.get(pos, [])
        if not ids:
            return rest
        parts: list[Stmt] = []
        for a in ids:
            nest = self.stage_nest(a)
            if self._needs_barrier(a):
                nest = seq(Barrier(MemoryScope.SHARED), nest, Barrier(MemoryScope.SHARED))
            parts.append(nest)
        body = seq(*parts, rest)
        for a in reversed(ids):
            if a in self.plan.attached_allocs:
                body = Allocate(self.plan.attached_allocs[a], body)
        return body

    def _needs_barrier(self, k: int) -> bool:
        if storage_scope(self.info, k) is not MemoryScope.SHARED:
            return False
        return any(
            self.stages[s].iters[j].annotation in THREAD_BINDINGS for s, j in self.info.stages[k].enclosing
        )

    # accesses -------------------------------------------------------------------------------
    def access_indices(self, k: int, indices: list[Expr]) -> tuple[Expr, ...]:
        offsets = self.plan.offsets.get(k)
        if offsets is None:
            return tuple(indices)
        return tuple(i - m for i, m in zip(indices, offsets, strict=True))

    def translate(self, e: Expr, k: int, clamped: dict[Var, Expr] | None = None) -> Expr:
        """Stage k's (inlined-expanded) expression over loop variables, reads as loads.

        ``clamped``: axis values kept inside the domain, for the reads of full-size
        buffers of a stage that computes its tail (``_StageNest.tail_axis_values``);
        reads of compact buffers keep the plain values, which their regions cover."""
        plain = self.info.stages[k].axis_values
        reads_full = clamped if clamped is not None else plain

        def visit(node: Expr, values: dict[Var, Expr] = plain) -> Expr:
            if isinstance(node, TensorRead):
                p = self.stage_of_op[id(node.tensor.op)]
                values = plain if p in self.plan.offsets else reads_full
                indices = [visit(i, values) for i in node.indices]
                buffer = self.plan.buffers[p]
                if p in self.plan.outputs:  # output value_index of a tuple reduction
                    buffer = self.plan.outputs[p][node.tensor.value_index]
                return BufferLoad(buffer, self.access_indices(p, indices))
            if isinstance(node, IterVar):
                return values.get(node, node)
            return map_children(node, lambda child: visit(child, values))

        return visit(e)


class _StageNest:
    """The loop nest of one stage (see the module docstring for the layout)."""

    def __init__(self, emitter: _Emitter, k: int):
        self.emitter = emitter
        self.k = k
        self.stage = emitter.stages[k]
        self.bound = emitter.info.stages[k]
        op = self.stage.op
        assert isinstance(op, ComputeOp)
        self.op = op
        self.buffer = emitter.plan.buffers[k]
        body = emitter.info.bodies[k]
        self.reduce = body if isinstance(body, Reduce) else None
        self.body = body
        self.n = len(self.stage.iters)
        kinds = [it.kind for it in self.stage.iters]
        self.spatial = [kind is IteratorKind.SPATIAL for kind in kinds]
        self.mixed = IteratorKind.MIXED in kinds
        self.first_reduce = next((j for j, s in enumerate(self.spatial) if not s), self.n)
        var_depth = {id(v): j for j, v in enumerate(self.bound.loop_vars) if isinstance(v, Var)}
        #: (depth, condition, spatial only): depth = deepest own loop read, -1 for none
        self.guards: list[tuple[int, Expr, bool]] = []
        for g in self.bound.guards:
            depths = [var_depth[id(v)] for v in free_vars(g) if id(v) in var_depth]
            spatial = all(self.spatial[d] for d in depths)
            self.guards.append((max(depths, default=-1), g, spatial))
        #: axis values with the overshooting axes clamped, when the stage computes its tail
        self.clamped = self.tail_axis_values()
        if self.clamped is not None:
            self.guards = [guard for guard in self.guards if not guard[2]]
        self.pragmas = self._loop_annotations()
        #: leaf position of a reduction loop bound to a thread axis (cross-thread reduction)
        self.thread_reduce = next(
            (
                j
                for j, it in enumerate(self.stage.iters)
                if it.kind is IteratorKind.REDUCTION and it.annotation in THREAD_AXES
            ),
            None,
        )
        #: where the update accumulates: the stage's buffers at its output indices, or the
        #: lanes of the shared buffers of a cross-thread reduction
        self.accumulators: tuple[tuple[Buffer, ...], tuple[Expr, ...]] | None = None

    def tail_axis_values(self) -> dict[Var, Expr] | None:
        """The axis values its reads of full-size buffers use when this stage may run the
        iterations its spatial guards would skip; None when it may not.

        It may when its buffer is a compact allocation of its own (not a parameter, not
        shared by GPU threads), its loops do not mix spatial and reduction iterators, and
        every store of every iteration, guarded or not, falls inside that buffer. The axes
        whose values can leave the domain are clamped to it, so those reads stay in
        bounds; only stores into this private buffer change, at slots consumers never read
        for a value they keep."""
        plan = self.emitter.plan
        buffer = plan.attached_allocs.get(self.k)
        if buffer is None or self.mixed or buffer.scope is MemoryScope.SHARED:
            return None
        if not any(spatial for _, _, spatial in self.guards):
            return None
        simp = Simplifier(self.emitter.info.ranges)
        values = self.bound.axis_values
        offsets = plan.offsets[self.k]
        for axis, offset, extent in zip(self.op.axis, offsets, buffer.shape, strict=True):
            lo, hi = simp.bounds(values[axis] - offset)
            if lo < 0 or hi >= extent:
                return None
        clamped = dict(values)
        for axis in self.op.axis:
            first, last = int(axis.dom_min), int(axis.dom_min) + axis.extent - 1
            lo, hi = simp.bounds(values[axis])
            value = values[axis]
            if hi > last:
                value = min_expr(value, const(last, value.dtype))
            if lo < first:
                value = max_expr(value, const(first, value.dtype))
            clamped[axis] = value
        return clamped

    def emit(self) -> Stmt:
        inner = self.level(0, init=False)
        if self.reduce is not None and self.mixed:
            inner = seq(self.full_region_init(), inner)
        return self.guarded(-1, init=False, stmt=inner)

    def level(self, j: int, init: bool) -> Stmt:
        """Statements from leaf position j inward, loops 0..j-1 already open."""
        if j == self.first_reduce and self.reduce is not None and not init and not self.mixed:
            if self.thread_reduce is not None:
                return self.cross_thread_reduction(j)
            return seq(self.init_nest(j), self.level_from(j, init=False))
        return self.level_from(j, init)

    def init_nest(self, j: int) -> Stmt:
        """The init stores from position j inward, over fresh ``<name>.init`` loop
        variables (as TVM names them), so that every variable is bound by one loop."""
        fresh: dict[Var, Expr] = {
            v: Var(f"{v.name}.init", v.dtype)
            for v, spatial in zip(self.bound.loop_vars[j:], self.spatial[j:], strict=True)
            if spatial and isinstance(v, Var)
        }
        return _substitute_stmt(self.level_from(j, init=True), fresh)

    def level_from(self, j: int, init: bool) -> Stmt:
        if j == self.n:
            return self.init_store() if init else self.store()
        inner = self.guarded(j, init, self.level(j + 1, init))
        if init and not self.spatial[j]:
            return inner
        if not init:
            inner = self.emitter.attached_stages((self.k, j), inner)
        var = self.bound.loop_vars[j]
        if not isinstance(var, Var):
            return inner
        it = self.stage.iters[j]
        tag = it.annotation.value if it.annotation in THREAD_BINDINGS else ""
        annotations = {} if init else self.pragmas.get(j, {})
        return For(
            var,
            const(0, "int32"),
            const(self.bound.leaf_extents[j], "int32"),
            FOR_KIND[it.annotation],
            inner,
            tag,
            dict(annotations),
        )

    def guarded(self, depth: int, init: bool, stmt: Stmt) -> Stmt:
        conds = [g for d, g, spatial in self.guards if d == depth and (spatial or not init)]
        if not conds:
            return stmt
        cond = conds[0]
        for c in conds[1:]:
            cond = cond & c
        return IfThenElse(cond, stmt)

    # stores ---------------------------------------------------------------------------------
    def out_indices(self) -> tuple[Expr, ...]:
        values = self.bound.axis_values
        return self.emitter.access_indices(self.k, [values[a] for a in self.op.axis])

    def store(self) -> Stmt:
        indices = self.out_indices()
        if self.reduce is None:
            return BufferStore(self.buffer, self.emitter.translate(self.body, self.k, self.clamped), indices)
        buffers: tuple[Buffer, ...] = self.emitter.plan.outputs.get(self.k) or (self.buffer,)
        if self.accumulators is not None:
            buffers, indices = self.accumulators
        if self.reduce.is_tuple:
            return self.tuple_store(buffers, indices)
        (buffer,) = buffers
        source = self.emitter.translate(self.reduce.source, self.k, self.clamped)
        acc = BufferLoad(buffer, indices)
        update: Stmt = BufferStore(buffer, self.reduce.reducer.combine(acc, source), indices)
        if self.reduce.condition is not None:
            update = IfThenElse(self.emitter.translate(self.reduce.condition, self.k, self.clamped), update)
        return update

    def tuple_store(self, buffers: tuple[Buffer, ...], indices: tuple[Expr, ...]) -> Stmt:
        """A tuple reduction's update: every new value computed from the old ones, then
        stored (``let v0 = c0(..) in let v1 = c1(..) in B0[..] = v0; B1[..] = v1``)."""
        assert self.reduce is not None
        translate = self.emitter.translate
        sources = tuple(translate(s, self.k, self.clamped) for s in self.reduce.sources)
        update = self.combine_into(buffers, indices, sources)
        if self.reduce.condition is not None:
            update = IfThenElse(self.emitter.translate(self.reduce.condition, self.k, self.clamped), update)
        return update

    def combine_into(
        self, buffers: tuple[Buffer, ...], indices: tuple[Expr, ...], others: tuple[Expr, ...]
    ) -> Stmt:
        """``buffers[..][indices] = combine(their values, others)`` for a tuple reducer:
        every new value computed from the old ones before any is stored."""
        assert self.reduce is not None and isinstance(self.reduce.reducer, TupleReducer)
        dtypes = tuple(s.dtype for s in self.reduce.sources)
        xs, ys, combined = self.reduce.reducer.combine_exprs(dtypes)
        mapping: dict[Var, Expr] = {x: BufferLoad(b, indices) for x, b in zip(xs, buffers, strict=True)}
        mapping.update(dict(zip(ys, others, strict=True)))
        temps = [Var(f"{self.stage.name}.v{n}.next", d) for n, d in enumerate(dtypes)]
        update = seq(*(BufferStore(b, t, indices) for b, t in zip(buffers, temps, strict=True)))
        for temp, value in reversed(list(zip(temps, combined, strict=True))):
            update = LetStmt(temp, substitute(value, mapping), update)
        return update

    def identity_stores(self, indices: tuple[Expr, ...], buffers: tuple[Buffer, ...] | None = None) -> Stmt:
        """The reducer's identity stored at ``indices`` (in every output's buffer, or in
        ``buffers``)."""
        assert self.reduce is not None
        buffers = buffers or (self.emitter.plan.outputs.get(self.k) or (self.buffer,))
        if not self.reduce.is_tuple:
            (buffer,) = buffers
            return BufferStore(buffer, self.reduce.reducer.identity(self.reduce.dtype), indices)
        assert isinstance(self.reduce.reducer, TupleReducer)
        identity = self.reduce.reducer.identity_tuple(tuple(s.dtype for s in self.reduce.sources))
        return seq(*(BufferStore(b, e, indices) for b, e in zip(buffers, identity, strict=True)))

    # cross-thread reduction ------------------------------------------------------------------
    def cross_thread_reduction(self, j: int) -> Stmt:
        """The reduction loops from position ``j`` inward, split over the threads of the
        loop bound at ``self.thread_reduce`` (module docstring): lanes set to the identity,
        each thread's partial result accumulated in its lane, a tree of pairwise combines,
        lane 0's value stored. Barriers separate the phases, so every thread of the block
        must reach this code: the threads split the reduction, never the outputs."""
        assert self.reduce is not None and self.thread_reduce is not None
        position = self.thread_reduce
        it = self.stage.iters[position]
        lane_var = self.bound.loop_vars[position]
        if any(
            self.stages_iter(s, i).annotation in THREAD_AXES and (s, i) != (self.k, position)
            for s, i in (*self.bound.enclosing, *((self.k, p) for p in range(self.n)))
        ):
            raise ScheduleError(
                f"stage '{self.stage.name}': a cross-thread reduction over {it.name} needs the block's "
                "other thread axes unbound (its outputs run one after another in the block)"
            )
        lanes = self.bound.leaf_extents[position]
        tag = it.annotation.value
        dtypes = tuple(s.dtype for s in self.reduce.sources) if self.reduce.is_tuple else (self.reduce.dtype,)
        red = tuple(
            Buffer(f"{self.stage.name}.red_buf{n}", (lanes,), d, MemoryScope.SHARED)
            for n, d in enumerate(dtypes)
        )

        def each_lane(body: Callable[[Var], Stmt]) -> Stmt:
            v = Var(f"{self.stage.name}.lane", "int32")
            return For(v, const(0, "int32"), const(lanes, "int32"), ForKind.THREAD_BINDING, body(v), tag)

        def combine_lanes(offset: int, active: int) -> Stmt:
            """Lanes ``v < active`` take in lane ``v + offset``."""

            def step(v: Var) -> Stmt:
                assert self.reduce is not None
                others = tuple(BufferLoad(b, (v + offset,)) for b in red)
                if self.reduce.is_tuple:
                    update = self.combine_into(red, (v,), others)
                else:
                    acc = BufferLoad(red[0], (v,))
                    update = BufferStore(red[0], self.reduce.reducer.combine(acc, others[0]), (v,))
                return IfThenElse(v < active, update)

            return seq(each_lane(step), Barrier(MemoryScope.SHARED))

        self.accumulators = (red, (lane_var,))
        partial = self.level_from(j, init=False)
        self.accumulators = None
        phases: list[Stmt] = [
            Barrier(MemoryScope.SHARED),
            each_lane(lambda v: self.identity_stores((v,), red)),
            partial,
            Barrier(MemoryScope.SHARED),
        ]
        power = 1 << (lanes.bit_length() - 1)
        if power < lanes:  # fold the lanes beyond the largest power of two first
            phases.append(combine_lanes(power, lanes - power))
        offset = power // 2
        while offset >= 1:
            phases.append(combine_lanes(offset, offset))
            offset //= 2
        out = self.out_indices()
        outputs = self.emitter.plan.outputs.get(self.k) or (self.buffer,)
        result = seq(
            *(
                BufferStore(o, BufferLoad(b, (const(0, "int32"),)), out)
                for o, b in zip(outputs, red, strict=True)
            )
        )
        phases += [each_lane(lambda v: IfThenElse(v == 0, result)), Barrier(MemoryScope.SHARED)]
        body = seq(*phases)
        for buffer in reversed(red):
            body = Allocate(buffer, body)
        return body

    def stages_iter(self, stage_id: int, position: int) -> Iterator:
        return self.emitter.stages[stage_id].iters[position]

    def init_store(self) -> Stmt:
        return self.identity_stores(self.out_indices())

    def full_region_init(self) -> Stmt:
        """Identity over the stage's whole region, for nests whose loops mix spatial and
        reduction iterators (no single place to put a per-element init)."""
        assert self.reduce is not None
        region = self.bound.region
        loop_vars = [Var(f"{self.stage.name}.{a.name}.init", "int32") for a in self.op.axis]
        values = [r.min + v for r, v in zip(region, loop_vars, strict=False)]
        stmt: Stmt = self.identity_stores(self.emitter.access_indices(self.k, values))
        conds = [
            c
            for a, r, value in zip(self.op.axis, region, values, strict=False)
            if not (isinstance(r.min, Const) and r.min.value == a.dom_min and r.extent == a.extent)
            for c in (value >= a.dom_min, value < a.dom_min + a.extent)
        ]
        if conds:
            cond = conds[0]
            for c in conds[1:]:
                cond = cond & c
            stmt = IfThenElse(cond, stmt)
        for v, r in reversed(list(zip(loop_vars, region, strict=False))):
            stmt = For(v, const(0, "int32"), const(r.extent, "int32"), ForKind.SERIAL, stmt)
        return stmt

    def _loop_annotations(self) -> dict[int, dict[str, object]]:
        """Pragmas per leaf position: auto_unroll on the outermost emitted loop, others
        (``name`` or ``name$value``) on their iterator's loop."""
        result: dict[int, dict[str, object]] = {}
        emitted = [j for j, v in enumerate(self.bound.loop_vars) if isinstance(v, Var)]
        if self.stage.auto_unroll_max_step and emitted:
            result.setdefault(emitted[0], {})["pragma_auto_unroll_max_step"] = self.stage.auto_unroll_max_step
        for iter_name, pragma in self.stage.pragmas:
            j = self.stage.iter_index(_leaf_of(self.stage, iter_name))
            key, _, value = pragma.partition("$")
            parsed: object = int(value) if value.lstrip("-").isdigit() else (value or 1)
            result.setdefault(j, {})[f"pragma_{key}"] = parsed
        return result


def _substitute_stmt(s: Stmt, mapping: dict[Var, Expr]) -> Stmt:
    """``s`` with variables replaced everywhere, loop variables included."""
    if isinstance(s, For):
        var = mapping.get(s.loop_var, s.loop_var)
        assert isinstance(var, Var)
        return For(
            var, s.min, s.extent, s.kind, _substitute_stmt(s.body, mapping), s.thread_tag, dict(s.annotations)
        )
    return map_stmt(s, lambda c: _substitute_stmt(c, mapping), lambda e: substitute(e, mapping))


def _leaf_of(stage: Stage, name: str) -> str:
    """The leaf iterator that now carries iterator ``name``: itself, or following later
    relations, the outermost split child or the fused iterator."""
    for rel in stage.relations:
        if isinstance(rel, SplitRelation) and rel.parent == name:
            name = rel.children[0]
        elif isinstance(rel, FuseRelation) and name in rel.parents:
            name = rel.fused
    return name
