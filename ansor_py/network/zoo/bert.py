"""BERT-base (Devlin et al. 2019; HuggingFace's ``BertModel``, uncased vocabulary), encoder
only, returning the last hidden state.

One of the five networks of the Ansor paper's end-to-end benchmark (section 7.3): the one
made of dense layers, batched matmuls, softmax and layer norms. 12 layers, hidden 768, 12
heads of 64, feed-forward 3072 with GELU, sequence 128, about 110 M parameters. Written as
HuggingFace's ONNX export at opset 17 has it, except that the token sequence is kept as a
2-D ``[batch * seq, 768]`` matrix between layers so the projections are ``dense`` nodes
(ONNX ``Gemm(transB=1)``) plus a bias ``add``:

- embeddings: ``take`` (ONNX Gather) of the word, position and token-type tables, summed,
  then ``layer_norm`` (epsilon 1e-12);
- self-attention: query, key and value projections, each reshaped to ``[B, S, 12, 64]``
  and transposed to heads-first (the key to ``[B, 12, 64, S]``), scores by ``matmul``
  divided by sqrt(64), ``softmax`` over the last axis, the context by ``matmul``,
  transposed back and projected; residual add and ``layer_norm``;
- feed-forward: dense to 3072, GELU in its erf form as opset 17 writes it
  (``x * 0.5 * (1 + erf(x / sqrt(2)))``: opset 20 is the first with a Gelu op), dense back
  to 768; residual add and ``layer_norm``.

No attention mask input (every token attends to every token, as with a mask of ones).
Weights are drawn with standard deviation 0.02 (BERT's ``initializer_range``).
"""

from __future__ import annotations

import math

import numpy as np

from ansor_py.network.graph import Graph
from ansor_py.network.zoo.builder import GraphBuilder

VOCAB = 30522
MAX_POSITIONS = 512
TOKEN_TYPES = 2
HIDDEN = 768
HEADS = 12
HEAD_SIZE = HIDDEN // HEADS
FFN = 3072
LAYERS = 12
LAYER_NORM_EPSILON = 1e-12
INIT_STD = 0.02


def _layer_norm(b: GraphBuilder, x: str, axis: int, name: str) -> str:
    gamma = b.uniform(f"{name}.weight", (HIDDEN,), 0.9, 1.1)
    beta = b.normal(f"{name}.bias", (HIDDEN,), INIT_STD)
    return b.node("layer_norm", [x, gamma, beta], name, axis=axis, epsilon=LAYER_NORM_EPSILON)


def _heads(b: GraphBuilder, x: str, batch: int, seq: int, perm: tuple[int, ...], name: str) -> str:
    """``[B * S, 768]`` -> ``[B, S, 12, 64]`` -> permuted (heads before the sequence)."""
    split = b.node("reshape", [x], f"{name}.reshape", shape=(batch, seq, HEADS, HEAD_SIZE))
    return b.node("transpose", [split], f"{name}.transpose", perm=perm)


def _attention(b: GraphBuilder, h: str, batch: int, seq: int, name: str) -> str:
    """Multi-head self-attention, its output projection, residual and layer norm."""
    dense = {
        part: b.dense(h, HIDDEN, HIDDEN, f"{name}.self.{part}", std=INIT_STD)
        for part in ("query", "key", "value")
    }
    query = _heads(b, dense["query"], batch, seq, (0, 2, 1, 3), f"{name}.self.query")
    key = _heads(b, dense["key"], batch, seq, (0, 2, 3, 1), f"{name}.self.key")
    value = _heads(b, dense["value"], batch, seq, (0, 2, 1, 3), f"{name}.self.value")
    scores = b.node("matmul", [query, key], f"{name}.self.scores")
    scale = b.scalar(f"{name}.self.scale", math.sqrt(HEAD_SIZE))
    scores = b.node("divide", [scores, scale], f"{name}.self.scaled")
    probs = b.node("softmax", [scores], f"{name}.self.softmax", axis=3)
    context = b.node("matmul", [probs, value], f"{name}.self.context")
    context = b.node("transpose", [context], f"{name}.self.context.transpose", perm=(0, 2, 1, 3))
    context = b.node("reshape", [context], f"{name}.self.context.reshape", shape=(batch * seq, HIDDEN))
    out = b.dense(context, HIDDEN, HIDDEN, f"{name}.output.dense", std=INIT_STD)
    out = b.node("add", [out, h], f"{name}.output.residual")
    return _layer_norm(b, out, 1, f"{name}.output.LayerNorm")


