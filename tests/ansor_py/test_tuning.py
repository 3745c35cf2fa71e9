"""``ansor_py.tuning``: ``TuningOptions`` checks its fields; ``auto_schedule`` runs a
policy with the measurer it puts together from the options (closing only a runner it made
itself); ``best_state`` and ``print_best`` read the log back. (``apply_best`` is tested with
the records, in ``test_measure_records``; a real tuning run in ``test_search_tune``.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import search_workloads as W
from measure_fakes import FakeBuilder

from ansor_py.cost_model import XGBModel
from ansor_py.measure.local import LocalRunner
from ansor_py.measure.measurer import ProgramMeasurer
from ansor_py.measure.types import (
    ERROR_COST,
    BuildResult,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ResultCallback,
)
from ansor_py.records import (
    ApplyHistoryBest,
    RawRecord,
    RecordToFile,
    load_best_record,
    parse_record,
    save_records,
)
from ansor_py.remeasure import best_was_remeasured, remeasure_best, remeasure_runner
from ansor_py.search import EmptyPolicy
from ansor_py.search.sketch_policy import PreloadMeasuredStates, SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler import TaskScheduler
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule, best_state, print_best
from codegen.llvm import Kernel
from ir.loop_state.api import State
from ir.loop_state.state import LoopState
from ir.reference import random_inputs


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
    with pytest.raises(ValueError, match=r"TuningOptions: remeasure_top_k -1 must be >= 0 \(0: off\)"):
        TuningOptions(remeasure_top_k=-1)
    with pytest.raises(ValueError, match="TuningOptions: remeasure_repeat 0 must be >= 1"):
        TuningOptions(remeasure_repeat=0)
    with pytest.raises(ValueError, match=r"TuningOptions: remeasure_repeat 2\.5 must be an int"):
        TuningOptions(remeasure_repeat=2.5)  # type: ignore[arg-type]


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
    # EmptyPolicy measures its one program once, then it is re-measured once (5 samples)
    first, again = (parse_record(line) for line in log.read_text().splitlines())
    assert first.steps == again.steps == () and len(first.result.costs) == 1
    assert again.result.costs == (1e-3,) * 5
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


# re-measuring the best programs at the end of tuning (ansor_py.remeasure) -------------------


def program(task: SearchTask, i_factor: int, j_factor: int) -> LoopState:
    """A distinct program of the 8x8x8 matmul: i split by ``i_factor``, j by ``j_factor``."""
    s = State(task.compute_dag)
    i, j, _ = s["C"].iters
    s.split("C", i, [i_factor])
    s.split("C", j, [j_factor])
    return s.loop_state


class TrueCostRunner:
    """'Runs' each program in its true time ``costs[steps]`` seconds, or fails it with
    ``errors[steps]``; ``order`` lists the programs in the order they ran."""

    timeout = 1.0

    def __init__(self, costs: dict, errors: dict | None = None) -> None:
        self.costs = costs
        self.errors = errors or {}
        self.order: list = []

    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]:
        results = []
        for inp in inputs:
            steps = inp.state.transform_steps
            self.order.append(steps)
            if steps in self.errors:
                results.append(MeasureResult((ERROR_COST,), self.errors[steps]))
            else:
                results.append(MeasureResult((self.costs[steps],), MeasureErrorNo.NO_ERROR))
        return results


class CountingBuilder(FakeBuilder):
    """A FakeBuilder that records how many programs each ``build`` call got."""

    def __init__(self) -> None:
        super().__init__()
        self.built: list[int] = []

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        self.built.append(len(inputs))
        return super().build(inputs, verbose)


def searched_log(path: Path, task: SearchTask, samples: list[tuple[LoopState, float]]) -> None:
    """A log as the search leaves it: one sample per program."""
    save_records(
        path,
        [MeasureInput(task, state) for state, _ in samples],
        [MeasureResult((cost,), MeasureErrorNo.NO_ERROR) for _, cost in samples],
    )


def appended(path: Path, after: int) -> list[RawRecord]:
    return [parse_record(line) for line in path.read_text().splitlines()[after:]]


def test_remeasuring_picks_the_truly_fastest_program_over_a_lucky_sample(
    tmp_path: Path, task: SearchTask
) -> None:
    # the search's samples rank a, b, c, d; their true times rank d, c, b, a (a was lucky)
    a, b, c, d = (program(task, *f) for f in ((2, 2), (2, 4), (4, 2), (4, 4)))
    log = tmp_path / "log.json"
    searched_log(log, task, [(a, 1.0e-3), (b, 1.1e-3), (c, 1.2e-3), (d, 1.3e-3)])
    assert best_state(task, log).transform_steps == a.transform_steps
    true = {a.transform_steps: 2.0e-3, b.transform_steps: 1.5e-3, c.transform_steps: 1.4e-3}
    true[d.transform_steps] = 1.25e-3
    runner = TrueCostRunner(true)
    builder = CountingBuilder()
    measurer = ProgramMeasurer(builder, runner, [RecordToFile(log)], verbose=0)

    (outcome,) = remeasure_best([task], measurer, top_k=2, passes=3, verbose=0)
    assert builder.built == [2, 2, 2]  # each session builds its two programs once, for 3 passes

    # session 1 times a and b; c's sample (1.2) still beats b's re-measured 1.5, so session
    # 2 times c beside b; then d's sample (1.3) beats c's 1.4: session 3 times d beside c
    sessions = [[a, b], [c, b], [d, c]]
    expected_order = [p.transform_steps for pair in sessions for p in pair * 3]  # interleaved
    assert runner.order == expected_order
    records = appended(log, 4)
    assert [r.steps for r in records] == [p.transform_steps for pair in sessions for p in pair]
    assert all(len(r.result.costs) == 3 and r.result.ok for r in records)
    assert outcome is not None and outcome.retimed and (outcome.programs, outcome.sessions) == (4, 3)
    assert outcome.input.state.transform_steps == d.transform_steps
    assert outcome.result.median_cost == pytest.approx(1.25e-3) and outcome.earlier_cost == 1.3e-3
    # every reader of the log now picks d, by its re-measured median
    assert best_state(task, log).transform_steps == d.transform_steps
    _, best = load_best_record(log, task.workload_key)
    assert best is not None and best.median_cost == pytest.approx(1.25e-3)
    history = ApplyHistoryBest(log).query("llvm", task.workload_key, task.compute_dag)
    assert history is not None and history.transform_steps == d.transform_steps
    assert measurer.ct == 0  # the tuning measurer counted no trial


def test_a_program_given_in_also_is_remeasured_beside_the_best(tmp_path: Path, task: SearchTask) -> None:
    """The task scheduler's baseline, whose one sample was unlucky, is re-measured beside
    the best program and wins when it is truly faster; without ``also`` it never is."""
    lucky, baseline = program(task, 2, 2), program(task, 4, 4)
    true = {lucky.transform_steps: 2.0e-3, baseline.transform_steps: 1.5e-3}
    for also, winner in ((None, lucky), ([baseline], baseline)):
        log = tmp_path / f"log_{winner is baseline}.json"
        searched_log(log, task, [(baseline, 3.0e-3), (lucky, 1.0e-3)])
        measurer = ProgramMeasurer(FakeBuilder(), TrueCostRunner(true), [RecordToFile(log)], verbose=0)
        (outcome,) = remeasure_best([task], measurer, top_k=1, passes=2, verbose=0, also=also)
        assert outcome is not None and outcome.input.state.transform_steps == winner.transform_steps
        assert best_state(task, log).transform_steps == winner.transform_steps
    with pytest.raises(ValueError, match="remeasure_best: 2 programs in also for 1 tasks"):
        remeasure_best([task], measurer, top_k=1, passes=2, also=[baseline, None])


def test_a_log_tells_whether_its_best_program_was_remeasured(tmp_path: Path, task: SearchTask) -> None:
    """A run that resumes a finished search re-measures only when the last run stopped
    before its re-measurement (``benchmarks/network_tuning.finish_remeasurement``)."""
    a, b = program(task, 2, 2), program(task, 4, 4)
    log = tmp_path / "log.json"
    assert best_was_remeasured(task, log)  # nothing to re-measure
    searched_log(log, task, [(a, 1.0e-3), (b, 1.1e-3)])
    assert not best_was_remeasured(task, log)
    runner = TrueCostRunner({a.transform_steps: 2.0e-3, b.transform_steps: 1.5e-3})
    measurer = ProgramMeasurer(FakeBuilder(), runner, [RecordToFile(log)], verbose=0)
    remeasure_best([task], measurer, top_k=2, passes=2, verbose=0)
    assert best_was_remeasured(task, log)  # b, re-measured, now ranks first
    searched_log(log, task, [(program(task, 2, 4), 0.5e-3)])  # a later search's lucky sample
    assert not best_was_remeasured(task, log)


def test_a_program_whose_remeasurement_fails_drops_out(tmp_path: Path, task: SearchTask) -> None:
    a, b, c = (program(task, *f) for f in ((2, 2), (2, 4), (4, 2)))
    log = tmp_path / "log.json"
    searched_log(log, task, [(a, 1.0e-3), (b, 1.1e-3), (c, 1.5e-3)])
    runner = TrueCostRunner(
        {b.transform_steps: 1.2e-3, c.transform_steps: 1.3e-3},
        errors={a.transform_steps: MeasureErrorNo.WRONG_ANSWER},
    )
    measurer = ProgramMeasurer(FakeBuilder(), runner, [RecordToFile(log)], verbose=0)
    (outcome,) = remeasure_best([task], measurer, top_k=2, passes=2, verbose=0)
    failed, timed = appended(log, 3)
    assert failed.steps == a.transform_steps and failed.result.error_no is MeasureErrorNo.WRONG_ANSWER
    assert timed.steps == b.transform_steps and timed.result.costs == (1.2e-3, 1.2e-3)
    assert outcome is not None and outcome.input.state.transform_steps == b.transform_steps
    assert outcome.sessions == 1  # c's sample (1.5) does not beat b's re-measured 1.2
    assert best_state(task, log).transform_steps == b.transform_steps


def test_remeasuring_needs_k_above_0_and_a_log(tmp_path: Path, task: SearchTask) -> None:
    a, b = program(task, 2, 2), program(task, 4, 4)
    log = tmp_path / "log.json"
    searched_log(log, task, [(a, 1.0e-3), (b, 1.1e-3)])
    before = log.read_text()
    runner = TrueCostRunner({a.transform_steps: 1e-3, b.transform_steps: 1e-3})
    with_log = ProgramMeasurer(FakeBuilder(), runner, [RecordToFile(log)], verbose=0)
    assert remeasure_best([task], with_log, top_k=0, passes=3) == [None]
    without_log = ProgramMeasurer(FakeBuilder(), runner, [], verbose=0)
    assert remeasure_best([task], without_log, top_k=3, passes=3) == [None]
    assert runner.order == [] and log.read_text() == before
    with pytest.raises(ValueError, match="remeasure_best: top_k -1 must be >= 0 and passes 0 >= 1"):
        remeasure_best([task], with_log, top_k=-1, passes=0)


def test_the_remeasure_runner_keeps_the_local_runners_settings_without_its_cut() -> None:
    tuning = LocalRunner(timeout=7, number=2, repeat=3, min_repeat_ms=50, cooldown_interval=0.1)
    made, made_here = remeasure_runner(tuning)
    try:
        assert made_here and isinstance(made, LocalRunner) and made is not tuning
        assert (made.timeout, made.number, made.repeat, made.min_repeat_ms) == (7, 2, 1, 50)
        assert made.cooldown_interval == 0.1 and made.slowdown_limit is None
    finally:
        tuning.close()
        assert isinstance(made, LocalRunner)
        made.close()
    other = FakeRunner()
    assert remeasure_runner(other) == (other, False)  # type: ignore[arg-type]


def small_policy(task: SearchTask, seed: int, log: Path | None = None) -> SketchPolicy:
    callbacks = [] if log is None else [PreloadMeasuredStates(log)]
    return SketchPolicy(
        task,
        XGBModel(seed=seed),
        params={"evolutionary_search_population": 256},
        seed=seed,
        verbose=0,
        init_search_callbacks=callbacks,
    )


def distinct_programs(log: Path) -> list:
    records = [parse_record(line) for line in log.read_text().splitlines()]
    return list(dict.fromkeys(r.steps for r in records))


@pytest.mark.slow
def test_real_tuning_remeasures_the_best_and_a_resumed_run_counts_no_remeasurement(tmp_path: Path) -> None:
    task = SearchTask(func=W.search_test_matmul, args=(64, 64, 64), target="llvm")
    log = tmp_path / "log.json"

    def options(trials: int, top_k: int) -> TuningOptions:
        return TuningOptions(
            num_measure_trials=trials,
            num_measures_per_round=6,
            verbose=0,
            measure_callbacks=[RecordToFile(log)],
            remeasure_top_k=top_k,
            remeasure_repeat=3,
        )

    best = auto_schedule(task, options(12, 3), small_policy(task, seed=0))
    records = [parse_record(line) for line in log.read_text().splitlines()]
    searched, remeasured = records[:12], records[12:]
    assert len({r.steps for r in searched}) == 12  # the search measured 12 distinct programs
    # the 3 fastest samples were measured 3 more times each (more sessions may follow)
    fastest = sorted((r for r in searched if r.result.ok), key=lambda r: r.result.median_cost)[:3]
    assert [r.steps for r in remeasured[:3]] == [r.steps for r in fastest]
    assert all(r.steps in {s.steps for s in searched} for r in remeasured)
    # 3 samples each, fewer where a pass timed out on this loaded machine
    assert all(1 <= len(r.result.costs) <= 3 for r in remeasured if r.result.ok)
    # the best is the program of the lowest mean by its latest record, and a re-measured one
    latest = {r.steps: r for r in records}
    winner = min((r for r in latest.values() if r.result.ok), key=lambda r: r.result.median_cost)
    assert winner.steps in {r.steps for r in remeasured}
    assert best is not None and best.transform_steps == winner.steps
    W.check_program(task, best)  # runs right, and is bound-inferred as the search's states are
    assert best_state(task, log).transform_steps == winner.steps
    kernel = apply_best(task, log)
    assert isinstance(kernel, Kernel)
    a, b = random_inputs(task.compute_dag, seed=3)
    c = np.full((64, 64), np.nan, np.float32)
    kernel(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4 * float(np.abs(a @ b).max()))

    # resumed: the re-measurements are not programs to skip twice, nor trials
    resumed = small_policy(task, seed=0, log=log)
    assert len(resumed.measured_states_set) == 12
    lines = len(log.read_text().splitlines())
    auto_schedule(task, options(6, 0), resumed)
    assert len(log.read_text().splitlines()) == lines + 6  # remeasure_top_k=0: only the trials
    assert len(distinct_programs(log)) == 18  # the resumed run measured 6 new programs

    scheduler = TaskScheduler([task], load_log_file=log, callbacks=[], seed=0)
    assert scheduler.restored_trials == 18
    scheduler.tune(options(6, 3), search_policy_params={"evolutionary_search_population": 256})
    assert scheduler.ct == 6 and scheduler.task_trials == [24]
    assert len(distinct_programs(log)) == 24  # 6 more new programs, then re-measurements only
    assert best_state(task, log).transform_steps in {r.steps for r in appended(log, lines + 12)}


def test_a_pass_that_timed_out_leaves_the_others_samples(tmp_path: Path, task: SearchTask) -> None:
    a, b = program(task, 2, 2), program(task, 4, 4)
    log = tmp_path / "log.json"
    searched_log(log, task, [(a, 1.0e-3), (b, 1.1e-3)])

    class LoadedRunner(TrueCostRunner):
        """Times a out in the first pass (a machine busy for a moment), b in every pass."""

        def run(
            self,
            inputs: Sequence[MeasureInput],
            build_results: Sequence[BuildResult],
            verbose: int = 1,
            on_result: ResultCallback | None = None,
        ) -> list[MeasureResult]:
            runs_of_a_before = self.order.count(a.transform_steps)
            results = super().run(inputs, build_results, verbose, on_result)
            for index, inp in enumerate(inputs):
                steps = inp.state.transform_steps
                if steps == a.transform_steps:
                    runs_of_a_before += 1
                first_a = steps == a.transform_steps and runs_of_a_before == 1
                if first_a or steps == b.transform_steps:
                    results[index] = MeasureResult((ERROR_COST,), MeasureErrorNo.RUN_TIMEOUT)
            return results

    runner = LoadedRunner({a.transform_steps: 2e-3, b.transform_steps: 1e-3})
    measurer = ProgramMeasurer(FakeBuilder(), runner, [RecordToFile(log)], verbose=0)
    remeasure_best([task], measurer, top_k=2, passes=3, verbose=0)
    timed, timed_out = appended(log, 2)
    assert timed.steps == a.transform_steps and timed.result.costs == (2e-3, 2e-3)  # 2 of 3 passes
    assert timed_out.steps == b.transform_steps and timed_out.result.error_no is MeasureErrorNo.RUN_TIMEOUT
    assert best_state(task, log).transform_steps == a.transform_steps
