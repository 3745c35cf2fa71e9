"""``GraphBuilder``: how the zoo writes a network down, node by node, with seeded weights.

The zoo's networks are built the way an ONNX exporter would emit them (NCHW data, OIHW
convolution weights, ``batch_norm`` nodes, biases added by ``add``), but with random
weights: what the benchmarks and the compiler's tests need is the architecture and its
shapes (Ansor paper section 7.3 times networks; the values only have to be finite and of
order one everywhere, so that a relative error of 1e-4 means something in every layer).

Keeping activations of order one: convolution and dense weights are He initialised
(variance ``gain / fan_in``), and every ``batch_norm`` gets the running statistics a
trained network would have collected. The builder runs the graph as it grows (each node's
``OpDef.reference``, on a seeded calibration input, only once a batch norm needs it) and
sets the batch norm's mean and variance to the per-channel mean and variance of its input;
its output then has mean ``beta`` and standard deviation ``gamma`` (about 0 and 1) per
channel whatever came before. Moment arithmetic alone (He et al.) cannot do this: a ReLU
network's channels drift off zero mean, and the error compounds over ResNet-50's 53 layers
(statistics set from expected moments gave logits of standard deviation 50; calibrated,
about 1). The calibration run costs one reference run of the network when it is built.

Names: every node gets a name unique in the graph (``unique_name`` on the given base),
and its single output value carries the same name; constants are named ``{base}`` too
(e.g. ``layer1.0.conv1.weight``), so a printed graph reads like the PyTorch module tree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ansor_py.network.graph import Graph, Node, unique_name
from ansor_py.network.ops import get_op
from ansor_py.network.types import TensorType

#: the layout names of a convolution over 1, 2 and 3 spatial axes (data, weight), ONNX's
CONV_LAYOUTS = {1: ("NCW", "OIW"), 2: ("NCHW", "OIHW"), 3: ("NCDHW", "OIDHW")}


class GraphBuilder:
    """Appends nodes and constants to a graph under construction; ``build`` checks it.

    ``seed`` fixes every weight and the calibration input: two builders with one seed
    make identical networks.
    """

    def __init__(self, name: str, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.inputs: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        self._taken: set[str] = set()
        #: the calibration run: value -> array, for the inputs and the nodes run so far
        self._trace: dict[str, np.ndarray] = {}
        self._traced_nodes = 0
        self._calibration_rng = np.random.default_rng([seed, 1])

    # --- values ------------------------------------------------------------------------------

    def _claim(self, base: str) -> str:
        name = unique_name(base, self._taken)
        self._taken.add(name)
        return name

    def input(self, name: str, shape: Sequence[int], dtype: str = "float32") -> str:
        """A graph input; its calibration value is standard normal (integers: 0 or 1)."""
        value = self._claim(name)
        ttype = TensorType(tuple(shape), dtype)
        self.inputs[value] = ttype
        if dtype.startswith("float"):
            array = self._calibration_rng.standard_normal(ttype.shape, dtype=np.float32).astype(dtype)
        else:
            array = self._calibration_rng.integers(0, 2, ttype.shape).astype(dtype)
        self._trace[value] = array
        return value

    def constant(self, base: str, array: np.ndarray) -> str:
        """A constant value holding ``array`` (kept as given: the caller does not change it)."""
        value = self._claim(base)
        self.constants[value] = array
        return value

    def normal(self, base: str, shape: Sequence[int], std: float) -> str:
        """A float32 constant drawn from N(0, std^2)."""
        array = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        array *= np.float32(std)
        return self.constant(base, array)

    def uniform(self, base: str, shape: Sequence[int], low: float, high: float) -> str:
        """A float32 constant drawn uniformly from [low, high)."""
        return self.constant(base, self.rng.uniform(low, high, tuple(shape)).astype(np.float32))

    def scalar(self, base: str, value: float, dtype: str = "float32") -> str:
        """A rank-0 constant (broadcast by the binary ops)."""
        return self.constant(base, np.array(value, dtype=dtype))

    def node(self, op: str, inputs: Sequence[str], base: str, **attrs: Any) -> str:
        """Append ``op(*inputs, **attrs)``; returns its single output value, which has the
        node's name."""
        value = self._claim(base)
        self.nodes.append(Node(op, tuple(inputs), (value,), attrs, name=value))
        return value

    def calibrate(self, value: str) -> np.ndarray:
        """``value`` on the calibration input: the nodes appended since the last call run
        now (their ``OpDef.reference``), in order."""
        for node in self.nodes[self._traced_nodes :]:
            arrays = [self._trace[v] if v in self._trace else self.constants[v] for v in node.inputs]
            results = get_op(node.op, node=node.name).reference(node.attrs, arrays)
            self._trace.update(zip(node.outputs, results, strict=True))
        self._traced_nodes = len(self.nodes)
        return self._trace[value]

    def build(self, outputs: Sequence[str]) -> Graph:
        """The finished graph (its constructor infers and checks every type)."""
        self._trace.clear()
        return Graph(self.inputs, self.nodes, outputs, self.constants, name=self.name)

    # --- layers --------------------------------------------------------------------------------

    def conv(
        self,
        x: str,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int],
        base: str,
        strides: Sequence[int] | None = None,
        pads: Sequence[int] | None = None,
        groups: int = 1,
        gain: float = 2.0,
    ) -> str:
        """An ONNX ``Conv`` without bias (layout NC + spatial, weights O x I/groups x
        kernel), He initialised: weight variance ``gain / fan_in`` (gain 2 before a relu)."""
        ndim = len(kernel)
        layout, kernel_layout = CONV_LAYOUTS[ndim]
        fan_in = in_channels // groups * math.prod(kernel)
        shape = (out_channels, in_channels // groups, *kernel)
        weight = self.normal(f"{base}.weight", shape, math.sqrt(gain / fan_in))
        return self.node(
            "conv",
            [x, weight],
            base,
            layout=layout,
            kernel_layout=kernel_layout,
            strides=tuple(strides or (1,) * ndim),
            pads=tuple(pads or (0,) * (2 * ndim)),
            dilations=(1,) * ndim,
            groups=groups,
        )

    def batch_norm(self, x: str, channels: int, base: str, epsilon: float = 1e-5) -> str:
        """Inference batch norm over axis 1 whose running mean and variance are those of
        ``x`` on the calibration input (see the module docstring); gamma in [0.8, 1.2),
        beta ~ N(0, 0.1^2)."""
        data = self.calibrate(x).astype(np.float64)
        axes = tuple(i for i in range(data.ndim) if i != 1)
        gamma = self.uniform(f"{base}.weight", (channels,), 0.8, 1.2)
        beta = self.normal(f"{base}.bias", (channels,), 0.1)
        mean = self.constant(f"{base}.running_mean", data.mean(axis=axes).astype(np.float32))
        var = self.constant(f"{base}.running_var", data.var(axis=axes).astype(np.float32))
        return self.node("batch_norm", [x, gamma, beta, mean, var], base, epsilon=epsilon, axis=1)

    def dense(
        self,
        x: str,
        in_features: int,
        out_features: int,
        base: str,
        std: float | None = None,
        bias_std: float = 0.02,
    ) -> str:
        """ONNX ``Gemm(transB=1)`` plus bias: ``x @ W^T + b`` with W [out, in] of weight
        standard deviation ``std`` (None: 1 / sqrt(fan_in), which keeps the scale)."""
        weight_std = math.sqrt(1.0 / in_features) if std is None else std
        weight = self.normal(f"{base}.weight", (out_features, in_features), weight_std)
        bias = self.normal(f"{base}.bias", (out_features,), bias_std)
        product = self.node("dense", [x, weight], f"{base}.matmul")
        return self.node("add", [product, bias], base)


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for ``graph``: standard normal floats; integer inputs are indices in
    range of every ``take`` that reads them (BERT's token ids), else in [0, 2)."""
    rng = np.random.default_rng(seed)
    consumers = graph.consumers()
    arrays: dict[str, np.ndarray] = {}
    for name, ttype in graph.inputs.items():
        if ttype.dtype.startswith("float"):
            arrays[name] = rng.standard_normal(ttype.shape, dtype=np.float32).astype(ttype.dtype)
            continue
        bound = 2
        takes = [n for n in consumers.get(name, []) if n.op == "take" and n.inputs[1] == name]
        if takes:
            bound = min(graph.types[n.inputs[0]].shape[n.attrs["axis"]] for n in takes)
        arrays[name] = rng.integers(0, bound, ttype.shape).astype(ttype.dtype)
    return arrays
