"""Tune the Ansor paper's single-operator suite on this CPU and time it beside its peers.

The suite of the paper's section 7.1 (shapes from its App. C, batch 1): C1D, C2D, C3D,
GMM, GRP, DIL, DEP, T2D, CAP, NRM, plus a fused matmul + bias + relu (MBR, the
auto-scheduler tutorial's subgraph) and a softmax. For each operator, one configuration:

1. the naive schedule (``ansor.build(dag)``, no state) is built, checked and timed,
   unless a run would take more than ``--naive-limit-s`` at ``NAIVE_GFLOPS_FLOOR``
   (then "skipped");
2. the task is tuned with ``SketchPolicy`` + ``XGBModel`` up to ``--trials`` measured
   programs in all: a log already holding this task's records is resumed (its programs
   preloaded with ``PreloadMeasuredStates``, never re-measured, and the cost model trained
   on them first), so a second run with the same budget only re-times;
3. the ``--top-k`` best records' programs (``ansor.load_best_records``; the first is what
   ``ansor.apply_best`` builds) are compiled, checked and timed once each, and the fastest
   is timed again for the table: a record's cost is one noisy 100 ms sample, so the best of
   a thousand is partly luck (an example from an earlier run is in
   ``benchmarks/results/tune_ops.md``);
4. the numpy formulations of ``benchmarks/numpy_peers.py`` (the fastest one is quoted) and,
   when ``import torch`` works, PyTorch's CPU operator are checked and timed on the same
   inputs.

    python benchmarks/tune_ops.py --trials 1000 [--ops GMM C2D ...] [--config-index 1]
        [--log-dir DIR] [--repeat 7] [--threads 2] [--target "llvm -mcpu=znver3"]

At the end, the tuning curves of the operators run (best GFLOP/s so far against trials and
wall time, ``ansor_py.plot.plot_tuning``) go to ``<log-dir>/tuning_curves.png`` beside
``summary.json``, when matplotlib is installed (``pip install 'ansor-py[plot]'``).

Every kernel and peer output is compared with ``ir.reference.evaluate`` on the task's
seeded random inputs, with the tolerance the tuner's measurements use (rtol 1e-4, atol
1e-4 times the output scale). Timings are medians of ``--repeat`` repeats of at least
``--min-repeat-ms`` each, with a pause before each so that OpenMP and OpenBLAS workers
stop spinning. The whole run happens in a child process whose OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS (and torch.set_num_threads) equal ``--threads``. OpenMP keeps its
default wait policy (workers spin briefly between calls, as TVM's thread pool does):
``OMP_WAIT_POLICY=PASSIVE`` would put them to sleep after every parallel region, and waking
them on every call dominates the small kernels (numbers in
``benchmarks/results/tune_ops.md``). Quote the ratios: absolute numbers move +-30% on a
shared machine.

GFLOP/s are ``dag.flop_ct`` (the declaration's FLOPs) over the time, for every column, so
the ratios are ratios of times. For T2D the declaration multiplies the inserted zeros too
(4x the useful work at stride 2), so peers that skip them (PyTorch, numpy's scatter-add)
can show more than the machine's peak.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy_peers import numpy_formulations, torch_formulation  # beside this script

import ansor_py as ansor
from ansor_py.cost_model import XGBModel
from ansor_py.measure.run_worker import compare_output
from ansor_py.plot import plot_tuning
from ansor_py.records import load_task_records
from ansor_py.search import PreloadMeasuredStates, SketchPolicy
from ansor_py.timing import time_repeats
from codegen.llvm import Kernel, empty_aligned, load_library
from codegen.llvm import build as llvm_build
from codegen.llvm.kernel import PACKED_FUNC_TYPE
from ir import te
from ir.loop_state.state import LoopState, initial_state
from ir.te import Tensor
from ir.topi.nn_norm import softmax
from ir.topi.workloads import PAPER_SUITE, matmul_bias_relu

DEFAULT_LOG_DIR = Path(__file__).resolve().parent / "out" / "tune_ops"
#: seconds of rest before each timing (OpenMP / OpenBLAS workers stop spinning)
SETTLE_S = 0.5
#: the slowest naive schedule measured on this machine kind ran at 0.28 GFLOP/s (C1D);
#: a naive run is estimated at this rate to decide whether to time it
NAIVE_GFLOPS_FLOOR = 0.25
#: a naive run longer than this is timed once (its checking run) instead of repeatedly
NAIVE_SINGLE_RUN_S = 1.0
#: torch's CPU wheel (PyTorch 2.13): a local wheel, ``pip install torch==2.13.0``
TORCH_HINT = "pip install torch==2.13.0"


class BenchmarkError(RuntimeError):
    """A bad option or operator name."""


# ------------------------------------------------------------------------------------------
# the suite


def softmax_workload(rows: int, cols: int, dtype: str = "float32") -> list[Tensor]:
    """Softmax over the last axis of a [rows, cols] matrix (topi ``softmax``: 4 ops)."""
    x = te.placeholder((rows, cols), dtype, name="x")
    return [x, softmax(x, axis=-1)]


@dataclass(frozen=True)
class Operator:
    """One operator of the suite: ``build(*config)`` gives its tensors at batch 1."""

    name: str
    build: Callable[..., list[Tensor]]
    configs: Sequence[tuple[int, ...]]
    #: the configuration run by default: GMM 1024^3; the others representative and
    #: tunable on a 2-core machine (naive runs well under a second, except GMM's)
    default_index: int
    what: str


_PAPER_DEFAULTS = {
    "C1D": (3, "1-D convolution, NWC"),
    "C2D": (2, "2-D convolution, NHWC"),
    "C3D": (1, "3-D convolution, NDHWC"),
    "GMM": (3, "matrix multiplication"),
    "GRP": (2, "group convolution, 4 groups"),
    "DIL": (2, "dilated convolution, dilation 2"),
    "DEP": (0, "depthwise convolution"),
    "T2D": (2, "transposed convolution"),
    "CAP": (0, "capsule convolution, 4x4 poses"),
    # 1024x1024 and up: the naive schedule's float32 running sum misses the tolerance
    "NRM": (1, "matrix 2-norm"),
}

SUITE: dict[str, Operator] = {
    **{
        name: Operator(name, functools.partial(PAPER_SUITE[name][0], 1), PAPER_SUITE[name][1], index, what)
        for name, (index, what) in _PAPER_DEFAULTS.items()
    },
    "MBR": Operator("MBR", matmul_bias_relu, PAPER_SUITE["GMM"][1], 3, "matmul + bias + relu (fused)"),
    "softmax": Operator(
        "softmax",
        softmax_workload,
        [(768, 64), (1536, 128), (2048, 128), (1024, 1024)],
        3,
        "softmax, last axis",
    ),
}


def resolve_config(op: str, index: int | None) -> tuple[int, tuple[int, ...]]:
    """(index, configuration) of ``op``: ``index``, or the operator's default when None."""
    if op not in SUITE:
        raise BenchmarkError(f"unknown op {op!r}; known: {', '.join(SUITE)}")
    entry = SUITE[op]
    chosen = entry.default_index if index is None else index
    if not 0 <= chosen < len(entry.configs):
        raise BenchmarkError(f"config index {chosen} out of range [0, {len(entry.configs)}) for {op}")
    return chosen, tuple(entry.configs[chosen])


