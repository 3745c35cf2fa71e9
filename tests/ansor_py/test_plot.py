"""``ansor_py.plot``: tuning curves drawn from a real record log (two matmuls tuned by the
task scheduler, measured on this CPU) equal the best-so-far throughput computed here from
the records; the estimated-latency file the scheduler's ``LogEstimatedLatency`` wrote in
the same run is drawn as written; both PNGs open with the figure's size. Hand-written logs
cover error records, unregistered workloads, out-of-order timestamps, the two latency-file
layouts and bad input; a missing matplotlib gives the install hint."""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import search_workloads as W
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.lines import Line2D

from ansor_py.measure.types import ERROR_COST, MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.plot import (
    CURVE_GID,
    INSTALL_HINT,
    REMEASURED_GID,
    LatencyPoint,
    network_name,
    plot_network,
    plot_tuning,
    read_latency_log,
    tuning_curves,
)
from ansor_py.records import RecordToFile, RecordWarning, load_records, save_records
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler import LogEstimatedLatency, TaskScheduler
from ansor_py.tuning import TuningOptions
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL_SEARCH = {"evolutionary_search_population": 32, "sample_init_min_population": 8}
TRIALS = 16


@dataclass(frozen=True)
class Tuned:
    log: Path
    latency_file: Path
    tasks: list[SearchTask]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    """A 64x64x64 and a 32x32x32 matmul tuned for 16 trials in all by the task scheduler,
    measured for real, into a record log and an estimated-latency file."""
    directory = tmp_path_factory.mktemp("tuned")
    tasks = [
        SearchTask(func=W.search_test_matmul, args=(n, n, n), target="llvm", desc=f"matmul {n}x{n}x{n}")
        for n in (64, 32)
    ]
    log, latency_file = directory / "matmuls.json", directory / "matmuls.tsv"
    scheduler = TaskScheduler(tasks, callbacks=[LogEstimatedLatency(latency_file)], seed=0)
    options = TuningOptions(
        num_measure_trials=TRIALS,
        num_measures_per_round=4,
        verbose=0,
        measure_callbacks=[RecordToFile(log)],
        remeasure_top_k=2,  # enough to draw the re-measured best
        remeasure_repeat=2,
    )
    scheduler.tune(options, search_policy_params=SMALL_SEARCH)
    return Tuned(log, latency_file, tasks)


def check_png(path: Path, figure: Figure) -> None:
    """``path`` is a PNG that decodes to the figure's size in pixels, not a blank one."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    width, height = figure.get_size_inches() * figure.dpi
    assert image.shape == (round(height), round(width), 4)
    assert image[..., :3].std() > 0.01


def xs(line: Line2D) -> list[float]:
    return np.asarray(line.get_xdata(), dtype=float).tolist()


def ys(line: Line2D) -> list[float]:
    return np.asarray(line.get_ydata(), dtype=float).tolist()


def curve_lines(axes: Axes) -> list[Line2D]:
    return [line for line in axes.lines if line.get_gid() == CURVE_GID]


def cross_lines(axes: Axes) -> list[Line2D]:
    return [line for line in axes.lines if line.get_gid() == REMEASURED_GID]


def legend_labels(figure: Figure) -> list[str]:
    return [text.get_text() for text in figure.legends[0].get_texts()]


# ------------------------------------------------------------------------------------------
# plot_tuning on a real log


def test_plot_tuning_writes_a_png_of_both_tasks(tuned: Tuned, tmp_path: Path):
    path = tmp_path / "figures" / "tuning.png"  # the directory is made
    figure = plot_tuning(tuned.log, path, tasks=tuned.tasks)
    check_png(path, figure)
    labels = legend_labels(figure)
    assert [label for label in labels if label.startswith("matmul")] == ["matmul 64x64x64", "matmul 32x32x32"]
    by_trial, by_time = figure.axes
    assert len(curve_lines(by_trial)) == len(curve_lines(by_time)) == 2
    remeasured = [curve.remeasured is not None for curve in tuning_curves(tuned.log, tasks=tuned.tasks)]
    assert len(cross_lines(by_trial)) == len(cross_lines(by_time)) == sum(remeasured)
    assert ("re-measured best" in labels) == any(remeasured)


def test_the_plotted_curves_are_the_best_so_far_of_the_records(tuned: Tuned):
    """Trials are each program's first record; a later record of a program is a
    re-measurement (``TuningOptions.remeasure_top_k``), drawn as a cross at the best of
    the programs' latest records."""
    figure = plot_tuning(tuned.log, tasks=tuned.tasks)
    records = list(load_records(tuned.log, tasks=tuned.tasks))
    start = min(res.timestamp for _, res in records)
    by_trial, by_time = (curve_lines(axes) for axes in figure.axes)
    crosses = cross_lines(figure.axes[0])
    trials = 0
    for index, task in enumerate(tuned.tasks):
        mine = [(inp.state.transform_steps, res) for inp, res in records if inp.task is task]
        flop = task.compute_dag.flop_ct
        first: list[MeasureResult] = []
        latest: dict[object, float] = {}
        for program, res in mine:
            if program not in latest:
                first.append(res)
            latest[program] = flop / res.median_cost / 1e9 if res.ok else np.nan
        trials += len(first)
        gflops = np.array([flop / r.median_cost / 1e9 if r.ok else np.nan for r in first])
        assert np.isfinite(gflops).any(), "the tuning measured no valid program of this task"
        expected = np.fmax.accumulate(gflops)  # the running best; NaN only before the first
        np.testing.assert_array_equal(xs(by_trial[index]), np.arange(1, len(first) + 1))
        np.testing.assert_allclose(ys(by_trial[index]), expected, rtol=1e-12)
        order = np.argsort([r.timestamp for r in first], kind="stable")
        np.testing.assert_allclose(
            xs(by_time[index]), [first[i].timestamp - start for i in order], rtol=1e-12
        )
        np.testing.assert_allclose(ys(by_time[index]), np.fmax.accumulate(gflops[order]), rtol=1e-12)
        for line in (by_trial[index], by_time[index]):
            best = np.asarray(ys(line), dtype=float)
            best = best[~np.isnan(best)]
            assert np.all(np.diff(best) >= 0)  # GFLOP/s never falls: the best time never rises
            assert best[-1] == pytest.approx(np.nanmax(gflops))
        if len(mine) > len(first):  # re-measured: the cross is the best latest record
            cross = next(line for line in crosses if line.get_color() == by_trial[index].get_color())
            assert xs(cross) == [len(first)]
            assert ys(cross) == pytest.approx([np.nanmax(list(latest.values()))])
    assert trials == TRIALS  # re-measurements are not trials
    assert min(min(xs(line)) for line in by_time) == 0.0


