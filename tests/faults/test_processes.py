"""Killing the tuner (issue 11): no process it started outlives it, no program it measured
is lost, a resumed run measures nothing twice, and SIGTERM removes its temporary
directories.

Each child kind is killed alone first: a build worker in the middle of a build, the runner
child waiting for a request while another process holds its stdin (a forked worker of the
tuner did, keeping it alive); the feature workers' test is in ``test_feature_workers``.
Then a real tuning run (a 32x32x32 matmul, ``auto_schedule`` with ``RecordToFile``, in a
subprocess of its own process group) is killed with ``kill -9`` in the middle of a batch,
and another with SIGTERM after its first round.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from process_tools import (
    ProcessInfo,
    descendants,
    group_members,
    kill_if_running,
    process_info,
    running,
    wait_until,
)

from ansor_py.forking import exit_on_sigterm
from ansor_py.measure.local import LocalBuilder
from ansor_py.measure.types import MeasureInput
from ansor_py.measure.worker_process import WorkerProcess
from ansor_py.records import parse_record
from ansor_py.search_task import SearchTask
from ansor_py.workload_registry import register_workload
from ir.loop_state.state import LoopState, initial_state
from ir.topi.workloads import gemm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ROOT = Path(__file__).resolve().parents[2]
#: seconds every process the tuner started has to be gone after it was killed
GRACE_S = 15.0
FORK = multiprocessing.get_context("fork")


@register_workload
def faults_processes_matmul(n: int, m: int, k: int) -> list:
    return gemm(n, m, k)


# ------------------------------------------------------------------------------------------
# one child at a time: an intermediate process plays the tuner and is killed with SIGKILL


def _sleeping_build(pid_file: str, task: SearchTask, state: LoopState, output_path: str) -> None:
    """A build that never ends; it says which process runs it."""
    Path(pid_file + ".part").write_text(str(os.getpid()))
    os.replace(pid_file + ".part", pid_file)
    time.sleep(300)


def _tuner_building(pid_file: str, tmp_dir: str) -> None:
    tempfile.tempdir = tmp_dir  # the build directory this process may make, killed with it
    task = SearchTask(func=faults_processes_matmul, args=(8, 8, 8), target="llvm")
    builder = LocalBuilder(timeout=300, n_parallel=1, build_func=functools.partial(_sleeping_build, pid_file))
    builder.build([MeasureInput(task, initial_state(task.compute_dag))], verbose=0)


def kill_tuner_and_watch(tuner: multiprocessing.process.BaseProcess, child: ProcessInfo) -> bool:
    """SIGKILL the tuner; whether ``child`` is gone within GRACE_S (it is killed anyway)."""
    assert tuner.pid is not None
    os.kill(tuner.pid, signal.SIGKILL)
    tuner.join()
    try:
        return wait_until(lambda: not running(child), GRACE_S)
    finally:
        kill_if_running(child)


def test_a_build_worker_dies_with_the_tuner(tmp_path: Path) -> None:
    """Before: the worker went on building (here: sleeping 300 s) after the tuner died."""
    pid_file = tmp_path / "build_worker.pid"
    tuner = FORK.Process(target=_tuner_building, args=(str(pid_file), str(tmp_path)))
    tuner.start()
    assert wait_until(pid_file.exists, 60), "the build worker did not start"
    worker = process_info(int(pid_file.read_text()))
    assert worker is not None and worker.ppid == tuner.pid
    assert kill_tuner_and_watch(tuner, worker), f"build worker {worker.pid} outlived the tuner"


def _tuner_with_runner_child(sender: Connection, log_path: str) -> None:
    worker = WorkerProcess(Path(log_path))
    bystander = os.fork()  # a forked child of the tuner that holds what it inherited
    if bystander == 0:
        time.sleep(300)
        os._exit(0)
    sender.send((worker.process.pid, bystander))
    time.sleep(300)


def test_the_runner_child_dies_with_the_tuner(tmp_path: Path) -> None:
    """Before: the runner child waited on its stdin for good, whose write end a forked
    process of the dead tuner still held."""
    receiver, sender = FORK.Pipe(duplex=False)
    tuner = FORK.Process(target=_tuner_with_runner_child, args=(sender, str(tmp_path / "runner.log")))
    tuner.start()
    sender.close()
    assert receiver.poll(60), "the runner child did not start"
    runner_pid, bystander_pid = receiver.recv()
    runner, bystander = process_info(runner_pid), process_info(bystander_pid)
    assert runner is not None and bystander is not None
    try:
        assert kill_tuner_and_watch(tuner, runner), f"runner child {runner_pid} outlived the tuner"
    finally:
        kill_if_running(bystander)


def test_exit_on_sigterm_raises_system_exit_and_puts_the_handler_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info, exit_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert exit_info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before

    def own(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, own)  # a handler the program installed is left alone
    try:
        with exit_on_sigterm():
            assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, before)


# ------------------------------------------------------------------------------------------
# a real tuning run, killed

TUNER_SCRIPT = """
import sys

