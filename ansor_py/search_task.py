"""``SearchTask``: what to tune, and for which target.

A task is one workload (a registered function with its arguments, or a ComputeDAG) on one
target with its HardwareParams (Ansor paper section 6: "a task is a subgraph"). It holds
the oracle every candidate is checked against: seeded random inputs and the reference
outputs of the unscheduled DAG, computed once per task.

``task_inputs`` (TVM's ``SearchTask(..., task_inputs=...)``) names arrays that replace the
random inputs of some placeholders: the index tensor of a gather ``A[Idx[i]]``, a sparse
matrix's structure. Every measured candidate runs on them, since the runners check
candidates against ``reference()``. Without them, an integer placeholder used as an index
gets random values inside the dimension it indexes (``ir.reference.random_inputs``).
TVM v0.6 records do not carry task inputs (TVM keeps them in a side registry by workload
key); here they live on the task only, so a log read back finds them when the task is
passed to the reader: ``load_records(log, tasks=[task])``, ``apply_best(task, log)``.

``layout_rewrite_option`` (TVM's ``LayoutRewriteOption``): with REWRITE_FOR_PRE_TRANSFORMED
a candidate is built from the DAG rewritten for its state (``ir.layout_rewrite``: the
layout-free weights in the order its tiles read them) and run on the reference weights
transformed the same way (``layout_rewrite(state)``), so the tuner times the kernel a
network built with layout rewrite gets. The default (None) is the single-operator one,
NO_REWRITE; ``extract_tasks`` makes network tasks with REWRITE_FOR_PRE_TRANSFORMED.

A task is data: the search, the measurer and the records all read it, and it imports none
of them. Tuning a task and applying its best record are functions of
``ansor_py.tuning``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ansor_py.workload_registry import WorkloadFunc, make_workload_key, workload_key_to_tensors
from codegen.target import HardwareParams, Target, as_target
from ir import dtype as dt
from ir.compute_dag import ComputeDAG
from ir.layout_rewrite import LayoutRewrite, LayoutRewriteOption, rewrite_layout_from_state
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import LoopState
from ir.reference import evaluate, random_inputs


class TaskInputError(ValueError):
    """A ``task_inputs`` array that names no placeholder or does not fit its placeholder."""


class SearchTask:
    """A workload on a target (TVM ``auto_scheduler.SearchTask``).

    Give either ``func`` (registered, or its name) with ``args``, or ``compute_dag``
    (optionally with ``workload_key``). ``task_inputs`` maps placeholder names to arrays of
    exactly the placeholder's shape and dtype; they replace those placeholders' random
    inputs in ``reference()`` (copied: later changes to the caller's arrays do not count).
    ``layout_rewrite_option``: see the module docstring.
    """

    #: class default, so tasks made without ``__init__`` (records' IncompleteTask) have it
    layout_rewrite_option: LayoutRewriteOption = LayoutRewriteOption.NO_REWRITE

    def __init__(
        self,
        func: WorkloadFunc | str | None = None,
        args: Sequence[Any] = (),
        compute_dag: ComputeDAG | None = None,
        workload_key: str | None = None,
        target: str | Target = "llvm",
        hardware_params: HardwareParams | None = None,
        desc: str = "",
        task_inputs: dict[str, np.ndarray] | None = None,
        layout_rewrite_option: LayoutRewriteOption | int | None = None,
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
        if layout_rewrite_option is None:
            layout_rewrite_option = LayoutRewriteOption.get_target_default(network=False)
        self.layout_rewrite_option = LayoutRewriteOption(layout_rewrite_option)
        self.task_inputs: dict[str, np.ndarray] = _check_task_inputs(compute_dag, task_inputs or {})
        self._reference: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self._inputs_digest: str | None = None

    @property
    def reference_key(self) -> str:
        """Names the task's reference inputs: the workload key, followed by a digest of the
        ``task_inputs`` when there are any (hashed once: the task's arrays are its own
        copies, not to be changed). Runners cache a task's reference under it."""
        if not self.task_inputs:
            return self.workload_key
        if self._inputs_digest is None:
            digest = hashlib.sha256()
            for name in sorted(self.task_inputs):
                array = self.task_inputs[name]
                digest.update(f"{name}:{array.dtype}:{array.shape}:".encode())
                digest.update(array.tobytes())
            self._inputs_digest = digest.hexdigest()[:16]
        return f"{self.workload_key}#inputs={self._inputs_digest}"

    def reference(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(inputs, expected outputs): the ``task_inputs`` where given, seeded random
        inputs for the other placeholders, and the numpy reference result of the
        unscheduled DAG, computed once; every measured candidate must match."""
        if self._reference is None:
            inputs = random_inputs(self.compute_dag, seed=0)
            for position, tensor in enumerate(self.compute_dag.placeholders):
                if tensor.name in self.task_inputs:
                    inputs[position] = self.task_inputs[tensor.name]
            self._reference = (inputs, evaluate(self.compute_dag, inputs))
        return self._reference

    def layout_rewrite(self, state: LoopState) -> LayoutRewrite | None:
        """The DAG and weight layouts a candidate ``state`` is built and run with, None when
        it runs on the task's own DAG (NO_REWRITE, or nothing the state tiles; the in-kernel
        transform stage of INSERT_TRANSFORM_STAGE is not implemented, so it is NO_REWRITE
        here). ``state``'s steps are replayed on the task's DAG first."""
        if self.layout_rewrite_option is not LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED:
            return None
        return rewrite_layout_from_state(
            self.compute_dag, replay_steps(self.compute_dag, state.transform_steps)
        )

    def __repr__(self) -> str:
        return f"SearchTask({self.workload_key}, target={self.target})"

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes rebuild the DAG from the key when it names a registered function.
        state = dict(self.__dict__)
        state["_reference"] = None
        return state


def _check_task_inputs(dag: ComputeDAG, task_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Copies of ``task_inputs`` (C order), each checked to name a placeholder
    of ``dag`` and to have its shape and dtype."""
    placeholders = {t.name: t for t in dag.placeholders}
    checked: dict[str, np.ndarray] = {}
    for name, value in task_inputs.items():
        tensor = placeholders.get(name)
        if tensor is None:
            raise TaskInputError(
                f"task input {name!r} names no placeholder of the DAG; "
                f"its placeholders are {sorted(placeholders)}"
            )
        if not isinstance(value, np.ndarray):
            raise TaskInputError(f"task input {name!r} must be a numpy array, got {type(value).__name__}")
        if value.shape != tensor.shape:
            raise TaskInputError(
                f"task input {name!r} has shape {list(value.shape)}, but placeholder {name!r} "
                f"has shape {list(tensor.shape)}"
            )
        if value.dtype != dt.to_numpy(tensor.dtype):
            raise TaskInputError(
                f"task input {name!r} has dtype {value.dtype}, "
                f"but placeholder {name!r} has dtype {tensor.dtype}"
            )
        checked[name] = np.array(value, copy=True, order="C")
    return checked
