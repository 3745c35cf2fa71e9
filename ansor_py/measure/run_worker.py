"""The runner's child process: load a candidate's shared library, check it, time it.

``LocalRunner`` starts this file as a script (``python run_worker.py``), so the child
imports only numpy and ctypes, never the search, and stays warm across candidates: it is
restarted only after a crash or a timeout. Generated code may segfault, abort or loop
forever (Ansor paper section 6.1 measures every candidate on hardware); doing that here
costs the tuner one error record, not the run.

Protocol: one JSON request per line on stdin; JSON replies, one per line, on the file
descriptor that was stdout at start (fd 1 is then pointed at stderr, so a kernel that
prints cannot corrupt the replies).

* ``{"op": "task", "id": 3, "args": [{"name": "A", "role": "in" | "out", "file": ...,
  "rtol": 1e-4, "atol": 1e-4}, ...]}`` loads one task's reference: every tensor of the DAG in
  kernel-argument order, inputs as given and outputs as expected (``.npy`` files written
  once per task by the parent). Reply ``{"ok": true}``.
* ``{"op": "run", "task": 3, "lib": path, "entry": name, "number": 3, "repeat": 1,
  "min_repeat_ms": 100, "flush_bytes": 0}`` measures one candidate. Replies
  ``{"phase": "loaded"}`` once the library is open (a crash after it is the kernel's),
  then ``{"status": "ok", "costs": [...]}`` or ``{"status": "error", "error": NAME,
  "msg": ...}`` with NAME one of COMPILE_DEVICE, RUNTIME_DEVICE, WRONG_ANSWER,
  UNKNOWN_ERROR.

Timing follows TVM's ``time_evaluator``: one warm-up call (whose outputs are checked
against the reference), then ``repeat`` repeats of ``number`` calls each, ``number``
growing by the golden ratio until a repeat lasts ``min_repeat_ms``; the cost of a repeat
is its mean seconds per call. With ``flush_bytes`` a buffer that large is written before
each repeat, evicting the kernel's data from the last-level cache. The first kernel of the
child that uses OpenMP also runs untimed for ``OPENMP_SETTLE_S`` after its warm-up, while
the new thread team spreads over the cores.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import sys
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

#: int32_t entry(void** args, int32_t nargs), the packed signature of every kernel
PACKED_FUNC_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int32)
#: how many tasks' references the child keeps loaded
MAX_TASKS = 4
GOLDEN_RATIO = 1.618
#: seconds the first OpenMP kernel of the process runs untimed (see ``Worker.measure``)
OPENMP_SETTLE_S = 0.1


class CandidateError(Exception):
    """A classified failure of one candidate; ``error`` is a MeasureErrorNo name."""

    def __init__(self, error: str, msg: str):
        super().__init__(msg)
        self.error = error
        self.msg = msg


@dataclass
class Argument:
    """One kernel argument: its name, role ("in" or "out"), reference array (the input, or
    the expected output) and the output check's tolerances."""

    name: str
    role: str
    reference: np.ndarray
    rtol: float
    atol: float


@dataclass
class TaskData:
    """A task's kernel arguments, in order."""

    args: list[Argument]


def fresh_arguments(task: TaskData) -> list[np.ndarray]:
    """Copies of the inputs and outputs pre-filled with a sentinel (NaN for floats), so a
    kernel that leaves an element unwritten cannot pass the check by luck."""
    arrays = []
    for arg in task.args:
        if arg.role == "in":
            arrays.append(np.array(arg.reference, copy=True, order="C"))
            continue
        out = np.empty_like(arg.reference, order="C")
        if np.issubdtype(out.dtype, np.floating):
            out.fill(np.nan)
        elif out.dtype == np.bool_:
            out.fill(True)
        else:
            out.fill(np.iinfo(out.dtype).max)
        arrays.append(out)
    return arrays


