"""Loop kinds of the LLVM back end: vectorized (contiguous, gather, scatter, broadcast,
odd widths, chunks, fallback), unrolled, ``pragma_auto_unroll_max_step``, parallel
(libgomp, several thread counts, nested), each checked against numpy."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from codegen_helpers import empty_like_buffer, loop, random_array

from codegen.llvm import BuildOptions, CodegenError, build
from ir.expr import Var, const, select
from ir.tir import (
    Allocate,
    Buffer,
    BufferLoad,
    BufferStore,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    MemoryScope,
    PrimFunc,
    seq,
)

V = ForKind.VECTORIZED


@pytest.mark.parametrize("width", [3, 7, 16, 100])
def test_vectorized_contiguous_odd_widths(width):
    rng = np.random.default_rng(width)
    rows = 5
    A, B = Buffer("A", (rows, width), "float32"), Buffer("B", (rows, width), "float32")
    C = Buffer("C", (rows, width), "float32")
    i, j = Var("i"), Var("j")
    flat = i * width + j
    body = loop(
        i,
        rows,
        loop(j, width, BufferStore(C, BufferLoad(A, (flat,)) * BufferLoad(B, (flat,)) + 1.0, (flat,)), V),
    )
    module = build(PrimFunc("vadd", (A, B, C), body))
    lanes = min(width, 64)
    assert f"<{lanes} x float>" in module.get_ir(optimized=False)  # widened, not a fallback
    a, b = random_array(rng, (rows, width), "float32"), random_array(rng, (rows, width), "float32")
    c = empty_like_buffer(C)
    module(a, b, c)
    np.testing.assert_allclose(c, a * b + 1, rtol=1e-4, atol=1e-4 * 16)


def test_vectorized_strided_gather_and_scatter():
    rng = np.random.default_rng(20)
    n = 12
    A, B, C = Buffer("A", (3 * n,), "float32"), Buffer("B", (n,), "float32"), Buffer("C", (2 * n,), "float32")
    j = Var("j")
    body = seq(
        BufferStore(B, BufferLoad(A, (j * 3 + 1,)), (j,)),  # gather, stride 3
        BufferStore(C, BufferLoad(A, (j,)) + 10.0, (j * 2,)),  # scatter, stride 2
        BufferStore(C, BufferLoad(A, ((j * 7) % n,)), (j * 2 + 1,)),  # general index vector
    )
    a = random_array(rng, (3 * n,), "float32")
    b, c = empty_like_buffer(B), empty_like_buffer(C)
    build(PrimFunc("gather", (A, B, C), loop(j, n, body, V)))(a, b, c)
    np.testing.assert_array_equal(b, a[1::3])
    np.testing.assert_allclose(c[0::2], a[:n] + 10, rtol=1e-6)
    np.testing.assert_array_equal(c[1::2], a[(np.arange(n) * 7) % n])


def test_vectorized_broadcast_outer_product():
    rng = np.random.default_rng(21)
    rows, cols = 6, 16
    A, B, C = (
        Buffer("A", (rows,), "float32"),
        Buffer("B", (cols,), "float32"),
        Buffer("C", (rows, cols), "float32"),
    )
    i, j = Var("i"), Var("j")
    body = loop(
        i, rows, loop(j, cols, BufferStore(C, BufferLoad(A, (i,)) * BufferLoad(B, (j,)), (i * cols + j,)), V)
    )
    a, b = random_array(rng, (rows,), "float32"), random_array(rng, (cols,), "float32")
    c = empty_like_buffer(C)
    build(PrimFunc("outer", (A, B, C), body))(a, b, c)
    np.testing.assert_allclose(c, np.outer(a, b), rtol=1e-6)


def test_vectorized_integer_index_arithmetic_and_bool_buffers():
    rng = np.random.default_rng(22)
    n = 10
    A, M, B = Buffer("A", (n,), "int32"), Buffer("M", (2 * n,), "bool"), Buffer("B", (2 * n,), "int32")
    j = Var("j")
    body = seq(
        BufferStore(M, BufferLoad(A, (j // 2,)) > 0, (j,)),  # floordiv of the lane index
        BufferStore(B, select(BufferLoad(M, (j,)), j * j, -j), (j,)),  # bool load, select
    )
    a = random_array(rng, (n,), "int32", -5, 5)
    m, b = empty_like_buffer(M), empty_like_buffer(B)
    build(PrimFunc("intvec", (A, M, B), loop(j, 2 * n, body, V)))(a, m, b)
    lanes = np.arange(2 * n)
    np.testing.assert_array_equal(m, a[lanes // 2] > 0)
    np.testing.assert_array_equal(b, np.where(m, lanes * lanes, -lanes))


def test_vectorized_body_with_inner_loop_falls_back_to_a_serial_loop():
    rng = np.random.default_rng(23)
    rows, cols = 8, 5
    A, B = Buffer("A", (rows, cols), "float32"), Buffer("B", (rows,), "float32")
    i, k = Var("i"), Var("k")
    body = loop(
        i,
        rows,
        seq(
            BufferStore(B, const(0.0), (i,)),
            loop(k, cols, BufferStore(B, BufferLoad(B, (i,)) + BufferLoad(A, (i * cols + k,)), (i,))),
        ),
        V,
    )
    module = build(PrimFunc("fallback", (A, B), body))
    assert "llvm.loop.vectorize.enable" in module.get_ir(optimized=False)
    a = random_array(rng, (rows, cols), "float32")
    b = empty_like_buffer(B)
    module(a, b)
    np.testing.assert_allclose(b, a.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_vectorized_reduction_into_one_address_is_rejected():
    A, B = Buffer("A", (4, 8), "float32"), Buffer("B", (4,), "float32")
    i, k = Var("i"), Var("k")
    body = loop(i, 4, loop(k, 8, BufferStore(B, BufferLoad(B, (i,)) + BufferLoad(A, (i * 8 + k,)), (i,)), V))
    with pytest.raises(CodegenError, match=r"store to B\[i\] inside vectorized loop 'k'.*reduction"):
        build(PrimFunc("bad", (A, B), body))


def test_vectorized_uniform_store_of_an_invariant_value_is_kept():
    A, B = Buffer("A", (4,), "float32"), Buffer("B", (4, 8), "float32")
    i, k = Var("i"), Var("k")
    a = np.arange(1, 5, dtype="float32")
    b = np.zeros((4, 8), "float32")
    # B[i, 0] = A[i] from every lane: one address, one value -> legal and idempotent
    body = loop(i, 4, loop(k, 8, BufferStore(B, BufferLoad(A, (i,)), (i * 8,)), V))
    build(PrimFunc("same", (A, B), body))(a, b)
    np.testing.assert_array_equal(b[:, 0], a)
    assert not b[:, 1:].any()


def _unrolled_sum(kind: ForKind, extent: int, **annotations) -> tuple[PrimFunc, Var]:
    A, B = Buffer("A", (extent, extent), "float32"), Buffer("B", (extent,), "float32")
    i, k = Var("i"), Var("k")
    inner = loop(
        k, extent, BufferStore(B, BufferLoad(B, (i,)) + BufferLoad(A, (i * extent + k,)), (i,)), kind
    )
    body = loop(i, extent, seq(BufferStore(B, const(0.0), (i,)), inner), ForKind.SERIAL, **annotations)
    return PrimFunc("unroll", (A, B), body), k


def test_unrolled_loop_has_no_loop_left_and_is_correct():
    rng = np.random.default_rng(24)
    func, _ = _unrolled_sum(ForKind.UNROLLED, 6)
    module = build(func)
    source = module.get_ir(optimized=False)
    assert "k.header" not in source and "i.header" in source
    a = random_array(rng, (6, 6), "float32")
    b = empty_like_buffer(func.params[1])
    module(a, b)
    np.testing.assert_allclose(b, a.sum(axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("max_step", "unrolled"), [(0, set()), (8, {"k"}), (64, {"i", "k"})])
def test_pragma_auto_unroll_max_step(max_step, unrolled):
    """6 x 6 nest: k has 6 steps, i has 6 * (1 + 6) = 42; a loop unrolls when its steps fit."""
    rng = np.random.default_rng(25)
    func, _ = _unrolled_sum(ForKind.SERIAL, 6, pragma_auto_unroll_max_step=max_step)
    module = build(func)
    source = module.get_ir(optimized=False)
    for name in ("i", "k"):
        assert (f"{name}.header" not in source) == (name in unrolled), name
    a = random_array(rng, (6, 6), "float32")
    b = empty_like_buffer(func.params[1])
    module(a, b)
    np.testing.assert_allclose(b, a.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_loop_with_non_constant_min_and_extent():
    """Triangular loop: B[i] = sum(A[j] for j in [i, n)), extent n - i, min i."""
    rng = np.random.default_rng(26)
    n = 9
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    i, j = Var("i"), Var("j")
    inner = For(j, i, n - i, ForKind.SERIAL, BufferStore(B, BufferLoad(B, (i,)) + BufferLoad(A, (j,)), (i,)))
    body = loop(i, n, seq(BufferStore(B, const(0.0), (i,)), inner))
    a = random_array(rng, (n,), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("tri", (A, B), body))(a, b)
    np.testing.assert_allclose(b, np.cumsum(a[::-1])[::-1], rtol=1e-5, atol=1e-5)


def _parallel_func() -> PrimFunc:
    """Parallel outer loop (extent 10: uneven split over 3 or 4 threads) capturing an outer
    variable, a let-bound value, and a per-thread local accumulator; a nested parallel
    loop inside runs serially."""
    rows, cols = 10, 37
    A, B = Buffer("A", (rows, cols), "float32"), Buffer("B", (2, rows), "float32")
    acc = Buffer("acc", (1,), "float32", scope=MemoryScope.LOCAL)
    rep, i, k, scale = Var("rep"), Var("i"), Var("k"), Var("scale", "float32")
    zero = const(0, "int32")
    row_sum = Allocate(
        acc,
        seq(
            BufferStore(acc, const(0.0), (zero,)),
            loop(
                k,
                cols,
                BufferStore(acc, BufferLoad(acc, (zero,)) + BufferLoad(A, (i * cols + k,)), (zero,)),
                ForKind.PARALLEL,
            ),
            BufferStore(B, BufferLoad(acc, (zero,)) * scale, (rep * rows + i,)),
        ),
    )
    body = loop(rep, 2, LetStmt(scale, (rep + 1).astype("float32"), loop(i, rows, row_sum, ForKind.PARALLEL)))
    return PrimFunc("par", (A, B), body)


def test_parallel_loop_in_process():
    rng = np.random.default_rng(27)
    func = _parallel_func()
    module = build(func)
    assert "GOMP_parallel" in module.get_ir()
    a = random_array(rng, (10, 37), "float32")
    b = empty_like_buffer(func.params[1])
    module(a, b)
    sums = a.sum(axis=1)
    np.testing.assert_allclose(b, np.stack([sums, 2 * sums]), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 3, 4])
def test_parallel_loop_with_several_thread_counts(threads):
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, {here!r})
        import numpy as np
        from test_llvm_loops import _parallel_func
        from codegen.llvm import build
        func = _parallel_func()
        a = np.random.default_rng(5).uniform(-1, 1, (10, 37)).astype("float32")
        b = np.full((2, 10), 77, "float32")
        build(func)(a, b)
        sums = a.sum(axis=1)
        np.testing.assert_allclose(b, np.stack([sums, 2 * sums]), rtol=1e-5, atol=1e-4)
        print("ok")
        """
    ).format(here=str(__import__("pathlib").Path(__file__).parent))
    env = {**__import__("os").environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_thread_binding_is_rejected():
    A = Buffer("A", (4,), "float32")
    i = Var("i.0")
    body = For(
        i,
        const(0),
        const(4),
        ForKind.THREAD_BINDING,
        BufferStore(A, const(1.0), (i,)),
        thread_tag="blockIdx.x",
    )
    with pytest.raises(
        CodegenError, match=r"loop 'i.0' is bound to blockIdx.x: the LLVM back end runs CPU code only"
    ):
        build(PrimFunc("gpu", (A,), body))


def test_vectorized_uniform_conditions_lane_casts_and_masked_scatter():
    """Inside a vectorized j loop: an IfThenElse and a memory-reading Select on the outer
    variable r (one branch for all lanes), the lane index cast to float, and a scatter
    (stride 2) under a per-lane condition."""
    rng = np.random.default_rng(28)
    n = 11
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    OUT, S = Buffer("OUT", (3, n), "float32"), Buffer("S", (2 * n,), "float32")
    r, j = Var("r"), Var("j")
    a_j, b_j = BufferLoad(A, (j,)), BufferLoad(B, (j,))
    body = seq(
        IfThenElse(
            r == 0,
            BufferStore(OUT, a_j + j.astype("float32"), (r * n + j,)),
            BufferStore(OUT, select(r == 1, a_j, b_j) * 2.0, (r * n + j,)),
        ),
        IfThenElse(a_j > 0.0, BufferStore(S, a_j + r.astype("float32"), (j * 2,))),
    )
    func = PrimFunc("uniform_if", (A, B, OUT, S), loop(r, 3, loop(j, n, body, V)))
    a, b = random_array(rng, (n,), "float32"), random_array(rng, (n,), "float32")
    out, s = empty_like_buffer(OUT), empty_like_buffer(S)
    build(func)(a, b, out, s)
    np.testing.assert_allclose(out[0], a + np.arange(n), rtol=1e-6)
    np.testing.assert_allclose(out[1], 2 * a, rtol=1e-6)
    np.testing.assert_allclose(out[2], 2 * b, rtol=1e-6)
    expected = np.full(2 * n, 77, "float32")
    expected[0::2] = np.where(a > 0, a + 2, 77)  # the last r (2) wins
    np.testing.assert_allclose(s, expected, rtol=1e-6)


@pytest.mark.parametrize("kind", [ForKind.PARALLEL, ForKind.VECTORIZED])
def test_int64_loop_variables(kind):
    rng = np.random.default_rng(29)
    n = 21
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    i = Var("i", "int64")
    body = For(
        i, const(0, "int64"), const(n, "int64"), kind, BufferStore(B, BufferLoad(A, (n - 1 - i,)) * 2.0, (i,))
    )
    a = random_array(rng, (n,), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("i64", (A, B), body))(a, b)
    np.testing.assert_allclose(b, 2 * a[::-1], rtol=1e-6)


def test_parallel_with_explicit_thread_count_and_non_zero_min():
    rng = np.random.default_rng(31)
    n = 50
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    i = Var("i")
    body = For(i, const(5), const(n - 10), ForKind.PARALLEL, BufferStore(B, BufferLoad(A, (i,)) + 1.0, (i,)))
    a = random_array(rng, (n,), "float32")
    b = empty_like_buffer(B)
    build(PrimFunc("par3", (A, B), body), options=BuildOptions(num_threads=3))(a, b)
    expected = np.full(n, 77, "float32")
    expected[5 : n - 5] = a[5 : n - 5] + 1
    np.testing.assert_allclose(b, expected, rtol=1e-6)


def test_allocate_inside_an_unrolled_loop_reuses_one_stack_slot():
    """Eight unrolled copies of ``allocate tmp[16]`` share one alloca (no 8x stack)."""
    rng = np.random.default_rng(32)
    A, B = Buffer("A", (8, 16), "float32"), Buffer("B", (8, 16), "float32")
    tmp = Buffer("tmp", (16,), "float32", scope=MemoryScope.LOCAL)
    i, j, m = Var("i"), Var("j"), Var("m")
    body = Allocate(
        tmp,
        seq(
            loop(j, 16, BufferStore(tmp, BufferLoad(A, (i * 16 + j,)) * 2.0, (j,)), V),
            loop(m, 16, BufferStore(B, BufferLoad(tmp, (15 - m,)), (i * 16 + m,)), V),
        ),
    )
    module = build(PrimFunc("slots", (A, B), loop(i, 8, body, ForKind.UNROLLED)))
    assert module.get_ir(optimized=False).count("alloca [16 x float]") == 1
    a = random_array(rng, (8, 16), "float32")
    b = empty_like_buffer(B)
    module(a, b)
    np.testing.assert_allclose(b, 2 * a[:, ::-1], rtol=1e-6)
