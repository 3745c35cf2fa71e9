"""Measuring GPU candidates: ``GPUBuilder`` (lowering, CUDA C and OpenCL C, nvcc for sm_80)
and the runners, ``OpenCLRunner`` on PoCL here and ``CUDARunner`` where a GPU exists.

The tuner's own verification runs on every candidate: its outputs are compared with the
numpy reference before it is timed, and a kernel that computes nothing is a WRONG_ANSWER.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import search_workloads as W
from gpu_tools import opencl_device

import ansor_py as ansor
from ansor_py.cost_model import RandomModel
from ansor_py.measure import MeasureErrorNo, MeasureInput
from ansor_py.measure.gpu_builder import ENTRY_NAME, GPUBuilder, read_artifact
from ansor_py.measure.gpu_runner import CUDARunner, OpenCLRunner
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from codegen.cuda.cuda_kernel import CUDAUnavailableError
from codegen.cuda.source import emit_source
from ir.lower.lower import lower

TARGET = "cuda -arch=sm_80"
SMALL = {"evolutionary_search_population": 64, "sample_init_min_population": 8}


def candidates(func, args, count: int):
    task = SearchTask(func=func, args=args, target=TARGET)
    policy = SketchPolicy(task, RandomModel(seed=0), params=SMALL, seed=2, verbose=0)
    return [MeasureInput(task, s) for s in policy.sample_initial_population()[:count]]


def test_built_candidates_are_verified_and_timed_on_opencl():
    opencl_device()
    inputs = candidates(W.search_test_softmax_nm, (4, 100), 3)
    built = GPUBuilder(n_parallel=2).build(inputs, verbose=0)
    assert [b.error_no for b in built] == [MeasureErrorNo.NO_ERROR] * 3, [b.error_msg for b in built]
    program, document = read_artifact(built[0].filename, "opencl")
    assert document["arch"] == "sm_80" and Path(document["cubin"]).read_bytes()[:4] == b"\x7fELF"
    assert "__kernel" in program.source and "__global__" in document["cuda"]
    with OpenCLRunner(timeout=30, number=2, repeat=2) as runner:
        results = runner.run(inputs, built, verbose=0)
    for result in results:
        assert result.error_no is MeasureErrorNo.NO_ERROR, result.error_msg
        assert len(result.costs) == 2 and all(c > 0 for c in result.costs)


def test_a_kernel_that_computes_nothing_is_a_wrong_answer(tmp_path):
    opencl_device()
    inputs = candidates(W.search_test_matmul, (32, 32, 32), 1)
    (built,) = GPUBuilder(n_parallel=1, arch="").build(inputs, verbose=0)
    artifact = json.loads(Path(built.filename).read_text())
    # every kernel returns before it stores anything: the outputs keep their NaN poison
    artifact["opencl"] = artifact["opencl"].replace(") {\n", ") {\n  return;\n")
    Path(built.filename).write_text(json.dumps(artifact))
    with OpenCLRunner(timeout=30) as runner:
        (result,) = runner.run(inputs, [built], verbose=0)
    assert result.error_no is MeasureErrorNo.WRONG_ANSWER
    assert "output C differs from the reference" in result.error_msg


def test_nvcc_rejection_is_a_device_compile_error(monkeypatch):
    import ansor_py.measure.gpu_builder as gpu_builder

    real = gpu_builder.emit_source

    def broken(func, dialect="cuda"):
        program = real(func, dialect)
        if dialect != "cuda":
            return program
        source = program.source + "\n__global__ void extra() { undeclared_name = 1; }\n"
        return type(program)(program.name, "cuda", source, program.kernels, program.params, program.workspace)

    monkeypatch.setattr(gpu_builder, "emit_source", broken)
    (built,) = GPUBuilder(n_parallel=1).build(candidates(W.search_test_matmul, (16, 16, 16), 1), verbose=0)
    assert built.error_no is MeasureErrorNo.COMPILE_DEVICE
    assert "undeclared_name" in built.error_msg and "sm_80" in built.error_msg


@pytest.mark.slow
def test_tuning_a_gpu_task_records_only_verified_programs(tmp_path):
    """auto_schedule with the GPU builder and the OpenCL runner: the XGBoost model trains on
    the GPU programs' features, and every record is a program that matched numpy."""
    opencl_device()
    task = SearchTask(func=W.search_test_softmax_nm, args=(4, 100), target=TARGET)
    log = tmp_path / "softmax.json"
    with OpenCLRunner(timeout=30) as runner:
        options = ansor.TuningOptions(
            num_measure_trials=16,
            num_measures_per_round=8,
            builder=GPUBuilder(n_parallel=2),
            runner=runner,
            measure_callbacks=[ansor.RecordToFile(log)],
            verbose=0,
        )
        ansor.auto_schedule(task, options, SketchPolicy(task, params=SMALL, seed=0, verbose=0))
    codes = Counter(int(result.error_no) for _, result in ansor.load_records(log))
    assert codes == {0: sum(codes.values())} and sum(codes.values()) >= 16, codes


