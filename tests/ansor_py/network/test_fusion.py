"""Fusion (Relay FuseOps rules): the groups are as intended on small graphs, and each
subgraph's ComputeDAG, evaluated by ``ir.reference``, equals the graph's reference on the
nodes it covers, on random inputs."""

from __future__ import annotations

import numpy as np
from graph_builders import SmallNet, random_inputs
from op_checks import assert_scaled_close

from ansor_py.network.fusion import fuse
from ansor_py.network.graph import Graph
from ansor_py.network.ops import get_op
from ansor_py.network.subgraph import Subgraph
from ir.reference import evaluate


class Net(SmallNet):
    """``SmallNet`` with the convolution the network layer fuses: NHWC, after ``optimize``."""

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1) -> str:
        """An NHWC conv with an HWIO weight and a per-channel bias (as after optimize)."""
        w = self.random(k, k, cin, cout)
        p = k // 2
        y = self.node(
            "conv", x, w, layout="NHWC", kernel_layout="HWIO", strides=(stride, stride),
            pads=(p, p, p, p), dilations=(1, 1), groups=1,
        )  # fmt: skip
        return self.node("add", y, self.random(cout))


def all_values(graph: Graph, seed: int = 1) -> dict[str, np.ndarray]:
    """Every value of ``graph`` on random inputs, from each op's numpy reference."""
    values = random_inputs(graph, seed)
    values.update(graph.constants)
    for node in graph.nodes:
        results = get_op(node.op).reference(node.attrs, [values[v] for v in node.inputs])
        values.update(zip(node.outputs, results, strict=True))
    return values


def check_subgraphs(graph: Graph, subgraphs: list[Subgraph]) -> None:
    """Every node in exactly one subgraph, in an executable order, and each DAG equal to
    the nodes it covers."""
    covered = [n.name for s in subgraphs for n in s.nodes]
    assert sorted(covered) == sorted(n.name for n in graph.nodes)
    values = all_values(graph)
    available = set(graph.inputs) | set(graph.constants)
    for subgraph in subgraphs:
        assert set(subgraph.inputs) <= available, subgraph.name
        dag = subgraph.dag
        assert [t.name for t in dag.placeholders] == [f"p{k}" for k in range(len(subgraph.inputs))]
        results = evaluate(dag, [values[v] for v in subgraph.inputs])
        for value, got in zip(subgraph.outputs, results, strict=True):
            assert_scaled_close(got, values[value])
        available.update(subgraph.outputs)
    assert set(graph.outputs) <= available
    assert len({s.name for s in subgraphs}) == len(subgraphs)


def ops_of(subgraphs: list[Subgraph]) -> list[list[str]]:
    return [[n.op for n in s.nodes] for s in subgraphs]


def test_conv_takes_bias_relu_and_residual_add():
    net = Net()
    x = net.input("x", (1, 6, 6, 4))
    a = net.node("relu", net.conv(x, 4, 4))
    b = net.node("relu", net.node("add", net.conv(a, 4, 4), x))
    graph = net.build(b)
    subgraphs = fuse(graph)
    assert ops_of(subgraphs) == [["conv", "add", "relu"], ["conv", "add", "add", "relu"]]
    assert subgraphs[0].desc == "conv2d_nhwc + bias + relu, 1x6x6x4 -> 4, 3x3"
    assert subgraphs[1].desc == "conv2d_nhwc + bias + add + relu, 1x6x6x4 -> 4, 3x3"
    assert [s.name for s in subgraphs] == ["fused_conv_add_relu", "fused_conv_add_add_relu"]
    assert subgraphs[1].inputs == (a, "c2", "c3", x)  # the conv's data, weight, bias, residual
    computes = [op.name for op in subgraphs[1].dag.ops if not op.name.startswith("p")]
    assert computes[-3:] == ["T_add", "T_add_1", "T_relu"] and "T_conv" in computes
    check_subgraphs(graph, subgraphs)


def test_identical_blocks_share_a_workload_key():
    net = Net()
    x = net.input("x", (1, 6, 6, 4))
    y = net.node("relu", net.conv(x, 4, 4))
    y = net.node("relu", net.conv(y, 4, 4))
    y = net.node("relu", net.conv(y, 4, 8, stride=2))
    graph = net.build(y)
    subgraphs = fuse(graph)
    keys = [s.workload_key for s in subgraphs]
    assert keys[0] == keys[1] != keys[2]
    assert subgraphs[0].name != subgraphs[1].name
    assert subgraphs[2].desc == "conv2d_nhwc + bias + relu, 1x6x6x4 -> 8, 3x3, stride 2"
    check_subgraphs(graph, subgraphs)


def test_a_value_read_outside_ends_the_epilogue():
    net = Net()
    x = net.input("x", (1, 5, 5, 3))
    c = net.conv(x, 3, 4)  # conv + bias, read by relu and by the add
    r = net.node("relu", c)
    y = net.node("add", net.node("sigmoid", r), c)
    graph = net.build(y, r)
    subgraphs = fuse(graph)
    assert ops_of(subgraphs) == [["conv", "add"], ["relu"], ["sigmoid", "add"]]
    check_subgraphs(graph, subgraphs)


def test_two_anchors_into_one_add():
    net = Net()
    x = net.input("x", (1, 5, 5, 3))
    y = net.node("relu", net.node("add", net.conv(x, 3, 4), net.conv(x, 3, 4, k=1)))
    graph = net.build(y)
    subgraphs = fuse(graph)
    # the first conv takes the add; the second one's result is an input of that group
    assert ops_of(subgraphs) == [["conv", "add"], ["conv", "add", "add", "relu"]]
    check_subgraphs(graph, subgraphs)


