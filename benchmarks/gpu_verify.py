"""GPU tuning without a GPU: every candidate compiled by nvcc and checked on PoCL.

Tunes TVM's GPU tutorial workloads for ``cuda -arch=sm_80`` with ``GPUBuilder`` (CUDA C
compiled by nvcc into an sm_80 cubin, the same kernels written as OpenCL C) and, where no
NVIDIA GPU exists, ``OpenCLRunner`` (the OpenCL text run on the CPU through PoCL, each
candidate's output compared with numpy before it is timed; on a GPU, ``CUDARunner``).
Prints, per workload, how many candidates nvcc compiled and how many matched numpy,
by measurement error code:

* ``conv2d``: ResNet-50's last convolution with bias and relu (1x512x7x7, 512 filters 3x3,
  stride 1, padding 1; TVM's ``tune_conv2d_layer_cuda`` tutorial);
* ``softmax``: a row softmax (1024 x 1000; its max and sum reductions cross threads).

``--compiler`` picks what compiles the CUDA C: ``nvcc`` (the default, one process per
program) or ``nvrtc`` (the same compiler as a library, in process, about ten times faster).

    python benchmarks/gpu_verify.py [--trials 200] [--workloads conv2d softmax] [--save FILE]

The costs are PoCL's (the CPU), which rank nothing about a GPU; this script is about
correctness. On a GPU machine run ``benchmarks/gpu_vs_torch.py`` for speed.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import ansor_py as ansor
from ansor_py.measure import MeasureErrorNo
from ansor_py.measure.gpu_builder import GPUBuilder
from ansor_py.measure.gpu_runner import CUDARunner, OpenCLRunner
from codegen.cuda.cuda_kernel import CUDAUnavailableError
from codegen.cuda.nvcc import find_nvcc
from ir import te
from ir.topi.nn_conv import conv2d_nchw
from ir.topi.nn_norm import softmax

TARGET = "cuda -arch=sm_80"


@ansor.register_workload
def gpu_verify_conv2d(N: int, H: int, W: int, CO: int, CI: int, K: int, stride: int, padding: int):
    data = te.placeholder((N, CI, H, W), name="data")
    kernel = te.placeholder((CO, CI, K, K), name="kernel")
    bias = te.placeholder((1, CO, 1, 1), name="bias")
    conv = conv2d_nchw(data, kernel, stride, padding)
    out = te.compute(
        conv.shape, lambda n, c, h, w: te.max(conv[n, c, h, w] + bias[0, c, 0, 0], 0.0), name="relu"
    )
    return [data, kernel, bias, out]


@ansor.register_workload
def gpu_verify_softmax(M: int, N: int):
    a = te.placeholder((M, N), name="A")
    return [a, softmax(a, axis=1)]


WORKLOADS = {
    "conv2d": (gpu_verify_conv2d, (1, 7, 7, 512, 512, 3, 1, 1)),
    "softmax": (gpu_verify_softmax, (1024, 1000)),
}


def runner() -> tuple[CUDARunner | OpenCLRunner, str]:
    try:
        CUDARunner.check_available()
    except CUDAUnavailableError:
        return OpenCLRunner(timeout=120, number=1, repeat=1), "OpenCL (PoCL on the CPU)"
    return CUDARunner(timeout=10, number=3, repeat=3), "CUDA (pycuda)"


def verify(name: str, trials: int, population: int, log: Path, compiler: str) -> dict[str, object]:
    func, args = WORKLOADS[name]
    task = ansor.SearchTask(func=func, args=args, target=TARGET)
    the_runner, how = runner()
    start = time.perf_counter()
    with the_runner:
        options = ansor.TuningOptions(
            num_measure_trials=trials,
            num_measures_per_round=32,
            builder=GPUBuilder(n_parallel=2, compiler=compiler),
            runner=the_runner,
            measure_callbacks=[ansor.RecordToFile(log)],
            verbose=0,
        )
        params = {"evolutionary_search_population": population}
        ansor.auto_schedule(task, options, ansor.SketchPolicy(task, params=params, verbose=0))
    seconds = time.perf_counter() - start
    programs: dict[str, MeasureErrorNo] = {}
    for inp, result in ansor.load_records(log):
        # tuning ends by re-measuring its best programs: count each program once, first record
        programs.setdefault(str(inp.state.transform_steps), result.error_no)
    codes = Counter(code.name for code in programs.values())
    return {
        "workload": name,
        "args": args,
        "runner": how,
        "programs": len(programs),
        "codes": codes,
        "s": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--population", type=int, default=512, help="evolutionary search population")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--save", type=Path, default=None, help="write the table (markdown) here")
    parser.add_argument(
        "--compiler", default="nvcc", choices=("nvcc", "nvrtc"), help="what compiles the CUDA C"
    )
    args = parser.parse_args(argv)
    print(f"nvcc: {find_nvcc()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.workloads:
            row = verify(name, args.trials, args.population, Path(scratch) / f"{name}.json", args.compiler)
            rows.append(row)
            print(row, flush=True)
    lines = [
        f"| workload | shape | runner | programs | {args.compiler} sm_80, matched numpy | other | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        codes: Counter[str] = row["codes"]  # type: ignore[assignment]
        ok = codes.get("NO_ERROR", 0)
        others = ", ".join(f"{k} {v}" for k, v in sorted(codes.items()) if k != "NO_ERROR") or "none"
        lines.append(
            f"| {row['workload']} | {row['args']} | {row['runner']} | {row['programs']} | {ok} | {others} "
            f"| {row['s']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.save:
        header = (
            "# GPU programs verified without a GPU\n\n"
            f"Command: `python benchmarks/gpu_verify.py --compiler {args.compiler} --trials {args.trials} "
            f"--population {args.population}`; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{platform.processor() or platform.machine()}, target `{TARGET}`.\n\n"
        )
        args.save.write_text(header + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
