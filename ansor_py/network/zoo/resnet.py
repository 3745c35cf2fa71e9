"""ResNet-50 and ResNet3D-18 (torchvision's ``resnet50`` and ``video.r3d_18``), NC... layout.

Two of the five networks of the Ansor paper's end-to-end benchmark (section 7.3, figure
10). The architectures follow torchvision exactly (layer names included), in the form an
ONNX export without constant folding has: convolutions without bias, each followed by a
``batch_norm`` node; the residual sum by ``add``; the classifier as ``global_avg_pool``,
a flattening ``reshape`` and a ``dense`` plus bias.

- ResNet-50 (He et al. 2016, torchvision's v1.5: the stride of a bottleneck sits on its
  3x3 convolution): a 7x7/2 stem and 3x3/2 max pool, then 3, 4, 6, 3 bottlenecks of widths
  64, 128, 256, 512 (expansion 4), 1000 classes; 53 convolutions, input 1x3x224x224.
- ResNet3D-18 (Tran et al. 2018, "R3D"): a 3x7x7 stem with stride (1, 2, 2), then 2, 2,
  2, 2 basic blocks of 3x3x3 convolutions with 64, 128, 256, 512 channels (stride 2 in
  time and space from the second stage on), 400 classes (Kinetics); 20 convolutions,
  input 1x3x16x112x112.
"""

from __future__ import annotations

from collections.abc import Sequence

from ansor_py.network.graph import Graph
from ansor_py.network.zoo.builder import GraphBuilder

#: blocks per stage
RESNET50_STAGES = (3, 4, 6, 3)
R3D18_STAGES = (2, 2, 2, 2)
STAGE_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def conv_bn(
    b: GraphBuilder,
    x: str,
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int],
    base: str,
    bn_base: str,
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    groups: int = 1,
) -> str:
    """Convolution (no bias) then batch norm: torchvision's ``conv{i}`` + ``bn{i}``."""
    out = b.conv(x, in_channels, out_channels, kernel, base, strides=strides, pads=pads, groups=groups)
    return b.batch_norm(out, out_channels, bn_base)


def _classifier(b: GraphBuilder, x: str, batch: int, channels: int, classes: int, layout: str) -> str:
    """``avgpool`` -> ``flatten`` -> ``fc``."""
    pooled = b.node("global_avg_pool", [x], "avgpool", layout=layout)
    flat = b.node("reshape", [pooled], "flatten", shape=(batch, channels))
    return b.dense(flat, channels, classes, "fc", bias_std=0.1)


def _residual(
    b: GraphBuilder,
    out: str,
    x: str,
    in_channels: int,
    channels: int,
    strides: Sequence[int],
    name: str,
    relu: str,
) -> str:
    """A residual block's end, relu(``out`` + shortcut), the relu named ``relu``. The shortcut
    is the block's input ``x``, or where the block changes the shape (``strides`` not all 1,
    or other channels) torchvision's ``downsample``: a 1x1 (1x1x1) convolution with ``strides``,
    then batch norm."""
    shortcut = x
    if any(s != 1 for s in strides) or in_channels != channels:
        kernel = (1,) * len(strides)
        down = f"{name}.downsample"
        shortcut = conv_bn(b, x, in_channels, channels, kernel, f"{down}.0", f"{down}.1", strides=strides)
    return b.node("relu", [b.node("add", [out, shortcut], f"{name}.add")], relu)


def _bottleneck(b: GraphBuilder, x: str, in_channels: int, width: int, stride: int, name: str) -> str:
    """torchvision's ``Bottleneck``: 1x1 -> 3x3 (stride) -> 1x1 (x4), plus the shortcut."""
    out_channels = width * BOTTLENECK_EXPANSION
    out = conv_bn(b, x, in_channels, width, (1, 1), f"{name}.conv1", f"{name}.bn1")
    out = b.node("relu", [out], f"{name}.relu1")
    out = conv_bn(
        b,
        out,
        width,
        width,
        (3, 3),
        f"{name}.conv2",
        f"{name}.bn2",
        strides=(stride, stride),
        pads=(1, 1, 1, 1),
    )
    out = b.node("relu", [out], f"{name}.relu2")
    out = conv_bn(b, out, width, out_channels, (1, 1), f"{name}.conv3", f"{name}.bn3")
    return _residual(b, out, x, in_channels, out_channels, (stride, stride), name, f"{name}.relu3")


def resnet50(batch: int = 1, seed: int = 0) -> Graph:
    """ResNet-50 v1.5 for ``batch`` x 3 x 224 x 224 images -> ``batch`` x 1000 logits."""
    b = GraphBuilder("resnet50", seed)
    x = b.input("input", (batch, 3, 224, 224))
    x = conv_bn(b, x, 3, 64, (7, 7), "conv1", "bn1", strides=(2, 2), pads=(3, 3, 3, 3))
    x = b.node("relu", [x], "relu")
    x = b.node(
        "max_pool",
        [x],
        "maxpool",
        layout="NCHW",
        kernel=(3, 3),
        strides=(2, 2),
        pads=(1, 1, 1, 1),
        dilations=(1, 1),
        ceil_mode=False,
    )
    channels = 64
    for stage, (blocks, width) in enumerate(zip(RESNET50_STAGES, STAGE_WIDTHS, strict=True), start=1):
        for index in range(blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            x = _bottleneck(b, x, channels, width, stride, f"layer{stage}.{index}")
            channels = width * BOTTLENECK_EXPANSION
    return b.build([_classifier(b, x, batch, channels, 1000, "NCHW")])


def _basic_block_3d(b: GraphBuilder, x: str, in_channels: int, channels: int, stride: int, name: str) -> str:
    """torchvision's video ``BasicBlock`` with ``Conv3DSimple``: two 3x3x3 convolutions."""
    pads = (1,) * 6
    out = conv_bn(
        b,
        x,
        in_channels,
        channels,
        (3, 3, 3),
        f"{name}.conv1.0",
        f"{name}.conv1.1",
        strides=(stride,) * 3,
        pads=pads,
    )
    out = b.node("relu", [out], f"{name}.conv1.2")
    out = conv_bn(b, out, channels, channels, (3, 3, 3), f"{name}.conv2.0", f"{name}.conv2.1", pads=pads)
    return _residual(b, out, x, in_channels, channels, (stride,) * 3, name, f"{name}.relu")


def resnet3d_18(batch: int = 1, seed: int = 0, frames: int = 16, size: int = 112) -> Graph:
    """R3D-18 for ``batch`` x 3 x ``frames`` x ``size`` x ``size`` clips -> ``batch`` x 400."""
    b = GraphBuilder("resnet3d_18", seed)
    x = b.input("input", (batch, 3, frames, size, size))
    x = conv_bn(b, x, 3, 64, (3, 7, 7), "stem.0", "stem.1", strides=(1, 2, 2), pads=(1, 3, 3, 1, 3, 3))
    x = b.node("relu", [x], "stem.2")
    channels = 64
    for stage, (blocks, width) in enumerate(zip(R3D18_STAGES, STAGE_WIDTHS, strict=True), start=1):
        for index in range(blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            x = _basic_block_3d(b, x, channels, width, stride, f"layer{stage}.{index}")
            channels = width
    return b.build([_classifier(b, x, batch, channels, 400, "NCDHW")])
