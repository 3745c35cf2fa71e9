"""Small graphs built node by node, and random inputs for them, for the graph-level tests
(``test_fusion.py``, ``test_passes.py``).

``SmallNet`` names every node after its op and position and gives it one output named as
the node, so a test refers to a value by what its builder method returns. Its constants
come from a seeded generator, uniform in [-1, 1) unless asked otherwise: the same seed
builds the same weights. Test modules add the layers they need (a convolution in the
layout their pass expects) in a subclass.

Not a test module: pytest puts this folder on ``sys.path`` for the test modules beside it.
"""

from __future__ import annotations

import numpy as np

from ansor_py.network.graph import Graph, Node
from ansor_py.network.types import TensorType


class SmallNet:
    """A graph under construction: every node has one output named as the node."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.inputs: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        self.inputs[name] = TensorType(shape)
        return name

    def const(self, array: np.ndarray) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = np.asarray(array, dtype=np.float32)
        return name

    def random(self, *shape: int, low: float = -1.0, high: float = 1.0) -> str:
        return self.const(self.rng.uniform(low, high, shape))

    def node(self, op: str, *inputs: str, **attrs: object) -> str:
        name = f"{op}{len(self.nodes)}"
        self.nodes.append(Node(op, inputs, (name,), attrs, name=name))
        return name

    def build(self, *outputs: str) -> Graph:
        return Graph(self.inputs, self.nodes, outputs, self.constants)


def random_inputs(graph: Graph, seed: int = 1) -> dict[str, np.ndarray]:
    """Each input of ``graph``, uniform in [-1, 1) from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1, 1, t.shape).astype(t.dtype) for name, t in graph.inputs.items()}
