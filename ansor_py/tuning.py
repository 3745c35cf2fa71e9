"""Tuning a task and applying what it found: the top of the search stack.

``auto_schedule(task, tuning_options)`` runs Ansor's search on one task (TVM 0.7
``auto_scheduler.auto_schedule``): a search policy (``SketchPolicy`` with the ``XGBModel``
cost model unless one is given) proposes programs, a ``ProgramMeasurer`` builds and times
them, and every measurement goes through the options' callbacks, usually ``RecordToFile``,
so the log is the run's result (Ansor paper section 6.1). At the end, the best few programs
are measured again and recorded (``ansor_py.remeasure``), so the best is not one lucky
sample.

The log is then read back: ``best_state`` replays the fastest correct program of the task
(each program judged by its latest record, ``records.ranked_programs``),
``apply_best`` compiles it for the task's target, ``print_best`` prints it as a Python step
script. ``SearchTask`` itself is data and knows none of this: the records, the policies
and the measurer all sit below this module.
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansor_py.forking import exit_on_sigterm
from ansor_py.measure.gpu_builder import ENTRY_NAME as GPU_ENTRY_NAME
from ansor_py.measure.local import LocalBuilder, LocalRunner
from ansor_py.measure.measurer import ProgramMeasurer
from ansor_py.measure.types import ProgramBuilder, ProgramRunner
from ansor_py.records import load_best_record
from ansor_py.remeasure import remeasure_best
from ansor_py.search.search_policy import SearchPolicy
from ansor_py.search.sketch_policy import SketchPolicy
from ansor_py.search_task import SearchTask
from codegen.cuda import emit_source
from codegen.llvm import Kernel
from codegen.llvm import build as llvm_build
from codegen.llvm.build import LLVMModule
from codegen.target import Target
from ir.layout_rewrite import LayoutRewrite, LayoutRewriteOption, rewrite_layout_from_state
from ir.loop_state.python_printer import state_to_python
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import LoopState
from ir.lower.lower import lower

PathLike = str | os.PathLike[str]


@dataclass
class TuningOptions:
    """How a tuning run measures (TVM ``auto_scheduler.TuningOptions``).

    ``num_measure_trials`` (at least 0) <= 1 searches one round with the cost model only and
    measures nothing; ``early_stopping`` stops after that many measurements without
    improvement (None or a negative number: never); ``builder``/``runner`` "local" mean
    ``LocalBuilder()``/``LocalRunner()`` (any other string is refused here).

    ``remeasure_top_k`` (0: off) and ``remeasure_repeat``: at the end of tuning, the
    ``remeasure_top_k`` fastest distinct programs of each task are measured
    ``remeasure_repeat`` times more, interleaved, and recorded through the callbacks, so
    that the best read from the log is not one lucky sample (``ansor_py.remeasure``; not in
    TVM). It needs a ``RecordToFile`` callback: the log is what it ranks and extends.
    """

    num_measure_trials: int = 0
    early_stopping: int | None = None
    num_measures_per_round: int = 64
    verbose: int = 1
    builder: ProgramBuilder | str = "local"
    runner: ProgramRunner | str = "local"
    measure_callbacks: Sequence[Any] = field(default_factory=tuple)
    remeasure_top_k: int = 5
    remeasure_repeat: int = 5

    def __post_init__(self) -> None:
        for name in (
            "num_measure_trials",
            "num_measures_per_round",
            "early_stopping",
            "remeasure_top_k",
            "remeasure_repeat",
        ):
            value = getattr(self, name)
            if value is None and name == "early_stopping":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"TuningOptions: {name} {value!r} must be an int")
            setattr(self, name, int(value))  # numpy integers welcome
        if self.num_measure_trials < 0:
            raise ValueError(
                f"TuningOptions: num_measure_trials {self.num_measure_trials} must be >= 0 "
                "(0 or 1: one round of search with the cost model only, nothing measured)"
            )
        if self.num_measures_per_round < 1:
            raise ValueError(
                f"TuningOptions: num_measures_per_round {self.num_measures_per_round} must be >= 1"
            )
        if self.remeasure_top_k < 0:
            raise ValueError(f"TuningOptions: remeasure_top_k {self.remeasure_top_k} must be >= 0 (0: off)")
        if self.remeasure_repeat < 1:
            raise ValueError(f"TuningOptions: remeasure_repeat {self.remeasure_repeat} must be >= 1")
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"TuningOptions: verbose {self.verbose} must be 0, 1 or 2")
        for role, value in (("builder", self.builder), ("runner", self.runner)):
            if isinstance(value, str) and value != "local":
                raise ValueError(f"TuningOptions: {role} {value!r}: give 'local' or a {role} object")


def auto_schedule(
    task: SearchTask, tuning_options: TuningOptions, search_policy: SearchPolicy | None = None
) -> LoopState | None:
    """Search for a fast schedule of ``task`` (TVM ``auto_scheduler.auto_schedule``).

    ``search_policy`` defaults to ``SketchPolicy(task, XGBModel())``; the builder and
    runner "local" become ``LocalBuilder()`` and ``LocalRunner()`` (the runner is closed
    afterwards); every measurement goes through ``tuning_options.measure_callbacks``
    (e.g. ``RecordToFile``). Then the best programs are measured again
    (``TuningOptions.remeasure_top_k``, ``ansor_py.remeasure``). Returns the best program:
    the one ``best_state`` reads from the log after re-measuring, else the best the search
    measured (None if none ran correctly), or with ``num_measure_trials <= 1`` the program
    the cost model predicts best. SIGTERM while it runs raises ``SystemExit``
    (``forking.exit_on_sigterm``), so the runner's and builder's temporary directories are
    removed as the process exits.
    """
    if search_policy is None:
        from ansor_py.cost_model.xgb_model import XGBModel  # xgboost loads when a search needs it

        search_policy = SketchPolicy(task, XGBModel(), verbose=tuning_options.verbose)
    with open_measurer(tuning_options, task.target, "auto_schedule") as measurer:
        best = search_policy.search(
            tuning_options.num_measure_trials,
            tuning_options.early_stopping,
            tuning_options.num_measures_per_round,
            measurer,
        )
        if tuning_options.num_measure_trials <= 1:
            return best  # nothing was measured
        (remeasured,) = remeasure_best(
            [task],
            measurer,
            tuning_options.remeasure_top_k,
            tuning_options.remeasure_repeat,
            tuning_options.verbose,
        )
        return best if remeasured is None else remeasured.input.state


@contextlib.contextmanager
def open_measurer(tuning_options: TuningOptions, target: Target, caller: str) -> Iterator[ProgramMeasurer]:
    """The ``ProgramMeasurer`` of ``tuning_options``, for the tuning entry points
    (``auto_schedule``, ``TaskScheduler.tune``): the builder and runner "local" become
    ``LocalBuilder()`` and ``LocalRunner()`` (a runner made here is closed on leaving);
    a local runner for a target this machine cannot run is a ValueError naming ``caller``
    and the missing features, and so is a LocalBuilder for a target it cannot compile;
    SIGTERM inside the block raises ``SystemExit`` (``forking.exit_on_sigterm``), so
    temporary directories are removed as the process exits."""
    missing = target.missing_host_features()
    if isinstance(tuning_options.runner, (str, LocalRunner)) and missing:
        raise ValueError(
            f"{caller}: the local runner cannot run code for target '{target}': this "
            f"machine lacks {', '.join(missing)} (every program would die of SIGILL); measure on a "
            "machine that has them (SSHRunner)"
        )
    builder = LocalBuilder() if isinstance(tuning_options.builder, str) else tuning_options.builder
    if isinstance(builder, LocalBuilder) and target.kind != "llvm":
        raise ValueError(
            f"{caller}: LocalBuilder compiles LLVM targets (x86-64, AArch64), not target '{target}'; "
            "build GPU programs with GPUBuilder and run them with CUDARunner (a GPU) or OpenCLRunner "
            "(any OpenCL device)"
        )
    own_runner: LocalRunner | None = None  # "local": made here, so closed here
    runner: ProgramRunner
    if isinstance(tuning_options.runner, str):
        runner = own_runner = LocalRunner()
    else:
        runner = tuning_options.runner
    with exit_on_sigterm():
        try:
            measurer = ProgramMeasurer(
                builder, runner, list(tuning_options.measure_callbacks), verbose=tuning_options.verbose
            )
            with measurer.progress.running(tuning_options.num_measure_trials):
                yield measurer
        finally:
            if own_runner is not None:
                own_runner.close()


def best_state(task: SearchTask, log_file: PathLike) -> LoopState:
    """The state of the fastest error-free record of ``task`` (same workload key, same
    target class) in ``log_file``, replayed on the task's DAG; ValueError if there is none."""
    inp, _ = load_best_record(log_file, task.workload_key, task.target, tasks=[task])
    if inp is None:
        raise ValueError(
            f"no valid record of workload {task.workload_key} for target '{task.target}' in {log_file}"
        )
    return replay_steps(task.compute_dag, inp.state.transform_steps)


