"""The callable kernel: numpy arrays in, the packed C function called, outputs in place.

Every compiled PrimFunc exports ``int32_t <name>(void** args, int32_t nargs)`` where
``args[i]`` is the data pointer of ``params[i]``. A ``Kernel`` checks each array against
its parameter (count, dtype, shape, C-contiguity, writeability) before the call, since the
machine code trusts them blindly, and raises ``KernelArgumentError`` naming the argument.

A caller that runs a kernel many times on the same arrays (a network executor over its
preallocated buffers) checks them once: ``kernel.bind(arrays)`` returns a ``BoundCall``
holding the packed pointer array, and calling it only calls the C function.

A kernel compiled in this process (``LLVMModule.get_kernel``, ``codegen.build``) shows its
own code: ``kernel.llvm_ir`` is the optimised LLVM IR it was compiled from and
``kernel.assembly`` the machine code it runs, as assembly (TVM's
``module.get_source("ll")`` and ``get_source("asm")``). A kernel loaded from a shared
library (``load_library``) keeps no IR.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from codegen.llvm.errors import CodegenError, KernelArgumentError
from ir import dtype as dt
from ir.tir import Buffer

PACKED_FUNC_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int32)
#: the byte alignment of ``empty_aligned`` arrays (TVM's kAllocAlignment: a cache line,
#: one AVX-512 vector), which the tuner's runner and a network's arena give every buffer
ALLOC_ALIGNMENT = 64


def empty_aligned(
    shape: Sequence[int], dtype: str | np.dtype = "float32", alignment: int = ALLOC_ALIGNMENT
) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``alignment``-byte
    boundary, as TVM's ``tvm.nd.empty`` allocates. numpy only promises 16 bytes, and a
    tuned kernel's vector loads then straddle cache lines: time a kernel on the arrays it
    was measured on by the tuner, that is, these."""
    if alignment < 1 or alignment & (alignment - 1):
        raise ValueError(f"empty_aligned: alignment {alignment} must be a power of two")
    kind = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * kind.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + nbytes].view(kind).reshape(tuple(shape))


class CompiledCode(Protocol):
    """What a kernel reads its code from (``codegen.llvm.build.LLVMModule``)."""

    def get_ir(self, optimized: bool = True) -> str: ...

    def get_jit_asm(self) -> str: ...

    def get_jit_object(self) -> bytes: ...


