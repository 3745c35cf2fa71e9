"""``ansor-py check-host``: check an SSH board before tuning for it.

Logs in to the board, reports its CPU and suggests a target string; with ``--target`` it
also builds a small kernel for that target here, runs it on the board and checks it
against numpy (``ansor_py.measure.ssh.probe.check_host``). Nothing but sshd is needed on
the board: kernels are cross-compiled here and timed by a small harness copied there.
"""

from __future__ import annotations

import argparse
import sys

from ansor_py.cli.options import help_text, target_type

EPILOG = """\
examples:
  # what CPU is it, and which target string fits it?
  ansor-py check-host pi@raspberrypi.local -i ~/.ssh/id_ed25519

  # build a kernel for the suggested target and run it there
  ansor-py check-host pi@raspberrypi.local -i ~/.ssh/id_ed25519 \\
      --target "llvm -mtriple=aarch64-linux-gnu -mattr=+neon -num-cores=4"

  # a board reached through a port forward, its code run under an emulator
  ansor-py check-host user@127.0.0.1:2222 --trust-on-first-use \\
      --prefix "qemu-aarch64 -L /usr/aarch64-linux-gnu"
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check-host",
        help="check an SSH board before tuning for it",
        description=help_text(__doc__),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("address", help="[user@]host[:port]")
    parser.add_argument("-i", "--key", default=None, help="private key file (default: ssh-agent / ~/.ssh)")
    parser.add_argument("--known-hosts", default=None, help="known_hosts file (default ~/.ssh/known_hosts)")
    parser.add_argument(
        "--trust-on-first-use", action="store_true", help="accept and save an unknown host key"
    )
    parser.add_argument(
        "--target", type=target_type, default=None, help="also run a kernel built for this target"
    )
    parser.add_argument("--prefix", default="", help="remote command prefix (emulator, taskset)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
