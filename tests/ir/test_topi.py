"""The operator library against independent numpy formulations.

Every operator is declared on small, odd shapes, evaluated with the reference evaluator
(``ir.reference.evaluate``) on random inputs, and compared with a numpy oracle written here
in a different way: convolutions as loops over kernel offsets with strided slices and
einsum (transposed convolution as a scatter), pooling over ``sliding_window_view``,
normalisations with numpy reductions. Argument errors are checked by message.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ir import te, topi
from ir.compute_dag import ComputeDAG
from ir.reference import evaluate
from ir.te import ComputeOp, Tensor
from ir.topi import TopiError
from ir.topi import workloads as wl

# ------------------------------------------------------------------------------------------
# helpers


def run(tensors: list[Tensor], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random inputs for the placeholders of ``tensors`` and the evaluated outputs."""
    dag = ComputeDAG(tensors)
    rng = np.random.default_rng(seed)
    inputs = [rng.uniform(-1.0, 1.0, t.shape).astype(t.dtype) for t in dag.placeholders]
    return inputs, evaluate(dag, inputs)


def check(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)


def ph(shape: tuple[int, ...], name: str, dtype: str = "float32") -> Tensor:
    return te.placeholder(shape, dtype, name=name)


def np_conv_cf(
    x: np.ndarray,
    w: np.ndarray,
    stride: tuple[int, ...],
    before: tuple[int, ...],
    after: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """Channels-first N-d convolution, x [N, C, *S], w [CO, C/g, *K]: a sum over kernel
    offsets of strided slices of the padded input, contracted with einsum per group."""
    nd = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *zip(before, after, strict=True)])
    co, cig = w.shape[:2]
    cog = co // groups
    ksz = w.shape[2:]
    out_sz = [(xp.shape[2 + d] - dilation[d] * (ksz[d] - 1) - 1) // stride[d] + 1 for d in range(nd)]
    out = np.zeros((x.shape[0], co, *out_sz))
    for offsets in itertools.product(*(range(k) for k in ksz)):
        sl = tuple(
            slice(o * dilation[d], o * dilation[d] + stride[d] * (out_sz[d] - 1) + 1, stride[d])
            for d, o in enumerate(offsets)
        )
        for g in range(groups):
            patch = xp[(slice(None), slice(g * cig, (g + 1) * cig), *sl)]
            wk = w[(slice(g * cog, (g + 1) * cog), slice(None), *offsets)].astype(np.float64)
            out[:, g * cog : (g + 1) * cog] += np.einsum("nc...,oc->no...", patch, wk)
    return out


def to_cf(x: np.ndarray) -> np.ndarray:
    """Channels-last to channels-first."""
    return np.moveaxis(x, -1, 1)


def to_cl(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1)


def kernel_to_oi(w: np.ndarray) -> np.ndarray:
    """[*K, I, O] to [O, I, *K]."""
    nd = w.ndim - 2
    return np.transpose(w, (nd + 1, nd, *range(nd)))


# ------------------------------------------------------------------------------------------
# padding and elementwise


def test_pad_matches_np_pad_and_is_a_guarded_read():
    x = ph((2, 3, 5), "x")
    out = topi.pad(x, [0, 1, 2], [1, 0, 3], pad_value=-2.5, name="padded")
    (a,), (got,) = run([x, out])
    check(got, np.pad(a, [(0, 1), (1, 0), (2, 3)], constant_values=-2.5))
    assert out.op.tag == "injective,pad"
    assert out.shape == (3, 4, 10)


def test_dilate_inserts_zeros_between_pixels():
    x = ph((2, 3, 4), "x")
    out = topi.dilate(x, [1, 2, 3])
    (a,), (got,) = run([x, out])
    expected = np.zeros((2, 5, 10), np.float32)
    expected[:, ::2, ::3] = a
    check(got, expected)


def test_pad_rejects_bad_lengths_and_negative_pads():
    x = ph((2, 3), "x")
    with pytest.raises(TopiError, match=r"pad 'pad': pad_before \[1\] has 1 entries, data 'x' has 2"):
        topi.pad(x, [1])
    with pytest.raises(TopiError, match=r"pad_after \[0, -1\] must hold non-negative ints, got -1"):
        topi.pad(x, [0, 0], [0, -1])


def np_gelu(a: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return 0.5 * a * (1.0 + erf(a.astype(np.float64) / math.sqrt(2.0)))


@pytest.mark.parametrize(
    ("build", "oracle"),
    [
        (topi.relu, lambda a: np.maximum(a, 0)),
        (lambda x: topi.leaky_relu(x, 0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
        (lambda x: topi.clip(x, -0.3, 0.45), lambda a: np.clip(a, -0.3, 0.45)),
        (topi.gelu, np_gelu),
        (topi.tanh, np.tanh),
        (topi.sigmoid, lambda a: 1.0 / (1.0 + np.exp(-a.astype(np.float64)))),
        (topi.exp, np.exp),
        (topi.negative, np.negative),
        (lambda x: topi.sqrt(topi.add(topi.multiply(x, x), 0.5)), lambda a: np.sqrt(a * a + 0.5)),
    ],
    ids=["relu", "leaky_relu", "clip", "gelu", "tanh", "sigmoid", "exp", "negative", "sqrt"],
)
def test_unary_elementwise(build, oracle):
    x = ph((3, 5, 7), "x")
    out = build(x)
    (a,), (got,) = run([x, out], seed=1)
    check(got, oracle(a))


def test_cast_changes_dtype():
    x = ph((3, 4), "x")
    out = topi.cast(x, "float64")
    (a,), (got,) = run([x, out])
    assert got.dtype == np.float64
    check(got, a.astype(np.float64))


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [((3, 5), (3, 5)), ((4, 1, 5), (3, 1)), ((5,), (2, 3, 5)), ((1, 7), (6, 1))],
)
@pytest.mark.parametrize(
    ("func", "npfunc"),
    [
        (topi.add, np.add),
        (topi.subtract, np.subtract),
        (topi.multiply, np.multiply),
        (topi.divide, np.divide),
        (topi.maximum, np.maximum),
        (topi.minimum, np.minimum),
    ],
    ids=["add", "subtract", "multiply", "divide", "maximum", "minimum"],
)
def test_broadcast_binary_follows_numpy(shape_a, shape_b, func, npfunc):
    a, b = ph(shape_a, "a"), ph(shape_b, "b")
    out = func(a, b)
    (xa, xb), (got,) = run([a, b, out], seed=2)
    if npfunc is np.divide:
        xb = xb + np.float32(3.0)  # keep the divisor away from zero
        got = evaluate(ComputeDAG([a, b, out]), [xa, xb])[0]
    check(got, npfunc(xa, xb))
    assert out.op.tag == ("elemwise" if shape_a == shape_b else "broadcast")


def test_binary_with_a_scalar_operand():
    x = ph((4, 3), "x")
    out = topi.subtract(2.0, topi.multiply(x, 3, name="scaled"))
    (a,), (got,) = run([x, out])
    check(got, 2.0 - 3.0 * a)


def test_broadcast_errors():
    with pytest.raises(
        TopiError, match=r"add: shapes \[3, 4\] and \[5\] do not broadcast \(dimension 1: 4 vs 5\)"
    ):
        topi.add(ph((3, 4), "a"), ph((5,), "b"))
    with pytest.raises(TopiError, match="needs at least one tensor operand"):
        topi.multiply(2.0, 3.0)


def test_bias_add_along_an_axis():
    x, bias = ph((2, 5, 3, 3), "x"), ph((5,), "bias")
    out = topi.bias_add(x, bias, axis=1)
    (a, b), (got,) = run([x, bias, out])
    check(got, a + b[None, :, None, None])
    with pytest.raises(TopiError, match=r"bias shape \[5\] must be \[3\] \(axis -1 of data \[2, 5, 3, 3\]\)"):
        topi.bias_add(x, bias, axis=-1)


def test_clip_rejects_inverted_range():
    with pytest.raises(TopiError, match=r"clip 'T_clip': a_min 1.0 is larger than a_max 0.0"):
        topi.clip(ph((2,), "x"), 1.0, 0.0)


# ------------------------------------------------------------------------------------------
# transforms


def test_transpose_default_and_explicit_axes():
    x = ph((2, 3, 5), "x")
    t1 = topi.transpose(x, name="t_rev")
    t2 = topi.transpose(x, (1, -1, 0), name="t_perm")
    (a,), (g1, g2) = run([x, t1, t2])
    check(g1, np.transpose(a))
    check(g2, np.transpose(a, (1, 2, 0)))
    with pytest.raises(TopiError, match=r"axes \[0, 0, 1\] are not a permutation of 0..2"):
        topi.transpose(x, (0, 0, 1))


@pytest.mark.parametrize("newshape", [(5, 6), (3, -1, 2), (30,), (1, 2, 15, 1)])
def test_reshape_row_major(newshape):
    x = ph((2, 3, 5), "x")
    out = topi.reshape(x, newshape)
    (a,), (got,) = run([x, out])
    check(got, a.reshape(newshape))


def test_reshape_errors():
    x = ph((2, 3, 5), "x")
    with pytest.raises(TopiError, match=r"newshape \[4, 7\] holds 28 elements, data \[2, 3, 5\] holds 30"):
        topi.reshape(x, (4, 7))
    with pytest.raises(TopiError, match="more than one -1"):
        topi.reshape(x, (-1, -1))
    with pytest.raises(TopiError, match=r"cannot infer -1 in \[-1, 7\]"):
        topi.reshape(x, (-1, 7))


def test_concatenate_three_tensors():
    a, b, c = ph((2, 3, 4), "a"), ph((2, 1, 4), "b"), ph((2, 5, 4), "c")
    out = topi.concatenate([a, b, c], axis=1)
    (xa, xb, xc), (got,) = run([a, b, c, out])
    check(got, np.concatenate([xa, xb, xc], axis=1))
    with pytest.raises(TopiError, match=r"tensor 'b' \[2, 1, 4\] float32 does not match 'a'"):
        topi.concatenate([a, b], axis=2)


# ------------------------------------------------------------------------------------------
# matrix products


@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_transposes(ta, tb):
    n, m, k = 5, 7, 3
    A = ph((k, n) if ta else (n, k), "A")
    B = ph((m, k) if tb else (k, m), "B")
    out = topi.matmul(A, B, ta, tb)
    (a, b), (got,) = run([A, B, out])
    check(got, (a.T if ta else a) @ (b.T if tb else b))


def test_matmul_out_dtype_accumulates_wider():
    A, B = ph((3, 4), "A"), ph((4, 2), "B")
    out = topi.matmul(A, B, out_dtype="float64")
    (a, b), (got,) = run([A, B, out])
    assert got.dtype == np.float64
    check(got, a.astype(np.float64) @ b.astype(np.float64))


def test_dense_with_and_without_bias():
    data, weight, bias = ph((3, 7), "data"), ph((5, 7), "weight"), ph((5,), "bias")
    plain = topi.dense(data, weight, name="fc0")
    biased = topi.dense(data, weight, bias, name="fc1")
    (x, w, b), (g0, g1) = run([data, weight, bias, plain, biased])
    check(g0, x @ w.T)
    check(g1, x @ w.T + b)
    assert biased.op.name == "fc1_bias" and plain.op.tag == "dense"


def test_dense_errors():
    with pytest.raises(TopiError, match=r"weight \[5, 6\] has 6 input features, data has 7"):
        topi.dense(ph((3, 7), "d"), ph((5, 6), "w"))
    with pytest.raises(TopiError, match=r"bias shape \[4\] must be \[5\]"):
        topi.dense(ph((3, 7), "d"), ph((5, 7), "w"), ph((4,), "b"))


@pytest.mark.parametrize(("ta", "tb"), [(False, True), (False, False), (True, True)])
def test_batch_matmul_layouts(ta, tb):
    b, m, n, k = 3, 5, 2, 7
    A = ph((b, k, m) if ta else (b, m, k), "A")
    B = ph((b, n, k) if tb else (b, k, n), "B")
    out = topi.batch_matmul(A, B, ta, tb)
    (a, bb), (got,) = run([A, B, out])
    a2 = np.swapaxes(a, 1, 2) if ta else a
    b2 = np.swapaxes(bb, 1, 2) if tb else bb
    check(got, np.einsum("bmk,bkn->bmn", a2, b2))


def test_batch_matmul_broadcasts_and_takes_4d():
    A, B = ph((2, 1, 3, 5), "A"), ph((1, 4, 6, 5), "B")
    out = topi.batch_matmul(A, B)
    (a, b), (got,) = run([A, B, out])
    check(got, a @ np.swapaxes(b, -1, -2))
    assert out.shape == (2, 4, 3, 6)
    assert [ax.name for ax in out.op.axis] == ["b0", "b1", "i", "j"]


def test_batch_matmul_errors():
    with pytest.raises(TopiError, match=r"gives K=5, B \[2, 6, 4\] gives K=4"):
        topi.batch_matmul(ph((2, 3, 5), "A"), ph((2, 6, 4), "B"))
    with pytest.raises(TopiError, match="must have the same rank, at least 3"):
        topi.batch_matmul(ph((3, 5), "A"), ph((6, 5), "B"))


# ------------------------------------------------------------------------------------------
# convolutions


CONV2D_CASES = [
    # (N, CI, H, W, CO, k, stride, padding, dilation, groups)
    (1, 3, 7, 7, 4, 3, 1, 1, 1, 1),
    (2, 4, 9, 7, 6, 3, 2, (1, 0), 1, 2),
    (1, 6, 11, 10, 3, 3, 1, (2, 1, 0, 3), 2, 3),
    (1, 5, 8, 9, 5, 1, 3, 0, 1, 5),
    (1, 2, 5, 5, 3, 5, 2, 2, 1, 1),
]


def _pads(padding, nd):
    if isinstance(padding, int):
        return (padding,) * nd, (padding,) * nd
    if len(padding) == nd:
        return tuple(padding), tuple(padding)
    return tuple(padding[:nd]), tuple(padding[nd:])


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_nchw(case):
    n, ci, h, w, co, k, s, p, d, g = case
    data, kernel = ph((n, ci, h, w), "data"), ph((co, ci // g, k, k), "kernel")
    out = topi.conv2d_nchw(data, kernel, s, p, d, g)
    (x, wt), (got,) = run([data, kernel, out])
    before, after = _pads(p, 2)
    check(got, np_conv_cf(x, wt, (s, s), before, after, (d, d), g))


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_nhwc(case):
    n, ci, h, w, co, k, s, p, d, g = case
    data, kernel = ph((n, h, w, ci), "data"), ph((k, k, ci // g, co), "kernel")
    out = topi.conv2d_nhwc(data, kernel, s, p, d, g)
    (x, wt), (got,) = run([data, kernel, out])
    before, after = _pads(p, 2)
    check(got, to_cl(np_conv_cf(to_cf(x), kernel_to_oi(wt), (s, s), before, after, (d, d), g)))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("n", "ci", "length", "co", "k", "s", "p", "d", "g"),
    [(2, 3, 13, 5, 3, 2, 1, 1, 1), (1, 4, 11, 6, 5, 1, (2, 3), 2, 2), (1, 3, 7, 2, 1, 1, 0, 1, 1)],
)
def test_conv1d(channels_last, n, ci, length, co, k, s, p, d, g):
    if channels_last:
        data, kernel = ph((n, length, ci), "data"), ph((k, ci // g, co), "kernel")
        out = topi.conv1d_nwc(data, kernel, s, p, d, g)
    else:
        data, kernel = ph((n, ci, length), "data"), ph((co, ci // g, k), "kernel")
        out = topi.conv1d_ncw(data, kernel, s, p, d, g)
    (x, wt), (got,) = run([data, kernel, out])
    before, after = _pads(p, 1)
    if channels_last:
        expected = to_cl(np_conv_cf(to_cf(x), kernel_to_oi(wt), (s,), before, after, (d,), g))
    else:
        expected = np_conv_cf(x, wt, (s,), before, after, (d,), g)
    check(got, expected)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("ci", "dhw", "co", "k", "s", "p", "d", "g"),
    [(3, (5, 6, 7), 4, 3, 2, 1, 1, 1), (4, (5, 5, 6), 2, 2, 1, (1, 0, 1), (2, 1, 1), 2)],
)
def test_conv3d(channels_last, ci, dhw, co, k, s, p, d, g):
    n = 1
    if channels_last:
        data, kernel = ph((n, *dhw, ci), "data"), ph((k, k, k, ci // g, co), "kernel")
        out = topi.conv3d_ndhwc(data, kernel, s, p, d, g)
    else:
        data, kernel = ph((n, ci, *dhw), "data"), ph((co, ci // g, k, k, k), "kernel")
        out = topi.conv3d_ncdhw(data, kernel, s, p, d, g)
    (x, wt), (got,) = run([data, kernel, out])
    before, after = _pads(p, 3)
    dil = (d,) * 3 if isinstance(d, int) else d
    if channels_last:
        expected = to_cl(np_conv_cf(to_cf(x), kernel_to_oi(wt), (s,) * 3, before, after, dil, g))
    else:
        expected = np_conv_cf(x, wt, (s,) * 3, before, after, dil, g)
    check(got, expected)


def test_conv2d_declares_tvm_structure():
    data, kernel = ph((1, 4, 6, 6), "data"), ph((8, 4, 3, 3), "kernel")
    out = topi.conv2d_nchw(data, kernel, padding=1, name="res2a")
    op = out.op
    assert isinstance(op, ComputeOp)
    assert [a.name for a in op.axis] == ["nn", "ff", "yy", "xx"]
    assert [a.name for a in op.reduce_axis] == ["rc", "ry", "rx"]
    assert op.tag == "conv2d_nchw"
    assert [t.name for t in op.input_tensors] == ["res2a_pad", "kernel"]
    unpadded = topi.conv2d_nhwc(ph((1, 6, 6, 4), "d2"), ph((1, 1, 4, 8), "k2"))
    assert [t.name for t in unpadded.op.input_tensors] == ["d2", "k2"]
    assert [a.name for a in unpadded.op.reduce_axis] == ["ry", "rx", "rc"]


def test_conv_errors():
    data = ph((1, 64, 8, 8), "data")
    with pytest.raises(TopiError, match="conv2d_nchw: input channels 64 not divisible by groups 3"):
        topi.conv2d_nchw(data, ph((6, 21, 3, 3), "k"), groups=3)
    with pytest.raises(TopiError, match=r"output channels 6 not divisible by groups 4"):
        topi.conv2d_nchw(data, ph((6, 16, 3, 3), "k"), groups=4)
    with pytest.raises(TopiError, match=r"has 32 input channels, expected 64"):
        topi.conv2d_nchw(data, ph((6, 32, 3, 3), "k"))
    with pytest.raises(TopiError, match=r"conv2d_nchw 'c1': kernel 9 larger than padded input 8 along yy"):
        topi.conv2d_nchw(data, ph((6, 64, 9, 1), "k"), name="c1")
    with pytest.raises(TopiError, match=r"kernel 5 larger than padded input 4 along xx"):
        topi.conv1d_ncw(ph((1, 2, 4), "d"), ph((2, 2, 3), "k"), dilation=2)
    with pytest.raises(TopiError, match=r"stride \[1, 0\] must be positive, got 0"):
        topi.conv2d_nhwc(ph((1, 8, 8, 2), "d"), ph((3, 3, 2, 2), "k"), stride=(1, 0))
    with pytest.raises(TopiError, match=r"padding \(1, 2, 3\) must be an int, 2 ints or 4 ints"):
        topi.conv2d_nhwc(ph((1, 8, 8, 2), "d"), ph((3, 3, 2, 2), "k"), padding=(1, 2, 3))
    with pytest.raises(TopiError, match=r"data must have 5 dimensions \(NCDHW\), got shape \[1, 64, 8, 8\]"):
        topi.conv3d_ncdhw(data, ph((2, 64, 1, 1, 1), "k"))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("c", "h", "w", "mult", "k", "s", "p", "d"),
    [(3, 7, 7, 1, 3, 1, 1, 1), (4, 9, 8, 2, 3, 2, (1, 0, 2, 1), 1), (2, 10, 9, 3, 3, 1, 2, 2)],
)
def test_depthwise_conv2d(channels_last, c, h, w, mult, k, s, p, d):
    n = 2
    if channels_last:
        data, kernel = ph((n, h, w, c), "data"), ph((k, k, c, mult), "kernel")
        out = topi.depthwise_conv2d_nhwc(data, kernel, s, p, d)
    else:
        data, kernel = ph((n, c, h, w), "data"), ph((c, mult, k, k), "kernel")
        out = topi.depthwise_conv2d_nchw(data, kernel, s, p, d)
    (x, wt), (got,) = run([data, kernel, out])
    xc = to_cf(x) if channels_last else x
    wc = np.transpose(wt, (2, 3, 0, 1)) if channels_last else wt  # -> [C, m, kh, kw]
    before, after = _pads(p, 2)
    xp = np.pad(xc.astype(np.float64), [(0, 0), (0, 0), (before[0], after[0]), (before[1], after[1])])
    oh = (xp.shape[2] - d * (k - 1) - 1) // s + 1
    ow = (xp.shape[3] - d * (k - 1) - 1) // s + 1
    expected = np.zeros((n, c, mult, oh, ow))
    for di, dj in itertools.product(range(k), range(k)):
        patch = xp[:, :, di * d : di * d + s * (oh - 1) + 1 : s, dj * d : dj * d + s * (ow - 1) + 1 : s]
        expected += patch[:, :, None] * wc[None, :, :, di, dj, None, None]
    expected = expected.reshape(n, c * mult, oh, ow)
    check(got, to_cl(expected) if channels_last else expected)


def test_depthwise_rejects_channel_mismatch():
    with pytest.raises(
        TopiError, match=r"depthwise_conv2d_nchw: kernel \[4, 1, 3, 3\] .* has 4 channels, data has 3"
    ):
        topi.depthwise_conv2d_nchw(ph((1, 3, 5, 5), "d"), ph((4, 1, 3, 3), "k"))


def np_conv_transpose_nchw(x, w, s, before, after, opad):
    """Scatter form: every input pixel adds its value times the kernel to the output,
    then the padding is cropped. w [CI, CO, kh, kw]."""
    n, _, h, wd = x.shape
    _, co, kh, kw = w.shape
    full = np.zeros((n, co, (h - 1) * s + kh + opad, (wd - 1) * s + kw + opad))
    for i, j in itertools.product(range(kh), range(kw)):
        contrib = np.einsum("nchw,co->nohw", x.astype(np.float64), w[:, :, i, j].astype(np.float64))
        full[:, :, i : i + s * (h - 1) + 1 : s, j : j + s * (wd - 1) + 1 : s] += contrib
    out_h = (h - 1) * s - before[0] - after[0] + kh + opad
    out_w = (wd - 1) * s - before[1] - after[1] + kw + opad
    return full[:, :, before[0] : before[0] + out_h, before[1] : before[1] + out_w]


T2D_CASES = [
    # (N, CI, H, W, CO, k, stride, padding, output_padding)
    (1, 3, 4, 4, 2, 4, 2, 1, 0),
    (2, 2, 3, 5, 3, 3, 2, 1, 1),
    (1, 3, 5, 4, 2, 3, 1, 0, 0),
    (1, 2, 3, 3, 2, 5, 3, (1, 2, 3, 0), 2),
]


@pytest.mark.parametrize("case", T2D_CASES)
def test_conv2d_transpose_nchw(case):
    n, ci, h, w, co, k, s, p, op = case
    data, kernel = ph((n, ci, h, w), "data"), ph((ci, co, k, k), "kernel")
    out = topi.conv2d_transpose_nchw(data, kernel, s, p, op)
    (x, wt), (got,) = run([data, kernel, out])
    before, after = _pads(p, 2)
    check(got, np_conv_transpose_nchw(x, wt, s, before, after, op))


@pytest.mark.parametrize("case", T2D_CASES)
def test_conv2d_transpose_nhwc(case):
    n, ci, h, w, co, k, s, p, op = case
    data, kernel = ph((n, h, w, ci), "data"), ph((k, k, ci, co), "kernel")
    out = topi.conv2d_transpose_nhwc(data, kernel, s, p, op)
    (x, wt), (got,) = run([data, kernel, out])
    before, after = _pads(p, 2)
    expected = np_conv_transpose_nchw(to_cf(x), np.transpose(wt, (2, 3, 0, 1)), s, before, after, op)
    check(got, to_cl(expected))
    assert out.op.attrs["auto_scheduler_always_unroll_inner"][:4] == ["h", "w", "rh", "rw"]


def test_conv2d_transpose_structure_and_errors():
    data, kernel = ph((1, 3, 4, 4), "data"), ph((3, 2, 4, 4), "kernel")
    out = topi.conv2d_transpose_nchw(data, kernel, 2, 1)
    dag = ComputeDAG([data, kernel, out])
    assert [op.name for op in dag.ops] == [
        "data",
        "conv2d_transpose_nchw_dilate",
        "conv2d_transpose_nchw_pad",
        "kernel",
        "conv2d_transpose_nchw_kernel",
        "conv2d_transpose_nchw",
    ]
    with pytest.raises(TopiError, match=r"top padding 4 larger than kernel size - 1 = 3"):
        topi.conv2d_transpose_nchw(data, kernel, 2, 4)
    with pytest.raises(TopiError, match=r"output_padding 2 along height must be in \[0, stride 2\)"):
        topi.conv2d_transpose_nchw(data, kernel, 2, 1, (2, 0))
    with pytest.raises(TopiError, match=r"kernel \[4, 2, 4, 4\] has 4 input channels, data has 3"):
        topi.conv2d_transpose_nchw(data, ph((4, 2, 4, 4), "k2"))


@pytest.mark.parametrize(("s", "p", "pose"), [(1, 1, (2, 3, 2)), (2, 1, (4, 4, 4)), (2, 0, (3, 2, 1))])
def test_conv2d_capsule(s, p, pose):
    n, h, w, ci, co, k = 1, 6, 5, 3, 2, 3
    pi, pk, pj = pose
    data, kernel = ph((n, h, w, pi, pk, ci), "data"), ph((k, k, pk, pj, ci, co), "kernel")
    out = topi.conv2d_capsule_nhwijc(data, kernel, s, p)
    (x, wt), (got,) = run([data, kernel, out])
    xp = np.pad(x.astype(np.float64), [(0, 0), (p, p), (p, p), (0, 0), (0, 0), (0, 0)])
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    expected = np.zeros((n, oh, ow, pi, pj, co))
    for rh, rw in itertools.product(range(k), range(k)):
        patch = xp[:, rh : rh + s * (oh - 1) + 1 : s, rw : rw + s * (ow - 1) + 1 : s]
        expected += np.einsum("nhwikc,kjco->nhwijo", patch, wt[rh, rw].astype(np.float64))
    check(got, expected)


def test_capsule_rejects_pose_mismatch():
    with pytest.raises(
        TopiError, match=r"data pose \[I, K\] = \[4, 4\] and kernel pose \[K, J\] = \[3, 4\] disagree"
    ):
        topi.conv2d_capsule_nhwijc(ph((1, 5, 5, 4, 4, 2), "d"), ph((3, 3, 3, 4, 2, 2), "k"))


# ------------------------------------------------------------------------------------------
# pooling


def np_pool2d_nchw(x, k, s, before, after, kind, count_include_pad=True):
    fill = -np.inf if kind == "max" else 0.0
    pads = [(0, 0), (0, 0), (before[0], after[0]), (before[1], after[1])]
    xp = np.pad(x.astype(np.float64), pads, constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]
    if kind == "max":
        return win.max(axis=(-1, -2))
    total = win.sum(axis=(-1, -2))
    if count_include_pad:
        return total / (k[0] * k[1])
    ones = np.pad(np.ones(x.shape[2:]), pads[2:])
    counts = np.lib.stride_tricks.sliding_window_view(ones, k)[:: s[0], :: s[1]].sum(axis=(-1, -2))
    return total / counts


POOL_CASES = [
    # (H, W, kernel, stride, padding)
    (7, 7, (3, 3), (2, 2), 1),
    (8, 9, (2, 3), (2, 1), (1, 0, 0, 2)),
    (5, 5, (5, 5), (1, 1), 0),
    (6, 7, (3, 2), (3, 2), (1, 1)),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize(("kind", "include"), [("max", True), ("avg", True), ("avg", False)])
def test_pool2d(layout, case, kind, include):
    h, w, k, s, p = case
    shape = (2, 3, h, w) if layout == "NCHW" else (2, h, w, 3)
    x = ph(shape, "x")
    if kind == "max":
        out = topi.max_pool2d(x, k, s, p, layout)
    else:
        out = topi.avg_pool2d(x, k, s, p, layout, count_include_pad=include)
    (a,), (got,) = run([x, out])
    before, after = _pads(p, 2)
    cf = a if layout == "NCHW" else to_cf(a)
    expected = np_pool2d_nchw(cf, k, s, before, after, kind, include)
    check(got, expected if layout == "NCHW" else to_cl(expected))


def test_pool3d_and_global_pools():
    x = ph((1, 2, 5, 6, 7), "x")
    mx = topi.max_pool3d(x, 3, 2, 1, name="mp")
    av = topi.avg_pool3d(x, (2, 3, 2), 1, 0, name="ap")
    g3 = topi.global_avg_pool3d(x, name="gp3")
    (a,), (g_mx, g_av, g_g3) = run([x, mx, av, g3])
    xp = np.pad(a, [(0, 0), (0, 0), (1, 1), (1, 1), (1, 1)], constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3, 3), axis=(2, 3, 4))[:, :, ::2, ::2, ::2]
    check(g_mx, win.max(axis=(-1, -2, -3)))
    win = np.lib.stride_tricks.sliding_window_view(a, (2, 3, 2), axis=(2, 3, 4))
    check(g_av, win.mean(axis=(-1, -2, -3)))
    check(g_g3, a.mean(axis=(2, 3, 4), keepdims=True))
    y = ph((2, 5, 4, 3), "y")
    g2 = topi.global_avg_pool2d(y, layout="NHWC")
    (b,), (got,) = run([y, g2])
    check(got, b.mean(axis=(1, 2), keepdims=True))
    assert g2.shape == (2, 1, 1, 3)


def test_pool_errors():
    x = ph((1, 2, 6, 6), "x")
    with pytest.raises(TopiError, match="max_pool2d: kernel 9 larger than padded input 8"):
        topi.max_pool2d(x, 9, 1, 1)
    with pytest.raises(TopiError, match=r"avg_pool2d: layout 'NCDHW' must be NCHW or NHWC"):
        topi.avg_pool2d(x, 2, layout="NCDHW")
    with pytest.raises(TopiError, match=r"data \[1, 2, 6, 6\] has rank 4, layout NDHWC needs 5"):
        topi.max_pool3d(x, 2, layout="NDHWC")
    with pytest.raises(TopiError, match=r"kernel \[2, 0\] must be positive, got 0"):
        topi.max_pool2d(x, (2, 0))


# ------------------------------------------------------------------------------------------
# normalisation and reductions


@pytest.mark.parametrize(("shape", "axis"), [((4, 7), -1), ((3, 5, 2), 1), ((3, 5, 2), 0)])
def test_softmax_and_log_softmax(shape, axis):
    x = ph(shape, "x")
    sm = topi.softmax(x, axis)
    ls = topi.log_softmax(x, axis)
    (a,), (g_sm, g_ls) = run([x, sm, ls], seed=3)
    a64 = a.astype(np.float64) * 1.0
    shifted = a64 - a64.max(axis=axis, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    check(g_sm, np.exp(shifted - log_z))
    check(g_ls, shifted - log_z)


def test_softmax_is_four_ops_like_tvm():
    x = ph((4, 6), "x")
    sm = topi.softmax(x, name="attn")
    dag = ComputeDAG([x, sm])
    assert [op.name for op in dag.ops] == ["x", "attn_maxelem", "attn_exp", "attn_expsum", "attn"]
    assert sm.op.attrs == {"axis": 1}
    with pytest.raises(TopiError, match=r"softmax 'T_softmax': axis 2 out of range for a tensor of rank 2"):
        topi.softmax(x, axis=2)


@pytest.mark.parametrize(("shape", "axis"), [((3, 4, 10), -1), ((2, 3, 4, 5), (1, 3))])
def test_layer_norm(shape, axis):
    axes = (axis,) if isinstance(axis, int) else axis
    norm_shape = tuple(shape[a] for a in axes)
    x, gamma, beta = ph(shape, "x"), ph(norm_shape, "gamma"), ph(norm_shape, "beta")
    out = topi.layer_norm(x, gamma, beta, axis, epsilon=1e-5)
    (a, g, b), (got,) = run([x, gamma, beta, out], seed=4)
    a64 = a.astype(np.float64)
    mean = a64.mean(axis=axes, keepdims=True)
    var = a64.var(axis=axes, keepdims=True)
    bshape = [shape[d] if d in [ax % len(shape) for ax in axes] else 1 for d in range(len(shape))]
    expected = (a64 - mean) / np.sqrt(var + 1e-5) * g.reshape(bshape) + b.reshape(bshape)
    check(got, expected)


def test_layer_norm_errors():
    x = ph((3, 4, 10), "x")
    with pytest.raises(TopiError, match=r"gamma shape \[4\] must be \[10\] \(axes \[2\] of \[3, 4, 10\]\)"):
        topi.layer_norm(x, ph((4,), "g"), ph((10,), "b"))
    with pytest.raises(TopiError, match="must name one or more distinct axes"):
        topi.layer_norm(x, ph((10,), "g"), ph((10,), "b"), axis=(2, -1))


@pytest.mark.parametrize(("shape", "axis"), [((2, 3, 4, 5), 1), ((2, 4, 5, 3), -1)])
def test_batch_norm_inference(shape, axis):
    c = shape[axis]
    x = ph(shape, "x")
    params = [ph((c,), n) for n in ("gamma", "beta", "mean", "var")]
    out = topi.batch_norm_inference(x, *params, axis=axis, epsilon=1e-3)
    dag = ComputeDAG([x, *params, out])
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, shape).astype(np.float32)
    g, b, m = (rng.uniform(-1, 1, (c,)).astype(np.float32) for _ in range(3))
    v = rng.uniform(0.1, 2.0, (c,)).astype(np.float32)  # variances are positive
    (got,) = evaluate(dag, [a, g, b, m, v])
    bshape = [c if d == axis % len(shape) else 1 for d in range(len(shape))]
    r = [t.reshape(bshape).astype(np.float64) for t in (g, b, m, v)]
    check(got, (a - r[2]) / np.sqrt(r[3] + 1e-3) * r[0] + r[1])
    with pytest.raises(TopiError, match=r"moving_var shape \[4\] must be \[3\]"):
        topi.batch_norm_inference(ph((2, 3), "y"), params[0], params[1], params[2], ph((4,), "v"))


@pytest.mark.parametrize(
    ("axis", "keepdims"), [(None, True), (1, False), ((0, 2), False), (-1, True), ((0, 1, 2), True)]
)
def test_sum_max_min(axis, keepdims):
    x = ph((3, 4, 5), "x")
    outs = [
        topi.sum(x, axis, keepdims, name="s"),
        topi.max(x, axis, keepdims, name="mx"),
        topi.min(x, axis, keepdims, name="mn"),
    ]
    (a,), got = run([x, *outs])
    np_axis = tuple(axis) if isinstance(axis, tuple) else axis
    check(got[0], a.sum(axis=np_axis, keepdims=keepdims))
    check(got[1], a.max(axis=np_axis, keepdims=keepdims))
    check(got[2], a.min(axis=np_axis, keepdims=keepdims))


def test_reduction_errors_and_default_name():
    x = ph((3, 4), "x")
    assert topi.sum(x, 0).op.name == "x_red"
    with pytest.raises(TopiError, match=r"sum 'x_red': reducing every axis of \[3, 4\] needs keepdims=True"):
        topi.sum(x)


def test_norm_bmn():
    a = ph((3, 5, 7), "A")
    out = topi.norm_bmn(a)
    (x,), (got,) = run([a, out])
    check(got, np.sqrt((x.astype(np.float64) ** 2).sum(axis=(1, 2))))
    assert [r.name for r in ComputeDAG([a, out]).ops[1].reduce_axis] == ["i", "j"]


# ------------------------------------------------------------------------------------------
# workload builders


def test_gemm_and_matmul_bias_relu_workloads():
    (a, b), (got,) = run(wl.gemm(5, 7, 3))
    check(got, a @ b)
    (a, b), (got,) = run(wl.batch_gemm(2, 5, 7, 3))
    check(got, a @ b)
    (a, b, bias), (got,) = run(wl.matmul_bias_relu(5, 7, 3))
    check(got, np.maximum(a @ b + bias, 0))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_conv2d_layer_and_conv_bn_relu_workloads(layout):
    (x, w), (got,) = run(wl.conv2d_layer(1, 7, 6, 4, 6, 3, 2, 1, dilation=1, groups=2, layout=layout))
    cf = layout == "NCHW"
    expected = np_conv_cf(
        x if cf else to_cf(x), w if cf else kernel_to_oi(w), (2, 2), (1, 1), (1, 1), (1, 1), 2
    )
    check(got, expected if cf else to_cl(expected))

    tensors = wl.conv2d_bn_relu(2, 5, 5, 3, 4, 3, 1, 1, layout=layout)
    assert [t.name for t in tensors[:5]] == ["data", "kernel", "bias", "bn_scale", "bn_offset"]
    (x, w, bias, scale, offset), (got,) = run(tensors)
    conv = np_conv_cf(x if cf else to_cf(x), w if cf else kernel_to_oi(w), (1, 1), (1, 1), (1, 1), (1, 1), 1)
    per_c = [t.reshape(1, -1, 1, 1) for t in (bias, scale, offset)]
    expected = np.maximum((conv + per_c[0]) * per_c[1] + per_c[2], 0)
    check(got, expected if cf else to_cl(expected))


def test_conv1d_conv3d_depthwise_workloads():
    (x, w), (got,) = run(wl.conv1d(1, 9, 3, 4, 3, 2, 1))
    check(got, to_cl(np_conv_cf(to_cf(x), kernel_to_oi(w), (2,), (1,), (1,), (1,), 1)))
    (x, w), (got,) = run(wl.conv3d(1, 4, 5, 5, 2, 3, 3, 1, 1, layout="NCDHW"))
    check(got, np_conv_cf(x, w, (1,) * 3, (1,) * 3, (1,) * 3, (1,) * 3, 1))
    (x, w), (got,) = run(wl.depthwise(1, 6, 6, 3, 3, 1, 1, layout="NCHW"))
    check(got, np_conv_cf(x, w.reshape(3, 1, 3, 3), (1, 1), (1, 1), (1, 1), (1, 1), 3))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_t2d_workload(layout):
    (x, w), (got,) = run(wl.t2d(1, 4, 4, 3, 2, 4, 2, 1, layout=layout))
    if layout == "NCHW":
        check(got, np_conv_transpose_nchw(x, w, 2, (1, 1), (1, 1), 0))
    else:
        expected = np_conv_transpose_nchw(to_cf(x), np.transpose(w, (2, 3, 0, 1)), 2, (1, 1), (1, 1), 0)
        check(got, to_cl(expected))
    assert got.shape[1 if layout == "NHWC" else 2] == 8


def test_capsule_norm_tbs_workloads():
    (x, w), (got,) = run(wl.capsule(1, 5, 5, 2, 3, 3, 2, 1, capsule_size=2))
    assert got.shape == (1, 3, 3, 2, 2, 3)
    xp = np.pad(x.astype(np.float64), [(0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)])
    expected = sum(
        np.einsum("nhwikc,kjco->nhwijo", xp[:, rh : rh + 5 : 2, rw : rw + 5 : 2], w[rh, rw])
        for rh in range(3)
        for rw in range(3)
    )
    check(got, expected)
    (a,), (got,) = run(wl.norm(2, 5, 3))
    check(got, np.linalg.norm(a.astype(np.float64), axis=(1, 2)))

    (q, v), (got,) = run(wl.tbs(2, 5, 3, 4))
    scores = np.einsum("blhd,bmhd->bhlm", q.astype(np.float64), v.astype(np.float64))
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    check(got, e / e.sum(axis=-1, keepdims=True))


def test_workload_errors():
    with pytest.raises(TopiError, match="input channels 3 not divisible by groups 4"):
        wl.conv2d_layer(1, 8, 8, 3, 8, 3, groups=4)
    with pytest.raises(TopiError, match=r"layout 'NCW' must be NHWC or NCHW"):
        wl.conv2d_layer(1, 8, 8, 3, 8, 3, layout="NCW")
    with pytest.raises(TopiError, match=r"unknown op 'XYZ'"):
        wl.paper_workload("XYZ", 0)
    with pytest.raises(TopiError, match=r"index 4 out of range \[0, 4\) for C2D"):
        wl.paper_workload("C2D", 4)


EXPECTED_SUITE_OUTPUTS = {
    ("C1D", 0): (1, 128, 128),
    ("C2D", 0): (1, 112, 112, 64),
    ("C3D", 0): (1, 8, 112, 112, 64),
    ("GMM", 3): (1, 1024, 1024),
    ("GRP", 0): (1, 28, 28, 128),
    ("DIL", 0): (1, 109, 109, 64),
    ("DEP", 1): (1, 56, 56, 64),
    ("T2D", 3): (1, 64, 64, 3),
    ("CAP", 0): (1, 8, 8, 4, 4, 32),
    ("NRM", 3): (16,),
    ("ConvLayer", 1): (1, 28, 28, 64),
    ("TBS", 2): (1, 12, 64, 64),
}


@pytest.mark.parametrize("op", list(wl.PAPER_SUITE))
def test_paper_suite_declares_every_configuration(op):
    for index in range(4):
        batch = 16 if op == "NRM" else 1
        dag = ComputeDAG(wl.paper_workload(op, index, batch=batch))
        assert len(dag.outputs) == 1
        if (op, index) in EXPECTED_SUITE_OUTPUTS:
            assert dag.outputs[0].shape == EXPECTED_SUITE_OUTPUTS[(op, index)]
