"""The PyTorch peer of the network benchmark (``benchmarks/torch_graph.py``) computes what
the graph's numpy reference computes: every op of the vocabulary, in each layout and
padding case its lowering treats differently, on seeded random inputs (never zeros), and
the zoo's ResNet-50 and BERT-base end to end (slow)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops import OPS
from ansor_py.network.reference import run_reference
from ansor_py.network.types import TensorType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

torch = pytest.importorskip("torch", reason="PyTorch is optional (pip install torch==2.13.0)")

import torch_graph  # noqa: E402  (needs torch, checked just above)

Shape = tuple[int, ...]


def random_array(rng: np.random.Generator, shape: Shape, dtype: str) -> np.ndarray:
    """Standard normal floats, integers in [-5, 5], booleans half true."""
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(-5, 6, shape).astype(dtype)


def one_node(
    op: str,
    inputs: Sequence[tuple[Shape, str]],
    attrs: Mapping[str, Any] | None = None,
    constant: Sequence[int] = (),
    seed: int = 0,
) -> Graph:
    """A graph of one ``op`` node; the inputs at positions ``constant`` are constants."""
    rng = np.random.default_rng([seed, 7])
    graph_inputs: dict[str, TensorType] = {}
    constants: dict[str, np.ndarray] = {}
    names = []
    for i, (shape, dtype) in enumerate(inputs):
        name = f"in{i}"
        names.append(name)
        if i in constant:
            constants[name] = random_array(rng, shape, dtype)
        else:
            graph_inputs[name] = TensorType(shape, dtype)
    node = Node(op, tuple(names), ("out",), dict(attrs or {}))
    return Graph(graph_inputs, [node], ["out"], constants, name=op)


def random_inputs(graph: Graph, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: random_array(rng, t.shape, t.dtype) for name, t in graph.inputs.items()}


def check(graph: Graph, inputs: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """The peer's outputs equal the reference's: dtype and shape exactly, floats to rtol
    1e-4 and atol 1e-4 times the output's scale (as ``tests/test_benchmark_peers.py``)."""
    inputs = random_inputs(graph) if inputs is None else inputs
    expected = run_reference(graph, inputs)
    got = torch_graph.to_torch(graph)(inputs)
    assert len(got) == len(expected) == len(graph.outputs)
    for value, g, e in zip(graph.outputs, got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape, value
        if e.dtype.kind == "f":
            scale = float(np.abs(e).max())
            assert scale > 0, f"{value}: an all-zero reference checks nothing"
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * scale, err_msg=value)
        else:
            np.testing.assert_array_equal(g, e, err_msg=value)
    return got


F32 = "float32"


def conv_case(
    layout: str, kernel_layout: str, data: Shape, weight: Shape, constant: bool = True, **attrs: Any
):
    attrs = {"layout": layout, "kernel_layout": kernel_layout, **attrs}
    return lambda: one_node("conv", [(data, F32), (weight, F32)], attrs, constant=(1,) if constant else ())


def transpose_case(layout: str, kernel_layout: str, data: Shape, weight: Shape, constant: bool, **attrs: Any):
    attrs = {"layout": layout, "kernel_layout": kernel_layout, **attrs}
    return lambda: one_node(
        "conv_transpose", [(data, F32), (weight, F32)], attrs, constant=(1,) if constant else ()
    )


def pool_case(op: str, layout: str, data: Shape, **attrs: Any):
    return lambda: one_node(op, [(data, F32)], {"layout": layout, **attrs})


