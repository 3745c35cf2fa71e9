"""Shared checks of the network ops (``ansor_py.network.ops``) for the ``test_ops_*`` modules.

An op is checked at three levels, each against the level below:

1. its numpy ``reference`` against onnxruntime running the one-node ONNX model of the op
   (``run_onnxruntime``), and against its own ``infer`` (``checked_reference``);
2. its ``declare`` (a te expression) evaluated by ``ir.reference.evaluate`` against the
   reference (``check_declare``);
3. the declaration compiled with ``codegen.build.build``, with the naive schedule or with
   the fused, split, parallel and vectorised one a default schedule gives
   (``check_compiled``, ``parallel_vectorized``), and run on the same inputs.

An op family's test module lists its calls as ``case`` params and binds the tests of
``case_tests`` (the levels) and ``infer_error_test`` (``infer``'s GraphErrors) to its own
``test_*`` names, so every family runs the same checks with the same tolerances.

Not a test module (pytest collects nothing here): pytest puts this folder on ``sys.path``
for the test modules beside it, which import it as ``op_checks``. Each test module keeps
its own seeded ``RandomArrays`` so that its inputs do not depend on which other modules run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from ansor_py.network.ops import get_op
from ansor_py.network.types import GraphError, TensorType
from codegen.build import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.reference import evaluate
from ir.te import PlaceholderOp

#: the value a compiled kernel's output buffer holds before the call, so that an element
#: the kernel never writes shows
UNWRITTEN = 7

#: (a shape, b shape) pairs of ``matmul``: plain, batched a, both batched with broadcast,
#: a broadcast batch of 1, batched b only
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 4), (3, 4, 6)),
    ((1, 7, 8), (2, 8, 3)),
    ((5, 6), (2, 6, 3)),
]


class RandomArrays:
    """Random operands from one seeded generator (never zeros, apart from chance)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def floats(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)

    def positives(self, *shape: int) -> np.ndarray:
        return (self.rng.random(shape) * 3.0 + 0.1).astype(np.float32)

    def uniform(self, low: float, high: float, *shape: int) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def ints(self, *shape: int, low: int = -9, high: int = 10, dtype: type = np.int64) -> np.ndarray:
        return self.rng.integers(low, high, shape).astype(dtype)

    def nonzero_ints(self, *shape: int, dtype: type = np.int64) -> np.ndarray:
        values = self.ints(*shape, dtype=dtype)
        return np.where(values == 0, dtype(3), values).astype(dtype)


# ------------------------------------------------------------------------------------------
# comparisons


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype and shape; floats to 1e-5 relative (1e-6 absolute), other dtypes exactly."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    if np.issubdtype(want.dtype, np.floating):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


def assert_scaled_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> None:
    """Same dtype and shape, and equal to ``rtol`` of each element plus ``rtol`` of the largest
    magnitude of ``want`` (a sum of many terms cancels to far below its terms)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


# ------------------------------------------------------------------------------------------
# the three levels


def run_onnxruntime(
    onnx_op: str,
    arrays: Sequence[np.ndarray],
    out_type: TensorType | None = None,
    attrs: Mapping[str, Any] | None = None,
    constants: Sequence[np.ndarray | None] = (),
    opset: int = 17,
) -> np.ndarray:
    """``onnx_op`` applied to ``arrays`` (graph inputs) and ``constants`` (initializers,
    None for an omitted optional input), one node, by onnxruntime on the CPU. The output is
    declared as ``out_type``; without one, as the first input's dtype of unknown shape."""
    names = [f"x{n}" for n in range(len(arrays))]
    inits = []
    const_names = []
    for n, value in enumerate(constants):
        if value is None:
            const_names.append("")
            continue
        inits.append(numpy_helper.from_array(np.asarray(value), f"c{n}"))
        const_names.append(f"c{n}")
    node = helper.make_node(onnx_op, names + const_names, ["y"], **dict(attrs or {}))
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in zip(names, arrays, strict=True)
    ]
    if out_type is None:
        output = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(arrays[0].dtype), None)
    else:
        out_dtype = helper.np_dtype_to_tensor_dtype(np.dtype(out_type.dtype))
        output = helper.make_tensor_value_info("y", out_dtype, out_type.shape)
    graph = helper.make_graph([node], onnx_op.lower(), inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, dict(zip(names, arrays, strict=True)))[0])


