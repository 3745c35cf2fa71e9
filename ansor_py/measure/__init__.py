"""Measurement: build candidates in isolated workers, time them in a child process (or on a
remote host), verify each against the task's reference result (Ansor paper section 6.1's
"measurer"; TVM ``auto_scheduler/measure.py``)."""

from ansor_py.measure.types import (
    BuildResult,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramBuilder,
    ProgramRunner,
)

__all__ = [
    "BuildResult",
    "MeasureErrorNo",
    "MeasureInput",
    "MeasureResult",
    "ProgramBuilder",
    "ProgramRunner",
]
