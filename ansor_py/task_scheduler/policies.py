"""The search policies of a task scheduler (TVM ``make_search_policies``): one
``SketchPolicy`` per task, all sharing ONE cost model, so what is learned on one task's
programs ranks the others' (Ansor paper section 6: the model is trained on all tasks'
records; its features do not depend on the task).

The model is an ``XGBModel`` whose warm-up lasts one round of every task
(``num_warmup_sample = n_tasks * num_measures_per_round``) for ``"sketch.xgb"`` (the
default), a ``RandomModel`` for ``"sketch.random"``. When resuming, the model is loaded
from ``load_model_file`` if that exists, else trained on the records of the tasks in
the log, and every policy has its task's recorded programs marked measured (as
``PreloadMeasuredStates``, from the one reading of the log), so none is measured twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ansor_py.cost_model import RandomModel
from ansor_py.cost_model.base import CostModel
from ansor_py.measure.types import MeasureInput, MeasureResult
from ansor_py.search.params import SketchParams
from ansor_py.search.search_policy import SearchPolicy
from ansor_py.search.sketch_policy import SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler.restore import TaskLog

#: the policy strings ``TaskScheduler.tune`` accepts, and what "default" means
POLICY_NAMES = ("default", "sketch.xgb", "sketch.random")


def make_cost_model(
    model_type: str,
    n_warmup: int,
    load_model_file: str | None,
    log: TaskLog | None,
    adaptive_training: bool,
    seed: int | None,
) -> CostModel:
    """The shared model: "xgb" (loaded from ``load_model_file`` if it exists, else trained
    on the records of ``log``) or "random"."""
    if model_type == "random":
        return RandomModel(seed)
    from ansor_py.cost_model.xgb_model import XGBModel  # xgboost loads when used

    model = XGBModel(
        num_warmup_sample=n_warmup, model_file=load_model_file, adaptive_training=adaptive_training, seed=seed
    )
    if load_model_file and os.path.isfile(load_model_file):
        model.load(load_model_file)
    elif log is not None:
        pairs = [pair for records in log.records for pair in records if pair[0].state.stages]
        model.update([inp for inp, _ in pairs], [res for _, res in pairs])
    return model


def make_search_policies(
    search_policy: str | Sequence[SearchPolicy],
    search_policy_params: SketchParams | Mapping[str, Any] | None,
    tasks: Sequence[SearchTask],
    num_measures_per_round: int,
    verbose: int,
    load_model_file: str | None,
    log: TaskLog | None,
    adaptive_training: bool,
    seed: int | None,
) -> list[SearchPolicy]:
    """One policy per task, in task order (see the module docstring); a list of policies
    given is checked (one per task, for that task's workload) and used as it is."""
    if isinstance(search_policy, str):
        if search_policy not in POLICY_NAMES:
            raise ValueError(
                f"TaskScheduler.tune: search_policy {search_policy!r} is not one of {POLICY_NAMES}"
            )
        model_type = "xgb" if search_policy == "default" else search_policy.split(".")[1]
        model = make_cost_model(
            model_type, len(tasks) * num_measures_per_round, load_model_file, log, adaptive_training, seed
        )
        policies: list[SearchPolicy] = [
            SketchPolicy(
                task,
                model,
                params=search_policy_params,
                seed=None if seed is None else seed + i,
                verbose=verbose,
            )
            for i, task in enumerate(tasks)
        ]
    else:
        policies = list(search_policy)
        if len(policies) != len(tasks):
            raise ValueError(f"TaskScheduler.tune: {len(policies)} search policies for {len(tasks)} tasks")
        for i, (policy, task) in enumerate(zip(policies, tasks, strict=True)):
            if not isinstance(policy, SearchPolicy):
                raise TypeError(f"TaskScheduler.tune: search policy {i} is a {type(policy).__name__}")
            if policy.search_task.workload_key != task.workload_key:
                raise ValueError(
                    f"TaskScheduler.tune: search policy {i} searches workload "
                    f"{policy.search_task.workload_key}, but task {i} is {task.workload_key}"
                )
    if log is not None:
        for policy, records in zip(policies, log.records, strict=True):
            if isinstance(policy, SketchPolicy):
                preload_measured(policy, records, verbose)
    return policies


def preload_measured(
    policy: SketchPolicy, records: Sequence[tuple[MeasureInput, MeasureResult]], verbose: int
) -> None:
    """Mark the recorded programs of the policy's task measured; the valid ones seed the
    search with their throughputs (``PreloadMeasuredStates`` without re-reading the log)."""
    loaded = 0
    for inp, res in records:
        throughput = 1.0 / res.median_cost if res.ok else 0.0
        if inp.state.stages and policy.add_measured_state(inp.state, throughput):
            loaded += 1
    if verbose >= 1:
        task = policy.search_task
        print(
            f"PreloadMeasuredStates: {loaded} measured state(s) loaded for {task.desc or task.workload_key}"
        )
