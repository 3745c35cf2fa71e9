"""The tunables of ``SketchPolicy``, with TVM's names and defaults (``SketchPolicy.DEFAULT_PARAMS``).

Every knob of the search lives here and is passed in; nothing is read from the
environment. ``SketchPolicy(params=...)`` takes a ``SketchParams`` or a dict of some of
these names (the rest keep their defaults, as in TVM); the dict given is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


class SketchParamsError(ValueError):
    """An unknown parameter name or a value out of its range."""


@dataclass(frozen=True)
class SketchParams:
    """SketchPolicy parameters (Ansor paper sections 4 and 5; names and defaults as TVM's
    ``auto_scheduler.SketchPolicy.DEFAULT_PARAMS``, plus ``padded_tile_probability``)."""

    #: share of each measured batch picked at random instead of by the cost model
    eps_greedy: float = 0.05
    #: how many times a round that finds no unmeasured state is retried before stopping
    retry_search_one_round_on_empty: int = 1
    #: random annotation samples until at least this many valid, distinct states exist
    sample_init_min_population: int = 50
    #: at most this share of the population is seeded with the best measured states
    sample_init_use_measured_ratio: float = 0.2
    #: size of each generation of the evolutionary search (and of each sampling batch)
    evolutionary_search_population: int = 2048
    #: generations of the evolutionary search (capped at 2 with a RandomModel, as TVM)
    evolutionary_search_num_iters: int = 4
    #: probability that a selected parent is mutated rather than copied
    evolutionary_search_mutation_prob: float = 0.85
    #: multi-level tiling structure on CPUs: S = spatial level, R = reduction level
    cpu_multi_level_tiling_structure: str = "SSRSRS"
    #: multi-level tiling structure on GPUs
    gpu_multi_level_tiling_structure: str = "SSSRRSRS"
    #: the innermost length of a sampled split is at most this
    max_innermost_split_factor: int = 64
    #: a fused vectorized loop is at most this long
    max_vectorize_size: int = 16
    #: 1 turns off InitChangeComputeLocation and MutateComputeLocation
    disable_change_compute_location: int = 0
    #: probability that a register-tile split draws a padded scheme (an innermost length
    #: not dividing the extent, ``SplitFactorizationMemo.padded_schemes``) instead of an
    #: exact one; not in TVM, whose space is the exact schemes only (0 restores it)
    padded_tile_probability: float = 0.25

    def __post_init__(self) -> None:
        _check_range("eps_greedy", self.eps_greedy, 0.0, 1.0)
        _check_range("sample_init_use_measured_ratio", self.sample_init_use_measured_ratio, 0.0, 1.0)
        _check_range("evolutionary_search_mutation_prob", self.evolutionary_search_mutation_prob, 0.0, 1.0)
        _check_range("padded_tile_probability", self.padded_tile_probability, 0.0, 1.0)
        for name in (
            "sample_init_min_population",
            "evolutionary_search_population",
            "max_innermost_split_factor",
            "max_vectorize_size",
        ):
            _check_at_least(name, getattr(self, name), 1)
        _check_at_least("retry_search_one_round_on_empty", self.retry_search_one_round_on_empty, 0)
        _check_at_least("evolutionary_search_num_iters", self.evolutionary_search_num_iters, 0)
        for name in ("cpu_multi_level_tiling_structure", "gpu_multi_level_tiling_structure"):
            structure = getattr(self, name)
            if not structure or any(c not in "SsRr" for c in structure):
                raise SketchParamsError(
                    f"SketchParams: {name} {structure!r} must be a non-empty string of S and R letters"
                )
        if self.disable_change_compute_location not in (0, 1):
            raise SketchParamsError(
                f"SketchParams: disable_change_compute_location {self.disable_change_compute_location!r} "
                "must be 0 or 1"
            )

    @classmethod
    def from_any(cls, params: SketchParams | Mapping[str, Any] | None) -> SketchParams:
        """``params`` itself, the defaults (None), or the defaults updated by a dict."""
        if params is None:
            return cls()
        if isinstance(params, SketchParams):
            return params
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SketchParamsError(
                f"SketchParams: unknown parameter(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        return replace(cls(), **dict(params))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SketchParamsError(f"SketchParams: {name} {value!r} must be a number in [{low}, {high}]")


def _check_at_least(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SketchParamsError(f"SketchParams: {name} {value!r} must be an int >= {low}")
