"""Bound inference: the extent of every loop of a loop state (TVM's InferBound).

Ansor's loop state leaves iterator ranges unknown after ``compute_at`` (paper section 4.1;
TVM ``ComputeDAG::InferBound``); this pass fills them, and records what lowering needs to
write the loops down:

1. *Regions.* A root stage computes its whole domain. A stage attached at loop ``it`` of
   stage T computes, per iteration of the loops down to ``it``, the region its consumers
   read then: each consumer's index expressions are analysed with the loops inside the
   attach point relaxed over their extents and those outside fixed (``region.py``).
   The region's min is an expression of the outer loop variables; its extent is constant.
   Consumers are the stages whose body reads the stage, with inlined stages substituted.
2. *Relations.* Root extents flow to the leaves: split children take their lengths (the
   remainder child ``ceil(parent / product of the others)``), cut to the trips the
   parent needs (an attached stage's outer split loops run once per consumer tile), and a
   fused iterator takes the product.
3. *Axis values.* Going back through the relations, every op axis becomes an expression
   of the loop variables: ``after split(i, [f]): i == i.0 * f + i.1``, and for
   ``fuse(i, j)``: ``i == f // ext(j)``, ``j == f % ext(j)``; plus the region's min.
4. *Guards.* Where a split does not divide, ``axis < extent`` must guard the body; where an
   attached region may leave the op's domain, ``dom_min <= axis < dom_end`` must too.

Extent-1 loops (not bound to a GPU axis) get the constant 0 instead of a variable, so they
vanish from every expression and are not emitted.

Speed: the search infers the bounds of every candidate it breeds (thousands per round),
then extracts features from the same facts, so it keeps them in a ``BoundCache`` it owns
and passes to every call (bound inference, lowering, feature extraction); and the hot
paths skip building expression trees that the simplifier would only take apart again:
axis values and consumer indices are built as the simplifier's linear forms, with the
simplifier's own rules.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, overload

from ir.expr import (
    Binary,
    BinaryOp,
    CompareOp,
    Const,
    Expr,
    IterVar,
    Reduce,
    TensorRead,
    Var,
    const,
    map_children,
    post_order,
    substitute,
)
from ir.loop_state.api import State
from ir.loop_state.enums import (
    BLOCK_AXES,
    THREAD_AXES,
    THREAD_BINDINGS,
    ComputeAtKind,
    IteratorAnnotation,
    StageKind,
)
from ir.loop_state.state import FuseRelation, Iterator, LoopState, Range, ScheduleError, SplitRelation, Stage
from ir.lower.region import SymRange, sym_interval_linear, union
from ir.lower.simplify import Linear, Simplifier, linear_to_expr
from ir.te import ComputeOp
from ir.tir import MemoryScope

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG

#: a loop of the program: (stage id, index of the leaf iterator in that stage)
LoopPos = tuple[int, int]


@dataclass(frozen=True)
class StageBound:
    """What bound inference knows about one compute stage that has loops."""

    stage_id: int
    #: per leaf iterator: its loop Var, or Const 0 for a dropped extent-1 loop
    loop_vars: tuple[Expr, ...]
    leaf_extents: tuple[int, ...]
    #: per root iterator (op.axis then op.reduce_axis): values computed per attach instance
    region: tuple[SymRange, ...]
    #: op axis (an IterVar) -> its value as an expression of the loop variables
    axis_values: dict[Var, Expr]
    #: conditions that must hold for the body to run (non-dividing splits, domain edges)
    guards: tuple[Expr, ...]
    #: loops enclosing this stage's nest, outermost first
    enclosing: tuple[LoopPos, ...]


@dataclass(frozen=True)
class BoundInfo:
    """Result of bound inference: the filled state and the per-stage facts."""

    state: LoopState
    stages: dict[int, StageBound]
    #: every loop Var -> (min, extent)
    ranges: dict[Var, tuple[int, int]]
    #: stage id -> its op body with inlined stages substituted (compute stages with loops)
    bodies: dict[int, Expr]

    def loop_var(self, pos: LoopPos) -> Expr:
        return self.stages[pos[0]].loop_vars[pos[1]]


def infer_bound(dag: ComputeDAG | None, state: LoopState, cache: BoundCache | None = None) -> LoopState:
    """``state`` with every iterator's Range filled (see the module docstring).

    ``dag`` is taken for TVM's signature; the stages carry their ops (from the state's
    current DAG once cache steps or rfactor added stages), so it may be None. ``cache``:
    see ``infer_bound_with_regions``."""
    return infer_bound_with_regions(dag, state, cache).state


@overload
def infer_bound_from_state(dag: ComputeDAG, state: State, cache: BoundCache | None = None) -> State: ...


@overload
def infer_bound_from_state(
    dag: ComputeDAG, state: LoopState, cache: BoundCache | None = None
) -> LoopState: ...


def infer_bound_from_state(
    dag: ComputeDAG, state: State | LoopState, cache: BoundCache | None = None
) -> State | LoopState:
    """``state`` with every iterator's range filled by bound inference (TVM's
    ``ComputeDAG.infer_bound_from_state``); a State handle in gives a new State handle on
    ``dag`` out, a LoopState gives a LoopState."""
    if isinstance(state, LoopState):
        return infer_bound(dag, state, cache)
    return State(dag, infer_bound(dag, state.loop_state, cache))


def infer_bound_with_regions(
    dag: ComputeDAG | None, state: LoopState, cache: BoundCache | None = None
) -> BoundInfo:
    """Bound inference keeping the symbolic regions, loop variables and guards.

    With a ``cache``, the facts of ``state`` and of the bound state returned are kept in
    it, so a later call on either (lowering or feature extraction of a candidate the search
    has bound) costs a lookup. The dicts of the result may then be shared between calls:
    read them, never change them."""
    facts = cache.facts(state.stages) if cache is not None else None
    if facts is None:
        facts = _BoundInference(state, cache).run()
        if cache is not None:
            cache.put(state.stages, facts)
    bound_state = state if facts.filled is state.stages else replace(state, stages=facts.filled)
    return BoundInfo(bound_state, facts.stages, facts.ranges, facts.bodies)


@dataclass(frozen=True)
class BoundFacts:
    """Everything bound inference derives from a state's stages (see BoundInfo)."""

    #: the stages with every iterator's Range filled
    filled: tuple[Stage, ...]
    stages: dict[int, StageBound]
    ranges: dict[Var, tuple[int, int]]
    bodies: dict[int, Expr]


