"""Faults a record log meets (issue 11, "Records and resume"): appends after a damaged last
line, lines that cannot be read, costs that are not seconds, a log path that cannot be
written, and the reader paths no other test pins (workload functions that reject their
arguments, comment lines).

Named ``test_record_log`` because ``tests/ir/test_records.py`` holds the module name
``test_records`` (the test directories are not packages)."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ansor_py.cost_model import RandomModel
from ansor_py.measure import (
    ERROR_COST,
    BuildResult,
    MeasureCallback,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ProgramMeasurer,
)
from ansor_py.records import (
    RecordToFile,
    RecordWarning,
    dump_record_to_string,
    load_best_record,
    load_best_records,
    load_records,
    save_records,
)
from ansor_py.search import PreloadMeasuredStates, SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.workload_registry import register_workload
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState
from ir.topi.workloads import gemm

E = MeasureErrorNo
SIZE = 16


@register_workload("test_faults_records_matmul")
def matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


@register_workload("test_faults_records_value_error")
def rejects_with_value_error(n: int) -> list:
    raise ValueError(f"size {n} must be even")


@register_workload("test_faults_records_type_error")
def rejects_with_type_error(n: int) -> list:
    raise TypeError(f"size {n!r} must be a tuple")


@register_workload("test_faults_records_runtime_error")
def fails_with_runtime_error(n: int) -> list:
    raise RuntimeError("the layout table is missing")


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func="test_faults_records_matmul", args=(SIZE, SIZE, SIZE), target="llvm")


def schedule(task: SearchTask, factor: int) -> LoopState:
    s = get_init_state(task.compute_dag)
    io, _ = s.split("C", "i", [factor])
    s.parallel("C", io)
    return s.loop_state


def ok(cost: float) -> MeasureResult:
    return MeasureResult((cost,), E.NO_ERROR, "", 0.1, 1_700_000_000.0)


def line_of(task: SearchTask, factor: int, cost: float) -> str:
    return dump_record_to_string(MeasureInput(task, schedule(task, factor)), ok(cost))


def with_costs(line: str, costs: list[float]) -> str:
    """``line`` with its costs replaced (NaN and inf written as Python's json writes them)."""
    record = json.loads(line)
    record["r"][0] = costs
    return json.dumps(record)


def with_key(line: str, key: list[Any]) -> str:
    record = json.loads(line)
    record["i"][0][0] = json.dumps(key)
    return json.dumps(record)


def read_quietly(log: Path, **kwargs: Any) -> list[tuple[MeasureInput, MeasureResult]]:
    """The records of ``log``, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return list(load_records(log, **kwargs))


def messages(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RecordWarning)]


# 1. every append starts on a fresh line ------------------------------------------------------


def test_append_after_a_last_line_without_newline_starts_a_new_line(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    log.write_text(line_of(task, 2, 3e-4) + "\n" + line_of(task, 4, 2e-4))  # no final newline
    save_records(log, [MeasureInput(task, schedule(task, 8))], [ok(1e-4)])
    RecordToFile(log).callback(None, [MeasureInput(task, schedule(task, 16))], [ok(5e-5)])
    read = read_quietly(log)
    assert [res.costs[0] for _, res in read] == [3e-4, 2e-4, 1e-4, 5e-5]


def test_append_after_a_truncated_line_keeps_the_new_record(tmp_path: Path, task: SearchTask) -> None:
    log = tmp_path / "log.json"
    log.write_text(line_of(task, 2, 3e-4) + "\n" + line_of(task, 4, 2e-4)[:-30])  # killed mid-line
    save_records(log, [MeasureInput(task, schedule(task, 8))], [ok(1e-4)])
    with pytest.warns(RecordWarning, match=r"log\.json:2: skipping a corrupt record line \(not JSON"):
        read = list(load_records(log))
    assert [res.costs[0] for _, res in read] == [3e-4, 1e-4]


# 2. one bad line costs that line, not the log ---------------------------------------------------


def test_unreadable_lines_are_skipped_with_their_line_number(tmp_path: Path, task: SearchTask) -> None:
    good = line_of(task, 2, 3e-4)
    lines = [
        good.encode(),
        b'{"i": [["\xff\xfe"]]}',  # not UTF-8
        b"[" * 100_000,  # nested too deep for the JSON parser
        with_key(good, ["test_faults_records_runtime_error", 4]).encode(),  # the function raises
        line_of(task, 4, 1e-4).encode(),
    ]
    log = tmp_path / "log.json"
    log.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.warns(RecordWarning) as caught:
        read = list(load_records(log))
    assert [res.costs[0] for _, res in read] == [3e-4, 1e-4]
    found = messages(caught)
    assert any("log.json:2: skipping a corrupt record line" in m and "utf-8" in m for m in found)
    assert any("log.json:3: skipping a corrupt record line (JSON nested too deep" in m for m in found)
    assert any(
        "log.json:4: skipping a record of workload" in m and "RuntimeError: the layout table is missing" in m
        for m in found
    )
    # the best-record readers skip the same lines
    with pytest.warns(RecordWarning):
        best, res = load_best_record(log, task.workload_key)
    assert best is not None and res is not None and res.costs == (1e-4,)


# 3. costs that are not seconds ------------------------------------------------------------------


@pytest.mark.parametrize("cost", [0.0, -1e-4, math.nan, math.inf])
def test_a_record_whose_cost_is_not_seconds_is_refused_on_write(
    tmp_path: Path, task: SearchTask, cost: float
) -> None:
    log = tmp_path / "log.json"
    inputs = [MeasureInput(task, schedule(task, f)) for f in (2, 4)]
    with pytest.raises(ValueError, match=rf"refusing to write a NO_ERROR record .* costs \[{cost}\]"):
        save_records(log, inputs, [ok(1e-4), ok(cost)])
    assert not log.exists()  # nothing of the batch is written
    with pytest.raises(ValueError, match=r"an error-free result has no cost"):
        save_records(log, inputs[:1], [MeasureResult((), E.NO_ERROR)])


def test_records_whose_cost_is_not_seconds_are_skipped_on_read(tmp_path: Path, task: SearchTask) -> None:
    good = line_of(task, 2, 3e-4)
    lines = [with_costs(line_of(task, f, 1e-4), [c]) for f, c in ((4, 0.0), (8, -1e-4), (16, math.nan))]
    log = tmp_path / "log.json"
    log.write_text("\n".join([*lines, good]) + "\n")
    with pytest.warns(RecordWarning) as caught:
        best, res = load_best_record(log, task.workload_key)
    assert best is not None and res is not None and res.costs == (3e-4,)  # not the negative one
    found = messages(caught)
    assert any("log.json:1:" in m and "costs [0.0]: cost 0.0 is not a finite number" in m for m in found)
    assert any("log.json:2:" in m and "cost -0.0001" in m for m in found)
    assert any("log.json:3:" in m and "cost nan" in m for m in found)
    # resuming from it: no ZeroDivisionError, only the good program is a seed
    with pytest.warns(RecordWarning):
        policy = SketchPolicy(
            task, RandomModel(seed=0), seed=0, verbose=0, init_search_callbacks=[PreloadMeasuredStates(log)]
        )
    assert policy.measured_states_throughputs == [pytest.approx(1 / 3e-4)]
    with pytest.warns(RecordWarning):
        assert len(load_best_records(log, 5)) == 1


class Recorded:
    """A builder and runner that return given results (a runner that lies about time)."""

    n_parallel = 1
    timeout = 10.0

    def __init__(self, results: list[MeasureResult]):
        self.results = list(results)

    def build(self, inputs: Sequence[MeasureInput], verbose: int = 1) -> list[BuildResult]:
        return [BuildResult("", E.NO_ERROR, "", 0.0) for _ in inputs]

    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: Any = None,
    ) -> list[MeasureResult]:
        """The next results; ``on_result`` is left uncalled (the measurer then records
        them when ``run`` returns)."""
        return [self.results.pop(0) for _ in inputs]


class Collect(MeasureCallback):
    def __init__(self) -> None:
        self.results: list[MeasureResult] = []

    def callback(self, policy: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        self.results.extend(results)


def test_measurer_turns_costs_that_are_not_seconds_into_errors(tmp_path: Path, task: SearchTask) -> None:
    costs = [0.0, -1e-4, math.nan, math.inf, 2e-4]
    fake = Recorded([ok(c) for c in costs])
    log = tmp_path / "log.json"
    collect = Collect()
    measurer = ProgramMeasurer(fake, fake, [RecordToFile(log), collect], verbose=0)
    inputs = [MeasureInput(task, schedule(task, f)) for f in (1, 2, 4, 8, 16)]
    results = measurer.measure(task, None, inputs)  # no ZeroDivisionError
    assert [r.error_no for r in results] == [E.RUNTIME_DEVICE] * 4 + [E.NO_ERROR]
    assert all(r.costs == (ERROR_COST,) for r in results[:4])
    assert "the runner reported costs [0.0]: cost 0.0 is not a finite number" in results[0].error_msg
    assert collect.results == results  # the callbacks see what the measurer recorded
    key = task.workload_key
    assert measurer.best_cost[key] == 2e-4 and measurer.best_ct[key] == 5
    # every measurement is in the log, the bad ones as errors
    read = read_quietly(log)
    assert [res.error_no for _, res in read] == [r.error_no for r in results]


# 4. a log path that cannot be written fails when the callback is made ---------------------------


def test_record_to_file_checks_its_path_when_made(tmp_path: Path) -> None:
    with pytest.raises(
        IsADirectoryError, match=rf"RecordToFile: the record log {re.escape(str(tmp_path))} is a dir"
    ):
        RecordToFile(tmp_path)
    plain = tmp_path / "plain.txt"
    plain.write_text("not a directory\n")
    with pytest.raises(
        NotADirectoryError, match=r"cannot create the record log .*plain\.txt/log\.json: .* is not"
    ):
        RecordToFile(plain / "log.json")
    RecordToFile(tmp_path / "new" / "dir" / "log.json")  # made later by the first write
    assert not (tmp_path / "new").exists()


# 5. reader paths no other test pins ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("test_faults_records_value_error", "ValueError: size 4 must be even"),
        ("test_faults_records_type_error", "TypeError: size 4 must be a tuple"),
    ],
)
def test_a_workload_rejecting_its_arguments_costs_one_record(
    tmp_path: Path, task: SearchTask, name: str, message: str
) -> None:
    good = line_of(task, 2, 3e-4)
    log = tmp_path / "log.json"
    log.write_text("\n".join([good, with_key(good, [name, 4]), good]) + "\n")
    with pytest.warns(RecordWarning) as caught:
        read = list(load_records(log))
    assert len(read) == 2 and all(inp.task.workload_key == task.workload_key for inp, _ in read)
    (found,) = messages(caught)
    assert found.startswith(f"{log}:2: skipping a record of workload")
    assert f"workload function {name!r} fails on the key's arguments [4]: {message}" in found


def test_comment_lines_are_skipped_even_when_they_would_parse(tmp_path: Path, task: SearchTask) -> None:
    """TVM's rule: a line starting with '#' or a space is a comment, silently skipped."""
    commented = line_of(task, 4, 1e-4)
    log = tmp_path / "log.json"
    log.write_text("\n".join(["# " + commented, " " + commented, line_of(task, 2, 3e-4), ""]) + "\n")
    read = read_quietly(log)
    assert [res.costs[0] for _, res in read] == [3e-4]
