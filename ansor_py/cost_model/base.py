"""The cost-model contract the search codes against (TVM ``auto_scheduler.CostModel``).

Ansor's search (paper section 5) never measures most candidates: a learned model ranks
them, and only the best-looking ones are compiled and timed. Any object with these two
methods can be that model: ``XGBModel`` (the paper's), ``RandomModel`` (a baseline), or a
user's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState
    from ir.lower.bound import BoundCache


class CostModel(Protocol):
    """Predicts how fast candidate programs are; learns from measurements.

    Optional: a ``predicts_at_random`` attribute, true while the scores carry no
    information (``RandomModel`` always, ``XGBModel`` during its warm-up); the search then
    breeds fewer generations, as TVM does for ``RandomModel``."""

    def update(self, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        """Learn from measured (input, result) pairs (the pairs of every earlier call are kept)."""
        ...

    def predict(
        self, task: SearchTask, states: Sequence[LoopState | State], bound_cache: BoundCache | None = None
    ) -> np.ndarray:
        """One score per state, higher meaning faster; ``-inf`` for a state that cannot be
        lowered (the search drops it). Scores of different calls are comparable.

        ``bound_cache``: the search's bound-inference results for these states (it has
        bound them), for a model that lowers them; a model may ignore it."""
        ...


class PrefetchingCostModel(CostModel, Protocol):
    """A cost model that can start the work of a ``predict`` early (``XGBModel`` extracts
    features in a forked worker): the search hands it each chunk of programs as it breeds
    them, and predicts them all later. Scores must not depend on whether it was called."""

    def prefetch(
        self, task: SearchTask, states: Sequence[LoopState], bound_cache: BoundCache | None = None
    ) -> None: ...