def test_injective_chain_fuses_into_its_consumer_not_into_an_anchor():
    net = Net()
    x = net.input("x", (2, 3, 8))
    t = net.node("reshape", net.node("transpose", x, perm=(1, 0, 2)), shape=(3, 16))
    y = net.node("add", t, net.random(16))
    d = net.node("dense", net.node("reshape", y, shape=(3, 16)), net.random(5, 16))
    graph = net.build(d)
    subgraphs = fuse(graph)
    assert ops_of(subgraphs) == [["transpose", "reshape", "add", "reshape"], ["dense"]]
    assert subgraphs[0].desc == "transpose + reshape + bias + reshape, 2x3x8 -> 3x16"
    assert subgraphs[1].desc == "dense, 3x16 -> 5"
    check_subgraphs(graph, subgraphs)


def test_reduce_takes_its_prologue_and_opaque_ops_stay_alone():
    net = Net()
    x = net.input("x", (4, 10))
    s = net.node("reduce_sum", net.node("multiply", net.node("exp", x), x), axes=(1,), keepdims=True)
    y = net.node("softmax", net.node("divide", x, s), axis=1)
    n = net.node("layer_norm", net.node("relu", y), net.random(10), net.random(10), axis=1, epsilon=1e-5)
    graph = net.build(n)
    subgraphs = fuse(graph)
    assert ops_of(subgraphs) == [
        ["exp", "multiply", "reduce_sum"],
        ["divide"],
        ["softmax"],
        ["relu"],
        ["layer_norm"],
    ]
    check_subgraphs(graph, subgraphs)


def test_pools_and_depthwise_descriptions():
    net = Net()
    x = net.input("x", (1, 8, 8, 4))
    m = net.node(
        "max_pool", x, layout="NHWC", kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
        dilations=(1, 1), ceil_mode=False,
    )  # fmt: skip
    d = net.node(
        "conv", m, net.random(3, 3, 1, 4), layout="NHWC", kernel_layout="HWIO", strides=(1, 1),
        pads=(1, 1, 1, 1), dilations=(1, 1), groups=4,
    )  # fmt: skip
    d = net.node("clip", d, min=0.0, max=6.0)
    g = net.node("reshape", net.node("global_avg_pool", d, layout="NHWC"), shape=(1, 4))
    graph = net.build(g)
    subgraphs = fuse(graph)
    assert [s.desc for s in subgraphs] == [
        "max_pool2d_nhwc, 1x8x8x4, 3x3, stride 2",
        "depthwise_conv2d_nhwc + clip, 1x4x4x4 -> 4, 3x3",
        "global_avg_pool2d_nhwc, 1x4x4x4",
        "reshape, 1x1x1x4 -> 1x4",
    ]
    check_subgraphs(graph, subgraphs)


def test_dead_and_multi_reader_values():
    net = Net()
    x = net.input("x", (3, 4))
    shared = net.node("reshape", net.node("transpose", x, perm=(1, 0)), shape=(12,))
    net.node("exp", shared)  # dead: nobody reads it, it is no graph output
    y = net.node("add", shared, net.random(12))
    graph = net.build(y, net.node("negative", shared))
    subgraphs = fuse(graph)
    assert ops_of(subgraphs) == [["transpose", "reshape"], ["exp"], ["add"], ["negative"]]
    check_subgraphs(graph, subgraphs)


def test_a_diamond_epilogue_fuses_into_its_anchor() -> None:
    """dense + bias + GELU (x * 0.5 * (1 + erf(x / sqrt 2))): the biased x has two
    consumers, both inside the epilogue, so the whole diamond is one group (Relay fuses
    into the post-dominator)."""
    net = Net()
    x = net.input("x", (8, 16))
    h = net.node("add", net.node("dense", x, net.random(24, 16)), net.random(24))
    erf = net.node("erf", net.node("divide", h, net.random(1)))
    gelu = net.node("multiply", net.node("multiply", h, net.node("add", erf, net.random(1))), net.random(1))
    graph = net.build(net.node("relu", gelu))
    subgraphs = fuse(graph)
    assert [[n.op for n in s.nodes] for s in subgraphs] == [
        ["dense", "add", "divide", "erf", "add", "multiply", "multiply", "relu"]
    ]
    check_subgraphs(graph, subgraphs)


def test_a_diamond_that_leaves_two_values_stops_before_the_split() -> None:
    """When the anchor's biased output is also read by a later, unfusable op (softmax), the
    group cannot take the branches: it ends where it still has one output."""
    net = Net()
    x = net.input("x", (8, 16))
    h = net.node("add", net.node("dense", x, net.random(24, 16)), net.random(24))
    s = net.node("softmax", h, axis=1)
    r = net.node("relu", h)
    graph = net.build(net.node("add", s, r))
    groups = [[n.op for n in sg.nodes] for sg in fuse(graph)]
    assert groups[0] == ["dense", "add"]
    check_subgraphs(graph, fuse(graph))


def test_an_operand_that_depends_on_the_group_is_not_fused() -> None:
    """relu(h) + softmax(h): the add's second operand is computed from the group's own
    output outside the group, so fusing the add would make a cycle between kernels."""
    net = Net()
    x = net.input("x", (8, 16))
    h = net.node("dense", x, net.random(24, 16))
    r = net.node("relu", h)
    s = net.node("softmax", h, axis=1)
    graph = net.build(net.node("add", r, s))
    subgraphs = fuse(graph)
    # taking relu would leave the dense group two outputs (h for softmax, relu for the add);
    # relu then joins its consumer, the add
    assert [[n.op for n in sg.nodes] for sg in subgraphs] == [["dense"], ["softmax"], ["relu", "add"]]
    check_subgraphs(graph, subgraphs)
