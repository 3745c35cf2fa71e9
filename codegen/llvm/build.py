"""``build(PrimFunc, target) -> LLVMModule``: emit LLVM IR, optimise at O3, and get it out.

The module holds two functions per PrimFunc:

* ``<name>_compute(T* noalias p0, ...)``: the body (internal, inlined by LLVM);
* ``<name>(void** args, int32_t nargs)``: the packed entry point every kernel shares, so
  one generic C harness or ctypes signature calls any kernel. It returns 0, or -1 when
  ``nargs`` is wrong.

Two ways out: ``module.get_kernel()`` compiles in-process with MCJIT (host targets only), and
``module.export_library(path)`` writes a position-independent object for the target
triple and links it into a shared library (``cc -shared ... -lgomp -lm`` for the host,
a cross linker for AArch64: ``codegen.llvm.toolchain``), loaded elsewhere with
``load_library``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from codegen.llvm.analysis import written_buffers
from codegen.llvm.context import BuildOptions, ModuleContext
from codegen.llvm.emitter import FunctionEmitter
from codegen.llvm.errors import CodegenError
from codegen.llvm.kernel import Kernel
from codegen.llvm.tables import I8_PTR, I32, memory_type
from codegen.llvm.toolchain import find_linker
from codegen.target import Target, as_target
from ir.tir import PrimFunc


def build(func: PrimFunc, target: str | Target = "llvm", options: BuildOptions | None = None) -> LLVMModule:
    """Compile ``func`` for an LLVM ``target`` (host x86-64, AArch64, ...) at O3."""
    target = as_target(target)
    if target.kind != "llvm":
        raise CodegenError(f"the LLVM back end builds for 'llvm' targets, got '{target}'")
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", func.name) is None:
        raise CodegenError(
            f"PrimFunc name {func.name!r} is not a C identifier; the kernel exports it as a symbol"
        )
    options = options or BuildOptions()
    text = emit_module_text(ModuleContext(func.name, target, options), func)
    _initialize_llvm()
    machine = _target_machine(target, options.opt_level, jit=False)
    module = llvm.parse_assembly(text)
    module.triple = target.triple
    module.data_layout = str(machine.target_data)
    module.verify()
    _optimize(module, machine, options.opt_level)
    return LLVMModule(func, target, module, text, options)


def emit_module_text(mc: ModuleContext, func: PrimFunc) -> str:
    """``emit_primfunc``, then the module's LLVM IR text (what ``llvm.parse_assembly`` reads).

    Python's cyclic garbage collector is paused meanwhile: emission allocates hundreds of
    thousands of llvmlite objects that all stay alive until the text is printed, and every
    collection the allocations trigger would walk them (and everything the process holds)
    only to free nothing. The text is the same either way."""
    with _cyclic_gc_paused():
        emit_primfunc(mc, func)
        return str(mc.module)


def emit_primfunc(mc: ModuleContext, func: PrimFunc) -> None:
    """Add ``<name>_compute`` and the packed ``<name>`` entry for ``func`` to the module."""
    pointer_types = [memory_type(p.dtype).as_pointer() for p in func.params]
    compute = ir.Function(mc.module, ir.FunctionType(I32, pointer_types), name=f"{func.name}_compute")
    compute.linkage = "internal"
    compute.attributes.add("nounwind")
    fe = FunctionEmitter(mc, compute)
    for param, arg in zip(func.params, compute.args, strict=True):
        arg.add_attribute("noalias")
        arg.name = param.name
        fe.buffers[param] = arg
    fe.stmt(func.body)
    fe.b.ret(ir.Constant(I32, 0))
    fe.finish()

    packed = ir.Function(mc.module, ir.FunctionType(I32, [I8_PTR.as_pointer(), I32]), name=func.name)
    packed.attributes.add("nounwind")
    args, nargs = packed.args
    b = ir.IRBuilder(packed.append_basic_block("entry"))
    call_block = packed.append_basic_block("call")
    fail_block = packed.append_basic_block("bad_nargs")
    b.cbranch(b.icmp_signed("==", nargs, ir.Constant(I32, len(func.params))), call_block, fail_block)
    b.position_at_end(fail_block)
    b.ret(ir.Constant(I32, -1))
    b.position_at_end(call_block)
    pointers = []
    for i, ty in enumerate(pointer_types):
        raw = b.load(b.gep(args, [ir.Constant(I32, i)], inbounds=True))
        pointers.append(b.bitcast(raw, ty))
    b.ret(b.call(compute, pointers))


class LLVMModule:
    """A compiled PrimFunc: inspect it (``get_ir``, ``get_asm``), run it in-process
    (``get_kernel()`` or calling the module), or export it (``export_library``).

    Two code generations of the one optimised module exist, and each has its assembly:
    ``get_asm``/``get_object`` are the position-independent object that
    ``export_library`` links; ``get_jit_asm``/``get_jit_object`` are the code of the
    in-process kernel, made with the MCJIT engine's settings (the object is the very one
    the engine loaded). The module itself is never changed by code generation: each
    emission works on a clone.
    """

    def __init__(
        self, func: PrimFunc, target: Target, module: llvm.ModuleRef, source: str, options: BuildOptions
    ):
        self.func = func
        self.target = target
        self.entry_name = func.name
        self.options = options
        self._module = module
        self._source = source
        self._engine: llvm.ExecutionEngine | None = None
        self._address = 0
        self._kernel: weakref.ref[Kernel] | None = None
        self._jit_object: bytes | None = None
        self._jit_asm: str | None = None
        self.written = tuple(b.name for b in written_buffers(func.body) if b in func.params)

    # inspection ----------------------------------------------------------------------------
    def get_ir(self, optimized: bool = True) -> str:
        """LLVM IR text, after the O<opt_level> pipeline (or as emitted)."""
        return str(self._module) if optimized else self._source

    def get_asm(self) -> str:
        """Assembly of the exported object (``get_object``, what ``export_library`` links)."""
        machine = _target_machine(self.target, self.options.opt_level, jit=False)
        return machine.emit_assembly(self._module.clone())

    def get_object(self) -> bytes:
        """A position-independent ELF object for the target triple."""
        machine = _target_machine(self.target, self.options.opt_level, jit=False)
        return machine.emit_object(self._module.clone())

    def get_jit_asm(self) -> str:
        """Assembly of the in-process kernel: the optimised module through a TargetMachine
        made as ``get_kernel`` makes the engine's (same triple, CPU, features, code model,
        relocation model and O3 code generation), so it lists the instructions
        ``get_jit_object`` holds. Host targets only, as ``get_kernel``."""
        if self._jit_asm is None:
            self._check_runs_here()
            self._jit_asm = self._jit_machine().emit_assembly(self._module.clone())
        return self._jit_asm

    def get_jit_object(self) -> bytes:
        """The object code the MCJIT engine compiled and loaded for ``get_kernel()`` (caught
        through the engine's object cache; it compiles the kernel if not yet done)."""
        if self._engine is None:
            self._jit_compile()
        if self._jit_object is None:
            raise CodegenError(f"the JIT engine of '{self.entry_name}' reported no object code")
        return self._jit_object

    # running in-process ---------------------------------------------------------------------
    def get_kernel(self) -> Kernel:
        """The kernel, JIT-compiled into this process with MCJIT (compiled once; the same
        Kernel while one is alive). The kernel keeps this module, so ``kernel.llvm_ir`` and
        ``kernel.assembly`` are its own; the module holds the engine and only a weak
        reference to the kernel, so no reference cycle keeps the machine code alive."""
        kernel = None if self._kernel is None else self._kernel()
        if kernel is None:
            if self._engine is None:
                self._jit_compile()
            kernel = Kernel(
                self.entry_name,
                self.func.params,
                self._address,
                self.written,
                owner=self._engine,
                module=self,
            )
            self._kernel = weakref.ref(kernel)
        return kernel

    def _jit_compile(self) -> None:
        """Compile the optimised module with MCJIT, keeping the engine, the entry point's
        address and the object code the engine loaded (caught through its object cache)."""
        self._check_runs_here()
        _load_openmp()
        caught: list[bytes] = []
        engine = llvm.create_mcjit_compiler(self._module.clone(), self._jit_machine())
        engine.set_object_cache(lambda module, buffer: caught.append(bytes(buffer)), lambda module: None)
        engine.finalize_object()
        self._engine = engine
        self._address = engine.get_function_address(self.entry_name)
        self._jit_object = caught[-1] if caught else None

    def _check_runs_here(self) -> None:
        if not self.target.is_host:
            raise CodegenError(
                f"target triple {self.target.triple} cannot run in this process (host "
                f"{llvm.get_process_triple()}); use export_library with a cross linker"
            )
        missing = self.target.missing_host_features()
        if missing:
            raise CodegenError(
                f"target '{self.target}' uses CPU features this machine lacks: {', '.join(missing)}; "
                "its code would die of SIGILL in this process (export_library builds it for a "
                "machine that has them)"
            )

    def _jit_machine(self) -> llvm.TargetMachine:
        """The TargetMachine settings of the in-process kernel (a fresh one per engine)."""
        return _target_machine(self.target, 3, jit=True)

    def __call__(self, *arrays: object) -> None:
        self.get_kernel()(*arrays)  # type: ignore[arg-type]

    # exporting ----------------------------------------------------------------------------
    def export_library(
        self,
        path: str | Path,
        linker: Sequence[str] | str | None = None,
        libraries: Sequence[str] | None = None,
    ) -> Path:
        """Write a shared library at ``path``: the object file linked with ``-shared``.

        ``linker``: the command (``codegen.llvm.toolchain.find_linker`` picks ``cc`` for the
        host, ``aarch64-linux-gnu-gcc`` or ``ld.lld`` for AArch64, or the environment's
        ``ANSOR_PY_AARCH64_LINKER``); ``libraries``: what follows the object (default: libgomp
        and libm, as the linker needs them named)."""
        path = Path(path)
        chosen = find_linker(self.target, linker)
        with tempfile.TemporaryDirectory(prefix="ansor_py_link_") as tmp:
            obj = Path(tmp) / f"{self.entry_name}.o"
            obj.write_bytes(self.get_object())
            command = chosen.link_command(path, [obj])
            if libraries is not None:
                command = [*chosen.command, "-shared", "-o", str(path), str(obj), *libraries]
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False)
            except FileNotFoundError:
                raise CodegenError(f"linker {command[0]!r} was not found on PATH") from None
            if done.returncode != 0:
                raise CodegenError(f"linking {path} failed ({' '.join(command)}):\n{done.stderr.strip()}")
        return path


