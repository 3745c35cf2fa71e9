"""The README's first command: tune one matmul for this CPU and print what was found.

Declares the matmul, runs a short search (sketches, random annotation, evolution guided by
the XGBoost cost model, real measurements), prints the best program as Ansor's loop tree and
as a Python step script, then builds it, checks it against the numpy reference and times it
beside numpy (OpenBLAS) and a schedule written by hand (``ansor_py.hand_schedules``).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time

import numpy as np

from ansor_py.hand_schedules import schedule_gemm
from ansor_py.records import RecordToFile
from ansor_py.search_task import SearchTask
from ansor_py.timing import median_seconds
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


def run_demo(n: int = 512, trials: int = 64, log_file: str | None = None) -> int:
    dag = matmul_dag(n)
    task = SearchTask(compute_dag=dag, target="llvm")
    print(f"== the declaration (ComputeDAG), {dag.flop_ct / 1e9:.2f} GFLOP per run")
    print(dag)
    log_file = log_file or os.path.join(tempfile.mkdtemp(prefix="ansor_demo_"), "matmul.json")
    print(f"== tuning {trials} trials for {task.target} (records: {log_file})")
    start = time.perf_counter()
    auto_schedule(task, TuningOptions(num_measure_trials=trials, measure_callbacks=[RecordToFile(log_file)]))
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
    results = []
    for name, kernel in (("tuned (ansor-py)", tuned), ("hand-scheduled", hand), ("naive", naive)):
        c.fill(np.nan)
        kernel(a, b, c)
        error = float(np.max(np.abs(c - expected)) / np.max(np.abs(expected)))
        if not error <= 1e-4:
            print(f"ERROR: the {name} kernel disagrees with the reference (max relative error {error:.2e})")
            return 1
        seconds = median_seconds(functools.partial(kernel, a, b, c), number=3, repeat=5)
        results.append((name, seconds))
    numpy_seconds = median_seconds(lambda: np.matmul(a, b, out=c), number=3, repeat=5)
    print("== every kernel verified against the numpy reference; speed (median of 5):")
    for name, seconds in [*results, ("numpy (OpenBLAS)", numpy_seconds)]:
        ratio = numpy_seconds / seconds
        print(f"{name:18} {dag.flop_ct / seconds / 1e9:8.1f} GFLOP/s   {ratio:5.2f}x numpy")
    return 0
