"""``python -m ansor_py demo``, the README's first command, at a tiny size: it tunes (the
best programs measured again at the end), prints the best program both ways, verifies every
kernel against numpy, times them taking turns and sets the tuner's speed beside its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "== every kernel verified against the numpy reference; speed (median of 7, interleaved: "
    "tuned (ansor-py), hand-scheduled, naive, numpy (OpenBLAS), tuned (ansor-py), ...):"
)
REPORTED = re.compile(
    r"the tuner reported the tuned program at (?P<reported>[\d.]+) GFLOP/s \(median of (?P<samples>\d+) "
    r"sample\(s\)\); timed here (?P<tuned>[\d.]+) GFLOP/s: ratio (?P<ratio>[\d.]+|inf|nan)"
)


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
        HEADER,
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
    *speed, reported = out.split(HEADER)[1].strip().splitlines()
    assert [line[:18].strip() for line in speed] == list(names), speed
    for line in speed:
        rate, ratio = line[18:].split("GFLOP/s")
        assert float(rate) >= 0 and ratio.strip().endswith("x numpy") and float(ratio.split("x")[0]) >= 0
    # the last line: the tuner's speed for its best program, the speed timed here, the ratio
    match = REPORTED.fullmatch(reported)
    assert match is not None, reported
    assert float(match["tuned"]) == float(speed[0][18:].split("GFLOP/s")[0])
    reported_rate, tuned_rate = float(match["reported"]), float(match["tuned"])
    if reported_rate >= 1 and tuned_rate >= 1:  # printed to 0.1: the ratio is checkable
        assert float(match["ratio"]) == pytest.approx(tuned_rate / reported_rate, rel=0.15)
    # the record file: the 4 programs of the search, then re-measurements of the valid ones
    # (each a later record of a program already there, with 5 samples)
    records = [json.loads(row) for row in log.read_text().splitlines() if row.strip()]
    programs = [json.dumps(record["i"]) for record in records]
    searched = [record for record in records[:4] if record["r"][1] == 0]
    assert len(set(programs[:4])) == 4 and searched, records
    assert len(records) > 4 and set(programs[4:]) <= {json.dumps(r["i"]) for r in searched}
    # 5 passes each; a pass that timed out (a starved machine) is left out of the samples
    remeasured = [len(record["r"][0]) for record in records[4:] if record["r"][1] == 0]
    assert remeasured and all(1 <= n <= 5 for n in remeasured), remeasured
    assert int(match["samples"]) in remeasured  # the tuner reported a re-measured median
