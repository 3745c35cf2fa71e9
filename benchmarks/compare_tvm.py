"""ansor-py beside TVM MetaSchedule, its strongest peer, in one run.

Tunes GEMM 1024 (float32) and the ResNet-50 C2D layer of the Ansor paper (Sec. 7.1: N=1,
56x56, 64 -> 64 channels, 3x3, stride 1, padding 1) with TVM MetaSchedule and with
ansor-py at the same trial budgets, then re-times every best kernel back to back in the
same run, beside numpy (OpenBLAS), and prints one table:

    python benchmarks/compare_tvm.py [--trials 64 200] [--workloads gemm c2d]
        [--skip-tvm] [--skip-ansor] [--work-dir benchmarks/out/compare_tvm]

Both sides tune the same declaration: C2D is NHWC data with an HWIO kernel and an
explicit zero-pad stage on both sides (``ir.topi.workloads.conv2d_layer(layout="NHWC")``
here, its ``tvm.te`` twin in ``tvm_side/tune_metaschedule.py``). Each budget is a fresh
tuning run (the budgets do not share records). The tuning wall time is the time of
``auto_schedule`` (ansor-py) and of ``ms.tune_tir`` (TVM), both with 64 measurements per round.

The TVM side runs as a subprocess with the python of its own virtual environment
(``--tvm-python``, default ``benchmarks/.tvm-venv``, created from
``tvm_side/requirements.txt`` when missing: apache-tvm 0.27 is not a dependency of
ansor-py). Its output goes to a log file in the work directory and its result comes back
as one ``RESULT {json}`` line.

Timing protocol (the machine is shared and noisy): once all tuning is done,
every kernel is checked on random inputs against a numpy float64 reference (relative
error under 1e-4 of the output scale), then timed in ``--rounds`` interleaved rounds of
``--repeats`` repeats (each at least ``--min-repeat-ms``), with a pause before each timing
so that OpenBLAS and OpenMP threads stop spinning; the table quotes the median over all
repeats. ``--retime-only`` re-times the kernels of an earlier run in ``--work-dir``. The
numpy anchor is ``A @ B`` for GEMM and im2col plus one OpenBLAS matmul for C2D. Quote
the ratios; absolute numbers move +-30% (and more) with the load of neighbours.

Reference numbers of MetaSchedule from an earlier run, with the machine and command:
``benchmarks/results/compare_tvm.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansor_py.records import RecordToFile
from ansor_py.search_task import SearchTask
from ansor_py.timing import time_repeats
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule
from ir.compute_dag import ComputeDAG
from ir.te import Tensor
from ir.topi.workloads import conv2d_layer, gemm

BENCH_DIR = Path(__file__).resolve().parent
TVM_SIDE = BENCH_DIR / "tvm_side" / "tune_metaschedule.py"
TVM_REQUIREMENTS = BENCH_DIR / "tvm_side" / "requirements.txt"
DEFAULT_VENV = BENCH_DIR / ".tvm-venv"
DEFAULT_WORK_DIR = BENCH_DIR / "out" / "compare_tvm"
RESULT_PREFIX = "RESULT "
# N, H, W, CI, CO, k, stride, padding: the same tuple as tvm_side's C2D_SHAPE.
C2D_SHAPE = (1, 56, 56, 64, 64, 3, 1, 1)
SETTLE_S = 1.0


class CompareError(RuntimeError):
    """The TVM side failed, or a tuned kernel is missing or wrong."""


# ---------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One benchmark operator: its ansor-py tensors, FLOP count and numpy formulations.

    ``reference`` computes the output in float64 (the check); ``anchor`` is the fastest
    plain numpy formulation in float32 (the speed anchor), writing into ``out``.
    """

    name: str
    tag: str
    label: str
    flop: float
    tensors: Callable[[], list[Tensor]]
    reference: Callable[[list[np.ndarray]], np.ndarray]
    anchor: Callable[[list[np.ndarray], np.ndarray], object]
    anchor_label: str


