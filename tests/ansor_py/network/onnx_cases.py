"""Shared helpers of the ONNX import tests: build a small model with ``onnx.helper`` and run
it both with onnxruntime and with ``run_reference(from_onnx(model))`` on random inputs.

A ``Case`` is a one-op (or few-op) model: its nodes (a list, or a function of the opset
where the op's form changes with the opset), its graph inputs, initializers and outputs.
``check_case(case, opset)`` builds it at ``opset`` and compares the two runs (rtol 1e-4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from ansor_py.network.frontend.onnx import from_onnx
from ansor_py.network.graph import Graph
from ansor_py.network.reference import run_reference

NP_TO_ONNX = {
    np.dtype("float32"): onnx.TensorProto.FLOAT,
    np.dtype("float64"): onnx.TensorProto.DOUBLE,
    np.dtype("int32"): onnx.TensorProto.INT32,
    np.dtype("int64"): onnx.TensorProto.INT64,
    np.dtype("bool"): onnx.TensorProto.BOOL,
}


@dataclass
class Case:
    """A small ONNX model to import and run. ``inputs``: name -> (shape, dtype);
    ``outputs``: name -> dtype; ``feeds`` fixes input arrays (else random normal floats,
    positive with ``positive``; random ints in [-3, 4) for integer inputs)."""

    id: str
    nodes: Sequence[onnx.NodeProto] | Callable[[int], Sequence[onnx.NodeProto]]
    inputs: Mapping[str, tuple[tuple[Any, ...], str]]
    outputs: Mapping[str, str]
    initializers: Mapping[str, np.ndarray] = field(default_factory=dict)
    opsets: tuple[int, ...] = (13, 17, 18, 21)
    feeds: Mapping[str, np.ndarray] = field(default_factory=dict)
    positive: bool = False


def make_model(case: Case, opset: int) -> onnx.ModelProto:
    nodes = case.nodes(opset) if callable(case.nodes) else case.nodes
    inputs = [
        helper.make_tensor_value_info(name, NP_TO_ONNX[np.dtype(dtype)], list(shape))
        for name, (shape, dtype) in case.inputs.items()
    ]
    outputs = [
        helper.make_tensor_value_info(name, NP_TO_ONNX[np.dtype(dtype)], None)
        for name, dtype in case.outputs.items()
    ]
    inits = [numpy_helper.from_array(np.asarray(a), name) for name, a in case.initializers.items()]
    graph = helper.make_graph(list(nodes), case.id.replace("-", "_"), inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 18 else 10
    return model


def random_inputs(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for name, (shape, dtype) in case.inputs.items():
        if name in case.feeds:
            arrays[name] = np.asarray(case.feeds[name])
        elif np.dtype(dtype).kind == "f":
            data = rng.standard_normal(shape)
            arrays[name] = (np.abs(data) + 0.5 if case.positive else data).astype(dtype)
        elif np.dtype(dtype).kind == "b":
            arrays[name] = rng.random(shape) < 0.5
        else:
            arrays[name] = rng.integers(-3, 4, shape).astype(dtype)
    return arrays


def run_onnxruntime(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(a) for a in session.run(None, dict(inputs))]


def assert_same(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray], rtol: float = 1e-4) -> None:
    assert len(expected) == len(actual)
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        assert got.shape == want.shape, f"output {i}: shape {got.shape}, onnxruntime {want.shape}"
        assert got.dtype == want.dtype, f"output {i}: dtype {got.dtype}, onnxruntime {want.dtype}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(
                got, want, rtol=rtol, atol=rtol * max(1.0, float(np.abs(want).max(initial=0)))
            )
        else:
            np.testing.assert_array_equal(got, want)


def check_case(case: Case, opset: int) -> Graph:
    """Import the case's model at ``opset``, run it both ways, compare; the graph."""
    model = make_model(case, opset)
    inputs = random_inputs(case)
    graph = from_onnx(model)
    assert_same(run_onnxruntime(model, inputs), run_reference(graph, inputs))
    return graph


def node(
    op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str = "", **attrs: Any
) -> onnx.NodeProto:
    return helper.make_node(
        op_type,
        list(inputs),
        list(outputs),
        name=name or f"{op_type.lower()}_{outputs[0] if outputs else 0}",
        **attrs,
    )


def weights(*shape: int, seed: int = 1, positive: bool = False) -> np.ndarray:
    data = np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)
    return np.abs(data) + 0.5 if positive else data


def ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)