def checked_reference(op: str, attrs: Mapping[str, Any], arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The op's reference result, checked against the type its own ``infer`` gives."""
    opdef = get_op(op)
    (expected_type,) = opdef.infer(attrs, [TensorType.of(a) for a in arrays])
    (out,) = opdef.reference(attrs, arrays)
    assert TensorType.of(out) == expected_type
    return out


def declare_dag(op: str, attrs: Mapping[str, Any], arrays: Sequence[np.ndarray]) -> ComputeDAG:
    """The DAG of ``op`` declared on placeholders ``p0, p1, ...`` like ``arrays`` as node
    ``{op}_node``: every stage it computes is named after the node, the output as the node."""
    placeholders = [
        te.placeholder(a.shape, TensorType.of(a).dtype, name=f"p{n}") for n, a in enumerate(arrays)
    ]
    node = f"{op}_node"
    outputs = get_op(op).declare(attrs, placeholders, node)
    dag = ComputeDAG(placeholders + outputs)
    computed = [o.name for o in dag.ops if not isinstance(o, PlaceholderOp)]
    assert computed[-1] == node and all(name.startswith(node) for name in computed), computed
    return dag


def parallel_vectorized(dag: ComputeDAG) -> State:
    """The output's loops fused, split by 8 (a tail when the extent does not divide), the
    outer loop parallel and the inner one vectorised: what a default schedule does."""
    state = get_init_state(dag)
    stage = dag.outputs[0].name
    iters = state[stage].iters
    fused = state.fuse(stage, list(iters)) if len(iters) > 1 else iters[0]
    outer, inner = state.split(stage, fused, [8])
    state.parallel(stage, outer)
    state.vectorize(stage, inner)
    return state


def run_compiled(
    dag: ComputeDAG, state: State | None, arrays: Sequence[np.ndarray], like: np.ndarray
) -> np.ndarray:
    """``dag`` compiled with ``state`` (None: the naive schedule) and run on ``arrays``,
    into a buffer of ``like``'s shape and dtype that holds ``UNWRITTEN`` before the call."""
    out = np.full(like.shape, UNWRITTEN, dtype=like.dtype)
    build(dag, state, "llvm")(*arrays, out)
    return out


Compare = Callable[[np.ndarray, np.ndarray], None]


def check_declare(
    op: str,
    attrs: Mapping[str, Any],
    arrays: Sequence[np.ndarray],
    compile_: bool = False,
    close: Compare = assert_close,
) -> ComputeDAG:
    """The declaration evaluates (and, if asked, compiles naively) to the reference's numbers."""
    want = checked_reference(op, attrs, arrays)
    dag = declare_dag(op, attrs, arrays)
    (got,) = evaluate(dag, list(arrays))
    close(got, want)
    if compile_:
        close(run_compiled(dag, None, arrays, want), want)
    return dag


def check_compiled(
    op: str,
    attrs: Mapping[str, Any],
    arrays: Sequence[np.ndarray],
    schedule: Callable[[ComputeDAG], State] | None = None,
    close: Compare = assert_close,
) -> None:
    """The declaration compiled with ``schedule(dag)`` (None: naive) gives the reference's numbers."""
    want = checked_reference(op, attrs, arrays)
    dag = declare_dag(op, attrs, arrays)
    close(run_compiled(dag, None if schedule is None else schedule(dag), arrays, want), want)


# ------------------------------------------------------------------------------------------
# one op call with its ONNX equivalent


@dataclass
class Case:
    """One op call: graph op + attrs + inputs, and its ONNX equivalent."""

    label: str
    op: str
    attrs: dict[str, Any]
    inputs: list[np.ndarray]
    onnx_op: str
    onnx_attrs: dict[str, Any] = field(default_factory=dict)
    onnx_constants: list[np.ndarray | None] = field(default_factory=list)
    opset: int = 17
    compile: bool = False

    @property
    def out_type(self) -> TensorType:
        return get_op(self.op).infer(self.attrs, [TensorType.of(a) for a in self.inputs])[0]


def case(
    label: str, op: str, attrs: dict[str, Any], inputs: list[np.ndarray], onnx_op: str, **kw: Any
) -> Any:
    """A ``pytest.param`` of one ``Case``, with ``label`` as its id."""
    return pytest.param(Case(label, op, attrs, inputs, onnx_op, **kw), id=label)


def compiled(cases: Sequence[Any], vectorizable: bool = False) -> list[Any]:
    """The params of ``cases`` marked ``compile``; with ``vectorizable``, only those whose
    output has a loop to split."""
    chosen = [p for p in cases if p.values[0].compile]
    return [p for p in chosen if p.values[0].out_type.ndim > 0] if vectorizable else chosen


def case_tests(cases: Sequence[Any]) -> tuple[Callable[[Case], None], ...]:
    """The four tests of an op family's ``case`` params, for its test module to bind to
    ``test_*`` names (pytest collects them there, parametrized by ``cases``):

    - the reference against onnxruntime (and its own ``infer``), every case;
    - the declaration evaluated against the reference, every case;
    - the declaration compiled naively against the reference, the cases marked ``compile``;
    - the same with ``parallel_vectorized``, those of them whose output has a loop to split.
    """

    @pytest.mark.parametrize("c", cases)
    def test_reference_matches_onnxruntime(c: Case) -> None:
        ref = checked_reference(c.op, c.attrs, c.inputs)
        ort_out = run_onnxruntime(c.onnx_op, c.inputs, c.out_type, c.onnx_attrs, c.onnx_constants, c.opset)
        assert ort_out.dtype == ref.dtype
        assert_close(ref, ort_out)

    @pytest.mark.parametrize("c", cases)
    def test_declare_matches_reference(c: Case) -> None:
        check_declare(c.op, c.attrs, c.inputs)

    @pytest.mark.parametrize("c", compiled(cases))
    def test_compiled_matches_reference(c: Case) -> None:
        check_compiled(c.op, c.attrs, c.inputs)

    @pytest.mark.parametrize("c", compiled(cases, vectorizable=True))
    def test_parallel_vectorized_schedule_matches_reference(c: Case) -> None:
        check_compiled(c.op, c.attrs, c.inputs, parallel_vectorized)

    return (
        test_reference_matches_onnxruntime,
        test_declare_matches_reference,
        test_compiled_matches_reference,
        test_parallel_vectorized_schedule_matches_reference,
    )


def infer_error_test(errors: Sequence[tuple[Any, ...]]) -> Callable[..., None]:
    """A test, parametrized by ``errors`` = ``(op, attrs, input types, pattern)``, that ``infer``
    raises a GraphError matching the pattern (the op, the attribute or operand, the value)."""

    @pytest.mark.parametrize(("op", "attrs", "types", "match"), errors)
    def test_bad_operands_and_attributes(
        op: str, attrs: dict[str, Any], types: list[TensorType], match: str
    ) -> None:
        with pytest.raises(GraphError, match=match):
            get_op(op).infer(attrs, types)

    return test_bad_operands_and_attributes


# ------------------------------------------------------------------------------------------
# attributes of the windowed NN ops


def conv_attrs(
    layout: str,
    kernel_layout: str,
    strides: tuple[int, ...],
    pads: tuple[int, ...],
    dilations: tuple[int, ...],
    groups: int,
    **more: Any,
) -> dict[str, Any]:
    """``conv`` attributes (``conv_transpose``'s with ``output_padding`` in ``more``)."""
    return dict(
        layout=layout, kernel_layout=kernel_layout, strides=strides, pads=pads, dilations=dilations,
        groups=groups, **more,
    )  # fmt: skip


def pool_attrs(
    layout: str,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    pads: tuple[int, ...],
    dilations: tuple[int, ...],
    ceil_mode: bool,
    **more: Any,
) -> dict[str, Any]:
    """``max_pool`` attributes (``avg_pool``'s with ``count_include_pad`` in ``more``)."""
    return dict(
        layout=layout, kernel=kernel, strides=strides, pads=pads, dilations=dilations, ceil_mode=ceil_mode,
        **more,
    )  # fmt: skip
