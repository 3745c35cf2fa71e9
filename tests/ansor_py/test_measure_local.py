"""LocalBuilder and LocalRunner: real candidates measured, bad ones classified, never fatal.

Bad candidates are real shared libraries built from C by a ``build_func`` (a kernel that
segfaults, aborts, loops forever, writes wrong values, returns an error status, or a file
that is no library at all); each must become its error code while the valid candidates of
the same batch still measure, with plausible costs.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ansor_py.measure import (
    ERROR_COST,
    LocalBuilder,
    LocalRunner,
    MeasureErrorNo,
    MeasureInput,
    default_build_func,
)
from ansor_py.measure.local import HOPELESS_FLOOR_S
from ansor_py.search_task import SearchTask
from ansor_py.workload_registry import register_workload
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState, initial_state
from ir.loop_state.steps import SplitStep
from ir.topi.workloads import gemm

N = 16


@register_workload("test_measure_local_matmul")
def matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func="test_measure_local_matmul", args=(N, N, N), target="llvm")


@pytest.fixture(scope="module")
def runner():
    with LocalRunner(timeout=3, number=2, repeat=2, min_repeat_ms=5) as r:
        yield r


def split_state(task: SearchTask, factor: int) -> LoopState:
    """The matmul with its ``i`` loop split by ``factor`` (the tag a build_func reads)."""
    s = get_init_state(task.compute_dag)
    s.split("C", "i", [factor])
    return s.loop_state


def tuned_states(task: SearchTask) -> list[LoopState]:
    """A few valid schedules of the matmul: tiled, parallel, vectorized, unrolled."""
    states = []
    for factor in (2, 4, 8):
        s = get_init_state(task.compute_dag)
        io, ii = s.split("C", "i", [factor])
        jo, ji = s.split("C", "j", [8])
        k = s["C"].iters[4]
        s.reorder("C", [io, jo, k, ii, ji])
        s.parallel("C", io)
        s.vectorize("C", ji)
        states.append(s.loop_state)
    s = get_init_state(task.compute_dag)
    s.unroll("C", s["C"].iters[2])
    states.append(s.loop_state)
    return states


# C kernels for the matmul C[N, N] = A @ B, with a behaviour chosen at compile time -------

KERNEL_C = """
#include <stdlib.h>
#include <time.h>
#define N {n}
static double now(void) {{
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}}
int default_function(void** args, int nargs) {{
    const float* A = args[0]; const float* B = args[1]; float* C = args[2];
    if (nargs != 3) return -1;
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {{
            float s = 0.0f;
            for (int k = 0; k < N; ++k) s += A[i * N + k] * B[k * N + j];
            C[i * N + j] = s;
        }}
#if defined(CRASH)
    *(volatile int*)0 = 1;
#elif defined(ABORT)
    abort();
#elif defined(HANG)
    for (volatile int x = 0;; ++x) {{}}
#elif defined(WRONG)
    C[3 * N + 5] += 0.5f;
#elif defined(STATUS)
    return 7;
#elif defined(SPIN_MS)
    double end = now() + SPIN_MS * 1e-3;
    while (now() < end) {{}}
#endif
    return 0;
}}
"""


def compile_kernel(path: str, define: str | None) -> None:
    source = Path(path).with_suffix(".c")
    source.write_text(KERNEL_C.format(n=N))
    flags = [f"-D{define}"] if define else []
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", *flags, "-o", path, str(source)], check=True)


#: split factor of the state -> how the C build behaves
BEHAVIOURS = {1: "CRASH", 3: "HANG", 5: "WRONG", 6: "ABORT", 7: "STATUS", 9: "SPIN_MS=2"}


def c_build_func(task: SearchTask, state: LoopState, path: str) -> None:
    """Build a misbehaving C kernel for tagged states, the real kernel otherwise."""
    step = state.transform_steps[0] if state.transform_steps else None
    factor = step.lengths[0] if isinstance(step, SplitStep) else None
    if factor == 10:
        Path(path).write_bytes(b"this is not an ELF shared object")
    elif factor == 11:
        raise ValueError("the custom build refused this state")
    elif factor == 12:
        time.sleep(30)
    elif factor == 13:
        raise KeyError("a bug in the build function")
    elif factor == 14:
        os.kill(os.getpid(), signal.SIGKILL)  # the compiler dies (say, the OOM killer)
    elif factor in BEHAVIOURS:
        compile_kernel(path, BEHAVIOURS[factor])
    else:
        default_build_func(task, state, path)


# valid programs ------------------------------------------------------------------------


def test_valid_batch_measures_with_plausible_costs(task: SearchTask, runner: LocalRunner) -> None:
    inputs = [MeasureInput(task, s) for s in tuned_states(task)]
    built = LocalBuilder(timeout=30, n_parallel=2).build(inputs, verbose=0)
    assert [b.error_no for b in built] == [MeasureErrorNo.NO_ERROR] * len(inputs)
    assert all(os.path.isfile(b.filename) and b.time_cost > 0 for b in built)
    results = runner.run(inputs, built, verbose=0)
    for res, b in zip(results, built, strict=True):
        assert res.error_no is MeasureErrorNo.NO_ERROR, res.error_msg
        assert len(res.costs) == 2  # repeat
        # 2 * 16^3 flops: more than 1e-8 s (800 GFLOP/s, impossible here); under 1 s even
        # when busy neighbours delay the OpenMP barriers of the 2-thread kernels by time slices
        assert all(1e-8 < c < 1.0 for c in res.costs), res.costs
        assert res.all_cost >= b.time_cost and res.timestamp > 1.6e9
        assert not os.path.exists(b.filename)  # the runner deletes each library after use


def test_costs_follow_the_kernel_time(task: SearchTask) -> None:
    """A C kernel that spins 2 ms per call is timed at 2 ms per call (number adapts to
    min_repeat_ms; each repeat gives one cost)."""
    inp = MeasureInput(task, split_state(task, 9))
    built = LocalBuilder(build_func=c_build_func).build([inp], verbose=0)
    with LocalRunner(number=1, repeat=3, min_repeat_ms=10) as runner:
        (res,) = runner.run([inp], built, verbose=0)
    assert res.error_no is MeasureErrorNo.NO_ERROR, res.error_msg
    assert len(res.costs) == 3
    # never less than the spin; more when busy processes take the core in between
    assert all(1.9e-3 < c < 0.5 for c in res.costs), res.costs


def test_cache_flush_forces_single_runs(task: SearchTask) -> None:
    runner = LocalRunner(number=5, min_repeat_ms=50, repeat=2, enable_cpu_cache_flush=True)
    assert (runner.number, runner.min_repeat_ms) == (1, 0)
    inp = MeasureInput(task, tuned_states(task)[0])
    with runner:
        (res,) = runner.run([inp], LocalBuilder().build([inp], verbose=0), verbose=0)
    assert res.error_no is MeasureErrorNo.NO_ERROR, res.error_msg
    assert len(res.costs) == 2 and all(0 < c < 1.0 for c in res.costs), res.costs


# bad candidates --------------------------------------------------------------------------


def test_runtime_errors_cost_one_record_each(task: SearchTask) -> None:
    good = tuned_states(task)[0]
    tags = [1, None, 3, None, 5, None, 6, 7, 10, None]
    states = [good if t is None else split_state(task, t) for t in tags]
    inputs = [MeasureInput(task, s) for s in states]
    built = LocalBuilder(build_func=c_build_func).build(inputs, verbose=0)
    assert all(b.error_no is MeasureErrorNo.NO_ERROR for b in built), [b.error_msg for b in built]
    # timeout 4 s: a correct kernel in a fresh child beside busy processes needs far less;
    # no slowdown cut (its test is below): the hanging kernel waits the timeout
    with LocalRunner(timeout=4, number=1, min_repeat_ms=0, slowdown_limit=None) as runner:
        start = time.monotonic()
        results = runner.run(inputs, built, verbose=0)
        elapsed = time.monotonic() - start
    codes = [r.error_no for r in results]
    E = MeasureErrorNo
    assert codes == [
        E.RUNTIME_DEVICE,
        E.NO_ERROR,
        E.RUN_TIMEOUT,
        E.NO_ERROR,
        E.WRONG_ANSWER,
        E.NO_ERROR,
        E.RUNTIME_DEVICE,
        E.RUNTIME_DEVICE,
        E.COMPILE_DEVICE,
        E.NO_ERROR,
    ], [r.error_msg for r in results]
    messages = [r.error_msg for r in results]
    assert "SIGSEGV" in messages[0]
    assert "took longer than 4 s" in messages[2]
    assert "output 'C' differs from the reference at 1 of 256 elements: max error 0.5" in messages[4]
    assert "index (3, 5)" in messages[4]
    assert "SIGABRT" in messages[6]
    assert "error status 7" in messages[7]
    assert "cannot load" in messages[8]
    for res in results:
        if res.ok:
            assert all(0 < c < 1.0 for c in res.costs), res.costs
        else:
            assert res.costs == (ERROR_COST,)
    assert elapsed < 40  # one 4 s timeout and a few child restarts, not a timeout each


def test_a_hopeless_candidate_is_given_up_long_before_the_timeout(task: SearchTask) -> None:
    """The cut (HOPELESS_FLOOR_S plus 100x the fastest program's time) and its re-check
    (twice the cut) end a hanging candidate long before the 60 s timeout. Only behaviour is
    asserted, never the machine's speed: with busy processes beside the test, the fast
    program's time (and so the cut) grows, and the bounds below still hold."""
    # a serial program: a parallel one's time under load is OpenMP barriers waiting for time slices
    good, hang = MeasureInput(task, tuned_states(task)[3]), MeasureInput(task, split_state(task, 3))
    builder = LocalBuilder(build_func=c_build_func)
    built = builder.build([good, hang], verbose=0)
    with LocalRunner(timeout=60, number=1, min_repeat_ms=0) as runner:
        assert runner.time_limit(task.workload_key) == (60.0, "")  # nothing measured yet
        start = time.monotonic()
        results = runner.run([good, hang], built, verbose=0)
        elapsed = time.monotonic() - start
        limit, why = runner.time_limit(task.workload_key)
    assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUN_TIMEOUT]
    # the cut follows the formula: the checking call and one timed call at 100x the fastest
    assert limit == pytest.approx(HOPELESS_FLOOR_S + 100 * results[0].median_cost * 2)
    assert limit < 10 and elapsed < 45  # cut + re-check at twice the cut + child starts
    assert runner.rechecked == 1 and runner.rescued == 0
    assert "100x the task's fastest program so far" in why and why in results[1].error_msg
    assert f"and {2 * limit:g} s when re-checked" in results[1].error_msg
    with LocalRunner(timeout=3, number=1, min_repeat_ms=0, slowdown_limit=None) as patient:
        start = time.monotonic()
        results = patient.run([good, hang], builder.build([good, hang], verbose=0), verbose=0)
        assert time.monotonic() - start >= 3 and patient.time_limit(task.workload_key) == (3.0, "")
        assert patient.rechecked == 0  # no cut, nothing to re-check
    assert results[1].error_msg == "running took longer than 3 s"
    with pytest.raises(ValueError, match=r"LocalRunner: slowdown_limit 0\.5 must be >= 1"):
        LocalRunner(slowdown_limit=0.5)


