"""How fast the search scores candidates, and one search round beside measuring its picks.

The search runs in Python, so its hot paths (replaying steps, bound inference, feature
extraction, prediction) must keep a round of Ansor's evolutionary search (paper section
5.1: population 2048, 4 generations) cheaper than measuring the 64 programs it picks.
For GEMM 1024 (``gemm(1024, 1024, 1024)``) and the ResNet-50 conv2d
(``conv2d_layer(1, 56, 56, 64, 64, 3, 1, 1, layout="NHWC")``) this script prints:

1. candidates per second of each hot path, separately: *sampling* (a random sketch through
   the init rules, then bound inference), *mutation + bound inference* (a parent of the
   sampled population, a mutation rule drawn by TVM's weights, then bound inference),
   *feature extraction* (``get_per_store_features_from_states`` on the fresh children, no
   feature cache, the policy's bound cache as the search passes it; in one process, then
   in the model's ``feature_workers`` processes),
   *prediction* (``XGBModel.predict`` with every feature row cached, so only the trees
   run) and *end to end* (mutation, bound inference, features and prediction of a new
   batch, cold caches);
2. the wall time of one full search round: a fresh ``SketchPolicy`` with the trained
   ``XGBModel`` (past its warm-up), the log's programs preloaded as measured states,
   ``search_one_round`` and the eps-greedy pick of 64 programs, with the cost model's
   feature cache emptied first; the CPU time it took (this process, and the forked
   feature workers, which extract while this process breeds); and how many candidates
   the round scored per second;
3. the wall time to measure those 64 programs with ``ProgramMeasurer``, ``LocalBuilder()``
   and ``LocalRunner()`` (their defaults), and the ratio round time / measure time (the
   goal: below 1).

The cost model is trained on real measurements: the first run tunes each workload for
``--train-programs`` trials (``LocalBuilder``/``LocalRunner``, records appended to a log
under ``--work-dir``); later runs read the log. The benchmark's own measurements are not
recorded. Times are medians of ``--runs`` runs; on a shared 2-core machine quote the
ratios, absolute numbers move +-30%.

    python benchmarks/search_speed.py [--workloads GMM C2D] [--runs 3] [--work-dir DIR]
        [--population 2048] [--iters 4] [--train-programs 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ansor_py as ansor
from ansor_py.cost_model import XGBModel
from ansor_py.cost_model.feature_extraction import get_per_store_features_from_states
from ansor_py.cost_model.features import FeatureCache
from ansor_py.measure.measurer import ProgramMeasurer
from ansor_py.measure.types import MeasureInput, MeasureResult
from ansor_py.records import load_task_records
from ansor_py.search import PreloadMeasuredStates, SketchPolicy
from ansor_py.search.evolution import fewer_collections
from ansor_py.search.init_rules import apply_init_rules, ensure_bound
from ansor_py.search.stage_queries import has_nested_parallel
from ir.loop_state.state import LoopState
from ir.lower.bound import BoundCache
from ir.te import Tensor
from ir.topi.workloads import conv2d_layer, gemm

DEFAULT_WORK_DIR = Path(__file__).resolve().parent / "out" / "search_speed"
#: programs measured per round, as in tuning (TuningOptions.num_measures_per_round)
MEASURES_PER_ROUND = 64
#: population of the search rounds that collect the training records (their quality
#: does not matter, only that they are real measurements of varied programs)
TRAIN_POPULATION = 512

WORKLOADS: dict[str, tuple[str, Callable[[], list[Tensor]]]] = {
    "GMM": ("gemm(1024, 1024, 1024)", lambda: gemm(1024, 1024, 1024)),
    "C2D": (
        "conv2d_layer(1, 56, 56, 64, 64, 3, 1, 1, NHWC)",
        lambda: conv2d_layer(1, 56, 56, 64, 64, 3, 1, 1, layout="NHWC"),
    ),
}


class BenchmarkError(RuntimeError):
    """The training log cannot bring the cost model past its warm-up, or similar."""


# ------------------------------------------------------------------------------------------
# training records and the model


def collect_training_records(task: ansor.SearchTask, log: Path, args: argparse.Namespace) -> None:
    """Tune ``task`` until ``log`` holds ``args.train_programs`` of its records."""
    inputs, _ = load_task_records(log, task)
    remaining = args.train_programs - len(inputs)
    if remaining < 2:
        return
    print(f"  collecting training records: measuring {remaining} programs into {log}", flush=True)
    callbacks = [PreloadMeasuredStates(str(log))] if inputs else []
    policy = SketchPolicy(
        task,
        XGBModel(),
        params={"evolutionary_search_population": TRAIN_POPULATION},
        seed=args.seed + 1000,
        verbose=0,
        init_search_callbacks=callbacks,
    )
    options = ansor.TuningOptions(
        num_measure_trials=remaining,
        num_measures_per_round=MEASURES_PER_ROUND,
        verbose=0,
        measure_callbacks=[ansor.RecordToFile(str(log))],
    )
    start = time.perf_counter()
    ansor.auto_schedule(task, options, search_policy=policy)
    print(f"  collected in {time.perf_counter() - start:.0f} s", flush=True)


def trained_model(task: ansor.SearchTask, log: Path) -> XGBModel:
    """An XGBModel trained on the task's records in ``log``, past its warm-up."""
    inputs, results = load_task_records(log, task)
    model = XGBModel(seed=0)
    model.update(inputs, results)
    if model.predicts_at_random:
        raise BenchmarkError(
            f"training log {log} holds {len(inputs)} records of the task; the cost model needs more "
            f"than {model.num_warmup_sample} (raise --train-programs)"
        )
    return model


