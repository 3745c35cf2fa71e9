"""ansor-py: a pure-Python Ansor auto-scheduler (OSDI 2020), usable without TVM.

The user surface mirrors ``tvm.auto_scheduler``: declare with ``te``, schedule through the
State API of a ``ComputeDAG``, and ``build`` a state for a target into a callable kernel.
"""

from ansor_py.build import build
from codegen.target import HardwareParams, Target
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.loop_state.state import ScheduleError
from ir.lower.lower import lower

__all__ = [
    "ComputeDAG",
    "HardwareParams",
    "ScheduleError",
    "State",
    "Target",
    "build",
    "lower",
    "te",
]
