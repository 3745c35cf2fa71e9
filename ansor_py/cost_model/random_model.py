"""``RandomModel``: uniform random scores (TVM ``auto_scheduler.RandomModel``).

The baseline a learned model must beat, and a way to run the search with the cost model
switched off (paper section 7.5's ablations compare against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState
    from ir.lower.bound import BoundCache


class RandomModel:
    """Scores drawn uniformly from [0, 1) by a Generator seeded with ``seed``; learns nothing."""

    #: the scores never carry information (the search breeds fewer generations)
    predicts_at_random = True

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def update(self, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        if len(inputs) != len(results):
            raise ValueError(f"{len(inputs)} measure inputs but {len(results)} results: they must pair up")

    def predict(
        self, task: SearchTask, states: Sequence[LoopState | State], bound_cache: BoundCache | None = None
    ) -> np.ndarray:
        return self.rng.uniform(0.0, 1.0, len(states))
