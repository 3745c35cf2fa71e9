"""GEMM 1024 float32 beside numpy's OpenBLAS, timed interleaved, per target ISA.

For each ``--targets`` entry (default: the host, AVX-512 on this machine, and
``llvm -mcpu=znver3``, the same code restricted to AVX2 and its 16 ymm registers) the script
builds ``C = A @ B`` (1024^3) with

* the hand schedule of ``ansor_py.hand_schedules.schedule_gemm`` (packed B panel, an MR x NR
  register tile sized from the target), and
* with ``--log [LABEL=]LOG ...``, the best programs of each tuning log for the suite's GMM
  task (``batch_gemm(1, 1024, 1024, 1024)``, as ``benchmarks/tune_ops.py`` tunes it) for
  that target: the ``--top-k`` best records are re-timed once and the fastest is quoted
  (a log with no record for the target is skipped),

checks each against numpy, and times it interleaved with ``numpy.matmul``: repeat r times
ours then numpy, with a ``--settle-s`` pause before each (OpenMP and OpenBLAS workers stop
spinning), each sample the mean of as many calls as fill ``--min-repeat-ms``. It prints the
median GFLOP/s, the percentage of the two-core FMA peak at ``--ghz`` (FLOP per cycle from
the vector width: 2 FMA pipes x lanes x 2), the ratio ours / OpenBLAS, the CPU, the ISA the
target enables and the OpenBLAS kernel family numpy uses (``Haswell`` = AVX2 kernels).

    python benchmarks/gemm_vs_openblas.py [--targets llvm "llvm -mcpu=znver3"] [--log [LABEL=]LOG ...]
        [--threads 2] [--repeat 7]

The run happens in a child process whose OMP_NUM_THREADS and OPENBLAS_NUM_THREADS equal
``--threads`` (both pools read them once, at start). Quote the ratios: the machine is
shared, and absolute numbers move with the load.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tune_ops import PackedCall  # beside this script

import ansor_py as ansor
from ansor_py.hand_schedules import register_tile, schedule_gemm
from ansor_py.timing import time_repeats
from codegen.llvm import build as llvm_build
from codegen.llvm import empty_aligned, load_library
from codegen.target import Target
from ir.loop_state.state import LoopState
from ir.topi.workloads import batch_gemm, gemm

SIZE = 1024
DEFAULT_TARGETS = ("llvm", "llvm -mcpu=znver3")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def openblas_core() -> str:
    """The kernel family numpy's OpenBLAS picked for this CPU ("Haswell", "SkylakeX", ...)."""
    libs = glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "*openblas*"))
    for lib in libs:
        handle = ctypes.CDLL(lib)
        for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            if hasattr(handle, symbol):
                fn = getattr(handle, symbol)
                fn.restype = ctypes.c_char_p
                return str(fn().decode())
    return "unknown"


def isa(target: Target) -> str:
    features = target.enabled_features()
    if "avx512f" in features:
        return "AVX-512 (32 zmm)"
    return "AVX2 (16 ymm)" if "avx2" in features else "SSE"


def compile_call(
    dag: ansor.ComputeDAG, state: LoopState, target: Target, name: str, work: Path, arrays: list[np.ndarray]
) -> tuple[PackedCall, dict[str, int]]:
    """``state`` built for ``target`` and bound to ``arrays``, and its FMA-loop statistics."""
    module = llvm_build(ansor.lower(dag, state, name=name), target)
    path = str(module.export_library(work / f"{name}.so"))
    call = PackedCall(load_library(path, name, module.func.params, module.written), path, arrays)
    return call, fma_loop_stats(module.get_asm())


_LOAD = re.compile(r"^vmov[au]ps\s+\S*\(.*\),\s*%[xyz]mm\d+$")
_REG_MOVE = re.compile(r"^vmov[au]ps\s+%[xyz]mm\d+,\s*%[xyz]mm\d+$")


def fma_loop_stats(asm: str) -> dict[str, int]:
    """Instruction counts of the assembly loop with the most FMAs (the lines from a label
    to a backward jump to it): FMAs, broadcasts, vector loads, stack accesses (spills and
    reloads) and register-to-register vector moves."""
    lines = [line.strip() for line in asm.splitlines()]
    labels = {line[:-1]: n for n, line in enumerate(lines) if line.startswith(".LBB") and line.endswith(":")}
    best = {"fma": 0, "broadcast": 0, "load": 0, "stack": 0, "reg_move": 0}
    for n, line in enumerate(lines):
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith("j") or labels.get(parts[1], n + 1) > n:
            continue
        body = lines[labels[parts[1]] : n + 1]
        stats = {
            "fma": sum(op.startswith("vfmadd") for op in body),
            "broadcast": sum(op.startswith("vbroadcast") for op in body),
            "load": sum(_LOAD.match(op) is not None for op in body),
            "stack": sum("(%rsp)" in op for op in body),
            "reg_move": sum(_REG_MOVE.match(op) is not None for op in body),
        }
        if stats["fma"] > best["fma"]:
            best = stats
    return best


def sample(fn: Callable[[], object], args: argparse.Namespace) -> float:
    time.sleep(args.settle_s)
    return time_repeats(fn, number=1, repeat=1, min_repeat_ms=args.min_repeat_ms)[0]