def test_a_registered_workload_needs_no_task_and_is_labelled_by_its_key(tuned: Tuned):
    curves = tuning_curves(tuned.log)
    assert [c.workload_key for c in curves] == [t.workload_key for t in tuned.tasks]
    assert [c.label for c in curves] == [t.workload_key for t in tuned.tasks]  # no desc in records
    assert sum(len(c.trials) for c in curves) == TRIALS  # re-measurements are not trials
    given = tuning_curves(tuned.log, tasks=tuned.tasks[1:])
    assert [c.label for c in given] == ["matmul 32x32x32"]
    assert given[0].best_gflops_by_trial == curves[1].best_gflops_by_trial


# ------------------------------------------------------------------------------------------
# hand-written logs


def dag_only_task() -> SearchTask:
    """A task whose workload key is its DAG's hash: not registered, so a log alone cannot
    rebuild its DAG."""
    dag = ComputeDAG(W.search_test_matmul(16, 16, 16))
    return SearchTask(compute_dag=dag, target="llvm", desc="matmul 16")


def program(task: SearchTask, n: int) -> LoopState:
    """The n-th distinct program of a matmul task: its i loop split by 1 + n."""
    state = get_init_state(task.compute_dag)
    state.split("C", state["C"].iters[0], [1 + n])
    return state.loop_state


def write_log(
    path: Path, task: SearchTask, results: list[MeasureResult], programs: list[int] | None = None
) -> None:
    """Records of ``results``, the n-th of program ``programs[n]`` (default: n)."""
    programs = list(range(len(results))) if programs is None else programs
    save_records(path, [MeasureInput(task, program(task, n)) for n in programs], results)


def ok(seconds: float, timestamp: float) -> MeasureResult:
    return MeasureResult((seconds,), MeasureErrorNo.NO_ERROR, "", 0.1, timestamp)


def error(timestamp: float) -> MeasureResult:
    return MeasureResult((ERROR_COST,), MeasureErrorNo.COMPILE_HOST, "", 0.1, timestamp)


def test_errors_are_trials_and_time_is_sorted(tmp_path: Path):
    task = dag_only_task()
    log = tmp_path / "log.json"
    # measured at 0 s, 3 s, 1 s and 2.5 s after the first record (out of log order)
    write_log(log, task, [ok(2e-3, 1000.0), error(1003.0), ok(1e-3, 1001.0), ok(4e-3, 1002.5)])
    (curve,) = tuning_curves(log, tasks=[task])
    g = task.compute_dag.flop_ct / 1e9
    assert curve.label == "matmul 16" and curve.flop == task.compute_dag.flop_ct
    assert curve.trials == (1, 2, 3, 4)
    assert curve.best_gflops_by_trial == pytest.approx((g / 2e-3, g / 2e-3, g / 1e-3, g / 1e-3))
    assert curve.seconds == (0.0, 1.0, 2.5, 3.0)
    assert curve.best_gflops_by_time == pytest.approx((g / 2e-3, g / 1e-3, g / 1e-3, g / 1e-3))


