"""Layout rewrite: lay a constant weight out the way a tuned kernel's tiles read it.

A multi-level tiled stage (Ansor paper section 4.1, "SSRSRS") walks a weight such as a
convolution's ``kernel[ry, rx, rc, ff]`` tile by tile: with ``ff`` split into ``ff.0 ..
ff.3`` and the loops reordered, consecutive iterations read elements far apart in the
original layout. When the weight is a constant of the network, it can be stored once in
the order the loops visit it (TVM's ``ComputeDAG::RewriteLayout``, used by its
``AutoSchedulerLayoutRewrite`` Relay pass), and the kernel then streams it contiguously.

For a compute op whose attribute ``layout_free_placeholders`` (``LAYOUT_FREE_PLACEHOLDERS``)
names placeholders (by name), and a state of its DAG:

1. ``placeholder_layouts(dag, state)``: for each such placeholder read directly by the
   stage that does the tiling (the op itself, or its ``.local`` cache after cache_write),
   the new layout (``PlaceholderLayout``): the loop nest of that stage is listed outermost
   first (the iterators of the stage it is computed at, up to the attach point, then its
   own; fused iterators expanded into the iterators they fused, as TVM's
   ``GetNewLayout``), each loop traced back through the splits to the op axis it comes
   from; every loop over an axis that indexes the placeholder becomes one dimension of
   the new layout, of the loop's extent (bound-inferred). Loops of extent 1 are left out
   (they do not change the order of the bytes). A layout equal to the original one is
   left out too: the state does not tile the weight's axes.
2. ``rewrite_dag(dag, layouts)``: the DAG with each such placeholder of its new shape and
   every read ``W[i_0, ..., i_n]`` turned into ``W'[..., (i_a // s) % e, ...]`` (dimension
   of extent ``e`` over original axis ``a`` with ``s`` the product of the extents of the
   later dimensions over ``a``; no ``%`` on the outermost). Lowering's simplifier folds
   these back into the loop variables (``(f.0*8 + f.1) // 8 == f.0``), so the kernel
   indexes the new layout directly. The same steps replay on the rewritten DAG: only a
   placeholder's shape and one op's index expressions changed.
3. ``PlaceholderLayout.transform(array)``: the numpy transform of a constant from the old
   layout to the new (a reshape and a transpose; zero padding where a non-dividing split
   makes the tiles overshoot the axis, never read by the kernel); ``inverse`` undoes it.

``LayoutRewriteOption`` names TVM's three modes; ``REWRITE_FOR_PRE_TRANSFORMED`` is the
one implemented here (the caller transforms the weights once, at build time);
``INSERT_TRANSFORM_STAGE`` (a transform stage inside the kernel) is accepted and treated
as ``NO_REWRITE`` by the callers that cannot pre-transform.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ir.compute_dag import ComputeDAG
from ir.expr import Expr, IterVar, TensorRead, const, map_children
from ir.loop_state.dag_rewrite import make_compute, rewrite_ops
from ir.loop_state.enums import ComputeAtKind
from ir.loop_state.state import FuseRelation, LoopState, SplitRelation, Stage
from ir.lower.bound import infer_bound
from ir.te import ComputeOp, Operation, PlaceholderOp, Tensor, placeholder

#: compute-op attribute listing the names of the placeholders whose layout may change
LAYOUT_FREE_PLACEHOLDERS = "layout_free_placeholders"


def layout_free_attrs(*weights: Tensor) -> dict[str, list[str]]:
    """The compute attributes marking ``weights`` layout-free (those that are placeholders:
    a computed operand has no layout of its own to choose); TVM's topi sets the same
    attribute on convolutions, dense and batch_matmul."""
    names = [w.op.name for w in weights if isinstance(w.op, PlaceholderOp)]
    return {LAYOUT_FREE_PLACEHOLDERS: names} if names else {}


class LayoutRewriteOption(IntEnum):
    """TVM's ``auto_scheduler.LayoutRewriteOption``."""

    NO_REWRITE = 0
    INSERT_TRANSFORM_STAGE = 1
    REWRITE_FOR_PRE_TRANSFORMED = 2

    @staticmethod
    def get_target_default(network: bool) -> LayoutRewriteOption:
        """The default of a CPU target: rewrite the weights of network tasks (the network
        transforms its constants once), none for a single operator, whose inputs are the
        caller's arrays in their own layout."""
        return LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED if network else LayoutRewriteOption.NO_REWRITE