class BoundCache:
    """Bound inference's results for the states of a search, owned and passed in by the
    caller that infers, lowers and extracts features of many states.

    The facts depend on a state's stages alone, so they are found by the identity of its
    ``stages`` tuple (each entry holds its tuple, so that no other tuple can take its id);
    ``put`` enters the bound stages too. The reads of each op's body are kept as well: the
    states of one DAG share their ops. The oldest entries are dropped past ``max_entries``.
    Every entry is a pure function of its key, so a cache never changes a result.
    """

    def __init__(self, max_entries: int = 8192):
        if max_entries < 1:
            raise ValueError(f"BoundCache: max_entries {max_entries} must be >= 1")
        self.max_entries = max_entries
        self._facts: OrderedDict[int, tuple[tuple[Stage, ...], BoundFacts]] = OrderedDict()
        self._reads: OrderedDict[int, tuple[ComputeOp, list[TensorRead]]] = OrderedDict()

    def __len__(self) -> int:
        """The number of stage tuples whose facts are kept."""
        return len(self._facts)

    def clear(self) -> None:
        self._facts.clear()
        self._reads.clear()

    def facts(self, stages: tuple[Stage, ...]) -> BoundFacts | None:
        entry = self._facts.get(id(stages))
        return entry[1] if entry is not None and entry[0] is stages else None

    def put(self, stages: tuple[Stage, ...], facts: BoundFacts) -> None:
        """Keep ``facts`` for ``stages`` and for the bound stages ``facts.filled``."""
        for key in (stages, facts.filled):
            self._facts[id(key)] = (key, facts)
            self._facts.move_to_end(id(key))
        while len(self._facts) > self.max_entries:
            self._facts.popitem(last=False)

    def op_reads(self, op: ComputeOp) -> list[TensorRead]:
        """The tensor reads of ``op``'s body (do not change the list)."""
        entry = self._reads.get(id(op))
        if entry is None or entry[0] is not op:
            entry = self._reads[id(op)] = (op, _reads(op.body))
            while len(self._reads) > self.max_entries:
                self._reads.popitem(last=False)
        return entry[1]