def workload_tensors(op: str, config: Sequence[int]) -> list[Tensor]:
    """The tensors (inputs, then the output) of ``op`` with ``config`` at batch 1."""
    if op not in SUITE:
        raise BenchmarkError(f"unknown op {op!r}; known: {', '.join(SUITE)}")
    return SUITE[op].build(*config)


# ------------------------------------------------------------------------------------------
# checking and timing


def check(what: str, got: np.ndarray, expected: np.ndarray, errors: list[str]) -> None:
    """Compare with the reference as the tuner does; a mismatch is appended to ``errors``."""
    message = compare_output(what, got, expected, 1e-4, 1e-4)
    if message is not None:
        errors.append(f"{what}: {message}")
        print(f"  MISMATCH {message}", flush=True)


def time_call(fn: Callable[[], object], args: argparse.Namespace) -> float:
    """Median seconds per call, after a pause for spinning threads to settle."""
    time.sleep(SETTLE_S)
    costs = time_repeats(fn, number=1, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms)
    return float(np.median(costs))


class PackedCall:
    """A compiled kernel bound to its arrays: a call runs the packed entry on prebuilt
    pointers, as the tuner's runner times candidates. (A ``Kernel`` call re-checks every
    array first, about 8 us, which would dominate the small operators.)"""

    def __init__(self, kernel: Kernel, path: str, arrays: list[np.ndarray]):
        kernel.check_arguments(arrays)  # shapes, dtypes, contiguity: once, here
        self.kernel = kernel  # owns the loaded library
        self.name = kernel.name
        address = ctypes.cast(getattr(ctypes.CDLL(path), kernel.name), ctypes.c_void_p).value
        assert address is not None, kernel.name
        self.entry = PACKED_FUNC_TYPE(address)
        self.arrays = arrays
        self.pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])

    def __call__(self) -> None:
        status = self.entry(self.pointers, len(self.arrays))
        if status != 0:
            raise RuntimeError(f"kernel '{self.name}' returned error status {status}")