def test_a_later_record_of_a_program_is_a_remeasurement_not_a_trial(tmp_path: Path):
    task = dag_only_task()
    g = task.compute_dag.flop_ct / 1e9
    log = tmp_path / "log.json"
    # program 1 is the best by its one sample, then re-measured slower than program 0
    write_log(log, task, [ok(2e-3, 10.0), ok(1e-3, 11.0), ok(4e-3, 15.0)], programs=[0, 1, 1])
    (curve,) = tuning_curves(log, tasks=[task])
    assert curve.trials == (1, 2) and curve.seconds == (0.0, 1.0)
    assert curve.best_gflops_by_trial == pytest.approx((g / 2e-3, g / 1e-3))
    assert curve.remeasured == pytest.approx((5.0, g / 2e-3))  # program 0 ranks first now
    figure = plot_tuning(log, tasks=[task])
    assert [(xs(line), ys(line)) for line in cross_lines(figure.axes[0])] == [
        ([2.0], [pytest.approx(g / 2e-3)])
    ]
    assert [xs(line) for line in cross_lines(figure.axes[1])] == [[5.0]]
    assert legend_labels(figure) == ["matmul 16", "re-measured best"]
    failed = tmp_path / "failed.json"  # a failed re-measurement puts its program out
    write_log(failed, task, [ok(1e-3, 10.0), ok(2e-3, 11.0), error(12.0)], programs=[0, 1, 0])
    (curve,) = tuning_curves(failed, tasks=[task])
    assert curve.remeasured == pytest.approx((2.0, g / 2e-3))


def test_a_log_that_begins_with_errors_has_no_best_until_its_first_valid_record(tmp_path: Path):
    task = dag_only_task()
    log = tmp_path / "log.json"
    write_log(log, task, [error(10.0), error(11.0), ok(1e-3, 12.0)])
    (curve,) = tuning_curves(log, tasks=[task])
    assert math.isnan(curve.best_gflops_by_trial[0]) and math.isnan(curve.best_gflops_by_trial[1])
    assert curve.best_gflops_by_trial[2] == pytest.approx(task.compute_dag.flop_ct / 1e-3 / 1e9)


def test_several_logs_each_start_their_own_clock(tmp_path: Path):
    first, second = dag_only_task(), SearchTask(func=W.search_test_matmul, args=(8, 8, 8), desc="matmul 8")
    write_log(tmp_path / "a.json", first, [ok(2e-3, 500.0), ok(1e-3, 504.0)])
    write_log(tmp_path / "b.json", second, [ok(1e-4, 9000.0), ok(2e-4, 9002.0)])
    figure = plot_tuning([tmp_path / "a.json", tmp_path / "b.json"], tasks=[first, second])
    assert legend_labels(figure) == ["matmul 16", "matmul 8"]
    assert [xs(line) for line in figure.axes[1].lines] == [[0.0, 4.0], [0.0, 2.0]]


def test_an_unregistered_workload_without_its_task_is_refused(tmp_path: Path):
    task = dag_only_task()
    log = tmp_path / "log.json"
    write_log(log, task, [ok(1e-3, 1.0)])
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(log))} holds records of workload .* not registered"
    ):
        plot_tuning(log)