from ansor_py.cost_model import XGBModel
from ansor_py.measure.local import LocalRunner
from ansor_py.records import RecordToFile
from ansor_py.search import SketchPolicy
from ansor_py.search.sketch_policy import PreloadMeasuredStates
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule
from ansor_py.workload_registry import register_workload
from ir.topi.workloads import gemm


@register_workload
def faults_processes_matmul(n, m, k):
    return gemm(n, m, k)


log, trials, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
task = SearchTask(func=faults_processes_matmul, args=(32, 32, 32), target="llvm")
# a model trained after the first round: the later rounds extract features in forked workers
model = XGBModel(num_warmup_sample=4, nthread=1, seed=0, feature_workers=2, verbose_eval=0)
policy = SketchPolicy(
    task,
    model,
    params={"evolutionary_search_population": 160, "sample_init_min_population": 8},
    seed=1,
    init_search_callbacks=[PreloadMeasuredStates(log)] if resume else None,
)
options = TuningOptions(
    num_measure_trials=trials,
    num_measures_per_round=8,
    verbose=2,  # the per-result glyphs the parent counts
    runner=LocalRunner(min_repeat_ms=10),  # timings are not what is tested: short ones
    measure_callbacks=[RecordToFile(log)],
    remeasure_top_k=0,  # every record one trial: what the parent counts
)
auto_schedule(task, options, policy)
print("TUNING DONE", flush=True)
"""


class Tuner:
    """The tuning script in a subprocess of its own process group (so that the group finds
    every process it starts), its temp directory ``tmp``, its output read as it comes, and
    the processes seen below it so far. With ``kill_at``, the thread reading the output
    sends ``kill_signal`` the moment ``kill_at(output)`` holds, and sets ``killed``."""

    def __init__(
        self,
        tmp_path: Path,
        log: Path,
        trials: int,
        resume: bool = False,
        kill_at: Callable[[str], bool] | None = None,
        kill_signal: int = signal.SIGKILL,
    ):
        script = tmp_path / "tune.py"
        script.write_text(TUNER_SCRIPT)
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(self.tmp), OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(script), str(log), str(trials), "resume" if resume else "new"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._chunks: list[bytes] = []
        self.kill_at = kill_at
        self.kill_signal = kill_signal
        self.killed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.seen: dict[tuple[int, int], ProcessInfo] = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(1 << 16):
            self._chunks.append(chunk)
            if self.kill_at is not None and not self.killed.is_set() and self.kill_at(self.output):
                os.kill(self.process.pid, self.kill_signal)
                self.killed.set()

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def watch_until(self, condition: str, ready: Callable[[str], bool], timeout: float = 240.0) -> None:
        """Note the processes below the tuner until ``ready(output)`` holds; fail if the
        tuner exits first or ``timeout`` passes (``condition`` names what was awaited)."""
        deadline = time.monotonic() + timeout
        while not ready(self.output):
            if self.process.poll() is not None:
                code = self.process.returncode
                pytest.fail(f"the tuner exited ({code}) before {condition}:\n{self.output}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {condition} within {timeout:g} s:\n{self.output}")
            for info in descendants(self.process.pid):
                self.seen[(info.pid, info.start)] = info
            time.sleep(0.1)

    def left_behind(self) -> list[ProcessInfo]:
        """Processes of the tuner's group, or seen below it, still running."""
        left = {(i.pid, i.start): i for i in group_members(self.process.pid)}
        left.update({key: info for key, info in self.seen.items() if running(info)})
        return list(left.values())

    def kill(self) -> None:
        """Cleanup: SIGKILL the whole group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout: float = 15.0) -> str:
        """The whole output, once the pipe is closed (or ``timeout`` passed)."""
        self._reader.join(timeout)
        return self.output


def complete_records(log: Path) -> list:
    """The records of ``log`` up to its last newline (a kill may cut the last line)."""
    text = log.read_text() if log.exists() else ""
    return [parse_record(line) for line in text.split("\n")[:-1] if line.strip()]


#: a line of progress glyphs: "." per program built, "*" per program measured (with "E"
#: or "T" after a glyph for an error or a timeout)
PROGRESS_LINE = re.compile(r"^[.*ET]+$", re.MULTILINE)


def measured_count(output: str) -> int:
    """How many programs the tuner's runner said it had measured."""
    return sum(line.count("*") for line in PROGRESS_LINE.findall(output))