#: (relaxed loop variables and ranges, the consumer's reads, memo of linear forms by id)
_ConsumerView = tuple[dict[Var, tuple[int, int]], list[TensorRead], dict[int, Linear]]


def _substituted_linear(
    e: Expr, values: dict[Var, Expr], memo: dict[int, Linear], simp: Simplifier
) -> Linear:
    """``simp.linear(substitute(e, values))`` without building the substituted tree: for
    ``+``, ``-`` and ``*`` the simplifier's own rules combine the parts' linear forms (so
    the result is the same), a substituted variable's form is computed once (``memo``, by
    id of the variable), and any other node is substituted and simplified whole."""
    if isinstance(e, Var):
        value = values.get(e)
        if value is None:
            return simp.linear(e)
        lin = memo.get(id(e))
        if lin is None:
            lin = memo[id(e)] = simp.linear(value)
        return lin
    if isinstance(e, Const):
        return simp.linear(e)
    if isinstance(e, Binary) and e.op in (BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL):
        a = _substituted_linear(e.a, values, memo, simp)
        b = _substituted_linear(e.b, values, memo, simp)
        if e.op is BinaryOp.MUL:
            if b.is_const():
                return a.scale(b.const)
            if a.is_const():
                return b.scale(a.const)
        else:
            return simp.merge_divmod(a.add(b, 1 if e.op is BinaryOp.ADD else -1))
    return simp.linear(substitute(e, values))


