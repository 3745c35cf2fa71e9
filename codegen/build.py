"""``build(dag, state, target)``: lower a loop state and compile it into a callable kernel.

The whole pipeline in two calls: ``ir.lower.lower`` (DAG + state -> PrimFunc) and
``codegen.llvm.build`` (PrimFunc -> compiled module), then the module's in-process kernel.
Scheduling by hand needs nothing above this layer: declare with ``ir.te``, schedule
through the State API, ``build``.

The kernel takes one numpy array per tensor of ``dag.tensors`` (inputs, then outputs),
checks each array's shape, dtype, contiguity and writeability against the declaration
(``KernelArgumentError`` otherwise), and writes the outputs in place. It shows its own code:
``kernel.llvm_ir`` (the optimised LLVM IR it was compiled from), ``kernel.assembly`` (the
machine code it runs) and ``kernel.module`` (the ``LLVMModule``, with the IR as emitted).

Before compiling, ``build`` checks what the machine code would otherwise trust blindly:
the target is an LLVM one, and (in ``lower``, ``ir.loop_state.api.check_state_of``) the
state belongs to ``dag`` and has every split length filled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codegen.llvm import CodegenError, Kernel
from codegen.llvm import build as llvm_build
from codegen.target import Target, as_target
from ir.compute_dag import ComputeDAG
from ir.lower.lower import lower

if TYPE_CHECKING:
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState


def build(
    dag: ComputeDAG,
    state: State | LoopState | None = None,
    target: str | Target = "llvm",
    name: str = "default_function",
) -> Kernel:
    """Compile ``state`` of ``dag`` (None: the naive schedule) for an LLVM ``target`` this
    process runs, as the function ``name`` (the symbol in ``kernel.assembly``).

    Raises TypeError for a ``dag`` or ``state`` of the wrong type, ValueError for a target
    string that does not parse, CodegenError for a target that is not ``llvm`` (or cannot
    run in this process) and ScheduleError for a state of another DAG or with unknown split
    lengths. For a cross target, ``codegen.llvm.build(lower(dag, state), target)`` gives the
    module to export as a shared library.
    """
    if not isinstance(dag, ComputeDAG):
        raise TypeError(f"build() takes a ComputeDAG as dag, got {type(dag).__name__}")
    parsed = as_target(target)
    if parsed.kind != "llvm":
        raise CodegenError(
            f"build() compiles for 'llvm' targets (x86-64, AArch64) only; target '{parsed}' is not supported"
        )
    return llvm_build(lower(dag, state, name=name), parsed).get_kernel()
