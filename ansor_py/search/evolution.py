"""Sampling the initial population and evolving it under the cost model (Ansor paper
sections 4.2 and 5.1; TVM ``SampleInitPopulation`` and ``EvolutionarySearch``).

``sample_init_population`` draws batches of ``evolutionary_search_population`` random
programs (a random sketch through the init rules each) until at least
``sample_init_min_population`` valid, distinct ones exist; a target that five batches in
a row cannot reach is halved.

``evolutionary_search`` scores every generation with the cost model, keeps the best
``out_size`` distinct programs seen that were never measured (a min-heap keyed by score,
distinct by printed loop tree), and breeds the next generation: parents are drawn with
probability proportional to max(score, 0) (roulette wheel), each mutated with probability
``evolutionary_search_mutation_prob`` by a rule drawn by weight, or copied.

Speed (the search runs in Python): programs are immutable and shared, never copied;
bound inference runs only when a step left an extent unknown, and what it found is kept
in the policy's ``BoundCache`` (``state_cache.bound_cache``), which the cost model receives
for feature extraction; each distinct program is scored
once per call (scores are cached by printed form, the model does not change within a
call), and the model sees whole batches. New programs are handed to the cost model's
``prefetch`` (where it has one) in chunks as they are bred, so that ``XGBModel`` extracts
their features in a forked worker while breeding goes on. Both functions run under
``fewer_collections``: a round allocates millions of small objects and keeps thousands of
programs alive, and with Python's default thresholds the cyclic garbage collector would
re-scan that whole heap every time it grows by a quarter, walking programs that are
still in use.
"""

from __future__ import annotations

import gc
import heapq
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ansor_py.search.init_rules import InitRule, PopulationContext, apply_init_rules, ensure_bound
from ansor_py.search.mutation_rules import MutationRule
from ansor_py.search.stage_queries import has_nested_parallel
from ir.loop_state.state import LoopState

if TYPE_CHECKING:
    from ansor_py.cost_model.base import CostModel

#: a score at or below this marks a program the cost model rejects (TVM's threshold)
INVALID_SCORE = -1e10


class SampleError(RuntimeError):
    """No valid program could be sampled from the sketches."""


class EvolutionContext(PopulationContext, Protocol):
    """What sampling and evolution read from the policy (``SketchPolicy`` has it all)."""

    program_cost_model: CostModel
    rng: np.random.Generator
    verbose: int
    init_rules: list[InitRule]
    mutation_rules: list[MutationRule]
    #: printed forms of the programs already measured (never returned again)
    measured_states_set: set[str]
    #: the current sampling target (halved on repeated failure, kept across rounds)
    sample_init_min_population: int


#: programs bred between calls of the cost model's ``prefetch``
PREFETCH_CHUNK = 64
#: allocations between young-generation collections while searching (Python's default is
#: 700); mypy raises it likewise. Full collections then come about 30x less often.
SEARCH_GC_THRESHOLD = 20_000


@contextmanager
def fewer_collections(threshold: int = SEARCH_GC_THRESHOLD) -> Iterator[None]:
    """Run the body with the collector's young-generation threshold raised to at least
    ``threshold``, then restore the previous thresholds. Only the timing of garbage
    collection changes, never a result; cyclic garbage waits at most ``threshold``
    allocations longer."""
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], threshold), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def log(ctx: EvolutionContext, message: str) -> None:
    if ctx.verbose >= 1:
        print(message, flush=True)


def prune_and_bind(ctx: EvolutionContext, states: Sequence[LoopState]) -> list[LoopState]:
    """The states with every extent known, minus those bound inference rejects and those
    with nested parallel loops (invalid on CPUs)."""
    result = []
    for state in states:
        bound = ensure_bound(ctx, state)
        if bound is not None and not has_nested_parallel(bound):
            result.append(bound)
    return result


def prefetch(ctx: EvolutionContext, states: Sequence[LoopState]) -> None:
    """Hand ``states`` (to be predicted later) to a cost model that can start early
    (``cost_model.base.PrefetchingCostModel``; checked by name, so that this module does
    not import the cost-model package and XGBoost with it)."""
    start = getattr(ctx.program_cost_model, "prefetch", None)
    if states and callable(start):
        start(ctx.search_task, states, ctx.state_cache.bound_cache)


