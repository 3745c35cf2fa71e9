"""``ansor_py.timing``: repeats and interleaved turns are timed as documented."""

from __future__ import annotations

import time

import pytest

from ansor_py.timing import median_seconds, time_interleaved, time_repeats


def test_time_repeats_grows_number_until_a_repeat_lasts_min_repeat_ms() -> None:
    calls = []
    samples = time_repeats(lambda: calls.append(1), number=1, repeat=3, min_repeat_ms=2.0)
    assert len(samples) == 3 and all(s > 0 for s in samples)
    assert len(calls) > 1 + 3  # the warm-up, then more than one call per repeat
    assert median_seconds(lambda: time.sleep(1e-3), number=1, repeat=3) >= 1e-3


def test_time_interleaved_takes_turns_and_keeps_every_round() -> None:
    order: list[str] = []

    def slow() -> None:
        time.sleep(2e-3)
        order.append("c")

    fns = [lambda: order.append("a"), lambda: order.append("b"), slow]
    samples = time_interleaved(fns, number=1, repeat=3, min_repeat_ms=1.0, pause_s=0.0)
    assert [len(kept) for kept in samples] == [3, 3, 3]
    assert all(s > 0 for kept in samples for s in kept)
    assert min(samples[2]) >= 2e-3 > max(samples[0])  # each sample is its own callable's
    # warm-up and calibration of each in turn, then rounds of a's, b's and c's calls in turn
    runs = [letter for i, letter in enumerate(order) if i == 0 or order[i - 1] != letter]
    assert runs == ["a", "b", "c"] + ["a", "b", "c"] * 3


def test_timing_refuses_bad_counts() -> None:
    with pytest.raises(ValueError, match=r"time_interleaved: number \(0\) and repeat \(1\) must be >= 1"):
        time_interleaved([lambda: None], number=0, repeat=1)
    with pytest.raises(ValueError, match="time_interleaved: pause_s -1 must be >= 0"):
        time_interleaved([lambda: None], pause_s=-1)
    with pytest.raises(ValueError, match=r"time_repeats: number \(3\) and repeat \(0\) must be >= 1"):
        time_repeats(lambda: None, repeat=0)
