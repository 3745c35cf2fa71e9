"""Pinning the worker threads of libgomp's team, once per process, for the networks run in it.

Each kernel of a network opens an OpenMP parallel region (``GOMP_parallel``) and its
team's threads spin for a while after it, then sleep. A network called after a pause
(a served model between requests) first wakes them. An unpinned worker can be woken on
the caller's CPU and wait behind the caller, which spins at the region's barrier until
the scheduler moves one of them: milliseconds added to a call that otherwise takes one
(``benchmarks/after_idle.py`` times it). The measurement child avoids this with ``OMP_PROC_BIND``
(``ansor_py.measure.worker_process``); in the caller's process that variable would
also pin the caller's own thread to one CPU, and every thread it starts later (another
runtime's pool) would inherit that one CPU.

So only the workers are pinned: thread ``t > 0`` of the default-size team to the
``t``-th CPU (modulo their count) of the process's affinity set, from inside one
parallel region; the calling thread keeps its mask. Nothing is pinned when the
process may use one CPU, when the user set ``OMP_PROC_BIND``, ``OMP_PLACES`` or
``GOMP_CPU_AFFINITY`` (libgomp then places the threads as told; ``OMP_PROC_BIND=false``
turns the pinning off), or when libgomp cannot be loaded. A team of another size
started later in the process gets new, unpinned threads for the extra places. An
exported library's C entry (``network_entry.c``) pins the same way on its first run.
"""

from __future__ import annotations

import ctypes
import os
import threading

#: environment variables by which the user decides where libgomp's threads run
USER_PLACEMENT = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY")

_REGION_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_lock = threading.Lock()
_state: dict[str, object] = {}


def pin_team_workers() -> bool:
    """Pin the team's worker threads (module docstring), once per process; True when they
    are pinned by this call or an earlier one, False when the rules leave them alone."""
    with _lock:
        if "pinned" in _state:
            return bool(_state["pinned"])
        _state["pinned"] = pinned = _pin()
        return pinned


def _pin() -> bool:
    if any(name in os.environ for name in USER_PLACEMENT):
        return False
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return False
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        return False
    thread_num = gomp.omp_get_thread_num
    thread_num.restype = ctypes.c_int
    region = gomp.GOMP_parallel
    region.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    region.restype = None

    def body(_data: int | None) -> None:
        thread = thread_num()
        if thread > 0:
            os.sched_setaffinity(0, {cpus[thread % len(cpus)]})  # 0: the calling thread

    callback = _REGION_BODY(body)
    _state["callback"] = callback  # libgomp may keep the pointer; keep the closure alive
    region(ctypes.cast(callback, ctypes.c_void_p), None, 0, 0)  # 0 threads: the default team
    return True
