"""Reading and adding to an OpenSSH ``known_hosts`` file, as ``ssh`` itself does.

paramiko's own ``HostKeys`` crashes on the marker lines OpenSSH allows (``@cert-authority``
and ``@revoked``), does not match wildcard patterns, and its ``save_host_keys`` rewrites the
whole file from what it parsed (comments and unknown lines lost, concurrent writers
interleaved). Here:

* ``KnownHosts.read`` parses a file line by line and never raises for a line: comments,
  blank lines, ``@cert-authority`` lines (host certificates are not supported, so they
  vouch for nothing), unknown key types and malformed lines are skipped; ``@revoked``
  keys are collected and refused for every host, whatever their host patterns say (the
  safe reading of a revocation).
* Host patterns follow ``sshd(8)``'s known_hosts format: comma-separated names,
  ``*`` and ``?`` wildcards, ``!`` negation, hashed names (``|1|salt|hash``), and
  ``[host]:port`` for a port other than 22.
* ``add_known_host`` appends one line, once: under a process-wide lock and an exclusive
  ``flock`` on the file (other processes), it re-reads the file, returns if the key is
  already there, and otherwise appends the line in a single write, starting on a fresh
  line. Appending (as ``ssh`` does) rather than replacing the file keeps every other byte,
  a symlinked file and its permissions as they were.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import re
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

#: serialises every known_hosts update of this process (pool threads connect concurrently)
_LOCK = threading.Lock()


def host_key_name(host: str, port: int) -> str:
    """The name a host's keys are listed under: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def key_line(name: str, key: paramiko.PKey) -> str:
    """The known_hosts line of ``key`` for ``name`` (with its final newline)."""
    return f"{name} {key.get_name()} {key.get_base64()}\n"


@dataclass(frozen=True)
class KnownKey:
    """One plain (unmarked) line: its host patterns and key."""

    patterns: tuple[str, ...]
    key: paramiko.PKey

    def matches(self, name: str) -> bool:
        """Whether the patterns select ``name``: one positive match and no negated one."""
        matched = False
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            if _pattern_matches(pattern[1:] if negated else pattern, name):
                if negated:
                    return False
                matched = True
        return matched


@dataclass
class KnownHosts:
    """What a known_hosts file says (module docstring)."""

    keys: list[KnownKey] = field(default_factory=list)
    revoked: set[bytes] = field(default_factory=set)  # key blobs

    @staticmethod
    def read(path: Path) -> KnownHosts:
        """Parse ``path`` (an empty result if it does not exist)."""
        known = KnownHosts()
        try:
            text = path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return known
        for line in text.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = fields.pop(0) if fields[0].startswith("@") else None
            if len(fields) < 3:
                continue
            blob = _decode(fields[2])
            if blob is None:
                continue
            if marker == "@revoked":
                known.revoked.add(blob)
                continue
            if marker is not None:  # @cert-authority, or a marker this reader does not know
                continue
            try:
                key = paramiko.PKey.from_type_string(fields[1], blob)
            except (UnknownKeyType, paramiko.SSHException, ValueError, TypeError, IndexError, struct.error):
                continue  # a key type paramiko cannot use (e.g. security keys), or a bad blob
            known.keys.append(KnownKey(tuple(fields[0].split(",")), key))
        return known

    def keys_for(self, name: str) -> list[paramiko.PKey]:
        """The unrevoked keys listed for ``name``."""
        return [k.key for k in self.keys if k.matches(name) and k.key.asbytes() not in self.revoked]

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return key.asbytes() in self.revoked


def add_known_host(path: Path, name: str, key: paramiko.PKey) -> bool:
    """Append ``key`` for ``name`` to ``path`` unless it is listed already (module
    docstring); whether a line was added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if key.asbytes() in [k.asbytes() for k in KnownHosts.read(path).keys_for(name)]:
                return False
            size = os.fstat(descriptor).st_size
            fresh_line = size == 0 or os.pread(descriptor, 1, size - 1) == b"\n"
            line = key_line(name, key)
            os.write(descriptor, (line if fresh_line else "\n" + line).encode())
            os.fsync(descriptor)
            return True
        finally:
            os.close(descriptor)  # releases the flock


def _decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return paramiko.HostKeys.hash_host(name, pattern) == pattern
    expression = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(expression, name) is not None
