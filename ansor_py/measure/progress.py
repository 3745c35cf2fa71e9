"""``TuningProgress``: what a tuning run shows at ``verbose=1``.

TVM's ``ProgramMeasurer`` prints a glyph per program ("." built, "*" run, "E"/"T" after
an error or a timeout) and a summary per measured batch. Glyph rows are unreadable in a
log file and say little on a terminal, so at ``verbose=1`` the measurer feeds this object
instead (``verbose=2`` keeps TVM's per-program output; ``verbose=0`` shows nothing):

* ``live`` (stdout is a terminal): one status line, redrawn in place with ``"\\r"`` after
  each measured program;
* ``plain`` (a log file, a pipe, CI): the same status as one ordinary line per measured
  batch, so a log stays one readable line per round;
* ``off``: nothing.

The status names the trials done out of the budget, the best GFLOP/s of the task being
measured, the estimated total latency when a task scheduler reports it (Ansor paper
section 6: the objective the scheduler minimises), the errors so far by kind
(``MeasureErrorNo``), the elapsed time and the remaining time estimated from the trials
per second so far.

The mode follows ``stream.isatty()`` unless the environment variable ``ANSOR_PROGRESS``
(or the ``mode`` argument) says ``live``, ``plain`` or ``off``. Between ``start`` and
``finish`` (or inside ``running``) a live display takes over ``sys.stdout`` and
``sys.stderr``: any other output first clears the status line and, once it has ended its
line, the status is drawn again below it, so the search's messages scroll above an intact
status line. Without a session, a live line is ended with a newline when its batch is done.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

from ansor_py.measure.types import MeasureErrorNo, MeasureResult

#: the environment variable that overrides the mode chosen from ``isatty``
PROGRESS_ENV = "ANSOR_PROGRESS"
MODES = ("live", "plain", "off")

#: how the status names each error kind (singular; the plural adds "s")
ERROR_LABELS: Mapping[MeasureErrorNo, str] = {
    MeasureErrorNo.INSTANTIATION_ERROR: "instantiation error",
    MeasureErrorNo.COMPILE_HOST: "build error",
    MeasureErrorNo.COMPILE_DEVICE: "load error",
    MeasureErrorNo.RUNTIME_DEVICE: "runtime error",
    MeasureErrorNo.WRONG_ANSWER: "wrong answer",
    MeasureErrorNo.BUILD_TIMEOUT: "build timeout",
    MeasureErrorNo.RUN_TIMEOUT: "run timeout",
    MeasureErrorNo.UNKNOWN_ERROR: "unknown error",
}

#: ANSI "erase to the end of the line"
CLEAR_TO_END = "\x1b[K"
#: the longest task name the status shows
LABEL_CHARS = 48


def choose_mode(stream: TextIO, environ: Mapping[str, str] = os.environ) -> str:
    """``ANSOR_PROGRESS`` when set (one of ``MODES``), else ``live`` on a terminal that
    understands cursor control and ``plain`` anywhere else."""
    wanted = environ.get(PROGRESS_ENV, "").strip().lower()
    if wanted:
        return _check_mode(wanted, f"{PROGRESS_ENV}={environ[PROGRESS_ENV]!r}")
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty() and environ.get("TERM") != "dumb":
        return "live"
    return "plain"


def _check_mode(mode: str, what: str) -> str:
    if mode not in MODES:
        raise ValueError(f"TuningProgress: {what} is not a progress mode; use one of {', '.join(MODES)}")
    return mode


def format_errors(counts: Mapping[MeasureErrorNo, int]) -> str:
    """``"2 build errors, 1 run timeout"`` in ``MeasureErrorNo`` order; ``"no errors"``."""
    parts = []
    for error_no, label in ERROR_LABELS.items():
        count = counts.get(error_no, 0)
        if count:
            parts.append(f"{count} {label}{'' if count == 1 else 's'}")
    return ", ".join(parts) or "no errors"


def format_gflops(flops: float) -> str:
    """FLOP/s in GFLOP/s: two decimals from 1 up, three significant digits below."""
    gflops = flops / 1e9
    return f"{gflops:.2f}" if gflops >= 1 else f"{gflops:.3g}"


def format_duration(seconds: float) -> str:
    """``"42s"``, ``"3m05s"``, ``"2h07m"`` (rounded down to what is shown)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def task_label(desc: str, workload_key: str) -> str:
    """The task's description, else its workload key, cut to ``LABEL_CHARS``."""
    label = desc or workload_key
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 3] + "..."


