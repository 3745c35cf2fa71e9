"""DaskBuilder: the LocalBuilder contract on a dask.distributed LocalCluster.

The same inputs give the same error codes as LocalBuilder (valid programs, a replay that
fails, a sketch, a GPU binding, a build function that raises, hangs, has a bug, is killed
or aborts) and byte-identical libraries, which LocalRunner measures correctly; a build
that kills its dask worker is classified and the other builds finish; a host target is
pinned to this machine before it travels; and one tuning round with a fixed seed records
the same states in the same order as with LocalBuilder.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'dask[distributed]')"
)

from ansor_py.cost_model import RandomModel
from ansor_py.measure.dask_builder import DaskBuilder, pinned_target, pinned_task
from ansor_py.measure.local import LocalBuilder, LocalRunner, default_build_func
from ansor_py.measure.types import MeasureErrorNo, MeasureInput
from ansor_py.records import RecordToFile, load_records
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule
from ansor_py.workload_registry import register_workload
from codegen.llvm import build as llvm_build
from codegen.target import as_target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.replay import replay_steps, state_to_record
from ir.loop_state.state import LoopState, initial_state
from ir.loop_state.steps import SplitStep
from ir.lower.lower import lower
from ir.topi.workloads import gemm

N = 16


@register_workload("test_dask_builder_matmul")
def matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


@pytest.fixture(scope="module")
def task() -> SearchTask:
    return SearchTask(func="test_dask_builder_matmul", args=(N, N, N), target="llvm")


@pytest.fixture(scope="module")
def builder() -> Iterator[DaskBuilder]:
    with DaskBuilder(n_workers=2, timeout=3, build_func=tagged_build_func) as b:
        yield b


def split_state(task: SearchTask, factor: int) -> LoopState:
    s = get_init_state(task.compute_dag)
    s.split("C", "i", [factor])
    return s.loop_state


def tagged_build_func(task: SearchTask, state: LoopState, path: str) -> None:
    """Misbehave for states whose first split has a tagged factor, build normally otherwise."""
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
    elif factor == 15:
        os.abort()  # the compiler crashes (SIGABRT)
    elif factor == 16:
        os.kill(os.getppid(), signal.SIGKILL)  # the dask worker that forked the build dies
        time.sleep(30)
    else:
        default_build_func(task, state, path)


def classified_inputs(task: SearchTask) -> list[MeasureInput]:
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
        split_state(task, 15),
        split_state(task, 4),
        split_state(task, 8),
    ]
    return [MeasureInput(task, s) for s in states]


@pytest.mark.slow
def test_build_errors_match_local_builder(task: SearchTask, builder: DaskBuilder) -> None:
    inputs = classified_inputs(task)
    start = time.monotonic()
    remote = builder.build(inputs, verbose=0)
    assert time.monotonic() - start < 30
    local = LocalBuilder(timeout=3, n_parallel=2, build_func=tagged_build_func).build(inputs, verbose=0)
    E = MeasureErrorNo
    expected = [
        E.INSTANTIATION_ERROR,
        E.INSTANTIATION_ERROR,
        E.COMPILE_HOST,
        E.COMPILE_HOST,
        E.BUILD_TIMEOUT,
        E.UNKNOWN_ERROR,
        E.UNKNOWN_ERROR,
        E.UNKNOWN_ERROR,
        E.NO_ERROR,
        E.NO_ERROR,
    ]
    assert [b.error_no for b in local] == expected, [b.error_msg for b in local]
    assert [b.error_no for b in remote] == expected, [b.error_msg for b in remote]
    messages = [b.error_msg for b in remote]
    assert "stage id 7 is out of range" in messages[0]
    assert "unknown split lengths" in messages[1]
    assert "threadIdx.x" in messages[2]
    assert "the custom build refused this state" in messages[3]
    assert "building took longer than 3 s" in messages[4]
    assert "KeyError" in messages[5] and "a bug in the build function" in messages[5]
    assert messages[6] == f"the build worker died (exit code -{int(signal.SIGKILL)})"
    assert messages[7] == f"the build worker died (exit code -{int(signal.SIGABRT)})"
    for built in remote:
        assert (built.filename != "") == (built.error_no is E.NO_ERROR)
        assert built.time_cost > 0
    # the hanging build was cut at its own timeout, not at the end of the batch
    assert 3 <= remote[4].time_cost < 8
    for here, there in zip(local[8:], remote[8:], strict=True):  # the same library, byte for byte
        assert Path(here.filename).read_bytes() == Path(there.filename).read_bytes()
    for built in [*local, *remote]:
        if built.filename:
            os.unlink(built.filename)


@pytest.mark.slow
def test_built_libraries_measure_correctly_and_the_cluster_lives_on(
    task: SearchTask, builder: DaskBuilder
) -> None:
    crash, bad_library = split_state(task, 14), split_state(task, 10)
    states = [crash, split_state(task, 2), bad_library, split_state(task, 4)]
    inputs = [MeasureInput(task, s) for s in states]
    built = builder.build(inputs, verbose=0)
    E = MeasureErrorNo
    assert [b.error_no for b in built] == [E.UNKNOWN_ERROR, E.NO_ERROR, E.NO_ERROR, E.NO_ERROR]
    # both workers survived the killed build: the cluster still has its two threads
    assert sum(builder.client.nthreads().values()) == 2
    with LocalRunner(timeout=5, number=2, repeat=2, min_repeat_ms=5) as runner:
        results = runner.run(inputs, built, verbose=0)
    assert [r.error_no for r in results] == [E.UNKNOWN_ERROR, E.NO_ERROR, E.COMPILE_DEVICE, E.NO_ERROR]
    for result in (results[1], results[3]):
        assert all(0 < c < 0.1 for c in result.costs)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"DaskBuilder: timeout 0 must be > 0 seconds"):
        DaskBuilder(timeout=0)
    with pytest.raises(ValueError, match=r"DaskBuilder: n_workers 0 must be >= 1"):
        DaskBuilder(n_workers=0)
    with pytest.raises(ValueError, match=r"n_workers 2 is for a LocalCluster; the cluster at tcp://x:1"):
        DaskBuilder(address="tcp://x:1", n_workers=2)


def tune_records(task: SearchTask, builder: object, log: Path) -> list[tuple[str, int]]:
    """Tune 12 trials in one round with a fixed seed; the recorded (state, error) pairs.

    One round: a later round breeds from the programs measured fastest, so which states
    it picks depends on the measured times (noise), whichever builder built them."""
    params = {"evolutionary_search_population": 128, "evolutionary_search_num_iters": 1}
    policy = SketchPolicy(task, RandomModel(seed=3), params=params, seed=7, verbose=0)
    with LocalRunner(timeout=5, number=1, repeat=1, min_repeat_ms=1) as runner:
        options = TuningOptions(
            num_measure_trials=12,
            num_measures_per_round=12,
            builder=builder,  # type: ignore[arg-type]
            runner=runner,
            verbose=0,
            measure_callbacks=[RecordToFile(str(log))],
            remeasure_top_k=0,
        )
        auto_schedule(task, options, search_policy=policy)
    return [(str(state_to_record(inp.state)), int(res.error_no)) for inp, res in load_records(str(log))]


@pytest.mark.slow
def test_tuning_records_the_same_states_as_local_builder(tmp_path: Path) -> None:
    gemm_task = SearchTask(compute_dag=ComputeDAG(gemm(32, 32, 32)), target="llvm")
    local = tune_records(gemm_task, LocalBuilder(timeout=30, n_parallel=2), tmp_path / "local.json")
    with DaskBuilder(n_workers=2, timeout=30) as dask_builder:
        remote = tune_records(gemm_task, dask_builder, tmp_path / "dask.json")
    assert len(local) == 12
    assert remote == local
    assert all(error == MeasureErrorNo.NO_ERROR for _, error in remote)


def test_a_host_target_is_pinned_to_this_machine_and_builds_the_same_object(task: SearchTask) -> None:
    pinned = pinned_task(task)
    assert task.target.mcpu is None and pinned is not task  # the caller's task is unchanged
    target = pinned.target
    assert target.mcpu == task.target.cpu and target.mtriple == task.target.triple
    assert ",".join(target.mattr) == task.target.features and target.given_num_cores == task.target.num_cores
    state = replay_steps(task.compute_dag, split_state(task, 4).transform_steps)
    func = lower(task.compute_dag, state, name="default_function")
    assert llvm_build(func, target).get_object() == llvm_build(func, task.target).get_object()
    board = as_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72")
    assert pinned_target(board) is board


@pytest.mark.slow
def test_a_build_that_kills_its_dask_worker_is_classified_and_the_others_survive(task: SearchTask) -> None:
    inputs = [MeasureInput(task, split_state(task, 16)), MeasureInput(task, split_state(task, 4))]
    with DaskBuilder(n_workers=2, timeout=10, build_func=tagged_build_func) as builder:
        start = time.monotonic()
        killed, good = builder.build(inputs, verbose=0)
        assert time.monotonic() - start < 40
    assert killed.error_no is MeasureErrorNo.UNKNOWN_ERROR and killed.filename == ""
    assert "KilledWorker" in killed.error_msg, killed.error_msg
    assert good.error_no is MeasureErrorNo.NO_ERROR and os.path.isfile(good.filename)
    os.unlink(good.filename)
