"""``ansor_py.explainer``: every stage of one kernel, present, non-trivial and in order; the IR
and assembly are those of the kernel that runs; the run is checked against numpy, and a
wrong kernel is reported as wrong; bad input fails before anything is printed.
"""

from __future__ import annotations

import ctypes
import gc
import io
import itertools
import re
import weakref
from pathlib import Path

import numpy as np
import pytest
from search_workloads import search_test_double_matmul, search_test_matmul

import ansor_py as ansor
from ansor_py.explainer import Explanation, explain, explain_record, run_kernel
from ansor_py.hand_schedules import schedule_gemm
from ansor_py.measure import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.records import RecordToFile, save_records
from ansor_py.tuning import print_best
from codegen.llvm import CodegenError, LLVMModule, load_library
from codegen.llvm import build as llvm_build
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.state import ScheduleError, initial_state
from ir.lower.lower import PASSES, lower

N = 64
#: a packed (vector) fused multiply-add: vfmadd231ps, vfmadd213ps ... on xmm/ymm/zmm
#: the kernel's packed entry point in LLVM IR (llvmlite quotes names: @"gemm64")
DEFINE_GEMM64 = re.compile(r'define .*@"?gemm64"?\(')
VECTOR_FMA = re.compile(r"\bvfmadd\d{3}ps\b")
AARCH64 = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"


def matmul_dag(n: int = N) -> ComputeDAG:
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return ComputeDAG([A, B, C])


@pytest.fixture(scope="module")
def dag() -> ComputeDAG:
    return matmul_dag()


@pytest.fixture(scope="module")
def gemm_state(dag: ComputeDAG) -> ansor.State:
    return schedule_gemm(dag, ansor.Target.parse("llvm"))


@pytest.fixture(scope="module")
def explained(dag: ComputeDAG, gemm_state: ansor.State) -> tuple[Explanation, str]:
    out = io.StringIO()
    explanation = explain(dag, gemm_state, "llvm", out=out, name="gemm64", repeat=3, min_repeat_ms=1.0)
    return explanation, out.getvalue()


def test_every_stage_is_printed_in_pipeline_order(explained: tuple[Explanation, str]) -> None:
    explanation, printed = explained
    headers = re.findall(r"^== (.*)$", printed, flags=re.MULTILINE)
    assert headers == [header for header, _ in explanation.sections()]
    numbers = [header.split(" ")[0] for header in headers]
    lowered = [f"4.{i}" for i in range(1, len(PASSES) + 1)]
    assert numbers == ["1.", "2.", "3.", *lowered, "5.1", "5.2", "6.", "7."]
    assert printed == str(explanation)  # what was printed is what is returned
    for header, text in explanation.sections():
        assert text.strip(), f"stage '{header}' is empty"


def test_each_stage_shows_what_it_should(explained: tuple[Explanation, str], dag: ComputeDAG) -> None:
    e, _ = explained
    assert e.dag == str(dag) and "C(i, j) += (A[i, k]*B[k, j])" in e.dag
    # the loop tree has the schedule's annotations and bound-inferred extents (no "None")
    assert "parallel j.0" in e.loop_tree and "vectorize" in e.loop_tree and "(None)" not in e.loop_tree
    assert e.python.startswith("from ir.loop_state.api import get_init_state\ns = get_init_state(dag)\n")
    assert 's.cache_write("C", "local")' in e.python and "s.split(" in e.python
    # one program per pass, each as lowered with stop_after, each pass changing something
    assert list(e.lowered) == list(PASSES)
    programs = list(e.lowered.values())
    assert all(p.startswith("void gemm64(float32 A[64, 64]") for p in programs)
    assert all(before != after for before, after in itertools.pairwise(programs))
    assert "C.local[" in programs[0] and "allocate B.global" in programs[0]
    # IR: the kernel's own function, emitted, then optimised (vector FMA intrinsics appear)
    assert re.search(DEFINE_GEMM64, e.llvm_ir_unoptimized)
    assert re.search(DEFINE_GEMM64, e.llvm_ir)
    assert "gemm64_compute" in e.llvm_ir_unoptimized and e.llvm_ir != e.llvm_ir_unoptimized
    assert "llvm.fma" in e.llvm_ir or "fmul" in e.llvm_ir
    # assembly of the in-process kernel: its entry symbol and packed FMAs
    assert e.assembly_of == "in-process kernel"
    assert re.search(r"^gemm64:", e.assembly, flags=re.MULTILINE)
    assert VECTOR_FMA.search(e.assembly), "a vectorized GEMM compiles to packed FMAs"


