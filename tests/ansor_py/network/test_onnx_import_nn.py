"""ONNX import of the nn ops, per op and attribute variant, against onnxruntime: Conv,
ConvTranspose, Gemm, MatMul, BatchNormalization, LayerNormalization, Softmax, the pools and
ReduceMean (attribute axes before opset 18, input axes from 18)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx", reason="the ONNX frontend needs onnx (pip install onnx)")
pytest.importorskip("onnxruntime", reason="the ONNX import tests compare with onnxruntime")

from onnx_cases import Case, check_case, ints, node, weights

F = "float32"


def conv(case_id, x, w, bias=True, opsets=(13, 18), **attrs):
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    inits = {"w": weights(*w)}
    if bias:
        inits["b"] = weights(w[0])
    return Case(case_id, [node("Conv", inputs, ["y"], **attrs)], {"x": (x, F)}, {"y": F}, inits, opsets)


CONV_CASES = [
    conv("conv-3x3-pad1-bias", (1, 3, 7, 9), (4, 3, 3, 3), pads=[1, 1, 1, 1]),
    conv("conv-stride2-odd", (2, 3, 11, 7), (5, 3, 3, 2), bias=False, strides=[2, 2]),
    conv("conv-dilation2", (1, 2, 9, 10), (3, 2, 3, 3), dilations=[2, 2], pads=[2, 1, 2, 1]),
    conv("conv-group2", (1, 4, 8, 6), (6, 2, 3, 3), group=2, pads=[1, 1, 1, 1]),
    conv("conv-depthwise", (1, 4, 7, 7), (4, 1, 3, 3), group=4, pads=[1, 1, 1, 1], strides=[2, 2]),
    conv("conv-same-upper", (1, 3, 7, 7), (2, 3, 4, 4), auto_pad="SAME_UPPER", strides=[2, 2]),
    conv("conv-same-lower", (1, 3, 8, 8), (2, 3, 4, 4), auto_pad="SAME_LOWER"),
    conv("conv-valid", (1, 3, 8, 7), (2, 3, 3, 3), auto_pad="VALID", strides=[2, 1]),
    conv("conv-asym-pads", (1, 3, 6, 7), (2, 3, 3, 3), pads=[0, 1, 2, 1], kernel_shape=[3, 3]),
    conv("conv1d", (2, 3, 10), (4, 3, 3), pads=[1, 2], strides=[2]),
    conv("conv3d", (1, 2, 5, 6, 4), (3, 2, 3, 3, 3), pads=[1, 1, 1, 1, 1, 1], strides=[1, 2, 1]),
]


def conv_t(case_id, x, w, bias=True, opsets=(13, 18), **attrs):
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    inits = {"w": weights(*w)}
    if bias:
        inits["b"] = weights(w[1] * attrs.get("group", 1))
    return Case(
        case_id, [node("ConvTranspose", inputs, ["y"], **attrs)], {"x": (x, F)}, {"y": F}, inits, opsets
    )


CONV_TRANSPOSE_CASES = [
    conv_t("convT-stride2-pad1-outpad", (1, 4, 5, 6), (4, 3, 4, 4), strides=[2, 2], pads=[1, 1, 1, 1]),
    conv_t(
        "convT-outpad", (1, 2, 5, 5), (2, 3, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]
    ),
    conv_t("convT-group2", (1, 4, 5, 4), (4, 2, 3, 3), bias=False, group=2, strides=[2, 1]),
    conv_t("convT-dilation", (1, 2, 4, 5), (2, 2, 3, 3), dilations=[2, 1], pads=[1, 0, 2, 1]),
    conv_t("convT-output-shape", (1, 2, 5, 5), (2, 3, 3, 3), strides=[2, 2], output_shape=[10, 9]),
    conv_t(
        "convT-output-shape-same-upper",
        (1, 2, 5, 5),
        (2, 3, 3, 3),
        strides=[2, 2],
        output_shape=[10, 9],
        auto_pad="SAME_UPPER",
    ),
    conv_t("convT-same-upper", (1, 2, 5, 4), (2, 3, 4, 4), strides=[2, 2], auto_pad="SAME_UPPER"),
    conv_t("convT-same-lower", (1, 2, 5, 4), (2, 3, 3, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    conv_t("convT-valid", (1, 2, 3, 4), (2, 3, 3, 3), strides=[2, 2], auto_pad="VALID"),
]


def gemm(case_id, a, b, c=None, **attrs):
    inputs = ["a", "b"] + (["c"] if c is not None else [])
    inits = {"b": weights(*b)} | ({"c": weights(*c)} if c is not None else {})
    return Case(case_id, [node("Gemm", inputs, ["y"], **attrs)], {"a": (a, F)}, {"y": F}, inits, (13, 21))


GEMM_CASES = [
    gemm("gemm-plain", (3, 5), (5, 4)),
    gemm("gemm-transB-bias", (3, 5), (4, 5), (4,), transB=1),
    gemm("gemm-transA-alpha-beta", (5, 3), (5, 4), (3, 4), transA=1, alpha=0.5, beta=2.0),
    gemm("gemm-both-trans-scalar-c", (5, 3), (4, 5), (1,), transA=1, transB=1, beta=0.25),
    gemm("gemm-beta0", (2, 3), (3, 4), (2, 4), beta=0.0, alpha=1.5),
    Case(
        "gemm-runtime-c",
        [node("Gemm", ["a", "b", "c"], ["y"], beta=0.5)],
        {"a": ((3, 5), F), "c": ((3, 1), F)},
        {"y": F},
        {"b": weights(5, 2)},
        (13,),
    ),
]


def matmul(case_id, a, b, const_b=False):
    inputs = {"a": (a, F)} if const_b else {"a": (a, F), "b": (b, F)}
    inits = {"b": weights(*b)} if const_b else {}
    return Case(case_id, [node("MatMul", ["a", "b"], ["y"])], inputs, {"y": F}, inits, (13, 21))


MATMUL_CASES = [
    matmul("matmul-2d", (3, 5), (5, 7)),
    matmul("matmul-batch-broadcast", (2, 1, 3, 4), (5, 4, 6)),
    matmul("matmul-weight", (2, 3, 4), (4, 5), const_b=True),
    matmul("matmul-1d-2d", (4,), (4, 3)),
    matmul("matmul-3d-1d", (2, 3, 4), (4,)),
    matmul("matmul-1d-1d", (5,), (5,)),
]

NORM_CASES = [
    Case(
        "batchnorm",
        [node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3, momentum=0.9)],
        {"x": ((2, 3, 5, 4), F)},
        {"y": F},
        {
            "g": weights(3),
            "b": weights(3, seed=2),
            "m": weights(3, seed=3),
            "v": weights(3, seed=4, positive=True),
        },
    ),
    Case(
        "batchnorm-1d",
        [node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"])],
        {"x": ((2, 3), F)},
        {"y": F},
        {
            "g": weights(3),
            "b": weights(3, seed=2),
            "m": weights(3, seed=3),
            "v": weights(3, seed=4, positive=True),
        },
    ),
    Case(
        "layernorm-last",
        [node("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-5)],
        {"x": ((2, 3, 8), F)},
        {"y": F},
        {"g": weights(8), "b": weights(8, seed=2)},
        (17, 18, 21),
    ),
    Case(
        "layernorm-axis1-nobias",
        [node("LayerNormalization", ["x", "g"], ["y"], axis=1, epsilon=1e-3)],
        {"x": ((2, 3, 4), F)},
        {"y": F},
        {"g": weights(3, 4)},
        (17, 21),
    ),
    Case("softmax-last", [node("Softmax", ["x"], ["y"])], {"x": ((2, 3, 5), F)}, {"y": F}),
    Case("softmax-axis1", [node("Softmax", ["x"], ["y"], axis=1)], {"x": ((2, 3, 5), F)}, {"y": F}),
    Case(
        "softmax-neg-axis",
        [node("Softmax", ["x"], ["y"], axis=-3)],
        {"x": ((2, 3, 5), F)},
        {"y": F},
        opsets=(13,),
    ),
]


def pool(case_id, op, x, opsets=(13, 18), **attrs):
    return Case(case_id, [node(op, ["x"], ["y"], **attrs)], {"x": (x, F)}, {"y": F}, opsets=opsets)


POOL_CASES = [
    pool(
        "maxpool-3x3-s2-p1", "MaxPool", (1, 3, 9, 8), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
    ),
    pool("maxpool-ceil", "MaxPool", (1, 2, 8, 7), kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1),
    pool("maxpool-dilation", "MaxPool", (1, 2, 9, 9), kernel_shape=[2, 2], dilations=[2, 2]),
    pool(
        "maxpool-same-upper",
        "MaxPool",
        (1, 2, 7, 6),
        kernel_shape=[3, 3],
        strides=[2, 2],
        auto_pad="SAME_UPPER",
    ),
    pool("maxpool-1d", "MaxPool", (2, 3, 11), kernel_shape=[3], strides=[2], pads=[1, 0]),
    pool("maxpool-3d", "MaxPool", (1, 2, 4, 5, 6), kernel_shape=[2, 2, 2], strides=[2, 2, 2]),
    pool(
        "avgpool-exclude-pad",
        "AveragePool",
        (1, 3, 7, 8),
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
    ),
    pool(
        "avgpool-include-pad",
        "AveragePool",
        (1, 3, 7, 8),
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 0, 1, 2],
        count_include_pad=1,
    ),
    pool("avgpool-ceil", "AveragePool", (1, 2, 8, 7), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    pool("avgpool-same-lower", "AveragePool", (1, 2, 7, 6), kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
    pool("avgpool-valid", "AveragePool", (1, 2, 7, 6), kernel_shape=[2, 3], strides=[2, 2], auto_pad="VALID"),
    pool(
        "avgpool-dilation",
        "AveragePool",
        (1, 2, 9, 8),
        opsets=(19, 21),
        kernel_shape=[2, 3],
        dilations=[2, 2],
    ),
    pool("global-avgpool", "GlobalAveragePool", (2, 3, 5, 7)),
    pool("global-avgpool-1d", "GlobalAveragePool", (2, 3, 5)),
]


def reduce_mean(case_id, x, axes, keepdims=1, noop=None, opsets=(13, 17, 18, 21), op="ReduceMean"):
    def nodes(opset):
        attrs = {"keepdims": keepdims}
        if opset < 18 and op != "ReduceSum":
            if axes is not None:
                attrs["axes"] = list(axes)
            return [node(op, ["x"], ["y"], **attrs)]
        if noop is not None:
            attrs["noop_with_empty_axes"] = noop
        if axes is None:
            return [node(op, ["x"], ["y"], **attrs)]
        axes_node = node(
            "Constant",
            [],
            ["axes"],
            name="axes",
            value=__import__("onnx").numpy_helper.from_array(ints(*axes)),
        )
        return [axes_node, node(op, ["x", "axes"], ["y"], **attrs)]

    return Case(case_id, nodes, {"x": (x, F)}, {"y": F}, opsets=opsets)


REDUCE_CASES = [
    reduce_mean("reducemean-spatial", (2, 3, 4, 5), (2, 3)),
    reduce_mean("reducemean-neg-nokeep", (2, 3, 4), (-1,), keepdims=0),
    reduce_mean("reducemean-all", (2, 3, 4), None),
    reduce_mean("reducemean-all-nokeep", (2, 3), None, keepdims=0),
    reduce_mean("reducemean-noop", (2, 3), None, noop=1, opsets=(18, 21)),
    reduce_mean("reducesum-axes", (2, 3, 4), (0, -1), op="ReduceSum"),
    reduce_mean("reducesum-all-nokeep", (2, 3), None, keepdims=0, op="ReduceSum"),
    reduce_mean("reducesum-noop", (2, 3), None, noop=1, opsets=(13, 21), op="ReduceSum"),
    reduce_mean("reducemax-axis1", (2, 3, 4), (1,), keepdims=0, op="ReduceMax"),
    reduce_mean("reducemax-all", (2, 3, 4), None, op="ReduceMax"),
]

ALL = CONV_CASES + CONV_TRANSPOSE_CASES + GEMM_CASES + MATMUL_CASES + NORM_CASES + POOL_CASES + REDUCE_CASES


@pytest.mark.parametrize(
    ("case", "opset"), [pytest.param(c, o, id=f"{c.id}-opset{o}") for c in ALL for o in c.opsets]
)
def test_nn_op_matches_onnxruntime(case, opset):
    check_case(case, opset)


def test_conv_bias_becomes_channel_add():
    graph = check_case(CONV_CASES[0], 13)
    assert [n.op for n in graph.nodes] == ["conv", "add"]
    assert graph.nodes[0].name == "conv_y"
    assert graph.nodes[0].attrs["pads"] == (1, 1, 1, 1)
    bias = graph.constants[graph.nodes[1].inputs[1]]
    assert bias.shape == (4, 1, 1)


def test_same_padding_is_resolved_to_explicit_pads():
    graph = check_case(CONV_CASES[5], 13)  # 7x7, kernel 4, stride 2: 4 outputs, total pad 3
    assert graph.nodes[0].attrs["pads"] == (1, 1, 2, 2)
    graph = check_case(CONV_CASES[6], 13)  # 8x8, kernel 4, stride 1: total pad 3, odd one first
    assert graph.nodes[0].attrs["pads"] == (2, 2, 1, 1)


def test_gemm_without_transB_transposes_the_constant_weight_at_import():
    graph = check_case(GEMM_CASES[0], 13)
    assert [n.op for n in graph.nodes] == ["dense"]
    assert graph.types[graph.nodes[0].inputs[1]].shape == (4, 5)


def test_reduce_mean_noop_aliases_the_input():
    graph = check_case(next(c for c in REDUCE_CASES if c.id == "reducemean-noop"), 18)
    assert graph.nodes == () and graph.outputs == ("x",)