@dataclass(frozen=True)
class PlaceholderLayout:
    """The new layout of placeholder ``name`` (original ``shape``): ``dims`` lists, outer
    to inner, (original axis, extent) pairs; the extents over one axis multiply to at
    least its length (more where a split does not divide it)."""

    name: str
    shape: tuple[int, ...]
    dims: tuple[tuple[int, int], ...]

    @property
    def new_shape(self) -> tuple[int, ...]:
        return tuple(extent for _, extent in self.dims) or (1,)

    def __str__(self) -> str:
        """TVM's layout string, axes as letters: ``[3, 3, 64, 64]`` tiled gives e.g.
        ``8D3A3B64C8D`` (extent, then the original axis it runs over)."""
        return "".join(f"{extent}{chr(ord('A') + axis)}" for axis, extent in self.dims)

    def _strides(self) -> list[int]:
        """Per dimension, the product of the extents of the later dimensions of its axis."""
        strides = [1] * len(self.dims)
        seen = [1] * len(self.shape)
        for k in reversed(range(len(self.dims))):
            axis, extent = self.dims[k]
            strides[k] = seen[axis]
            seen[axis] *= extent
        return strides

    def index(self, indices: Sequence[Expr]) -> tuple[Expr, ...]:
        """The new indices of the element at ``indices`` of the original layout."""
        strides = self._strides()
        outermost = {axis: k for k, (axis, _) in reversed(list(enumerate(self.dims)))}
        result: list[Expr] = []
        for k, (axis, extent) in enumerate(self.dims):
            e = indices[axis] if strides[k] == 1 else indices[axis] // strides[k]
            result.append(e if outermost[axis] == k else e % extent)
        return tuple(result) or (const(0, "int32"),)

    def _digits(self) -> list[np.ndarray]:
        """Per new dimension, the index along it of each original element (broadcast
        over the original shape)."""
        strides = self._strides()
        digits = []
        for k, (axis, extent) in enumerate(self.dims):
            along = np.arange(self.shape[axis]) // strides[k] % extent
            digits.append(along.reshape([-1 if d == axis else 1 for d in range(len(self.shape))]))
        return digits

    def transform(self, array: np.ndarray) -> np.ndarray:
        """``array`` (of ``shape``) in the new layout, C-contiguous, zero where padded."""
        if tuple(array.shape) != self.shape:
            raise ValueError(
                f"layout of placeholder '{self.name}': the array has shape {list(array.shape)}, "
                f"expected {list(self.shape)}"
            )
        if not self.dims:
            return np.ascontiguousarray(array.reshape(1))
        out = np.zeros(self.new_shape, dtype=array.dtype)
        index = tuple(np.broadcast_to(d, self.shape) for d in self._digits())
        out[index] = array
        return out

    def inverse(self, array: np.ndarray) -> np.ndarray:
        """The original-layout array of ``array`` (of ``new_shape``)."""
        if tuple(array.shape) != self.new_shape:
            raise ValueError(
                f"layout of placeholder '{self.name}': the array has shape {list(array.shape)}, "
                f"expected the rewritten shape {list(self.new_shape)}"
            )
        if not self.dims:
            return np.ascontiguousarray(array.reshape(self.shape))
        index = tuple(np.broadcast_to(d, self.shape) for d in self._digits())
        return np.ascontiguousarray(array[index])


