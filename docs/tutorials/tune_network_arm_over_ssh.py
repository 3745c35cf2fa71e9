"""Tune a small network for a Raspberry Pi over plain SSH, and run it there.

The network tutorial (``tune_network_x86.py``) with the candidates measured on an ARM
board: every candidate is cross-compiled here, copied over SSH and timed (and checked
against numpy) on the board (``SSHRunner``); the task scheduler and its log are unchanged.
The tuned network is then exported as ONE shared object for the board
(``Network.export_library(target=...)``: the records' schedules compiled for AArch64,
weights embedded) and run there by ``run_exported_over_ssh``, which checks its output
against the numpy reference here. The tools: see ``tune_raspberry_pi_over_ssh.py``.

    python docs/tutorials/tune_network_arm_over_ssh.py --host pi@raspberrypi.local \\
        --key ~/.ssh/id_ed25519 --trials 200

Without a Pi, ``--local-emulated`` starts a private sshd on 127.0.0.1 and runs the AArch64
code under qemu-user: the same path, far slower than a board, so use it to see it work.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import ansor_py as ansor
from ansor_py.measure.ssh.local_sshd import QEMU_PREFIX, SSHServer
from ansor_py.network import NetworkBuildWarning, run_exported_over_ssh, run_reference
from ansor_py.network.graph import Graph
from ansor_py.network.zoo import GraphBuilder, random_inputs

PI4_TARGET = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"


def small_cnn(size: int, seed: int = 0) -> Graph:
    """1 x 3 x size x size -> 1 x 10: conv 3x3 (8) + bn + relu, global average pool, dense 10."""
    b = GraphBuilder("small_cnn_arm", seed)
    x = b.input("input", (1, 3, size, size))
    x = b.conv(x, 3, 8, (3, 3), "conv1", pads=(1, 1, 1, 1))
    x = b.node("relu", [b.batch_norm(x, 8, "bn1")], "relu1")
    x = b.node("global_avg_pool", [x], "pool", layout="NCHW")
    x = b.node("reshape", [x], "flatten", shape=(1, 8))
    return b.build([b.dense(x, 8, 10, "fc")])


@contextlib.contextmanager
def board(args: argparse.Namespace) -> Iterator[tuple[ansor.SSHHost, str]]:
    """The board to tune for, and the command prefix its programs run under."""
    if args.local_emulated:
        with SSHServer() as server:
            print(f"emulated board: sshd on 127.0.0.1:{server.port}, AArch64 code under `{QEMU_PREFIX}`")
            yield server.host(), QEMU_PREFIX
        return
    yield ansor.SSHHost.parse(args.host, key_filename=args.key), args.prefix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="pi@raspberrypi.local", help="[user@]host[:port] of the board")
    parser.add_argument("--key", default=None, help="private key file")
    parser.add_argument("--prefix", default="", help="remote command prefix, e.g. 'taskset -c 0-3'")
    parser.add_argument("--target", default=PI4_TARGET, help="the board's target string")
    parser.add_argument("--size", type=int, default=32, help="height and width of the input image")
    parser.add_argument("--trials", type=int, default=200, help="measurement trials for the whole network")
    parser.add_argument("--population", type=int, default=2048, help="evolutionary search population")
    parser.add_argument("--log", default=None, help="record file (default: a temporary file)")
    parser.add_argument("--local-emulated", action="store_true", help="a local sshd + qemu-user 'board'")
    args = parser.parse_args(argv)
    if args.size < 4 or args.trials < 1 or args.population < 1:
        parser.error(
            f"--size {args.size} must be at least 4, --trials {args.trials} and "
            f"--population {args.population} at least 1"
        )
    work = Path(tempfile.mkdtemp(prefix="ansor_py_net_arm_"))
    log = args.log or str(work / "small_cnn_arm.json")
    graph = small_cnn(args.size)
    tasks, weights = ansor.extract_tasks(graph, args.target, include_simple_tasks=False)
    for i, (task, weight) in enumerate(zip(tasks, weights, strict=True)):
        print(f"task {i}: weight {weight}, {task.desc}")
    if args.trials < len(tasks):
        parser.error(f"--trials {args.trials} is less than one trial per task ({len(tasks)} tasks)")
    inputs = random_inputs(graph, seed=1)
    expected = run_reference(graph, inputs)[0]
    with board(args) as (host, prefix):
        # 1. tune: candidates built here, timed and verified on the board
        runner = ansor.SSHRunner([host], command_prefix=prefix, timeout=60, repeat=3)
        scheduler = ansor.TaskScheduler(tasks, weights, load_log_file=log, callbacks=[ansor.PrintTableInfo()])
        remaining = args.trials - scheduler.restored_trials
        if remaining >= len(tasks):
            options = ansor.TuningOptions(
                num_measure_trials=remaining, runner=runner, measure_callbacks=[ansor.RecordToFile(log)]
            )
            scheduler.tune(options, search_policy_params={"evolutionary_search_population": args.population})
        runner.close()
        print(f"records: {log}")
        # 2. the network from the log: built here, where its kernels can load, with the
        #    board's best schedule of each task, then exported for the board (its schedules
        #    compiled for AArch64)
        history = ansor.ApplyHistoryBest(log)
        for task in tasks:
            state = history.query(args.target, task.workload_key, task.compute_dag)
            if state is not None:
                history.update("llvm", task.workload_key, state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NetworkBuildWarning)  # the elementwise tasks are not tuned
            network = ansor.build_network(graph, "llvm", records=history)
        print(network.summary())
        library = network.export_library(work / "small_cnn_arm.so", target=args.target)
        # 3. run it on the board and check it here
        outputs, seconds = run_exported_over_ssh(host, library, inputs, repeat=3, command_prefix=prefix)
    scale = float(np.abs(expected).max())
    if not np.allclose(outputs[0], expected, rtol=1e-4, atol=1e-4 * scale):
        error = float(np.abs(outputs[0] - expected).max())
        print(f"the board's output differs from the numpy reference by {error:.2e}", file=sys.stderr)
        return 1
    print(f"on the board: {min(seconds) * 1e3:.3f} ms per run (best of {len(seconds)})")
    print(f"[verified] {library.name} ran on {host} and matched the numpy reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
