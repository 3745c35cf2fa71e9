"""The graph passes, each alone: the graph before and after a pass give the same
``run_reference`` results on random inputs, and the structure changed as intended."""

from __future__ import annotations

import numpy as np
import pytest
from graph_builders import SmallNet, random_inputs
from op_checks import assert_scaled_close

from ansor_py.network.graph import Graph, Node
from ansor_py.network.passes import optimize
from ansor_py.network.passes.convert_layout import convert_layout
from ansor_py.network.passes.eliminate_dead_code import eliminate_dead_code
from ansor_py.network.passes.fold_batch_norm import fold_batch_norm
from ansor_py.network.passes.fold_constants import fold_constants
from ansor_py.network.passes.simplify import simplify
from ansor_py.network.reference import run_reference


class Net(SmallNet):
    """``SmallNet`` with the NCHW layers an imported network starts from."""

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> str:
        w = self.random(cout, cin // groups, k, k)
        p = k // 2
        return self.node(
            "conv", x, w, layout="NCHW", kernel_layout="OIHW", strides=(stride, stride),
            pads=(p, p, p, p), dilations=(1, 1), groups=groups,
        )  # fmt: skip

    def bn(self, x: str, channels: int, axis: int = 1) -> str:
        params = [self.random(channels, low=0.5, high=1.5), self.random(channels), self.random(channels)]
        params.append(self.random(channels, low=0.5, high=1.5))
        return self.node("batch_norm", x, *params, epsilon=1e-5, axis=axis)


def assert_same(before: Graph, after: Graph) -> None:
    inputs = random_inputs(before)
    expected, got = run_reference(before, inputs), run_reference(after, inputs)
    assert len(expected) == len(got)
    for e, g in zip(expected, got, strict=True):
        assert_scaled_close(g, e)


def resnet_like(channels: int = 8) -> Graph:
    """conv-bn-relu, max pool, two residual blocks, global pool, flatten, dense, softmax."""
    net = Net()
    x = net.input("x", (1, 3, 16, 16))
    y = net.node("relu", net.bn(net.conv(x, 3, channels, 3, 2), channels))
    y = net.node(
        "max_pool", y, layout="NCHW", kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
        dilations=(1, 1), ceil_mode=False,
    )  # fmt: skip
    for _ in range(2):
        t = net.node("relu", net.bn(net.conv(y, channels, channels), channels))
        t = net.bn(net.conv(t, channels, channels), channels)
        y = net.node("relu", net.node("add", t, y))
    y = net.node("reshape", net.node("global_avg_pool", y, layout="NCHW"), shape=(1, channels))
    y = net.node("add", net.node("dense", y, net.random(10, channels)), net.random(10))
    return net.build(net.node("softmax", y, axis=1))


# --- simplify --------------------------------------------------------------------------------


def test_simplify_drops_no_ops_and_keeps_output_names():
    net = Net()
    x = net.input("x", (2, 3, 4))
    y = net.node("reshape", x, shape=(2, 3, 4))
    y = net.node("transpose", y, perm=(0, 1, 2))
    y = net.node("relu", net.node("cast", y, dtype="float32"))
    y = net.node("slice", y, starts=(0, 0, 0), ends=(2, 3, 4), steps=(1, 1, 1))
    z = net.node("exp", y)
    out = net.node("reshape", z, shape=(2, 3, 4))  # a no-op that is a graph output
    kept = net.node("slice", y, starts=(1, 0, 0), ends=(2, 3, 4), steps=(1, 1, 1))  # not a no-op
    graph = net.build(out, kept)
    simple = simplify(graph)
    assert simple.op_counts() == {"relu": 1, "exp": 1, "slice": 1}
    assert simple.outputs == graph.outputs
    assert simple.producer()[out].op == "exp"  # the exp now defines the output's name
    assert_same(graph, simple)


def test_simplify_keeps_a_no_op_that_returns_a_graph_input():
    net = Net()
    x = net.input("x", (2, 3))
    graph = net.build(net.node("reshape", x, shape=(2, 3)))
    assert simplify(graph).op_counts() == {"reshape": 1}


def test_simplify_collapses_reshape_chains():
    net = Net()
    x = net.input("x", (2, 12))
    y = net.node("reshape", net.node("reshape", x, shape=(2, 3, 4)), shape=(6, 4))
    graph = net.build(net.node("relu", y))
    simple = simplify(graph)
    assert simple.op_counts() == {"reshape": 1, "relu": 1}
    assert simple.nodes[0].inputs == ("x",)
    assert_same(graph, simple)


# --- fold_constants --------------------------------------------------------------------------


def test_fold_constants_evaluates_constant_chains():
    net = Net()
    x = net.input("x", (4, 3))
    a, b = net.random(3, 4), net.random(4)
    weight = net.node("transpose", net.node("add", a, b), perm=(1, 0))  # all constant
    scale = net.node("exp", net.random(3))  # constant too
    graph = net.build(net.node("multiply", net.node("add", x, weight), scale))
    folded = fold_constants(graph)
    assert folded.op_counts() == {"add": 1, "multiply": 1}
    assert set(folded.constants) == {weight, scale}  # a, b and exp's input are read no more
    np.testing.assert_allclose(folded.constants[weight], (graph.constants[a] + graph.constants[b]).T)
    assert_same(graph, folded)


# --- fold_batch_norm -------------------------------------------------------------------------


def test_batch_norm_folds_into_conv_weights():
    net = Net()
    x = net.input("x", (1, 4, 8, 8))
    y = net.node("relu", net.bn(net.conv(x, 4, 6), 6))
    graph = net.build(y)
    folded = fold_batch_norm(graph)
    assert folded.op_counts() == {"conv": 1, "add": 1, "relu": 1}
    bias = folded.constants[folded.nodes[1].inputs[1]]
    assert bias.shape == (6, 1, 1)
    assert_same(graph, folded)


def test_batch_norm_folds_through_a_bias_add_and_into_dense():
    net = Net()
    x = net.input("x", (1, 4, 8, 8))
    y = net.bn(net.node("add", net.conv(x, 4, 6, k=1), net.random(6, 1, 1)), 6)
    flat = net.node("reshape", net.node("global_avg_pool", y, layout="NCHW"), shape=(1, 6))
    z = net.bn(net.node("dense", flat, net.random(5, 6)), 5)
    graph = net.build(z)
    folded = fold_batch_norm(graph)
    assert "batch_norm" not in folded.op_counts()
    assert folded.op_counts()["add"] == 2 and "multiply" not in folded.op_counts()
    assert_same(graph, folded)


def test_batch_norm_folds_into_nhwc_conv_and_conv_transpose():
    net = Net()
    x = net.input("x", (1, 5, 5, 4))
    w = net.random(3, 3, 4, 6)
    y = net.node(
        "conv", x, w, layout="NHWC", kernel_layout="HWIO", strides=(1, 1), pads=(1, 1, 1, 1),
        dilations=(1, 1), groups=1,
    )  # fmt: skip
    y = net.bn(y, 6, axis=3)
    t = net.node(
        "conv_transpose", y, net.random(3, 3, 5, 6), layout="NHWC", kernel_layout="HWOI",
        strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1), output_padding=(1, 1), groups=1,
    )  # fmt: skip
    graph = net.build(net.bn(t, 5, axis=3))
    folded = fold_batch_norm(graph)
    assert folded.op_counts() == {"conv": 1, "add": 2, "conv_transpose": 1}
    assert_same(graph, folded)


