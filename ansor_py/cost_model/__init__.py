"""The cost model (Ansor paper section 5.2): per-statement features, XGBModel, RandomModel.

``CostModel`` is the contract the search codes against; ``XGBModel`` is Ansor's learned
model on the 164 features per BufferStore of ``features``; ``RandomModel`` scores at random.
``feature_extraction`` holds the entry points (features of states, of measured pairs, of a
log); ``feature_workers`` runs large batches in forked processes. ``XGBModel`` is imported
on first use, so code that only names ``CostModel`` does not load xgboost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansor_py.cost_model.base import CostModel, PrefetchingCostModel
from ansor_py.cost_model.feature_extraction import (
    get_per_store_features_from_file,
    get_per_store_features_from_measure_pairs,
    get_per_store_features_from_states,
)
from ansor_py.cost_model.features import (
    DEFAULT_FEATURE_VEC_LEN,
    DEFAULT_MAX_N_BUFS,
    FeatureCache,
    features_from_primfunc,
    get_per_store_feature_names,
    named_features_from_primfunc,
)
from ansor_py.cost_model.random_model import RandomModel

if TYPE_CHECKING:
    from ansor_py.cost_model.xgb_model import XGBModel


def __getattr__(name: str) -> Any:
    """``XGBModel`` on first use (PEP 562)."""
    if name == "XGBModel":
        from ansor_py.cost_model.xgb_model import XGBModel

        return XGBModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_FEATURE_VEC_LEN",
    "DEFAULT_MAX_N_BUFS",
    "CostModel",
    "FeatureCache",
    "PrefetchingCostModel",
    "RandomModel",
    "XGBModel",
    "features_from_primfunc",
    "get_per_store_feature_names",
    "get_per_store_features_from_file",
    "get_per_store_features_from_measure_pairs",
    "get_per_store_features_from_states",
    "named_features_from_primfunc",
]
