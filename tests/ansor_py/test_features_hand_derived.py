"""Every feature kind, on programs small enough to count by hand (issue 11).

The 164 feature columns are 92 kinds (the five buffer groups ``B0.`` .. ``B4.`` share the
18 access kinds). Each case below lowers a small loop nest (``lower(..., stop_after=
"schedule_ops")``, one index per buffer dimension, as TVM analyses on the CPU) and states
the raw value of EVERY column of its row, derived by hand in the comments from Ansor's
definitions (paper section 5.2; TVM ``auto_scheduler/feature.cc``, functions
``ExtractComputationFeature``, ``ExtractBufferAccessFeature``, ``ComputeStride``,
``ComputeRegion``, ``ComputeReuse``, ``ExtractArithmeticIntensityFeature``). A column a
case does not name must be 0; ``test_every_feature_kind_is_derived_by_hand`` checks that
every kind is named (derived) by some case.

Symbols: ``P`` the product of the loop extents around the store (``outer_prod``), ``e``
the bytes of an element, ``L`` = 64 the cache line. Per buffer:

* ``bytes = P * e``; ``unique_bytes``: elements of the region touched over all loops * e.
* ``stride``: going out from the innermost loop, the first loop whose variable moves the
  index gives the stride (in elements of the flat index); the feature is that stride when
  the loop is the innermost one, else 0.
* ``lines = max(1, P / (product of the loops skipped) * min(1, stride * e / L))``.
* ``unique_lines = max(1, unique_bytes / min(run * e, L))``, where ``run`` is the
  contiguous run of the touched region: its innermost dimension, times the next ones while
  the inner ones are whole (this repo's reading of TVM's ``n_continuous``, on the
  buffer's own region; see ``feature_math``).
* reuse (``ComputeReuse``): going out from the innermost loop, the first loop that the
  indices do not read gives LoopMultipleRead with ``reuse_ct`` = its extent,
  ``reuse_dis_iter`` = the product of the loops inside it and ``reuse_dis_bytes`` = the
  bytes that the stores so far touch in one iteration of it (for the innermost loop: the
  element bytes of their accesses); the first loop under which earlier stores touched the
  buffer too gives SerialMultipleReadWrite; else NoReuse with 0, 0, 0.
* ``X_d_reuse_ct = X / reuse_ct``, or ``X * 2`` when ``reuse_ct`` is 0 (no reuse).
* ``arith_intensity_curve_n``: with ``ops_l`` = float ops under loop level l and ``mem_l``
  the bytes the store touches under it (innermost level first), the curve
  ``ops_l / mem_l`` against ``ops_l``, linearly interpolated at ``ops_outer * (n+1) / 10``.

The feature array holds ``log2p(x) = sign(x) * log2(|x| + 1)`` of each value (one-hots are
0 or 1, which log2p leaves alone), so the expectations go through the same scaling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from ansor_py.cost_model.feature_math import POSITION_CLASSES, log2p
from ansor_py.cost_model.features import features_from_primfunc, get_per_store_feature_names
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.lower.lower import lower
from ir.topi.workloads import gemm

NAMES = get_per_store_feature_names()
N_BUFS = 5
ACCESS_KINDS = [name[3:] for name in NAMES if name.startswith("B0.")]
ROW_KINDS = [name for name in NAMES if not re.match(r"B\d\.", name)]
L = 64  # cache line bytes, features_from_primfunc's default

# every CPU program: no GPU thread axes, whose lengths TVM starts at 1 (is_gpu 0)
CPU_THREADS = {
    "blockIdx_x_len": 1,
    "blockIdx_y_len": 1,
    "blockIdx_z_len": 1,
    "threadIdx_x_len": 1,
    "threadIdx_y_len": 1,
    "threadIdx_z_len": 1,
    "vthread_len": 1,
}
# no vectorized, unrolled or parallel loop: count, product and length 0, position "none"
NO_ANNOTATIONS = {f"{kind}_type.kPosNone": 1 for kind in ("vec", "unroll", "parallel")}


@dataclass
class Row:
    """The raw (unscaled) values of one feature row; names not given are 0.

    ``buffers``: the access kinds of each buffer; ``ordered``: they fill B0, B1, ... in
    this order (TVM sorts buffers by (lines, bytes) descending); when two buffers tie on
    both, the order between them is not specified, and each is looked for in any slot."""

    scalars: Mapping[str, float]
    buffers: Sequence[Mapping[str, float]] = field(default_factory=list)
    ordered: bool = True


def scaled(x: float) -> float:
    return float(log2p(np.array([x], dtype=np.float64))[0])


def unscaled(y: float) -> float:
    return float(np.sign(y) * (2.0 ** abs(y) - 1.0))


def close(got: float, raw: float) -> bool:
    return got == pytest.approx(scaled(raw), rel=1e-5, abs=1e-6)


def check_row(rows: np.ndarray, index: int, expected: Row) -> None:
    """Every column of row ``index`` against ``expected``; the message names each wrong
    column with the raw value expected and the raw value found."""
    values = dict(zip(NAMES, (float(v) for v in rows[index]), strict=True))
    wrong = []
    for kind in ROW_KINDS:
        raw = expected.scalars.get(kind, 0.0)
        if not close(values[kind], raw):
            wrong.append(f"{kind}: expected {raw}, got {unscaled(values[kind]):.6g}")
    unknown = set(expected.scalars) - set(ROW_KINDS)
    assert not unknown, f"not row feature kinds: {sorted(unknown)}"

    def slot_mismatches(slot: int, buffer: Mapping[str, float]) -> list[str]:
        out = []
        for kind in ACCESS_KINDS:
            raw = buffer.get(kind, 0.0)
            got = values[f"B{slot}.{kind}"]
            if not close(got, raw):
                out.append(f"B{slot}.{kind}: expected {raw}, got {unscaled(got):.6g}")
        return out

    free = list(range(N_BUFS))
    for position, buffer in enumerate(expected.buffers):
        assert not set(buffer) - set(ACCESS_KINDS), f"not access kinds: {set(buffer) - set(ACCESS_KINDS)}"
        if expected.ordered:
            slot = position
            wrong += slot_mismatches(slot, buffer)
        else:
            matching = [slot for slot in free if not slot_mismatches(slot, buffer)]
            if not matching:
                nearest = min(free, key=lambda slot: len(slot_mismatches(slot, buffer)))
                wrong.append(f"no slot holds buffer {position}; nearest: {slot_mismatches(nearest, buffer)}")
                continue
            slot = matching[0]
        free.remove(slot)
    for slot in free:  # the slots no buffer fills are padding: all 0
        wrong += slot_mismatches(slot, {})
    assert not wrong, "\n".join(wrong)


def nest(dag: ComputeDAG, state=None) -> np.ndarray:
    return features_from_primfunc(lower(dag, state, stop_after="schedule_ops"), cache_line_bytes=L)


def curve(levels: Sequence[tuple[float, float]]) -> dict[str, float]:
    """The arithmetic-intensity samples of (ops, mem bytes) per loop level, innermost
    first: TVM's piecewise-linear interpolation of ops/mem at total * (n+1) / 10."""
    ops = [o for o, _ in levels]
    intensity = [o / m for o, m in levels]
    out = {}
    for n in range(10):
        target = ops[-1] * (n + 1) / 10
        point = next(p for p, o in enumerate(ops) if o >= target - 1e-4)
        if point == 0:
            value = intensity[0]
        else:
            slope = (intensity[point] - intensity[point - 1]) / (ops[point] - ops[point - 1])
            value = intensity[point - 1] + slope * (target - ops[point - 1])
        out[f"arith_intensity_curve_{n}"] = value
    return out