def test_runner_child_stays_warm_until_a_crash(task: SearchTask) -> None:
    good = MeasureInput(task, tuned_states(task)[1])
    crash = MeasureInput(task, split_state(task, 1))
    builder = LocalBuilder(build_func=c_build_func)
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        runner.run([good], builder.build([good], verbose=0), verbose=0)
        pid = runner.child_pid
        runner.run([good, good], builder.build([good, good], verbose=0), verbose=0)
        assert runner.child_pid == pid
        runner.run([crash], builder.build([crash], verbose=0), verbose=0)
        assert runner.child_pid is None
        (res,) = runner.run([good], builder.build([good], verbose=0), verbose=0)
        assert res.ok and runner.child_pid not in (None, pid)


def test_build_errors_are_classified(task: SearchTask, runner: LocalRunner) -> None:
    good = tuned_states(task)[2]
    bad_replay = replace(initial_state(task.compute_dag), transform_steps=(SplitStep(7, 0, N, (4,), True),))
    sketch = get_init_state(task.compute_dag)
    sketch.split("C", "i", [None])
    gpu = get_init_state(task.compute_dag)
    gpu.bind("C", "i", "threadIdx.x")
    states = [
        bad_replay,
        sketch.loop_state,
        gpu.loop_state,
        split_state(task, 11),
        split_state(task, 12),
        split_state(task, 13),
        split_state(task, 14),
        good,
    ]
    inputs = [MeasureInput(task, s) for s in states]
    start = time.monotonic()
    built = LocalBuilder(timeout=1.5, n_parallel=2, build_func=c_build_func).build(inputs, verbose=0)
    assert time.monotonic() - start < 10
    E = MeasureErrorNo
    assert [b.error_no for b in built] == [
        E.INSTANTIATION_ERROR,
        E.INSTANTIATION_ERROR,
        E.COMPILE_HOST,
        E.COMPILE_HOST,
        E.BUILD_TIMEOUT,
        E.UNKNOWN_ERROR,
        E.UNKNOWN_ERROR,
        E.NO_ERROR,
    ], [b.error_msg for b in built]
    messages = [b.error_msg for b in built]
    assert "stage id 7 is out of range" in messages[0]
    assert "unknown split lengths" in messages[1]
    assert "threadIdx.x" in messages[2]
    assert "the custom build refused this state" in messages[3]
    assert "longer than 1.5 s" in messages[4]
    assert "KeyError" in messages[5] and "Traceback" in messages[5]
    assert "the build worker died (exit code -9)" in messages[6]
    assert all(b.filename == "" for b in built[:-1])
    results = runner.run(inputs, built, verbose=0)
    assert [r.error_no for r in results] == [b.error_no for b in built]
    assert [r.error_msg for r in results[:-1]] == messages[:-1]
    assert all(r.costs == (ERROR_COST,) for r in results[:-1])
    assert results[-1].ok