NN_CASES: dict[str, Callable[[], Graph]] = {
    "conv2d-stride-pad": conv_case(
        "NCHW", "OIHW", (1, 4, 9, 9), (6, 4, 3, 3), strides=(2, 2), pads=(1, 1, 1, 1)
    ),
    "conv2d-groups-dilation-asym": conv_case(
        "NCHW", "OIHW", (2, 4, 10, 9), (6, 2, 3, 2), groups=2, dilations=(2, 1), pads=(0, 1, 2, 1)
    ),
    "conv2d-depthwise": conv_case("NCHW", "OIHW", (1, 5, 8, 8), (5, 1, 3, 3), groups=5, pads=(1, 1, 1, 1)),
    "conv1d": conv_case("NCW", "OIW", (1, 3, 11), (4, 3, 3), strides=(2,), pads=(1, 0)),
    "conv3d": conv_case("NCDHW", "OIDHW", (1, 2, 5, 6, 6), (3, 2, 3, 3, 3), pads=(1, 1, 1, 1, 1, 1)),
    "conv2d-nhwc-weight-input": conv_case(
        "NHWC", "HWIO", (1, 7, 8, 4), (3, 3, 4, 5), constant=False, strides=(1, 2), pads=(1, 0, 1, 2)
    ),
    "conv2d-nhwc-oihw-grouped": conv_case(
        "NHWC", "OIHW", (1, 6, 6, 4), (4, 2, 3, 3), groups=2, pads=(1, 1, 1, 1)
    ),
    "conv1d-nwc": conv_case("NWC", "WIO", (2, 9, 3), (3, 3, 4), dilations=(2,)),
    "conv3d-ndhwc": conv_case("NDHWC", "DHWIO", (1, 4, 5, 5, 2), (2, 3, 3, 2, 3), pads=(0, 1, 1, 1, 0, 1)),
    "conv_transpose-stride-outpad": transpose_case(
        "NCHW",
        "IOHW",
        (1, 4, 5, 5),
        (4, 3, 3, 3),
        True,
        strides=(2, 2),
        pads=(1, 1, 1, 1),
        output_padding=(1, 1),
    ),
    "conv_transpose-groups-dilation-asym": transpose_case(
        "NCHW",
        "IOHW",
        (1, 4, 4, 5),
        (4, 2, 3, 3),
        True,
        strides=(2, 3),
        pads=(0, 1, 1, 0),
        dilations=(2, 1),
        output_padding=(1, 2),
        groups=2,
    ),
    "conv_transpose-nhwc-weight-input": transpose_case(
        "NHWC", "HWOI", (1, 4, 4, 3), (4, 4, 2, 3), False, strides=(2, 2), pads=(1, 1, 1, 1)
    ),
    "dense": lambda: one_node("dense", [((3, 8), F32), ((5, 8), F32)], constant=(1,)),
    "matmul-2d": lambda: one_node("matmul", [((4, 6), F32), ((6, 3), F32)]),
    "matmul-batched-broadcast": lambda: one_node("matmul", [((2, 1, 3, 4), F32), ((3, 4, 5), F32)]),
    "batch_norm-nchw": lambda: batch_norm_graph((2, 3, 4, 5), 1),
    "batch_norm-nhwc": lambda: batch_norm_graph((1, 4, 5, 3), 3),
    "batch_norm-rank2": lambda: batch_norm_graph((4, 3), 1),
    "layer_norm-last": lambda: one_node(
        "layer_norm", [((2, 5, 8), F32), ((8,), F32), ((8,), F32)], {"axis": 2, "epsilon": 1e-5}, (1, 2)
    ),
    "layer_norm-two-axes": lambda: one_node(
        "layer_norm", [((2, 5, 8), F32), ((5, 8), F32), ((5, 8), F32)], {"axis": 1, "epsilon": 1e-3}, (1, 2)
    ),
    "softmax-axis1": lambda: one_node("softmax", [((2, 7, 3), F32)], {"axis": 1}),
    "softmax-last": lambda: one_node("softmax", [((3, 10), F32)], {"axis": 1}),
    "max_pool-native": pool_case(
        "max_pool", "NCHW", (1, 3, 9, 9), kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)
    ),
    "max_pool-ceil-asym": pool_case(
        "max_pool", "NCHW", (1, 2, 8, 7), kernel=(3, 2), strides=(2, 2), pads=(0, 1, 2, 1), ceil_mode=True
    ),
    "max_pool-dilated-1d": pool_case(
        "max_pool", "NCW", (2, 3, 12), kernel=(3,), dilations=(2,), strides=(2,)
    ),
    "max_pool-3d-channels-last": pool_case(
        "max_pool", "NDHWC", (1, 5, 6, 6, 2), kernel=(2, 3, 3), strides=(1, 2, 2), pads=(0, 1, 1, 1, 1, 1)
    ),
    "avg_pool-exclude-pad-ceil": pool_case(
        "avg_pool", "NCHW", (1, 3, 8, 8), kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), ceil_mode=True
    ),
    "avg_pool-include-pad": pool_case(
        "avg_pool",
        "NCHW",
        (1, 3, 7, 7),
        kernel=(3, 3),
        strides=(2, 2),
        pads=(1, 1, 1, 1),
        count_include_pad=True,
    ),
    "avg_pool-asym-exclude-pad": pool_case(
        "avg_pool", "NHWC", (1, 7, 6, 2), kernel=(3, 3), strides=(2, 2), pads=(0, 2, 2, 1), ceil_mode=True
    ),
    "avg_pool-asym-include-pad-ceil": pool_case(
        "avg_pool",
        "NCHW",
        (1, 2, 8, 7),
        kernel=(3, 2),
        strides=(2, 2),
        pads=(0, 1, 2, 1),
        ceil_mode=True,
        count_include_pad=True,
    ),
    "avg_pool-1d": pool_case("avg_pool", "NCW", (2, 3, 10), kernel=(4,), strides=(3,)),
    "avg_pool-3d": pool_case("avg_pool", "NCDHW", (1, 2, 4, 6, 6), kernel=(2, 2, 2), strides=(2, 2, 2)),
    "global_avg_pool-nchw": pool_case("global_avg_pool", "NCHW", (2, 3, 5, 4)),
    "global_avg_pool-ndhwc": pool_case("global_avg_pool", "NDHWC", (1, 3, 4, 5, 6)),
    "reduce_mean": lambda: one_node("reduce_mean", [((2, 3, 4), F32)], {"axes": (0, 2), "keepdims": True}),
    "reduce_sum": lambda: one_node("reduce_sum", [((2, 3, 4), F32)], {"axes": (1,), "keepdims": False}),
    "reduce_sum-int32": lambda: one_node(
        "reduce_sum", [((4, 5), "int32")], {"axes": (1,), "keepdims": False}
    ),
    "reduce_max": lambda: one_node("reduce_max", [((3, 4, 5), F32)], {"axes": (2, 0), "keepdims": False}),
    "reduce_max-bool": lambda: one_node("reduce_max", [((3, 4), "bool")], {"axes": (1,), "keepdims": True}),
}