class _BoundInference:
    def __init__(self, state: LoopState, cache: BoundCache | None):
        self.state = state
        self.cache = cache
        self.stage_of_op = {id(s.op): k for k, s in enumerate(state.stages)}
        self.looped = [
            k
            for k, s in enumerate(state.stages)
            if s.op_type is StageKind.COMPUTE and s.compute_at is not ComputeAtKind.INLINED
        ]
        self.bodies: dict[int, Expr] = {}
        #: stage id -> the tensor reads of its body (inlined stages substituted)
        self.reads: dict[int, list[TensorRead]] = {}
        for k in self.looped:
            self.bodies[k], self.reads[k] = self._expanded_body(k)
        self.consumers: dict[int, list[int]] = {k: [] for k in range(len(state.stages))}
        for k in self.looped:
            for p in sorted({self.stage_of_op[id(r.tensor.op)] for r in self.reads[k]}):
                self.consumers[p].append(k)
        self.bounds: dict[int, StageBound] = {}
        #: stage id -> extent of each of its iterators (root, intermediate, leaf) by name
        self.extents: dict[int, dict[str, int]] = {}
        self.ranges: dict[Var, tuple[int, int]] = {}
        self._views: dict[tuple[int, int], _ConsumerView] = {}
        self.loop_names = _unique_loop_names(state, self.looped)

    def run(self) -> BoundFacts:
        for k in self._order():
            self.bounds[k] = self._infer_stage(k)
        stages = list(self.state.stages)
        for k in self.bounds:
            stages[k] = _with_ranges(stages[k], self.extents[k])
        return BoundFacts(tuple(stages), dict(sorted(self.bounds.items())), self.ranges, self.bodies)

    # inlining -------------------------------------------------------------------------------
    def _expanded_body(self, stage_id: int) -> tuple[Expr, list[TensorRead]]:
        """The op body with reads of inlined stages replaced by their bodies, and its reads
        (the body itself when it reads no inlined stage, as most do)."""
        stages = self.state.stages
        op = stages[stage_id].op
        assert isinstance(op, ComputeOp)
        reads = self.cache.op_reads(op) if self.cache is not None else _reads(op.body)
        producers = [self.stage_of_op.get(id(r.tensor.op)) for r in reads]
        if all(p is not None and stages[p].compute_at is not ComputeAtKind.INLINED for p in producers):
            return op.body, reads

        def visit(node: Expr) -> Expr:
            if isinstance(node, TensorRead):
                producer_id = self.stage_of_op.get(id(node.tensor.op))
                if producer_id is None:
                    raise ScheduleError(
                        f"stage '{stages[stage_id].name}' reads '{node.tensor.name}', "
                        "which is not a stage of the state"
                    )
                producer = stages[producer_id]
                if producer.compute_at is ComputeAtKind.INLINED:
                    op = producer.op
                    assert isinstance(op, ComputeOp)
                    if isinstance(op.body, Reduce):
                        raise ScheduleError(f"stage '{op.name}' is a reduction and cannot be inlined")
                    indices = [visit(i) for i in node.indices]
                    return visit(substitute(op.body, dict(zip(op.axis, indices, strict=True))))
            return map_children(node, visit)

        body = visit(op.body)
        return body, _reads(body)

    # order: a stage after its consumers and after the stage it is attached to -------------
    def _order(self) -> list[int]:
        order: list[int] = []
        state_of: dict[int, str] = {}

        def visit(k: int) -> None:
            if state_of.get(k) == "done":
                return
            if state_of.get(k) == "active":
                raise ScheduleError(
                    f"stage '{self.state.stages[k].name}' is attached inside its own consumers (a cycle)"
                )
            state_of[k] = "active"
            stage = self.state.stages[k]
            if stage.compute_at is ComputeAtKind.ITER:
                assert stage.attach is not None
                target = self.state.stages[stage.attach.stage_id]
                if target.op_type is not StageKind.COMPUTE or target.compute_at is ComputeAtKind.INLINED:
                    raise ScheduleError(
                        f"stage '{stage.name}' is attached to '{target.name}', which has no loops"
                    )
                visit(stage.attach.stage_id)
                for c in self.consumers[k]:
                    visit(c)
            state_of[k] = "done"
            order.append(k)

        for k in self.looped:
            visit(k)
        return order

    # one stage -------------------------------------------------------------------------------
    def _infer_stage(self, k: int) -> StageBound:
        stage = self.state.stages[k]
        op = stage.op
        assert isinstance(op, ComputeOp)
        axes = op.axis + op.reduce_axis
        enclosing = self._enclosing(k)
        simp = Simplifier(self.ranges)
        if stage.compute_at is ComputeAtKind.ITER:
            region = tuple(
                self._consumer_region(k, d, enclosing[-1], simp) if d < len(op.axis) else _full(axis)
                for d, axis in enumerate(axes)
            )
        else:
            region = tuple(_full(axis) for axis in axes)
        extents = _propagate_extents(stage, [r.extent for r in region])
        leaf_extents = tuple(extents[it.name] for it in stage.iters)
        loop_vars = tuple(
            self._loop_var(it, e, self.loop_names[k, j])
            for j, (it, e) in enumerate(zip(stage.iters, leaf_extents, strict=True))
        )
        self.extents[k] = extents
        simp = Simplifier(self.ranges)
        offsets, guards = _axis_offsets(stage, extents, loop_vars, simp)
        # simplify(r.min + offset), computed on the linear forms
        axis_values: dict[Var, Expr] = {
            axis: linear_to_expr(simp.merge_divmod(simp.linear(r.min).add(offsets[root.name])))
            for axis, r, root in zip(axes, region, stage.root_iters, strict=True)
        }
        if stage.compute_at is ComputeAtKind.ITER:
            guards += self._domain_guards(op, axis_values, region, simp)
        kept = tuple(g for g in guards if not (isinstance(g, Const) and g.value))
        return StageBound(k, loop_vars, leaf_extents, region, axis_values, kept, enclosing)

    def _enclosing(self, k: int) -> tuple[LoopPos, ...]:
        stage = self.state.stages[k]
        if stage.compute_at is not ComputeAtKind.ITER:
            return ()
        assert stage.attach is not None
        target_id = stage.attach.stage_id
        target = self.state.stages[target_id]
        index = next((j for j, it in enumerate(target.iters) if it.name == stage.attach.iter_name), None)
        if index is None:
            raise ScheduleError(
                f"stage '{stage.name}' is attached at iterator '{stage.attach.iter_name}' of stage "
                f"'{target.name}', which has no such iterator; its iterators are "
                f"{[it.name for it in target.iters]}"
            )
        return self.bounds[target_id].enclosing + tuple((target_id, j) for j in range(index + 1))

    def _loop_var(self, it: Iterator, extent: int, name: str) -> Expr:
        if extent == 1 and it.annotation not in THREAD_BINDINGS:
            return Const(0, "int32")  # const(0, "int32") without its checks (a hot path)
        var = Var(name, "int32")
        self.ranges[var] = (0, extent)
        return var

    def _consumer_region(self, k: int, dim: int, attach: LoopPos, simp: Simplifier) -> SymRange:
        """Union over consumers and their reads of the values of index ``dim`` of stage k."""
        stage = self.state.stages[k]
        op = stage.op
        assert isinstance(op, ComputeOp)
        result: SymRange | None = None
        for c in self.consumers[k]:
            relaxed, reads, memo = self._consumer_view(k, c, attach)
            axis_values = self.bounds[c].axis_values
            for read in reads:
                index = _substituted_linear(read.indices[dim], axis_values, memo, simp)
                found = sym_interval_linear(index, relaxed, simp)
                if found is None:
                    return _full(op.axis[dim])
                result = found if result is None else union(result, found, simp)
                if result is None:
                    return _full(op.axis[dim])
        if result is None:
            raise ScheduleError(f"stage '{stage.name}' is attached but no stage reads it")
        axis = op.axis[dim]
        if result.extent >= axis.extent:
            return _full(axis)
        return result

    def _consumer_view(self, k: int, c: int, attach: LoopPos) -> _ConsumerView:
        """For stage k attached at ``attach`` and its consumer c: the loop variables relaxed
        while c reads k (those inside the attach point, and GPU axes the buffer is shared
        across) with their ranges, c's reads of k, and an empty memo of the linear forms
        of c's axis values. The same for every dimension of k, so computed once per (k, c)."""
        if (k, c) in self._views:
            return self._views[k, c]
        stage = self.state.stages[k]
        consumer = self.bounds[c]
        loops = consumer.enclosing + tuple((c, j) for j in range(len(consumer.loop_vars)))
        if attach not in loops:
            where = self.state.stages[attach[0]].iters[attach[1]].name
            raise ScheduleError(
                f"stage '{stage.name}' is attached at '{where}' of stage "
                f"'{self.state.stages[attach[0]].name}', but its consumer "
                f"'{self.state.stages[c].name}' is not computed inside that loop"
            )
        at = loops.index(attach)
        outside = {self.state.stages[s].iters[j].annotation for s, j in loops[: at + 1]}
        scope = attached_scope(stage.scope, outside)
        relaxed = {}
        for position, pos in enumerate(loops):
            var = self.bounds[pos[0]].loop_vars[pos[1]]
            annotation = self.state.stages[pos[0]].iters[pos[1]].annotation
            if isinstance(var, Var) and (position > at or _shared_across(scope, annotation)):
                relaxed[var] = self.ranges[var]
        reads = [read for read in self.reads[c] if read.tensor.op is stage.op]
        self._views[k, c] = (relaxed, reads, {})
        return self._views[k, c]

    def _domain_guards(
        self, op: ComputeOp, axis_values: dict[Var, Expr], region: tuple[SymRange, ...], simp: Simplifier
    ) -> list[Expr]:
        """``dom_min <= axis < dom_end`` for attached regions that may leave the domain.

        The split guards already keep each axis inside its region, so only a region
        whose [min, min + extent) can cross the domain's edge needs one."""
        guards: list[Expr] = []
        for axis, r in zip(op.axis, region, strict=False):
            lo, hi = simp.bounds(r.min)
            if lo < axis.dom_min:
                guards.append(axis_values[axis] >= axis.dom_min)
            if hi + r.extent > axis.dom_min + axis.extent:
                guards.append(axis_values[axis] < axis.dom_min + axis.extent)
        return guards


