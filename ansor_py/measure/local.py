"""``LocalBuilder`` and ``LocalRunner``: measure candidates on this machine, isolated.

Ansor (paper section 6.1, "the measurer") compiles the programs the search picks and times
them on the hardware. Generated code is untrusted: compiling may hang, and running may
segfault, abort, loop forever or compute garbage. So:

* the builder compiles each candidate in a forked worker process (``n_parallel`` at once,
  each killed after ``timeout`` seconds) into a shared library exporting the packed entry
  ``int32_t default_function(void** args, int32_t nargs)`` (arguments: the DAG's tensors
  in ``compute_dag.tensors`` order);
* the runner times each library in a long-lived child process (``run_worker.py``), which
  checks the outputs of a warm-up call against the task's reference result first, keeps
  every argument between guard pages and canaries, and is restarted after a crash, a
  timeout, an out-of-bounds write or any other misbehaving kernel.

Error codes (``MeasureErrorNo``, as TVM's ``auto_scheduler.measure``): replaying the steps
fails -> INSTANTIATION_ERROR; lowering, LLVM or linking fails -> COMPILE_HOST; the build
outlives its timeout -> BUILD_TIMEOUT; the library cannot be loaded -> COMPILE_DEVICE; the
kernel crashes, writes out of bounds, returns an error status or is timed at a cost that is
not a positive finite number of seconds -> RUNTIME_DEVICE; it outlives the run timeout (or,
twice, the slowdown cut) -> RUN_TIMEOUT; its outputs differ from the reference ->
WRONG_ANSWER; anything else that goes wrong inside a worker (a bug, not a bad candidate) ->
UNKNOWN_ERROR with the traceback.
Tasks are never pickled: build workers get them by fork, and the runner child gets the
reference arrays as ``.npy`` files written once per task.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ansor_py.forking import parent_only, start_forked_child
from ansor_py.measure.types import (
    ERROR_COST,
    BuildResult,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ResultCallback,
)
from ansor_py.measure.worker_process import WorkerDied, WorkerProcess, WorkerTimeout
from codegen.llvm import build as llvm_build
from codegen.llvm.toolchain import ToolchainError, find_linker
from codegen.target import Target
from ir.compute_dag import ComputeDAG
from ir.layout_rewrite import LAYOUT_FREE_PLACEHOLDERS, LayoutRewrite
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import LoopState, ScheduleError
from ir.loop_state.steps import RecordError
from ir.lower.lower import lower
from ir.te import ComputeOp

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask

#: the packed entry point every candidate library exports
ENTRY_NAME = "default_function"
#: ``build_func(task, state, output_path)`` writes a shared library exporting ENTRY_NAME
BuildFunc = Callable[["SearchTask", LoopState, str], None]
#: a failed replay of the steps (the candidate is not a program)
INSTANTIATION_ERRORS = (ScheduleError, RecordError)
#: a failed compilation: lowering or codegen refusing the program (ValueError, which
#: ScheduleError and CodegenError are), LLVM itself (RuntimeError), the linker
COMPILE_ERRORS = (ValueError, RuntimeError, OSError, subprocess.SubprocessError)
#: relative and absolute tolerances of the output check (absolute: times the largest
#: reference magnitude), per float dtype; integers and bools are compared exactly
TOLERANCES = {"float16": (1e-2, 1e-2), "float32": (1e-4, 1e-4), "float64": (1e-8, 1e-8)}
#: reductions up to this many terms keep the base tolerance
TOLERANCE_FREE_TERMS = 1024
#: task references the runner child keeps loaded (``run_worker.MAX_TASKS``)
CHILD_TASKS = 4
#: references of rewritten weight layouts kept written at once (one per recent layout)
LAYOUT_REFERENCES = 8


def output_tolerances(dag: ComputeDAG, dtype: str) -> tuple[float, float]:
    """(rtol, atol) of the output check for a ``dtype`` output of ``dag``.

    A correct kernel summing n terms in its own dtype differs from the reference (which
    accumulates float32 in float64) by a rounding error that grows like sqrt(n) * eps in
    practice (n * eps at worst), so the base tolerance is scaled by
    sqrt(n / TOLERANCE_FREE_TERMS) for the DAG's longest reduction: a 4096 x 4096 matrix
    norm summed serially in float32 is off by about 1e-2 and is not a wrong answer.
    """
    rtol, atol = TOLERANCES.get(dtype, (0.0, 0.0))
    terms = max(
        (math.prod(a.extent for a in op.reduce_axis) for op in dag.ops if isinstance(op, ComputeOp)),
        default=1,
    )
    scale = max(1.0, math.sqrt(terms / TOLERANCE_FREE_TERMS))
    return rtol * scale, atol * scale


def default_build_func(task: SearchTask, state: LoopState, output_path: str) -> None:
    """Lower ``state``, compile it with the LLVM back end and link ``output_path``; with
    layout rewrite (``task.layout_rewrite``), from the DAG rewritten for the state."""
    dag = task.compute_dag
    rewrite = task.layout_rewrite(state)
    if rewrite is not None:
        dag, state = rewrite.dag, replay_steps(rewrite.dag, state.transform_steps)
    module = llvm_build(lower(dag, state, name=ENTRY_NAME), task.target)
    module.export_library(output_path)


def build_candidate(
    task: SearchTask, state: LoopState, output_path: str, build_func: BuildFunc | None = None
) -> tuple[MeasureErrorNo, str]:
    """Replay ``state``'s steps on the task's DAG and build it; (error code, message).

    This is what a build worker runs; it never raises for a bad candidate."""
    try:
        replayed = replay_steps(task.compute_dag, state.transform_steps)
    except INSTANTIATION_ERRORS as error:
        return MeasureErrorNo.INSTANTIATION_ERROR, f"{type(error).__name__}: {error}"
    except Exception:  # the worker's isolation boundary: a bug is reported, not fatal
        return MeasureErrorNo.UNKNOWN_ERROR, traceback.format_exc()
    if not replayed.concrete:
        return MeasureErrorNo.INSTANTIATION_ERROR, "the state has unknown split lengths (a sketch)"
    try:
        (build_func or default_build_func)(task, replayed, output_path)
    except COMPILE_ERRORS as error:
        return MeasureErrorNo.COMPILE_HOST, f"{type(error).__name__}: {error}"
    except Exception:  # the worker's isolation boundary, as above
        return MeasureErrorNo.UNKNOWN_ERROR, traceback.format_exc()
    if not os.path.isfile(output_path):
        return MeasureErrorNo.COMPILE_HOST, f"the build function wrote no library at {output_path}"
    return MeasureErrorNo.NO_ERROR, ""


def _build_in_child(
    conn: Connection, task: SearchTask, state: LoopState, path: str, build_func: BuildFunc | None
) -> None:
    start_forked_child()
    conn.send(build_candidate(task, state, path, build_func))
    conn.close()


def _progress(text: str, verbose: int) -> None:
    if verbose >= 1:
        print(text, end="", flush=True)


_BUILD_DIR: list[Path] = []
_LIBRARY_COUNT = itertools.count()


def _library_path() -> str:
    """A fresh path for a candidate library (never reused: the runner child must not find
    an old library of the same name still loaded)."""
    if not _BUILD_DIR:
        _BUILD_DIR.append(Path(tempfile.mkdtemp(prefix="ansor_py_build_")))
        atexit.register(shutil.rmtree, _BUILD_DIR[0], True)
    return str(_BUILD_DIR[0] / f"candidate_{next(_LIBRARY_COUNT)}.so")


@dataclass
class _BuildJob:
    process: multiprocessing.process.BaseProcess
    reader: Connection
    path: str
    start: float


#: cross targets whose linker this process has made ready (``prepare_cross_linkers``)
_PREPARED_TARGETS: set[str] = set()


def prepare_cross_linkers(targets: Iterable[Target]) -> None:
    """Make each cross target's linker ready in this process, once, outside any build's
    timeout: zig's first link for a target builds its libc pieces and the libgomp
    stand-in (tens of seconds, then cached on disk; ``codegen.llvm.toolchain.gomp_stub``).
    A missing toolchain is left for the builds to report, each one classified."""
    for target in targets:
        if target.is_host or str(target) in _PREPARED_TARGETS:
            continue
        _PREPARED_TARGETS.add(str(target))
        with contextlib.suppress(ToolchainError):
            find_linker(target)


class LocalBuilder:
    """Compile candidates in forked worker processes, ``n_parallel`` at a time.

    ``build_func(task, state, output_path)`` replaces the default build (lower, LLVM,
    ``cc -shared``); it receives the state replayed from its steps and must write a shared
    library exporting ``int32_t default_function(void** args, int32_t nargs)``. Libraries
    go to a temporary directory of this process, removed at exit, SIGTERM included inside
    ``auto_schedule`` (the runner deletes each library once measured). A build worker
    dies with this process (``forking.start_forked_child``).
    """

    def __init__(
        self, timeout: float = 15, n_parallel: int | None = None, build_func: BuildFunc | None = None
    ):
        n_parallel = (os.cpu_count() or 1) if n_parallel is None else n_parallel
        if timeout <= 0:
            raise ValueError(f"LocalBuilder: timeout {timeout} must be > 0 seconds")
        if n_parallel < 1:
            raise ValueError(f"LocalBuilder: n_parallel {n_parallel} must be >= 1")
        if build_func is not None and not callable(build_func):
            raise ValueError(f"LocalBuilder: build_func {build_func!r} must be callable or None")
        self.timeout = float(timeout)
        self.n_parallel = n_parallel
        self.build_func = build_func
        self._context = multiprocessing.get_context("fork")

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        """One BuildResult per input, in order; prints ``.`` / ``.E`` / ``.T`` per input."""
        prepare_cross_linkers(inp.task.target for inp in inputs)
        results: list[BuildResult | None] = [None] * len(inputs)
        pending = deque(range(len(inputs)))
        running: dict[int, _BuildJob] = {}
        try:
            while pending or running:
                while pending and len(running) < self.n_parallel:
                    index = pending.popleft()
                    running[index] = self._start(inputs[index])
                deadline = min(job.start for job in running.values()) + self.timeout
                jobs = list(running.values())
                wait(
                    [job.reader for job in jobs] + [job.process.sentinel for job in jobs],
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                for index, job in list(running.items()):
                    result = self._poll(job)
                    if result is not None:
                        del running[index]
                        results[index] = result
                        glyphs = {MeasureErrorNo.NO_ERROR: ".", MeasureErrorNo.BUILD_TIMEOUT: ".T"}
                        _progress(glyphs.get(result.error_no, ".E"), verbose)
        finally:
            for job in running.values():  # interrupted (SIGTERM, Ctrl-C): stop the others
                job.process.kill()
                job.process.join()
                job.reader.close()
        return [r for r in results if r is not None]

    def _start(self, inp: MeasureInput) -> _BuildJob:
        path = _library_path()
        reader, writer = self._context.Pipe(duplex=False)
        parent_only(reader)  # the child closes its copy: its result can only go to us
        # the child flushes its copy of our stdio buffers when it exits: empty them first
        sys.stdout.flush()
        sys.stderr.flush()
        process = self._context.Process(
            target=_build_in_child, args=(writer, inp.task, inp.state, path, self.build_func), daemon=True
        )
        process.start()
        writer.close()
        return _BuildJob(process, reader, path, time.monotonic())

    def _poll(self, job: _BuildJob) -> BuildResult | None:
        """The job's result if it has finished (or timed out), else None."""
        elapsed = time.monotonic() - job.start
        alive = job.process.is_alive()  # before poll: a dead child's message is in the pipe
        outcome: tuple[MeasureErrorNo, str] | None = None
        if job.reader.poll():
            try:
                outcome = job.reader.recv()
            except EOFError:
                outcome = None
            job.process.join(timeout=5.0)
            if job.process.is_alive():
                job.process.kill()
                job.process.join()
            if outcome is None:
                code = job.process.exitcode
                outcome = (MeasureErrorNo.UNKNOWN_ERROR, f"the build worker died (exit code {code})")
        elif not alive:
            job.process.join()
            code = job.process.exitcode
            outcome = (MeasureErrorNo.UNKNOWN_ERROR, f"the build worker died (exit code {code})")
        elif elapsed >= self.timeout:
            job.process.kill()
            job.process.join()
            outcome = (MeasureErrorNo.BUILD_TIMEOUT, f"building took longer than {self.timeout:g} s")
        if outcome is None:
            return None
        job.reader.close()
        error_no, message = outcome
        filename = job.path if error_no is MeasureErrorNo.NO_ERROR else ""
        if error_no is not MeasureErrorNo.NO_ERROR and os.path.exists(job.path):
            os.unlink(job.path)
        return BuildResult(filename, error_no, message, elapsed)


