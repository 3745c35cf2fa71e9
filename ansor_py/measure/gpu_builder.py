"""Building GPU candidates: lowering, CUDA C and OpenCL C text, nvcc (Ansor paper section 6.1's
measurer on a ``cuda`` target; TVM's LocalBuilder with ``tvm.build(..., "cuda")``).

``GPUBuilder.build`` turns each candidate into a *GPU artifact*: a JSON file holding the
program's CUDA C and OpenCL C text, each kernel's launch, the parameter and workspace
buffers, and, when ``arch`` is set (the task target's ``-arch`` by default), the path of the
cubin nvcc compiled from the CUDA text for that sm_XX. A runner loads the artifact:
``CUDARunner`` launches the cubin on a GPU, ``OpenCLRunner`` the OpenCL text on any OpenCL
device (PoCL on the CPU where there is no GPU).

Error codes as LocalBuilder's: replaying the steps fails -> INSTANTIATION_ERROR; lowering or
the emitter refuses the program -> COMPILE_HOST; nvcc rejects the CUDA text ->
COMPILE_DEVICE (the compiler's messages in ``error_msg``); nvcc runs past ``timeout`` -> BUILD_TIMEOUT.
Builds run ``n_parallel`` at a time (threads: lowering is short, nvcc is a process of its
own). Layout rewrite is a CPU optimisation (TVM applies it to CPU targets only): GPU
candidates are built on the task's own DAG.
"""

from __future__ import annotations

import atexit
import itertools
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ansor_py.measure.local import INSTANTIATION_ERRORS
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput
from codegen.cuda import GPUProgram, emit_source
from codegen.cuda.nvcc import CompileTimeoutError, compile_cuda, find_nvcc, nvrtc_available
from codegen.cuda.source import GPUKernel, Launch
from codegen.llvm.errors import CodegenError
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import ScheduleError
from ir.lower.lower import lower
from ir.tir import Buffer

#: the name of the lowered function (kernels are ``<name>_kernel<i>``)
ENTRY_NAME = "default_function"
#: the directory artifacts are written to (one per process, removed at exit) and a counter
_BUILD_DIR: list[Path] = []
_ARTIFACT_COUNT = itertools.count()


def _artifact_path() -> Path:
    """A fresh artifact path; the runner deletes the artifact (and its cubin) once measured,
    as LocalRunner deletes libraries."""
    if not _BUILD_DIR:
        _BUILD_DIR.append(Path(tempfile.mkdtemp(prefix="ansor_py_gpu_build_")))
        atexit.register(shutil.rmtree, _BUILD_DIR[0], True)
    return _BUILD_DIR[0] / f"candidate_{next(_ARTIFACT_COUNT)}.json"


