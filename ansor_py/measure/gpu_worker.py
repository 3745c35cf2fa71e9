"""The child process of the GPU runners: ``python -m ansor_py.measure.gpu_worker cuda|opencl``.

Speaks ``worker_process``'s protocol: ``{"ready": true}`` first, then one JSON reply per
JSON request line. A request names a GPU artifact (``gpu_builder``), the reference
arguments as .npy files (inputs, and expected outputs with their tolerances) and the timing
``number`` and ``repeat``. The reply is ``{"costs": [seconds per run, ...]}``, or one of
``{"wrong": ...}`` (an output differs from the reference), ``{"build": ...}`` (the device
refused the program) and ``{"error": ...}`` (anything else the run raised). A kernel that
kills this process or hangs is the parent's to classify.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import numpy as np

from ansor_py.measure.gpu_builder import read_artifact
from codegen.llvm.errors import CodegenError

#: reference arrays loaded so far, by file path
_ARRAYS: dict[str, np.ndarray] = {}


def load_kernel(backend: str, artifact: str) -> Any:
    """The artifact's program, compiled or loaded for ``backend``."""
    if backend == "cuda":
        from codegen.cuda.cuda_kernel import CUDAKernel
        from codegen.cuda.nvcc import CompiledCUDA

        program, document = read_artifact(artifact, "cuda")
        if not document["cubin"]:
            raise CodegenError("the artifact has no cubin (GPUBuilder(arch='') builds the text alone)")
        with open(document["cubin"], "rb") as f:
            image = f.read()
        return CUDAKernel(CompiledCUDA(program, document["arch"], image, "cubin", 0.0))
    from codegen.cuda.opencl import OpenCLKernel

    program, _ = read_artifact(artifact, "opencl")
    return OpenCLKernel(program)


def measure(backend: str, request: dict[str, Any]) -> dict[str, Any]:
    """Check the program against the reference, then time it (module docstring)."""
    try:
        kernel = load_kernel(backend, request["artifact"])
    except CodegenError as error:
        return {"build": str(error)}
    arguments = request["arguments"]
    for arg in arguments:
        if arg["path"] not in _ARRAYS:
            _ARRAYS[arg["path"]] = np.load(arg["path"])
    arrays = [
        _ARRAYS[a["path"]].copy()
        if a["role"] == "in"
        else np.full_like(_ARRAYS[a["path"]], poison(_ARRAYS[a["path"]]))
        for a in arguments
    ]
    kernel(*arrays)
    for arg, array in zip(arguments, arrays, strict=True):
        if arg["role"] == "out":
            mismatch = compare(arg["name"], array, _ARRAYS[arg["path"]], arg["rtol"], arg["atol"])
            if mismatch:
                return {"wrong": mismatch}
    number, repeat = int(request["number"]), int(request["repeat"])
    costs = [kernel.time_kernels(number) / 1e3 for _ in range(repeat)]
    bad = [c for c in costs if not (np.isfinite(c) and c > 0)]
    if bad:
        return {"error": f"the device timer gave {bad[0]!r} s per run"}
    return {"costs": costs}


def compare(name: str, got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str:
    """Why ``got`` is not ``expected`` (atol scaled by the largest reference magnitude, as
    the CPU runner checks), or "" when it is."""
    if expected.dtype.kind == "f":
        scale = float(np.max(np.abs(expected))) if expected.size else 1.0
        if np.allclose(got, expected, rtol=rtol, atol=atol * max(scale, 1e-30), equal_nan=True):
            return ""
    elif np.array_equal(got, expected):
        return ""
    error = float(np.nanmax(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
    return f"output {name} differs from the reference by up to {error:.3g}"


def poison(expected: np.ndarray) -> Any:
    """What an output starts as: a value no correct kernel leaves (NaN for floats)."""
    if expected.dtype.kind == "f":
        return np.nan
    if expected.dtype.kind == "b":
        return True
    return np.iinfo(expected.dtype).max


def main() -> None:
    backend = sys.argv[1]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            reply = measure(backend, json.loads(line))
        except Exception:  # this candidate's error, reported to the parent
            reply = {"error": traceback.format_exc(limit=6)}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
