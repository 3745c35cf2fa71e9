"""
Walkthrough: one matmul, from declaration to machine code
==========================================================

A tensor compiler separates *what* to compute from *how* to compute it. You declare the
mathematics once; a *schedule* then rearranges the loops that compute it (tiles them,
reorders them, keeps a tile in registers, copies data into a friendlier layout, runs loops
on several cores and in vector lanes) without ever changing the result. Ansor (Zheng et al.,
OSDI 2020) searches the space of such schedules automatically; this tutorial writes one by
hand, step by step, with the same vocabulary the search uses, and follows it down to the
machine code.

We follow ``C = A @ B`` through:

1. the declaration (``te.placeholder``, ``te.reduce_axis``, ``te.compute``);
2. the ``ComputeDAG``: the ops, the FLOP count and the workload key;
3. the naive schedule, built and checked against the numpy reference;
4. a schedule built step by step on Ansor's loop state: split and reorder (tiling),
   cache_write + compute_at (a register tile), cache_read + compute_at (packing B),
   then parallel, unroll and vectorize, printing the loop tree after each stage;
5. the state as a step script and as tuning-log records, replayed;
6. the lowered loop-nest program, the LLVM IR and the assembly of the inner loop;
7. a timed run: naive, each schedule, and numpy (OpenBLAS), in GFLOP/s.

Every kernel built here is checked against the numpy reference; the script stops with an
error if one disagrees. Run it as::

    python docs/tutorials/walkthrough_matmul.py            # N = M = K = 512
    python docs/tutorials/walkthrough_matmul.py --size 64  # small and quick
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import time
from collections.abc import Callable

import numpy as np

import ansor_py as ansor
from ansor_py import te
from ansor_py.timing import median_seconds
from codegen import llvm as llvm_backend
from codegen.llvm import Kernel
from ir.loop_state.replay import state_from_record, state_to_record
from ir.reference import evaluate


def positive_size(text: str) -> int:
    """``--size`` must be an integer of at least 1 (each matrix is size x size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--size must be at least 1, got {value}")
    return value


parser = argparse.ArgumentParser(description="One matmul from declaration to machine code.")
parser.add_argument("--size", type=positive_size, default=512, help="N = M = K (default 512)")
parser.add_argument("--repeat", type=positive_size, default=5, help="timing repeats (default 5)")
args = parser.parse_args()
N = M = K = args.size


def section(title: str) -> None:
    print(f"\n{'=' * 8} {title} {'=' * max(0, 80 - len(title))}")


# %%
# 1. Declare what to compute
# --------------------------
# A placeholder is an input tensor: a name, a shape and a dtype (float32 by default).
# ``te.compute`` declares an output by a function from output indices to a scalar
# expression; ``te.sum`` over a reduce axis ``k`` makes it a reduction. Nothing runs here:
# the lambda is called once with symbolic iterators, and its result is an expression tree.

A = te.placeholder((N, K), name="A")
B = te.placeholder((K, M), name="B")
k = te.reduce_axis((0, K), name="k")
C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")

section("1. the declaration")
assert isinstance(C.op, te.ComputeOp)
print(f"{A}\n{B}\n{C}")
print(f"C's body, an expression tree over its axes {[a.name for a in C.op.axis]}: {C.op.body}")

# %%
# 2. The ComputeDAG
# -----------------
# Ansor starts every search from the DAG of the declaration (paper section 4.1). It lists
# the ops in topological order (inputs first), counts the floating-point operations of one
# run (to turn measured times into GFLOP/s), and hashes its printed form into the workload
# key that names this computation in tuning logs. The tensors are given inputs first, then
# outputs: that is also the order in which a built kernel takes its numpy arrays.

dag = ansor.ComputeDAG([A, B, C])

section("2. the ComputeDAG")
print(f"ops in topological order: {[op.name for op in dag.ops]}")
print(dag)
print(f"FLOP count: {dag.flop_ct:.0f} (2 * N * M * K = {2 * N * M * K})")
print(f"workload key: {dag.workload_key()}")
assert dag.flop_ct == 2 * N * M * K

# %%
# 3. The naive schedule, and the reference it must match
# ------------------------------------------------------
# The initial loop state has one stage per op, with one loop per axis in declaration
# order: ``for i, for j, for k``. ``ansor.build(dag)`` (no state) lowers and compiles it.
#
# The oracle for every kernel is ``ir.reference.evaluate``: it computes the declaration
# directly with numpy, knowing nothing about schedules. We check it once against ``a @ b``
# to see it agrees with the obvious formula, then compare every kernel against it.
# Inputs are random, never zeros, so a kernel that skips work cannot pass.

rng = np.random.default_rng(0)
a = rng.standard_normal((N, K), dtype=np.float32)
b = rng.standard_normal((K, M), dtype=np.float32)
(expected,) = evaluate(dag, [a, b])
np.testing.assert_allclose(expected, a @ b, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def verify(what: str, kernel: Kernel) -> Kernel:
    """Run ``kernel`` on (a, b) into a fresh output and assert it matches the reference."""
    c = np.full((N, M), np.nan, dtype=np.float32)  # NaN: any element left unwritten fails
    kernel(a, b, c)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=what)
    error = float(np.abs(c - expected).max()) / scale
    print(f"[verified] {what}: matches the numpy reference (max error {error:.1e} of max |C|)")
    return kernel


section("3. the naive schedule")
s0 = ansor.get_init_state(dag)
print(s0)
print(ansor.lower(dag))
naive = verify("naive", ansor.build(dag))

# %%
# 4a. Tiling: split and reorder
# -----------------------------
# ``split(stage, i, [f])`` replaces loop ``i`` by two loops ``i.0`` (outer) and ``i.1``
# (inner, extent f) with ``i == i.0 * f + i.1``. Reordering the pieces as ``i.0, j.0, k,
# i.1, j.1`` makes a *tile*: each MR x NR block of C is computed completely, over all of
# ``k``, before the next block begins, so the block stays in cache while it accumulates.
# Ansor's CPU sketches tile every loop this way, at several levels (the structure
# "SSRSRS": spatial, spatial, reduction, ..., paper section 4.1).
#
# The tile shape is chosen from the target: NR is two vector registers wide, MR is the
# number of rows whose accumulators fit in the vector register file (8 rows with the 32
# registers of AVX-512, 4 with the 16 of AVX2).

target = ansor.Target.parse("llvm")
lanes = target.hardware_params.vector_unit_bytes // 4  # float32 lanes per vector register
MR, NR = (8 if lanes >= 16 else 4), 2 * lanes

section(f"4a. tiling: split i by {MR}, j by {NR}, reorder ({lanes} float32 lanes per vector)")
s1 = ansor.get_init_state(dag)
i, j, kk = s1["C"].iters
i0, i1 = s1.split("C", i, [MR])
j0, j1 = s1.split("C", j, [NR])
s1.reorder("C", [i0, j0, kk, i1, j1])
print(s1)
tiled = verify("tiled (split + reorder)", ansor.build(dag, s1))

# %%
# 4b. A register tile: cache_write + compute_at
# ---------------------------------------------
# The tiled loop still reads and writes C[i, j] in memory at every ``k``. ``cache_write``
# inserts a stage ``C.local`` that computes the sum into a local buffer; C becomes a copy
# of it. ``compute_at`` then moves ``C.local`` inside C's tile loop ``i.0``: per tile, the
# local buffer is just MR x NR floats, which LLVM can keep in vector registers. This time
# C's column-panel loop ``j.0`` goes outermost, so that all the row tiles of one column
# panel run one after another (that pays off in 4c).
#
# Cache steps rewrite the DAG, so they come before the stage's loops are transformed; the
# loop state refuses them afterwards with a ``ScheduleError`` that says why:

section("4b. a register tile: cache_write + compute_at")
try:
    s1.copy().cache_write("C", "local")
    raise AssertionError("cache_write after split should have been refused")
except ansor.ScheduleError as error:
    print(f"cache_write after split is refused: {error}\n")

s2 = ansor.get_init_state(dag)
s2.cache_write("C", "local")
print(f"after cache_write, C.local computes the sum and C copies it:\n{s2}")
i, j = s2["C"].iters
i0, i1 = s2.split("C", i, [MR])
j0, j1 = s2.split("C", j, [NR])
s2.reorder("C", [j0, i0, i1, j1])
s2.compute_at("C.local", "C", i0)
print("after compute_at, C.local's loop extents are unknown (None) until bound inference:")
print(s2)
ci, cj, ck = s2["C.local"].iters
s2.reorder("C.local", [ck, ci, cj])  # k outermost: the whole MR x NR tile is updated per k
print("with k reordered outermost, infer_bound_from_state fills the extents in:")
print("C.local covers one MR x NR tile, over all of k")
print(ansor.infer_bound_from_state(dag, s2))
register_tile = verify("register tile (cache_write + compute_at)", ansor.build(dag, s2))

# %%
# 4c. Packing B: cache_read + compute_at
# --------------------------------------
# The register tile reads an NR-wide strip of a row of B at every ``k``: NR consecutive
# floats, but rows are M floats apart, so each ``k`` touches new cache lines and pages.
# ``cache_read`` inserts a stage ``B.global`` that copies B for its reader ``C.local``;
# attached at C's column loop ``j.0`` it copies exactly the K x NR panel that column of
# tiles needs, into a contiguous buffer read at stride one. This is the packing step of
# every fast GEMM (BLIS, OpenBLAS).

section("4c. packing B: cache_read + compute_at")
s3 = s2.copy()  # states are immutable underneath: s2 stays as it was
s3.cache_read("B", "global", ["C.local"])
s3.compute_at("B.global", "C", j0)
print(ansor.infer_bound_from_state(dag, s3))
packed = verify("packed B (cache_read + compute_at)", ansor.build(dag, s3))

# %%
# 4d. Parallel, unroll, vectorize
# -------------------------------
# Annotations do not change the loop structure, only how a loop runs (Ansor's random
# annotation, paper section 4.2). The MR rows of the tile are unrolled and its NR columns
# become vector instructions, and so do the copy-out of the tile and the packing copy:
# now the register tile is really MR x NR / lanes vector registers. Last, the column-panel
# loop ``j.0`` runs on all cores (the generated code calls libgomp's ``GOMP_parallel``);
# each thread packs its own panels, so no two threads write the same memory.

section("4d. unroll, vectorize, then parallel: the final loop tree")
s4_serial = s3.copy()
s4_serial.unroll("C.local", ci)
s4_serial.vectorize("C.local", cj)
s4_serial.vectorize("C", j1)
s4_serial.vectorize("B.global", s4_serial["B.global"].iters[-1])
vectorized = verify("vectorized (unroll + vectorize)", ansor.build(dag, s4_serial))
s4 = s4_serial.copy()
s4.parallel("C", j0)
print(ansor.infer_bound_from_state(dag, s4))

# %%
# 5. A state is its steps
# -----------------------
# A loop state remembers the steps that made it. ``to_python()`` prints them as a script;
# the tuning log stores them as records (``["SP", stage, iterator, extent, [lengths],
# inner_to_outer]`` and so on, TVM's v0.6 layout). Replaying either on the DAG's initial
# state rebuilds the same state: this is how the search stores, mutates and re-applies
# schedules, and how a tuned schedule is applied later.

record = json.loads(json.dumps(state_to_record(s4)))  # through JSON, as in a log file
from_record = state_from_record(dag, record)
namespace: dict[str, object] = {"dag": dag}
exec(s4.to_python(), namespace)
from_script = namespace["s"]
assert isinstance(from_script, ansor.State)
for how, other in (("record", from_record), ("script", from_script)):
    assert other.transform_steps == s4.transform_steps, how
    assert str(other) == str(s4), how
    assert str(ansor.lower(dag, other)) == str(ansor.lower(dag, s4)), how

section("5. the state as a step script, and as records")
print(s4.to_python())
for step_record in record[1]:
    print(json.dumps(step_record))
print("[replayed] the record and the script both rebuild the same state and program")

# %%
# 6a. Lowering: the loop-nest program
# -----------------------------------
# ``lower`` turns the state into a loop-nest program (a PrimFunc) through a list of passes
# (``ir/lower/lower.py``; ``debug=True`` prints the program after each, ``stop_after=``
# returns it as one pass left it): bound inference
# sizes every loop and buffer, buffers are allocated where their stage is attached (the
# K x NR panel ``B.global`` per ``j.0``, the MR x NR ``C.local`` per ``i.0``), indices are
# flattened and simplified, and index arithmetic is hoisted out of inner loops.

func = ansor.lower(dag, s4)

section("6a. the lowered program")
print(func)

# %%
# 6b. LLVM IR
# -----------
# ``codegen.llvm.build`` emits LLVM IR for the PrimFunc with llvmlite and optimises it at
# O3. The body of the parallel loop is outlined into its own function, which libgomp calls
# on each thread. In the inner block, each unrolled row of the tile is one vector
# ``fmuladd`` (a fused multiply-add, NR lanes wide) of a broadcast element of A, a vector of
# the packed B panel and an accumulator that now lives in a register (a ``phi`` of the
# loop, no longer a load and a store).


def busiest_block(text: str, hot: str) -> list[str]:
    """The basic block of ``text`` (LLVM IR or assembly) with the most lines matching the
    regular expression ``hot``; a block starts at a line ``label:`` in column 0."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if re.match(r"[^\s;#]\S*:(\s|$)", line):
            blocks.append([])
        blocks[-1].append(line)
    return max(blocks, key=lambda block: sum(1 for line in block if re.search(hot, line)))


def excerpt(lines: list[str], limit: int = 28, width: int = 120) -> str:
    shown = [line if len(line) <= width else line[: width - 4] + " ..." for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"... ({len(lines) - limit} more lines)")
    return "\n".join(shown)


module = llvm_backend.build(func, "llvm")
emitted, optimized = module.get_ir(optimized=False), module.get_ir()

section("6b. LLVM IR")
print(f"{len(emitted.splitlines())} lines emitted, {len(optimized.splitlines())} after O3; its functions:")
print("\n".join(line for line in optimized.splitlines() if line.startswith("define")))
print("\nthe inner loop after O3:")
print(excerpt(busiest_block(optimized, r"fmuladd|fma|fmul|fadd")))

# %%
# 6c. Assembly of the inner loop
# ------------------------------
# The target machine turns the optimised IR into assembly for this CPU. On x86-64 the
# inner loop is a run of ``vfmadd231ps`` (``fmla`` on AArch64): an element of A broadcast
# to all lanes (``vbroadcastss``, or an embedded ``{1to16}``) times a vector of the B panel,
# added into one of the MR x NR / lanes accumulators, which stay in ``zmm`` (AVX-512) or
# ``ymm`` (AVX2) registers for the whole k loop.

asm = module.get_asm()

section("6c. assembly of the inner loop")
print(excerpt(busiest_block(asm, r"fma|fmla|mul"), limit=40))
# ``ansor.build(dag, state)`` (``codegen/build.py``) is exactly
# ``llvm.build(lower(dag, state)).get_kernel()``: the module JIT-compiles in this process
# and gives the checked, numpy-facing kernel.
scheduled = verify("scheduled (parallel + unroll + vectorize)", module.get_kernel())

# %%
# 7. A timed run
# --------------
# Each kernel is timed as the median of ``--repeat`` repeats (the machine is shared and
# noisy), and so is numpy's matmul (OpenBLAS) on the same arrays, in the same run. numpy
# goes last, after a pause: OpenMP worker threads spin for a while after a parallel call
# and would steal its cores.
#
# What to expect: tiling and the cache stages alone gain little while the code is scalar;
# they set up the layout (a small accumulator tile, a contiguous panel of B) that lets the
# vectorized tile run near the speed of the FMA units, and the parallel loop then adds the
# other cores. On a machine shared with other jobs, read ratios measured in one run, not
# absolute numbers.


def gflops(fn: Callable[[], object]) -> float:
    seconds = median_seconds(fn, number=1, repeat=args.repeat, min_repeat_ms=20.0)
    return dag.flop_ct / seconds / 1e9


section(f"7. timed run, N = M = K = {N}")
out = np.empty((N, M), dtype=np.float32)
rows = [
    (name, gflops(functools.partial(kernel, a, b, out)))
    for name, kernel in (
        ("naive", naive),
        ("tiled", tiled),
        ("register tile", register_tile),
        ("packed B", packed),
        ("vectorized", vectorized),
        ("scheduled", scheduled),
    )
]
time.sleep(0.5)
rows.append(("numpy (OpenBLAS)", gflops(lambda: np.matmul(a, b, out=out))))

numpy_rate = rows[-1][1]
for name, rate in rows:
    print(f"{name:18} {rate:9.2f} GFLOP/s   {rate / numpy_rate:6.2f}x numpy")
print("\nall kernels verified against the numpy reference")