def _unique_loop_names(state: LoopState, looped: list[int]) -> dict[LoopPos, str]:
    """A distinct name per loop of the program: the iterator's name, suffixed ``_1``,
    ``_2``, ... when an earlier stage (in stage order) already used it."""
    names: dict[LoopPos, str] = {}
    used: set[str] = set()
    for k in looped:
        for j, it in enumerate(state.stages[k].iters):
            name, n = it.name, 0
            while name in used:
                n += 1
                name = f"{it.name}_{n}"
            used.add(name)
            names[k, j] = name
    return names


#: TVM's storage ranks and thread ranks: a buffer of storage rank s is shared by all the
#: threads of a GPU axis of thread rank t when s <= t, so its region covers all of them
STORAGE_RANK = {MemoryScope.GLOBAL: 0, MemoryScope.SHARED: 1, MemoryScope.LOCAL: 3}
THREAD_RANK = {a: 0 if a.value.startswith("blockIdx") else 1 for a in THREAD_BINDINGS}


def attached_scope(scope: MemoryScope, enclosing: set[IteratorAnnotation]) -> MemoryScope:
    """Where an attached stage's values live, given the annotations of the loops around its
    attach point. A cache stage says so itself; a stage left in global scope takes the
    scope of the innermost GPU binding around it, as TVM infers it: under ``threadIdx``
    each thread computes its own copy (``local``), under ``blockIdx`` alone the block's
    threads compute one copy together (``shared``)."""
    if scope is not MemoryScope.GLOBAL:
        return scope
    if enclosing & THREAD_AXES:
        return MemoryScope.LOCAL
    if enclosing & BLOCK_AXES:
        return MemoryScope.SHARED
    return MemoryScope.GLOBAL


