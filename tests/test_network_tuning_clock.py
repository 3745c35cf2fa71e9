"""``benchmarks/network_tuning.py``'s tuning clock and curve points: the time of the
final re-measurement, written once ``tune`` returns, counts in the curve's last point."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from network_tuning import (
    TuneOutcome,
    TuningClock,
    curve_points,
    progress_path,
    read_progress,
    records_before_program,
)

import ansor_py as ansor
from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.records import dump_record_to_string
from ir.topi.workloads import gemm


class Progress:
    """The scheduler's progress as the clock reads it (``SchedulerProgress``)."""

    def __init__(self, total_trials: int):
        self.total_trials = total_trials
        self.best_costs: list[float] = []
        self.task_weights: list[float] = []
        self.cur_score = 0.012


def test_finish_adds_the_time_after_the_last_round(tmp_path: Path):
    log = tmp_path / "net.json"
    clock = TuningClock(progress_path(log), offset_s=100.0)
    clock.post_tune(Progress(40), 0)
    clock.post_tune(Progress(80), 1)
    clock.finish(Progress(80))
    rows = read_progress(progress_path(log))
    assert [trials for trials, _ in rows] == [40, 80, 80]
    assert all(seconds >= 100.0 for _, seconds in rows)


def test_curve_points_take_the_first_line_reaching_them_and_the_last_for_the_whole_log(tmp_path: Path):
    log = tmp_path / "net.json"
    progress_path(log).write_text("10\t5.0\t-\n20\t9.0\t-\n40\t20.0\t-\n40\t31.0\t-\n")
    outcome = TuneOutcome(log, tasks=2, trials=40, resumed=0, run_s=31.0, total_s=31.0)
    points = curve_points(outcome, budget=40)
    assert [(p.trials, p.tuning_s) for p in points] == [(4, 5.0), (10, 5.0), (20, 9.0), (40, 31.0)]


def test_history_after_counts_programs_not_lines(tmp_path: Path):

    task = ansor.SearchTask(compute_dag=ansor.ComputeDAG(gemm(8, 8, 8)), target="llvm")
    states = []
    for factor in (1, 2, 4):
        s = ansor.get_init_state(task.compute_dag)
        s.split("C", s["C"].iters[0], [factor])
        states.append(s.loop_state)

    def line(state, cost):
        result = MeasureResult((cost,), MeasureErrorNo.NO_ERROR, "", 0.0, 1.0)
        return dump_record_to_string(MeasureInput(task, state), result)

    log = tmp_path / "net.json"
    # programs 0 and 1, program 0 re-measured, program 2, then 0 and 2 re-measured
    lines = [line(states[0], 3e-3), line(states[1], 2e-3), line(states[0], 1e-3), line(states[2], 4e-3)]
    lines += [line(states[0], 5e-3), line(states[2], 6e-3)]
    log.write_text("".join(entry if entry.endswith("\n") else entry + "\n" for entry in lines))
    assert records_before_program(log, 1) == 1
    assert records_before_program(log, 2) == 3  # program 0's re-measurement counts
    assert records_before_program(log, 3) is None  # the whole log
