"""TuningProgress: the plain lines of a scripted run (counts, best, errors by kind, times
from a fake clock), the live line redrawn with "\\r" and cleared before other output, the
mode chosen by isatty and ANSOR_PROGRESS, the measurer silent at verbose=0, and a real
tiny tuning whose log has no glyph rows."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Sequence

import pytest
import search_workloads as W
from measure_fakes import FakeBuilder
from search_workloads import SMALL_PARAMS, check_program

from ansor_py.cost_model import RandomModel
from ansor_py.measure import (
    BuildResult,
    LocalBuilder,
    LocalRunner,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramMeasurer,
)
from ansor_py.measure.progress import (
    CLEAR_TO_END,
    ERROR_LABELS,
    TuningProgress,
    choose_mode,
    format_duration,
    format_errors,
    format_gflops,
    task_label,
)
from ansor_py.measure.types import ResultCallback
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from ir.loop_state.state import initial_state

#: a row of TVM's progress glyphs: "." built, "*" run, "E"/"T" after an error or timeout
GLYPH_ROW = re.compile(r"^[.*ET]+$", re.MULTILINE)

OK = MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR)


def failed(error_no: MeasureErrorNo) -> MeasureResult:
    return MeasureResult((1e10,), error_no, "it failed")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: "\\r" returns to the start of the row, the
    erase sequence clears to its end, "\\n" starts a new row."""
    rows = [""]
    col = 0
    for token in re.split(r"(\r|\n|\x1b\[K)", text):
        if token == "\r":
            col = 0
        elif token == "\n":
            rows.append("")
            col = 0
        elif token == CLEAR_TO_END:
            rows[-1] = rows[-1][:col]
        else:
            row = rows[-1]
            rows[-1] = row[:col] + token + row[col + len(token) :]
            col += len(token)
    return rows


# ---------------------------------------------------------------------------------------
# the pieces of the status


def test_error_kinds_are_named_and_counted() -> None:
    assert set(ERROR_LABELS) == set(MeasureErrorNo) - {MeasureErrorNo.NO_ERROR}
    counts = {MeasureErrorNo.RUN_TIMEOUT: 1, MeasureErrorNo.COMPILE_HOST: 2, MeasureErrorNo.WRONG_ANSWER: 3}
    assert format_errors(counts) == "2 build errors, 3 wrong answers, 1 run timeout"
    assert format_errors({}) == "no errors"


def test_durations_throughputs_and_task_labels() -> None:
    assert [format_duration(s) for s in (0, 9.9, 65, 3599, 7260)] == ["0s", "9s", "1m05s", "59m59s", "2h01m"]
    assert [format_gflops(f) for f in (108.394e9, 1e9, 0.04123e9, 2.5e3)] == [
        "108.39",
        "1.00",
        "0.0412",
        "2.5e-06",
    ]
    assert task_label("dense 1x512 -> 1000", '["dense", 1, 512]') == "dense 1x512 -> 1000"
    assert task_label("", '["matmul", 64, 64, 64]') == '["matmul", 64, 64, 64]'
    long = task_label("", "x" * 100)
    assert len(long) == 48 and long.endswith("...")


# ---------------------------------------------------------------------------------------
# plain mode


