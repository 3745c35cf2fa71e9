"""Feature extraction in forked workers (``ansor_py.cost_model.feature_workers``) gives
the rows one process gives, a failed worker costs time and never a result, prefetched
rows land in the cost model's cache, and a search makes the same choices with workers
as without, and a worker dies with the tuner. Also the search's garbage-collector
setting is put back afterwards."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import time

import numpy as np
import pytest
import search_workloads as W
from process_tools import kill_if_running, process_info, running, wait_until

from ansor_py.cost_model import XGBModel
from ansor_py.cost_model.feature_workers import (
    MIN_STATES_PER_WORKER,
    FeaturePrefetcher,
    _fork,
    _receive,
    default_workers,
    extract_in_workers,
)
from ansor_py.cost_model.features import FeatureCache, extract_rows, feature_cache_keys
from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.search import SketchPolicy
from ansor_py.search.evolution import SEARCH_GC_THRESHOLD, fewer_collections
from ansor_py.search.init_rules import apply_init_rules, ensure_bound
from ansor_py.search_task import SearchTask
from ir.lower.bound import BoundCache

N_STATES = 3 * MIN_STATES_PER_WORKER + 5


@pytest.fixture(scope="module")
def sampled() -> tuple[SearchTask, list]:
    """Random bound programs of a fused matmul (with a few invalid ones mixed in: the
    unfilled sketches, which cannot be lowered)."""
    policy = W.small_policy(W.search_test_matmul_bias_relu, (16, 24, 8), seed=2)
    sketches = policy.generate_sketches()
    rng = np.random.default_rng(0)
    states: list = []
    while len(states) < N_STATES:
        state = apply_init_rules(policy, sketches[int(rng.integers(len(sketches)))], policy.init_rules, rng)
        bound = ensure_bound(policy, state) if state is not None else None
        if bound is not None:
            states.append(bound)
    states[7] = sketches[0]
    states[-3] = sketches[-1]
    return policy.search_task, states


def same_rows(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in zip(a, b, strict=True)
    )


def test_workers_extract_exactly_the_rows_of_one_process(sampled):
    task, states = sampled
    alone = extract_rows(states, task, 5)
    assert alone[7] is None and alone[-3] is None  # the sketches
    assert sum(rows is not None and rows.shape[0] > 0 for rows in alone) == N_STATES - 2
    for workers in (2, 3):
        assert same_rows(extract_in_workers(states, task, 5, workers), alone)


def test_rows_with_a_bound_cache_are_the_rows_without(sampled):
    task, states = sampled
    alone = extract_rows(states, task, 5)
    cache = BoundCache()
    assert same_rows(extract_rows(states, task, 5, cache), alone)
    lowered = [state for state, rows in zip(states, alone, strict=True) if rows is not None]
    assert all(cache.facts(state.stages) is not None for state in lowered)  # kept for the next call
    assert same_rows(extract_rows(states, task, 5, cache), alone)  # the facts found in the cache
    assert same_rows(extract_in_workers(states, task, 5, 2, cache), alone)


def test_a_small_batch_is_not_split(sampled):
    task, states = sampled
    few = states[: 2 * MIN_STATES_PER_WORKER - 1]
    assert same_rows(extract_in_workers(few, task, 5, 4), extract_rows(few, task, 5))


def test_a_dead_worker_sends_nothing_and_is_reaped(sampled):
    task, states = sampled
    process, receiver = worker = _fork(states[:20], task, 5)
    process.kill()
    assert _receive(worker, 20, timeout=10.0) is None
    assert not process.is_alive() and receiver.closed
    # a worker that answers with the wrong number of rows is not believed either
    assert _receive(_fork(states[:20], task, 5), 19, timeout=30.0) is None


def test_prefetched_rows_land_in_the_cache(sampled):
    task, states = sampled
    cache = FeatureCache()
    prefetcher = FeaturePrefetcher(5)
    first = states[: MIN_STATES_PER_WORKER + 10]  # enough for a worker at once
    prefetcher.submit(task, first, cache)
    prefetcher.submit(task, states[len(first) : len(first) + 5], cache)  # queued meanwhile
    prefetcher.collect(cache)
    keys = feature_cache_keys(first, task, 5)
    expected = extract_rows(first, task, 5)
    for key, rows in zip(keys, expected, strict=True):
        if rows is None:
            assert key not in cache  # invalid programs are left to the caller
        else:
            assert np.array_equal(cache.get(key), rows)
    assert len(cache) == sum(rows is not None for rows in expected)  # the queued 5 were dropped


def _in_daemon(sender, states, task) -> None:
    rows = extract_in_workers(states, task, 5, 4)  # would raise if it tried to fork here
    sender.send((default_workers(), sum(r is not None for r in rows)))


def test_a_daemonic_process_extracts_without_forking(sampled):
    task, states = sampled
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_in_daemon, args=(sender, states, task), daemon=True)
    process.start()
    assert receiver.poll(60)
    workers, valid = receiver.recv()
    process.join()
    assert workers == 1 and valid == N_STATES - 2


def _tuner_forking_a_worker(sender, states, task) -> None:
    """Plays the tuner: forks a worker for ``states``, says its pid, waits to be killed."""
    process, _ = _fork(states, task, 5)
    sender.send(process.pid)
    time.sleep(300)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_dies_with_the_tuner(sampled):
    """Issue 11: after kill -9 of the tuner, a worker blocked for good writing its rows
    (more than a pipe holds) into the pipe whose read end it had inherited and kept."""
    task, states = sampled
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    tuner = context.Process(target=_tuner_forking_a_worker, args=(sender, states, task))
    tuner.start()
    sender.close()
    assert receiver.poll(60)
    worker = process_info(receiver.recv())
    assert worker is not None and worker.ppid == tuner.pid
    os.kill(tuner.pid, signal.SIGKILL)
    tuner.join()
    try:
        assert wait_until(lambda: not running(worker), 15.0), f"worker {worker.pid} outlived the tuner"
    finally:
        kill_if_running(worker)


def synthetic_measurements(task: SearchTask, states: list) -> tuple[list, list]:
    """Measured pairs with made-up costs (what is tested is the prediction path)."""
    rng = np.random.default_rng(5)
    inputs = [MeasureInput(task, s) for s in states]
    results = [
        MeasureResult((float(c),), MeasureErrorNo.NO_ERROR) for c in rng.uniform(1e-4, 1e-3, len(states))
    ]
    return inputs, results


def test_xgb_scores_do_not_depend_on_the_workers(sampled):
    task, states = sampled
    valid = [s for i, s in enumerate(states) if i not in (7, N_STATES - 3)]
    model = XGBModel(num_warmup_sample=10, seed=3, nthread=1, feature_workers=1, verbose_eval=0)
    model.update(*synthetic_measurements(task, valid[:40]))
    alone = model.predict(task, states)
    model.feature_workers = 2
    model.feature_cache = FeatureCache()
    model.prefetch(task, states[:100])
    with_workers = model.predict(task, states)
    assert np.array_equal(alone, with_workers)
    assert np.isneginf(alone[7]) and np.isfinite(alone[:7]).all() and len(set(alone[:7])) > 1


def search_picks(feature_workers: int) -> tuple[list[str], int]:
    base = W.small_policy(W.search_test_matmul, (32, 32, 32), seed=4)
    model = XGBModel(seed=4, nthread=1, feature_workers=feature_workers, verbose_eval=0)
    policy = SketchPolicy(
        base.search_task,
        model,
        params={"evolutionary_search_population": 160, "sample_init_min_population": 8},
        seed=4,
        verbose=0,
    )
    best, _ = policy.search_one_round(0)
    return [str(s) for s in best], model.prefetcher.prefetched


def test_a_search_picks_the_same_programs_with_workers_as_without():
    alone, none_prefetched = search_picks(1)
    assert len(alone) > 8 and none_prefetched == 0
    with_workers, prefetched = search_picks(2)
    assert with_workers == alone
    assert prefetched >= 2 * MIN_STATES_PER_WORKER  # the breeding overlapped extraction


def test_fewer_collections_puts_the_thresholds_back():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= SEARCH_GC_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError, match="inside"), fewer_collections():
        raise RuntimeError("raised inside")
    assert gc.get_threshold() == before
