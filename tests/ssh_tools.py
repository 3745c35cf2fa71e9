"""What the SSH tests need on this machine, installed when missing.

``ensure_tools`` installs with apt what is missing (openssh-server, qemu-user, the AArch64
cross GCC with its libgomp, lld) when it can (root, or sudo without a password), and
otherwise fails with the command to run: the SSH tests never skip. The test command of
the README (and ``.ci/run``) runs this file first (``python3 tests/ssh_tools.py``), so the
installation shows up there rather than inside a test; the tests call it again in case
they run alone. ``ssh_server`` is the module-scoped fixture body: a private sshd on
127.0.0.1 (``ansor_py.measure.ssh.local_sshd``).

This module imports nothing of ansor_py at load time: run as a script, ``tests/`` is first
on sys.path, where ``tests/ansor_py`` would shadow the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansor_py.measure.ssh.local_sshd import SSHServer

AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"

AARCH64_TARGET = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=2"
#: binaries the SSH tests need -> the Debian package providing each
TOOLS = {
    "/usr/sbin/sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "qemu-aarch64": "qemu-user",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "ld.lld": "lld",
}
EXTRA_PACKAGES = ("libc6-dev-arm64-cross",)


def _missing() -> list[str]:
    found = [
        shutil.which(tool) if not tool.startswith("/") else (tool if os.path.exists(tool) else None)
        for tool in TOOLS
    ]
    packages = [TOOLS[tool] for tool, path in zip(TOOLS, found) if path is None]
    if not Path(AARCH64_SYSROOT, "lib", "libgomp.so.1").exists():
        packages.append("gcc-aarch64-linux-gnu")
    return sorted(set(packages))


def ensure_tools() -> None:
    """Install missing tools with apt, or raise RuntimeError naming the command to run."""
    missing = _missing()
    if not missing:
        return
    packages = [*missing, *EXTRA_PACKAGES]
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    command = "apt-get update && apt-get install -y " + " ".join(packages)
    if sudo is None or shutil.which("apt-get") is None:
        raise RuntimeError(f"the SSH tests need {', '.join(missing)}: run `{command}` as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run([*sudo, *step], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(step)}` failed:\n{done.stderr[-2000:]}\nrun `{command}` as root")
    still = _missing()
    if still:
        raise RuntimeError(f"after apt-get install, still missing: {', '.join(still)}")


def ssh_server() -> Iterator[SSHServer]:
    """Install what is missing, start a private sshd, stop it afterwards."""
    from ansor_py.measure.ssh.local_sshd import SSHServer

    ensure_tools()
    server = SSHServer().start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    ensure_tools()
    print(
        "SSH test tools: sshd, qemu-aarch64, aarch64-linux-gnu-gcc, ld.lld and the arm64 libgomp are present"
    )