#: seconds any candidate may run before ``LocalRunner.slowdown_limit`` can give it up
HOPELESS_FLOOR_S = 2.0


class LocalRunner:
    """Time built candidates in a warm child process, checking each against the reference.

    Each candidate: one warm-up call whose outputs are compared with the task's reference
    (``WRONG_ANSWER`` with the largest error otherwise), then ``repeat`` timings of
    ``number`` calls (``number`` grown until a repeat lasts ``min_repeat_ms``); costs are
    the repeats' mean seconds per call, each a finite number > 0 (anything else is a
    ``RUNTIME_DEVICE`` error, never a NO_ERROR record). ``enable_cpu_cache_flush`` writes a
    buffer twice the last-level cache before each repeat, then reads the task's activations
    back (``cached_inputs``: every input but the weights, as a network's earlier layers
    leave them in the caches; without named weights, TVM's first argument), and forces
    ``number=1, min_repeat_ms=0`` (as TVM). ``cooldown_interval`` seconds are slept after
    each candidate. Each library is deleted once measured. ``close()`` (or ``with``) stops
    the child.

    The child keeps every argument between guard pages and canaries (``run_worker.py``): a
    kernel that writes out of bounds is a ``RUNTIME_DEVICE`` error naming the buffer. After
    any candidate whose kernel crashed, overran a buffer, returned an error status or
    computed a wrong answer, the child is replaced by a fresh one, so damage the guards
    cannot see is never blamed on the next candidate.

    A candidate is also given up (``RUN_TIMEOUT``) once it has run ``HOPELESS_FLOOR_S``
    seconds plus what ``slowdown_limit`` times the task's fastest program so far would take
    (its checking call and its repeats, each repeat at least ``min_repeat_ms``): a program
    a hundred times slower than one already measured teaches the search nothing more by
    finishing, while waiting out the whole ``timeout`` for it stalls the round's other
    candidates. ``None`` waits the whole ``timeout``, as TVM does. On a loaded machine a
    correct program can overrun that cut (its time slices go to other processes), so with
    ``recheck_cut`` a cut candidate is run once more, in a fresh child, with twice the
    cut's limit (at most ``timeout``): a program merely delayed by load finishes within
    twice its share and is recorded with the second run's costs, while a hopeless one costs
    three cut limits instead of the whole ``timeout``. ``rechecked`` and ``rescued`` count
    the re-checks and those that finished correctly.
    """

    def __init__(
        self,
        timeout: float = 10,
        number: int = 3,
        repeat: int = 1,
        min_repeat_ms: float = 100,
        cooldown_interval: float = 0.0,
        enable_cpu_cache_flush: bool = False,
        slowdown_limit: float | None = 100.0,
        recheck_cut: bool = True,
    ):
        if slowdown_limit is not None and slowdown_limit < 1:
            raise ValueError(f"LocalRunner: slowdown_limit {slowdown_limit} must be >= 1 (or None)")
        for name, value, low in (("timeout", timeout, 0), ("number", number, 1), ("repeat", repeat, 1)):
            if value < low or (name == "timeout" and value == 0):
                raise ValueError(f"LocalRunner: {name} {value} must be {'> 0' if low == 0 else '>= 1'}")
        for name, value in (("min_repeat_ms", min_repeat_ms), ("cooldown_interval", cooldown_interval)):
            if value < 0:
                raise ValueError(f"LocalRunner: {name} {value} must be >= 0")
        if enable_cpu_cache_flush:
            number, min_repeat_ms = 1, 0
        self.timeout = float(timeout)
        self.number = int(number)
        self.repeat = int(repeat)
        self.min_repeat_ms = float(min_repeat_ms)
        self.cooldown_interval = float(cooldown_interval)
        self.enable_cpu_cache_flush = enable_cpu_cache_flush
        self.slowdown_limit = slowdown_limit
        self.recheck_cut = recheck_cut
        #: candidates cut by ``slowdown_limit`` and run again; those that then finished
        self.rechecked = 0
        self.rescued = 0
        #: the smallest median cost measured per workload key
        self._fastest: dict[str, float] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="ansor_py_run_"))
        self._tasks: dict[str, tuple[int, list[dict[str, object]]]] = {}
        self._next_task_id = 0
        self._layout_keys: deque[str] = deque()  # references of rewritten layouts, oldest first
        self._workers: list[WorkerProcess] = []  # at most one, in a list the finalizer shares
        self._started = 0
        weakref.finalize(self, _shutdown, self._workers, self._dir)

    # lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the child process (a later ``run`` starts a new one)."""
        while self._workers:
            self._workers.pop().close()

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def child_pid(self) -> int | None:
        """The process id of the live runner child, None when none is running."""
        if self._workers and self._workers[0].alive:
            return self._workers[0].process.pid
        return None

    def _worker(self) -> WorkerProcess:
        if self._workers and not self._workers[0].alive:
            self.close()
        if not self._workers:
            self._started += 1
            self._workers.append(WorkerProcess(self._dir / f"worker_{self._started}.log"))
        return self._workers[0]

    # running --------------------------------------------------------------------------------
    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]:
        """One MeasureResult per input, in order; prints ``*`` / ``*E`` / ``*T`` per input.
        Inputs whose build failed keep the build's error. ``on_result(i, result)`` is called
        as soon as each result is final, in input order, before the next candidate runs."""
        if len(inputs) != len(build_results):
            raise ValueError(f"LocalRunner.run: {len(inputs)} inputs but {len(build_results)} build results")
        results = []
        for index, (inp, built) in enumerate(zip(inputs, build_results, strict=True)):
            start = time.monotonic()
            if built.error_no is MeasureErrorNo.NO_ERROR:
                costs, error_no, message = self._run_one(inp, built.filename)
                if error_no is MeasureErrorNo.NO_ERROR:
                    key = inp.task.workload_key
                    self._fastest[key] = min(self._fastest.get(key, math.inf), statistics.median(costs))
                if os.path.exists(built.filename):
                    os.unlink(built.filename)
                if self.cooldown_interval > 0:
                    time.sleep(self.cooldown_interval)
            else:
                costs, error_no, message = (ERROR_COST,), built.error_no, built.error_msg
            all_cost = built.time_cost + time.monotonic() - start
            result = MeasureResult(costs, error_no, message, all_cost, time.time())
            results.append(result)
            if on_result is not None:
                on_result(index, result)  # recorded before the progress mark says so
            glyphs = {MeasureErrorNo.NO_ERROR: "*", MeasureErrorNo.RUN_TIMEOUT: "*T"}
            _progress(glyphs.get(error_no, "*E"), verbose)
        return results

    def _run_one(self, inp: MeasureInput, library: str) -> tuple[tuple[float, ...], MeasureErrorNo, str]:
        """Measure one library: within the slowdown cut, then (``recheck_cut``) once more
        with twice that limit when the cut gave it up."""
        limit, why = self.time_limit(inp.task.workload_key)
        costs, error_no, message = self._attempt(inp, library, limit, why)
        if error_no is MeasureErrorNo.RUN_TIMEOUT and self.recheck_cut and limit < self.timeout:
            self.rechecked += 1
            second = min(2 * limit, self.timeout)
            costs, error_no, message = self._attempt(inp, library, second, "")
            if error_no is MeasureErrorNo.NO_ERROR:
                self.rescued += 1
            elif error_no is MeasureErrorNo.RUN_TIMEOUT:
                message = f"running took longer than {limit:g} s{why}, and {second:g} s when re-checked"
        return costs, error_no, message

    def _attempt(
        self, inp: MeasureInput, library: str, limit: float, why: str
    ) -> tuple[tuple[float, ...], MeasureErrorNo, str]:
        """One run of ``library`` in the child, given ``limit`` seconds; classified."""
        failed = (ERROR_COST,)
        try:
            worker = self._worker()
            task_id = self._load_task(worker, inp.task, inp.state)
        except (WorkerDied, WorkerTimeout) as error:
            self.close()
            return failed, MeasureErrorNo.UNKNOWN_ERROR, f"the runner child failed to start: {error!r}"
        request = {
            "op": "run",
            "task": task_id,
            "lib": library,
            "entry": ENTRY_NAME,
            "number": self.number,
            "repeat": self.repeat,
            "min_repeat_ms": self.min_repeat_ms,
            "flush_bytes": _flush_bytes() if self.enable_cpu_cache_flush else 0,
        }
        try:
            reply, _ = worker.request(request, limit)
        except WorkerTimeout:
            return failed, MeasureErrorNo.RUN_TIMEOUT, f"running took longer than {limit:g} s{why}"
        except WorkerDied as died:
            # the child's fault handler names the buffer a kernel overran ("fault: ...")
            faults = [p.removeprefix("fault: ") for p in died.phases if p.startswith("fault: ")]
            detail = f"{faults[0]}; {died}" if faults else str(died)
            if "loaded" in died.phases:
                return failed, MeasureErrorNo.RUNTIME_DEVICE, f"the kernel crashed: {detail}"
            return failed, MeasureErrorNo.COMPILE_DEVICE, f"loading {library} crashed: {detail}"
        if reply.get("status") == "ok":
            costs = tuple(float(c) for c in reply["costs"])
            problem = MeasureResult(costs, MeasureErrorNo.NO_ERROR).cost_error
            if problem is not None:
                message = f"the runner child timed {list(costs)} s: {problem}"
                return failed, MeasureErrorNo.RUNTIME_DEVICE, message
            return costs, MeasureErrorNo.NO_ERROR, ""
        error_no = MeasureErrorNo[reply["error"]]
        if error_no in (MeasureErrorNo.RUNTIME_DEVICE, MeasureErrorNo.WRONG_ANSWER):
            self.close()  # the kernel misbehaved: the next candidate gets a fresh child
        return failed, error_no, str(reply["msg"])

    def time_limit(self, workload_key: str) -> tuple[float, str]:
        """Seconds a candidate of ``workload_key`` may run, and why when under ``timeout``."""
        fastest = self._fastest.get(workload_key)
        if self.slowdown_limit is None or fastest is None:
            return self.timeout, ""
        calls = 1 + self.repeat * self.number  # the checking call, then the repeats
        repeats_s = self.repeat * self.min_repeat_ms / 1e3  # each repeat lasts at least this
        limit = HOPELESS_FLOOR_S + self.slowdown_limit * fastest * calls + repeats_s
        if limit >= self.timeout:
            return self.timeout, ""
        return limit, f" ({self.slowdown_limit:g}x the task's fastest program so far, {fastest * 1e3:.3g} ms)"

    def _load_task(self, worker: WorkerProcess, task: SearchTask, state: LoopState) -> int:
        """Ship the task's reference to the child once (``.npy`` files written once); tasks
        of one workload with different ``task_inputs`` have different references, and so
        do candidates whose weights a layout rewrite lays out differently (those files are
        removed once ``LAYOUT_REFERENCES`` newer layouts followed)."""
        key = task.reference_key
        rewrite = task.layout_rewrite(state)
        if rewrite is not None:
            key += "#layout=" + ";".join(f"{n}:{rewrite.layouts[n]}" for n in sorted(rewrite.layouts))
        if key not in self._tasks:
            task_id = self._next_task_id
            self._next_task_id += 1
            self._tasks[key] = (task_id, self._write_reference(task, task_id, rewrite))
            if rewrite is not None:
                self._layout_keys.append(key)
                while len(self._layout_keys) > LAYOUT_REFERENCES:
                    old_id, old_args = self._tasks.pop(self._layout_keys.popleft())
                    for arg in old_args:
                        if f"task_{old_id}_" in str(arg["file"]):
                            Path(str(arg["file"])).unlink(missing_ok=True)
        task_id, args = self._tasks[key]
        if task_id not in worker.loaded_tasks and len(worker.loaded_tasks) >= CHILD_TASKS:
            worker.loaded_tasks.clear()  # the child keeps only its CHILD_TASKS latest
        if task_id not in worker.loaded_tasks:
            reply, _ = worker.request({"op": "task", "id": task_id, "args": args}, max(self.timeout, 60.0))
            if not reply.get("ok"):
                raise WorkerDied(f"the runner child could not load the task: {reply.get('msg')}", [])
            worker.loaded_tasks.add(task_id)
        return task_id

    def _write_reference(
        self, task: SearchTask, task_id: int, rewrite: LayoutRewrite | None = None
    ) -> list[dict[str, object]]:
        """Write the reference inputs and outputs in kernel-argument order; their
        descriptors. With a layout rewrite only the transformed weights are written anew,
        the other arguments are the task's own files."""
        args: list[dict[str, object]] = []
        base = None if rewrite is None else self._tasks.get(task.reference_key)
        if rewrite is not None and base is None:
            base_id = self._next_task_id
            self._next_task_id += 1
            self._tasks[task.reference_key] = base = (base_id, self._write_reference(task, base_id))
        for position, arg in enumerate(reference_arguments(task, rewrite)):
            if base is not None and arg.name not in (rewrite.layouts if rewrite else {}):
                args.append(base[1][position])
                continue
            path = self._dir / f"task_{task_id}_arg_{position}.npy"
            np.save(path, arg.array)
            args.append(
                {
                    "name": arg.name,
                    "role": arg.role,
                    "cached": arg.cached,
                    "file": str(path),
                    "rtol": arg.rtol,
                    "atol": arg.atol,
                }
            )
        return args