def aligned_copy(array: np.ndarray) -> np.ndarray:
    """``array``'s values in an ``empty_aligned`` array."""
    copy = empty_aligned(array.shape, array.dtype)
    copy[...] = array
    return copy


def compile_packed(
    dag: ansor.ComputeDAG,
    state: LoopState,
    name: str,
    directory: Path,
    arrays: list[np.ndarray],
    target: str = "llvm",
) -> PackedCall:
    """``state`` lowered, compiled for ``target`` to a shared library in ``directory`` (as
    the tuner's builder does), loaded and bound to ``arrays``."""
    module = llvm_build(ansor.lower(dag, state, name=name), target)
    path = str(module.export_library(directory / f"{name}.so"))
    return PackedCall(load_library(path, name, module.func.params, module.written), path, arrays)


@dataclass
class Row:
    """One operator's results (seconds per run; None where not measured)."""

    op: str
    index: int
    config: tuple[int, ...]
    flop: float
    tuned_s: float | None = None
    #: the quoted program's median cost, as the tuner measured it
    tuner_s: float | None = None
    #: the table's program: its rank (1 = best) among the records by the tuner's cost
    tuned_rank: int = 0
    naive_s: float | None = None
    naive_note: str = ""
    numpy_s: float | None = None
    numpy_label: str = ""
    torch_s: float | None = None
    torch_label: str = ""
    tune_s: float = 0.0
    trials_run: int = 0
    trials_total: int = 0
    errors: list[str] = field(default_factory=list)

    def gflops(self, seconds: float | None) -> float | None:
        return None if seconds is None else self.flop / seconds / 1e9


def time_naive(
    dag: ansor.ComputeDAG, arrays: list[np.ndarray], expected: np.ndarray, row: Row, args: argparse.Namespace
) -> None:
    """Build, check and time the naive schedule, unless its estimated run is too long."""
    estimate = row.flop / (NAIVE_GFLOPS_FLOOR * 1e9)
    if estimate > args.naive_limit_s:
        row.naive_note = f"skipped (est. {estimate:.0f} s/run)"
        print(f"  naive: {row.naive_note}", flush=True)
        return
    call = compile_packed(dag, initial_state(dag), f"{row.op}_naive", args.work_dir, arrays, args.target)
    out = arrays[-1]
    out.fill(np.nan)
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    check(f"{row.op} naive kernel", out, expected, row.errors)
    row.naive_s = first if first > NAIVE_SINGLE_RUN_S else time_call(call, args)
    print(f"  naive: {row.gflops(row.naive_s):.2f} GFLOP/s", flush=True)


