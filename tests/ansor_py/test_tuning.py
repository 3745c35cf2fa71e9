"""``ansor_py.tuning``: ``TuningOptions`` checks its fields; ``auto_schedule`` runs a
policy with the measurer it puts together from the options (closing only a runner it made
itself); ``best_state`` and ``print_best`` read the log back. (``apply_best`` is tested with
the records, in ``test_measure_records``; a real tuning run in ``test_search_tune``.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import search_workloads as W

from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult, ResultCallback
from ansor_py.records import RecordToFile, save_records
from ansor_py.search import EmptyPolicy
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule, best_state, print_best
from ir.loop_state.api import State


class FakeBuilder:
    """Builds nothing: every candidate 'builds'."""

    n_parallel = 1
    timeout = 1.0

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        return [BuildResult("", MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class FakeRunner:
    """Every candidate 'runs' in 1 ms; remembers whether it was closed."""

    timeout = 1.0

    def __init__(self) -> None:
        self.closed = False

    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]:
        return [MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR) for _ in inputs]

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func=W.search_test_matmul, args=(8, 8, 8), target="llvm")


def test_tuning_options_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="TuningOptions: num_measures_per_round 0 must be >= 1"):
        TuningOptions(num_measures_per_round=0)
    with pytest.raises(ValueError, match="TuningOptions: verbose 3 must be 0, 1 or 2"):
        TuningOptions(verbose=3)
    with pytest.raises(ValueError, match="TuningOptions: builder 'rpc': give 'local' or a builder object"):
        TuningOptions(builder="rpc")
    with pytest.raises(ValueError, match="TuningOptions: runner 'rpc': give 'local' or a runner object"):
        TuningOptions(runner="rpc")


def test_auto_schedule_measures_through_the_options_and_leaves_a_given_runner_open(
    tmp_path: Path, task: SearchTask
) -> None:
    log = tmp_path / "log.json"
    runner = FakeRunner()
    options = TuningOptions(
        num_measure_trials=4,
        verbose=0,
        builder=FakeBuilder(),
        runner=runner,
        measure_callbacks=[RecordToFile(log)],
    )
    best = auto_schedule(task, options, EmptyPolicy(task, verbose=0))
    assert best is not None and best.transform_steps == ()  # the naive program
    assert len(log.read_text().splitlines()) == 1  # EmptyPolicy measures its one program once
    assert not runner.closed  # the caller's runner: the caller closes it


def test_without_trials_nothing_is_measured(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    options = TuningOptions(num_measure_trials=0, verbose=0, measure_callbacks=[RecordToFile(log)])
    best = auto_schedule(task, options, EmptyPolicy(task, verbose=0))
    assert best is not None and best.transform_steps == ()
    assert not log.exists()


def test_best_state_and_print_best_read_the_fastest_valid_record(tmp_path: Path, task: SearchTask) -> None:
    s = State(task.compute_dag)
    i, _, _ = s["C"].iters
    s.split("C", i, [4])
    tiled = s.loop_state
    naive = State(task.compute_dag).loop_state
    log = tmp_path / "log.json"
    save_records(
        log,
        [MeasureInput(task, naive), MeasureInput(task, tiled), MeasureInput(task, naive)],
        [
            MeasureResult((2e-3,), MeasureErrorNo.NO_ERROR),
            MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR),
            MeasureResult((1e-4,), MeasureErrorNo.WRONG_ANSWER),  # fast but wrong: never the best
        ],
    )
    assert best_state(task, log).transform_steps == tiled.transform_steps
    scope: dict = {"dag": task.compute_dag}
    exec(print_best(task, log), scope)
    assert scope["s"].loop_state.transform_steps == tiled.transform_steps
    errors = tmp_path / "errors.json"
    save_records(errors, [MeasureInput(task, tiled)], [MeasureResult((1.0,), MeasureErrorNo.RUN_TIMEOUT)])
    with pytest.raises(ValueError, match=r"no valid record of workload .*search_test_matmul.* for target"):
        best_state(task, errors)
