"""``build(dag, state, target)``: lower a loop state and compile it into a callable kernel.

The kernel takes one numpy array per tensor of ``dag.tensors`` (inputs, then outputs),
checks each array's shape, dtype, contiguity and writeability against the declaration
(``KernelArgumentError`` otherwise), and writes the outputs in place.

Before lowering, ``build`` checks what the machine code would otherwise trust blindly:
the target is an LLVM one, and the state belongs to ``dag`` (a state scheduled on another
declaration, say a larger matmul, would lower to loops that run past the buffers of this
one) and has every split length filled (a sketch's unknown lengths have no program).
"""

from __future__ import annotations

from codegen.llvm import CodegenError, Kernel
from codegen.llvm import build as llvm_build
from codegen.target import Target, as_target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.loop_state.state import LoopState, ScheduleError
from ir.lower.lower import lower


def build(
    dag: ComputeDAG,
    state: State | LoopState | None = None,
    target: str | Target = "llvm",
    name: str = "default_function",
) -> Kernel:
    """Compile ``state`` of ``dag`` (None: the naive schedule) for an LLVM ``target``.

    Raises TypeError for a ``dag`` or ``state`` of the wrong type, ValueError for a target
    string that does not parse, CodegenError for a target that is not ``llvm`` (or cannot
    run in this process) and ScheduleError for a state of another DAG or with unknown split
    lengths.
    """
    if not isinstance(dag, ComputeDAG):
        raise TypeError(f"build() takes a ComputeDAG as dag, got {type(dag).__name__}")
    parsed = as_target(target)
    if parsed.kind != "llvm":
        raise CodegenError(
            f"build() compiles for 'llvm' targets (x86-64, AArch64) only; target '{parsed}' is not supported"
        )
    loop_state = state_of(dag, state)
    return llvm_build(lower(dag, loop_state, name=name), parsed).get_kernel()


def state_of(dag: ComputeDAG, state: State | LoopState | None) -> LoopState:
    """The LoopState to build for ``dag``, checked to belong to it and to be concrete."""
    if state is None:
        return dag.init_state
    if isinstance(state, State):
        loop_state = state.loop_state
    elif isinstance(state, LoopState):
        loop_state = state
    else:
        raise TypeError(f"build() takes a State, a LoopState or None as state, got {type(state).__name__}")
    stages = {stage.name: stage for stage in loop_state.stages}
    for tensor in dag.tensors:
        stage = stages.get(tensor.name)
        if stage is None:
            raise ScheduleError(
                f"cannot build: the state has no stage '{tensor.name}' for tensor '{tensor.name}' of the "
                f"DAG (its stages: {', '.join(stages)}); was it made from another DAG?"
            )
        shape = tuple(getattr(stage.op, "shape", ()))
        dtype = getattr(stage.op, "dtype", None)
        if shape != tuple(tensor.shape) or dtype != tensor.dtype:
            raise ScheduleError(
                f"cannot build: stage '{stage.name}' of the state is {dtype}{list(shape)} but the DAG's "
                f"tensor '{tensor.name}' is {tensor.dtype}{list(tensor.shape)}; the state was made from "
                "another DAG"
            )
    if isinstance(state, State) and state.dag is not dag and state.dag.workload_key() != dag.workload_key():
        raise ScheduleError(
            "cannot build: the State was made from another DAG\n"
            f"--- its DAG\n{state.dag}\n--- this DAG\n{dag}"
        )
    if not loop_state.concrete:
        raise ScheduleError(
            "cannot build a state with unknown split lengths (a sketch): fill every length first\n"
            f"{loop_state}"
        )
    return loop_state
