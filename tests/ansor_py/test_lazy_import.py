"""``import ansor_py`` is cheap: heavy dependencies load when a program first uses them.

The package's public names resolve on first access (PEP 562 ``__getattr__``). Each check
runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ansor_py

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("xgboost", "paramiko", "scipy", "onnx", "dask", "torch")


def loaded_after(statement: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``statement``."""
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    code = f"import sys\n{statement}\nimport json\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_package_loads_no_heavy_dependency():
    assert loaded_after("import ansor_py") == []


@pytest.mark.parametrize(
    "name",
    [
        "te",
        "build",
        "SearchTask",
        "ComputeDAG",
        "LocalRunner",
        "build_network",
        "TuningOptions",
        "TaskScheduler",
    ],
)
def test_declaring_building_and_running_need_neither_xgboost_nor_paramiko(name: str):
    assert loaded_after(f"import ansor_py; ansor_py.{name}") == []


def test_the_cost_model_and_the_ssh_runner_load_their_libraries_when_used():
    assert "xgboost" in loaded_after("import ansor_py; ansor_py.XGBModel")
    assert "paramiko" in loaded_after("import ansor_py; ansor_py.SSHRunner")


def test_every_public_name_resolves_and_is_listed():
    for name in ansor_py.__all__:
        assert getattr(ansor_py, name) is not None, name
    assert set(ansor_py.__all__) <= set(dir(ansor_py))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        ansor_py.no_such_name  # noqa: B018


def test_the_lazy_table_matches_the_names_type_checkers_see():
    """The ``TYPE_CHECKING`` imports (what mypy and editors read) and the run-time table
    name the same objects from the same modules, and ``__all__`` lists exactly them."""
    tree = ast.parse(Path(ansor_py.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If))
    seen = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == ansor_py._EXPORTS
    assert sorted(ansor_py.__all__) == sorted(seen)
