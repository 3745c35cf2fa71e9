"""The numpy reference evaluator against independent numpy formulas, on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import workloads

from ir import te
from ir.compute_dag import ComputeDAG
from ir.reference import (
    SEQUENTIAL_FOLD_LIMIT,
    ReferenceEvaluationError,
    evaluate,
    evaluate_all,
    plan_chunks,
    random_inputs,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def close(actual: np.ndarray, expected: np.ndarray) -> None:
    """float32 oracle agreement: relative 1e-4, absolute 1e-4 of the result's scale."""
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)


def conv2d_numpy(data: np.ndarray, kernel: np.ndarray, pad: int, stride: int) -> np.ndarray:
    """Direct convolution written with explicit loops over the kernel offsets."""
    n, ci, h, w = data.shape
    co, _, kh, kw = kernel.shape
    padded = np.zeros((n, ci, h + 2 * pad, w + 2 * pad))
    padded[:, :, pad : pad + h, pad : pad + w] = data
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    out = np.zeros((n, co, ho, wo))
    for dy in range(kh):
        for dx in range(kw):
            window = padded[:, :, dy : dy + stride * ho : stride, dx : dx + stride * wo : stride]
            for f in range(co):
                for c in range(ci):
                    out[:, f] += window[:, c] * float(kernel[f, c, dy, dx])
    return out


# matmul family ------------------------------------------------------------------------------


def test_matmul() -> None:
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    a, b = random_inputs(dag, seed=1)
    (c,) = evaluate(dag, [a, b])
    assert c.dtype == np.float32 and c.shape == (16, 12)
    close(c, a.astype(np.float64) @ b.astype(np.float64))


def test_matmul_bias_relu_and_intermediates() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    a, b, bias = random_inputs(dag, seed=2)
    values = evaluate_all(dag, {"A": a, "B": b, "bias": bias})
    product = a.astype(np.float64) @ b.astype(np.float64)
    close(values["C"], product)
    close(values["biased"], product + bias)
    close(values["relu"], np.maximum(product + bias, 0.0))
    assert (values["relu"] == 0).any() and (values["relu"] > 0).any()  # relu really clipped something
    assert values["A"] is a
    (relu,) = evaluate(dag, [a, b, bias])
    np.testing.assert_array_equal(relu, values["relu"])


def test_large_matmul_is_memory_safe_and_exact() -> None:
    """1024^3 (2 GFLOP): one einsum on float64 operands, never a 1024^3 temporary."""
    dag = ComputeDAG(workloads.matmul(1024, 1024, 1024))
    a, b = random_inputs(dag, seed=3)
    (c,) = evaluate(dag, [a, b])
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4)


def test_small_budget_forces_chunking_and_gives_the_same_answer() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(40, 24, 64))
    inputs = random_inputs(dag, seed=4)
    (full,) = evaluate(dag, inputs)
    (chunked,) = evaluate(dag, inputs, memory_budget=4096)
    close(chunked, full)
    # a max-reduction has no einsum path: it chunks spatial and reduce axes
    a = te.placeholder((40, 300), name="A")
    r = te.reduce_axis((0, 300), name="r")
    row_max = te.compute((40,), lambda i: te.max(a[i, r] * a[i, r], axis=r), name="row_max")
    tiny = ComputeDAG([a, row_max])
    (x,) = random_inputs(tiny, seed=5)
    (out,) = evaluate(tiny, [x], memory_budget=2048)
    np.testing.assert_array_equal(out, (x * x).max(axis=1))
    with pytest.raises(ReferenceEvaluationError, match=r"memory_budget must be positive, got 0"):
        evaluate(tiny, [x], memory_budget=0)


def test_plan_chunks_halves_outer_dimensions_first() -> None:
    assert plan_chunks([8, 8, 8], 3, math.prod, 10**6) == [8, 8, 8]
    assert plan_chunks([8, 8, 8], 3, math.prod, 128) == [2, 8, 8]
    assert plan_chunks([1, 8, 8], 3, math.prod, 16) == [1, 2, 8]
    assert plan_chunks([8, 8], 1, math.prod, 4) is None  # only the first dim may be chunked


# convolution and pooling -----------------------------------------------------------------------


