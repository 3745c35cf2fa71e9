"""EmptyPolicy: the naive program, measured (TVM ``auto_scheduler.EmptyPolicy``).

A baseline and a test double for the tuning plumbing: its only candidate is the DAG's
initial state (one loop nest per op, in axis order). TVM measures that state once per
round until the budget is spent; measuring the same program again teaches nothing, so
this policy measures it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ansor_py.measure.types import MeasureInput, MeasureResult
from ansor_py.search.search_policy import SearchCallback, SearchPolicy
from ir.loop_state.state import LoopState, initial_state

if TYPE_CHECKING:
    from ansor_py.measure.measurer import ProgramMeasurer
    from ansor_py.search_task import SearchTask


class EmptyPolicy(SearchPolicy):
    """Returns (and with a budget, measures) the task's naive program."""

    def __init__(
        self,
        task: SearchTask,
        init_search_callbacks: Sequence[SearchCallback] | None = None,
        verbose: int = 1,
    ):
        super().__init__(task, verbose)
        self.run_callbacks(init_search_callbacks)

    def search(
        self,
        num_measure_trials: int,
        early_stopping: int | None = None,
        num_measures_per_round: int = 64,
        measurer: ProgramMeasurer | None = None,
    ) -> LoopState | None:
        state = initial_state(self.search_task.compute_dag)
        if num_measure_trials <= 1:
            return state
        if measurer is None:
            raise ValueError(f"EmptyPolicy.search: {num_measure_trials} trials need a measurer")
        measurer.reset()
        measurer.measure(self.search_task, self, [MeasureInput(self.search_task, state)])
        return measurer.best_state.get(self.search_task.workload_key)

    def continue_search_one_round(
        self, num_measure: int, measurer: ProgramMeasurer
    ) -> tuple[list[MeasureInput], list[MeasureResult]]:
        inputs = [MeasureInput(self.search_task, initial_state(self.search_task.compute_dag))]
        return inputs, list(measurer.measure(self.search_task, self, inputs))
