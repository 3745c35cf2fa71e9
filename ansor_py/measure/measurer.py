"""``ProgramMeasurer``: build and run batches of candidates, track the best, call callbacks.

The search hands the measurer the states it picked (Ansor paper section 6.1: each round
measures a batch and feeds the results back to the cost model); the measurer builds them
``2 * builder.n_parallel`` at a time, runs them, keeps per-workload bests (lowest mean
cost, its state and trial number), and calls every ``MeasureCallback`` after each batch,
so ``RecordToFile`` has written a batch before the next one starts. As TVM's
``ProgramMeasurer``: ``verbose=1`` prints the progress glyphs and a summary line per
``measure`` call, ``verbose=2`` also every input and result, and more than
``max_continuous_error`` errors in a row switch to ``verbose=2`` with a warning.
"""

from __future__ import annotations

import abc
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ansor_py.measure.types import MeasureInput, MeasureResult, ProgramBuilder, ProgramRunner
from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask


class MeasureCallback(abc.ABC):
    """Called after each measured batch (TVM ``PythonBasedMeasureCallback``)."""

    @abc.abstractmethod
    def callback(self, policy: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        """``inputs[i]`` was measured as ``results[i]``; ``policy`` is the search policy
        that asked (None outside a search)."""


class ProgramMeasurer:
    """Measures candidates with ``builder`` and ``runner`` and remembers the best ones.

    Per workload key: ``best_cost`` (lowest mean seconds), ``best_flops`` (FLOP/s of it),
    ``best_state``, ``best_ct`` (the trial number it was measured at, counting from 1
    over this measurer's life) and ``has_valid`` (keys with any error-free result).
    ``ct`` counts measurements, ``error_ct`` the current run of consecutive errors.
    """

    def __init__(
        self,
        builder: ProgramBuilder,
        runner: ProgramRunner,
        callbacks: Sequence[MeasureCallback] | None = None,
        verbose: int = 1,
        max_continuous_error: int | None = 150,
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
        if self.verbose >= 1:
            print(f"Get {len(inputs)} programs to measure:", flush=True)
        batch_size = max(1, 2 * self.builder.n_parallel)
        results: list[MeasureResult] = []
        for offset in range(0, len(inputs), batch_size):
            batch = list(inputs[offset : offset + batch_size])
            built = self.builder.build(batch, self.verbose)
            measured = self.runner.run(batch, built, self.verbose)
            for inp, res in zip(batch, measured, strict=True):
                self._record(inp, res)
            for cb in self.callbacks:
                cb.callback(policy, batch, measured)
            results.extend(measured)
        if self.verbose >= 1:
            print(f"\n{self._summary(task, results, time.monotonic() - start)}", flush=True)
        return results

    def _record(self, inp: MeasureInput, res: MeasureResult) -> None:
        self.ct += 1
        key = inp.task.workload_key
        if res.ok:
            self.error_ct = 0
            self.has_valid.add(key)
            cost = res.mean_cost
            if cost < self.best_cost.get(key, float("inf")):
                self.best_cost[key] = cost
                self.best_flops[key] = inp.task.compute_dag.flop_ct / cost
                self.best_state[key] = inp.state
                self.best_ct[key] = self.ct
        else:
            self.error_ct += 1
        if self.verbose >= 2:
            print(f"\n==== MeasureInput {self.ct} ====\n{inp.state}==== MeasureResult ====\n{res}")
        if self.error_ct > self.max_continuous_error and self.verbose < 2:
            warnings.warn(
                f"ProgramMeasurer: {self.error_ct} errors in a row (more than max_continuous_error="
                f"{self.max_continuous_error}); switching to verbose=2 to show each measurement",
                stacklevel=3,
            )
            self.verbose = 2

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
