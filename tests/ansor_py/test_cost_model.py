"""The cost models (ansor_py.cost_model): RandomModel, XGBModel's warm-up, pack-sum loss,
labels, training on real measurements, save/load and training from a tuning log.

The ranking test measures real kernels: a small matmul under ~100 different schedules
(tilings, loop orders, vectorize, unroll), each checked against numpy and timed here,
then asks whether XGBModel trained on some of them orders the others better than chance.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import xgboost as xgb

from ansor_py.cost_model import RandomModel, XGBModel
from ansor_py.cost_model.feature_extraction import (
    get_per_store_features_from_file,
    get_per_store_features_from_measure_pairs,
    read_measure_pairs,
)
from ansor_py.cost_model.features import normalized_throughputs
from ansor_py.cost_model.xgb_model import pack_sum_rmse, pack_sum_square_error
from ansor_py.measure.types import ERROR_COST, MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.records import save_records
from ansor_py.search_task import SearchTask
from ansor_py.timing import median_seconds
from ansor_py.workload_registry import register_workload
from codegen.build import build
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.topi.workloads import gemm

SIZE = 128
N_TRAIN = 60
N_HELD_OUT = 40


@register_workload
def cost_model_test_matmul(n: int) -> list:
    return gemm(n, n, n)


def random_schedule(dag: ComputeDAG, rng: random.Random) -> State:
    """A matmul schedule: naive (1 in 10), else C's three loops split with random inner
    lengths, in the blocked order or a random one, the innermost loop maybe vectorized
    and the one above it maybe unrolled (when at most 16 long)."""
    s = get_init_state(dag)
    if rng.random() < 0.1:
        return s
    i, j, k = s["C"].iters
    io, ii = s.split("C", i, [rng.choice([1, 2, 4, 8, 16])])
    jo, ji = s.split("C", j, [rng.choice([1, 4, 8, 16, 32, 64])])
    ko, ki = s.split("C", k, [rng.choice([1, 2, 4, 8, 16])])
    order = [io, jo, ko, ii, ki, ji]
    if rng.random() < 0.5:
        rng.shuffle(order)
    s.reorder("C", order)
    if rng.random() < 0.7 and order[-1].name in (ji.name, ii.name):
        s.vectorize("C", order[-1])
    if rng.random() < 0.4:
        s.unroll("C", order[-2], max_unroll=16)  # longer unrolled loops compile slowly
    return s


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func=cost_model_test_matmul, args=(SIZE,), target="llvm")


@pytest.fixture(scope="module")
def measured(task: SearchTask) -> tuple[list[MeasureInput], list[MeasureResult]]:
    """~100 schedules, each built, checked against numpy and timed (median of 7 repeats of
    at least 10 ms: the labels must hold on a noisy shared machine)."""
    dag = task.compute_dag
    data = np.random.default_rng(1)
    a = data.standard_normal((SIZE, SIZE)).astype(np.float32)
    b = data.standard_normal((SIZE, SIZE)).astype(np.float32)
    expected = a @ b
    rng = random.Random(7)
    inputs, results = [], []
    for _ in range(N_TRAIN + N_HELD_OUT):
        s = random_schedule(dag, rng)
        kernel = build(dag, s, "llvm")
        c = np.full((SIZE, SIZE), np.nan, dtype=np.float32)
        kernel(a, b, c)
        np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
        cost = median_seconds(lambda k=kernel, c=c: k(a, b, c), number=1, repeat=7, min_repeat_ms=10)
        inputs.append(MeasureInput(task, s.loop_state))
        results.append(MeasureResult((cost,), MeasureErrorNo.NO_ERROR))
    return inputs, results


def pairwise_accuracy(scores: np.ndarray, costs: np.ndarray) -> float:
    """Fraction of pairs whose predicted order (higher score) matches the measured one
    (lower cost)."""
    pairs = list(itertools.combinations(range(len(costs)), 2))
    return float(np.mean([(scores[x] > scores[y]) == (costs[x] < costs[y]) for x, y in pairs]))


def error_result() -> MeasureResult:
    return MeasureResult((ERROR_COST,), MeasureErrorNo.COMPILE_HOST, "failed")


# ------------------------------------------------------------------------------------------
# RandomModel


def test_random_model_scores_uniformly_and_reproducibly(task: SearchTask) -> None:
    states = [get_init_state(task.compute_dag)] * 50
    first = RandomModel(seed=3).predict(task, states)
    assert first.shape == (50,)
    assert np.all((first >= 0) & (first < 1)) and first.std() > 0.1
    np.testing.assert_array_equal(first, RandomModel(seed=3).predict(task, states))
    model = RandomModel(seed=3)
    model.update([], [])
    assert not np.array_equal(model.predict(task, states), model.predict(task, states))
    with pytest.raises(ValueError, match="1 measure inputs but 0 results"):
        model.update([MeasureInput(task, states[0].loop_state)], [])


# ------------------------------------------------------------------------------------------
# XGBModel without training data


def test_xgb_model_predicts_randomly_during_warm_up_and_minus_inf_for_invalid(task: SearchTask) -> None:
    dag = task.compute_dag
    sketch = get_init_state(dag)
    sketch.split("C", sketch["C"].iters[0], [None])
    states = [get_init_state(dag)] * 20 + [sketch]
    model = XGBModel(seed=5, num_warmup_sample=100, verbose_eval=0)
    scores = model.predict(task, states)
    assert np.all((scores[:20] >= 0) & (scores[:20] < 1)) and scores[:20].std() > 0.1
    assert scores[20] == -np.inf
    np.testing.assert_array_equal(scores, XGBModel(seed=5, verbose_eval=0).predict(task, states))


def test_xgb_model_refuses_bad_arguments(task: SearchTask, tmp_path) -> None:
    with pytest.raises(ValueError, match="nthread 0 must be >= 1"):
        XGBModel(nthread=0)
    with pytest.raises(ValueError, match="verbose_eval -1 must be >= 0"):
        XGBModel(verbose_eval=-1)
    model = XGBModel(verbose_eval=0)
    with pytest.raises(ValueError, match="has not been trained yet"):
        model.save(str(tmp_path / "m.json"))
    with pytest.raises(FileNotFoundError, match="no model file"):
        model.load(str(tmp_path / "missing.json"))
    state = get_init_state(task.compute_dag).loop_state
    with pytest.raises(ValueError, match="2 inputs but 1 results"):
        model.update([MeasureInput(task, state)] * 2, [error_result()])


# ------------------------------------------------------------------------------------------
# labels and loss


def test_labels_are_throughput_normalized_per_task(task: SearchTask) -> None:
    other = SearchTask(func=cost_model_test_matmul, args=(8,), target="llvm")
    state = get_init_state(task.compute_dag).loop_state
    small = get_init_state(other.compute_dag).loop_state
    inputs = [MeasureInput(task, state)] * 3 + [MeasureInput(other, small)] * 2
    results = [MeasureResult((c,), MeasureErrorNo.NO_ERROR) for c in (2.0, 1.0, 4.0, 0.5, 0.25)]
    results[2] = error_result()
    labels, ids = normalized_throughputs(inputs, results)
    np.testing.assert_allclose(labels, [0.5, 1.0, 1.0 / ERROR_COST, 0.5, 1.0])
    assert list(ids) == [0, 0, 0, 1, 1]


def test_features_of_a_log_are_those_of_its_measure_pairs(task: SearchTask, tmp_path) -> None:
    rng = random.Random(3)
    inputs = [MeasureInput(task, random_schedule(task.compute_dag, rng).loop_state) for _ in range(5)]
    results = [MeasureResult((1e-3 * (i + 1),), MeasureErrorNo.NO_ERROR) for i in range(5)]
    log = tmp_path / "tuning.json"
    save_records(log, inputs, results)
    features, labels, ids = get_per_store_features_from_file(str(log), max_lines=3)
    expected, want_labels, want_ids = get_per_store_features_from_measure_pairs(inputs[:3], results[:3])
    assert len(features) == 3 and all(rows.shape[1] == 164 for rows in features)
    for rows, want in zip(features, expected, strict=True):
        np.testing.assert_array_equal(rows, want)
    np.testing.assert_allclose(labels, want_labels)
    np.testing.assert_array_equal(ids, want_ids)
    read, _ = read_measure_pairs(str(log))
    assert [inp.state.transform_steps for inp in read] == [inp.state.transform_steps for inp in inputs]
    assert read_measure_pairs(str(log), 0) == ([], [])
    with pytest.raises(ValueError, match="max_lines -1 must be >= 0"):
        read_measure_pairs(str(log), -1)


def test_pack_sum_objective_is_the_gradient_of_the_weighted_loss() -> None:
    rng = np.random.default_rng(0)
    pack_ids = np.array([0, 0, 0, 1, 2, 2])
    y = np.array([0.3, 1.0, 0.6])[pack_ids]
    dtrain = xgb.DMatrix(rng.standard_normal((6, 4)), label=y, weight=y)
    preds = rng.uniform(0, 0.5, 6)

    def loss(p: np.ndarray) -> float:
        sums = np.bincount(pack_ids, weights=p)
        # each program's squared error counted once per statement row, weighted by y / 2
        return float(np.sum(y * (sums[pack_ids] - y) ** 2) / 2)

    grad, hess = pack_sum_square_error(preds, dtrain, pack_ids)
    sums = np.bincount(pack_ids, weights=preds)
    # labels and weights are stored as float32 in the DMatrix
    np.testing.assert_allclose(grad, y * (sums[pack_ids] - y), rtol=1e-6)
    np.testing.assert_allclose(hess, y, rtol=1e-6)
    # d loss / d p_r for a row alone in its pack is exactly that gradient
    eps = 1e-6
    bumped = preds.copy()
    bumped[3] += eps
    assert (loss(bumped) - loss(preds)) / eps == pytest.approx(grad[3], rel=1e-4)
    assert pack_sum_rmse(preds, dtrain, pack_ids) == pytest.approx(
        float(np.sqrt(np.mean((sums[pack_ids] - y) ** 2)))
    )


# ------------------------------------------------------------------------------------------
# training on real measurements


@pytest.mark.slow
def test_xgb_model_ranks_held_out_schedules_better_than_chance(task: SearchTask, measured) -> None:
    inputs, results = measured
    costs = np.array([r.median_cost for r in results])
    assert costs.max() / costs.min() > 5  # the schedules really differ
    model = XGBModel(num_warmup_sample=0, seed=0, verbose_eval=0, nthread=1)
    model.update(inputs[:N_TRAIN], results[:N_TRAIN])
    assert model.bst is not None
    held_out = [inp.state for inp in inputs[N_TRAIN:]]
    scores = model.predict(task, held_out)
    accuracy = pairwise_accuracy(scores, costs[N_TRAIN:])
    chance = pairwise_accuracy(RandomModel(seed=0).predict(task, held_out), costs[N_TRAIN:])
    assert accuracy > 0.6, f"pairwise accuracy {accuracy:.3f} (random model: {chance:.3f})"
    # the model's favourite held-out schedule is among the faster half
    assert costs[N_TRAIN:][np.argmax(scores)] <= np.median(costs[N_TRAIN:])


@pytest.mark.slow
def test_save_load_round_trip_gives_identical_predictions(task: SearchTask, measured, tmp_path) -> None:
    inputs, results = measured
    path = str(tmp_path / "model.json")
    model = XGBModel(num_warmup_sample=10, verbose_eval=0, nthread=1, model_file=path)
    model.update(inputs[:40], results[:40])  # model_file: saved after the update
    states = [inp.state for inp in inputs[40:]]
    before = model.predict(task, states)
    loaded = XGBModel(verbose_eval=0, nthread=1)
    loaded.load(path)
    assert loaded.num_warmup_sample == -1  # no warm-up after load
    np.testing.assert_array_equal(loaded.predict(task, states), before)


@pytest.mark.slow
def test_adaptive_training_waits_for_20_percent_more_data(task: SearchTask, measured) -> None:
    inputs, results = measured
    model = XGBModel(num_warmup_sample=0, verbose_eval=0, nthread=1, adaptive_training=True)
    model.update(inputs[:50], results[:50])
    first = model.bst
    model.update(inputs[50:55], results[50:55])  # +10%: no retrain
    assert model.bst is first and len(model.inputs) == 55
    model.update(inputs[55:62], results[55:62])  # +24% since the last fit
    assert model.bst is not first and model.last_train_length == 62


@pytest.mark.slow
def test_update_from_file_trains_like_update(task: SearchTask, measured, tmp_path) -> None:
    inputs, results = measured
    inputs, results = list(inputs[:30]), list(results[:30])
    inputs.append(MeasureInput(task, inputs[0].state))
    results.append(error_result())  # an error record: label ~0
    log = tmp_path / "tuning.json"
    save_records(log, inputs, results)
    states = [inp.state for inp in measured[0][30:40]]
    direct = XGBModel(num_warmup_sample=0, seed=1, verbose_eval=0, nthread=1)
    direct.update(inputs, results)
    from_log = XGBModel(num_warmup_sample=0, seed=1, verbose_eval=0, nthread=1)
    from_log.update_from_file(str(log))
    assert len(from_log.inputs) == 31
    np.testing.assert_allclose(from_log.predict(task, states), direct.predict(task, states), rtol=1e-6)
    partial = XGBModel(num_warmup_sample=0, seed=1, verbose_eval=0, nthread=1)
    partial.update_from_file(str(log), n_lines=10)
    assert len(partial.inputs) == 10
