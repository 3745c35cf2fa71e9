"""Helpers shared by the step modules, and how to add a step kind (Ansor paper section 4.1).

Every step keeps the contract of ``ir.loop_state.state.Step`` (TVM ``transform_step.h``):
``apply(state, dag)``, ``to_record()`` / ``from_record(record)`` in TVM's v0.6 layout, and
``to_python(state_before)``. The helpers below check records and indices and build the new
state, so that each step's ``apply`` reads as its effect.

How to add a step kind:

1. Write a frozen dataclass deriving ``Step`` in the module of its family (or a new one
   in this package) with a new ``record_prefix`` and its fields after ``stage_id`` in
   record order; implement the four methods of the contract.
2. Add the class to ``STEP_CLASSES`` in ``steps/__init__.py`` (the record reader
   dispatches through that dict) and a method for it on ``State`` in ``api.py``.
3. Test it in ``tests/ir/test_steps.py`` (effect on the shared workloads of
   ``tests/ir/workloads.py`` and every illegal use, with ``pytest.raises(ScheduleError,
   match=...)``; a step that changes the DAG goes in ``test_steps_insert.py``, checked
   numerically against ``ir.reference``), ``tests/ir/test_records.py`` (add a sample to
   ``RECORDS``: layout and round trip) and ``tests/ir/test_state_print.py`` (its
   ``to_python`` line reruns to the same state).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ir.loop_state.enums import StageKind
from ir.loop_state.python_names import PythonNames
from ir.loop_state.state import AttachPoint, Iterator, LoopState, ScheduleError, Stage, Step

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG


class RecordError(ValueError):
    """A step record that cannot be read: unknown tag, wrong field count or field type."""


# ------------------------------------------------------------------------------------------
# helpers shared by the step modules


def check_record(cls: type[Step], record: Sequence[Any]) -> list[Any]:
    """Validate the tag and field count of ``record``; return the fields after the tag."""
    if not isinstance(record, (list, tuple)) or not record or record[0] != cls.record_prefix:
        raise RecordError(f"{cls.__name__} cannot read record {record!r}: expected tag {cls.record_prefix!r}")
    fields = list(record[1:])
    if len(fields) != len(cls.record_fields):
        raise RecordError(
            f"malformed {cls.record_prefix} record {list(record)!r}: expected {len(cls.record_fields)} "
            f"field(s) after the tag ({', '.join(cls.record_fields)}), got {len(fields)}"
        )
    return fields


def record_int(record: Sequence[Any], value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(
            f"malformed {record[0]} record {list(record)!r}: {field_name} must be an int, got {value!r}"
        )
    return value


def record_ints(record: Sequence[Any], value: Any, field_name: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise RecordError(
            f"malformed {record[0]} record {list(record)!r}: {field_name} must be a list, got {value!r}"
        )
    return tuple(record_int(record, v, field_name) for v in value)


def stage_at(state: LoopState, stage_id: int, action: str) -> Stage:
    """The stage ``stage_id``, or a ScheduleError naming the range."""
    if isinstance(stage_id, bool) or not isinstance(stage_id, int) or not 0 <= stage_id < len(state.stages):
        raise ScheduleError(
            f"cannot {action}: stage id {stage_id!r} is out of range "
            f"(the state has {len(state.stages)} stages)"
        )
    return state.stages[stage_id]


def compute_stage_at(state: LoopState, stage_id: int, action: str) -> Stage:
    """The compute stage ``stage_id``; placeholders have no loops to transform."""
    stage = stage_at(state, stage_id, action)
    if stage.op_type is StageKind.PLACEHOLDER:
        raise ScheduleError(f"cannot {action} stage '{stage.name}': it is a placeholder and has no loops")
    return stage


def iter_at(stage: Stage, iter_id: int, action: str) -> Iterator:
    """Iterator ``iter_id`` of ``stage``, or a ScheduleError naming the range."""
    if isinstance(iter_id, bool) or not isinstance(iter_id, int) or not 0 <= iter_id < len(stage.iters):
        raise ScheduleError(
            f"cannot {action} stage '{stage.name}': iterator index {iter_id!r} is out of range "
            f"(it has {len(stage.iters)} iterators: {', '.join(it.name for it in stage.iters)})"
        )
    return stage.iters[iter_id]


def finish(state: LoopState, stages: Sequence[Stage], step: Step, **changes: Any) -> LoopState:
    """The new state: ``stages`` replaced, ``step`` appended to the history."""
    return replace(state, stages=tuple(stages), transform_steps=(*state.transform_steps, step), **changes)


def move_attached(stages: list[Stage], stage_id: int, old_name: str, new_name: str) -> None:
    """Stages computed at iterator ``old_name`` of stage ``stage_id`` move to ``new_name``."""
    old = AttachPoint(stage_id, old_name)
    for index, stage in enumerate(stages):
        if stage.attach == old:
            stages[index] = replace(stage, attach=AttachPoint(stage_id, new_name))


def attached_names(state: LoopState, stage_id: int) -> dict[str, list[str]]:
    """Iterator name -> names of the stages computed at it, for stage ``stage_id``."""
    result: dict[str, list[str]] = {}
    for stage in state.stages:
        if stage.attach is not None and stage.attach.stage_id == stage_id:
            result.setdefault(stage.attach.iter_name, []).append(stage.name)
    return result


def current_dag(state: LoopState, dag: ComputeDAG) -> ComputeDAG:
    """The DAG the state's stages come from (a new one after cache or rfactor steps)."""
    return state.current_compute_dag if state.current_compute_dag is not None else dag


def python_names(names: PythonNames | None) -> PythonNames:
    """``names``, or a fresh naming context when a step prints on its own."""
    return names if names is not None else PythonNames()


def quote(text: str) -> str:
    """A Python string literal in double quotes, as the scripts print names."""
    return json.dumps(text)