@dataclass(frozen=True)
class KernelArgument:
    """One argument of a candidate's checking run: ``role`` "in" (``array`` is the input)
    or "out" (``array`` is the expected output, compared with ``rtol`` / ``atol``).
    ``cached``: an input the timing reads back after each cache flush, because in a
    network the layer before leaves it in the caches (``cached_inputs``)."""

    role: str
    name: str
    array: np.ndarray
    rtol: float = 0.0
    atol: float = 0.0
    cached: bool = False


def reference_arguments(task: SearchTask, rewrite: LayoutRewrite | None = None) -> list[KernelArgument]:
    """The task's reference inputs and expected outputs in kernel-argument order
    (``compute_dag.tensors``), outputs with ``output_tolerances``: what every runner checks
    a candidate against; with ``rewrite`` (``task.layout_rewrite(state)``) the weights it
    rewrites in their new layouts."""
    dag = task.compute_dag
    inputs, outputs = task.reference()
    if rewrite is not None:
        inputs = rewrite.transform_inputs(inputs)
    arrays = dict(zip((t.name for t in dag.placeholders), inputs, strict=True))
    arrays.update(zip((t.name for t in dag.outputs), outputs, strict=True))
    output_names = {t.name for t in dag.outputs}
    cached = cached_inputs(dag)
    arguments = []
    for tensor in dag.tensors:
        array = np.ascontiguousarray(arrays[tensor.name])
        if tensor.name in output_names:
            arguments.append(KernelArgument("out", tensor.name, array, *output_tolerances(dag, tensor.dtype)))
        else:
            arguments.append(KernelArgument("in", tensor.name, array, cached=tensor.name in cached))
    return arguments


