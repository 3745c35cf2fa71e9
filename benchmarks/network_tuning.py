"""The tuned half of ``benchmarks/networks.py``: tune a network with the task scheduler,
resumably, and build it from its log after a share of the budget (Ansor paper section 6
and figure 10; TVM's ``tune_network_x86`` tutorial).

- ``tune_network``: the network's tasks (``extract_tasks``) tuned by one ``TaskScheduler``
  into ``<log-dir>/<network>.json`` until the log holds ``budget`` of their records. The
  scheduler is made with ``load_log_file`` = that log, so a second run continues from its
  records (never measuring a program twice: the scheduler marks them measured). A run
  whose budget is already spent only re-measures the best programs of the tasks whose
  final re-measurement a stopped run skipped (``finish_remeasurement``). Each task's
  default schedule (the one the network runs untuned) is measured first, as one of its
  trials. The budget is a total in trials per network, as TVM users give it
  (``num_measure_trials = 200 * len(tasks)`` in TVM's tutorials).
- ``TuningClock``: a scheduler callback appending ``trials <tab> seconds <tab> estimated
  ms`` to ``<log-dir>/<network>.progress.tsv`` after every round and once when ``tune``
  returns (its final re-measurement of each task's best programs), the seconds counted
  across runs (a resumed run starts from the file's last line), so the curve's tuning
  times survive a restart. A round cut short by ``kill -9`` loses its time, not its
  records.
- ``curve_points``: the trial counts of the latency-versus-tuning-time curve (10%, 25%, 50%
  and 100% of the budget) with the tuning time each was reached at; the network is built
  from the log's records up to its ``n``-th program (``history_after``), the state the
  tuner had handed over after ``n`` trials (a program counts once, however often it was
  re-measured).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import ansor_py as ansor
from ansor_py.measure.local import LocalBuilder, LocalRunner
from ansor_py.measure.measurer import ProgramMeasurer
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.graph import Graph
from ansor_py.records import ApplyHistoryBest, read_raw_records
from ansor_py.remeasure import best_was_remeasured, remeasure_best
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler.callbacks import SchedulerProgress, TaskSchedulerCallback, estimated_latency_ms
from ir.loop_state.api import as_loop_state

#: shares of the budget the curve builds the network after
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
#: timed single calls per candidate when the caches are flushed before each (TVM's tutorial)
FLUSHED_REPEATS = 10


@dataclass
class TuneOutcome:
    """One network's tuning: ``trials`` records of its tasks in the log after this run
    (``resumed`` of them there before it), ``run_s`` this run's tuning wall time and
    ``total_s`` all runs' (None when the log has no progress file: tuned elsewhere)."""

    log: Path
    tasks: int
    trials: int
    resumed: int
    run_s: float
    total_s: float | None


class TuningClock(TaskSchedulerCallback):
    """Appends ``trials, seconds, estimated ms`` to ``path`` after each round (module
    docstring); ``offset_s`` is the tuning time of the earlier runs."""

    def __init__(self, path: Path, offset_s: float):
        self.path = path
        self.offset_s = offset_s
        self.start = time.perf_counter()

    def post_tune(self, task_scheduler: SchedulerProgress, task_id: int) -> None:
        seconds = self.offset_s + time.perf_counter() - self.start
        estimate = estimated_latency_ms(task_scheduler) or "-"
        with open(self.path, "a") as f:
            f.write(f"{task_scheduler.total_trials}\t{seconds:.1f}\t{estimate}\n")

    def finish(self, task_scheduler: SchedulerProgress) -> None:
        """One more line when ``tune`` returns, so the time after the last round (the
        re-measurement of each task's best programs) counts too."""
        self.post_tune(task_scheduler, -1)


