"""Tuning records: the v0.6 line layout, round trips, damaged logs, best records, applying them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ansor_py.measure import (
    ERROR_COST,
    LocalBuilder,
    LocalRunner,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramMeasurer,
)
from ansor_py.records import (
    ApplyHistoryBest,
    IncompleteTask,
    RecordFormatError,
    RecordReader,
    RecordToFile,
    RecordWarning,
    distill_record_file,
    dump_record_to_string,
    is_complete,
    load_best_record,
    load_best_records,
    load_record_from_string,
    load_records,
    load_task_records,
    save_records,
)
from ansor_py.search_task import SearchTask
from ansor_py.tuning import apply_best, print_best
from ansor_py.workload_registry import WorkloadError, register_workload
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState, initial_state
from ir.reference import evaluate, random_inputs
from ir.topi.workloads import gemm

SIZE = 24


@register_workload("test_records_matmul")
def matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func="test_records_matmul", args=(SIZE, SIZE, SIZE), target="llvm")


def schedule(task: SearchTask, factor: int, vector: int = 8) -> LoopState:
    """Tiled, parallel, vectorized matmul: split i by ``factor`` and j by ``vector``."""
    s = get_init_state(task.compute_dag)
    io, ii = s.split("C", "i", [factor])
    jo, ji = s.split("C", "j", [vector])
    k = s["C"].iters[4]
    s.reorder("C", [io, jo, k, ii, ji])
    s.parallel("C", io)
    s.vectorize("C", ji)
    return s.loop_state


def result(cost: float, error_no: MeasureErrorNo = MeasureErrorNo.NO_ERROR) -> MeasureResult:
    costs = (cost, cost * 1.1) if error_no is MeasureErrorNo.NO_ERROR else (ERROR_COST,)
    return MeasureResult(costs, error_no, "", 0.25 + cost, 1_700_000_000.5)


def write_log(path: Path, task: SearchTask, entries: list[tuple[int, float, MeasureErrorNo]]) -> None:
    inputs = [MeasureInput(task, schedule(task, factor)) for factor, _, _ in entries]
    save_records(path, inputs, [result(cost, error) for _, cost, error in entries])


E = MeasureErrorNo

# the v0.6 layout -------------------------------------------------------------------------


def test_line_layout(task: SearchTask) -> None:
    inp = MeasureInput(task, schedule(task, 4))
    line = dump_record_to_string(inp, result(1e-4))
    record = json.loads(line)
    assert set(record) == {"i", "r", "v"} and record["v"] == "v0.6"
    task_part, state_part = record["i"]
    assert task_part[0] == '["test_records_matmul", 24, 24, 24]'
    assert task_part[1] == "llvm"
    assert task_part[2] == task.hardware_params.to_record() and len(task_part[2]) == 8
    assert task_part[3:] == ["", 0, []]
    assert state_part == [
        [],
        [
            ["SP", 2, 0, 24, [4], 1],
            ["SP", 2, 2, 24, [8], 1],
            ["RE", 2, [0, 2, 4, 1, 3]],
            ["AN", 2, 0, 3],
            ["AN", 2, 4, 2],
        ],
    ]
    assert record["r"] == [[1e-4, 1e-4 * 1.1], 0, 0.2501, 1_700_000_000.5]


def test_round_trip_through_a_file(tmp_path: Path, task: SearchTask) -> None:
    inputs = [MeasureInput(task, schedule(task, f)) for f in (2, 3, 4)]
    results = [result(3e-4), result(0.0, E.WRONG_ANSWER), result(1e-4)]
    log = tmp_path / "sub" / "log.json"
    save_records(log, inputs, results)
    read = list(load_records(log))
    assert len(read) == 3
    for (inp, res), original, expected in zip(read, inputs, results, strict=True):
        assert inp.task.workload_key == task.workload_key
        assert str(inp.task.target) == "llvm"
        assert inp.task.hardware_params == task.hardware_params
        assert is_complete(inp)
        assert inp.state.transform_steps == original.state.transform_steps
        assert str(inp.state) == str(original.state)
        assert (res.costs, res.error_no, res.all_cost, res.timestamp) == (
            expected.costs,
            expected.error_no,
            expected.all_cost,
            expected.timestamp,
        )
    # one task object (and one DAG) for all records of a workload
    assert read[0][0].task is read[1][0].task is read[2][0].task
    # given tasks are reused
    inp, _ = next(iter(RecordReader(log, tasks=[task])))
    assert inp.task is task
    # string form too
    line = dump_record_to_string(inputs[0], results[0])
    inp, res = load_record_from_string(line)
    assert dump_record_to_string(inp, res) == line


def test_reader_read_lines(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    write_log(log, task, [(f, f * 1e-4, E.NO_ERROR) for f in (1, 2, 3, 4, 6)])
    inputs, results = RecordReader(log).read_lines(max_lines=2, skip_lines=1)
    assert [r.costs[0] for r in results] == pytest.approx([2e-4, 3e-4])
    assert len(inputs) == 2
    with pytest.raises(FileNotFoundError, match=r"record file .*missing.json does not exist"):
        RecordReader(tmp_path / "missing.json")


# damaged and foreign logs ---------------------------------------------------------------


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    write_log(log, task, [(2, 3e-4, E.NO_ERROR), (4, 1e-4, E.NO_ERROR), (6, 2e-4, E.NO_ERROR)])
    text = log.read_text()
    log.write_text(text[: len(text) - 40])  # a run killed while writing its last line
    with pytest.warns(RecordWarning, match=r"log\.json:3: skipping a corrupt record line \(not JSON"):
        read = list(load_records(log))
    assert [res.costs[0] for _, res in read] == [3e-4, 1e-4]


def test_corrupt_lines_and_comments(tmp_path: Path, task: SearchTask) -> None:
    good = dump_record_to_string(MeasureInput(task, schedule(task, 2)), result(1e-4))
    bad_step = good.replace('["RE", 2, [0, 2, 4, 1, 3]]', '["XX", 2]')
    bad_error = good.replace("], 0, 0.2501", "], 42, 0.2501")
    log = tmp_path / "log.json"
    lines = ["# a comment", " an indented comment", good, "", "{not json", bad_step, bad_error, good]
    log.write_text("\n".join(lines) + "\n")
    with pytest.warns(RecordWarning) as caught:
        read = list(load_records(log))
    assert len(read) == 2
    messages = [str(w.message) for w in caught]
    assert any("log.json:5:" in m for m in messages)
    assert any("log.json:6:" in m and "unknown step tag 'XX'" in m for m in messages)
    assert any("log.json:7:" in m and "42 is not a valid MeasureErrorNo" in m for m in messages)
    with pytest.raises(RecordFormatError, match=r"not JSON"):
        load_record_from_string("{")


def test_tvm_style_lines(tmp_path: Path, task: SearchTask) -> None:
    """Lines as TVM writes them: target strings with options this project ignores, the
    older short task forms, integer timestamps."""
    key = json.dumps(["test_records_matmul", SIZE, SIZE, SIZE])
    steps = [["SP", 2, 0, SIZE, [6], 1], ["AN", 2, 0, 3]]
    lines = [
        {
            "i": [
                [key, "llvm -keys=cpu -link-params=0 -mcpu=core-avx2", [2, 32, 64, 0, 0, 0, 0, 0], "", 2, []],
                [[], steps],
            ],
            "r": [[0.000123], 0, 0.51, 1607539393],
            "v": "v0.6",
        },
        {"i": [[key, "llvm"], [[], steps[:1]]], "r": [[0.0002, 0.0003], 0, 0.4, 1600000000], "v": "v0.2"},
        {"i": [[key, "llvm", [2, 32, 64, 0, 0]], [[], []]], "r": [[1e10], 2, 0.1, 1600000001], "v": "v0.3"},
    ]
    log = tmp_path / "tvm.json"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = list(load_records(log))
    assert len(read) == 3
    (inp0, res0), (inp1, res1), (inp2, res2) = read
    assert inp0.task.target.mcpu == "core-avx2" and inp0.task.hardware_params.num_cores == 2
    assert res0.costs == (0.000123,) and res0.timestamp == 1607539393.0
    assert [s.name for s in inp0.state.stages] == ["A", "B", "C"]
    assert [it.name for it in inp0.state.stages[2].iters] == ["i.0", "i.1", "j", "k"]
    assert inp1.task.hardware_params == inp1.task.target.hardware_params  # defaults filled in
    assert res1.median_cost == pytest.approx(0.00025)
    assert res2.error_no is E.COMPILE_HOST and inp2.state.transform_steps == ()
    best, best_res = load_best_record(log, key, "llvm")
    assert best is not None and best_res is not None and best_res.costs == (0.000123,)


def test_unregistered_workload_gives_an_incomplete_task(tmp_path: Path) -> None:
    key = json.dumps(["no_such_workload_anywhere", 3])
    line = json.dumps(
        {
            "i": [[key, "llvm", [2, 32, 64, 0, 0, 0, 0, 0], "", 0, []], [[], [["SP", 2, 0, 8, [2], 1]]]],
            "r": [[1e-3], 0, 0.2, 1700000000],
            "v": "v0.6",
        }
    )
    inp, res = load_record_from_string(line)
    assert isinstance(inp.task, IncompleteTask) and not is_complete(inp)
    assert inp.task.workload_key == key and str(inp.task.target) == "llvm"
    assert inp.state.stages == () and len(inp.state.transform_steps) == 1
    with pytest.raises(WorkloadError, match=r"no_such_workload_anywhere.*is not registered in this process"):
        _ = inp.task.compute_dag
    # it still writes back the same line
    assert json.loads(dump_record_to_string(inp, res)) == json.loads(line)


def test_dag_keyed_task_is_bound_when_given(tmp_path: Path) -> None:
    dag = ComputeDAG(gemm(8, 8, 8))
    own = SearchTask(compute_dag=dag, target="llvm")
    s = get_init_state(dag)
    s.split("C", "j", [4])
    log = tmp_path / "log.json"
    save_records(log, [MeasureInput(own, s.loop_state)], [result(1e-5)])
    ((inp, _),) = load_records(log)
    assert isinstance(inp.task, IncompleteTask)  # an md5 key names no registered function
    ((inp, _),) = load_records(log, tasks=[own])
    assert inp.task is own and str(inp.state) == str(s)


# best records ----------------------------------------------------------------------------


def test_load_best_record(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    other = SearchTask(func="test_records_matmul", args=(16, 16, 16), target="llvm")
    save_records(log, [MeasureInput(other, initial_state(other.compute_dag))], [result(1e-9)])
    write_log(
        log,
        task,
        [(2, 3e-4, E.NO_ERROR), (3, 1e-6, E.WRONG_ANSWER), (4, 1e-4, E.NO_ERROR), (6, 2e-4, E.NO_ERROR)],
    )
    inp, res = load_best_record(log, task.workload_key)
    assert inp is not None and res is not None
    assert res.costs == pytest.approx((1e-4, 1.1e-4))
    assert inp.state.transform_steps == schedule(task, 4).transform_steps
    inp, res = load_best_record(log)  # any workload: the smaller matmul's 1e-9
    assert inp is not None and inp.task.workload_key == other.workload_key
    assert load_best_record(log, task.workload_key, "cuda") == (None, None)
    assert load_best_record(log, json.dumps(["test_records_matmul", 1, 1, 1])) == (None, None)


def test_one_descheduled_repeat_does_not_cost_a_program_its_rank(tmp_path: Path, task: SearchTask) -> None:
    """Ranked by the median of its repeats, a program with one 4 ms repeat in ten (a
    scheduler tick) still beats a steadily slower one, whose mean is the smaller."""
    log = tmp_path / "log.json"
    spiked = (0.5e-3,) * 9 + (4.5e-3,)
    steady = (0.6e-3,) * 10
    inputs = [MeasureInput(task, schedule(task, 2)), MeasureInput(task, schedule(task, 4))]
    results = [
        MeasureResult(costs, MeasureErrorNo.NO_ERROR, "", 1.0, 1_700_000_000.0) for costs in (spiked, steady)
    ]
    save_records(log, inputs, results)
    assert results[0].median_cost == pytest.approx(0.5e-3) and sum(spiked) / 10 > sum(steady) / 10
    inp, res = load_best_record(log, task.workload_key)
    assert inp is not None and res is not None and res.costs == spiked
    assert inp.state.transform_steps == schedule(task, 2).transform_steps


def test_load_best_records_ranks_distinct_programs(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    write_log(
        log,
        task,
        [
            (2, 3e-4, E.NO_ERROR),
            (3, 1e-6, E.WRONG_ANSWER),
            (4, 1e-4, E.NO_ERROR),
            (4, 1.5e-4, E.NO_ERROR),  # the same program re-measured, slower: its latest record counts
            (6, 2e-4, E.NO_ERROR),
        ],
    )
    top = load_best_records(log, 3, task.workload_key, "llvm", tasks=[task])
    assert [res.costs[0] for _, res in top] == pytest.approx([1.5e-4, 2e-4, 3e-4])
    assert [inp.state.transform_steps for inp, _ in top] == [
        schedule(task, factor).transform_steps for factor in (4, 6, 2)
    ]
    assert all(inp.task is task for inp, _ in top)
    assert len(load_best_records(log, 10, task.workload_key)) == 3  # fewer programs than k
    assert load_best_records(log, 1, task.workload_key)[0][1] == load_best_record(log, task.workload_key)[1]
    assert load_best_records(log, 2, task.workload_key, "cuda") == []
    with pytest.raises(ValueError, match="load_best_records: k 0 must be >= 1"):
        load_best_records(log, 0)


def test_apply_best_gives_a_kernel_matching_numpy(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    write_log(log, task, [(2, 3e-4, E.NO_ERROR), (4, 1e-4, E.NO_ERROR), (3, 1e-5, E.RUNTIME_DEVICE)])
    kernel = apply_best(task, log)
    a, b = random_inputs(task.compute_dag, seed=7)
    c = np.full((SIZE, SIZE), np.nan, np.float32)
    kernel(a, b, c)
    (expected,) = evaluate(task.compute_dag, [a, b])
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    empty = tmp_path / "empty.json"
    write_log(empty, task, [(2, 1e-4, E.COMPILE_HOST)])
    with pytest.raises(
        ValueError, match=r"no valid record of workload .*test_records_matmul.* for target 'llvm'"
    ):
        apply_best(task, empty)


def test_print_best_executes_to_the_same_state(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    write_log(log, task, [(2, 3e-4, E.NO_ERROR), (4, 1e-4, E.NO_ERROR)])
    script = print_best(task, log)
    assert script.startswith("from ir.loop_state.api import get_init_state\ns = get_init_state(dag)\n")
    assert 's.parallel("C", C_i_0)' in script and 's.vectorize("C", C_j_1)' in script
    scope: dict = {"dag": task.compute_dag}
    exec(script, scope)
    best = schedule(task, 4)
    assert scope["s"].loop_state.transform_steps == best.transform_steps
    assert str(scope["s"]) == str(best)


def test_distill_keeps_the_best_per_workload(tmp_path: Path, task: SearchTask) -> None:
    other = SearchTask(func="test_records_matmul", args=(16, 16, 16), target="llvm")
    log = tmp_path / "log.json"
    write_log(log, task, [(2, 3e-4, E.NO_ERROR), (4, 1e-4, E.NO_ERROR), (3, 1e-6, E.WRONG_ANSWER)])
    save_records(
        log,
        [MeasureInput(other, initial_state(other.compute_dag))] * 2,
        [result(5e-5), result(2e-5)],
    )
    out = tmp_path / "best.json"
    distill_record_file(log, out)
    read = list(load_records(out))
    assert [(inp.task.workload_key, res.costs[0]) for inp, res in read] == [
        (task.workload_key, 1e-4),
        (other.workload_key, 2e-5),
    ]
    # distilling again, with a better record added, replaces only that workload's line
    write_log(log, task, [(6, 5e-5, E.NO_ERROR)])
    distill_record_file(log, out)
    assert [res.costs[0] for _, res in load_records(out)] == [5e-5, 2e-5]


def test_load_task_records_keeps_one_tasks_records_in_order(tmp_path: Path, task: SearchTask) -> None:
    other = SearchTask(func="test_records_matmul", args=(16, 16, 16), target="llvm")
    log = tmp_path / "log.json"
    assert load_task_records(log, task) == ([], [])  # no file yet: nothing measured
    write_log(log, task, [(2, 3e-4, E.NO_ERROR)])
    save_records(log, [MeasureInput(other, initial_state(other.compute_dag))], [result(5e-5)])
    write_log(log, task, [(4, 1e-4, E.NO_ERROR), (3, 1e-6, E.WRONG_ANSWER)])
    inputs, results = load_task_records(log, task)
    assert all(inp.task is task for inp in inputs)
    assert [r.error_no for r in results] == [E.NO_ERROR, E.NO_ERROR, E.WRONG_ANSWER]
    assert [r.costs[0] for r in results[:2]] == [3e-4, 1e-4]
    assert [r.costs[0] for r in load_task_records(log, other)[1]] == [5e-5]


def test_apply_history_best(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    write_log(log, task, [(2, 3e-4, E.NO_ERROR), (4, 1e-4, E.NO_ERROR), (3, 1e-6, E.RUN_TIMEOUT)])
    history = ApplyHistoryBest(log)
    assert len(history) == 1
    state = history.query("llvm", task.workload_key)
    assert state is not None and state.transform_steps == schedule(task, 4).transform_steps
    replayed = history.query("llvm -num-cores=2", task.workload_key, dag=task.compute_dag)
    assert replayed is not None and str(replayed) == str(schedule(task, 4))
    assert history.query("cuda", task.workload_key) is None
    assert history.query("llvm", json.dumps(["test_records_matmul", 1, 2, 3])) is None
    # only the first record: factor 2
    first = ApplyHistoryBest([log], n_lines=1).query("llvm", task.workload_key)
    assert first is not None and first.transform_steps == schedule(task, 2).transform_steps
    # pairs, update, and the context stack
    pairs = ApplyHistoryBest(list(load_records(log)))
    own = schedule(task, 8)
    pairs.update("llvm", task.workload_key, own)
    assert pairs.query("llvm", task.workload_key) is own
    assert ApplyHistoryBest.current() is None
    with history:
        with pairs:
            assert ApplyHistoryBest.current() is pairs
        assert ApplyHistoryBest.current() is history
    assert ApplyHistoryBest.current() is None


# records written while measuring --------------------------------------------------------------


def test_record_to_file_during_measurement(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "tune" / "log.json"
    inputs = [MeasureInput(task, schedule(task, f)) for f in (2, 4, 6)]
    with LocalRunner(number=1, min_repeat_ms=1) as runner:
        measurer = ProgramMeasurer(LocalBuilder(n_parallel=1), runner, [RecordToFile(log)], verbose=0)
        start = time.time()
        results = measurer.measure(task, None, inputs[:2])
        assert len(log.read_text().splitlines()) == 2  # written by the first batch already
        results += measurer.measure(task, None, inputs[2:])
    read = list(load_records(log))
    assert len(read) == 3
    for (inp, res), original, measured in zip(read, inputs, results, strict=True):
        assert res.ok and res.costs == measured.costs and res.timestamp >= start - 1
        assert inp.state.transform_steps == original.state.transform_steps
    kernel = apply_best(task, log)
    a, b = random_inputs(task.compute_dag, seed=3)
    c = np.zeros((SIZE, SIZE), np.float32)
    kernel(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4 * np.abs(a @ b).max())