class GPUBuilder:
    """Builds GPU candidates into artifacts (module docstring).

    ``arch``: the sm_XX the CUDA text is compiled for; None (the default) takes the task
    target's ``-arch``; "" builds the text alone, without compiling it (for an OpenCL-only
    tuning). ``compiler``: "auto" (NVRTC where installed, else nvcc), "nvrtc" or "nvcc"."""

    def __init__(
        self, timeout: float = 60, n_parallel: int = 2, arch: str | None = None, compiler: str = "auto"
    ):
        if timeout <= 0 or n_parallel < 1:
            raise ValueError(f"GPUBuilder: timeout {timeout} must be > 0 and n_parallel {n_parallel} >= 1")
        if compiler not in ("auto", "nvrtc", "nvcc"):
            raise ValueError(f"GPUBuilder: compiler must be 'auto', 'nvrtc' or 'nvcc', got {compiler!r}")
        self.timeout = float(timeout)
        self.n_parallel = int(n_parallel)
        self.arch = arch
        if compiler == "auto":
            compiler = "nvrtc" if nvrtc_available() else "nvcc"
        self.compiler = compiler
        if arch != "" and self.compiler == "nvcc":
            find_nvcc()  # a missing compiler is an error now, not one per candidate

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        paths = [_artifact_path() for _ in inputs]
        with ThreadPoolExecutor(max_workers=self.n_parallel) as pool:
            results = list(pool.map(self._build_one, inputs, paths))
        if verbose >= 1:
            print("".join("." if r.error_no is MeasureErrorNo.NO_ERROR else "E" for r in results), flush=True)
        return results

    def _build_one(self, inp: MeasureInput, path: Path) -> BuildResult:
        start = time.perf_counter()
        error_no, message = self._build_artifact(inp, path)
        filename = str(path) if error_no is MeasureErrorNo.NO_ERROR else ""
        return BuildResult(filename, error_no, message, time.perf_counter() - start)

    def _build_artifact(self, inp: MeasureInput, path: Path) -> tuple[MeasureErrorNo, str]:
        task = inp.task
        try:
            state = replay_steps(task.compute_dag, inp.state.transform_steps)
        except INSTANTIATION_ERRORS as error:
            return MeasureErrorNo.INSTANTIATION_ERROR, f"{type(error).__name__}: {error}"
        if not state.concrete:
            return MeasureErrorNo.INSTANTIATION_ERROR, "the state has unknown split lengths (a sketch)"
        try:
            func = lower(task.compute_dag, state, name=ENTRY_NAME)
            cuda = emit_source(func, "cuda")
            opencl = emit_source(func, "opencl")
        except (ScheduleError, CodegenError, ValueError) as error:
            return MeasureErrorNo.COMPILE_HOST, f"{type(error).__name__}: {error}"
        except Exception:  # a bug in lowering is this candidate's error, not the tuner's end
            return MeasureErrorNo.UNKNOWN_ERROR, traceback.format_exc()
        arch = task.target.arch if self.arch is None else self.arch
        cubin = ""
        if arch:
            try:
                compiled = compile_cuda(cuda, arch, timeout_s=self.timeout, compiler=self.compiler)
            except CompileTimeoutError as error:
                return MeasureErrorNo.BUILD_TIMEOUT, str(error)
            except CodegenError as error:
                return MeasureErrorNo.COMPILE_DEVICE, str(error)
            cubin = str(path.with_suffix(".cubin"))
            Path(cubin).write_bytes(compiled.image)
        write_artifact(path, cuda, opencl, arch or "", cubin)
        return MeasureErrorNo.NO_ERROR, ""


# ------------------------------------------------------------------------------------------
# the artifact file


def write_artifact(path: Path, cuda: GPUProgram, opencl: GPUProgram, arch: str, cubin: str) -> None:
    """The JSON file a GPU runner loads (module docstring)."""
    document = {
        "name": cuda.name,
        "cuda": cuda.source,
        "opencl": opencl.source,
        "arch": arch,
        "cubin": cubin,
        "kernels": [{"name": k.name, "grid": k.launch.grid, "block": k.launch.block} for k in cuda.kernels],
        "params": [_buffer_json(b) for b in cuda.params],
        "workspace": [_buffer_json(b) for b in cuda.workspace],
    }
    path.write_text(json.dumps(document))


def read_artifact(path: str | Path, dialect: str) -> tuple[GPUProgram, dict[str, Any]]:
    """The program of one dialect ("cuda" or "opencl") from an artifact file, and the
    whole document (``arch``, ``cubin``)."""
    document = json.loads(Path(path).read_text())
    kernels = tuple(
        GPUKernel(k["name"], Launch(tuple(k["grid"]), tuple(k["block"]))) for k in document["kernels"]
    )
    program = GPUProgram(
        document["name"],
        dialect,
        document[dialect],
        kernels,
        tuple(_buffer_of(b) for b in document["params"]),
        tuple(_buffer_of(b) for b in document["workspace"]),
    )
    return program, document


def remove_artifact(path: str | Path) -> None:
    """Delete an artifact file and the cubin it names (both may already be gone)."""
    path = Path(path)
    try:
        cubin = json.loads(path.read_text()).get("cubin", "")
    except (OSError, ValueError):
        cubin = ""
    for file in (path, Path(cubin) if cubin else None):
        if file is not None:
            file.unlink(missing_ok=True)


def _buffer_json(b: Buffer) -> dict[str, Any]:
    return {"name": b.name, "shape": list(b.shape), "dtype": b.dtype, "strides": list(b.strides)}


def _buffer_of(d: dict[str, Any]) -> Buffer:
    return Buffer(d["name"], tuple(d["shape"]), d["dtype"], strides=tuple(d["strides"]))
