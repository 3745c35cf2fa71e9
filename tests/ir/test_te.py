"""The declaration DSL: construction, dtype rules and the errors bad declarations raise."""

from __future__ import annotations

import numpy as np
import pytest

from ir import te
from ir.compute_dag import ComputeDAG
from ir.dtype import DTypeError
from ir.expr import Binary, BinaryOp, Cast, Const, IterVarKind, Reduce, Select, TensorRead
from ir.reference import evaluate
from ir.te import DeclarationError


@pytest.fixture
def a32() -> te.Tensor:
    return te.placeholder((4, 5), dtype="float32", name="A")


# literals and dtypes -------------------------------------------------------------------------


def test_literals_take_the_dtype_they_meet(a32: te.Tensor) -> None:
    x = a32[0, 0]
    assert (x * 2).dtype == "float32"
    assert (2.5 + x).dtype == "float32"
    h = te.placeholder((3,), dtype="float16", name="H")[1]
    assert (h * 0.5).dtype == "float16"
    i = te.placeholder((3,), dtype="int8", name="I")[0]
    product = i * 3
    assert product.dtype == "int8"
    assert isinstance(product, Binary) and isinstance(product.b, Const) and product.b.dtype == "int8"
    assert (
        te.const(1).dtype == "int32" and te.const(1.0).dtype == "float32" and te.const(True).dtype == "bool"
    )


def test_integers_of_different_widths_widen(a32: te.Tensor) -> None:
    i32 = te.placeholder((3,), dtype="int32", name="I")[0]
    i64 = te.placeholder((3,), dtype="int64", name="L")[0]
    total = i32 + i64
    assert total.dtype == "int64"
    assert isinstance(total, Binary) and isinstance(total.a, Cast) and total.a.dtype == "int64"
    assert total.b is i64


def test_float_literal_on_int_expression_is_an_error() -> None:
    i = te.placeholder((3,), dtype="int32", name="I")[0]
    with pytest.raises(DTypeError, match=r"int32.*float32"):
        _ = i + 2.5


def test_dtype_mismatch_names_both_sides(a32: te.Tensor) -> None:
    h = te.placeholder((4, 5), dtype="float16", name="H")
    with pytest.raises(DTypeError, match=r"A\[0, 0\] is float32, H\[0, 0\] is float16"):
        _ = a32[0, 0] + h[0, 0]
    with pytest.raises(DTypeError, match=r"comparison <.*float32.*float16"):
        _ = a32[0, 0] < h[0, 0]