@dataclass(frozen=True)
class LayoutRewrite:
    """A DAG rewritten for a state (``rewrite_layout_from_state``): the new ``dag`` and the
    ``layouts`` of its rewritten placeholders, by name."""

    dag: ComputeDAG
    layouts: Mapping[str, PlaceholderLayout]

    def transform_inputs(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The original DAG's inputs (in placeholder order) as the rewritten DAG takes them."""
        names = [t.name for t in self.dag.placeholders]
        if len(inputs) != len(names):
            raise ValueError(
                f"layout rewrite: {len(inputs)} inputs for the {len(names)} placeholders {names}"
            )
        return [
            self.layouts[name].transform(array) if name in self.layouts else array
            for name, array in zip(names, inputs, strict=True)
        ]


# ------------------------------------------------------------------------------------------
# the layout a state reads


def layout_free_reads(dag: ComputeDAG) -> dict[str, ComputeOp]:
    """Placeholders marked layout-free, by name, with the one op that reads them. A
    placeholder read by another op too keeps its layout (one rewrite cannot suit both)."""
    readers: dict[str, list[Operation]] = {}
    for op in dag.ops:
        for t in op.input_tensors:
            readers.setdefault(t.op.name, []).append(op)
    placeholders = {t.name for t in dag.placeholders}
    found: dict[str, ComputeOp] = {}
    for op in dag.ops:
        if not isinstance(op, ComputeOp):
            continue
        for name in op.attrs.get(LAYOUT_FREE_PLACEHOLDERS, ()):
            if name in placeholders and readers.get(name) == [op]:
                found[name] = op
    return found


def _tensor_reads(e: Expr, name: str) -> list[TensorRead]:
    reads: list[TensorRead] = []

    def visit(node: Expr) -> Expr:
        if isinstance(node, TensorRead) and node.tensor.op.name == name:
            reads.append(node)
        return map_children(node, visit)

    visit(e)
    return reads


def _expanded_iters(stage: Stage, names: Sequence[str]) -> list[str]:
    """``names`` with every fused iterator replaced by the iterators it fused, recursively."""
    fused = {rel.fused: rel.parents for rel in stage.relations if isinstance(rel, FuseRelation)}
    result: list[str] = []
    for name in names:
        if name in fused:
            result.extend(_expanded_iters(stage, fused[name]))
        else:
            result.append(name)
    return result


def _split_extents(stage: Stage) -> dict[str, int]:
    """Extent of every iterator name of the stage's relations from its root extents
    (bound-inferred), before any tightening: enough for iterators that were fused away."""
    extents = {it.name: int(it.extent or 1) for it in stage.root_iters}
    for rel in stage.relations:
        if isinstance(rel, SplitRelation):
            parent = extents.get(rel.parent, 1)
            known = math.prod(int(x or 1) for k, x in enumerate(rel.lengths) if k != rel.remainder_index)
            for k, child in enumerate(rel.children):
                extents[child] = -(-parent // known) if k == rel.remainder_index else int(rel.lengths[k] or 1)
        else:
            extents[rel.fused] = math.prod(extents.get(p, 1) for p in rel.parents)
    return extents


def _root_of(stage: Stage) -> dict[str, str | None]:
    """Iterator name -> the root iterator it was split from (None: it came out of a fuse)."""
    parent: dict[str, str | None] = {it.name: it.name for it in stage.root_iters}
    for rel in stage.relations:
        if isinstance(rel, SplitRelation):
            for child in rel.children:
                parent[child] = parent.get(rel.parent)
        else:
            parent[rel.fused] = None
    return parent


def _loops(state: LoopState, stage_id: int) -> list[tuple[int, str, int]] | None:
    """The loops around the stage's body, outermost first, as (position of the stage op's
    axis it runs over, iterator name, extent); None when a loop mixes axes (a fuse split
    again). Loops of the stage it is attached at run over that op's axes, taken by
    position when both ops have the same spatial extents (a cache_write's or a fused
    consumer's, whose outer splits follow this stage's); otherwise they are left out."""
    stage = state.stages[stage_id]
    op = stage.op
    assert isinstance(op, ComputeOp)
    loops: list[tuple[int, str, int]] = []
    attach = stage.attach
    if attach is not None:
        outer = state.stages[attach.stage_id]
        outer_op = outer.op
        if isinstance(outer_op, ComputeOp) and outer_op.shape == op.shape:
            upto = [it.name for it in outer.iters[: outer.iter_index(attach.iter_name) + 1]]
            found = _traced(outer, upto)
            if found is None:
                return None
            loops.extend((axis, name, extent) for axis, name, extent in found if axis < len(op.axis))
    own = _traced(stage, [it.name for it in stage.iters])
    if own is None:
        return None
    return loops + own


def _traced(stage: Stage, names: Sequence[str]) -> list[tuple[int, str, int]] | None:
    roots = [it.name for it in stage.root_iters]
    root_of = _root_of(stage)
    leaf_extents = {it.name: int(it.extent or 1) for it in stage.iters}
    extents = _split_extents(stage)
    traced = []
    for name in _expanded_iters(stage, names):
        root = root_of.get(name)
        if root is None:
            return None
        traced.append((roots.index(root), name, leaf_extents.get(name, extents.get(name, 1))))
    return traced


def _layout_of(state: LoopState, stage_id: int, tensor: Tensor) -> PlaceholderLayout | None:
    """The layout ``tensor`` is read in by stage ``stage_id`` (module docstring, step 1)."""
    stage = state.stages[stage_id]
    op = stage.op
    assert isinstance(op, ComputeOp)
    reads = _tensor_reads(op.body, tensor.op.name)
    if not reads or any(r.indices != reads[0].indices for r in reads):
        return None
    axes = list(op.axis + op.reduce_axis)
    dim_of_axis: dict[int, int] = {}  # position of the op axis -> dimension of the tensor
    for dim, index in enumerate(reads[0].indices):
        if isinstance(index, IterVar) and index in axes and axes.index(index) not in dim_of_axis:
            dim_of_axis[axes.index(index)] = dim
    loops = _loops(state, stage_id)
    if loops is None:
        return None
    shape = tuple(tensor.shape)
    free = [d for d in range(len(shape)) if d not in dim_of_axis.values()]
    dims = [(d, shape[d]) for d in free]  # dimensions no loop runs over stay outermost
    dims += [(dim_of_axis[axis], extent) for axis, _, extent in loops if axis in dim_of_axis]
    dims = _cover(dims, shape)
    kept = tuple((d, e) for d, e in dims if e > 1)
    if kept == tuple((d, shape[d]) for d in range(len(shape)) if shape[d] > 1):
        return None
    return PlaceholderLayout(tensor.op.name, shape, kept)


def _cover(dims: list[tuple[int, int]], shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``dims`` with each axis's outermost extent grown so the axis's extents cover it (a
    loop left out, or a tail loop cut by bound inference, must not alias elements)."""
    result = list(dims)
    for axis, length in enumerate(shape):
        positions = [k for k, (d, _) in enumerate(result) if d == axis]
        if not positions:
            result.insert(0, (axis, length))
            continue
        inner = math.prod(result[k][1] for k in positions[1:])
        first = positions[0]
        result[first] = (axis, max(result[first][1], -(-length // inner)))
    return result


def placeholder_layouts(dag: ComputeDAG, state: LoopState) -> dict[str, PlaceholderLayout]:
    """The new layout of each layout-free placeholder of ``dag`` that ``state`` tiles
    (module docstring, step 1); ``state`` is one of ``dag`` (bound inference is run here)."""
    marked = layout_free_reads(dag)
    if not marked:
        return {}
    bound = infer_bound(dag, state)
    layouts: dict[str, PlaceholderLayout] = {}
    for name in marked:
        tensor = next(t for t in dag.placeholders if t.name == name)
        # the stage that reads the placeholder: the op, or the cache that took its body
        for stage_id, stage in enumerate(bound.stages):
            op = stage.op
            if not isinstance(op, ComputeOp) or stage.compute_at is ComputeAtKind.INLINED:
                continue
            if any(t.op.name == name for t in op.input_tensors):
                layout = _layout_of(bound, stage_id, tensor)
                if layout is not None:
                    layouts[name] = layout
                break
    return layouts


# ------------------------------------------------------------------------------------------
# the rewritten DAG


def rewrite_dag(dag: ComputeDAG, layouts: Mapping[str, PlaceholderLayout]) -> ComputeDAG:
    """``dag`` with the placeholders of ``layouts`` in their new layouts (module docstring,
    step 2). Op names, axes and the order of ``dag.tensors`` are kept."""
    if not layouts:
        return dag
    new_tensors: dict[str, Tensor] = {}
    for t in dag.placeholders:
        if t.name in layouts:
            new_tensors[t.name] = placeholder(layouts[t.name].new_shape, t.dtype, name=t.name)
    replaced: dict[int, Operation] = {}
    for op in dag.ops:
        if isinstance(op, PlaceholderOp) and op.name in new_tensors:
            replaced[id(op)] = new_tensors[op.name].op
        elif isinstance(op, ComputeOp) and any(t.op.name in new_tensors for t in op.input_tensors):
            body = _reindexed(op.body, layouts, new_tensors)
            attrs_free = [n for n in op.attrs.get(LAYOUT_FREE_PLACEHOLDERS, ()) if n not in layouts]
            new = make_compute(op.name, op.axis, op.reduce_axis, body, op).op
            assert isinstance(new, ComputeOp)
            new.attrs[LAYOUT_FREE_PLACEHOLDERS] = attrs_free
            new.attrs["rewritten_layouts"] = {
                **op.attrs.get("rewritten_layouts", {}),
                **{n: str(layouts[n]) for n in layouts if any(t.op.name == n for t in op.input_tensors)},
            }
            replaced[id(op)] = new
    ops = rewrite_ops(dag.ops, replaced)
    by_name = {op.name: op for op in ops}
    return ComputeDAG([by_name[t.op.name].outputs[t.value_index] for t in dag.tensors])


def _reindexed(e: Expr, layouts: Mapping[str, PlaceholderLayout], tensors: Mapping[str, Tensor]) -> Expr:
    def visit(node: Expr) -> Expr:
        new = map_children(node, visit)
        if (
            isinstance(new, TensorRead)
            and new.tensor.op.name in layouts
            and new.tensor.op is not (tensors[new.tensor.op.name].op)
        ):
            name = new.tensor.op.name
            return TensorRead(tensors[name], layouts[name].index(new.indices))
        return new

    return visit(e)


def rewrite_layout_from_state(dag: ComputeDAG, state: LoopState) -> LayoutRewrite | None:
    """The DAG rewritten for ``state`` and its layouts (TVM's
    ``ComputeDAG.rewrite_layout_from_state``); None when the state tiles no layout-free
    placeholder's axes (nothing to rewrite)."""
    layouts = placeholder_layouts(dag, state)
    if not layouts:
        return None
    return LayoutRewrite(rewrite_dag(dag, layouts), layouts)