def compare_output(name: str, got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str | None:
    """None when ``got`` matches ``expected``, else a message naming the output, how many
    elements differ, and the largest error with its index. Floats are compared with
    ``|got - expected| <= atol * scale + rtol * |expected|`` (scale: the largest finite
    ``|expected|``, at least 1; NaN matches NaN); integers and bools exactly."""
    if np.issubdtype(expected.dtype, np.floating):
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        ok = np.isclose(got, expected, rtol=rtol, atol=atol * scale, equal_nan=True)
        error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        error[ok] = 0.0
        error = np.where(np.isnan(error), np.inf, error)
        tolerance = f"rtol={rtol:g}, atol={atol:g}*{scale:.3g}"
    else:
        ok = got == expected
        error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        tolerance = "exact"
    if bool(ok.all()):
        return None
    worst = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
    index = tuple(int(i) for i in worst)
    return (
        f"output '{name}' differs from the reference at {int((~ok).sum())} of {ok.size} elements: "
        f"max error {float(error[worst]):.4g} at index {index} (got {got[worst]!r}, expected "
        f"{expected[worst]!r}; tolerance {tolerance})"
    )


class Worker:
    """The request loop: loaded tasks, the open library, the flush buffer."""

    def __init__(self) -> None:
        self.tasks: OrderedDict[int, TaskData] = OrderedDict()
        self.flush_buffer = np.zeros(0, np.int64)
        self.flush_value = 0
        self.openmp_settled = False

    # requests -------------------------------------------------------------------------------
    def load_task(self, request: dict[str, Any]) -> dict[str, Any]:
        args = [
            Argument(a["name"], a["role"], np.load(a["file"]), float(a["rtol"]), float(a["atol"]))
            for a in request["args"]
        ]
        self.tasks[int(request["id"])] = TaskData(args)
        while len(self.tasks) > MAX_TASKS:
            self.tasks.popitem(last=False)
        return {"ok": True}

    def run(self, request: dict[str, Any], reply: Any) -> dict[str, Any]:
        task = self.tasks.get(int(request["task"]))
        if task is None:
            raise CandidateError("UNKNOWN_ERROR", f"task {request['task']} was not loaded into the runner")
        try:
            library = ctypes.CDLL(request["lib"])
            entry = PACKED_FUNC_TYPE((request["entry"], library))
        except (OSError, AttributeError) as error:
            raise CandidateError("COMPILE_DEVICE", f"cannot load {request['lib']}: {error}") from None
        reply({"phase": "loaded"})
        settle = not self.openmp_settled and _uses_openmp(request["lib"])
        try:
            costs = self.measure(task, entry, request, settle)
        finally:
            del entry
            _dlclose(library)
        return {"status": "ok", "costs": costs}

    # measuring ------------------------------------------------------------------------------
    def measure(self, task: TaskData, entry: Any, request: dict[str, Any], settle: bool) -> list[float]:
        arrays = fresh_arguments(task)
        pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        nargs = len(arrays)

        def call() -> None:
            status = entry(pointers, nargs)
            if status != 0:
                raise CandidateError("RUNTIME_DEVICE", f"kernel returned error status {status}")

        start = time.perf_counter()
        call()  # warm-up, discarded; its outputs are checked
        warmup_ms = (time.perf_counter() - start) * 1e3
        for arg, got in zip(task.args, arrays, strict=True):
            if arg.role == "out":
                message = compare_output(arg.name, got, arg.reference, arg.rtol, arg.atol)
                if message is not None:
                    raise CandidateError("WRONG_ANSWER", message)
        if settle:
            # A new OpenMP team's threads start on the caller's core; until the kernel's
            # scheduler spreads them (a few balancing periods), every barrier waits a
            # time slice. Run the first parallel kernel of this process a while first.
            end = time.perf_counter() + OPENMP_SETTLE_S
            while time.perf_counter() < end:
                call()
            self.openmp_settled = True
        min_repeat_ms = float(request["min_repeat_ms"])
        # A slow candidate needs fewer calls to fill min_repeat_ms: a 2 s program is timed
        # once per repeat, not `number` times (each repeat still lasts >= min_repeat_ms).
        number = int(request["number"])
        if min_repeat_ms > 0:
            number = max(1, min(number, math.ceil(min_repeat_ms / max(warmup_ms, 1e-3))))
        flush_bytes = int(request["flush_bytes"])
        costs = []
        for _ in range(int(request["repeat"])):
            duration_ms = 0.0
            while True:
                if duration_ms > 0.0:
                    number = int(max(min_repeat_ms / (duration_ms / number) + 1, number * GOLDEN_RATIO))
                if flush_bytes:
                    self.flush_cache(flush_bytes)
                start = time.perf_counter()
                for _ in range(number):
                    call()
                duration_ms = (time.perf_counter() - start) * 1e3
                if duration_ms >= min_repeat_ms:
                    break
            costs.append(duration_ms / 1e3 / number)
        return costs

    def flush_cache(self, nbytes: int) -> None:
        """Write ``nbytes`` of memory, evicting the kernel's data from the caches."""
        count = math.ceil(nbytes / 8)
        if self.flush_buffer.size != count:
            self.flush_buffer = np.zeros(count, np.int64)
        self.flush_value += 1
        self.flush_buffer.fill(self.flush_value)


def _dlclose(library: ctypes.CDLL) -> None:
    """Unload a candidate's library; thousands of candidates pass through one child."""
    import _ctypes

    _ctypes.dlclose(library._handle)


def _uses_openmp(path: str) -> bool:
    """Whether a library calls libgomp (its dynamic symbol table names GOMP_parallel)."""
    with open(path, "rb") as f:
        return b"GOMP_parallel" in f.read()


def _pin_openmp() -> None:
    """Load libgomp for good: unloading the last library that used it would unload
    libgomp too, under its still-running worker threads (a segfault)."""
    # without an OpenMP runtime, libraries needing it fail to load (COMPILE_DEVICE)
    with contextlib.suppress(OSError):
        ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what kernels print goes to the log, never into the replies

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    _pin_openmp()
    worker = Worker()
    reply({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "task":
                reply(worker.load_task(request))
            else:
                reply(worker.run(request, reply))
        except CandidateError as error:
            reply({"status": "error", "error": error.error, "msg": error.msg})
        except Exception:  # the isolation boundary: anything else is reported, not fatal
            reply({"status": "error", "error": "UNKNOWN_ERROR", "msg": traceback.format_exc()})


if __name__ == "__main__":
    main()
