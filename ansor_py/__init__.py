"""ansor-py: a pure-Python Ansor auto-scheduler (OSDI 2020), usable without TVM.

The user surface mirrors ``tvm.auto_scheduler``: declare with ``te``, schedule through the
State API of a ``ComputeDAG``, and ``build`` a state for a target into a callable kernel;
or make a ``SearchTask``, ``auto_schedule`` it, and ``apply_best`` its log. Whole networks:
``from_onnx`` (or ``ansor_py.network.zoo``), ``extract_tasks``, ``build_network``.
"""

from ansor_py.cost_model import CostModel, RandomModel, XGBModel
from ansor_py.measure import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.measure.local import LocalBuilder, LocalRunner
from ansor_py.measure.measurer import MeasureCallback, ProgramMeasurer
from ansor_py.measure.ssh import SSHHost, SSHRunner, check_host
from ansor_py.network import Network, build_network, extract_tasks, from_onnx
from ansor_py.records import (
    ApplyHistoryBest,
    RecordReader,
    RecordToFile,
    distill_record_file,
    dump_record_to_string,
    load_best_record,
    load_best_records,
    load_record_from_string,
    load_records,
    save_records,
)
from ansor_py.search import (
    EmptyPolicy,
    PreloadCustomSketchRule,
    PreloadMeasuredStates,
    SearchCallback,
    SearchPolicy,
    SketchParams,
    SketchPolicy,
)
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler import LogEstimatedLatency, PrintTableInfo, TaskScheduler, TaskSchedulerCallback
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule, best_state, print_best
from ansor_py.workload_registry import make_workload_key, register_workload
from codegen.build import build
from codegen.target import HardwareParams, Target
from ir import te
from ir.compute_dag import ComputeDAG
from ir.layout_rewrite import LayoutRewriteOption
from ir.loop_state.api import State, get_init_state
from ir.loop_state.state import ScheduleError
from ir.lower.bound import infer_bound_from_state
from ir.lower.lower import lower

__all__ = [
    "ApplyHistoryBest",
    "ComputeDAG",
    "CostModel",
    "EmptyPolicy",
    "HardwareParams",
    "LayoutRewriteOption",
    "LocalBuilder",
    "LocalRunner",
    "LogEstimatedLatency",
    "MeasureCallback",
    "MeasureErrorNo",
    "MeasureInput",
    "MeasureResult",
    "Network",
    "PreloadCustomSketchRule",
    "PreloadMeasuredStates",
    "PrintTableInfo",
    "ProgramMeasurer",
    "RandomModel",
    "RecordReader",
    "RecordToFile",
    "SSHHost",
    "SSHRunner",
    "ScheduleError",
    "SearchCallback",
    "SearchPolicy",
    "SearchTask",
    "SketchParams",
    "SketchPolicy",
    "State",
    "Target",
    "TaskScheduler",
    "TaskSchedulerCallback",
    "TuningOptions",
    "XGBModel",
    "apply_best",
    "auto_schedule",
    "best_state",
    "build",
    "build_network",
    "check_host",
    "distill_record_file",
    "dump_record_to_string",
    "extract_tasks",
    "from_onnx",
    "get_init_state",
    "infer_bound_from_state",
    "load_best_record",
    "load_best_records",
    "load_record_from_string",
    "load_records",
    "lower",
    "make_workload_key",
    "print_best",
    "register_workload",
    "save_records",
    "te",
]
