"""Wall-clock timing of a callable, the way benchmarks quote it: every repeat kept.

Each repeat runs the callable ``number`` times and records the mean; callers quote the
median of the repeats (the machine is shared and noisy). One warm-up call is discarded.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_repeats(
    fn: Callable[[], object], number: int = 3, repeat: int = 5, min_repeat_ms: float = 0.0
) -> list[float]:
    """Seconds per call for each of ``repeat`` repeats (after one warm-up call).

    ``number`` grows until a repeat lasts at least ``min_repeat_ms``.
    """
    if number < 1 or repeat < 1:
        raise ValueError(f"time_repeats: number ({number}) and repeat ({repeat}) must be >= 1")
    fn()
    results = []
    for _ in range(repeat):
        while True:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - start
            if elapsed * 1e3 >= min_repeat_ms or number >= 1 << 20:
                break
            number *= 2
        results.append(elapsed / number)
    return results


def median_seconds(
    fn: Callable[[], object], number: int = 3, repeat: int = 5, min_repeat_ms: float = 0.0
) -> float:
    return statistics.median(time_repeats(fn, number, repeat, min_repeat_ms))
