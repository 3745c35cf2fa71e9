"""``ProgramMeasurer``: build and run batches of candidates, track the best, call callbacks.

The search hands the measurer the states it picked (Ansor paper section 6.1: each round
measures a batch and feeds the results back to the cost model); the measurer builds them
``2 * builder.n_parallel`` at a time, runs them, keeps per-workload bests (lowest median
cost, its state and trial number), and hands every result to every ``MeasureCallback``
as soon as the runner reports it final (``ProgramRunner.run``'s ``on_result``): each
callback gets one-element lists, so ``RecordToFile`` has written and flushed a program's
record before the next program runs, and a tuner killed mid-batch loses none it measured.
Results a runner did not report are handed over when its ``run`` returns.

What it prints: ``verbose=1`` feeds the measurer's ``progress`` (a ``TuningProgress``: a
live status line on a terminal, one line per ``measure`` call elsewhere); ``verbose=2``
prints as TVM's ``ProgramMeasurer`` does, a header, the builder's and runner's glyph per
program, every input and result, and a summary per ``measure`` call; ``verbose=0``
nothing. More than ``max_continuous_error`` errors in a row switch to ``verbose=2`` with
a warning. An UNKNOWN_ERROR (an exception in the tuner's own build or run path, a dead
worker: a fault of the tuner, not of the candidate) also prints its message's last line
at ``verbose=1``, since a record keeps only the error code.
"""

from __future__ import annotations

import abc
import math
import threading
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ansor_py.measure.progress import TuningProgress, task_label
from ansor_py.measure.types import (
    ERROR_COST,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramBuilder,
    ProgramRunner,
)
from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask


