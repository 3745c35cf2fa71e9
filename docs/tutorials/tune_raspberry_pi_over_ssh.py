"""Tune a matmul for a Raspberry Pi over plain SSH.

The board needs nothing but sshd: ansor-py cross-compiles every candidate here (llvmlite
emits the AArch64 object, zig links it for glibc 2.17), copies it over SSH, and times it on
the board with a small C harness (cross-compiled once, cached there). Built for glibc 2.17,
both run on old systems (Raspberry Pi OS Bullseye, Ubuntu 20.04, JetPack 5) as on new
ones. The toolchain on this machine is a pip package:

    pip install ziglang

(``aarch64-linux-gnu-gcc`` or ``ld.lld`` still work, through ``ANSOR_PY_AARCH64_CC`` /
``ANSOR_PY_AARCH64_LINKER``, for boards with the build machine's glibc or newer.) A Pi under
32-bit Raspberry Pi OS takes ``-mtriple=armv7l-linux-gnueabihf``: ``check-host`` says which.

Steps:

1. check the board: ``python -m ansor_py check-host pi@raspberrypi.local -i ~/.ssh/id_ed25519
   --target "llvm -mtriple=aarch64-linux-gnu -mattr=+neon"`` reports its CPU (a Pi 4 is a
   Cortex-A72, ``-mcpu=cortex-a72``) and runs a kernel there;
2. tune with ``auto_schedule(task, TuningOptions(runner=SSHRunner([...])))``: every
   candidate is verified on the board against numpy's result before it counts;
3. export the best program as a shared object for the board and run it there.

    python docs/tutorials/tune_raspberry_pi_over_ssh.py --host pi@raspberrypi.local \\
        --key ~/.ssh/id_ed25519 --trials 200

Without a Pi, ``--local-emulated`` starts a private sshd on 127.0.0.1 and runs the AArch64
code under qemu-user (``apt-get install openssh-server qemu-user``): the same path, about
400x slower than a board, so use it to see it work, not to time anything.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import ansor_py as ansor
from ansor_py.measure.ssh.local_sshd import QEMU_PREFIX, SSHServer
from codegen.target import Target
from ir import te

PI4_TARGET = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"


@ansor.register_workload
def matmul_relu(n: int) -> list[te.Tensor]:
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    d = te.compute((n, n), lambda i, j: te.max(c[i, j], 0.0), name="D")
    return [a, b, d]


@contextlib.contextmanager
def board(args: argparse.Namespace) -> Iterator[tuple[ansor.SSHHost, str]]:
    """The board to tune for, and the command prefix its programs run under."""
    if args.local_emulated:
        with SSHServer() as server:
            print(f"emulated board: sshd on 127.0.0.1:{server.port}, AArch64 code under `{QEMU_PREFIX}`")
            yield server.host(), QEMU_PREFIX
        return
    host = ansor.SSHHost.parse(
        args.host,
        key_filename=args.key,
        known_hosts=args.known_hosts,
        trust_on_first_use=args.trust_on_first_use,
    )
    yield host, args.prefix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="pi@raspberrypi.local", help="[user@]host[:port] of the board")
    parser.add_argument("--key", default=None, help="private key file")
    parser.add_argument("--known-hosts", default=None, help="known_hosts file (default ~/.ssh/known_hosts)")
    parser.add_argument("--trust-on-first-use", action="store_true", help="accept an unknown host key once")
    parser.add_argument("--prefix", default="", help="remote command prefix, e.g. 'taskset -c 0-3'")
    parser.add_argument("--target", default=PI4_TARGET, help="the board's target string")
    parser.add_argument("--size", type=int, default=256, help="N of the N x N matmul + relu")
    parser.add_argument("--trials", type=int, default=64, help="measurement trials")
    parser.add_argument("--log", default=None, help="record file (default: a temporary file)")
    parser.add_argument("--local-emulated", action="store_true", help="a local sshd + qemu-user 'board'")
    args = parser.parse_args(argv)
    if args.size < 1 or args.trials < 1:
        parser.error(f"--size {args.size} and --trials {args.trials} must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="ansor_py_pi_"))
    log = args.log or str(work / "matmul_relu.json")
    task = ansor.SearchTask(func=matmul_relu, args=(args.size,), target=args.target)
    print(f"task: matmul + relu, N={args.size}, target '{task.target}'")
    with board(args) as (host, prefix):
        # 1. is the board there, and what is it?
        report = ansor.check_host(host, task.target, command_prefix=prefix, timeout=120)
        print(report)
        # 2. tune: candidates built here, timed and verified on the board
        runner = ansor.SSHRunner([host], command_prefix=prefix, timeout=60, repeat=3)
        options = ansor.TuningOptions(
            num_measure_trials=args.trials, runner=runner, measure_callbacks=[ansor.RecordToFile(log)]
        )
        ansor.auto_schedule(task, options)
        print(f"records: {log}")
        print(ansor.print_best(task, log))
        # 3. the best program as a shared object for the board; run it there, check it
        module = ansor.apply_best(task, log)
        library = module.export_library(work / "matmul_relu_best.so")
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((args.size, args.size)).astype("float32") for _ in range(2))
        out = np.full((args.size, args.size), np.nan, dtype="float32")
        runner.run_library(library, Target.parse(args.target), [a, b], [out])
        runner.close()
    expected = np.maximum(a.astype(np.float64) @ b, 0.0)
    if not np.allclose(out, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max()))):
        print("the board's result differs from numpy", file=sys.stderr)
        return 1
    print(f"[verified] {library.name} ran on {host} and matched numpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
