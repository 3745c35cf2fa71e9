"""Workloads declared once for the tests: plain te declarations, small shapes.

Each function returns the tensor list a ComputeDAG takes: inputs first, then outputs.
Add new workloads here rather than redeclaring them in test files.
"""

from __future__ import annotations

from ir import te
from ir.te import Tensor


def _strided(axis: te.Expr, stride: int) -> te.Expr:
    """``axis * stride``, or the axis itself for stride 1 (TVM folds ``x * 1`` away)."""
    return axis if stride == 1 else axis * stride


def matmul(n: int = 16, m: int = 12, k: int = 8, dtype: str = "float32") -> list[Tensor]:
    """C[i, j] = sum_k A[i, k] * B[k, j]."""
    a = te.placeholder((n, k), dtype=dtype, name="A")
    b = te.placeholder((k, m), dtype=dtype, name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((n, m), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    return [a, b, c]


def matmul_bias_relu(n: int = 16, m: int = 12, k: int = 8, dtype: str = "float32") -> list[Tensor]:
    """D = relu(A @ B + bias[j])."""
    a, b, c = matmul(n, m, k, dtype)
    bias = te.placeholder((m,), dtype=dtype, name="bias")
    biased = te.compute((n, m), lambda i, j: c[i, j] + bias[j], name="biased")
    relu = te.compute((n, m), lambda i, j: te.max(biased[i, j], 0.0), name="relu")
    return [a, b, bias, relu]


def conv2d_nchw(
    n: int = 1,
    ci: int = 4,
    h: int = 8,
    w: int = 8,
    co: int = 6,
    kh: int = 3,
    kw: int = 3,
    pad: int = 1,
    stride: int = 1,
    dtype: str = "float32",
) -> list[Tensor]:
    """Direct NCHW conv2d with zero padding as its own stage (``pad_temp``), as TOPI does."""
    data = te.placeholder((n, ci, h, w), dtype=dtype, name="data")
    kernel = te.placeholder((co, ci, kh, kw), dtype=dtype, name="kernel")
    hp, wp = h + 2 * pad, w + 2 * pad
    pad_temp = te.compute(
        (n, ci, hp, wp),
        lambda i0, i1, i2, i3: te.if_then_else(
            te.all(i2 >= pad, i2 < h + pad, i3 >= pad, i3 < w + pad),
            data[i0, i1, i2 - pad, i3 - pad],
            0.0,
        ),
        name="pad_temp",
    )
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    rc = te.reduce_axis((0, ci), name="rc")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    out = te.compute(
        (n, co, ho, wo),
        lambda nn, ff, yy, xx: te.sum(
            pad_temp[nn, rc, _strided(yy, stride) + ry, _strided(xx, stride) + rx] * kernel[ff, rc, ry, rx],
            axis=[rc, ry, rx],
        ),
        name="conv",
    )
    return [data, kernel, out]


def softmax(m: int = 6, n: int = 10, dtype: str = "float32") -> list[Tensor]:
    """Row softmax in four stages: max, exp, sum, divide (TOPI's structure)."""
    x = te.placeholder((m, n), dtype=dtype, name="X")
    k1 = te.reduce_axis((0, n), name="k1")
    row_max = te.compute((m,), lambda i: te.max(x[i, k1], axis=k1), name="row_max")
    e = te.compute((m, n), lambda i, j: te.exp(x[i, j] - row_max[i]), name="exp")
    k2 = te.reduce_axis((0, n), name="k2")
    row_sum = te.compute((m,), lambda i: te.sum(e[i, k2], axis=k2), name="row_sum")
    out = te.compute((m, n), lambda i, j: e[i, j] / row_sum[i], name="softmax")
    return [x, out]


def max_pool2d(
    n: int = 1, c: int = 3, h: int = 8, w: int = 8, k: int = 2, stride: int = 2, dtype: str = "float32"
) -> list[Tensor]:
    """Max pooling without padding."""
    data = te.placeholder((n, c, h, w), dtype=dtype, name="data")
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    ry = te.reduce_axis((0, k), name="ry")
    rx = te.reduce_axis((0, k), name="rx")
    out = te.compute(
        (n, c, ho, wo),
        lambda b, ch, y, x: te.max(
            data[b, ch, _strided(y, stride) + ry, _strided(x, stride) + rx], axis=[ry, rx]
        ),
        name="pool_max",
    )
    return [data, out]


def row_reduce(m: int = 6, n: int = 10, kind: str = "sum", dtype: str = "float32") -> list[Tensor]:
    """out[i] = reduce_j A[i, j] with te.sum / te.max / te.min / te.prod."""
    a = te.placeholder((m, n), dtype=dtype, name="A")
    r = te.reduce_axis((0, n), name="r")
    reducer = {"sum": te.sum, "max": te.max, "min": te.min, "prod": te.prod}[kind]
    out = te.compute((m,), lambda i: reducer(a[i, r], axis=r), name=f"row_{kind}")
    return [a, out]


def shifted_row_sum(m: int = 4, begin: int = 2, end: int = 9, dtype: str = "float32") -> list[Tensor]:
    """out[i] = sum_{r in [begin, end)} A[i, r]: a reduce axis that does not start at 0."""
    a = te.placeholder((m, end + 1), dtype=dtype, name="A")
    r = te.reduce_axis((begin, end), name="r")
    out = te.compute((m,), lambda i: te.sum(a[i, r] * 2.0, axis=r), name="shifted_sum")
    return [a, out]


def matmul_relu(n: int = 16, m: int = 12, k: int = 8, dtype: str = "float32") -> list[Tensor]:
    """D = relu(A @ B): one reduction stage and one elementwise consumer."""
    a, b, c = matmul(n, m, k, dtype)
    relu = te.compute((n, m), lambda i, j: te.max(c[i, j], 0.0), name="D")
    return [a, b, relu]


def vector_scale(n: int = 10, dtype: str = "float32") -> list[Tensor]:
    """B[i] = A[i] * 3: a one-loop stage."""
    a = te.placeholder((n,), dtype=dtype, name="A")
    b = te.compute((n,), lambda i: a[i] * 3.0, name="B")
    return [a, b]
