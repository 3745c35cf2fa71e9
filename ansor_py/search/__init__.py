"""Search: sketches, random annotation, evolutionary search (Ansor paper sections 4 and 5).

Read in data-flow order:

- ``sketch_rules`` / ``sketch_generation``: derivation rules and the sketches they make;
- ``init_rules``: random annotation turning a sketch into a complete program;
- ``mutation_rules`` / ``evolution``: sampling and evolving populations under a cost model;
- ``sketch_policy``: the search loop (eps-greedy picks, measurement, early stopping) and
  its start-up callbacks (resuming from a log, a user sketch rule);
- ``search_policy``: the policy and callback contracts; ``empty_policy``;
- ``params``: every tunable, with TVM's names and defaults;
- ``stage_queries`` / ``tiling``: the facts and loop transforms the rules share.
"""

from ansor_py.search.empty_policy import EmptyPolicy
from ansor_py.search.params import SketchParams, SketchParamsError
from ansor_py.search.search_policy import SearchCallback, SearchPolicy
from ansor_py.search.sketch_policy import PreloadCustomSketchRule, PreloadMeasuredStates, SketchPolicy
from ansor_py.search.sketch_rules import ConditionKind, SketchRule

__all__ = [
    "ConditionKind",
    "EmptyPolicy",
    "PreloadCustomSketchRule",
    "PreloadMeasuredStates",
    "SearchCallback",
    "SearchPolicy",
    "SketchParams",
    "SketchParamsError",
    "SketchPolicy",
    "SketchRule",
]
