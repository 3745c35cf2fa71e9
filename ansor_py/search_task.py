"""``SearchTask``: what to tune, and for which target.

A task is one workload (a registered function with its arguments, or a ComputeDAG) on one
target with its HardwareParams (Ansor paper section 6: "a task is a subgraph"). It holds
the oracle every candidate is checked against: seeded random inputs and the reference
outputs of the unscheduled DAG, computed once per task.

A task is data: the search, the measurer and the records all read it, and it imports none
of them. Tuning a task and applying its best record are functions of
``ansor_py.tuning``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ansor_py.workload_registry import WorkloadFunc, make_workload_key, workload_key_to_tensors
from codegen.target import HardwareParams, Target, as_target
from ir.compute_dag import ComputeDAG
from ir.reference import evaluate, random_inputs


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

    def __repr__(self) -> str:
        return f"SearchTask({self.workload_key}, target={self.target})"

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes rebuild the DAG from the key when it names a registered function.
        state = dict(self.__dict__)
        state["_reference"] = None
        return state