def test_batch_norm_elsewhere_becomes_multiply_add():
    net = Net()
    x = net.input("x", (1, 4, 6, 6))
    c = net.conv(x, 4, 4)
    shared = net.node("relu", c)  # the conv's output has a second reader: no folding
    y = net.node("add", net.bn(c, 4), shared)
    z = net.bn(net.input("v", (2, 3, 4)), 4, axis=2)  # after a graph input
    graph = net.build(y, z)
    folded = fold_batch_norm(graph)
    assert folded.op_counts() == {"conv": 1, "relu": 1, "multiply": 2, "add": 3}
    assert_same(graph, folded)


def test_batch_norm_with_computed_parameters_is_expanded():
    net = Net()
    x = net.input("x", (2, 3, 4))
    gamma = net.input("gamma", (3,))
    beta, mean, var = net.random(3), net.random(3), net.random(3, low=0.5, high=1.5)
    graph = net.build(net.node("batch_norm", x, gamma, beta, mean, var, epsilon=1e-3, axis=1))
    folded = fold_batch_norm(graph)
    assert "batch_norm" not in folded.op_counts() and folded.op_counts()["sqrt"] == 1
    assert_same(graph, folded)


# --- eliminate_dead_code ---------------------------------------------------------------------


def test_eliminate_dead_code_drops_unread_nodes_and_constants():
    net = Net()
    x = net.input("x", (3, 4))
    dead = net.node("exp", net.node("add", x, net.random(4)))
    live = net.node("relu", net.node("multiply", x, net.random(4)))
    graph = net.build(live)
    clean = eliminate_dead_code(graph)
    assert dead not in clean.types
    assert clean.op_counts() == {"multiply": 1, "relu": 1} and len(clean.constants) == 1
    assert_same(graph, clean)


