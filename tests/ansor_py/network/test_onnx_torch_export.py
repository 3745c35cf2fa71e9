"""Models exported by torch.onnx import and run like the PyTorch modules they come from.

Small modules cover what the five benchmark networks are made of: conv + batch norm + relu
+ max pool + a residual add, a depthwise conv, relu6 and adaptive pooling (MobileNet), a
3-D conv block (ResNet3D), conv_transpose + batch norm + tanh (the DCGAN generator),
linear layers, a transformer block (layer norm, fused QKV linear split in three,
reshape/transpose/matmul attention, softmax, GELU) with an embedding lookup, and the data
movement ops (pad, chunk, concat, permute, slices, clamp, reductions). Each is exported
with both exporters: the TorchScript one (``dynamo=False, opset_version=17``) and the
dynamo one (``dynamo=True``, opset 18+ via onnxscript), imported with ``from_onnx`` and
run by the graph's reference executor; the result must match PyTorch's (rtol 1e-4). A
dynamic batch axis is imported with a shape override, which also folds the exported
shape arithmetic.

The zoo's DCGAN generator and MobileNet-V2 (slow) go the whole way: the graph run in
eager PyTorch by ``benchmarks/torch_graph.py`` (a ``TorchGraphModule``) is exported with
both exporters, imported, compiled by ``build_network`` with default schedules and
compared with onnxruntime on the exported file and with ``run_reference`` on the zoo graph
(rtol 1e-4 of the output's largest magnitude).
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is optional (pip install torch==2.13.0)")
onnx = pytest.importorskip("onnx", reason="the ONNX frontend needs onnx (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="the zoo exports are compared with onnxruntime")

from torch import nn  # noqa: E402

from ansor_py.network import zoo  # noqa: E402
from ansor_py.network.executor import NetworkBuildWarning, build_network  # noqa: E402
from ansor_py.network.frontend.onnx import OnnxImportError, from_onnx  # noqa: E402
from ansor_py.network.reference import run_reference  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import torch_graph  # noqa: E402  (benchmarks/ is not a package)


class ConvBlock(nn.Module):
    """conv-bn-relu, conv-bn, residual add, relu, max pool, depthwise conv, global mean."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.depthwise = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(y + self.bn2(self.conv2(y)))
        return self.depthwise(self.pool(y)).mean(dim=(2, 3))


class Generator(nn.Module):
    """The DCGAN generator's last layer: conv_transpose, batch norm, tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.tanh(self.bn(self.up(x)))


class MobileBlock(nn.Module):
    """MobileNet pieces: conv-bn-relu6, depthwise conv, residual, adaptive pool, flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, 2, 1)
        self.bn = nn.BatchNorm2d(6)
        self.depthwise = nn.Conv2d(6, 6, 3, 1, 1, groups=6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = nn.functional.relu6(self.bn(self.conv(x)))
        y = nn.functional.relu6(self.depthwise(y)) + y
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class Shapes(nn.Module):
    """Data movement: pad, chunk, average pool (ceil mode, pads excluded), concat,
    flatten, a dilated 1-D conv, permute, clamp, a max reduction; two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.conv = nn.Conv1d(4, 2, 3, padding=2, dilation=2)

    def forward(self, x):
        a, b = torch.chunk(nn.functional.pad(x, (1, 2, 0, 1)), 2, dim=1)
        y = torch.cat([self.pool(a), self.pool(b) * 2], dim=1)
        return self.conv(y.flatten(2)).permute(0, 2, 1).clamp(min=-0.5), torch.max(y, dim=1).values


class Conv3dBlock(nn.Module):
    """ResNet3D pieces: strided 3-D conv, batch norm, relu, mean over space and time."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, (1, 2, 2), 1, bias=False)
        self.bn = nn.BatchNorm3d(4)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4))


class Upsample(nn.Module):
    """conv_transpose with output_padding, then elementwise math and a slice."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 3, 3, 2, 1, output_padding=1)

    def forward(self, x):
        scale = torch.sqrt(torch.abs(x).sum(dim=1, keepdim=True) + 1)[:, :, :1, :1]
        return torch.sigmoid(self.up(x)) ** 2 - scale


class Classifier(nn.Module):
    """Linear layers with and without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 5)
        self.fc2 = nn.Linear(5, 4, bias=False)

    def forward(self, x):
        return self.fc2(torch.sigmoid(self.fc1(x)))


