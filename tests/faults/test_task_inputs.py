"""Indirect indexing (``B[i, j] = A[Idx[i], j]``) can be tuned (issue 11): index tensors
get in-range random values by default, ``SearchTask(task_inputs=...)`` replaces them with
the user's arrays (TVM's ``task_inputs``), and every measured candidate, every runner's
check and ``apply_best`` use those arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ansor_py.measure.local import ENTRY_NAME, LocalBuilder, LocalRunner
from ansor_py.measure.types import MeasureErrorNo, MeasureInput
from ansor_py.records import RecordToFile, load_records
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask, TaskInputError
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule
from ansor_py.workload_registry import register_workload
from codegen.llvm import build as llvm_build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState
from ir.lower.lower import lower
from ir.reference import evaluate, index_ranges, random_inputs

ROWS, COLS, N = 32, 16, 24

#: outcomes of a correct program too (a loaded machine): anything else is a failure
ACCEPTED = (MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUN_TIMEOUT, MeasureErrorNo.BUILD_TIMEOUT)


@register_workload
def faults_gather_rows(rows: int, cols: int, n: int) -> list[te.Tensor]:
    """``B[i, j] = A[Idx[i], j]``: a row gather through an int32 index tensor."""
    A = te.placeholder((rows, cols), name="A")
    Idx = te.placeholder((n,), dtype="int32", name="Idx")
    B = te.compute((n, cols), lambda i, j: A[Idx[i], j], name="B")
    return [A, Idx, B]


def gather_task(task_inputs: dict[str, np.ndarray] | None = None) -> SearchTask:
    return SearchTask(func=faults_gather_rows, args=(ROWS, COLS, N), target="llvm", task_inputs=task_inputs)


def test_index_tensors_get_random_values_inside_the_dimension_they_index() -> None:
    A = te.placeholder((40, 4), name="A")
    D = te.placeholder((6,), name="D")
    Idx = te.placeholder((50,), dtype="int32", name="Idx")
    Jdx = te.placeholder((50,), dtype="int16", name="Jdx")
    Kdx = te.placeholder((50,), dtype="int32", name="Kdx")
    Other = te.placeholder((50,), dtype="int32", name="Other")
    B = te.compute(
        (50,),
        lambda i: (
            A[Idx[i], 1]
            + D[Idx[i]]
            + A[te.cast("int32", Jdx[i]) - 2, 0] * te.cast("float32", Other[i])
            + D[Kdx[i] + 1]
            + A[Kdx[i], 2]
        ),
        name="B",
    )
    dag = ComputeDAG([A, D, Idx, Jdx, Kdx, Other, B])
    # Idx indexes A's rows (40) and D (6): the tightest range wins; Jdx - 2 must lie in
    # [0, 40); Kdx + 1 in [0, 6) and Kdx in [0, 40)
    assert index_ranges(dag) == {"Idx": (0, 6), "Jdx": (2, 42), "Kdx": (0, 5)}
    arrays = dict(zip((t.name for t in dag.placeholders), random_inputs(dag, seed=3), strict=True))
    assert arrays["Idx"].min() >= 0 and arrays["Idx"].max() < 6 and arrays["Idx"].dtype == np.int32
    assert arrays["Jdx"].min() >= 2 and arrays["Jdx"].max() < 42 and len(np.unique(arrays["Jdx"])) > 10
    assert arrays["Kdx"].min() >= 0 and arrays["Kdx"].max() < 5
    assert arrays["Other"].min() < 0  # a plain integer input keeps the signed range
    evaluate(dag, list(arrays.values()))  # every read inside its tensor: no error


def test_task_inputs_are_checked_against_the_placeholders() -> None:
    with pytest.raises(TaskInputError, match=r"task input 'Index' names no placeholder .* \['A', 'Idx'\]"):
        gather_task({"Index": np.zeros(N, np.int32)})
    with pytest.raises(
        TaskInputError, match=r"task input 'Idx' has shape \[23\], but placeholder 'Idx' has shape \[24\]"
    ):
        gather_task({"Idx": np.zeros(N - 1, np.int32)})
    with pytest.raises(
        TaskInputError, match=r"task input 'Idx' has dtype int64, but placeholder 'Idx' has dtype int32"
    ):
        gather_task({"Idx": np.zeros(N, np.int64)})
    with pytest.raises(TaskInputError, match=r"task input 'Idx' must be a numpy array, got list"):
        gather_task({"Idx": [0] * N})  # type: ignore[dict-item]


def test_reference_uses_task_inputs_and_copies_them() -> None:
    idx = np.arange(N, dtype=np.int32)[::-1] % ROWS
    task = gather_task({"Idx": idx})
    idx[:] = 0  # the task holds its own copy
    (a, got_idx), (b,) = task.reference()
    np.testing.assert_array_equal(got_idx, np.arange(N, dtype=np.int32)[::-1] % ROWS)
    np.testing.assert_array_equal(b, a[got_idx])
    plain = gather_task()
    assert plain.reference_key == plain.workload_key
    assert task.reference_key.startswith(task.workload_key) and task.reference_key != plain.reference_key
    assert gather_task({"Idx": got_idx.copy()}).reference_key == task.reference_key


def last_row_build(task: SearchTask, state: LoopState, output_path: str) -> None:
    """Builds ``B[i, j] = A[ROWS - 1, j]``, ignoring Idx: right only for inputs whose
    indices all are ROWS - 1."""
    A = te.placeholder((ROWS, COLS), name="A")
    Idx = te.placeholder((N,), dtype="int32", name="Idx")
    B = te.compute((N, COLS), lambda i, j: A[ROWS - 1, j] + te.cast("float32", Idx[i] * 0), name="B")
    dag = ComputeDAG([A, Idx, B])
    llvm_build(lower(dag, None, name=ENTRY_NAME), task.target).export_library(output_path)


def test_one_runner_checks_each_task_against_its_own_inputs() -> None:
    """Two tasks of one workload with different index arrays: the runner must run the
    second on its own inputs, not reuse the first task's reference (it did when it cached
    references by workload key: the kernel below, right for the second task's indices,
    was then checked on the first task's and recorded WRONG_ANSWER)."""
    first = gather_task({"Idx": np.zeros(N, np.int32)})
    second = gather_task({"Idx": np.full(N, ROWS - 1, np.int32)})
    runner = LocalRunner()
    try:
        for task, build_func in ((first, None), (second, last_row_build)):
            inputs = [MeasureInput(task, get_init_state(task.compute_dag).loop_state)]
            builds = LocalBuilder(build_func=build_func).build(inputs, verbose=0)
            (result,) = runner.run(inputs, builds, verbose=0)
            assert result.error_no is MeasureErrorNo.NO_ERROR, result.error_msg
    finally:
        runner.close()


