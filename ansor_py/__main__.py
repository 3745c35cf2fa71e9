"""Command line: ``python -m ansor_py demo`` runs a short end-to-end example."""

from __future__ import annotations

import argparse
import sys

from ansor_py.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ansor_py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="declare, schedule, lower, compile, verify and time a matmul")
    demo.add_argument("--size", type=int, default=512, help="N = M = K of the matmul (default 512)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.size)
    return 2


if __name__ == "__main__":
    sys.exit(main())