def _shared_across(scope: MemoryScope, annotation: IteratorAnnotation) -> bool:
    """Whether a loop bound to a GPU axis outside the attach point is still relaxed
    (TVM ``NeedRelax``): a shared buffer covers every threadIdx, a global one every
    blockIdx too, a local one is private to its thread."""
    return annotation in THREAD_RANK and STORAGE_RANK[scope] <= THREAD_RANK[annotation]


def _reads(body: Expr) -> list[TensorRead]:
    return [n for n in post_order(body) if isinstance(n, TensorRead)]


def _full(axis: IterVar) -> SymRange:
    return SymRange(Const(int(axis.dom_min), "int32"), axis.extent)


def _propagate_extents(stage: Stage, root_extents: list[int]) -> dict[str, int]:
    """Extent of every iterator (root, intermediate, leaf) from the root extents.

    A split child takes its length, the remainder child ``ceil(parent / product of the
    others)``, and then only the trips its parent needs (TVM ``PassDownDomain``, which
    tightens a split's factor to ``min(parent extent, factor)``): child k, whose values are
    multiplied by the stride ``s_k = prod_{m > k} extent(child m)``, must reach values below
    ``parent`` only, so its extent is ``min(extent, ceil(parent / s_k))``. That matters for a
    stage attached at a consumer (rule "multi-level tiling with fusion"): its split lengths
    were chosen for the whole domain, its root extents are the region of one consumer tile,
    and its outer split loops need one trip each. Tightening child k makes
    ``parent < s_k * extent(child k) = s_{k-1}``, so every child outside it gets extent 1
    and the strides of the loops that remain are unchanged. (For a split given outer
    extents, TVM's nparts, this cuts more than TVM's ``min(parent extent, nparts)``: 12 in
    7 parts of 2 runs 6.) A loop bound to a GPU axis, and
    every iterator it comes from, keeps its length (as in TVM: the thread extents are the
    launch's; its stride, the product of the extents inside it, may then shrink, which the
    guard below keeps correct); a parent of extent 0 is left alone. A split whose extents
    still overshoot its parent (a non-dividing tail) keeps its guard (``_axis_offsets``).

    The fused iterator's extent is the product of its parents'."""
    extents = {root.name: e for root, e in zip(stage.root_iters, root_extents, strict=True)}
    pinned = _thread_bound(stage)
    for rel in stage.relations:
        if isinstance(rel, SplitRelation):
            parent = extents[rel.parent]
            known = 1
            for index, length in enumerate(rel.lengths):
                if index == rel.remainder_index:
                    continue
                if length is None or length < 1:
                    raise ScheduleError(
                        f"cannot infer bounds of stage '{stage.name}': split of '{rel.parent}' has length "
                        f"{length} for '{rel.children[index]}' (lengths must be filled and positive)"
                    )
                known *= length
            stride = 1
            for index in reversed(range(len(rel.children))):
                child = rel.children[index]
                length = rel.lengths[index]
                extent = -(-parent // known) if index == rel.remainder_index else int(length or 0)
                if parent > 0 and child not in pinned:
                    extents[child] = min(extent, -(-parent // stride))
                else:
                    extents[child] = extent
                stride *= extent
        else:
            extents[rel.fused] = math.prod(extents[p] for p in rel.parents)
    return extents


def _thread_bound(stage: Stage) -> frozenset[str]:
    """The iterators whose extent a GPU binding fixes: the leaves bound to a thread axis
    and, going back through the relations, every iterator they come from (TVM
    ``PassUpThreadBinding``: a split's parent when a child is bound, a fused iterator's
    parents when it is)."""
    bound = {it.name for it in stage.iters if it.annotation in THREAD_BINDINGS}
    if not bound:
        return frozenset()
    for rel in reversed(stage.relations):
        if isinstance(rel, SplitRelation):
            if any(child in bound for child in rel.children):
                bound.add(rel.parent)
        elif rel.fused in bound:
            bound.update(rel.parents)
    return frozenset(bound)


def _axis_offsets(
    stage: Stage, extents: dict[str, int], loop_vars: tuple[Expr, ...], simp: Simplifier
) -> tuple[dict[str, Linear], list[Expr]]:
    """Each root iterator's value from the loop variables, going back through the
    relations, and the simplified guards of non-dividing splits (``parent < extent``).

    The values are the simplifier's linear forms of the expressions the relations define
    (``after split(i, [f]): i == i.0 * f + i.1``; for ``fuse(i, j)``: ``i == f // ext(j)``,
    ``j == f % ext(j)``), built directly with the simplifier's own rules for ``+``,
    ``*`` by a constant, ``//`` and ``%`` (a hot path: no expression tree is built and
    then taken apart again)."""
    values: dict[str, Linear] = {
        it.name: simp.linear(v) for it, v in zip(stage.iters, loop_vars, strict=True)
    }
    guards: list[Expr] = []
    for rel in reversed(stage.relations):
        if isinstance(rel, SplitRelation):
            value = Linear.of_const(0, "int32")
            stride = 1
            for child in reversed(rel.children):
                value = simp.merge_divmod(values[child].scale(stride).add(value))
                stride *= extents[child]
            values[rel.parent] = value
            if stride > extents[rel.parent]:
                bound = const(extents[rel.parent], value.dtype)
                guards.append(simp.compare_simplified(CompareOp.LT, linear_to_expr(value), bound))
        elif isinstance(rel, FuseRelation):
            fused = values[rel.fused]
            inner = 1
            for index in reversed(range(len(rel.parents))):
                parent = rel.parents[index]
                part = simp.divmod_const(fused, inner, BinaryOp.FLOORDIV) if inner > 1 else fused
                values[parent] = (
                    simp.divmod_const(part, extents[parent], BinaryOp.FLOORMOD) if index > 0 else part
                )
                inner *= extents[parent]
    return {root.name: values[root.name] for root in stage.root_iters}, guards


def _with_ranges(stage: Stage, extents: dict[str, int]) -> Stage:
    """The stage with every iterator's Range filled: root iterators of a root stage start
    at the axis's dom_min, everything else at 0. Iterators already right are kept (most
    are: a split with known lengths fills its children), and so is the stage if all are."""
    is_root = stage.compute_at is ComputeAtKind.ROOT
    root_min = {root.name: (root.range.min if is_root else 0) for root in stage.root_iters}

    def fill(it: Iterator) -> Iterator:
        low, extent = root_min.get(it.name, 0), extents[it.name]
        if it.range.min == low and it.range.extent == extent:
            return it
        # built directly (a hot path; dataclasses.replace is much slower): test_bound_fast_paths
        # checks that these are all of Iterator's fields
        return Iterator(it.name, Range(low, extent), it.kind, it.annotation)

    iters = tuple(fill(it) for it in stage.iters)
    root_iters = tuple(fill(it) for it in stage.root_iters)
    unchanged = all(a is b for a, b in zip(iters, stage.iters, strict=True)) and all(
        a is b for a, b in zip(root_iters, stage.root_iters, strict=True)
    )
    return stage if unchanged else replace(stage, iters=iters, root_iters=root_iters)
