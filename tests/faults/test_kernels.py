"""Faulty kernels meet ``LocalRunner`` (issue 11, "Kernels"): each candidate's fault is its
own error record, never a silent NO_ERROR and never blamed on the next candidate.

* out-of-bounds writes: a real lowered program with one extra store past (or before) its
  output, or into an input, is a RUNTIME_DEVICE error naming the buffer, and the correct
  candidate measured right after it is NO_ERROR in a fresh runner child;
* the slowdown cut: a correct program cut by ``slowdown_limit`` is run once more with
  twice the limit and recorded with its time; ``recheck_cut=False`` keeps the old cut;
* ``on_result(i, result)`` comes as soon as each result is final, before the next
  candidate runs;
* a runner child that reports a cost of 0, a negative, NaN or infinite cost, or none,
  gives an error result, never NO_ERROR.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from ansor_py.measure import worker_process
from ansor_py.measure.local import ENTRY_NAME, LocalBuilder, LocalRunner, default_build_func
from ansor_py.measure.types import ERROR_COST, BuildResult, MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.search_task import SearchTask
from ansor_py.workload_registry import register_workload
from codegen.llvm import build as llvm_build
from ir.expr import const
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState
from ir.loop_state.steps import SplitStep
from ir.lower.lower import lower
from ir.tir import BufferStore, SeqStmt
from ir.topi.workloads import gemm

N = 16
E = MeasureErrorNo


@register_workload("faults_kernels_matmul")
def matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func="faults_kernels_matmul", args=(N, N, N), target="llvm")


def tagged_state(task: SearchTask, factor: int) -> LoopState:
    """The matmul with ``i`` split by ``factor``: the tag the build functions below read."""
    s = get_init_state(task.compute_dag)
    s.split("C", "i", [factor])
    return s.loop_state


def tag_of(state: LoopState) -> int | None:
    step = state.transform_steps[0] if state.transform_steps else None
    return step.lengths[0] if isinstance(step, SplitStep) else None


# out-of-bounds writes ------------------------------------------------------------------------

#: split factor -> (buffer position in the kernel's arguments, indices of one stray store)
STRAY_STORES = {3: (2, (N, 0)), 5: (2, (0, -1)), 7: (0, (0, 0))}


def stray_store_build(task: SearchTask, state: LoopState, path: str) -> None:
    """The lowered program, plus for tagged states one store out of bounds: C[N, 0] (flat
    index N*N, one element past C), C[0, -1] (flat index -1, just before C), or A[0, 0]
    (an input)."""
    func = lower(task.compute_dag, state, name=ENTRY_NAME)
    tag = tag_of(state)
    if tag in STRAY_STORES:
        position, indices = STRAY_STORES[tag]
        stray = BufferStore(func.params[position], const(1.0), tuple(const(i) for i in indices))
        func = replace(func, body=SeqStmt((func.body, stray)))
    llvm_build(func, task.target).export_library(path)


def test_out_of_bounds_writes_name_the_buffer_and_spare_the_next_candidate(task: SearchTask) -> None:
    """Before: the store past C was NO_ERROR (the output check passed) and the heap it
    corrupted crashed a later candidate."""
    good = tagged_state(task, 2)
    states = [tagged_state(task, 3), good, tagged_state(task, 5), good, tagged_state(task, 7), good]
    inputs = [MeasureInput(task, s) for s in states]
    built = LocalBuilder(build_func=stray_store_build).build(inputs, verbose=0)
    assert all(b.error_no is E.NO_ERROR for b in built), [b.error_msg for b in built]
    pids: list[int | None] = []
    with LocalRunner(timeout=30, number=1, min_repeat_ms=0) as runner:
        results = []
        for inp, b in zip(inputs, built, strict=True):
            results += runner.run([inp], [b], verbose=0)
            pids.append(runner.child_pid)
    assert [r.error_no for r in results] == [E.RUNTIME_DEVICE, E.NO_ERROR] * 3, [r.error_msg for r in results]
    past, before, into_input = (results[i].error_msg for i in (0, 2, 4))
    # "wrote to" where the CPU tells reads from writes (x86-64), "accessed" elsewhere
    assert re.search(
        r"(wrote to|accessed) the guard page after the end of output 'C' \(float32\[16, 16\]",
        past,
    )
    assert "0 bytes past its end (flat index 256)" in past and "SIGSEGV" in past
    # C[0, -1] lands in the canary bytes just before C: found after the call, no fault
    assert "wrote 4 byte(s) before the start of output 'C' (float32[16, 16], 1024 bytes)" in before
    assert "1 to 4 bytes before it" in before
    assert "wrote into input 'A' (float32[16, 16], 1024 bytes), which is read-only" in into_input
    for good_result in results[1::2]:
        assert good_result.costs != (ERROR_COST,) and all(0 < c < 1 for c in good_result.costs)
    # every faulty candidate leaves the child it ran in; the next one gets a fresh child
    assert pids[0] is None and pids[2] is None and pids[4] is None
    assert len({pids[1], pids[3], pids[5]}) == 3


# the slowdown cut, re-checked ------------------------------------------------------------------

KERNEL_C = """
#include <time.h>
#define N {n}
static double now(void) {{
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}}
int default_function(void** args, int nargs) {{
    const float* A = args[0]; const float* B = args[1]; float* C = args[2];
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {{
            float s = 0.0f;
            for (int k = 0; k < N; ++k) s += A[i * N + k] * B[k * N + j];
            C[i * N + j] = s;
        }}
    double end = now() + {spin_ms} * 1e-3;
    while (now() < end) {{}}
    return 0;
}}
"""
#: wall-clock milliseconds the slow kernel spins per call: its checking call and one timed
#: call take 2.4 s, past a cut of HOPELESS_FLOOR_S (2 s) + the fast program's time, and
#: well within the re-check's twice that
SLOW_MS = 1200
SLOW_TAG = 9


def slow_build(task: SearchTask, state: LoopState, path: str) -> None:
    """A correct C kernel that spins SLOW_MS per call for the SLOW_TAG state, the lowered
    program otherwise."""
    if tag_of(state) != SLOW_TAG:
        default_build_func(task, state, path)
        return
    source = Path(path).with_suffix(".c")
    source.write_text(KERNEL_C.format(n=N, spin_ms=SLOW_MS))
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", path, str(source)], check=True)


@pytest.mark.parametrize("recheck", [True, False])
def test_a_correct_candidate_cut_by_the_slowdown_limit_is_rechecked(task: SearchTask, recheck: bool) -> None:
    """Before: the slow but correct candidate was RUN_TIMEOUT, for good."""
    inputs = [MeasureInput(task, tagged_state(task, 2)), MeasureInput(task, tagged_state(task, SLOW_TAG))]
    built = LocalBuilder(build_func=slow_build).build(inputs, verbose=0)
    # slowdown_limit=1: the cut is HOPELESS_FLOOR_S plus twice the fast program's time,
    # about 2 s whatever the load, so 2.4 s of spinning always overruns it
    with LocalRunner(timeout=60, number=1, min_repeat_ms=0, slowdown_limit=1, recheck_cut=recheck) as runner:
        fast, slow = runner.run(inputs, built, verbose=0)
        limit, _ = runner.time_limit(task.workload_key)
    assert fast.error_no is E.NO_ERROR, fast.error_msg
    assert limit < 2 * SLOW_MS / 1e3 < 2 * limit
    assert runner.rechecked == (1 if recheck else 0)
    if recheck:
        assert slow.error_no is E.NO_ERROR, slow.error_msg
        assert runner.rescued == 1 and all(SLOW_MS / 1e3 <= c < 2 * SLOW_MS / 1e3 for c in slow.costs)
    else:
        assert slow.error_no is E.RUN_TIMEOUT and runner.rescued == 0
        assert "1x the task's fastest program so far" in slow.error_msg


# on_result ------------------------------------------------------------------------------------


def test_on_result_comes_before_the_next_candidate_runs(task: SearchTask) -> None:
    """Before: ``run`` had no ``on_result`` (TypeError)."""
    states = [tagged_state(task, f) for f in (2, 4, 8)]
    inputs = [MeasureInput(task, s) for s in states]
    built = LocalBuilder().build(inputs, verbose=0)
    failed_build = BuildResult("", E.COMPILE_HOST, "refused", 0.0)
    builds = [built[0], failed_build, built[1], built[2]]
    seen: list[tuple[int, MeasureResult, bool]] = []

    def on_result(index: int, result: MeasureResult) -> None:
        later = [b.filename for b in builds[index + 1 :] if b.filename]
        # the runner deletes each library once measured: the later ones are all still there
        seen.append((index, result, all(os.path.exists(f) for f in later)))

    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        results = runner.run([*inputs[:1], inputs[0], *inputs[1:]], builds, verbose=0, on_result=on_result)
    assert [i for i, _, _ in seen] == [0, 1, 2, 3]
    assert all(not_yet_run for _, _, not_yet_run in seen)
    assert all(a is b for (_, a, _), b in zip(seen, results, strict=True))  # the very results returned
    assert [r.error_no for r in results] == [E.NO_ERROR, E.COMPILE_HOST, E.NO_ERROR, E.NO_ERROR]


# costs that are not seconds -------------------------------------------------------------------

LYING_CHILD = textwrap.dedent(
    """
    import json, re, sys
    costs = json.loads({costs_json!r})  # candidate lib_<i>.so is "timed" at costs[i]
    print(json.dumps({{"ready": True}}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "task":
            print(json.dumps({{"ok": True}}), flush=True)
            continue
        index = int(re.search(r"lib_(\\d+)\\.so$", request["lib"]).group(1))
        print(json.dumps({{"phase": "loaded"}}), flush=True)
        print(json.dumps({{"status": "ok", "costs": costs[index]}}), flush=True)
    """
)
BAD_COSTS = [[0.0], [1e-3, -1e-3], [math.nan], [math.inf], []]


def test_costs_that_are_not_seconds_are_errors(
    task: SearchTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner child whose timings are 0, negative, NaN, infinite or missing: each is a
    RUNTIME_DEVICE error. Before: all five were NO_ERROR."""
    script = tmp_path / "lying_child.py"
    script.write_text(LYING_CHILD.format(costs_json=json.dumps([*BAD_COSTS, [2e-3]])))
    monkeypatch.setattr(worker_process, "WORKER_SCRIPT", script)
    inputs = [MeasureInput(task, tagged_state(task, 2))] * (len(BAD_COSTS) + 1)
    builds = [BuildResult(str(tmp_path / f"lib_{i}.so"), E.NO_ERROR, "", 0.0) for i in range(len(inputs))]
    with LocalRunner(number=1, min_repeat_ms=0) as runner:
        results = runner.run(inputs, builds, verbose=0)
    assert [r.error_no for r in results] == [E.RUNTIME_DEVICE] * len(BAD_COSTS) + [E.NO_ERROR]
    for result, costs in zip(results, BAD_COSTS, strict=False):
        assert result.costs == (ERROR_COST,)
        assert f"the runner child timed {costs} s" in result.error_msg
    assert "cost 0.0 is not a finite number of seconds > 0" in results[0].error_msg
    assert "no cost" in results[4].error_msg
    assert results[-1].costs == (2e-3,)
