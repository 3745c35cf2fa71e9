"""``XGBModel``: gradient-boosted trees on per-statement features (Ansor paper section 5.2).

The model predicts a score for every BufferStore statement of a program; the program's
score is the *sum* of its statements' scores ("pack sum"). It is trained on measured
programs with label y = normalized throughput (the best cost of the program's task divided
by its cost: 1 for the fastest, about 0 for an error) and the paper's weighted squared
error::

    loss = sum over programs P of  y_P * (sum_{s in P} f(s) - y_P)^2

so the ranking of fast programs matters most. As a custom XGBoost objective, per
statement row: gradient = y * (sum of its program's predictions - y), hessian = y (TVM
``pack_sum_square_error``). Parameters are TVM's: depth 10, gamma 0.001, min_child_weight
0, eta 0.2, seed 43, up to 10,000 rounds with early stopping after 50 rounds without a
better training ``p-rmse`` (the RMSE of program sums; the best round is kept), plus
``max_bin`` 64 (a quarter of the default 256 histogram bins, so training is cheaper) and
``base_score`` 0, so a program's sum starts from 0 whatever its number of statements.

The model is retrained from scratch on all data at every ``update`` (features of earlier
samples are cached); ``adaptive_training`` skips a retrain until the data grew by 20%.
Until more than ``num_warmup_sample`` programs were seen, ``predict`` returns uniform
random scores from a seeded Generator; states that cannot be lowered always get -inf.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb

from ansor_py.cost_model.feature_extraction import (
    get_per_store_features_from_measure_pairs,
    get_per_store_features_from_states,
    read_measure_pairs,
)
from ansor_py.cost_model.feature_workers import FeaturePrefetcher, default_workers
from ansor_py.cost_model.features import DEFAULT_MAX_N_BUFS, FeatureCache, normalized_throughputs

if TYPE_CHECKING:
    from ansor_py.measure.types import MeasureInput, MeasureResult
    from ansor_py.search_task import SearchTask
    from ir.loop_state.api import State
    from ir.loop_state.state import LoopState
    from ir.lower.bound import BoundCache

logger = logging.getLogger(__name__)

#: TVM's default seed for the model
DEFAULT_SEED = 43
#: boosting rounds at most, and rounds without improvement before stopping (TVM's)
MAX_ROUNDS = 10_000
EARLY_STOPPING_ROUNDS = 50


class XGBModel:
    """Ansor's learned cost model (TVM ``auto_scheduler.XGBModel``).

    ``verbose_eval``: log the training metric (at DEBUG level, logger
    ``ansor_py.cost_model.xgb_model``) every that many rounds (0: never).
    ``num_warmup_sample``: predict randomly until more programs than this were seen.
    ``seed``: XGBoost's seed and the warm-up Generator's (None: 43).
    ``model_file``: save the model there after every update.
    ``adaptive_training``: retrain only when the data grew by 20% since the last fit.
    ``nthread``: XGBoost threads (None: half the CPUs, at least 1, as TVM).
    ``feature_workers``: processes that extract the features of a large batch to predict,
    and with more than one, ``prefetch`` extracts ahead in a forked worker (None: one per
    CPU this process may use; module ``feature_workers``).
    """

    def __init__(
        self,
        verbose_eval: int = 25,
        num_warmup_sample: int = 100,
        seed: int | None = None,
        model_file: str | None = None,
        adaptive_training: bool = False,
        nthread: int | None = None,
        feature_workers: int | None = None,
    ):
        if verbose_eval < 0:
            raise ValueError(f"XGBModel: verbose_eval {verbose_eval} must be >= 0")
        if nthread is not None and nthread < 1:
            raise ValueError(f"XGBModel: nthread {nthread} must be >= 1")
        if feature_workers is not None and feature_workers < 1:
            raise ValueError(f"XGBModel: feature_workers {feature_workers} must be >= 1")
        self.feature_workers = default_workers() if feature_workers is None else feature_workers
        self.verbose_eval = verbose_eval
        self.num_warmup_sample = num_warmup_sample
        self.seed = DEFAULT_SEED if seed is None else seed
        self.model_file = model_file
        self.adaptive_training = adaptive_training
        self.max_n_bufs = DEFAULT_MAX_N_BUFS
        self.xgb_params: dict[str, Any] = {
            "max_depth": 10,
            "gamma": 0.001,
            "min_child_weight": 0,
            "eta": 0.2,
            "max_bin": 64,
            "tree_method": "hist",
            "nthread": nthread or max(1, (os.cpu_count() or 2) // 2),
            "verbosity": 0,
            "seed": self.seed,
            "base_score": 0.0,
            "disable_default_eval_metric": 1,
        }
        self.rng = np.random.default_rng(self.seed)
        self.bst: xgb.Booster | None = None
        self.inputs: list[MeasureInput] = []
        self.results: list[MeasureResult] = []
        #: feature rows of self.inputs, extracted once each
        self.inputs_features: list[np.ndarray] = []
        self.last_train_length = 0
        self.feature_cache = FeatureCache()
        self.prefetcher = FeaturePrefetcher(self.max_n_bufs)

    # training ---------------------------------------------------------------------------
    def update(self, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        """Add measured pairs and retrain on everything seen so far."""
        if len(inputs) != len(results):
            raise ValueError(f"XGBModel.update: {len(inputs)} inputs but {len(results)} results")
        if not inputs:
            return
        new_features, _, _ = get_per_store_features_from_measure_pairs(
            inputs, results, max_n_bufs=self.max_n_bufs, cache=self.feature_cache
        )
        self.inputs.extend(inputs)
        self.results.extend(results)
        self.inputs_features.extend(new_features)
        if self.adaptive_training and len(self.inputs) - self.last_train_length < self.last_train_length / 5:
            return
        self.last_train_length = len(self.inputs)
        labels, _ = normalized_throughputs(self.inputs, self.results)
        self.bst = self._fit(self.inputs_features, labels)
        if self.model_file and self.bst is not None:
            self.save(self.model_file)

    def update_from_file(self, file_name: str, n_lines: int | None = None) -> None:
        """Train on the first ``n_lines`` records of a tuning log (all when None)."""
        inputs, results = read_measure_pairs(file_name, n_lines)
        self.update(inputs, results)

    def _fit(self, features: list[np.ndarray], labels: np.ndarray) -> xgb.Booster | None:
        dtrain, pack_ids = _pack_sum_matrix(features, labels)
        if dtrain is None:
            return None

        def objective(preds: np.ndarray, data: xgb.DMatrix) -> tuple[np.ndarray, np.ndarray]:
            return pack_sum_square_error(preds, data, pack_ids)

        def p_rmse(preds: np.ndarray, data: xgb.DMatrix) -> tuple[str, float]:
            return "p-rmse", pack_sum_rmse(preds, data, pack_ids)

        stopper = xgb.callback.EarlyStopping(
            rounds=EARLY_STOPPING_ROUNDS, metric_name="p-rmse", data_name="tr", maximize=False, save_best=True
        )
        callbacks: list[xgb.callback.TrainingCallback] = [stopper]
        if self.verbose_eval > 0:
            callbacks.append(_LogMetric(self.verbose_eval))
        bst = xgb.train(
            self.xgb_params,
            dtrain,
            num_boost_round=MAX_ROUNDS,
            evals=[(dtrain, "tr")],
            obj=objective,
            custom_metric=p_rmse,
            callbacks=callbacks,
            verbose_eval=False,
        )
        logger.debug(
            "XGBModel: %d programs, %d statement rows, %d rounds",
            len(labels),
            len(pack_ids),
            bst.num_boosted_rounds(),
        )
        return bst

    # prediction -------------------------------------------------------------------------
    def prefetch(
        self, task: SearchTask, states: Sequence[LoopState], bound_cache: BoundCache | None = None
    ) -> None:
        """Start extracting the features of ``states`` in a forked worker (with more than
        one ``feature_workers``), for a later ``predict`` of them; the search calls this
        as it breeds programs, so that extraction runs beside breeding."""
        if self.feature_workers > 1:
            self.prefetcher.submit(task, states, self.feature_cache, bound_cache)

    @property
    def predicts_at_random(self) -> bool:
        """True during warm-up: no booster yet, or not more than ``num_warmup_sample``
        programs seen (``predict`` then returns random scores)."""
        return self.bst is None or len(self.inputs) <= self.num_warmup_sample

    def predict(
        self, task: SearchTask, states: Sequence[LoopState | State], bound_cache: BoundCache | None = None
    ) -> np.ndarray:
        """One score per state, higher meaning faster: the sum of the model's statement
        predictions, uniform random numbers during warm-up, -inf for invalid states.
        ``bound_cache``: the search's bound-inference results, reused by the lowering."""
        self.prefetcher.collect(self.feature_cache)
        features = get_per_store_features_from_states(
            states, task, self.max_n_bufs, self.feature_cache, self.feature_workers, bound_cache
        )
        if not self.predicts_at_random:
            scores = self._predict_packs(features)
        else:
            scores = self.rng.uniform(0.0, 1.0, len(states))
        for index, rows in enumerate(features):
            if rows.size == 0 or not rows.any():
                scores[index] = -np.inf
        return scores

    def _predict_packs(self, features: list[np.ndarray]) -> np.ndarray:
        assert self.bst is not None
        sizes = np.array([len(rows) for rows in features], dtype=np.int64)
        if sizes.sum() == 0:
            return np.zeros(len(features))
        rows = np.concatenate([r for r in features if len(r)], axis=0)
        raw = self.bst.predict(xgb.DMatrix(rows))
        pack_ids = np.repeat(np.arange(len(features)), sizes)
        return np.bincount(pack_ids, weights=raw, minlength=len(features))

    # persistence ------------------------------------------------------------------------
    def save(self, file_name: str) -> None:
        """Write the trained booster (XGBoost's own format) to ``file_name``."""
        if self.bst is None:
            raise ValueError(f"XGBModel.save({file_name!r}): the model has not been trained yet")
        self.bst.save_model(file_name)

    def load(self, file_name: str) -> None:
        """Read a booster written by ``save``; predictions use it at once (no warm-up)."""
        if not os.path.exists(file_name):
            raise FileNotFoundError(f"XGBModel.load: no model file {file_name!r}")
        bst = xgb.Booster(params={"nthread": self.xgb_params["nthread"]})
        bst.load_model(file_name)
        self.bst = bst
        self.num_warmup_sample = -1


