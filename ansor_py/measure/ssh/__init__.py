"""Measuring on boards over plain SSH (issue: "Tuning for ARM boards over plain SSH").

``SSHRunner`` (``runner``) times cross-compiled candidates on a pool of ``SSHHost`` boards
(``host``) with a small C harness (``harness.c``, built by ``harness``; its command line and
replies in ``remote_command``); ``check_host`` (``probe``) checks a board before a long run.
"""

from ansor_py.measure.ssh.host import HostError, HostKeyError, HostUnreachable, HostUnusable, SSHHost
from ansor_py.measure.ssh.probe import HostReport, check_host
from ansor_py.measure.ssh.runner import NoHostError, SSHRunner

__all__ = [
    "HostError",
    "HostKeyError",
    "HostReport",
    "HostUnreachable",
    "HostUnusable",
    "NoHostError",
    "SSHHost",
    "SSHRunner",
    "check_host",
]
