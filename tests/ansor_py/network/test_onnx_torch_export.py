"""Models exported by torch.onnx import and run like the PyTorch modules they come from.

Small modules cover what the five benchmark networks are made of: conv + batch norm + relu
+ max pool + a residual add, a depthwise conv, conv_transpose + batch norm + tanh (the
DCGAN generator), linear layers, and a transformer block (layer norm, fused QKV linear
split in three, reshape/transpose/matmul attention, softmax, GELU) with an embedding
lookup. Each is exported with both exporters: the TorchScript one
(``dynamo=False, opset_version=17``) and the dynamo one (``dynamo=True``, opset 18+ via
onnxscript), imported with ``from_onnx`` and run by the graph's reference executor; the
result must match PyTorch's (rtol 1e-4). A dynamic batch axis is imported with a shape
override, which also folds the exported shape arithmetic.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is optional (pip install torch==2.13.0)")
onnx = pytest.importorskip("onnx", reason="the ONNX frontend needs onnx (pip install onnx)")

from torch import nn  # noqa: E402

from ansor_py.network.frontend.onnx import OnnxImportError, from_onnx  # noqa: E402
from ansor_py.network.reference import run_reference  # noqa: E402


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
    }[name]
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            assert layer.running_mean is not None and layer.running_var is not None
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return module.eval(), x()


def export(module, x, dynamo: bool, dynamic_batch: bool = False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
            program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=shapes, verbose=False)
            return program.model_proto
        buffer = io.BytesIO()
        axes = {"x": {0: "batch"}} if dynamic_batch else None
        torch.onnx.export(
            module, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"], dynamic_axes=axes
        )
        return onnx.load_from_string(buffer.getvalue())


def run_imported(model, x, shape=None) -> np.ndarray:
    graph = from_onnx(model, shape=shape)
    (name,) = graph.inputs
    return run_reference(graph, {name: x.numpy()})[0]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo"])
@pytest.mark.parametrize("name", ["conv_block", "generator", "classifier", "encoder"])
def test_exported_module_matches_pytorch(name, dynamo):
    module, x = example(name)
    with torch.no_grad():
        expected = module(x).numpy()
    model = export(module, x, dynamo)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == 17 if not dynamo else opset >= 18
    got = run_imported(model, x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


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
    got = run_imported(model, x, shape={input_name: (3, 6)})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