# --- optimize --------------------------------------------------------------------------------


def test_optimize_nhwc_and_nchw():
    graph = resnet_like()
    nhwc = optimize(graph)
    counts = nhwc.op_counts()
    assert "batch_norm" not in counts and counts["transpose"] == 1 and counts["conv"] == 5
    assert all(n.attrs["layout"] == "NHWC" for n in nhwc.nodes if n.op == "conv")
    assert_same(graph, nhwc)
    nchw = optimize(graph, layout="NCHW")
    assert "transpose" not in nchw.op_counts() and "batch_norm" not in nchw.op_counts()
    assert_same(graph, nchw)
    with pytest.raises(ValueError, match="layout 'NCWH' is not one of"):
        optimize(graph, layout="NCWH")


# --- convert_layout --------------------------------------------------------------------------


def conv_nodes(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op in ("conv", "conv_transpose")]


def test_convert_layout_resnet_like_has_one_transpose_at_the_input():
    graph = fold_batch_norm(resnet_like())
    nhwc = convert_layout(graph)
    transposes = [n for n in nhwc.nodes if n.op == "transpose"]
    assert [t.inputs for t in transposes] == [("x",)]
    for conv in conv_nodes(nhwc):
        assert (conv.attrs["layout"], conv.attrs["kernel_layout"]) == ("NHWC", "HWIO")
        assert nhwc.is_constant(conv.inputs[1]) and nhwc.types[conv.inputs[1]].shape[-1] == 8
    biases = [v for n in nhwc.nodes if n.op == "add" for v in n.inputs if nhwc.is_constant(v)]
    assert {nhwc.types[v].shape for v in biases} == {(8,), (10,)}  # (C, 1, 1) became (C,)
    pool = next(n for n in nhwc.nodes if n.op == "global_avg_pool")
    assert pool.attrs["layout"] == "NHWC"
    assert nhwc.consumers()[pool.output][0].op == "reshape"  # the flatten reads NHWC directly
    assert_same(graph, nhwc)
    with_bn = convert_layout(resnet_like())  # batch norms not folded: their axis follows
    assert {n.attrs["axis"] for n in with_bn.nodes if n.op == "batch_norm"} == {3}
    assert with_bn.op_counts()["transpose"] == 1
    assert_same(resnet_like(), with_bn)


def test_convert_layout_depthwise_and_3d():
    net = Net()
    x = net.input("x", (1, 6, 7, 7))
    y = net.node("clip", net.conv(x, 6, 6, groups=6), min=0.0, max=6.0)
    v = net.input("v", (1, 2, 4, 5, 5))
    w = net.random(3, 2, 3, 3, 3)
    z = net.node(
        "conv", v, w, layout="NCDHW", kernel_layout="OIDHW", strides=(1, 2, 2),
        pads=(1, 1, 1, 1, 1, 1), dilations=(1, 1, 1), groups=1,
    )  # fmt: skip
    graph = net.build(y, net.node("relu", z))
    nhwc = convert_layout(graph)
    layouts = {(n.attrs["layout"], n.attrs["kernel_layout"]) for n in conv_nodes(nhwc)}
    assert layouts == {("NHWC", "HWIO"), ("NDHWC", "DHWIO")}
    depthwise = conv_nodes(nhwc)[0]
    assert nhwc.types[depthwise.inputs[1]].shape == (3, 3, 1, 6)
    assert nhwc.op_counts()["transpose"] == 4  # each input in, each output back
    assert_same(graph, nhwc)


