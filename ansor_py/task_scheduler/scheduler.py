"""``TaskScheduler``: tune the tasks of a network, spending trials where they cut the
network's latency most (Ansor paper section 6; TVM ``auto_scheduler.TaskScheduler``).

A network is many tasks (subgraphs), each with a weight (how often it runs). Tuning them
one after the other wastes trials on tasks that are already fast or matter little. The
scheduler instead works in rounds, one round = ``num_measures_per_round`` programs of one
task searched and measured (``SearchPolicy.continue_search_one_round``):

1. warm-up: one round of every task (round robin), so every task has a latency;
2. then each round goes to the task chosen by the strategy: ``"gradient"`` picks the
   task whose next round is estimated to lower the objective most (``gradient``: the
   chain term times alpha * backward + (1 - alpha) * forward), except that with
   probability ``eps_greedy`` it picks a live task at random (the paper's epsilon-greedy
   choice, which keeps a wrong estimate from starving a task); ``"round-robin"`` cycles;
3. a task is dead (never chosen again) when its search found nothing new to measure, or
   when ``per_task_early_stopping`` trials passed since its last improvement;
4. tuning stops when the trial budget is spent, every task is dead, or (``early_stopping``
   of the options) the objective did not improve over that many trials.

With ``baseline_schedules`` (a function of the DAG and the target, e.g. the network
layer's ``default_schedule``), each task's baseline program is measured once before the
warm-up, as one trial of the task, unless the log holds it: with a small budget the search
competes with the program the network runs untuned, instead of replacing it by a slower
one; and at the end the baseline is re-measured beside each task's best programs
(``remeasure_best``'s ``also``), so one unlucky sample of it cannot hand its place to a
program that is slower in truth. (TVM has no such step: its untuned fallback is TOPI's
schedule, never measured.)

The objective is ``sum_i w_i g_i`` (``task_weights``; all 1 when None) of the tasks' best
latencies g_i, or any ``objective_func(best_costs)``. All tasks share one cost model and
one measurer, whose callbacks (``RecordToFile``) write every task's records to one log.

Resuming: ``load_log_file`` is read when the scheduler is made (``restore``): records of
other workloads or targets are ignored with one warning; ``restored_trials`` counts the
tasks' records, so a caller can give ``tune`` the rest of a budget. ``tune`` rebuilds
each task's trials, rounds, best latency and history from the records, trains the model
on them and marks them measured in each policy: nothing is measured twice. As TVM,
``num_measure_trials`` counts the trials of this ``tune`` call; tasks restored from the
log skip the warm-up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ansor_py.measure.types import MeasureInput
from ansor_py.remeasure import remeasure_best
from ansor_py.search.params import SketchParams
from ansor_py.search.search_policy import SearchPolicy
from ansor_py.search.sketch_policy import SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler.callbacks import (
    NO_LATENCY,
    LogEstimatedLatency,
    PrintTableInfo,
    TaskSchedulerCallback,
)
from ansor_py.task_scheduler.gradient import derive_similarity_tag, task_gradient
from ansor_py.task_scheduler.policies import make_search_policies
from ansor_py.task_scheduler.restore import TaskLog, TaskState, read_task_log, rebuild_rounds
from ansor_py.tuning import TuningOptions, open_measurer
from codegen.target import Target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, as_loop_state
from ir.loop_state.state import LoopState

STRATEGIES = ("gradient", "round-robin")
#: a task tuned this many rounds more than every peer, still slower than best / beta,
#: leaves its similarity group (TVM's constant)
GROUP_EXPEL_ROUNDS = 5


class TaskScheduler:
    """Allocates tuning rounds over ``tasks`` (see the module docstring).

    ``task_weights``: one positive weight per task (None: all 1); ``objective_func``: any
    function of the list of best latencies (seconds) to minimize; ``alpha``, ``beta``,
    ``backward_window_size``: the gradient's constants (``gamma`` is kept for TVM's
    signature; TVM does not use it either); ``callbacks``: None gives
    ``[PrintTableInfo(), LogEstimatedLatency("total_latency.tsv")]``; ``eps_greedy``: the
    chance of a random task choice; ``seed``: seeds that choice and the policies.
    """

    def __init__(
        self,
        tasks: Sequence[SearchTask],
        task_weights: Sequence[float] | None = None,
        objective_func: Callable[[Sequence[float]], float] | None = None,
        strategy: str = "gradient",
        load_model_file: str | None = None,
        load_log_file: str | os.PathLike[str] | None = None,
        alpha: float = 0.2,
        beta: float = 2,
        gamma: float = 0.5,
        backward_window_size: int = 3,
        callbacks: Sequence[TaskSchedulerCallback] | None = None,
        eps_greedy: float = 0.05,
        seed: int | None = None,
        baseline_schedules: Callable[[ComputeDAG, Target], State | LoopState] | None = None,
    ):
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("TaskScheduler: no tasks given")
        keys = [task.workload_key for task in self.tasks]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"TaskScheduler: workload {repeated[0]} is given as more than one task")
        if task_weights is not None:
            if len(task_weights) != len(self.tasks):
                raise ValueError(
                    f"TaskScheduler: {len(task_weights)} task weights for {len(self.tasks)} tasks"
                )
            bad = [w for w in task_weights if not (np.isfinite(w) and w > 0)]
            if bad:
                raise ValueError(f"TaskScheduler: task weight {bad[0]!r} must be a finite number > 0")
        if strategy not in STRATEGIES:
            raise ValueError(f"TaskScheduler: strategy {strategy!r} is not one of {STRATEGIES}")
        if not 0.0 <= eps_greedy <= 1.0:
            raise ValueError(f"TaskScheduler: eps_greedy {eps_greedy} must be in [0, 1]")
        if backward_window_size < 1:
            raise ValueError(f"TaskScheduler: backward_window_size {backward_window_size} must be >= 1")
        self.task_weights = [float(w) for w in task_weights] if task_weights is not None else None
        self.objective_func = objective_func or self._weighted_sum
        self.strategy = strategy
        self.load_model_file = load_model_file
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.backward_window_size = backward_window_size
        self.eps_greedy = eps_greedy
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.baseline_schedules = baseline_schedules
        self._baselined: set[int] = set()  # tasks whose baseline is measured or logged
        self._baseline_states: list[LoopState | None] | None = None
        if callbacks is None:
            callbacks = [PrintTableInfo(), LogEstimatedLatency("total_latency.tsv")]
        self.callbacks = list(callbacks)

        self.flop_cts = [task.compute_dag.flop_ct for task in self.tasks]
        self.task_tags = [derive_similarity_tag(task.compute_dag) for task in self.tasks]
        self.group_task_ids: dict[str, list[int]] = {}
        for i, tag in enumerate(self.task_tags):
            if tag:
                self.group_task_ids.setdefault(tag, []).append(i)

        self.states = [TaskState() for _ in self.tasks]
        self.dead_tasks: set[int] = set()
        self.exhausted_tasks: set[int] = set()  # the search found nothing new to measure
        self.search_policies: list[SearchPolicy] | None = None
        self.ct = 0  # trials measured by tune calls of this scheduler
        self.tic = time.time()
        self.verbose = 1
        self.num_measures_per_round = 0
        self.log: TaskLog | None = read_task_log(load_log_file, self.tasks) if load_log_file else None
        self._log_pending = self.log is not None  # restored on the first tune
        self.restored_trials = sum(len(r) for r in self.log.records) if self.log else 0
        self.cur_score = self._score()

    # the state callbacks read -------------------------------------------------------------
    @property
    def best_costs(self) -> list[float]:
        """Each task's best median latency in seconds (1e10 while none ran correctly)."""
        return [state.best_cost for state in self.states]

    @property
    def task_cts(self) -> list[int]:
        """Rounds tuned per task (restored rounds included)."""
        return [state.rounds for state in self.states]

    @property
    def task_trials(self) -> list[int]:
        """Programs measured per task (restored records included)."""
        return [state.trials for state in self.states]

    @property
    def total_trials(self) -> int:
        return sum(self.task_trials)

    def _weighted_sum(self, costs: Sequence[float]) -> float:
        weights = self.task_weights or [1.0] * len(costs)
        return float(sum(w * c for w, c in zip(weights, costs, strict=True)))

    def _score(self) -> float:
        return float(self.objective_func(self.best_costs))

    def restore(self, num_measures_per_round: int) -> None:
        """Rebuild each task's trials, rounds, best latency and history from the records of
        ``load_log_file`` (``restore.rebuild_rounds``); ``tune`` does it on its first call,
        with its round size."""
        if self.log is None:
            raise ValueError("TaskScheduler.restore: the scheduler was made without a load_log_file")
        if num_measures_per_round < 1:
            raise ValueError(
                f"TaskScheduler.restore: num_measures_per_round {num_measures_per_round} must be >= 1"
            )
        self.states = rebuild_rounds(self.log, num_measures_per_round)
        self.cur_score = self._score()
        self._log_pending = False

    # tuning -------------------------------------------------------------------------------
    def tune(
        self,
        tune_option: TuningOptions,
        search_policy: str | Sequence[SearchPolicy] = "default",
        search_policy_params: SketchParams | Mapping[str, Any] | None = None,
        adaptive_training: bool = False,
        per_task_early_stopping: int | None = None,
    ) -> None:
        """Tune with ``tune_option.num_measure_trials`` trials more (see the module
        docstring). A later call goes on with the same policies and cost model."""
        n_tasks = len(self.tasks)
        per_round = min(tune_option.num_measures_per_round, tune_option.num_measure_trials // n_tasks)
        if per_round <= 0:
            raise ValueError(
                f"TaskScheduler.tune: num_measure_trials {tune_option.num_measure_trials} is too small "
                f"for {n_tasks} tasks: it must be at least {n_tasks} (one round of each task)"
            )
        self.num_measures_per_round = per_round
        self.verbose = tune_option.verbose
        budget = self.ct + tune_option.num_measure_trials
        early_stopping_all = (
            float("inf")
            if tune_option.early_stopping is None or tune_option.early_stopping < 0
            else tune_option.early_stopping
        )
        early_stopping_task = float("inf") if per_task_early_stopping is None else per_task_early_stopping
        self.tic = time.time()
        if self._log_pending:
            self.restore(per_round)
        if self.search_policies is None:
            self.search_policies = make_search_policies(
                search_policy,
                search_policy_params,
                self.tasks,
                per_round,
                tune_option.verbose,
                self.load_model_file,
                self.log,
                adaptive_training,
                self.seed,
            )
        self.dead_tasks = set(self.exhausted_tasks) | {
            i for i, s in enumerate(self.states) if s.trials - s.best_trial > early_stopping_task
        }
        with open_measurer(tune_option, self.tasks[0].target, "TaskScheduler.tune") as measurer:
            self.measurer = measurer
            if self.baseline_schedules is not None:
                self._measure_baselines(budget)
            self._run(budget, early_stopping_all, early_stopping_task)
            # the best programs of every task, and its baseline, measured again (not
            # trials: ansor_py.remeasure)
            remeasure_best(
                self.tasks,
                measurer,
                tune_option.remeasure_top_k,
                tune_option.remeasure_repeat,
                self.verbose,
                also=self.baseline_states(),
            )

    def baseline_states(self) -> list[LoopState | None]:
        """Each task's baseline program (``baseline_schedules``), made once; all None
        without ``baseline_schedules``."""
        if self.baseline_schedules is None:
            return [None] * len(self.tasks)
        if self._baseline_states is None:
            self._baseline_states = [
                as_loop_state(task.compute_dag, self.baseline_schedules(task.compute_dag, task.target))
                for task in self.tasks
            ]
        return list(self._baseline_states)

    def _measure_baselines(self, budget: int) -> None:
        """Measure each task's baseline schedule (``baseline_schedules(dag, target)``,
        e.g. the network layer's ``default_schedule``) once, as one trial of the task,
        unless the log holds it: the search then competes with the program the network
        would run untuned, so a small budget never makes a task slower than untuned."""
        assert self.search_policies is not None and self.baseline_schedules is not None
        for i, (task, state) in enumerate(zip(self.tasks, self.baseline_states(), strict=True)):
            if i in self._baselined or self.ct >= budget or state is None:
                continue
            self._baselined.add(i)
            logged = self.log.records[i] if self.log is not None else []
            if any(inp.state.transform_steps == state.transform_steps for inp, _ in logged):
                continue
            policy = self.search_policies[i]
            results = self.measurer.measure(task, policy, [MeasureInput(task, state)])
            if isinstance(policy, SketchPolicy):
                throughput = 1.0 / results[0].median_cost if results[0].ok else 0.0
                policy.add_measured_state(state, throughput)  # never measured again
            self.states[i].add_results(results)
            self.ct += 1
        self.cur_score = self._score()

    def _run(self, budget: int, early_stopping_all: float, early_stopping_task: float) -> None:
        for i in range(len(self.tasks)):  # warm-up: the tasks the log did not restore
            if self.states[i].rounds == 0 and i not in self.dead_tasks and self.ct < budget:
                self._tune_task(i, budget, early_stopping_task)
        best_ct, best_score = self.ct, self.cur_score
        task_id = -1
        while self.ct < budget and len(self.dead_tasks) < len(self.tasks):
            task_id = self._next_round_robin(task_id) if self.strategy == "round-robin" else self._pick()
            self._tune_task(task_id, budget, early_stopping_task)
            self._adjust_similarity_group(task_id)
            if self.cur_score < best_score:
                best_ct, best_score = self.ct, self.cur_score
            elif self.ct - best_ct >= early_stopping_all and all(c < 1e9 for c in self.best_costs):
                if self.verbose >= 1:
                    print(
                        f"TaskScheduler: stop early: the objective did not improve in the last "
                        f"{self.ct - best_ct} trials",
                        flush=True,
                    )
                break

    def _tune_task(self, task_id: int, budget: int, early_stopping_task: float) -> None:
        """One round of task ``task_id``: search and measure at most a round's programs."""
        assert self.search_policies is not None
        for callback in self.callbacks:
            callback.pre_tune(self, task_id)
        num = min(self.num_measures_per_round, budget - self.ct)
        inputs, results = self.search_policies[task_id].continue_search_one_round(num, self.measurer)
        state = self.states[task_id]
        state.add_round(results)
        if not inputs:
            self.exhausted_tasks.add(task_id)
            self.dead_tasks.add(task_id)
        elif state.trials - state.best_trial > early_stopping_task:
            self.dead_tasks.add(task_id)
        if task_id in self.dead_tasks and self.verbose >= 1:
            print(f"TaskScheduler: task {task_id} is dead", flush=True)
        self.ct += len(inputs)
        self.cur_score = self._score()
        known = all(cost < NO_LATENCY for cost in self.best_costs)
        self.measurer.progress.set_total_latency(self.cur_score if known else None)
        for callback in self.callbacks:
            callback.post_tune(self, task_id)

    # the strategies -----------------------------------------------------------------------
    def _next_round_robin(self, task_id: int) -> int:
        task_id = (task_id + 1) % len(self.tasks)
        while task_id in self.dead_tasks:
            task_id = (task_id + 1) % len(self.tasks)
        return task_id

    def gradients(self) -> list[float]:
        """df/dt_i of every task (0 for a dead one), as ``gradient.task_gradient``."""
        best_costs = self.best_costs
        grads: list[float] = []
        for i, state in enumerate(self.states):
            if i in self.dead_tasks:
                grads.append(0.0)
                continue
            peers = self.group_task_ids.get(self.task_tags[i], [])
            group_best = max(self.flop_cts[j] / best_costs[j] for j in peers) if len(peers) > 1 else None
            grads.append(
                task_gradient(
                    self.objective_func,
                    best_costs,
                    i,
                    state.history,
                    state.rounds,
                    self.flop_cts[i],
                    group_best,
                    self.alpha,
                    self.beta,
                    self.backward_window_size,
                )
            )
        return grads

    def _pick(self) -> int:
        """The live task of the most negative gradient; a random live one with probability
        ``eps_greedy``, or when all gradients are equal."""
        live = [i for i in range(len(self.tasks)) if i not in self.dead_tasks]
        if self.rng.random() < self.eps_greedy:
            return int(self.rng.choice(live))
        grads = self.gradients()
        live_grads = [grads[i] for i in live]
        if max(live_grads) == min(live_grads):
            return int(self.rng.choice(live))
        return live[int(np.argmin(live_grads))]

    def _adjust_similarity_group(self, task_id: int) -> None:
        """Expel a task from its group when, tuned GROUP_EXPEL_ROUNDS rounds more than any
        peer, it is still slower than the group's best FLOP/s divided by beta."""
        tag = self.task_tags[task_id]
        peers = self.group_task_ids.get(tag, [])
        if len(peers) <= 1:
            return
        costs = self.best_costs
        best_group_flops = max(self.flop_cts[j] / costs[j] for j in peers)
        flops = self.flop_cts[task_id] / costs[task_id]
        most_peer_rounds = max(self.states[j].rounds for j in peers if j != task_id)
        if (
            flops < best_group_flops / self.beta
            and self.states[task_id].rounds > GROUP_EXPEL_ROUNDS + most_peer_rounds
        ):
            self.task_tags[task_id] = ""
            peers.remove(task_id)
