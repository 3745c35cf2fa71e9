"""``DaskBuilder``: build candidates on a ``dask.distributed`` cluster, measure them here.

Tuning a network measures thousands of candidates, and building one (lowering, LLVM O3,
object emission, linking) costs far more than timing it. Building needs no target
hardware, only the cross-compiler, so builds can scale out to any number of machines
while measurement stays on the target (Ansor paper section 6.1 separates the builder from
the runner for this reason; TVM's ``RPCRunner`` / ``LocalBuilder`` split, and its
``auto_scheduler`` builder protocol, which this class implements).

The contract is ``LocalBuilder``'s (``ansor_py.measure.local``): one ``BuildResult`` per
input, in input order, never raising for a bad candidate, with the same error codes
(``build_candidate`` runs on the worker, so a candidate is classified exactly as
locally) and the same per-candidate ``timeout``. Each candidate is built in a child
forked by the dask worker, so a build that crashes the interpreter (a segfault in LLVM)
or hangs is classified (UNKNOWN_ERROR / BUILD_TIMEOUT) and the child killed, and the
dask worker lives on. The library's bytes come back with the result and are written to a
temporary directory of this process, where any runner (``LocalRunner``, ``SSHRunner``)
picks them up; the runner deletes each library once measured.

Targets are pinned before they travel: an ``llvm`` target without ``-mtriple`` /
``-mcpu`` / ``-mattr`` means "this machine" and is resolved where the code is built, so a
worker on another CPU would build for its own. ``pinned_target`` fixes the triple, CPU,
feature string and core count of this (the measuring) machine; the kernel is the same
one LocalBuilder builds here.

What travels per candidate: the task (pickled by cloudpickle, as dask does: its DAG holds
lambdas; a few KB) and the candidate's transform steps (plain frozen dataclasses, about
1 KB), never the replayed state. The task is not scattered once: scattered data dies
with the worker holding it, and every build needing it would be cancelled. A build whose
dask worker dies (dask retries it elsewhere, then gives up with ``KilledWorker``) is
UNKNOWN_ERROR; one whose result does not come back within its share of the round
(``timeout`` per wave of ``n_parallel`` builds, plus ``result_grace_s``) is
BUILD_TIMEOUT: recorded as errors, never lost.

``DaskBuilder(address=None)`` starts a ``LocalCluster`` of ``n_workers`` single-threaded
worker processes and closes it in ``close()`` (or at the end of a ``with`` block);
``DaskBuilder(address="tcp://host:8786")`` connects to a running scheduler and leaves
its cluster alone.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import faulthandler
import itertools
import logging
import math
import os
import select
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ansor_py.measure.local import INSTANTIATION_ERRORS, BuildFunc, build_candidate
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput
from codegen.target import Target
from ir.loop_state.replay import replay_steps
from ir.loop_state.steps import Step

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask

#: seconds a result may arrive after its build's own timeout (transfer, scheduling)
DEFAULT_RESULT_GRACE_S = 30.0
#: how often ``build`` looks for finished builds
RESULT_POLL_S = 0.02
#: how often a build child checks that the dask worker that forked it is alive
PARENT_WATCH_INTERVAL_S = 0.5

#: (error code, message, seconds spent, library bytes or None)
WorkerOutcome = tuple[int, str, float, bytes | None]


def pinned_target(target: Target) -> Target:
    """``target`` with this machine's triple, CPU, features and cores spelled out (an
    explicit target is returned as it is): what ``target`` means here, wherever it is built."""
    if target.kind != "llvm" or not target.is_host:
        return target
    return dataclasses.replace(
        target,
        mtriple=target.triple,
        mcpu=target.cpu,
        mattr=tuple(target.features.split(",")) if target.features else (),
        given_num_cores=target.num_cores,
    )


def pinned_task(task: SearchTask) -> SearchTask:
    """A shallow copy of ``task`` whose target is ``pinned_target(task.target)``."""
    target = pinned_target(task.target)
    if target == task.target:
        return task
    pinned = copy.copy(task)
    pinned.target = target
    return pinned


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_WATCH_INTERVAL_S)
    os._exit(1)


def _child_build(task: SearchTask, steps: tuple[Step, ...], path: str, build_func: BuildFunc | None) -> str:
    """The forked child's work: replay, build; the outcome as ``"<code>\\n<message>"``."""
    try:
        state = replay_steps(task.compute_dag, steps)
    except INSTANTIATION_ERRORS as error:
        return f"{int(MeasureErrorNo.INSTANTIATION_ERROR)}\n{type(error).__name__}: {error}"
    error_no, message = build_candidate(task, state, path, build_func)
    return f"{int(error_no)}\n{message}"