# ------------------------------------------------------------------------------------------
# Case 1: the naive matmul C[16, 24] = A[16, 8] @ B[8, 24] (loops i 16, j 24, k 8)
#
#   for i: for j: C[i, j] = 0;  for k: C[i, j] = C[i, j] + A[i, k] * B[k, j]
#
# One row (C); op counts add over its two stores, the rest is the update's. P = 3072.
# Every buffer is read by two of the three loops: LoopMultipleRead reuse for each, at
# three different levels (B at i, A at j, C at k, the innermost).

MN, MM, MK = 16, 24, 8
MP = MN * MM * MK


def _matmul_row() -> Row:
    # bytes touched per iteration of each loop level by the update (for the curve and the
    # reuse distances): level k (i, j fixed): A[i, 0:8] 32 B, B[0:8, j] 32 B, C[i, j] 4 B;
    # level j: A[i, 0:8] 32, B[0:8, 0:24] 768, C[i, 0:24] 96; level i: 512 + 768 + 1536
    mem_k, mem_j, mem_i = 32 + 32 + 4, 32 + 768 + 96, 512 + 768 + 1536
    flops = 2  # one fused multiply-add per update: 2 float ops
    b = {  # B[k, j]: k moves it by a row (24 elements = 96 B, over a line)
        "acc_type.kRead": 1,
        "bytes": MP * 4,
        "unique_bytes": MK * MM * 4,  # 768
        "lines": MP * 1,  # min(1, 96 / 64) = 1 line per access
        "unique_lines": 768 / 64,  # whole rows: run 192 elements = 768 B, capped at a line
        "reuse_type.kLoopMultipleRead": 1,  # i does not read B
        "reuse_dis_iter": MM * MK,  # the loops inside i: j and k
        # one iteration of i: the init store's C[i, 0:24] (96 B) and the update's 896 B
        "reuse_dis_bytes": 96 + mem_j,
        "reuse_ct": MN,
        "bytes_d_reuse_ct": MP * 4 / MN,
        "unique_bytes_d_reuse_ct": 768 / MN,
        "lines_d_reuse_ct": MP / MN,
        "unique_lines_d_reuse_ct": 12 / MN,
        "stride": MM,
    }
    a = {  # A[i, k]: k moves it by one element, 4 B: a line per 16 iterations
        "acc_type.kRead": 1,
        "bytes": MP * 4,
        "unique_bytes": MN * MK * 4,  # 512
        "lines": MP * 4 / 64,  # 192
        "unique_lines": 512 / 64,  # run: the whole buffer, 512 B, capped at a line
        "reuse_type.kLoopMultipleRead": 1,  # j does not read A
        "reuse_dis_iter": MK,  # loop k inside j
        "reuse_dis_bytes": mem_k,  # one iteration of j: k's 68 B
        "reuse_ct": MM,
        "bytes_d_reuse_ct": MP * 4 / MM,
        "unique_bytes_d_reuse_ct": 512 / MM,
        "lines_d_reuse_ct": 192 / MM,
        "unique_lines_d_reuse_ct": 8 / MM,
        "stride": 1,
    }
    c = {  # C[i, j]: k does not move it, j by one element; stride feature 0 (j is not innermost)
        "acc_type.kReadWrite": 1,
        "bytes": MP * 4,
        "unique_bytes": MN * MM * 4,  # 1536
        "lines": MP / MK * 4 / 64,  # k skipped: 384 * 1/16 = 24
        "unique_lines": 1536 / 64,
        "reuse_type.kLoopMultipleRead": 1,  # k, the innermost loop, does not read C
        "reuse_dis_iter": 1,
        "reuse_dis_bytes": 4 + 4 + 4,  # innermost: one element of C, A and B
        "reuse_ct": MK,
        "bytes_d_reuse_ct": MP * 4 / MK,
        "unique_bytes_d_reuse_ct": 1536 / MK,
        "lines_d_reuse_ct": 24 / MK,
        "unique_lines_d_reuse_ct": 24 / MK,
    }
    scalars = {
        "float_mad": MP,  # the init store adds no operation
        **NO_ANNOTATIONS,
        **CPU_THREADS,
        **curve([(flops * MK, mem_k), (flops * MK * MM, mem_j), (flops * MP, mem_i)]),
        "outer_prod": MP,
        "num_loops": 3,
    }
    return Row(scalars, [b, a, c])  # lines 3072 > 192 > 24


