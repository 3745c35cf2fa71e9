"""The packages form no import circle and import only downward (see ``import_layering``)."""

from __future__ import annotations

from pathlib import Path

from import_layering import check_layering

REPOSITORY = Path(__file__).resolve().parent.parent


def test_repository_has_no_import_circle_and_no_upward_import() -> None:
    report = check_layering(REPOSITORY)
    assert len(report.modules) > 100
    assert report.ok, report.describe()


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _tree(tmp_path: Path, **extra: str) -> Path:
    files = {
        "ir/__init__.py": "",
        "ir/expr.py": "import math\nimport numpy as np\n",
        "ir/te.py": "from ir.expr import Expr\n",
        "codegen/__init__.py": "",
        "codegen/llvm.py": "from ir import te\nimport llvmlite\n",
        "ansor_py/__init__.py": "from ansor_py.search import policy\n",
        "ansor_py/search/__init__.py": "",
        "ansor_py/search/policy.py": "from codegen.llvm import build\n",
    }
    files.update({name.replace("__", "/") + ".py": text for name, text in extra.items()})
    _write(tmp_path, files)
    return tmp_path


def test_clean_tree_passes(tmp_path: Path) -> None:
    report = check_layering(_tree(tmp_path))
    assert report.ok, report.describe()
    assert set(report.modules) >= {"ir.expr", "ansor_py.search.policy", "ansor_py"}


def test_circle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, ir__expr="def f():\n    from ir.te import Tensor\n")
    report = check_layering(root)
    assert [sorted({e.importer for e in circle}) for circle in report.circles] == [["ir.expr", "ir.te"]]
    assert "import circle of 2 modules: ir.expr, ir.te" in report.describe()
    assert "ir.expr:2 imports ir.te" in report.describe()


def test_type_only_circle_counts_too(tmp_path: Path) -> None:
    text = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ir.te import Tensor\n"
    report = check_layering(_tree(tmp_path, ir__expr=text))
    assert len(report.circles) == 1


def test_relative_import_of_the_package_facade_closes_a_circle(tmp_path: Path) -> None:
    root = _tree(tmp_path, ansor_py__search__policy="from .. import search\n")
    (root / "ansor_py/search/__init__.py").write_text("from .policy import Policy\n")
    report = check_layering(root)
    members = [sorted({e.importer for e in circle}) for circle in report.circles]
    assert members == [["ansor_py.search", "ansor_py.search.policy"]]


def test_upward_import_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, ir__te="def g():\n    from codegen.llvm import build\n")
    report = check_layering(root)
    assert [(e.importer, e.imported) for e in report.upward] == [("ir.te", "codegen.llvm")]
    assert "upward import: ir.te:2 imports codegen.llvm" in report.describe()


def test_third_party_import_outside_the_layer_is_found(tmp_path: Path) -> None:
    report = check_layering(_tree(tmp_path, ir__te="import xgboost\n"))
    assert [(e.importer, e.imported) for e in report.foreign] == [("ir.te", "xgboost")]
    assert not report.ok


def _expression_group(tmp_path: Path, printer_import: str) -> Path:
    """ir.expr -> ir.printer -> (ir.tir -> ir.expr): the listed type-only group."""
    return _tree(
        tmp_path,
        ir__expr="from ir import printer\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from ir.te import Tensor\n",
        ir__printer=printer_import,
        ir__tir="from ir.expr import Expr\nfrom ir import printer\n",
    )


def test_listed_type_only_circle_is_exempt(tmp_path: Path) -> None:
    text = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ir.tir import Stmt\n"
    report = check_layering(_expression_group(tmp_path, text))
    assert report.ok, report.describe()


def test_listed_group_with_a_run_time_circle_fails(tmp_path: Path) -> None:
    report = check_layering(_expression_group(tmp_path, "from ir.tir import Stmt\n"))
    assert len(report.circles) == 1
    assert "ir.printer:1 imports ir.tir\n" in report.describe() + "\n"
    assert "(type only)" in report.describe()
