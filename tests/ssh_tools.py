"""What the SSH tests need on this machine, installed when missing.

``ensure_tools`` installs what is missing when it can, and otherwise fails with the command
to run: the SSH tests never skip. With apt (as root, or with sudo without a password):
openssh-server, qemu-user, binutils (``objdump -T`` reads symbol versions), lld, and the
ARM runtime libraries qemu-user loads the board's programs with (glibc and libgomp for
arm64 and armhf: runtime packages, no cross compiler; and arm64's link-time libm, which
``ld.lld`` needs to link a board library). With pip: ``ziglang``, the cross
C compiler and linker (``codegen.llvm.toolchain``). The test command of the README (and
``.ci/run``) runs this file first (``python3 tests/ssh_tools.py``), so the installation
shows up there rather than inside a test; the tests call it again in case they run alone.
``ssh_server`` is the module-scoped fixture body: a private sshd on 127.0.0.1
(``ansor_py.measure.ssh.local_sshd``).

This module imports nothing of ansor_py at load time: run as a script, ``tests/`` is first
on sys.path, where ``tests/ansor_py`` would shadow the package.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansor_py.measure.ssh.local_sshd import SSHServer

AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
ARMHF_SYSROOT = "/usr/arm-linux-gnueabihf"

AARCH64_TARGET = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=2"
#: a Raspberry Pi 2/3/4 under 32-bit Raspberry Pi OS (hard float, NEON)
ARMV7_TARGET = "llvm -mtriple=armv7l-linux-gnueabihf -mattr=+neon -num-cores=2"
#: programs and files the SSH tests need -> the Debian package providing each
TOOLS = {
    "/usr/sbin/sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "qemu-aarch64": "qemu-user",
    "qemu-arm": "qemu-user",
    "objdump": "binutils",
    "ld.lld": "lld",
    f"{AARCH64_SYSROOT}/lib/libc.so.6": "libc6-arm64-cross",
    f"{AARCH64_SYSROOT}/lib/libgomp.so.1": "libgomp1-arm64-cross",
    # the link-time libm (ld.lld resolves -lm through libm.so, a dev file)
    f"{AARCH64_SYSROOT}/lib/libm.so": "libc6-dev-arm64-cross",
    f"{ARMHF_SYSROOT}/lib/libc.so.6": "libc6-armhf-cross",
    f"{ARMHF_SYSROOT}/lib/libgomp.so.1": "libgomp1-armhf-cross",
}
#: the pip package of the cross toolchain
ZIG_PACKAGE = "ziglang"


def _missing() -> list[str]:
    """The Debian packages of the tools and files that are not there."""
    found = [os.path.exists(tool) if tool.startswith("/") else shutil.which(tool) for tool in TOOLS]
    return sorted({TOOLS[tool] for tool, present in zip(TOOLS, found) if not present})


def _install_apt_packages(packages: list[str]) -> None:
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    command = "apt-get update && apt-get install -y " + " ".join(packages)
    if sudo is None or shutil.which("apt-get") is None:
        raise RuntimeError(f"the SSH tests need {', '.join(packages)}: run `{command}` as root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run([*sudo, *step], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(step)}` failed:\n{done.stderr[-2000:]}\nrun `{command}` as root")


def _install_zig() -> None:
    command = [sys.executable, "-m", "pip", "install", "-q", ZIG_PACKAGE]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or importlib.util.find_spec(ZIG_PACKAGE) is None:
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{done.stderr[-2000:]}")


def ensure_tools() -> None:
    """Install missing tools with apt and pip, or raise RuntimeError naming the command to run."""
    missing = _missing()
    if missing:
        _install_apt_packages(missing)
        still = _missing()
        if still:
            raise RuntimeError(f"after apt-get install, still missing: {', '.join(still)}")
    if importlib.util.find_spec(ZIG_PACKAGE) is None:
        _install_zig()


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
        "SSH test tools: sshd, qemu-aarch64, qemu-arm, objdump, ld.lld, zig (pip ziglang) and the "
        "arm64 and armhf glibc and libgomp are present"
    )