def tune(task: ansor.SearchTask, log: Path, row: Row, args: argparse.Namespace) -> None:
    """Tune ``task`` until ``log`` holds ``args.trials`` of its records (resuming)."""
    inputs, results = load_task_records(log, task)
    remaining = args.trials - len(inputs)
    if remaining < 2:  # one trial or fewer would be a cost-model-only round
        print(f"  tuning: {len(inputs)} records already in {log}, budget {args.trials}: nothing to do")
        row.trials_total = len(inputs)
        return
    model = XGBModel()
    callbacks = []
    if inputs:
        model.update(inputs, results)  # retrain the cost model on the log first
        callbacks.append(PreloadMeasuredStates(str(log)))
    policy = SketchPolicy(task, model, seed=args.seed, verbose=args.verbose, init_search_callbacks=callbacks)
    options = ansor.TuningOptions(
        num_measure_trials=remaining,
        num_measures_per_round=64,
        verbose=args.verbose,
        measure_callbacks=[ansor.RecordToFile(str(log))],
    )
    print(f"  tuning: {remaining} trials ({len(inputs)} resumed from {log})", flush=True)
    start = time.perf_counter()
    ansor.auto_schedule(task, options, search_policy=policy)
    row.tune_s = time.perf_counter() - start
    row.trials_total = len(load_task_records(log, task)[0])
    row.trials_run = row.trials_total - len(inputs)
    print(f"  tuned: {row.trials_run} programs measured in {row.tune_s:.1f} s", flush=True)


def time_peers(
    row: Row,
    inputs: list[np.ndarray],
    expected: np.ndarray,
    args: argparse.Namespace,
    torch: ModuleType | None,
) -> None:
    """Check and time the numpy formulations (the fastest is kept) and torch's operator."""
    out = np.empty_like(expected)
    for formulation in numpy_formulations(row.op, row.config):
        out.fill(np.nan)
        formulation.run(inputs, out)
        check(f"{row.op} numpy '{formulation.label}'", out, expected, row.errors)
        seconds = time_call(functools.partial(formulation.run, inputs, out), args)
        print(f"  numpy {formulation.label}: {row.flop / seconds / 1e9:.2f} GFLOP/s", flush=True)
        if row.numpy_s is None or seconds < row.numpy_s:
            row.numpy_s, row.numpy_label = seconds, formulation.label
    if torch is None:
        return
    peer = torch_formulation(row.op, row.config, torch)
    prepared = peer.prepare(inputs)
    with torch.inference_mode():
        check(f"{row.op} torch '{peer.label}'", peer.to_numpy(peer.run(*prepared)), expected, row.errors)
        row.torch_s = time_call(lambda: peer.run(*prepared), args)
    row.torch_label = peer.label
    print(f"  torch {peer.label}: {row.gflops(row.torch_s):.2f} GFLOP/s", flush=True)


def pick_fastest(
    dag: ansor.ComputeDAG,
    states: Sequence[LoopState],
    arrays: list[np.ndarray],
    expected: np.ndarray,
    row: Row,
    args: argparse.Namespace,
) -> PackedCall | None:
    """Compile, check and time each of ``states`` once; the fastest correct one's call (its
    1-based rank goes to ``row.tuned_rank``), None when none is correct (the mismatches are
    in ``row.errors``). The caller times it afresh, so the table does not quote the lucky
    sample that won this pick."""
    timed: list[tuple[float, int, PackedCall]] = []
    for rank, state in enumerate(states, start=1):
        call = compile_packed(dag, state, f"{row.op}_tuned_{rank}", args.work_dir, arrays, args.target)
        arrays[-1].fill(np.nan)
        call()
        errors_before = len(row.errors)
        check(f"{row.op} record {rank}", arrays[-1], expected, row.errors)
        if len(row.errors) == errors_before:
            timed.append((time_call(call, args), rank, call))
    if not timed:
        return None
    speeds = ", ".join(f"{row.gflops(seconds):.1f}" for seconds, _, _ in timed)
    print(f"  best records re-timed: {speeds} GFLOP/s", flush=True)
    _, row.tuned_rank, call = min(timed, key=lambda entry: entry[0])
    return call


