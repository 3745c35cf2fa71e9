"""``benchmarks/network_tuning.py``'s tuning clock and curve points: the time of the
final re-measurement, written once ``tune`` returns, counts in the curve's last point; and
the re-measurement a stopped run skipped, done by the next run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import numpy as np
import pytest
from network_tuning import (
    TuneOutcome,
    TuningClock,
    curve_points,
    finish_remeasurement,
    progress_path,
    read_progress,
    records_before_program,
)

import ansor_py as ansor
from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.graph import Graph, Node
from ansor_py.network.tasks import extract_tasks
from ansor_py.network.types import TensorType
from ansor_py.records import dump_record_to_string
from ansor_py.remeasure import best_was_remeasured
from ir.loop_state.api import as_loop_state
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


@pytest.mark.slow
def test_a_spent_budget_finishes_the_remeasurement_a_stopped_run_skipped(tmp_path: Path):
    """A log whose search ended without its final re-measurement (the run was stopped
    after its last round) gets it from the next run, default schedules included; once
    done, a further run measures nothing."""
    rng = np.random.default_rng(0)
    constants = {
        "w": rng.uniform(-1, 1, (16, 32)).astype(np.float32),
        "b": rng.uniform(-1, 1, 16).astype(np.float32),
    }
    nodes = [
        Node("dense", ("x", "w"), ("d",), {}, name="d"),
        Node("add", ("d", "b"), ("a",), {}, name="a"),
        Node("relu", ("a",), ("y",), {}, name="y"),
    ]
    graph = Graph({"x": TensorType((1, 32))}, nodes, ["y"], constants, name="one_dense")
    tasks, weights = extract_tasks(graph)
    log = tmp_path / "one_dense.json"
    scheduler = ansor.TaskScheduler(tasks, weights, callbacks=[], baseline_schedules=default_schedule)
    options = ansor.TuningOptions(
        num_measure_trials=4,
        num_measures_per_round=2,
        verbose=0,
        measure_callbacks=[ansor.RecordToFile(log)],
        remeasure_top_k=0,  # as if stopped before the re-measurement
    )
    scheduler.tune(options, search_policy_params={"evolutionary_search_population": 16})
    assert not all(best_was_remeasured(task, log) for task in tasks)

    finish_remeasurement(tasks, log, cache_flush=False, verbose=0)
    assert all(best_was_remeasured(task, log) for task in tasks)
    records = list(ansor.load_records(log, tasks=tasks))
    for task in tasks:
        baseline = as_loop_state(task.compute_dag, default_schedule(task.compute_dag, task.target))
        lines = [inp for inp, _ in records if inp.state.transform_steps == baseline.transform_steps]
        assert len(lines) >= 2, "the default schedule was not re-measured"
    count = len(log.read_text().splitlines())
    finish_remeasurement(tasks, log, cache_flush=False, verbose=0)
    assert len(log.read_text().splitlines()) == count
