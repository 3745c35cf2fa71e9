"""Multi-level tiling and tile-size enumeration (TVM ``search_policy/utils.cc``).

Multi-level tiling is the structure Ansor gives every op with data reuse (paper section
4.1, rule 3): with the CPU structure "SSRSRS", each spatial iterator is split into four
levels and each reduction iterator into two, all lengths left unknown, and the pieces are
reordered level by level. For matmul C[i, j] += A[i, k] * B[k, j]:

    i.0 j.0 | i.1 j.1 | k.0 | i.2 j.2 | k.1 | i.3 j.3

``follow_tiling`` tiles a consumer like its producer's outer levels (rule 4, fusion), and
``SplitFactorizationMemo`` lists the ways to fill a split's unknown lengths (section 4.2,
"tile size"), memoised because the same extents recur in every sampled candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ansor_py.search.stage_queries import no_split_at_inner
from ir.loop_state.api import State
from ir.loop_state.enums import IteratorKind
from ir.loop_state.state import LoopState, ScheduleError

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG


def multi_level_tiling(
    dag: ComputeDAG, state: LoopState, stage_id: int, structure: str
) -> tuple[LoopState, list[int]]:
    """Tile stage ``stage_id`` with ``structure`` (S/R letters, outer to inner); returns the
    new state and the indices of the split steps on spatial iterators, in iterator order.

    Iterators named in the op attribute ``auto_scheduler_no_split_at_inner`` stay whole
    and go to the innermost level of their kind.
    """
    structure = structure.upper()
    n_space, n_reduce = structure.count("S"), structure.count("R")
    stage = state.stages[stage_id]
    keep_whole = no_split_at_inner(stage)
    levels: dict[IteratorKind, list[list[str]]] = {
        IteratorKind.SPATIAL: [[] for _ in range(n_space)],
        IteratorKind.REDUCTION: [[] for _ in range(n_reduce)],
    }
    inner: dict[IteratorKind, list[str]] = {IteratorKind.SPATIAL: [], IteratorKind.REDUCTION: []}
    s = State(dag, state)
    split_step_ids: list[int] = []
    for it in stage.iters:
        if it.kind not in levels:
            raise ScheduleError(
                f"cannot tile stage '{stage.name}': iterator '{it.name}' is {it.kind.value}; "
                "multi-level tiling takes spatial and reduction iterators only"
            )
        if it.name in keep_whole:
            inner[it.kind].append(it.name)
            continue
        kind_levels = levels[it.kind]
        if not kind_levels:
            raise ScheduleError(
                f"cannot tile stage '{stage.name}' with structure {structure!r}: it has no level for "
                f"the {it.kind.value} iterator '{it.name}'"
            )
        if len(kind_levels) == 1:
            kind_levels[0].append(it.name)
            continue
        children = s.split(stage_id, it.name, [None] * (len(kind_levels) - 1))
        for level, child in zip(kind_levels, children, strict=True):
            level.append(child.name)
        if it.kind is IteratorKind.SPATIAL:
            split_step_ids.append(len(s.transform_steps) - 1)
    for kind, names in inner.items():
        if names:
            levels[kind][-1][:0] = names
    order: list[str] = []
    counters = {"S": 0, "R": 0}
    for letter in structure:
        kind = IteratorKind.SPATIAL if letter == "S" else IteratorKind.REDUCTION
        order.extend(levels[kind][counters[letter]])
        counters[letter] += 1
    s.reorder(stage_id, order)
    return s.loop_state, split_step_ids


def follow_tiling(
    dag: ComputeDAG, state: LoopState, stage_id: int, split_step_ids: Sequence[int], n_split: int
) -> LoopState:
    """Tile the (all-spatial) stage ``stage_id`` like the producer whose spatial splits are
    ``split_step_ids``: each iterator follows its split's outer ``n_split`` levels
    (``FollowSplitStep``), then the pieces are reordered level by level (TVM FollowTiling).
    """
    if not 1 <= n_split <= 3:
        raise ScheduleError(f"follow_tiling: n_split {n_split} must be 1, 2 or 3")
    stage = state.stages[stage_id]
    keep_whole = no_split_at_inner(stage)
    n_to_split = sum(1 for it in stage.iters if it.name not in keep_whole)
    if n_to_split != len(split_step_ids):
        raise ScheduleError(
            f"cannot follow-tile stage '{stage.name}': it has {n_to_split} iterators to split but "
            f"{len(split_step_ids)} source split steps were given"
        )
    levels: list[list[str]] = [[] for _ in range(n_split + 1)]
    s = State(dag, state)
    count = 0
    for it in stage.iters:
        if it.kind is not IteratorKind.SPATIAL:
            raise ScheduleError(
                f"cannot follow-tile stage '{stage.name}': iterator '{it.name}' is {it.kind.value}, "
                "not spatial"
            )
        if it.name in keep_whole:
            levels[n_split].append(it.name)
            continue
        children = s.follow_split(stage_id, it.name, split_step_ids[count], n_split)
        for level, child in zip(levels, children, strict=True):
            level.append(child.name)
        count += 1
    s.reorder(stage_id, [name for level in levels for name in level])
    return s.loop_state


#: the most extra work a padded tile scheme may add, as a share of the extent
MAX_PADDED_WASTE = 1 / 32
#: the longest padded innermost length: register-tile rows (14 x 2 vectors fill 32
#: registers), not cache tiles, which exact factorizations already serve
PADDED_MAX_INNERMOST = 16


class SplitFactorizationMemo:
    """All ways to fill ``n`` split lengths of an extent with exact divisors, innermost
    at most a limit; memoised per (extent, n, limit) (TVM SplitFactorizationMemo)."""

    def __init__(self) -> None:
        self._schemes: dict[tuple[int, int, int], tuple[tuple[int, ...], ...]] = {}
        self._padded: dict[tuple[int, int, int], tuple[tuple[int, ...], ...]] = {}
        self._factors: dict[int, tuple[int, ...]] = {}

    def factors(self, n: int) -> tuple[int, ...]:
        """The divisors of ``n``, ascending."""
        found = self._factors.get(n)
        if found is None:
            small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
            found = tuple(sorted(set(small + [n // d for d in small])))
            self._factors[n] = found
        return found

    def factorization_schemes(
        self, extent: int, n_lengths: int, max_innermost: int
    ) -> tuple[tuple[int, ...], ...]:
        """Every (l_1, ..., l_n) with prod(l) dividing ``extent`` and l_n <= max_innermost;
        the outermost loop then runs extent / prod(l) times."""
        key = (extent, n_lengths, max_innermost)
        found = self._schemes.get(key)
        if found is None:
            result: list[tuple[int, ...]] = []
            self._enumerate((), extent, n_lengths, max_innermost, result)
            found = tuple(result)
            self._schemes[key] = found
        return found

    def padded_schemes(self, extent: int, n_lengths: int, max_innermost: int) -> tuple[tuple[int, ...], ...]:
        """The (l_1, ..., l_n) whose innermost l_n (2 <= l_n <= max_innermost and
        ``PADDED_MAX_INNERMOST``) does NOT divide ``extent`` but pads it by at most
        ``MAX_PADDED_WASTE`` (``ceil(extent / l_n) * l_n``), the other lengths an exact
        factorization of ``ceil(extent / l_n)``: a register tile of 6 rows over 1024 (171
        tiles, the last one computing 2 rows past the edge), which exact factorizations of
        a power of two never reach. Lowering computes such a tail into the cache stage's
        private buffer without a branch (``ir.lower.schedule_ops``). An extension of
        Ansor's space; memoised."""
        key = (extent, n_lengths, max_innermost)
        found = self._padded.get(key)
        if found is None:
            result: list[tuple[int, ...]] = []
            for inner in range(2, min(max_innermost, PADDED_MAX_INNERMOST, extent - 1) + 1):
                tiles = -(-extent // inner)
                if extent % inner == 0 or tiles * inner - extent > MAX_PADDED_WASTE * extent:
                    continue
                if n_lengths == 1:
                    result.append((inner,))
                    continue
                outer: list[tuple[int, ...]] = []
                self._enumerate((), tiles, n_lengths - 1, tiles, outer)
                result.extend((*lengths, inner) for lengths in outer)
            found = tuple(result)
            self._padded[key] = found
        return found

    def _enumerate(
        self, prefix: tuple[int, ...], remaining: int, n_lengths: int, max_innermost: int, out: list
    ) -> None:
        if len(prefix) == n_lengths:
            if prefix[-1] <= max_innermost:
                out.append(prefix)
            return
        for f in self.factors(remaining):
            self._enumerate((*prefix, f), remaining // f, n_lengths, max_innermost, out)
