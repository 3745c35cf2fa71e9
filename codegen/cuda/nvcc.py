"""CUDA C -> a cubin (or PTX) for one sm_XX, with NVRTC in process or NVIDIA's nvcc.

What pycuda's ``SourceModule`` does inside, without needing a GPU or a driver: the
generated kernels compile wherever the CUDA compiler is installed, and the cubin is loaded
and launched later on a machine that has the GPU. Two compilers give the same cubin:

* NVRTC, NVIDIA's runtime compiler library, called in this process through NVIDIA's Python
  bindings (``pip install cuda-bindings nvidia-cuda-nvrtc``): about 0.1 s per program;
* nvcc, a process per program (about 1 s): looked up on ``PATH``, then in
  ``$CUDA_HOME/bin`` and ``/usr/local/cuda/bin``.

``compiler="auto"`` (the default) takes NVRTC where its bindings import, nvcc otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from codegen.cuda.source import GPUProgram
from codegen.llvm.errors import CodegenError

#: seconds one nvcc call may take
NVCC_TIMEOUT_S = 120.0


class NvccNotFoundError(RuntimeError):
    """The CUDA toolkit's nvcc is not installed where it is looked for."""


class CompileTimeoutError(CodegenError):
    """nvcc ran past its time limit."""


@dataclass(frozen=True)
class CompiledCUDA:
    """The device code of a CUDA program: ``image`` is a cubin (ELF) or PTX text."""

    program: GPUProgram
    arch: str
    image: bytes
    kind: str
    seconds: float


def find_nvcc() -> str:
    """The path of nvcc (module docstring); NvccNotFoundError where there is none."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    raise NvccNotFoundError(
        "nvcc not found on PATH, in $CUDA_HOME/bin or /usr/local/cuda/bin; install the CUDA toolkit"
    )


def nvrtc_available() -> bool:
    """Whether NVIDIA's NVRTC bindings import here."""
    try:
        from cuda.bindings import nvrtc  # noqa: F401
    except ImportError:
        return False
    return True


def compile_cuda(
    program: GPUProgram,
    arch: str = "sm_80",
    kind: str = "cubin",
    timeout_s: float = NVCC_TIMEOUT_S,
    compiler: str = "auto",
) -> CompiledCUDA:
    """Compile ``program`` (CUDA C text) for ``arch`` into a ``kind`` ("cubin" or "ptx")
    with ``compiler`` ("auto", "nvrtc" or "nvcc"; module docstring).

    Raises CodegenError with the compiler's messages when the text does not compile (or
    nvcc runs past ``timeout_s``), NvccNotFoundError when nvcc is asked for and missing."""
    if program.dialect != "cuda":
        raise CodegenError(f"program {program.name} is {program.dialect} text; nvcc compiles dialect 'cuda'")
    if kind not in ("cubin", "ptx"):
        raise ValueError(f"kind must be 'cubin' or 'ptx', got {kind!r}")
    if compiler not in ("auto", "nvrtc", "nvcc"):
        raise ValueError(f"compiler must be 'auto', 'nvrtc' or 'nvcc', got {compiler!r}")
    if compiler == "nvrtc" or (compiler == "auto" and nvrtc_available()):
        return _compile_nvrtc(program, arch, kind)
    nvcc = find_nvcc()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ansor_nvcc_") as scratch:
        source = Path(scratch) / f"{program.name}.cu"
        output = Path(scratch) / f"{program.name}.{kind}"
        source.write_text(program.source)
        command = [nvcc, f"--{kind}", f"-arch={arch}", "-O3", "-o", str(output), str(source)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise CompileTimeoutError(f"nvcc ran past {timeout_s:.0f} s on program {program.name}") from None
        if result.returncode != 0:
            raise CodegenError(
                f"nvcc could not compile program {program.name} for {arch}:\n{result.stderr.strip()[-4000:]}"
            )
        image = output.read_bytes()
    return CompiledCUDA(program, arch, image, kind, time.perf_counter() - start)


def _compile_nvrtc(program: GPUProgram, arch: str, kind: str) -> CompiledCUDA:
    from cuda.bindings import nvrtc

    start = time.perf_counter()
    err, handle = nvrtc.nvrtcCreateProgram(program.source.encode(), f"{program.name}.cu".encode(), 0, [], [])
    _check_nvrtc(err, program, arch, None)
    try:
        target = arch if kind == "cubin" else arch.replace("sm_", "compute_")
        options = [f"--gpu-architecture={target}".encode(), b"-default-device"]
        (err,) = nvrtc.nvrtcCompileProgram(handle, len(options), options)
        _check_nvrtc(err, program, arch, handle)
        size_of, get = (
            (nvrtc.nvrtcGetCUBINSize, nvrtc.nvrtcGetCUBIN)
            if kind == "cubin"
            else (nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX)
        )
        err, size = size_of(handle)
        _check_nvrtc(err, program, arch, handle)
        image = b" " * size
        (err,) = get(handle, image)
        _check_nvrtc(err, program, arch, handle)
    finally:
        nvrtc.nvrtcDestroyProgram(handle)
    if kind == "ptx":
        image = image.rstrip(b"\0")
    return CompiledCUDA(program, arch, image, kind, time.perf_counter() - start)


def _check_nvrtc(err: object, program: GPUProgram, arch: str, handle: object) -> None:
    from cuda.bindings import nvrtc

    if err == nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return
    log = ""
    if handle is not None:
        _, size = nvrtc.nvrtcGetProgramLogSize(handle)
        text = b" " * size
        nvrtc.nvrtcGetProgramLog(handle, text)
        log = text.rstrip(b"\0").decode("utf-8", "replace").strip()
    raise CodegenError(f"nvrtc could not compile program {program.name} for {arch} ({err}):\n{log[-4000:]}")
