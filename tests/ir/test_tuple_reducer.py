"""Tuple reducers (issue 11): ``te.comm_reducer`` over (index, value), as TVM has them.

An argmax declares one op with two outputs, ``T.v0`` (the index) and ``T.v1`` (the value):
one stage, one loop nest storing both buffers. Checked end to end: declaration errors,
the DAG text, the numpy reference against ``np.argmax``, lowered and compiled programs
(naive, split / reorder / parallel / vectorize / unroll, a ``where`` condition, a
consumer reading one output) against the reference through ``check_schedule``, the steps
a tuple reduction refuses, and a short ``auto_schedule`` whose every measurement is correct.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from differential import check_schedule

from ansor_py.measure.types import MeasureErrorNo
from ansor_py.records import RecordToFile, load_records
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule
from ansor_py.workload_registry import register_workload
from ir import te
from ir.compute_dag import ComputeDAG, ComputeDAGError
from ir.loop_state.api import State, get_init_state
from ir.loop_state.state import ScheduleError
from ir.reference import evaluate, random_inputs
from ir.te import DeclarationError


def argmax_reducer():  # type: ignore[no-untyped-def]
    """(index, value) -> the pair with the larger value; the first index on ties."""
    return te.comm_reducer(
        lambda x, y: (
            te.if_then_else(x[1] >= y[1], x[0], y[0]),
            te.max(x[1], y[1]),
        ),
        lambda t0, t1: (te.const(-1, t0), te.const(float("-inf"), t1)),
        name="argmax",
    )


def argmax_tensors(m: int, n: int, where_below: int | None = None) -> list[te.Tensor]:
    A = te.placeholder((m, n), name="A")
    k = te.reduce_axis((0, n), name="k")
    argmax = argmax_reducer()
    where = None if where_below is None else k < where_below
    idx, val = te.compute((m,), lambda i: argmax((k, A[i, k]), axis=k, where=where), name="T")
    return [A, idx, val]


#: outcomes of a correct program too (a loaded machine): anything else is a failure
ACCEPTED = (MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUN_TIMEOUT, MeasureErrorNo.BUILD_TIMEOUT)


@register_workload
def tuple_reducer_matmul_argmax(m: int, n: int, l: int) -> list[te.Tensor]:  # noqa: E741
    """``C = A @ B``, then the argmax of each row of C: a tiled matmul feeding a tuple
    reduction (its DAG is rewritten by the matmul's cache_write)."""
    A = te.placeholder((m, l), name="A")
    B = te.placeholder((l, n), name="B")
    r = te.reduce_axis((0, l), name="r")
    C = te.compute((m, n), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    k = te.reduce_axis((0, n), name="k")
    idx, val = te.compute((m,), lambda i: argmax_reducer()((k, C[i, k]), axis=k), name="T")
    return [A, B, idx, val]


def test_an_argmax_declares_one_op_with_two_outputs() -> None:
    A, idx, val = argmax_tensors(6, 10)
    assert idx.op is val.op and idx.op.num_outputs == 2
    assert (idx.name, idx.dtype, val.name, val.dtype) == ("T.v0", "int32", "T.v1", "float32")
    assert idx.op.outputs == (idx, val)
    dag = ComputeDAG([A, idx, val])
    assert str(dag).splitlines()[1] == "T.v0(i), T.v1(i) argmax= (k, A[i, k])"
    assert dag.flop_ct == 6 * 10  # one float max per point (the index select is not float)


def test_tuple_reducer_declaration_errors() -> None:
    A = te.placeholder((4, 5), name="A")
    k = te.reduce_axis((0, 5), name="k")
    argmax = argmax_reducer()
    with pytest.raises(DeclarationError, match=r"compute 'T': fcompute returned a tuple of 2 value\(s\)"):
        te.compute((4,), lambda i: (A[i, 0], A[i, 1]), name="T")
    with pytest.raises(DeclarationError, match=r"compute 'T': fcompute returned a tuple of 1 value\(s\)"):
        te.compute((4,), lambda i: argmax((k, A[i, k]), axis=k)[:1], name="T")
    bad = te.comm_reducer(
        lambda x, y: (x[0] + y[0], x[1] + y[1]), lambda t0, t1: (te.const(0.0, "float32"), 0.0), name="bad"
    )
    with pytest.raises(
        DeclarationError, match=r"te.bad: fidentity gives values of dtypes \['float32', 'float32'\]"
    ):
        te.compute((4,), lambda i: bad((k, A[i, k]), axis=k), name="T")
    with pytest.raises(DeclarationError, match=r"te.argmax: axis .* is not a te.reduce_axis"):
        te.compute((4,), lambda i: argmax((k, A[i, k]), axis=i), name="T")
    _, idx, val = argmax_tensors(4, 5)
    with pytest.raises(ComputeDAGError, match=r"op 'T' has 2 outputs; list all of them .*missing \['T.v0'\]"):
        ComputeDAG([idx.op.input_tensors[0], val])


@pytest.mark.parametrize("where_below", [None, 7])
def test_reference_argmax_matches_numpy(where_below: int | None) -> None:
    dag = ComputeDAG(argmax_tensors(9, 12, where_below))
    (a,) = random_inputs(dag, seed=1)
    idx, val = evaluate(dag, [a])
    part = a if where_below is None else a[:, :where_below]
    np.testing.assert_array_equal(idx, np.argmax(part, axis=1).astype(np.int32))
    np.testing.assert_array_equal(val, part.max(axis=1))


def tiled(s: State) -> None:
    i0, i1 = s.split("T", "i", [4])
    k0, k1 = s.split("T", "k", [3])  # 13 = 4 * 3 + 1: a guarded tail
    s.reorder("T", [i0, k0, k1, i1])
    s.parallel("T", i0)
    s.unroll("T", k1)
    s.vectorize("T", i1)


def fused_space_and_reduction(s: State) -> None:
    s.fuse("T", ["i", "k"])


@pytest.mark.parametrize("where_below", [None, 7])
@pytest.mark.parametrize(
    "schedule", [None, tiled, fused_space_and_reduction], ids=["naive", "tiled", "fused"]
)
def test_argmax_kernels_match_the_reference(schedule, where_below: int | None) -> None:  # type: ignore[no-untyped-def]
    dag = ComputeDAG(argmax_tensors(16, 13, where_below))
    checked = check_schedule(dag, schedule, rtol=0.0)
    (a,) = random_inputs(dag, seed=0)
    part = a if where_below is None else a[:, :where_below]
    np.testing.assert_array_equal(checked.outputs[0], np.argmax(part, axis=1))


def test_a_consumer_reads_one_output_of_a_tuple_reduction() -> None:
    A, idx, val = argmax_tensors(16, 9)
    B = te.compute((16,), lambda i: val[i] * te.cast("float32", idx[i] + 1), name="B")
    dag = ComputeDAG([A, idx, val, B])

    def schedule(s: State) -> None:
        outer, _ = s.split("B", "i", [4])
        s.compute_at("T", "B", outer)

    checked = check_schedule(dag, schedule, rtol=0.0)
    (a,) = random_inputs(dag, seed=0)
    expected = a.max(axis=1) * (np.argmax(a, axis=1) + 1).astype(np.float32)
    np.testing.assert_array_equal(checked.outputs[2], expected)


def test_a_tuple_reduction_reads_a_stage_rewritten_by_cache_write() -> None:
    dag = ComputeDAG(tuple_reducer_matmul_argmax(12, 10, 8))

    def schedule(s: State) -> None:
        s.cache_write("C", "local")
        i0, _ = s.split("T", "i", [4])
        s.parallel("T", i0)

    checked = check_schedule(dag, schedule)
    assert [stage.name for stage in checked.state.stages] == ["A", "B", "C.local", "C", "T"]


def test_steps_a_tuple_reduction_refuses() -> None:
    dag = ComputeDAG(argmax_tensors(8, 8))
    s = get_init_state(dag)
    with pytest.raises(
        ScheduleError, match=r"cannot cache_write stage 'T': it has 2 outputs \(a tuple reduction\)"
    ):
        s.cache_write("T", "local")
    with pytest.raises(
        ScheduleError, match=r"cannot rfactor iterator 'k' of stage 'T': it is a tuple reduction"
    ):
        s.rfactor("T", "k", 0)
    with pytest.raises(ScheduleError, match=r"cannot cache_read stage 'T': it has 2 outputs"):
        s.cache_read("T", "local", ["T"])


@pytest.mark.slow
def test_auto_schedule_an_argmax_measures_only_correct_programs(tmp_path: Path) -> None:
    task = SearchTask(func=tuple_reducer_matmul_argmax, args=(32, 48, 40), target="llvm")
    log = tmp_path / "argmax.json"
    options = TuningOptions(
        num_measure_trials=8, num_measures_per_round=4, verbose=0, measure_callbacks=[RecordToFile(log)]
    )
    policy = SketchPolicy(task, params={"evolutionary_search_population": 64}, verbose=0)
    best = auto_schedule(task, options, policy)
    assert best is not None
    records = list(load_records(log, tasks=[task]))
    assert len(records) >= 3
    # every program measured ran correctly; a time-out on this loaded machine says nothing
    errors = [res.error_msg for _, res in records if res.error_no not in ACCEPTED]
    assert not errors, errors
    assert any(res.error_no is MeasureErrorNo.NO_ERROR for _, res in records)
    # the matmul was tiled (the sketch rules treat the argmax as a plain reduction)
    assert any(len(inp.state.transform_steps) > 5 for inp, _ in records)
    kernel = apply_best(task, log)
    (a, b), (expected_idx, expected_val) = task.reference()
    idx = np.full(32, -7, np.int32)
    val = np.full(32, np.nan, np.float32)
    kernel(a, b, idx, val)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(val, expected_val, rtol=1e-5)  # sums in another order
    c = a.astype(np.float64) @ b.astype(np.float64)
    assert np.mean(idx == np.argmax(c, axis=1)) > 0.9  # float32 sums may reorder near-ties
