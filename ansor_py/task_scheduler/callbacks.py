"""Callbacks of the task scheduler (TVM ``TaskSchedulerCallback``, ``PrintTableInfo``,
``LogEstimatedLatency``).

The scheduler calls ``pre_tune(scheduler, task_id)`` before and ``post_tune(scheduler,
task_id)`` after each round it spends on task ``task_id``. The two shipped callbacks print
TVM's progress table and append the estimated network latency to a TSV file, the data of
a latency-versus-tuning-time curve. They read the scheduler through ``SchedulerProgress``,
so this module does not import the scheduler.
"""

from __future__ import annotations

import os
import time
from typing import Protocol

from ansor_py.search_task import SearchTask

#: a latency at or above this (seconds) means "no valid program yet" (TVM's 1e9)
NO_LATENCY = 1e9
#: width of the task-description column of PrintTableInfo
DESC_WIDTH = 61
RULE = "-" * 113


class SchedulerProgress(Protocol):
    """What a callback may read of the scheduler."""

    tasks: list[SearchTask]
    cur_score: float
    tic: float
    verbose: int

    @property
    def best_costs(self) -> list[float]: ...

    @property
    def task_trials(self) -> list[int]: ...

    @property
    def total_trials(self) -> int: ...


class TaskSchedulerCallback:
    """Base of the scheduler's callbacks; both hooks do nothing unless overridden."""

    def pre_tune(self, task_scheduler: SchedulerProgress, task_id: int) -> None:
        """Before the scheduler tunes task ``task_id`` for one round."""

    def post_tune(self, task_scheduler: SchedulerProgress, task_id: int) -> None:
        """After the scheduler tuned task ``task_id`` for one round."""


def estimated_latency_ms(task_scheduler: SchedulerProgress) -> str | None:
    """The objective in ms ("%.3f"), None while some task has no valid program."""
    if all(cost < NO_LATENCY for cost in task_scheduler.best_costs):
        return f"{task_scheduler.cur_score * 1e3:.3f}"
    return None


def describe(task: SearchTask) -> str:
    """The task's description (its workload key when it has none), cut to DESC_WIDTH."""
    text = task.desc or task.workload_key
    return text if len(text) <= DESC_WIDTH else text[: DESC_WIDTH - 3] + "..."


def format_table(task_scheduler: SchedulerProgress, next_task: int) -> str:
    """TVM's progress table: one line per task, then the estimated total latency."""
    lines = [
        "-" * 70,
        "------------------------------  [ Task Scheduler ]",
        "-" * 70,
        f"|  ID  | {'Task Description':^{DESC_WIDTH}} | Latency (ms) | Speed (GFLOPS) | Trials |",
        RULE,
    ]
    for i, task in enumerate(task_scheduler.tasks):
        cost = task_scheduler.best_costs[i]
        latency = f"{cost * 1e3:.3f}" if cost < NO_LATENCY else "-"
        speed = f"{task.compute_dag.flop_ct / cost / 1e9:.2f}" if cost < NO_LATENCY else "-"
        trials = task_scheduler.task_trials[i]
        lines.append(
            f"| {i:4d} | {describe(task):>{DESC_WIDTH}} | {latency:>12} | {speed:>14} | {trials:6d} |"
        )
    lines.append(RULE)
    total = estimated_latency_ms(task_scheduler) or "-"
    elapsed = time.time() - task_scheduler.tic
    lines.append(
        f"Estimated total latency: {total} ms\tTrials: {task_scheduler.total_trials}\t"
        f"Used time : {elapsed:.0f} s\tNext ID: {next_task}\t"
    )
    return "\n".join(lines)


class PrintTableInfo(TaskSchedulerCallback):
    """Prints the progress table before each round (with ``verbose`` >= 1). Trials count
    the records restored from the log too."""

    def pre_tune(self, task_scheduler: SchedulerProgress, task_id: int) -> None:
        if task_scheduler.verbose >= 1:
            print(format_table(task_scheduler, task_id), flush=True)


class LogEstimatedLatency(TaskSchedulerCallback):
    """Appends ``ElapsedTime(s) <s> EstimatedLatency(ms) <ms or N/A> Trials <n>`` (tab
    separated) to ``log_file`` after each round. As TVM, an existing file is removed when
    the callback is made; the trials count the records restored from the log too."""

    def __init__(self, log_file: str | os.PathLike[str]):
        if os.path.exists(log_file):
            os.remove(log_file)
        self.log_file = log_file

    def post_tune(self, task_scheduler: SchedulerProgress, task_id: int) -> None:
        total = estimated_latency_ms(task_scheduler) or "N/A"
        elapsed = time.time() - task_scheduler.tic
        with open(self.log_file, "a") as f:
            f.write(
                f"ElapsedTime(s)\t{elapsed:.0f}\tEstimatedLatency(ms)\t{total}\t"
                f"Trials\t{task_scheduler.total_trials}\n"
            )
