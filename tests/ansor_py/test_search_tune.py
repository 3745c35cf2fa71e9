"""End to end: ``auto_schedule`` with SketchPolicy and XGBModel on a small matmul finds a
correct schedule faster than the naive one and logs every measurement."""

from __future__ import annotations

import pytest
import search_workloads as W
from search_workloads import check_program

from ansor_py.cost_model import XGBModel
from ansor_py.measure.local import LocalBuilder, LocalRunner
from ansor_py.measure.measurer import ProgramMeasurer
from ansor_py.records import RecordToFile, load_best_record, load_records
from ansor_py.search import EmptyPolicy, SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule


@pytest.mark.slow
def test_tune_small_matmul(tmp_path):
    log = tmp_path / "matmul.json"
    task = SearchTask(func=W.search_test_matmul, args=(64, 64, 64), target="llvm")
    options = TuningOptions(
        num_measure_trials=16, num_measures_per_round=8, verbose=0, measure_callbacks=[RecordToFile(log)]
    )
    # the default population (2048) works too; a smaller one keeps the test quick
    policy = SketchPolicy(task, XGBModel(seed=0), params={"evolutionary_search_population": 256}, verbose=0)
    best = auto_schedule(task, options, policy)
    assert best is not None and best.transform_steps
    check_program(task, best)

    records = list(load_records(log))
    searched = [inp.state.transform_steps for inp, _ in records[:16]]
    assert len(set(searched)) == 16  # 16 distinct programs, then re-measurements of the best
    assert {inp.state.transform_steps for inp, _ in records[16:]} <= set(searched)
    assert sum(res.ok for _, res in records[:16]) >= 8
    best_input, best_result = load_best_record(log, task.workload_key)
    assert best_input.state.transform_steps == best.transform_steps

    runner = LocalRunner(number=3, min_repeat_ms=20)
    measurer = ProgramMeasurer(LocalBuilder(), runner, verbose=0)
    try:
        EmptyPolicy(task, verbose=0).search(2, measurer=measurer)
    finally:
        runner.close()
    naive_cost = measurer.best_cost[task.workload_key]
    assert best_result.median_cost < naive_cost, (best_result.median_cost, naive_cost)


def test_default_policy_uses_xgboost():
    task = SearchTask(func=W.search_test_matmul, args=(64, 64, 64), target="llvm")
    policy = SketchPolicy(task, verbose=0)
    assert isinstance(policy.program_cost_model, XGBModel)
    assert policy.params.evolutionary_search_population == 2048
    assert SketchPolicy.DEFAULT_PARAMS["eps_greedy"] == 0.05
