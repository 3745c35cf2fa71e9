"""Ansor's per-statement program features: the extraction API the cost model calls.

Ansor's cost model does not look at a loop state directly; it lowers the state to a loop
nest and describes every BufferStore statement by 164 numbers (paper section 5.2,
"Program features"; TVM ``auto_scheduler/feature.py`` and ``feature.cc``). A program's
score is the sum of its statements' scores (``xgb_model``). The numbers and their order
are listed in ``feature_math``; ``get_per_store_feature_names()`` names them
(``float_mad``, ..., ``B0.unique_lines_d_reuse_ct``, ..., ``auto_unroll_max_step``).

Pipeline for a batch of states of one task::

    state --lower_for_features--> loop nest --loop_summary.summarise--> integer tables
    (all states of the batch share the tables) --feature_math.compute_features--> rows

``lower_for_features`` runs the lowering passes up to the loop nests, before index
flattening: that is the program TVM analyses on the CPU (ScheduleToModule + Simplify),
with one index per buffer dimension. ``features_from_primfunc`` accepts a fully lowered
``PrimFunc`` too (flat indices, hoisted LetStmts) and gives the same rows, except where
a flat index cannot be split back into dimensions unambiguously (see ``loop_summary``).

A state that cannot be lowered (a ScheduleError, unknown split lengths, a state of another
DAG) or that breaks a GPU limit of the task's HardwareParams gets an empty feature array;
the cost model scores it -inf so the search drops it (TVM's behaviour).

Speed (issue 3 item 6): the only per-state Python work is lowering and one walk of the
loop nest (bound inference is memoised on the state by ``ir.lower.bound``, so a state the
search has bound is not inferred again); every feature formula runs once per batch as
numpy array arithmetic. A ``FeatureCache`` keyed by the state's printed loop tree skips
repeated states entirely, and ``feature_workers`` spreads large batches over forked
processes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ansor_py.build import state_of
from ansor_py.cost_model.feature_math import POSITION_CLASSES, compute_features, feature_length
from ansor_py.cost_model.loop_summary import GpuUsage, SummaryTables, summarise
from ansor_py.workload_registry import WorkloadError
from codegen.target import HardwareParams
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.loop_state.state import LoopState, ScheduleError
from ir.lower.bound import infer_bound_with_regions
from ir.lower.schedule_ops import plan_buffers, schedule_ops
from ir.tir import PrimFunc, Stmt

if TYPE_CHECKING:
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask

#: TVM's ``DEFAULT_MAX_N_BUFS`` and ``DEFAULT_FEATURE_VEC_LEN``
DEFAULT_MAX_N_BUFS = 5
DEFAULT_FEATURE_VEC_LEN = feature_length(DEFAULT_MAX_N_BUFS)

_ACCESS_NAMES = (
    "acc_type.kRead",
    "acc_type.kWrite",
    "acc_type.kReadWrite",
    "bytes",
    "unique_bytes",
    "lines",
    "unique_lines",
    "reuse_type.kLoopMultipleRead",
    "reuse_type.kSerialMultipleReadWrite",
    "reuse_type.kNoReuse",
    "reuse_dis_iter",
    "reuse_dis_bytes",
    "reuse_ct",
    "bytes_d_reuse_ct",
    "unique_bytes_d_reuse_ct",
    "lines_d_reuse_ct",
    "unique_lines_d_reuse_ct",
    "stride",
)


def get_per_store_feature_names(max_n_bufs: int = DEFAULT_MAX_N_BUFS) -> list[str]:
    """The names of the feature columns, in order (TVM ``GetPerStoreFeatureName``)."""
    _check_max_n_bufs(max_n_bufs)
    names = ["float_mad", "float_addsub", "float_mul", "float_divmod", "float_cmp"]
    names += ["float_mathfunc", "float_otherfunc", "int_mad", "int_addsub", "int_mul", "int_divmod"]
    names += ["int_cmp", "int_mathfunc", "int_otherfunc", "bool_op", "select_op"]
    for kind in ("vec", "unroll", "parallel"):
        names += [f"{kind}_num", f"{kind}_prod", f"{kind}_len"]
        names += [f"{kind}_type.{p}" for p in POSITION_CLASSES]
    names += ["is_gpu", "blockIdx_x_len", "blockIdx_y_len", "blockIdx_z_len"]
    names += ["threadIdx_x_len", "threadIdx_y_len", "threadIdx_z_len", "vthread_len"]
    for i in range(max_n_bufs):
        names += [f"B{i}.{name}" for name in _ACCESS_NAMES]
    names += [f"arith_intensity_curve_{i}" for i in range(10)]
    names += ["alloc_size", "alloc_prod", "alloc_outer_prod", "alloc_inner_prod"]
    names += ["outer_prod", "num_loops", "auto_unroll_max_step"]
    return names


def lower_for_features(dag: ComputeDAG, state: State | LoopState | None) -> Stmt:
    """The loop nest of ``state`` before index flattening (what TVM extracts from).

    Raises ScheduleError when the state cannot be lowered (see ``ansor_py.build.state_of``).
    """
    loop_state = state_of(dag, state)
    bounds = infer_bound_with_regions(dag, loop_state)
    plan = plan_buffers([(t.name, t.shape, t.dtype) for t in dag.tensors], bounds)
    return schedule_ops(bounds, plan)


def features_from_primfunc(
    func: PrimFunc | Stmt, cache_line_bytes: int = 64, max_n_bufs: int = DEFAULT_MAX_N_BUFS
) -> np.ndarray:
    """Feature rows [n_buffers_stored, feature_length] of one program (log2p-scaled)."""
    _check_max_n_bufs(max_n_bufs)
    tables = SummaryTables()
    tables.begin_program()
    summarise(func.body if isinstance(func, PrimFunc) else func, tables)
    return compute_features(tables, cache_line_bytes, max_n_bufs)[0]


def named_features_from_primfunc(
    func: PrimFunc | Stmt, cache_line_bytes: int = 64, max_n_bufs: int = DEFAULT_MAX_N_BUFS
) -> dict[str, np.ndarray]:
    """``{feature name: its column}`` (one value per stored buffer) of one program."""
    rows = features_from_primfunc(func, cache_line_bytes, max_n_bufs)
    return {name: rows[:, i] for i, name in enumerate(get_per_store_feature_names(max_n_bufs))}


class FeatureCache:
    """Feature rows of states already extracted, keyed by task and printed loop tree.

    Least recently used entries are dropped past ``max_entries`` (about 2 KB each).
    """

    def __init__(self, max_entries: int = 20_000):
        if max_entries < 1:
            raise ValueError(f"FeatureCache: max_entries {max_entries} must be >= 1")
        self.max_entries = max_entries
        self._rows: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, ...]) -> np.ndarray | None:
        rows = self._rows.get(key)
        if rows is None:
            self.misses += 1
            return None
        self.hits += 1
        self._rows.move_to_end(key)
        return rows

    def put(self, key: tuple[str, ...], rows: np.ndarray) -> None:
        self._rows[key] = rows
        self._rows.move_to_end(key)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: tuple[str, ...]) -> bool:
        return key in self._rows


def get_per_store_features_from_states(
    states: Sequence[State | LoopState],
    task: SearchTask,
    max_n_bufs: int = DEFAULT_MAX_N_BUFS,
    cache: FeatureCache | None = None,
    n_workers: int = 1,
) -> list[np.ndarray]:
    """One float32 array [n_stores, feature_length] per state; [0, feature_length] for a
    state that cannot be lowered or breaks the task's GPU limits.

    ``n_workers`` > 1 extracts a large batch in that many processes (this one and forked
    workers, see ``feature_workers``); the rows are the same."""
    _check_max_n_bufs(max_n_bufs)
    if n_workers < 1:
        raise ValueError(f"get_per_store_features_from_states: n_workers {n_workers} must be >= 1")
    task_key = _task_cache_key(task, max_n_bufs)
    out: list[np.ndarray | None] = [None] * len(states)
    keys: list[tuple[str, ...] | None] = [None] * len(states)
    todo: list[int] = []
    loop_states: list[LoopState] = []
    for index, state in enumerate(states):
        loop_state = state.loop_state if isinstance(state, State) else state
        if cache is not None:
            key = keys[index] = (*task_key, _state_key(loop_state))
            cached = cache.get(key)
            if cached is not None:
                out[index] = cached
                continue
        todo.append(index)
        loop_states.append(loop_state)
    if n_workers > 1:
        from ansor_py.cost_model.feature_workers import extract_in_workers  # it imports this module

        rows_list = extract_in_workers(loop_states, task, max_n_bufs, n_workers)
    else:
        rows_list = extract_rows(loop_states, task, max_n_bufs)
    for index, rows in zip(todo, rows_list, strict=True):
        out[index] = rows
        stored_key = keys[index]
        if cache is not None and stored_key is not None and rows is not None:
            cache.put(stored_key, rows)
    width = feature_length(max_n_bufs)
    return [rows if rows is not None else np.zeros((0, width), dtype=np.float32) for rows in out]


def feature_cache_keys(
    states: Sequence[LoopState], task: SearchTask, max_n_bufs: int = DEFAULT_MAX_N_BUFS
) -> list[tuple[str, ...]]:
    """The FeatureCache keys ``get_per_store_features_from_states`` uses for ``states``."""
    task_key = _task_cache_key(task, max_n_bufs)
    return [(*task_key, _state_key(state)) for state in states]


def _task_cache_key(task: SearchTask, max_n_bufs: int) -> tuple[str, ...]:
    return (task.workload_key, str(task.target), str(task.hardware_params.cache_line_bytes), str(max_n_bufs))


def extract_rows(states: Sequence[LoopState], task: SearchTask, max_n_bufs: int) -> list[np.ndarray | None]:
    """The feature rows of each state, None for one that cannot be lowered or breaks the
    GPU limits (no cache): lower and summarise each state into one batch of tables, then
    compute every row of the batch at once."""
    dag = task.compute_dag
    hardware = task.hardware_params
    out: list[np.ndarray | None] = [None] * len(states)
    tables = SummaryTables()
    pending: list[int] = []
    for index, loop_state in enumerate(states):
        try:
            body = lower_for_features(dag, loop_state)
        except ScheduleError:
            continue
        mark = _TableMark(tables)
        tables.begin_program()
        usage = summarise(body, tables)
        if task.target.kind == "cuda" and not _within_gpu_limits(usage, hardware):
            mark.rollback()
            continue
        pending.append(index)
    for index, rows in zip(pending, compute_features(tables, hardware.cache_line_bytes, max_n_bufs)):
        out[index] = rows
    return out


def normalized_throughputs(
    inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, task ids): per input, min cost of its task / its mean cost (paper
    section 5.2: the training label), tasks told apart by (workload key, target)."""
    if len(inputs) != len(results):
        raise ValueError(f"{len(inputs)} measure inputs but {len(results)} results: they must pair up")
    task_ids: dict[tuple[str, str], int] = {}
    ids = np.array(
        [task_ids.setdefault(_task_key(inp.task), len(task_ids)) for inp in inputs], dtype=np.int64
    )
    costs = np.array([res.mean_cost for res in results], dtype=np.float64)
    best = np.full(len(task_ids), np.inf)
    np.minimum.at(best, ids, costs)
    return best[ids] / costs, ids


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
    of a tuning log (read with ``ansor_py.records.load_records``)."""
    inputs, results = read_measure_pairs(filename, max_lines)
    return get_per_store_features_from_measure_pairs(inputs, results, 0, max_n_bufs)


def read_measure_pairs(
    filename: str, max_lines: int | None = None
) -> tuple[list[MeasureInput], list[MeasureResult]]:
    """The first ``max_lines`` (all when None) measure pairs of a tuning log."""
    from ansor_py.records import load_records  # records sit above the cost model

    if max_lines is not None and max_lines < 0:
        raise ValueError(f"max_lines {max_lines} must be >= 0 (or None for all)")
    inputs: list[MeasureInput] = []
    results: list[MeasureResult] = []
    for inp, res in _take(load_records(filename), max_lines):
        inputs.append(inp)
        results.append(res)
    return inputs, results


# ------------------------------------------------------------------------------------------


def _take(pairs: Iterable[Any], limit: int | None) -> Iterable[Any]:
    for count, pair in enumerate(pairs):
        if limit is not None and count >= limit:
            return
        yield pair


def _state_key(state: LoopState) -> str:
    """The printed loop tree, plus what it does not show (storage_align, pragmas other
    than auto_unroll): equal keys mean equal programs."""
    extras = [
        (k, st.storage_align, st.pragmas)
        for k, st in enumerate(state.stages)
        if st.storage_align or st.pragmas
    ]
    return str(state) + (repr(extras) if extras else "")


def _has_dag(task: Any) -> bool:
    """False for a task read from a record whose workload is not registered here."""
    try:
        return task.compute_dag is not None
    except WorkloadError:
        return False


def _task_key(task: Any) -> tuple[str, str]:
    return str(task.workload_key), str(task.target)


def _check_max_n_bufs(max_n_bufs: int) -> None:
    if not isinstance(max_n_bufs, int) or max_n_bufs < 1:
        raise ValueError(f"max_n_bufs {max_n_bufs!r} must be a positive int")


def _within_gpu_limits(usage: GpuUsage, hw: HardwareParams) -> bool:
    """The checks of TVM's VerifyGPUCode that the loop nest can answer (a limit of 0 is
    not checked): threads per block, shared memory per block, virtual threads."""
    checks = (
        (usage.max_threads_per_block, hw.max_threads_per_block),
        (usage.shared_bytes, hw.max_shared_memory_per_block),
        (usage.max_vthread, hw.max_vthread_extent),
    )
    return all(limit <= 0 or used <= limit for used, limit in checks)


class _TableMark:
    """Remembers the table lengths so a program summarised by mistake can be taken out."""

    def __init__(self, tables: SummaryTables):
        self.tables = tables
        self.lengths = {name: len(value) for name, value in vars(tables).items() if isinstance(value, list)}

    def rollback(self) -> None:
        for name, length in self.lengths.items():
            del getattr(self.tables, name)[length:]