def cached_inputs(dag: ComputeDAG) -> set[str]:
    """The inputs a cache-flushed timing reads back into the caches before each repeat.

    In a network every input of a layer but its weights was written by the layers just
    before it, so it starts in the caches; the weights come from memory. Where the DAG
    names its weights (``layout_free_placeholders``, as topi's convolutions, dense layers
    and matmuls do), every other input is cached: a residual input of a fused add too.
    Otherwise the rule is TVM's ``cache_flush_cpu_non_first_arg``: the first argument
    alone, when it is an input."""
    placeholders = [t.name for t in dag.placeholders]
    weights = {
        name
        for op in dag.ops
        if isinstance(op, ComputeOp)
        for name in op.attrs.get(LAYOUT_FREE_PLACEHOLDERS, ())
        if name in placeholders
    }
    if weights:
        return {name for name in placeholders if name not in weights}
    first = dag.tensors[0].name if dag.tensors else None
    return {first} if first in placeholders else set()


def _shutdown(workers: list[WorkerProcess], directory: Path) -> None:
    while workers:
        workers.pop().close()
    shutil.rmtree(directory, ignore_errors=True)


def _flush_bytes() -> int:
    """Twice the largest CPU cache reported by sysfs (64 MiB when unknown)."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text and text[-1] in units and text[:-1].isdigit():
            sizes.append(int(text[:-1]) * units[text[-1]])
    return 2 * max(sizes) if sizes else 64 << 20
