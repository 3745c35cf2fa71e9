"""The task scheduler (Ansor paper section 6).

Synthetic tasks first: three matmuls whose measured latency follows a known curve of the
task's trial number. ``CurvePolicy`` proposes distinct programs (splits of the matmul's
loops) and ``CurveRunner`` times program n of a task as ``curve(n)``, nothing compiled; the
measurer, the records and the scheduler are the real ones. On them: the gradient strategy
gives the rounds to the task that cuts the (weighted, or custom) objective most, dead
tasks stop, round robin is fair, a log restores the state and foreign records warn once.

Then real tuning of a two-task network (``extract_tasks`` of a small MLP, LocalBuilder and
LocalRunner): a run resumed from its log rebuilds the state and measures no program twice,
also after ``kill -9`` in the middle of a run.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from process_tools import group_members, wait_until

from ansor_py.cost_model import RandomModel, XGBModel
from ansor_py.measure.measurer import ProgramMeasurer
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.graph import Graph, Node
from ansor_py.network.tasks import extract_tasks
from ansor_py.network.types import TensorType
from ansor_py.records import RecordToFile, load_records, parse_record, save_records
from ansor_py.search.search_policy import SearchPolicy
from ansor_py.search.sketch_policy import SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler import (
    ForeignRecordsWarning,
    LogEstimatedLatency,
    PrintTableInfo,
    TaskScheduler,
)
from ansor_py.task_scheduler.gradient import (
    backward_gradient,
    chain_gradient,
    derive_similarity_tag,
    forward_gradient,
)
from ansor_py.task_scheduler.policies import make_search_policies
from ansor_py.task_scheduler.restore import read_task_log
from ansor_py.tuning import TuningOptions
from ansor_py.workload_registry import register_workload
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState
from ir.topi.workloads import gemm

ROOT = Path(__file__).resolve().parents[2]


@register_workload
def task_scheduler_matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


def matmul_task(n: int, target: str = "llvm") -> SearchTask:
    return SearchTask(func=task_scheduler_matmul, args=(n, 32, 32), target=target, desc=f"matmul {n}x32x32")


# ------------------------------------------------------------------------------------------
# synthetic tasks: known latency curves, nothing compiled

Curve = Callable[[int], float]


def program(task: SearchTask, n: int) -> LoopState:
    """The n-th distinct program of a matmul task: its i and j loops split by factors
    1 + n % 32 and 1 + n // 32."""
    s = get_init_state(task.compute_dag)
    i, j, _ = s["C"].iters
    s.split("C", i, [1 + n % 32])
    s.split("C", j, [1 + n // 32])
    return s.loop_state


class CurvePolicy(SearchPolicy):
    """Proposes the task's programs in order, at most ``limit`` of them (then its search
    space is exhausted), and has the measurer measure them."""

    def __init__(self, task: SearchTask, limit: int = 1024):
        super().__init__(task, verbose=0)
        self.proposed = 0
        self.limit = limit

    def continue_search_one_round(
        self, num_measure: int, measurer: ProgramMeasurer
    ) -> tuple[list[MeasureInput], list[MeasureResult]]:
        count = min(num_measure, self.limit - self.proposed)
        inputs = [
            MeasureInput(self.search_task, program(self.search_task, self.proposed + k)) for k in range(count)
        ]
        self.proposed += count
        return inputs, measurer.measure(self.search_task, self, inputs) if inputs else []

    def search(
        self,
        num_measure_trials: int,
        early_stopping: int | None = None,
        num_measures_per_round: int = 64,
        measurer: ProgramMeasurer | None = None,
    ) -> LoopState | None:
        assert measurer is not None
        while self.proposed < min(num_measure_trials, self.limit):
            self.continue_search_one_round(num_measures_per_round, measurer)
        return measurer.best_state.get(self.search_task.workload_key)


class CurveBuilder:
    """Builds nothing: every program 'compiles'."""

    n_parallel = 4
    timeout = 10.0

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        return [BuildResult("", MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class CurveRunner:
    """Times the n-th program measured of a task (n from 1) as ``curves[key](n)`` seconds."""

    timeout = 10.0

    def __init__(self, curves: dict[str, Curve], done: dict[str, int] | None = None):
        self.curves = curves
        self.counts: Counter[str] = Counter(done or {})  # programs measured before

    def run(self, inputs, build_results, verbose=1, on_result=None):  # type: ignore[no-untyped-def]
        results = []
        for index, inp in enumerate(inputs):
            key = inp.task.workload_key
            self.counts[key] += 1
            result = MeasureResult(
                (self.curves[key](self.counts[key]),), MeasureErrorNo.NO_ERROR, "", 0.0, 1.0
            )
            if on_result is not None:
                on_result(index, result)
            results.append(result)
        return results


def steep(n: int) -> float:
    """10 ms falling towards 1 ms over about 100 trials."""
    return 1e-3 * (1.0 + 9.0 * 0.97**n)


def flat(latency: float) -> Curve:
    return lambda n: latency


TASKS = [matmul_task(16), matmul_task(24), matmul_task(40)]


def tune_synthetic(
    curves: list[Curve],
    trials: int,
    per_round: int = 8,
    log: Path | None = None,
    limits: Sequence[int] | None = None,
    per_task_early_stopping: int | None = None,
    **scheduler_args: object,
) -> TaskScheduler:
    scheduler_args.setdefault("callbacks", [])
    scheduler = TaskScheduler(TASKS[: len(curves)], **scheduler_args)  # type: ignore[arg-type]
    runner = CurveRunner({task.workload_key: curve for task, curve in zip(TASKS, curves)})
    options = TuningOptions(
        num_measure_trials=trials,
        num_measures_per_round=per_round,
        verbose=0,
        builder=CurveBuilder(),
        runner=runner,  # type: ignore[arg-type]
        measure_callbacks=[RecordToFile(log)] if log else [],
        remeasure_top_k=0,
    )
    limits = limits or [1024] * len(curves)
    policies = [CurvePolicy(task, limit) for task, limit in zip(TASKS, limits)]
    scheduler.tune(options, search_policy=policies, per_task_early_stopping=per_task_early_stopping)
    return scheduler


def test_gradient_gives_the_rounds_to_the_task_that_cuts_the_objective_most():
    """A task at 0.1 ms cuts a sum of latencies little whatever is done to it; the task
    falling from 10 ms to 1 ms gets the rounds (the flat task gets its warm-up and a few
    rounds of its optimistic forward estimate, g / t)."""
    scheduler = tune_synthetic([steep, flat(1e-4)], trials=240, eps_greedy=0.0, seed=0)
    trials = scheduler.task_trials
    assert sum(trials) == 240 and scheduler.ct == 240
    assert trials[0] >= 200 and trials[1] <= 40, trials
    assert scheduler.best_costs[0] == pytest.approx(steep(trials[0]))
    assert scheduler.cur_score == pytest.approx(sum(scheduler.best_costs))
    # against a flat task as slow as the steep one ends, the improving one still leads
    even = tune_synthetic([steep, flat(1e-3)], trials=240, eps_greedy=0.0, seed=0)
    assert even.task_trials[0] > even.task_trials[1] >= 8, even.task_trials


def test_weights_steer_the_rounds_to_the_heavier_task():
    """Same curves, one task weighing 10: it cuts the weighted sum 10x as fast."""
    light_first = tune_synthetic([steep, steep], trials=160, task_weights=[1, 10], eps_greedy=0.0, seed=0)
    heavy_first = tune_synthetic([steep, steep], trials=160, task_weights=[10, 1], eps_greedy=0.0, seed=0)
    assert light_first.task_trials[1] > 2 * light_first.task_trials[0], light_first.task_trials
    assert heavy_first.task_trials[0] > 2 * heavy_first.task_trials[1], heavy_first.task_trials
    costs = light_first.best_costs
    assert light_first.cur_score == pytest.approx(costs[0] + 10 * costs[1])


def test_a_custom_objective_is_what_the_scheduler_minimizes():
    """The objective reads task 1 only: after the warm-up, every round goes to task 1."""
    scheduler = tune_synthetic(
        [steep, steep], trials=96, objective_func=lambda costs: 3.0 * costs[1], eps_greedy=0.0, seed=0
    )
    assert scheduler.task_trials == [8, 88]
    assert scheduler.cur_score == pytest.approx(3.0 * steep(88))


def test_eps_greedy_gives_a_starved_task_random_rounds():
    greedy = tune_synthetic([steep, flat(1e-4)], trials=400, eps_greedy=0.0, seed=1)
    explore = tune_synthetic([steep, flat(1e-4)], trials=400, eps_greedy=0.5, seed=1)
    assert greedy.task_trials[1] <= 40
    assert explore.task_trials[1] >= greedy.task_trials[1] + 24, (greedy.task_trials, explore.task_trials)


def test_dead_tasks_stop_and_the_rest_gets_the_budget():
    """Task 1 never improves after its first program: with per-task early stopping at 16
    trials it dies after its third round (24 - 1 > 16 trials without improvement); task 2
    has 12 programs in all: its search is exhausted when a round finds none."""
    scheduler = tune_synthetic(
        [steep, flat(5e-3), steep],
        trials=200,
        limits=[1024, 1024, 12],
        per_task_early_stopping=16,
        strategy="round-robin",
    )
    assert scheduler.dead_tasks == {1, 2}
    assert scheduler.task_trials[1] == 24 and scheduler.task_trials[2] == 12
    assert scheduler.task_trials[0] == 200 - 36


def test_all_tasks_dead_ends_tuning_before_the_budget():
    scheduler = tune_synthetic([flat(1e-3), flat(2e-3)], trials=400, per_task_early_stopping=8)
    assert scheduler.dead_tasks == {0, 1}
    assert scheduler.task_trials == [16, 16] and scheduler.ct == 32


def test_round_robin_is_fair():
    scheduler = tune_synthetic([steep, flat(1e-3), flat(9e-3)], trials=96, strategy="round-robin")
    assert scheduler.task_trials == [32, 32, 32]
    assert scheduler.task_cts == [4, 4, 4]


def test_the_global_early_stopping_ends_a_run_that_no_longer_improves():
    scheduler = TaskScheduler(TASKS[:2], callbacks=[], strategy="round-robin")
    options = TuningOptions(
        num_measure_trials=400,
        num_measures_per_round=8,
        early_stopping=32,
        verbose=0,
        builder=CurveBuilder(),
        runner=CurveRunner({TASKS[0].workload_key: flat(1e-3), TASKS[1].workload_key: flat(1e-3)}),  # type: ignore[arg-type]
    )
    scheduler.tune(options, search_policy=[CurvePolicy(t) for t in TASKS[:2]])
    assert scheduler.ct == 16 + 32  # warm-up, then 32 trials without improvement


def test_gradient_terms():
    weights = [2.0, 5.0]

    def objective(costs: Sequence[float]) -> float:
        return sum(w * c for w, c in zip(weights, costs))

    assert chain_gradient(objective, [1e-3, 4e-3], 1) == pytest.approx(5.0)
    assert chain_gradient(lambda c: max(c), [1e-3, 4e-3], 0) == pytest.approx(0.0)
    assert backward_gradient([9.0, 6.0, 5.0, 3.0], rounds=4, window=3) == pytest.approx((3.0 - 9.0) / 3)
    assert backward_gradient([9.0, 6.0], rounds=2, window=3) == 0.0
    # without peers: g / t; with a peer 4x as fast per FLOP: beta * C / V
    assert forward_gradient(8e-3, rounds=4, flop_ct=1e6, group_best_flops=None, beta=2) == pytest.approx(
        -2e-3
    )
    assert forward_gradient(8e-3, 4, 1e6, group_best_flops=1e6 / 1e-3, beta=2) == pytest.approx(2e-3 - 8e-3)


def test_similarity_tags_group_tasks_of_one_kind_and_size():
    small, same, big = (matmul_task(n).compute_dag for n in (16, 17, 64))
    assert derive_similarity_tag(small) == derive_similarity_tag(same)
    assert derive_similarity_tag(small).startswith("matmul_")
    assert derive_similarity_tag(big) != derive_similarity_tag(small)
    scheduler = TaskScheduler([matmul_task(16), matmul_task(17), matmul_task(64)], callbacks=[])
    assert sorted(map(sorted, scheduler.group_task_ids.values())) == [[0, 1], [2]]


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="strategy 'greedy'"):
        TaskScheduler(TASKS, strategy="greedy", callbacks=[])
    with pytest.raises(ValueError, match="2 task weights for 3 tasks"):
        TaskScheduler(TASKS, task_weights=[1, 2], callbacks=[])
    with pytest.raises(ValueError, match="given as more than one task"):
        TaskScheduler([TASKS[0], matmul_task(16)], callbacks=[])
    with pytest.raises(ValueError, match="num_measure_trials 2 is too small for 3 tasks"):
        TaskScheduler(TASKS, callbacks=[]).tune(TuningOptions(num_measure_trials=2), search_policy="default")
    with pytest.raises(ValueError, match=r"search_policy 'sketch\.gbm'"):
        TaskScheduler(TASKS, callbacks=[]).tune(
            TuningOptions(num_measure_trials=30), search_policy="sketch.gbm"
        )


# ------------------------------------------------------------------------------------------
# the log: resuming, foreign records, the progress table


def test_a_log_restores_the_state_round_by_round(tmp_path: Path):
    log = tmp_path / "log.json"
    # a log that does not exist yet: nothing restored, as the first run of a resumable job
    first = tune_synthetic(
        [steep, flat(3e-3), steep], trials=120, log=log, task_weights=[1, 2, 3], seed=2, load_log_file=log
    )
    assert first.restored_trials == 0 and first.task_trials[1] >= 8
    resumed = TaskScheduler(TASKS, task_weights=[1, 2, 3], load_log_file=log, callbacks=[])
    assert resumed.restored_trials == 120
    resumed.restore(8)
    assert resumed.task_trials == first.task_trials
    assert resumed.task_cts == first.task_cts
    assert resumed.best_costs == first.best_costs
    assert [s.history for s in resumed.states] == [s.history for s in first.states]
    assert [s.best_trial for s in resumed.states] == [s.best_trial for s in first.states]
    assert resumed.cur_score == pytest.approx(first.cur_score)
    # with another round size, trials and best latencies are still exact
    other = TaskScheduler(TASKS, load_log_file=log, callbacks=[])
    other.restore(5)
    assert other.task_trials == first.task_trials and other.best_costs == first.best_costs


def test_records_of_another_network_or_target_are_ignored_with_one_warning(tmp_path: Path):
    log = tmp_path / "log.json"
    tune_synthetic([steep, steep], trials=32, log=log)
    foreign_task = matmul_task(48)  # another workload
    arm_task = matmul_task(16, target="llvm -mtriple=aarch64-linux-gnu")  # a task's workload, another target
    for task, count in ((foreign_task, 3), (arm_task, 2)):
        inputs = [MeasureInput(task, program(task, n)) for n in range(count)]
        save_records(log, inputs, [MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR)] * count)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler = TaskScheduler(TASKS[:2], load_log_file=log, callbacks=[])
    foreign = [w for w in caught if issubclass(w.category, ForeignRecordsWarning)]
    assert len(foreign) == 1, [str(w.message) for w in caught]
    message = str(foreign[0].message)
    assert "ignoring 5 record(s)" in message and str(log) in message
    assert f"3 of workload {foreign_task.workload_key} for target 'llvm'" in message
    assert f"2 of workload {arm_task.workload_key} for target 'llvm -mtriple=aarch64-linux-gnu'" in message
    assert scheduler.restored_trials == 32


def test_the_table_and_the_latency_log(tmp_path: Path):
    tsv = tmp_path / "total_latency.tsv"
    tsv.write_text("old content\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        scheduler = TaskScheduler(TASKS[:2], callbacks=[PrintTableInfo(), LogEstimatedLatency(tsv)])
        options = TuningOptions(
            num_measure_trials=32,
            num_measures_per_round=8,
            verbose=1,
            builder=CurveBuilder(),
            runner=CurveRunner({TASKS[0].workload_key: steep, TASKS[1].workload_key: flat(2e-3)}),  # type: ignore[arg-type]
        )
        scheduler.tune(options, search_policy=[CurvePolicy(t) for t in TASKS[:2]])
    text = out.getvalue()
    assert "|  ID  |" in text and "| Latency (ms) | Speed (GFLOPS) | Trials |" in text
    assert text.count("[ Task Scheduler ]") == 4  # one table before each round
    # the last table: both tasks measured, task 1 at 2 ms; 16384 FLOPs x 2 / 2 ms
    last = text.rsplit("[ Task Scheduler ]", 1)[1]
    flop = TASKS[1].compute_dag.flop_ct
    row = re.search(r"\|\s+1 \|\s+matmul 24x32x32 \|\s+([\d.]+) \|\s+([\d.]+) \|\s+(\d+) \|", last)
    assert row is not None, last
    assert row.group(1) == "2.000" and float(row.group(2)) == pytest.approx(flop / 2e-3 / 1e9, abs=0.01)
    lines = tsv.read_text().splitlines()
    assert len(lines) == 4 and "old content" not in tsv.read_text()
    fields = lines[-1].split("\t")
    assert fields[0] == "ElapsedTime(s)" and fields[2] == "EstimatedLatency(ms)" and fields[4] == "Trials"
    assert float(fields[3]) == pytest.approx(scheduler.cur_score * 1e3, abs=1e-3) and fields[5] == "32"


# ------------------------------------------------------------------------------------------
# real tuning of a small network


def small_mlp() -> Graph:
    """x [1, 32] -> dense 32 + bias + relu -> dense 16 + bias: two tasks."""
    rng = np.random.default_rng(0)
    constants = {
        "w0": rng.uniform(-1, 1, (32, 32)).astype(np.float32),
        "b0": rng.uniform(-1, 1, (32,)).astype(np.float32),
        "w1": rng.uniform(-1, 1, (16, 32)).astype(np.float32),
        "b1": rng.uniform(-1, 1, (16,)).astype(np.float32),
    }
    nodes = [
        Node("dense", ("x", "w0"), ("d0",), {}, name="d0"),
        Node("add", ("d0", "b0"), ("a0",), {}, name="a0"),
        Node("relu", ("a0",), ("r0",), {}, name="r0"),
        Node("dense", ("r0", "w1"), ("d1",), {}, name="d1"),
        Node("add", ("d1", "b1"), ("y",), {}, name="y"),
    ]
    return Graph({"x": TensorType((1, 32))}, nodes, ["y"], constants, name="small_mlp")


SMALL_SEARCH = {"evolutionary_search_population": 48, "sample_init_min_population": 8}


def record_keys(log: Path) -> list[tuple[str, tuple]]:
    """(workload key, steps) of every whole record line of ``log``."""
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    return [(r.workload_key, r.steps) for r in map(parse_record, filter(str.strip, lines))]


def best_in_log(log: Path, key: str) -> float:
    lines = log.read_text().split("\n")[:-1]
    costs = [r.result.median_cost for r in map(parse_record, lines) if r.workload_key == key and r.result.ok]
    return min(costs) if costs else math.inf


def resume_and_check(
    log: Path, tasks: list[SearchTask], weights: list[int], trials: int, first: TaskScheduler | None = None
) -> TaskScheduler:
    """Resume from ``log`` with ``trials`` more: the restored state is the log's (and that
    of the scheduler ``first`` that wrote it, when given), and no program is measured twice."""
    before = record_keys(log)
    scheduler = TaskScheduler(tasks, weights, load_log_file=log, callbacks=[], seed=5)
    assert scheduler.restored_trials == len(before)
    scheduler.restore(4)
    per_task = Counter(key for key, _ in before)
    assert scheduler.task_trials == [per_task[t.workload_key] for t in tasks]
    assert scheduler.best_costs == [best_in_log(log, t.workload_key) for t in tasks]
    if first is not None:
        assert scheduler.task_trials == first.task_trials and scheduler.best_costs == first.best_costs
        assert scheduler.task_cts == first.task_cts
        assert [s.history for s in scheduler.states] == [s.history for s in first.states]
    options = TuningOptions(  # no re-measuring: every line of the log is then one trial
        num_measure_trials=trials,
        num_measures_per_round=4,
        verbose=0,
        measure_callbacks=[RecordToFile(log)],
        remeasure_top_k=0,
    )
    scheduler.tune(options, search_policy_params=SMALL_SEARCH)
    after = record_keys(log)
    assert len(after) == len(before) + trials == scheduler.total_trials
    twice = [key for key, count in Counter(after).items() if count > 1]
    assert not twice, f"{len(twice)} program(s) measured twice"
    return scheduler


@pytest.mark.slow
def test_real_tuning_resumes_from_its_log_without_measuring_twice(tmp_path: Path):
    tasks, weights = extract_tasks(small_mlp())
    assert len(tasks) == 2
    log = tmp_path / "log.json"
    first = TaskScheduler(tasks, weights, callbacks=[], seed=3)
    options = TuningOptions(
        num_measure_trials=16,
        num_measures_per_round=4,
        verbose=0,
        measure_callbacks=[RecordToFile(log)],
        remeasure_top_k=0,
    )
    first.tune(options, search_policy_params=SMALL_SEARCH)
    assert first.ct == 16 and sum(first.task_trials) == 16
    assert all(cost < 1.0 for cost in first.best_costs), first.best_costs
    # one cost model, shared by the tasks' policies, warm for one round of each task and
    # trained on every task's records
    assert first.search_policies is not None
    models = {id(policy.program_cost_model) for policy in first.search_policies}  # type: ignore[attr-defined]
    assert len(models) == 1
    model = first.search_policies[0].program_cost_model  # type: ignore[attr-defined]
    assert isinstance(model, XGBModel) and model.num_warmup_sample == 2 * 4
    assert {inp.task.workload_key for inp in model.inputs} == {t.workload_key for t in tasks}
    assert len(model.inputs) == 16
    resumed = resume_and_check(log, tasks, weights, trials=8, first=first)
    assert resumed.search_policies is not None
    assert len(resumed.search_policies[0].program_cost_model.inputs) == 16 + 8  # type: ignore[attr-defined]
    assert resumed.task_trials[0] >= first.task_trials[0] and resumed.task_trials[1] >= first.task_trials[1]
    assert all(r <= f for r, f in zip(resumed.best_costs, first.best_costs))


TUNER_SCRIPT = """
import sys

from ansor_py.records import RecordToFile
from ansor_py.network.tasks import extract_tasks
from ansor_py.task_scheduler import TaskScheduler
from ansor_py.task_scheduler.policies import make_search_policies
from ansor_py.task_scheduler.restore import read_task_log
from ansor_py.tuning import TuningOptions
from test_task_scheduler import SMALL_SEARCH, small_mlp

tasks, weights = extract_tasks(small_mlp())
scheduler = TaskScheduler(tasks, weights, callbacks=[], seed=7)
options = TuningOptions(
    num_measure_trials=int(sys.argv[2]), num_measures_per_round=4, verbose=2,
    measure_callbacks=[RecordToFile(sys.argv[1])],
    remeasure_top_k=0,
)
scheduler.tune(options, search_policy_params=SMALL_SEARCH)
print("TUNING DONE", flush=True)
"""

#: progress glyphs of the measurer: "." per program built, "*" per program measured
PROGRESS_LINE = re.compile(r"^[.*ET]+$", re.MULTILINE)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_tuning_then_resume(tmp_path: Path):
    log = tmp_path / "log.json"
    script = tmp_path / "tune.py"
    script.write_text(TUNER_SCRIPT)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(Path(__file__).parent)]),
        OMP_NUM_THREADS="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-u", str(script), str(log), "32"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    chunks: list[bytes] = []
    killed = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 1 << 16):
            chunks.append(chunk)
            measured = sum(line.count("*") for line in PROGRESS_LINE.findall(b"".join(chunks).decode()))
            if measured >= 10 and not killed.is_set():  # in the third round (rounds of 4)
                os.kill(process.pid, signal.SIGKILL)
                killed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert killed.wait(120), "no kill: " + b"".join(chunks).decode(errors="replace")
        assert process.wait(30) == -signal.SIGKILL
        assert wait_until(lambda: not group_members(process.pid), 15), "processes left after kill -9"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    reader.join(10)
    output = b"".join(chunks).decode(errors="replace")
    assert "TUNING DONE" not in output
    measured = sum(line.count("*") for line in PROGRESS_LINE.findall(output))
    records = record_keys(log)
    assert len(records) >= measured >= 10
    tasks, weights = extract_tasks(small_mlp())
    start = time.monotonic()
    resumed = resume_and_check(log, tasks, weights, trials=8)
    assert time.monotonic() - start < 60
    assert resumed.restored_trials == len(records)


