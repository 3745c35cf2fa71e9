"""The LLVM back end on PrimFuncs produced by ``ir.lower`` (the hand-built TIR tests are
the core; these check the two halves meet): a naive DAG and an Ansor-style tiled matmul
(cache_write, multi-level split, fused parallel loop, unroll pragma, vectorize)."""

from __future__ import annotations

import numpy as np
from codegen_helpers import random_array

from codegen.llvm import build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.lower.lower import lower


def _matmul_relu(n: int):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((n, n), lambda i, j: te.max(C[i, j], 0.0), name="D")
    return ComputeDAG([A, B, D]), C, D


def _check(func, n: int) -> None:
    rng = np.random.default_rng(50)
    a, b = random_array(rng, (n, n), "float32", -1, 1), random_array(rng, (n, n), "float32", -1, 1)
    d = np.full((n, n), 77, "float32")
    build(func)(a, b, d)
    np.testing.assert_allclose(d, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-4 * n)


def test_naive_lowered_dag():
    dag, _, _ = _matmul_relu(24)
    _check(lower(dag, None, name="naive"), 24)


def test_ansor_style_tiled_matmul():
    n = 64
    dag, C, _ = _matmul_relu(n)
    s = State(dag)
    CL = s.cache_write(C, "local")
    i, j, k = s[CL].iters
    i0, i1, i2, i3 = s.split(CL, i, [2, 2, 4])
    j0, j1, j2, j3 = s.split(CL, j, [2, 1, 16])
    k0, k1 = s.split(CL, k, [4])
    s.reorder(CL, [i0, j0, i1, j1, k0, i2, j2, k1, i3, j3])
    ci, cj = s[C].iters
    ci0, ci1 = s.split(C, ci, [16])
    cj0, cj1 = s.split(C, cj, [32])
    s.reorder(C, [ci0, cj0, ci1, cj1])
    s.compute_at(CL, C, cj0)
    fused = s.fuse(C, [ci0, cj0])
    s.parallel(C, fused)
    s.pragma(C, fused, "auto_unroll_max_step$64")
    s.vectorize(CL, j3)
    s.unroll(CL, i3)
    func = lower(dag, s, name="tiled")
    text = str(func)
    assert "parallel" in text and "vectorized" in text and "unrolled" in text
    _check(func, n)
