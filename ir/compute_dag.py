"""ComputeDAG: the declaration as a graph of operations in topological order.

Ansor (paper section 4.1) starts every search from this DAG: its ops become the stages of
the initial loop state, its access analysis (``ir.access_analysis``) feeds the sketch
rules, its FLOP count turns measured times into throughput, and its printed form, hashed,
names the workload in tuning records.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ir import dtype as dt
from ir.access_analysis import AccessAnalyzer
from ir.expr import (
    Binary,
    BinaryOp,
    Call,
    Cast,
    Compare,
    Const,
    Expr,
    Not,
    Reduce,
    Select,
    TensorRead,
    Var,
)
from ir.te import MAX, MIN, SUM, ComputeOp, Operation, PlaceholderOp, Tensor

if TYPE_CHECKING:
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState

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
        _check_iterator_names(self.ops)
        self.placeholders: tuple[Tensor, ...] = tuple(listed)
        self.outputs: tuple[Tensor, ...] = tuple(outputs)
        self.access_analyzer = AccessAnalyzer(self.ops)
        #: estimated floating-point operations of one run (see ``estimate_flop``)
        self.flop_ct: float = estimate_flop(self.ops)
        self._init_state: LoopState | None = None

    @property
    def init_state(self) -> LoopState:
        """The naive loop state: one root stage per op, loops in axis order."""
        if self._init_state is None:
            from ir.loop_state.state import LoopState, make_stage

            self._init_state = LoopState(tuple(make_stage(op) for op in self.ops), (), None, True)
        return self._init_state

    def op_by_name(self, name: str) -> Operation:
        for op in self.ops:
            if op.name == name:
                return op
        raise ComputeDAGError(f"ComputeDAG has no op named '{name}'")

    def get_init_state(self) -> State:
        """A mutable State handle on the initial loop state (TVM's ``get_init_state``)."""
        from ir.loop_state.api import State

        return State(self)

    def infer_bound_from_state(self, state: State | LoopState) -> State | LoopState:
        """``state`` with every iterator's range filled by bound inference (TVM's
        ``infer_bound_from_state``); a State handle in gives a new State handle out."""
        from ir.loop_state.state import LoopState
        from ir.lower.bound import infer_bound

        if isinstance(state, LoopState):
            return infer_bound(self, state)
        from ir.loop_state.api import State

        return State(self, infer_bound(self, state.loop_state))

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
        return f"{head} = {legacy_str(body)}"
    symbol = _REDUCE_SYMBOLS.get(id(body.reducer), body.reducer.name + "=")
    line = f"{head} {symbol} {legacy_str(body.source)}"
    if body.condition is not None:
        line += f"  where {legacy_str(body.condition)}"
    return line


_REDUCE_SYMBOLS = {id(SUM): "+=", id(MAX): "max=", id(MIN): "min="}

#: binary operators printed infix with spaces, as TVM's legacy printer does
_SPACED = {BinaryOp.ADD, BinaryOp.SUB, BinaryOp.AND, BinaryOp.OR}
#: binary operators printed as a function call
_FUNCTION_STYLE = {
    BinaryOp.FLOORDIV: "floordiv",
    BinaryOp.FLOORMOD: "floormod",
    BinaryOp.MAX: "max",
    BinaryOp.MIN: "min",
}


def _format_float(value: float) -> str:
    """C++ ``ostream`` default format (``%g``), or the exact repr when %g would lose digits."""
    text = f"{value:g}"
    return text if float(text) == value or math.isnan(value) else repr(value)


def legacy_str(e: Expr) -> str:
    """``e`` in TVM's legacy text: ``(a + b)``, ``(a*b)``, ``floordiv(a, b)``, ``max(a, b)``,
    ``tir.exp(x)``, ``tir.if_then_else(c, t, f)``, ``float32(x)``, ``0f``, ``(int64)1``."""
    if isinstance(e, Const):
        if dt.is_float(e.dtype):
            suffix = {"float32": "f", "float16": "h"}.get(e.dtype, "")
            return _format_float(float(e.value)) + suffix
        if e.dtype == "int32":
            return str(e.value)
        return f"({e.dtype}){int(e.value)}"
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Binary):
        a, b = legacy_str(e.a), legacy_str(e.b)
        if e.op in _FUNCTION_STYLE:
            return f"{_FUNCTION_STYLE[e.op]}({a}, {b})"
        sep = f" {e.op.value} " if e.op in _SPACED else e.op.value
        return f"({a}{sep}{b})"
    if isinstance(e, Compare):
        return f"({legacy_str(e.a)} {e.op.value} {legacy_str(e.b)})"
    if isinstance(e, Not):
        return f"!{legacy_str(e.a)}"
    if isinstance(e, Select):
        parts = (legacy_str(e.cond), legacy_str(e.true_value), legacy_str(e.false_value))
        return f"tir.if_then_else({', '.join(parts)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({legacy_str(e.value)})"
    if isinstance(e, Call):
        return f"tir.{e.intrinsic.value}({', '.join(legacy_str(a) for a in e.args)})"
    if isinstance(e, TensorRead):
        return f"{e.tensor.name}[{', '.join(legacy_str(i) for i in e.indices)}]"
    if isinstance(e, Reduce):
        return f"reduce({e.reducer.name}, {legacy_str(e.source)})"
    raise TypeError(f"no DAG printer for expression node {type(e).__name__}")


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
    if isinstance(e, (Const, Var, TensorRead)):
        return 0.0
    if isinstance(e, Cast):
        return _flop(e.value, type_class)
    if isinstance(e, Select):
        cond = _flop(e.cond, type_class)
        return cond + max(_flop(e.true_value, type_class), _flop(e.false_value, type_class))
    if isinstance(e, (Binary, Compare)):
        base = 1.0 if _type_class(e.dtype) == type_class else 0.0
        return base + _flop(e.a, type_class) + _flop(e.b, type_class)
    if isinstance(e, Not):
        base = 1.0 if _type_class(e.dtype) == type_class else 0.0
        return base + _flop(e.a, type_class)
    if isinstance(e, Call):
        return sum(_flop(a, type_class) for a in e.args)
    if isinstance(e, Reduce):
        iterations = math.prod(a.extent for a in e.axis)
        combiner = e.reducer.combine_expr(e.dtype)[2]
        return iterations * (_flop(combiner, type_class) + _flop(e.source, type_class))
    raise TypeError(f"no FLOP rule for expression node {type(e).__name__}")