def _gelu(b: GraphBuilder, x: str, name: str) -> str:
    """``x * 0.5 * (1 + erf(x / sqrt(2)))``, node for node as the opset 17 export has it."""
    scaled = b.node("divide", [x, b.scalar(f"{name}.sqrt2", math.sqrt(2.0))], f"{name}.div")
    erf = b.node("erf", [scaled], f"{name}.erf")
    shifted = b.node("add", [erf, b.scalar(f"{name}.one", 1.0)], f"{name}.add")
    product = b.node("multiply", [x, shifted], f"{name}.mul")
    return b.node("multiply", [product, b.scalar(f"{name}.half", 0.5)], f"{name}.mul_half")


def _layer(b: GraphBuilder, h: str, batch: int, seq: int, name: str) -> str:
    attended = _attention(b, h, batch, seq, f"{name}.attention")
    inner = b.dense(attended, HIDDEN, FFN, f"{name}.intermediate.dense", std=INIT_STD)
    inner = _gelu(b, inner, f"{name}.intermediate.gelu")
    out = b.dense(inner, FFN, HIDDEN, f"{name}.output.dense", std=INIT_STD)
    out = b.node("add", [out, attended], f"{name}.output.residual")
    return _layer_norm(b, out, 1, f"{name}.output.LayerNorm")


def bert_base(batch: int = 1, seq: int = 128, seed: int = 0, layers: int = LAYERS) -> Graph:
    """BERT-base: ``input_ids`` and ``token_type_ids`` ([batch, seq] int64) -> the last
    hidden state [batch, seq, 768]. ``layers`` below 12 gives a shallower model (tests)."""
    if not 1 <= seq <= MAX_POSITIONS:
        raise ValueError(f"bert_base: seq {seq} must be in 1..{MAX_POSITIONS} (the position table)")
    b = GraphBuilder("bert_base" if layers == LAYERS else f"bert_{layers}_layers", seed)
    ids = b.input("input_ids", (batch, seq), "int64")
    token_types = b.input("token_type_ids", (batch, seq), "int64")
    words = b.normal("embeddings.word_embeddings.weight", (VOCAB, HIDDEN), INIT_STD)
    positions = b.normal("embeddings.position_embeddings.weight", (MAX_POSITIONS, HIDDEN), INIT_STD)
    types = b.normal("embeddings.token_type_embeddings.weight", (TOKEN_TYPES, HIDDEN), INIT_STD)
    position_ids = b.constant("embeddings.position_ids", np.arange(seq, dtype=np.int64).reshape(1, seq))
    embedded = b.node("take", [words, ids], "embeddings.word", axis=0)
    embedded = b.node(
        "add",
        [embedded, b.node("take", [positions, position_ids], "embeddings.position", axis=0)],
        "embeddings.add",
    )
    embedded = b.node(
        "add",
        [embedded, b.node("take", [types, token_types], "embeddings.token_type", axis=0)],
        "embeddings.add",
    )
    embedded = _layer_norm(b, embedded, 2, "embeddings.LayerNorm")
    h = b.node("reshape", [embedded], "encoder.flatten", shape=(batch * seq, HIDDEN))
    for index in range(layers):
        h = _layer(b, h, batch, seq, f"encoder.layer.{index}")
    return b.build([b.node("reshape", [h], "last_hidden_state", shape=(batch, seq, HIDDEN))])
