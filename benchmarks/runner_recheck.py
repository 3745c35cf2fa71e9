"""How many RUN_TIMEOUTs of a tuning on a loaded machine were correct programs?

``LocalRunner`` gives up a candidate once it has run ``HOPELESS_FLOOR_S`` plus
``slowdown_limit`` (100) times the task's fastest program so far. With busy processes
beside the tuner, a correct program can overrun that cut; ``recheck_cut`` runs a cut
candidate once more with twice the limit before recording RUN_TIMEOUT. This script:

1. starts ``--busy`` processes spinning (``while True: pass``) beside the tuner;
2. tunes one GEMM (``ir.topi`` ``gemm``, ``--size`` cubed) for ``--trials`` programs with
   the re-check off, then again with it on (same seed), counting the results by error code;
3. stops the busy processes and re-measures every RUN_TIMEOUT program of both runs on the
   now quieter machine, twice: with the cut's limit of its record (does it finish within
   the cut without load?) and with the whole ``timeout`` (is it a correct program at all?).

    python benchmarks/runner_recheck.py [--trials 200] [--size 512] [--busy 2] [--seed 1]

The table goes to stdout and, with ``--out``, to a Markdown file.
"""

from __future__ import annotations

import argparse
import collections
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansor_py as ansor
from ansor_py.cost_model import XGBModel
from ansor_py.measure import (
    LocalBuilder,
    LocalRunner,
    MeasureCallback,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
)
from ansor_py.search import SketchPolicy
from ir.topi.workloads import gemm


class Collect(MeasureCallback):
    """Keeps every measured (input, result) pair."""

    def __init__(self) -> None:
        self.pairs: list[tuple[MeasureInput, MeasureResult]] = []

    def callback(self, policy: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        self.pairs.extend(zip(inputs, results, strict=True))


@dataclass
class Run:
    recheck: bool
    seconds: float = 0.0
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    rechecked: int = 0
    rescued: int = 0
    timeouts: list[tuple[MeasureInput, MeasureResult]] = field(default_factory=list)
    #: re-measured without load: (finished within the cut, finished within the timeout)
    within_cut: int = 0
    correct: int = 0
    best_gflops: float = 0.0


def tune(task: ansor.SearchTask, trials: int, seed: int, recheck: bool) -> Run:
    run = Run(recheck)
    collect = Collect()
    policy = SketchPolicy(task, XGBModel(), seed=seed, verbose=0)
    with LocalRunner(recheck_cut=recheck) as runner:
        options = ansor.TuningOptions(
            num_measure_trials=trials,
            num_measures_per_round=64,
            verbose=0,
            runner=runner,
            builder=LocalBuilder(),
            measure_callbacks=[collect],
        )
        start = time.perf_counter()
        ansor.auto_schedule(task, options, search_policy=policy)
        run.seconds = time.perf_counter() - start
        run.rechecked, run.rescued = runner.rechecked, runner.rescued
    for inp, res in collect.pairs:
        run.codes[res.error_no.name] += 1
        if res.error_no is MeasureErrorNo.RUN_TIMEOUT:
            run.timeouts.append((inp, res))
        elif res.ok:
            run.best_gflops = max(run.best_gflops, task.compute_dag.flop_ct / res.median_cost / 1e9)
    return run


def cut_limit(message: str, default: float) -> float:
    """The first limit a RUN_TIMEOUT message names ("running took longer than 2.35 s ...")."""
    match = re.search(r"longer than ([0-9.e+-]+) s", message)
    return float(match.group(1)) if match else default


def remeasure(run: Run) -> None:
    """Re-run ``run``'s RUN_TIMEOUT programs: within the recorded cut, and within 10 s."""
    builder = LocalBuilder()
    for inp, res in run.timeouts:
        for limit, attr in ((cut_limit(res.error_msg, 10.0), "within_cut"), (10.0, "correct")):
            with LocalRunner(timeout=limit, slowdown_limit=None) as runner:
                (again,) = runner.run([inp], builder.build([inp], verbose=0), verbose=0)
            if again.ok:
                setattr(run, attr, getattr(run, attr) + 1)
            print(
                f"  re-measured (limit {limit:.3g} s): {again.error_no.name} {again.median_cost:.4g} s",
                flush=True,
            )


def table(runs: Sequence[Run]) -> str:
    codes = sorted({code for run in runs for code in run.codes}, key=lambda c: MeasureErrorNo[c].value)
    header = [
        "re-check",
        "tune s",
        "best GFLOP/s",
        *codes,
        "re-checked",
        "rescued",
        "RUN_TIMEOUTs correct unloaded: within the cut / within 10 s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        cells = [
            "on" if run.recheck else "off",
            f"{run.seconds:.0f}",
            f"{run.best_gflops:.1f}",
            *[str(run.codes.get(c, 0)) for c in codes],
            str(run.rechecked) if run.recheck else "-",
            str(run.rescued) if run.recheck else "-",
            f"{run.within_cut} / {run.correct} of {len(run.timeouts)}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="GEMM size (n = m = k)")
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the tuner")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the table (Markdown) here too")
    args = parser.parse_args(argv)
    task = ansor.SearchTask(
        compute_dag=ansor.ComputeDAG(gemm(args.size, args.size, args.size)), target="llvm"
    )
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        runs = []
        for recheck in (False, True):
            print(
                f"tuning GEMM {args.size}, {args.trials} trials, re-check {'on' if recheck else 'off'}",
                flush=True,
            )
            runs.append(tune(task, args.trials, args.seed, recheck))
            print(f"  {dict(runs[-1].codes)} in {runs[-1].seconds:.0f} s", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    for run in runs:
        state = "on" if run.recheck else "off"
        print(f"re-measuring {len(run.timeouts)} RUN_TIMEOUT programs (re-check {state})", flush=True)
        remeasure(run)
    text = (
        f"GEMM {args.size}^3, {args.trials} trials per run, {args.busy} busy processes beside the tuner, "
        f"seed {args.seed}; {platform.node()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        + table(runs)
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
