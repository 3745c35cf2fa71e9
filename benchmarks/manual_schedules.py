"""Hand-written schedules through the State API, timed beside numpy in the same run.

Schedules GEMM 1024x1024x1024 float32 and a ResNet-50 3x3 conv2d layer (56x56, 64 -> 64
channels, stride 1, padding 1, NHWC) by hand, builds them, verifies them against the numpy
reference, and prints GFLOP/s beside numpy's (OpenBLAS) matmul and an im2col + matmul
formulation of the convolution, single- and multi-threaded. Each thread count runs in its
own child process so that OMP_NUM_THREADS and OPENBLAS_NUM_THREADS apply to both sides.

    python benchmarks/manual_schedules.py [--threads 1 2] [--repeat 7]

Numbers are medians of ``--repeat`` repeats; the ratio column is what to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import ansor_py as ansor
from ansor_py.hand_schedules import schedule_conv2d_nhwc, schedule_gemm
from ansor_py.timing import median_seconds
from ir import te
from ir.reference import evaluate
from ir.topi.workloads import conv2d_layer

GEMM_SIZE = 1024
CONV = dict(N=1, H=56, W=56, CI=64, CO=64, k=3, s=1, p=1)


def gemm_dag(n: int) -> ansor.ComputeDAG:
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return ansor.ComputeDAG([A, B, C])


def conv_numpy(data: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The closest numpy formulation: pad, im2col as strided views, one OpenBLAS matmul."""
    n, h, w, ci = data.shape
    kh, kw, _, co = kernel.shape
    p = CONV["p"]
    padded = np.pad(data, ((0, 0), (p, p), (p, p), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, kh * kw * ci)
    return (cols @ kernel.reshape(kh * kw * ci, co)).reshape(n, h, w, co)


def measure_child(threads: int, repeat: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    target = ansor.Target.parse("llvm")
    rows = []
    # GEMM
    dag = gemm_dag(GEMM_SIZE)
    state = schedule_gemm(dag, target)
    start = time.perf_counter()
    kernel = ansor.build(dag, state, "llvm")
    build_s = time.perf_counter() - start
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    c = np.empty_like(a)
    kernel(a, b, c)
    (expected,) = evaluate(dag, [a, b])
    error = float(np.max(np.abs(c - expected)) / np.max(np.abs(expected)))
    flop = dag.flop_ct
    ours = median_seconds(lambda: kernel(a, b, c), number=5, repeat=repeat)
    time.sleep(0.5)
    theirs = median_seconds(lambda: np.matmul(a, b, out=c), number=5, repeat=repeat)
    rows.append(
        dict(
            workload="GEMM 1024^3",
            threads=threads,
            ours=flop / ours / 1e9,
            peer=flop / theirs / 1e9,
            peer_name="numpy matmul",
            error=error,
            build_s=build_s,
        )
    )
    # conv2d
    tensors = conv2d_layer(**CONV, layout="NHWC")
    dag = ansor.ComputeDAG(tensors)
    state = schedule_conv2d_nhwc(dag, target)
    start = time.perf_counter()
    kernel = ansor.build(dag, state, "llvm")
    build_s = time.perf_counter() - start
    data = rng.standard_normal(tensors[0].shape, dtype=np.float32)
    weight = rng.standard_normal(tensors[1].shape, dtype=np.float32)
    out = np.empty(tensors[-1].shape, np.float32)
    kernel(data, weight, out)
    (expected,) = evaluate(dag, [data, weight])
    error = float(np.max(np.abs(out - expected)) / np.max(np.abs(expected)))
    np.testing.assert_allclose(conv_numpy(data, weight), expected, rtol=1e-4, atol=1e-3)
    flop = dag.flop_ct
    ours = median_seconds(lambda: kernel(data, weight, out), number=5, repeat=repeat)
    time.sleep(0.5)
    theirs = median_seconds(lambda: conv_numpy(data, weight), number=5, repeat=repeat)
    rows.append(
        dict(
            workload="conv2d 56x56 64->64 3x3",
            threads=threads,
            ours=flop / ours / 1e9,
            peer=flop / theirs / 1e9,
            peer_name="numpy im2col+matmul",
            error=error,
            build_s=build_s,
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure_child(args.child, args.repeat)))
        return 0
    rows = []
    for threads in args.threads:
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(threads),
            OPENBLAS_NUM_THREADS=str(threads),
        )
        env.pop("OMP_WAIT_POLICY", None)  # default spin-then-sleep, as in tune_ops.py
        cmd = [sys.executable, __file__, "--child", str(threads), "--repeat", str(args.repeat)]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(result.stdout, result.stderr, file=sys.stderr)
            return result.returncode
        rows += json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"{'workload':26} {'threads':>7} {'ansor-py GFLOP/s':>17} {'peer GFLOP/s':>13} {'ratio':>6}  peer"
        f"  (max rel. error, build s)"
    )
    for r in rows:
        print(
            f"{r['workload']:26} {r['threads']:>7} {r['ours']:>17.1f} {r['peer']:>13.1f} "
            f"{r['ours'] / r['peer']:>6.2f}  {r['peer_name']}  ({r['error']:.1e}, {r['build_s']:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
