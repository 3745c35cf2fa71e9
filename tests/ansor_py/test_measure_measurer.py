"""ProgramMeasurer: batches, best tracking, callbacks, progress output, error streaks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from ansor_py.measure import (
    LocalBuilder,
    LocalRunner,
    MeasureCallback,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramMeasurer,
)
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
    # batches of 2 * n_parallel, each reported once, in order
    assert [len(inputs) for _, inputs, _ in collect.calls] == [4, 2]
    assert all(policy == "the policy" for policy, _, _ in collect.calls)
    assert [r for _, _, rs in collect.calls for r in rs] == results
    key = task.workload_key
    best = min(range(5), key=lambda i: results[i].mean_cost)
    assert measurer.best_cost[key] == results[best].mean_cost
    assert measurer.best_state[key] is inputs[best].state
    assert measurer.best_ct[key] == best + 1
    assert measurer.best_flops[key] == pytest.approx(2 * 16**3 / results[best].mean_cost)
    assert measurer.ct == 6 and measurer.error_ct == 1 and key in measurer.has_valid
    # a second call keeps counting and only replaces the best with a faster one
    again = measurer.measure(task, None, inputs[:1])
    assert measurer.ct == 7
    assert measurer.best_cost[key] == min(results[best].mean_cost, again[0].mean_cost)


def test_progress_output(task: SearchTask, runner: LocalRunner, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = [MeasureInput(task, states(task)[0]), MeasureInput(task, broken(task))]
    ProgramMeasurer(LocalBuilder(n_parallel=1), runner, verbose=1).measure(task, None, inputs)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Get 2 programs to measure:"
    assert lines[1] == "..E**E"
    assert lines[2].startswith("Measured 2 programs in ")
    assert ": 1 valid, 1 errors; best " in lines[2] and " GFLOP/s (" in lines[2] and "trial 1)" in lines[2]
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