def test_naive_matmul_every_feature() -> None:
    rows = nest(ComputeDAG(gemm(MN, MM, MK)))
    assert rows.shape == (1, 164)
    check_row(rows, 0, _matmul_row())


# ------------------------------------------------------------------------------------------
# Case 2: B[4, 8] = A[j, i] * 2 with A [8, 32]: a transposed read of a corner of A
#
#   for i in 4: for j in 8: B[i, j] = A[j, i] * 2.0          P = 32, no reuse
#
# A's innermost loop j moves it by a row (32 elements = 128 B, over a line); its region
# rows 0:8 x columns 0:4 has a contiguous run of 4 elements (16 B, under a line). B's
# region is all of B: a run of 32 elements (128 B, over a line: capped at 64 B).


def _transposed_row() -> Row:
    a = {
        "acc_type.kRead": 1,
        "bytes": 32 * 4,
        "unique_bytes": 8 * 4 * 4,  # 128
        "lines": 32 * 1,  # min(1, 128 / 64) = 1: a line per access
        "unique_lines": 128 / 16,  # 8 rows, each a run of 16 B
        "reuse_type.kNoReuse": 1,  # both loops read A
        # no reuse: the four "divided by the reuse count" features are twice the value
        "bytes_d_reuse_ct": 2 * 128,
        "unique_bytes_d_reuse_ct": 2 * 128,
        "lines_d_reuse_ct": 2 * 32,
        "unique_lines_d_reuse_ct": 2 * 8,
        "stride": 32,
    }
    b = {
        "acc_type.kWrite": 1,
        "bytes": 32 * 4,
        "unique_bytes": 32 * 4,
        "lines": 32 * 4 / 64,  # 2
        "unique_lines": 128 / 64,  # 2: the run of 128 B is capped at a line
        "reuse_type.kNoReuse": 1,
        "bytes_d_reuse_ct": 2 * 128,
        "unique_bytes_d_reuse_ct": 2 * 128,
        "lines_d_reuse_ct": 2 * 2,
        "unique_lines_d_reuse_ct": 2 * 2,
        "stride": 1,
    }
    # intensity: 1 multiply per 8 bytes (one element of A and of B) at every level
    scalars = {
        "float_mul": 32,
        **NO_ANNOTATIONS,
        **CPU_THREADS,
        **curve([(8, 8 * 8), (32, 32 * 8)]),
        "outer_prod": 32,
        "num_loops": 2,
    }
    return Row(scalars, [a, b])  # lines 32 > 2


