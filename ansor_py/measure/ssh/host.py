"""One board reached over plain SSH: its address and credentials, and a live connection.

``SSHHost`` is the configuration (``"user@host:port"`` parses into one). Host keys are
checked against ``known_hosts`` (default ``~/.ssh/known_hosts``): an unknown or changed key
refuses the connection, unless ``trust_on_first_use`` accepts (and saves) the key of a host
not yet listed; a changed key is refused even then. A password may be given, but it never
appears in ``repr``, messages, logs or records; keys are the expected way in.

``HostConnection`` wraps one ``paramiko.SSHClient``: ``run`` executes a command with a
deadline (the channel is closed when it passes), ``write_files`` / ``read_file`` move bytes
over SFTP. Every failure of the connection itself becomes ``HostError`` (or its subclasses
``HostKeyError`` and ``HostUnreachable``) with the host in the message, so the runner can
tell a lost board from a bad candidate.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

#: seconds between checks for output and the deadline while a remote command runs
POLL_S = 0.5
#: what a dropped or refused connection raises inside paramiko and the socket layer
CONNECTION_ERRORS = (paramiko.SSHException, OSError, EOFError)


class HostError(RuntimeError):
    """The connection to a host failed or was lost."""


class HostUnreachable(HostError):
    """Nothing answers at the host's address and port."""


class HostKeyError(HostError):
    """The host's key is not the one in known_hosts, or is not listed there."""


@dataclass(frozen=True)
class SSHHost:
    """Where and how to log in to one board.

    ``command_prefix`` (e.g. ``"qemu-aarch64 -L /usr/aarch64-linux-gnu"`` or ``"taskset -c
    2,3"``) goes before the harness on this host; None uses the runner's prefix."""

    host: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    key_filename: str | None = None
    known_hosts: str | None = None
    trust_on_first_use: bool = False
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    command_prefix: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
            raise ValueError(f"SSHHost: host {self.host!r} must be a non-empty name without spaces")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"SSHHost {self.host}: port {self.port!r} must be an integer in 1..65535")
        if self.connect_timeout <= 0:
            raise ValueError(f"SSHHost {self.host}: connect_timeout {self.connect_timeout} must be > 0")
        if self.key_filename is not None and not Path(self.key_filename).expanduser().is_file():
            raise ValueError(f"SSHHost {self.host}: key file {self.key_filename} does not exist")

    @staticmethod
    def parse(address: str, **options: object) -> SSHHost:
        """``"[user@]host[:port]"`` plus keyword options (key_filename=..., ...)."""
        match = re.fullmatch(r"(?:([^@\s]+)@)?([^@:\s]+)(?::(\d+))?", address.strip())
        if match is None:
            raise ValueError(f"SSH address {address!r} is not of the form [user@]host[:port]")
        user, host, port = match.groups()
        fields: dict[str, object] = {"host": host, **options}
        if user is not None:
            fields["user"] = user
        if port is not None:
            fields["port"] = int(port)
        return SSHHost(**fields)  # type: ignore[arg-type]

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts or "~/.ssh/known_hosts").expanduser()

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    """What a remote command left: exit status (None when it outlived its deadline)."""

    exit_status: int | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.exit_status is None


