"""The SSH runner's overhead, measured on this machine (x86-64 target over SSH to 127.0.0.1).

Performance is not judged under emulation (AArch64 under qemu-user is ~400x slower), so this
takes the one path that runs natively: the host target, a private sshd on 127.0.0.1
(``ansor_py.measure.ssh.local_sshd``), the same harness. For a small kernel (vector add) and
a larger one (a 256^3 matmul), it reports, as medians of ``--rounds`` rounds:

* per call: the cost the harness reports over SSH beside the cost ``LocalRunner`` reports
  for the same library (their ratio is the harness's timing overhead per kernel run);
* per candidate: the wall time of ``SSHRunner.run`` per candidate beside ``LocalRunner.run``
  (copying the library, starting the harness, loading the library, checking the output).

    python benchmarks/ssh_overhead.py [--candidates 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from ansor_py.measure.local import LocalBuilder, LocalRunner
from ansor_py.measure.ssh import SSHRunner
from ansor_py.measure.ssh.local_sshd import SSHServer
from ansor_py.measure.types import MeasureInput
from ansor_py.search_task import SearchTask
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.state import initial_state
from ir.topi.workloads import gemm


def vector_add(n: int) -> ComputeDAG:
    a = te.placeholder((n,), name="A")
    b = te.placeholder((n,), name="B")
    return ComputeDAG([a, b, te.compute((n,), lambda i: a[i] + b[i], name="C")])


def measure(runner: LocalRunner | SSHRunner, inputs: list[MeasureInput]) -> tuple[float, float]:
    """(median seconds per call, wall seconds per candidate) for one batch."""
    builds = LocalBuilder(timeout=60).build(inputs, verbose=0)
    start = time.perf_counter()
    results = runner.run(inputs, builds, verbose=0)
    wall = (time.perf_counter() - start) / len(inputs)
    bad = [r.error_msg for r in results if not r.ok]
    if bad:
        raise SystemExit(f"a candidate failed: {bad[0]}")
    return statistics.median(r.median_cost for r in results), wall


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=16, help="candidates per batch")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (medians are quoted)")
    args = parser.parse_args(argv)
    workloads = {
        "vector add 4096": vector_add(4096),
        "matmul 256": ComputeDAG(gemm(256, 256, 256)),
    }
    header = ("kernel", "call local", "call ssh", "ratio", "cand local", "cand ssh", "ratio")
    print("{:<16} {:>11} {:>10} {:>6} {:>11} {:>9} {:>6}".format(*header))
    with SSHServer() as server:
        ssh = SSHRunner([server.host()], timeout=30)
        local = LocalRunner(timeout=30)
        for name, dag in workloads.items():
            task = SearchTask(compute_dag=dag, target="llvm")
            inputs = [MeasureInput(task, initial_state(dag)) for _ in range(args.candidates)]
            rows = {"local": [], "ssh": []}
            for _ in range(args.rounds):
                rows["local"].append(measure(local, inputs))
                rows["ssh"].append(measure(ssh, inputs))
            call = {side: statistics.median(c for c, _ in rows[side]) for side in rows}
            cand = {side: statistics.median(w for _, w in rows[side]) for side in rows}
            call_ratio = call["ssh"] / call["local"]
            cand_ratio = cand["ssh"] / cand["local"]
            print(
                f"{name:<16} {call['local'] * 1e6:>9.1f}us {call['ssh'] * 1e6:>8.1f}us {call_ratio:>6.2f}"
                f" {cand['local'] * 1e3:>9.1f}ms {cand['ssh'] * 1e3:>7.1f}ms {cand_ratio:>6.2f}"
            )
        ssh.close()
        local.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
