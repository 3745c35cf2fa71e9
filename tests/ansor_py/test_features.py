"""Per-statement features (ansor_py.cost_model.features): names, hand-checked values,
both program forms agreeing, batching, caching, invalid states.

Values are checked on programs small enough to count by hand; the feature arrays hold
log2p-scaled float32 numbers, so expected values go through the same scaling.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ansor_py.cost_model.feature_extraction import get_per_store_features_from_states
from ansor_py.cost_model.feature_math import log2p
from ansor_py.cost_model.features import (
    DEFAULT_FEATURE_VEC_LEN,
    FeatureCache,
    features_from_primfunc,
    get_per_store_feature_names,
    named_features_from_primfunc,
)
from ansor_py.hand_schedules import schedule_conv2d_nhwc, schedule_gemm
from ansor_py.search_task import SearchTask
from codegen.target import as_target
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.lower.lower import lower
from ir.topi.workloads import conv2d_layer, gemm

NAMES = get_per_store_feature_names()
N, M, K = 16, 24, 8  # A [N, K] = 128 elements, B [K, M] = 192, C [N, M] = 384: all distinct


def scaled(x: float) -> float:
    return float(log2p(np.array([x], dtype=np.float64))[0])


def named(rows: np.ndarray, row: int = 0) -> dict[str, float]:
    return {name: float(rows[row, i]) for i, name in enumerate(NAMES)}


def buffer_slot(features: dict[str, float], unique_bytes: int, access: str = "") -> str:
    """The ``B<i>.`` prefix of the buffer touching ``unique_bytes`` distinct bytes (with
    access type ``access``, "kRead", "kWrite" or "kReadWrite", when given)."""
    for i in range(5):
        if features[f"B{i}.unique_bytes"] == pytest.approx(scaled(unique_bytes), rel=1e-6) and (
            not access or features[f"B{i}.acc_type.{access}"] == 1.0
        ):
            return f"B{i}."
    raise AssertionError(f"no buffer touches {unique_bytes} unique bytes: {features}")


@pytest.fixture(scope="module")
def matmul() -> ComputeDAG:
    return ComputeDAG(gemm(N, M, K))


@pytest.fixture(scope="module")
def matmul_task(matmul: ComputeDAG) -> SearchTask:
    return SearchTask(compute_dag=matmul, target="llvm")


# ------------------------------------------------------------------------------------------
# names


def test_feature_names_are_164_unique_in_tvm_order() -> None:
    assert len(NAMES) == DEFAULT_FEATURE_VEC_LEN == 164
    assert len(set(NAMES)) == 164
    assert NAMES[:3] == ["float_mad", "float_addsub", "float_mul"]
    assert NAMES[56] == "vthread_len"  # group 1 has 57 features
    assert NAMES[57] == "B0.acc_type.kRead"
    assert NAMES[57 + 18 * 5 - 1] == "B4.stride"
    assert "B0.unique_lines_d_reuse_ct" in NAMES
    assert NAMES[-17:-7] == [f"arith_intensity_curve_{i}" for i in range(10)]
    assert NAMES[-3:] == ["outer_prod", "num_loops", "auto_unroll_max_step"]
    assert len(get_per_store_feature_names(3)) == 57 + 18 * 3 + 17


def test_bad_max_n_bufs_is_refused() -> None:
    with pytest.raises(ValueError, match="max_n_bufs 0 must be a positive int"):
        get_per_store_feature_names(0)


# ------------------------------------------------------------------------------------------
# hand-checked values


def test_naive_matmul_counts_bytes_strides_and_reuse(matmul: ComputeDAG) -> None:
    rows = features_from_primfunc(lower(matmul, None, stop_after="schedule_ops"))
    assert rows.shape == (1, 164)  # C's init and update stores share one row
    f = named(rows)
    flops = N * M * K
    assert f["float_mad"] == pytest.approx(scaled(flops))
    assert f["float_addsub"] == f["float_mul"] == 0.0
    assert f["outer_prod"] == pytest.approx(scaled(flops))
    assert f["num_loops"] == pytest.approx(scaled(3))
    for kind in ("vec", "unroll", "parallel"):
        assert f[f"{kind}_num"] == 0.0
        assert f[f"{kind}_type.kPosNone"] == 1.0
        assert f[f"{kind}_type.kPosMixed"] == 0.0
    a, b, c = buffer_slot(f, N * K * 4), buffer_slot(f, K * M * 4), buffer_slot(f, N * M * 4)
    assert f[a + "acc_type.kRead"] == f[b + "acc_type.kRead"] == 1.0
    assert f[c + "acc_type.kReadWrite"] == 1.0
    for slot in (a, b, c):
        assert f[slot + "bytes"] == pytest.approx(scaled(flops * 4))
    # innermost loop k: A[i, k] moves by 1 element, B[k, j] by a row of M, C not at all
    assert f[a + "stride"] == pytest.approx(scaled(1))
    assert f[b + "stride"] == pytest.approx(scaled(M))
    assert f[c + "stride"] == 0.0
    # B moves a whole line per k step: one line per access; A a line per 16 elements
    assert f[b + "lines"] == pytest.approx(scaled(flops))
    assert f[a + "lines"] == pytest.approx(scaled(flops * 4 / 64))
    # reuse: A is not read by loop j (reused M times, once per k loop of K iterations);
    # B is not read by i (reused N times every M*K iterations); C not by k
    assert f[a + "reuse_type.kLoopMultipleRead"] == 1.0
    assert f[a + "reuse_ct"] == pytest.approx(scaled(M))
    assert f[a + "reuse_dis_iter"] == pytest.approx(scaled(K))
    assert f[b + "reuse_ct"] == pytest.approx(scaled(N))
    assert f[b + "reuse_dis_iter"] == pytest.approx(scaled(M * K))
    assert f[c + "reuse_ct"] == pytest.approx(scaled(K))
    # no allocation: every buffer is a parameter
    assert f["alloc_size"] == 0.0


def test_arithmetic_intensity_curve_is_monotone_and_ends_at_total_intensity(matmul: ComputeDAG) -> None:
    f = named(features_from_primfunc(lower(matmul, None, stop_after="schedule_ops")))
    curve = np.array([f[f"arith_intensity_curve_{i}"] for i in range(10)])
    assert np.all(np.diff(curve) > 0)
    # at the outermost level: 2*N*M*K flops over all three matrices' bytes
    total = 2 * N * M * K / ((N * K + K * M + N * M) * 4)
    assert curve[-1] == pytest.approx(scaled(total), rel=1e-5)


def test_annotations_set_their_one_hots_lengths_and_unroll_pragma(matmul: ComputeDAG) -> None:
    s = get_init_state(matmul)
    i, j, k = s["C"].iters
    j0, j1 = s.split("C", j, [8])
    s.reorder("C", [i, j0, k, j1])
    s.parallel("C", i)
    s.vectorize("C", j1)
    s.unroll("C", k)
    s.pragma("C", i, "auto_unroll_max_step$64")
    f = named(features_from_primfunc(lower(matmul, s, stop_after="schedule_ops")))
    assert f["vec_num"] == pytest.approx(scaled(1))
    assert f["vec_len"] == f["vec_prod"] == pytest.approx(scaled(8))
    assert f["vec_type.kPosMixed"] == 1.0 and f["vec_type.kPosNone"] == 0.0
    assert f["parallel_len"] == pytest.approx(scaled(N))
    assert f["parallel_type.kPosMixed"] == 1.0
    assert f["unroll_len"] == pytest.approx(scaled(K))
    assert f["auto_unroll_max_step"] == pytest.approx(scaled(64))
    assert f["is_gpu"] == 0.0
    # j.1 is now innermost: C and B move by one element, A not at all
    b = buffer_slot(f, K * M * 4)
    assert f[b + "stride"] == pytest.approx(scaled(1))


def test_cache_write_gives_an_allocation_row(matmul: ComputeDAG) -> None:
    s = get_init_state(matmul)
    s.cache_write("C", "local")
    i, j = s["C"].iters
    i0, i1 = s.split("C", i, [4])
    j0, j1 = s.split("C", j, [8])
    s.reorder("C", [i0, j0, i1, j1])
    s.compute_at("C.local", "C", j0)
    rows = features_from_primfunc(lower(matmul, s, stop_after="schedule_ops"))
    assert rows.shape == (2, 164)  # C.local (allocated, then stored) and C
    local, out = named(rows, 0), named(rows, 1)
    assert local["alloc_size"] == pytest.approx(scaled(4 * 8 * 4))
    assert local["alloc_outer_prod"] == pytest.approx(scaled((N // 4) * (M // 8)))
    assert local["alloc_prod"] == pytest.approx(scaled(4 * 8 * (N // 4) * (M // 8)))
    assert local["alloc_inner_prod"] == pytest.approx(scaled(4 * 8 * K))
    assert out["alloc_size"] == 0.0
    # C = C.local[i.1, j.1]: the compact tile does not move with j.0, so it is reused
    # (M / 8 times, every 4 * 8 iterations)
    slot = buffer_slot(out, 4 * 8 * 4)
    assert out[slot + "acc_type.kRead"] == 1.0
    assert out[slot + "reuse_type.kLoopMultipleRead"] == 1.0
    assert out[slot + "reuse_ct"] == pytest.approx(scaled(M // 8))
    assert out[slot + "reuse_dis_iter"] == pytest.approx(scaled(4 * 8))


def test_two_stores_reading_a_buffer_under_one_loop_are_serial_reuse() -> None:
    A = te.placeholder((6, 10), "float32", name="A")
    B = te.compute((6, 10), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((6, 10), lambda i, j: B[i, j] + A[i, j], name="C")
    dag = ComputeDAG([A, C])
    s = get_init_state(dag)
    s.compute_at("B", "C", s["C"].iters[0])
    rows = features_from_primfunc(lower(dag, s, stop_after="schedule_ops"))
    c = named(rows, 1)
    # under loop i, B's store and then C's store read A[i, *]: the second is serial reuse
    slot = buffer_slot(c, 6 * 10 * 4, "kRead")
    assert c[slot + "reuse_type.kSerialMultipleReadWrite"] == 1.0
    assert c[slot + "reuse_ct"] == pytest.approx(scaled(1))
    # for B's own store, A moves with both loops around it: no reuse at all
    b = named(rows, 0)
    assert b[buffer_slot(b, 6 * 10 * 4, "kRead") + "reuse_type.kNoReuse"] == 1.0


def test_other_operations_are_counted_by_kind() -> None:
    A = te.placeholder((6, 5), "float32", name="A")
    X = te.placeholder((6, 5), "int32", name="X")
    B = te.compute(
        (6, 5),
        lambda i, j: te.if_then_else(A[i, j] > 0.0, te.exp(A[i, j]) / 2.0, te.max(A[i, j], -1.0)),
        name="B",
    )
    Y = te.compute((6, 5), lambda i, j: X[i, j] * 3 + X[i, j] // 2, name="Y")
    dag = ComputeDAG([A, X, B, Y])
    rows = features_from_primfunc(lower(dag, None, stop_after="schedule_ops"))
    b, y = named(rows, 0), named(rows, 1)
    n = 6 * 5
    assert b["float_cmp"] == pytest.approx(scaled(2 * n))  # > and max
    assert b["float_mathfunc"] == pytest.approx(scaled(n))
    assert b["float_divmod"] == pytest.approx(scaled(n))
    assert b["select_op"] == pytest.approx(scaled(n))
    assert b["int_addsub"] == b["int_mul"] == 0.0  # indices i*5 + j are counted per dimension
    assert y["int_mul"] == pytest.approx(scaled(n))
    assert y["int_addsub"] == pytest.approx(scaled(n))
    assert y["int_divmod"] == pytest.approx(scaled(n))
    assert y["float_mad"] == 0.0
    # float ops only in the arithmetic-intensity curve: none for the integer stage
    assert all(y[f"arith_intensity_curve_{i}"] == 0.0 for i in range(10))


def test_named_features_map_each_name_to_a_column(matmul: ComputeDAG) -> None:
    table = named_features_from_primfunc(lower(matmul, None))
    assert list(table) == NAMES
    assert table["float_mad"].shape == (1,)
    assert float(table["float_mad"][0]) == pytest.approx(scaled(N * M * K))


# ------------------------------------------------------------------------------------------
# the two program forms, batching, caching


def _tiled_matmul(dag: ComputeDAG, ti: int, tj: int, tk: int, vectorize: bool):
    s = get_init_state(dag)
    s.cache_write("C", "local")
    i, j, k = s["C.local"].iters
    i0, i1 = s.split("C.local", i, [ti])
    j0, j1 = s.split("C.local", j, [tj])
    k0, k1 = s.split("C.local", k, [tk])
    s.reorder("C.local", [i0, j0, k0, i1, k1, j1])
    if vectorize:
        s.vectorize("C.local", j1)
    ci, cj = s["C"].iters
    c0, c1 = s.split("C", ci, [ti])
    d0, d1 = s.split("C", cj, [tj])
    s.reorder("C", [c0, d0, c1, d1])
    s.compute_at("C.local", "C", d0)
    fused = s.fuse("C", [c0, d0])
    s.parallel("C", fused)
    return s


def schedules(dag: ComputeDAG) -> list:
    out = [get_init_state(dag)]
    for ti, tj, tk, vec in ((2, 8, 4, True), (4, 4, 2, False), (8, 24, 8, True), (16, 3, 1, False)):
        out.append(_tiled_matmul(dag, ti, tj, tk, vec))
    out.append(schedule_gemm(dag, as_target("llvm")))
    return out


def test_lowered_primfunc_and_loop_nest_give_the_same_rows(matmul: ComputeDAG) -> None:
    conv = ComputeDAG(conv2d_layer(1, 8, 8, 8, 16, 3, 1, 1))
    cases = [(matmul, s) for s in schedules(matmul)]
    cases.append((conv, schedule_conv2d_nhwc(conv, as_target("llvm"))))
    for dag, s in cases:
        flat = features_from_primfunc(lower(dag, s))  # one flat index, LetStmt-hoisted bases
        nested = features_from_primfunc(lower(dag, s, stop_after="schedule_ops"))  # one index per dimension
        np.testing.assert_allclose(flat, nested, rtol=1e-6, atol=1e-6, err_msg=str(s))


def test_a_batch_gives_each_state_its_own_rows(matmul: ComputeDAG, matmul_task: SearchTask) -> None:
    states = schedules(matmul)
    batch = get_per_store_features_from_states(states, matmul_task)
    assert len(batch) == len(states)
    for s, rows in zip(states, batch, strict=True):
        alone = get_per_store_features_from_states([s], matmul_task)[0]
        np.testing.assert_array_equal(rows, alone)
        assert rows.dtype == np.float32 and rows.shape[1] == 164
    # different schedules, different features
    assert not np.array_equal(batch[1], batch[2])


def test_feature_cache_returns_the_same_rows_and_evicts_oldest(
    matmul: ComputeDAG, matmul_task: SearchTask
) -> None:
    states = schedules(matmul)
    cache = FeatureCache(max_entries=4)
    first = get_per_store_features_from_states(states[:3], matmul_task, cache=cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 3, 3)
    again = get_per_store_features_from_states(states[:3], matmul_task, cache=cache)
    assert cache.hits == 3
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    get_per_store_features_from_states(states[3:], matmul_task, cache=cache)
    assert len(cache) == 4
    with pytest.raises(ValueError, match="max_entries 0 must be >= 1"):
        FeatureCache(0)


# ------------------------------------------------------------------------------------------
# invalid states


def test_states_that_cannot_be_lowered_get_empty_features(
    matmul: ComputeDAG, matmul_task: SearchTask
) -> None:
    sketch = get_init_state(matmul)
    i, _, _ = sketch["C"].iters
    sketch.split("C", i, [None])  # a sketch: the length is still unknown
    other = get_init_state(ComputeDAG(gemm(8, 8, 8)))  # a state of another DAG
    good = get_init_state(matmul)
    rows = get_per_store_features_from_states([sketch, other, good], matmul_task)
    assert rows[0].shape == (0, 164)
    assert rows[1].shape == (0, 164)
    assert rows[2].shape == (1, 164)


def test_gpu_states_over_the_thread_limit_are_invalid() -> None:
    dag = ComputeDAG(gemm(64, 64, 8))
    task = SearchTask(compute_dag=dag, target="cuda -arch=sm_80")
    limit = task.hardware_params.max_threads_per_block

    def bound(threads: int):
        s = get_init_state(dag)
        i, j, _ = s["C"].iters
        fused = s.fuse("C", [i, j])
        outer, inner = s.split("C", fused, [threads])
        s.bind("C", outer, "blockIdx.x")
        s.bind("C", inner, "threadIdx.x")
        return s

    ok, too_many = get_per_store_features_from_states([bound(256), bound(2 * limit)], task)
    assert too_many.shape == (0, 164)
    f = named(ok)
    assert f["is_gpu"] == 1.0
    assert f["threadIdx_x_len"] == pytest.approx(scaled(256))
    assert f["blockIdx_x_len"] == pytest.approx(scaled(64 * 64 // 256))


def test_cache_keys_tell_apart_states_printed_alike(matmul: ComputeDAG, matmul_task: SearchTask) -> None:
    def with_align(offset: int | None):
        s = get_init_state(matmul)
        s.cache_write("C", "local")
        if offset is not None:
            s.storage_align("C.local", s["C.local"].iters[0], 32, offset)
        return s

    plain, aligned = with_align(None), with_align(1)
    cache = FeatureCache()
    rows = get_per_store_features_from_states([plain, aligned], matmul_task, cache=cache)
    assert len(cache) == 2  # storage_align does not show in the loop tree, but is in the key
    a = named(rows[0], 0)
    b = named(rows[1], 0)
    # C.local [N, M] with its rows padded to a stride of 33 floats
    assert a["alloc_size"] == pytest.approx(scaled(N * M * 4))
    assert b["alloc_size"] == pytest.approx(scaled((33 * (N - 1) + M) * 4))


# ------------------------------------------------------------------------------------------
# programs without loops or dimensions


def test_scalar_programs_have_features_without_warnings() -> None:
    A = te.placeholder((10,), "float32", name="A")
    k = te.reduce_axis((0, 10), name="k")
    total = te.compute((), lambda: te.sum(A[k], axis=k), name="total")
    S = te.placeholder((), "float32", name="S")
    doubled = te.compute((), lambda: S[()] * 2.0, name="doubled")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reduced = named(features_from_primfunc(lower(ComputeDAG([A, total]), stop_after="schedule_ops")))
        copied = named(features_from_primfunc(lower(ComputeDAG([S, doubled]), stop_after="schedule_ops")))
    assert reduced["float_addsub"] == pytest.approx(scaled(10))
    assert reduced["arith_intensity_curve_9"] == pytest.approx(scaled(10 / (10 * 4 + 4)))
    assert copied["float_mul"] == pytest.approx(scaled(1))
    assert copied["num_loops"] == 0.0 and copied["outer_prod"] == pytest.approx(scaled(1))
    assert all(copied[f"arith_intensity_curve_{i}"] == 0.0 for i in range(10))