def test_the_policies_share_one_model_and_know_the_logged_programs(tmp_path: Path):
    log = tmp_path / "log.json"
    tune_synthetic([steep, steep], trials=32, log=log)
    task_log = read_task_log(log, TASKS[:2])
    random_policies = make_search_policies("sketch.random", None, TASKS[:2], 8, 0, None, None, False, 0)
    assert all(isinstance(p, SketchPolicy) for p in random_policies)
    assert isinstance(random_policies[0].program_cost_model, RandomModel)  # type: ignore[attr-defined]
    policies = make_search_policies("default", {"eps_greedy": 0.1}, TASKS[:2], 8, 0, None, task_log, False, 0)
    models = [p.program_cost_model for p in policies]  # type: ignore[attr-defined]
    assert models[0] is models[1] and isinstance(models[0], XGBModel)
    assert models[0].num_warmup_sample == 16 and len(models[0].inputs) == 32  # trained on the log
    # the gradient strategy's split of the 32 trials may vary (eps-greedy picks at random)
    assert sum(len(records) for records in task_log.records) == 32
    for policy, task, records in zip(policies, TASKS[:2], task_log.records):
        assert isinstance(policy, SketchPolicy) and policy.params.eps_greedy == 0.1
        assert len(records) >= 8 and len(policy.measured_states_set) == len(records)
        assert str(program(task, 0)) in policy.measured_states_set