class _LogMetric(xgb.callback.TrainingCallback):
    """Logs the training p-rmse every ``period`` rounds (TVM logs it at debug level)."""

    def __init__(self, period: int):
        super().__init__()
        self.period = period

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if epoch % self.period == 0:
            logger.debug("XGB iter %4d: tr-p-rmse %.6f", epoch, evals_log["tr"]["p-rmse"][-1])
        return False


# ------------------------------------------------------------------------------------------
# the pack-sum objective


def _pack_sum_matrix(features: list[np.ndarray], labels: np.ndarray) -> tuple[xgb.DMatrix | None, np.ndarray]:
    """All statement rows in one DMatrix, each with its program's label and weight = label;
    ``pack_ids[row]`` is the row's program. Programs without rows (invalid) are left out."""
    sizes = np.array([len(rows) for rows in features], dtype=np.int64)
    if sizes.sum() == 0:
        return None, np.zeros(0, dtype=np.int64)
    kept = np.flatnonzero(sizes)
    rows = np.concatenate([features[i] for i in kept], axis=0)
    pack_ids = np.repeat(np.arange(kept.size), sizes[kept])
    row_labels = np.repeat(labels[kept], sizes[kept])
    dtrain = xgb.DMatrix(rows, label=row_labels, weight=row_labels)
    return dtrain, pack_ids


def pack_sum_square_error(
    preds: np.ndarray, dtrain: xgb.DMatrix, pack_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and hessian of ``y * (sum_pack f - y)^2 / 2`` per statement row."""
    pack_sum = np.bincount(pack_ids, weights=preds)[pack_ids]
    labels = dtrain.get_label()
    weight = dtrain.get_weight()
    gradient = pack_sum - labels
    hessian = np.ones_like(gradient)
    if weight.size == 0:
        return gradient, hessian
    return gradient * weight, hessian * weight


def pack_sum_rmse(preds: np.ndarray, dtrain: xgb.DMatrix, pack_ids: np.ndarray) -> float:
    """RMSE between each row's program sum and its label (TVM ``p-rmse``)."""
    pack_sum = np.bincount(pack_ids, weights=preds)[pack_ids]
    return float(np.sqrt(np.mean((pack_sum - dtrain.get_label()) ** 2)))
