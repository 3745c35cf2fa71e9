"""Wall-clock timing of callables, the way benchmarks quote it: every repeat kept.

Each repeat runs a callable ``number`` times and records the mean; callers quote the
median of the repeats (the machine is shared and noisy). One warm-up call is discarded.
``time_interleaved`` times several callables taking turns (a, b, c, a, b, c, ...), so that
a burst of load on the machine falls on all of them alike instead of on whichever ran
during it; a pause before each turn lets the previous callable's worker threads (OpenMP,
OpenBLAS) stop spinning on the cores the next one needs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

#: ``number`` stops growing here, whatever ``min_repeat_ms`` asks
MAX_NUMBER = 1 << 20


def _check(who: str, number: int, repeat: int) -> None:
    if number < 1 or repeat < 1:
        raise ValueError(f"{who}: number ({number}) and repeat ({repeat}) must be >= 1")


def _one_repeat(fn: Callable[[], object], number: int, min_repeat_ms: float) -> tuple[float, int]:
    """(seconds per call, the ``number`` used) of one repeat: ``number`` calls, doubled until
    they last at least ``min_repeat_ms``."""
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed * 1e3 >= min_repeat_ms or number >= MAX_NUMBER:
            return elapsed / number, number
        number *= 2


def time_repeats(
    fn: Callable[[], object], number: int = 3, repeat: int = 5, min_repeat_ms: float = 0.0
) -> list[float]:
    """Seconds per call for each of ``repeat`` repeats (after one warm-up call).

    ``number`` grows until a repeat lasts at least ``min_repeat_ms``.
    """
    _check("time_repeats", number, repeat)
    fn()
    results = []
    for _ in range(repeat):
        seconds, number = _one_repeat(fn, number, min_repeat_ms)
        results.append(seconds)
    return results


def median_seconds(
    fn: Callable[[], object], number: int = 3, repeat: int = 5, min_repeat_ms: float = 0.0
) -> float:
    return statistics.median(time_repeats(fn, number, repeat, min_repeat_ms))


def time_interleaved(
    fns: Sequence[Callable[[], object]],
    number: int = 3,
    repeat: int = 5,
    min_repeat_ms: float = 0.0,
    pause_s: float = 0.0,
) -> list[list[float]]:
    """Seconds per call of each of ``fns`` for each of ``repeat`` rounds: ``result[i][r]``
    is ``fns[i]`` in round r. Each callable is called once to warm up and its ``number``
    grown until a repeat lasts ``min_repeat_ms`` (then kept); each round times one repeat
    of every callable in turn, sleeping ``pause_s`` before each."""
    _check("time_interleaved", number, repeat)
    if pause_s < 0:
        raise ValueError(f"time_interleaved: pause_s {pause_s} must be >= 0")
    numbers = []
    for fn in fns:
        fn()
        numbers.append(_one_repeat(fn, number, min_repeat_ms)[1])
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, calls, kept in zip(fns, numbers, samples, strict=True):
            time.sleep(pause_s)
            kept.append(_one_repeat(fn, calls, 0.0)[0])
    return samples
