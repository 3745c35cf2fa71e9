"""The numpy reference evaluator: the oracle every kernel and every measured candidate is
checked against. Every compiled kernel is compared with the result of the unscheduled
DAG, computed here without any compiler, so a wrong schedule or a code generation bug is
caught rather than timed.

``evaluate(dag, inputs)`` computes any DAG built with ``ir.te``, op by op in topological
order, without loops over elements: each op's body is evaluated over an index grid whose
axes are numpy ranges shaped to broadcast against each other (``np.ogrid`` style), reads are
gathered with fancy indexing, and reductions use numpy reductions over the grid's reduce
dimensions.

Semantics, chosen to match what a compiled naive loop nest computes:

- ``if_then_else`` is lazy: each side is evaluated under a mask of the grid points that
  take it, so a padding read with a negative index on the untaken side is never an error
  (its index is clipped and the value discarded). ``&&`` and ``||`` short-circuit the same
  way; a ``where=`` condition masks the reduction source. An out-of-bounds read at a point
  that does use it raises ReferenceEvaluationError naming the op, tensor and index.
- Operators mean what ``ir.expr.BINARY_FUNCTIONS`` and ``COMPARE_FUNCTIONS`` say, applied
  elementwise: integer ``//`` and ``%`` are floor division and floor modulo (Python's,
  TVM's floordiv and floormod); on floats ``a // b = floor(a / b)`` and
  ``a % b = a - floor(a / b) * b``; ``max(a, b) = a > b ? a : b``. An integer ``//`` or
  ``%`` by zero gives 0 (``INT_DIVISION_BY_ZERO``, numpy's answer and the kernel's).
- Casts follow C: float to int truncates toward zero; narrowing ints wrap; nonzero is true.
- Elementwise arithmetic runs in the node's dtype (float32 rounding as in the kernel).
  Intrinsics on float16/float32 are computed in float64 and rounded once, so the oracle is
  at least as accurate as any libm. ``round`` rounds half away from zero (C ``round``);
  ``erf`` uses ``math.erf`` elementwise (scipy is not a dependency).
- ``sum`` and ``prod`` accumulate floats in float64 and integers in 64 bits, then cast back
  to the op's dtype (integers wrap exactly as a 32-bit accumulator would). ``max``/``min``
  reduce in the op's dtype. Other reducers fold their combine expression: in axis order (as
  the naive loop nest does) when a chunk's reduce extent is at most ``SEQUENTIAL_FOLD_LIMIT``,
  and pairwise beyond (exact for any associative, commutative reducer, which TVM requires).
  A tuple reducer (argmax over (index, value)) folds in axis order at any extent and gives
  one array per output (``T.v0``, ``T.v1``).

Speed and memory. Work is split into chunks of the grid (outer spatial axes first, then
reduce axes) so that temporaries stay under ``memory_budget`` bytes. A ``sum`` whose source
is a product of factors (``A[i, k] * B[k, j]``, a padded conv's input times its kernel) is
contracted with ``np.einsum`` on float64 (or int64) operands, each factor gathered only over
the axes it uses: a 1024^3 matmul costs one BLAS call, and the result equals the summation
of the exact products, in a different order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np

from ir import dtype as dt
from ir.expr import (
    BINARY_FUNCTIONS,
    COMPARE_FUNCTIONS,
    INT_DIVISION_BY_ZERO,
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    Intrinsic,
    IterVar,
    Not,
    Reduce,
    Select,
    TensorRead,
    TupleReducer,
    Var,
    free_vars,
    post_order,
)
from ir.te import MAX, MIN, PROD, SUM, ComputeOp, PlaceholderOp, Tensor

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG

#: default bound on the bytes of temporaries alive while evaluating one chunk
DEFAULT_MEMORY_BUDGET = 256 * 2**20
#: custom reducers fold in axis order up to this reduce extent, pairwise beyond
SEQUENTIAL_FOLD_LIMIT = 4096

Mask = np.ndarray | None
#: id(variable) -> its values over the grid chunk
Env = dict[int, np.ndarray]


class ReferenceEvaluationError(ValueError):
    """Inputs that do not fit the DAG, or a declaration that reads out of bounds at a point
    whose value is used."""


# ------------------------------------------------------------------------------------------
# public API


def evaluate(
    dag: ComputeDAG,
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> list[np.ndarray]:
    """The DAG's outputs, in ``dag.outputs`` order, for ``inputs``.

    ``inputs`` is a list of arrays in ``dag.placeholders`` order, or a dict from placeholder
    name to array; each must have exactly the placeholder's shape and dtype.
    """
    values = evaluate_all(dag, inputs, memory_budget)
    return [values[t.name] for t in dag.outputs]


def evaluate_all(
    dag: ComputeDAG,
    inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, np.ndarray]:
    """Every tensor of the DAG by tensor name (the op's name; ``T.v0``, ``T.v1`` for the
    outputs of a tuple reduction): the inputs as given, then each compute op's value
    (intermediate ones included), in topological order."""
    if memory_budget <= 0:
        raise ReferenceEvaluationError(f"memory_budget must be positive, got {memory_budget}")
    arrays = bind_inputs(dag, inputs)
    with np.errstate(all="ignore"):
        for op in dag.ops:
            if isinstance(op, ComputeOp):
                values = _OpEvaluator(op, arrays, memory_budget).run()
                arrays.update(zip(op.outputs, values, strict=True))
    return {t.name: arrays[t] for op in dag.ops for t in op.outputs}


def bind_inputs(
    dag: ComputeDAG, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]
) -> dict[Tensor, np.ndarray]:
    """Map each placeholder tensor to its input array, checking names, shapes and dtypes."""
    names = [t.name for t in dag.placeholders]
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise ReferenceEvaluationError(
                f"inputs by name: missing {missing}, unknown {unknown}; the placeholders are {names}"
            )
        given = [inputs[n] for n in names]
    else:
        given = list(inputs)
        if len(given) != len(names):
            raise ReferenceEvaluationError(
                f"got {len(given)} input array(s) for {len(names)} placeholder(s) {names}"
            )
    arrays: dict[Tensor, np.ndarray] = {}
    for tensor, value in zip(dag.placeholders, given, strict=True):
        array = np.asarray(value)
        if array.shape != tensor.shape:
            raise ReferenceEvaluationError(
                f"input for placeholder '{tensor.name}' has shape {list(array.shape)}, "
                f"expected {list(tensor.shape)}"
            )
        if array.dtype != dt.to_numpy(tensor.dtype):
            raise ReferenceEvaluationError(
                f"input for placeholder '{tensor.name}' has dtype {array.dtype}, expected {tensor.dtype}"
            )
        arrays[tensor] = array
    return arrays


def random_inputs(dag: ComputeDAG, seed: int = 0, low: float = -1.0, high: float = 1.0) -> list[np.ndarray]:
    """Random arrays for ``dag.placeholders``: floats uniform in [low, high), integers in
    [low * 8, high * 8] (unsigned from 0), bools fair coin flips. Never all zeros.

    An integer placeholder read as an index of another tensor (``A[Idx[i]]``, also through
    an integer cast or with a constant offset, ``A[Idx[i] + 1]``) is an index tensor: its
    values are uniform in the range where every such read stays inside its tensor
    (``index_ranges``), so a gather reads inside ``A``. Other uses of an index tensor are up
    to the caller's inputs (TVM's ``task_inputs``)."""
    rng = np.random.default_rng(seed)
    ranges = index_ranges(dag)
    result = []
    for tensor in dag.placeholders:
        dtype = dt.to_numpy(tensor.dtype)
        if dt.is_float(tensor.dtype):
            array = rng.uniform(low, high, tensor.shape).astype(dtype)
        elif dt.is_bool(tensor.dtype):
            array = rng.integers(0, 2, tensor.shape).astype(dtype)
        elif tensor.name in ranges:
            lo, hi = ranges[tensor.name]
            array = rng.integers(lo, hi, tensor.shape).astype(dtype)
        else:
            lo = 0 if not dt.is_signed_int(tensor.dtype) else math.floor(low * 8)
            array = rng.integers(lo, math.ceil(high * 8) + 1, tensor.shape).astype(dtype)
        result.append(array)
    return result


def index_ranges(dag: ComputeDAG) -> dict[str, tuple[int, int]]:
    """Index tensors by name: integer placeholders read as a whole index of a tensor
    dimension of extent ``n``, as ``Idx[..] + c`` (``c`` a constant, possibly 0, integer
    casts allowed), each with the half-open range ``[lo, hi)`` of values that keep every
    such read inside its tensor: the intersection of ``[-c, n - c)`` over all uses and the
    index dtype's range. A placeholder whose uses leave no common value is left out."""
    bounds: dict[str, tuple[float, float]] = {}
    for op in dag.ops:
        if not isinstance(op, ComputeOp):
            continue
        for node in post_order(op.body):
            if not isinstance(node, TensorRead):
                continue
            for index, extent in zip(node.indices, node.tensor.shape, strict=True):
                found = _index_read(index)
                if found is None:
                    continue
                name, offset = found
                lo, hi = bounds.get(name, (-math.inf, math.inf))
                bounds[name] = (max(lo, -offset), min(hi, extent - offset))
    ranges: dict[str, tuple[int, int]] = {}
    for tensor in dag.placeholders:
        if tensor.name in bounds:
            info = np.iinfo(dt.to_numpy(tensor.dtype))
            lo = int(max(bounds[tensor.name][0], info.min))
            hi = int(min(bounds[tensor.name][1], int(info.max) + 1))
            if lo < hi:
                ranges[tensor.name] = (lo, hi)
    return ranges


