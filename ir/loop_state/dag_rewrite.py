"""New operations for the stage-inserting steps: cache_read, cache_write, rfactor.

These steps change the computation's graph, not just its loops (TVM rewrites the TE
schedule; Ansor then replays the DAG, ``ReplayAndGetDAG``). Here each step builds its new
ops directly, ``rewrite_ops`` rebuilds every op downstream of a changed one so every
tensor read points at the current op, and ``insert_stage`` splices the new stage into the
loop state, shifts stage ids in attach points and sets ``current_compute_dag``.

    cache_read(T, "shared", readers):  T.shared[ax] = T[ax];  readers read T.shared
    cache_write(T, "local"):           T.local[i.c] = body(i.c);  T[i] = T.local[i]
    rfactor(T, k.1, f):                T.rf[.., k.1 (at f), ..] = sum over the other
                                       reduce leaves of body(k expressed by the leaves)
                                       T[i] = sum over k.1.v of T.rf[.., k.1.v, ..]

The rfactor body rebuilds each original reduce axis from the stage's leaf iterators by
walking its split and fuse relations backwards (after split(k, [f]): k == k.0 * f + k.1;
after fuse(a, b): a == ab // extent(b), b == ab % extent(b)), with a ``where`` guard for
every iterator a non-dividing split lets overflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ir.compute_dag import ComputeDAG
from ir.expr import Expr, IterVar, IterVarKind, Reduce, TensorRead, map_children, select, substitute
from ir.loop_state.enums import IteratorKind
from ir.loop_state.state import (
    AttachPoint,
    FuseRelation,
    LoopState,
    ScheduleError,
    SplitRelation,
    Stage,
)
from ir.te import ComputeOp, Operation, PlaceholderOp, Tensor, _make_output, _make_outputs

# ------------------------------------------------------------------------------------------
# op construction and downstream rebuild


def make_compute(
    name: str,
    axis: Sequence[IterVar],
    reduce_axis: Sequence[IterVar],
    body: Expr,
    like: ComputeOp | None = None,
) -> Tensor:
    """A new compute op (and its output tensor); ``like`` lends its tag and attrs."""
    tag, attrs = ("", {}) if like is None else (like.tag, dict(like.attrs))
    op = ComputeOp(name, tuple(axis), tuple(reduce_axis), body, tag, attrs)
    if op.num_outputs > 1:
        return _make_outputs(op)[0]  # a tuple reduction: op.outputs has them all
    return _make_output(op, tuple(a.extent for a in axis), body.dtype)


def replace_reads(e: Expr, mapping: dict[int, Tensor]) -> Expr:
    """``e`` with every read of an op in ``mapping`` (keyed by id(op)) reading the new tensor
    (output ``value_index`` of the new op, for a tuple reduction's outputs)."""

    def visit(node: Expr) -> Expr:
        new = map_children(node, visit)
        if isinstance(new, TensorRead) and id(new.tensor.op) in mapping:
            tensor = mapping[id(new.tensor.op)]
            return TensorRead(tensor.op.outputs[new.tensor.value_index], new.indices)
        return new

    return visit(e)


def rewrite_ops(
    ops: Sequence[Operation],
    replaced: dict[int, Operation],
    redirects: dict[int, dict[int, Tensor]] | None = None,
) -> list[Operation]:
    """Rebuild ``ops`` (in topological order) after some changed.

    ``replaced`` maps id(old op) to its new op; ``redirects`` maps id(op) to extra reads to
    redirect in that op only (cache_read's readers). Every op reading a rebuilt op is
    rebuilt too (same name, axes and tag), so the result is consistent.
    """
    redirects = redirects or {}
    mapping: dict[int, Tensor] = {}
    result: list[Operation] = []
    for op in ops:
        new: Operation = op
        if id(op) in replaced:
            new = replaced[id(op)]
        elif isinstance(op, ComputeOp):
            reads = {**mapping, **redirects.get(id(op), {})}
            body = replace_reads(op.body, reads) if reads else op.body
            if body is not op.body:
                new = make_compute(op.name, op.axis, op.reduce_axis, body, op).op
        if new is not op:
            mapping[id(op)] = new.output
        result.append(new)
    return result


def unique_name(base: str, taken: Sequence[str]) -> str:
    """``base``, or ``base.1``, ``base.2``, ... if taken (op names stay unique)."""
    name, n = base, 1
    while name in taken:
        name, n = f"{base}.{n}", n + 1
    return name


def cache_read_op(tensor: Tensor, name: str) -> Tensor:
    """``name[ax0, ax1, ...] = tensor[ax0, ax1, ...]``."""
    axis = tuple(IterVar(f"ax{d}", "int32", 0, extent) for d, extent in enumerate(tensor.shape))
    return make_compute(name, axis, (), TensorRead(tensor, axis))


def cache_write_ops(op: ComputeOp, cache_name: str) -> tuple[Tensor, Tensor]:
    """(cache, new target): the cache computes ``op``'s body over axes ``i.c`` (reduce
    axes keep their names); the target copies it over fresh axes of the old names."""
    axis_c = tuple(IterVar(f"{a.name}.c", a.dtype, a.dom_min, a.extent, a.kind) for a in op.axis)
    reduce_c = tuple(IterVar(a.name, a.dtype, a.dom_min, a.extent, a.kind) for a in op.reduce_axis)
    mapping: dict = dict(zip(op.axis + op.reduce_axis, axis_c + reduce_c, strict=True))
    body = substitute(op.body, mapping)
    if isinstance(body, Reduce):
        body = replace(body, axis=reduce_c)
    cache = make_compute(cache_name, axis_c, reduce_c, body, op)
    axis = tuple(IterVar(a.name, a.dtype, a.dom_min, a.extent, a.kind) for a in op.axis)
    target = make_compute(op.name, axis, (), TensorRead(cache, axis), op)
    return cache, target


# ------------------------------------------------------------------------------------------
# rfactor


def _extents(op: ComputeOp, stage: Stage) -> dict[str, int | None]:
    """Extent of every iterator name the stage's relations mention (None if unknown)."""
    extents: dict[str, int | None] = {a.name: a.extent for a in op.axis + op.reduce_axis}
    for rel in stage.relations:
        if isinstance(rel, SplitRelation):
            parent = extents.get(rel.parent)
            known = [length for k, length in enumerate(rel.lengths) if k != rel.remainder_index]
            for k, (child, length) in enumerate(zip(rel.children, rel.lengths, strict=True)):
                if k != rel.remainder_index:
                    extents[child] = length
                elif parent is None or any(x is None for x in known):
                    extents[child] = None
                else:
                    extents[child] = -(-parent // math.prod(x for x in known if x is not None))
        else:
            parts = [extents.get(p) for p in rel.parents]
            extents[rel.fused] = None if any(p is None for p in parts) else math.prod(p for p in parts if p)
    return extents


def _scaled(e: Expr, factor: int) -> Expr:
    return e if factor == 1 else e * factor


def rfactor_ops(
    op: ComputeOp, stage: Stage, leaf_name: str, factor_iter_id: int, rf_name: str
) -> tuple[Tensor, Tensor]:
    """(rf, new target) for factoring ``op``'s reduction over reduction leaf ``leaf_name``."""
    body = op.body
    assert isinstance(body, Reduce)
    extents = _extents(op, stage)
    reduce_names = {a.name for a in op.reduce_axis}
    for rel in stage.relations:  # names derived from reduce axes only
        if isinstance(rel, SplitRelation) and rel.parent in reduce_names:
            reduce_names.update(rel.children)
        elif isinstance(rel, FuseRelation) and all(p in reduce_names for p in rel.parents):
            reduce_names.add(rel.fused)
    leaves = [it for it in stage.iters if it.kind is IteratorKind.REDUCTION]
    for it in leaves:
        if extents.get(it.name) is None:
            raise ScheduleError(
                f"cannot rfactor stage '{op.name}': the extent of reduction iterator '{it.name}' is "
                "unknown (fill the split lengths first)"
            )

    def ext(name: str) -> int:
        value = extents[name]
        assert value is not None
        return value

    rf_var = IterVar(leaf_name, "int32", 0, ext(leaf_name), IterVarKind.SPATIAL)
    others = tuple(
        IterVar(it.name, "int32", 0, ext(it.name), IterVarKind.REDUCE)
        for it in leaves
        if it.name != leaf_name
    )
    value: dict[str, Expr] = {rf_var.name: rf_var, **{v.name: v for v in others}}
    top: dict[str, int] = {name: ext(name) - 1 for name in value}  # largest value each can take
    guards: list[Expr] = []

    def bound(name: str) -> None:
        # guard an iterator a non-dividing split lets overflow; past the guard it is in range
        if top[name] > ext(name) - 1:
            guards.append(value[name] < ext(name))
            top[name] = ext(name) - 1

    for rel in reversed(stage.relations):
        if isinstance(rel, SplitRelation) and rel.parent in reduce_names:
            total: Expr | None = None
            stride, largest = 1, 0
            for child in reversed(rel.children):
                term = _scaled(value[child], stride)
                total = term if total is None else term + total
                largest += top[child] * stride
                stride *= ext(child)
            assert total is not None
            value[rel.parent], top[rel.parent] = total, largest
            bound(rel.parent)
        elif isinstance(rel, FuseRelation) and rel.fused in reduce_names:
            stride = 1
            for k in range(len(rel.parents) - 1, -1, -1):
                parent = rel.parents[k]
                quotient = value[rel.fused] if stride == 1 else value[rel.fused] // stride
                if k == 0:
                    value[parent], top[parent] = quotient, top[rel.fused] // stride
                else:
                    value[parent], top[parent] = quotient % ext(parent), ext(parent) - 1
                stride *= ext(parent)
            bound(rel.parents[0])

    new_axis = tuple(IterVar(a.name, a.dtype, a.dom_min, a.extent, a.kind) for a in op.axis)
    mapping: dict = dict(zip(op.axis, new_axis, strict=True))
    for a in op.reduce_axis:
        mapping[a] = value[a.name] + a.dom_min if a.dom_min else value[a.name]
    source = substitute(body.source, mapping)
    conditions = ([substitute(body.condition, mapping)] if body.condition is not None else []) + guards
    condition = None
    for c in conditions:
        condition = c if condition is None else condition & c
    if others:
        rf_body: Expr = Reduce(body.reducer, source, others, condition)
    elif condition is not None:
        rf_body = select(condition, source, body.reducer.identity(source.dtype))
    else:
        rf_body = source
    rf_axes = (*new_axis[:factor_iter_id], rf_var, *new_axis[factor_iter_id:])
    rf = make_compute(rf_name, rf_axes, others, rf_body, op)

    target_axis = tuple(IterVar(a.name, a.dtype, a.dom_min, a.extent, a.kind) for a in op.axis)
    v = IterVar(f"{leaf_name}.v", "int32", 0, ext(leaf_name), IterVarKind.REDUCE)
    index = (*target_axis[:factor_iter_id], v, *target_axis[factor_iter_id:])
    target = make_compute(op.name, target_axis, (v,), Reduce(body.reducer, TensorRead(rf, index), (v,)), op)
    return rf, target


# ------------------------------------------------------------------------------------------
# splicing a new stage into the state


def dag_for_stages(dag: ComputeDAG, stages: Sequence[Stage]) -> ComputeDAG:
    """A ComputeDAG over the stages' ops with ``dag``'s inputs and (renewed) outputs.

    Its ``ops`` are in the DAG's own topological order (TVM's), which is the stage order
    in the usual cases; look stages and ops up by name, not by position.
    """
    by_name = {stage.name: stage.op for stage in stages}
    tensors = [
        t if isinstance(t.op, PlaceholderOp) else by_name[t.op.name].outputs[t.value_index]
        for t in dag.tensors
    ]
    new_dag = ComputeDAG(tensors)
    stage_ops = {id(stage.op): stage.op.name for stage in stages}
    dag_ops = {id(op): op.name for op in new_dag.ops}
    if stage_ops.keys() != dag_ops.keys():
        differ = sorted(set(stage_ops.values()) ^ set(dag_ops.values()))
        raise ScheduleError(f"the rewritten DAG and the stages disagree on ops {differ}")
    return new_dag


def insert_stage(
    state: LoopState,
    dag: ComputeDAG,
    new_ops: Sequence[Operation],
    fresh: dict[int, Stage],
    new_stage: Stage,
    position: int,
) -> tuple[tuple[Stage, ...], ComputeDAG]:
    """Stages and DAG after inserting ``new_stage`` at ``position``.

    ``new_ops[i]`` is the (possibly rebuilt) op of old stage i; ``fresh`` replaces whole
    stages. Attach points naming stage ids >= position shift by one.
    """
    stages: list[Stage] = []
    for index, (stage, op) in enumerate(zip(state.stages, new_ops, strict=True)):
        if index in fresh:
            stages.append(fresh[index])
        else:
            stages.append(stage if op is stage.op else replace(stage, op=op))
    for index, stage in enumerate(stages):
        if stage.attach is not None and stage.attach.stage_id >= position:
            stages[index] = replace(
                stage, attach=AttachPoint(stage.attach.stage_id + 1, stage.attach.iter_name)
            )
    stages.insert(position, new_stage)
    return tuple(stages), dag_for_stages(dag, stages)
