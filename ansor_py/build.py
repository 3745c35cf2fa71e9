"""``build(dag, state, target)``: lower a loop state and compile it into a callable kernel.

The kernel takes one numpy array per tensor of ``dag.tensors`` (inputs, then outputs),
checks each array's shape, dtype and contiguity against the declaration, and writes the
outputs in place.
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
    """Compile ``state`` (None: the naive schedule) of ``dag`` for ``target``."""
    target = Target.parse(target) if isinstance(target, str) else target
    if target.kind != "llvm":
        raise ValueError(f"build: target '{target}' is not an LLVM CPU target; only 'llvm' targets build here")
    func = lower(dag, state, name=name)
    return llvm_build(func, target).get_kernel()
