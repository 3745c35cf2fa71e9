"""SketchPolicy: Ansor's search (paper sections 4 and 5; TVM ``sketch_policy.cc``).

One round of search:

1. generate the task's sketches once (derivation rules, ``sketch_generation``);
2. sample a population of random programs from them (init rules);
3. add the best programs measured so far (at most ``sample_init_use_measured_ratio`` of
   the population) and draw a few random members for eps-greedy;
4. evolve the population under the cost model (``evolution``) into the best
   ``2 x num_measures_per_round`` unmeasured programs.

``search`` then repeats: retrain the cost model on the last batch, search a round, pick
``num_measures_per_round`` programs (all but ``eps_greedy`` of them by predicted score,
the rest random), skipping anything already measured (by printed loop tree), measure
them, and stop at the trial budget, after ``early_stopping`` trials without improvement,
or when a round (retried ``retry_search_one_round_on_empty`` times) finds nothing new.

All randomness comes from one numpy Generator seeded by ``seed``: the same seed, task,
params and cost model give the same sequence of programs.

Two start-up callbacks (``init_search_callbacks``) work on a SketchPolicy:
``PreloadMeasuredStates(file)`` resumes from a log (every program recorded for the task is
marked measured and the valid ones seed the search), ``PreloadCustomSketchRule`` adds a
user sketch rule before the built-in ones.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ansor_py.measure.types import MeasureInput, MeasureResult
from ansor_py.records import load_records
from ansor_py.search.evolution import evolutionary_search, log, prune_and_bind, sample_init_population
from ansor_py.search.gpu_init_rules import GPU_INIT_RULES
from ansor_py.search.gpu_sketch_rules import GPU_SKETCH_RULES
from ansor_py.search.init_rules import CPU_INIT_RULES, InitRule, ensure_bound
from ansor_py.search.mutation_rules import CPU_MUTATION_RULES, GPU_MUTATION_RULES, MutationRule
from ansor_py.search.params import SketchParams
from ansor_py.search.search_policy import SearchCallback, SearchPolicy
from ansor_py.search.sketch_generation import generate_sketches
from ansor_py.search.sketch_rules import CPU_SKETCH_RULES, SketchRule, custom_sketch_rule
from ansor_py.search.stage_queries import is_gpu_task
from ansor_py.search.state_cache import StateCache
from ansor_py.search.tiling import SplitFactorizationMemo
from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.cost_model.base import CostModel
    from ansor_py.measure.measurer import ProgramMeasurer
    from ansor_py.search_task import SearchTask
    from ir.loop_state.api import State

#: early_stopping given as None or a negative number: never stop early
NO_EARLY_STOPPING = 2**62


class SketchPolicy(SearchPolicy):
    """Ansor's sketch-based search policy (TVM ``auto_scheduler.SketchPolicy``).

    ``program_cost_model``: any object with ``predict(task, states) -> scores`` and
    ``update(inputs, results)`` (None: ``XGBModel()``); ``params``: a ``SketchParams``
    or a dict of some of its names; ``seed``: None draws one.
    """

    #: TVM's ``SketchPolicy.DEFAULT_PARAMS``, for reference (pass changes as ``params``)
    DEFAULT_PARAMS: dict[str, Any] = SketchParams().as_dict()

    def __init__(
        self,
        task: SearchTask,
        program_cost_model: CostModel | None = None,
        params: SketchParams | Mapping[str, Any] | None = None,
        seed: int | None = None,
        verbose: int = 1,
        init_search_callbacks: Sequence[SearchCallback] | None = None,
    ):
        super().__init__(task, verbose)
        gpu = is_gpu_task(task)
        if program_cost_model is None:
            from ansor_py.cost_model import XGBModel  # here: importing xgboost takes a while

            program_cost_model = XGBModel()
        self.program_cost_model = program_cost_model
        self.params = SketchParams.from_any(params)
        self.seed = secrets.randbelow(2**30) + 1 if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.split_memo = SplitFactorizationMemo()
        self.state_cache = StateCache(task.compute_dag)
        self.sample_init_min_population = self.params.sample_init_min_population
        self.num_measures_per_round = 64
        # programs measured so far: printed forms (never measured again), and the valid
        # ones with their throughputs (seeds of later rounds)
        self.measured_states_set: set[str] = set()
        self.measured_states_vector: list[LoopState] = []
        self.measured_states_throughputs: list[float] = []
        self._sketch_cache: list[LoopState] | None = None
        # user rules (callbacks) first, then the built-in ones, as TVM
        self.sketch_rules: list[SketchRule] = []
        self.run_callbacks(init_search_callbacks)
        self.sketch_rules.extend(GPU_SKETCH_RULES if gpu else CPU_SKETCH_RULES)
        self.init_rules: list[InitRule] = list(GPU_INIT_RULES if gpu else CPU_INIT_RULES)
        self.mutation_rules: list[MutationRule] = list(GPU_MUTATION_RULES if gpu else CPU_MUTATION_RULES)

    # debugging entry points (TVM's Python API) -----------------------------------------
    def generate_sketches(self, print_for_debug: bool = False) -> list[LoopState]:
        """The task's sketches (computed once, then cached)."""
        if self._sketch_cache is None:
            self._sketch_cache = generate_sketches(self, self.sketch_rules)
            log(self, f"Generate Sketches\t\t#s: {len(self._sketch_cache)}")
        if print_for_debug:
            for index, sketch in enumerate(self._sketch_cache):
                print(f"=== sketch {index} ===\n{sketch}", flush=True)
        return list(self._sketch_cache)

    def sample_initial_population(self) -> list[LoopState]:
        """A random population sampled from the sketches (see ``evolution``)."""
        return sample_init_population(self, self.generate_sketches())

    def evolutionary_search(self, init_population: Sequence[LoopState], out_size: int) -> list[LoopState]:
        """The best ``out_size`` unmeasured programs bred from ``init_population``."""
        return evolutionary_search(self, init_population, out_size, self._num_iters())

    def _num_iters(self) -> int:
        """TVM's generations, capped at 2 while the model's scores are random: TVM caps them
        for ``RandomModel``; here also for ``XGBModel`` in its warm-up (the first round of a
        fresh task), where breeding on random scores buys nothing and costs two generations."""
        num_iters = self.params.evolutionary_search_num_iters
        if getattr(self.program_cost_model, "predicts_at_random", False) and num_iters > 2:
            log(self, "GA iteration number has been adjusted to 2 due to random cost model")
            return 2
        return num_iters

    # measured programs ----------------------------------------------------------------
    def add_measured_state(self, state: LoopState, throughput: float) -> bool:
        """Record a measured program (bound-inferred here if needed); ``throughput`` 0
        marks an error (never measured again, never a seed). False if already known or
        bound inference rejects it."""
        bound = ensure_bound(self, state)
        if bound is None:
            return False
        key = str(bound)
        if key in self.measured_states_set:
            return False
        self.measured_states_set.add(key)
        if throughput > 0.0:
            self.measured_states_vector.append(bound)
            self.measured_states_throughputs.append(throughput)
        return True

    # one round --------------------------------------------------------------------------
    def search_one_round(self, num_random_states: int = 0) -> tuple[list[LoopState], list[LoopState]]:
        """(best predicted unmeasured programs, ``num_random_states`` random members of the
        initial population): steps 1-4 of the module docstring."""
        population_size = self.params.evolutionary_search_population
        num_use_measured = min(
            len(self.measured_states_vector),
            int(self.params.sample_init_use_measured_ratio * population_size),
        )
        init_population = sample_init_population(self, self.generate_sketches())
        order = np.argsort(-np.asarray(self.measured_states_throughputs), kind="stable")
        init_population.extend(self.measured_states_vector[int(i)] for i in order[:num_use_measured])
        random_states: list[LoopState] = []
        if num_random_states > 0:
            picks = self.rng.integers(len(init_population), size=num_random_states)
            random_states = [init_population[int(i)] for i in picks]
        best = self.evolutionary_search(init_population, self.num_measures_per_round * 2)
        return best, prune_and_bind(self, random_states)

    def pick_states_with_eps_greedy(
        self, best_states: Sequence[LoopState], random_states: Sequence[LoopState], remaining_trials: int
    ) -> list[MeasureInput]:
        """Up to ``num_measures_per_round`` (and ``remaining_trials``) unmeasured programs:
        the first ``(1 - eps_greedy)`` share from ``best_states``, the rest from
        ``random_states``, each side falling back on the other; they are marked measured."""
        num_random = int(self.params.eps_greedy * self.num_measures_per_round)
        num_good = self.num_measures_per_round - num_random
        limit = min(self.num_measures_per_round, remaining_trials)
        inputs: list[MeasureInput] = []
        best_at = random_at = 0
        while len(inputs) < limit:
            has_best, has_random = best_at < len(best_states), random_at < len(random_states)
            prefer_best = len(inputs) < num_good
            if (prefer_best and has_best) or (not prefer_best and not has_random and has_best):
                state = best_states[best_at]
                best_at += 1
            elif has_random:
                state = random_states[random_at]
                random_at += 1
            else:
                break
            key = str(state)
            if key not in self.measured_states_set:
                self.measured_states_set.add(key)
                self.measured_states_vector.append(state)
                inputs.append(MeasureInput(self.search_task, state))
        return inputs

    def _record_throughputs(self, results: Sequence[MeasureResult]) -> None:
        for result in results:
            self.measured_states_throughputs.append(1.0 / result.median_cost if result.ok else 0.0)

    # the searches -----------------------------------------------------------------------
    def search(
        self,
        num_measure_trials: int,
        early_stopping: int | None = None,
        num_measures_per_round: int = 64,
        measurer: ProgramMeasurer | None = None,
    ) -> LoopState | None:
        """Tune (see the module docstring); returns the measurer's best program."""
        if num_measures_per_round < 1:
            raise ValueError(
                f"SketchPolicy.search: num_measures_per_round {num_measures_per_round} must be >= 1"
            )
        self.num_measures_per_round = num_measures_per_round
        if num_measure_trials <= 1:
            best, _ = self.search_one_round(0)
            return best[0] if best else None
        if measurer is None:
            raise ValueError(f"SketchPolicy.search: {num_measure_trials} trials need a measurer")
        key = self.search_task.workload_key
        num_random = int(self.params.eps_greedy * num_measures_per_round)
        if early_stopping is None or early_stopping < 0:
            early_stopping = NO_EARLY_STOPPING
        measurer.reset()
        ct = 0
        retries_left = self.params.retry_search_one_round_on_empty
        inputs: list[MeasureInput] = []
        results: list[MeasureResult] = []
        while ct < num_measure_trials:
            if inputs:
                log(self, "------ Train cost model ------")
                self.program_cost_model.update(inputs, results)
            log(self, "------ Search ------")
            best, random_states = self.search_one_round(num_random * 3)
            inputs = self.pick_states_with_eps_greedy(best, random_states, num_measure_trials - ct)
            if not inputs:
                if retries_left > 0:
                    retries_left -= 1
                    continue
                log(self, "It seems all candidates in the search space have been measured.")
                break
            retries_left = self.params.retry_search_one_round_on_empty
            log(self, "------ Measure ------")
            results = list(measurer.measure(self.search_task, self, inputs))
            ct += len(inputs)
            self._record_throughputs(results)
            if ct - measurer.best_ct.get(key, 0) > early_stopping and key in measurer.has_valid:
                log(
                    self,
                    "Stop early since no performance improvement in the last "
                    f"{early_stopping} measurements trials.",
                )
                break
        log(self, "------ Done ------")
        return measurer.best_state.get(key)

    def continue_search_one_round(
        self, num_measure: int, measurer: ProgramMeasurer
    ) -> tuple[list[MeasureInput], list[MeasureResult]]:
        """One round for the task scheduler: search, measure ``num_measure`` new programs,
        then retrain the cost model on them.

        The round's replay and bound-inference caches are dropped at its end: the scheduler
        keeps one policy per task and comes back to a task after the others' rounds, so
        kept caches would cost the memory of every task's full cache at once (gigabytes
        for a network of 30 tasks) for little reuse (a round draws a fresh population)."""
        self.num_measures_per_round = num_measure
        num_random = int(self.params.eps_greedy * num_measure)
        best, random_states = self.search_one_round(num_random * 3)
        inputs = self.pick_states_with_eps_greedy(best, random_states, num_measure)
        results = list(measurer.measure(self.search_task, self, inputs)) if inputs else []
        self._record_throughputs(results)
        if inputs:
            self.program_cost_model.update(inputs, results)
        self.state_cache.clear()
        return inputs, results


