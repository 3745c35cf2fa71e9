"""The model zoo: the five networks of the Ansor paper's end-to-end benchmark (section 7.3,
figure 10) written in the graph IR, with seeded random weights.

Each builder returns a ``Graph`` in the form an ONNX export has (NCHW, OIHW weights,
``batch_norm`` nodes, biases as ``add``), so the same graph goes through the compiler
directly and, written by ``ansor_py.network.onnx_writer``, through onnxruntime and the
ONNX importer. ``NETWORKS`` maps each name to its builder (batch 1, the paper's shapes):

==============  ==========================  ===============================================
name            input                       output
==============  ==========================  ===============================================
resnet50        input 1x3x224x224           logits 1x1000
mobilenet_v2    input 1x3x224x224           logits 1x1000
resnet3d_18     input 1x3x16x112x112        logits 1x400
dcgan           z 1x100                     image 1x3x64x64
bert_base       input_ids, token_type_ids   last hidden state 1x128x768
                1x128 int64
==============  ==========================  ===============================================

``random_inputs(graph, seed)`` gives matching seeded inputs (token ids within the
vocabulary).
"""

from __future__ import annotations

from collections.abc import Callable

from ansor_py.network.graph import Graph
from ansor_py.network.zoo.bert import bert_base
from ansor_py.network.zoo.builder import GraphBuilder, random_inputs
from ansor_py.network.zoo.dcgan import dcgan
from ansor_py.network.zoo.mobilenet import mobilenet_v2
from ansor_py.network.zoo.resnet import resnet3d_18, resnet50

NETWORKS: dict[str, Callable[[], Graph]] = {
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "resnet3d_18": resnet3d_18,
    "dcgan": dcgan,
    "bert_base": bert_base,
}

__all__ = [
    "NETWORKS",
    "GraphBuilder",
    "bert_base",
    "dcgan",
    "mobilenet_v2",
    "random_inputs",
    "resnet3d_18",
    "resnet50",
]
