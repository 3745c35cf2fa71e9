"""Faults of boards over SSH (issue 11, "Processes and boards"), each injected for real.

The boards are private sshds on 127.0.0.1 (``ansor_py.measure.ssh.local_sshd``): frozen
with SIGSTOP, configured without SFTP, with a hostile known_hosts file, or answering with
a fake harness. The candidates are x86-64 C libraries run natively (these tests are about
plumbing, not ARM code). A runner call that old code would never return from runs in
``within``, which fails the test after a generous bound instead of hanging the suite.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ssh_kernels
from ssh_kernels import N
from ssh_tools import ssh_server

from ansor_py.measure.ssh import HostKeyError, SSHRunner
from ansor_py.measure.ssh.host import CommandResult, HostConnection
from ansor_py.measure.ssh.local_sshd import SSHServer
from ansor_py.measure.ssh.remote_command import parse_reply
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.records import RecordToFile, load_records
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule
from codegen.target import Target
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.topi.workloads import gemm

#: sshd starts each session in a new scheduler autogroup; passive OpenMP waiting keeps a
#: parallel candidate from spinning through its time slices on a loaded machine
X86_PREFIX = "env OMP_WAIT_POLICY=passive"


@pytest.fixture(scope="module")
def server():
    yield from ssh_server()


def c_library(directory: Path, behaviour: str | None = None) -> str:
    return ssh_kernels.c_library(directory, behaviour, ("cc",))


def candidates(libraries: list[str]) -> tuple[list[MeasureInput], list[BuildResult]]:
    """One matmul input per library (the runner measures the library, not the state)."""
    task = SearchTask(compute_dag=ComputeDAG(gemm(N, N, N)), target="llvm")
    state = get_init_state(task.compute_dag).loop_state
    inputs = [MeasureInput(task, state) for _ in libraries]
    return inputs, [BuildResult(path, MeasureErrorNo.NO_ERROR, "", 0.01) for path in libraries]


def within(seconds: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, failing the test if it has not returned after
    ``seconds`` (it then goes on in a daemon thread)."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__qualname__', function)} did not return within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def session_path(runner: SSHRunner) -> Path:
    """The run directory on the board (the tests' remote_dir is an absolute local path)."""
    return Path(runner.session_dir)


# 1. a frozen board ---------------------------------------------------------------------------

#: keepalive every 1 s, a board that does not answer for 4 s is stalled, reconnecting waits
#: 4 s for the banner: a frozen board costs at most about 9 s, whatever it was doing
FROZEN_TIMEOUTS = {"keepalive_interval": 1.0, "stall_timeout": 4.0, "connect_timeout": 4.0}
FROZEN_BUDGET_S = sum(FROZEN_TIMEOUTS.values())
#: what a loaded 2-core machine may add on top (old code waited as long as the board was frozen)
LOAD_MARGIN_S = 30.0


def freeze_when_measuring(board: SSHServer, runner: SSHRunner, delay: float) -> list[float]:
    """SIGSTOP every sshd process of ``board`` (the listener and the connection's own)
    ``delay`` seconds after the runner's second candidate reached it (the first one is
    measured by then); the time it froze, once it has (in the returned list)."""
    frozen_at: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not list(session_path(runner).glob("cand-1.so*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        if board.freeze():
            frozen_at.append(time.monotonic())

    threading.Thread(target=watch, daemon=True).start()
    return frozen_at


@pytest.mark.slow
def test_a_board_frozen_mid_tuning_stops_it_only_for_its_timeouts(tmp_path: Path, capfd) -> None:
    """The only board freezes while a tuning measures its batch: the tuning returns within
    keepalive + stall + connect timeouts of the freeze (plus load), with a record for every
    trial, and the board leaves the pool saying it stopped responding (old code hung in
    SFTP for as long as the board stayed frozen)."""
    log = tmp_path / "frozen.json"
    with SSHServer() as board:
        runner = SSHRunner(
            [board.host(**FROZEN_TIMEOUTS)],
            timeout=10,
            number=1,
            repeat=1,
            min_repeat_ms=500,
            reconnect_interval=600,
            remote_dir=str(tmp_path / "remote"),
            command_prefix=X86_PREFIX,
        )
        task = SearchTask(compute_dag=ComputeDAG(gemm(16, 16, 16)), target="llvm")
        options = TuningOptions(
            num_measure_trials=8,
            num_measures_per_round=8,
            runner=runner,
            measure_callbacks=[RecordToFile(str(log))],
            verbose=0,
            remeasure_top_k=0,
        )
        frozen_at = freeze_when_measuring(board, runner, 0.2)
        try:
            within(300, auto_schedule, task, options)
            returned_at = time.monotonic()
            assert frozen_at, "the tuning ended before the board froze"
            assert returned_at - frozen_at[0] < FROZEN_BUDGET_S + LOAD_MARGIN_S
            results = [result for _, result in load_records(log)]
            assert len(results) == 8
            assert any(r.ok for r in results)  # measured before the freeze
            lost = [r.error_no for r in results if not r.ok]  # (records keep no messages)
            assert lost and set(lost) <= {MeasureErrorNo.UNKNOWN_ERROR, MeasureErrorNo.RUN_TIMEOUT}
            err = capfd.readouterr().err
            assert f"127.0.0.1:{board.port} left the pool" in err and "stopped responding" in err
            runner.close()
        finally:
            board.thaw()


@pytest.mark.slow
def test_a_frozen_board_leaves_the_pool_and_its_work_moves(tmp_path: Path, capfd) -> None:
    """Of two boards, one freezes between batches: the next batch's copies to it stall, it
    leaves the pool, and its candidates are measured on the other board (old code waited
    in SFTP forever)."""
    with SSHServer() as frozen, SSHServer() as steady:
        runner = SSHRunner(
            [frozen.host(**FROZEN_TIMEOUTS), steady.host(**FROZEN_TIMEOUTS)],
            timeout=10,
            reconnect_interval=600,
            min_repeat_ms=50,
            remote_dir=str(tmp_path / "remote"),
        )
        first = within(120, runner.run, *candidates([c_library(tmp_path)] * 4), verbose=0)
        assert all(r.ok for r in first)
        assert frozen.freeze()
        frozen_at = time.monotonic()
        try:
            second = within(180, runner.run, *candidates([c_library(tmp_path)] * 4), verbose=0)
            assert time.monotonic() - frozen_at < FROZEN_BUDGET_S + LOAD_MARGIN_S
            codes = [r.error_no for r in second]
            assert codes == [MeasureErrorNo.NO_ERROR] * 4, [r.error_msg for r in second]
            assert runner.live_hosts == [steady.host(**FROZEN_TIMEOUTS)]
            err = capfd.readouterr().err
            assert f"127.0.0.1:{frozen.port} left the pool" in err and "stopped responding" in err
            runner.close()
        finally:
            frozen.thaw()


# 2. a board without SFTP, a board that cannot be used -----------------------------------------


def test_a_board_without_sftp_is_used_over_the_exec_channel(tmp_path: Path) -> None:
    """sshd_config without ``Subsystem sftp``: files go over ``cat > file`` (old code
    reconnected in a silent loop forever)."""
    library = c_library(tmp_path)
    with SSHServer(sftp=False) as board:
        runner = SSHRunner([board.host()], timeout=10, remote_dir=str(tmp_path / "remote"))
        inputs, builds = candidates([library, library])
        results = within(60, runner.run, inputs, builds, verbose=0)
        assert [r.error_no for r in results] == [MeasureErrorNo.NO_ERROR] * 2, [r.error_msg for r in results]
        assert "subsystem request for sftp" in board.log.read_text()  # SFTP really was refused
        # reading a file back works too (run_library copies the outputs home)
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((N, N)).astype("float32") for _ in range(2))
        c = np.full((N, N), np.nan, dtype="float32")
        within(60, runner.run_library, c_library(tmp_path), Target.parse("llvm"), [a, b], [c])
        np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
        runner.close()
        assert not session_path(runner).exists()


def test_a_board_that_cannot_be_used_leaves_at_once(server: SSHServer, tmp_path: Path, capfd) -> None:
    """A remote directory that cannot be made: the board leaves the pool with the reason
    on stderr, and each candidate becomes an error record naming it (old code reconnected
    and retried forever)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    runner = SSHRunner([server.host()], timeout=10, remote_dir=str(blocker / "remote"))
    inputs, builds = candidates([c_library(tmp_path)] * 3)
    results = within(60, runner.run, inputs, builds, verbose=0)
    assert [r.error_no for r in results] == [MeasureErrorNo.UNKNOWN_ERROR] * 3
    assert all("mkdir -p" in r.error_msg and "Not a directory" in r.error_msg for r in results)
    assert f"127.0.0.1:{server.port} left the pool" in capfd.readouterr().err
    runner.close()


# 3. the board's reply is checked ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "repeats", "problem"),
    [
        ("LOADED\nCOSTS\n", 1, r"expected 1 cost\(s\), one per repeat, got 0"),
        ("LOADED\nCOSTS 0\n", 1, r"cost '0' is not a finite number of seconds > 0"),
        ("LOADED\nCOSTS -1.5e-03\n", 1, r"cost '-1.5e-03' is not a finite"),
        ("LOADED\nCOSTS nan\n", 1, r"cost 'nan' is not a finite"),
        ("LOADED\nCOSTS inf\n", 1, r"cost 'inf' is not a finite"),
        ("LOADED\nCOSTS 1e-3\n", 3, r"expected 3 cost\(s\), one per repeat, got 1"),
        ("LOADED\nCOSTS 1e-3 fast\n", 2, r"cost 'fast' is not a number"),
    ],
)
def test_a_bad_costs_line_is_an_error_quoting_it(stdout: str, repeats: int, problem: str) -> None:
    costs, error_no, message = parse_reply(CommandResult(0, stdout, ""), "pi@board:22", 10.0, repeats)
    assert error_no is MeasureErrorNo.UNKNOWN_ERROR and costs == (1e10,)
    line = stdout.splitlines()[1]
    assert f"pi@board:22: the harness replied {line!r}" in message
    assert re.search(problem, message), message


def test_good_costs_and_an_untimed_run_are_accepted() -> None:
    done = CommandResult(0, "LOADED\nCOSTS 1.5e-03 2.5e-03\n", "")
    assert parse_reply(done, "b", 10.0, 2) == ((1.5e-3, 2.5e-3), MeasureErrorNo.NO_ERROR, "")
    assert parse_reply(CommandResult(0, "LOADED\nCOSTS \n", ""), "b", 10.0, 0)[1] is MeasureErrorNo.NO_ERROR


def test_a_board_replying_a_bare_costs_line_records_an_error(server: SSHServer, tmp_path: Path) -> None:
    """A "board" whose harness answers ``COSTS`` with nothing, 0 or NaN (a prefix replaces
    the harness): never NO_ERROR (old code recorded cost 0 as NO_ERROR)."""
    runner = SSHRunner([server.host()], timeout=10, remote_dir=str(tmp_path / "remote"))
    for reply in ("COSTS", "COSTS 0", "COSTS nan"):
        runner.command_prefix = f"sh -c 'echo LOADED; echo {reply}' sh"
        (result,) = runner.run(*candidates([c_library(tmp_path)]), verbose=0)  # run() deletes it
        assert result.error_no is MeasureErrorNo.UNKNOWN_ERROR, (reply, result)
        assert f"the harness replied {reply!r}" in result.error_msg
    runner.close()


# 4. known_hosts ---------------------------------------------------------------------------------


def _server_key(server: SSHServer) -> tuple[str, str]:
    key_type, key = Path(f"{server.host_key}.pub").read_text().split()[:2]
    return key_type, key


def _other_key(directory: Path) -> str:
    key = directory / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return Path(f"{key}.pub").read_text().split()[1]


def test_trust_on_first_use_appends_one_line_and_keeps_the_rest(server: SSHServer, tmp_path: Path) -> None:
    """Marker lines and comments in known_hosts, eight pool threads trusting the new host
    at once: the file is what it was plus one line (old code crashed on the
    @cert-authority line, and rewrote the file on every connect, comments dropped)."""
    other = _other_key(tmp_path)
    original = (
        "# boards of the lab\n"
        f"@cert-authority *.lab.example ssh-ed25519 {other}\n"
        f"@revoked old-board.example ssh-ed25519 {other}\n"
        f"pi4.lab.example,10.0.0.4 ssh-ed25519 {other} a comment\n"
        "this line is not a key line at all\n"
        # a hashed name, and no final newline
        f"|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|aGFzaGhhc2hoYXNoaGFzaGhhc2g= ssh-ed25519 {other}"
    )
    known = tmp_path / "known_hosts"
    known.write_text(original)
    host = server.host(known_hosts=str(known), trust_on_first_use=True)
    errors: list[BaseException] = []

    def connect() -> None:
        connection = HostConnection(host)
        try:
            connection.connect()
            connection.check("true")
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    key_type, key = _server_key(server)
    assert known.read_text() == original + f"\n[127.0.0.1]:{server.port} {key_type} {key}\n"
    # known now: connecting without trust_on_first_use works and adds nothing
    connection = HostConnection(server.host(known_hosts=str(known)))
    connection.connect()
    connection.close()
    assert known.read_text().count(key) == 1


def test_a_revoked_host_key_is_refused(server: SSHServer, tmp_path: Path) -> None:
    key_type, key = _server_key(server)
    known = tmp_path / "known_hosts"
    content = f"@revoked * {key_type} {key}\n[127.0.0.1]:{server.port} {key_type} {key}\n"
    known.write_text(content)
    for trust in (False, True):
        connection = HostConnection(server.host(known_hosts=str(known), trust_on_first_use=trust))
        with pytest.raises(HostKeyError, match=r"host key \(ssh-ed25519 SHA256:\S+\) is marked @revoked in"):
            connection.connect()
    assert known.read_text() == content


# 5. nothing left behind ----------------------------------------------------------------------------


CHILD = """
import sys
sys.path[:0] = [{root!r}]
from ansor_py.measure.ssh import SSHHost, SSHRunner
from ansor_py.measure.types import BuildResult, MeasureErrorNo, MeasureInput
from ansor_py.search_task import SearchTask
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.topi.workloads import gemm

task = SearchTask(compute_dag=ComputeDAG(gemm({n}, {n}, {n})), target="llvm")
host = SSHHost.parse({address!r}, key_filename={key!r}, known_hosts={known!r})
runner = SSHRunner([host], timeout=10, remote_dir={remote!r})
built = BuildResult({library!r}, MeasureErrorNo.NO_ERROR, "", 0.01)
(result,) = runner.run([MeasureInput(task, get_init_state(task.compute_dag).loop_state)], [built], verbose=0)
print(result.error_no.name, runner.session_dir, flush=True)
# the user never closes the runner
"""


def test_a_runner_nobody_closes_removes_its_run_directory(server: SSHServer, tmp_path: Path) -> None:
    """At interpreter exit, and when garbage-collected, an unclosed runner removes its run
    directory from the board (old code left it there)."""
    remote = tmp_path / "remote"
    host = server.host()
    script = CHILD.format(
        root=str(Path(__file__).resolve().parents[2]), n=N, address=server.address(),
        key=host.key_filename, known=host.known_hosts, remote=str(remote), library=c_library(tmp_path),
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    code, session = done.stdout.split()
    assert code == "NO_ERROR"
    assert not Path(session).exists()
    assert [p.name.startswith("harness-") for p in remote.iterdir()] == [True]
    # garbage-collected in this process
    runner = SSHRunner([host], timeout=10, remote_dir=str(remote))
    (result,) = runner.run(*candidates([c_library(tmp_path)]), verbose=0)
    session = runner.session_dir
    assert result.ok and Path(session).is_dir()
    del runner
    gc.collect()
    assert not Path(session).exists()


def test_the_test_sshd_removes_its_keys(tmp_path: Path) -> None:
    server = SSHServer().start()
    directory = server.dir
    assert (directory / "host_key").exists()
    server.stop()
    assert not directory.exists()
    # a server nobody stops: gone with the interpreter, sshd included
    script = (
        f"import sys; sys.path[:0] = [{str(Path(__file__).resolve().parents[2])!r}]\n"
        "from ansor_py.measure.ssh.local_sshd import SSHServer\n"
        "s = SSHServer().start(); print(s.dir, s.process.pid, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    left, pid = done.stdout.split()
    assert not Path(left).exists()
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


# 6. each result as soon as it is final ----------------------------------------------------------


def test_on_result_sees_each_candidate_before_the_batch_ends(server: SSHServer, tmp_path: Path) -> None:
    """A good candidate, then one that hangs until the board's 3 s timeout, then a build
    error: on_result gets each once, with the returned result, and the good one at least
    3 s before run() returns (it did not wait for the batch)."""
    runner = SSHRunner([server.host()], timeout=3, min_repeat_ms=10, remote_dir=str(tmp_path / "remote"))
    inputs, builds = candidates([c_library(tmp_path), c_library(tmp_path, "HANG"), "unused"])
    builds[2] = BuildResult("", MeasureErrorNo.COMPILE_HOST, "lowering failed", 0.01)
    seen: list[tuple[int, MeasureResult, float]] = []
    results = runner.run(
        inputs, builds, verbose=0, on_result=lambda i, r: seen.append((i, r, time.monotonic()))
    )
    returned_at = time.monotonic()
    runner.close()
    assert [r.error_no for r in results] == [
        MeasureErrorNo.NO_ERROR,
        MeasureErrorNo.RUN_TIMEOUT,
        MeasureErrorNo.COMPILE_HOST,
    ]
    assert sorted(i for i, _, _ in seen) == [0, 1, 2]
    assert all(results[i] is r for i, r, _ in seen)
    good_at = next(t for i, _, t in seen if i == 0)
    assert returned_at - good_at >= 2.5