def apply_best(
    task: SearchTask, log_file: PathLike, layout_rewrite_option: LayoutRewriteOption | None = None
) -> Kernel | LLVMModule:
    """The best schedule of ``task`` in ``log_file`` compiled for the task's target (TVM's
    ``apply_history_best`` gives a schedule; this gives what one builds from it): for a
    target this process runs (x86-64 here), a kernel taking one array per tensor of
    ``task.compute_dag.tensors``; for another triple (AArch64), the compiled module, whose
    ``export_library(path)`` links the shared object for the board
    (``SSHRunner.run_library`` runs it there).

    ``layout_rewrite_option`` REWRITE_FOR_PRE_TRANSFORMED compiles the DAG rewritten for the
    best state instead: its layout-free weights are then passed transformed by
    ``best_layout_rewrite(task, log_file).transform_inputs``. None (the default) and the
    other options compile the task's own DAG, whatever the task's option."""
    state = best_state(task, log_file)
    dag = task.compute_dag
    if layout_rewrite_option == LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED:
        rewrite = rewrite_layout_from_state(dag, state)
        if rewrite is not None:
            dag, state = rewrite.dag, replay_steps(rewrite.dag, state.transform_steps)
    module = llvm_build(lower(dag, state), task.target)
    return module.get_kernel() if task.target.is_host else module


