"""The GPU back end: a lowered ``PrimFunc`` -> CUDA C (for nvcc) or OpenCL C.

Reading order: ``dialect`` (how CUDA C and OpenCL C spell kernels, qualifiers, thread
indices, barriers and math), ``source`` (the program text and each kernel's launch),
``nvcc`` (CUDA C -> cubin for an sm_XX), ``opencl`` (running the OpenCL text from numpy
arrays, PoCL on the CPU where no GPU exists).
"""

from codegen.cuda.source import GPUKernel, GPUProgram, Launch, emit_source

__all__ = ["GPUKernel", "GPUProgram", "Launch", "emit_source"]
