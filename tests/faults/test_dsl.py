"""Faults a user of the DSL and the API can throw (issue 11, "The DSL and the API"): each
is refused with a message naming the object, the value and the limit, or, for a divisor
that is zero at run time, computed as numpy computes it instead of killing the process.

Every test here failed before its fix: the read past A compiled, the divisions trapped
(SIGFPE) or folded to 0 silently, the target strings made invalid targets or aborted
inside LLVM, and the API accepted another stage's iterator, refused numpy integers,
accepted a stray reduce axis until build and a negative trial count.
"""

from __future__ import annotations

import json

import llvmlite.binding as llvm
import numpy as np
import pytest
from differential import run_kernel

from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule
from codegen.build import build
from codegen.llvm import build as llvm_build
from codegen.llvm.errors import CodegenError
from codegen.target import Target
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.replay import state_to_record
from ir.loop_state.state import ScheduleError
from ir.lower import interpreter
from ir.lower.lower import lower
from ir.reference import evaluate
from ir.te import DeclarationError
from ir.topi.pad import pad

# ------------------------------------------------------------------------------------------
# reads out of the tensor's range


def test_constant_offset_read_past_the_tensor_is_refused():
    A = te.placeholder((16,), name="A")
    with pytest.raises(
        DeclarationError, match=r"compute 'B': read A\[.*\] indexes dimension 0 of tensor 'A'"
    ):
        te.compute((16,), lambda i: A[i + 1], name="B")
    with pytest.raises(DeclarationError, match=r"in \[-1, 14\], outside its extent 16 \(valid 0..15\)"):
        te.compute((16,), lambda i: A[i - 1], name="B")
    with pytest.raises(DeclarationError, match=r"in \[0, 30\], outside its extent 16"):
        te.compute((16,), lambda i: A[2 * i], name="B")
    with pytest.raises(DeclarationError, match=r"in \[16, 16\]"):
        te.compute((4,), lambda i: A[16], name="B")
    with pytest.raises(DeclarationError, match=r"in \[1, 9\], outside its extent 9"):
        te.compute((16,), lambda i: te.placeholder((9,), name="H")[(i + 3) // 2], name="B")
    M = te.placeholder((8, 8), name="M")
    k = te.reduce_axis((0, 8), name="k")
    with pytest.raises(DeclarationError, match=r"dimension 1 of tensor 'M' with k \+ 1 in \[1, 8\]"):
        te.compute((8,), lambda i: te.sum(M[i, k + 1], axis=k), name="R")


def test_reads_in_range_or_guarded_stay_legal():
    A = te.placeholder((16,), name="A")
    te.compute((15,), lambda i: A[i + 1], name="shifted")
    te.compute((8,), lambda i: A[2 * i + 1], name="odd")
    te.compute((16,), lambda i: A[i // 2] + A[i % 16] + A[15 - i], name="mixed")
    te.compute((16,), lambda i: A[(i * 4) % 16], name="modulo")
    te.compute((16,), lambda i: te.if_then_else(i >= 1, A[i - 1], 0.0), name="guarded")
    te.compute((16,), lambda i: te.if_then_else(te.all(i >= 1, A[i - 1] < A[i]), 1.0, 0.0), name="rising")
    # not judged: i appears in two terms, so the bounds of each ([0, 15] and [-7, 0]) need
    # not be reached together (the index stays in [0, 8])
    te.compute((16,), lambda i: A[i - i // 2], name="not_judged")
    padded = pad(te.placeholder((2, 3, 4, 4), name="X"), [0, 0, 1, 1])
    assert padded.shape == (2, 3, 6, 6)
    k = te.reduce_axis((0, 3), name="k")
    te.compute((14,), lambda i: te.sum(A[i + k], axis=k), name="window")
    k2 = te.reduce_axis((0, 3), name="k2")
    te.compute((16,), lambda i: te.sum(A[i + k2 - 1], axis=k2, where=te.all(i + k2 >= 1, i + k2 <= 16)))


# ------------------------------------------------------------------------------------------
# integer division by zero


def test_division_by_a_constant_zero_is_refused_when_built():
    A = te.placeholder((4,), dtype="int32", name="A")
    i = te.reduce_axis((0, 4), name="i")  # any int expression will do
    with pytest.raises(ZeroDivisionError, match=r"integer division by the constant zero: A\[.*\] // 0"):
        _ = A[i] // 0
    with pytest.raises(ZeroDivisionError, match=r"integer division by the constant zero: .* % 0 \(int32\)"):
        te.floormod(A[i], 0)
    with pytest.raises(ZeroDivisionError, match=r"constant zero"):
        te.floordiv(A[i], te.const(0, "int32"))
    te.compute((4,), lambda j: A[j] // 3)  # a nonzero constant is fine
    F = te.placeholder((4,), name="F")
    te.compute((4,), lambda j: F[j] / 0.0)  # float division by zero is IEEE's inf, not a fault


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
def test_division_by_a_runtime_zero_gives_numpy_answer(dtype):
    """x // 0 == x % 0 == 0 and INT_MIN // -1 == INT_MIN in numpy, the reference, the
    interpreter and the compiled kernel (scalar and vectorized); it used to trap (SIGFPE)."""
    n = 16
    A = te.placeholder((n,), dtype=dtype, name="A")
    B = te.placeholder((n,), dtype=dtype, name="B")
    Q = te.compute((n,), lambda i: A[i] // B[i], name="Q")
    R = te.compute((n,), lambda i: A[i] % B[i], name="R")
    dag = ComputeDAG([A, B, Q, R])
    info = np.iinfo(dtype)
    a = np.array([7, -7, 5, 0, info.min, info.max, -1, 3] * 2, dtype=np.int64)
    b = np.array([0, 0, -1, 0, -1, 0, 2, -2] + [0, 3, -3, 1, -1, 7, 0, 2], dtype=np.int64)
    if info.min == 0:
        a, b = np.abs(a) % (info.max + 1), np.abs(b)
    inputs = [a.astype(dtype), b.astype(dtype)]
    with np.errstate(all="ignore"):
        expected = [np.floor_divide(inputs[0], inputs[1]), np.mod(inputs[0], inputs[1])]
    assert np.all(expected[0][b == 0] == 0) and np.all(expected[1][b == 0] == 0)
    assert [r.tolist() for r in evaluate(dag, inputs)] == [e.tolist() for e in expected]

    def vectorized(s):
        for stage in ("Q", "R"):
            _, inner = s.split(stage, s[stage].iters[0], [8])
            s.vectorize(stage, inner)

    for schedule in (None, vectorized):
        state = get_init_state(dag)
        if schedule is not None:
            schedule(state)
        outputs = run_kernel(dag, build(dag, state), inputs)
        assert [o.tolist() for o in outputs] == [e.tolist() for e in expected], schedule
    arrays = [*(x.copy() for x in inputs), *(np.zeros(n, dtype=dtype) for _ in range(2))]
    interpreter.run(lower(dag), arrays)
    assert [x.tolist() for x in arrays[2:]] == [e.tolist() for e in expected]


def test_index_division_by_a_loop_variable_that_is_zero():
    """An index expression divided by an axis that takes the value 0 (Python ints in the
    interpreter) agrees with numpy's 0 too."""
    A = te.placeholder((8,), dtype="int32", name="A")
    B = te.compute((8,), lambda i: A[i] + 7 // i + 7 % i, name="B")
    dag = ComputeDAG([A, B])
    a = np.arange(8, dtype="int32")
    expected = evaluate(dag, [a])[0]
    assert expected[0] == 0 and expected[3] == 3 + 2 + 1
    (got,) = run_kernel(dag, build(dag), [a])
    assert got.tolist() == expected.tolist()
    out = np.zeros(8, dtype="int32")
    interpreter.run(lower(dag), [a.copy(), out])
    assert out.tolist() == expected.tolist()


# ------------------------------------------------------------------------------------------
# targets


def test_tvm_style_target_constructor_parses_the_string():
    t = Target("llvm -mcpu=core-avx2 -num-cores=1")
    assert t == Target.parse("llvm -mcpu=core-avx2 -num-cores=1")
    assert (t.kind, t.mcpu, t.num_cores) == ("llvm", "core-avx2", 1)
    assert t.hardware_params.vector_unit_bytes == 32
    with pytest.raises(ValueError, match=r"unknown target kind 'opencl -device=mali'"):
        Target("opencl -device=mali")


def test_unknown_cpu_or_feature_is_refused_before_llvm_sees_it():
    """LLVM ignores an unknown -mcpu with a warning and then aborts the whole process while
    compiling ("64-bit code requested on a subtarget that doesn't support it")."""
    with pytest.raises(ValueError, match=r"-mcpu=notacpu: LLVM knows no processor 'notacpu' for triple"):
        Target.parse("llvm -mcpu=notacpu")
    with pytest.raises(ValueError, match=r"no processor 'skylake-avx51'.*did you mean skylake-avx512"):
        Target.parse("llvm -mcpu=skylake-avx51")
    with pytest.raises(ValueError, match=r"LLVM knows no feature 'avx513f'.*did you mean avx512f"):
        Target.parse("llvm -mattr=+avx513f")
    with pytest.raises(ValueError, match=r"no processor 'notacpu' for triple aarch64-linux-gnu"):
        Target.parse("llvm -mtriple=aarch64-linux-gnu -mcpu=notacpu")
    assert Target.parse("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon").cpu == "cortex-a72"


def test_avx512_targets_get_64_byte_vectors():
    assert Target.parse("llvm -mcpu=skylake-avx512").hardware_params.vector_unit_bytes == 64
    assert Target.parse("llvm -mcpu=znver4").hardware_params.vector_unit_bytes == 64
    assert Target.parse("llvm -mcpu=znver3").hardware_params.vector_unit_bytes == 32
    generic = "llvm -mtriple=x86_64-linux-gnu -mcpu=generic -mattr=+avx512f"
    assert Target.parse(generic).hardware_params.vector_unit_bytes == 64
    host = llvm.get_host_cpu_features()
    expected = 64 if host.get("avx512f") else 32 if host.get("avx2") else 16
    assert Target.parse("llvm").hardware_params.vector_unit_bytes == expected
    without = Target.parse("llvm -mcpu=skylake-avx512 -mattr=-avx512f")
    assert without.hardware_params.vector_unit_bytes == 32


def _host_lacks() -> str | None:
    host = llvm.get_host_cpu_features()
    candidates = ("amx-tile", "avx512fp16", "avx512f", "avx2", "sve", "sme")
    return next((f for f in candidates if f in host and not host[f]), None)


@pytest.mark.skipif(_host_lacks() is None, reason="this CPU has every candidate feature")
def test_host_target_with_a_feature_the_cpu_lacks_builds_but_does_not_run_here():
    feature = _host_lacks()
    assert feature is not None
    cpu = "generic" if feature not in ("sve", "sme") else llvm.get_host_cpu_name()
    target = Target.parse(f"llvm -mcpu={cpu} -mattr=+{feature}")
    assert target.is_host and target.missing_host_features() == [feature]
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] * 2.0, name="B")
    dag = ComputeDAG([A, B])
    module = llvm_build(lower(dag), target)
    assert module.get_object()  # building and exporting for another machine stays allowed
    with pytest.raises(CodegenError, match=rf"uses CPU features this machine lacks: {feature}.*SIGILL"):
        module.get_kernel()
    with pytest.raises(CodegenError, match=r"lacks"):
        build(dag, None, target)
    assert Target.parse("llvm").missing_host_features() == []
    task = SearchTask(compute_dag=dag, workload_key="test_dsl_missing_feature", target=target)
    with pytest.raises(ValueError, match=rf"the local runner cannot run code .* lacks {feature}"):
        auto_schedule(task, TuningOptions(num_measure_trials=2))


# ------------------------------------------------------------------------------------------
# the State API and the options


def _two_stage_dag() -> ComputeDAG:
    A = te.placeholder((16,), name="A")
    X = te.compute((16,), lambda i: A[i] + 1.0, name="X")
    Z = te.compute((16,), lambda i: X[i] * 2.0, name="Z")
    return ComputeDAG([A, X, Z])


def test_an_iterator_of_another_stage_is_refused():
    s = get_init_state(_two_stage_dag())
    with pytest.raises(ScheduleError, match=r"iterator 'i' given for stage 'Z' is an iterator of stage 'X'"):
        s.split("Z", s["X"].iters[0], [4])
    with pytest.raises(ScheduleError, match=r"is an iterator of stage 'X'"):
        s.parallel("Z", s["X"].iters[0])
    assert s.transform_steps == ()
    outer, _ = s.split("Z", s["Z"].iters[0], [4])
    s.parallel("Z", outer)  # its own iterators, and names, still resolve
    s.vectorize("Z", "i.1")


def test_numpy_integers_are_accepted_as_shapes_extents_and_factors():
    n = np.int64(16)
    A = te.placeholder((n, np.int32(8)), name="A")
    assert A.shape == (16, 8) and all(type(x) is int for x in A.shape)
    k = te.reduce_axis((np.int64(0), np.int64(8)), name="k")
    B = te.compute(np.int64(16), lambda i: te.sum(A[i, k] * np.float32(2.0), axis=k), name="B")
    assert B.shape == (16,) and type(B.shape[0]) is int
    C = te.compute((n,), lambda i: B[i] + A[i, np.int64(1)], name="C")
    dag = ComputeDAG([A, B, C])
    s = get_init_state(dag)
    outer, inner = s.split(np.int64(2), np.int64(0), [np.int64(4)])
    assert (outer.extent, inner.extent) == (4, 4)
    s.split("B", s["B"].iters[1], [np.int32(2)])
    record = json.dumps(state_to_record(s))  # plain ints only: JSON would refuse np.int64
    assert '"SP", 2, 0, 16, [4]' in record
    with pytest.raises(DeclarationError, match=r"must hold positive integers, got 2.5 of type float"):
        te.placeholder((2.5,), name="bad")


def test_a_reduce_axis_outside_its_reducer_is_refused_at_declaration():
    A = te.placeholder((8, 8), name="A")
    k = te.reduce_axis((0, 8), name="k")
    with pytest.raises(DeclarationError, match=r"compute 'C': reduce axis 'k' is used outside a reduction"):
        te.compute((8,), lambda i: A[i, k], name="C")
    k2 = te.reduce_axis((0, 8), name="k2")
    with pytest.raises(DeclarationError, match=r"reduce axis 'k' is used outside a reduction over it"):
        te.compute((8,), lambda i: te.sum(A[i, k], axis=k2), name="C")
    other = te.compute((8,), lambda j: A[j, 0], name="other")
    j = other.op.axis[0]
    with pytest.raises(DeclarationError, match=r"axis 'j' is not an axis of this compute \(its axes: i\)"):
        te.compute((8,), lambda i: A[i, j], name="C")


def test_negative_trial_counts_are_refused():
    with pytest.raises(ValueError, match=r"num_measure_trials -5 must be >= 0"):
        TuningOptions(num_measure_trials=-5)
    with pytest.raises(ValueError, match=r"num_measure_trials 2.5 must be an int"):
        TuningOptions(num_measure_trials=2.5)  # type: ignore[arg-type]
    options = TuningOptions(num_measure_trials=np.int64(8), early_stopping=-1)
    assert options.num_measure_trials == 8 and type(options.num_measure_trials) is int