def im2col(data: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """NHWC ``data`` as the (N*OH*OW, k*k*C) matrix of its padded k x k windows."""
    n, _, _, c = data.shape
    padded = np.pad(data, ((0, 0), (p, p), (p, p), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))[:, ::s, ::s]
    oh, ow = windows.shape[1], windows.shape[2]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, k * k * c)


def conv_output_shape() -> tuple[int, int, int, int]:
    n, h, w, _, co, k, s, p = C2D_SHAPE
    return n, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, co


def conv_reference(inputs: list[np.ndarray]) -> np.ndarray:
    data, kernel = (x.astype(np.float64) for x in inputs)
    _, _, _, ci, co, k, s, p = C2D_SHAPE
    return (im2col(data, k, s, p) @ kernel.reshape(k * k * ci, co)).reshape(conv_output_shape())


def conv_anchor(inputs: list[np.ndarray], out: np.ndarray) -> None:
    data, kernel = inputs
    _, _, _, ci, co, k, s, p = C2D_SHAPE
    np.matmul(im2col(data, k, s, p), kernel.reshape(k * k * ci, co), out=out.reshape(-1, co))


def make_workload(name: str, gemm_size: int) -> Workload:
    if name == "gemm":
        n = gemm_size
        return Workload(
            name="gemm",
            tag=f"gemm{n}",
            label=f"GEMM {n}",
            flop=2.0 * n**3,
            tensors=lambda: gemm(n, n, n),
            reference=lambda xs: xs[0].astype(np.float64) @ xs[1].astype(np.float64),
            anchor=lambda xs, out: np.matmul(xs[0], xs[1], out=out),
            anchor_label="numpy A @ B",
        )
    n, h, w, ci, co, k, s, p = C2D_SHAPE
    _, oh, ow, _ = conv_output_shape()
    return Workload(
        name="c2d",
        tag="c2d",
        label=f"C2D {h}x{w} {ci}->{co} {k}x{k}",
        flop=2.0 * n * oh * ow * co * ci * k * k,
        tensors=lambda: conv2d_layer(n, h, w, ci, co, k, s, p, layout="NHWC"),
        reference=conv_reference,
        anchor=conv_anchor,
        anchor_label="numpy im2col + matmul",
    )


