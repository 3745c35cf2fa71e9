"""``benchmarks/tune_ops.run_as_child``: a benchmark re-run in a child process with its
thread counts. A SIGTERM sent to the benchmark must stop the child too: a killed parent
used to leave its child tuning on, measuring beside whatever ran next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

SCRIPT = f"""
import os, sys, time
sys.path.insert(0, {str(BENCHMARKS)!r})
from tune_ops import run_as_child
if "--child" in sys.argv:
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(120)
    sys.exit(0)
sys.exit(run_as_child(__file__, sys.argv[1:], 1))
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_sigterm_to_the_benchmark_stops_its_child(tmp_path: Path) -> None:
    script = tmp_path / "bench.py"
    script.write_text(SCRIPT)
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert parent.poll() is None and time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        child_pid = int(pid_file.read_text())
        assert alive(child_pid)
        parent.send_signal(signal.SIGTERM)
        status = parent.wait(timeout=30)
        assert status == 256 - signal.SIGTERM  # the parent waited: sys.exit(the child's -SIGTERM)
        assert not alive(child_pid), f"child {child_pid} still runs after its parent was terminated"
    finally:
        parent.kill()
        if pid_file.exists() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
