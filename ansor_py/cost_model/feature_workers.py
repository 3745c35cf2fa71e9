"""Feature extraction on several cores: forked workers extract rows the search will need.

The search scores whole generations (2048 programs) with the cost model, and extracting
their features (lowering each program, then one walk of its loop nest) is Python work of
about a millisecond per program; Ansor runs it on a thread pool (TVM ``parallel_for`` in
``feature.cc``). Python threads would share one core, so this module forks processes:

- ``extract_in_workers`` cuts one batch into ``n_workers`` contiguous parts: forked
  processes extract all but the first, which this process extracts meanwhile;
- ``FeaturePrefetcher`` extracts *ahead of need*: the search hands it each chunk of new
  programs as it breeds them, one worker at a time extracts what has been handed in while
  the search goes on breeding, and ``collect`` puts the rows into the cost model's
  FeatureCache before the model predicts. On two cores, breeding and extraction overlap.

A forked worker starts with this process's memory, so the programs are not copied or
pickled going out (they hold the DAG's operations, which do not pickle); only the
numpy rows come back. A worker that dies or sends nothing within ``WORKER_TIMEOUT_S`` has
its part extracted here instead, so a failure costs time, never a result. Every row
depends on its own program only, so the rows are the same as one process would make.
A worker dies with this process and closes its copy of the pipe's read end
(``forking.start_forked_child``): were the tuner killed, a worker still holding that end
would block forever writing rows nobody reads.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import numpy as np

from ansor_py.cost_model.features import FeatureCache, extract_rows, feature_cache_keys
from ansor_py.forking import can_fork, parent_only, start_forked_child
from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.search_task import SearchTask
    from ir.lower.bound import BoundCache

#: a part smaller than this is not worth a fork (whose cost grows with the heap)
MIN_STATES_PER_WORKER = 64
#: seconds to wait for a worker's rows once this process needs them
WORKER_TIMEOUT_S = 120.0

_Key = tuple[str, ...]
_Rows = list[np.ndarray | None]
#: a forked worker and the end of the pipe its rows come through
_Worker = tuple[multiprocessing.process.BaseProcess, Connection]


def default_workers() -> int:
    """The CPUs this process may run on (1 where it cannot fork workers)."""
    if not can_fork():
        return 1
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process is allowed
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def extract_in_workers(
    states: Sequence[LoopState],
    task: SearchTask,
    max_n_bufs: int,
    n_workers: int,
    bound_cache: BoundCache | None = None,
) -> _Rows:
    """``extract_rows(states, task, max_n_bufs, bound_cache)``, the work shared by up to
    ``n_workers`` processes (this one included; a forked worker reads its copy of
    ``bound_cache``)."""
    parts = min(n_workers, len(states) // MIN_STATES_PER_WORKER)
    if parts < 2 or not can_fork():
        return extract_rows(states, task, max_n_bufs, bound_cache)
    bounds = [len(states) * p // parts for p in range(parts + 1)]
    chunks = [states[bounds[p] : bounds[p + 1]] for p in range(parts)]
    workers = [_fork(chunk, task, max_n_bufs, bound_cache) for chunk in chunks[1:]]
    rows = extract_rows(chunks[0], task, max_n_bufs, bound_cache)
    for worker, chunk in zip(workers, chunks[1:], strict=True):
        received = _receive(worker, len(chunk), WORKER_TIMEOUT_S)
        rows.extend(received if received is not None else extract_rows(chunk, task, max_n_bufs, bound_cache))
    return rows


class FeaturePrefetcher:
    """Rows extracted ahead of need by one forked worker at a time (module docstring).

    ``submit`` queues programs not yet in the cache; whenever no worker is busy and at
    least ``MIN_STATES_PER_WORKER`` programs wait, a worker is forked for all of them.
    ``collect`` waits for the busy worker, puts the rows received into the cache and
    forgets what is still queued (the caller extracts those itself, as it does programs
    that cannot be lowered: they get no rows here).
    """

    def __init__(self, max_n_bufs: int):
        self.max_n_bufs = max_n_bufs
        self._task: SearchTask | None = None
        self._bound_cache: BoundCache | None = None
        self._queue: dict[_Key, LoopState] = {}
        self._busy: tuple[_Worker, list[_Key]] | None = None
        self._received: list[tuple[list[_Key], _Rows]] = []
        #: workers forked so far, and programs handed to them
        self.forked = 0
        self.prefetched = 0

    def submit(
        self,
        task: SearchTask,
        states: Sequence[LoopState],
        cache: FeatureCache,
        bound_cache: BoundCache | None = None,
    ) -> None:
        """Queue ``states`` of ``task`` (those not in ``cache``); fork a worker if none is
        busy. ``bound_cache``: the search's bound-inference results, read by the worker."""
        if task is not self._task:
            self._queue.clear()  # programs of another task: their predict call extracts them
            self._task = task
        self._bound_cache = bound_cache
        for key, state in zip(feature_cache_keys(states, task, self.max_n_bufs), states, strict=True):
            if key not in self._queue and key not in cache:
                self._queue[key] = state
        if self._busy is not None:
            (process, receiver), _ = self._busy
            if not receiver.poll(0) and process.is_alive():
                return
            self._take_busy()
        if len(self._queue) >= MIN_STATES_PER_WORKER and can_fork():
            worker = _fork(list(self._queue.values()), task, self.max_n_bufs, self._bound_cache)
            self._busy = (worker, list(self._queue))
            self.forked += 1
            self.prefetched += len(self._queue)
            self._queue.clear()

    def collect(self, cache: FeatureCache) -> None:
        """Wait for the busy worker and put every row received into ``cache``."""
        if self._busy is not None:
            self._take_busy()
        for keys, rows in self._received:
            for key, row in zip(keys, rows, strict=True):
                if row is not None:
                    cache.put(key, row)
        self._received.clear()
        self._queue.clear()

    def _take_busy(self) -> None:
        assert self._busy is not None
        worker, keys = self._busy
        self._busy = None
        rows = _receive(worker, len(keys), WORKER_TIMEOUT_S)
        if rows is not None:
            self._received.append((keys, rows))


