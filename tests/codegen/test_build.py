"""``codegen.build.build`` and the kernel it returns: every misuse is a clear error, never a crash.

Machine code trusts its arguments blindly, so the kernel checks each array (count, shape,
dtype, C-contiguity, writeability of outputs) and ``build`` checks the target and that the
state belongs to the DAG before anything is compiled. Building or calling twice gives the
same result.
"""

from __future__ import annotations

import numpy as np
import pytest
from differential import check_schedule, run_kernel, workloads

from codegen.build import build
from codegen.llvm import CodegenError, Kernel, KernelArgumentError
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.state import ScheduleError
from ir.reference import evaluate, random_inputs


@pytest.fixture(scope="module")
def dag() -> ComputeDAG:
    return ComputeDAG(workloads.matmul(5, 3, 4))


@pytest.fixture(scope="module")
def kernel(dag: ComputeDAG) -> Kernel:
    s = get_init_state(dag)
    s.split("C", "i", [2])
    return build(dag, s)


def arrays(dag: ComputeDAG) -> list[np.ndarray]:
    """Random inputs and a zeroed output, in ``dag.tensors`` order."""
    a, b = random_inputs(dag, seed=1)
    return [a, b, np.zeros((5, 3), np.float32)]


# kernel arguments -------------------------------------------------------------------------


