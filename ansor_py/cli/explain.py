"""``ansor-py explain``: every stage of the best program of a log, one after the other.

The best record (of one workload when ``--workload``/``--workload-key`` is given, of the
log otherwise) is replayed and shown as ``ansor_py.explain.explain_record`` shows it: the
compute DAG, the loop tree, the step script, the loop nest after each lowering pass, the
LLVM IR, the assembly, and a run verified against the numpy reference and timed. Records
of a registered workload (``tune --workload``) name it by its key, so the built-in
workloads are registered first and ``--import`` adds a user's.
"""

from __future__ import annotations

import argparse
import json

from ansor_py.cli.options import CommandError, UsageError, existing_file, help_text, target_type
from ansor_py.cli.workloads import import_workload_modules, workload_args
from ansor_py.explainer import explain_record
from ansor_py.workload_registry import WorkloadError, make_workload_key

EPILOG = """\
examples:
  # the best program of a log written by "ansor-py tune --workload matmul ..."
  ansor-py explain matmul.json

  # one workload of a log holding several, without running the kernel
  ansor-py explain ops.json --workload matmul --args 512 512 512 --no-run

  # by workload key (as the records write it) and target
  ansor-py explain ops.json --workload-key '["matmul", 512, 512, 512]' --target llvm
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "explain",
        help="show the best program of a log at every stage, from the DAG to assembly and a timed run",
        description=help_text(__doc__),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("log", help="record log")
    parser.add_argument("--workload", metavar="NAME", help="a registered workload, with --args")
    parser.add_argument("--args", nargs="+", default=[], metavar="ARG", help="the workload's arguments")
    parser.add_argument("--workload-key", metavar="KEY", help="the workload key as the log writes it")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: its @register_workload functions become workloads",
    )
    parser.add_argument(
        "--target", type=target_type, default=None, help="only records for this target's class (default: any)"
    )
    parser.add_argument("--no-run", action="store_true", help="do not build, verify and time the kernel")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    log = existing_file(args.log, "record log", "explain")
    import_workload_modules(args.imports, "explain")
    if args.workload is not None and args.workload_key is not None:
        raise UsageError("explain: give --workload NAME --args ... or --workload-key KEY, not both")
    if args.workload is None and args.args:
        raise UsageError("explain: --args belongs to --workload")
    key = args.workload_key
    if key is not None:
        try:
            json.loads(key)
        except json.JSONDecodeError:
            raise UsageError(
                f"explain: --workload-key {key!r} is not JSON (e.g. '[\"matmul\", 64, 64, 64]')"
            ) from None
    if args.workload is not None:
        key = make_workload_key(args.workload, workload_args(args.workload, args.args, "explain"))
    try:
        explain_record(log, workload_key=key, target=args.target, run=not args.no_run)
    except WorkloadError:
        raise  # a record of a workload not registered here: main prints it
    except ValueError as error:  # explain_record's documented refusals: no such record, several workloads
        raise CommandError(f"explain: {error}") from None
    return 0
