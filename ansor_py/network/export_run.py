"""Running a library written by ``export_library``: in this process, or on a board over SSH.

``read_description(path)`` reads the library's JSON description (inputs, outputs, target)
from its ELF section without loading it, so it works for an AArch64 library on x86-64.

``load_exported(path)`` opens a host library with ctypes: the returned ``ExportedNetwork``
is called with the graph's inputs (a dict, or keywords) and returns the outputs in graph
order, read from the library's own query functions.

``run_exported_over_ssh(host, path, inputs)`` runs it on a board that has nothing but sshd
(and a libgomp): ``network_driver.c`` (package data) is compiled here for the library's
triple with ``codegen.llvm.toolchain.find_c_compiler`` (cached by content digest, here and
on the board), and the files move through ``ansor_py.measure.ssh.host.HostConnection``
(SFTP, or the exec channel on a board without it). The driver runs the network once, writes
the outputs, then times ``repeat`` more runs; the run directory is removed afterwards.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import platform
import shlex
import struct
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ansor_py.network.export import DESCRIPTION_SECTION, ExportError, weights_path
from ansor_py.network.types import TensorType
from codegen.llvm.toolchain import ToolchainError, find_c_compiler
from codegen.target import as_target
from ir import dtype as dt

if TYPE_CHECKING:  # the SSH machinery (paramiko) is imported when a network runs on a board
    from ansor_py.measure.ssh.host import SSHHost

DRIVER_SOURCE = Path(__file__).with_name("network_driver.c")
#: ELF e_machine of the architectures an export targets
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
#: default directory of the runs on a board, relative to the user's home
DEFAULT_REMOTE_DIR = ".cache/ansor_py/networks"


@dataclass(frozen=True)
class Description:
    """What a library says about itself (``export.describe``)."""

    name: str
    target: str
    triple: str
    weights: str
    inputs: dict[str, TensorType]
    outputs: tuple[tuple[str, TensorType], ...]


def read_description(path: str | Path) -> Description:
    """The description section of an exported library (ExportError if it has none)."""
    data = Path(path).read_bytes()
    raw = _elf_section(data, DESCRIPTION_SECTION, path)
    fields = json.loads(raw)

    def types(entries: list[Any]) -> list[tuple[str, TensorType]]:
        return [(name, TensorType(tuple(shape), dtype)) for name, dtype, shape in entries]

    return Description(
        fields["name"],
        fields["target"],
        fields["triple"],
        fields["weights"],
        dict(types(fields["inputs"])),
        tuple(types(fields["outputs"])),
    )


def _elf_section(data: bytes, section: str, path: str | Path) -> bytes:
    """The bytes of ``section`` in a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ExportError(f"{path} is not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    for name_index, _, _, _, offset, size in headers:
        end = data.index(b"\0", names_offset + name_index)
        if data[names_offset + name_index : end].decode() == section:
            return data[offset : offset + size]
    raise ExportError(f"{path} has no {section} section: it was not written by export_library")


def elf_machine(path: str | Path) -> str:
    """The architecture an ELF file is for ("x86_64", "aarch64", or "e_machine=<n>")."""
    with open(path, "rb") as f:
        header = f.read(20)
    machine = struct.unpack_from("<H", header, 18)[0]
    return ELF_MACHINES.get(machine, f"e_machine={machine}")


def check_inputs(description: Description, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The inputs in graph order, contiguous; ExportError naming a missing, unknown or
    mistyped one."""
    unknown = sorted(set(inputs) - set(description.inputs))
    missing = [name for name in description.inputs if name not in inputs]
    if unknown or missing:
        raise ExportError(
            f"network '{description.name}' takes inputs {list(description.inputs)}; "
            f"missing {missing}, unknown {unknown}"
        )
    arrays = []
    for name, expected in description.inputs.items():
        array = np.asarray(inputs[name], order="C")
        got = TensorType.of(array)
        if got != expected:
            raise ExportError(f"network '{description.name}': input '{name}' is {got}, expected {expected}")
        arrays.append(array)
    return arrays


class ExportedNetwork:
    """A host library loaded with ctypes: ``net(inputs)`` or ``net(**inputs)`` -> outputs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.description = read_description(self.path)
        machine, host = elf_machine(self.path), platform.machine()
        if machine != host:
            raise ExportError(
                f"{self.path} is built for {machine} ({self.description.triple}); this machine is {host}: "
                "run it on its board with run_exported_over_ssh"
            )
        self.library = ctypes.CDLL(str(self.path.resolve()))
        self.library.ansor_network_run.argtypes = [ctypes.POINTER(ctypes.c_void_p)] * 2
        self.library.ansor_network_run.restype = ctypes.c_int
        self.library.ansor_network_last_error.restype = ctypes.c_char_p
        self.library.ansor_network_workspace_bytes.restype = ctypes.c_int64
        self.inputs = self.description.inputs
        self.outputs = self.description.outputs

    @property
    def workspace_bytes(self) -> int:
        return int(self.library.ansor_network_workspace_bytes())

    def __call__(
        self, inputs: Mapping[str, np.ndarray] | None = None, **named: np.ndarray
    ) -> list[np.ndarray]:
        arrays = check_inputs(self.description, {**(inputs or {}), **named})
        outputs = [np.empty(t.shape, dt.to_numpy(t.dtype)) for _, t in self.outputs]
        input_pointers = (ctypes.c_void_p * (len(arrays) + 1))(*(a.ctypes.data for a in arrays))
        output_pointers = (ctypes.c_void_p * (len(outputs) + 1))(*(a.ctypes.data for a in outputs))
        status = self.library.ansor_network_run(input_pointers, output_pointers)
        if status != 0:
            reason = self.library.ansor_network_last_error().decode(errors="replace")
            raise RuntimeError(f"{self.path}: ansor_network_run returned {status}: {reason}")
        return outputs


def load_exported(path: str | Path) -> ExportedNetwork:
    """Open an exported host library (module docstring)."""
    return ExportedNetwork(path)


# ------------------------------------------------------------------------------------------
# on a board


def build_driver(triple_target: str, compiler: str | tuple[str, ...] | None = None) -> Path:
    """``network_driver.c`` compiled for the target, cached by the digest of the source,
    the compiler command and the triple."""
    from ansor_py.measure.ssh.harness import cache_dir

    target = as_target(triple_target)
    command = find_c_compiler(target, compiler)
    source = DRIVER_SOURCE.read_bytes()
    digest = hashlib.sha256(source + "\0".join([*command, target.triple]).encode()).hexdigest()
    binary = cache_dir() / "network_driver" / f"network-driver-{digest[:20]}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    compile_command = [*command, "-O2", "-o", str(partial), str(DRIVER_SOURCE), "-ldl"]
    done = subprocess.run(compile_command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolchainError(
            f"compiling the network driver failed ({' '.join(compile_command)}):\n{done.stderr}"
        )
    partial.replace(binary)  # atomic: a concurrent builder never sees half a file
    return binary


def run_exported_over_ssh(
    host: SSHHost,
    library: str | Path,
    inputs: Mapping[str, np.ndarray],
    repeat: int = 3,
    command_prefix: str | None = None,
    remote_dir: str = DEFAULT_REMOTE_DIR,
    timeout: float = 120.0,
    compiler: str | tuple[str, ...] | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Run ``library`` on ``host`` (module docstring): the outputs in graph order and the
    seconds of each of ``repeat`` timed runs. ``command_prefix`` (default: the host's) wraps
    the driver, e.g. ``qemu-aarch64 -L /usr/aarch64-linux-gnu``; ``timeout`` bounds the run
    on the board."""
    if not isinstance(repeat, int) or repeat < 0:
        raise ValueError(f"run_exported_over_ssh: repeat {repeat!r} must be an integer >= 0")
    library = Path(library)
    description = read_description(library)
    arrays = check_inputs(description, inputs)
    driver = build_driver(description.target, compiler)
    prefix = command_prefix if command_prefix is not None else (host.command_prefix or "")
    remote_dir = remote_dir.rstrip("/")
    run_dir = f"{remote_dir}/run-{uuid.uuid4().hex[:12]}"
    files = {library.name: library.read_bytes()}
    if description.weights == "file":
        files[weights_path(library).name] = weights_path(library).read_bytes()
    files.update({f"in_{i}.bin": array.tobytes() for i, array in enumerate(arrays)})
    from ansor_py.measure.ssh.host import HostConnection, HostUnusable

    connection = HostConnection(host)
    connection.connect()
    try:
        remote_driver = f"{remote_dir}/{driver.name}"
        if not connection.exists(remote_driver):
            connection.write_files(remote_dir, {driver.name: driver.read_bytes()}, mode=0o755)
        connection.write_files(run_dir, files)
        words = ["timeout", "-k", "2", str(max(1, math.ceil(timeout))), *shlex.split(prefix)]
        words += [remote_driver, f"{run_dir}/{library.name}", run_dir, str(repeat)]
        done = connection.run(" ".join(shlex.quote(w) for w in words), timeout + 15.0)
        if done.timed_out or done.exit_status != 0:
            what = "timed out" if done.timed_out else f"exited with status {done.exit_status}"
            raise HostUnusable(
                f"{host}: running network '{description.name}' {what}: "
                f"{(done.stdout + done.stderr).strip()[-800:]}"
            )
        outputs = []
        for j, (name, t) in enumerate(description.outputs):
            data = connection.read_file(f"{run_dir}/out_{j}.bin")
            if len(data) != t.nbytes:
                raise HostUnusable(
                    f"{host}: output '{name}' came back with {len(data)} bytes, expected {t.nbytes}"
                )
            outputs.append(np.frombuffer(data, dt.to_numpy(t.dtype)).reshape(t.shape).copy())
        timed = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("TIMES")]
        if len(timed) != 1 or len(timed[0]) != repeat:
            raise HostUnusable(
                f"{host}: the network driver replied {done.stdout.strip()[-300:]!r}, no TIMES line"
            )
        times = [float(word) for word in timed[0]]
    finally:
        if connection.connected:
            connection.run(f"rm -rf {shlex.quote(run_dir)}", 30.0)
        connection.close()
    return outputs, times
