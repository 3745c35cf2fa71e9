"""Tune one workload with TVM MetaSchedule and time its best kernel (runs in the TVM venv).

This is the peer side of ``benchmarks/compare_tvm.py``. It runs with the python of the
benchmark's own virtual environment (apache-tvm 0.27, see ``requirements.txt`` beside
it) and never imports ansor-py. The workloads are declared here with ``tvm.te`` exactly
as ansor-py's ``ir.topi.workloads`` declares them, so both tuners see the same program:

- ``gemm``: ``C[i, j] = sum_k A[i, k] * B[k, j]``, A (N, K), B (K, M), float32;
- ``c2d``: the ResNet-50 layer of the Ansor paper (Sec. 7.1, C2D), NHWC data
  (1, 56, 56, 64), HWIO kernel (3, 3, 64, 64), stride 1, padding 1, through an explicit
  zero-pad stage, float32 output (1, 56, 56, 64).

Two modes:

- tune (default): ``ms.tune_tir`` with ``--trials`` measured trials (64 per round, the
  XGBoost cost model and evolutionary search, TVM's defaults), the JSON database kept in
  ``--work-dir``; reports the tuning wall time, then compiles, checks and times the best;
- ``--time-only``: compile the best schedule of an existing database in ``--work-dir``,
  check it against numpy and time it (compare_tvm.py re-times every kernel this way once
  all tuning is over, so TVM, ansor-py and OpenBLAS are timed back to back).

The kernel is checked on random inputs against a numpy reference (relative error under
1e-4 of the output's scale) before it is timed; timing is ``time_evaluator`` with
``--repeats`` repeats of at least ``--min-repeat-ms`` each, reported as the median.

Three things TVM 0.27 needs here: targets are JSON dicts (the ``"llvm -mcpu=..."`` string
form is gone); apache-tvm-ffi is pinned to 0.1.14.post0 (0.1.15 segfaults in
save_json); and the LocalBuilder's workers import ``tvm.s_tir.tensor_intrin`` in their
initializer, because that import takes 20-30 s and would otherwise eat the 30 s build
timeout of the first build in every fresh worker pool, failing every build.

The result is one line on stdout: ``RESULT {json}`` with the fields of ``_result``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import tvm
from tvm import te, topi
from tvm.s_tir import meta_schedule as ms

RESULT_PREFIX = "RESULT "
WORKLOADS = ("gemm", "c2d")

# The C2D layer of ResNet-50 the Ansor paper benchmarks (N, H, W, CI, CO, k, stride, pad).
C2D_SHAPE = (1, 56, 56, 64, 64, 3, 1, 1)


class BenchmarkError(RuntimeError):
    """A tuned kernel is missing, wrong or cannot be timed."""


# ---------------------------------------------------------------------------------------
# Workloads (mirroring ir.topi.workloads.gemm / conv2d_layer(layout="NHWC"))
# ---------------------------------------------------------------------------------------


def gemm(n: int) -> list[te.Tensor]:
    """GMM: ``C[n, n] = A[n, n] @ B[n, n]`` in float32."""
    a = te.placeholder((n, n), name="A", dtype="float32")
    b = te.placeholder((n, n), name="B", dtype="float32")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return [a, b, c]


def conv2d_nhwc(n: int, h: int, w: int, ci: int, co: int, k: int, s: int, p: int) -> list[te.Tensor]:
    """C2D in NHWC with an HWIO kernel and an explicit zero-pad stage."""
    data = te.placeholder((n, h, w, ci), name="data", dtype="float32")
    kernel = te.placeholder((k, k, ci, co), name="kernel", dtype="float32")
    padded = topi.nn.pad(data, [0, p, p, 0], [0, p, p, 0], name="conv2d_nhwc_pad")
    oh = (h + 2 * p - k) // s + 1
    ow = (w + 2 * p - k) // s + 1
    rh = te.reduce_axis((0, k), name="rh")
    rw = te.reduce_axis((0, k), name="rw")
    rc = te.reduce_axis((0, ci), name="rc")
    out = te.compute(
        (n, oh, ow, co),
        lambda b, y, x, f: te.sum(
            padded[b, y * s + rh, x * s + rw, rc] * kernel[rh, rw, rc, f], axis=[rh, rw, rc]
        ),
        name="conv2d_nhwc",
    )
    return [data, kernel, out]


def declare(workload: str, gemm_size: int) -> tuple[list[te.Tensor], float]:
    """The tensors of ``workload`` and its FLOP count (one multiply-add = 2 FLOP)."""
    if workload == "gemm":
        return gemm(gemm_size), 2.0 * gemm_size**3
    n, h, w, ci, co, k, s, p = C2D_SHAPE
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return conv2d_nhwc(*C2D_SHAPE), 2.0 * n * oh * ow * co * ci * k * k


def numpy_reference(workload: str, inputs: list[np.ndarray]) -> np.ndarray:
    """The expected output, computed with numpy in float64."""
    if workload == "gemm":
        a, b = inputs
        return a.astype(np.float64) @ b.astype(np.float64)
    data, kernel = inputs
    _, h, w, _, _, k, s, p = C2D_SHAPE
    padded = np.pad(data.astype(np.float64), [(0, 0), (p, p), (p, p), (0, 0)])
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((data.shape[0], oh, ow, kernel.shape[3]))
    for dy in range(k):
        for dx in range(k):
            window = padded[:, dy : dy + s * oh : s, dx : dx + s * ow : s, :]
            out += np.einsum("nhwc,cf->nhwf", window, kernel[dy, dx].astype(np.float64))
    return out


# ---------------------------------------------------------------------------------------
# Tuning
# ---------------------------------------------------------------------------------------


def make_target(num_cores: int, mcpu: str | None) -> tvm.target.Target:
    """The host LLVM target, as the JSON dict TVM 0.27 requires."""
    cpu = mcpu or tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": num_cores})


def import_tensor_intrin() -> None:
    """Builder worker initializer: pay the 20-30 s import before the build timeout starts."""
    import tvm.s_tir.tensor_intrin  # noqa: F401


def tune(
    mod: tvm.IRModule, target: tvm.target.Target, work_dir: Path, trials: int, num_cores: int, seed: int
) -> float:
    """Run MetaSchedule for ``trials`` measured trials; return the wall time in seconds."""
    builder = ms.builder.LocalBuilder(
        max_workers=num_cores, timeout_sec=30.0, initializer=import_tensor_intrin
    )
    runner = ms.runner.LocalRunner(
        timeout_sec=30.0,
        evaluator_config=ms.runner.EvaluatorConfig(
            number=3, repeat=1, min_repeat_ms=100, enable_cpu_cache_flush=False
        ),
    )
    start = time.perf_counter()
    ms.tune_tir(
        mod=mod,
        target=target,
        work_dir=str(work_dir),
        max_trials_global=trials,
        num_trials_per_iter=64,
        builder=builder,
        runner=runner,
        num_tuning_cores=num_cores,
        seed=seed,
    )
    return time.perf_counter() - start


def count_records(work_dir: Path) -> tuple[int, int]:
    """(records, records with a finite run time) in the JSON database of ``work_dir``."""
    path = work_dir / "database_tuning_record.json"
    if not path.exists():
        return 0, 0
    total = valid = 0
    with path.open() as f:
        for line in f:
            if not line.strip():
                continue
            total += 1
            run_secs = json.loads(line)[1][1]
            valid += bool(run_secs) and all(float(x) < 1e9 for x in run_secs)
    return total, valid


# ---------------------------------------------------------------------------------------
# Re-timing the best kernel
# ---------------------------------------------------------------------------------------


def time_best(
    workload: str,
    tensors: list[te.Tensor],
    mod: tvm.IRModule,
    target: tvm.target.Target,
    work_dir: Path,
    repeats: int,
    min_repeat_ms: int,
    seed: int,
) -> tuple[list[float], float]:
    """Compile the database's best schedule, check it against numpy, and time it: every
    repeat's seconds per call, and the max error relative to the output scale."""
    for name in ("database_workload.json", "database_tuning_record.json"):
        if not (work_dir / name).exists():
            raise BenchmarkError(f"no MetaSchedule database in {work_dir}: {name} is missing (tune first)")
    database = ms.database.JSONDatabase(work_dir=str(work_dir), allow_missing=False)
    sch = ms.tir_integration.compile_tir(database, mod, target)
    if sch is None:
        raise BenchmarkError(f"MetaSchedule database in {work_dir} holds no valid schedule for {workload}")
    lib = tvm.compile(sch.mod, target=target).jit()
    dev = tvm.cpu(0)

    shapes = [tuple(int(x) for x in t.shape) for t in tensors]
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1.0, 1.0, size=s).astype("float32") for s in shapes[:-1]]
    args = [tvm.runtime.tensor(x, dev) for x in inputs]
    args.append(tvm.runtime.tensor(np.full(shapes[-1], np.nan, dtype="float32"), dev))
    lib["main"](*args)

    got = args[-1].numpy()
    expected = numpy_reference(workload, inputs)
    scale = float(np.max(np.abs(expected)))
    max_err = float(np.max(np.abs(got - expected))) / scale
    if not np.isfinite(max_err) or max_err > 1e-4:
        raise BenchmarkError(
            f"MetaSchedule kernel for {workload} is wrong: max error {max_err:.3g} of the output "
            f"scale {scale:.3g}, limit 1e-4"
        )

    timer = lib.time_evaluator("main", dev, number=1, repeat=repeats, min_repeat_ms=min_repeat_ms)
    return [float(x) for x in timer(*args).results], max_err


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--gemm-size", type=int, default=1024, help="N = M = K of the GEMM")
    parser.add_argument("--trials", type=int, default=64, help="measured trials (tune mode)")
    parser.add_argument("--work-dir", type=Path, required=True, help="MetaSchedule database and logs")
    parser.add_argument("--time-only", action="store_true", help="re-time the database's best")
    parser.add_argument("--num-cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--mcpu", default=None, help="LLVM cpu name (default: detected by TVM)")
    parser.add_argument("--repeats", type=int, default=10, help="timing repeats (median reported)")
    parser.add_argument("--min-repeat-ms", type=int, default=200, help="least time of one repeat")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.gemm_size < 1:
        parser.error(f"--gemm-size {args.gemm_size} must be at least 1")
    if args.trials < 1:
        parser.error(f"--trials {args.trials} must be at least 1")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tensors, flop = declare(args.workload, args.gemm_size)
    mod = tvm.IRModule({"main": te.create_prim_func(tensors)})
    target = make_target(args.num_cores, args.mcpu)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    result: dict[str, object] = {
        "workload": args.workload,
        "gemm_size": args.gemm_size if args.workload == "gemm" else None,
        "tvm_version": tvm.__version__,
        "target": str(target),
        "flop": flop,
    }
    if not args.time_only:
        result["trials"] = args.trials
        result["tune_wall_s"] = tune(mod, target, args.work_dir, args.trials, args.num_cores, args.seed)
    result["records"], result["valid_records"] = count_records(args.work_dir)
    costs, max_err = time_best(
        args.workload, tensors, mod, target, args.work_dir, args.repeats, args.min_repeat_ms, args.seed
    )
    result["costs_s"] = costs
    result["median_s"] = statistics.median(costs)
    result["max_rel_err"] = max_err
    result["gflops"] = flop / statistics.median(costs) / 1e9
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
