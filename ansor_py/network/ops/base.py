"""The contract every graph operator meets: ``OpDef``.

An op of the graph IR is four functions over the same attributes (TVM registers the same
for a Relay op: a type relation, a TOPI compute and an op pattern for fusion):

- ``infer(attrs, input_types) -> output_types``: the shape function; raises
  ``GraphError`` naming the attribute or input and the limit for anything it cannot take;
- ``reference(attrs, arrays) -> arrays``: numpy semantics of the op (ONNX's), the oracle
  the graph's reference executor runs and every compiled kernel is compared with;
- ``declare(attrs, tensors, name) -> tensors``: the computation in the ``te`` DSL, built
  from ``ir.topi``; ``name`` is the base name of the te ops it creates (helpers derive
  theirs from it), so a fused subgraph names its ops canonically and identical subgraphs
  share one workload key;
- ``pattern``: how the op fuses (``OpPattern``, TVM's ``TOpPattern`` values, used by the
  fusion pass the way Relay's FuseOps uses them).

Attributes are plain Python values (ints, floats, bools, strings, tuples), never arrays:
an array operand is a constant value of the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from ansor_py.network.types import GraphError, TensorType
from ir.te import Tensor

Attrs = Mapping[str, Any]
InferFn = Callable[[Attrs, Sequence[TensorType]], list[TensorType]]
ReferenceFn = Callable[[Attrs, Sequence[np.ndarray]], list[np.ndarray]]
DeclareFn = Callable[[Attrs, Sequence[Tensor], str], list[Tensor]]


class OpPattern(IntEnum):
    """How an op fuses (TVM's ``TOpPattern``, same values and order: a smaller value fuses
    more freely)."""

    ELEMWISE = 0  # out[i] = f(in[i]) on each input of the output's shape
    BROADCAST = 1  # elementwise with numpy broadcasting of the inputs
    INJECTIVE = 2  # each output element reads input elements by an index map (reshape, slice)
    COMM_REDUCE = 3  # a commutative reduction (sum, max, mean over axes)
    OUT_ELEMWISE_FUSABLE = 4  # a complex op whose output can take an elementwise epilogue (conv)
    OPAQUE = 8  # fuses with nothing


@dataclass(frozen=True)
class OpDef:
    """One graph operator (see the module docstring). ``arity`` is the (min, max) number of
    inputs (max None: any number, as concat takes)."""

    name: str
    pattern: OpPattern
    infer: InferFn
    reference: ReferenceFn
    declare: DeclareFn
    arity: tuple[int, int | None] = (1, 1)

    def check_arity(self, num_inputs: int, node: str = "") -> None:
        low, high = self.arity
        if num_inputs < low or (high is not None and num_inputs > high):
            expected = f"{low}" if low == high else f"{low} to {high if high is not None else 'any'}"
            where = f"node {node!r}: " if node else ""
            raise GraphError(f"{where}op '{self.name}' takes {expected} inputs, got {num_inputs}")


def attr(attrs: Attrs, key: str, op: str, default: Any = ...) -> Any:
    """``attrs[key]``; without a default, a missing key is a GraphError naming the op."""
    if key in attrs:
        return attrs[key]
    if default is ...:
        raise GraphError(f"op '{op}' needs attribute '{key}' (given: {sorted(attrs)})")
    return default


def op_table(*ops: OpDef) -> dict[str, OpDef]:
    """``{op.name: op}``; two ops of one name are a programming error."""
    table: dict[str, OpDef] = {}
    for op in ops:
        if op.name in table:
            raise ValueError(f"op '{op.name}' is defined twice")
        table[op.name] = op
    return table