def run_op(op: str, args: argparse.Namespace, torch: ModuleType | None) -> Row:
    """Naive, tuned, numpy and torch timings of one operator (see the module docstring)."""
    index, config = resolve_config(op, args.config_index)
    dag = ansor.ComputeDAG(workload_tensors(op, config))
    task = ansor.SearchTask(compute_dag=dag, target=args.target)
    row = Row(op, index, config, dag.flop_ct)
    print(f"== {op} config {index} {config}: {dag.flop_ct / 1e6:.1f} MFLOP", flush=True)
    inputs, (expected,) = task.reference()
    # 64-byte aligned, as the tuner measured and as TVM allocates (numpy gives 16)
    arrays = [aligned_copy(a) for a in inputs] + [empty_aligned(expected.shape, expected.dtype)]
    time_naive(dag, arrays, expected, row, args)
    log = op_log(args, op, index)
    tune(task, log, row, args)
    top = []
    if log.is_file():
        top = ansor.load_best_records(log, args.top_k, task.workload_key, task.target, tasks=[task])
    if not top:
        row.errors.append(f"{op} tuned kernel: no valid record in {log}")
        print(f"  no valid record in {log}", flush=True)
    elif (call := pick_fastest(dag, [inp.state for inp, _ in top], arrays, expected, row, args)) is None:
        print(f"  none of the best {len(top)} records computes the right result", flush=True)
    else:
        row.tuner_s = top[row.tuned_rank - 1][1].median_cost
        row.tuned_s = time_call(call, args)
        print(
            f"  tuned kernel: {row.gflops(row.tuned_s):.2f} GFLOP/s, record {row.tuned_rank} of the "
            f"best {len(top)} (the tuner measured it at {row.gflops(row.tuner_s):.2f})",
            flush=True,
        )
    time_peers(row, inputs, expected, args, torch)
    return row


# ------------------------------------------------------------------------------------------
# report


def format_table(rows: Sequence[Row], threads: int) -> str:
    """The table: GFLOP/s tuned and naive, ratios to numpy and torch, tuning time, trials."""

    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def ratio(ours: float | None, theirs: float | None) -> str:
        return "-" if ours is None or theirs is None else f"{theirs / ours:.2f}x"

    header = (
        f"{'op':<8} {'config':<24} {'GFLOP/s':>8} {'naive':>7} {'vs naive':>9} {'numpy':>7} "
        f"{'vs numpy':>9} {'torch':>7} {'vs torch':>9} {'tune s':>7} {'trials':>12} {'record':>6}"
    )
    lines = [
        f"ansor-py single operators, {threads} thread(s); GFLOP/s, ratios = our speed / theirs; "
        "record: the rank of the quoted program among the best records by the tuner's cost",
        header,
    ]
    lines.append("-" * len(header))
    for r in rows:
        config = f"{r.index}:" + ",".join(str(c) for c in r.config)
        trials = f"{r.trials_total}" + (f" (+{r.trials_run})" if r.trials_run != r.trials_total else "")
        naive = num(r.gflops(r.naive_s), 2) if r.naive_s is not None else "skip"
        lines.append(
            f"{r.op:<8} {config:<24} {num(r.gflops(r.tuned_s)):>8} {naive:>7} "
            f"{ratio(r.tuned_s, r.naive_s):>9} {num(r.gflops(r.numpy_s)):>7} "
            f"{ratio(r.tuned_s, r.numpy_s):>9} {num(r.gflops(r.torch_s)):>7} "
            f"{ratio(r.tuned_s, r.torch_s):>9} {r.tune_s:>7.0f} {trials:>12} {r.tuned_rank or '-':>6}"
        )
    lines.append("")
    for r in rows:
        peers = f"numpy: {r.numpy_label}" + (f"; torch: {r.torch_label}" if r.torch_label else "")
        note = f"; naive {r.naive_note}" if r.naive_note else ""
        lines.append(f"{r.op:<8} {SUITE[r.op].what}; {peers}{note}")
    for r in rows:
        lines.extend(f"ERROR {e}" for e in r.errors)
    return "\n".join(lines)


def save_summary(rows: Sequence[Row], args: argparse.Namespace) -> Path:
    """Merge this run's rows into ``LOG_DIR/summary.json`` (keyed by op and config)."""
    path = args.log_dir / "summary.json"
    summary: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    for r in rows:
        summary[f"{r.op}_{r.index}"] = {**asdict(r), "threads": args.threads, "time": time.time()}
    path.write_text(json.dumps(summary, indent=1))
    return path


def op_log(args: argparse.Namespace, op: str, index: int) -> Path:
    """The tuning log of ``op``'s configuration ``index``."""
    return args.log_dir / f"{op}_{index}.json"


