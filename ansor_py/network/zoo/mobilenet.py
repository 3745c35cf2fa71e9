"""MobileNet-V2 (Sandler et al. 2018; torchvision's ``mobilenet_v2``, width 1.0), NCHW.

One of the five networks of the Ansor paper's end-to-end benchmark (section 7.3): the one
made of depthwise convolutions, whose tasks are memory-bound and where fusing the batch
norm and ReLU6 epilogues matters most. Written as an ONNX export without constant folding
has it: convolutions without bias followed by ``batch_norm``; ReLU6 as ``clip(0, 6)``;
the classifier as ``global_avg_pool``, ``reshape`` and ``dense`` plus bias (dropout is the
identity at inference and not written).

The body: a 3x3/2 convolution to 32 channels, then inverted residual blocks per
``INVERTED_RESIDUALS`` (expand 1x1 + ReLU6, depthwise 3x3 + ReLU6, project 1x1 without
activation; a residual add where stride is 1 and the channels match), a 1x1 convolution to
1280 channels and the 1000-class classifier: 52 convolutions, 17 of them depthwise.
"""

from __future__ import annotations

from ansor_py.network.graph import Graph
from ansor_py.network.zoo.builder import GraphBuilder

#: (expand ratio t, output channels c, repeats n, first stride s), the paper's table 2
INVERTED_RESIDUALS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def _conv_bn_relu6(
    b: GraphBuilder,
    x: str,
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    groups: int,
    name: str,
) -> str:
    """torchvision's ``Conv2dNormActivation``: convolution (pad k // 2), batch norm, ReLU6."""
    pad = kernel // 2
    out = b.conv(
        x,
        in_channels,
        out_channels,
        (kernel, kernel),
        f"{name}.0",
        strides=(stride, stride),
        pads=(pad,) * 4,
        groups=groups,
    )
    out = b.batch_norm(out, out_channels, f"{name}.1")
    return b.node("clip", [out], f"{name}.2", min=0.0, max=6.0)


def _inverted_residual(
    b: GraphBuilder, x: str, in_channels: int, out_channels: int, stride: int, expand: int, name: str
) -> str:
    hidden = in_channels * expand
    out = x
    layer = 0
    if expand != 1:
        out = _conv_bn_relu6(b, out, in_channels, hidden, 1, 1, 1, f"{name}.conv.{layer}")
        layer += 1
    out = _conv_bn_relu6(b, out, hidden, hidden, 3, stride, hidden, f"{name}.conv.{layer}")
    out = b.conv(out, hidden, out_channels, (1, 1), f"{name}.conv.{layer + 1}", gain=1.0)
    out = b.batch_norm(out, out_channels, f"{name}.conv.{layer + 2}")
    if stride == 1 and in_channels == out_channels:
        out = b.node("add", [x, out], f"{name}.add")
    return out


def mobilenet_v2(batch: int = 1, seed: int = 0, size: int = 224) -> Graph:
    """MobileNet-V2 for ``batch`` x 3 x ``size`` x ``size`` images -> ``batch`` x 1000."""
    b = GraphBuilder("mobilenet_v2", seed)
    x = b.input("input", (batch, 3, size, size))
    x = _conv_bn_relu6(b, x, 3, STEM_CHANNELS, 3, 2, 1, "features.0")
    channels = STEM_CHANNELS
    feature = 1
    for expand, out_channels, repeats, first_stride in INVERTED_RESIDUALS:
        for index in range(repeats):
            stride = first_stride if index == 0 else 1
            x = _inverted_residual(b, x, channels, out_channels, stride, expand, f"features.{feature}")
            channels = out_channels
            feature += 1
    x = _conv_bn_relu6(b, x, channels, LAST_CHANNELS, 1, 1, 1, f"features.{feature}")
    x = b.node("global_avg_pool", [x], "avgpool", layout="NCHW")
    x = b.node("reshape", [x], "flatten", shape=(batch, LAST_CHANNELS))
    return b.build([b.dense(x, LAST_CHANNELS, 1000, "classifier.1", bias_std=0.1)])
