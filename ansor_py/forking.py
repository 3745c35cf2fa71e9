"""The processes the tuner starts: whether it may fork, how a child starts, how it dies.

The builder (one process per candidate) and the feature workers fork from the tuning
process, and the runner's child (``measure/run_worker.py``) is started from it. Three
rules hold for all of them:

* **No child outlives the tuner.** A child asks the kernel to kill it when its parent
  dies (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; elsewhere a thread watches the
  parent's pid), so a tuner killed with ``kill -9`` leaves no worker behind, whatever the
  worker was doing (compiling, extracting features, running a kernel that hangs).
* **A child closes the parent's pipe ends it inherited.** The tuner's end of each pipe
  is registered with ``parent_only``; a forked child closes its copies first thing. A
  worker that kept its own pipe's read end open would block forever writing rows nobody
  reads once the tuner is gone, and one that kept the runner child's stdin open would
  keep that child waiting for requests.
* **The inherited heap is not collected.** The tuning process's heap holds the search's
  programs, caches and the cost model (hundreds of MB). A full collection in the child
  would walk every inherited object, slow in itself and copying each page it touches
  (copy-on-write); ``gc.freeze`` moves them out of the collector's reach.

``exit_on_sigterm`` makes SIGTERM of the tuner an orderly exit (``SystemExit``), so the
runner's and builder's temporary directories are removed as on a normal exit.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

#: ``<linux/prctl.h>``: the signal this process gets when its parent dies
PR_SET_PDEATHSIG = 1
#: seconds between two looks at the parent's pid where ``prctl`` is missing (not Linux)
PARENT_WATCH_INTERVAL_S = 0.5


class _PipeEnd(Protocol):
    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


_End = TypeVar("_End", bound=_PipeEnd)
#: the tuner's ends of its pipes to its children (see ``parent_only``)
_PARENT_ONLY: weakref.WeakSet[Any] = weakref.WeakSet()


def can_fork() -> bool:
    """Whether this process may fork workers: the platform forks, and this is not itself a
    daemonic multiprocessing worker (those may not have children)."""
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def parent_only(end: _End) -> _End:
    """Register ``end`` (a ``Connection`` or file object this process keeps of a pipe to a
    child) as the parent's: every child forked later closes its copy in
    ``start_forked_child``. Register before forking the child the pipe leads to, so that it
    closes its copy of the other end too. Returns ``end``."""
    _PARENT_ONLY.add(end)
    return end


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` (None off Linux); resolved once, in the parent."""
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def die_with_parent(parent_pid: int) -> bool:
    """Have the kernel SIGKILL this process when its parent ``parent_pid`` dies (Linux
    ``PR_SET_PDEATHSIG``); exit at once if the parent is already gone (it died before the
    request took effect, so the signal would never come). False where ``prctl`` is missing.

    The signal comes when the *thread* that forked this process exits: start children
    from the thread that outlives them (the tuner's main thread)."""
    prctl = _libc_prctl()
    if prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG, SIGKILL) failed: {os.strerror(error)}")
    if os.getppid() != parent_pid:
        os._exit(1)
    return prctl is not None


def dies_with_this_process() -> Callable[[], object]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child dies with this process (the
    death signal is kept across ``exec``)."""
    _libc_prctl()  # resolve it here: between fork and exec the child should do little
    return functools.partial(die_with_parent, os.getpid())


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_WATCH_INTERVAL_S)
    os._exit(1)


def start_forked_child() -> None:
    """Call first thing in a forked child (a ``multiprocessing`` "fork" process): die with
    the parent, close the parent's pipe ends (``parent_only``), take SIGTERM's default
    action (not a handler the tuner installed), and stop collecting inherited objects."""
    parent = multiprocessing.parent_process()
    parent_pid = parent.pid if parent is not None and parent.pid is not None else os.getppid()
    if not die_with_parent(parent_pid):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    for end in list(_PARENT_ONLY):
        if not end.closed:
            end.close()
    _PARENT_ONLY.clear()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM raises ``SystemExit(143)`` in the main thread, as Ctrl-C
    raises KeyboardInterrupt: ``finally`` blocks and context managers run, and the exit
    handlers remove the temporary directories, where SIGTERM's default action would leave
    them. The previous handler is put back afterwards. Nothing changes outside the main
    thread (only it may set handlers) or where the program installed its own handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