def test_unique_lines_below_and_above_a_cache_line_and_no_reuse_doubles() -> None:
    A = te.placeholder((8, 32), "float32", name="A")
    B = te.compute((4, 8), lambda i, j: A[j, i] * 2.0, name="B")
    check_row(nest(ComputeDAG([A, B])), 0, _transposed_row())


# ------------------------------------------------------------------------------------------
# Case 3: B[8] = select(A[i] > 0, exp(A[i]) / 2, A[i] - 1): lines floored at 1
#
#   for i in 8: B[i] = ...          P = 8
#
# 8 elements with stride 1 cover 8 * 4 / 64 = 0.5 lines: at least one line is counted.


def _short_vector_row() -> Row:
    def buffer(access: str) -> dict[str, float]:
        return {
            f"acc_type.{access}": 1,
            "bytes": 32,
            "unique_bytes": 32,
            "lines": 1,  # max(1, 8 * min(1, 4 / 64)) = max(1, 0.5)
            "unique_lines": 1,  # 32 B / min(32 B, 64 B)
            "reuse_type.kNoReuse": 1,
            "bytes_d_reuse_ct": 64,
            "unique_bytes_d_reuse_ct": 64,
            "lines_d_reuse_ct": 2,
            "unique_lines_d_reuse_ct": 2,
            "stride": 1,
        }

    # per element: a compare, an exp, a division, a subtraction (4 float ops) and a select
    scalars = {
        "float_addsub": 8,
        "float_divmod": 8,
        "float_cmp": 8,
        "float_mathfunc": 8,
        "float_otherfunc": 0,  # every intrinsic of ir.expr is a pure math function
        "select_op": 8,
        **NO_ANNOTATIONS,
        **CPU_THREADS,
        **curve([(8 * 4, 8 * 8)]),  # one level: 32 ops over 64 B
        "outer_prod": 8,
        "num_loops": 1,
    }
    # A and B tie on (lines, bytes): their order is not specified
    return Row(scalars, [buffer("kWrite"), buffer("kRead")], ordered=False)


