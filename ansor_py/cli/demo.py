"""``ansor-py demo``: tune one matmul for this CPU briefly, then verify and time the best
program beside numpy and a hand-written schedule (``ansor_py.demo.run_demo``)."""

from __future__ import annotations

import argparse

from ansor_py.cli.options import help_text, positive_int

EPILOG = """\
examples:
  # the README's first command: a 512 x 512 matmul, 64 trials
  ansor-py demo

  # smaller and quicker, keeping the records
  ansor-py demo --size 128 --trials 16 --log demo.json
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="tune a matmul briefly, then verify and time the best program",
        description=help_text(__doc__),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--size", type=positive_int, default=512, help="N = M = K of the matmul (default 512)"
    )
    parser.add_argument("--trials", type=int, default=64, help="measurement trials (default 64)")
    parser.add_argument("--log", default=None, help="record file (default: a new temporary file)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ansor_py.demo import run_demo

    return run_demo(args.size, args.trials, args.log)
