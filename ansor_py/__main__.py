"""Command line.

``python -m ansor_py demo`` tunes a matmul briefly and prints the result;
``python -m ansor_py check-host user@board[:port] -i KEY [--target T] [--prefix P]`` checks
that a board is reachable over SSH, reports its CPU and suggests a target string, and with
``--target`` runs a small kernel built for it there (``ansor_py.measure.ssh.probe``).
"""

from __future__ import annotations

import argparse
import sys

from ansor_py.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ansor_py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="tune a matmul briefly, then verify and time the best program")
    demo.add_argument("--size", type=int, default=512, help="N = M = K of the matmul (default 512)")
    demo.add_argument("--trials", type=int, default=64, help="measurement trials (default 64)")
    demo.add_argument("--log", default=None, help="record file (default: a new temporary file)")
    check = commands.add_parser("check-host", help="check an SSH board before tuning for it")
    check.add_argument("address", help="[user@]host[:port]")
    check.add_argument("-i", "--key", default=None, help="private key file (default: ssh-agent / ~/.ssh)")
    check.add_argument("--known-hosts", default=None, help="known_hosts file (default ~/.ssh/known_hosts)")
    check.add_argument(
        "--trust-on-first-use", action="store_true", help="accept and save an unknown host key"
    )
    check.add_argument("--target", default=None, help="also run a kernel built for this target")
    check.add_argument("--prefix", default="", help="remote command prefix (emulator, taskset)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.size, args.trials, args.log)
    if args.command == "check-host":
        return run_check_host(args)
    return 2


def run_check_host(args: argparse.Namespace) -> int:
    from ansor_py.measure.ssh import HostError, SSHHost, check_host
    from codegen.llvm import CodegenError

    try:
        host = SSHHost.parse(
            args.address,
            key_filename=args.key,
            known_hosts=args.known_hosts,
            trust_on_first_use=args.trust_on_first_use,
        )
        print(check_host(host, args.target, command_prefix=args.prefix))
    except (HostError, CodegenError, ValueError, RuntimeError) as error:
        print(f"check-host: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
