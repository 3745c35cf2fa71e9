"""The graph IR itself: construction checks (``GraphError`` naming the node), type
inference, the printer (golden text), ``replace`` leaving the original alone, and the
reference executor's input checks (``InputError``)."""

from __future__ import annotations

import numpy as np
import pytest

from ansor_py.network.graph import Graph, Node, print_graph, unique_name
from ansor_py.network.reference import InputError, run_reference
from ansor_py.network.types import GraphError, TensorType


def small_graph() -> Graph:
    """y = relu(x @ w.T + b), with a 2x3 input."""
    rng = np.random.default_rng(0)
    constants = {
        "w": rng.standard_normal((4, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    nodes = [
        Node("dense", ("x", "w"), ("h",), name="fc"),
        Node("add", ("h", "b"), ("hb",), name="bias"),
        Node("relu", ("hb",), ("y",), name="act"),
    ]
    return Graph({"x": TensorType((2, 3))}, nodes, ["y"], constants, name="mlp")


def test_types_are_inferred_for_every_value() -> None:
    graph = small_graph()
    assert graph.types == {
        "x": TensorType((2, 3)),
        "w": TensorType((4, 3)),
        "b": TensorType((4,)),
        "h": TensorType((2, 4)),
        "hb": TensorType((2, 4)),
        "y": TensorType((2, 4)),
    }
    assert graph.op_counts() == {"dense": 1, "add": 1, "relu": 1}
    assert graph.weight_bytes() == (12 + 4) * 4
    assert graph.producer()["hb"].name == "bias"
    assert [n.name for n in graph.consumers()["h"]] == ["bias"]


def test_the_printer_shows_inputs_constants_nodes_and_types() -> None:
    text = print_graph(small_graph())
    assert text == "\n".join(
        [
            "graph mlp(",
            "  %x: float32[2, 3],",
            ") {",
            "  %w = constant float32[4, 3]",
            "  %b = constant float32[4]",
            "  %h = dense(%x, %w)  # float32[2, 4]",
            "  %hb = add(%h, %b)  # float32[2, 4]",
            "  %y = relu(%hb)  # float32[2, 4]",
            "  return %y",
            "}",
        ]
    )
    assert str(small_graph()) == text
    attrs = Node("transpose", ("x",), ("t",), {"perm": (1, 0)}, name="t")
    graph = Graph({"x": TensorType((2, 3), "int64")}, [attrs], ["t"])
    assert "  %t = transpose(%x, perm=(1, 0))  # int64[3, 2]" in str(graph)


@pytest.mark.parametrize(
    ("nodes", "outputs", "message"),
    [
        ([Node("frobnicate", ("x",), ("y",), name="n1")], ["y"], r"node 'n1': unknown op 'frobnicate'"),
        ([Node("relu", ("z",), ("y",), name="n1")], ["y"], r"node 'n1' \(relu\) reads \['z'\], not defined"),
        ([Node("relu", ("x",), ("x",), name="n1")], ["x"], r"node 'n1' \(relu\) redefines value 'x'"),
        (
            [Node("relu", ("x",), ("y",), name="n1"), Node("relu", ("y",), ("z",), name="n1")],
            ["z"],
            r"two nodes are named 'n1'",
        ),
        ([Node("relu", ("x",), ("y",), name="n1")], ["nope"], r"graph output 'nope' is not defined"),
        ([Node("relu", ("x", "x"), ("y",), name="n1")], ["y"], r"node 'n1': op 'relu' takes 1 inputs, got 2"),
        (
            [Node("add", ("x", "v"), ("y",), name="n1")],
            ["y"],
            r"node 'n1' \(add\): .*\[2, 3\].*\[5\]",
        ),
    ],
)
def test_a_malformed_graph_is_refused_naming_the_node(
    nodes: list[Node], outputs: list[str], message: str
) -> None:
    with pytest.raises(GraphError, match=message):
        Graph(
            {"x": TensorType((2, 3))},
            nodes,
            outputs,
            {"v": np.ones(5, np.float32)},
        )


def test_inputs_and_constants_are_checked() -> None:
    with pytest.raises(GraphError, match="value 'x' is both a graph input and a constant"):
        Graph({"x": TensorType((2,))}, [], ["x"], {"x": np.ones(2, np.float32)})
    with pytest.raises(GraphError, match="constant 'c': expected a numpy array, got list"):
        Graph({}, [], ["c"], {"c": [1.0]})  # type: ignore[dict-item]
    with pytest.raises(GraphError, match="negative dimension"):
        TensorType((2, -1))


def test_replace_builds_a_new_graph_and_leaves_the_old_one() -> None:
    graph = small_graph()
    before = str(graph)
    shorter = graph.replace(nodes=graph.nodes[:2], outputs=["hb"])
    assert str(graph) == before and len(graph.nodes) == 3
    assert shorter.outputs == ("hb",) and "y" not in shorter.types
    assert graph.nodes[0].with_(name="other").name == "other" and graph.nodes[0].name == "fc"


def test_unique_name() -> None:
    assert unique_name("a", []) == "a"
    assert unique_name("a", ["a", "a_1"]) == "a_2"


def test_the_reference_executor_runs_the_graph() -> None:
    graph = small_graph()
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    (y,) = run_reference(graph, {"x": x})
    expected = np.maximum(x @ graph.constants["w"].T + graph.constants["b"], 0)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert y.dtype == np.float32


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, r"network 'mlp': input 'x' \(float32\[2, 3\]\) is missing"),
        ({"x": np.ones((2, 3), np.float32), "z": np.ones(1)}, r"network 'mlp' has no input \['z'\]"),
        (
            {"x": np.ones((3, 2), np.float32)},
            r"input 'x' is float32\[3, 2\], the network takes float32\[2, 3\]",
        ),
        (
            {"x": np.ones((2, 3), np.float64)},
            r"input 'x' is float64\[2, 3\], the network takes float32\[2, 3\]",
        ),
        ({"x": [[1.0, 2.0, 3.0]] * 2}, r"input 'x' must be a numpy array, got list"),
    ],
)
def test_wrong_inputs_are_refused_by_name(inputs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        run_reference(small_graph(), inputs)  # type: ignore[arg-type]


def test_a_scalar_input_keeps_its_shape() -> None:
    graph = Graph({"s": TensorType(())}, [Node("negative", ("s",), ("t",), name="neg")], ["t"])
    (t,) = run_reference(graph, {"s": np.array(2.5, np.float32)})
    assert t.shape == () and float(t) == -2.5