def build_on_worker(
    task: SearchTask, steps: tuple[Step, ...], timeout: float, build_func: BuildFunc | None = None
) -> WorkerOutcome:
    """Build one candidate in a child forked from this (dask worker) process.

    The child is killed after ``timeout`` seconds (BUILD_TIMEOUT); a child that dies
    without a result (a crash in LLVM) is UNKNOWN_ERROR with its exit status, as in
    ``LocalBuilder``. Returns the library's bytes when the build succeeded. Forks with
    ``os.fork`` (not ``multiprocessing``), since dask's worker processes are daemonic and
    ``multiprocessing`` refuses children of a daemon."""
    directory = tempfile.mkdtemp(prefix="ansor_py_dask_build_")
    path = os.path.join(directory, "candidate.so")
    start = time.monotonic()
    reader, writer = os.pipe()
    parent_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the build child: never returns
        code = 1
        try:
            os.close(reader)
            faulthandler.disable()  # a crash is classified from the exit status, not dumped
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
            try:
                outcome = _child_build(task, steps, path, build_func)
            except Exception:  # the child's isolation boundary: a bug is reported
                outcome = f"{int(MeasureErrorNo.UNKNOWN_ERROR)}\n{traceback.format_exc()}"
            data = outcome.encode()
            while data:
                data = data[os.write(writer, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    try:
        error_no, message = _await_child(pid, reader, start, timeout)
        elapsed = time.monotonic() - start
        library = Path(path).read_bytes() if error_no == MeasureErrorNo.NO_ERROR else None
        return int(error_no), message, elapsed, library
    finally:
        os.close(reader)
        shutil.rmtree(directory, ignore_errors=True)


def _await_child(pid: int, reader: int, start: float, timeout: float) -> tuple[MeasureErrorNo, str]:
    """Read the child's outcome until end-of-file or the deadline; reap the child."""
    chunks: list[bytes] = []
    deadline = start + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return MeasureErrorNo.BUILD_TIMEOUT, f"building took longer than {timeout:g} s"
        ready, _, _ = select.select([reader], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(reader, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    if not text:
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return MeasureErrorNo.UNKNOWN_ERROR, f"the build worker died (exit code {code})"
    number, _, message = text.partition("\n")
    return MeasureErrorNo(int(number)), message


class DaskBuilder:
    """Compile candidates on a ``dask.distributed`` cluster (module docstring).

    ``address``: a scheduler address, or None to start a ``LocalCluster`` of ``n_workers``
    worker processes (one thread each); ``n_parallel`` (what the measurer reads) is the
    cluster's worker thread count. ``timeout``: seconds per candidate, as LocalBuilder's.
    ``build_func``: as LocalBuilder's; it travels to the workers, so it must pickle
    (cloudpickle: a module-level function or a closure over picklable values).
    """

    def __init__(
        self,
        address: str | None = None,
        n_workers: int | None = None,
        timeout: float = 15,
        build_func: BuildFunc | None = None,
        result_grace_s: float = DEFAULT_RESULT_GRACE_S,
    ):
        if timeout <= 0:
            raise ValueError(f"DaskBuilder: timeout {timeout} must be > 0 seconds")
        if n_workers is not None and n_workers < 1:
            raise ValueError(f"DaskBuilder: n_workers {n_workers} must be >= 1")
        if address is not None and n_workers is not None:
            raise ValueError(
                f"DaskBuilder: n_workers {n_workers} is for a LocalCluster; the cluster at {address} "
                "has its own workers"
            )
        if build_func is not None and not callable(build_func):
            raise ValueError(f"DaskBuilder: build_func {build_func!r} must be callable or None")
        from distributed import Client, LocalCluster  # here: dask is an optional extra

        self.timeout = float(timeout)
        self.build_func = build_func
        self.result_grace_s = float(result_grace_s)
        self._cluster: Any = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=n_workers or (os.cpu_count() or 1),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port (None means the default 8787)
                silence_logs=logging.WARNING,
            )
            self.client: Any = Client(self._cluster)
        else:
            self.client = Client(address)
        threads = sum(self.client.nthreads().values())
        self.n_parallel = max(1, threads)
        self._dir = Path(tempfile.mkdtemp(prefix="ansor_py_dask_libs_"))
        self._count = itertools.count()
        atexit.register(shutil.rmtree, self._dir, True)

    # lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect (and stop the LocalCluster this builder started)."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # building -------------------------------------------------------------------------------
    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        """One BuildResult per input, in order; prints ``.`` / ``.E`` / ``.T`` per input."""
        if not inputs:
            return []
        start = time.monotonic()
        pinned: dict[int, SearchTask] = {}  # id(task) -> the task with its target pinned
        futures = []
        for inp in inputs:
            task = pinned.setdefault(id(inp.task), pinned_task(inp.task))
            steps = tuple(inp.state.transform_steps)
            futures.append(
                self.client.submit(build_on_worker, task, steps, self.timeout, self.build_func, pure=False)
            )
        # every build can have run once the cluster went through the queue: waves of
        # n_parallel candidates, each wave at most ``timeout``
        waves = math.ceil(len(inputs) / self.n_parallel)
        limit = waves * self.timeout + self.result_grace_s
        deadline = start + limit
        while not all(future.done() for future in futures) and time.monotonic() < deadline:
            time.sleep(RESULT_POLL_S)  # polled: a lost worker cancels futures, never raises here
        results = []
        for future in futures:
            result = self._collect(future, time.monotonic() - start, limit)
            results.append(result)
            glyphs = {MeasureErrorNo.NO_ERROR: ".", MeasureErrorNo.BUILD_TIMEOUT: ".T"}
            if verbose >= 1:
                print(glyphs.get(result.error_no, ".E"), end="", flush=True)
        return results

    def _collect(self, future: Any, elapsed: float, limit: float) -> BuildResult:
        """The BuildResult of one finished (or abandoned) future."""
        if not future.done():
            future.cancel()
            message = f"the dask cluster returned no result within {limit:g} s (timeout {self.timeout:g} s)"
            return BuildResult("", MeasureErrorNo.BUILD_TIMEOUT, message, elapsed)
        if future.status != "finished":
            try:
                error = future.exception()
            except Exception as failure:  # a cancelled future raises instead of returning
                error = failure
            message = f"the dask worker failed the build: {type(error).__name__}: {error}"
            return BuildResult("", MeasureErrorNo.UNKNOWN_ERROR, message, elapsed)
        number, message, seconds, library = future.result()
        error_no = MeasureErrorNo(number)
        filename = ""
        if error_no is MeasureErrorNo.NO_ERROR:
            assert library is not None
            filename = str(self._dir / f"candidate_{next(self._count)}.so")
            Path(filename).write_bytes(library)
        return BuildResult(filename, error_no, message, seconds)