def save_figure(rows: Sequence[Row], args: argparse.Namespace) -> None:
    """The tuning curves of this run's operators (``ansor_py.plot.plot_tuning``: best GFLOP/s
    against trials and wall time) as ``tuning_curves.png`` beside the summary; a note
    instead when matplotlib is missing or no log has a valid record."""
    logged = [r for r in rows if op_log(args, r.op, r.index).is_file()]
    tasks = [
        ansor.SearchTask(
            compute_dag=ansor.ComputeDAG(workload_tensors(r.op, r.config)),
            target=args.target,
            desc=f"{r.op} {r.config}",
        )
        for r in logged
    ]
    path = args.log_dir / "tuning_curves.png"
    try:
        plot_tuning([op_log(args, r.op, r.index) for r in logged], path, tasks=tasks)
    except (ImportError, ValueError) as error:
        print(f"no tuning-curve figure: {error}")
    else:
        print(f"tuning curves: {path}")


def import_torch(threads: int) -> ModuleType | None:
    """PyTorch with ``threads`` intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        print(f"PyTorch not installed ({TORCH_HINT} to compare with it)", flush=True)
        return None
    torch.set_num_threads(threads)
    return torch


def run_child(args: argparse.Namespace) -> int:
    args.log_dir.mkdir(parents=True, exist_ok=True)
    torch = import_torch(args.threads)
    with tempfile.TemporaryDirectory(prefix="tune_ops_") as work_dir:
        args.work_dir = Path(work_dir)  # the kernels' shared libraries
        rows = []
        for op in args.ops:
            rows.append(run_op(op, args, torch))
            summary = save_summary(rows[-1:], args)  # each operator as it ends: runs are long
    print()
    print(format_table(rows, args.threads))
    print(f"\nsummary: {summary}")
    save_figure(rows, args)
    return 1 if any(r.errors for r in rows) else 0


# ------------------------------------------------------------------------------------------
# command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="measured programs per operator, in all")
    parser.add_argument("--ops", nargs="+", choices=list(SUITE), default=list(SUITE), metavar="OP")
    parser.add_argument(
        "--config-index",
        type=int,
        default=None,
        help="paper configuration 0..3 for every op (default: per op)",
    )
    parser.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="tuning logs, one per op")
    parser.add_argument("--top-k", type=int, default=5, help="best records re-timed; the fastest is quoted")
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats (median quoted)")
    parser.add_argument("--min-repeat-ms", type=float, default=100.0, help="least time of one repeat")
    parser.add_argument("--threads", type=int, default=2, help="threads for ours, OpenBLAS and torch")
    parser.add_argument("--naive-limit-s", type=float, default=10.0, help="skip longer naive runs")
    parser.add_argument("--seed", type=int, default=None, help="search seed (default: random)")
    parser.add_argument(
        "--target",
        default="llvm",
        help='LLVM target to tune and build for (e.g. "llvm -mcpu=znver3": AVX2 only, 16 registers)',
    )
    parser.add_argument("--verbose", type=int, choices=[0, 1], default=0, help="tuning progress")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("trials", "repeat", "threads", "top_k"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    try:
        for op in args.ops:
            resolve_config(op, args.config_index)
    except BenchmarkError as error:
        parser.error(str(error))
    return args


#: signals ``run_as_child`` passes on to the child
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def run_as_child(script: str, argv: Sequence[str] | None, threads: int) -> int:
    """``script`` run again with ``argv`` (None: this process's) plus ``--child``, in a process
    whose OpenMP, OpenBLAS and MKL pools have ``threads`` threads (they read the variables
    once, at start) and whose OpenMP keeps its default wait policy (module docstring); the
    child's exit status. A SIGTERM or SIGHUP sent to this process is passed on to the child
    (which a killed parent would leave running, tuning on), and this process waits for it;
    a terminal's Ctrl-C reaches both already."""
    count = str(threads)
    env = dict(os.environ, OMP_NUM_THREADS=count, OPENBLAS_NUM_THREADS=count, MKL_NUM_THREADS=count)
    env.pop("OMP_WAIT_POLICY", None)
    argv = list(sys.argv[1:] if argv is None else argv)
    child = subprocess.Popen([sys.executable, script, *argv, "--child"], env=env)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_child(args) if args.child else run_as_child(__file__, argv, args.threads)


if __name__ == "__main__":
    sys.exit(main())
