"""The data measurement passes around: inputs, build results, measure results, error codes.

``MeasureInput`` is (task, state); ``MeasureResult`` holds every repeat's cost in seconds,
an error code, its message, the wall time spent building and running, and a timestamp,
the fields of a record line (TVM ``auto_scheduler.MeasureResult``, serialized as in
``auto_scheduler/measure_record.py``). Builders and runners are Protocols so a local
process pool, an SSH host pool or a GPU runner plug in alike.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask

#: the cost recorded for a failed measurement, as in TVM
ERROR_COST = 1e10


class MeasureErrorNo(enum.IntEnum):
    """TVM's nine measurement error codes; the int is what records store."""

    NO_ERROR = 0
    INSTANTIATION_ERROR = 1  # replaying the steps failed
    COMPILE_HOST = 2  # lowering or LLVM compilation failed
    COMPILE_DEVICE = 3  # the built library could not be loaded
    RUNTIME_DEVICE = 4  # the kernel crashed while running
    WRONG_ANSWER = 5  # the kernel ran but disagrees with the reference
    BUILD_TIMEOUT = 6
    RUN_TIMEOUT = 7
    UNKNOWN_ERROR = 8


@dataclass(frozen=True)
class MeasureInput:
    """One candidate: a concrete loop state of a task."""

    task: SearchTask
    state: LoopState


@dataclass(frozen=True)
class BuildResult:
    """A built candidate: the shared library's path, or an error."""

    filename: str
    error_no: MeasureErrorNo
    error_msg: str
    time_cost: float


@dataclass(frozen=True)
class MeasureResult:
    """Seconds per run for each repeat (``(ERROR_COST,)`` on error), and bookkeeping."""

    costs: tuple[float, ...]
    error_no: MeasureErrorNo
    error_msg: str = ""
    all_cost: float = 0.0
    timestamp: float = field(default=0.0)

    @property
    def median_cost(self) -> float:
        """The seconds per run a result is ranked by: the median of its repeats.

        TVM ranks by the mean. Timed cold (one call per repeat after a cache flush), a
        repeat the OS deschedules for a scheduler tick takes 4-16 ms where the kernel
        takes 0.5 ms, and one such repeat in ten moves the mean by the kernel's whole
        cost; the median of the repeats ignores a minority of them, in either
        direction. A log written by TVM is ranked by the same statistic here."""
        return statistics.median(self.costs) if self.costs else ERROR_COST

    @property
    def ok(self) -> bool:
        return self.error_no is MeasureErrorNo.NO_ERROR

    @property
    def cost_error(self) -> str | None:
        """Why ``costs`` cannot be seconds per run, or None when they can: every cost must
        be a finite number > 0, and an error-free result needs at least one. A cost of 0
        divides FLOP counts and throughputs by zero; a negative or NaN one would rank as
        the best program. ``ProgramMeasurer`` turns such a result into an error, the
        record writer refuses it and the reader skips it (``ansor_py.records``)."""
        if self.ok and not self.costs:
            return "an error-free result has no cost"
        for cost in self.costs:
            if not (math.isfinite(cost) and cost > 0):
                return f"cost {cost!r} is not a finite number of seconds > 0"
        return None


class ProgramBuilder(Protocol):
    """Compiles candidates; one BuildResult per input, never raising for a bad candidate."""

    n_parallel: int
    timeout: float

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]: ...


#: ``on_result(i, result)``: ``result`` is final for ``inputs[i]`` (see ``ProgramRunner``)
ResultCallback = Callable[[int, MeasureResult], None]


class ProgramRunner(Protocol):
    """Times built candidates and verifies their outputs; one MeasureResult per input.

    ``run`` calls ``on_result(i, result)`` (when given) as soon as the result of
    ``inputs[i]`` is final, before it goes on to another candidate, at most once per
    ``i``, with the object it returns at position ``i``; calls may come from any thread,
    in any order of ``i``. The measurer records each result there (``RecordToFile``
    writes and flushes its line), so a tuner killed mid-batch loses no measured program.
    ``run`` still returns the full list, in input order. A runner that never calls
    ``on_result`` is correct, only its results are recorded when ``run`` returns.
    """

    timeout: float

    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]: ...