def interleaved(ours: Callable[[], object], theirs: Callable[[], object], args) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``theirs``, sampled alternately."""
    a, b = [], []
    for _ in range(args.repeat):
        a.append(sample(ours, args))
        b.append(sample(theirs, args))
    return float(np.median(a)), float(np.median(b))


def tuned_states(log: Path, target: Target, k: int) -> tuple[ansor.ComputeDAG, list[LoopState]]:
    dag = ansor.ComputeDAG(batch_gemm(1, SIZE, SIZE, SIZE))
    task = ansor.SearchTask(compute_dag=dag, target=target)
    top = ansor.load_best_records(log, k, task.workload_key, task.target, tasks=[task])
    return dag, [inp.state for inp, _ in top]


def run_child(args: argparse.Namespace) -> None:
    flop = 2.0 * SIZE**3
    rng = np.random.default_rng(0)
    # 64-byte aligned, as the tuner measured and as TVM allocates (numpy gives 16)
    a, b, c = (empty_aligned((SIZE, SIZE)) for _ in range(3))
    a[...] = rng.standard_normal((SIZE, SIZE), dtype=np.float32)
    b[...] = rng.standard_normal((SIZE, SIZE), dtype=np.float32)
    expected = a @ b
    print(f"CPU: {cpu_name()}, {args.threads} thread(s); numpy OpenBLAS kernels: {openblas_core()}")
    rows: list[tuple[str, str, str, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="gemm_vs_openblas_") as tmp:
        work = Path(tmp)
        for text in args.targets:
            target = Target.parse(text)
            lanes = target.hardware_params.vector_unit_bytes // 4
            peak = args.threads * 2 * lanes * 2 * args.ghz
            mr, nr = register_tile(target)
            dag = ansor.ComputeDAG(gemm(SIZE, SIZE, SIZE))
            candidates = [(f"hand {mr}x{nr}", dag, [schedule_gemm(dag, target).loop_state], [a, b, c])]
            arrays3 = [a.reshape(1, SIZE, SIZE), b.reshape(1, SIZE, SIZE), c.reshape(1, SIZE, SIZE)]
            for entry in args.log:
                name, _, path = entry.rpartition("=")
                tdag, states = tuned_states(Path(path), target, args.top_k)
                if states:
                    candidates.append((f"{name or 'tuned'} (top {len(states)})", tdag, states, arrays3))
            for label, cdag, states, arrays in candidates:
                calls = []
                for index, state in enumerate(states):
                    call, stats = compile_call(cdag, state, target, f"g{len(rows)}_{index}", work, arrays)
                    c.fill(np.nan)
                    call()
                    if not np.allclose(c, expected, rtol=1e-3, atol=1e-3):
                        print(f"  {text} {label} #{index}: WRONG RESULT, skipped")
                        continue
                    seconds = 0.0 if args.asm_only else sample(call, args)
                    print(f"  {text} {label} #{index}: FMA loop {format_stats(stats)}", flush=True)
                    calls.append((seconds, index, call, stats))
                if not calls or args.asm_only:
                    continue
                _, index, best, stats = min(calls, key=lambda entry: entry[0])
                ours, blas = interleaved(best, lambda: np.matmul(a, b, out=c), args)
                rows.append(
                    (text, isa(target), f"{label} #{index}", flop / ours / 1e9, flop / blas / 1e9, peak)
                )
                print(
                    f"  {text}: {label} #{index}: {flop / ours / 1e9:.1f} vs OpenBLAS {flop / blas / 1e9:.1f}"
                )
    print()
    header = f"{'target':<20} {'ISA':<17} {'program':<26} {'GFLOP/s':>8} {'% peak':>7}"
    print(f"{header} {'OpenBLAS':>9} {'ratio':>6}")
    for text, kind, label, ours, blas, peak in rows:
        print(
            f"{text:<20} {kind:<17} {label:<26} {ours:>8.1f} {100 * ours / peak:>6.0f}% "
            f"{blas:>9.1f} {ours / blas:>5.2f}x"
        )
    print(f"% peak: of {args.threads} cores x 2 FMA pipes x lanes x 2 FLOP at {args.ghz} GHz")


def format_stats(stats: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in stats.items())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS))
    parser.add_argument("--log", nargs="*", default=[], help="[LABEL=]tuning log of the GMM 1024 task")
    parser.add_argument("--top-k", type=int, default=5, help="best records re-timed; the fastest is quoted")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved samples of each side")
    parser.add_argument("--min-repeat-ms", type=float, default=200.0)
    parser.add_argument("--settle-s", type=float, default=1.0, help="pause before each sample")
    parser.add_argument("--ghz", type=float, default=3.5, help="core clock for the peak column")
    parser.add_argument("--asm-only", action="store_true", help="only the FMA-loop statistics, no timing")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    count = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=count, OPENBLAS_NUM_THREADS=count, MKL_NUM_THREADS=count)
    env.pop("OMP_WAIT_POLICY", None)
    argv = list(sys.argv[1:] if argv is None else argv)
    return subprocess.run([sys.executable, __file__, *argv, "--child"], env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
