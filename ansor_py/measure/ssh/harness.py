"""The timing harness of ``SSHRunner``: ``harness.c``, cross-compiled here once per target.

A board needs nothing but sshd (no TVM runtime, no compiler), so the program that loads
and times a candidate on the board is C compiled on this machine with the target's C
compiler (``codegen.llvm.toolchain.find_c_compiler``: ``cc`` for the host; for AArch64 and
32-bit ARM zig's clang for glibc 2.17, so the harness runs on boards with an old glibc, or
Debian's cross GCC). The binary is cached locally under ``~/.cache/ansor_py/harness`` and
on each board by a digest of the source, the compiler command (which names the glibc
version) and the triple, so a changed harness or toolchain is rebuilt and uploaded again,
and an unchanged one never is.

``task_files`` writes what the harness reads for one task: ``args.txt`` (one line per
kernel argument: role, dtype code, byte size, output tolerances, name, file) and the raw
bytes of every reference input and expected output, in kernel-argument order.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansor_py.measure.local import KernelArgument
from codegen.llvm.toolchain import ToolchainError, cache_dir, find_c_compiler
from codegen.target import Target

HARNESS_SOURCE = Path(__file__).with_name("harness.c")
#: numpy dtype name -> the harness's dtype code
DTYPE_CODES = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "uint64": "u64",
    "bool": "b",
}


@dataclass(frozen=True)
class HarnessBinary:
    """A compiled harness: the local file and the digest that names it on a board."""

    path: Path
    digest: str

    @property
    def remote_name(self) -> str:
        return f"harness-{self.digest[:20]}"


def build_harness(target: Target, compiler: str | tuple[str, ...] | None = None) -> HarnessBinary:
    """The harness compiled for ``target``'s triple (cached; see module docstring).

    Raises ``ToolchainError`` when no C compiler for the triple is found or it fails."""
    command = find_c_compiler(target, compiler)
    source = HARNESS_SOURCE.read_bytes()
    digest = hashlib.sha256(source + "\0".join([*command, target.triple]).encode()).hexdigest()
    binary = HarnessBinary(cache_dir() / "harness" / f"harness-{digest[:20]}", digest)
    if binary.path.exists():
        return binary
    binary.path.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.path.with_name(f"{binary.path.name}.{os.getpid()}.tmp")
    compile_command = [*command, "-O2", "-o", str(partial), str(HARNESS_SOURCE), "-ldl", "-lm"]
    try:
        done = subprocess.run(compile_command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolchainError(f"C compiler {command[0]!r} for the SSH timing harness was not found") from None
    if done.returncode != 0:
        raise ToolchainError(
            f"compiling the SSH timing harness failed ({' '.join(compile_command)}):\n{done.stderr.strip()}"
        )
    partial.replace(binary.path)  # atomic: concurrent builders never see half a file
    return binary


def argument_line(argument: KernelArgument, file: str) -> str:
    """The ``args.txt`` line of one argument (``harness.c``: ROLE DTYPE NBYTES RTOL ATOL NAME
    FILE; ROLE "hot" for an input marked ``cached``)."""
    code = DTYPE_CODES.get(argument.array.dtype.name)
    if code is None:
        raise ValueError(f"argument '{argument.name}': dtype {argument.array.dtype} has no harness code")
    nbytes = argument.array.nbytes
    role = "hot" if argument.cached else argument.role
    return f"{role} {code} {nbytes} {argument.rtol!r} {argument.atol!r} {argument.name} {file}"


def task_files(arguments: Sequence[KernelArgument]) -> dict[str, bytes]:
    """The files of one task directory: ``args.txt`` and ``arg_<i>.bin`` per argument."""
    files = {}
    lines = [str(len(arguments))]
    for position, argument in enumerate(arguments):
        name = f"arg_{position}.bin"
        files[name] = np.ascontiguousarray(argument.array).tobytes()
        lines.append(argument_line(argument, name))
    files["args.txt"] = ("\n".join(lines) + "\n").encode()
    return files
