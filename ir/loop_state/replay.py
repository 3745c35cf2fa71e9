"""Replaying step histories and reading/writing a state's record form.

A state is fully described by its DAG and its steps (Ansor paper section 4.1: the search
stores and mutates step lists). ``replay_steps`` rebuilds it; records store only the steps,
in TVM's v0.6 layout ``[[], [step records...]]`` (the empty list is where TVM would put
stages, which it never writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ir.loop_state.state import LoopState, initial_state
from ir.loop_state.steps import RecordError, Step, step_from_record

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.api import State


def replay_steps(dag: ComputeDAG, steps: Iterable[Step]) -> LoopState:
    """Apply ``steps`` in order to ``dag``'s initial state; raises ScheduleError on the
    first illegal one."""
    state = initial_state(dag)
    for step in steps:
        state = step.apply(state, dag)
    return state


def state_to_record(state: LoopState | State) -> list[Any]:
    """``[[], [step records...]]`` of a LoopState or a State handle."""
    return [[], [step.to_record() for step in state.transform_steps]]


def steps_from_record(record: Sequence[Any]) -> list[Step]:
    """The steps of a state record ``[[], [step records...]]``."""
    if not isinstance(record, (list, tuple)) or len(record) != 2 or not isinstance(record[1], (list, tuple)):
        raise RecordError(f"a state record is [[], [step records...]], got {record!r}")
    return [step_from_record(r) for r in record[1]]


def state_from_record(dag: ComputeDAG, record: Sequence[Any]) -> LoopState:
    """Rebuild the state a record describes by replaying its steps on ``dag``."""
    return replay_steps(dag, steps_from_record(record))