def test_without_a_gpu_the_cuda_runner_says_what_is_missing():
    try:
        CUDARunner.check_available()
    except CUDAUnavailableError as error:
        assert "pycuda" in str(error) or "GPU" in str(error)
        inputs = candidates(W.search_test_matmul, (16, 16, 16), 1)
        built = GPUBuilder(n_parallel=1).build(inputs, verbose=0)
        with CUDARunner(timeout=60) as runner:
            (result,) = runner.run(inputs, built, verbose=0)
        assert result.error_no is MeasureErrorNo.RUNTIME_DEVICE
        assert "CUDAUnavailableError" in result.error_msg
    else:
        pytest.skip("a GPU is present: test_cuda_runner_on_a_gpu covers the runner")


@pytest.mark.gpu
def test_cuda_runner_on_a_gpu():
    try:
        CUDARunner.check_available()
    except CUDAUnavailableError as error:
        pytest.skip(f"no NVIDIA GPU here: {error}")
    inputs = candidates(W.search_test_matmul, (64, 64, 64), 4)
    built = GPUBuilder(n_parallel=2).build(inputs, verbose=0)
    with CUDARunner(timeout=60) as runner:
        results = runner.run(inputs, built, verbose=0)
    assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR] * 4, [r.error_msg for r in results]


def test_print_best_gives_the_cuda_and_opencl_text_of_the_best_record(tmp_path):
    import ansor_py as ansor_api
    from ansor_py.measure.types import MeasureResult

    inputs = candidates(W.search_test_min_nm, (8, 64), 2)
    log = tmp_path / "min.json"
    ansor_api.save_records(
        log,
        inputs,
        [MeasureResult((2e-6,), MeasureErrorNo.NO_ERROR), MeasureResult((1e-6,), MeasureErrorNo.NO_ERROR)],
    )
    task = inputs[0].task
    best = inputs[1].state  # the lower of the two costs
    assert str(best) != str(inputs[0].state), "the two candidates must differ for this test"
    for mode in ("cuda", "opencl"):
        expected = emit_source(lower(task.compute_dag, best, name=ENTRY_NAME), mode).source
        assert ansor_api.print_best(task, log, print_mode=mode) == expected
    assert 'extern "C" __global__ void' in ansor_api.print_best(task, log, print_mode="cuda")
    assert "__kernel" in ansor_api.print_best(task, log, print_mode="opencl")
    script = ansor_api.print_best(task, log)
    namespace = {"dag": task.compute_dag}
    exec(script, namespace)  # the step script rebuilds the best state
    assert namespace["s"].transform_steps == best.transform_steps
    with pytest.raises(ValueError, match="print_mode 'ptx' is not one of schedule, cuda, opencl"):
        ansor_api.print_best(task, log, print_mode="ptx")