def test_logs_with_nothing_to_plot_name_the_file(tmp_path: Path):
    task = dag_only_task()
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(
        ValueError, match=rf"record log {re.escape(str(empty))} holds no record \(it is empty"
    ):
        plot_tuning(empty, tasks=[task])
    comments = tmp_path / "comments.json"
    comments.write_text("# a comment\n\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(comments))} holds no record"):
        tuning_curves(comments)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"i": [["matmul"\n')  # a line cut short by a killed run
    with pytest.warns(RecordWarning, match="corrupt"), pytest.raises(ValueError, match="holds no record"):
        tuning_curves(corrupt)
    errors = tmp_path / "errors.json"
    write_log(errors, task, [error(1.0), error(2.0)])
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(errors))} holds 2 record\(s\), all of them errors"
    ):
        plot_tuning(errors, tasks=[task])
    other = SearchTask(func=W.search_test_matmul, args=(8, 8, 8))
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(errors))} holds 2 record\(s\), none of the tasks given"
    ):
        tuning_curves(errors, tasks=[other])
    good = tmp_path / "good.json"
    write_log(good, task, [ok(1e-3, 1.0)])
    with pytest.raises(ValueError, match=r"no record of task 'matmul 8'"):
        tuning_curves(
            good, tasks=[task, SearchTask(func=W.search_test_matmul, args=(8, 8, 8), desc="matmul 8")]
        )
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        plot_tuning(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no file given"):
        plot_tuning([])


# ------------------------------------------------------------------------------------------
# plot_network


def test_plot_network_draws_the_schedulers_latency_file(tuned: Tuned, tmp_path: Path):
    points = read_latency_log(tuned.latency_file)
    assert len(points) >= 2 and points[-1].trials == TRIALS  # one line per scheduler round
    assert [p.trials for p in points] == sorted(p.trials for p in points)
    known = [p for p in points if p.latency_ms is not None]
    assert known, "no round estimated a latency"
    path = tmp_path / "network.png"
    figure = plot_network(tuned.latency_file, path)
    check_png(path, figure)
    (line,) = figure.axes[0].lines
    assert xs(line) == [p.seconds for p in known]
    assert ys(line) == [p.latency_ms for p in known]
    assert legend_labels(figure) == ["matmuls (estimated)"]


def test_both_latency_layouts_read_alike_and_measured_points_are_drawn(tmp_path: Path):
    scheduler_file = tmp_path / "total_latency.tsv"
    scheduler_file.write_text(
        "ElapsedTime(s)\t3\tEstimatedLatency(ms)\tN/A\tTrials\t8\n"
        "ElapsedTime(s)\t7\tEstimatedLatency(ms)\t4.500\tTrials\t16\n"
        "\n"
        "ElapsedTime(s)\t12\tEstimatedLatency(ms)\t2.250\tTrials\t24\n"
    )
    progress_file = tmp_path / "dcgan.progress.tsv"  # benchmarks/network_tuning.py's layout
    progress_file.write_text("8\t3.0\t-\n16\t7.0\t4.500\n24\t12.0\t2.250\n")
    expected = [LatencyPoint(3.0, 8, None), LatencyPoint(7.0, 16, 4.5), LatencyPoint(12.0, 24, 2.25)]
    assert read_latency_log(scheduler_file) == read_latency_log(progress_file) == expected
    assert network_name(progress_file) == "dcgan" and network_name(scheduler_file) == "total_latency"
    figure = plot_network([scheduler_file, progress_file], measured={"dcgan": [(0.0, 9.0), (12.0, 2.5)]})
    estimated_a, estimated_b, measured = figure.axes[0].lines
    assert xs(estimated_b) == [7.0, 12.0] and ys(estimated_b) == [4.5, 2.25]
    assert xs(measured) == [0.0, 12.0] and ys(measured) == [9.0, 2.5]
    assert measured.get_color() == estimated_b.get_color() != estimated_a.get_color()
    assert legend_labels(figure) == ["total_latency (estimated)", "dcgan (estimated)", "dcgan (measured)"]


def test_bad_latency_files_name_the_file(tmp_path: Path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(empty))} holds no line"):
        plot_network(empty)
    none = tmp_path / "none.tsv"
    none.write_text("ElapsedTime(s)\t3\tEstimatedLatency(ms)\tN/A\tTrials\t8\n8\t3.0\t-\n")
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(none))} holds 2 round\(s\), none with an estimated"
    ):
        plot_network(none)
    bad = tmp_path / "bad.tsv"
    bad.write_text("8\t3.0\t2.5\nElapsedTime(s)\t3\tLatency\t2.5\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}:2: not an estimated-latency line"):
        read_latency_log(bad)
    negative = tmp_path / "negative.tsv"
    negative.write_text("8\t3.0\t-2.5\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(negative))}:1: .* must be a finite number > 0"):
        read_latency_log(negative)
    words = tmp_path / "words.tsv"
    words.write_text("eight\t3.0\t2.5\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(words))}:1: .*invalid literal"):
        read_latency_log(words)
    good = tmp_path / "resnet.tsv"
    good.write_text("8\t3.0\t2.5\n")
    with pytest.raises(ValueError, match=r"measured latencies of \['dcgan'\], which no file given names"):
        plot_network(good, measured={"dcgan": [(1.0, 2.0)]})
    with pytest.raises(FileNotFoundError):
        plot_network(tmp_path / "missing.tsv")


# ------------------------------------------------------------------------------------------
# without matplotlib


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    task = dag_only_task()
    log = tmp_path / "log.json"
    write_log(log, task, [ok(1e-3, 1.0)])
    latency = tmp_path / "latency.tsv"
    latency.write_text("8\t3.0\t2.5\n")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import matplotlib.figure fails
    hint = re.escape(INSTALL_HINT)
    with pytest.raises(ImportError, match=rf"plot_tuning draws with matplotlib, .* not installed: {hint}"):
        plot_tuning(log, tasks=[task])
    with pytest.raises(ImportError, match=rf"plot_network draws with matplotlib, .*: {hint}"):
        plot_network(latency)
    assert INSTALL_HINT == "pip install 'ansor-py[plot]'"
    (curve,) = tuning_curves(log, tasks=[task])  # the numbers need no matplotlib
    assert curve.trials == (1,)
