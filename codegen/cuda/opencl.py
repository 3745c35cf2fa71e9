"""Run a GPU program's OpenCL text on an OpenCL device (pyopencl), from numpy arrays.

The GPU emitter writes the same kernels as CUDA C and as OpenCL C. Where no NVIDIA GPU
exists, the OpenCL text runs on the CPU through PoCL (``pip install pyopencl
pocl-binary-distribution``), with real work-groups, ``__local`` memory and barriers: a
kernel whose threads race, or that reads shared memory before the barrier, computes wrong
values there too. That is how the thread bindings, shared-memory fetches and cross-thread
reductions of a generated GPU program are checked against numpy without a GPU.

``OpenCLKernel(program)`` compiles ``program.source`` (an ``emit_source(func, "opencl")``
result) for the first OpenCL device (or ``device``); calling it with one array per
parameter of the function (inputs, then outputs) allocates the workspace, launches the
kernels in order, waits, and copies the outputs back into the arrays. ``time_ms`` of a call
is the device time of its kernels from OpenCL's profiling events; ``time_kernels(number)``
times more runs on the buffers already on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from codegen.cuda.source import GPUProgram
from codegen.llvm.errors import CodegenError, KernelArgumentError
from ir import dtype as dt


class OpenCLUnavailableError(RuntimeError):
    """No OpenCL runtime or device: pyopencl is missing or finds no platform."""


def _pyopencl() -> Any:
    try:
        import pyopencl
    except ImportError as error:
        raise OpenCLUnavailableError(
            "running OpenCL kernels needs pyopencl and a device: "
            "pip install pyopencl pocl-binary-distribution"
        ) from error
    return pyopencl


def default_device() -> Any:
    """The first device of the first OpenCL platform (PoCL's CPU device where it is the
    only one)."""
    cl = _pyopencl()
    try:
        platforms = cl.get_platforms()
    except cl.Error as error:
        raise OpenCLUnavailableError(f"no OpenCL platform: {error}") from error
    for platform in platforms:
        devices = platform.get_devices()
        if devices:
            return devices[0]
    raise OpenCLUnavailableError(f"no OpenCL device on the platforms {[p.name for p in platforms]}")


class OpenCLKernel:
    """A GPU program compiled for an OpenCL device; see the module docstring."""

    def __init__(self, program: GPUProgram, device: Any | None = None):
        if program.dialect != "opencl":
            raise CodegenError(
                f"program {program.name} is {program.dialect} text; emit it with dialect 'opencl'"
            )
        cl = _pyopencl()
        self.cl = cl
        self.program = program
        self.device = device if device is not None else default_device()
        self.context = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
        try:
            self.binary = cl.Program(self.context, program.source).build()
        except cl.RuntimeError as error:
            raise CodegenError(f"OpenCL rejected program {program.name}: {error}") from error
        self.kernels = [getattr(self.binary, k.name) for k in program.kernels]
        self.time_ms = 0.0

    def __call__(self, *arrays: np.ndarray) -> None:
        cl, program = self.cl, self.program
        self._check(arrays)
        flags = cl.mem_flags
        device_buffers = [
            cl.Buffer(self.context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=_device_view(a))
            for a in arrays
        ]
        for buffer in program.workspace:
            nbytes = max(1, buffer.num_elements * dt.itemsize(buffer.dtype))
            device_buffers.append(cl.Buffer(self.context, flags.READ_WRITE, nbytes))
        self._device = device_buffers
        self.time_ms = self.time_kernels(1)
        for array, device_buffer in zip(arrays, device_buffers, strict=False):
            host = _device_view(array) if array.dtype != np.bool_ else np.empty(array.shape, np.uint8)
            cl.enqueue_copy(self.queue, host, device_buffer)
            if array.dtype == np.bool_:
                array[...] = host.astype(bool)
            elif host is not array:
                array[...] = host
        self.queue.finish()

    def time_kernels(self, number: int) -> float:
        """Milliseconds per run of the kernels (OpenCL profiling events, device time),
        ``number`` runs on the buffers of the last call."""
        if not hasattr(self, "_device"):
            raise RuntimeError(f"{self.program.name}: call the kernel with its arrays before timing it")
        events = []
        for _ in range(number):
            for kernel, spec in zip(self.kernels, self.program.kernels, strict=True):
                local = spec.launch.block
                global_size = tuple(g * b for g, b in zip(spec.launch.grid, local, strict=True))
                events.append(kernel(self.queue, global_size, local, *self._device))
        self.queue.finish()
        return sum((e.profile.end - e.profile.start) for e in events) / 1e6 / number

    def _check(self, arrays: Sequence[np.ndarray]) -> None:
        params = self.program.params
        if len(arrays) != len(params):
            raise KernelArgumentError(
                f"{self.program.name} takes {len(params)} arrays ({', '.join(b.name for b in params)}), "
                f"got {len(arrays)}"
            )
        for array, buffer in zip(arrays, params, strict=True):
            if not isinstance(array, np.ndarray):
                raise KernelArgumentError(
                    f"argument {buffer.name} must be a numpy array, got {type(array).__name__}"
                )
            if tuple(array.shape) != tuple(buffer.shape) or array.dtype != dt.to_numpy(buffer.dtype):
                raise KernelArgumentError(
                    f"argument {buffer.name} must be {buffer.dtype}{list(buffer.shape)}, "
                    f"got {array.dtype}{list(array.shape)}"
                )


def _device_view(array: np.ndarray) -> np.ndarray:
    """The bytes the device sees: C-contiguous, bool as uint8 (OpenCL buffers hold no bool)."""
    if array.dtype == np.bool_:
        return np.ascontiguousarray(array, dtype=np.uint8)
    return np.ascontiguousarray(array)
