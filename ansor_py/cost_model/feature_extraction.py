"""The feature-extraction entry points of the cost model (TVM ``auto_scheduler/feature.py``).

Three ways in, each giving one float32 array [n_stores, feature_length] per program:

- ``get_per_store_features_from_states``: programs of one task, as the search scores
  them; rows already in a ``FeatureCache`` are reused, the rest are extracted in this
  process (``features.extract_rows``) or, for a large batch, in forked workers
  (``feature_workers``);
- ``get_per_store_features_from_measure_pairs``: measured programs, with their training
  labels (normalized throughputs, Ansor paper section 5.2) and task ids;
- ``get_per_store_features_from_file``: the same for the records of a tuning log.

This module sits above both ways of extracting (``features``, ``feature_workers``) and
above the records, so that neither of those needs to know the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ansor_py.cost_model.feature_math import feature_length
from ansor_py.cost_model.feature_workers import extract_in_workers
from ansor_py.cost_model.features import (
    DEFAULT_MAX_N_BUFS,
    FeatureCache,
    check_max_n_bufs,
    extract_rows,
    feature_cache_keys,
    normalized_throughputs,
)
from ansor_py.records import RecordReader
from ansor_py.workload_registry import WorkloadError
from ir.loop_state.api import State, as_loop_state
from ir.loop_state.state import LoopState
from ir.lower.bound import BoundCache

if TYPE_CHECKING:
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask


def get_per_store_features_from_states(
    states: Sequence[State | LoopState],
    task: SearchTask,
    max_n_bufs: int = DEFAULT_MAX_N_BUFS,
    cache: FeatureCache | None = None,
    n_workers: int = 1,
    bound_cache: BoundCache | None = None,
) -> list[np.ndarray]:
    """One float32 array [n_stores, feature_length] per state; [0, feature_length] for a
    state that cannot be lowered or breaks the task's GPU limits.

    ``n_workers`` > 1 extracts a large batch in that many processes (this one and forked
    workers, see ``feature_workers``); the rows are the same. ``bound_cache``: the search's
    bound-inference results for these states (``ir.lower.bound.BoundCache``), so that a
    state it has bound is not inferred again."""
    check_max_n_bufs(max_n_bufs)
    if n_workers < 1:
        raise ValueError(f"get_per_store_features_from_states: n_workers {n_workers} must be >= 1")
    loop_states = [as_loop_state(task.compute_dag, state) for state in states]
    out: list[np.ndarray | None] = [None] * len(states)
    keys = feature_cache_keys(loop_states, task, max_n_bufs) if cache is not None else []
    todo: list[int] = []
    for index in range(len(loop_states)):
        cached = cache.get(keys[index]) if cache is not None else None
        if cached is not None:
            out[index] = cached
        else:
            todo.append(index)
    todo_states = [loop_states[index] for index in todo]
    if n_workers > 1:
        rows_list = extract_in_workers(todo_states, task, max_n_bufs, n_workers, bound_cache)
    else:
        rows_list = extract_rows(todo_states, task, max_n_bufs, bound_cache)
    for index, rows in zip(todo, rows_list, strict=True):
        out[index] = rows
        if cache is not None and rows is not None:
            cache.put(keys[index], rows)
    width = feature_length(max_n_bufs)
    return [rows if rows is not None else np.zeros((0, width), dtype=np.float32) for rows in out]


def get_per_store_features_from_measure_pairs(
    inputs: Sequence[MeasureInput],
    results: Sequence[MeasureResult],
    skip_first_n_feature_extraction: int = 0,
    max_n_bufs: int = DEFAULT_MAX_N_BUFS,
    cache: FeatureCache | None = None,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(features, normalized throughputs, task ids) of measured pairs.

    The first ``skip_first_n_feature_extraction`` feature arrays are left empty (callers
    that cached them put theirs back). An input whose task has no DAG (a record of a
    workload not registered in this process) gets an empty array.
    """
    labels, ids = normalized_throughputs(inputs, results)
    width = feature_length(max_n_bufs)
    features = [np.zeros((0, width), dtype=np.float32) for _ in inputs]
    by_task: dict[int, list[int]] = {}
    for index in range(skip_first_n_feature_extraction, len(inputs)):
        if _has_dag(inputs[index].task):
            by_task.setdefault(int(ids[index]), []).append(index)
    for indices in by_task.values():
        task = inputs[indices[0]].task
        rows = get_per_store_features_from_states([inputs[i].state for i in indices], task, max_n_bufs, cache)
        for i, r in zip(indices, rows):
            features[i] = r
    return features, labels, ids


def get_per_store_features_from_file(
    filename: str, max_lines: int | None = None, max_n_bufs: int = DEFAULT_MAX_N_BUFS
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Features, normalized throughputs and task ids of the first ``max_lines`` records
    of a tuning log (all when None)."""
    inputs, results = read_measure_pairs(filename, max_lines)
    return get_per_store_features_from_measure_pairs(inputs, results, 0, max_n_bufs)


def read_measure_pairs(
    filename: str, max_lines: int | None = None
) -> tuple[list[MeasureInput], list[MeasureResult]]:
    """The first ``max_lines`` (all when None) measure pairs of a tuning log."""
    if max_lines is not None and max_lines < 0:
        raise ValueError(f"max_lines {max_lines} must be >= 0 (or None for all)")
    return RecordReader(filename).read_lines(max_lines)


def _has_dag(task: Any) -> bool:
    """False for a task read from a record whose workload is not registered here."""
    try:
        return task.compute_dag is not None
    except WorkloadError:
        return False