# ------------------------------------------------------------------------------------------
# LLVM plumbing

_gc_pause_lock = threading.Lock()
_gc_pause_depth = 0
_gc_was_enabled = False


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """``gc.disable()`` for the duration, restored by the last of overlapping callers
    (threads building at once must not leave the collector off, nor turn it on early)."""
    global _gc_pause_depth, _gc_was_enabled
    with _gc_pause_lock:
        if _gc_pause_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pause_depth += 1
    try:
        yield
    finally:
        with _gc_pause_lock:
            _gc_pause_depth -= 1
            if _gc_pause_depth == 0 and _gc_was_enabled:
                gc.enable()


@functools.cache
def _initialize_llvm() -> None:
    """Register every back end the wheel carries (x86, AArch64, ARM, NVPTX) once."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@functools.cache
def _load_openmp() -> None:
    """Make libgomp's symbols (GOMP_parallel, omp_get_thread_num) visible to MCJIT."""
    try:
        llvm.load_library_permanently("libgomp.so.1")
    except RuntimeError as error:
        raise CodegenError(f"cannot load libgomp.so.1 for parallel loops: {error}") from None


def _target_machine(target: Target, opt_level: int, *, jit: bool) -> llvm.TargetMachine:
    """A fresh TargetMachine (an MCJIT engine takes ownership of the one it is given)."""
    _initialize_llvm()
    try:
        llvm_target = llvm.Target.from_triple(target.triple)
    except RuntimeError as error:
        raise CodegenError(f"LLVM has no back end for triple {target.triple}: {error}") from None
    return llvm_target.create_target_machine(
        cpu=target.cpu,
        features=target.features,
        opt=opt_level,
        reloc="default" if jit else "pic",
        codemodel="jitdefault" if jit else "default",
        jit=jit,
    )


def _optimize(module: llvm.ModuleRef, machine: llvm.TargetMachine, opt_level: int) -> None:
    """LLVM's default O<n> pipeline (new pass manager), loop and SLP vectorizers on."""
    if opt_level == 0:
        return
    tuning = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    tuning.loop_unrolling = True
    tuning.loop_interleaving = True
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(module, builder)