class Kernel:
    """A compiled kernel. ``kernel(*arrays)`` runs it; outputs are written in place.

    ``written`` names the parameters the kernel stores to (they must be writeable).
    ``owner`` keeps the JIT engine or shared library alive as long as the kernel.
    ``module``: the compiled module the machine code came from (None for a shared library).
    """

    def __init__(
        self,
        name: str,
        params: Sequence[Buffer],
        address: int,
        written: Iterable[str],
        owner: object,
        module: CompiledCode | None = None,
    ):
        self.name = name
        self.params = tuple(params)
        self.written = frozenset(written)
        self.address = address
        self.module = module
        self._owner = owner
        self._fn = PACKED_FUNC_TYPE(address)

    @property
    def llvm_ir(self) -> str:
        """The optimised LLVM IR this kernel's machine code was generated from."""
        return self._code().get_ir(optimized=True)

    @property
    def assembly(self) -> str:
        """The machine code this kernel runs, as assembly (its entry point is ``name``)."""
        return self._code().get_jit_asm()

    @property
    def object_code(self) -> bytes:
        """The ELF object the JIT engine compiled and loaded for this kernel."""
        return self._code().get_jit_object()

    def _code(self) -> CompiledCode:
        if self.module is None:
            raise CodegenError(
                f"kernel '{self.name}' was loaded from a shared library and keeps no LLVM IR or "
                "assembly; build it in this process (codegen.build) to inspect its code"
            )
        return self.module

    def __call__(self, *arrays: np.ndarray) -> None:
        self.check_arguments(arrays)
        pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        status = self._fn(pointers, len(arrays))
        if status != 0:
            raise RuntimeError(f"kernel '{self.name}' returned error status {status}")

    def bind(self, arrays: Sequence[np.ndarray]) -> BoundCall:
        """The kernel applied to ``arrays``, checked once now (``check_arguments``).

        The returned ``BoundCall`` keeps the arrays alive and reuses one packed pointer
        array, so each call allocates nothing; the arrays must not be resized or
        reallocated while it is in use (numpy arrays never move their data)."""
        self.check_arguments(arrays)
        return BoundCall(self, arrays)

    def check_arguments(self, arrays: Sequence[object]) -> None:
        """Raise KernelArgumentError unless ``arrays`` match the parameters exactly."""
        if len(arrays) != len(self.params):
            names = ", ".join(p.name for p in self.params)
            raise KernelArgumentError(
                f"kernel '{self.name}' takes {len(self.params)} arrays ({names}), got {len(arrays)}"
            )
        for position, (array, param) in enumerate(zip(arrays, self.params, strict=True)):
            where = f"argument {position} '{param.name}'"
            if not isinstance(array, np.ndarray):
                raise KernelArgumentError(f"{where}: expected a numpy array, got {type(array).__name__}")
            expected_dtype = dt.to_numpy(param.dtype)
            if array.dtype != expected_dtype:
                raise KernelArgumentError(
                    f"{where}: dtype {array.dtype} does not match the kernel's {expected_dtype}"
                )
            if tuple(array.shape) != tuple(param.shape):
                raise KernelArgumentError(
                    f"{where}: shape {tuple(array.shape)} does not match the kernel's {tuple(param.shape)}"
                )
            if not array.flags.c_contiguous:
                raise KernelArgumentError(
                    f"{where}: array is not C-contiguous (strides {array.strides}); "
                    "pass np.ascontiguousarray(...)"
                )
            if param.name in self.written and not array.flags.writeable:
                raise KernelArgumentError(f"{where}: the kernel writes this array but it is read-only")

    def __repr__(self) -> str:
        params = ", ".join(f"{p.name}{list(p.shape)}:{p.dtype}" for p in self.params)
        return f"Kernel({self.name}({params}))"


class BoundCall:
    """``kernel(*arrays)`` with the arguments checked and packed once (``Kernel.bind``)."""

    __slots__ = ("_fn", "_nargs", "_pointers", "arrays", "kernel")

    def __init__(self, kernel: Kernel, arrays: Sequence[np.ndarray]):
        self.kernel = kernel
        self.arrays = tuple(arrays)
        self._fn = kernel._fn
        self._nargs = len(self.arrays)
        self._pointers = (ctypes.c_void_p * self._nargs)(*[a.ctypes.data for a in self.arrays])

    def __call__(self) -> None:
        status = self._fn(self._pointers, self._nargs)
        if status != 0:
            raise RuntimeError(f"kernel '{self.kernel.name}' returned error status {status}")

    def __repr__(self) -> str:
        return f"BoundCall({self.kernel.name}, {self._nargs} arrays)"


def load_library(
    path: str, name: str, params: Sequence[Buffer], written: Iterable[str] | None = None
) -> Kernel:
    """Load ``name`` from a shared library made by ``LLVMModule.export_library``.

    ``params`` are the PrimFunc's parameter buffers (their shapes and dtypes are checked
    on each call); ``written`` the names of those it stores to (default: all of them).
    """
    library = ctypes.CDLL(str(path))
    try:
        symbol = getattr(library, name)
    except AttributeError:
        raise KernelArgumentError(f"shared library {path} has no function '{name}'") from None
    address = ctypes.cast(symbol, ctypes.c_void_p).value
    assert address is not None
    written_names = [p.name for p in params] if written is None else list(written)
    return Kernel(name, params, address, written_names, owner=library)