class CountingModel:
    """Delegates to a cost model and counts the states it is asked to score."""

    def __init__(self, model: XGBModel):
        self.model = model
        self.scored = 0

    def predict(
        self, task: ansor.SearchTask, states: Sequence[LoopState], bound_cache: BoundCache | None = None
    ) -> np.ndarray:
        self.scored += len(states)
        return self.model.predict(task, states, bound_cache)

    def update(self, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        self.model.update(inputs, results)


def fresh_policy(
    task: ansor.SearchTask, model: Any, log: Path, args: argparse.Namespace, seed: int
) -> SketchPolicy:
    """A SketchPolicy of the benchmark's size, the log's programs preloaded as measured."""
    return SketchPolicy(
        task,
        model,
        params={
            "evolutionary_search_population": args.population,
            "evolutionary_search_num_iters": args.iters,
        },
        seed=seed,
        verbose=0,
        init_search_callbacks=[PreloadMeasuredStates(str(log))],
    )


# ------------------------------------------------------------------------------------------
# the hot paths, one at a time


@dataclass
class PhaseRun:
    """Candidates per second of each hot path in one run."""

    sampling: float
    mutation_bind: float
    features: float
    features_workers: float
    prediction: float
    end_to_end: float


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def sample(policy: SketchPolicy, count: int) -> tuple[list[LoopState], float]:
    """``count`` random programs (init rules, then bound inference): the valid ones and
    the seconds taken."""
    sketches = policy.generate_sketches()
    picks = policy.rng.integers(len(sketches), size=count)
    start = time.perf_counter()
    valid = []
    for pick in picks:
        state = apply_init_rules(policy, sketches[int(pick)], policy.init_rules, policy.rng)
        if state is not None:
            bound = ensure_bound(policy, state)
            if bound is not None and not has_nested_parallel(bound):
                valid.append(bound)
    return valid, time.perf_counter() - start


def mutate(policy: SketchPolicy, parents: Sequence[LoopState], count: int) -> tuple[list[LoopState], float]:
    """``count`` mutation attempts on random parents (rules drawn by weight), each child
    bound-inferred: the valid children and the seconds taken."""
    rules = policy.mutation_rules
    weights = np.array([rule.weight for rule in rules]) / sum(rule.weight for rule in rules)
    parent_ids = policy.rng.integers(len(parents), size=count)
    rule_ids = policy.rng.choice(len(rules), size=count, p=weights)
    start = time.perf_counter()
    children = []
    for parent, rule in zip(parent_ids, rule_ids, strict=True):
        child = rules[int(rule)].apply(policy, parents[int(parent)], policy.rng)
        child = ensure_bound(policy, child) if child is not None else None
        if child is not None and not has_nested_parallel(child):
            children.append(child)
    return children, time.perf_counter() - start


def distinct(states: Sequence[LoopState]) -> list[LoopState]:
    seen: dict[str, LoopState] = {}
    for state in states:
        seen.setdefault(str(state), state)
    return list(seen.values())


def time_phases(
    task: ansor.SearchTask, model: XGBModel, log: Path, args: argparse.Namespace, seed: int
) -> PhaseRun:
    """Each hot path on its own, under the garbage-collector setting the search uses."""
    with fewer_collections():
        return _time_phases(task, model, log, args, seed)


def _time_phases(
    task: ansor.SearchTask, model: XGBModel, log: Path, args: argparse.Namespace, seed: int
) -> PhaseRun:
    policy = fresh_policy(task, model, log, args, seed)
    population, sample_s = sample(policy, args.population)
    if not population:
        raise BenchmarkError(f"no valid program among {args.population} sampled for {task.workload_key}")
    children, mutate_s = mutate(policy, population, args.population)
    children = distinct(children)

    # both with the policy's bound cache, as the search extracts them; the workers first:
    # what they add to their copies of the cache (bound inference of programs bind
    # skipped) stays in them, while a run here would leave it for the next
    bound_cache = policy.state_cache.bound_cache
    start = time.perf_counter()
    get_per_store_features_from_states(
        children, task, n_workers=model.feature_workers, bound_cache=bound_cache
    )
    features_workers_s = time.perf_counter() - start
    start = time.perf_counter()
    get_per_store_features_from_states(children, task, bound_cache=bound_cache)
    features_s = time.perf_counter() - start

    model.feature_cache = FeatureCache()
    model.predict(task, children, bound_cache)  # fills the cache: the timed call below only runs the trees
    start = time.perf_counter()
    model.predict(task, children, bound_cache)
    predict_s = time.perf_counter() - start

    # end to end on a new batch, every cache cold: mutation, bound inference, features, trees
    model.feature_cache = FeatureCache()
    policy = fresh_policy(task, model, log, args, seed + 1)
    start = time.perf_counter()
    batch, _ = mutate(policy, population, args.population)
    batch = distinct(batch)
    model.predict(task, batch, policy.state_cache.bound_cache)
    end_s = time.perf_counter() - start
    return PhaseRun(
        sampling=rate(args.population, sample_s),
        mutation_bind=rate(args.population, mutate_s),
        features=rate(len(children), features_s),
        features_workers=rate(len(children), features_workers_s),
        prediction=rate(len(children), predict_s),
        end_to_end=rate(args.population, end_s),
    )


# ------------------------------------------------------------------------------------------
# one round beside measuring its picks


@dataclass
class RoundRun:
    round_s: float
    #: CPU seconds of the round: this process, and the feature workers it forked
    round_cpu_s: float
    workers_cpu_s: float
    scored: int
    picked: int
    measure_s: float
    valid: int


def time_round(
    task: ansor.SearchTask,
    model: XGBModel,
    log: Path,
    measurer: ProgramMeasurer,
    args: argparse.Namespace,
    seed: int,
) -> RoundRun:
    """One search round with a fresh policy (cold caches), then measuring its 64 picks."""
    model.feature_cache = FeatureCache()
    counting = CountingModel(model)
    policy = fresh_policy(task, counting, log, args, seed)
    policy.generate_sketches()  # once per task in tuning, not part of a round
    num_random = int(policy.params.eps_greedy * MEASURES_PER_ROUND)
    start, cpu = time.perf_counter(), os.times()
    best, random_states = policy.search_one_round(num_random * 3)
    inputs = policy.pick_states_with_eps_greedy(best, random_states, MEASURES_PER_ROUND)
    round_s, end_cpu = time.perf_counter() - start, os.times()
    round_cpu_s = end_cpu.user + end_cpu.system - cpu.user - cpu.system
    workers_cpu_s = end_cpu.children_user + end_cpu.children_system - cpu.children_user - cpu.children_system
    start = time.perf_counter()
    results = measurer.measure(task, None, inputs)
    measure_s = time.perf_counter() - start
    valid = sum(1 for r in results if r.ok)
    return RoundRun(round_s, round_cpu_s, workers_cpu_s, counting.scored, len(inputs), measure_s, valid)


# ------------------------------------------------------------------------------------------
# report


@dataclass
class Report:
    workload: str
    what: str
    phases: list[PhaseRun] = field(default_factory=list)
    rounds: list[RoundRun] = field(default_factory=list)

    def median(self, values: Sequence[float]) -> float:
        return float(statistics.median(values))

    def lines(self) -> list[str]:
        out = [f"{self.workload}: {self.what}"]
        if self.phases:
            out.append("  candidates per second (median of runs):")
            for name, label in (
                ("sampling", "sampling (init rules + bound inference)"),
                ("mutation_bind", "mutation + bound inference"),
                ("features", "feature extraction (1 process)"),
                ("features_workers", "feature extraction (feature_workers processes)"),
                ("prediction", "prediction (XGBoost, features cached)"),
                ("end_to_end", "end to end (mutate, bind, features, predict)"),
            ):
                out.append(f"    {label:<48} {self.median([getattr(p, name) for p in self.phases]):>9.0f}")
        if self.rounds:
            round_s = self.median([r.round_s for r in self.rounds])
            measure_s = self.median([r.measure_s for r in self.rounds])
            ratios = [r.round_s / r.measure_s for r in self.rounds]
            scored = self.median([r.scored / r.round_s for r in self.rounds])
            cpu = self.median([r.round_cpu_s for r in self.rounds])
            workers = self.median([r.workers_cpu_s for r in self.rounds])
            out.append(f"  one search round:            {round_s:8.1f} s  ({scored:.0f} candidates scored/s)")
            out.append(f"    CPU: this process {cpu:.1f} s, feature workers {workers:.1f} s")
            out.append(
                f"  measuring its {self.rounds[0].picked} picks:       {measure_s:8.1f} s  "
                f"({', '.join(f'{r.valid}/{r.picked}' for r in self.rounds)} valid)"
            )
            out.append(
                f"  round / measure:             {self.median(ratios):8.2f}    "
                f"(runs: {', '.join(f'{x:.2f}' for x in ratios)}; goal < 1)"
            )
        return out


def run_workload(name: str, args: argparse.Namespace) -> Report:
    what, build = WORKLOADS[name]
    dag = ansor.ComputeDAG(build())
    task = ansor.SearchTask(compute_dag=dag, target="llvm")
    report = Report(name, what)
    print(f"== {name}: {what}, {dag.flop_ct / 1e9:.2f} GFLOP", flush=True)
    log = args.work_dir / f"{name}_train.json"
    collect_training_records(task, log, args)
    model = trained_model(task, log)
    print(f"  cost model trained on {len(model.inputs)} measured programs from {log}", flush=True)
    measurer = ProgramMeasurer(ansor.LocalBuilder(), ansor.LocalRunner(), verbose=0)
    for run in range(args.runs):
        seed = args.seed + 17 * run
        if not args.skip_phases:
            report.phases.append(time_phases(task, model, log, args, seed))
            p = report.phases[-1]
            print(
                f"  run {run}: sampling {p.sampling:.0f}/s, mutation+bind {p.mutation_bind:.0f}/s, "
                f"features {p.features:.0f}/s ({p.features_workers:.0f}/s in {model.feature_workers} "
                f"processes), prediction {p.prediction:.0f}/s, "
                f"end to end {p.end_to_end:.0f}/s",
                flush=True,
            )
        if not args.skip_round:
            report.rounds.append(time_round(task, model, log, measurer, args, seed))
            r = report.rounds[-1]
            print(
                f"  run {run}: round {r.round_s:.1f} s (CPU {r.round_cpu_s:.1f} s + workers "
                f"{r.workers_cpu_s:.1f} s, {r.scored} scored), measuring {r.picked} "
                f"programs {r.measure_s:.1f} s ({r.valid} valid): ratio {r.round_s / r.measure_s:.2f}",
                flush=True,
            )
    return report


def save_summary(reports: Sequence[Report], args: argparse.Namespace) -> Path:
    path = args.work_dir / "summary.json"
    summary: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    for r in reports:
        summary[r.workload] = {
            **asdict(r),
            "population": args.population,
            "iters": args.iters,
            "time": time.time(),
        }
    path.write_text(json.dumps(summary, indent=1))
    return path


# ------------------------------------------------------------------------------------------
# command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--runs", type=int, default=3, help="runs per workload (medians quoted)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="training logs, summary")
    parser.add_argument("--population", type=int, default=2048, help="evolutionary_search_population")
    parser.add_argument("--iters", type=int, default=4, help="evolutionary_search_num_iters")
    parser.add_argument("--train-programs", type=int, default=128, help="measured records to train on")
    parser.add_argument("--seed", type=int, default=0, help="search seed of the first run")
    parser.add_argument("--skip-phases", action="store_true", help="only time the rounds")
    parser.add_argument("--skip-round", action="store_true", help="only time the hot paths")
    args = parser.parse_args(argv)
    for name in ("runs", "population", "train_programs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    if args.iters < 0:
        parser.error(f"--iters {args.iters} must be at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    reports = [run_workload(name, args) for name in args.workloads]
    print()
    print(f"search speed: population {args.population}, {args.iters} generations, {args.runs} run(s)")
    for report in reports:
        print("\n".join(report.lines()))
    print(f"\nsummary: {save_summary(reports, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