def test_lines_are_at_least_one() -> None:
    A = te.placeholder((8,), "float32", name="A")
    B = te.compute((8,), lambda i: te.if_then_else(A[i] > 0.0, te.exp(A[i]) / 2.0, A[i] - 1.0), name="B")
    check_row(nest(ComputeDAG([A, B])), 0, _short_vector_row())


# ------------------------------------------------------------------------------------------
# Case 4: integer operations, Y[6, 5] from X[6, 5] (int32)
#
#   Y[i, j] = select(X > 0 && !(X > 9), abs(X) * 3 + X // 2, max(X, 2))    (X = X[i, j])
#
# Per element: compares > > and max (3 int_cmp), && and ! (2 bool_op), abs (int_mathfunc),
# * (int_mul), + (int_addsub), // (int_divmod), select. TVM's MathOpCounter detects no
# multiply-add (this repo fuses float ones only): int_mad stays 0 beside abs(X) * 3 + ...
# No float op: the intensity curve is 0.


def _integer_row() -> Row:
    n = 30

    def buffer(access: str) -> dict[str, float]:
        return {
            f"acc_type.{access}": 1,
            "bytes": n * 4,
            "unique_bytes": n * 4,
            "lines": n * 4 / 64,  # 1.875
            "unique_lines": 120 / 64,  # run 30 elements = 120 B, capped at a line
            "reuse_type.kNoReuse": 1,
            "bytes_d_reuse_ct": 2 * 120,
            "unique_bytes_d_reuse_ct": 2 * 120,
            "lines_d_reuse_ct": 2 * 1.875,
            "unique_lines_d_reuse_ct": 2 * 1.875,
            "stride": 1,
        }

    scalars = {
        "int_mad": 0,
        "int_addsub": n,
        "int_mul": n,
        "int_divmod": n,
        "int_cmp": 3 * n,
        "int_mathfunc": n,
        "int_otherfunc": 0,  # every intrinsic is a pure math function
        "bool_op": 2 * n,
        "select_op": n,
        **NO_ANNOTATIONS,
        **CPU_THREADS,
        "outer_prod": n,
        "num_loops": 2,
    }
    return Row(scalars, [buffer("kWrite"), buffer("kRead")], ordered=False)