class TuningProgress:
    """The status of a tuning run, shown as the module docstring says.

    The ``ProgramMeasurer`` calls ``measuring`` when a batch starts, ``add`` for each
    program measured and ``batch_done`` when the batch ends; the tuning entry point, which
    knows the budget, wraps the run in ``running(budget)``; a task scheduler reports its
    objective with ``set_total_latency``. ``clock`` gives seconds (monotonic); ``width``
    caps the live line (None: the terminal's width).
    """

    def __init__(
        self,
        mode: str | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ):
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.mode = choose_mode(self.stream) if mode is None else _check_mode(mode, repr(mode))
        if width is not None and width < 20:
            raise ValueError(f"TuningProgress: width {width} must be at least 20 columns")
        self.clock = clock
        self.width = width
        self._lock = threading.RLock()  # runners may report results from their own threads
        self._saved_streams: tuple[TextIO, TextIO] | None = None  # sys.stdout/stderr in a session
        self._drawn = False  # the live line is on the screen, the cursor at its end
        self._midline = False  # other output left the cursor in the middle of a row
        self._reset(None)

    def _reset(self, budget: int | None) -> None:
        self.budget = budget
        self.trials = 0
        self.errors: Counter[MeasureErrorNo] = Counter()
        self.best_flops: float | None = None
        self.task = ""
        self.total_latency: float | None = None
        self.started: float | None = None

    # the session ----------------------------------------------------------------------
    def start(self, budget: int | None = None) -> None:
        """Count from zero against ``budget`` trials (None: unknown, so no remaining time);
        a live display takes over ``sys.stdout`` and ``sys.stderr`` until ``finish``."""
        if budget is not None and budget < 0:
            raise ValueError(f"TuningProgress.start: budget {budget} must be >= 0 trials or None")
        with self._lock:
            self._reset(budget)
            self.started = self.clock()
            if self.mode == "live" and self._saved_streams is None:
                self._saved_streams = (sys.stdout, sys.stderr)
                sys.stdout = _AboveTheStatus(self, sys.stdout)
                sys.stderr = _AboveTheStatus(self, sys.stderr)

    def finish(self) -> None:
        """Leave the last status on its own line and give back ``sys.stdout``/``stderr``."""
        with self._lock:
            self._end_line()
            if self._saved_streams is not None:
                sys.stdout, sys.stderr = self._saved_streams
                self._saved_streams = None

    @contextlib.contextmanager
    def running(self, budget: int | None = None) -> Iterator[TuningProgress]:
        """``start(budget)`` ... ``finish()``, finished however the block ends."""
        self.start(budget)
        try:
            yield self
        finally:
            self.finish()

    # what the measurer and the task scheduler report ------------------------------------
    def measuring(self, task: str, best_flops: float | None) -> None:
        """A batch of ``task`` (a label, see ``task_label``) starts; its best so far."""
        with self._lock:
            if self.started is None:  # no session: count from the first batch
                self.started = self.clock()
            self.task = task
            self.best_flops = best_flops
            self._draw()

    def add(self, result: MeasureResult, best_flops: float | None) -> None:
        """One program measured; ``best_flops`` is its task's best FLOP/s now (None: none
        ran correctly yet)."""
        with self._lock:
            self.trials += 1
            if not result.ok:
                self.errors[result.error_no] += 1
            self.best_flops = best_flops
            self._draw()

    def batch_done(self) -> None:
        """The batch is measured: a plain display prints its line; a live one without a
        session ends its line."""
        with self._lock:
            if self.mode == "plain":
                self.stream.write(self.status() + "\n")
                self.stream.flush()
            elif self.mode == "live":
                self._draw()
                if self._saved_streams is None:
                    self._end_line()

    def set_total_latency(self, seconds: float | None) -> None:
        """The task scheduler's estimate of the whole network's latency (None: unknown, as
        long as a task has no correct program)."""
        with self._lock:
            self.total_latency = seconds
            self._draw()

    def silence(self) -> None:
        """Show nothing more (the measurer switched to per-program output)."""
        with self._lock:
            self._clear()
            self.mode = "off"

    # the status -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return 0.0 if self.started is None else self.clock() - self.started

    def remaining(self) -> float | None:
        """Seconds left at the trials per second so far; None without a budget or a trial."""
        if self.budget is None or self.trials == 0:
            return None
        left = max(0, self.budget - self.trials)
        return left * self.elapsed() / self.trials

    def status(self) -> str:
        """``trials 12/64 | <task> | best 41.20 GFLOP/s | 1 build error | elapsed 20s |
        remaining ~1m26s`` (the estimated total latency after the best, when known)."""
        parts = [f"trials {self.trials}" + ("" if self.budget is None else f"/{self.budget}")]
        if self.task:
            parts.append(self.task)
        parts.append(
            "best -" if self.best_flops is None else f"best {format_gflops(self.best_flops)} GFLOP/s"
        )
        if self.total_latency is not None:
            parts.append(f"est. total latency {self.total_latency * 1e3:.3f} ms")
        parts.append(format_errors(self.errors))
        parts.append(f"elapsed {format_duration(self.elapsed())}")
        remaining = self.remaining()
        if remaining is not None:
            parts.append(f"remaining ~{format_duration(remaining)}")
        return " | ".join(parts)

    # drawing the live line (under self._lock) ------------------------------------------
    def _draw(self) -> None:
        if self.mode != "live" or self._midline:
            return
        width = self.width or shutil.get_terminal_size((120, 24)).columns
        text = self.status()
        if len(text) >= width:  # a wrapped line cannot be redrawn with "\r"
            text = text[: width - 4] + "..."
        self.stream.write("\r" + text + CLEAR_TO_END)
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + CLEAR_TO_END)
            self.stream.flush()
            self._drawn = False

    def _end_line(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _write_above(self, target: TextIO, text: str) -> None:
        """``text`` written to ``target`` above the live line (see ``_AboveTheStatus``)."""
        with self._lock:
            self._clear()
            target.write(text)
            if text:
                self._midline = not text.endswith("\n")
            if not self._midline:
                target.flush()
                self._draw()


class _AboveTheStatus(io.TextIOBase):
    """A stream standing in for ``sys.stdout``/``sys.stderr`` during a live session: what is
    written to it goes to ``target`` after the status line is cleared, and the status is
    drawn again once that output has ended its line."""

    def __init__(self, progress: TuningProgress, target: TextIO):
        super().__init__()
        self._progress = progress
        self._target = target

    def write(self, text: str) -> int:
        self._progress._write_above(self._target, text)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target.encoding
