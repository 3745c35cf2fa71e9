"""The README's first command: one matmul from declaration to a timed, verified kernel,
scheduled by hand (``ansor_py.hand_schedules``) until the search of the next milestone."""

from __future__ import annotations

import numpy as np

from ansor_py.build import build
from ansor_py.hand_schedules import schedule_gemm
from ansor_py.timing import median_seconds
from codegen.target import Target
from ir import te
from ir.compute_dag import ComputeDAG
from ir.lower.lower import lower
from ir.reference import evaluate


def matmul_dag(n: int) -> ComputeDAG:
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return ComputeDAG([A, B, C])


def run_demo(n: int = 512) -> int:
    dag = matmul_dag(n)
    print("== the declaration (ComputeDAG)")
    print(dag)
    target = Target.parse("llvm")
    s = schedule_gemm(dag, target)
    print("== the loop state (Ansor's loop tree)")
    print(dag.infer_bound_from_state(s))
    print("== the same state as a Python step script")
    print(s.to_python())
    func = lower(dag, s)
    text = str(func).splitlines()
    print(f"== the lowered program ({len(text)} lines)")
    print("\n".join(text[:40]))
    kernel = build(dag, s, target)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    kernel(a, b, c)
    (expected,) = evaluate(dag, [a, b])
    error = float(np.max(np.abs(c - expected)) / np.max(np.abs(expected)))
    print(f"== verified against the numpy reference: max relative error {error:.2e}")
    if error > 1e-4:
        print("ERROR: the kernel disagrees with the reference")
        return 1
    flop = 2.0 * n**3
    ours = median_seconds(lambda: kernel(a, b, c), number=3, repeat=5)
    theirs = median_seconds(lambda: np.matmul(a, b, out=c), number=3, repeat=5)
    print(f"ansor-py kernel: {flop / ours / 1e9:7.1f} GFLOP/s")
    print(f"numpy (OpenBLAS): {flop / theirs / 1e9:7.1f} GFLOP/s  (ansor-py / numpy = {theirs / ours:.2f})")
    return 0
