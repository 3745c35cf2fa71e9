"""ComputeDAG: the declaration as a graph of operations in topological order.

Ansor (paper section 4.1) starts every search from this DAG: its ops become the stages of
the initial loop state, its access analysis (``ir.access_analysis``) feeds the sketch
rules, its FLOP count turns measured times into throughput, and its printed form, hashed,
names the workload in tuning records.

The DAG is a pure graph: it knows nothing of loop states. TVM's ``ComputeDAG`` methods on
states are functions of the modules that own states, taking the DAG:
``ir.loop_state.state.initial_state(dag)``, ``ir.loop_state.api.get_init_state(dag)`` and
``ir.lower.bound.infer_bound_from_state(dag, state)``.

The printed form follows TVM's ``ComputeDAG`` text, one line per op, with expressions in
TVM's legacy notation (every binary operation parenthesised, ``0f`` for a float32 zero), so
a DAG printed here reads like the one printed by TVM for the same declaration::

    A = PLACEHOLDER [512, 512]
    B = PLACEHOLDER [512, 512]
    C(i, j) += (A[i, k]*B[k, j])
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from ir import dtype as dt
from ir.access_analysis import AccessAnalyzer
from ir.expr import (
    Binary,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    IterVar,
    Not,
    Reduce,
    Select,
    TensorRead,
    TupleReducer,
    Var,
)
from ir.printer import LEGACY_PRINTER
from ir.te import MAX, MIN, SUM, ComputeOp, Operation, PlaceholderOp, Tensor

#: lines of ``str(dag)`` longer than this are elided in the middle, as TVM does
MAX_LINE_WIDTH = 256


class ComputeDAGError(ValueError):
    """A set of tensors that does not form a valid DAG (missing inputs, repeated names)."""


def topological_ops(tensors: Sequence[Tensor]) -> list[Operation]:
    """All ops reachable from ``tensors``, producers before consumers, in TVM's order.

    As TVM's ``TopoSortOps``: a depth-first walk with an explicit stack (seeded with
    ``tensors`` in order, popped from the end) numbers the ops as it first meets them;
    then Kahn's algorithm emits, among the ops whose inputs are all emitted, the one met
    last. For ``[data, kernel, conv]`` with a padding stage this gives ``data, pad_temp,
    kernel, conv``: each input is placed right before its first consumer, so stage ids
    match those in TVM's logs.
    """
    met: dict[Operation, int] = {}
    waiting: dict[Operation, int] = {}
    consumers: dict[Operation, list[Operation]] = {}
    stack = [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op in met:
            continue
        met[op] = len(met)
        inputs = op.input_tensors
        waiting[op] = len(inputs)
        for t in inputs:
            consumers.setdefault(t.op, []).append(op)
            stack.append(t.op)
    ready = [(-met[op], met[op], op) for op, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[Operation] = []
    while ready:
        _, _, op = heapq.heappop(ready)
        order.append(op)
        for consumer in consumers.get(op, []):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, (-met[consumer], met[consumer], consumer))
    return order


class ComputeDAG:
    """The ops of a declaration, from its input and output tensors (TVM's ComputeDAG).

    ``tensors`` lists inputs then outputs, the order a built kernel takes its arrays in.
    Every placeholder an output depends on must be listed.
    """

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors: tuple[Tensor, ...] = tuple(tensors)
        for t in self.tensors:
            if not isinstance(t, Tensor):
                raise ComputeDAGError(f"ComputeDAG takes te tensors, got {t!r}")
        outputs = [t for t in self.tensors if isinstance(t.op, ComputeOp)]
        listed = [t for t in self.tensors if isinstance(t.op, PlaceholderOp)]
        self.ops: tuple[Operation, ...] = tuple(topological_ops(self.tensors))
        listed_ids = {id(t.op) for t in listed}
        missing = [op.name for op in self.ops if isinstance(op, PlaceholderOp) and id(op) not in listed_ids]
        if missing:
            raise ComputeDAGError(
                f"ComputeDAG: placeholder(s) {missing} are read but not among the tensors given; "
                "list every input tensor"
            )
        names = [op.name for op in self.ops]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ComputeDAGError(
                f"ComputeDAG: operation names {repeated} repeat; give each op a unique name"
            )
        if not outputs:
            raise ComputeDAGError("ComputeDAG needs at least one compute (output) tensor")
        for op in self.ops:
            # the outputs of a tuple reduction are kernel parameters, all of them
            absent = [t.name for t in op.outputs if op.num_outputs > 1 and t not in self.tensors]
            if absent:
                raise ComputeDAGError(
                    f"ComputeDAG: op '{op.name}' has {op.num_outputs} outputs; list all of them among "
                    f"the tensors (missing {absent})"
                )
        _check_iterator_names(self.ops)
        self.placeholders: tuple[Tensor, ...] = tuple(listed)
        self.outputs: tuple[Tensor, ...] = tuple(outputs)
        self.access_analyzer = AccessAnalyzer(self.ops)
        #: estimated floating-point operations of one run (see ``estimate_flop``)
        self.flop_ct: float = estimate_flop(self.ops)

    def op_by_name(self, name: str) -> Operation:
        for op in self.ops:
            if op.name == name:
                return op
        raise ComputeDAGError(f"ComputeDAG has no op named '{name}'")

    # printing and naming ---------------------------------------------------------------
    def print_dag(self, simple_mode: bool = False) -> str:
        """The DAG as text, one line per op (TVM's ``PrintDAG``).

        Placeholders print as ``A = PLACEHOLDER [512, 512]`` (no shape in ``simple_mode``);
        compute ops as ``name(axes) = body``, reductions as ``name(axes) += source`` for
        sum, ``max=`` and ``min=``, and ``name(axes) <reducer name>= source`` for any other
        reducer (TVM prints a ``where=`` condition nowhere; this printer appends ``  where
        <cond>``). Unlike TVM, ``simple_mode`` keeps call bodies in full, so that two pads
        with different offsets never share a workload key.
        """
        lines = []
        for op in self.ops:
            if isinstance(op, PlaceholderOp):
                shape = "" if simple_mode else "[" + ", ".join(str(e) for e in op.shape) + "]"
                lines.append(f"{op.name} = PLACEHOLDER {shape}")
            else:
                assert isinstance(op, ComputeOp)
                lines.append(_compute_line(op))
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        """``print_dag()`` with lines over MAX_LINE_WIDTH characters elided in the middle."""
        half = MAX_LINE_WIDTH // 2
        lines = [
            line if len(line) <= MAX_LINE_WIDTH else line[:half] + " ..(OMITTED).. " + line[-half:]
            for line in self.print_dag().split("\n")
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        names = ", ".join(t.name for t in self.tensors)
        return f"ComputeDAG({names})"

    def workload_key(self) -> str:
        """``json.dumps([md5(print_dag(simple_mode=True)), shape of each tensor...])``.

        Depends only on op names, iterator names, expressions and shapes, never on object
        identities, so two separately built copies of a declaration share their key, in any
        process; a changed shape or body changes it.
        """
        digest = hashlib.md5(self.print_dag(simple_mode=True).encode("utf-8")).hexdigest()
        return json.dumps([digest, *[list(t.shape) for t in self.tensors]])


def _check_iterator_names(ops: Sequence[Operation]) -> None:
    """Each compute op's spatial and reduce axes must have distinct names (TVM checks this
    too: loop names are how states, records and printed code refer to iterators)."""
    for op in ops:
        if isinstance(op, ComputeOp):
            names = [a.name for a in op.axis + op.reduce_axis]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ComputeDAGError(
                    f"ComputeDAG: op '{op.name}' has iterator name(s) {repeated} more than once "
                    f"among its axes {names}; give each axis a unique name"
                )


# ------------------------------------------------------------------------------------------
# TVM legacy expression text


def _compute_line(op: ComputeOp) -> str:
    head = f"{op.name}({', '.join(a.name for a in op.axis)})"
    body = op.body
    if not isinstance(body, Reduce):
        return f"{head} = {LEGACY_PRINTER.expr(body)}"
    symbol = _REDUCE_SYMBOLS.get(id(body.reducer), body.reducer.name + "=")
    if body.is_tuple:  # T.v0(i), T.v1(i) argmax= (k, A[i, k])
        axes = ", ".join(a.name for a in op.axis)
        head = ", ".join(f"{t.name}({axes})" for t in op.outputs)
        sources = ", ".join(LEGACY_PRINTER.expr(s) for s in body.sources)
        line = f"{head} {symbol} ({sources})"
    else:
        line = f"{head} {symbol} {LEGACY_PRINTER.expr(body.source)}"
    if body.condition is not None:
        line += f"  where {LEGACY_PRINTER.expr(body.condition)}"
    return line


_REDUCE_SYMBOLS = {id(SUM): "+=", id(MAX): "max=", id(MIN): "min="}


# ------------------------------------------------------------------------------------------
# FLOP estimation


def _type_class(dtype: str) -> str:
    """TVM's type code: float, int, or uint (bool is a 1-bit uint in TVM)."""
    if dt.is_float(dtype):
        return "float"
    return "int" if dt.is_signed_int(dtype) else "uint"


def estimate_flop(ops: Sequence[Operation]) -> float:
    """Estimated operation count of one run of ``ops`` (TVM's ``FlopEstimator``).

    A compute op with an integer attribute ``"FLOP"`` contributes that number. Otherwise it
    contributes (product of its spatial extents) x (operations per element), where each
    arithmetic, comparison or logic node whose dtype has the output's type class (float,
    int, uint/bool) counts 1; a Select counts its condition plus the dearer side; casts,
    calls (intrinsics) and reads count only their operands, so ``exp`` itself is free, as in
    TVM; index arithmetic is never visited. A reduction counts (product of reduce extents)
    x (combiner + source). Matmul N x M x K gives 2NMK.
    """
    total = 0.0
    for op in ops:
        if not isinstance(op, ComputeOp):
            continue
        if "FLOP" in op.attrs:
            flop = op.attrs["FLOP"]
            if not isinstance(flop, int) or isinstance(flop, bool):
                raise ComputeDAGError(f"op '{op.name}': attribute FLOP must be an int, got {flop!r}")
            total += flop
            continue
        per_element = _flop(op.body, _type_class(op.dtype))
        total += math.prod(op.shape) * per_element
    return total


def _flop(e: Expr, type_class: str) -> float:
    """Operations of ``e`` whose dtype has ``type_class`` (the rules of ``estimate_flop``)."""
    rule = _FLOP_RULES.get(type(e))
    if rule is None:
        raise TypeError(f"no FLOP rule for expression node {type(e).__name__}")
    return rule(e, type_class)


def _leaf_flop(e: Const | Var | TensorRead, type_class: str) -> float:
    return 0.0


def _cast_flop(e: Cast, type_class: str) -> float:
    return _flop(e.value, type_class)


def _select_flop(e: Select, type_class: str) -> float:
    cond = _flop(e.cond, type_class)
    return cond + max(_flop(e.true_value, type_class), _flop(e.false_value, type_class))


def _operator_flop(e: Binary | Compare, type_class: str) -> float:
    base = 1.0 if _type_class(e.dtype) == type_class else 0.0
    return base + _flop(e.a, type_class) + _flop(e.b, type_class)


def _not_flop(e: Not, type_class: str) -> float:
    base = 1.0 if _type_class(e.dtype) == type_class else 0.0
    return base + _flop(e.a, type_class)


def _call_flop(e: Call, type_class: str) -> float:
    return sum(_flop(a, type_class) for a in e.args)


def _reduce_flop(e: Reduce, type_class: str) -> float:
    iterations = math.prod(a.extent for a in e.axis)
    if isinstance(e.reducer, TupleReducer):
        # each element of the tuple counted in its own type class
        dtypes = tuple(s.dtype for s in e.sources)
        combined = e.reducer.combine_exprs(dtypes)[2]
        per_point = sum(
            _flop(c, _type_class(s.dtype)) + _flop(s, _type_class(s.dtype))
            for c, s in zip(combined, e.sources, strict=True)
        )
        return iterations * per_point
    combiner = e.reducer.combine_expr(e.dtype)[2]
    return iterations * (_flop(combiner, type_class) + _flop(e.source, type_class))


_FLOP_RULES: dict[type, Callable[[Any, str], float]] = {
    Const: _leaf_flop,
    Var: _leaf_flop,
    IterVar: _leaf_flop,
    TensorRead: _leaf_flop,
    Cast: _cast_flop,
    Select: _select_flop,
    Binary: _operator_flop,
    Compare: _operator_flop,
    Not: _not_flop,
    Call: _call_flop,
    Reduce: _reduce_flop,
}