def _int_bits(dtype: str) -> int:
    return int(np.iinfo(dt.to_numpy(dtype)).bits)


def _index_read(index: Expr) -> tuple[str, int] | None:
    """(placeholder name, c) when ``index`` is ``P[..] + c`` for an integer placeholder P
    and a constant c (widening integer casts and ``c + P[..]``, ``P[..] - c`` included),
    else None."""
    offset = 0
    while True:
        if (
            isinstance(index, Cast)
            and dt.is_int(index.value.dtype)
            and _int_bits(index.dtype) >= _int_bits(index.value.dtype)
        ):
            index = index.value
        elif isinstance(index, Binary) and index.op is BinaryOp.ADD and isinstance(index.b, Const):
            offset, index = offset + int(index.b.value), index.a
        elif isinstance(index, Binary) and index.op is BinaryOp.ADD and isinstance(index.a, Const):
            offset, index = offset + int(index.a.value), index.b
        elif isinstance(index, Binary) and index.op is BinaryOp.SUB and isinstance(index.b, Const):
            offset, index = offset - int(index.b.value), index.a
        else:
            break
    if not isinstance(index, TensorRead) or not dt.is_int(index.dtype):
        return None
    return (index.tensor.name, offset) if isinstance(index.tensor.op, PlaceholderOp) else None