def test_a_task_that_stopped_improving_in_the_log_is_dead_when_resumed(tmp_path: Path):
    log = tmp_path / "log.json"
    tune_synthetic([steep, flat(2e-3)], trials=64, log=log, strategy="round-robin")
    resumed = TaskScheduler(TASKS[:2], load_log_file=log, callbacks=[], strategy="round-robin")
    options = TuningOptions(
        num_measure_trials=32,
        num_measures_per_round=8,
        verbose=0,
        builder=CurveBuilder(),
        runner=CurveRunner(  # type: ignore[arg-type]
            {TASKS[0].workload_key: steep, TASKS[1].workload_key: flat(2e-3)},
            done={TASKS[0].workload_key: 32, TASKS[1].workload_key: 32},
        ),
    )
    # task 1's best is its first program: 31 trials without improvement > 16
    resumed.tune(options, search_policy=[CurvePolicy(t) for t in TASKS[:2]], per_task_early_stopping=16)
    assert resumed.dead_tasks == {1}
    assert resumed.task_trials == [32 + 32, 32] and resumed.ct == 32


def test_a_similar_task_that_never_reaches_its_peers_speed_leaves_the_group():
    """matmul 16 and 17 share a tag; 17 stays 100x slower per FLOP than 16. Its forward
    estimate (reach 16's speed within beta) keeps the rounds coming until it was tuned
    more than 5 rounds more than its peer, when it leaves the group."""
    tasks = [matmul_task(16), matmul_task(17)]
    scheduler = TaskScheduler(tasks, callbacks=[], eps_greedy=0.0, seed=0)
    assert scheduler.group_task_ids == {scheduler.task_tags[0]: [0, 1]}
    options = TuningOptions(
        num_measure_trials=160,
        num_measures_per_round=8,
        verbose=0,
        builder=CurveBuilder(),
        runner=CurveRunner({tasks[0].workload_key: flat(1e-5), tasks[1].workload_key: flat(1e-3)}),  # type: ignore[arg-type]
    )
    scheduler.tune(options, search_policy=[CurvePolicy(t) for t in tasks])
    assert scheduler.task_tags[1] == "" and list(scheduler.group_task_ids.values()) == [[0]]
    assert scheduler.task_trials == [8, 152]


