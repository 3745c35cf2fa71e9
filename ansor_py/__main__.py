"""Command line: ``python -m ansor_py demo`` tunes a matmul briefly and prints the result."""

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
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.size, args.trials, args.log)
    return 2


if __name__ == "__main__":
    sys.exit(main())
