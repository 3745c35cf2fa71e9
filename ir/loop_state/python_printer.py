"""A state's step history as an executable Python script (TVM ``print_python_code_from_state``).

    s = dag.get_init_state()
    C_i, C_j, C_k = s["C"].iters
    C_i_0, C_i_1 = s.split("C", C_i, [32])
    s.parallel("C", C_i_0)

Running the script with ``dag`` in scope rebuilds the same state: the State API resolves
an iterator variable by its name in the stage's current iterators, so a variable stays
good as long as an iterator of that name exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.state import LoopState
    from ir.loop_state.steps.base import Step


def _identifier(text: str) -> str:
    word = re.sub(r"\W+", "_", text).strip("_") or "x"
    return f"_{word}" if word[0].isdigit() else word


class PythonNames:
    """Readable, unique Python variable names for iterators: stage ``C``, iterator
    ``i.0`` -> ``C_i_0``; fused ``i.0@j.0@`` -> ``C_i_0_j_0_fused``."""

    def __init__(self) -> None:
        self._vars: dict[tuple[str, str], str] = {}
        self._taken: set[str] = {"s", "dag"}

    def iter_var(self, stage_name: str, iter_name: str) -> str:
        key = (stage_name, iter_name)
        if key not in self._vars:
            base = f"{_identifier(stage_name)}_{_identifier(iter_name)}"
            if "@" in iter_name:
                base += "_fused"
            name, n = base, 1
            while name in self._taken:
                name, n = f"{base}_{n}", n + 1
            self._taken.add(name)
            self._vars[key] = name
        return self._vars[key]


def steps_to_python(dag: ComputeDAG, steps: Sequence[Step]) -> str:
    """The script that makes ``steps`` on ``dag``'s initial state, one step a line (plus a
    line unpacking a stage's iterators before the first step that names them)."""
    names = PythonNames()
    lines = ["s = dag.get_init_state()"]
    defined: set[str] = set()
    state: LoopState = dag.init_state
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
