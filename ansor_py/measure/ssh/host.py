"""One board reached over plain SSH: its address and credentials, and a live connection.

``SSHHost`` is the configuration (``"user@host:port"`` parses into one). Host keys are
checked against ``known_hosts`` (default ``~/.ssh/known_hosts``, read by ``known_hosts``
as OpenSSH reads it): an unknown key refuses the connection unless
``trust_on_first_use`` accepts it (and appends it to the file once); a changed key, or one
listed ``@revoked``, is refused even then. A password may be given, but it never appears
in ``repr``, messages, logs or records; keys are the expected way in.

``HostConnection`` wraps one ``paramiko.SSHClient``. Nothing it does can wait forever on a
board that stopped answering (a frozen sshd keeps the TCP connection open, so the socket
alone never says so):

* connecting has ``connect_timeout`` (TCP, banner, authentication, opening a channel);
* a keepalive thread sends an OpenSSH ``keepalive@openssh.com`` request every
  ``keepalive_interval`` seconds and closes the connection when no answer comes within
  ``stall_timeout``; every operation in flight then fails at once with a ``HostError``
  saying the host stopped responding;
* ``run`` has the caller's deadline (the channel is closed when it passes), and every
  file transfer a per-packet deadline of ``stall_timeout`` (a transfer that makes progress
  is never cut, one that stops is).

Files move over SFTP, or, on a board whose sshd has no SFTP subsystem (dropbear without
``sftp-server``, OpenSSH without ``Subsystem sftp``), over the exec channel (``cat >
file``): a board needs nothing but sshd and a POSIX shell.

Failures are classified for the runner: ``HostError`` (the connection failed, was lost or
stalled: worth one reconnection), ``HostUnusable`` (the board answers but refuses what is
asked: a command fails, a directory cannot be made; reconnecting would not help), and
``HostKeyError`` / ``HostUnreachable`` at connection time; each names the host.
"""

from __future__ import annotations

import getpass
import io
import logging
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ansor_py.measure.ssh.known_hosts import KnownHosts, add_known_host, host_key_name

#: seconds between checks for output and the deadline while a remote command runs
POLL_S = 0.5
#: seconds a file copied over the exec channel may take once its bytes are sent
COPY_TIMEOUT_S = 60.0
#: what a dropped or refused connection raises inside paramiko and the socket layer
CONNECTION_ERRORS = (paramiko.SSHException, OSError, EOFError)
#: paramiko's transport log: its tracebacks for a lost or frozen board repeat, in many
#: lines, what the HostError says in one; shown only where the program configures logging
PARAMIKO_LOG = "ansor_py.measure.ssh.paramiko"
logging.getLogger(PARAMIKO_LOG).addHandler(logging.NullHandler())


class HostError(RuntimeError):
    """The connection to a host failed, was lost, or stopped answering."""


class HostUnreachable(HostError):
    """Nothing answers at the host's address and port."""


class HostKeyError(HostError):
    """The host's key is not the one in known_hosts, is not listed there, or is revoked."""


class HostUnusable(HostError):
    """The host answers but cannot do what is asked (a command or a file copy failed)."""


@dataclass(frozen=True)
class SSHHost:
    """Where and how to log in to one board.

    ``command_prefix`` (e.g. ``"qemu-aarch64 -L /usr/aarch64-linux-gnu"`` or ``"taskset -c
    2,3"``) goes before the harness on this host; None uses the runner's prefix.
    ``keepalive_interval`` and ``stall_timeout`` bound how long a board that stopped
    answering can hold an operation (module docstring): at most their sum."""

    host: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    key_filename: str | None = None
    known_hosts: str | None = None
    trust_on_first_use: bool = False
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    command_prefix: str | None = None
    keepalive_interval: float = 5.0
    stall_timeout: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
            raise ValueError(f"SSHHost: host {self.host!r} must be a non-empty name without spaces")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"SSHHost {self.host}: port {self.port!r} must be an integer in 1..65535")
        for name in ("connect_timeout", "keepalive_interval", "stall_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SSHHost {self.host}: {name} {getattr(self, name)} must be > 0")
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


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko for a key not among the host's listed (unrevoked) keys."""

    def __init__(self, host: SSHHost, known: KnownHosts):
        self.host, self.known = host, known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        path = self.host.known_hosts_path
        if self.known.is_revoked(key):
            raise HostKeyError(
                f"{self.host}: its host key ({key.get_name()} {key.fingerprint}) is marked @revoked "
                f"in {path}; refusing to connect"
            )
        if not self.host.trust_on_first_use:
            raise HostKeyError(
                f"{self.host}: its host key is not in {path}; add it (ssh-keyscan -p "
                f"{self.host.port} {self.host.host} >> {path}) or pass trust_on_first_use=True"
            )
        add_known_host(path, hostname, key)