def predict(ctx: EvolutionContext, states: Sequence[LoopState]) -> np.ndarray:
    """Cost-model scores of ``states`` (higher is faster) as float64; the model receives
    the search's bound cache, which holds what bound inference found for them."""
    if not states:
        return np.zeros(0)
    scores = ctx.program_cost_model.predict(ctx.search_task, list(states), ctx.state_cache.bound_cache)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(states),):
        raise ValueError(
            f"cost model {type(ctx.program_cost_model).__name__} returned scores of shape {scores.shape} "
            f"for {len(states)} states"
        )
    return scores


def sample_init_population(ctx: EvolutionContext, sketches: Sequence[LoopState]) -> list[LoopState]:
    """At least ``ctx.sample_init_min_population`` valid, distinct random programs."""
    with fewer_collections():
        return _sample_init_population(ctx, sketches)


def _sample_init_population(ctx: EvolutionContext, sketches: Sequence[LoopState]) -> list[LoopState]:
    if not sketches:
        raise SampleError(f"no sketches to sample from for task {ctx.search_task.workload_key}")
    batch_size = ctx.params.evolutionary_search_population
    rng = ctx.rng
    start = time.perf_counter()
    out: list[LoopState] = []
    explored: set[str] = set()
    fail_ct = 0
    unchanged = 0
    iteration = 1
    while len(out) < ctx.sample_init_min_population:
        picks = rng.integers(len(sketches), size=batch_size)
        candidates: list[LoopState] = []
        prefetched = 0
        for pick in picks:
            state = apply_init_rules(ctx, sketches[int(pick)], ctx.init_rules, rng)
            if state is None:
                fail_ct += 1
                continue
            candidates.extend(prune_and_bind(ctx, [state]))
            if len(candidates) - prefetched >= PREFETCH_CHUNK:
                prefetch(ctx, candidates[prefetched:])
                prefetched = len(candidates)
        unchanged += 1
        fresh: list[LoopState] = []
        fresh_keys: list[str] = []
        for state in candidates:
            key = str(state)
            if key in explored:
                fail_ct += 1
                continue
            explored.add(key)
            fresh.append(state)
            fresh_keys.append(key)
        for state, score in zip(fresh, predict(ctx, fresh), strict=True):
            if score > INVALID_SCORE:
                out.append(state)
                unchanged = 0
            else:
                fail_ct += 1
        if iteration % 5 == 0:
            log(
                ctx,
                f"Sample Iter: {iteration}\t#Pop: {len(out)}\t#Target: {ctx.sample_init_min_population}"
                f"\tfail_ct: {fail_ct}\tTime elapsed: {time.perf_counter() - start:.2f}",
            )
        if unchanged == 5:
            if ctx.sample_init_min_population <= 1:
                raise SampleError(
                    f"no valid program sampled from {len(sketches)} sketch(es) of task "
                    f"{ctx.search_task.workload_key} in {iteration} batches of {batch_size}"
                )
            ctx.sample_init_min_population //= 2
            log(
                ctx,
                f"#Target has been reduced to {ctx.sample_init_min_population} "
                "due to too many failures or duplications",
            )
            unchanged = 0
        iteration += 1
    log(
        ctx,
        f"Sample Initial Population\t#s: {len(out)}\tfail_ct: {fail_ct}"
        f"\tTime elapsed: {time.perf_counter() - start:.2f}",
    )
    return out


def roulette_probabilities(scores: np.ndarray) -> np.ndarray:
    """Cumulative selection probabilities proportional to max(score, 0); uniform when no
    score is positive (TVM divides by zero there)."""
    weights = np.maximum(np.nan_to_num(scores, nan=0.0, neginf=0.0, posinf=0.0), 0.0)
    total = weights.sum()
    if total <= 0:
        weights = np.ones_like(weights)
        total = weights.sum()
    cumulative = np.cumsum(weights) / total
    cumulative[-1] = 1.0
    return cumulative


def evolutionary_search(
    ctx: EvolutionContext, init_population: Sequence[LoopState], out_size: int, num_iters: int
) -> list[LoopState]:
    """The best ``out_size`` distinct, unmeasured programs found in ``num_iters``
    generations bred from ``init_population``, best first."""
    with fewer_collections():
        return _evolutionary_search(ctx, init_population, out_size, num_iters)