def test_true_division_on_integers_is_an_error() -> None:
    i = te.placeholder((3,), dtype="int32", name="I")
    with pytest.raises(DTypeError, match=r"'/' on int32 operands .*ambiguous"):
        te.compute((3,), lambda k: i[k] / 2, name="bad")
    ok = te.compute((3,), lambda k: i[k] // 2 + i[k] % 2, name="ok")
    assert ok.dtype == "int32"


def test_unsupported_dtype_names_the_choices() -> None:
    with pytest.raises(DTypeError, match=r"unsupported dtype 'float8'; expected one of float16"):
        te.placeholder((2,), dtype="float8", name="X")


# shapes and indices --------------------------------------------------------------------------


def test_wrong_index_count_names_tensor_and_counts(a32: te.Tensor) -> None:
    with pytest.raises(DeclarationError, match=r"tensor 'A' has 2 dimension\(s\) \[4, 5\], indexed with 1"):
        _ = a32[0]
    with pytest.raises(DeclarationError, match=r"indexed with 3 index"):
        _ = a32[0, 1, 2]


def test_float_index_is_an_error(a32: te.Tensor) -> None:
    with pytest.raises(DeclarationError, match=r"index .* of tensor 'A' has dtype float32"):
        _ = a32[a32[0, 0], 0]


@pytest.mark.parametrize("shape", [(0, 3), (3, -1), (2, 2.5), (True, 2)])
def test_bad_shapes_are_rejected(shape: tuple) -> None:
    with pytest.raises(DeclarationError, match=r"placeholder 'X': shape .* must hold positive integers"):
        te.placeholder(shape, name="X")
    with pytest.raises(DeclarationError, match=r"compute 'Y': shape .* must hold positive integers"):
        te.compute(shape, lambda i, j: te.const(1.0), name="Y")


def test_compute_lambda_arity_must_match_shape() -> None:
    with pytest.raises(
        DeclarationError, match=r"compute 'C': shape \[2, 3\] has 2 dimension\(s\) but fcompute takes 1"
    ):
        te.compute((2, 3), lambda i: te.const(0.0), name="C")


def test_lambda_parameter_names_name_the_axes(a32: te.Tensor) -> None:
    c = te.compute((4, 5), lambda row, col: a32[row, col] * 2.0, name="C")
    assert [axis.name for axis in c.op.axis] == ["row", "col"]
    assert all(axis.kind is IterVarKind.SPATIAL and axis.dom_min == 0 for axis in c.op.axis)
    star = te.compute((4, 5), lambda *idx: a32[idx[0], idx[1]], name="S")
    assert [axis.name for axis in star.op.axis] == ["i", "j"]


# reductions ------------------------------------------------------------------------------


def test_nested_reduction_is_rejected(a32: te.Tensor) -> None:
    k = te.reduce_axis((0, 5), name="k")
    with pytest.raises(DeclarationError, match=r"compute 'bad': a reduction \(sum\) must be the whole body"):
        te.compute((4,), lambda i: te.sum(a32[i, k], axis=k) + 1.0, name="bad")


def test_reduce_axis_range_and_axis_checks(a32: te.Tensor) -> None:
    with pytest.raises(
        DeclarationError, match=r"reduce_axis 'r': range \(3, 3\) must be two integers with begin < end"
    ):
        te.reduce_axis((3, 3), name="r")
    with pytest.raises(DeclarationError, match=r"te.sum needs axis="):
        te.compute((4,), lambda i: te.sum(a32[i, 0]), name="bad")
    with pytest.raises(DeclarationError, match=r"te.sum: axis i is not a te.reduce_axis"):
        te.compute((4,), lambda i: te.sum(a32[i, 0], axis=i), name="bad")
    k = te.reduce_axis((0, 5), name="k")
    k2 = te.reduce_axis((0, 5), name="k")
    with pytest.raises(DeclarationError, match=r"reduction axes \['k', 'k'\] repeat a name"):
        te.compute((4,), lambda i: te.sum(a32[i, k] * a32[i, k2], axis=[k, k2]), name="bad")


def test_max_and_min_are_elementwise_with_two_expressions_and_reductions_with_axis(a32: te.Tensor) -> None:
    k = te.reduce_axis((0, 5), name="k")
    elementwise = te.max(a32[0, 0], 1.0)
    assert isinstance(elementwise, Binary) and elementwise.op is BinaryOp.MAX
    smaller = te.min(a32[0, 0], a32[1, 1])
    assert isinstance(smaller, Binary) and smaller.op is BinaryOp.MIN
    reduced = te.max(a32[0, k], axis=k)
    assert isinstance(reduced, Reduce) and reduced.reducer.name == "max" and reduced.axis == (k,)
    low = te.min(a32[0, k], axis=[k], where=k > 0)
    assert isinstance(low, Reduce) and low.reducer.name == "min" and low.condition is not None
    # and they compute what they say
    row_max = te.compute((4,), lambda i: te.max(a32[i, k], axis=k), name="row_max")
    clipped = te.compute((4,), lambda i: te.min(te.max(row_max[i], -0.25), 0.5), name="clipped")
    a = np.random.default_rng(1).uniform(-1, 1, (4, 5)).astype("float32")
    (out,) = evaluate(ComputeDAG([a32, clipped]), [a])
    np.testing.assert_array_equal(out, np.clip(a.max(axis=1), -0.25, 0.5))


def test_all_and_any_build_bool_conditions(a32: te.Tensor) -> None:
    cond = te.all(a32[0, 0] > 0.0, a32[0, 1] > 0.0, a32[0, 2] > 0.0)
    assert cond.dtype == "bool" and isinstance(cond, Binary) and cond.op is BinaryOp.AND
    assert isinstance(cond.a, Binary) and cond.a.op is BinaryOp.AND  # left-associated chain
    either = te.any(a32[0, 0] > 0.0, a32[1, 0] < 0.0)
    assert either.dtype == "bool" and isinstance(either, Binary) and either.op is BinaryOp.OR
    with pytest.raises(DeclarationError, match=r"te.all needs at least one condition"):
        te.all()
    with pytest.raises(DTypeError, match=r"expected a bool condition, got A\[0, 0\] of dtype float32"):
        te.any(a32[0, 0])
    flags = te.compute(
        (4, 5),
        lambda i, j: te.if_then_else(te.any(a32[i, j] > 0.5, te.all(i == 0, j == 0)), 1.0, 0.0),
        name="F",
    )
    a = np.random.default_rng(2).uniform(-1, 1, (4, 5)).astype("float32")
    (out,) = evaluate(ComputeDAG([a32, flags]), [a])
    expected = (a > 0.5).astype("float32")
    expected[0, 0] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_comm_reducer_declares_a_custom_reduction(a32: te.Tensor) -> None:
    absmax = te.comm_reducer(
        lambda x, y: te.max(te.abs(x), te.abs(y)), lambda dtype: te.const(0, dtype), name="absmax"
    )
    k = te.reduce_axis((0, 5), name="k")
    out = te.compute((4,), lambda i: absmax(a32[i, k], axis=k), name="out")
    body = out.op.body
    assert isinstance(body, Reduce) and body.reducer.name == "absmax"
    assert out.op.reduce_axis == (k,)
    a = np.random.default_rng(3).uniform(-1, 1, (4, 5)).astype("float32")
    (result,) = evaluate(ComputeDAG([a32, out]), [a])
    np.testing.assert_array_equal(result, np.abs(a).max(axis=1))


def test_conditions_must_be_bool_and_expressions_are_not_python_bools(a32: te.Tensor) -> None:
    with pytest.raises(DTypeError, match=r"expected a bool condition, got A\[0, 0\] of dtype float32"):
        te.if_then_else(a32[0, 0], 1.0, 0.0)
    with pytest.raises(TypeError, match=r"cannot be used as a Python bool; use te.if_then_else"):
        bool(a32[0, 0] < 1.0)
    select = te.if_then_else(a32[0, 0] < 1.0, a32[0, 1], 0.0)
    assert isinstance(select, Select) and select.dtype == "float32"


def test_intrinsics_check_names_arity_and_float_arguments(a32: te.Tensor) -> None:
    i = te.placeholder((3,), dtype="int32", name="I")
    with pytest.raises(DTypeError, match=r"exp\(I\[0\]\) needs a float argument, got int32"):
        te.exp(i[0])
    assert te.abs(i[0]).dtype == "int32"
    assert te.power(a32[0, 0], 2).dtype == "float32"
    from ir.expr import call

    with pytest.raises(DTypeError, match=r"unknown intrinsic 'gelu'; known: exp"):
        call("gelu", a32[0, 0])
    with pytest.raises(DTypeError, match=r"pow takes 2 argument\(s\), got 1"):
        call("pow", a32[0, 0])


def test_reads_and_casts_are_recorded_in_the_body(a32: te.Tensor) -> None:
    c = te.compute((4, 5), lambda i, j: a32[i, j].astype("float64") + 1.0, name="C")
    assert c.dtype == "float64"
    body = c.op.body
    assert isinstance(body, Binary) and isinstance(body.a, Cast)
    assert isinstance(body.a.value, TensorRead) and body.a.value.tensor is a32
    assert c.op.input_tensors == [a32]
