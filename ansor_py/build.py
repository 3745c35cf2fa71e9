"""``build(dag, state, target)``: lower a loop state and compile it into a callable kernel.

The kernel takes one numpy array per tensor of ``dag.tensors`` (inputs, then outputs),
checks each array's shape, dtype, contiguity and writeability against the declaration
(``KernelArgumentError`` otherwise), and writes the outputs in place.
"""

from __future__ import annotations

from codegen.llvm import Kernel
from codegen.llvm import build as llvm_build
from codegen.target import Target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.loop_state.state import LoopState
from ir.lower.lower import lower


def build(
    dag: ComputeDAG,
    state: State | LoopState | None = None,
    target: str | Target = "llvm",
    name: str = "default_function",
) -> Kernel:
    """Compile ``state`` of ``dag`` (None: the naive schedule) for an LLVM ``target``."""
    return llvm_build(lower(dag, state, name=name), target).get_kernel()
