"""The kernel of Ansor's fused multi-level tiling, built by two source trees, timed in turn.

Bound inference gives a stage computed at a consumer the region of one consumer tile; the
outer loops of its own splits then need one trip each (TVM ``PassDownDomain``). A tree
that keeps them at the lengths chosen for the whole domain runs them anyway and guards
the body (issue 11). This script builds the same program with each tree given by
``--tree LABEL=PATH`` (by default ``before=/tmp/base`` and ``after=`` this repository),
each in a child process whose ``PYTHONPATH`` is that tree, and times the kernels in turn,
``--rounds`` rounds (interleaved, so that a neighbour's load hits every tree alike). It
prints each tree's cache-stage loop extents, the median kernel time and the ratio of every
tree's median to the last tree's.

The program (paper section 4.1, rules "add cache write" and "multi-level tiling with
fusion", the tile sizes filled as the search fills them) for GEMM n x n x n:

    C.local = cache_write(C); C.local: i.c, j.c split [2, 4, 8] and [4, 4, 16], k [8],
    reordered SSRSRS; C: follow_split of C.local's two outer levels, reordered;
    compute_at(C.local, C, j.1); C's i.0 j.0 fused and parallel; innermost j loops
    vectorized; auto_unroll_max_step 16 on C.local.

C.local computes a 32 x 64 tile per iteration of C's j.1; a tree that keeps its i.c.1 (2)
and j.c.1 (4) loops runs 8 times its trips.

The kernels are built for the default target ``llvm``, whose parallel loops use every core
of the host. Every kernel is checked against numpy before it is timed. The child uses only APIs that
both trees have (``ir.lower.lower.lower``, ``codegen.llvm.build``).

    python benchmarks/bound_shrink.py [--n 512] [--rounds 5]
        [--tree before=/tmp/base --tree after=.]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
I_LENGTHS, J_LENGTHS, K_LENGTHS = [2, 4, 8], [4, 4, 16], [8]


def child(n: int, repeat: int) -> dict[str, object]:
    """Build, check and time the program with the tree on ``sys.path``; the result as a
    dict (seconds per call, the cache stage's loop extents)."""
    import numpy as np

    from codegen.llvm import build
    from ir import te
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.api import State
    from ir.lower.bound import infer_bound
    from ir.lower.lower import lower
    from ir.reference import evaluate, random_inputs

    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    r = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    dag = ComputeDAG([a, b, c])
    s = State(dag)  # the initial state, in both trees
    s.cache_write("C", "local")
    i, j, k = s["C.local"].iters
    i_parts = s.split("C.local", i, I_LENGTHS)
    i_step = len(s.transform_steps) - 1
    j_parts = s.split("C.local", j, J_LENGTHS)
    j_step = len(s.transform_steps) - 1
    k_parts = s.split("C.local", k, K_LENGTHS)
    s.reorder(
        "C.local",
        [i_parts[0], j_parts[0], i_parts[1], j_parts[1], k_parts[0], i_parts[2], j_parts[2], k_parts[1]]
        + [i_parts[3], j_parts[3]],
    )
    ci = s.follow_split("C", "i", i_step, 2)
    cj = s.follow_split("C", "j", j_step, 2)
    s.reorder("C", [ci[0], cj[0], ci[1], cj[1], ci[2], cj[2]])
    s.compute_at("C.local", "C", cj[1])
    s.parallel("C", s.fuse("C", [ci[0], cj[0]]))
    s.vectorize("C.local", j_parts[3])
    s.vectorize("C", cj[2])
    s.pragma("C.local", i_parts[0], "auto_unroll_max_step$16")

    bound = infer_bound(dag, s.loop_state)
    local = bound.stages[bound.stage_id("C.local")]
    extents = {it.name: it.range.extent for it in local.iters}
    kernel = build(lower(dag, s), "llvm").get_kernel()
    inputs = random_inputs(dag, seed=0)
    expected = evaluate(dag, inputs)
    out = np.zeros((n, n), dtype="float32")
    kernel(*inputs, out)
    if not np.allclose(out, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max())):
        raise SystemExit("the kernel does not match numpy")
    kernel(*inputs, out)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        kernel(*inputs, out)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "extents": extents}


def run_tree(path: Path, args: argparse.Namespace) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(path), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--n", str(args.n)]
    cmd += ["--repeat", str(args.repeat)]
    done = subprocess.run(cmd, cwd=path, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tree {path}: the child failed\n{done.stdout}{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="GEMM size n x n x n")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per tree (median quoted)")
    parser.add_argument("--repeat", type=int, default=9, help="kernel calls per run (median taken)")
    parser.add_argument(
        "--tree", action="append", default=None, metavar="LABEL=PATH", help="a source tree (repeatable)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.n, args.repeat)))
        return 0
    trees: list[tuple[str, Path]] = []
    for spec in args.tree or [f"before={Path('/tmp/base')}", f"after={REPO}"]:
        label, sep, path = spec.partition("=")
        if not sep or not label:
            raise SystemExit(f"--tree {spec!r}: expected LABEL=PATH")
        trees.append((label, Path(path).resolve()))
    seconds: dict[str, list[float]] = {label: [] for label, _ in trees}
    extents: dict[str, object] = {}
    for round_index in range(args.rounds):
        for label, path in trees:
            result = run_tree(path, args)
            seconds[label].append(float(str(result["seconds"])))
            extents[label] = result["extents"]
        times = ", ".join(f"{lb} {seconds[lb][-1] * 1e3:.2f} ms" for lb, _ in trees)
        print(f"round {round_index + 1}: {times}")
    gflop = 2 * args.n**3 / 1e9
    last = trees[-1][0]
    print(f"\nGEMM {args.n}^3, median of {args.rounds} interleaved runs")
    for label, _ in trees:
        median = statistics.median(seconds[label])
        ratio = median / statistics.median(seconds[last])
        print(f"{label:>8}: {median * 1e3:8.2f} ms  {gflop / median:6.1f} GFLOP/s  {ratio:.2f}x {last}")
        print(f"          C.local loops: {extents[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