def test_convert_layout_cancels_transpose_pairs():
    net = Net()
    x = net.input("x", (1, 3, 6, 6))
    y = net.node("transpose", net.conv(x, 3, 4), perm=(0, 2, 3, 1))  # the model wants NHWC
    graph = net.build(net.node("relu", y))
    nhwc = convert_layout(graph)
    assert nhwc.op_counts() == {"transpose": 1, "conv": 1, "relu": 1}  # only at the input
    assert_same(graph, nhwc)


def test_convert_layout_remaps_axes_of_layout_aware_ops():
    net = Net()
    x = net.input("x", (1, 3, 6, 6))
    a, b = net.conv(x, 3, 4), net.conv(x, 3, 2)
    cat = net.node("concat", a, b, axis=1)
    padded = net.node("pad", cat, pads=(0, 0, 1, 0, 0, 1, 0, 2), value=0.5)
    cut = net.node("slice", padded, starts=(0, 1, 0, 6), ends=(1, 5, 7, -1), steps=(1, 2, 1, -2))
    soft = net.node("softmax", cut, axis=1)
    mean = net.node("reduce_mean", soft, axes=(2, 3), keepdims=False)
    total = net.node("reduce_sum", soft, axes=(1,), keepdims=True)
    y = net.input("y", (1, 2, 1, 1))
    mixed = net.node("add", net.node("multiply", soft, y), net.input("z", (1, 2, 7, 4)))
    graph = net.build(mean, total, mixed)
    nhwc = convert_layout(graph)
    assert all(n.attrs["layout"] == "NHWC" for n in conv_nodes(nhwc))
    assert next(n for n in nhwc.nodes if n.op == "concat").attrs["axis"] == 3
    assert next(n for n in nhwc.nodes if n.op == "softmax").attrs["axis"] == 3
    assert next(n for n in nhwc.nodes if n.op == "reduce_mean").attrs["axes"] == (1, 2)
    assert_same(graph, nhwc)


def test_convert_layout_moves_broadcast_operands():
    net = Net()
    x = net.input("x", (1, 3, 5, 5))
    c = net.conv(x, 3, 4)
    per_channel = net.input("s", (4, 1, 1))  # not a constant: reshaped, then moved
    y = net.node("multiply", net.node("add", c, net.random(4, 1, 1)), per_channel)
    y = net.node("where", net.node("equal", y, net.random(1, 1, 1, 5)), y, net.random(5, 1))
    graph = net.build(net.node("relu", y))
    nhwc = convert_layout(graph)
    assert next(n for n in nhwc.nodes if n.op == "where").inputs[1].endswith("_nhwc")
    assert_same(graph, nhwc)


@pytest.mark.parametrize(
    ("out_channels", "kernel_layout", "weight_shape"),
    [(2, "HWOI", (4, 4, 2, 4)), (8, "HWIO", (4, 4, 4, 8))],
)
def test_convert_layout_conv_transpose(out_channels: int, kernel_layout: str, weight_shape: tuple) -> None:
    """IOHW weights become HWIO (vectorised over output channels, as a convolution), or
    HWOI when there are fewer than 8 output channels (DCGAN's RGB layer)."""
    net = Net()
    z = net.input("z", (1, 4, 3, 3))
    t = net.node(
        "conv_transpose", z, net.random(4, out_channels, 4, 4), layout="NCHW", kernel_layout="IOHW",
        strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1), output_padding=(0, 0), groups=1,
    )  # fmt: skip
    graph = net.build(net.node("tanh", t))
    nhwc = convert_layout(graph)
    conv = conv_nodes(nhwc)[0]
    assert (conv.attrs["layout"], conv.attrs["kernel_layout"]) == ("NHWC", kernel_layout)
    assert nhwc.types[conv.inputs[1]].shape == weight_shape
    assert_same(graph, nhwc)
