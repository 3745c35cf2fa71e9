"""SSHRunner against a real sshd on 127.0.0.1, AArch64 code run by qemu-user.

The "board" is a private OpenSSH server (``ansor_py.measure.ssh.local_sshd``); AArch64
candidates are cross-compiled here and run on it under ``qemu-aarch64`` through the
runner's command prefix, x86-64 candidates natively (faster, for the pool and fault tests).
Misbehaving candidates are real shared libraries built from C (crash, hang, wrong result,
error status, not an ELF file).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ssh_kernels
from ssh_kernels import N
from ssh_tools import AARCH64_TARGET, ssh_server

from ansor_py.measure.local import LocalBuilder
from ansor_py.measure.ssh import HostError, HostKeyError, HostUnreachable, SSHHost, SSHRunner, check_host
from ansor_py.measure.ssh.local_sshd import QEMU_PREFIX, SSHServer, free_port
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput
from ansor_py.records import RecordToFile, load_records
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, apply_best, auto_schedule
from codegen.llvm.toolchain import find_c_compiler
from codegen.target import Target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.topi.workloads import gemm

#: x86-64 candidates over SSH run with passive OpenMP waiting: sshd starts each session in a
#: new scheduler autogroup, which on a loaded 2-core test machine gets half the CPU, and
#: spinning OpenMP workers then make every barrier wait a time slice (seconds per call)
X86_PREFIX = "env OMP_WAIT_POLICY=passive"


@pytest.fixture(scope="module")
def server():
    yield from ssh_server()


def matmul_task(target: str, n: int = N) -> SearchTask:
    return SearchTask(compute_dag=ComputeDAG(gemm(n, n, n)), target=target)


def tiled_states(task: SearchTask, count: int) -> list:
    """``count`` valid, distinct schedules of the matmul (split factors vary)."""
    states = []
    factors = [
        f
        for f in range(1, task.compute_dag.tensors[0].shape[0] + 1)
        if task.compute_dag.tensors[0].shape[0] % f == 0
    ]
    for index in range(count):
        s = get_init_state(task.compute_dag)
        s.split("C", "i", [factors[index % len(factors)]])
        states.append(s.loop_state)
    return states


def c_library(directory: Path, behaviour: str | None) -> str:
    return ssh_kernels.c_library(directory, behaviour, find_c_compiler(Target.parse(AARCH64_TARGET)))


def records_of(log: Path) -> tuple[list, list]:
    pairs = list(load_records(log))
    return [inp for inp, _ in pairs], [res for _, res in pairs]


def built(path: str) -> BuildResult:
    return BuildResult(path, MeasureErrorNo.NO_ERROR, "", 0.01)


# the board ------------------------------------------------------------------------------


def test_check_host_reports_the_cpu_and_runs_an_aarch64_kernel(server: SSHServer) -> None:
    report = check_host(server.host(), AARCH64_TARGET, command_prefix=QEMU_PREFIX)
    assert report.arch == "x86_64" and report.cores >= 1 and report.model
    assert "ran and matched numpy" in (report.kernel_check or "")
    assert "cpu:" in str(report) and "target:" in str(report)


def test_check_host_command_line(server: SSHServer) -> None:
    host = server.host()
    done = subprocess.run(
        [sys.executable, "-m", "ansor_py", "check-host", server.address(), "-i", str(host.key_filename),
         "--known-hosts", str(host.known_hosts), "--target", AARCH64_TARGET, "--prefix", QEMU_PREFIX],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "arch:    x86_64" in done.stdout and "ran and matched numpy" in done.stdout


def test_tune_for_aarch64_end_to_end(server: SSHServer, tmp_path: Path) -> None:
    task = matmul_task(AARCH64_TARGET, 16)
    log = tmp_path / "aarch64.json"
    remote = tmp_path / "remote"
    runner = SSHRunner([server.host()], command_prefix=QEMU_PREFIX, timeout=30, remote_dir=str(remote))
    options = TuningOptions(
        num_measure_trials=6,
        runner=runner,
        measure_callbacks=[RecordToFile(str(log))],
        verbose=0,
        remeasure_top_k=0,
    )
    auto_schedule(task, options)
    inputs, results = records_of(log)
    assert len(results) == 6
    assert all(str(inp.task.target) == AARCH64_TARGET for inp in inputs)
    assert all(r.error_no is MeasureErrorNo.NO_ERROR and r.median_cost > 0 for r in results), [
        (r.error_no, r.error_msg) for r in results
    ]
    assert "aarch64-linux-gnu" in log.read_text()
    # the best program, exported as a shared object, runs on the board and matches numpy
    module = apply_best(task, log)
    library = module.export_library(tmp_path / "best.so")
    assert library.read_bytes()[18] == 183  # ELF e_machine: EM_AARCH64
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((16, 16)).astype("float32") for _ in range(2))
    c = np.full((16, 16), np.nan, dtype="float32")
    runner.run_library(library, Target.parse(AARCH64_TARGET), [a, b], [c])
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    session = remote / runner.session_dir.rsplit("/", 1)[1]
    assert session.is_dir() and not list(session.glob("cand-*.so"))  # each library removed
    runner.close()
    assert not session.exists()  # the run's files are gone; the cached harness stays
    assert list(remote.glob("harness-*"))


def test_candidate_faults_on_the_board(server: SSHServer, tmp_path: Path) -> None:
    task = matmul_task(AARCH64_TARGET)
    behaviours = ["CRASH", None, "HANG", "WRONG", "STATUS"]
    paths = [c_library(tmp_path, b) for b in behaviours]
    garbage = tmp_path / "garbage.so"
    garbage.write_bytes(b"this is not an ELF shared object")
    paths.append(str(garbage))
    states = tiled_states(task, len(paths))
    inputs = [MeasureInput(task, s) for s in states]
    with SSHRunner(
        [server.host()], command_prefix=QEMU_PREFIX, timeout=4, remote_dir=str(tmp_path / "r")
    ) as runner:
        results = runner.run(inputs, [built(p) for p in paths], verbose=0)
    codes = [r.error_no for r in results]
    assert codes == [
        MeasureErrorNo.RUNTIME_DEVICE,
        MeasureErrorNo.NO_ERROR,
        MeasureErrorNo.RUN_TIMEOUT,
        MeasureErrorNo.WRONG_ANSWER,
        MeasureErrorNo.RUNTIME_DEVICE,
        MeasureErrorNo.COMPILE_DEVICE,
    ], [(r.error_no, r.error_msg) for r in results]
    assert "signal 11, SIGSEGV" in results[0].error_msg and str(server.port) in results[0].error_msg
    assert "output 'C' differs from the reference at 1 of 64 elements" in results[3].error_msg
    assert "error status 7" in results[4].error_msg


# host keys, reachability, pool ---------------------------------------------------------------


def test_a_wrong_host_key_is_refused(server: SSHServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {key_type} {key}\n")
    with pytest.raises(HostKeyError, match=r"the host key \(ssh-ed25519\) differs from the one in"):
        check_host(server.host(known_hosts=str(known)))
    # trusting on first use does not accept a changed key either
    with pytest.raises(HostKeyError, match=r"differs"):
        check_host(server.host(known_hosts=str(known), trust_on_first_use=True))


def test_an_unknown_host_key_needs_trust_on_first_use(server: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "empty_known_hosts"
    with pytest.raises(HostKeyError, match=r"is not in .*empty_known_hosts; add it \(ssh-keyscan -p"):
        check_host(server.host(known_hosts=str(known)))
    report = check_host(server.host(known_hosts=str(known), trust_on_first_use=True))
    assert report.cores >= 1
    assert f"[127.0.0.1]:{server.port}" in known.read_text()  # saved for next time
    check_host(server.host(known_hosts=str(known)))  # now known


def test_an_unreachable_host_leaves_the_pool_and_tuning_goes_on(
    server: SSHServer, tmp_path: Path, capfd
) -> None:
    dead = SSHHost("127.0.0.1", port=free_port(), key_filename=server.host().key_filename, connect_timeout=2)
    with pytest.raises(HostUnreachable, match=r"127.0.0.1:\d+: cannot connect"):
        check_host(dead)
    task = matmul_task("llvm", 32)
    log = tmp_path / "pool.json"
    runner = SSHRunner(
        [dead, server.host()], timeout=10, remote_dir=str(tmp_path / "r"), command_prefix=X86_PREFIX
    )
    auto_schedule(
        task,
        TuningOptions(
            num_measure_trials=8,
            runner=runner,
            measure_callbacks=[RecordToFile(str(log))],
            verbose=0,
            remeasure_top_k=0,
        ),
    )
    runner.close()
    _, results = records_of(log)
    assert len(results) == 8 and all(r.error_no is MeasureErrorNo.NO_ERROR for r in results)
    assert f"127.0.0.1:{dead.port} left the pool" in capfd.readouterr().err


def test_with_no_reachable_host_every_candidate_is_an_error_record(tmp_path: Path, server: SSHServer) -> None:
    dead = SSHHost("127.0.0.1", port=free_port(), key_filename=server.host().key_filename, connect_timeout=2)
    task = matmul_task("llvm", 32)
    log = tmp_path / "none.json"
    runner = SSHRunner([dead], timeout=10)
    auto_schedule(
        task,
        TuningOptions(
            num_measure_trials=4,
            runner=runner,
            measure_callbacks=[RecordToFile(str(log))],
            verbose=0,
            remeasure_top_k=0,
        ),
    )
    _, results = records_of(log)
    assert len(results) == 4
    assert all(r.error_no is MeasureErrorNo.UNKNOWN_ERROR for r in results)
    assert all(
        json.loads(line)["r"][1] == MeasureErrorNo.UNKNOWN_ERROR.value
        for line in log.read_text().splitlines()
    )


def _slow_runner(hosts: list[SSHHost], tmp_path: Path) -> SSHRunner:
    """Each candidate takes about 0.3 s on the board (min_repeat_ms)."""
    return SSHRunner(hosts, timeout=20, number=1, repeat=1, min_repeat_ms=300, reconnect_interval=0,
                     remote_dir=str(tmp_path / "r"), command_prefix=X86_PREFIX)  # fmt: skip


def kill_mid_round(server: SSHServer, runner: SSHRunner, delay: float) -> threading.Thread:
    """Kill ``server`` ``delay`` seconds after the runner's task files reached it (so that
    some candidates were measured on it and others were not)."""
    session = Path(runner.remote_dir) / runner.session_dir.rsplit("/", 1)[1]

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not list(session.glob("task-*/args.txt")) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        server.kill()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _built_candidates(task: SearchTask, count: int) -> tuple[list[MeasureInput], list[BuildResult]]:
    inputs = [MeasureInput(task, s) for s in tiled_states(task, count)]
    return inputs, LocalBuilder(timeout=30).build(inputs, verbose=0)


def test_sshd_killed_mid_round_moves_its_work_to_the_other_host(tmp_path: Path, capfd) -> None:
    with SSHServer() as doomed, SSHServer() as steady:
        task = matmul_task("llvm", 32)
        log = tmp_path / "killed.json"
        runner = _slow_runner([doomed.host(), steady.host()], tmp_path)
        kill_mid_round(doomed, runner, 2.0)
        options = TuningOptions(
            num_measure_trials=16,
            runner=runner,
            measure_callbacks=[RecordToFile(str(log))],
            remeasure_top_k=0,
        )
        auto_schedule(task, options)
        _, results = records_of(log)  # nothing lost: one record per trial, every one measured
        assert len(results) == 16
        # a lost board's candidate would be an UNKNOWN_ERROR; a slow random program may time
        # out when a neighbour loads the machine, which is a measurement, not a loss
        assert all(r.error_no in (MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUN_TIMEOUT) for r in results)
        assert sum(r.ok for r in results) >= 12
        assert runner.live_hosts == [steady.host()]
        assert f"127.0.0.1:{doomed.port} left the pool" in capfd.readouterr().err
        doomed.start()  # back at the next round, beside the board that never left
        inputs, builds = _built_candidates(task, 4)
        assert all(r.ok for r in runner.run(inputs, builds, verbose=0))
        assert runner.live_hosts == [doomed.host(), steady.host()]
        runner.close()


def test_a_host_that_comes_back_is_reconnected(tmp_path: Path) -> None:
    server = SSHServer().start()
    try:
        task = matmul_task("llvm", 32)
        inputs, builds = _built_candidates(task, 12)
        runner = _slow_runner([server.host()], tmp_path)
        kill_mid_round(server, runner, 2.0)
        results = runner.run(inputs, builds, verbose=0)
        codes = [r.error_no for r in results]
        assert (
            len(results) == 12 and MeasureErrorNo.NO_ERROR in codes and MeasureErrorNo.UNKNOWN_ERROR in codes
        )
        assert all("no SSH host left" in r.error_msg for r in results if not r.ok)
        server.start()  # the board is back, same address and keys
        inputs, builds = _built_candidates(task, 2)
        results = runner.run(inputs, builds, verbose=0)
        assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR] * 2
        runner.close()
    finally:
        server.stop()


# quoting, secrets, options ----------------------------------------------------------------


def test_remote_paths_with_spaces_and_quotes(server: SSHServer, tmp_path: Path) -> None:
    task = matmul_task("llvm", 16)
    inputs, builds = _built_candidates(task, 2)
    remote = tmp_path / "a dir with 'quotes' and $HOME"
    with SSHRunner([server.host()], timeout=10, remote_dir=str(remote), command_prefix=X86_PREFIX) as runner:
        results = runner.run(inputs, builds, verbose=0)
        assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR] * 2, [r.error_msg for r in results]
        assert remote.is_dir()
    assert [p.name.startswith("harness-") for p in remote.iterdir()] == [True]


def test_a_password_never_appears(server: SSHServer) -> None:
    host = SSHHost("127.0.0.1", port=server.port, user="nobody-here", password="hunter2-secret",
                   known_hosts=str(server.known_hosts), connect_timeout=5)  # fmt: skip
    assert "hunter2" not in repr(host) and "hunter2" not in str(host)
    with pytest.raises(HostError) as caught:
        check_host(host)
    assert "authentication failed" in str(caught.value) and "hunter2" not in str(caught.value)


def test_bad_runner_options_are_clear_errors(server: SSHServer) -> None:
    with pytest.raises(ValueError, match=r"hosts must be a non-empty list"):
        SSHRunner([])
    with pytest.raises(ValueError, match=r"hosts must be a non-empty list"):
        SSHRunner("pi@board")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"SSHRunner: timeout 0 must be > 0"):
        SSHRunner([server.host()], timeout=0)
    with pytest.raises(ValueError, match=r"SSHRunner: number 0 must be an integer >= 1"):
        SSHRunner([server.host()], number=0)
    with pytest.raises(ValueError, match=r"port 70000 must be an integer in 1..65535"):
        SSHHost.parse("pi@board:70000")
    with pytest.raises(ValueError, match=r"'pi@@board' is not of the form"):
        SSHHost.parse("pi@@board")
    with pytest.raises(ValueError, match=r"key file /no/such/key does not exist"):
        SSHHost("board", key_filename="/no/such/key")
