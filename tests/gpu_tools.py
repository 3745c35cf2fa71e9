"""The OpenCL device GPU tests run kernels on (PoCL on the CPU, from pip), found once.

``opencl_device()`` imports pyopencl (installed with the test extra: ``pyopencl`` and
``pocl-binary-distribution``) and returns the first device after building a kernel that
uses ``__local`` memory and a barrier on it. PoCL 3.0's built-in LLVM names only the CPUs
it knows (up to AMD Zen 3, Intel Sapphire Rapids); on a newer one it asks LLVM for the
CPU "generic", which LLVM's x86 back end refuses ("unknown target CPU 'generic'"), and no
kernel builds. Then the tests are skipped with that reason in the report (the nvcc and
interpreter checks of the same programs still run); any other failure fails the test.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

PROBE = """
__kernel void probe(__global const float* a, __global float* b) {
  __local float s[4];
  s[get_local_id(0)] = a[get_global_id(0)];
  barrier(CLK_LOCAL_MEM_FENCE);
  b[get_global_id(0)] = s[3 - get_local_id(0)];
}
"""


@functools.cache
def _probe() -> tuple[Any, str]:
    import pyopencl as cl

    from codegen.cuda.opencl import default_device

    device = default_device()
    context = cl.Context([device])
    try:
        cl.Program(context, PROBE).build()
    except cl.RuntimeError as error:
        if "unknown target CPU" in str(error):
            return None, f"PoCL cannot compile for this CPU ({device.name}): {str(error).strip()[:200]}"
        raise
    return device, ""


def opencl_device() -> Any:
    """The OpenCL device (module docstring); skips the calling test where PoCL cannot
    compile for this CPU."""
    device, why = _probe()
    if device is None:
        pytest.skip(why)
    return device
