"""Tune a convolution layer for an NVIDIA GPU (TVM's ``tune_conv2d_layer_cuda`` tutorial).

The last convolution of ResNet-50 with its bias and relu (N=1, 7x7, 512 -> 512 channels,
3x3, stride 1, padding 1; NCHW), tuned for ``cuda -arch=sm_80`` as Ansor tunes GPU
programs (paper sections 4-5): sketches with shared-memory fetches of both operands and a
register tile ("SSSRRSRS"), thread binding of the tile levels to blockIdx, vthread and
threadIdx, and the evolutionary search guided by the XGBoost model.

Measurement needs a GPU program to run:

* ``GPUBuilder`` lowers each candidate, writes it as CUDA C and compiles that with nvcc
  into a cubin for sm_80 (it also writes the same kernels as OpenCL C);
* ``CUDARunner`` launches the cubin on an NVIDIA GPU where pycuda and a driver exist;
  elsewhere ``OpenCLRunner`` runs the OpenCL text on the CPU through PoCL, with real
  work-groups, shared memory and barriers. Either way every candidate's output is
  compared with numpy before it is timed. PoCL's times rank programs for the CPU, not
  for a GPU: without a GPU this tutorial shows the search and checks the code, it does not
  tune for speed.

At the end it prints the best program's CUDA C (``print_best(..., print_mode="cuda")``)
and checks the best program once more against numpy.

    python docs/tutorials/tune_conv2d_layer_cuda.py [--trials 1000] [--log conv2d.json]

``--size`` and ``--channels`` shrink the layer (the documentation test runs it tiny).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import ansor_py as ansor
from ansor_py.measure.gpu_builder import GPUBuilder
from ansor_py.measure.gpu_runner import CUDARunner, OpenCLRunner
from codegen.cuda import emit_source
from codegen.cuda.cuda_kernel import CUDAUnavailableError
from codegen.cuda.opencl import OpenCLKernel
from ir import te
from ir.lower import lower
from ir.reference import evaluate
from ir.topi.nn_conv import conv2d_nchw


@ansor.register_workload
def conv2d_layer(N: int, H: int, W: int, CO: int, CI: int, KH: int, KW: int, stride: int, padding: int):
    data = te.placeholder((N, CI, H, W), name="data")
    kernel = te.placeholder((CO, CI, KH, KW), name="kernel")
    bias = te.placeholder((1, CO, 1, 1), name="bias")
    conv = conv2d_nchw(data, kernel, stride, padding)
    out = te.compute(
        conv.shape, lambda n, c, h, w: te.max(conv[n, c, h, w] + bias[0, c, 0, 0], 0.0), name="T_relu"
    )
    return [data, kernel, bias, out]


def gpu_runner() -> CUDARunner | OpenCLRunner:
    """CUDARunner on a GPU, OpenCLRunner (PoCL on the CPU) where there is none."""
    try:
        CUDARunner.check_available()
    except CUDAUnavailableError as why:
        print(f"no GPU here ({why}); running the OpenCL text of each candidate on the CPU (PoCL)")
        return OpenCLRunner(timeout=60, number=1, repeat=2)
    return CUDARunner(timeout=10, number=3, repeat=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=7, help="H = W of the layer's input")
    parser.add_argument("--channels", type=int, default=512, help="input and output channels")
    parser.add_argument("--trials", type=int, default=1000, help="programs to measure")
    parser.add_argument("--population", type=int, default=2048, help="evolutionary search population")
    parser.add_argument("--log", type=Path, default=None, help="tuning log (default: a temporary file)")
    args = parser.parse_args(argv)
    for name in ("size", "channels", "trials", "population"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")

    task = ansor.SearchTask(
        func=conv2d_layer,
        args=(1, args.size, args.size, args.channels, args.channels, 3, 3, 1, 1),
        target="cuda -arch=sm_80",
    )
    print("Computational DAG:")
    print(task.compute_dag)
    log = args.log or Path(tempfile.mkdtemp(prefix="conv2d_cuda_")) / "conv2d.json"
    with gpu_runner() as runner:
        options = ansor.TuningOptions(
            num_measure_trials=args.trials,
            num_measures_per_round=min(64, args.trials),
            builder=GPUBuilder(n_parallel=2),
            runner=runner,
            measure_callbacks=[ansor.RecordToFile(log)],
            verbose=1,
        )
        params = {"evolutionary_search_population": args.population}
        ansor.auto_schedule(task, options, ansor.SketchPolicy(task, params=params, verbose=0))

    print("\nThe best program as CUDA C (what nvcc compiled):")
    print(ansor.print_best(task, log, print_mode="cuda"))

    # check the best program once more, on random inputs, against numpy
    dag = task.compute_dag
    rng = np.random.default_rng(1)
    inputs = [rng.uniform(-1, 1, [int(x) for x in t.shape]).astype(t.dtype) for t in dag.placeholders]
    (expected,) = evaluate(dag, inputs)
    program = emit_source(lower(dag, ansor.best_state(task, log)), "opencl")
    out = np.full(expected.shape, np.nan, dtype=expected.dtype)
    OpenCLKernel(program)(*inputs, out)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    flop = 2 * args.channels * args.channels * 9 * args.size * args.size
    print(f"[verified] the best of {args.trials} programs ({flop / 1e6:.1f} MFLOP) matches numpy (log {log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
