"""``SSHRunner``: time candidates on boards that run nothing but sshd.

TVM measures on a board through its RPC server and tracker, which the user must build and
start there. Here a board needs nothing but sshd: the builder cross-compiles each
candidate on this machine and the runner, over paramiko:

1. uploads the timing harness (``harness.c``, compiled for the task's triple, cached on
   the board by content hash under ``remote_dir``) the first time it meets a board;
2. uploads each task's reference inputs and expected outputs once per board and run
   (``task-<n>/``, with the output tolerances of ``LocalRunner``);
3. per candidate: copies the shared library, runs ``timeout -k 2 T PREFIX harness ...``
   (the prefix, e.g. ``qemu-aarch64 -L /usr/aarch64-linux-gnu`` or ``taskset -c 2,3``,
   wraps the harness), deletes the library, and turns the harness's reply into a
   ``MeasureResult``: COSTS -> NO_ERROR, a reference mismatch -> WRONG_ANSWER, a crash
   after loading -> RUNTIME_DEVICE, a library that does not load -> COMPILE_DEVICE, the
   deadline -> RUN_TIMEOUT;
4. ``close()`` removes this run's directory from every board. A runner the user never
   closes does it when it is garbage-collected or, at the latest, when the interpreter
   exits (``auto_schedule`` keeps a runner it was given open: one runner serves many
   tasks, and each task's files are uploaded once).

Boards form a pool measured concurrently, one candidate at a time per board (a board is
timed alone, as Ansor's measurer times one program at a time). A board whose connection
drops or stalls (``host``: keepalives and deadlines on every operation) is reconnected
once; if that fails, or the board fails again before it measured anything, it leaves the
pool, the candidate it held goes to the remaining boards (``max_retries`` times), and
tuning goes on. A board that answers but cannot do the work (``HostUnusable``: a directory
it cannot make, a copy that fails) leaves at once, and says why on stderr. A board that
left is tried again at the next ``run`` after ``reconnect_interval`` seconds. When no
board is left, the candidates get UNKNOWN_ERROR records that say so: nothing is dropped
from the log. All remote paths and arguments are quoted with ``shlex.quote``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import queue
import shlex
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ansor_py.measure.local import ENTRY_NAME, KernelArgument, reference_arguments
from ansor_py.measure.ssh.harness import HarnessBinary, build_harness, task_files
from ansor_py.measure.ssh.host import HostConnection, HostError, HostUnusable, SSHHost
from ansor_py.measure.ssh.remote_command import HarnessCall, harness_command, parse_reply
from ansor_py.measure.types import ERROR_COST, BuildResult, MeasureErrorNo, MeasureInput, MeasureResult
from codegen.llvm.toolchain import ToolchainError
from codegen.target import Target

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask
    from ir.layout_rewrite import LayoutRewrite

#: the default remote directory, relative to the board user's home
DEFAULT_REMOTE_DIR = ".cache/ansor_py"
#: seconds a remote command may take beyond its own timeout (network, process start)
COMMAND_SLACK_S = 15.0


class NoHostError(RuntimeError):
    """No board of the pool could be reached."""


@dataclass
class _Board:
    """One pool member: its connection and what has been uploaded to it in this run."""

    host: SSHHost
    connection: HostConnection
    alive: bool = False
    reason: str = ""
    left_at: float = 0.0
    harnesses: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    session_made: bool = False
    failures: int = 0  # connection losses since this board last measured a candidate


class _SessionCleanup:
    """Removes a runner's run directory from the boards that have it and disconnects them:
    called by ``close()``, when the runner is garbage-collected, and at interpreter exit
    (registered after paramiko's own exit hook, so it runs while connections still work).
    Holds the boards, never the runner."""

    def __init__(self, boards: list[_Board], session_dir: str):
        self.boards, self.session_dir = boards, session_dir

    def __call__(self) -> None:
        for board in self.boards:
            if board.alive and board.session_made:
                with contextlib.suppress(HostError):
                    board.connection.run(f"rm -rf {shlex.quote(self.session_dir)}", 30.0)
            board.connection.close()
            board.alive = False
            board.session_made = False
            board.harnesses.clear()
            board.tasks.clear()


def _collected(cleanup: _SessionCleanup) -> None:
    cleanup()
    atexit.unregister(cleanup)


class SSHRunner:
    """Measure candidates on one or more boards over SSH (module docstring).

    ``hosts``: ``SSHHost`` objects or ``"user@host:port"`` strings (then
    ``key_filename``, ``known_hosts`` and ``trust_on_first_use`` apply to them). ``number``,
    ``repeat``, ``min_repeat_ms``, ``timeout``, ``cooldown_interval`` and
    ``enable_cpu_cache_flush`` mean what they mean for ``LocalRunner``; ``flush_bytes`` is
    the buffer written to flush the board's caches (default 16 MiB, above the last-level
    cache of the boards Ansor targets). ``command_prefix`` wraps the harness on every host
    without its own; ``compiler`` is the C compiler for the harness (default
    ``codegen.llvm.toolchain.find_c_compiler``).
    """

    def __init__(
        self,
        hosts: Sequence[SSHHost | str],
        *,
        key_filename: str | None = None,
        known_hosts: str | None = None,
        trust_on_first_use: bool = False,
        number: int = 3,
        repeat: int = 1,
        min_repeat_ms: float = 100,
        timeout: float = 10,
        cooldown_interval: float = 0.0,
        enable_cpu_cache_flush: bool = False,
        flush_bytes: int = 16 << 20,
        command_prefix: str = "",
        compiler: str | Sequence[str] | None = None,
        remote_dir: str = DEFAULT_REMOTE_DIR,
        max_retries: int = 2,
        reconnect_interval: float = 60.0,
        openmp_settle_ms: float = 100.0,
    ):
        if isinstance(hosts, (str, SSHHost)) or not hosts:
            raise ValueError(
                f"SSHRunner: hosts must be a non-empty list of SSHHost or 'user@host:port', got {hosts!r}"
            )
        options = {
            "key_filename": key_filename,
            "known_hosts": known_hosts,
            "trust_on_first_use": trust_on_first_use,
        }
        parsed = [h if isinstance(h, SSHHost) else SSHHost.parse(h, **options) for h in hosts]
        for name, value, low in (
            ("number", number, 1),
            ("repeat", repeat, 1),
            ("max_retries", max_retries, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"SSHRunner: {name} {value!r} must be an integer >= {low}")
        for name, number_value in (
            ("timeout", timeout),
            ("min_repeat_ms", min_repeat_ms),
            ("cooldown_interval", cooldown_interval),
            ("flush_bytes", flush_bytes),
        ):
            if number_value < 0 or (name == "timeout" and number_value == 0):
                raise ValueError(
                    f"SSHRunner: {name} {number_value} must be {'> 0' if name == 'timeout' else '>= 0'}"
                )
        if enable_cpu_cache_flush:
            number, min_repeat_ms = 1, 0
        self.hosts = parsed
        self.number, self.repeat, self.min_repeat_ms = number, repeat, float(min_repeat_ms)
        self.timeout = float(timeout)
        self.cooldown_interval = float(cooldown_interval)
        self.enable_cpu_cache_flush = enable_cpu_cache_flush
        self.flush_bytes = int(flush_bytes)
        self.command_prefix = command_prefix
        self.compiler = compiler if compiler is None or isinstance(compiler, str) else tuple(compiler)
        self.remote_dir = remote_dir.rstrip("/")
        self.session_dir = f"{self.remote_dir}/run-{uuid.uuid4().hex[:12]}"
        self.max_retries = max_retries
        self.reconnect_interval = reconnect_interval
        self.openmp_settle_ms = openmp_settle_ms
        self._boards = [_Board(h, HostConnection(h)) for h in parsed]
        self._harnesses: dict[str, HarnessBinary] = {}
        self._task_ids: dict[str, int] = {}
        self._candidates = itertools.count()
        self._print_lock = threading.Lock()
        self._cleanup = _SessionCleanup(self._boards, self.session_dir)
        atexit.register(self._cleanup)
        weakref.finalize(self, _collected, self._cleanup).atexit = False

    # pool -------------------------------------------------------------------------------------
    @property
    def live_hosts(self) -> list[SSHHost]:
        return [b.host for b in self._boards if b.alive]

    def connect(self, force: bool = False) -> list[SSHHost]:
        """(Re)connect every board not in the pool (those that left less than
        ``reconnect_interval`` ago only with ``force``); the live hosts. Each failure is
        printed to stderr once, naming the host and the reason."""
        for board in self._boards:
            if board.alive:
                continue
            if board.left_at and not force and time.monotonic() - board.left_at < self.reconnect_interval:
                continue
            try:
                board.connection.connect()
            except HostError as error:
                self._leave(board, str(error))
                continue
            board.alive, board.reason, board.failures = True, "", 0
        return self.live_hosts

    def _leave(self, board: _Board, reason: str) -> None:
        board.connection.close()
        first = board.alive or not board.left_at
        board.alive, board.reason, board.left_at = False, reason, time.monotonic()
        board.harnesses.clear()
        board.tasks.clear()
        if first:
            self._say(f"\n[SSHRunner] {board.host} left the pool: {reason}\n")

    def _reasons(self) -> str:
        """Why each board is out of the pool, for error messages."""
        return "; ".join(f"{b.host}: {b.reason}" for b in self._boards)

    def _say(self, text: str) -> None:
        with self._print_lock:
            print(text, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Remove this run's files from every reachable board and disconnect (the runner
        may be used again: it reconnects)."""
        self._cleanup()

    def __enter__(self) -> SSHRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # measuring --------------------------------------------------------------------------------
    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: Callable[[int, MeasureResult], None] | None = None,
    ) -> list[MeasureResult]:
        """One MeasureResult per input, in order (``*`` / ``*E`` / ``*T`` per input).

        ``on_result(i, result)`` is called as soon as input ``i``'s result is final (in
        the order the boards finish, from the pool's threads, one call at a time), so a
        caller can record each measurement before the batch ends."""
        if len(inputs) != len(build_results):
            raise ValueError(f"SSHRunner.run: {len(inputs)} inputs but {len(build_results)} build results")
        results: list[MeasureResult | None] = [None] * len(inputs)
        result_lock = threading.Lock()

        def finish(index: int, result: MeasureResult) -> None:
            with result_lock:
                results[index] = result
                if on_result is not None:
                    on_result(index, result)

        todo = []
        for index, built in enumerate(build_results):
            if built.error_no is MeasureErrorNo.NO_ERROR:
                todo.append(index)
            else:
                finish(
                    index,
                    MeasureResult(
                        (ERROR_COST,), built.error_no, built.error_msg, built.time_cost, time.time()
                    ),
                )
                _progress("*E", verbose, self._print_lock)
        attempts = dict.fromkeys(todo, 0)
        if todo:
            self.connect()  # boards not yet connected, and those that left long enough ago
        while todo:
            boards = [b for b in self._boards if b.alive]
            if not boards:
                self.connect()
                boards = [b for b in self._boards if b.alive]
            if not boards:
                reasons = self._reasons()
                for index in todo:
                    finish(
                        index,
                        _error(
                            MeasureErrorNo.UNKNOWN_ERROR,
                            f"no SSH host left to measure on ({reasons})",
                            build_results[index],
                        ),
                    )
                    _progress("*E", verbose, self._print_lock)
                break
            lost = self._measure_pass(boards, todo, inputs, build_results, finish, verbose)
            todo = []
            for index, reason in lost:
                attempts[index] += 1
                if attempts[index] > self.max_retries:
                    finish(
                        index,
                        _error(
                            MeasureErrorNo.UNKNOWN_ERROR,
                            f"lost the SSH host while measuring, {attempts[index]} times (last: {reason})",
                            build_results[index],
                        ),
                    )
                    _progress("*E", verbose, self._print_lock)
                else:
                    todo.append(index)
        for built in build_results:
            if built.filename:
                Path(built.filename).unlink(missing_ok=True)
        return [r for r in results if r is not None]

    def _measure_pass(
        self,
        boards: list[_Board],
        todo: list[int],
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        finish: Callable[[int, MeasureResult], None],
        verbose: int,
    ) -> list[tuple[int, str]]:
        """Measure ``todo`` on ``boards`` concurrently, handing each result to ``finish``;
        the (index, reason) of candidates whose board was lost under them."""
        work: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in todo:
            work.put(index)
        lost: list[tuple[int, str]] = []

        def serve(board: _Board) -> None:
            while board.alive:
                try:
                    index = work.get_nowait()
                except queue.Empty:
                    return
                start = time.monotonic()
                try:
                    costs, error_no, message = self._measure_on(
                        board, inputs[index], build_results[index].filename
                    )
                except HostUnusable as error:  # reconnecting would not help: out at once
                    self._leave(board, str(error))
                    lost.append((index, str(error)))
                    continue
                except HostError as error:
                    board.failures += 1
                    if board.failures == 1 and self._reconnect(board, str(error)):
                        work.put(index)
                    else:
                        if board.alive:  # lost again right after reconnecting: not a blip
                            self._leave(board, f"{error} (again, after reconnecting)")
                        lost.append((index, str(error)))
                    continue
                board.failures = 0
                all_cost = build_results[index].time_cost + time.monotonic() - start
                finish(index, MeasureResult(costs, error_no, message, all_cost, time.time()))
                glyphs = {MeasureErrorNo.NO_ERROR: "*", MeasureErrorNo.RUN_TIMEOUT: "*T"}
                _progress(glyphs.get(error_no, "*E"), verbose, self._print_lock)
                if self.cooldown_interval > 0:
                    time.sleep(self.cooldown_interval)

        threads = [threading.Thread(target=serve, args=(b,), daemon=True) for b in boards]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        while not work.empty():  # every board left with work still queued
            lost.append((work.get_nowait(), "every board left the pool"))
        return lost

    def _reconnect(self, board: _Board, reason: str) -> bool:
        """After a lost connection: one reconnection attempt; False (board out) if it fails."""
        board.connection.close()
        board.harnesses.clear()
        board.tasks.clear()
        try:
            board.connection.connect()
            return True
        except HostError as error:
            self._leave(board, f"{reason}; reconnecting failed: {error}")
            return False

    def _measure_on(
        self, board: _Board, inp: MeasureInput, library: str
    ) -> tuple[tuple[float, ...], MeasureErrorNo, str]:
        """Measure one built candidate on ``board``; HostError if the board is lost."""
        try:
            harness = self._harness_on(board, inp.task.target)
        except ToolchainError as error:
            return (ERROR_COST,), MeasureErrorNo.UNKNOWN_ERROR, str(error)
        try:
            content = Path(library).read_bytes()
        except OSError as error:
            return (ERROR_COST,), MeasureErrorNo.UNKNOWN_ERROR, f"cannot read the built library: {error}"
        task_dir = self._task_on(board, inp.task, inp.task.layout_rewrite(inp.state))
        name = f"cand-{next(self._candidates)}.so"
        board.connection.write_files(self.session_dir, {name: content})
        return self._run_harness(board, harness, f"{self.session_dir}/{name}", f"{task_dir}/args.txt")

    def _run_harness(
        self, board: _Board, harness: HarnessBinary, library: str, args_file: str, out_dir: str | None = None
    ) -> tuple[tuple[float, ...], MeasureErrorNo, str]:
        """Run the harness on ``board``: timed with this runner's options and the library
        removed afterwards, or with ``out_dir`` once, untimed, its outputs written there."""
        timed = out_dir is None
        call = HarnessCall(
            harness=f"{self.remote_dir}/{harness.remote_name}",
            library=library,
            entry=ENTRY_NAME,
            args_file=args_file,
            number=self.number if timed else 0,
            repeat=self.repeat if timed else 0,
            min_repeat_ms=self.min_repeat_ms if timed else 0.0,
            flush_bytes=self.flush_bytes if timed and self.enable_cpu_cache_flush else 0,
            settle_ms=self.openmp_settle_ms if timed else 0.0,
            timeout=self.timeout,
            prefix=self._prefix(board),
            out_dir=out_dir,
        )
        done = board.connection.run(
            harness_command(call, remove_library=timed), self.timeout + COMMAND_SLACK_S
        )
        return parse_reply(done, str(board.host), self.timeout, call.repeat)

    def _prefix(self, board: _Board) -> str:
        return board.host.command_prefix if board.host.command_prefix is not None else self.command_prefix

    def _harness_on(self, board: _Board, target: Target) -> HarnessBinary:
        key = target.triple
        if key not in self._harnesses:
            self._harnesses[key] = build_harness(target, self.compiler)
        harness = self._harnesses[key]
        if harness.digest not in board.harnesses:
            remote = f"{self.remote_dir}/{harness.remote_name}"
            if not board.connection.exists(remote):
                board.connection.write_files(
                    self.remote_dir, {harness.remote_name: harness.path.read_bytes()}, 0o755
                )
            board.harnesses.add(harness.digest)
        return harness

    def _task_on(self, board: _Board, task: SearchTask, rewrite: LayoutRewrite | None = None) -> str:
        """The board's directory of the task's reference arguments, written on first use:
        one per task inputs (``reference_key``) and, under layout rewrite, per weight
        layout (a candidate reads its weights in the layout its tiles ask for)."""
        key = task.reference_key  # one workload with other task_inputs is another reference
        if rewrite is not None:
            key += f"#layout={rewrite.dag.workload_key()}"
        task_id = self._task_ids.setdefault(key, len(self._task_ids))
        directory = f"{self.session_dir}/task-{task_id}"
        if key not in board.tasks:
            board.connection.write_files(directory, task_files(reference_arguments(task, rewrite)))
            board.tasks.add(key)
            board.session_made = True
        return directory

    # running a finished kernel ----------------------------------------------------------------
    def run_library(
        self, library: str | Path, target: Target, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]
    ) -> None:
        """Run an exported kernel library once on the first live board: ``inputs`` and then
        ``outputs`` are its arguments, in order; the board's results are written into
        ``outputs`` (as a kernel call does in-process). Raises NoHostError or HostError."""
        if not any(b.alive for b in self._boards):
            self.connect(force=True)
        live = [b for b in self._boards if b.alive]
        if not live:
            raise NoHostError(f"SSHRunner.run_library: no SSH host reachable ({self._reasons()})")
        board = live[0]
        harness = self._harness_on(board, target)
        arguments = [KernelArgument("in", f"in{i}", np.ascontiguousarray(a)) for i, a in enumerate(inputs)]
        arguments += [
            KernelArgument("out", f"out{i}", np.ascontiguousarray(a)) for i, a in enumerate(outputs)
        ]
        directory = f"{self.session_dir}/call-{next(self._candidates)}"
        files = task_files(arguments)
        files["kernel.so"] = Path(library).read_bytes()
        board.connection.write_files(directory, files)
        board.session_made = True
        _, error_no, message = self._run_harness(
            board, harness, f"{directory}/kernel.so", f"{directory}/args.txt", out_dir=directory
        )
        if error_no is not MeasureErrorNo.NO_ERROR:
            raise HostError(f"{board.host}: running {library} failed ({error_no.name}): {message}")
        first_output = len(inputs)
        for position, array in enumerate(outputs):
            data = board.connection.read_file(f"{directory}/out_{first_output + position}.bin")
            array[...] = np.frombuffer(data, dtype=array.dtype).reshape(array.shape)
        board.connection.run(f"rm -rf {shlex.quote(directory)}", 30.0)


def _error(error_no: MeasureErrorNo, message: str, built: BuildResult) -> MeasureResult:
    return MeasureResult((ERROR_COST,), error_no, message, built.time_cost, time.time())


def _progress(text: str, verbose: int, lock: threading.Lock) -> None:
    if verbose >= 1:
        with lock:
            print(text, end="", flush=True)