class HostConnection:
    """A live SSH connection to ``host`` (see module docstring). ``connect`` may be called
    again after a loss; ``close`` is idempotent."""

    def __init__(self, host: SSHHost):
        self.host = host
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._directories: set[str] = set()  # made in this connection (write_files)

    # connecting -------------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        host = self.host
        client = paramiko.SSHClient()
        known = host.known_hosts_path
        if known.exists():
            client.load_host_keys(str(known))
        if host.trust_on_first_use:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                host.host,
                port=host.port,
                username=host.user,
                password=host.password,
                key_filename=str(Path(host.key_filename).expanduser()) if host.key_filename else None,
                timeout=host.connect_timeout,
                banner_timeout=host.connect_timeout,
                auth_timeout=host.connect_timeout,
                allow_agent=host.key_filename is None and host.password is None,
                look_for_keys=host.key_filename is None and host.password is None,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HostKeyError(
                f"{host}: the host key ({error.key.get_name()}) differs from the one in {known}; "
                "refusing to connect (if the board was reinstalled, remove its old line from known_hosts)"
            ) from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise HostError(f"{host}: authentication failed ({error}); check user and key_filename") from None
        except paramiko.SSHException as error:
            client.close()
            if "not found in known_hosts" in str(error):
                raise HostKeyError(
                    f"{host}: its host key is not in {known}; add it (ssh-keyscan -p {host.port} "
                    f"{host.host} >> {known}) or pass trust_on_first_use=True"
                ) from None
            raise HostError(f"{host}: SSH failed: {error}") from None
        except (OSError, EOFError) as error:
            client.close()
            raise HostUnreachable(f"{host}: cannot connect: {error}") from None
        if host.trust_on_first_use:
            known.parent.mkdir(parents=True, exist_ok=True)
            client.save_host_keys(str(known))
        self._client = client

    @property
    def connected(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        self._directories.clear()
        if self._sftp is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise HostError(f"{self.host}: not connected")
        return transport

    # commands ---------------------------------------------------------------------------------
    def run(self, command: str, timeout: float) -> CommandResult:
        """Run ``command`` in the login shell (in the home directory); after ``timeout``
        seconds the channel is closed and the result has ``exit_status`` None."""
        try:
            channel = self._transport().open_session(timeout=self.host.connect_timeout)
            channel.exec_command(command)
            stdout, stderr = io.BytesIO(), io.BytesIO()
            deadline = time.monotonic() + timeout
            status: int | None = None
            # Block on the exit status, waking every POLL_S to drain output and check the
            # deadline, rather than polling every few ms: on a small board a busy poller
            # preempts the kernel's OpenMP threads.
            while True:
                exited = channel.status_event.wait(min(POLL_S, max(0.0, deadline - time.monotonic())))
                _drain(channel, stdout, stderr)
                if exited:
                    status = channel.recv_exit_status()
                    if status == -1:  # paramiko's status when the channel closed without one
                        raise HostError(f"{self.host}: the connection closed while running a command")
                    while not channel.eof_received and _drain(channel, stdout, stderr):
                        pass
                    _drain(channel, stdout, stderr)
                    break
                if time.monotonic() >= deadline:
                    break
                if channel.closed:
                    raise HostError(f"{self.host}: the connection closed while running a command")
            channel.close()
        except TimeoutError:
            raise HostError(f"{self.host}: the connection stalled") from None
        except CONNECTION_ERRORS as error:
            raise HostError(f"{self.host}: the connection was lost: {error}") from None
        return CommandResult(
            status, stdout.getvalue().decode(errors="replace"), stderr.getvalue().decode(errors="replace")
        )

    def check(self, command: str, timeout: float = 60.0) -> str:
        """Run ``command``; its stdout, or HostError naming it and its stderr on failure."""
        done = self.run(command, timeout)
        if done.exit_status != 0:
            what = "timed out" if done.timed_out else f"exited with status {done.exit_status}"
            raise HostError(f"{self.host}: `{command}` {what}: {done.stderr.strip()[-500:]}")
        return done.stdout

    # files ------------------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._client.open_sftp() if self._client else None
            if self._sftp is None:
                raise HostError(f"{self.host}: not connected")
        return self._sftp

    def write_files(self, directory: str, files: dict[str, bytes], mode: int | None = None) -> None:
        """Write ``files`` (name -> bytes) into ``directory`` (relative to the home
        directory; created), each through a temporary name and a rename."""
        try:
            if directory not in self._directories:  # one shell round trip per directory
                self.check(f"mkdir -p {shlex.quote(directory)}")
                self._directories.add(directory)
            sftp = self._sftp_client()
            for name, content in files.items():
                final = f"{directory}/{name}"
                partial = f"{final}.partial"
                with sftp.open(partial, "wb") as handle:
                    handle.set_pipelined(True)
                    handle.write(content)
                if mode is not None:
                    sftp.chmod(partial, mode)
                sftp.posix_rename(partial, final)
        except CONNECTION_ERRORS as error:
            raise HostError(f"{self.host}: copying files to {directory} failed: {error}") from None

    def exists(self, path: str) -> bool:
        try:
            self._sftp_client().stat(path)
            return True
        except FileNotFoundError:
            return False
        except CONNECTION_ERRORS as error:
            raise HostError(f"{self.host}: checking {path} failed: {error}") from None

    def read_file(self, path: str) -> bytes:
        try:
            with self._sftp_client().open(path, "rb") as handle:
                return handle.read()
        except CONNECTION_ERRORS as error:
            raise HostError(f"{self.host}: reading {path} failed: {error}") from None


def _drain(channel: paramiko.Channel, stdout: io.BytesIO, stderr: io.BytesIO) -> bool:
    """Move whatever the channel has buffered; whether anything came."""
    moved = False
    while channel.recv_ready():
        stdout.write(channel.recv(65536))
        moved = True
    while channel.recv_stderr_ready():
        stderr.write(channel.recv_stderr(65536))
        moved = True
    return moved
