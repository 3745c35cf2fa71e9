"""Check a board before a long run: is it reachable, what CPU is it, does a kernel run.

``check_host`` logs in (host keys checked as for tuning), reads ``uname -m``, the online
CPU count and ``/proc/cpuinfo`` (model name, or the ARM implementer and part numbers, which
name the core: 0xd08 is a Cortex-A72, the Raspberry Pi 4's), and suggests the target
string: AArch64 for an ``aarch64`` board, 32-bit ARM with hard float
(``armv7l-linux-gnueabihf``, NEON when ``/proc/cpuinfo`` lists it) for an ``armv7l`` one
and for a 64-bit kernel under a 32-bit userland (``getconf LONG_BIT`` is 32), such as a
Raspberry Pi 4 running 32-bit Raspberry Pi OS. Given a target, it also
cross-compiles a small kernel, runs it on the board through the harness (with the command
prefix) and compares the result with numpy, which proves the toolchain, the harness and
the board's libraries (glibc, libgomp) fit together.

From the shell: ``python -m ansor_py check-host pi@raspberrypi.local -i ~/.ssh/id_ed25519
--target "llvm -mtriple=aarch64-linux-gnu -mattr=+neon"``.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansor_py.measure.ssh.host import HostConnection, SSHHost
from codegen.target import Target, as_target

#: ARM main ID register part numbers (implementer 0x41, Arm Ltd) -> LLVM -mcpu names
ARM_PARTS = {
    "0xc07": "cortex-a7",
    "0xc08": "cortex-a8",
    "0xc09": "cortex-a9",
    "0xc0e": "cortex-a17",
    "0xc0f": "cortex-a15",
    "0xd03": "cortex-a53",
    "0xd04": "cortex-a35",
    "0xd05": "cortex-a55",
    "0xd07": "cortex-a57",
    "0xd08": "cortex-a72",
    "0xd09": "cortex-a73",
    "0xd0a": "cortex-a75",
    "0xd0b": "cortex-a76",
    "0xd0c": "neoverse-n1",
    "0xd0d": "cortex-a77",
    "0xd40": "neoverse-v1",
    "0xd41": "cortex-a78",
    "0xd49": "neoverse-n2",
    "0xd4f": "neoverse-v2",
}


@dataclass(frozen=True)
class HostReport:
    """What ``check_host`` found."""

    host: str
    arch: str
    cores: int
    model: str
    mcpu: str | None
    kernel_check: str | None  # None when no target was given
    neon: bool = True  # /proc/cpuinfo lists NEON (always so on AArch64)

    @property
    def suggested_target(self) -> str:
        if self.arch in ("aarch64", "arm64"):
            cpu = f" -mcpu={self.mcpu}" if self.mcpu else ""
            return f"llvm -mtriple=aarch64-linux-gnu{cpu} -mattr=+neon -num-cores={self.cores}"
        if self.arch.startswith("armv7"):
            cpu = f" -mcpu={self.mcpu}" if self.mcpu else ""
            neon = " -mattr=+neon" if self.neon else ""
            return f"llvm -mtriple=armv7l-linux-gnueabihf{cpu}{neon} -num-cores={self.cores}"
        return f"llvm -num-cores={self.cores}"

    def __str__(self) -> str:
        lines = [
            f"host:    {self.host}",
            f"arch:    {self.arch}",
            f"cores:   {self.cores}",
            f"cpu:     {self.model}" + (f" (-mcpu={self.mcpu})" if self.mcpu else ""),
            f"target:  {self.suggested_target}",
        ]
        if self.kernel_check is not None:
            lines.append(f"kernel:  {self.kernel_check}")
        return "\n".join(lines)


def describe_cpu(cpuinfo: str) -> tuple[str, str | None]:
    """(model text, LLVM -mcpu name or None) from the text of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    part = fields.get("CPU part", "").lower()
    mcpu = ARM_PARTS.get(part) if fields.get("CPU implementer", "").lower() == "0x41" else None
    model = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    if model is None:
        model = f"ARM implementer {fields.get('CPU implementer', '?')} part {part or '?'}"
    return model, mcpu


def check_host(
    host: SSHHost, target: str | Target | None = None, command_prefix: str = "", timeout: float = 60.0
) -> HostReport:
    """Log in to ``host`` and report its CPU; with ``target``, also run a small kernel
    built for it on the board and check it against numpy. Raises HostError (unreachable,
    wrong host key, login refused) or a RuntimeError naming what failed."""
    connection = HostConnection(host)
    connection.connect()
    try:
        machine = connection.check("uname -m").strip()
        long_bits = connection.check("getconf LONG_BIT 2>/dev/null || echo 64").strip()
        cores_text = connection.check("getconf _NPROCESSORS_ONLN 2>/dev/null || nproc").strip()
        cpuinfo = connection.check("cat /proc/cpuinfo")
    finally:
        connection.close()
    model, mcpu = describe_cpu(cpuinfo)
    # a 64-bit kernel under a 32-bit userland (Raspberry Pi OS 32-bit on a Pi 4) runs armhf programs
    arch = "armv7l" if long_bits == "32" and machine.startswith(("aarch64", "armv8")) else machine
    cores = int(cores_text) if re.fullmatch(r"\d+", cores_text) else 1
    listed = re.search(r"^Features\s*:.*\b(neon|asimd)\b", cpuinfo, re.MULTILINE) is not None
    neon = arch in ("aarch64", "arm64") or listed
    check = None if target is None else run_check_kernel(host, as_target(target), command_prefix, timeout)
    return HostReport(str(host), arch, cores, model, mcpu, check, neon)


def run_check_kernel(host: SSHHost, target: Target, command_prefix: str, timeout: float) -> str:
    """Build ``C[i] = A[i] * 2 + B[i]`` (parallel, vectorised) for ``target``, run it on
    ``host``; a one-line verdict, or RuntimeError when the result is wrong."""
    from ansor_py.measure.ssh.runner import SSHRunner
    from codegen.llvm import build as llvm_build
    from ir import te
    from ir.compute_dag import ComputeDAG
    from ir.loop_state.api import get_init_state
    from ir.lower.lower import lower

    n = 4096
    a = te.placeholder((n,), name="A")
    b = te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] * 2.0 + b[i], name="C")
    dag = ComputeDAG([a, b, c])
    state = get_init_state(dag)
    outer, inner = state.split("C", 0, [16])
    state.parallel("C", outer)
    state.vectorize("C", inner)
    module = llvm_build(lower(dag, state), target)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(n).astype("float32") for _ in range(2)]
    output = np.full(n, np.nan, dtype="float32")
    with tempfile.TemporaryDirectory(prefix="ansor_py_check_") as tmp:
        library = module.export_library(Path(tmp) / "check.so")
        with SSHRunner([host], command_prefix=command_prefix, timeout=timeout) as runner:
            runner.run_library(library, target, inputs, [output])
    expected = inputs[0] * 2.0 + inputs[1]
    if not np.allclose(output, expected, rtol=1e-6, atol=1e-6):
        error = np.nanmax(np.abs(output - expected))
        raise RuntimeError(f"{host}: the check kernel ran but its result is wrong (max error {error})")
    return f"a parallel NEON/SIMD kernel built for '{target}' ran and matched numpy"
