"""The search-policy contract and the contract of the callbacks run when a policy starts
(TVM ``search_policy.py``).

A policy turns a task and a measurer into a best program: ``search`` runs a whole tuning
budget, ``continue_search_one_round`` one round (the task scheduler interleaves rounds of
many tasks, Ansor paper section 6). ``init_search_callbacks`` run at construction, before
the policy's own rules are installed; the two that TVM ships work on a ``SketchPolicy``
and live beside it (``sketch_policy.PreloadMeasuredStates``,
``sketch_policy.PreloadCustomSketchRule``). This base knows no subclass.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.measure.measurer import ProgramMeasurer
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask


class SearchCallback(abc.ABC):
    """Runs once on a policy when it is constructed."""

    @abc.abstractmethod
    def callback(self, policy: SearchPolicy) -> None: ...


class SearchPolicy(abc.ABC):
    """Base of EmptyPolicy and SketchPolicy."""

    def __init__(self, task: SearchTask, verbose: int = 1):
        self.search_task = task
        self.verbose = verbose

    def run_callbacks(self, callbacks: Sequence[SearchCallback] | None) -> None:
        for callback in callbacks or ():
            if not isinstance(callback, SearchCallback):
                raise TypeError(
                    f"init_search_callbacks holds a {type(callback).__name__}; expected SearchCallback "
                    "objects (PreloadMeasuredStates, PreloadCustomSketchRule)"
                )
            callback.callback(self)

    def set_verbose(self, verbose: int) -> None:
        self.verbose = verbose

    @abc.abstractmethod
    def search(
        self,
        num_measure_trials: int,
        early_stopping: int | None = None,
        num_measures_per_round: int = 64,
        measurer: ProgramMeasurer | None = None,
    ) -> LoopState | None:
        """Tune with at most ``num_measure_trials`` measurements; the best program measured
        (None if none ran correctly). With ``num_measure_trials <= 1`` nothing is measured
        and the program the policy predicts best is returned."""

    @abc.abstractmethod
    def continue_search_one_round(
        self, num_measure: int, measurer: ProgramMeasurer
    ) -> tuple[list[MeasureInput], list[MeasureResult]]:
        """Search and measure one round of at most ``num_measure`` new programs."""
