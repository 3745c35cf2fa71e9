"""A state's step history as an executable Python script (TVM ``print_python_code_from_state``).

    from ir.loop_state.api import get_init_state
    s = get_init_state(dag)
    C_i, C_j, C_k = s["C"].iters
    C_i_0, C_i_1 = s.split("C", C_i, [32])
    s.parallel("C", C_i_0)

Running the script with ``dag`` in scope rebuilds the same state: the State API resolves
an iterator variable by its name in the stage's current iterators, so a variable stays
good as long as an iterator of that name exists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ir.loop_state.python_names import PythonNames
from ir.loop_state.state import LoopState, Step, initial_state

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG

#: the script's first lines: the State handle on ``dag``'s initial state
SCRIPT_HEADER = ("from ir.loop_state.api import get_init_state", "s = get_init_state(dag)")


def steps_to_python(dag: ComputeDAG, steps: Sequence[Step]) -> str:
    """The script that makes ``steps`` on ``dag``'s initial state, one step a line (plus a
    line unpacking a stage's iterators before the first step that names them)."""
    names = PythonNames()
    lines = list(SCRIPT_HEADER)
    defined: set[str] = set()
    state = initial_state(dag)
    for step in steps:
        for stage_id in step.iterator_stages(state):
            stage = state.stages[stage_id]
            variables = [names.iter_var(stage.name, it.name) for it in stage.iters]
            if any(v not in defined for v in variables):
                target = variables[0] + "," if len(variables) == 1 else ", ".join(variables)
                lines.append(f"{target} = s[{json.dumps(stage.name)}].iters")
                defined.update(variables)
        lines.append(step.to_python(state, names))
        after = step.apply(state, dag)
        if step.defines_iterators:
            stage = after.stages[step.stage_id]
            defined.update(names.iter_var(stage.name, it.name) for it in stage.iters)
        state = after
    return "\n".join(lines) + "\n"


def state_to_python(dag: ComputeDAG, state: LoopState) -> str:
    """``steps_to_python`` of ``state``'s history."""
    return steps_to_python(dag, state.transform_steps)