def _evolutionary_search(
    ctx: EvolutionContext, init_population: Sequence[LoopState], out_size: int, num_iters: int
) -> list[LoopState]:
    start = time.perf_counter()
    population_size = ctx.params.evolutionary_search_population
    mutation_prob = ctx.params.evolutionary_search_mutation_prob
    rng = ctx.rng
    rules = ctx.mutation_rules
    rule_cumulative = np.cumsum([rule.weight for rule in rules]) / sum(rule.weight for rule in rules)
    rule_cumulative[-1] = 1.0

    heap: list[tuple[float, int, str, LoopState]] = []  # min-heap: the worst kept program first
    in_heap: set[str] = set(ctx.measured_states_set)
    score_cache: dict[str, float] = {}
    counter = 0
    max_score = -np.inf
    success_ct = fail_ct = 0
    population = prune_and_bind(ctx, init_population)

    for generation in range(num_iters + 1):
        keys = [str(state) for state in population]
        scores = _scores(ctx, population, keys, score_cache)
        for state, key, score in zip(population, keys, scores, strict=True):
            if key in in_heap or score <= INVALID_SCORE:
                continue
            if len(heap) < out_size:
                heapq.heappush(heap, (score, counter, key, state))
                in_heap.add(key)
            elif score > heap[0][0]:
                _, _, old_key, _ = heapq.heapreplace(heap, (score, counter, key, state))
                in_heap.discard(old_key)
                in_heap.add(key)
            counter += 1
            max_score = max(max_score, score)
        if generation % 5 == 0 or generation == num_iters:
            low = f"{heap[0][0]:.4f}" if heap else "N/A"
            log(
                ctx,
                f"GA Iter: {generation}\tMax score: {max_score:.4f}\tMin score: {low}\t#Pop: {len(heap)}"
                f"\t#M+: {success_ct // (generation + 1)}\t#M-: {fail_ct // (generation + 1)}",
            )
        if generation == num_iters or not population:
            break
        parent_cumulative = roulette_probabilities(scores)
        children: list[LoopState] = []
        bred: list[LoopState] = []  # mutated children not yet handed to prefetch
        while len(children) < population_size:
            need = population_size - len(children)
            parents = np.searchsorted(parent_cumulative, rng.random(need), side="left")
            mutate = rng.random(need) < mutation_prob
            rule_ids = np.searchsorted(rule_cumulative, rng.random(need), side="left")
            made = 0
            for parent, do_mutate, rule_id in zip(parents, mutate, rule_ids, strict=True):
                state = population[int(parent)]
                if do_mutate:
                    child = rules[int(rule_id)].apply(ctx, state, rng)
                    child = ensure_bound(ctx, child) if child is not None else None
                    if child is None or has_nested_parallel(child):
                        fail_ct += 1
                        continue
                    success_ct += 1
                    state = child
                    bred.append(child)
                    if len(bred) >= PREFETCH_CHUNK:
                        prefetch(ctx, bred)
                        bred = []
                children.append(state)
                made += 1
            if made == 0:
                # no rule can mutate these parents: copy them instead of looping forever
                children.extend(population[int(p)] for p in parents)
        prefetch(ctx, bred)
        population = children

    best = sorted(heap, key=lambda item: (-item[0], item[1]))
    log(ctx, f"EvolutionarySearch\t\t#s: {len(best)}\tTime elapsed: {time.perf_counter() - start:.2f}")
    return [state for _, _, _, state in best]


def _scores(
    ctx: EvolutionContext, states: Sequence[LoopState], keys: Sequence[str], cache: dict[str, float]
) -> np.ndarray:
    """Scores of ``states`` (printed forms ``keys``), predicting each new form once."""
    todo: dict[str, LoopState] = {}
    for state, key in zip(states, keys, strict=True):
        if key not in cache and key not in todo:
            todo[key] = state
    if todo:
        for key, score in zip(todo, predict(ctx, list(todo.values())), strict=True):
            cache[key] = float(score)
    return np.array([cache[key] for key in keys], dtype=np.float64)
