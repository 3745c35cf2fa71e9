"""Reading a tuning log back into the task scheduler's state (TVM ``_restore_status``).

A network's log is the scheduler's memory: every measured program of every task, in the
order they were measured (``RecordToFile`` appends each as it is measured, so a run killed
with ``kill -9`` loses none). ``read_task_log`` reads it once and sorts each record to
its task (same workload key and target class); ``rebuild_rounds`` replays the records in
file order into the per-task state the scheduler keeps: trials, best latency, rounds and
the best latency after each round (the history the backward gradient reads).

Rounds are not written in a record, so they are rebuilt: a round is a run of consecutive
records of one task, cut every ``num_measures_per_round`` records. That is exact when the
log was written with the same ``num_measures_per_round`` and every round was full; TVM
divides record counts by the round size instead, losing the history.

Records of no task (another network, another target) are ignored with one
``ForeignRecordsWarning`` naming how many there are and of which workload and target.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field

from ansor_py.measure.types import ERROR_COST, MeasureInput, MeasureResult
from ansor_py.records import RecordWarning, load_records
from ansor_py.search_task import SearchTask
from ir.loop_state.steps import Step

#: workload/target pairs named in the warning about foreign records
NAMED_FOREIGN = 5


class ForeignRecordsWarning(RecordWarning):
    """Records of a log that belong to none of the scheduler's tasks."""


@dataclass
class TaskLog:
    """The records of a log sorted to tasks: ``records[i]`` task i's (input, result) pairs
    in file order; ``order`` the task index of each kept record in file order;
    ``ignored`` counts the other records by (workload key, target)."""

    path: str
    records: list[list[tuple[MeasureInput, MeasureResult]]]
    order: list[int] = field(default_factory=list)
    ignored: Counter[tuple[str, str]] = field(default_factory=Counter)


def read_task_log(path: str | os.PathLike[str], tasks: list[SearchTask]) -> TaskLog:
    """The records of ``tasks`` in the log at ``path`` (see ``TaskLog``); warns once when
    some records belong to none of them. A log that does not exist yet has no records (a
    run resumable from its log starts with it missing). Only a program's first record is
    kept: a later one is a re-measurement (``ansor_py.remeasure``), not a trial."""
    index = {id(task): i for i, task in enumerate(tasks)}
    log = TaskLog(os.fspath(path), [[] for _ in tasks])
    if not os.path.exists(path):
        return log
    seen: list[set[tuple[Step, ...]]] = [set() for _ in tasks]
    for inp, res in load_records(path, tasks=tasks):
        i = index.get(id(inp.task))
        if i is None:
            log.ignored[(inp.task.workload_key, str(inp.task.target))] += 1
            continue
        if inp.state.transform_steps in seen[i]:
            continue  # a re-measurement of a program already recorded
        seen[i].add(inp.state.transform_steps)
        log.records[i].append((inp, res))
        log.order.append(i)
    if log.ignored:
        warnings.warn(foreign_message(log), ForeignRecordsWarning, stacklevel=3)
    return log


def foreign_message(log: TaskLog) -> str:
    total = sum(log.ignored.values())
    named = [
        f"{count} of workload {key} for target '{target}'"
        for (key, target), count in log.ignored.most_common(NAMED_FOREIGN)
    ]
    more = len(log.ignored) - len(named)
    tail = f", and {more} more workload/target pair(s)" if more > 0 else ""
    return (
        f"TaskScheduler: ignoring {total} record(s) of {log.path} that belong to none of the "
        f"{len(log.records)} task(s) (a log of another network or target): {'; '.join(named)}{tail}"
    )


@dataclass
class TaskState:
    """What the scheduler knows of one task: rounds tuned (``rounds``, TVM's
    ``task_cts``), programs measured (``trials``), the best median latency in seconds
    (``ERROR_COST`` until one ran correctly), the round and trial it was found at, and
    the best latency after each round (``history[r - 1]``: after round r)."""

    rounds: int = 0
    trials: int = 0
    best_cost: float = ERROR_COST
    best_round: int = 0
    best_trial: int = 0
    history: list[float] = field(default_factory=list)

    def add_round(self, results: list[MeasureResult]) -> None:
        """Count one round of measured ``results``."""
        self.rounds += 1
        self.add_results(results)
        self.history.append(self.best_cost)

    def add_results(self, results: list[MeasureResult]) -> None:
        """Count measured ``results`` as trials of the current round (or before the first)."""
        for result in results:
            self.trials += 1
            if result.ok and result.median_cost < self.best_cost:
                self.best_cost = result.median_cost
                self.best_round = self.rounds
                self.best_trial = self.trials


def rebuild_rounds(log: TaskLog, num_measures_per_round: int) -> list[TaskState]:
    """Each task's state after the rounds of the log (see the module docstring)."""
    states = [TaskState() for _ in log.records]
    taken = [0] * len(log.records)
    round_task = -1
    round_results: list[MeasureResult] = []
    for i in log.order:
        if i != round_task or len(round_results) == num_measures_per_round:
            if round_results:
                states[round_task].add_round(round_results)
            round_task, round_results = i, []
        round_results.append(log.records[i][taken[i]][1])
        taken[i] += 1
    if round_results:
        states[round_task].add_round(round_results)
    return states
