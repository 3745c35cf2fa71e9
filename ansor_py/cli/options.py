"""Options and checks shared by the subcommands of ``ansor-py``.

A user's mistake (a missing file, an unknown workload, a target that cannot run here)
becomes a ``CommandError`` whose message names the value; ``main`` prints it as one line
on stderr and exits with status 1 (2 for a ``UsageError``, options that do not go
together). Option values argparse can judge
alone (a target string, a ``--shape``) are checked by their ``type=`` function instead, so
they are usage errors (status 2) reported before anything runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codegen.target import Target


class CommandError(Exception):
    """A mistake in what the user asked for; ``main`` prints the message, not a traceback,
    and exits with status 1."""


class UsageError(CommandError):
    """Options that do not go together; exit status 2, as argparse's usage errors."""


def help_text(doc: str | None) -> str:
    """A module docstring as ``--help`` prints it: without the reStructuredText quotes."""
    return (doc or "").replace("``", "")


def target_type(text: str) -> Target:
    """argparse ``type=`` for a target string (``Target.parse``): "llvm",
    "llvm -mcpu=skylake-avx512", "llvm -mtriple=aarch64-linux-gnu -mattr=+neon"."""
    try:
        return Target.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"bad target {text!r}: {error}") from None


def add_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        type=target_type,
        default=Target.parse("llvm"),
        help='compilation target (default "llvm": this CPU, its features detected)',
    )


def require_runnable_target(target: Target, command: str) -> None:
    """CommandError unless code built for ``target`` runs on this machine: the command
    line measures and runs kernels in local processes only (the library's ``SSHRunner``
    measures on a board)."""
    if not target.is_host:
        raise CommandError(
            f"{command}: target '{target}' does not run on this machine (its triple is {target.triple}); "
            "the command line measures locally: use the library's SSHRunner to measure on a board"
        )
    missing = target.missing_host_features()
    if missing:
        raise CommandError(
            f"{command}: target '{target}' needs {', '.join(missing)}, which this CPU lacks "
            "(every program would die of SIGILL)"
        )


def shape_type(text: str) -> tuple[str, tuple[int, ...]]:
    """argparse ``type=`` for ``--shape name=1,3,224,224``: (input name, static shape)."""
    name, sep, dims = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"shape {text!r} must look like input_name=1,3,224,224")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"shape {text!r}: dimensions {dims!r} must be integers separated by commas"
        ) from None
    if any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"shape {text!r}: every dimension must be at least 1")
    return name, shape


def add_shape_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        type=shape_type,
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="static shape of a model input with dynamic dimensions (repeat for several inputs)",
    )


def shape_overrides(shapes: list[tuple[str, tuple[int, ...]]], command: str) -> dict[str, tuple[int, ...]]:
    """The ``--shape`` options as ``from_onnx``'s ``shape``; one input given twice is an error."""
    overrides: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes:
        if name in overrides:
            raise CommandError(f"{command}: --shape gives input '{name}' twice")
        overrides[name] = shape
    return overrides


def existing_file(path: str | Path, what: str, command: str) -> Path:
    """``path`` as a Path; CommandError naming it when it is not an existing file."""
    file = Path(path)
    if not file.is_file():
        reason = "is a directory" if file.is_dir() else "does not exist"
        raise CommandError(f"{command}: {what} '{file}' {reason}")
    return file


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