def best_layout_rewrite(task: SearchTask, log_file: PathLike) -> LayoutRewrite | None:
    """The layout rewrite of the best state of ``task`` in ``log_file`` (the DAG that
    ``apply_best(..., REWRITE_FOR_PRE_TRANSFORMED)`` compiles and the weights' layouts);
    None when that state tiles no layout-free weight (the kernel takes the task's arrays)."""
    return rewrite_layout_from_state(task.compute_dag, best_state(task, log_file))


#: what ``print_best`` can print, as TVM's ``SearchTask.print_best`` names them
PRINT_MODES = ("schedule", "cuda", "opencl")


def print_best(task: SearchTask, log_file: PathLike, print_mode: str = "schedule") -> str:
    """The best schedule of ``task`` in ``log_file``: ``print_mode`` "schedule" gives it as a
    Python step script (run with ``dag``, the task's DAG, in scope, it leaves the state in
    ``s``); "cuda" gives the CUDA C that ``GPUBuilder`` compiles for it, "opencl" the OpenCL
    C of the same kernels (for a GPU task)."""
    if print_mode not in PRINT_MODES:
        raise ValueError(f"print_best: print_mode {print_mode!r} is not one of {', '.join(PRINT_MODES)}")
    state = best_state(task, log_file)
    if print_mode == "schedule":
        return state_to_python(task.compute_dag, state)
    if task.target.kind != "cuda":
        raise ValueError(
            f"print_best: print_mode {print_mode!r} needs a cuda target, task's is '{task.target}'"
        )
    return emit_source(lower(task.compute_dag, state, name=GPU_ENTRY_NAME), print_mode).source
