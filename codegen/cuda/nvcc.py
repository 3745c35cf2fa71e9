"""CUDA C -> a cubin (or PTX) for one sm_XX, with NVIDIA's nvcc.

What pycuda's ``SourceModule`` does inside, without needing a GPU or a driver: the
generated kernels compile wherever the CUDA toolkit is installed, and the cubin is loaded
and launched later on a machine that has the GPU. nvcc is looked up on ``PATH``, then in
``$CUDA_HOME/bin`` and ``/usr/local/cuda/bin``.
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


def compile_cuda(
    program: GPUProgram, arch: str = "sm_80", kind: str = "cubin", timeout_s: float = NVCC_TIMEOUT_S
) -> CompiledCUDA:
    """Compile ``program`` (CUDA C text) for ``arch`` into a ``kind`` ("cubin" or "ptx").

    Raises CodegenError with nvcc's messages when the text does not compile (or nvcc runs
    past ``timeout_s``), NvccNotFoundError when there is no nvcc."""
    if program.dialect != "cuda":
        raise CodegenError(f"program {program.name} is {program.dialect} text; nvcc compiles dialect 'cuda'")
    if kind not in ("cubin", "ptx"):
        raise ValueError(f"kind must be 'cubin' or 'ptx', got {kind!r}")
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
            raise CodegenError(f"nvcc ran past {timeout_s:.0f} s on program {program.name}") from None
        if result.returncode != 0:
            raise CodegenError(
                f"nvcc could not compile program {program.name} for {arch}:\n{result.stderr.strip()[-4000:]}"
            )
        image = output.read_bytes()
    return CompiledCUDA(program, arch, image, kind, time.perf_counter() - start)