def batch_norm_graph(shape: Shape, axis: int) -> Graph:
    channels = shape[axis]
    rng = np.random.default_rng(5)
    params = {
        "gamma": rng.standard_normal(channels).astype(F32),
        "beta": rng.standard_normal(channels).astype(F32),
        "mean": rng.standard_normal(channels).astype(F32),
        "var": rng.uniform(0.5, 2.0, channels).astype(F32),
    }
    node = Node("batch_norm", ("x", *params), ("out",), {"axis": axis, "epsilon": 1e-3})
    return Graph({"x": TensorType(shape, F32)}, [node], ["out"], params, name="batch_norm")


UNARY = ("relu", "sigmoid", "tanh", "erf", "negative", "exp")
BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum")
COMPARE = ("less", "less_equal", "greater", "greater_equal")

ELEMENTWISE_CASES: dict[str, Callable[[], Graph]] = {
    **{op: functools.partial(one_node, op, [((3, 4, 5), F32)]) for op in UNARY},
    "relu-int32": lambda: one_node("relu", [((4, 5), "int32")]),
    "negative-int64": lambda: one_node("negative", [((4, 5), "int64")]),
    "gelu": lambda: one_node("gelu", [((4, 6), F32)], {"approximate": "none"}),
    "gelu-tanh": lambda: one_node("gelu", [((4, 6), F32)], {"approximate": "tanh"}),
    "clip": lambda: one_node("clip", [((4, 6), F32)], {"min": -0.5, "max": 0.75}),
    "clip-min-only": lambda: one_node("clip", [((4, 6), F32)], {"min": 0.1, "max": None}),
    "clip-crossed": lambda: one_node("clip", [((4, 6), F32)], {"min": 1.0, "max": -1.0}),
    "clip-int-inf": lambda: one_node("clip", [((4, 6), "int32")], {"min": -2.0, "max": float("inf")}),
    "cast-float-int": lambda: one_node("cast", [((4, 6), F32)], {"dtype": "int32"}),
    "cast-int-float": lambda: one_node("cast", [((4, 6), "int64")], {"dtype": "float32"}),
    "cast-float-bool": lambda: one_node("cast", [((4, 6), F32)], {"dtype": "bool"}),
    **{op: functools.partial(one_node, op, [((2, 3, 4), F32), ((3, 1), F32)]) for op in BINARY},
    "equal-int64": lambda: one_node("equal", [((6, 5), "int64"), ((1, 5), "int64")]),
    "where": lambda: one_node("where", [((3, 1), "bool"), ((3, 4), F32), ((4,), F32)]),
    "add-scalar-constant": lambda: one_node("add", [((3, 4), F32), ((), F32)], constant=(1,)),
    # comparisons (integers in [-5, 5] tie often, so <= and < differ) and logical ops
    **{op: functools.partial(one_node, op, [((2, 3, 4), F32), ((3, 1), F32)]) for op in COMPARE},
    **{
        f"{op}-int64": functools.partial(one_node, op, [((6, 5), "int64"), ((1, 5), "int64")])
        for op in COMPARE
    },
    "logical_not": lambda: one_node("logical_not", [((4, 6), "bool")]),
    "logical_and": lambda: one_node("logical_and", [((3, 1), "bool"), ((2, 3, 4), "bool")]),
    "logical_or": lambda: one_node("logical_or", [((3, 4), "bool"), ((4,), "bool")]),
}


