"""``ansor-py distill``: keep only the best record of each workload and target of a log.

A tuning log holds every measurement (Ansor paper section 6.1: the log is the search's
memory); applying it needs only the best line per (workload key, target class). This is
``distill_record_file`` (TVM's ``auto_scheduler.measure_record.distill_record_file``):
``OUT`` gets the best of ``IN`` and of ``OUT`` itself when it exists, so several logs can
be distilled into one.
"""

from __future__ import annotations

import argparse

from ansor_py.cli.options import existing_file, help_text
from ansor_py.records import distill_record_file

EPILOG = """\
examples:
  # the best record per workload of resnet50.json, for shipping with the model
  ansor-py distill resnet50.json resnet50.best.json

  # merge a second log into the same distilled file
  ansor-py distill more_tuning.json resnet50.best.json
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "distill",
        help="keep only the best record per workload and target of a log",
        description=help_text(__doc__),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="record log to read")
    parser.add_argument("output", help="record log to write (its own best records are kept)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    source = existing_file(args.input, "record log", "distill")
    before = count_lines(source)
    distill_record_file(source, args.output)
    print(f"{args.output}: {count_lines(args.output)} best record(s), from {before} line(s) of {source}")
    return 0


def count_lines(path: str | object) -> int:
    with open(str(path), encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip())