def random_arrays(tensors: Sequence[Tensor], seed: int) -> list[np.ndarray]:
    """Uniform(-1, 1) inputs, then a NaN-filled output (a kernel that skips it fails)."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(x) for x in t.shape) for t in tensors]
    arrays = [rng.uniform(-1.0, 1.0, size=shape).astype(np.float32) for shape in shapes[:-1]]
    return [*arrays, np.full(shapes[-1], np.nan, dtype=np.float32)]


def check(what: str, got: np.ndarray, expected: np.ndarray) -> float:
    """The error of ``got`` relative to the output scale; raises past 1e-4."""
    scale = float(np.max(np.abs(expected)))
    error = float(np.max(np.abs(got - expected))) / scale
    if not np.isfinite(error) or error > 1e-4:
        raise CompareError(
            f"{what} is wrong: max error {error:.3g} of the output scale {scale:.3g}, limit 1e-4"
        )
    return error


# ---------------------------------------------------------------------------------------
# The TVM side (a subprocess in its own virtual environment)
# ---------------------------------------------------------------------------------------


def ensure_tvm_python(given: Path | None) -> Path:
    """The python of the TVM venv; creates ``benchmarks/.tvm-venv`` when it is missing."""
    if given is not None:
        if not given.exists():
            raise CompareError(f"--tvm-python {given} does not exist")
        return given
    python = DEFAULT_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {DEFAULT_VENV} with {TVM_REQUIREMENTS.name} (apache-tvm 0.27) ...", flush=True)
    venv.create(DEFAULT_VENV, with_pip=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(TVM_REQUIREMENTS)], check=True)
    return python


def run_tvm_side(python: Path, args: list[str], log_path: Path) -> dict[str, object]:
    """Run ``tune_metaschedule.py args``, output to ``log_path``; return its RESULT."""
    command = [str(python), str(TVM_SIDE), *args]
    with log_path.open("w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    lines = log_path.read_text().splitlines()
    results = [line for line in lines if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not results:
        tail = "\n".join(lines[-15:])
        raise CompareError(f"TVM side exited with {proc.returncode} (log {log_path}):\n{tail}")
    return json.loads(results[-1][len(RESULT_PREFIX) :])


def tvm_common_args(
    workload: Workload, gemm_size: int, work_dir: Path, args: argparse.Namespace
) -> list[str]:
    return [
        f"--workload={workload.name}",
        f"--gemm-size={gemm_size}",
        f"--work-dir={work_dir}",
        f"--num-cores={os.cpu_count() or 1}",
        f"--repeats={args.repeats}",
        f"--min-repeat-ms={args.min_repeat_ms}",
        f"--seed={args.seed}",
    ]


# ---------------------------------------------------------------------------------------
# The ansor-py side
# ---------------------------------------------------------------------------------------


def ansor_task(workload: Workload) -> SearchTask:
    return SearchTask(compute_dag=ComputeDAG(workload.tensors()), target="llvm")


def tune_ansor(workload: Workload, trials: int, log_path: Path) -> float:
    """A fresh ansor-py tuning run of ``trials`` measurements; returns its wall time."""
    log_path.unlink(missing_ok=True)
    task = ansor_task(workload)
    options = TuningOptions(num_measure_trials=trials, measure_callbacks=[RecordToFile(str(log_path))])
    start = time.perf_counter()
    auto_schedule(task, options)
    return time.perf_counter() - start


def checked_ansor_kernel(workload: Workload, log_path: Path, seed: int) -> Callable[[], object]:
    """The best record of ``log_path`` built, checked against numpy, ready to time."""
    task = ansor_task(workload)
    kernel = apply_best(task, str(log_path))
    arrays = random_arrays(task.compute_dag.tensors, seed)
    kernel(*arrays)
    check(f"ansor-py kernel for {workload.label}", arrays[-1], workload.reference(arrays[:-1]))
    return lambda: kernel(*arrays)


def checked_anchor(workload: Workload, seed: int) -> Callable[[], object]:
    """numpy's formulation of ``workload``, checked like the kernels, ready to time."""
    arrays = random_arrays(workload.tensors(), seed)
    inputs, out = arrays[:-1], arrays[-1]
    workload.anchor(inputs, out)
    check(f"{workload.anchor_label} for {workload.label}", out, workload.reference(inputs))
    return lambda: workload.anchor(inputs, out)


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def load_tuning(path: Path) -> dict[str, dict[str, object]]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_tuning(path: Path, tuning: dict[str, dict[str, object]]) -> None:
    path.write_text(json.dumps(tuning, indent=1))


def tune_all(args: argparse.Namespace, workloads: list[Workload], tvm_python: Path | None) -> None:
    """Tune every (workload, budget) on each side; wall times go to tuning.json."""
    tuning_file = args.work_dir / "tuning.json"
    tuning = load_tuning(tuning_file)
    for workload in workloads:
        for trials in args.trials:
            key = f"{workload.tag}/{trials}"
            if tvm_python is not None:
                tvm_dir = args.work_dir / "tvm" / f"{workload.tag}_{trials}"
                shutil.rmtree(tvm_dir, ignore_errors=True)
                tvm_dir.mkdir(parents=True)
                print(
                    f"[TVM] tuning {workload.label}, {trials} trials (log {tvm_dir / 'tune.log'})", flush=True
                )
                cli = [*tvm_common_args(workload, args.gemm_size, tvm_dir, args), f"--trials={trials}"]
                try:
                    result = run_tvm_side(tvm_python, cli, tvm_dir / "tune.log")
                except CompareError as err:
                    print(f"[TVM] failed: {err}", flush=True)
                    result = {"error": str(err)}
                tuning[f"tvm/{key}"] = result
                save_tuning(tuning_file, tuning)
                if "tune_wall_s" in result:
                    print(
                        f"[TVM] done in {result['tune_wall_s']:.1f} s: {result['valid_records']} of "
                        f"{result['records']} records valid, best {result['gflops']:.1f} GFLOP/s",
                        flush=True,
                    )
            if not args.skip_ansor:
                log_path = args.work_dir / "ansor" / f"{workload.tag}_{trials}.json"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                print(f"[ansor-py] tuning {workload.label}, {trials} trials (log {log_path})", flush=True)
                wall = tune_ansor(workload, trials, log_path)
                tuning[f"ansor/{key}"] = {"tune_wall_s": wall, "log": str(log_path)}
                save_tuning(tuning_file, tuning)
                print(f"[ansor-py] done in {wall:.1f} s", flush=True)


