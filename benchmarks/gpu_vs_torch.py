"""On an NVIDIA GPU: GEMM 1024 and ResNet-50's conv2d layer tuned, beside PyTorch (cuBLAS, cuDNN).

One prepared script for a machine with a GPU (it refuses to run without one, naming what
is missing). For each workload it tunes ``--trials`` programs for ``cuda -arch=<--arch>``
(``GPUBuilder``: CUDA C compiled by nvcc; ``CUDARunner``: launched through pycuda, every
candidate checked against numpy), then times the best program and PyTorch's kernel in the
same run, interleaved (CUDA events, medians of ``--repeat`` samples), and prints GFLOP/s
and the ratio:

* ``gemm``: C = A @ B, 1024 x 1024 x 1024, float32 (PyTorch: ``torch.matmul``, cuBLAS);
* ``conv2d``: ResNet-50's last convolution with bias and relu, NCHW 1x512x7x7, 512 filters
  3x3, padding 1 (PyTorch: ``F.relu(F.conv2d(...))``, cuDNN).

    python benchmarks/gpu_vs_torch.py [--trials 200] [--arch sm_90] [--repeat 20] [--save FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gpu_verify import gpu_verify_conv2d  # beside this script

import ansor_py as ansor
from ansor_py.measure.gpu_builder import GPUBuilder
from ansor_py.measure.gpu_runner import CUDARunner
from codegen.cuda import emit_source
from codegen.cuda.cuda_kernel import CUDAKernel
from codegen.cuda.nvcc import compile_cuda
from ir import te
from ir.lower import lower
from ir.reference import evaluate


@ansor.register_workload
def gpu_gemm(N: int, M: int, K: int):
    a = te.placeholder((N, K), name="A")
    b = te.placeholder((K, M), name="B")
    k = te.reduce_axis((0, K), name="k")
    return [a, b, te.compute((N, M), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")]


WORKLOADS = {
    "gemm": (gpu_gemm, (1024, 1024, 1024), 2 * 1024**3),
    "conv2d": (gpu_verify_conv2d, (1, 7, 7, 512, 512, 3, 1, 1), 2 * 512 * 512 * 9 * 49),
}


def torch_call(name: str, arrays: list[np.ndarray]):
    import torch
    import torch.nn.functional as F

    tensors = [torch.from_numpy(a).cuda() for a in arrays]
    if name == "gemm":
        return lambda: torch.matmul(tensors[0], tensors[1])
    data, kernel, bias = tensors[:3]
    return lambda: F.relu(F.conv2d(data, kernel, padding=1) + bias)


def cuda_ms(fn, number: int = 10) -> float:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    start.record()
    for _ in range(number):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / number


def run(name: str, trials: int, arch: str, repeat: int, log: Path) -> str:
    func, args, flop = WORKLOADS[name]
    task = ansor.SearchTask(func=func, args=args, target=f"cuda -arch={arch}")
    start = time.perf_counter()
    with CUDARunner(timeout=10, number=3, repeat=3) as runner:
        options = ansor.TuningOptions(
            num_measure_trials=trials,
            builder=GPUBuilder(n_parallel=4),
            runner=runner,
            measure_callbacks=[ansor.RecordToFile(log)],
            verbose=1,
        )
        ansor.auto_schedule(task, options)
    tuning_s = time.perf_counter() - start
    dag = task.compute_dag
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, [int(x) for x in t.shape]).astype(t.dtype) for t in dag.placeholders]
    (expected,) = evaluate(dag, inputs)
    kernel = CUDAKernel(compile_cuda(emit_source(lower(dag, ansor.best_state(task, log)), "cuda"), arch))
    out = np.full(expected.shape, np.nan, np.float32)
    kernel(*inputs, out)
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3)
    peer = torch_call(name, inputs)
    ours_ms, torch_ms = [], []
    for _ in range(repeat):  # interleaved
        ours_ms.append(kernel.time_kernels(10))
        torch_ms.append(cuda_ms(peer))
    ours, theirs = statistics.median(ours_ms), statistics.median(torch_ms)
    return (
        f"| {name} {args} | {trials} | {tuning_s:.0f} | {flop / ours / 1e6:.0f} | {flop / theirs / 1e6:.0f} "
        f"| {theirs / ours:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--arch", default="sm_80", help="the GPU's sm_XX (H100: sm_90)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args(argv)
    CUDARunner.check_available()  # CUDAUnavailableError naming what is missing
    import torch

    lines = [
        f"GPU: {torch.cuda.get_device_name(0)}; medians of {args.repeat} interleaved samples (CUDA events)",
        "",
        "| workload | trials | tuning s | ours GFLOP/s | PyTorch GFLOP/s | PyTorch time / ours |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.workloads:
            lines.append(run(name, args.trials, args.arch, args.repeat, Path(scratch) / f"{name}.json"))
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.save:
        args.save.write_text(
            f"# GPU kernels beside PyTorch\n\nCommand: `python {' '.join(sys.argv)}`\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