def test_integer_compare_bool_and_math_ops() -> None:
    X = te.placeholder((6, 5), "int32", name="X")

    def value(i, j):
        x = X[i, j]
        return te.if_then_else(te.all(x > 0, ~(x > 9)), te.abs(x) * 3 + x // 2, te.max(x, 2))

    Y = te.compute((6, 5), value, name="Y")
    check_row(nest(ComputeDAG([X, Y])), 0, _integer_row())


# ------------------------------------------------------------------------------------------
# Case 5: vectorize, unroll, parallel, auto_unroll on B[6, 20] = A[i, j] + 1
#
#   parallel i.0 in 3 (auto_unroll_max_step 16): unrolled i.1 in 2: unrolled j.0 in 5:
#     vectorized j.1 in 4: B[i.0*2 + i.1, j.0*4 + j.1] = A[i.0*2 + i.1, j.0*4 + j.1] + 1
#
# Per annotation: count, product of the extents, extent of the innermost such loop. The
# position one-hot is "mixed" when the store is under such a loop: TVM never fills the
# inner/middle/outer spatial/reduce classes (its GetAnnotationPosEncoding is commented
# out), so they are 0. A's indices cost 1 add and 1 multiply (by 2 or 4) per dimension.


def _annotated_row() -> Row:
    p = 120

    def buffer(access: str) -> dict[str, float]:
        return {
            f"acc_type.{access}": 1,
            "bytes": p * 4,
            "unique_bytes": p * 4,
            "lines": p * 4 / 64,  # 7.5
            "unique_lines": 480 / 64,
            "reuse_type.kNoReuse": 1,
            "bytes_d_reuse_ct": 2 * 480,
            "unique_bytes_d_reuse_ct": 2 * 480,
            "lines_d_reuse_ct": 2 * 7.5,
            "unique_lines_d_reuse_ct": 2 * 7.5,
            "stride": 1,
        }

    positions = {
        f"{kind}_type.{cls}": 0 for kind in ("vec", "unroll", "parallel") for cls in POSITION_CLASSES[:-1]
    }
    scalars = {
        "float_addsub": p,
        "int_addsub": 2 * p,
        "int_mul": 2 * p,
        "vec_num": 1,
        "vec_prod": 4,
        "vec_len": 4,
        "unroll_num": 2,
        "unroll_prod": 2 * 5,
        "unroll_len": 5,  # j.0, the innermost unrolled loop
        "parallel_num": 1,
        "parallel_prod": 3,
        "parallel_len": 3,
        **positions,
        "vec_type.kPosMixed": 1,
        "unroll_type.kPosMixed": 1,
        "parallel_type.kPosMixed": 1,
        **CPU_THREADS,
        # one add per 8 bytes at every level
        **curve([(4, 32), (20, 160), (40, 320), (120, 960)]),
        "outer_prod": p,
        "num_loops": 4,
        "auto_unroll_max_step": 16,
    }
    return Row(scalars, [buffer("kWrite"), buffer("kRead")], ordered=False)


def test_annotation_counts_products_lengths_and_positions() -> None:
    A = te.placeholder((6, 20), "float32", name="A")
    B = te.compute((6, 20), lambda i, j: A[i, j] + 1.0, name="B")
    dag = ComputeDAG([A, B])
    s = get_init_state(dag)
    i, j = s["B"].iters
    i0, i1 = s.split("B", i, [2])
    j0, j1 = s.split("B", j, [4])
    s.parallel("B", i0)
    s.unroll("B", i1)
    s.unroll("B", j0)
    s.vectorize("B", j1)
    s.pragma("B", i0, "auto_unroll_max_step$16")
    check_row(nest(dag, s), 0, _annotated_row())


# ------------------------------------------------------------------------------------------
# Case 6: GPU thread axes, B[4, 6, 8] = A[i, j, k] + 1
#
#   blockIdx.y i.0 in 2: blockIdx.z j.0 in 3: vthread k.0 in 2:
#     threadIdx.y i.1 in 2: threadIdx.z j.1 in 2: threadIdx.x k.1 in 4: B[...] = A[...] + 1
#
# Each bound axis's length; blockIdx.x is not bound: 1. A bound axis is a loop for P and
# the access features (TVM makes it a parallel For) but not a parallel annotation.


def _gpu_row() -> Row:
    p = 192

    def buffer(access: str) -> dict[str, float]:
        return {
            f"acc_type.{access}": 1,
            "bytes": p * 4,
            "unique_bytes": p * 4,
            "lines": p * 4 / 64,  # 12
            "unique_lines": 768 / 64,
            "reuse_type.kNoReuse": 1,
            "bytes_d_reuse_ct": 2 * 768,
            "unique_bytes_d_reuse_ct": 2 * 768,
            "lines_d_reuse_ct": 2 * 12,
            "unique_lines_d_reuse_ct": 2 * 12,
            "stride": 1,
        }

    levels = [(4, 32), (8, 64), (16, 128), (32, 256), (96, 768), (192, 1536)]  # 1 add per 8 B
    scalars = {
        "float_addsub": p,
        "int_addsub": 3 * p,  # one add and one multiply per dimension of A's index
        "int_mul": 3 * p,
        **NO_ANNOTATIONS,
        "is_gpu": 1,
        "blockIdx_x_len": 1,
        "blockIdx_y_len": 2,
        "blockIdx_z_len": 3,
        "threadIdx_x_len": 4,
        "threadIdx_y_len": 2,
        "threadIdx_z_len": 2,
        "vthread_len": 2,
        **curve(levels),
        "outer_prod": p,
        "num_loops": 6,
    }
    return Row(scalars, [buffer("kWrite"), buffer("kRead")], ordered=False)


def test_gpu_thread_axis_lengths() -> None:
    A = te.placeholder((4, 6, 8), "float32", name="A")
    B = te.compute((4, 6, 8), lambda i, j, k: A[i, j, k] + 1.0, name="B")
    dag = ComputeDAG([A, B])
    s = get_init_state(dag)
    i, j, k = s["B"].iters
    i0, i1 = s.split("B", i, [2])
    j0, j1 = s.split("B", j, [2])
    k0, k1 = s.split("B", k, [4])
    s.reorder("B", [i0, j0, k0, i1, j1, k1])
    for it, tag in ((i0, "blockIdx.y"), (j0, "blockIdx.z"), (k0, "vthread")):
        s.bind("B", it, tag)
    for it, tag in ((i1, "threadIdx.y"), (j1, "threadIdx.z"), (k1, "threadIdx.x")):
        s.bind("B", it, tag)
    check_row(nest(dag, s), 0, _gpu_row())


# ------------------------------------------------------------------------------------------
# Case 7: serial reuse and an allocation: B = A * 2 computed at C's loop i, C = B + A
#
#   for i in 6:
#     allocate B[1, 10]
#     for j in 10: B[0, j] = A[i, j] * 2.0
#     for j in 10: C[i, j] = B[0, j] + A[i, j]
#
# B, computed at i, shrinks to the one row that an iteration of i needs. For C's store A
# is read by both of its loops, but B's store touched A under loop i too:
# SerialMultipleReadWrite at i, reuse_ct = 2 touches - 1 = 1, reuse_dis_iter = the fewest
# elements one touch covers under i (60) / 6 = 10, reuse_dis_bytes = all bytes touched
# under i (B's store: B 40 + A 240; C's: C 240 + B 40 + A 240; 800) / 6. B is not read
# by loop i at all: LoopMultipleRead, which TVM checks first.


def _access(
    access: str, unique_bytes: float, unique_lines: float, reuse: Mapping[str, float]
) -> dict[str, float]:
    """A buffer read or written once per iteration of 60 with stride 1, 4-byte elements."""
    lines = 60 * 4 / 64  # 3.75
    ct = reuse.get("reuse_ct", 0.0)
    divisor = ct if ct else 0.5  # no reuse: times 2
    return {
        f"acc_type.{access}": 1,
        "bytes": 240,
        "unique_bytes": unique_bytes,
        "lines": lines,
        "unique_lines": unique_lines,
        **reuse,
        "bytes_d_reuse_ct": 240 / divisor,
        "unique_bytes_d_reuse_ct": unique_bytes / divisor,
        "lines_d_reuse_ct": lines / divisor,
        "unique_lines_d_reuse_ct": unique_lines / divisor,
        "stride": 1,
    }


def _serial_rows() -> tuple[Row, Row]:
    no_reuse = {"reuse_type.kNoReuse": 1}
    whole = (240, 240 / 64)  # all 60 elements: a run of 240 B, capped at a line
    row_of_b = (40, 1)  # B's one row: 40 B, a run under a line
    b_row = Row(
        {
            "float_mul": 60,
            **NO_ANNOTATIONS,
            **CPU_THREADS,
            # level j: 10 ops over B 40 B + A 40 B; level i: 60 ops over B 40 + A 240
            **curve([(10, 80), (60, 280)]),
            "alloc_size": 10 * 4,  # allocated inside loop i
            "alloc_prod": 10 * 6,
            "alloc_outer_prod": 6,
            "alloc_inner_prod": 60 / 6,  # the loops around B's store inside the allocation
            "outer_prod": 60,
            "num_loops": 2,
        },
        [
            # B: loop i does not read B[0, j]; reuse distance: B's loop j, 40 + 40 B
            _access(
                "kWrite",
                *row_of_b,
                {
                    "reuse_type.kLoopMultipleRead": 1,
                    "reuse_ct": 6,
                    "reuse_dis_iter": 10,
                    "reuse_dis_bytes": 80,
                },
            ),
            # A: B's store is the first under loop i, nothing touched A there before
            _access("kRead", *whole, no_reuse),
        ],
        ordered=False,  # lines and bytes tie
    )
    c_row = Row(
        {
            "float_addsub": 60,
            **NO_ANNOTATIONS,
            **CPU_THREADS,
            **curve([(10, 120), (60, 520)]),
            "outer_prod": 60,
            "num_loops": 2,
        },
        [
            _access("kWrite", *whole, no_reuse),
            # B: reuse distance: C's loop j, C 40 + B 40 + A 40 B
            _access(
                "kRead",
                *row_of_b,
                {
                    "reuse_type.kLoopMultipleRead": 1,
                    "reuse_ct": 6,
                    "reuse_dis_iter": 10,
                    "reuse_dis_bytes": 120,
                },
            ),
            _access(
                "kRead",
                *whole,
                {
                    "reuse_type.kSerialMultipleReadWrite": 1,
                    "reuse_ct": 1,
                    "reuse_dis_iter": 60 / 6,
                    "reuse_dis_bytes": 800 / 6,
                },
            ),
        ],
        ordered=False,
    )
    return b_row, c_row


def test_serial_reuse_distances_and_allocation() -> None:
    A = te.placeholder((6, 10), "float32", name="A")
    B = te.compute((6, 10), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((6, 10), lambda i, j: B[i, j] + A[i, j], name="C")
    dag = ComputeDAG([A, C])
    s = get_init_state(dag)
    s.compute_at("B", "C", s["C"].iters[0])
    rows = nest(dag, s)
    assert rows.shape == (2, 164)  # B (stored first, allocated) then C
    b_row, c_row = _serial_rows()
    check_row(rows, 0, b_row)
    check_row(rows, 1, c_row)


# ------------------------------------------------------------------------------------------


def test_every_feature_kind_is_derived_by_hand() -> None:
    """Each of the 92 kinds is named (given a value) by at least one case above."""
    rows = [_matmul_row(), _transposed_row(), _short_vector_row(), _integer_row()]
    rows += [_annotated_row(), _gpu_row(), *_serial_rows()]
    named = {kind for row in rows for kind in row.scalars}
    named |= {kind for row in rows for buffer in row.buffers for kind in buffer}
    assert len(ROW_KINDS) + len(ACCESS_KINDS) == 92
    missing = [kind for kind in ROW_KINDS + ACCESS_KINDS if kind not in named]
    assert not missing, f"feature kinds without a hand-derived value: {missing}"
