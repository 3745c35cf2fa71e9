"""Looking at processes through ``/proc`` (Linux), for tests that kill a tuner and check
that nothing it started is left: which processes descend from a pid or share its process
group, and whether a process seen earlier still runs (a zombie does not; a pid reused by
another process does not count as the one seen)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """The fields of ``/proc/<pid>/stat`` these tests need; ``start`` (clock ticks since
    boot) tells a process from a later one with the same pid."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start: int
    command: str


def process_info(pid: int) -> ProcessInfo | None:
    """The process ``pid`` as ``/proc`` shows it, None when there is none."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid pgrp session tty tpgid flags ... starttime" (man 5 proc);
    # comm may hold spaces and parentheses: it ends at the last ')'
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    command = head.partition("(")[2]
    return ProcessInfo(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[19]), command)


def all_processes() -> list[ProcessInfo]:
    infos = (process_info(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [info for info in infos if info is not None]


def running(info: ProcessInfo) -> bool:
    """Whether the process seen as ``info`` still runs (neither gone, nor a zombie, nor
    replaced by another process with its pid)."""
    now = process_info(info.pid)
    return now is not None and now.start == info.start and now.state not in "ZXx"


def descendants(pid: int) -> list[ProcessInfo]:
    """The running processes below ``pid`` in the process tree."""
    children: dict[int, list[ProcessInfo]] = {}
    for info in all_processes():
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcessInfo] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.state not in "ZXx":
                found.append(child)
                todo.append(child.pid)
    return found


def group_members(pgid: int) -> list[ProcessInfo]:
    """The running processes of process group ``pgid``."""
    return [info for info in all_processes() if info.pgid == pgid and info.state not in "ZXx"]


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def kill_if_running(info: ProcessInfo) -> None:
    """SIGKILL the process seen as ``info`` if it still runs (a test's cleanup)."""
    if running(info):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
