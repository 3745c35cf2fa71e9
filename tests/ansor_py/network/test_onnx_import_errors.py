"""The ONNX importer's contract outside the op semantics: dynamic input shapes and their
overrides, initializers listed as inputs, node and value names, models given as a path or
bytes, and every error (unsupported op, attribute, value or opset, non-constant shape
inputs, corrupt, truncated or missing files), each raised as OnnxImportError naming the
model's node, input or file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the ONNX frontend needs onnx (pip install onnx)")
pytest.importorskip("onnxruntime", reason="the ONNX import tests compare with onnxruntime")

import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx_cases import Case, assert_same, make_model, node, run_onnxruntime, weights

from ansor_py.network.frontend.onnx import CONVERTERS, OnnxImportError, from_onnx, supported_ops
from ansor_py.network.reference import run_reference
from ansor_py.network.types import GraphError

F = "float32"
RELU = Case("relu", [node("Relu", ["x"], ["y"])], {"x": ((2, 3), F)}, {"y": F})


def dynamic_model(dims=("N", 3, None)) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node("Relu", ["x"], ["y"])], "dyn", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_every_listed_op_has_a_converter_for_opsets_13_to_21():
    expected = [
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Sqrt",
        "Neg",
        "Relu",
        "Clip",
        "Sigmoid",
        "Tanh",
        "Erf",
        "BatchNormalization",
        "Softmax",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "ReduceMean",
        "Flatten",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Shape",
        "Cast",
        "Constant",
        "ConstantOfShape",
        "Expand",
        "Where",
        "Equal",
        "Range",
        "Identity",
        "Dropout",
        "Exp",
        "Max",
        "Min",
        "Pad",
        "ReduceSum",
        "ReduceMax",
    ]
    for op in expected:
        covered = {o for c in CONVERTERS[op] for o in range(c.since, c.until + 1)}
        assert covered == set(range(13, 22)), op
    assert {o for c in CONVERTERS["Gelu"] for o in range(c.since, c.until + 1)} == {20, 21}
    assert {o for c in CONVERTERS["LayerNormalization"] for o in range(c.since, c.until + 1)} == set(
        range(17, 22)
    )
    assert supported_ops() == sorted(CONVERTERS)


def test_dynamic_dims_need_a_shape_override():
    with pytest.raises(OnnxImportError, match=r"graph input 'x': dimension 0 is dynamic \(N\).*shape="):
        from_onnx(dynamic_model())
    graph = from_onnx(dynamic_model(), shape={"x": (4, 3, 5)})
    assert graph.types["x"].shape == (4, 3, 5)
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    assert_same(run_onnxruntime(dynamic_model(), {"x": x}), run_reference(graph, {"x": x}))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"x": (4, 3)}, r"shape override of input 'x': rank 2, the model's is 3"),
        ({"x": (4, 2, 5)}, r"dimension 1 is 2, the model fixes it at 3"),
        ({"x": (4, 0, 5)}, r"must be positive integers"),
        ({"x": (4, 3, 5), "z": (1,)}, r"shape overrides for \['z'\]: the model's inputs are \['x'\]"),
    ],
)
def test_bad_shape_overrides(override, message):
    with pytest.raises(OnnxImportError, match=message):
        from_onnx(dynamic_model(), shape=override)


def test_an_initializer_listed_as_input_is_a_constant():
    model = make_model(
        Case(
            "init-input", [node("Add", ["x", "w"], ["y"])], {"x": ((2, 3), F)}, {"y": F}, {"w": weights(2, 3)}
        ),
        13,
    )
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3]))
    graph = from_onnx(model)
    assert list(graph.inputs) == ["x"] and graph.is_constant("w")


def test_node_names_are_kept_unique_and_filled():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="act"),
        helper.make_node("Neg", ["a"], ["b"], name="act"),
        helper.make_node("Sigmoid", ["b"], ["c"]),
        helper.make_node("Gemm", ["c", "w"], ["y"], name="fc", alpha=2.0),
    ]
    w = weights(3, 4)
    case = Case("names", nodes, {"x": ((2, 3), F)}, {"y": F}, {"w": w})
    graph = from_onnx(make_model(case, 13))  # onnxruntime refuses two nodes of one name
    names = [n.name for n in graph.nodes]
    assert names[:3] == ["act", "act_1", "Sigmoid_2"]
    assert names[3:] == ["fc", "fc/multiply"]
    assert graph.outputs == ("y",) and {"a", "b", "c"} <= set(graph.types)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    expected = 2.0 * (1 / (1 + np.exp(np.maximum(x, 0)))) @ w
    np.testing.assert_allclose(run_reference(graph, {"x": x})[0], expected, rtol=1e-5)


def test_path_and_bytes_are_accepted(tmp_path: Path):
    model = make_model(RELU, 13)
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    for source in (path, str(path), model.SerializeToString()):
        graph = from_onnx(source, name="relu_net")
        assert graph.name == "relu_net" and [n.op for n in graph.nodes] == ["relu"]


def test_corrupt_truncated_and_missing_files(tmp_path: Path):
    data = make_model(check_conv_model_case(), 13).SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxImportError, match=r"truncated\.onnx.*corrupt or truncated"):
        from_onnx(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 10)
    with pytest.raises(OnnxImportError, match=r"garbage\.onnx.*corrupt or truncated"):
        from_onnx(garbage)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxImportError, match=r"empty\.onnx: no graph"):
        from_onnx(empty)
    with pytest.raises(OnnxImportError, match=r"missing\.onnx' does not exist"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(OnnxImportError, match=r"not int"):
        from_onnx(12)  # type: ignore[arg-type]
    assert issubclass(OnnxImportError, GraphError)


def check_conv_model_case() -> Case:
    return Case(
        "conv",
        [node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        {"x": ((1, 3, 8, 8), F)},
        {"y": F},
        {"w": weights(8, 3, 3, 3)},
    )


@pytest.mark.parametrize("opset", [12, 22])
def test_unsupported_opsets(opset):
    with pytest.raises(
        OnnxImportError, match=rf"default-domain opset {opset} is not supported \(supported: 13\.\.21"
    ):
        from_onnx(make_model(RELU, opset))


def test_unsupported_op_lists_the_supported_ones():
    case = Case(
        "einsum",
        [node("Einsum", ["x", "x"], ["y"], name="mix", equation="ij,ij->i")],
        {"x": ((2, 3), F)},
        {"y": F},
    )
    with pytest.raises(
        OnnxImportError, match=r"ONNX op 'Einsum' \(node 'mix', model opset 17\) is not supported.*Conv"
    ):
        from_onnx(make_model(case, 17))
    custom = make_model(RELU, 17)
    custom.graph.node[0].domain = "com.microsoft"
    custom.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(OnnxImportError, match=r"ONNX op 'Relu' of domain 'com.microsoft'"):
        from_onnx(custom)


def test_op_outside_its_opset_range():
    model = make_model(Case("gelu", [node("Gelu", ["x"], ["y"], name="g")], {"x": ((2, 3), F)}, {"y": F}), 20)
    model.opset_import[0].version = 18
    with pytest.raises(
        OnnxImportError, match=r"'Gelu' \(node 'g'\) is supported at opsets 20\.\.21, the model has 18"
    ):
        from_onnx(model)


@pytest.mark.parametrize(
    ("onnx_node", "x_shape", "message"),
    [
        (
            node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2], storage_order=1),
            (1, 2, 4, 4),
            r"MaxPool node 'mp': storage_order=1 is not supported .*supported: 0",
        ),
        (
            node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2]),
            (1, 2, 4, 4),
            r"MaxPool node 'mp': outputs=\['y', 'idx'\] is not supported",
        ),
        (
            node("AveragePool", ["x"], ["y"], name="ap", kernel_shape=[2, 2], auto_pad="SAME"),
            (1, 2, 4, 4),
            r"AveragePool node 'ap': auto_pad='SAME' is not supported.*SAME_UPPER",
        ),
        (
            node("Conv", ["x", "x"], ["y"], name="cv", foo=1),
            (1, 2, 4, 4),
            r"Conv node 'cv': attribute\(s\) \['foo'\] are not supported .*supported: auto_pad",
        ),
        (
            node("Gelu", ["x"], ["y"], name="ge", approximate="erf"),
            (2, 3),
            r"Gelu node 'ge': approximate='erf' is not supported",
        ),
        (
            node("LayerNormalization", ["x", "x"], ["y", "mean"], name="ln"),
            (2, 3),
            r"LayerNormalization node 'ln': outputs=\['y', 'mean'\]",
        ),
        (
            node("Transpose", ["x"], ["y"], name="tp", perm=[0, 0]),
            (2, 3),
            r"Transpose node 'tp': perm=\[0, 0\] is not supported",
        ),
        (
            node("Softmax", ["x"], ["y"], name="sm", axis=2),
            (2, 3),
            r"Softmax node 'sm': axis=2 is out of range for rank 2",
        ),
        (
            node("Relu", ["x", "x"], ["y"], name="r2"),
            (2, 3),
            r"Relu node 'r2' has 2 inputs; opset 21 takes 1 to 1",
        ),
        (
            node("Flatten", ["x"], ["y"], name="fl", axis=3),
            (2, 3),
            r"Flatten node 'fl': axis=3 is out of range",
        ),
    ],
)
def test_unsupported_attributes_and_values(onnx_node, x_shape, message):
    case = Case("bad", [onnx_node], {"x": (x_shape, F)}, {"y": F})
    with pytest.raises(OnnxImportError, match=message):
        from_onnx(make_model(case, 21))


def test_conv_transpose_3d_and_training_batchnorm_are_rejected():
    case = Case(
        "ct1d",
        [node("ConvTranspose", ["x", "w"], ["y"], name="up")],
        {"x": ((1, 2, 5), F)},
        {"y": F},
        {"w": weights(2, 3, 3)},
    )
    with pytest.raises(OnnxImportError, match=r"ConvTranspose node 'up': input rank=3 is not supported"):
        from_onnx(make_model(case, 17))
    stats = {k: weights(3, seed=i, positive=True) for i, k in enumerate("gbmv")}
    bn = node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn", training_mode=1)
    case = Case("bn", [bn], {"x": ((2, 3, 4), F)}, {"y": F}, stats)
    with pytest.raises(OnnxImportError, match=r"BatchNormalization node 'bn': training_mode=1"):
        from_onnx(make_model(case, 17))


def test_shape_inputs_must_fold_to_constants():
    nodes = [node("Reshape", ["x", "s"], ["y"], name="dyn_reshape")]
    case = Case("dyn", nodes, {"x": ((2, 3), F), "s": ((2,), "int64")}, {"y": F})
    with pytest.raises(
        OnnxImportError, match=r"Reshape node 'dyn_reshape': input 1 \(shape\) is the value 's'.*constant"
    ):
        from_onnx(make_model(case, 17))
    clip = [node("Clip", ["x", "lo"], ["y"], name="clamp")]
    case = Case("dynclip", clip, {"x": ((2, 3), F), "lo": ((), F)}, {"y": F})
    with pytest.raises(OnnxImportError, match=r"Clip node 'clamp': input 1 \(min\)"):
        from_onnx(make_model(case, 13))
    bad_reshape = Case(
        "r",
        [node("Reshape", ["x", "s"], ["y"], name="rs")],
        {"x": ((2, 3), F)},
        {"y": F},
        {"s": np.array([4, -1], np.int64)},
    )
    with pytest.raises(OnnxImportError, match=r"Reshape node 'rs': cannot reshape \[2, 3\] to \[4, -1\]"):
        from_onnx(make_model(bad_reshape, 13))


def test_undefined_values_and_string_constants():
    case = Case("undef", [node("Relu", ["nowhere"], ["y"], name="r")], {"x": ((2,), F)}, {"y": F})
    with pytest.raises(OnnxImportError, match=r"Relu node 'r' reads \['nowhere'\], not defined before it"):
        from_onnx(make_model(case, 13))
    text = node(
        "Constant", [], ["y"], name="txt", value=numpy_helper.from_array(np.array([b"hi"], dtype=object), "s")
    )
    case = Case("text", [text], {"x": ((2,), F)}, {"y": F})
    model = make_model(case, 13)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.STRING
    with pytest.raises(OnnxImportError, match=r"Constant node 'txt': value=.*numeric or bool"):
        from_onnx(model)


def test_missing_onnx_package_gives_a_clear_import_error():
    code = "import sys; sys.modules['onnx'] = None; import ansor_py.network.frontend.onnx"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[3]
    )
    assert result.returncode != 0
    assert "pip install onnx" in result.stderr and "ansor_py.network.frontend.onnx needs" in result.stderr


def test_external_data_is_read_from_the_model_directory(tmp_path: Path):
    case = check_conv_model_case()
    model = make_model(case, 13)
    path = tmp_path / "conv.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="conv.bin", size_threshold=0)
    assert (tmp_path / "conv.bin").is_file()
    graph = from_onnx(path)
    np.testing.assert_array_equal(graph.constants["w"], case.initializers["w"])
    unloaded = onnx.load(str(path), load_external_data=False)
    with pytest.raises(
        OnnxImportError, match=r"initializer 'w' is stored in an external file; pass the model's path"
    ):
        from_onnx(unloaded)
    (tmp_path / "conv.bin").unlink()
    with pytest.raises(OnnxImportError, match=r"conv\.onnx: cannot read its external data"):
        from_onnx(path)


def test_damaged_models_import_or_raise_onnx_import_error():
    """Every truncation and random byte changes of a small model: the importer either
    succeeds or raises OnnxImportError (never another exception)."""
    nodes = [
        node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        node("Relu", ["c"], ["r"]),
        node("Shape", ["r"], ["s"]),
        node("Reshape", ["r", "s2"], ["t"]),
        node("Gemm", ["t", "fc"], ["y"], transB=1, alpha=0.5),
    ]
    inits = {
        "w": weights(4, 3, 3, 3),
        "b": weights(4),
        "s2": np.array([1, -1], np.int64),
        "fc": weights(2, 256),
    }
    data = make_model(
        Case("damaged", nodes, {"x": ((1, 3, 8, 8), F)}, {"y": F}, inits), 17
    ).SerializeToString()
    rng = np.random.default_rng(0)
    damaged = [data[:cut] for cut in range(0, len(data), 7)]
    for _ in range(400):
        changed = bytearray(data)
        for _ in range(3):
            changed[rng.integers(len(changed))] = rng.integers(256)
        damaged.append(bytes(changed))
    outcomes = {"ok": 0, "error": 0}
    for blob in damaged:
        try:
            from_onnx(blob)
            outcomes["ok"] += 1
        except OnnxImportError:
            outcomes["error"] += 1
    assert outcomes["error"] > len(damaged) // 4 and outcomes["ok"] > 0
