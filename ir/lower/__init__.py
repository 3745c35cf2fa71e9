"""Lowering: a loop state becomes a loop-nest program (``lower``), after bound inference
(``infer_bound``). Read ``lower.py`` first: it lists the passes in order."""

from ir.lower.bound import infer_bound, infer_bound_with_regions
from ir.lower.lower import lower

__all__ = ["infer_bound", "infer_bound_with_regions", "lower"]
