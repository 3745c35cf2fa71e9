"""Lowering a loop state to a PrimFunc, checked by running it.

Every program here is lowered, executed by the pure-Python interpreter on random inputs
and compared with the numpy reference (``ir.reference``); structure tests then look at
what the IR holds (allocations, loop kinds, guards, indices), and a golden text pins the
printed form of a tiled matmul.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import workloads

from ir import te
from ir.compute_dag import ComputeDAG
from ir.expr import Binary, BinaryOp, Var, const, post_order
from ir.loop_state.api import State, as_loop_state, check_state_of, get_init_state
from ir.loop_state.enums import ComputeAtKind, IteratorKind, StageKind
from ir.loop_state.state import ScheduleError
from ir.lower.bound import infer_bound_from_state
from ir.lower.interpreter import InterpreterError, run
from ir.lower.lower import PASSES, lower
from ir.reference import evaluate, random_inputs
from ir.tir import (
    Allocate,
    Barrier,
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
    stmt_exprs,
    walk,
)

GOLDEN = Path(__file__).parent / "golden"


def check(dag: ComputeDAG, state: State | None = None, seed: int = 0) -> PrimFunc:
    """Lower, interpret on random inputs, compare every output with the reference."""
    func = lower(dag, state)
    inputs = random_inputs(dag, seed=seed)
    expected = evaluate(dag, inputs)
    outputs = [np.full(t.shape, -7, dtype=t.dtype) for t in dag.outputs]  # never zeros
    run(func, [*inputs, *outputs])
    for tensor, got, want in zip(dag.outputs, outputs, expected, strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=tensor.name)
    return func


def allocations(func: PrimFunc) -> dict[str, Buffer]:
    return {s.buffer.name: s.buffer for s in walk(func.body) if isinstance(s, Allocate)}


def loops(func: PrimFunc) -> dict[str, For]:
    return {s.loop_var.name: s for s in walk(func.body) if isinstance(s, For)}


def all_exprs(func: PrimFunc):
    for s in walk(func.body):
        for e in stmt_exprs(s):
            yield from post_order(e)


def divisions(func: PrimFunc) -> list[str]:
    return [
        str(e)
        for e in all_exprs(func)
        if isinstance(e, Binary) and e.op in (BinaryOp.FLOORDIV, BinaryOp.FLOORMOD)
    ]


# ------------------------------------------------------------------------------------------
# naive programs of many DAGs


def where_reduce() -> list[te.Tensor]:
    a = te.placeholder((5, 7), name="A")
    k = te.reduce_axis((0, 7), name="k")
    b = te.compute((5,), lambda i: te.sum(a[i, k] * 2.0, axis=k, where=k > i), name="B")
    return [a, b]


def casts() -> list[te.Tensor]:
    x = te.placeholder((3, 4), name="X", dtype="int32")
    y = te.compute((3, 4), lambda i, j: (x[i, j].astype("float32") * 0.5).astype("int32") + i, name="Y")
    z = te.compute((3, 4), lambda i, j: te.round(y[i, j].astype("float32") / 3.0), name="Z")
    return [x, z]


def one_element() -> list[te.Tensor]:
    a = te.placeholder((1,), name="A")
    k = te.reduce_axis((0, 1), name="k")
    b = te.compute((1,), lambda i: te.sum(a[k] * 2.0, axis=k), name="B")
    c = te.compute((1, 1), lambda i, j: b[i] + a[j], name="C")
    return [a, c]


def offset_reduce_axis() -> list[te.Tensor]:
    a = te.placeholder((4, 9), name="A")
    k = te.reduce_axis((3, 9), name="k")
    b = te.compute((4,), lambda i: te.max(a[i, k], axis=k), name="B")
    return [a, b]


def two_outputs() -> list[te.Tensor]:
    a = te.placeholder((4, 5), name="A")
    b = te.compute((4, 5), lambda i, j: a[i, j] * 3.0, name="B")
    c = te.compute((5, 4), lambda i, j: b[j, i] - a[j, i], name="C")
    return [a, b, c]


NAIVE: dict[str, Callable[[], list[te.Tensor]]] = {
    "matmul": workloads.matmul,
    "matmul_bias_relu": workloads.matmul_bias_relu,
    "conv2d_padded": workloads.conv2d_nchw,
    "conv2d_stride2": lambda: workloads.conv2d_nchw(h=7, w=7, stride=2),
    "softmax": workloads.softmax,
    "max_pool2d": workloads.max_pool2d,
    "row_sum": lambda: workloads.row_reduce(kind="sum"),
    "row_max": lambda: workloads.row_reduce(kind="max"),
    "row_min": lambda: workloads.row_reduce(kind="min"),
    "row_prod": lambda: workloads.row_reduce(kind="prod"),
    "where_reduce": where_reduce,
    "casts": casts,
    "one_element": one_element,
    "offset_reduce_axis": offset_reduce_axis,
    "two_outputs": two_outputs,
    "int_matmul": lambda: workloads.matmul(5, 4, 3, dtype="int32"),
}


@pytest.mark.parametrize("name", NAIVE)
def test_naive_program_matches_reference(name: str):
    dag = ComputeDAG(NAIVE[name]())
    func = check(dag)
    assert [b.name for b in func.params] == [t.name for t in dag.tensors]
    assert all(b.scope is MemoryScope.GLOBAL for b in func.params)


def test_naive_intermediates_get_global_allocations_of_full_size():
    dag = ComputeDAG(workloads.softmax(6, 10))
    func = check(dag)
    sizes = {name: (b.num_elements, b.scope) for name, b in allocations(func).items()}
    assert sizes == {
        "row_max": (6, MemoryScope.GLOBAL),
        "exp": (60, MemoryScope.GLOBAL),
        "row_sum": (6, MemoryScope.GLOBAL),
    }


def test_naive_reduction_places_init_before_the_reduction_loop():
    text = str(lower(ComputeDAG(workloads.matmul(4, 3, 2))))
    assert text.index("C[C_base + j] = 0.0f") < text.index("for (k, 0, 2)")


def test_extent_one_loops_are_dropped():
    func = check(ComputeDAG(one_element()))
    assert not loops(func)


def test_padding_select_is_kept_and_lazy():
    func = check(ComputeDAG(workloads.conv2d_nchw()))
    text = str(func)
    assert "select(" in text  # the out-of-range read of data is guarded, not executed


# ------------------------------------------------------------------------------------------
# schedules


def sched_split_dividing(s: State) -> None:
    s.split("C", "i", [4])
    s.split("C", "j", [3, 2])


def sched_split_prime(s: State) -> None:
    s.split("C", "i", [5])  # 16 = 4*5 - 4
    s.split("C", "k", [3])  # a reduction split that does not divide
    s.split("C", "j", [7], inner_to_outer=False)


def sched_fuse_reorder(s: State) -> None:
    i, j, k = s["C"].iters
    io, ii = s.split("C", i, [3])
    s.reorder("C", [io, j, k, ii])
    s.fuse("C", [io, s["C"].iters[1]])


def sched_parallel_vectorize_unroll(s: State) -> None:
    i, j, k = s["C"].iters
    io, ii = s.split("C", i, [4])
    jo, ji = s.split("C", j, [4])
    s.reorder("C", [io, jo, k, ii, ji])
    s.parallel("C", io)
    s.unroll("C", ii)
    s.vectorize("C", ji)


def sched_tiled_cache_write(s: State) -> None:
    """The CPU multi-level tile with a register accumulator (cache_write + compute_at)."""
    s.cache_write("C", "local")
    i, j = s["C"].iters
    io, ii = s.split("C", i, [4])
    jo, ji = s.split("C", j, [4])
    s.reorder("C", [io, jo, ii, ji])
    s.compute_at("C.local", "C", jo)
    ic, jc, kc = s["C.local"].iters
    ko, ki = s.split("C.local", kc, [4])
    s.reorder("C.local", [ko, ic, ki, jc])
    s.vectorize("C.local", jc)


def sched_cache_read_packing(s: State) -> None:
    s.cache_read("B", "global", ["C"])
    i, j, k = s["C"].iters
    jo, ji = s.split("C", j, [5])  # 12 columns in panels of 5: the last panel overhangs
    s.reorder("C", [jo, i, k, ji])
    s.compute_at("B.global", "C", jo)


def sched_rfactor(s: State) -> None:
    _ko, ki = s.split("C", "k", [3])
    s.rfactor("C", ki, 1)


SCHEDULES: dict[str, Callable[[State], None]] = {
    "split_dividing": sched_split_dividing,
    "split_prime": sched_split_prime,
    "fuse_reorder": sched_fuse_reorder,
    "parallel_vectorize_unroll": sched_parallel_vectorize_unroll,
    "tiled_cache_write": sched_tiled_cache_write,
    "cache_read_packing": sched_cache_read_packing,
    "rfactor": sched_rfactor,
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_scheduled_matmul_matches_reference(name: str):
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    SCHEDULES[name](s)
    check(dag, s)


def test_split_guards_only_where_a_split_does_not_divide():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    sched_split_dividing(s)
    assert not [x for x in walk(check(dag, s).body) if isinstance(x, IfThenElse)]
    s = get_init_state(dag)
    sched_split_prime(s)
    guards = sorted(str(x.condition) for x in walk(check(dag, s).body) if isinstance(x, IfThenElse))
    # each guard sits just inside the deepest loop it reads; the spatial ones cover init and update.
    # j (12) in 7 parts of 2 needs only 6 of them: bound inference cuts j.0 to 6, no guard
    assert guards == ["i.0 * 5 + i.1 < 16", "k.0 * 3 + k.1 < 8"]


def test_split_indices_have_no_division_left():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    sched_parallel_vectorize_unroll(s)
    func = check(dag, s)
    assert divisions(func) == []


def test_fused_elementwise_loop_indexes_its_tensor_directly():
    dag = ComputeDAG(two_outputs())
    s = get_init_state(dag)
    s.fuse("B", ["i", "j"])
    func = check(dag, s)
    stores = [x for x in walk(func.body) if isinstance(x, BufferStore) and x.buffer.name == "B"]
    assert [str(x) for x in stores] == ["B[i@j@] = A[i@j@] * 3.0f"]


def test_loop_kinds_follow_annotations():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    sched_parallel_vectorize_unroll(s)
    kinds = {name: f.kind for name, f in loops(check(dag, s)).items()}
    assert kinds == {
        "i.0": ForKind.PARALLEL,
        "j.0": ForKind.SERIAL,
        "i.1.init": ForKind.UNROLLED,
        "j.1.init": ForKind.VECTORIZED,
        "k": ForKind.SERIAL,
        "i.1": ForKind.UNROLLED,
        "j.1": ForKind.VECTORIZED,
    }


def test_auto_unroll_pragma_sits_on_the_outermost_emitted_loop():
    dag = ComputeDAG(workloads.conv2d_nchw())
    s = get_init_state(dag)
    s.pragma("conv", "nn", "auto_unroll_max_step$16")  # nn has extent 1: not emitted
    s.pragma("pad_temp", "i2", "debug_skip_region")
    func = check(dag, s)
    annotated = {name: f.annotations for name, f in loops(func).items() if f.annotations}
    assert annotated == {"ff": {"pragma_auto_unroll_max_step": 16}, "i2": {"pragma_debug_skip_region": 1}}
    assert "for (ff, 0, 6) { // pragma_auto_unroll_max_step=16" in str(func)


def test_cache_write_register_tile_is_a_local_allocation_inside_the_tile():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    sched_tiled_cache_write(s)
    func = check(dag, s)
    local = allocations(func)["C.local"]
    assert (local.shape, local.scope) == ((4, 4), MemoryScope.LOCAL)
    # the allocation sits inside the j.0 loop, so each tile gets its own accumulator
    outer = loops(func)["j.0"]
    assert any(isinstance(x, Allocate) and x.buffer is local for x in walk(outer.body))


def test_cache_read_packs_a_panel_and_clamps_its_edge():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    sched_cache_read_packing(s)
    func = check(dag, s)
    panel = allocations(func)["B.global"]
    assert panel.shape == (8, 5)  # k rows by 5 columns, contiguous
    packing = loops(func)["ax1"]
    text = str(packing)
    # the private panel is filled past B's 12 columns without a branch, never reading
    # B outside them: the last panel's 3 extra columns repeat column 11
    assert "min(j.0 * 5 + ax1, 11)" in text and "if" not in text


def test_compute_at_several_levels_with_non_dividing_splits():
    dag = ComputeDAG(workloads.matmul_bias_relu(13, 11, 5))
    for level in range(4):
        s = get_init_state(dag)
        i, j = s["relu"].iters
        io, ii = s.split("relu", i, [4])
        jo, ji = s.split("relu", j, [3])
        s.reorder("relu", [io, jo, ii, ji])
        s.compute_at("biased", "relu", [io, jo, ii, ji][level])
        check(dag, s, seed=level)


def test_compute_inline_substitutes_the_body():
    dag = ComputeDAG(workloads.matmul_bias_relu(8, 6, 4))
    s = get_init_state(dag)
    s.compute_inline("biased")
    func = check(dag, s)
    assert "biased" not in allocations(func)
    assert "max(C[" in str(func)


def test_nested_attaches():
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    s = get_init_state(dag)
    io, _ = s.split("relu", "i", [8])
    s.compute_at("biased", "relu", io)
    bi, _ = s["biased"].iters
    bio, _ = s.split("biased", bi, [3])
    s.compute_at("C", "biased", bio)
    func = check(dag, s)
    assert {n: b.shape for n, b in allocations(func).items()} == {"biased": (8, 12), "C": (3, 12)}


def test_conv_pad_attached_inside_the_output_rows():
    dag = ComputeDAG(workloads.conv2d_nchw(h=8, w=8, stride=1))
    s = get_init_state(dag)
    yo, _ = s.split("conv", "yy", [3])
    s.compute_at("pad_temp", "conv", yo)
    func = check(dag, s)
    assert allocations(func)["pad_temp"].shape == (1, 4, 5, 10)


def test_softmax_fully_attached():
    dag = ComputeDAG(workloads.softmax(6, 10))
    s = get_init_state(dag)
    s.compute_at("row_sum", "softmax", "i")
    s.compute_inline("exp")
    s.compute_at("row_max", "softmax", "i")
    func = check(dag, s)
    assert {n: b.shape for n, b in allocations(func).items()} == {"row_max": (1,), "row_sum": (1,)}


def test_rfactor_program():
    dag = ComputeDAG(workloads.row_reduce(6, 10))
    s = get_init_state(dag)
    _, r = s["row_sum"].iters
    _, ri = s.split("row_sum", r, [4])
    s.rfactor("row_sum", ri, 0)
    func = check(dag, s)
    assert allocations(func)["row_sum.rf"].shape == (4, 6)


def test_storage_align_pads_strides():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    s.cache_read("A", "shared", ["C"])
    s.storage_align("A.shared", "ax0", 8, 1)
    func = check(dag, s)
    shared = allocations(func)["A.shared"]
    assert shared.strides == (9, 1) and shared.num_elements == 15 * 9 + 8
    assert shared.scope is MemoryScope.SHARED


def test_gpu_bindings_and_barriers_around_shared_fill():
    dag = ComputeDAG(workloads.matmul(16, 16, 8))
    s = get_init_state(dag)
    s.cache_read("A", "shared", ["C"])
    i, j, k = s["C"].iters
    bi, ti, ii = s.split("C", i, [4, 2])
    bj, tj, jj = s.split("C", j, [4, 2])
    ko, ki = s.split("C", k, [4])
    s.reorder("C", [bi, bj, ti, tj, ko, ki, ii, jj])
    for it, tag in ((bi, "blockIdx.y"), (bj, "blockIdx.x"), (ti, "threadIdx.y"), (tj, "threadIdx.x")):
        s.bind("C", it, tag)
    s.compute_at("A.shared", "C", ko)
    fused = s.fuse("A.shared", s["A.shared"].iters)
    _, inner = s.split("A.shared", fused, [4])
    s.bind("A.shared", inner, "threadIdx.x")
    func = check(dag, s)
    tags = {name: f.thread_tag for name, f in loops(func).items() if f.kind is ForKind.THREAD_BINDING}
    assert tags == {
        "i.0": "blockIdx.y",
        "j.0": "blockIdx.x",
        "i.1": "threadIdx.y",
        "j.1": "threadIdx.x",
        "ax0@ax1@.1": "threadIdx.x",
    }
    body = loops(func)["k.0"].body
    assert isinstance(body, Allocate) and body.buffer.shape == (8, 4)  # the block's tile
    stmts = body.body.stmts  # type: ignore[attr-defined]
    assert isinstance(stmts[0], Barrier) and isinstance(stmts[2], Barrier)


def test_hoisted_indices_leave_base_plus_stride_in_inner_loops():
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    s = get_init_state(dag)
    sched_parallel_vectorize_unroll(s)
    func = check(dag, s)
    inner = loops(func)["j.1"]
    (store,) = [x for x in walk(inner) if isinstance(x, BufferStore)]
    assert str(store.indices[0]) == "C_base1 + j.1"  # C_base is the init nest's
    lets = {x.var.name: str(x.value) for x in walk(func.body) if isinstance(x, LetStmt)}
    assert lets["C_base1"] == "i.0 * 48 + i.1 * 12 + j.0 * 4"
    assert lets["A_base"] == "i.0 * 32 + k"  # outside the unrolled i.1 loop


def test_golden_tiled_matmul():
    dag = ComputeDAG(workloads.matmul(64, 64, 64))
    s = get_init_state(dag)
    s.cache_write("C", "local")
    i, j = s["C"].iters
    io, ii = s.split("C", i, [8])
    jo, ji = s.split("C", j, [16])
    s.reorder("C", [io, jo, ii, ji])
    s.parallel("C", io)
    s.compute_at("C.local", "C", jo)
    ic, jc, kc = s["C.local"].iters
    ko, ki = s.split("C.local", kc, [4])
    s.reorder("C.local", [ko, ki, ic, jc])
    s.unroll("C.local", ic)
    s.vectorize("C.local", jc)
    s.vectorize("C", ji)
    func = lower(dag, s, name="matmul_tiled")
    expected = (GOLDEN / "lower_tiled_matmul.txt").read_text()
    assert str(func) + "\n" == expected
    check(dag, s)


def test_debug_prints_each_pass(capsys: pytest.CaptureFixture[str]):
    lower(ComputeDAG(workloads.matmul(4, 4, 4)), debug=True)
    out = capsys.readouterr().out
    passes = [line for line in out.splitlines() if line.startswith("// after ")]
    assert passes == [
        "// after infer_bound",
        "// after schedule_ops",
        "// after flatten_indices",
        "// after simplify",
        "// after hoist_invariant_indices",
    ]


def test_lower_accepts_state_kinds_and_rejects_others():
    dag = ComputeDAG(workloads.matmul(4, 4, 4))
    s = get_init_state(dag)
    assert str(lower(dag, s)) == str(lower(dag, s.loop_state)) == str(lower(dag))
    with pytest.raises(TypeError, match=r"state must be a State, a LoopState or None, got str"):
        lower(dag, "C")


def test_as_loop_state_normalises_the_state_kinds():
    dag = ComputeDAG(workloads.matmul(4, 4, 4))
    s = get_init_state(dag)
    s.split("C", "i", [2])
    assert as_loop_state(dag, s) is s.loop_state
    assert as_loop_state(dag, s.loop_state) is s.loop_state
    assert str(as_loop_state(dag, None)) == str(get_init_state(dag))
    with pytest.raises(TypeError, match=r"state must be a State, a LoopState or None, got int"):
        as_loop_state(dag, 3)  # type: ignore[arg-type]


def test_lower_refuses_a_sketch_and_a_state_of_another_dag():
    dag = ComputeDAG(workloads.matmul(4, 4, 4))
    sketch = get_init_state(dag)
    sketch.split("C", "i", [None])
    with pytest.raises(ScheduleError, match=r"cannot lower a state with unknown split lengths \(a sketch\)"):
        lower(dag, sketch)
    bigger = get_init_state(ComputeDAG(workloads.matmul(8, 4, 4)))
    with pytest.raises(ScheduleError, match=r"cannot lower: stage 'A' of the state is float32\[8, 4\]"):
        lower(dag, bigger.loop_state)
    check_state_of(dag, get_init_state(dag))  # its own state: fine


@pytest.mark.parametrize("stop_after", PASSES)
def test_stop_after_returns_the_program_as_that_pass_left_it(
    stop_after: str, capsys: pytest.CaptureFixture[str]
):
    dag = ComputeDAG(workloads.matmul(6, 4, 4))
    s = get_init_state(dag)
    s.split("C", "j", [2])
    lower(dag, s, debug=True)
    printed = capsys.readouterr().out
    after = printed.split(f"// after {stop_after}\n", 1)[1].split("\n// after ", 1)[0]
    func = lower(dag, s, stop_after=stop_after)
    assert str(func.body) == after.rstrip("\n")
    assert [p.name for p in func.params] == ["A", "B", "C"]
    if stop_after == PASSES[-1]:
        assert str(func) == str(lower(dag, s))


def test_stop_after_schedule_ops_keeps_one_index_per_dimension():
    dag = ComputeDAG(workloads.matmul(6, 4, 4))
    nested = lower(dag, stop_after="schedule_ops")
    flat = lower(dag, stop_after="flatten_indices")
    stores = [n for n in walk(nested.body) if isinstance(n, BufferStore)]
    assert stores and all(len(store.indices) == 2 for store in stores)
    assert all(len(n.indices) == 1 for n in walk(flat.body) if isinstance(n, BufferStore))


def test_stop_after_an_unknown_pass_names_the_passes():
    dag = ComputeDAG(workloads.matmul(4, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"stop_after='infer_bound' is not a pass; the passes are schedule_ops, flatten_indices, "
        r"simplify, hoist_invariant_indices",
    ):
        lower(dag, stop_after="infer_bound")


# ------------------------------------------------------------------------------------------
# random schedules (differential)


def _looped(s: State) -> list[int]:
    return [
        k
        for k, st in enumerate(s.stages)
        if st.op_type is StageKind.COMPUTE and st.compute_at is not ComputeAtKind.INLINED
    ]


def _random_schedule(dag: ComputeDAG, rng: random.Random) -> State | None:
    s = get_init_state(dag)
    for _ in range(rng.randint(1, 12)):
        k = rng.choice(_looped(s))
        iters = s.stages[k].iters
        j = rng.randrange(len(iters))
        kind = rng.choice(
            ["split", "split", "fuse", "reorder", "at", "at", "inline", "annotate", "cache", "rf"]
        )
        try:
            if kind == "split":
                s.split(
                    k, j, [rng.choice([2, 3, 4, 5, 7]) for _ in range(rng.randint(1, 2))], rng.random() < 0.8
                )
            elif kind == "fuse" and j + 1 < len(iters):
                s.fuse(k, [j, j + 1])
            elif kind == "reorder":
                s.reorder(k, rng.sample(range(len(iters)), len(iters)))
            elif kind == "at":
                target = rng.choice([c for c in _looped(s) if c != k] or [k])
                s.compute_at(k, target, rng.randrange(len(s.stages[target].iters)))
            elif kind == "inline":
                s.compute_inline(k)
            elif kind == "annotate":
                rng.choice([s.parallel, s.unroll, s.vectorize])(k, j)
            elif kind == "cache":
                s.cache_write(k, rng.choice(["local", "global"]))
            elif kind == "rf" and iters[j].kind is IteratorKind.REDUCTION:
                s.rfactor(k, j, rng.randint(0, 1))
            s = infer_bound_from_state(dag, s)
        except ScheduleError:
            continue
    return s


RANDOM_WORKLOADS = [
    lambda: workloads.matmul_bias_relu(7, 6, 5),
    lambda: workloads.conv2d_nchw(ci=2, h=5, w=5, co=3),
    lambda: workloads.conv2d_nchw(ci=2, h=6, w=6, co=2, stride=2),
    lambda: workloads.softmax(3, 7),
    lambda: workloads.max_pool2d(c=2, h=6, w=6),
    lambda: workloads.row_reduce(4, 9, kind="max"),
]


@pytest.mark.parametrize("seed", range(48))
def test_random_schedule_matches_reference(seed: int):
    rng = random.Random(seed)
    dag = ComputeDAG(RANDOM_WORKLOADS[seed % len(RANDOM_WORKLOADS)]())
    state = _random_schedule(dag, rng)
    try:
        lower(dag, state)
    except ScheduleError as error:
        # only schedules bound inference cannot place: a consumer outside the attach loop
        assert "is not computed inside that loop" in str(error)
        return
    check(dag, state, seed=seed)


# ------------------------------------------------------------------------------------------
# the interpreter itself


def _copy_func(n: int, index_offset: int) -> PrimFunc:
    a, b = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    i = Var("i")
    store = BufferStore(b, BufferLoad(a, (i + index_offset,)), (i,))
    return PrimFunc("copy", (a, b), For(i, const(0), const(n), ForKind.SERIAL, store))


def test_interpreter_runs_in_place():
    a = np.arange(4, dtype="float32")
    b = np.zeros(4, dtype="float32")
    run(_copy_func(4, 0), {"A": a, "B": b})
    np.testing.assert_array_equal(b, a)


def test_interpreter_rejects_out_of_bounds_reads():
    with pytest.raises(InterpreterError, match=r"read of A\[4\] outside its 4 element\(s\)"):
        run(_copy_func(4, 1), [np.ones(4, "float32"), np.zeros(4, "float32")])


def test_interpreter_checks_arguments():
    func = _copy_func(4, 0)
    with pytest.raises(InterpreterError, match=r"parameter 'B' expects float32\[4\], got float64\[4\]"):
        run(func, [np.ones(4, "float32"), np.zeros(4)])
    with pytest.raises(InterpreterError, match=r"1 array\(s\) given for 2 parameter\(s\)"):
        run(func, [np.ones(4, "float32")])
    with pytest.raises(InterpreterError, match=r"no array given for parameter\(s\) \['B'\]"):
        run(func, {"A": np.ones(4, "float32")})


def test_interpreter_fresh_allocations_read_as_nan():
    a, t = Buffer("A", (1,), "float32"), Buffer("T", (2,), "float32")
    body = Allocate(
        t,
        seq(BufferStore(t, const(1.0), (const(0),)), BufferStore(a, BufferLoad(t, (const(1),)), (const(0),))),
    )
    out = np.zeros(1, "float32")
    run(PrimFunc("f", (a,), body), [out])
    assert np.isnan(out[0])  # T[1] was never written