def test_the_run_is_verified_and_timed(explained: tuple[Explanation, str], dag: ComputeDAG) -> None:
    e, printed = explained
    assert e.run is not None and e.run.verified, e.run
    assert e.max_error is not None and 0.0 <= e.max_error < 1e-4
    assert e.seconds is not None and e.seconds > 0 and len(e.run.repeats) == 3
    assert e.run.seconds == sorted(e.run.repeats)[1]
    assert e.run.gflops == pytest.approx(dag.flop_ct / e.seconds / 1e9)
    assert dag.flop_ct == e.run.flop == 2 * N**3
    assert "max |error|" in printed and ", OK" in printed and "GFLOP/s" in printed


def test_ir_and_assembly_are_the_running_kernels_own(dag: ComputeDAG, gemm_state: ansor.State) -> None:
    kernel = ansor.build(dag, gemm_state, name="gemm64")
    module = kernel.module
    assert isinstance(module, LLVMModule) and module.get_kernel() is kernel
    # the object the JIT engine loaded holds the very bytes the kernel's entry point runs
    # (its first instructions: further on, relocated addresses differ from the object's)
    running = ctypes.string_at(kernel.address, 20)
    assert running in kernel.object_code
    assert kernel.llvm_ir == module.get_ir()
    assert re.search(DEFINE_GEMM64, kernel.llvm_ir)
    assert re.search(r"^gemm64:", kernel.assembly, flags=re.MULTILINE)
    # the assembly is the JIT code generation, not the exported (position-independent) one,
    # and code generation left the module's IR as it was
    assert kernel.assembly == module.get_jit_asm()
    ir_before = module.get_ir()
    module.get_asm()
    module.get_object()
    assert module.get_ir() == ir_before
    # the kernel still computes the matmul
    rng = np.random.default_rng(1)
    a, b = (rng.uniform(-1, 1, (N, N)).astype(np.float32) for _ in range(2))
    c = np.full((N, N), np.nan, np.float32)
    kernel(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def test_a_kernel_and_its_module_are_freed_without_the_cycle_collector(dag: ComputeDAG) -> None:
    # the kernel keeps its module, the module only a weak reference to the kernel: dropping
    # the kernel frees both (and the JIT engine) at once, not at some later gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        module = llvm_build(lower(dag, None, name="naive"), "llvm")
        kernel = module.get_kernel()
        assert module.get_kernel() is kernel and module.get_jit_object() == kernel.object_code
        kernel_ref, module_ref = weakref.ref(kernel), weakref.ref(module)
        del module, kernel
        assert kernel_ref() is None and module_ref() is None
    finally:
        if was_enabled:
            gc.enable()


def test_explain_shows_what_build_gives(
    explained: tuple[Explanation, str], dag: ComputeDAG, gemm_state: ansor.State
) -> None:
    explanation, _ = explained
    kernel = ansor.build(dag, gemm_state, name="gemm64")
    assert explanation.llvm_ir == kernel.llvm_ir
    assert explanation.assembly == kernel.assembly
    assert explanation.lowered[PASSES[-1]] == str(lower(dag, gemm_state, name="gemm64"))


def test_a_kernel_loaded_from_a_library_keeps_no_ir(dag: ComputeDAG, tmp_path: Path) -> None:
    module = llvm_build(lower(dag, None, name="naive"), "llvm")
    path = module.export_library(tmp_path / "naive.so")
    loaded = load_library(str(path), "naive", module.func.params)
    with pytest.raises(CodegenError, match="kernel 'naive' was loaded from a shared library"):
        _ = loaded.assembly


def test_a_wrong_kernel_is_reported_wrong(dag: ComputeDAG) -> None:
    # a kernel that computes A @ B, checked against the reference of sum_k (A B + 1/N),
    # that is A @ B + 1: every element is off by 1
    A, B = dag.placeholders
    k = te.reduce_axis((0, N), name="k")
    C = te.compute((N, N), lambda i, j: te.sum(A[i, k] * B[k, j] + 1.0 / N, axis=k), name="C")
    intended = ComputeDAG([A, B, C])
    kernel = ansor.build(dag, None)
    report = run_kernel(kernel, intended, repeat=1)
    assert not report.verified
    assert report.mismatch is not None
    assert re.match(r"output 'C' differs from the reference at 4096 of 4096 elements", report.mismatch)
    assert report.max_error == pytest.approx(1.0, abs=1e-4)
    assert "WRONG: output 'C' differs" in str(report)


def test_bad_input_fails_before_anything_is_printed(dag: ComputeDAG, gemm_state) -> None:
    out = io.StringIO()
    other = schedule_gemm(matmul_dag(32), ansor.Target.parse("llvm"))
    with pytest.raises(ScheduleError, match="another DAG"):
        explain(dag, other, out=out)
    with pytest.raises(CodegenError, match=r"explain\(\): target 'cuda.*' is not an LLVM target"):
        explain(dag, gemm_state, "cuda", out=out)
    with pytest.raises(ValueError, match="nonsense"):
        explain(dag, gemm_state, "nonsense", out=out)
    with pytest.raises(CodegenError, match=r"cannot run in this process .*pass run=False"):
        explain(dag, None, AARCH64, out=out)
    with pytest.raises(TypeError, match="explain\\(\\) takes a SearchTask or a ComputeDAG, got str"):
        explain("matmul", None, out=out)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeat 0 must be >= 1"):
        explain(dag, None, out=out, repeat=0)
    assert out.getvalue() == ""


def test_a_cross_target_is_explained_without_running(dag: ComputeDAG) -> None:
    out = io.StringIO()
    e = explain(dag, None, AARCH64, run=False, out=out, name="naive_arm")
    assert e.run is None and e.seconds is None and e.max_error is None
    assert e.assembly_of == "exported object"
    assert re.search(r"^naive_arm:", e.assembly, flags=re.MULTILINE)
    assert re.search(r"\bfmadd\b|\bfmla\b|\bfmul\b", e.assembly)  # AArch64 mnemonics, not x86
    assert "vfmadd" not in e.assembly
    assert "aarch64" in e.llvm_ir
    assert "not run (run=False)" in out.getvalue()


# ------------------------------------------------------------------------------------------
# explain_record


@pytest.fixture(scope="module")
def tuned_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ansor.SearchTask]:
    """A 2-trial tuning of a 32^3 matmul into a fresh log (a small search population and no
    re-measuring, to keep it quick)."""
    log = tmp_path_factory.mktemp("explain") / "matmul.json"
    task = ansor.SearchTask(func=search_test_matmul, args=(32, 32, 32), target="llvm")
    options = ansor.TuningOptions(
        num_measure_trials=2,
        num_measures_per_round=2,
        measure_callbacks=[RecordToFile(str(log))],
        remeasure_top_k=0,
        verbose=0,
    )
    small_search = {"evolutionary_search_population": 48, "sample_init_min_population": 8}
    ansor.auto_schedule(task, options, ansor.SketchPolicy(task, params=small_search, verbose=0))
    return log, task