# ------------------------------------------------------------------------------------------
# start-up callbacks (TVM ``PreloadMeasuredStates``, ``PreloadCustomSketchRule``)


class PreloadMeasuredStates(SearchCallback):
    """Resume from a log: mark every program recorded in ``filename`` for the policy's task
    (same workload key and target class) as measured, so it is never measured again, and
    seed the evolutionary search with the valid ones and their throughputs."""

    def __init__(self, filename: str | os.PathLike[str]):
        self.filename = filename

    def callback(self, policy: SearchPolicy) -> None:
        if not isinstance(policy, SketchPolicy):
            raise TypeError(f"PreloadMeasuredStates works on a SketchPolicy, not a {type(policy).__name__}")
        task = policy.search_task
        if not os.path.isfile(self.filename):
            raise FileNotFoundError(f"PreloadMeasuredStates: record file {self.filename} does not exist")
        loaded = 0
        for inp, res in load_records(self.filename, tasks=[task]):
            if inp.task is not task or not inp.state.stages:
                continue  # another task's record, or steps that do not replay on this DAG
            throughput = 1.0 / res.median_cost if res.ok else 0.0
            if policy.add_measured_state(inp.state, throughput):
                loaded += 1
        if policy.verbose >= 1:
            print(
                f"PreloadMeasuredStates: {loaded} measured state(s) loaded from {self.filename}", flush=True
            )


class PreloadCustomSketchRule(SearchCallback):
    """A user sketch rule, tried before the built-in ones (see
    ``sketch_rules.custom_sketch_rule``); ``meet_condition_func`` returns one of the class
    constants below."""

    PASS = 0
    APPLY = 1
    APPLY_AND_SKIP_REST = 2

    def __init__(
        self,
        meet_condition_func: Callable[[Any, State, int], int],
        apply_func: Callable[[Any, State, int], Any],
        rule_name: str = "CustomSketchRule",
    ):
        self.meet_condition_func = meet_condition_func
        self.apply_func = apply_func
        self.rule_name = rule_name

    def callback(self, policy: SearchPolicy) -> None:
        if not isinstance(policy, SketchPolicy):
            raise TypeError(f"PreloadCustomSketchRule works on a SketchPolicy, not a {type(policy).__name__}")
        policy.sketch_rules.append(
            custom_sketch_rule(self.meet_condition_func, self.apply_func, self.rule_name)
        )
        if policy.verbose >= 1:
            print(f'Custom sketch rule "{self.rule_name}" added.', flush=True)