def positive_power() -> tuple[Graph, dict[str, np.ndarray]]:
    graph = one_node("power", [((3, 4), F32), ((4,), F32)])
    rng = np.random.default_rng(3)
    return graph, {
        "in0": rng.uniform(0.2, 3.0, (3, 4)).astype(F32),
        "in1": rng.standard_normal(4).astype(F32),
    }


def positive_sqrt() -> tuple[Graph, dict[str, np.ndarray]]:
    graph = one_node("sqrt", [((3, 4), F32)])
    return graph, {"in0": np.random.default_rng(4).uniform(0.1, 5.0, (3, 4)).astype(F32)}


def integer_divide() -> tuple[Graph, dict[str, np.ndarray]]:
    """Truncation toward zero on mixed signs, and x / 0 == 0."""
    graph = one_node("divide", [((8,), "int32"), ((8,), "int32")])
    a = np.array([7, -7, 7, -7, 5, -3, 0, 9], np.int32)
    b = np.array([2, 2, -2, -2, 0, 0, 3, 4], np.int32)
    return graph, {"in0": a, "in1": b}


def integer_power() -> tuple[Graph, dict[str, np.ndarray]]:
    graph = one_node("power", [((6, 5), "int32"), ((5,), "int32")])
    rng = np.random.default_rng(8)
    return graph, {"in0": rng.integers(-5, 6, (6, 5)).astype(np.int32), "in1": np.arange(5, dtype=np.int32)}


def take_graph(indices: np.ndarray, axis: int) -> tuple[Graph, dict[str, np.ndarray]]:
    graph = one_node("take", [((4, 5, 3), F32), (indices.shape, str(indices.dtype))], {"axis": axis})
    data = np.random.default_rng(6).standard_normal((4, 5, 3)).astype(F32)
    return graph, {"in0": data, "in1": indices}


TENSOR_CASES: dict[str, Callable[[], Graph]] = {
    "reshape": lambda: one_node("reshape", [((2, 3, 4), F32)], {"shape": (6, 2, 2)}),
    "transpose": lambda: one_node("transpose", [((2, 3, 4), F32)], {"perm": (2, 0, 1)}),
    "concat": lambda: one_node(
        "concat", [((2, 3), F32), ((2, 1), F32), ((2, 4), F32)], {"axis": 1}, constant=(1,)
    ),
    "slice": lambda: one_node(
        "slice", [((6, 7, 5), F32)], {"starts": (1, 0, 0), "ends": (5, 7, 4), "steps": (2, 3, 1)}
    ),
    "slice-negative-steps": lambda: one_node(
        "slice", [((6, 7, 5), F32)], {"starts": (5, 6, 0), "ends": (-1, 1, 4), "steps": (-2, -1, 1)}
    ),
    "broadcast_to": lambda: one_node("broadcast_to", [((3, 1), F32)], {"shape": (2, 3, 4)}),
    "pad": lambda: one_node("pad", [((2, 3, 4), F32)], {"pads": (0, 1, 2, 1, 0, 3), "value": 1.5}),
    "pad-bool": lambda: one_node("pad", [((3, 4), "bool")], {"pads": (0, 1, 2, 0), "value": 0.5}),
    "pad-int": lambda: one_node("pad", [((3, 4), "int32")], {"pads": (1, 0, 0, 2), "value": -7.0}),
}

WITH_INPUTS: dict[str, Callable[[], tuple[Graph, dict[str, np.ndarray]]]] = {
    "power": positive_power,
    "power-int32": integer_power,
    "divide-int32": integer_divide,
    "sqrt": positive_sqrt,
    "take-negative-int64": lambda: take_graph(np.array([[0, -1], [3, -4]], np.int64), axis=0),
    "take-int32": lambda: take_graph(np.array([4, 0, -2], np.int32), axis=1),
}


