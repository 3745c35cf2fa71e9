"""ProgramMeasurer: batches, best tracking, callbacks, progress output, error streaks; each
result recorded (and written by ``RecordToFile``) as soon as the runner reports it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from measure_fakes import FakeBuilder

from ansor_py.measure import (
    BuildResult,
    LocalBuilder,
    LocalRunner,
    MeasureCallback,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramMeasurer,
)
from ansor_py.measure.progress import task_label
from ansor_py.measure.types import ResultCallback
from ansor_py.records import RecordToFile
from ansor_py.search_task import SearchTask
from ansor_py.workload_registry import register_workload
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState, initial_state
from ir.loop_state.steps import SplitStep
from ir.topi.workloads import gemm


@register_workload("test_measure_measurer_matmul")
def matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func="test_measure_measurer_matmul", args=(16, 16, 16), target="llvm")


@pytest.fixture(scope="module")
def runner():
    with LocalRunner(number=1, min_repeat_ms=1) as r:
        yield r


def states(task: SearchTask) -> list[LoopState]:
    out = []
    for factor in (2, 4, 8, 16, 1):
        s = get_init_state(task.compute_dag)
        io, _ = s.split("C", "i", [factor])
        s.parallel("C", io)
        out.append(s.loop_state)
    return out


def broken(task: SearchTask) -> LoopState:
    """A state whose step cannot replay (stage 9 does not exist): INSTANTIATION_ERROR."""
    return replace(initial_state(task.compute_dag), transform_steps=(SplitStep(9, 0, 16, (4,), True),))


class Collect(MeasureCallback):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, list[MeasureInput], list[MeasureResult]]] = []

    def callback(self, policy: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        self.calls.append((policy, list(inputs), list(results)))


def test_measure_batches_tracks_best_and_calls_back(task: SearchTask, runner: LocalRunner) -> None:
    collect = Collect()
    measurer = ProgramMeasurer(LocalBuilder(n_parallel=2), runner, [collect], verbose=0)
    inputs = [MeasureInput(task, s) for s in states(task)] + [MeasureInput(task, broken(task))]
    results = measurer.measure(task, "the policy", inputs)
    assert len(results) == 6
    assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR] * 5 + [
        MeasureErrorNo.INSTANTIATION_ERROR
    ]
    # each program handed to the callbacks on its own, once, in order
    assert [len(inputs) for _, inputs, _ in collect.calls] == [1] * 6
    assert [inp for _, inps, _ in collect.calls for inp in inps] == inputs
    assert all(policy == "the policy" for policy, _, _ in collect.calls)
    assert [r for _, _, rs in collect.calls for r in rs] == results
    key = task.workload_key
    best = min(range(5), key=lambda i: results[i].median_cost)
    assert measurer.best_cost[key] == results[best].median_cost
    assert measurer.best_state[key] is inputs[best].state
    assert measurer.best_ct[key] == best + 1
    assert measurer.best_flops[key] == pytest.approx(2 * 16**3 / results[best].median_cost)
    assert measurer.ct == 6 and measurer.error_ct == 1 and key in measurer.has_valid
    # a second call keeps counting and only replaces the best with a faster one
    again = measurer.measure(task, None, inputs[:1])
    assert measurer.ct == 7
    assert measurer.best_cost[key] == min(results[best].median_cost, again[0].median_cost)


def test_progress_output(
    task: SearchTask, runner: LocalRunner, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """verbose=2: TVM's header, glyphs, inputs and summary; verbose=1: the progress status
    (one plain line here: capsys is not a terminal); verbose=0: nothing."""
    monkeypatch.delenv("ANSOR_PROGRESS", raising=False)
    inputs = [MeasureInput(task, states(task)[0]), MeasureInput(task, broken(task))]
    ProgramMeasurer(LocalBuilder(n_parallel=1), runner, verbose=2).measure(task, None, inputs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Get 2 programs to measure:"
    assert lines[1] == "..E"  # built; then each run's "*" follows its input and result
    assert [line for line in lines if line.startswith("*")] == ["*", "*E"]
    assert lines[-1].startswith("Measured 2 programs in ")
    assert ": 1 valid, 1 errors; best " in lines[-1] and " GFLOP/s (" in lines[-1] and "trial 1)" in lines[-1]
    ProgramMeasurer(LocalBuilder(n_parallel=1), runner, verbose=1).measure(task, None, inputs)
    out = capsys.readouterr().out
    label = re.escape(task_label(task.desc, task.workload_key))
    assert re.fullmatch(
        rf"trials 2 \| {label} \| best [0-9.e-]+ GFLOP/s \| 1 instantiation error \| elapsed \d+s\n", out
    ), out
    ProgramMeasurer(LocalBuilder(n_parallel=1), runner, verbose=0).measure(task, None, inputs)
    assert capsys.readouterr().out == ""


def test_error_streak_switches_to_verbose_2(
    task: SearchTask, runner: LocalRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    measurer = ProgramMeasurer(LocalBuilder(), runner, verbose=1, max_continuous_error=2)
    inputs = [MeasureInput(task, broken(task))] * 3
    with pytest.warns(UserWarning, match=r"3 errors in a row \(more than max_continuous_error=2\)"):
        measurer.measure(task, None, inputs)
    assert measurer.verbose == 2 and measurer.error_ct == 3
    assert "no valid program yet" in capsys.readouterr().out
    measurer.measure(task, None, [MeasureInput(task, states(task)[1])])
    out = capsys.readouterr().out
    assert "==== MeasureInput 4 ====" in out and "==== MeasureResult ====" in out
    assert measurer.error_ct == 0


def test_bad_arguments(runner: LocalRunner) -> None:
    with pytest.raises(ValueError, match=r"ProgramMeasurer: verbose 3 must be 0, 1 or 2"):
        ProgramMeasurer(LocalBuilder(), runner, verbose=3)
    with pytest.raises(ValueError, match=r"callback 'file.json' has no callback\(policy, inputs, results\)"):
        ProgramMeasurer(LocalBuilder(), runner, ["file.json"])  # type: ignore[list-item]


class ReportingRunner:
    """'Runs' candidate i of a batch in (i + 1) ms. Before each candidate it notes how many
    lines ``log`` has; ``report(results, on_result)`` reports what it chooses (default:
    each result right after its run)."""

    timeout = 1.0

    def __init__(
        self,
        log: Path | None = None,
        report: Callable[[list, ResultCallback], None] | None = None,
        result: Callable[[int], MeasureResult] | None = None,
    ):
        self.log = log
        self.report = report
        self.result = result or (
            lambda index: MeasureResult(((index + 1) * 1e-3,), MeasureErrorNo.NO_ERROR, timestamp=1.0)
        )
        self.lines_before: list[int] = []

    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]:
        results: list[MeasureResult] = []
        for index in range(len(inputs)):
            if self.log is not None:
                self.lines_before.append(len(self.log.read_text().splitlines()) if self.log.exists() else 0)
            results.append(self.result(index))
            if on_result is not None and self.report is None:
                on_result(index, results[-1])
        if on_result is not None and self.report is not None:
            self.report(results, on_result)
        return results


def test_each_result_is_written_before_the_next_candidate_runs(task: SearchTask, tmp_path: Path) -> None:
    """Issue 11: records were written once per batch, so a killed tuner lost up to a batch
    of measured programs. Now RecordToFile has flushed each program's line before the
    runner goes on to the next one."""
    log = tmp_path / "log.json"
    runner = ReportingRunner(log)
    collect = Collect()
    measurer = ProgramMeasurer(FakeBuilder(n_parallel=2), runner, [RecordToFile(log), collect], verbose=0)
    inputs = [MeasureInput(task, s) for s in states(task)] + [MeasureInput(task, states(task)[0])]
    results = measurer.measure(task, "the policy", inputs)
    assert runner.lines_before == [0, 1, 2, 3, 4, 5]  # over two batches (4 + 2)
    assert len(log.read_text().splitlines()) == 6
    assert [(len(inps), len(rs)) for _, inps, rs in collect.calls] == [(1, 1)] * 6
    assert [inp for _, inps, _ in collect.calls for inp in inps] == inputs
    assert [r for _, _, rs in collect.calls for r in rs] == results
    assert measurer.best_ct[task.workload_key] == 1 and measurer.ct == 6


def test_results_reported_out_of_order_or_not_at_all(task: SearchTask) -> None:
    """A runner may report in any order; what it does not report is recorded, in input
    order, when its run returns; the measurer returns the results in input order."""

    def report_2_then_0(results: list, on_result: ResultCallback) -> None:
        on_result(2, results[2])
        on_result(0, results[0])

    collect = Collect()
    runner = ReportingRunner(report=report_2_then_0)
    measurer = ProgramMeasurer(FakeBuilder(n_parallel=2), runner, [collect], verbose=0)
    inputs = [MeasureInput(task, s) for s in states(task)[:4]]
    results = measurer.measure(task, None, inputs)
    assert [inps[0] for _, inps, _ in collect.calls] == [inputs[2], inputs[0], inputs[1], inputs[3]]
    assert [r.costs for r in results] == [(1e-3,), (2e-3,), (3e-3,), (4e-3,)]
    # input 0 (1 ms) is the best, and it was the second program recorded
    assert measurer.best_state[task.workload_key] is inputs[0].state
    assert measurer.best_ct[task.workload_key] == 2


def test_a_runner_reporting_an_input_twice_is_a_bug(task: SearchTask) -> None:
    def twice(results: list, on_result: ResultCallback) -> None:
        on_result(1, results[1])
        on_result(1, results[1])

    measurer = ProgramMeasurer(FakeBuilder(n_parallel=2), ReportingRunner(report=twice), verbose=0)
    inputs = [MeasureInput(task, s) for s in states(task)[:4]]
    with pytest.raises(ValueError, match=r"runner ReportingRunner reported input 1 of a batch of 4 twice"):
        measurer.measure(task, None, inputs)


def dying_runner() -> ReportingRunner:
    """Every run fails as a dead runner child does: UNKNOWN_ERROR with a traceback."""
    message = "Traceback (most recent call last):\n  File x\nBrokenPipeError: [Errno 32]\n"
    return ReportingRunner(result=lambda _: MeasureResult((1e10,), MeasureErrorNo.UNKNOWN_ERROR, message))


def test_an_unknown_error_prints_its_message_at_verbose_1(
    task: SearchTask, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record keeps only the code, so the message's last line is printed once per
    such result at verbose=1, and not at verbose=0."""
    monkeypatch.setenv("ANSOR_PROGRESS", "off")
    inputs = [MeasureInput(task, s) for s in states(task)[:2]]
    results = ProgramMeasurer(FakeBuilder(), dying_runner(), verbose=1).measure(task, None, inputs)
    assert all(r.error_no is MeasureErrorNo.UNKNOWN_ERROR for r in results)
    lines = capsys.readouterr().out.splitlines()
    label = task.desc or task.workload_key
    expected = [f"unknown error, trial {n} ({label}): BrokenPipeError: [Errno 32]" for n in (1, 2)]
    assert lines == expected, lines
    ProgramMeasurer(FakeBuilder(), dying_runner(), verbose=0).measure(task, None, inputs)
    assert capsys.readouterr().out == ""