def read_progress(path: Path) -> list[tuple[int, float]]:
    """The (trials, cumulative seconds) lines of a progress file; none when it is missing."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            rows.append((int(fields[0]), float(fields[1])))
    return rows


def progress_path(log: Path) -> Path:
    return log.with_suffix(".progress.tsv")


def tune_network(
    graph: Graph,
    tasks: list[SearchTask],
    weights: list[int],
    log: Path,
    budget: int,
    verbose: int = 1,
    population: int | None = None,
    per_round: int = 64,
    cache_flush: bool = True,
) -> TuneOutcome:
    """Tune ``tasks`` until ``log`` holds ``budget`` of their records (module docstring).
    ``population`` replaces the evolutionary search's generation size (TVM's default 2048)
    and ``per_round`` the programs measured per scheduler round (TVM's 64): smaller values
    give each round less search, so a small budget reaches more tasks per hour.

    ``cache_flush`` (default, as TVM's ``tune_network_x86`` tutorial): every candidate is
    timed as ``FLUSHED_REPEATS`` single calls, each after the caches were flushed
    (``LocalRunner(enable_cpu_cache_flush=True)``), because in a network a kernel's
    weights were last read a whole inference earlier and come from memory; timed hot, the
    kernels of a network's late, weight-heavy layers look faster than they run in it, and
    the search ranks their programs by a speed the network never sees. Keep one log to one
    way of timing: a log's hot and cold costs do not compare."""
    if budget < len(tasks):
        raise ValueError(
            f"{graph.name}: a budget of {budget} trials is less than one per task ({len(tasks)} tasks)"
        )
    progress = read_progress(progress_path(log))
    offset_s = progress[-1][1] if progress else 0.0
    clock = TuningClock(progress_path(log), offset_s)
    scheduler = ansor.TaskScheduler(
        tasks,
        weights,
        load_log_file=log,
        callbacks=[ansor.PrintTableInfo(), clock],
        baseline_schedules=default_schedule,  # tuned is never slower than untuned
    )
    resumed = scheduler.restored_trials
    remaining = budget - resumed
    start = time.perf_counter()
    if remaining < len(tasks):
        # a scheduler round needs at least one trial per task; what is left is less
        print(f"  tuning: {resumed} records of {len(tasks)} tasks in {log}, budget {budget}: nothing to do")
        if resumed and not progress:
            print(f"  ({progress_path(log)} is missing: the tuning time of this log is unknown)")
        finish_remeasurement(tasks, log, cache_flush, verbose)
    else:
        print(f"  tuning: {len(tasks)} tasks, {remaining} trials ({resumed} resumed from {log})", flush=True)
        params = None if population is None else {"evolutionary_search_population": population}
        with LocalRunner(repeat=FLUSHED_REPEATS, enable_cpu_cache_flush=cache_flush) as runner:
            options = ansor.TuningOptions(
                num_measure_trials=remaining,
                num_measures_per_round=per_round,
                measure_callbacks=[ansor.RecordToFile(str(log))],
                runner=runner,
                verbose=verbose,
            )
            scheduler.tune(options, search_policy_params=params)
        clock.finish(scheduler)
    run_s = time.perf_counter() - start
    trials = resumed + scheduler.ct
    progress = read_progress(progress_path(log))
    total_s = progress[-1][1] if progress else None
    return TuneOutcome(log, len(tasks), trials, resumed, run_s, total_s)


def finish_remeasurement(tasks: list[SearchTask], log: Path, cache_flush: bool, verbose: int) -> None:
    """Re-measure the best programs of the tasks whose search ended in ``log`` without its
    final re-measurement (``TaskScheduler.tune`` does it last, so a run stopped after its
    last round skipped it), as ``tune`` would have: each task's
    ``TuningOptions.remeasure_top_k`` best and the default schedule (the task scheduler's
    baseline), ``remeasure_repeat`` passes."""
    pending = [task for task in tasks if not best_was_remeasured(task, log)]
    if not pending:
        return
    options = ansor.TuningOptions()
    baselines = [
        as_loop_state(task.compute_dag, default_schedule(task.compute_dag, task.target)) for task in pending
    ]
    print(f"  re-measuring the best programs of {len(pending)} tasks (the run that tuned them stopped first)")
    with LocalRunner(repeat=FLUSHED_REPEATS, enable_cpu_cache_flush=cache_flush) as runner:
        measurer = ProgramMeasurer(LocalBuilder(), runner, [ansor.RecordToFile(str(log))], verbose=0)
        top_k, passes = options.remeasure_top_k, options.remeasure_repeat
        remeasure_best(pending, measurer, top_k, passes, verbose, also=baselines)


@dataclass(frozen=True)
class CurvePoint:
    """The network built after ``trials`` records of the log, reached after ``tuning_s``
    seconds of tuning (None: unknown)."""

    fraction: float
    trials: int
    tuning_s: float | None


def curve_points(outcome: TuneOutcome, budget: int) -> list[CurvePoint]:
    """The curve's points: ``CURVE_FRACTIONS`` of ``budget``, capped at the log's records."""
    progress = read_progress(progress_path(outcome.log))
    points = []
    for fraction in CURVE_FRACTIONS:
        trials = min(max(1, math.ceil(fraction * budget)), outcome.trials)
        tuning_s = next((seconds for count, seconds in progress if count >= trials), None)
        if trials == outcome.trials and progress:
            tuning_s = progress[-1][1]  # all of it, the final re-measurement included
        points.append(CurvePoint(fraction, trials, tuning_s))
    return points


def history_after(log: Path, trials: int) -> ApplyHistoryBest:
    """The best records the log held once its first ``trials`` programs had been measured
    (what ``build_network`` takes): every record before the first one of program
    ``trials + 1``, so re-measurements of earlier programs in between count and a later
    one does not; the whole log when it holds ``trials`` programs or fewer (its final
    re-measurements included)."""
    return ApplyHistoryBest(log, n_lines=records_before_program(log, trials))


def records_before_program(log: Path, programs: int) -> int | None:
    """How many records of ``log`` come before the first record of its ``programs + 1``-th
    distinct program (by workload, target and steps); None when it has no more programs."""
    seen: set[tuple[str, str, tuple[object, ...]]] = set()
    for count, raw in enumerate(read_raw_records(log)):
        program = (raw.workload_key, str(raw.target), raw.steps)
        if program not in seen:
            if len(seen) == programs:
                return count
            seen.add(program)
    return None
