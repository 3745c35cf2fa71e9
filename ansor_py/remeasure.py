"""Re-measuring the best programs at the end of tuning, so that the best is not a lucky sample.

A tuning record's cost is one sample of a noisy clock (the search measures each candidate
once; TVM's runner times it with ``repeat=1``). The fastest of hundreds of samples is partly luck: its sample
is the one that noise pulled down the most, so the tuner's best is both the wrong program
now and then and, nearly always, slower than the tuner said. The remedy here: once the
search is over, the ``top_k`` fastest distinct programs of each task are timed again,
``passes`` times each, interleaved (1, 2, ..., k, 1, 2, ..., k, ...), so that a burst of
load on the machine falls on all of them alike (each program is built once). Each program
gets one new record holding all its samples, appended through the measure callbacks
(``RecordToFile``): an ordinary TVM record line. A later record of a program supersedes the earlier one
(``records.ranked_programs``), so ``apply_best``, ``best_state`` and ``ApplyHistoryBest``
then rank the re-measured programs by their re-measured medians, while the readers that
count trials count programs, not lines (``PreloadMeasuredStates`` marks each program
measured once; the task scheduler's ``read_task_log`` keeps a program's first record).

One more session may be needed: when a program that was not re-measured still ranks first
(its one sample beats every re-measured median), it and up to ``top_k - 1`` more such
challengers are timed again beside the best re-measured program, until the first-ranked
program has been re-measured or ``MAX_SESSIONS`` sessions have run. A program whose
re-measurement fails (wrong answer, crash, or a timeout in every pass) gets that error as
its latest record and drops out of the ranking; a pass that timed out while others
finished is left out of its samples.

The record keeps every sample; this project's readers rank it by their median
(``MeasureResult.median_cost``), TVM's by their mean. Each sample is the mean of a repeat
lasting ``min_repeat_ms`` or more, so a single late call is diluted within it, and
interleaving spreads longer bursts over every program alike.

Not in TVM: its ``auto_schedule`` returns the best single sample.
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ansor_py.measure.local import LocalRunner
from ansor_py.measure.measurer import MeasureCallback, ProgramMeasurer
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult, ProgramRunner
from ansor_py.records import (
    PathLike,
    RecordToFile,
    normalize_key,
    ranked_programs,
    read_raw_records,
    replay_or_steps,
    target_class,
)
from ansor_py.search_task import SearchTask
from ir.loop_state.state import LoopState
from ir.loop_state.steps import Step
from ir.lower.bound import infer_bound_from_state

#: sessions of re-measurement per task at most (see the module docstring)
MAX_SESSIONS = 3
#: outcomes of a pass that leave the program's other passes standing
TOLERATED = (MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUN_TIMEOUT)

Program = tuple[Step, ...]


@dataclass(frozen=True)
class Remeasured:
    """The outcome for one task: its best program by the latest records (``input``, the
    state bound-inferred as the search's states are), that program's ``result`` (its
    re-measured samples when ``retimed``), its median cost in seconds before
    (``earlier_cost``: the search's sample, or an earlier re-measurement's median), and how
    many programs were re-measured in how many sessions."""

    input: MeasureInput
    result: MeasureResult
    retimed: bool
    earlier_cost: float
    programs: int
    sessions: int

    @property
    def flops(self) -> float:
        """FLOP/s of the best program at its latest median cost."""
        return self.input.task.compute_dag.flop_ct / self.result.median_cost


def remeasure_runner(runner: ProgramRunner) -> tuple[ProgramRunner, bool]:
    """The runner re-measurements use, and whether it was made here (then the caller closes
    it): for a ``LocalRunner``, a new one with its settings, one repeat per pass (the passes
    are the repeats) and no slowdown cut (these programs are the fastest there are, and a
    cut under load would drop one); any other runner is used as it is."""
    if not isinstance(runner, LocalRunner):
        return runner, False
    made = LocalRunner(
        timeout=runner.timeout,
        number=runner.number,
        repeat=1,
        min_repeat_ms=runner.min_repeat_ms,
        cooldown_interval=runner.cooldown_interval,
        enable_cpu_cache_flush=runner.enable_cpu_cache_flush,
        slowdown_limit=None,
    )
    return made, True


def record_log(callbacks: Sequence[MeasureCallback]) -> RecordToFile | None:
    """The first ``RecordToFile`` among ``callbacks``: the log re-measurement ranks and extends."""
    return next((cb for cb in callbacks if isinstance(cb, RecordToFile)), None)


def remeasure_best(
    tasks: Sequence[SearchTask],
    measurer: ProgramMeasurer,
    top_k: int,
    passes: int,
    verbose: int = 1,
    also: Sequence[LoopState | None] | None = None,
) -> list[Remeasured | None]:
    """Re-measure the ``top_k`` best programs of each task ``passes`` times, interleaved,
    with the builder of the tuning ``measurer`` and its runner (``remeasure_runner``), and
    hand one record per program to ``measurer``'s callbacks (see the module docstring).
    The programs are ranked from the log of the first ``RecordToFile`` callback; without
    one, or with ``top_k`` 0, nothing is measured. ``also`` (one per task, None for none)
    is a program re-measured beside the best ones in the first session when the log holds
    an error-free record of it: the task scheduler's baseline, so that a tuned network is
    not slower than untuned because the baseline's one sample was unlucky. Returns, per
    task, its best program afterwards (None when nothing was measured or it has no valid
    record); ``verbose`` 1 or more prints one line per task (``describe``).
    ``measurer``'s counts and bests stay as the search left them: these are not trials."""
    if also is not None and len(also) != len(tasks):
        raise ValueError(f"remeasure_best: {len(also)} programs in also for {len(tasks)} tasks")
    if top_k < 0 or passes < 1:
        raise ValueError(f"remeasure_best: top_k {top_k} must be >= 0 and passes {passes} >= 1")
    log = record_log(measurer.callbacks)
    if top_k == 0 or log is None:
        return [None] * len(tasks)
    runner, made_here = remeasure_runner(measurer.runner)
    try:
        timer = ProgramMeasurer(measurer.builder, runner, verbose=0)
        outcomes = []
        for i, task in enumerate(tasks):
            extra_state = None if also is None else also[i]
            extra = None if extra_state is None else tuple(extra_state.transform_steps)
            outcome = _remeasure_task(task, log, measurer.callbacks, timer, top_k, passes, extra)
            if outcome is not None and verbose >= 1:
                print(describe(outcome, passes), flush=True)
            outcomes.append(outcome)
        return outcomes
    finally:
        if made_here and isinstance(runner, LocalRunner):
            runner.close()


def best_was_remeasured(task: SearchTask, log: PathLike) -> bool:
    """Whether the first-ranked program of ``task`` in ``log`` has a record besides the
    search's (a re-measurement), or the task has no valid program: False tells a run that
    resumes a finished search that the re-measurement at its end never happened (the run
    was stopped before it). A missing log has nothing to re-measure."""
    if not os.path.exists(log):
        return True
    records = [
        raw
        for raw in read_raw_records(log)
        if normalize_key(raw.workload_key) == normalize_key(task.workload_key)
        and raw.target_class == target_class(task.target)
    ]
    ranked = ranked_programs(records, None, None)
    if not ranked:
        return True
    return sum(1 for raw in records if raw.steps == ranked[0].steps) > 1


def _remeasure_task(
    task: SearchTask,
    log: RecordToFile,
    callbacks: Sequence[MeasureCallback],
    timer: ProgramMeasurer,
    top_k: int,
    passes: int,
    also: Program | None = None,
) -> Remeasured | None:
    ranked = ranked_programs(read_raw_records(log.filename), task.workload_key, task.target)
    if not ranked:
        return None
    earlier = {raw.steps: raw.result.median_cost for raw in ranked}
    latest = {raw.steps: raw.result for raw in ranked}
    retimed: set[Program] = set()
    batch = [raw.steps for raw in ranked[:top_k]]
    if also is not None and also in latest and also not in batch:
        batch.append(also)
    sessions = 0
    while batch and sessions < MAX_SESSIONS:
        sessions += 1
        inputs = [MeasureInput(task, replay_or_steps(task, steps)) for steps in batch]
        results = _interleaved(timer, task, inputs, passes)
        for steps, inp, result in zip(batch, inputs, results, strict=True):
            for cb in callbacks:
                cb.callback(None, [inp], [result])
            latest[steps] = result
            retimed.add(steps)
        batch = _next_batch(latest, retimed, top_k)
    valid = [steps for steps, result in latest.items() if result.error_no is MeasureErrorNo.NO_ERROR]
    if not valid:
        return None
    best = min(valid, key=lambda steps: latest[steps].median_cost)
    state = replay_or_steps(task, best)
    if state.stages:  # as the search hands its states over: with bounds inferred
        state = infer_bound_from_state(task.compute_dag, state)
    return Remeasured(
        MeasureInput(task, state),
        latest[best],
        best in retimed,
        earlier[best],
        len(retimed),
        sessions,
    )


def _next_batch(latest: dict[Program, MeasureResult], retimed: set[Program], top_k: int) -> list[Program]:
    """The next session's programs: none when the fastest program was re-measured; else the
    fastest re-measured one (the incumbent, timed again beside them) and the ``top_k - 1``
    (at least one) fastest programs not re-measured that rank above it."""
    valid = sorted(
        (steps for steps, result in latest.items() if result.error_no is MeasureErrorNo.NO_ERROR),
        key=lambda steps: latest[steps].median_cost,
    )
    if not valid or valid[0] in retimed:
        return []
    incumbent = next((steps for steps in valid if steps in retimed), None)
    challengers = [steps for steps in valid if steps not in retimed]
    if incumbent is None:  # every re-measured program failed
        return challengers[:top_k]
    cost = latest[incumbent].median_cost
    challengers = [steps for steps in challengers if latest[steps].median_cost < cost]
    return [*challengers[: max(1, top_k - 1)], incumbent]


def _run_passes(timer: ProgramMeasurer, inputs: list[MeasureInput], passes: int) -> list[MeasureResult]:
    """``inputs`` run ``passes`` times, interleaved (1, 2, ..., k, 1, 2, ..., k, ...), each
    program built once: a runner consumes (deletes) the library it ran, so every pass but
    the last runs a copy of it."""
    built = timer.builder.build(inputs, verbose=0)
    run_inputs: list[MeasureInput] = []
    run_built: list[BuildResult] = []
    for index in range(passes):
        last = index == passes - 1
        for inp, result in zip(inputs, built, strict=True):
            if not last and result.error_no is MeasureErrorNo.NO_ERROR and os.path.exists(result.filename):
                copy = f"{result.filename}.pass{index}"
                shutil.copyfile(result.filename, copy)
                result = replace(result, filename=copy)
            run_inputs.append(inp)
            run_built.append(result)
    return timer.runner.run(run_inputs, run_built, verbose=0)


def _interleaved(
    timer: ProgramMeasurer, task: SearchTask, inputs: list[MeasureInput], passes: int
) -> list[MeasureResult]:
    """One result per input from ``passes`` interleaved measurements: the first failing
    pass's result when a pass failed other than by a timeout (a wrong answer or a crash
    condemns the program), or when every pass timed out; else the samples of the passes
    that finished (a timeout on a loaded machine says nothing about the program)."""
    results = _run_passes(timer, inputs, passes)
    merged = []
    for index in range(len(inputs)):
        mine = results[index :: len(inputs)]
        failed = next((r for r in mine if r.error_no not in TOLERATED), None)
        finished = [r for r in mine if r.error_no is MeasureErrorNo.NO_ERROR]
        if failed is not None or not finished:
            merged.append(failed or mine[0])
            continue
        merged.append(
            MeasureResult(
                tuple(cost for r in finished for cost in r.costs),
                MeasureErrorNo.NO_ERROR,
                "",
                sum(r.all_cost for r in mine),
                max(r.timestamp for r in mine),
            )
        )
    return merged


def describe(outcome: Remeasured, passes: int) -> str:
    """The line the tuner prints for one task after re-measuring."""
    task = outcome.input.task
    name = task.desc or task.workload_key
    result = outcome.result
    if not outcome.retimed:
        return (
            f"Re-measured {outcome.programs} program(s) of {name} in {outcome.sessions} session(s); the "
            f"best is still one not re-measured: {outcome.flops / 1e9:.2f} GFLOP/s "
            f"({result.median_cost * 1e3:.4f} ms, one search sample)"
        )
    earlier_flops = task.compute_dag.flop_ct / outcome.earlier_cost
    return (
        f"Re-measured {outcome.programs} program(s) of {name} ({passes} interleaved passes, "
        f"{outcome.sessions} session(s)): best {outcome.flops / 1e9:.2f} GFLOP/s (median "
        f"{result.median_cost * 1e3:.4f} ms, mean {statistics.fmean(result.costs) * 1e3:.4f} ms "
        f"of {len(result.costs)} samples); measured before at {earlier_flops / 1e9:.2f} GFLOP/s"
    )
