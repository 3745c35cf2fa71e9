"""The ``ansor-py`` command line (also ``python -m ansor_py``).

One module per subcommand, each with ``add_parser(commands)`` (its options and a ``--help``
with examples) and ``run(args) -> exit status``:

- ``tune``: tune an ONNX model's tasks (``TaskScheduler``) or one registered workload
  (``auto_schedule``) into a record log, resuming the log when it exists;
- ``run``: build an ONNX model from its log, verify it against numpy, time it (and
  onnxruntime when installed);
- ``explain``: the best program of a log at every stage, DAG to assembly and a timed run;
- ``distill``: keep the best record per workload and target of a log;
- ``check-host``: check an SSH board before tuning for it;
- ``demo``: tune a matmul briefly, then verify and time the best program.

A user's mistake (a missing file, an unknown workload, a bad target, a model the importer
refuses) is printed as one line on stderr, with no traceback: exit status 1, or 2 for a
usage error (argparse's, or options that do not go together). Anything else is a bug and
raises.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ansor_py.cli import check_host, demo, distill, explain, run, tune
from ansor_py.cli.options import CommandError, UsageError
from ansor_py.cli.workloads import register_builtin_workloads
from ansor_py.network.reference import InputError
from ansor_py.network.types import GraphError
from ansor_py.search.params import SketchParamsError
from ansor_py.workload_registry import WorkloadError
from ir.te import DeclarationError

#: the subcommands, in the order ``--help`` lists them
COMMANDS = (tune, run, explain, distill, check_host, demo)

#: errors of the library that describe the user's input, not a bug: printed in one line
USER_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # a log that cannot be written, a model that cannot be read
    WorkloadError,  # a workload key naming no registered function
    GraphError,  # a model the ONNX importer refuses (its message names the node)
    InputError,  # inputs that do not fit the model
    DeclarationError,  # workload arguments the declaration refuses (a bad layout, shape)
    SketchParamsError,  # a search parameter out of range
)

EPILOG = """\
examples:
  ansor-py tune --workload matmul --args 512 512 512 --trials 200 --log matmul.json
  ansor-py explain matmul.json
  ansor-py tune model.onnx --shape input=1,3,224,224 --trials 1000 --log model.json
  ansor-py run model.onnx --shape input=1,3,224,224 --log model.json
  ansor-py COMMAND --help     (each command's options, with examples)
"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ansor-py",
        description="ansor-py: the Ansor auto-scheduler (OSDI 2020) in Python, from the command line.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit
    status; an argparse usage error (or ``--help``) raises SystemExit as argparse does."""
    parser = make_parser()
    args = parser.parse_args(argv)  # usage errors exit with status 2 here
    register_builtin_workloads()
    try:
        return int(args.run(args))
    except UsageError as error:
        print(f"ansor-py: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: stop quietly (the Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CommandError as error:
        print(f"ansor-py: {error}", file=sys.stderr)
        return 1
    except USER_ERRORS as error:
        print(f"ansor-py {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"ansor-py {args.command}: interrupted (a record log keeps every line written)", file=sys.stderr
        )
        return 130
