"""Run a compiled CUDA program on an NVIDIA GPU (pycuda), from numpy arrays.

``CUDAKernel(compiled)`` loads the cubin (or PTX) that ``nvcc.compile_cuda`` made into the
current CUDA context (pycuda's ``autoinit``: device 0); calling it with one array per
parameter of the function (inputs, then outputs) copies them to the device, allocates the
workspace, launches the kernels in order with their grids and blocks, and copies the
outputs back into the arrays. ``time_ms`` of a call is the GPU time between CUDA events
recorded before the first launch and after the last; ``time_kernels(number)`` times more
runs on the arrays already on the device.

pycuda is the ``cuda`` extra and needs the NVIDIA driver (libcuda); where either is
missing, constructing a ``CUDAKernel`` raises ``CUDAUnavailableError`` saying which.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.cuda.nvcc import CompiledCUDA
from codegen.llvm.errors import CodegenError, KernelArgumentError
from ir import dtype as dt


class CUDAUnavailableError(RuntimeError):
    """No pycuda, no NVIDIA driver or no GPU."""


def _pycuda() -> Any:
    try:
        import pycuda.driver as driver
    except ImportError as error:
        raise CUDAUnavailableError(
            f"running CUDA kernels needs pycuda (pip install 'ansor-py[cuda]') and an NVIDIA driver: {error}"
        ) from error
    try:
        import pycuda.autoinit  # noqa: F401  (creates the context on device 0)
    except Exception as error:  # pycuda raises its own LogicError/RuntimeError kinds
        raise CUDAUnavailableError(f"no usable NVIDIA GPU: {error}") from error
    return driver


class CUDAKernel:
    """A compiled CUDA program loaded on the GPU; see the module docstring."""

    def __init__(self, compiled: CompiledCUDA):
        self.driver = _pycuda()
        self.compiled = compiled
        self.program = compiled.program
        try:
            self.module = self.driver.module_from_buffer(compiled.image)
        except self.driver.Error as error:
            raise CodegenError(
                f"the GPU refused the {compiled.kind} of {self.program.name}: {error}"
            ) from error
        self.functions = [self.module.get_function(k.name) for k in self.program.kernels]
        self.time_ms = 0.0

    def __call__(self, *arrays: np.ndarray) -> None:
        driver, program = self.driver, self.program
        params = program.params
        if len(arrays) != len(params):
            raise KernelArgumentError(f"{program.name} takes {len(params)} arrays, got {len(arrays)}")
        for array, buffer in zip(arrays, params, strict=True):
            if tuple(array.shape) != tuple(buffer.shape) or array.dtype != dt.to_numpy(buffer.dtype):
                raise KernelArgumentError(
                    f"argument {buffer.name} must be {buffer.dtype}{list(buffer.shape)}, "
                    f"got {array.dtype}{list(array.shape)}"
                )
        device = [driver.to_device(np.ascontiguousarray(a)) for a in arrays]
        device += [driver.mem_alloc(max(1, b.num_elements * dt.itemsize(b.dtype))) for b in program.workspace]
        self._device = device
        self.time_ms = self.time_kernels(1)
        for array, allocation in zip(arrays, device, strict=False):
            array[...] = driver.from_device_like(allocation, array)

    def time_kernels(self, number: int) -> float:
        """Milliseconds per run of the kernels, ``number`` runs back to back on the arrays
        of the last call, between two CUDA events."""
        if not hasattr(self, "_device"):
            raise RuntimeError(f"{self.program.name}: call the kernel with its arrays before timing it")
        start, end = self.driver.Event(), self.driver.Event()
        start.record()
        for _ in range(number):
            for function, spec in zip(self.functions, self.program.kernels, strict=True):
                function(*self._device, grid=spec.launch.grid, block=spec.launch.block)
        end.record()
        end.synchronize()
        return float(start.time_till(end)) / number
