"""What every forked worker of the tuner shares: whether it may fork, and how it starts.

The builder (one process per candidate) and the feature workers fork from the tuning
process, whose heap holds the search's programs, caches and the cost model (hundreds of
MB). A forked child that allocates runs Python's cyclic collector, and a full collection
walks every object it inherited: slow in itself, and each object it touches has its page
copied (copy-on-write). ``start_forked_child`` moves the inherited objects out of the
collector's reach (``gc.freeze``), so the child collects only what it creates and its
collector copies none of the inherited pages.
"""

from __future__ import annotations

import gc
import multiprocessing


def can_fork() -> bool:
    """Whether this process may fork workers: the platform forks, and this is not itself a
    daemonic multiprocessing worker (those may not have children)."""
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def start_forked_child() -> None:
    """Call first thing in a forked child: the objects inherited from the parent are never
    garbage here, so the collector stops walking them (their pages stay shared)."""
    gc.freeze()
