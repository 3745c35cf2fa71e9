"""Per-module state shared by every function the emitter writes: the llvmlite module,
declared intrinsics and libm functions, and fresh names for outlined functions."""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from codegen.target import Target


@dataclass(frozen=True)
class BuildOptions:
    """Tunables of the LLVM back end (passed in, never read from the environment)."""

    #: LLVM optimisation level of the module pass pipeline (0-3)
    opt_level: int = 3
    #: allocations up to this size live on the stack (entry-block alloca), larger on the heap
    stack_alloc_max_bytes: int = 64 * 1024
    #: widest vector the vectorizer emits at once; longer loops run in chunks of this width
    max_vector_lanes: int = 64
    #: an UNROLLED loop longer than this becomes a loop with llvm.loop.unroll metadata
    max_unroll_extent: int = 1024
    #: threads per parallel loop for GOMP_parallel; 0 lets libgomp decide (OMP_NUM_THREADS)
    num_threads: int = 0


class ModuleContext:
    """One llvmlite ``ir.Module`` being filled for ``target``."""

    def __init__(self, name: str, target: Target, options: BuildOptions | None = None):
        self.module = ir.Module(name=name)
        self.module.triple = target.triple
        self.target = target
        self.options = options or BuildOptions()
        self._names: dict[str, int] = {}

    def declare(self, name: str, return_type: ir.Type, arg_types: list[ir.Type]) -> ir.Function:
        """The function ``name`` (an intrinsic or a C function), declared once."""
        existing = self.module.globals.get(name)
        if existing is not None:
            assert isinstance(existing, ir.Function)
            return existing
        return ir.Function(self.module, ir.FunctionType(return_type, arg_types), name=name)

    def fresh_name(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... when already taken in this module."""
        count = self._names.get(base, 0)
        self._names[base] = count + 1
        return base if count == 0 and base not in self.module.globals else f"{base}_{count}"

    def loop_metadata(self, *options: tuple[str, bool | int]) -> ir.MDValue:
        """A self-referential ``!llvm.loop`` node carrying ``("llvm.loop.x", value)`` options."""
        nodes = []
        for key, value in options:
            const = (
                ir.Constant(ir.IntType(1), value)
                if isinstance(value, bool)
                else ir.Constant(ir.IntType(32), value)
            )
            nodes.append(self.module.add_metadata([ir.MetaDataString(self.module, key), const]))
        # a unique first operand keeps llvmlite from sharing the node between loops
        unique = ir.MetaDataString(self.module, self.fresh_name("loop"))
        node = self.module.add_metadata([unique, *nodes])
        # a loop ID must list itself first (LLVM LangRef, "llvm.loop")
        node.operands = (node, *node.operands[1:])
        return node
