"""Static access analysis of a ComputeDAG (Ansor's ``AccessAnalyzer``, paper section 4.1).

The sketch rules of the search (paper Table 1) never look at a loop nest; they ask a few
questions about *how each op reads its producers*:

- ``is_strictly_inlineable(op)``: rule 2 "Always Inline" (IsStrictInlinable in the paper);
- ``needs_multi_level_tiling(op)``: rule 3 "Multi-level Tiling" (HasDataReuse);
- ``elementwise_match(op, consumer)``: rule 4 "Tiling with Fusion" (HasFusibleConsumer);
- ``num_common_outer_iterators``, ``get_consumers``, ``get_producers``: where a stage may be
  computed at, cache stages, cross-thread reduction. A loop state matters to the last two
  only through the ops it inlines, which the caller passes (``LoopState.inlined_ops()``).

This module answers those questions once per DAG, following TVM's ``compute_dag.cc``
definitions exactly (including their corner cases, documented on each method), so that
sketch counts match TVM's on the same declarations.

Vocabulary. An *access* is the index tuple of one ``TensorRead``. An index is
*const-shift equal* to an axis ``v`` when it is ``v``, ``v + c``, ``v - c`` or ``c + v`` for
an integer constant ``c``. An access of op ``O`` is *simple* when every index is an integer
constant or const-shift equal to one of ``O``'s spatial axes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from itertools import pairwise

from ir import dtype as dt
from ir.expr import (
    Binary,
    BinaryOp,
    Call,
    Const,
    Expr,
    Intrinsic,
    Select,
    TensorRead,
    Var,
    post_order,
)
from ir.te import ComputeOp, Operation

Access = tuple[Expr, ...]
ReadMap = dict[Operation, list[Access]]

#: op attribute that marks "fake reductions" over constant tensors (Winograd transforms);
#: such ops are never multi-level tiled
SIMPLIFY_CONST_TENSOR_INDICES = "auto_scheduler_simplify_const_tensor_indices"

#: intrinsics too expensive to recompute in every consumer (TVM checks only ``exp``)
EXPENSIVE_INTRINSICS = frozenset({Intrinsic.EXP})


class AccessAnalysisError(KeyError):
    """An op that is not part of the analysed DAG."""


def is_const_shift_equal(var: Var, index: Expr) -> bool:
    """True when ``index`` is ``var``, ``var + c``, ``var - c`` or ``c + var`` (c an int constant)."""
    if index is var:
        return True
    if isinstance(index, Binary) and index.op in (BinaryOp.ADD, BinaryOp.SUB):
        if index.a is var and _is_int_const(index.b):
            return True
        if index.op is BinaryOp.ADD and index.b is var and _is_int_const(index.a):
            return True
    return False


def _is_int_const(e: Expr) -> bool:
    return isinstance(e, Const) and dt.is_int(e.dtype)


def simple_access_info(op: Operation, access: Access) -> tuple[bool, bool, bool] | None:
    """Classify one access made by ``op`` (TVM's ``IsSimpleAccess``).

    Returns None when the access is not simple (``op`` is a placeholder, or an index is
    neither an int constant nor const-shift equal to an axis of ``op``); otherwise
    ``(axis_missing, axis_duplicated, same_order)``: whether some spatial axis of ``op``
    appears in no index, whether one appears in two, and whether the axes appear in
    ``op.axis`` order. ``A[i, j+1]`` in ``C(i, j)`` is simple and in order; ``A[j, i]`` is
    simple but transposed; ``A[i + j]`` is not simple.
    """
    if not isinstance(op, ComputeOp):
        return None
    positions: list[int] = []
    counts = [0] * len(op.axis)
    for index in access:
        if _is_int_const(index):
            continue
        for position, axis in enumerate(op.axis):
            if is_const_shift_equal(axis, index):
                positions.append(position)
                counts[position] += 1
                break
        else:
            return None
    axis_missing = any(c == 0 for c in counts)
    axis_duplicated = any(c > 1 for c in counts)
    same_order = all(a <= b for a, b in pairwise(positions))
    return axis_missing, axis_duplicated, same_order


def _reads_and_branch(op: ComputeOp) -> tuple[ReadMap, bool]:
    """All reads in ``op``'s body grouped by producer (first-read order), and whether the
    body contains a branch (a Select / if_then_else)."""
    reads: ReadMap = {}
    has_branch = False
    for node in post_order(op.body):
        if isinstance(node, TensorRead):
            reads.setdefault(node.tensor.op, []).append(node.indices)
        elif isinstance(node, Select):
            has_branch = True
    return reads, has_branch


def _has_expensive_op(e: Expr) -> bool:
    return any(isinstance(n, Call) and n.intrinsic in EXPENSIVE_INTRINSICS for n in post_order(e))


def _vars_in(accesses: Iterable[Access]) -> set[int]:
    return {id(n) for access in accesses for index in access for n in post_order(index) if isinstance(n, Var)}


class AccessAnalyzer:
    """Read relations and static predicates of every op of a DAG (TVM's AccessAnalyzer).

    ``ops`` must be in topological order (producers first), as ``ComputeDAG.ops`` is.
    Every method takes ops of that DAG and raises AccessAnalysisError for any other op.
    """

    def __init__(self, ops: Sequence[Operation]):
        self.ops: tuple[Operation, ...] = tuple(ops)
        self._topo_index = {op: index for index, op in enumerate(self.ops)}
        self._read_from: dict[Operation, ReadMap] = {}
        self._read_by: dict[Operation, ReadMap] = {op: {} for op in self.ops}
        self._common: dict[Operation, dict[Operation, int]] = {op: {} for op in self.ops}
        self._simple: dict[Operation, bool] = {}
        self._inlineable: dict[Operation, bool] = {}
        self._tiling: dict[Operation, bool] = {}
        for op in self.ops:
            self._analyse_reads(op)
        for op in self.ops:
            self._analyse_op(op)

    # construction ------------------------------------------------------------------------
    def _analyse_reads(self, op: Operation) -> None:
        if not isinstance(op, ComputeOp):
            self._read_from[op] = {}
            return
        reads, has_branch = _reads_and_branch(op)
        self._read_from[op] = reads
        self._inlineable[op] = not has_branch  # refined in _analyse_op
        for producer, accesses in reads.items():
            if producer not in self._read_by:
                raise AccessAnalysisError(
                    f"op '{op.name}' reads '{producer.name}', which is not an op of this DAG"
                )
            self._read_by[producer].setdefault(op, []).extend(accesses)
            n_common = self._count_common_outer(op, producer, accesses)
            self._common[op][producer] = n_common
            self._common[producer][op] = n_common

    @staticmethod
    def _count_common_outer(op: ComputeOp, producer: Operation, accesses: list[Access]) -> int:
        """Leading dimensions where ``op`` and ``producer`` have equal extents and every
        access indexes the producer by ``op``'s axis of that position (plus a constant)."""
        out_shape, in_shape = op.output.shape, producer.output.shape
        n_common = 0
        while n_common < min(len(out_shape), len(in_shape)):
            if out_shape[n_common] != in_shape[n_common]:
                break
            axis = op.axis[n_common]
            if not all(is_const_shift_equal(axis, access[n_common]) for access in accesses):
                break
            n_common += 1
        return n_common

    def _analyse_op(self, op: Operation) -> None:
        if not isinstance(op, ComputeOp):
            self._simple[op] = True
            self._inlineable[op] = False
            self._tiling[op] = False
            return
        simple = True
        inlineable = self._inlineable[op]
        for accesses in self._read_from[op].values():
            for access in accesses:
                info = simple_access_info(op, access)
                if info is None:
                    simple = inlineable = False
                    break
                _, duplicated, same_order = info
                if duplicated or not same_order:
                    inlineable = False  # never strictly inline a transpose
            if not simple:
                break
        if _has_expensive_op(op.body):
            inlineable = False
        if not self._read_from[op]:
            inlineable = True  # a constant tensor is always inlineable
        self._simple[op] = simple
        self._inlineable[op] = inlineable
        self._tiling[op] = self._compute_needs_tiling(op)

    def _compute_needs_tiling(self, op: ComputeOp) -> bool:
        """TVM's rule, literally: count the read tensors that miss at least one spatial axis
        of extent > 1 (each tensor counts once); tiling is needed when two tensors miss an
        axis, or one does and the op reduces."""
        if SIMPLIFY_CONST_TENSOR_INDICES in op.attrs:
            return False
        n_missing = 0
        for accesses in self._read_from[op].values():
            used = _vars_in(accesses)
            if any(axis.extent > 1 and id(axis) not in used for axis in op.axis):
                n_missing += 1
            if n_missing >= 2 or (n_missing >= 1 and op.reduce_axis):
                return True
        return False

    def _check(self, op: Operation) -> None:
        if op not in self._topo_index:
            raise AccessAnalysisError(f"op '{op.name}' is not part of the analysed DAG")

    # relations -----------------------------------------------------------------------------
    def read_from(self, op: Operation) -> ReadMap:
        """Producers read by ``op``, each with the index tuples of every read, in read order."""
        self._check(op)
        return {producer: list(accesses) for producer, accesses in self._read_from[op].items()}

    def read_by(self, op: Operation) -> ReadMap:
        """Consumers of ``op`` (topological order), each with the index tuples they read it at."""
        self._check(op)
        return {consumer: list(accesses) for consumer, accesses in self._read_by[op].items()}

    # predicates ----------------------------------------------------------------------------
    def is_simple_access(self, op: Operation) -> bool:
        """Every read of ``op`` is simple (see the module doc); placeholders are simple."""
        self._check(op)
        return self._simple[op]

    def is_strictly_inlineable(self, op: Operation) -> bool:
        """Inlining ``op`` into its consumers never costs extra work (paper: IsStrictInlinable).

        True for a compute op whose reads are all simple, in axis order, with no axis
        repeated, whose body calls no expensive intrinsic (``exp``) and has no branch
        (Select / if_then_else); also True for a compute op that reads nothing (a constant
        tensor). Placeholders are never inlineable. Padding (a Select) is therefore *not*
        strictly inlineable: the CPU rules inline it only because it is elementwise.
        """
        self._check(op)
        return self._inlineable[op]

    def needs_multi_level_tiling(self, op: Operation) -> bool:
        """``op`` reuses data enough to deserve multi-level tiling (paper: HasDataReuse).

        Counting read tensors that miss a spatial axis of extent > 1 of ``op`` (a tensor
        missing several axes counts once): True when at least two tensors miss an axis, or
        when one does and ``op`` has a reduction. Matmul (A misses j) and conv2d (the
        kernel misses the spatial axes) need it; elementwise ops and ``C[i, j] = A[i, j] +
        b[0]`` do not; the outer product ``A[i] * B[j]`` does. False for placeholders and
        for ops carrying the ``auto_scheduler_simplify_const_tensor_indices`` attribute.
        """
        self._check(op)
        return self._tiling[op]

    def is_output(self, op: Operation) -> bool:
        """A compute op no other op reads. Placeholders are not outputs."""
        self._check(op)
        return isinstance(op, ComputeOp) and not self._read_by[op]

    def num_common_outer_iterators(self, op: Operation, target_op: Operation) -> int:
        """How many outer loops ``op`` can share with ``target_op``, a (transitive) consumer.

        For each producer/consumer pair the count is the number of leading dimensions with
        equal extents indexed const-shift equal to the consumer's axis in every access;
        along a path the minimum is taken, and over several paths the minimum again. 0
        when ``target_op`` does not consume ``op``; ``op``'s rank when they are the same op.
        """
        self._check(op)
        self._check(target_op)
        best: int | None = None
        stack = [(op, len(op.output.shape))]
        while stack:
            current, count = stack.pop()
            if current is target_op:
                best = count if best is None else min(best, count)
                continue
            for consumer in self._read_by[current]:
                stack.append((consumer, min(count, self._common[current][consumer])))
        return 0 if best is None else best

    def elementwise_match(self, op: Operation, target_op: Operation) -> bool:
        """``target_op`` consumes ``op`` through a chain of single-consumer elementwise ops.

        Walking from ``op``: each op on the way must have exactly one consumer, both must be
        compute ops of the same output shape, and every read of the current op by the next
        must be simple with no axis missing, repeated or reordered. True when the walk
        reaches ``target_op`` (also when ``op is target_op``).
        """
        self._check(op)
        self._check(target_op)
        current = op
        while current is not target_op:
            consumers = self._read_by[current]
            if len(consumers) != 1:
                return False
            ((consumer, accesses),) = consumers.items()
            if not isinstance(current, ComputeOp) or not isinstance(consumer, ComputeOp):
                return False
            if current.output.shape != consumer.output.shape:
                return False
            for access in accesses:
                info = simple_access_info(consumer, access)
                if info is None or info[0] or info[1] or not info[2]:
                    return False
            current = consumer
        return True

    # state-dependent relations -----------------------------------------------------------
    def get_consumers(self, op: Operation, inlined: Collection[Operation] = ()) -> list[Operation]:
        """Ops that read ``op`` in a state that inlines ``inlined`` (TVM's ``GetConsumers``):
        an inlined consumer is looked through, so its own consumers count instead.
        Topological order, no repeats."""
        return self._collect(op, inlined, self._read_by)

    def get_producers(self, op: Operation, inlined: Collection[Operation] = ()) -> list[Operation]:
        """Ops ``op`` reads in a state that inlines ``inlined``, looking through inlined
        producers (TVM's ``GetProducers``). Topological order."""
        return self._collect(op, inlined, self._read_from)

    def get_direct_producers(self, op: Operation) -> list[Operation]:
        """Ops ``op``'s body reads, regardless of inlining. Topological order."""
        self._check(op)
        return sorted(self._read_from[op], key=self._topo_index.__getitem__)

    def _collect(
        self, op: Operation, inlined: Collection[Operation], edges: dict[Operation, ReadMap]
    ) -> list[Operation]:
        self._check(op)
        found: set[Operation] = set()
        stack = [op]
        seen: set[Operation] = set()
        while stack:
            current = stack.pop()
            for neighbour in edges[current]:
                if neighbour in inlined:
                    if neighbour not in seen:
                        seen.add(neighbour)
                        stack.append(neighbour)
                else:
                    found.add(neighbour)
        return sorted(found, key=self._topo_index.__getitem__)

    # printing ------------------------------------------------------------------------------
    def __str__(self) -> str:
        """One block per op: the four predicates and the reads, as TVM prints the analyzer."""
        lines: list[str] = []
        for op in self.ops:
            lines.append(
                f"{op.name}: simple_access={self.is_simple_access(op)} "
                f"strictly_inlineable={self.is_strictly_inlineable(op)} "
                f"needs_multi_level_tiling={self.needs_multi_level_tiling(op)} "
                f"is_output={self.is_output(op)}"
            )
            reads = ", ".join(
                f"{producer.name}[{', '.join(str(i) for i in access)}]"
                for producer, accesses in self._read_from[op].items()
                for access in accesses
            )
            lines.append(f"  reads: {reads}")
        return "\n".join(lines)


__all__ = [
    "SIMPLIFY_CONST_TENSOR_INDICES",
    "AccessAnalysisError",
    "AccessAnalyzer",
    "is_const_shift_equal",
    "simple_access_info",
]
