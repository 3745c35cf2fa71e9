"""The LLVM back end: ``build(PrimFunc, target)`` -> x86-64 / AArch64 machine code via llvmlite.

Reading order: ``tables`` (dtypes and operators to LLVM), ``ops`` (one operation on scalar
or vector values), ``emitter`` (statements and scalar expressions), ``vectorize``
(vectorized loops), ``parallel`` (libgomp outlining), both through ``protocols`` (what they
use of the emitter), ``build`` (O3 pipeline, JIT, shared libraries), ``kernel`` (the
checked numpy-facing callable).
"""

from codegen.llvm.build import LLVMModule, build
from codegen.llvm.context import BuildOptions
from codegen.llvm.errors import CodegenError, KernelArgumentError
from codegen.llvm.kernel import Kernel, empty_aligned, load_library

__all__ = [
    "BuildOptions",
    "CodegenError",
    "Kernel",
    "KernelArgumentError",
    "LLVMModule",
    "build",
    "empty_aligned",
    "load_library",
]