@pytest.mark.slow
def test_the_baseline_schedules_are_measured_first_and_once(tmp_path: Path):
    """``baseline_schedules``: each task's default schedule is its first trial, so the
    tuned best is never slower than it; a resumed run finds it in the log and does not
    measure it again; the final re-measurement times it again beside the best."""
    tasks, weights = extract_tasks(small_mlp())
    baselines = {t.workload_key: default_schedule(t.compute_dag, t.target).transform_steps for t in tasks}
    log = tmp_path / "log.json"

    def tune(trials: int, remeasure_top_k: int = 0) -> TaskScheduler:
        scheduler = TaskScheduler(
            tasks, weights, load_log_file=log, callbacks=[], seed=2, baseline_schedules=default_schedule
        )
        options = TuningOptions(
            num_measure_trials=trials,
            num_measures_per_round=2,
            verbose=0,
            measure_callbacks=[RecordToFile(log)],
            remeasure_top_k=remeasure_top_k,
            remeasure_repeat=2,
        )
        scheduler.tune(options, search_policy_params=SMALL_SEARCH)
        return scheduler

    first = tune(6)
    records = list(load_records(log, tasks=tasks))
    assert first.ct == 6 == len(records)
    firsts = {}
    for inp, _ in records:
        firsts.setdefault(inp.task.workload_key, inp.state.transform_steps)
    assert firsts == baselines  # each task's first record is its baseline
    for i, task in enumerate(tasks):
        baseline_cost = min(
            res.median_cost
            for inp, res in records
            if inp.task.workload_key == task.workload_key
            and inp.state.transform_steps == baselines[task.workload_key]
        )
        assert first.best_costs[i] <= baseline_cost

    second = tune(4)
    after = list(load_records(log, tasks=tasks))
    assert second.ct == 4 and len(after) == 10
    steps = Counter((inp.task.workload_key, inp.state.transform_steps) for inp, _ in after)
    assert all(count == 1 for count in steps.values()), "a program was measured twice"

    # the final re-measurement times each task's baseline beside its best program
    tune(len(tasks), remeasure_top_k=1)
    records = load_records(log, tasks=tasks)
    lines = Counter((inp.task.workload_key, inp.state.transform_steps) for inp, _ in records)
    counts = {key: lines[key, baseline] for key, baseline in baselines.items()}
    assert all(count >= 2 for count in counts.values()), counts
