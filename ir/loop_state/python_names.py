"""Python variable names for iterators, shared by the step printers and the script printer.

The step history prints as a script (``python_printer``), each step printing its own line
(``Step.to_python``); one naming context is threaded through them so that a variable,
once defined, keeps its name.
"""

from __future__ import annotations

import re


def _identifier(text: str) -> str:
    word = re.sub(r"\W+", "_", text).strip("_") or "x"
    return f"_{word}" if word[0].isdigit() else word


class PythonNames:
    """Readable, unique Python variable names for iterators: stage ``C``, iterator
    ``i.0`` -> ``C_i_0``; fused ``i.0@j.0@`` -> ``C_i_0_j_0_fused``."""

    def __init__(self) -> None:
        self._vars: dict[tuple[str, str], str] = {}
        self._taken: set[str] = {"s", "dag", "get_init_state"}

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
