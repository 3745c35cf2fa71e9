"""The parent's handle on the runner child (``run_worker.py``): start, ask, wait, kill.

A request is one JSON line; replies are JSON lines read with a deadline. When the child
dies (a kernel segfaulted or aborted) the reader sees end-of-file and reports the signal
with the tail of the child's log (its stderr); when the deadline passes (a kernel hangs)
the child is killed. Either way the handle is dead and ``LocalRunner`` starts a new one.

The child dies with the tuner (``forking.dies_with_this_process``): a tuner killed while a
kernel hangs leaves no runner behind. Its pipes' parent ends are ``forking.parent_only``,
so the tuner's forked workers close their copies, and the child sees end-of-file on its
stdin once the tuner is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from ansor_py.forking import dies_with_this_process, parent_only

#: the child's script, run by path so the child imports numpy and ctypes only
WORKER_SCRIPT = Path(__file__).with_name("run_worker.py")
#: seconds the child may take to start (import numpy) and answer "ready"
START_TIMEOUT = 60.0
#: OpenMP settings of the child unless the tuner's environment sets them: one thread per
#: core, each bound to its core, as TVM's runtime binds its thread pool. Unbound, a woken
#: thread was often placed on its waker's core, and two spinning threads sharing a core
#: wait for each other in whole scheduler ticks (``benchmarks/results/cold_measurement.md``).
OPENMP_BINDING = {"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"}


def worker_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: this process's, with ``OPENMP_BINDING`` as defaults and
    ``extra`` over both."""
    env = dict(os.environ)
    for key, value in OPENMP_BINDING.items():
        env.setdefault(key, value)
    env.update(extra or {})
    return env


class WorkerDied(Exception):
    """The child exited while a request was outstanding; ``phases`` lists the progress
    replies it sent before dying (``"loaded"`` means the kernel was running)."""

    def __init__(self, message: str, phases: list[str]):
        super().__init__(message)
        self.phases = phases


class WorkerTimeout(Exception):
    """No final reply before the deadline; the child has been killed."""


class WorkerProcess:
    """One live child. ``request`` sends a message and returns its final reply."""

    def __init__(
        self, log_path: Path, argv: list[str] | None = None, env: Mapping[str, str] | None = None
    ):
        """Start ``argv`` (default: ``run_worker.py``), a child that speaks this protocol:
        a ``{"ready": true}`` line first, then one reply line per request line. ``env``:
        variables set in the child beside ``worker_environment``'s."""
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            argv or [sys.executable, "-u", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            close_fds=True,
            env=worker_environment(env),
            preexec_fn=dies_with_this_process(),
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        parent_only(self.process.stdin)
        parent_only(self.process.stdout)
        self._fd = self.process.stdout.fileno()
        self._buffer = b""
        self.loaded_tasks: set[int] = set()
        ready = self._read_reply(time.monotonic() + START_TIMEOUT, [])
        if not ready.get("ready"):
            self.close()
            raise WorkerDied(f"runner child sent {ready!r} instead of ready", [])

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, message: dict[str, Any], timeout: float) -> tuple[dict[str, Any], list[str]]:
        """Send ``message``; return (final reply, progress phases seen before it).

        Raises WorkerDied or WorkerTimeout (after killing the child)."""
        deadline = time.monotonic() + timeout
        phases: list[str] = []
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            death = self._death_message()
            self.close()
            raise WorkerDied(death, phases) from None
        while True:
            reply = self._read_reply(deadline, phases)
            if "phase" in reply:
                phases.append(str(reply["phase"]))
                continue
            return reply, phases

    def _read_reply(self, deadline: float, phases: list[str]) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise WorkerTimeout()
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                self.process.wait()
                message = self._death_message()
                self.close()
                raise WorkerDied(message, phases)
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _death_message(self) -> str:
        code = self.process.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"killed by {name} ({signal.strsignal(-code)})"
        else:
            how = f"exited with status {code}"
        tail = self.log_tail()
        return f"runner child {how}" + (f"; its last output:\n{tail}" if tail else "")

    def log_tail(self, nbytes: int = 2000) -> str:
        self._log.flush()
        try:
            data = self.log_path.read_bytes()[-nbytes:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def close(self) -> None:
        """Kill the child (if alive) and release its pipes and log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()
        if not self._log.closed:
            self._log.close()