class HostConnection:
    """A live SSH connection to ``host`` (see module docstring). ``connect`` may be called
    again after a loss; ``close`` is idempotent. One thread uses it at a time."""

    def __init__(self, host: SSHHost):
        self.host = host
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._directories: set[str] = set()  # made in this connection (write_files)
        self._stop_keepalive = threading.Event()
        #: why the keepalive thread closed the connection (None while it answers)
        self.stalled: str | None = None
        #: the host's sshd refused the SFTP subsystem: files go over the exec channel
        self.sftp_missing = False

    # connecting -------------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        host = self.host
        known = KnownHosts.read(host.known_hosts_path)
        name = host_key_name(host.host, host.port)
        client = paramiko.SSHClient()
        client.set_log_channel(PARAMIKO_LOG)
        for key in known.keys_for(name):
            client.get_host_keys().add(name, key.get_name(), key)
        client.set_missing_host_key_policy(_HostKeyPolicy(host, known))
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
                channel_timeout=host.connect_timeout,
                allow_agent=host.key_filename is None and host.password is None,
                look_for_keys=host.key_filename is None and host.password is None,
            )
        except HostError:
            client.close()
            raise
        except paramiko.BadHostKeyException as error:
            client.close()
            if known.is_revoked(error.key):
                why, hint = "is marked @revoked", ""
            else:
                why = "differs from the one"
                hint = " (if the board was reinstalled, remove its old line from known_hosts)"
            raise HostKeyError(
                f"{host}: the host key ({error.key.get_name()}) {why} in {host.known_hosts_path}; "
                f"refusing to connect{hint}"
            ) from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise HostError(f"{host}: authentication failed ({error}); check user and key_filename") from None
        except paramiko.SSHException as error:
            client.close()
            if str(error) == "No existing session":  # paramiko's words for a handshake cut short
                what = f"no SSH handshake within {host.connect_timeout:g} s (the host does not answer)"
                raise HostError(f"{host}: {what}") from None
            raise HostError(f"{host}: SSH failed: {error}") from None
        except (OSError, EOFError) as error:
            client.close()
            raise HostUnreachable(f"{host}: cannot connect: {error}") from None
        self._client = client
        self.stalled = None
        self._stop_keepalive = threading.Event()
        transport = client.get_transport()
        if transport is not None:
            threading.Thread(
                target=self._keepalive, args=(transport, self._stop_keepalive), daemon=True
            ).start()

    def _keepalive(self, transport: paramiko.Transport, stop: threading.Event) -> None:
        """Ask the host for a reply every ``keepalive_interval`` s; close the connection
        (failing every operation in flight) when none comes within ``stall_timeout``."""
        interval, limit = self.host.keepalive_interval, self.host.stall_timeout

        def stalled() -> None:
            if not stop.is_set():
                self.stalled = f"no answer to a keepalive within {limit:g} s: the host stopped responding"
                transport.close()

        while not stop.wait(interval) and transport.is_active():
            timer = threading.Timer(limit, stalled)
            timer.daemon = True
            timer.start()
            try:
                # any reply (OpenSSH answers "request failure") proves the host is there
                transport.global_request("keepalive@openssh.com", wait=True)
            except CONNECTION_ERRORS:
                return
            finally:
                timer.cancel()

    @property
    def connected(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        """Stop the keepalives and drop the connection. The transport is closed first: a
        polite SFTP close would wait on a host that stopped reading."""
        self._stop_keepalive.set()
        self._directories.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._sftp = None

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise HostError(f"{self.host}: not connected" + (f" ({self.stalled})" if self.stalled else ""))
        return transport

    def _failure(self, doing: str, error: BaseException) -> HostError:
        """The HostError for ``error`` raised while ``doing``: stalled, lost, or (the
        connection still up) refused by the host."""
        if self.stalled is not None:
            return HostError(f"{self.host}: {doing} failed: {self.stalled}")
        if isinstance(error, TimeoutError):
            limit = self.host.stall_timeout
            return HostError(
                f"{self.host}: {doing} failed: no reply within {limit:g} s: the host stopped responding"
            )
        if self.connected:
            return HostUnusable(f"{self.host}: {doing} failed: {error}")
        return HostError(f"{self.host}: {doing} failed: the connection was lost ({error})")

    # commands ---------------------------------------------------------------------------------
    def run(self, command: str, timeout: float) -> CommandResult:
        """Run ``command`` in the login shell (in the home directory); after ``timeout``
        seconds the channel is closed and the result has ``exit_status`` None."""
        status, stdout, stderr = self._exec(command, timeout)
        return CommandResult(status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def _exec(
        self, command: str, timeout: float, stdin: bytes | None = None
    ) -> tuple[int | None, bytes, bytes]:
        """(exit status or None at the deadline, stdout, stderr) of ``command``, with
        ``stdin`` sent first (each packet within ``stall_timeout``); the deadline counts
        from the end of ``stdin``."""
        try:
            channel = self._transport().open_session(timeout=self.host.connect_timeout)
            channel.exec_command(command)
            stdout, stderr = io.BytesIO(), io.BytesIO()
            if stdin is not None:
                channel.settimeout(self.host.stall_timeout)
                channel.sendall(stdin)
                channel.shutdown_write()
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
                        raise EOFError("the channel closed while the command ran")
                    # the output may still be on its way (sshd can send the status
                    # first): read up to the end of the stream, each packet within the
                    # stall limit, then what stderr holds
                    channel.settimeout(self.host.stall_timeout)
                    while chunk := channel.recv(65536):
                        stdout.write(chunk)
                    _drain(channel, stdout, stderr)
                    break
                if time.monotonic() >= deadline:
                    break
                if channel.closed:
                    raise EOFError("the channel closed while the command ran")
            channel.close()
        except CONNECTION_ERRORS as error:
            failure = self._failure("running a command", error)
            # a command refused on a live connection is the caller's to read, not a lost host
            raise (HostError(str(failure)) if isinstance(failure, HostUnusable) else failure) from None
        return status, stdout.getvalue(), stderr.getvalue()

    def check(self, command: str, timeout: float = 60.0) -> str:
        """Run ``command``; its stdout, HostUnusable naming it and its stderr when it fails,
        or HostError when it outlives ``timeout``."""
        done = self.run(command, timeout)
        if done.timed_out:
            raise HostError(f"{self.host}: `{command}` timed out after {timeout:g} s")
        if done.exit_status != 0:
            what = f"`{command}` exited with status {done.exit_status}"
            raise HostUnusable(f"{self.host}: {what}: {done.stderr.strip()[-500:]}")
        return done.stdout

    # files ------------------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient | None:
        """The SFTP session, or None when the host has no SFTP subsystem."""
        if self._sftp is None and not self.sftp_missing:
            transport = self._transport()
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except CONNECTION_ERRORS as error:
                if not transport.is_active() or self.stalled is not None:
                    raise self._failure("opening SFTP", error) from None
                self.sftp_missing = True  # refused on a live connection: copy with `cat`
                return None
            if self._sftp is None:
                raise HostError(f"{self.host}: opening an SFTP channel failed")
            self._sftp.get_channel().settimeout(self.host.stall_timeout)  # type: ignore[union-attr]
        return self._sftp

    def write_files(self, directory: str, files: dict[str, bytes], mode: int | None = None) -> None:
        """Write ``files`` (name -> bytes) into ``directory`` (relative to the home
        directory; created), each through a temporary name and a rename."""
        if directory not in self._directories:  # one shell round trip per directory
            self.check(f"mkdir -p {shlex.quote(directory)}")
            self._directories.add(directory)
        sftp = self._sftp_client()
        for name, content in files.items():
            final = f"{directory}/{name}"
            partial = f"{final}.partial"
            if sftp is None:
                self._copy_over_exec(partial, final, content, mode)
                continue
            try:
                with sftp.open(partial, "wb") as handle:
                    handle.set_pipelined(True)
                    handle.write(content)
                if mode is not None:
                    sftp.chmod(partial, mode)
                sftp.posix_rename(partial, final)
            except CONNECTION_ERRORS as error:
                raise self._failure(f"copying {name} to {directory}", error) from None

    def _copy_over_exec(self, partial: str, final: str, content: bytes, mode: int | None) -> None:
        command = f"cat > {shlex.quote(partial)}"
        if mode is not None:
            command += f" && chmod {mode:o} {shlex.quote(partial)}"
        command += f" && mv -f {shlex.quote(partial)} {shlex.quote(final)}"
        status, _, stderr = self._exec(command, COPY_TIMEOUT_S, stdin=content)
        if status is None:
            raise HostError(f"{self.host}: copying {final} over the exec channel timed out")
        if status != 0:
            raise HostUnusable(
                f"{self.host}: copying {final} over the exec channel (no SFTP) failed with status "
                f"{status}: {stderr.decode(errors='replace').strip()[-500:]}"
            )

    def exists(self, path: str) -> bool:
        sftp = self._sftp_client()
        if sftp is None:
            status, _, _ = self._exec(f"test -e {shlex.quote(path)}", COPY_TIMEOUT_S)
            return status == 0
        try:
            sftp.stat(path)
            return True
        except FileNotFoundError:
            return False
        except CONNECTION_ERRORS as error:
            raise self._failure(f"checking {path}", error) from None

    def read_file(self, path: str) -> bytes:
        sftp = self._sftp_client()
        if sftp is None:
            status, data, stderr = self._exec(f"cat {shlex.quote(path)}", COPY_TIMEOUT_S)
            if status != 0:
                raise HostUnusable(f"{self.host}: reading {path} failed: {stderr.decode(errors='replace')}")
            return data
        try:
            with sftp.open(path, "rb") as handle:
                return handle.read()
        except CONNECTION_ERRORS as error:
            raise self._failure(f"reading {path}", error) from None


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