# ------------------------------------------------------------------------------------------
# chunking


def plan_chunks(
    extents: Sequence[int], chunkable: int, cost: Callable[[list[int]], int], limit: int
) -> list[int] | None:
    """Chunk sizes for a grid of ``extents`` such that ``cost(sizes) <= limit``.

    Halves the outermost of the first ``chunkable`` dimensions still above 1, then the next,
    until the cost fits. Returns None when even chunks of 1 along all of them do not fit.
    """
    sizes = list(extents)
    dim = 0
    while cost(sizes) > limit:
        while dim < chunkable and sizes[dim] == 1:
            dim += 1
        if dim >= chunkable:
            return None
        sizes[dim] = (sizes[dim] + 1) // 2
    return sizes


def _chunk_starts(extents: Sequence[int], sizes: Sequence[int]) -> list[tuple[int, ...]]:
    return list(product(*(range(0, e, s) for e, s in zip(extents, sizes, strict=True))))


# ------------------------------------------------------------------------------------------
# one compute op


class _OpEvaluator:
    """Evaluates one compute op over its grid: spatial axes, then reduce axes."""

    def __init__(self, op: ComputeOp, arrays: dict[Tensor, np.ndarray], memory_budget: int):
        self.op = op
        self.arrays = arrays
        self.budget = memory_budget
        self.dtype = dt.to_numpy(op.dtype)
        self.reduce = op.body if isinstance(op.body, Reduce) else None
        self.axes: tuple[IterVar, ...] = op.axis + (self.reduce.axis if self.reduce is not None else ())
        self.extents = [a.extent for a in self.axes]
        self.n_spatial = len(op.axis)
        #: one array per output (several for a tuple reduction)
        self.outs = [np.empty(op.shape, dtype=dt.to_numpy(d)) for d in op.dtypes]
        self.out = self.outs[0]

    def run(self) -> list[np.ndarray]:
        """The op's output arrays, one per output."""
        if self.reduce is not None and self._try_einsum(self.reduce):
            return self.outs
        nodes = sum(1 for _ in post_order(self.op.body))
        bytes_per_point = 8 * (2 + min(nodes, 6))
        sizes = plan_chunks(self.extents, len(self.extents), math.prod, self.budget // bytes_per_point)
        sizes = sizes or [1] * len(self.extents)
        spatial_extents, reduce_extents = self.extents[: self.n_spatial], self.extents[self.n_spatial :]
        spatial_sizes, reduce_sizes = sizes[: self.n_spatial], sizes[self.n_spatial :]
        for s_start in _chunk_starts(spatial_extents, spatial_sizes):
            acc = None
            accs = None  # a tuple reduction's, one per output
            for r_start in _chunk_starts(reduce_extents, reduce_sizes):
                starts = s_start + r_start
                env, shape = self._grid(starts, sizes)
                if self.reduce is None:
                    acc = _Expr(self, env).eval(self.op.body, None)
                elif self.reduce.is_tuple:
                    accs = self._fold_tuple(self.reduce, env, shape, accs)
                else:
                    acc = self._reduce_chunk(self.reduce, env, shape, acc)
            if accs is None:
                assert acc is not None
                accs = (acc,)
            for out, value in zip(self.outs, accs, strict=True):
                self._store(s_start, spatial_sizes, value, out)
        return self.outs

    # grid -----------------------------------------------------------------------------
    def _grid(self, starts: Sequence[int], sizes: Sequence[int]) -> tuple[Env, tuple[int, ...]]:
        """Index arrays of one chunk: axis d is a range shaped (1, .., n_d, .., 1)."""
        env: Env = {}
        shape = []
        ndim = len(self.axes)
        for d, (axis, start, size) in enumerate(zip(self.axes, starts, sizes, strict=True)):
            n = min(size, axis.extent - start)
            view = [1] * ndim
            view[d] = n
            first = axis.dom_min + start
            env[id(axis)] = np.arange(first, first + n, dtype=dt.to_numpy(axis.dtype)).reshape(view)
            shape.append(n)
        return env, tuple(shape)

    def _store(self, starts: Sequence[int], sizes: Sequence[int], value: np.ndarray, out: np.ndarray) -> None:
        """Write one chunk's value (broadcastable, possibly with trailing size-1 reduce
        dimensions) into the output ``out``, cast to its dtype."""
        bounds = [(s, min(s + n, e)) for s, n, e in zip(starts, sizes, self.op.shape, strict=True)]
        shape = tuple(stop - start for start, stop in bounds)
        value = np.asarray(value)
        if value.ndim > len(shape):
            value = value.reshape(value.shape[: len(shape)])
        region = tuple(slice(start, stop) for start, stop in bounds)
        out[region] = np.broadcast_to(value.astype(out.dtype, copy=False), shape)

    # general reduction ------------------------------------------------------------------
    def _reduce_chunk(
        self, reduce: Reduce, env: Env, shape: tuple[int, ...], acc: np.ndarray | None
    ) -> np.ndarray:
        """Reduce one chunk over its reduce dimensions and merge it into ``acc``."""
        evaluator = _Expr(self, env)
        mask = None
        if reduce.condition is not None:
            mask = np.broadcast_to(evaluator.eval(reduce.condition, None), shape)
        source = np.broadcast_to(evaluator.eval(reduce.source, mask), shape)
        axes = tuple(range(self.n_spatial, len(shape)))
        reducer = reduce.reducer
        identity = _Expr(self, {}).eval(reducer.identity(reduce.dtype), None)
        if reducer in (SUM, PROD) and not dt.is_bool(reduce.dtype):
            acc_dtype = _wide_dtype(reduce.dtype)
            if mask is not None:
                source = np.where(mask, source, identity)
            numpy_reduce = np.sum if reducer is SUM else np.prod
            partial = numpy_reduce(source, axis=axes, dtype=acc_dtype, keepdims=True)
            if acc is None:
                return partial
            return acc + partial if reducer is SUM else acc * partial
        if reducer in (MAX, MIN):
            if mask is not None:
                source = np.where(mask, source, identity)
            partial = (np.max if reducer is MAX else np.min)(source, axis=axes, keepdims=True)
            if acc is None:
                return partial
            return np.maximum(acc, partial) if reducer is MAX else np.minimum(acc, partial)
        return self._fold(reduce, source, mask, identity, acc)

    def _fold(
        self, reduce: Reduce, source: np.ndarray, mask: Mask, identity: np.ndarray, acc: np.ndarray | None
    ) -> np.ndarray:
        """Fold a custom reducer's combine expression over the chunk's reduce dimensions."""
        x, y, combined = reduce.reducer.combine_expr(reduce.dtype)
        spatial_shape = source.shape[: self.n_spatial]
        flat = np.ascontiguousarray(source).reshape(*spatial_shape, -1)
        active = None if mask is None else np.ascontiguousarray(mask).reshape(*spatial_shape, -1)

        def combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return _Expr(self, {id(x): a, id(y): b}).eval(combined, None)

        if acc is None:
            acc = np.broadcast_to(identity, spatial_shape).astype(self.dtype)
        else:
            acc = acc.reshape(spatial_shape)
        length = flat.shape[-1]
        if length <= SEQUENTIAL_FOLD_LIMIT:
            for k in range(length):
                step = combine(acc, flat[..., k])
                acc = step if active is None else np.where(active[..., k], step, acc)
        else:
            if active is not None:
                flat = np.where(active, flat, identity)
            while flat.shape[-1] > 1:
                if flat.shape[-1] % 2:
                    pad = np.broadcast_to(identity, (*spatial_shape, 1)).astype(flat.dtype)
                    flat = np.concatenate([flat, pad], axis=-1)
                flat = combine(flat[..., 0::2], flat[..., 1::2])
            acc = combine(acc, flat[..., 0])
        return np.asarray(acc).reshape(*spatial_shape, *([1] * (len(self.axes) - self.n_spatial)))

    def _fold_tuple(
        self, reduce: Reduce, env: Env, shape: tuple[int, ...], acc: tuple[np.ndarray, ...] | None
    ) -> tuple[np.ndarray, ...]:
        """Fold a tuple reducer over the chunk's reduce dimensions in axis order (as the
        naive loop nest does), merging into ``acc``: one array per element of the tuple."""
        reducer = reduce.reducer
        assert isinstance(reducer, TupleReducer)
        evaluator = _Expr(self, env)
        mask = None
        if reduce.condition is not None:
            mask = np.broadcast_to(evaluator.eval(reduce.condition, None), shape)
        dtypes = tuple(s.dtype for s in reduce.sources)
        xs, ys, combined = reducer.combine_exprs(dtypes)
        spatial_shape = shape[: self.n_spatial]
        flats = [
            np.ascontiguousarray(np.broadcast_to(evaluator.eval(s, mask), shape)).reshape(*spatial_shape, -1)
            for s in reduce.sources
        ]
        active = None if mask is None else np.ascontiguousarray(mask).reshape(*spatial_shape, -1)
        if acc is None:
            identity = reducer.identity_tuple(dtypes)
            values = [_Expr(self, {}).eval(e, None) for e in identity]
            acc = tuple(
                np.broadcast_to(v, spatial_shape).astype(dt.to_numpy(d))
                for v, d in zip(values, dtypes, strict=True)
            )
        else:
            acc = tuple(a.reshape(spatial_shape) for a in acc)
        for k in range(flats[0].shape[-1]):
            step_env: Env = {id(x): a for x, a in zip(xs, acc, strict=True)}
            step_env.update({id(y): f[..., k] for y, f in zip(ys, flats, strict=True)})
            step = tuple(
                np.broadcast_to(_Expr(self, step_env).eval(c, None), spatial_shape).astype(dt.to_numpy(d))
                for c, d in zip(combined, dtypes, strict=True)
            )
            if active is not None:
                step = tuple(np.where(active[..., k], s, a) for s, a in zip(step, acc, strict=True))
            acc = step
        trailing = [1] * (len(self.axes) - self.n_spatial)
        return tuple(a.reshape(*spatial_shape, *trailing) for a in acc)

    # sum of products through einsum --------------------------------------------------------
    def _try_einsum(self, reduce: Reduce) -> bool:
        """Contract ``sum(f1 * f2 * ...)`` with einsum; False when the body does not fit."""
        if reduce.reducer is not SUM or reduce.condition is not None or dt.is_bool(reduce.dtype):
            return False
        factors = _product_factors(reduce.source)
        axis_ids = [id(a) for a in self.axes]
        factor_dims = []
        for factor in factors:
            used = {id(v) for v in free_vars(factor)}
            factor_dims.append([d for d, a in enumerate(axis_ids) if a in used])
        used_dims = {d for dims in factor_dims for d in dims}
        if any(d not in used_dims for d in range(self.n_spatial, len(self.axes))):
            return False  # a reduce axis no factor reads: leave it to the general path

        def cost(sizes: list[int]) -> int:
            out = math.prod(sizes[: self.n_spatial])
            return 3 * (out + sum(math.prod(sizes[d] for d in dims) for dims in factor_dims))

        sizes = plan_chunks(self.extents, self.n_spatial, cost, self.budget // 8)
        if sizes is None:
            return False
        acc_dtype = _wide_dtype(reduce.dtype)
        letters = [chr(ord("a") + d) if d < 26 else chr(ord("A") + d - 26) for d in range(len(self.axes))]
        out_dims = sorted(d for d in used_dims if d < self.n_spatial)
        subscripts = ",".join("".join(letters[d] for d in dims) for dims in factor_dims)
        subscripts += "->" + "".join(letters[d] for d in out_dims)
        # factors that use no chunked axis are gathered once and kept across chunks
        chunked = {d for d in range(self.n_spatial) if sizes[d] < self.extents[d]}
        cache: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        spatial_sizes = sizes[: self.n_spatial]
        for s_start in _chunk_starts(self.extents[: self.n_spatial], spatial_sizes):
            starts = list(s_start) + [0] * (len(self.axes) - self.n_spatial)
            env, shape = self._grid(starts, sizes)
            operands = []
            for index, (factor, dims) in enumerate(zip(factors, factor_dims, strict=True)):
                key = (index, tuple(starts[d] for d in dims if d in chunked))
                if key not in cache:
                    value = _Expr(self, env).eval(factor, None)
                    view = tuple(shape[d] if d in dims else 1 for d in range(len(shape)))
                    value = np.broadcast_to(value, view).reshape([shape[d] for d in dims])
                    cache[key] = value.astype(acc_dtype)
                operands.append(cache[key])
            result = np.einsum(subscripts, *operands, optimize=True)
            full = [shape[d] if d in out_dims else 1 for d in range(self.n_spatial)]
            self._store(s_start, spatial_sizes, np.asarray(result).reshape(full), self.out)
            cache = {key: value for key, value in cache.items() if not key[1]}
        return True


def _product_factors(e: Expr) -> list[Expr]:
    """``a * b * c`` as [a, b, c] (only multiplications of the same dtype are flattened)."""
    if isinstance(e, Binary) and e.op is BinaryOp.MUL:
        return _product_factors(e.a) + _product_factors(e.b)
    return [e]


def _wide_dtype(dtype: str) -> np.dtype:
    """Accumulator of sum/prod: float64 for floats, 64-bit integers for integers."""
    if dt.is_float(dtype):
        return np.dtype(np.float64)
    return np.dtype(np.int64 if dt.is_signed_int(dtype) else np.uint64)


# ------------------------------------------------------------------------------------------
# expressions


def _round_half_away(x: np.ndarray) -> np.ndarray:
    t = np.trunc(x)
    return np.where(np.abs(x - t) >= 0.5, t + np.sign(x), t)


_ERF = np.frompyfunc(math.erf, 1, 1)

#: float intrinsics, applied to float64 values
_FLOAT_UNARY: dict[Intrinsic, Callable[[np.ndarray], np.ndarray]] = {
    Intrinsic.EXP: np.exp,
    Intrinsic.EXP2: np.exp2,
    Intrinsic.LOG: np.log,
    Intrinsic.LOG2: np.log2,
    Intrinsic.LOG10: np.log10,
    Intrinsic.SQRT: np.sqrt,
    Intrinsic.RSQRT: lambda x: 1.0 / np.sqrt(x),
    Intrinsic.TANH: np.tanh,
    Intrinsic.SIGMOID: lambda x: 1.0 / (1.0 + np.exp(-x)),
    Intrinsic.ERF: lambda x: np.asarray(_ERF(x), dtype=np.float64),
    Intrinsic.ABS: np.abs,
    Intrinsic.FLOOR: np.floor,
    Intrinsic.CEIL: np.ceil,
    Intrinsic.ROUND: _round_half_away,
    Intrinsic.TRUNC: np.trunc,
    Intrinsic.SIN: np.sin,
    Intrinsic.COS: np.cos,
}
_FLOAT_BINARY: dict[Intrinsic, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    Intrinsic.POW: np.power,
    Intrinsic.FMOD: np.fmod,
}

#: ``BINARY_FUNCTIONS`` on arrays. ``+ - * /`` and, on integers, ``// %`` are numpy's
#: elementwise operators already; max, min and the float divisions need numpy's forms of
#: the same meaning (``tests/ir/test_operators.py`` checks them against the scalar table).
_ARRAY_BINARY: dict[BinaryOp, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    BinaryOp.ADD: BINARY_FUNCTIONS[BinaryOp.ADD],
    BinaryOp.SUB: BINARY_FUNCTIONS[BinaryOp.SUB],
    BinaryOp.MUL: BINARY_FUNCTIONS[BinaryOp.MUL],
    BinaryOp.DIV: BINARY_FUNCTIONS[BinaryOp.DIV],
    BinaryOp.MAX: lambda a, b: np.where(a > b, a, b),
    BinaryOp.MIN: lambda a, b: np.where(a < b, a, b),
}
_ARRAY_INT_DIVISION: dict[BinaryOp, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    BinaryOp.FLOORDIV: BINARY_FUNCTIONS[BinaryOp.FLOORDIV],
    BinaryOp.FLOORMOD: BINARY_FUNCTIONS[BinaryOp.FLOORMOD],
}
_ARRAY_FLOAT_DIVISION: dict[BinaryOp, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    BinaryOp.FLOORDIV: lambda a, b: np.floor(a / b),
    BinaryOp.FLOORMOD: lambda a, b: a - np.floor(a / b) * b,
}


def _and_mask(mask: Mask, cond: np.ndarray) -> tuple[bool, Mask]:
    """``(any point active, mask & cond)``, the mask None when every point is active."""
    combined = cond if mask is None else mask & cond
    if combined.all():
        return True, None
    return bool(combined.any()), combined


class _Expr:
    """Evaluates expressions of one op over a grid chunk. ``env`` maps id(var) to arrays;
    ``mask`` marks the grid points whose value is used (None: all of them)."""

    def __init__(self, owner: _OpEvaluator, env: Env):
        self.owner = owner
        self.env = env

    def eval(self, e: Expr, mask: Mask) -> np.ndarray:
        value = self._dispatch(e, mask)
        expected = dt.to_numpy(e.dtype)
        if value.dtype != expected:
            value = value.astype(expected)
        return value

    def _dispatch(self, e: Expr, mask: Mask) -> np.ndarray:
        rule = _EXPR_RULES.get(type(e))
        if rule is None:
            raise ReferenceEvaluationError(
                f"op '{self.owner.op.name}': cannot evaluate {type(e).__name__} node {e} inside an expression"
            )
        return rule(self, e, mask)

    def _const(self, e: Const, mask: Mask) -> np.ndarray:
        return np.asarray(e.value, dtype=dt.to_numpy(e.dtype))

    def _var(self, e: Var, mask: Mask) -> np.ndarray:
        if id(e) not in self.env:
            raise ReferenceEvaluationError(f"op '{self.owner.op.name}': variable '{e.name}' is not bound")
        return self.env[id(e)]

    def _compare(self, e: Compare, mask: Mask) -> np.ndarray:
        return np.asarray(COMPARE_FUNCTIONS[e.op](self.eval(e.a, mask), self.eval(e.b, mask)))

    def _not(self, e: Not, mask: Mask) -> np.ndarray:
        return np.logical_not(self.eval(e.a, mask))

    def _cast(self, e: Cast, mask: Mask) -> np.ndarray:
        return self.eval(e.value, mask).astype(dt.to_numpy(e.dtype))

    def _read(self, e: TensorRead, mask: Mask) -> np.ndarray:
        array = self.owner.arrays.get(e.tensor)
        if array is None:
            raise ReferenceEvaluationError(
                f"op '{self.owner.op.name}' reads '{e.tensor.name}', which has no value yet"
            )
        indices = []
        for position, (index_expr, extent) in enumerate(zip(e.indices, array.shape, strict=True)):
            index = self.eval(index_expr, mask)
            outside = (index < 0) | (index >= extent)
            if outside.any():
                used = outside if mask is None else outside & mask
                if used.any():
                    bad = int(np.ravel(np.broadcast_to(index, used.shape)[used])[0])
                    raise ReferenceEvaluationError(
                        f"op '{self.owner.op.name}' reads '{e.tensor.name}' out of bounds: index "
                        f"{position} ({index_expr}) takes value {bad}, outside [0, {extent})"
                    )
                index = np.clip(index, 0, extent - 1)
            indices.append(index)
        return np.asarray(array[tuple(indices)])

    def _select(self, e: Select, mask: Mask) -> np.ndarray:
        cond = self.eval(e.cond, mask)
        dtype = dt.to_numpy(e.dtype)
        any_true, taken = _and_mask(mask, cond)
        any_false, skipped = _and_mask(mask, np.logical_not(cond))
        true_value = self.eval(e.true_value, taken) if any_true else np.zeros((), dtype)
        false_value = self.eval(e.false_value, skipped) if any_false else np.zeros((), dtype)
        return np.where(cond, true_value, false_value)

    def _binary(self, e: Binary, mask: Mask) -> np.ndarray:
        a = self.eval(e.a, mask)
        if e.op in (BinaryOp.AND, BinaryOp.OR):
            any_left, rest = _and_mask(mask, a if e.op is BinaryOp.AND else np.logical_not(a))
            if not any_left:
                return a
            b = self.eval(e.b, rest)
            return np.logical_and(a, b) if e.op is BinaryOp.AND else np.logical_or(a, b)
        b = self.eval(e.b, mask)
        if dt.is_bool(e.dtype):  # arithmetic on bools: C promotes to int, nonzero is true
            a, b = a.astype(np.int64), b.astype(np.int64)
        if e.op in _ARRAY_BINARY:
            return np.asarray(_ARRAY_BINARY[e.op](a, b))
        if dt.is_float(e.dtype):
            return np.asarray(_ARRAY_FLOAT_DIVISION[e.op](a, b))
        zero = b == 0
        if not np.any(zero):
            return np.asarray(_ARRAY_INT_DIVISION[e.op](a, b))
        # x // 0 == x % 0 == INT_DIVISION_BY_ZERO (numpy's 0), as the kernel computes it
        result = np.asarray(_ARRAY_INT_DIVISION[e.op](a, np.where(zero, np.ones((), b.dtype), b)))
        return np.where(zero, np.asarray(INT_DIVISION_BY_ZERO, result.dtype), result)

    def _call(self, e: Call, mask: Mask) -> np.ndarray:
        args = [self.eval(a, mask) for a in e.args]
        if not dt.is_float(e.dtype):  # only abs is defined on integers
            return np.asarray(np.abs(args[0]))
        wide = [a.astype(np.float64) for a in args]
        if e.intrinsic in _FLOAT_BINARY:
            return np.asarray(_FLOAT_BINARY[e.intrinsic](wide[0], wide[1]))
        return np.asarray(_FLOAT_UNARY[e.intrinsic](wide[0]))


_EXPR_RULES: dict[type, Callable[[_Expr, Any, Mask], np.ndarray]] = {
    Const: _Expr._const,
    Var: _Expr._var,
    IterVar: _Expr._var,
    TensorRead: _Expr._read,
    Select: _Expr._select,
    Binary: _Expr._binary,
    Compare: _Expr._compare,
    Not: _Expr._not,
    Cast: _Expr._cast,
    Call: _Expr._call,
}


__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "SEQUENTIAL_FOLD_LIMIT",
    "ReferenceEvaluationError",
    "bind_inputs",
    "evaluate",
    "evaluate_all",
    "index_ranges",
    "plan_chunks",
    "random_inputs",
]