def test_wrong_number_of_arrays(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    with pytest.raises(
        KernelArgumentError, match=r"kernel 'default_function' takes 3 arrays \(A, B, C\), got 2"
    ):
        kernel(a, b)
    with pytest.raises(KernelArgumentError, match=r"takes 3 arrays \(A, B, C\), got 4"):
        kernel(a, b, c, c)
    with pytest.raises(KernelArgumentError, match=r"got 0"):
        kernel()


def test_wrong_shape(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    with pytest.raises(
        KernelArgumentError, match=r"argument 0 'A': shape \(4, 5\) does not match the kernel's \(5, 4\)"
    ):
        kernel(np.ascontiguousarray(a.T), b, c)
    with pytest.raises(KernelArgumentError, match=r"argument 2 'C': shape \(15,\) does not match"):
        kernel(a, b, c.reshape(15))


def test_wrong_dtype(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    with pytest.raises(
        KernelArgumentError, match=r"argument 1 'B': dtype float64 does not match the kernel's float32"
    ):
        kernel(a, b.astype(np.float64), c)
    with pytest.raises(KernelArgumentError, match=r"argument 2 'C': dtype int32 does not match"):
        kernel(a, b, c.astype(np.int32))


def test_not_an_array(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    with pytest.raises(KernelArgumentError, match=r"argument 0 'A': expected a numpy array, got list"):
        kernel(a.tolist(), b, c)


def test_non_contiguous_array(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    fortran = np.asfortranarray(a)
    with pytest.raises(KernelArgumentError, match=r"argument 0 'A': array is not C-contiguous \(strides"):
        kernel(fortran, b, c)
    wide = np.zeros((5, 6), np.float32)
    with pytest.raises(KernelArgumentError, match=r"argument 2 'C': array is not C-contiguous"):
        kernel(a, b, wide[:, ::2])


def test_read_only_output_is_refused_and_left_alone(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    c.flags.writeable = False
    with pytest.raises(
        KernelArgumentError, match=r"argument 2 'C': the kernel writes this array but it is read-only"
    ):
        kernel(a, b, c)
    assert not np.any(c)


def test_read_only_inputs_are_fine(dag: ComputeDAG, kernel: Kernel) -> None:
    a, b, c = arrays(dag)
    a.flags.writeable = False
    b.flags.writeable = False
    kernel(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


# build ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["cuda", "cuda -arch=sm_80"])
def test_unsupported_target_kind(dag: ComputeDAG, target: str) -> None:
    with pytest.raises(CodegenError, match=r"build\(\) compiles for 'llvm' targets .* target 'cuda"):
        build(dag, None, target)


def test_unknown_target_strings(dag: ComputeDAG) -> None:
    with pytest.raises(
        ValueError, match=r"unknown target kind 'opencl' in 'opencl'; expected one of: llvm, cuda"
    ):
        build(dag, None, "opencl")
    with pytest.raises(ValueError, match=r"unknown option -foo for target kind 'llvm'"):
        build(dag, None, "llvm -foo=1")
    with pytest.raises(ValueError, match=r"target must be a string or a Target, got 3"):
        build(dag, None, 3)  # type: ignore[arg-type]


def test_cross_target_cannot_run_here(dag: ComputeDAG) -> None:
    with pytest.raises(CodegenError, match=r"aarch64-linux-gnu cannot run in this process"):
        build(dag, None, "llvm -mtriple=aarch64-linux-gnu")


def test_gpu_binding_does_not_build_for_llvm(dag: ComputeDAG) -> None:
    s = get_init_state(dag)
    s.bind("C", "i", "threadIdx.x")
    with pytest.raises(
        CodegenError, match=r"loop 'i' is bound to threadIdx.x: the LLVM back end runs CPU code only"
    ):
        build(dag, s)


def test_state_with_unknown_split_lengths(dag: ComputeDAG) -> None:
    s = get_init_state(dag)
    s.split("C", "i", [None])
    with pytest.raises(ScheduleError, match=r"cannot lower a state with unknown split lengths"):
        build(dag, s)


def test_state_of_another_dag(dag: ComputeDAG) -> None:
    """A state of a larger matmul would write 64 rows into C's 5: refused before lowering."""
    bigger = get_init_state(ComputeDAG(workloads.matmul(64, 3, 4)))
    bigger.split("C", "i", [2])
    with pytest.raises(
        ScheduleError,
        match=r"stage 'A' of the state is float32\[64, 4\] but the DAG's tensor 'A' is float32\[5, 4\]",
    ):
        build(dag, bigger)
    with pytest.raises(ScheduleError, match=r"cannot lower: stage 'A' of the state"):
        build(dag, bigger.loop_state)
    softmax = get_init_state(ComputeDAG(workloads.softmax()))
    with pytest.raises(ScheduleError, match=r"the state has no stage 'A' for tensor 'A' of the DAG"):
        build(dag, softmax)


def test_state_of_a_dag_with_the_same_shapes_but_another_body(dag: ComputeDAG) -> None:
    a = te.placeholder((5, 4), name="A")
    b = te.placeholder((4, 3), name="B")
    k = te.reduce_axis((0, 4), name="k")
    c = te.compute((5, 3), lambda i, j: te.sum(a[i, k] + b[k, j], axis=k), name="C")
    other = get_init_state(ComputeDAG([a, b, c]))
    with pytest.raises(ScheduleError, match=r"the State was made from another DAG\n--- its DAG\n"):
        build(dag, other)
    redeclared = get_init_state(ComputeDAG(workloads.matmul(5, 3, 4)))
    redeclared.split("C", "i", [2])
    build(dag, redeclared)  # the same workload declared again: fine


def test_wrong_argument_types(dag: ComputeDAG) -> None:
    with pytest.raises(TypeError, match=r"build\(\) takes a ComputeDAG as dag, got list"):
        build(workloads.matmul(5, 3, 4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"state must be a State, a LoopState or None, got str"):
        build(dag, "split i by 2")  # type: ignore[arg-type]


def test_bad_kernel_name(dag: ComputeDAG) -> None:
    with pytest.raises(CodegenError, match=r"PrimFunc name 'my kernel' is not a C identifier"):
        build(dag, name="my kernel")


# determinism ------------------------------------------------------------------------------


def test_building_twice_and_calling_twice_give_the_same_result(dag: ComputeDAG) -> None:
    s = get_init_state(dag)
    s.split("C", "j", [2])
    s.parallel("C", "i")
    inputs = random_inputs(dag, seed=5)
    first = run_kernel(dag, build(dag, s), inputs)
    second_kernel = build(dag, s)
    second = run_kernel(dag, second_kernel, inputs)
    third = run_kernel(dag, second_kernel, inputs)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(second[0], third[0])
    np.testing.assert_allclose(first[0], evaluate(dag, inputs)[0], rtol=1e-4, atol=1e-4)


def test_calling_overwrites_a_used_output(dag: ComputeDAG, kernel: Kernel) -> None:
    """Outputs are written, not accumulated into: a second call on a dirty array gives the
    same values."""
    a, b, c = arrays(dag)
    kernel(a, b, c)
    once = c.copy()
    kernel(a, b, c)
    np.testing.assert_array_equal(c, once)


def test_build_accepts_a_state_a_loop_state_or_none(dag: ComputeDAG) -> None:
    s = get_init_state(dag)
    s.split("C", "i", [2])
    for state in (None, s, s.loop_state):
        checked_inputs = random_inputs(dag, seed=2)
        (out,) = run_kernel(dag, build(dag, state), checked_inputs)
        np.testing.assert_allclose(out, evaluate(dag, checked_inputs)[0], rtol=1e-4, atol=1e-4)


def test_check_schedule_on_the_same_dag_twice_agrees(dag: ComputeDAG) -> None:
    first = check_schedule(dag, lambda s: s.split("C", "i", [2]))
    second = check_schedule(dag, lambda s: s.split("C", "i", [2]))
    np.testing.assert_array_equal(first.outputs[0], second.outputs[0])