def test_plain_lines_of_a_scripted_run() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = TuningProgress("plain", out, clock)
    with progress.running(10):
        progress.measuring("matmul", None)
        clock.now += 4
        for result in (failed(MeasureErrorNo.COMPILE_HOST), OK, OK, OK):
            progress.add(result, 20e9)
        progress.batch_done()
        progress.measuring("matmul", 20e9)
        clock.now += 16  # 8 trials in 20 s: 2 left, 5 s
        progress.add(failed(MeasureErrorNo.RUN_TIMEOUT), 20e9)
        progress.add(failed(MeasureErrorNo.COMPILE_HOST), 20e9)
        progress.add(failed(MeasureErrorNo.RUN_TIMEOUT), 20e9)
        progress.add(OK, 41.5e9)
        progress.batch_done()
        progress.set_total_latency(3.25e-3)
        progress.measuring("dense", None)
        clock.now += 100
        progress.add(OK, 1e9)
        progress.add(OK, 2e9)
        progress.batch_done()
    assert out.getvalue().splitlines() == [
        "trials 4/10 | matmul | best 20.00 GFLOP/s | 1 build error | elapsed 4s | remaining ~6s",
        "trials 8/10 | matmul | best 41.50 GFLOP/s | 2 build errors, 2 run timeouts | elapsed 20s "
        "| remaining ~5s",
        "trials 10/10 | dense | best 2.00 GFLOP/s | est. total latency 3.250 ms "
        "| 2 build errors, 2 run timeouts | elapsed 2m00s | remaining ~0s",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_without_a_budget_no_remaining_time() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = TuningProgress("plain", out, clock)
    progress.measuring("", None)  # no session: counts from the first batch
    clock.now += 3
    progress.add(failed(MeasureErrorNo.WRONG_ANSWER), None)
    progress.batch_done()
    assert out.getvalue() == "trials 1 | best - | 1 wrong answer | elapsed 3s\n"


def test_bad_budget_and_width() -> None:
    with pytest.raises(ValueError, match=r"TuningProgress.start: budget -1 must be >= 0"):
        TuningProgress("off").start(-1)
    with pytest.raises(ValueError, match=r"TuningProgress: width 5 must be at least 20"):
        TuningProgress("off", width=5)


# ---------------------------------------------------------------------------------------
# live mode


def test_live_line_is_redrawn_and_cleared_before_other_output(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal, clock = FakeTerminal(), FakeClock()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("ANSOR_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    progress = TuningProgress(clock=clock, width=200)
    assert progress.mode == "live" and progress.stream is terminal
    with progress.running(4):
        assert sys.stdout is not terminal  # other output now goes above the status
        print("------ Search ------")
        progress.measuring("matmul", None)
        clock.now += 1
        progress.add(OK, 10e9)
        after_one = terminal.getvalue()
        clock.now += 1
        progress.add(failed(MeasureErrorNo.BUILD_TIMEOUT), 10e9)
        progress.batch_done()
        print("GA Iter: 0\tMax score: 0.5", flush=True)
        print("warned", file=sys.stderr)
    assert sys.stdout is terminal and sys.stderr is terminal
    status_1 = "trials 1/4 | matmul | best 10.00 GFLOP/s | no errors | elapsed 1s | remaining ~3s"
    status_2 = "trials 2/4 | matmul | best 10.00 GFLOP/s | 1 build timeout | elapsed 2s | remaining ~2s"
    # each update rewrites the line in place: "\r", the status, erase the rest
    assert after_one.endswith(f"\r{status_1}{CLEAR_TO_END}")
    text = terminal.getvalue()
    # a print first erases the status, then the status comes back on the next row
    assert f"\r{CLEAR_TO_END}GA Iter: 0\tMax score: 0.5\n\r{status_2}{CLEAR_TO_END}" in text
    assert screen(text) == [
        "------ Search ------",
        "GA Iter: 0\tMax score: 0.5",
        "warned",
        status_2,  # left on its own row when the session finished
        "",
    ]


def test_live_line_fits_the_width_and_a_partial_row_is_not_overwritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    progress = TuningProgress("live", terminal, FakeClock(), width=30)
    with progress.running(100):
        progress.measuring("a task with a long name", None)
        print("partial ", end="")
        progress.add(OK, 1e9)  # not drawn: the row holds someone else's text
        print("row")
    rows = screen(terminal.getvalue())
    assert rows[0] == "partial row"
    assert rows[1] == "trials 1/100 | a task with..."
    assert all(len(row) < 30 for row in rows)


def test_live_without_a_session_ends_each_batch_line() -> None:
    terminal = FakeTerminal()
    progress = TuningProgress("live", terminal, FakeClock(), width=200)
    for _ in range(2):
        progress.measuring("t", None)
        progress.add(OK, 1e9)
        progress.batch_done()
    assert screen(terminal.getvalue()) == [
        "trials 1 | t | best 1.00 GFLOP/s | no errors | elapsed 0s",
        "trials 2 | t | best 1.00 GFLOP/s | no errors | elapsed 0s",
        "",
    ]


def test_silenced_live_line_is_erased_and_stays_away() -> None:
    """The measurer silences its progress when an error streak switches it to verbose=2."""
    terminal = FakeTerminal()
    progress = TuningProgress("live", terminal, FakeClock(), width=200)
    progress.measuring("t", None)
    progress.add(failed(MeasureErrorNo.COMPILE_HOST), None)
    progress.silence()
    progress.add(OK, 1e9)
    progress.batch_done()
    assert progress.mode == "off"
    assert terminal.getvalue().endswith(f"\r{CLEAR_TO_END}") and screen(terminal.getvalue()) == [""]


# ---------------------------------------------------------------------------------------
# the mode


def test_mode_follows_isatty_unless_the_environment_says() -> None:
    assert choose_mode(FakeTerminal(), {}) == "live"
    assert choose_mode(io.StringIO(), {}) == "plain"
    assert choose_mode(FakeTerminal(), {"TERM": "dumb"}) == "plain"
    assert choose_mode(FakeTerminal(), {"ANSOR_PROGRESS": "plain"}) == "plain"
    assert choose_mode(io.StringIO(), {"ANSOR_PROGRESS": " Live "}) == "live"
    assert choose_mode(io.StringIO(), {"ANSOR_PROGRESS": "off"}) == "off"
    with pytest.raises(ValueError, match=r"ANSOR_PROGRESS='fancy' is not a progress mode; use one of live"):
        choose_mode(io.StringIO(), {"ANSOR_PROGRESS": "fancy"})
    with pytest.raises(ValueError, match=r"TuningProgress: 'tty' is not a progress mode"):
        TuningProgress("tty")


def test_an_off_display_prints_nothing_and_leaves_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    out = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", out)
    progress = TuningProgress("off", out)
    with progress.running(2):
        assert sys.stdout is out
        progress.measuring("t", None)
        progress.add(OK, 1e9)
        progress.batch_done()
    assert out.getvalue() == ""


# ---------------------------------------------------------------------------------------
# fed by the measurer


class ScriptedRunner:
    """Program i of the run takes (i + 1) ms; every third one times out."""

    timeout = 1.0

    def __init__(self) -> None:
        self.count = 0

    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]:
        results = []
        for index in range(len(inputs)):
            self.count += 1
            if self.count % 3 == 0:
                results.append(failed(MeasureErrorNo.RUN_TIMEOUT))
            else:
                results.append(MeasureResult((self.count * 1e-3,), MeasureErrorNo.NO_ERROR))
            if on_result is not None:
                on_result(index, results[-1])
        return results


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func=W.search_test_matmul, args=(16, 16, 16), target="llvm")


def test_measurer_feeds_the_progress_one_line_per_measure_call(
    task: SearchTask, capsys: pytest.CaptureFixture[str]
) -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = TuningProgress("plain", out, clock)
    measurer = ProgramMeasurer(FakeBuilder(), ScriptedRunner(), verbose=1, progress=progress)
    inputs = [MeasureInput(task, initial_state(task.compute_dag))] * 3
    with progress.running(6):
        measurer.measure(task, None, inputs)
        measurer.measure(task, None, inputs)
    assert capsys.readouterr().out == ""  # no glyphs, no header, no TVM summary
    label = task_label(task.desc, task.workload_key)
    # the best is program 1: 2 * 16**3 flop in 1 ms, 0.00819 GFLOP/s
    assert out.getvalue().splitlines() == [
        f"trials 3/6 | {label} | best 0.00819 GFLOP/s | 1 run timeout | elapsed 0s | remaining ~0s",
        f"trials 6/6 | {label} | best 0.00819 GFLOP/s | 2 run timeouts | elapsed 0s | remaining ~0s",
    ]


def test_verbose_0_is_silent_and_verbose_2_keeps_the_glyphs(
    task: SearchTask, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [MeasureInput(task, initial_state(task.compute_dag))] * 2
    quiet = ProgramMeasurer(FakeBuilder(), ScriptedRunner(), verbose=0)
    assert quiet.progress.mode == "off"
    quiet.measure(task, None, inputs)
    assert capsys.readouterr().out == ""
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        ProgramMeasurer(LocalBuilder(n_parallel=1), runner, verbose=2).measure(task, None, inputs)
    out = capsys.readouterr().out
    # TVM's output: a header, a glyph per program built and run, each input and result
    assert out.startswith("Get 2 programs to measure:\n..\n==== MeasureInput 1 ====\n"), out
    assert out.count("\n*") == 2 and out.count("==== MeasureResult ====") == 2
    assert "Measured 2 programs in " in out


@pytest.mark.slow
def test_tiny_tuning_logs_plain_lines_without_glyph_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SketchPolicy search of a 64x64 matmul, 8 trials in rounds of 4, measured for real
    (each program checked against numpy by the runner), its progress in the budget's
    session as a tuning entry point runs it."""
    monkeypatch.delenv("ANSOR_PROGRESS", raising=False)  # capsys is not a terminal: plain
    matmul = SearchTask(func=W.search_test_matmul, args=(64, 64, 64), target="llvm")
    policy = SketchPolicy(matmul, RandomModel(seed=0), params=SMALL_PARAMS, seed=0, verbose=1)
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        measurer = ProgramMeasurer(LocalBuilder(n_parallel=2), runner, verbose=1)
        assert measurer.progress.mode == "plain"
        with measurer.progress.running(8):
            best = policy.search(8, None, 4, measurer)
    out = capsys.readouterr().out
    assert best is not None
    check_program(matmul, best)
    assert "\r" not in out and not GLYPH_ROW.search(out), out
    assert "programs to measure" not in out and out.count("------ Measure ------") == 2
    # one status line per round, after the search's own lines
    status = re.findall(r"^trials (\d+/8) \| .* \| best [0-9.]+ GFLOP/s \| .* \| elapsed \S+ \|", out, re.M)
    assert status == ["4/8", "8/8"], out
    assert out.index("trials 4/8") > out.index("------ Measure ------")