def _build_if_heap_frozen(task: SearchTask, state: LoopState, path: str) -> None:
    """Builds only when the worker has frozen the heap it inherited (``gc.freeze``)."""
    if gc.get_freeze_count() == 0:
        raise RuntimeError("the build worker collects the heap it inherited")
    default_build_func(task, state, path)


def test_build_workers_keep_the_collector_off_the_inherited_heap(task: SearchTask) -> None:
    assert gc.get_freeze_count() == 0  # this process is untouched
    (built,) = LocalBuilder(build_func=_build_if_heap_frozen).build(
        [MeasureInput(task, tuned_states(task)[0])], verbose=0
    )
    assert built.error_no == MeasureErrorNo.NO_ERROR, built.error_msg
    assert gc.get_freeze_count() == 0


# progress and arguments -------------------------------------------------------------------


def test_progress_glyphs(task: SearchTask, capsys: pytest.CaptureFixture[str]) -> None:
    states = [tuned_states(task)[0], split_state(task, 11), split_state(task, 5)]
    inputs = [MeasureInput(task, s) for s in states]
    builder = LocalBuilder(build_func=c_build_func, n_parallel=1)
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        runner.run(inputs, builder.build(inputs, verbose=1), verbose=1)
        assert capsys.readouterr().out == "..E." + "**E*E"
        runner.run(inputs, builder.build(inputs, verbose=0), verbose=0)
        assert capsys.readouterr().out == ""


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"LocalRunner: number 0 must be >= 1"):
        LocalRunner(number=0)
    with pytest.raises(ValueError, match=r"LocalRunner: timeout 0 must be > 0"):
        LocalRunner(timeout=0)
    with pytest.raises(ValueError, match=r"LocalRunner: min_repeat_ms -1 must be >= 0"):
        LocalRunner(min_repeat_ms=-1)
    with pytest.raises(ValueError, match=r"LocalBuilder: n_parallel 0 must be >= 1"):
        LocalBuilder(n_parallel=0)
    with pytest.raises(ValueError, match=r"LocalBuilder: build_func 3 must be callable"):
        LocalBuilder(build_func=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"LocalRunner.run: 1 inputs but 0 build results"):
        LocalRunner().run([None], [])  # type: ignore[list-item]


def test_output_tolerance_grows_with_the_longest_reduction() -> None:
    """A float32 norm over 4096 x 4096 terms may differ from the float64-accumulated reference
    by about 1e-2 without being wrong; a 64-term reduction keeps the base tolerance."""
    from ansor_py.measure.local import TOLERANCES, output_tolerances
    from ir.compute_dag import ComputeDAG
    from ir.topi.workloads import gemm, norm

    assert output_tolerances(ComputeDAG(gemm(8, 8, 64)), "float32") == TOLERANCES["float32"]
    rtol, atol = output_tolerances(ComputeDAG(norm(1, 4096, 4096)), "float32")
    assert rtol == atol == pytest.approx(1e-4 * 128)
    assert output_tolerances(ComputeDAG(gemm(8, 8, 64)), "int32") == (0.0, 0.0)