class Encoder(nn.Module):
    """Embedding lookup and one pre-norm transformer block (BERT's pieces)."""

    def __init__(self, vocab: int = 20, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff1 = nn.Linear(dim, 2 * dim)
        self.ff2 = nn.Linear(2 * dim, dim)

    def forward(self, ids):
        x = self.embed(ids)
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(self.norm(x)).split(dim, dim=-1)
        q, k, v = (t.reshape(batch, tokens, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        attention = torch.softmax(q @ k.transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(batch, tokens, dim))
        return x + self.ff2(nn.functional.gelu(self.ff1(x)))


def example(name: str):
    """(module in eval mode with non-trivial batch norm statistics, example input)."""
    torch.manual_seed(0)
    module, x = {
        "conv_block": (ConvBlock(), lambda: torch.randn(1, 3, 9, 10)),
        "generator": (Generator(), lambda: torch.randn(1, 8, 5, 5)),
        "classifier": (Classifier(), lambda: torch.randn(3, 12)),
        "encoder": (Encoder(), lambda: torch.randint(0, 20, (2, 6))),
        "mobile_block": (MobileBlock(), lambda: torch.randn(1, 3, 12, 10)),
        "shapes": (Shapes(), lambda: torch.randn(1, 4, 7, 6)),
        "conv3d_block": (Conv3dBlock(), lambda: torch.randn(1, 2, 4, 6, 6)),
        "upsample": (Upsample(), lambda: torch.randn(1, 4, 5, 6)),
    }[name]
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d | nn.BatchNorm3d):
            assert layer.running_mean is not None and layer.running_var is not None
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return module.eval(), x()


def need_dynamo_exporter() -> None:
    """torch.onnx's dynamo exporter is written with onnxscript, a package of its own that
    PyTorch does not install; without it these exports cannot run (the TorchScript ones do)."""
    pytest.importorskip(
        "onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (pip install onnxscript)"
    )


def export(module, x, dynamo: bool, dynamic_batch: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            need_dynamo_exporter()
            shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
            program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=shapes, verbose=False)
            return program.model_proto
        buffer = io.BytesIO()
        axes = {"x": {0: "batch"}} if dynamic_batch else None
        torch.onnx.export(
            module, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"], dynamic_axes=axes
        )
        return onnx.load_from_string(buffer.getvalue())


def run_imported(model, x, shape=None) -> list[np.ndarray]:
    graph = from_onnx(model, shape=shape)
    (name,) = graph.inputs
    return run_reference(graph, {name: x.numpy()})


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo"])
@pytest.mark.parametrize(
    "name",
    [
        "conv_block",
        "generator",
        "classifier",
        "encoder",
        "mobile_block",
        "shapes",
        "conv3d_block",
        "upsample",
    ],
)
def test_exported_module_matches_pytorch(name, dynamo):
    module, x = example(name)
    with torch.no_grad():
        result = module(x)
    expected = [t.numpy() for t in (result if isinstance(result, tuple) else (result,))]
    model = export(module, x, dynamo)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == 17 if not dynamo else opset >= 18
    got = run_imported(model, x)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo"])
def test_dynamic_batch_needs_and_takes_a_shape_override(dynamo):
    module, _ = example("encoder")
    model = export(module, torch.randint(0, 20, (2, 6)), dynamo, dynamic_batch=True)
    (input_name,) = [v.name for v in model.graph.input]
    with pytest.raises(OnnxImportError, match=rf"graph input '{input_name}': dimension 0 is dynamic"):
        from_onnx(model)
    x = torch.randint(0, 20, (3, 6))
    with torch.no_grad():
        expected = module(x).numpy()
    (got,) = run_imported(model, x, shape={input_name: (3, 6)})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------
# zoo networks: PyTorch -> ONNX (both exporters) -> from_onnx -> build_network


def export_graph_module(graph, inputs: dict[str, np.ndarray], dynamo: bool):
    """The zoo graph run by PyTorch, exported: TorchScript at opset 17, dynamo at 18."""
    module = torch_graph.TorchGraphModule(torch_graph.to_torch(graph)).eval()
    args = tuple(torch.from_numpy(inputs[name]) for name in graph.inputs)
    names = {"input_names": list(graph.inputs), "output_names": list(graph.outputs)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            need_dynamo_exporter()
            program = torch.onnx.export(module, args, dynamo=True, opset_version=18, verbose=False, **names)
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=17, **names)
        return onnx.load_from_string(buffer.getvalue())


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo-opset18"])
@pytest.mark.parametrize("network", ["dcgan", "mobilenet_v2"])
def test_exported_zoo_network_builds_and_matches(network: str, dynamo: bool) -> None:
    graph = zoo.NETWORKS[network]()
    inputs = zoo.random_inputs(graph, seed=1)
    (reference,) = run_reference(graph, inputs)
    model = export_graph_module(graph, inputs, dynamo)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == (
        18 if dynamo else 17
    )

    imported = from_onnx(model)
    assert list(imported.inputs) == list(graph.inputs)
    assert imported.op_counts().get("conv_transpose" if network == "dcgan" else "conv", 0) > 0
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (from_ort,) = session.run(None, {name: inputs[name] for name in graph.inputs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)
        compiled = build_network(imported)
    (built,) = compiled.run_inputs({name: inputs[name] for name in imported.inputs})

    scale = float(np.abs(reference).max())
    assert scale > 0 and built.shape == reference.shape and built.dtype == reference.dtype
    np.testing.assert_allclose(built, from_ort, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(built, reference, rtol=1e-4, atol=1e-4 * scale)