# ------------------------------------------------------------------------------------------
# one worker


def _fork(
    states: Sequence[LoopState], task: SearchTask, max_n_bufs: int, bound_cache: BoundCache | None = None
) -> _Worker:
    """A forked process extracting the rows of ``states`` and sending them back."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    parent_only(receiver)  # the worker closes its copy: see the module docstring
    # the child flushes its copy of our stdio buffers when it exits: empty them first
    sys.stdout.flush()
    sys.stderr.flush()
    process = context.Process(target=_work, args=(sender, states, task, max_n_bufs, bound_cache), daemon=True)
    process.start()
    sender.close()
    return process, receiver


def _work(
    sender: Connection,
    states: Sequence[LoopState],
    task: SearchTask,
    max_n_bufs: int,
    bound_cache: BoundCache | None,
) -> None:
    """A worker's body: extract, send, exit (an exception exits it with status 1)."""
    start_forked_child()
    sender.send(extract_rows(states, task, max_n_bufs, bound_cache))
    sender.close()


def _receive(worker: _Worker, count: int, timeout: float) -> _Rows | None:
    """The ``count`` rows the worker sends, or None if it died or sent nothing in time
    (the caller then extracts them itself); the worker is reaped either way."""
    process, receiver = worker
    rows: _Rows | None = None
    try:
        if receiver.poll(timeout):
            rows = receiver.recv()
    except (EOFError, OSError):
        rows = None  # the worker died before sending: its exit status says why
    finally:
        receiver.close()
        process.join(timeout=1.0)
        if process.is_alive():
            process.kill()
            process.join()
    return rows if rows is not None and len(rows) == count else None
