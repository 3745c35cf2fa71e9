"""The import graph of ``ir``, ``codegen`` and ``ansor_py``: no circles, imports go down.

The packages are layered ``ir`` <- ``codegen`` <- ``ansor_py``: a reader can learn ``ir``
alone, then the back end, then the search. This module reads every source file with
``ast`` (nothing is imported) and checks three rules:

1. no import circle among the modules of the three packages: the strongly connected
   components of the module graph (Tarjan) all have one module. Every import statement
   counts, at module level and inside functions alike. Imports under ``if
   TYPE_CHECKING:`` count too, with one exemption, listed by name in
   ``TYPE_ONLY_CIRCLES``: a group whose circle closes only through type-only imports
   (a type-only circle still means modules that cannot be read apart, so a new one
   fails the check until it is listed there with its reason);
2. no module imports a package above its own (``ir`` never imports ``codegen`` or
   ``ansor_py``; ``codegen`` never imports ``ansor_py``);
3. each package imports, from outside the three, only the standard library and the
   third-party packages its layer allows (``ir``: numpy).

An edge goes from a module to the deepest module its import names: ``from ir.loop_state
import state`` is an edge to ``ir.loop_state.state``, ``from ansor_py import te`` an edge
to ``ansor_py`` (its ``__init__``, which imports much of the package, so a submodule that
imports the package facade sits in a circle with it). The implicit import of a module's
parent packages (Python runs ``ansor_py/__init__.py`` before ``ansor_py.records``) is not
an edge: those facades only re-export downward, and rule 1 checks them like any module.

Run ``python3 tests/import_layering.py`` to print the result; ``tests/test_import_layering.py``
runs the same check in the test suite.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: the packages, lowest layer first; a package may import the ones before it
LAYERS = ("ir", "codegen", "ansor_py")

#: third-party distributions each package may import (besides the standard library and
#: the layers below it)
ALLOWED_THIRD_PARTY: Mapping[str, frozenset[str]] = {
    "ir": frozenset({"numpy"}),
    # pycuda and pyopencl: the GPU back end's runners (codegen.cuda), imported inside them
    # only (optional extras "cuda" and "opencl"); cuda: NVIDIA's NVRTC bindings
    # (cuda-bindings), imported inside codegen.cuda.nvcc where installed
    "codegen": frozenset({"numpy", "llvmlite", "pycuda", "pyopencl", "cuda"}),
    # onnx (and google.protobuf, whose DecodeError onnx raises on a corrupt file): the ONNX
    # frontend and writer of the network layer, imported inside them only; matplotlib:
    # ansor_py.plot only, inside its functions (optional extra "plot"); onnxruntime: the
    # optional peer of `ansor-py run` (ansor_py.cli.run), imported inside it
    "ansor_py": frozenset(
        {
            "numpy",
            "llvmlite",
            "xgboost",
            "paramiko",
            "dask",
            "distributed",
            "onnx",
            "google",
            "matplotlib",
            "onnxruntime",
        }
    ),
}


#: groups of modules allowed to form a circle through imports under ``TYPE_CHECKING``
#: alone (at run time each imports only downward), with the reason
TYPE_ONLY_CIRCLES: Mapping[frozenset[str], str] = {
    frozenset({"ir.expr", "ir.printer", "ir.te", "ir.tir"}): (
        "a tensor read names the Tensor it reads (ir.te builds on ir.expr), and the one "
        "printer, which the nodes' __str__ calls, names the node classes it prints"
    ),
}


@dataclass(frozen=True)
class ImportEdge:
    """``importer`` imports ``imported`` at ``line`` of its file (``type_only``: under
    ``if TYPE_CHECKING:``)."""

    importer: str
    imported: str
    line: int
    type_only: bool = False


@dataclass(frozen=True)
class LayeringReport:
    """What the check found: circles (each a sorted list of modules, with the edges inside
    it), imports that run up the layering, and third-party imports a layer may not make."""

    modules: tuple[str, ...]
    circles: tuple[tuple[ImportEdge, ...], ...]
    upward: tuple[ImportEdge, ...]
    foreign: tuple[ImportEdge, ...]

    @property
    def ok(self) -> bool:
        return not (self.circles or self.upward or self.foreign)

    def describe(self) -> str:
        lines = [f"{len(self.modules)} modules in {', '.join(LAYERS)}"]
        for edges in self.circles:
            members = sorted({e.importer for e in edges})
            lines.append(f"import circle of {len(members)} modules: {', '.join(members)}")
            lines.extend(
                f"    {e.importer}:{e.line} imports {e.imported}{' (type only)' if e.type_only else ''}"
                for e in edges
            )
        lines.extend(
            f"upward import: {e.importer}:{e.line} imports {e.imported} (layers: {' <- '.join(LAYERS)})"
            for e in self.upward
        )
        lines.extend(
            f"foreign import: {e.importer}:{e.line} imports {e.imported}, not allowed in "
            f"'{e.importer.split('.')[0]}' (allowed: standard library, "
            f"{', '.join(sorted(ALLOWED_THIRD_PARTY[e.importer.split('.')[0]]))})"
            for e in self.foreign
        )
        if self.ok:
            lines.append("no import circles, no upward imports, no foreign imports")
        return "\n".join(lines)


def module_files(root: Path, packages: Iterable[str] = LAYERS) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``packages``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute dotted names an import statement names (``from a import b`` gives
    ``a.b``, which may be a module or an attribute of ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names]


def import_edges(modules: Mapping[str, Path]) -> tuple[list[ImportEdge], list[ImportEdge]]:
    """(edges between the checked modules, imports of anything else), from every import
    statement of every module, wherever it stands in the file."""
    internal: list[ImportEdge] = []
    external: list[ImportEdge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        type_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported_names(module, is_package, node):
                target = name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    if target != module:
                        internal.append(ImportEdge(module, target, node.lineno, id(node) in type_only))
                else:
                    external.append(ImportEdge(module, name, node.lineno, id(node) in type_only))
    return internal, external


def strongly_connected(nodes: Iterable[str], edges: Iterable[ImportEdge]) -> list[list[str]]:
    """Tarjan's strongly connected components of the graph, iteratively (no recursion)."""
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for edge in edges:
        successors[edge.importer].append(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in successors:
        if start in index:
            continue
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(successors[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _is_standard_library(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


def check_layering(root: Path) -> LayeringReport:
    """The import graph of the packages of ``LAYERS`` under ``root``, checked."""
    modules = module_files(root)
    internal, external = import_edges(modules)
    runtime = [e for e in internal if not e.type_only]
    runtime_circles = [set(c) for c in strongly_connected(modules, runtime) if len(c) > 1]
    circles = []
    for component in strongly_connected(modules, internal):
        members = frozenset(component)
        exempt = members in TYPE_ONLY_CIRCLES and not any(c & members for c in runtime_circles)
        if len(component) > 1 and not exempt:
            circles.append(tuple(e for e in internal if e.importer in members and e.imported in members))
    rank = {package: level for level, package in enumerate(LAYERS)}
    upward = [e for e in internal if rank[e.imported.split(".")[0]] > rank[e.importer.split(".")[0]]]
    foreign = [
        e
        for e in external
        if not _is_standard_library(e.imported)
        and e.imported.split(".")[0] not in ALLOWED_THIRD_PARTY[e.importer.split(".")[0]]
    ]
    return LayeringReport(tuple(modules), tuple(circles), tuple(upward), tuple(foreign))


if __name__ == "__main__":
    report = check_layering(Path(__file__).resolve().parent.parent)
    print(report.describe())
    sys.exit(0 if report.ok else 1)
