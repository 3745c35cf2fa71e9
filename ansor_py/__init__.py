"""ansor-py: a pure-Python Ansor auto-scheduler (OSDI 2020), usable without TVM.

The user surface mirrors ``tvm.auto_scheduler``: declare with ``te``, schedule through the
State API of a ``ComputeDAG``, and ``build`` a state for a target into a callable kernel;
or make a ``SearchTask``, ``auto_schedule`` it, and ``apply_best`` its log. Whole networks:
``from_onnx`` (or ``ansor_py.network.zoo``), ``extract_tasks``, ``build_network``.

Importing the package is cheap: every name below is imported on first use (PEP 562), so
``import ansor_py`` loads neither xgboost (the cost model) nor paramiko (the SSH runner)
until a program asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ansor_py.cost_model import (
        CostModel,
        RandomModel,
        XGBModel,
    )
    from ansor_py.explainer import Explanation, explain, explain_record
    from ansor_py.measure import (
        MeasureErrorNo,
        MeasureInput,
        MeasureResult,
    )
    from ansor_py.measure.local import (
        LocalBuilder,
        LocalRunner,
    )
    from ansor_py.measure.measurer import (
        MeasureCallback,
        ProgramMeasurer,
    )
    from ansor_py.measure.progress import TuningProgress
    from ansor_py.measure.ssh import (
        SSHHost,
        SSHRunner,
        check_host,
    )
    from ansor_py.network import (
        Network,
        build_network,
        extract_tasks,
        from_onnx,
    )
    from ansor_py.plot import plot_network, plot_tuning
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
    from ansor_py.remeasure import remeasure_best
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
    from ansor_py.task_scheduler import (
        LogEstimatedLatency,
        PrintTableInfo,
        TaskScheduler,
        TaskSchedulerCallback,
    )
    from ansor_py.tuning import (
        TuningOptions,
        apply_best,
        auto_schedule,
        best_state,
        print_best,
    )
    from ansor_py.workload_registry import (
        make_workload_key,
        register_workload,
    )
    from codegen.build import build
    from codegen.target import (
        HardwareParams,
        Target,
    )
    from ir import te
    from ir.compute_dag import ComputeDAG
    from ir.layout_rewrite import LayoutRewriteOption
    from ir.loop_state.api import (
        State,
        get_init_state,
    )
    from ir.loop_state.state import ScheduleError
    from ir.lower.bound import infer_bound_from_state
    from ir.lower.lower import lower

#: the module each public name is imported from, on first use
_EXPORTS: dict[str, str] = {
    "TuningProgress": "ansor_py.measure.progress",
    "remeasure_best": "ansor_py.remeasure",
    "plot_network": "ansor_py.plot",
    "plot_tuning": "ansor_py.plot",
    "Explanation": "ansor_py.explainer",
    "explain": "ansor_py.explainer",
    "explain_record": "ansor_py.explainer",
    "CostModel": "ansor_py.cost_model",
    "RandomModel": "ansor_py.cost_model",
    "XGBModel": "ansor_py.cost_model",
    "MeasureErrorNo": "ansor_py.measure",
    "MeasureInput": "ansor_py.measure",
    "MeasureResult": "ansor_py.measure",
    "LocalBuilder": "ansor_py.measure.local",
    "LocalRunner": "ansor_py.measure.local",
    "MeasureCallback": "ansor_py.measure.measurer",
    "ProgramMeasurer": "ansor_py.measure.measurer",
    "SSHHost": "ansor_py.measure.ssh",
    "SSHRunner": "ansor_py.measure.ssh",
    "check_host": "ansor_py.measure.ssh",
    "Network": "ansor_py.network",
    "build_network": "ansor_py.network",
    "extract_tasks": "ansor_py.network",
    "from_onnx": "ansor_py.network",
    "ApplyHistoryBest": "ansor_py.records",
    "RecordReader": "ansor_py.records",
    "RecordToFile": "ansor_py.records",
    "distill_record_file": "ansor_py.records",
    "dump_record_to_string": "ansor_py.records",
    "load_best_record": "ansor_py.records",
    "load_best_records": "ansor_py.records",
    "load_record_from_string": "ansor_py.records",
    "load_records": "ansor_py.records",
    "save_records": "ansor_py.records",
    "EmptyPolicy": "ansor_py.search",
    "PreloadCustomSketchRule": "ansor_py.search",
    "PreloadMeasuredStates": "ansor_py.search",
    "SearchCallback": "ansor_py.search",
    "SearchPolicy": "ansor_py.search",
    "SketchParams": "ansor_py.search",
    "SketchPolicy": "ansor_py.search",
    "SearchTask": "ansor_py.search_task",
    "LogEstimatedLatency": "ansor_py.task_scheduler",
    "PrintTableInfo": "ansor_py.task_scheduler",
    "TaskScheduler": "ansor_py.task_scheduler",
    "TaskSchedulerCallback": "ansor_py.task_scheduler",
    "TuningOptions": "ansor_py.tuning",
    "apply_best": "ansor_py.tuning",
    "auto_schedule": "ansor_py.tuning",
    "best_state": "ansor_py.tuning",
    "print_best": "ansor_py.tuning",
    "make_workload_key": "ansor_py.workload_registry",
    "register_workload": "ansor_py.workload_registry",
    "build": "codegen.build",
    "HardwareParams": "codegen.target",
    "Target": "codegen.target",
    "te": "ir",
    "ComputeDAG": "ir.compute_dag",
    "LayoutRewriteOption": "ir.layout_rewrite",
    "State": "ir.loop_state.api",
    "get_init_state": "ir.loop_state.api",
    "ScheduleError": "ir.loop_state.state",
    "infer_bound_from_state": "ir.lower.bound",
    "lower": "ir.lower.lower",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module's namespace."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    imported = importlib.import_module(module)
    # a name may be a submodule (``te`` of ``ir``), which ``from ir import te`` would import
    if hasattr(imported, name):
        value = getattr(imported, name)
    else:
        value = importlib.import_module(f"{module}.{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ApplyHistoryBest",
    "ComputeDAG",
    "CostModel",
    "EmptyPolicy",
    "Explanation",
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
    "TuningProgress",
    "XGBModel",
    "apply_best",
    "auto_schedule",
    "best_state",
    "build",
    "build_network",
    "check_host",
    "distill_record_file",
    "dump_record_to_string",
    "explain",
    "explain_record",
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
    "plot_network",
    "plot_tuning",
    "print_best",
    "register_workload",
    "remeasure_best",
    "save_records",
    "te",
]
