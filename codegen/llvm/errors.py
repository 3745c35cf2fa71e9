"""The two exceptions of the LLVM back end."""

from __future__ import annotations


class CodegenError(ValueError):
    """A PrimFunc the LLVM back end cannot compile (GPU thread bindings, a reduction into
    one address inside a vectorized loop, an undefined variable, ...)."""


class KernelArgumentError(ValueError):
    """Arrays passed to a compiled kernel that do not match its parameters."""
