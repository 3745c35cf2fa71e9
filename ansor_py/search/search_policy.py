"""The search-policy contract and the callbacks run when a policy starts (TVM
``search_policy.py``).

A policy turns a task and a measurer into a best program: ``search`` runs a whole tuning
budget, ``continue_search_one_round`` one round (the task scheduler interleaves rounds of
many tasks, Ansor paper section 6). ``init_search_callbacks`` run at construction, before
the policy's own rules are installed:

- ``PreloadMeasuredStates(file)``: resume from a log; every program recorded for this
  task is marked measured (never measured again) and the valid ones, with their
  throughputs, seed the evolutionary search;
- ``PreloadCustomSketchRule(meet_condition_func, apply_func, rule_name)``: a user sketch
  rule, tried before the built-in ones.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.measure.measurer import ProgramMeasurer
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask
    from ir.loop_state.api import State


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


class PreloadMeasuredStates(SearchCallback):
    """Mark every program recorded in ``filename`` for the policy's task (same workload key
    and target class) as measured, and seed the search with the valid ones' throughputs."""

    def __init__(self, filename: str | os.PathLike[str]):
        self.filename = filename

    def callback(self, policy: SearchPolicy) -> None:
        from ansor_py.records import load_records
        from ansor_py.search.sketch_policy import SketchPolicy

        if not isinstance(policy, SketchPolicy):
            raise TypeError(f"PreloadMeasuredStates works on a SketchPolicy, not a {type(policy).__name__}")
        task = policy.search_task
        if not os.path.isfile(self.filename):
            raise FileNotFoundError(f"PreloadMeasuredStates: record file {self.filename} does not exist")
        loaded = 0
        for inp, res in load_records(self.filename, tasks=[task]):
            if inp.task is not task or not inp.state.stages:
                continue  # another task's record, or steps that do not replay on this DAG
            throughput = 1.0 / res.mean_cost if res.ok else 0.0
            if policy.add_measured_state(inp.state, throughput):
                loaded += 1
        if policy.verbose >= 1:
            print(
                f"PreloadMeasuredStates: {loaded} measured state(s) loaded from {self.filename}", flush=True
            )


class PreloadCustomSketchRule(SearchCallback):
    """A user sketch rule (see ``sketch_rules.custom_sketch_rule``); ``meet_condition_func``
    returns one of the class constants below."""

    PASS = 0
    APPLY = 1
    APPLY_AND_SKIP_REST = 2

    def __init__(
        self,
        meet_condition_func: Callable[[Any, State, int], int],
        apply_func: Callable[[Any, State, int], Any],
        rule_name: str = "CustomSketchRule",
    ):
        self.meet_condition_func = meet_condition_func
        self.apply_func = apply_func
        self.rule_name = rule_name

    def callback(self, policy: SearchPolicy) -> None:
        from ansor_py.search.sketch_policy import SketchPolicy
        from ansor_py.search.sketch_rules import custom_sketch_rule

        if not isinstance(policy, SketchPolicy):
            raise TypeError(f"PreloadCustomSketchRule works on a SketchPolicy, not a {type(policy).__name__}")
        policy.sketch_rules.append(
            custom_sketch_rule(self.meet_condition_func, self.apply_func, self.rule_name)
        )
        if policy.verbose >= 1:
            print(f'Custom sketch rule "{self.rule_name}" added.', flush=True)
