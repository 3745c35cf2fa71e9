"""``SearchTask`` and ``TuningOptions``: what to tune, for which target, and how long.

A task is one workload (a registered function with its arguments, or a ComputeDAG) on one
target with its HardwareParams (Ansor paper section 6: "a task is a subgraph"). It holds
the oracle every candidate is checked against: seeded random inputs and the reference
outputs of the unscheduled DAG, computed once per task.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ansor_py.workload_registry import WorkloadFunc, make_workload_key, workload_key_to_tensors
from codegen.target import HardwareParams, Target, as_target
from ir.compute_dag import ComputeDAG
from ir.loop_state.python_printer import state_to_python
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import LoopState
from ir.reference import evaluate, random_inputs

if TYPE_CHECKING:
    from ansor_py.measure.types import ProgramBuilder, ProgramRunner
    from ansor_py.search.search_policy import SearchPolicy
    from codegen.llvm import Kernel
    from codegen.llvm.build import LLVMModule


@dataclass
class TuningOptions:
    """How a tuning run measures (TVM ``auto_scheduler.TuningOptions``).

    ``num_measure_trials`` <= 1 searches one round with the cost model only and measures
    nothing; ``early_stopping`` stops after that many measurements without improvement
    (None: never); ``builder``/``runner`` "local" mean ``LocalBuilder()``/``LocalRunner()``.
    """

    num_measure_trials: int = 0
    early_stopping: int | None = None
    num_measures_per_round: int = 64
    verbose: int = 1
    builder: ProgramBuilder | str = "local"
    runner: ProgramRunner | str = "local"
    measure_callbacks: Sequence[Any] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.num_measures_per_round < 1:
            raise ValueError(
                f"TuningOptions: num_measures_per_round {self.num_measures_per_round} must be >= 1"
            )
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"TuningOptions: verbose {self.verbose} must be 0, 1 or 2")


class SearchTask:
    """A workload on a target (TVM ``auto_scheduler.SearchTask``).

    Give either ``func`` (registered, or its name) with ``args``, or ``compute_dag``
    (optionally with ``workload_key``).
    """

    def __init__(
        self,
        func: WorkloadFunc | str | None = None,
        args: Sequence[Any] = (),
        compute_dag: ComputeDAG | None = None,
        workload_key: str | None = None,
        target: str | Target = "llvm",
        hardware_params: HardwareParams | None = None,
        desc: str = "",
    ):
        if func is not None:
            workload_key = make_workload_key(func, args)
            compute_dag = ComputeDAG(workload_key_to_tensors(workload_key))
        elif compute_dag is None and workload_key is not None:
            compute_dag = ComputeDAG(workload_key_to_tensors(workload_key))
        elif compute_dag is None:
            raise ValueError("SearchTask needs func (with args), compute_dag or workload_key")
        self.compute_dag: ComputeDAG = compute_dag
        self.workload_key: str = workload_key or compute_dag.workload_key()
        self.target: Target = as_target(target)
        self.hardware_params: HardwareParams = hardware_params or self.target.hardware_params
        self.desc = desc
        self._reference: tuple[list[np.ndarray], list[np.ndarray]] | None = None

    def reference(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(inputs, expected outputs): seeded random inputs and the numpy reference result
        of the unscheduled DAG, computed once; every measured candidate must match."""
        if self._reference is None:
            inputs = random_inputs(self.compute_dag, seed=0)
            self._reference = (inputs, evaluate(self.compute_dag, inputs))
        return self._reference

    # applying records (helper A) --------------------------------------------------------
    def best_state(self, log_file: str | os.PathLike[str]) -> LoopState:
        """The state of the fastest error-free record of this task (same workload key,
        same target class) in ``log_file``, replayed on this task's DAG."""
        from ansor_py.records import load_best_record

        inp, _ = load_best_record(log_file, self.workload_key, self.target, tasks=[self])
        if inp is None:
            raise ValueError(
                f"no valid record of workload {self.workload_key} for target '{self.target}' in {log_file}"
            )
        return replay_steps(self.compute_dag, inp.state.transform_steps)

    def apply_best(self, log_file: str | os.PathLike[str]) -> Kernel | LLVMModule:
        """The best schedule in ``log_file`` compiled for this task's target (TVM returns a
        schedule; this returns what one builds from it): for a target this process runs
        (x86-64 here), a kernel taking one array per tensor of ``compute_dag.tensors``; for
        another triple (AArch64), the compiled module, whose ``export_library(path)`` links
        the shared object for the board (``SSHRunner.run_library`` runs it there)."""
        from ansor_py.build import build, state_of
        from codegen.llvm import build as llvm_build
        from ir.lower.lower import lower

        state = self.best_state(log_file)
        if self.target.is_host:
            return build(self.compute_dag, state, self.target)
        return llvm_build(lower(self.compute_dag, state_of(self.compute_dag, state)), self.target)

    def print_best(self, log_file: str | os.PathLike[str]) -> str:
        """The best schedule in ``log_file`` as a Python step script: run with ``dag`` (this
        task's DAG) in scope, it leaves the state in ``s``."""
        return state_to_python(self.compute_dag, self.best_state(log_file))

    # tuning (helper B) -----------------------------------------------------------------
    def tune(
        self, tuning_options: TuningOptions, search_policy: SearchPolicy | None = None
    ) -> LoopState | None:
        """Search for a fast schedule of this task (TVM ``SearchTask.tune``).

        ``search_policy`` defaults to ``SketchPolicy(self, XGBModel())``; the builder and
        runner "local" become ``LocalBuilder()`` and ``LocalRunner()``; every measurement
        goes through ``tuning_options.measure_callbacks`` (e.g. ``RecordToFile``). Returns
        the best program measured (None if none ran correctly), or with
        ``num_measure_trials <= 1`` the program the cost model predicts best.
        """
        from ansor_py.measure.local import LocalBuilder, LocalRunner
        from ansor_py.measure.measurer import ProgramMeasurer
        from ansor_py.search.sketch_policy import SketchPolicy

        if search_policy is None:
            from ansor_py.cost_model import XGBModel

            search_policy = SketchPolicy(self, XGBModel(), verbose=tuning_options.verbose)
        builder = LocalBuilder() if tuning_options.builder == "local" else tuning_options.builder
        own_runner = tuning_options.runner == "local"
        runner = LocalRunner() if own_runner else tuning_options.runner
        if isinstance(builder, str) or isinstance(runner, str):
            raise ValueError(
                f"TuningOptions: builder {tuning_options.builder!r} / runner {tuning_options.runner!r}: "
                "give 'local' or a builder / runner object"
            )
        measurer = ProgramMeasurer(
            builder, runner, list(tuning_options.measure_callbacks), verbose=tuning_options.verbose
        )
        try:
            return search_policy.search(
                tuning_options.num_measure_trials,
                tuning_options.early_stopping,
                tuning_options.num_measures_per_round,
                measurer,
            )
        finally:
            if own_runner:
                runner.close()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"SearchTask({self.workload_key}, target={self.target})"

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes rebuild the DAG from the key when it names a registered function.
        state = dict(self.__dict__)
        state["_reference"] = None
        return state