@pytest.mark.parametrize(("pad", "stride"), [(1, 1), (2, 2), (0, 1)])
def test_padded_conv2d(pad: int, stride: int) -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(2, 3, 9, 7, 4, 3, 3, pad=pad, stride=stride))
    data, kernel = random_inputs(dag, seed=6)
    values = evaluate_all(dag, [data, kernel])
    expected_pad = np.pad(data, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    np.testing.assert_array_equal(values["pad_temp"], expected_pad)
    close(values["conv"], conv2d_numpy(data, kernel, pad, stride))


@pytest.mark.parametrize("path", ["einsum", "general"])
def test_conv2d_with_inlined_padding_uses_lazy_selects(path: str) -> None:
    """Padding inside the reduction: the untaken side reads data at index -1 and 9. A
    (always true) where= condition sends the sum down the general, non-einsum path."""
    n, ci, h, w, co = 1, 3, 9, 9, 4
    data = te.placeholder((n, ci, h, w), name="data")
    kernel = te.placeholder((co, ci, 3, 3), name="kernel")
    rc = te.reduce_axis((0, ci), name="rc")
    ry = te.reduce_axis((0, 3), name="ry")
    rx = te.reduce_axis((0, 3), name="rx")
    where = None if path == "einsum" else rc < ci

    def body(b: te.Expr, f: te.Expr, y: te.Expr, x: te.Expr) -> te.Expr:
        iy, ix = y + ry - 1, x + rx - 1
        inside = te.all(iy >= 0, iy < h, ix >= 0, ix < w)
        padded = te.if_then_else(inside, data[b, rc, iy, ix], 0.0)
        return te.sum(padded * kernel[f, rc, ry, rx], axis=[rc, ry, rx], where=where)

    conv = te.compute((n, co, h, w), body, name="conv")
    dag = ComputeDAG([data, kernel, conv])
    x, k = random_inputs(dag, seed=7)
    expected = conv2d_numpy(x, k, 1, 1)
    (out,) = evaluate(dag, [x, k])
    close(out, expected)
    (chunked,) = evaluate(dag, [x, k], memory_budget=4096)  # many small chunks
    close(chunked, expected)


def test_max_pool() -> None:
    dag = ComputeDAG(workloads.max_pool2d(2, 3, 8, 6, 2, 2))
    (data,) = random_inputs(dag, seed=8)
    (out,) = evaluate(dag, [data])
    expected = data.reshape(2, 3, 4, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(out, expected)


# softmax and reductions -------------------------------------------------------------------------


def test_softmax() -> None:
    dag = ComputeDAG(workloads.softmax(6, 10))
    (x,) = random_inputs(dag, seed=9, low=-4.0, high=4.0)
    (out,) = evaluate(dag, [x])
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    close(out, e / e.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", ["sum", "max", "min", "prod"])
def test_builtin_reductions(kind: str) -> None:
    dag = ComputeDAG(workloads.row_reduce(5, 7, kind))
    (a,) = random_inputs(dag, seed=10, low=0.5, high=1.5)
    (out,) = evaluate(dag, [a])
    expected = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod}[kind](
        a.astype(np.float64), axis=1
    )
    close(out, expected)


def test_custom_reducers_fold_their_combiner() -> None:
    a = te.placeholder((6, 9), name="A")
    r = te.reduce_axis((0, 9), name="r")
    plus = te.comm_reducer(lambda x, y: x + y, lambda dtype: te.const(0, dtype), name="plus")
    times = te.comm_reducer(lambda x, y: x * y, lambda dtype: te.const(1, dtype), name="times")
    sum_sq = te.compute((6,), lambda i: plus(a[i, r] * a[i, r], axis=r), name="sum_sq")
    odd_sum = te.compute((6,), lambda i: plus(a[i, r], axis=r, where=r % 2 == 1), name="odd_sum")
    product = te.compute((6,), lambda i: times(a[i, r], axis=r), name="product")
    dag = ComputeDAG([a, sum_sq, odd_sum, product])
    (x,) = random_inputs(dag, seed=11, low=0.5, high=1.5)
    got = evaluate(dag, [x])
    x64 = x.astype(np.float64)
    close(got[0], (x64 * x64).sum(axis=1))
    close(got[1], x64[:, 1::2].sum(axis=1))
    close(got[2], x64.prod(axis=1))


def test_custom_reducer_over_a_long_axis_folds_pairwise() -> None:
    n = SEQUENTIAL_FOLD_LIMIT + 905
    a = te.placeholder((3, n), name="A")
    r = te.reduce_axis((0, n), name="r")
    absmax = te.comm_reducer(
        lambda x, y: te.max(te.abs(x), te.abs(y)), lambda dtype: te.const(0, dtype), name="absmax"
    )
    out = te.compute((3,), lambda i: absmax(a[i, r], axis=r, where=r < n - 7), name="out")
    dag = ComputeDAG([a, out])
    (x,) = random_inputs(dag, seed=12)
    x[:, -3] = 50.0  # excluded by the where= condition
    (got,) = evaluate(dag, [x])
    np.testing.assert_array_equal(got, np.abs(x[:, : n - 7]).max(axis=1))


def test_zero_dimensional_output_and_nonzero_reduce_start() -> None:
    a = te.placeholder((4, 6), name="A")
    r1 = te.reduce_axis((0, 4), name="r1")
    r2 = te.reduce_axis((2, 6), name="r2")
    total = te.compute((), lambda: te.sum(a[r1, r2], axis=[r1, r2]), name="total")
    dag = ComputeDAG([a, total])
    (x,) = random_inputs(dag, seed=13)
    (got,) = evaluate(dag, [x])
    assert got.shape == ()
    close(got, x[:, 2:].astype(np.float64).sum())


# lazy conditions and bounds -----------------------------------------------------------------------


def test_if_then_else_with_negative_indices_on_the_untaken_side() -> None:
    a = te.placeholder((10,), name="A")
    shifted = te.compute((10,), lambda i: te.if_then_else(i >= 3, a[i - 3], -1.0), name="shifted")
    ahead = te.compute((10,), lambda i: te.if_then_else(i + 2 < 10, a[i + 2], a[i - 8]), name="ahead")
    dag = ComputeDAG([a, shifted, ahead])
    (x,) = random_inputs(dag, seed=14)
    got_shifted, got_ahead = evaluate(dag, [x])
    np.testing.assert_array_equal(got_shifted, np.concatenate([[-1.0, -1.0, -1.0], x[:7]]).astype(np.float32))
    np.testing.assert_array_equal(got_ahead, np.roll(x, -2))


def test_short_circuit_and_masked_reduction() -> None:
    a = te.placeholder((8,), name="A")
    rising = te.compute(
        (8,), lambda i: te.if_then_else(te.all(i >= 1, a[i - 1] < a[i]), 1.0, 0.0), name="rising"
    )
    r = te.reduce_axis((0, 8), name="r")
    prefix = te.compute((8,), lambda i: te.sum(a[i - r], axis=r, where=i - r >= 0), name="prefix")
    dag = ComputeDAG([a, rising, prefix])
    (x,) = random_inputs(dag, seed=15)
    got_rising, got_prefix = evaluate(dag, [x])
    expected_rising = np.concatenate([[0.0], (x[:-1] < x[1:]).astype(np.float64)])
    np.testing.assert_array_equal(got_rising, expected_rising)
    close(got_prefix, np.cumsum(x.astype(np.float64)))


def test_a_used_out_of_bounds_read_raises() -> None:
    a = te.placeholder((5,), name="A")
    bad = te.compute((5,), lambda i: a[i * i], name="bad")  # not affine: te.compute lets it by
    with pytest.raises(
        ReferenceEvaluationError,
        match=r"op 'bad' reads 'A' out of bounds: index 0 \(i \* i\) "
        r"takes value \d+, outside \[0, 5\)",
    ):
        evaluate(ComputeDAG([a, bad]), random_inputs(ComputeDAG([a, bad])))


# integer semantics, casts, dtypes ------------------------------------------------------------------


def test_floordiv_and_floormod_on_negative_values() -> None:
    a = te.placeholder((12,), dtype="int32", name="A")
    b = te.placeholder((12,), dtype="int32", name="B")
    div = te.compute((12,), lambda i: a[i] // b[i], name="div")
    mod = te.compute((12,), lambda i: a[i] % b[i], name="mod")
    idx = te.compute((12,), lambda i: (i - 5) // 3 * 10 + (i - 5) % 3, name="idx")
    f = te.placeholder((12,), name="F")
    fdiv = te.compute((12,), lambda i: f[i] // 0.75, name="fdiv")
    fmod = te.compute((12,), lambda i: f[i] % 0.75, name="fmod")
    dag = ComputeDAG([a, b, f, div, mod, idx, fdiv, fmod])
    x = np.array([-7, 7, -7, 7, 0, -1, 1, -9, 9, -10, 5, -6], dtype=np.int32)
    y = np.array([2, -2, -2, 2, 3, 4, -4, 3, -3, 7, -1, 4], dtype=np.int32)
    fx = rng(16).uniform(-3, 3, 12).astype(np.float32)
    got_div, got_mod, got_idx, got_fdiv, got_fmod = evaluate(dag, [x, y, fx])
    assert got_div.tolist() == [int(p) // int(q) for p, q in zip(x, y)]
    assert got_mod.tolist() == [int(p) % int(q) for p, q in zip(x, y)]
    assert got_idx.tolist() == [(i - 5) // 3 * 10 + (i - 5) % 3 for i in range(12)]
    np.testing.assert_array_equal(got_fdiv, np.floor(fx / np.float32(0.75)))
    np.testing.assert_allclose(got_fmod, fx - np.floor(fx / np.float32(0.75)) * np.float32(0.75), rtol=1e-6)


def test_integer_division_by_zero_gives_zero_as_numpy() -> None:
    a = te.placeholder((4,), dtype="int32", name="A")
    b = te.placeholder((4,), dtype="int32", name="B")
    guarded = te.compute((4,), lambda i: te.if_then_else(b[i] != 0, a[i] // b[i], 0), name="guarded")
    dag = ComputeDAG([a, b, guarded])
    x = np.array([5, -5, 6, 7], dtype=np.int32)
    y = np.array([2, 0, -4, 0], dtype=np.int32)
    (got,) = evaluate(dag, [x, y])
    assert got.tolist() == [2, 0, -2, 0]
    raw = te.compute((4,), lambda i: a[i] % b[i], name="raw")
    (got,) = evaluate(ComputeDAG([a, b, raw]), [x, y])
    assert got.tolist() == [1, 0, -2, 0]  # x % 0 == 0, as np.mod on integers


def test_casts_follow_c_semantics() -> None:
    f = te.placeholder((6,), name="F")
    i = te.placeholder((6,), dtype="int32", name="I")
    to_int = te.compute((6,), lambda k: f[k].astype("int32"), name="to_int")
    to_int8 = te.compute((6,), lambda k: i[k].astype("int8"), name="to_int8")
    to_bool = te.compute((6,), lambda k: f[k].astype("bool"), name="to_bool")
    from_bool = te.compute(
        (6,), lambda k: (f[k] > 0.0).astype("float32") + i[k].astype("float32"), name="from_bool"
    )
    to_uint8 = te.compute((6,), lambda k: i[k].astype("uint8"), name="to_uint8")
    dag = ComputeDAG([f, i, to_int, to_int8, to_bool, from_bool, to_uint8])
    fx = np.array([-1.7, 1.7, -0.2, 2.999, 0.0, -3.5], dtype=np.float32)
    ix = np.array([300, -129, 127, 128, -1, 1000], dtype=np.int32)
    got = evaluate(dag, [fx, ix])
    assert got[0].tolist() == [-1, 1, 0, 2, 0, -3]
    assert got[1].tolist() == [44, 127, 127, -128, -1, -24]
    assert got[2].tolist() == [True, True, True, True, False, True]
    assert got[3].tolist() == [300.0, -128.0, 127.0, 129.0, -1.0, 1000.0]
    assert got[4].tolist() == [44, 127, 127, 128, 255, 232]
    assert [g.dtype for g in got] == [np.int32, np.int8, np.bool_, np.float32, np.uint8]


def test_integer_and_bool_dtypes() -> None:
    a = te.placeholder((5, 7), dtype="int32", name="A")
    b = te.placeholder((7, 3), dtype="int32", name="B")
    mask = te.placeholder((5, 3), dtype="bool", name="M")
    k = te.reduce_axis((0, 7), name="k")
    c = te.compute((5, 3), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    picked = te.compute((5, 3), lambda i, j: te.if_then_else(mask[i, j], c[i, j], -c[i, j]), name="picked")
    flags = te.compute((5, 3), lambda i, j: te.any(~mask[i, j], c[i, j] > 0), name="flags")
    small = te.placeholder((4, 100), dtype="int8", name="S")
    r = te.reduce_axis((0, 100), name="r")
    wrapped = te.compute((4,), lambda i: te.sum(small[i, r], axis=r), name="wrapped")
    dag = ComputeDAG([a, b, mask, small, picked, flags, wrapped])
    x, y, m, s = random_inputs(dag, seed=17)
    s = np.full((4, 100), 100, dtype=np.int8)
    got_picked, got_flags, got_wrapped = evaluate(dag, [x, y, m, s])
    product = x.astype(np.int64) @ y.astype(np.int64)
    assert got_picked.dtype == np.int32 and got_flags.dtype == np.bool_
    np.testing.assert_array_equal(got_picked, np.where(m, product, -product))
    np.testing.assert_array_equal(got_flags, ~m | (product > 0))
    assert got_wrapped.tolist() == [16] * 4  # 100 * 100 = 10000 wraps to 16 in int8


def test_every_intrinsic() -> None:
    x = te.placeholder((64,), name="X")
    y = te.placeholder((64,), name="Y")
    unary = {
        "exp": np.exp,
        "exp2": np.exp2,
        "log": np.log,
        "log2": np.log2,
        "log10": np.log10,
        "sqrt": np.sqrt,
        "rsqrt": lambda v: 1.0 / np.sqrt(v),
        "tanh": np.tanh,
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "erf": np.vectorize(math.erf),
        "abs": np.abs,
        "floor": np.floor,
        "ceil": np.ceil,
        "trunc": np.trunc,
        "sin": np.sin,
        "cos": np.cos,
    }

    def apply(name: str) -> te.Tensor:
        intrinsic = getattr(te, name)
        return te.compute((64,), lambda i: intrinsic(x[i]), name=f"u_{name}")

    outputs = [apply(name) for name in unary]
    power = te.compute((64,), lambda i: te.power(x[i], y[i]), name="b_pow")
    fmod = te.compute((64,), lambda i: te.fmod(y[i] - 2.0, x[i]), name="b_fmod")
    dag = ComputeDAG([x, y, *outputs, power, fmod])
    xv = rng(18).uniform(0.1, 3.0, 64).astype(np.float32)
    yv = rng(19).uniform(-2.0, 2.0, 64).astype(np.float32)
    got = evaluate(dag, [xv, yv])
    x64, y64 = xv.astype(np.float64), yv.astype(np.float64)
    for (name, fn), value in zip(unary.items(), got, strict=False):
        assert value.dtype == np.float32, name
        np.testing.assert_allclose(value, fn(x64).astype(np.float32), rtol=1e-6, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(got[-2], np.power(x64, y64), rtol=1e-6)
    np.testing.assert_allclose(got[-1], np.fmod(y64 - 2.0, x64), rtol=1e-5, atol=1e-6)
    assert (got[-1] < 0).any()  # fmod keeps the dividend's sign


def test_round_is_half_away_from_zero_and_erf_is_precise() -> None:
    x = te.placeholder((8,), dtype="float64", name="X")
    rounded = te.compute((8,), lambda i: te.round(x[i]), name="rounded")
    erf = te.compute((8,), lambda i: te.erf(x[i]), name="erf")
    dag = ComputeDAG([x, rounded, erf])
    values = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999999999999994, -1.2, 3.7])
    got_round, got_erf = evaluate(dag, [values])
    assert got_round.tolist() == [1.0, 2.0, 3.0, -1.0, -3.0, 0.0, -1.0, 4.0]
    np.testing.assert_allclose(got_erf, [math.erf(v) for v in values], rtol=1e-15)
    assert abs(got_erf[0] - 0.5204998778130465) < 1e-15


# inputs ------------------------------------------------------------------------------------------


def test_inputs_are_checked() -> None:
    dag = ComputeDAG(workloads.matmul(4, 3, 2))
    a, b = random_inputs(dag)
    with pytest.raises(
        ReferenceEvaluationError, match=r"got 1 input array\(s\) for 2 placeholder\(s\) \['A', 'B'\]"
    ):
        evaluate(dag, [a])
    with pytest.raises(
        ReferenceEvaluationError, match=r"placeholder 'B' has shape \[3, 2\], expected \[2, 3\]"
    ):
        evaluate(dag, [a, b.T.copy()])
    with pytest.raises(
        ReferenceEvaluationError, match=r"placeholder 'A' has dtype float64, expected float32"
    ):
        evaluate(dag, [a.astype(np.float64), b])
    with pytest.raises(ReferenceEvaluationError, match=r"missing \['B'\], unknown \['b'\]"):
        evaluate(dag, {"A": a, "b": b})


def test_random_inputs_are_nonzero_and_typed() -> None:
    a = te.placeholder((50,), name="A")
    i = te.placeholder((50,), dtype="int16", name="I")
    u = te.placeholder((50,), dtype="uint8", name="U")
    m = te.placeholder((50,), dtype="bool", name="M")
    out = te.compute(
        (50,),
        lambda k: a[k] + i[k].astype("float32") + u[k].astype("float32") + m[k].astype("float32"),
        name="out",
    )
    dag = ComputeDAG([a, i, u, m, out])
    arrays = random_inputs(dag, seed=20)
    assert [x.dtype for x in arrays] == [np.float32, np.int16, np.uint8, np.bool_]
    assert all(np.count_nonzero(x) > 10 for x in arrays)
    assert (arrays[1] < 0).any() and (arrays[0] < 0).any()
    (got,) = evaluate(dag, arrays)
    close(got, sum(x.astype(np.float64) for x in arrays))
