"""The GPU back end: sampled GPU schedules lowered, written as CUDA C and OpenCL C, the CUDA
text compiled by nvcc for sm_80, the OpenCL text executed on PoCL (real work-groups,
``__local`` memory and barriers on the CPU) and compared with numpy on random inputs.

Programs come from the GPU search space (``SketchPolicy`` on a ``cuda`` target, seeded
random annotation), so thread binding, cooperative shared-memory fetches, vthreads and
cross-thread reductions all appear. Tests that need an NVIDIA GPU are marked ``gpu`` and
skipped, with the reason, where none exists.
"""

from __future__ import annotations

import numpy as np
import pytest
import search_workloads as W
from gpu_tools import opencl_device

from ansor_py.cost_model import RandomModel
from ansor_py.search import SketchPolicy
from ansor_py.search.stage_queries import has_cross_thread_reduction
from ansor_py.search_task import SearchTask
from codegen.cuda import emit_source
from codegen.cuda.nvcc import compile_cuda, nvrtc_available
from codegen.cuda.opencl import OpenCLKernel
from codegen.llvm.errors import CodegenError
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State
from ir.lower import interpreter
from ir.lower.lower import lower
from ir.reference import evaluate

TARGET = "cuda -arch=sm_80"
SMALL_SAMPLING = {"evolutionary_search_population": 64, "sample_init_min_population": 8}

#: (workload, args): every GPU sketch kind TVM's CUDA tests name, at sizes PoCL runs fast;
#: softmax over 100 columns binds a thread extent that is not a power of two
WORKLOADS = [
    (W.search_test_matmul, (64, 64, 64)),
    (W.search_test_double_matmul, (32,)),
    (W.search_test_conv2d_nchw_bn_relu, (1, 7, 7, 16, 16, 3, 1, 1)),
    (W.search_test_max_pool2d, (1, 16, 16, 8, 1)),
    (W.search_test_min_nm, (8, 100)),
    (W.search_test_softmax_nm, (4, 100)),
    (W.search_test_softmax_abcd, (2, 3, 4, 64)),
    (W.search_test_zero_rank_reduce, (64,)),
]


def sampled_states(func, args, count: int, seed: int = 1):
    task = SearchTask(func=func, args=args, target=TARGET)
    policy = SketchPolicy(task, RandomModel(seed=seed), params=SMALL_SAMPLING, seed=seed, verbose=0)
    return task.compute_dag, policy.sample_initial_population()[:count]


def random_inputs(dag, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, size=[int(x) for x in p.shape]).astype(p.dtype) for p in dag.placeholders]


def empty_outputs(dag) -> list[np.ndarray]:
    """Outputs filled with a value no correct kernel leaves (NaN, or the largest integer)."""
    return [
        np.full(
            [int(x) for x in t.shape],
            np.nan if t.dtype.startswith("float") else np.iinfo(t.dtype).max,
            t.dtype,
        )
        for t in dag.outputs
    ]


def run_opencl(dag, func, inputs):
    kernel = OpenCLKernel(emit_source(func, "opencl"), device=opencl_device())
    outputs = empty_outputs(dag)
    kernel(*inputs, *outputs)
    return outputs


@pytest.mark.parametrize("func,args", WORKLOADS, ids=[f.__name__ for f, _ in WORKLOADS])
def test_sampled_gpu_programs_run_on_opencl_and_match_numpy(func, args):
    dag, states = sampled_states(func, args, count=4)
    assert states, "sampling gave no GPU program"
    inputs = random_inputs(dag)
    expected = evaluate(dag, inputs)
    for state in states:
        outputs = run_opencl(dag, lower(dag, state), inputs)
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(state))


@pytest.mark.parametrize(
    "func,args", [WORKLOADS[0], WORKLOADS[2], WORKLOADS[5]], ids=["matmul", "conv2d_bn_relu", "softmax"]
)
def test_sampled_gpu_programs_compile_with_nvcc_for_sm80(func, args):
    dag, states = sampled_states(func, args, count=2)
    for state in states:
        program = emit_source(lower(dag, state), "cuda")
        compiled = compile_cuda(program, "sm_80", compiler="nvcc")
        assert compiled.image[:4] == b"\x7fELF", "a cubin is an ELF file"
        if nvrtc_available():  # NVRTC in process compiles the same text
            assert compile_cuda(program, "sm_80", compiler="nvrtc").image[:4] == b"\x7fELF"
        for kernel in program.kernels:
            assert (
                f"void __launch_bounds__({kernel.launch.threads_per_block}) {kernel.name}(" in program.source
            )


