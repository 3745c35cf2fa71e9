"""``benchmarks/network_tuning.py``'s tuning clock and curve points: the time of the
final re-measurement, written once ``tune`` returns, counts in the curve's last point."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from network_tuning import TuneOutcome, TuningClock, curve_points, progress_path, read_progress


class Progress:
    """The scheduler's progress as the clock reads it (``SchedulerProgress``)."""

    def __init__(self, total_trials: int):
        self.total_trials = total_trials
        self.best_costs: list[float] = []
        self.task_weights: list[float] = []
        self.cur_score = 0.012


def test_finish_adds_the_time_after_the_last_round(tmp_path: Path):
    log = tmp_path / "net.json"
    clock = TuningClock(progress_path(log), offset_s=100.0)
    clock.post_tune(Progress(40), 0)
    clock.post_tune(Progress(80), 1)
    clock.finish(Progress(80))
    rows = read_progress(progress_path(log))
    assert [trials for trials, _ in rows] == [40, 80, 80]
    assert all(seconds >= 100.0 for _, seconds in rows)


def test_curve_points_take_the_first_line_reaching_them_and_the_last_for_the_whole_log(tmp_path: Path):
    log = tmp_path / "net.json"
    progress_path(log).write_text("10\t5.0\t-\n20\t9.0\t-\n40\t20.0\t-\n40\t31.0\t-\n")
    outcome = TuneOutcome(log, tasks=2, trials=40, resumed=0, run_s=31.0, total_s=31.0)
    points = curve_points(outcome, budget=40)
    assert [(p.trials, p.tuning_s) for p in points] == [(4, 5.0), (10, 5.0), (20, 9.0), (40, 31.0)]
