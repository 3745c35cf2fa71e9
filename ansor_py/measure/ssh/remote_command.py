"""The shell command that runs the harness on a board, and what its reply means.

The command is built from quoted words only (``shlex.quote``): ``timeout -k 2 T`` bounds
the run on the board itself (so a hung kernel is killed there even if the connection is
gone), the optional prefix (an emulator, ``taskset``) wraps the harness, and the
candidate's library is removed whatever the outcome. ``parse_reply`` maps the harness's
reply lines and the exit status onto ``MeasureErrorNo`` (see ``harness.c``); the messages
name the board, since in a pool the same candidate could have run on any of them.

The board's reply is not trusted: a ``COSTS`` line must hold exactly one cost per repeat
asked for, each a finite number of seconds > 0. Anything else (a bare ``COSTS``, a cost of
0, a negative, NaN or infinite cost, too few or too many) is an UNKNOWN_ERROR quoting the
line, never a measurement: a cost of 0 or below would rank as the best program.
"""

from __future__ import annotations

import math
import shlex
import signal
from dataclasses import dataclass

from ansor_py.measure.ssh.host import CommandResult
from ansor_py.measure.types import ERROR_COST, MeasureErrorNo

#: exit status of coreutils/busybox ``timeout`` when the deadline passed
TIMEOUT_STATUS = 124
#: the shell's statuses for a command that could not be executed or found
NOT_EXECUTABLE_STATUSES = (126, 127)
#: reply keywords of the harness -> error codes
REPLY_ERRORS = {
    "WRONG_ANSWER": MeasureErrorNo.WRONG_ANSWER,
    "RUNTIME_DEVICE": MeasureErrorNo.RUNTIME_DEVICE,
    "COMPILE_DEVICE": MeasureErrorNo.COMPILE_DEVICE,
    "ERROR": MeasureErrorNo.UNKNOWN_ERROR,
}


@dataclass(frozen=True)
class HarnessCall:
    """One harness invocation: remote paths (relative to the home directory) and the
    timing parameters of ``harness.c``'s command line."""

    harness: str
    library: str
    entry: str
    args_file: str
    number: int
    repeat: int
    min_repeat_ms: float
    flush_bytes: int
    settle_ms: float
    timeout: float
    prefix: str = ""
    out_dir: str | None = None


def harness_command(call: HarnessCall, remove_library: bool) -> str:
    """The shell command line for ``call``; with ``remove_library`` it deletes the library
    afterwards and still exits with the harness's status."""
    words = ["timeout", "-k", "2", str(max(1, math.ceil(call.timeout))), *shlex.split(call.prefix)]
    words += [call.harness, call.library, call.entry, call.args_file]
    words += [str(call.number), str(call.repeat), repr(float(call.min_repeat_ms))]
    words += [str(call.flush_bytes), repr(float(call.settle_ms))]
    if call.out_dir is not None:
        words.append(call.out_dir)
    command = " ".join(shlex.quote(w) for w in words)
    if remove_library:
        command = f"{command}; status=$?; rm -f {shlex.quote(call.library)}; exit $status"
    return command


def parse_reply(
    done: CommandResult, host: str, timeout: float, repeats: int
) -> tuple[tuple[float, ...], MeasureErrorNo, str]:
    """(costs, error code, message) of one harness run on ``host`` that was asked for
    ``repeats`` costs (0 for an untimed run, whose ``COSTS`` line is bare)."""
    failed = (ERROR_COST,)
    if done.timed_out or done.exit_status == TIMEOUT_STATUS:
        return failed, MeasureErrorNo.RUN_TIMEOUT, f"running took longer than {timeout:g} s on {host}"
    lines = done.stdout.splitlines()
    loaded = "LOADED" in lines
    for line in lines:
        keyword, _, rest = line.partition(" ")
        if keyword == "COSTS" and done.exit_status == 0:
            problem = _costs_problem(rest.split(), repeats)
            if problem:
                message = f"{host}: the harness replied {line!r}: {problem}"
                return failed, MeasureErrorNo.UNKNOWN_ERROR, message
            return tuple(float(word) for word in rest.split()), MeasureErrorNo.NO_ERROR, ""
        if keyword in REPLY_ERRORS:
            return failed, REPLY_ERRORS[keyword], f"{rest} (on {host})"
    status = done.exit_status
    stderr = done.stderr.strip()[-800:]
    if status in NOT_EXECUTABLE_STATUSES and not loaded:
        return failed, MeasureErrorNo.UNKNOWN_ERROR, f"{host}: the harness could not be started: {stderr}"
    what = f"exit status {status}{_signal_name(status)}"
    if loaded:
        return (
            failed,
            MeasureErrorNo.RUNTIME_DEVICE,
            f"the kernel crashed on {host}: {what}. {stderr}".strip(),
        )
    return (
        failed,
        MeasureErrorNo.COMPILE_DEVICE,
        f"loading the library crashed on {host}: {what}. {stderr}".strip(),
    )


def _costs_problem(words: list[str], repeats: int) -> str:
    """Why the words of a COSTS line are not ``repeats`` finite costs > 0 ("" if they are)."""
    if len(words) != repeats:
        return f"expected {repeats} cost(s), one per repeat, got {len(words)}"
    for word in words:
        try:
            cost = float(word)
        except ValueError:
            return f"cost {word!r} is not a number"
        if not (math.isfinite(cost) and cost > 0):
            return f"cost {word!r} is not a finite number of seconds > 0"
    return ""


def _signal_name(status: int | None) -> str:
    if status is None or status <= 128:
        return ""
    try:
        return f" (signal {status - 128}, {signal.Signals(status - 128).name})"
    except ValueError:
        return ""
