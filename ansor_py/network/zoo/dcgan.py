"""The DCGAN generator (Radford et al. 2016; PyTorch's DCGAN example with nz 100, ngf 64).

One of the five networks of the Ansor paper's end-to-end benchmark (section 7.3): the one
made of transposed convolutions (the paper's T2D operator). A latent vector of 100 values
becomes a 3x64x64 image:

    z [B, 100] -> reshape [B, 100, 1, 1]
    -> ConvTranspose 4x4 (stride 1, pad 0) -> 512 x 4 x 4, batch norm, ReLU
    -> ConvTranspose 4x4 (stride 2, pad 1) -> 256 x 8 x 8, batch norm, ReLU
    -> ... 128 x 16 x 16 -> 64 x 32 x 32 (each with batch norm and ReLU)
    -> ConvTranspose 4x4 (stride 2, pad 1) -> 3 x 64 x 64, tanh

Weights are ONNX ``ConvTranspose``'s ``C_in x C_out x kh x kw`` (``kernel_layout`` IOHW),
without bias, as PyTorch's ``nn.ConvTranspose2d(bias=False)`` exports them.
"""

from __future__ import annotations

import math

from ansor_py.network.graph import Graph
from ansor_py.network.zoo.builder import GraphBuilder

LATENT = 100
#: output channels of the four upsampling layers before the image
WIDTHS = (512, 256, 128, 64)
IMAGE_CHANNELS = 3
KERNEL = 4


def conv_transpose(
    b: GraphBuilder,
    x: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    pad: int,
    name: str,
    gain: float,
) -> str:
    """A 4x4 ``ConvTranspose`` without bias. Each output element sums ``in_channels x
    (KERNEL / stride)^2`` products, its fan-in for the He initialisation."""
    fan_in = in_channels * (KERNEL // stride) ** 2
    weight = b.normal(f"{name}.weight", (in_channels, out_channels, KERNEL, KERNEL), math.sqrt(gain / fan_in))
    return b.node(
        "conv_transpose",
        [x, weight],
        name,
        layout="NCHW",
        kernel_layout="IOHW",
        strides=(stride, stride),
        pads=(pad,) * 4,
        dilations=(1, 1),
        output_padding=(0, 0),
        groups=1,
    )


def dcgan(batch: int = 1, seed: int = 0) -> Graph:
    """The DCGAN generator: ``batch`` x 100 latents -> ``batch`` x 3 x 64 x 64 in (-1, 1)."""
    b = GraphBuilder("dcgan", seed)
    z = b.input("z", (batch, LATENT))
    x = b.node("reshape", [z], "unflatten", shape=(batch, LATENT, 1, 1))
    channels = LATENT
    layer = 0
    for index, width in enumerate(WIDTHS):
        stride, pad = (1, 0) if index == 0 else (2, 1)
        x = conv_transpose(b, x, channels, width, stride, pad, f"main.{layer}", gain=2.0)
        x = b.batch_norm(x, width, f"main.{layer + 1}")
        x = b.node("relu", [x], f"main.{layer + 2}")
        channels = width
        layer += 3
    x = conv_transpose(b, x, channels, IMAGE_CHANNELS, 2, 1, f"main.{layer}", gain=1.0)
    return b.build([b.node("tanh", [x], f"main.{layer + 1}")])