class MeasureCallback(abc.ABC):
    """Called with each measured program (TVM ``PythonBasedMeasureCallback``): the measurer
    passes one-element lists, as soon as the runner reports the result."""

    @abc.abstractmethod
    def callback(self, policy: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        """``inputs[i]`` was measured as ``results[i]``; ``policy`` is the search policy
        that asked (None outside a search)."""


class ProgramMeasurer:
    """Measures candidates with ``builder`` and ``runner`` and remembers the best ones.

    Per workload key: ``best_cost`` (lowest median seconds), ``best_flops`` (FLOP/s of it),
    ``best_state``, ``best_ct`` (the trial number it was measured at, counting from 1
    over this measurer's life) and ``has_valid`` (keys with any error-free result).
    ``ct`` counts measurements, ``error_ct`` the current run of consecutive errors.
    ``progress`` shows the run at ``verbose=1`` (default: a ``TuningProgress`` whose mode
    follows stdout, see ``ansor_py.measure.progress``); the tuning entry points wrap their
    run in ``measurer.progress.running(budget)`` so that it knows the budget.
    """

    def __init__(
        self,
        builder: ProgramBuilder,
        runner: ProgramRunner,
        callbacks: Sequence[MeasureCallback] | None = None,
        verbose: int = 1,
        max_continuous_error: int | None = 150,
        progress: TuningProgress | None = None,
    ):
        if verbose not in (0, 1, 2):
            raise ValueError(f"ProgramMeasurer: verbose {verbose} must be 0, 1 or 2")
        self.builder = builder
        self.runner = runner
        self.callbacks = list(callbacks or ())
        for cb in self.callbacks:
            if not callable(getattr(cb, "callback", None)):
                raise ValueError(f"ProgramMeasurer: callback {cb!r} has no callback(policy, inputs, results)")
        self.verbose = verbose
        self.max_continuous_error = 150 if max_continuous_error is None else max_continuous_error
        self.progress = progress if progress is not None else TuningProgress(None if verbose == 1 else "off")
        self.reset()

    def reset(self) -> None:
        self.ct = 0
        self.error_ct = 0
        self.best_cost: dict[str, float] = {}
        self.best_flops: dict[str, float] = {}
        self.best_state: dict[str, LoopState] = {}
        self.best_ct: dict[str, int] = {}
        self.has_valid: set[str] = set()

    def measure(self, task: SearchTask, policy: Any, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        """Build and run ``inputs``; one MeasureResult per input, in order."""
        start = time.monotonic()
        if self.verbose >= 2:
            print(f"Get {len(inputs)} programs to measure:", flush=True)
        elif self.verbose == 1:
            self.progress.measuring(
                task_label(task.desc, task.workload_key), self.best_flops.get(task.workload_key)
            )
        batch_size = max(1, 2 * self.builder.n_parallel)
        results: list[MeasureResult] = []
        for offset in range(0, len(inputs), batch_size):
            results.extend(self._measure_batch(policy, list(inputs[offset : offset + batch_size])))
        if self.verbose >= 2:
            print(f"\n{self._summary(task, results, time.monotonic() - start)}", flush=True)
        elif self.verbose == 1:
            self.progress.batch_done()
        return results

    def _measure_batch(self, policy: Any, batch: list[MeasureInput]) -> list[MeasureResult]:
        """Build and run one batch, recording each result when the runner reports it."""
        per_program = self.verbose if self.verbose >= 2 else 0  # glyphs only at verbose=2
        built = self.builder.build(batch, per_program)
        recorded: dict[int, MeasureResult] = {}
        lock = threading.Lock()  # a runner may report from its own threads
        runner_name = type(self.runner).__name__

        def on_result(index: int, result: MeasureResult) -> None:
            with lock:
                if not 0 <= index < len(batch) or index in recorded:
                    raise ValueError(
                        f"ProgramMeasurer: runner {runner_name} reported input {index} of a batch "
                        f"of {len(batch)} twice or out of range"
                    )
                recorded[index] = self._measured(policy, batch[index], result)

        ran = self.runner.run(batch, built, per_program, on_result=on_result)
        if len(ran) != len(batch):
            raise ValueError(
                f"ProgramMeasurer: runner {runner_name} returned {len(ran)} results for {len(batch)} inputs"
            )
        for index, result in enumerate(ran):
            if index not in recorded:  # a runner that does not report as it goes
                on_result(index, result)
        return [recorded[index] for index in range(len(batch))]

    def _measured(self, policy: Any, inp: MeasureInput, res: MeasureResult) -> MeasureResult:
        """One final result: track it (``_record``), then hand what was recorded to every
        callback, then show it; returns that."""
        recorded = self._record(inp, res)
        for cb in self.callbacks:
            cb.callback(policy, [inp], [recorded])
        if self.verbose == 1:
            self.progress.add(recorded, self.best_flops.get(inp.task.workload_key))
        return recorded

    def _record(self, inp: MeasureInput, res: MeasureResult) -> MeasureResult:
        """Count ``res`` and track the best; returns the result as recorded. A result
        whose costs are not seconds (``MeasureResult.cost_error``: 0, negative, NaN, inf,
        or none) becomes an error with cost ``ERROR_COST``: a RUNTIME_DEVICE error when the
        runner said NO_ERROR (the run gave no time), else its own code. So nothing divides
        by zero or ranks a negative cost first, and the record is kept as an error."""
        problem = res.cost_error
        if problem is not None:
            res = MeasureResult(
                (ERROR_COST,),
                MeasureErrorNo.RUNTIME_DEVICE if res.ok else res.error_no,
                f"the runner reported costs {list(res.costs)}: {problem}"
                + (f"; {res.error_msg}" if res.error_msg else ""),
                res.all_cost if math.isfinite(res.all_cost) else 0.0,
                res.timestamp,
            )
        self.ct += 1
        key = inp.task.workload_key
        if res.ok:
            self.error_ct = 0
            self.has_valid.add(key)
            cost = res.median_cost
            if cost < self.best_cost.get(key, float("inf")):
                self.best_cost[key] = cost
                self.best_flops[key] = inp.task.compute_dag.flop_ct / cost
                self.best_state[key] = inp.state
                self.best_ct[key] = self.ct
        else:
            self.error_ct += 1
            if res.error_no is MeasureErrorNo.UNKNOWN_ERROR and self.verbose == 1:
                # a fault of the tuner, not of the candidate; the record keeps only the code
                print(f"unknown error, trial {self.ct} ({inp.task.desc or key}): {last_line(res.error_msg)}")
        if self.verbose >= 2:
            print(f"\n==== MeasureInput {self.ct} ====\n{inp.state}==== MeasureResult ====\n{res}")
        if self.error_ct > self.max_continuous_error and self.verbose < 2:
            self.progress.silence()
            warnings.warn(
                f"ProgramMeasurer: {self.error_ct} errors in a row (more than max_continuous_error="
                f"{self.max_continuous_error}); switching to verbose=2 to show each measurement",
                stacklevel=3,
            )
            self.verbose = 2
        return res

    def _summary(self, task: SearchTask, results: Sequence[MeasureResult], elapsed: float) -> str:
        valid = sum(1 for r in results if r.ok)
        key = task.workload_key
        if key in self.best_flops:
            best = (
                f"best {self.best_flops[key] / 1e9:.2f} GFLOP/s ({self.best_cost[key] * 1e3:.4f} ms, "
                f"trial {self.best_ct[key]})"
            )
        else:
            best = "no valid program yet"
        return (
            f"Measured {len(results)} programs in {elapsed:.2f} s: {valid} valid, "
            f"{len(results) - valid} errors; {best}"
        )


def last_line(message: str) -> str:
    """The last non-blank line of ``message`` (a traceback's exception), or a placeholder."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"