@pytest.mark.parametrize("case", sorted(NN_CASES))
def test_nn_ops_match_reference(case: str) -> None:
    check(NN_CASES[case]())


@pytest.mark.parametrize("case", sorted(ELEMENTWISE_CASES))
def test_elementwise_ops_match_reference(case: str) -> None:
    check(ELEMENTWISE_CASES[case]())


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_tensor_ops_match_reference(case: str) -> None:
    check(TENSOR_CASES[case]())


@pytest.mark.parametrize("case", sorted(WITH_INPUTS))
def test_ops_on_chosen_inputs_match_reference(case: str) -> None:
    graph, inputs = WITH_INPUTS[case]()
    check(graph, inputs)


def test_every_op_has_a_lowering_and_a_case() -> None:
    assert set(torch_graph.LOWERINGS) == set(OPS)
    graphs = [make() for make in (*NN_CASES.values(), *ELEMENTWISE_CASES.values(), *TENSOR_CASES.values())]
    graphs += [make()[0] for make in WITH_INPUTS.values()]
    assert {node.op for graph in graphs for node in graph.nodes} == set(OPS)


def test_a_chain_frees_values_and_keeps_outputs() -> None:
    """conv -> batch_norm -> relu -> max_pool -> global pool -> dense -> softmax, with an
    intermediate value and a graph input among the outputs (each returned as its own copy)."""
    rng = np.random.default_rng(9)
    constants = {
        "w": rng.standard_normal((8, 3, 3, 3)).astype(F32),
        "gamma": rng.uniform(0.5, 1.5, 8).astype(F32),
        "beta": rng.standard_normal(8).astype(F32),
        "mean": rng.standard_normal(8).astype(F32),
        "var": rng.uniform(0.5, 2.0, 8).astype(F32),
        "fc": rng.standard_normal((5, 8)).astype(F32),
        "bias": rng.standard_normal(5).astype(F32),
    }
    conv_attrs = {"layout": "NCHW", "kernel_layout": "OIHW", "pads": (1, 1, 1, 1)}
    pool_attrs = {"layout": "NCHW", "kernel": (2, 2), "strides": (2, 2)}
    nodes = [
        Node("conv", ("x", "w"), ("c",), conv_attrs),
        Node("batch_norm", ("c", "gamma", "beta", "mean", "var"), ("bn",), {"axis": 1}),
        Node("relu", ("bn",), ("r",)),
        Node("max_pool", ("r",), ("p",), pool_attrs),
        Node("global_avg_pool", ("p",), ("g",), {"layout": "NCHW"}),
        Node("reshape", ("g",), ("flat",), {"shape": (2, 8)}),
        Node("dense", ("flat", "fc"), ("d",)),
        Node("add", ("d", "bias"), ("logits",)),
        Node("softmax", ("logits",), ("prob",), {"axis": 1}),
    ]
    graph = Graph({"x": TensorType((2, 3, 8, 8), F32)}, nodes, ["prob", "r", "x"], constants)
    inputs = random_inputs(graph)
    peer = torch_graph.to_torch(graph)
    first = check(graph, inputs)
    assert not np.shares_memory(first[2], inputs["x"])
    second = peer(inputs)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unsupported_attribute_is_named() -> None:
    graph = one_node(
        "avg_pool", [((1, 2, 8, 8), F32)], {"layout": "NCHW", "kernel": (2, 2), "dilations": (2, 2)}
    )
    with pytest.raises(torch_graph.TorchGraphError, match=r"avg_pool: dilations \(2, 2\)"):
        torch_graph.to_torch(graph)


def test_time_torch_restores_threads() -> None:
    graph = NN_CASES["conv2d-stride-pad"]()
    before = torch.get_num_threads()
    seconds = torch_graph.time_torch(graph, random_inputs(graph), threads=1, repeat=2, min_repeat_ms=1.0)
    assert 0.0 < seconds < 1.0
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads = 0 must be >= 1"):
        torch_graph.time_torch(graph, random_inputs(graph), threads=0)


@pytest.mark.slow
@pytest.mark.parametrize("network", ["resnet50", "bert_base"])
def test_zoo_network_matches_reference(network: str) -> None:
    from ansor_py.network.zoo import NETWORKS
    from ansor_py.network.zoo import random_inputs as zoo_inputs

    graph = NETWORKS[network]()
    check(graph, zoo_inputs(graph, seed=0))
