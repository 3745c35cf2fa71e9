"""Ansor's per-statement program features: what they are, and one batch's extraction.

Ansor's cost model does not look at a loop state directly; it lowers the state to a loop
nest and describes every BufferStore statement by 164 numbers (paper section 5.2,
"Program features"; TVM ``auto_scheduler/feature.py`` and ``feature.cc``). A program's
score is the sum of its statements' scores (``xgb_model``). The numbers and their order
are listed in ``feature_math``; ``get_per_store_feature_names()`` names them
(``float_mad``, ..., ``B0.unique_lines_d_reuse_ct``, ..., ``auto_unroll_max_step``).

The cost model calls the entry points of ``feature_extraction`` (from states, measured
pairs or a log), which use this module's ``extract_rows`` and ``FeatureCache``. Pipeline
of ``extract_rows`` for a batch of states of one task::

    state --lower(stop_after="schedule_ops")--> loop nest --loop_summary.summarise-->
    integer tables (all states of the batch share the tables)
    --feature_math.compute_features--> rows

``lower(dag, state, stop_after="schedule_ops")`` runs the lowering passes up to the loop
nests, before index flattening: that is the program TVM analyses on the CPU
(ScheduleToModule + Simplify), with one index per buffer dimension.
``features_from_primfunc`` accepts a fully lowered ``PrimFunc`` too (flat indices, hoisted
LetStmts) and gives the same rows, except where a flat index cannot be split back into
dimensions unambiguously (see ``loop_summary``).

A state that cannot be lowered (a ScheduleError, unknown split lengths, a state of another
DAG) or that breaks a GPU limit of the task's HardwareParams gets an empty feature array;
the cost model scores it -inf so the search drops it (TVM's behaviour).

Speed (the search runs in Python and scores thousands of states per round): the only
per-state Python work is lowering and one walk of the loop nest (the search passes its
``ir.lower.bound.BoundCache``, so a state the search has bound is not inferred again);
every feature formula runs once per batch as numpy array arithmetic. A ``FeatureCache``
keyed by the state's printed loop tree skips repeated states entirely, and
``feature_workers`` spreads large batches over forked processes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ansor_py.cost_model.feature_math import POSITION_CLASSES, compute_features, feature_length
from ansor_py.cost_model.loop_summary import GpuUsage, SummaryTables, summarise
from codegen.target import HardwareParams
from ir.loop_state.state import LoopState, ScheduleError
from ir.lower.bound import BoundCache
from ir.lower.lower import lower
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
    check_max_n_bufs(max_n_bufs)
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


def features_from_primfunc(
    func: PrimFunc | Stmt, cache_line_bytes: int = 64, max_n_bufs: int = DEFAULT_MAX_N_BUFS
) -> np.ndarray:
    """Feature rows [n_buffers_stored, feature_length] of one program (log2p-scaled)."""
    check_max_n_bufs(max_n_bufs)
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


def feature_cache_keys(
    states: Sequence[LoopState], task: SearchTask, max_n_bufs: int = DEFAULT_MAX_N_BUFS
) -> list[tuple[str, ...]]:
    """The FeatureCache keys of ``states`` (``feature_extraction.get_per_store_features_from_states``
    and ``feature_workers.FeaturePrefetcher`` use them)."""
    task_key = _task_cache_key(task, max_n_bufs)
    return [(*task_key, _state_key(state)) for state in states]


def _task_cache_key(task: SearchTask, max_n_bufs: int) -> tuple[str, ...]:
    return (task.workload_key, str(task.target), str(task.hardware_params.cache_line_bytes), str(max_n_bufs))


def extract_rows(
    states: Sequence[LoopState], task: SearchTask, max_n_bufs: int, bound_cache: BoundCache | None = None
) -> list[np.ndarray | None]:
    """The feature rows of each state, None for one that cannot be lowered or breaks the
    GPU limits (no FeatureCache): lower and summarise each state into one batch of tables,
    then compute every row of the batch at once. ``bound_cache``: the search's bound
    inference results, so a state it has bound is not inferred again."""
    dag = task.compute_dag
    hardware = task.hardware_params
    out: list[np.ndarray | None] = [None] * len(states)
    tables = SummaryTables()
    pending: list[int] = []
    for index, loop_state in enumerate(states):
        try:
            # the loop nests before index flattening, one index per buffer dimension
            body = lower(dag, loop_state, stop_after="schedule_ops", cache=bound_cache).body
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
    """(labels, task ids): per input, min cost of its task / its median cost (paper
    section 5.2: the training label), tasks told apart by (workload key, target)."""
    if len(inputs) != len(results):
        raise ValueError(f"{len(inputs)} measure inputs but {len(results)} results: they must pair up")
    task_ids: dict[tuple[str, str], int] = {}
    ids = np.array(
        [task_ids.setdefault(_task_key(inp.task), len(task_ids)) for inp in inputs], dtype=np.int64
    )
    costs = np.array([res.median_cost for res in results], dtype=np.float64)
    best = np.full(len(task_ids), np.inf)
    np.minimum.at(best, ids, costs)
    return best[ids] / costs, ids


# ------------------------------------------------------------------------------------------


def _state_key(state: LoopState) -> str:
    """The printed loop tree, plus what it does not show (storage_align, pragmas other
    than auto_unroll): equal keys mean equal programs."""
    extras = [
        (k, st.storage_align, st.pragmas)
        for k, st in enumerate(state.stages)
        if st.storage_align or st.pragmas
    ]
    return str(state) + (repr(extras) if extras else "")


def _task_key(task: Any) -> tuple[str, str]:
    return str(task.workload_key), str(task.target)


def check_max_n_bufs(max_n_bufs: int) -> None:
    """ValueError unless ``max_n_bufs`` (buffers with their own feature columns) is a positive int."""
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