def test_explain_record_explains_the_best_record(tuned_log: tuple[Path, ansor.SearchTask]) -> None:
    log, task = tuned_log
    out = io.StringIO()
    e = explain_record(log, out=out, repeat=2, min_repeat_ms=1.0)
    printed = out.getvalue()
    assert printed.startswith(f"best record of {log}: workload {task.workload_key}, target llvm, measured ")
    assert e.python == print_best(task, log)
    assert e.run is not None and e.run.verified and e.run.inputs.startswith("the task's reference inputs")
    assert e.dag == str(task.compute_dag)
    # the same with the key and the target named
    named = explain_record(log, task.workload_key, "llvm", out=io.StringIO(), run=False)
    assert named.python == e.python and named.assembly_of == "exported object"


def test_explain_record_refuses_a_log_without_the_record(tuned_log, tmp_path: Path) -> None:
    log, _ = tuned_log
    with pytest.raises(ValueError, match=r"no error-free record of workload \[\"search_test_matmul\", 8"):
        explain_record(log, '["search_test_matmul", 8, 8, 8]', out=io.StringIO())
    # a log of two workloads needs the key
    mixed = tmp_path / "mixed.json"
    mixed.write_text(Path(log).read_text())
    other = ansor.SearchTask(func=search_test_double_matmul, args=(16,), target="llvm")
    save_records(
        mixed,
        [MeasureInput(other, initial_state(other.compute_dag))],
        [MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR)],
    )
    out = io.StringIO()
    with pytest.raises(ValueError, match=r"no error-free record for target 'cuda.*' in .*matmul.json"):
        explain_record(log, target="cuda", out=out)
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match=r"holds the best records of 2 .* name one with workload_key"):
        explain_record(mixed, out=io.StringIO())
    e = explain_record(mixed, other.workload_key, out=io.StringIO(), repeat=1, min_repeat_ms=0.0)
    assert e.run is not None and e.run.verified
    assert "E(i, j)" in e.dag
