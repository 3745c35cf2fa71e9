"""The README's first command: tune one matmul for this CPU and print what was found.

Declares the matmul, runs a short search (sketches, random annotation, evolution guided by
the XGBoost cost model, real measurements, the best few measured again at the end), prints
the best program as Ansor's loop tree and as a Python step script, then builds it, checks
it against the numpy reference and times it beside numpy (OpenBLAS), a schedule written by
hand (``ansor_py.hand_schedules``) and the naive loops. The four are timed the same way,
taking turns (``timing.time_interleaved``), and the table quotes medians; the last line
sets the speed the tuner reported for its best program beside the one timed here.
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time

import numpy as np

from ansor_py.hand_schedules import schedule_gemm
from ansor_py.records import RecordToFile, load_best_record
from ansor_py.search_task import SearchTask
from ansor_py.timing import time_interleaved
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule, best_state, print_best
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.lower.bound import infer_bound_from_state
from ir.reference import evaluate


def matmul_dag(n: int) -> ComputeDAG:
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return ComputeDAG([A, B, C])


#: how the table times each kernel: rounds of one repeat of each kernel in turn
TIMING_ROUNDS = 7
TIMING_MIN_REPEAT_MS = 100.0
#: the pause before each kernel's turn, so the previous kernel's threads stop spinning
TIMING_PAUSE_S = 0.2


def run_demo(n: int = 512, trials: int = 64, log_file: str | None = None) -> int:
    dag = matmul_dag(n)
    task = SearchTask(compute_dag=dag, target="llvm")
    print(f"== the declaration (ComputeDAG), {dag.flop_ct / 1e9:.2f} GFLOP per run")
    print(dag)
    log_file = log_file or os.path.join(tempfile.mkdtemp(prefix="ansor_demo_"), "matmul.json")
    print(f"== tuning {trials} trials for {task.target} (records: {log_file})")
    start = time.perf_counter()
    # at the end, the 5 best programs are measured 5 more times each, interleaved, so the
    # best read back from the log is not one lucky sample (ansor_py.remeasure)
    options = TuningOptions(
        num_measure_trials=trials,
        measure_callbacks=[RecordToFile(log_file)],
        remeasure_top_k=5,
        remeasure_repeat=5,
    )
    auto_schedule(task, options)
    print(f"tuning took {time.perf_counter() - start:.1f} s")
    best = best_state(task, log_file)
    print("== the best program as Ansor's loop tree")
    print(infer_bound_from_state(dag, best))
    print("== ... and as a Python step script")
    print(print_best(task, log_file))

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    (expected,) = evaluate(dag, [a, b])
    tuned = apply_best(task, log_file)
    hand = build(dag, schedule_gemm(dag, task.target), task.target)
    naive = build(dag, None, task.target)
    kernels = [("tuned (ansor-py)", tuned), ("hand-scheduled", hand), ("naive", naive)]
    for name, kernel in kernels:
        c.fill(np.nan)
        kernel(a, b, c)
        error = float(np.max(np.abs(c - expected)) / np.max(np.abs(expected)))
        if not error <= 1e-4:
            print(f"ERROR: the {name} kernel disagrees with the reference (max relative error {error:.2e})")
            return 1
    calls = [functools.partial(kernel, a, b, c) for _, kernel in kernels]
    calls.append(functools.partial(np.matmul, a, b, out=c))
    samples = time_interleaved(
        calls, repeat=TIMING_ROUNDS, min_repeat_ms=TIMING_MIN_REPEAT_MS, pause_s=TIMING_PAUSE_S
    )
    seconds = [statistics.median(kept) for kept in samples]
    names = [name for name, _ in kernels] + ["numpy (OpenBLAS)"]
    print(
        "== every kernel verified against the numpy reference; speed (median of "
        f"{TIMING_ROUNDS}, interleaved: {', '.join(names)}, {names[0]}, ...):"
    )
    for name, time_s in zip(names, seconds, strict=True):
        ratio = seconds[-1] / time_s
        print(f"{name:18} {dag.flop_ct / time_s / 1e9:8.1f} GFLOP/s   {ratio:5.2f}x numpy")
    _, reported = load_best_record(log_file, task.workload_key, task.target, tasks=[task])
    assert reported is not None  # apply_best found it
    reported_flops = dag.flop_ct / reported.median_cost
    timed_flops = dag.flop_ct / seconds[0]
    print(
        f"the tuner reported the tuned program at {reported_flops / 1e9:.1f} GFLOP/s "
        f"(median of {len(reported.costs)} sample(s)); timed here {timed_flops / 1e9:.1f} GFLOP/s: "
        f"ratio {timed_flops / reported_flops:.2f}"
    )
    return 0
