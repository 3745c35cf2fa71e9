"""Replay and bound inference, memoised by step history (a search hot path).

A program is its step history: replaying the steps on the task's DAG rebuilds it, and
bound inference then fills every loop extent. Sampling and evolution do this for
thousands of candidates per round, so this cache

- keeps the state reached after the last stage-inserting step (cache_write, cache_read,
  rfactor): those steps rebuild the DAG and rarely differ between candidates of one
  sketch, while the tile sizes after them change all the time;
- remembers the replayed and the bound state of each full history seen, so a candidate
  met twice (a parent copied, a mutation repeated) costs a dict lookup.

Every entry is a pure function of the steps, so the cache never changes a result. It is
cleared when it grows past ``max_entries``. What bound inference found is kept in the
cache's ``bound_cache`` (``ir.lower.bound.BoundCache``), which the search passes on to
feature extraction and lowering, so that a state ``bind`` returned is not inferred again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ansor_py.search.stage_queries import STAGE_CHANGING_STEPS
from ir.loop_state.enums import ComputeAtKind, IteratorKind, StageKind
from ir.loop_state.state import LoopState, ScheduleError, initial_state
from ir.loop_state.steps import SplitStep, Step
from ir.lower.bound import BoundCache, infer_bound

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG

History = tuple[Step, ...]


def is_bound(state: LoopState) -> bool:
    """Every loop of every compute stage that has loops has a known extent."""
    return all(
        it.range.extent is not None
        for stage in state.stages
        if stage.op_type is StageKind.COMPUTE and stage.compute_at is not ComputeAtKind.INLINED
        for it in stage.iters
    )


class StateCache:
    """Memoised ``replay`` and ``bind`` for the states of one DAG."""

    def __init__(self, dag: ComputeDAG, max_entries: int = 8192):
        self.dag = dag
        self.max_entries = max_entries
        #: bound inference's results for the states bound here (and lowered later); two
        #: entries per state, its own stages and the bound ones
        self.bound_cache = BoundCache(2 * max_entries)
        #: the DAG's initial state, the start of every replay
        self.initial_state = initial_state(dag)
        self._prefixes: dict[History, LoopState | None] = {}
        self._replayed: dict[History, LoopState | None] = {}
        self._bound: dict[History, LoopState | None] = {}
        self._tile_splits: dict[History, frozenset[int]] = {}

    def clear(self) -> None:
        """Forget every entry (what bound inference found too); the results stay the same,
        only slower to get again."""
        for table in (self._prefixes, self._replayed, self._bound, self._tile_splits):
            table.clear()
        self.bound_cache.clear()

    def replay(self, steps: Sequence[Step]) -> LoopState | None:
        """The state ``steps`` make from the DAG's initial state; None if one is illegal."""
        history = tuple(steps)
        if history in self._replayed:
            return self._replayed[history]
        cut = max(
            (i + 1 for i, step in enumerate(history) if isinstance(step, STAGE_CHANGING_STEPS)), default=0
        )
        state = self._prefix(history[:cut])
        if state is not None:
            try:
                for step in history[cut:]:
                    state = step.apply(state, self.dag)
            except ScheduleError:
                state = None
        self._remember(self._replayed, history, state)
        return state

    def bind(self, state: LoopState) -> LoopState | None:
        """``state`` with every extent known (bound inference if one is unknown); None when
        bound inference rejects it."""
        if is_bound(state):
            return state
        history = state.transform_steps
        if history in self._bound:
            return self._bound[history]
        try:
            bound: LoopState | None = infer_bound(self.dag, state, self.bound_cache)
        except ScheduleError:
            bound = None
        self._remember(self._bound, history, bound)
        return bound

    def register_tile_splits(self, steps: Sequence[Step]) -> frozenset[int]:
        """Indices of the split steps in ``steps`` that split a spatial iterator other than
        the last (which is vectorized, so padded it would leave a partial vector) of a
        stage with a reduction iterator whose values are not a kernel parameter (a cache
        stage, or an intermediate one): the splits whose innermost length is the number
        of rows of a register tile under multi-level tiling, and whose tail lowering can
        compute into a private buffer. Memoised per history (a sketch's, mostly)."""
        history = tuple(steps)
        found = self._tile_splits.get(history)
        if found is not None:
            return found
        parameters = {tensor.name for tensor in self.dag.tensors}
        indices: set[int] = set()
        state = self.initial_state
        try:
            for index, step in enumerate(history):
                if isinstance(step, SplitStep):
                    stage = state.stages[step.stage_id]
                    kinds = [it.kind for it in stage.iters]
                    spatial = [i for i, kind in enumerate(kinds) if kind is IteratorKind.SPATIAL]
                    rows = step.iter_id in spatial[:-1]  # the last one is vectorized: whole vectors
                    if rows and IteratorKind.REDUCTION in kinds and stage.name not in parameters:
                        indices.add(index)
                state = step.apply(state, self.dag)
        except ScheduleError:
            pass
        found = frozenset(indices)
        if len(self._tile_splits) >= self.max_entries:
            self._tile_splits.clear()
        self._tile_splits[history] = found
        return found

    def _prefix(self, history: History) -> LoopState | None:
        if not history:
            return self.initial_state
        if history not in self._prefixes:
            state = self.initial_state
            try:
                for step in history:
                    state = step.apply(state, self.dag)
            except ScheduleError:
                self._remember(self._prefixes, history, None)
                return None
            self._remember(self._prefixes, history, state)
        return self._prefixes[history]

    def _remember(
        self, table: dict[History, LoopState | None], key: History, value: LoopState | None
    ) -> None:
        if len(table) >= self.max_entries:
            table.clear()
        table[key] = value
