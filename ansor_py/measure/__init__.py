"""Measurement: build candidates in isolated workers, time them in a child process (or on a
remote host), verify each against the task's reference result (Ansor paper section 6.1's
"measurer"; TVM ``auto_scheduler/measure.py``)."""

from ansor_py.measure.local import (
    ENTRY_NAME,
    BuildFunc,
    LocalBuilder,
    LocalRunner,
    build_candidate,
    default_build_func,
)
from ansor_py.measure.measurer import MeasureCallback, ProgramMeasurer
from ansor_py.measure.types import (
    ERROR_COST,
    BuildResult,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramBuilder,
    ProgramRunner,
)

__all__ = [
    "ENTRY_NAME",
    "ERROR_COST",
    "BuildFunc",
    "BuildResult",
    "LocalBuilder",
    "LocalRunner",
    "MeasureCallback",
    "MeasureErrorNo",
    "MeasureInput",
    "MeasureResult",
    "ProgramBuilder",
    "ProgramMeasurer",
    "ProgramRunner",
    "build_candidate",
    "default_build_func",
]
