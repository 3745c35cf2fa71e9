"""``python -m ansor_py demo``, the README's first command, at a tiny size: it tunes, prints
the best program both ways, verifies every kernel against numpy and times them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_tunes_verifies_and_times_a_tiny_matmul(tmp_path: Path) -> None:
    log = tmp_path / "demo.json"
    done = subprocess.run(
        [sys.executable, "-m", "ansor_py", "demo", "--size", "32", "--trials", "4", "--log", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, f"demo exited {done.returncode}\nstdout:\n{out}\nstderr:\n{done.stderr}"
    assert "ERROR: the" not in out  # a kernel that disagrees with numpy
    promised = [
        "== the declaration (ComputeDAG), 0.00 GFLOP per run",
        "== tuning 4 trials for llvm",
        f"(records: {log})",
        "tuning took",
        "== the best program as Ansor's loop tree",
        "== ... and as a Python step script",
        "== every kernel verified against the numpy reference; speed (median of 5):",
    ]
    for line in promised:
        assert line in out, f"missing {line!r} in the demo's output:\n{out}"
    # the best program's loop tree is the tuned matmul's, and its step script rebuilds it
    tree = out.split("== the best program as Ansor's loop tree")[1].split("== ... and as a Python")[0]
    assert "Placeholder: A, B" in tree and "C = ..." in tree, tree
    script = out.split("== ... and as a Python step script")[1].split("== every kernel verified")[0]
    assert "s = get_init_state(dag)" in script, script
    # one speed line per kernel, in this order, each with a rate and a ratio to numpy (the
    # rates are not compared: on a loaded machine a tiny parallel kernel can round to 0.0)
    names = ("tuned (ansor-py)", "hand-scheduled", "naive", "numpy (OpenBLAS)")
    speed = out.split("speed (median of 5):")[1].strip().splitlines()
    assert [line[:18].strip() for line in speed] == list(names), speed
    for line in speed:
        rate, ratio = line[18:].split("GFLOP/s")
        assert float(rate) >= 0 and ratio.strip().endswith("x numpy") and float(ratio.split("x")[0]) >= 0
    # the record file: the 4 measured programs, at least one of them without an error
    records = [json.loads(row) for row in log.read_text().splitlines() if row.strip()]
    assert len(records) == 4
    assert any(record["r"][1] == 0 for record in records), records
