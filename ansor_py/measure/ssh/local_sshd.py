"""A private OpenSSH server on 127.0.0.1: a "board" on this machine, with no setup.

``SSHServer`` starts ``/usr/sbin/sshd -D`` with a throwaway host key and user key in a
temporary directory, on a free high port, with its own config file (no system config is
read or touched), and writes a ``known_hosts`` file holding its key; ``host()`` is the
``SSHHost`` that logs in to it. ``stop()`` removes that directory (its private keys
included), and so does interpreter exit for a server nobody stopped; ``sftp=False``
leaves out the ``Subsystem sftp`` line (a board like dropbear without sftp-server), and
``freeze()`` / ``thaw()`` stop and continue every sshd process (a board that hangs with
its connections open). AArch64 and 32-bit ARM programs run on it under qemu-user through
the runner's command prefix (``QEMU_PREFIX``, ``QEMU_ARM_PREFIX``: the target's glibc and
libgomp come from Debian's runtime packages ``libc6-arm64-cross libgomp1-arm64-cross`` and
``libc6-armhf-cross libgomp1-armhf-cross``), which checks correctness and plumbing, never
ARM speed (emulation is orders of magnitude slower than the board). The tests, the SSH
tutorial and ``benchmarks/ssh_overhead.py`` use it; it needs ``openssh-server`` (and
``qemu-user`` for ARM).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from ansor_py.measure.ssh.host import SSHHost

AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
#: the command prefix that runs AArch64 programs on an x86-64 "board" (qemu-user)
QEMU_PREFIX = f"qemu-aarch64 -L {AARCH64_SYSROOT}"
ARMHF_SYSROOT = "/usr/arm-linux-gnueabihf"
#: the command prefix that runs 32-bit ARM (armv7l, hard float) programs on an x86-64 "board"
QEMU_ARM_PREFIX = f"qemu-arm -L {ARMHF_SYSROOT}"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's sessions call setsid, so no process group
    holds them all)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class _Owned:
    """What an ``SSHServer`` must not leave behind: its sshd and (when it made it) its
    directory. Held by the server and by its finalizer, which runs at interpreter exit."""

    def __init__(self, directory: Path, remove_directory: bool):
        self.directory, self.remove_directory = directory, remove_directory
        self.process: subprocess.Popen[bytes] | None = None

    def sshd_pids(self) -> list[int]:
        """The listener and every sshd process it forked (sessions call setsid, so no
        process group holds them all)."""
        if self.process is None or self.process.poll() is not None:
            return []
        pids = descendants(self.process.pid)
        return [self.process.pid, *(p for p in pids if _command_name(p).startswith("sshd"))]

    def kill(self) -> None:
        for pid in self.sshd_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None and self.process.poll() is None:
            self.process.wait()

    def __call__(self) -> None:
        self.kill()
        if self.remove_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


class SSHServer:
    """A private sshd on 127.0.0.1 (module docstring). ``start``, ``kill`` (the listener
    and every session it forked; ``start`` again brings it back with the same keys),
    ``stop`` (kill, and remove the directory if the server made it), usable as a context
    manager."""

    def __init__(self, directory: Path | None = None, sftp: bool = True):
        self.dir = Path(directory or tempfile.mkdtemp(prefix="ansor_py_sshd_"))
        self._owned = _Owned(self.dir, remove_directory=directory is None)
        weakref.finalize(self, self._owned)
        self.sftp = sftp
        self.user = getpass.getuser()
        self.host_key = keygen(self.dir / "host_key")
        self.user_key = keygen(self.dir / "user_key")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(Path(f"{self.user_key}.pub").read_text())
        self.known_hosts = self.dir / "known_hosts"
        self.port = free_port()
        self.log = self.dir / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_known_hosts()

    def _write_known_hosts(self) -> None:
        key_type, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {key_type} {key}\n")

    def config_text(self) -> str:
        return "\n".join(
            [
                f"Port {self.port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key}",
                f"AuthorizedKeysFile {self.authorized_keys}",
                f"PidFile {self.dir / 'sshd.pid'}",
                "UsePAM no",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin yes",
                "MaxSessions 64",
                "MaxStartups 64",
                *(["Subsystem sftp internal-sftp"] if self.sftp else []),
                "",
            ]
        )

    def start(self) -> SSHServer:
        config = self.dir / "sshd_config"
        config.write_text(self.config_text())
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._owned.process = self.process
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port}: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """Kill the listener and every sshd process it forked: connections drop at once, as
        when a board's sshd dies. The commands they ran are left to finish (their shells
        may hold locks, e.g. pyenv's rehash lock taken in a ~/.bashrc, which a SIGKILL
        would leave behind and every later login would wait on)."""
        self._owned.kill()

    def stop(self) -> None:
        """Kill the server and remove its directory (keys, config, log) if it made it."""
        self._owned()

    def freeze(self) -> list[int]:
        """SIGSTOP every sshd process (the listener and each connection's processes): the
        board hangs with its TCP connections open, as a frozen board does. The pids."""
        pids = self._owned.sshd_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw(self) -> None:
        """SIGCONT every sshd process (after ``freeze``)."""
        for pid in self._owned.sshd_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def address(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def host(self, **options: object) -> SSHHost:
        """The ``SSHHost`` for this server (user key, known_hosts); ``options`` override."""
        fields: dict[str, object] = {
            "key_filename": str(self.user_key),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 5.0,
            **options,
        }
        return SSHHost.parse(self.address(), **fields)

    def __enter__(self) -> SSHServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