def retime_all(
    args: argparse.Namespace, workloads: list[Workload], tvm_python: Path | None
) -> list[dict[str, object]]:
    """Re-time every tuned kernel and the numpy anchors; one row per (workload, budget).

    The timings are interleaved: ``--rounds`` rounds, each timing every kernel for
    ``--repeats`` repeats, so that a burst of load from a neighbour hits all of them
    alike; the median is taken over all repeats of all rounds.
    """
    tuning = load_tuning(args.work_dir / "tuning.json")
    anchors = {w.tag: checked_anchor(w, args.seed) for w in workloads}
    ansor_kernels: dict[str, Callable[[], object]] = {}
    tvm_keys: set[str] = set()
    for workload in workloads:
        for trials in args.trials:
            key = f"{workload.tag}/{trials}"
            ansor_log = tuning.get(f"ansor/{key}", {}).get("log")
            if not args.skip_ansor and ansor_log is not None:
                ansor_kernels[f"ansor/{key}"] = checked_ansor_kernel(
                    workload, Path(str(ansor_log)), args.seed
                )
            if tvm_python is not None and "tune_wall_s" in tuning.get(f"tvm/{key}", {}):
                tvm_keys.add(f"tvm/{key}")
    costs: dict[str, list[float]] = {}

    def timed(key: str, fn: Callable[[], object]) -> None:
        time.sleep(SETTLE_S)
        costs.setdefault(key, []).extend(
            time_repeats(fn, number=1, repeat=args.repeats, min_repeat_ms=args.min_repeat_ms)
        )

    for round_no in range(args.rounds):
        print(f"re-timing, round {round_no + 1} of {args.rounds}", flush=True)
        for workload in workloads:
            timed(f"numpy/{workload.tag}", anchors[workload.tag])
            for trials in args.trials:
                key = f"{workload.tag}/{trials}"
                if f"tvm/{key}" in tvm_keys and tvm_python is not None:
                    time.sleep(SETTLE_S)
                    tvm_dir = args.work_dir / "tvm" / f"{workload.tag}_{trials}"
                    cli = [*tvm_common_args(workload, args.gemm_size, tvm_dir, args), "--time-only"]
                    try:
                        result = run_tvm_side(tvm_python, cli, tvm_dir / f"time_{round_no}.log")
                        costs.setdefault(f"tvm/{key}", []).extend(result["costs_s"])  # type: ignore[arg-type]
                    except CompareError as err:
                        print(f"[TVM] re-timing failed: {err}", flush=True)
                        tvm_keys.discard(f"tvm/{key}")
                if f"ansor/{key}" in ansor_kernels:
                    timed(f"ansor/{key}", ansor_kernels[f"ansor/{key}"])

    def gflops(workload: Workload, key: str) -> float | None:
        return workload.flop / float(np.median(costs[key])) / 1e9 if costs.get(key) else None

    rows = []
    for workload in workloads:
        for trials in args.trials:
            key = f"{workload.tag}/{trials}"
            row: dict[str, object] = {
                "workload": workload.label,
                "trials": trials,
                "flop": workload.flop,
                "numpy_gflops": gflops(workload, f"numpy/{workload.tag}"),
                "numpy_formulation": workload.anchor_label,
                "tvm_gflops": gflops(workload, f"tvm/{key}") if f"tvm/{key}" in tvm_keys else None,
                "tvm_tune_s": tuning.get(f"tvm/{key}", {}).get("tune_wall_s"),
                "ansor_gflops": gflops(workload, f"ansor/{key}"),
                "ansor_tune_s": tuning.get(f"ansor/{key}", {}).get("tune_wall_s"),
                "repeats": {side: len(costs.get(f"{side}/{key}", [])) for side in ("tvm", "ansor")},
            }
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, object]]) -> str:
    """The comparison table: one line per (workload, budget); '-' where a side is absent."""

    def num(row: dict[str, object], key: str, digits: int) -> str:
        value = row.get(key)
        return "-" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]

    header = (
        f"{'workload':<24} {'trials':>6} {'TVM GFLOP/s':>12} {'ansor GFLOP/s':>14} {'ansor/TVM':>9} "
        f"{'TVM tune s':>11} {'ansor tune s':>13} {'numpy GFLOP/s':>14}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = "-"
        if row.get("tvm_gflops") and row.get("ansor_gflops"):
            ratio = f"{float(row['ansor_gflops']) / float(row['tvm_gflops']):.2f}x"  # type: ignore[arg-type]
        lines.append(
            f"{row['workload']:<24} {row['trials']:>6} {num(row, 'tvm_gflops', 1):>12} "
            f"{num(row, 'ansor_gflops', 1):>14} {ratio:>9} {num(row, 'tvm_tune_s', 0):>11} "
            f"{num(row, 'ansor_tune_s', 0):>13} {num(row, 'numpy_gflops', 1):>14}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[64, 200], help="trial budgets")
    parser.add_argument("--workloads", nargs="+", choices=["gemm", "c2d"], default=["gemm", "c2d"])
    parser.add_argument("--skip-tvm", action="store_true", help="leave TVM MetaSchedule out")
    parser.add_argument("--skip-ansor", action="store_true", help="leave ansor-py out")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="logs and databases")
    parser.add_argument("--retime-only", action="store_true", help="re-time the kernels of a previous run")
    parser.add_argument("--gemm-size", type=int, default=1024, help="N = M = K of the GEMM")
    parser.add_argument("--tvm-python", type=Path, default=None, help="python of a TVM 0.27 venv")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved re-timing rounds")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats per round")
    parser.add_argument("--min-repeat-ms", type=int, default=200, help="least time of one repeat")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for trials in args.trials:
        if trials < 1:
            parser.error(f"--trials {trials} must be at least 1")
    if args.gemm_size < 1:
        parser.error(f"--gemm-size {args.gemm_size} must be at least 1")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} must be at least 1")
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds} must be at least 1")
    if args.skip_tvm and args.skip_ansor:
        parser.error("--skip-tvm and --skip-ansor together leave nothing to compare")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    workloads = [make_workload(name, args.gemm_size) for name in args.workloads]
    tvm_python = None if args.skip_tvm else ensure_tvm_python(args.tvm_python)
    if not args.retime_only:
        tune_all(args, workloads, tvm_python)
    rows = retime_all(args, workloads, tvm_python)
    (args.work_dir / "results.json").write_text(json.dumps(rows, indent=1))
    print()
    print(
        f"kernels re-timed after tuning: median of {args.rounds} x {args.repeats} interleaved repeats, "
        f"{os.cpu_count()} cores"
    )
    print(format_table(rows))
    wanted = [
        key for key, skip in (("tvm_gflops", args.skip_tvm), ("ansor_gflops", args.skip_ansor)) if not skip
    ]
    missing = [
        f"{row['workload']}/{row['trials']}: {key}" for row in rows for key in wanted if key not in row
    ]
    if missing:
        print(f"missing results (see the logs in {args.work_dir}): {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