def test_cross_thread_reduction_splits_the_reduction_over_a_block():
    """A cross-thread reduction's lanes live in shared memory and are combined between
    barriers; the same statements are right run one thread after another (interpreter)
    and all at once (OpenCL)."""
    dag, states = sampled_states(W.search_test_min_nm, (8, 100), count=16)
    cross = [s for s in states if any(has_cross_thread_reduction(s, k) for k in range(len(s.stages)))]
    assert cross, "no sampled state reduces across threads"
    inputs = random_inputs(dag)
    (expected,) = evaluate(dag, inputs)
    func = lower(dag, cross[0])
    source = emit_source(func, "cuda").source
    assert "__shared__ float B_red_buf0[" in source and "__syncthreads();" in source
    sequential = empty_outputs(dag)
    interpreter.run(func, [*inputs, *sequential])
    (sequential,) = sequential
    np.testing.assert_allclose(sequential, expected, rtol=1e-6)
    (parallel,) = run_opencl(dag, func, inputs)
    np.testing.assert_allclose(parallel, expected, rtol=1e-6)


def test_floor_division_of_negative_integers_rounds_down():
    """``//`` and ``%`` round toward minus infinity, as in numpy, where C's ``/`` and ``%``
    would truncate: the emitter calls its helper when an operand may be negative."""
    a = te.placeholder((64,), name="A", dtype="int32")
    q = te.compute((64,), lambda i: a[i] // 3 + (a[i] - 2) % 5 * 100, name="Q")
    dag = ComputeDAG([a, q])
    func = lower(dag)
    program = emit_source(func, "opencl")
    assert "ansor_floordiv_int32" in program.source and "ansor_floormod_int32" in program.source
    inputs = [np.random.default_rng(0).integers(-50, 50, size=64).astype(np.int32)]
    (got,) = run_opencl(dag, func, inputs)
    np.testing.assert_array_equal(got, inputs[0] // 3 + (inputs[0] - 2) % 5 * 100)


def test_an_unbound_program_runs_as_one_thread():
    """The naive schedule binds nothing: it runs as a kernel of one thread, and computes
    what the program says."""
    dag, _ = sampled_states(W.search_test_matmul, (16, 16, 16), count=1)
    func = lower(dag)
    program = emit_source(func, "opencl")
    assert [k.launch.grid + k.launch.block for k in program.kernels] == [(1, 1, 1, 1, 1, 1)]
    inputs = random_inputs(dag)
    (got,) = run_opencl(dag, func, inputs)
    np.testing.assert_allclose(got, inputs[0] @ inputs[1], rtol=1e-5, atol=1e-5)


def test_cpu_annotations_are_refused_with_the_loop_named():
    dag, _ = sampled_states(W.search_test_matmul, (16, 16, 16), count=1)
    s = State(dag)
    s.parallel("C", "i")
    with pytest.raises(CodegenError, match="loop 'i' is parallel, a CPU annotation"):
        emit_source(lower(dag, s), "cuda")
    with pytest.raises(ValueError, match="GPU dialect 'metal' is not one of cuda, opencl"):
        emit_source(lower(dag), "metal")


def test_nvcc_errors_are_codegen_errors_with_nvcc_messages():
    dag, states = sampled_states(W.search_test_matmul, (16, 16, 16), count=1)
    program = emit_source(lower(dag, states[0]), "cuda")
    broken = type(program)(
        program.name, "cuda", program.source.replace("__syncthreads();", "undefined_call();"), *_rest(program)
    )
    if broken.source == program.source:
        broken = type(program)(program.name, "cuda", program.source + "\nint x = ;\n", *_rest(program))
    for compiler in ("nvcc", "nvrtc") if nvrtc_available() else ("nvcc",):
        with pytest.raises(
            CodegenError, match=f"{compiler} could not compile program default_function for sm_80"
        ):
            compile_cuda(broken, "sm_80", compiler=compiler)


def _rest(program):
    return program.kernels, program.params, program.workspace


def test_gpu_programs_fill_the_cost_models_gpu_features():
    """is_gpu and the thread-axis lengths of TVM's per-store features come from the bound
    loops, so the XGBoost model can tell GPU schedules apart by their launch."""
    from ansor_py.cost_model.features import named_features_from_primfunc

    dag, states = sampled_states(W.search_test_matmul, (64, 64, 64), count=2)
    for state in states:
        func = lower(dag, state)
        (kernel,) = emit_source(func, "cuda").kernels
        features = named_features_from_primfunc(func)
        assert features["is_gpu"].max() > 0
        # log2p-scaled lengths: the largest thread and block extents of the launch
        assert np.isclose(features["threadIdx_x_len"].max(), np.log2(kernel.launch.block[0] + 1))
        assert np.isclose(features["blockIdx_x_len"].max(), np.log2(kernel.launch.grid[0] + 1))
