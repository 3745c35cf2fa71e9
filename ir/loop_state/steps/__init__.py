"""The fourteen transform steps of Ansor's loop state (TVM ``transform_step.h``).

Each step is a frozen dataclass keeping the contract of ``ir.loop_state.state.Step``
(how to add one: ``base.py``); this package gathers them and
reads records: ``step_from_record(["SP", 2, 0, 512, [32], 1])`` dispatches on the tag
through ``STEP_CLASSES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ir.loop_state.state import Step
from ir.loop_state.steps.annotation import AnnotationStep, PragmaStep, StorageAlignStep
from ir.loop_state.steps.attach import ComputeAtStep, ComputeInlineStep, ComputeRootStep
from ir.loop_state.steps.base import RecordError
from ir.loop_state.steps.cache import CacheReadStep, CacheWriteStep
from ir.loop_state.steps.loop import FuseStep, ReorderStep
from ir.loop_state.steps.rfactor import RfactorStep
from ir.loop_state.steps.split import FollowFusedSplitStep, FollowSplitStep, SplitStep

#: record tag -> step class; the only dispatch on step kinds
STEP_CLASSES: dict[str, type[Step]] = {
    cls.record_prefix: cls
    for cls in (
        AnnotationStep,
        FuseStep,
        PragmaStep,
        ReorderStep,
        SplitStep,
        FollowSplitStep,
        FollowFusedSplitStep,
        StorageAlignStep,
        ComputeAtStep,
        ComputeInlineStep,
        ComputeRootStep,
        CacheReadStep,
        CacheWriteStep,
        RfactorStep,
    )
}


def step_from_record(record: Sequence[Any]) -> Step:
    """Read one step record (a JSON array starting with its tag)."""
    if not isinstance(record, (list, tuple)) or not record or not isinstance(record[0], str):
        raise RecordError(f"a step record is a list starting with its tag, got {record!r}")
    cls = STEP_CLASSES.get(record[0])
    if cls is None:
        raise RecordError(
            f"unknown step tag {record[0]!r} in record {list(record)!r}; known: {', '.join(STEP_CLASSES)}"
        )
    return cls.from_record(record)


__all__ = [
    "STEP_CLASSES",
    "AnnotationStep",
    "CacheReadStep",
    "CacheWriteStep",
    "ComputeAtStep",
    "ComputeInlineStep",
    "ComputeRootStep",
    "FollowFusedSplitStep",
    "FollowSplitStep",
    "FuseStep",
    "PragmaStep",
    "RecordError",
    "ReorderStep",
    "RfactorStep",
    "SplitStep",
    "Step",
    "StorageAlignStep",
    "step_from_record",
]