@pytest.mark.slow
def test_kill_9_of_a_tuning_run_loses_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    """Before: records were written once per batch of 2 * n_parallel, so the programs
    measured in the batch under way were lost; a feature worker could outlive the tuner."""
    log = tmp_path / "log.json"
    # killed in the middle of the second round's first batch (after its second program)
    tuner = Tuner(tmp_path, log, trials=24, kill_at=lambda out: measured_count(out) >= 10)
    try:
        tuner.watch_until("the kill at 10 measured programs", lambda out: tuner.killed.is_set())
        assert tuner.process.wait() == -signal.SIGKILL
        assert wait_until(lambda: not tuner.left_behind(), GRACE_S), (
            f"left behind {GRACE_S:g} s after kill -9: {tuner.left_behind()}"
        )
    finally:
        tuner.kill()
    output = tuner.finish()
    measured = measured_count(output)
    records = complete_records(log)
    # LocalRunner reports a result (and so writes its record) before it prints the "*":
    # every program the tuner said it measured is in the log (the old code, writing once
    # per batch, had 8 records by the 10th "*")
    assert measured >= 10 and len(records) >= measured, f"{measured} measured, {len(records)} in the log"
    assert len({r.steps for r in records}) == len(records)

    resumed = Tuner(tmp_path, log, trials=8, resume=True)
    try:
        resumed.watch_until("the end of the resumed run", lambda out: "TUNING DONE" in out)
        assert resumed.process.wait(60) == 0
    finally:
        resumed.kill()
    assert f"{len(records)} measured state(s) loaded" in resumed.finish()
    after = complete_records(log)
    assert len(after) > len(records)  # the resumed run measured programs of its own
    twice = [steps for steps, count in Counter(r.steps for r in after).items() if count > 1]
    assert not twice, f"{len(twice)} programs measured twice, e.g. {twice[0]}"


@pytest.mark.slow
def test_sigterm_of_a_tuning_run_leaves_no_process_and_no_temp_dir(tmp_path: Path) -> None:
    """Before: SIGTERM's default action ended the tuner at once, leaving the builder's and
    the runner's temporary directories (and any worker stuck on a pipe)."""

    def second_search(output: str) -> bool:
        """The first round measured, the second round's evolution starting: the trained
        model's feature workers are about to fork."""
        _, measured, after = output.partition("Measured 8 programs")
        return bool(measured) and "Sample Initial Population" in after

    tuner = Tuner(tmp_path, tmp_path / "log.json", 24, kill_at=second_search, kill_signal=signal.SIGTERM)
    try:
        tuner.watch_until("the SIGTERM in the second round", lambda out: tuner.killed.is_set())
        assert tuner.process.wait(60) == 128 + signal.SIGTERM
        assert wait_until(lambda: not tuner.left_behind(), GRACE_S), (
            f"left behind {GRACE_S:g} s after SIGTERM: {tuner.left_behind()}"
        )
    finally:
        tuner.kill()
    output = tuner.finish()
    assert "Traceback" not in output, output
    left = sorted(entry.name for entry in tuner.tmp.iterdir() if entry.name.startswith("ansor_py_"))
    assert not left, f"temporary directories left after SIGTERM: {left}"
