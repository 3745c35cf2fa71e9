"""The ONNX writer, op by op: each small graph is written with ``to_onnx``, checked by
``onnx.checker`` (with shape inference) and run by onnxruntime, whose outputs must equal
the graph's numpy reference on seeded random inputs. Channels-last convolutions and pools
(written between Transposes), gelu before and after opset 20, reductions before and after
their axes became inputs, a negative-step slice through index 0, and external data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ansor_py.network.graph import Graph
from ansor_py.network.onnx_writer import OnnxWriteError, save_onnx, to_onnx
from ansor_py.network.reference import run_reference
from ansor_py.network.zoo.builder import GraphBuilder, random_inputs


def session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got.shape, got.dtype, expected.dtype)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(scale, 1e-30))


def check_against_onnxruntime(graph: Graph, opset: int = 17) -> onnx.ModelProto:
    model = to_onnx(graph, opset)
    onnx.checker.check_model(model, full_check=True)
    inputs = random_inputs(graph, seed=3)
    got = session(model).run(None, inputs)
    expected = run_reference(graph, inputs)
    assert [o.name for o in model.graph.output] == list(graph.outputs)
    for g, e in zip(got, expected, strict=True):
        assert_close(np.asarray(g), e)
    return model


def single(op: str, shapes: list[tuple[int, ...]], opset: int = 17, **attrs: object) -> onnx.ModelProto:
    """``op`` applied to float inputs of ``shapes``, checked against onnxruntime."""
    b = GraphBuilder(op, seed=0)
    names = [b.input(f"x{i}", shape) for i, shape in enumerate(shapes)]
    return check_against_onnxruntime(b.build([b.node(op, names, op, **attrs)]), opset)


UNARY = ["relu", "sigmoid", "tanh", "erf", "negative", "exp"]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]


@pytest.mark.parametrize("op", UNARY)
def test_unary(op: str) -> None:
    single(op, [(2, 3, 5)])


@pytest.mark.parametrize("op", BINARY)
def test_binary_broadcasting(op: str) -> None:
    single(op, [(2, 3, 5), (3, 1)])


def test_sqrt_power_equal_where_cast() -> None:
    b = GraphBuilder("misc", seed=0)
    x = b.input("x", (4, 6))
    y = b.input("y", (4, 6))
    positive = b.node("multiply", [x, x], "square")
    root = b.node("sqrt", [positive], "root")
    power = b.node("power", [positive, b.scalar("half", 0.5)], "power")
    same = b.node(
        "equal",
        [b.node("cast", [x], "int_x", dtype="int32"), b.node("cast", [y], "int_y", dtype="int32")],
        "eq",
    )
    chosen = b.node("where", [same, root, y], "where")
    check_against_onnxruntime(b.build([power, chosen, same]))


@pytest.mark.parametrize(("low", "high"), [(0.0, 6.0), (-0.5, None), (None, 0.25)])
def test_clip_with_optional_bounds(low: float | None, high: float | None) -> None:
    model = single("clip", [(3, 7)], min=low, max=high)
    clip = next(n for n in model.graph.node if n.op_type == "Clip")
    assert len(clip.input) == (3 if high is not None else 2)
    bounds = {t.name: list(t.dims) for t in model.graph.initializer}
    assert bounds == {name: [] for name in clip.input[1:] if name}  # scalars, as Clip wants


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("opset", [17, 20])
def test_gelu_decomposed_before_opset_20(approximate: str, opset: int) -> None:
    model = single("gelu", [(4, 9)], opset=opset, approximate=approximate)
    op_types = {n.op_type for n in model.graph.node}
    assert ("Gelu" in op_types) == (opset >= 20)


def test_tensor_ops() -> None:
    b = GraphBuilder("tensor", seed=0)
    x = b.input("x", (2, 3, 4))
    reshaped = b.node("reshape", [x], "reshape", shape=(6, 4))
    transposed = b.node("transpose", [reshaped], "transpose", perm=(1, 0))
    padded = b.node("pad", [transposed], "pad", pads=(1, 0, 0, 2), value=0.5)
    joined = b.node("concat", [padded, padded], "concat", axis=0)
    wide = b.node("broadcast_to", [b.node("reshape", [x], "col", shape=(24, 1))], "expand", shape=(24, 3))
    indices = b.constant("indices", np.array([[0, -1], [2, 1]], dtype=np.int64))
    taken = b.node("take", [x, indices], "take", axis=2)
    check_against_onnxruntime(b.build([joined, wide, taken]))


def test_slice_negative_step_through_index_zero() -> None:
    b = GraphBuilder("slice", seed=0)
    x = b.input("x", (5, 6))
    reversed_rows = b.node("slice", [x], "rev", starts=(4, 0), ends=(-1, 6), steps=(-1, 2))
    middle = b.node("slice", [x], "mid", starts=(1, 5), ends=(4, 0), steps=(1, -2))
    model = check_against_onnxruntime(b.build([reversed_rows, middle]))
    out = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert out == {"rev": [5, 3], "mid": [3, 3]}


def _conv_graph(layout: str, kernel_layout: str, groups: int, transpose: bool = False) -> Graph:
    """A stride-2 padded convolution of 4 -> 6 channels (or a transposed one) in ``layout``."""
    b = GraphBuilder("conv", seed=0)
    channels_last = not layout.startswith("NC")
    x = b.input("x", (1, 9, 8, 4) if channels_last else (1, 4, 9, 8))
    if transpose:
        shape = {"IOHW": (4, 6 // groups, 3, 3), "HWOI": (3, 3, 6 // groups, 4)}[kernel_layout]
    else:
        shape = {"OIHW": (6, 4 // groups, 3, 3), "HWIO": (3, 3, 4 // groups, 6)}[kernel_layout]
    weight = b.normal("w", shape, 0.3)
    attrs: dict[str, object] = {"layout": layout, "kernel_layout": kernel_layout, "groups": groups}
    attrs.update(strides=(2, 2), pads=(1, 0, 1, 2), dilations=(1, 1))
    if transpose:
        attrs["output_padding"] = (1, 0)
    return b.build([b.node("conv_transpose" if transpose else "conv", [x, weight], "conv", **attrs)])


@pytest.mark.parametrize(("layout", "kernel_layout"), [("NCHW", "OIHW"), ("NHWC", "HWIO")])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_channels_first_and_last(layout: str, kernel_layout: str, groups: int) -> None:
    model = check_against_onnxruntime(_conv_graph(layout, kernel_layout, groups))
    assert sum(n.op_type == "Transpose" for n in model.graph.node) == (0 if layout == "NCHW" else 3)


@pytest.mark.parametrize(("layout", "kernel_layout"), [("NCHW", "IOHW"), ("NHWC", "HWOI")])
def test_conv_transpose_channels_first_and_last(layout: str, kernel_layout: str) -> None:
    check_against_onnxruntime(_conv_graph(layout, kernel_layout, groups=2, transpose=True))


def test_conv_3d_and_1d() -> None:
    b = GraphBuilder("conv_nd", seed=0)
    clip = b.input("clip", (1, 3, 4, 6, 6))
    video = b.conv(clip, 3, 5, (3, 3, 3), "c3", strides=(1, 2, 2), pads=(1, 1, 1, 1, 1, 1))
    signal = b.input("signal", (1, 2, 11))
    audio = b.conv(signal, 2, 4, (3,), "c1", strides=(2,), pads=(1, 0))
    check_against_onnxruntime(b.build([video, audio]))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_pools(layout: str) -> None:
    b = GraphBuilder("pool", seed=0)
    x = b.input("x", (1, 3, 9, 10) if layout == "NCHW" else (1, 9, 10, 3))
    common = {
        "layout": layout,
        "kernel": (3, 3),
        "strides": (2, 2),
        "pads": (1, 1, 0, 1),
        "dilations": (1, 1),
    }
    biggest = b.node("max_pool", [x], "max", ceil_mode=True, **common)
    mean = b.node("avg_pool", [x], "avg", ceil_mode=False, count_include_pad=True, **common)
    mean_valid = b.node("avg_pool", [x], "avg_valid", ceil_mode=False, count_include_pad=False, **common)
    pooled = b.node("global_avg_pool", [x], "gap", layout=layout)
    check_against_onnxruntime(b.build([biggest, mean, mean_valid, pooled]))


def test_dense_matmul_norms_softmax() -> None:
    b = GraphBuilder("nn", seed=0)
    x = b.input("x", (4, 16))
    dense = b.dense(x, 16, 8, "fc", bias_std=0.5)
    batched = b.node(
        "matmul", [b.node("reshape", [dense], "r", shape=(2, 2, 8)), b.normal("m", (8, 3), 0.5)], "mm"
    )
    gamma, beta = b.uniform("g", (8,), 0.5, 1.5), b.normal("b", (8,), 0.5)
    normed = b.node("layer_norm", [dense, gamma, beta], "ln", axis=1, epsilon=1e-5)
    probs = b.node("softmax", [batched], "softmax", axis=1)
    image = b.input("image", (2, 5, 3, 4))
    stats = [b.uniform(f"s{i}", (4,), 0.5, 1.5) for i in range(4)]
    channels_last_bn = b.node("batch_norm", [image, *stats], "bn_last", epsilon=1e-3, axis=3)
    check_against_onnxruntime(b.build([normed, probs, channels_last_bn]))


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_reductions_across_opsets(opset: int) -> None:
    b = GraphBuilder("reduce", seed=0)
    x = b.input("x", (3, 4, 5))
    outs = [
        b.node(op, [x], op, axes=axes, keepdims=keep)
        for op, axes, keep in [
            ("reduce_mean", (1, 2), True),
            ("reduce_sum", (0,), False),
            ("reduce_max", (2,), False),
        ]
    ]
    check_against_onnxruntime(b.build(outs), opset)


def test_output_that_is_an_input_goes_through_identity() -> None:
    b = GraphBuilder("passthrough", seed=0)
    x = b.input("x", (2, 3))
    graph = b.build([b.node("relu", [x], "relu"), x])
    written = to_onnx(graph)
    outputs = [o.name for o in written.graph.output]
    assert outputs[0] == "relu" and outputs[1] != "x"
    inputs = random_inputs(graph, seed=1)
    relu, copy = session(written).run(None, inputs)
    np.testing.assert_array_equal(copy, inputs["x"])
    np.testing.assert_array_equal(relu, np.maximum(inputs["x"], 0))


def test_opset_outside_the_writers_range_raises() -> None:
    b = GraphBuilder("old", seed=0)
    graph = b.build([b.node("relu", [b.input("x", (2, 3))], "r")])
    with pytest.raises(OnnxWriteError, match=r"graph 'old': opset 12 is outside the writer's 13\.\.21"):
        to_onnx(graph, 12)


def test_layer_norm_needs_opset_17() -> None:
    b = GraphBuilder("norm", seed=0)
    gamma, beta = b.uniform("g", (3,), 1, 2), b.uniform("b", (3,), 1, 2)
    graph = b.build([b.node("layer_norm", [b.input("x", (2, 3)), gamma, beta], "ln", axis=1, epsilon=1e-5)])
    with pytest.raises(
        OnnxWriteError, match=r"node 'ln' \(layer_norm\): LayerNormalization needs ONNX opset >= 17"
    ):
        to_onnx(graph, 16)


def test_save_onnx_with_external_data(tmp_path: Path) -> None:
    b = GraphBuilder("external", seed=0)
    x = b.input("x", (3, 32))
    graph = b.build([b.dense(x, 32, 64, "fc", bias_std=0.5)])
    inline = save_onnx(graph, tmp_path / "inline.onnx")
    external = save_onnx(graph, tmp_path / "external.onnx", external_data_bytes=0)
    assert not (tmp_path / "inline.onnx.data").exists()
    assert (tmp_path / "external.onnx.data").stat().st_size >= 64 * 32 * 4
    assert external.stat().st_size < 2048 < 64 * 32 * 4 < inline.stat().st_size  # the weight moved out
    inputs = random_inputs(graph, seed=2)
    expected = run_reference(graph, inputs)[0]
    for path in (inline, external):
        assert_close(session(str(path)).run(None, inputs)[0], expected)
