"""Whole networks: import, optimise, fuse into tasks, build and run (Ansor paper section 6
and 7.3: a network is a set of subgraphs, each tuned as one task).

The data flow, one module (or package) each:

- ``graph``: the graph IR (``Graph``, ``Node``, ``TensorType``), its printer and type
  inference; ``ops``: the operator table every other module dispatches through;
- ``frontend.onnx``: ``from_onnx`` (ONNX opsets 13 to 21);
- ``reference``: the numpy executor of a whole graph, the oracle;
- ``passes``: graph -> graph rewrites in one ordered list (``optimize``);
- ``fusion`` and ``tasks``: fused subgraphs (``Subgraph``) and ``extract_tasks``;
- ``default_schedule``: the schedule of a task that has no tuning record;
- ``memory_plan`` and ``executor``: ``build_network`` and the ``Network`` it returns;
- ``export``: one shared object with a C entry point, for the host or a board;
- ``zoo`` and ``onnx_writer``: the five benchmark networks, in the graph IR and as ONNX.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.executor import Network, NetworkBuildWarning, build_network
from ansor_py.network.export import ExportError, export_library
from ansor_py.network.export_run import load_exported, run_exported_over_ssh
from ansor_py.network.fusion import fuse
from ansor_py.network.graph import Graph, Node, print_graph
from ansor_py.network.ops import OPS, OpDef, OpPattern
from ansor_py.network.passes import optimize
from ansor_py.network.reference import InputError, run_reference
from ansor_py.network.subgraph import Subgraph
from ansor_py.network.tasks import extract_tasks, partition_network
from ansor_py.network.types import GraphError, TensorType

if TYPE_CHECKING:
    import onnx


def from_onnx(
    model_or_path: onnx.ModelProto | str | Path | bytes,
    shape: dict[str, tuple[int, ...]] | None = None,
    name: str | None = None,
) -> Graph:
    """Import an ONNX model (``ansor_py.network.frontend.onnx.from_onnx``; opsets 13 to
    21). ``shape`` gives the static shape of inputs with dynamic dimensions, as TVM's
    ``relay.frontend.from_onnx(model, shape=...)``. The ``onnx`` package is optional: it is
    imported here, on the first call, so the rest of ansor-py works without it."""
    from ansor_py.network.frontend.onnx import from_onnx as import_onnx

    return import_onnx(model_or_path, shape=shape, name=name)


__all__ = [
    "OPS",
    "ExportError",
    "Graph",
    "GraphError",
    "InputError",
    "Network",
    "NetworkBuildWarning",
    "Node",
    "OpDef",
    "OpPattern",
    "Subgraph",
    "TensorType",
    "build_network",
    "default_schedule",
    "export_library",
    "extract_tasks",
    "from_onnx",
    "fuse",
    "load_exported",
    "optimize",
    "partition_network",
    "print_graph",
    "run_exported_over_ssh",
    "run_reference",
]