@pytest.mark.slow
@pytest.mark.parametrize("given", [False, True], ids=["random_indices", "task_inputs"])
def test_tune_a_gather_and_apply_its_best_record(tmp_path: Path, given: bool) -> None:
    rng = np.random.default_rng(5)
    task_inputs = {"Idx": rng.permutation(ROWS)[:N].astype(np.int32)} if given else None
    task = gather_task(task_inputs)
    log = tmp_path / "gather.json"
    options = TuningOptions(
        num_measure_trials=6,
        num_measures_per_round=3,
        verbose=0,
        measure_callbacks=[RecordToFile(log)],
        remeasure_top_k=0,
    )
    policy = SketchPolicy(task, params={"evolutionary_search_population": 64}, verbose=0)
    best = auto_schedule(task, options, policy)
    assert best is not None
    records = list(load_records(log, tasks=[task]))
    assert records  # a gather has few distinct programs
    # every program measured ran correctly; a time-out on this loaded machine says nothing
    errors = [res.error_msg for _, res in records if res.error_no not in ACCEPTED]
    assert not errors, errors
    assert any(res.error_no is MeasureErrorNo.NO_ERROR for _, res in records)
    # the log holds no arrays: the task given to the reader brings its task_inputs back
    assert all(inp.task is task for inp, _ in records)
    kernel = apply_best(task, log)
    (a, idx), (expected,) = task.reference()
    if given:
        np.testing.assert_array_equal(idx, task_inputs["Idx"])  # type: ignore[index]
    b = np.full((N, COLS), np.nan, np.float32)
    kernel(a, idx, b)
    np.testing.assert_array_equal(b, expected)
    np.testing.assert_array_equal(b, a[idx])
