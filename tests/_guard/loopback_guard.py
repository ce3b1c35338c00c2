"""Refuse, and record, any socket traffic to an address outside 127.0.0.0/8 and ::1.

Installed by ``tests/conftest.py`` in the test process and, through ``sitecustomize.py`` on
``PYTHONPATH``, in every Python subprocess a test starts. A refused connection raises
:class:`NonLoopbackTraffic` (a ``PermissionError``, so client code sees an ordinary socket error)
*and* is recorded, so a test fails even when the code under test swallows the error.

Example::

    >>> import socket
    >>> install()
    >>> socket.create_connection(("169.254.169.254", 80))
    Traceback (most recent call last):
    NonLoopbackTraffic: ...
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading

_LOOPBACK_NAMES = {"localhost", "localhost.", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

violations: list[str] = []
_lock = threading.Lock()
_installed = False
_log_to_file = False


class NonLoopbackTraffic(PermissionError):
    """A test tried to reach an address that is not loopback."""


def is_loopback_host(host: object) -> bool:
    """True for loopback IP literals and the usual names of this machine's loopback interface."""
    if host is None or host == "":
        return True  # getaddrinfo(None, port): a passive/local address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _refuse(what: str, host: object) -> None:
    message = f"non-loopback traffic refused by the test guard: {what} {host!r}"
    with _lock:
        violations.append(message)
    log = os.environ.get("MI_NOTEBOOK_GUARD_LOG") if _log_to_file else None
    if log:
        try:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"pid {os.getpid()}: {message}\n")
        except OSError:
            pass
    raise NonLoopbackTraffic(message)


def _check_address(what: str, family: int, address: object) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # AF_UNIX and friends never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not is_loopback_host(host):
        _refuse(what, host)


def install(log_to_file: bool = False) -> None:
    """Patch the socket module (idempotent).

    ``log_to_file``: also append each refusal to ``$MI_NOTEBOOK_GUARD_LOG`` (used in subprocesses,
    whose in-memory record the test process cannot see).
    """
    global _installed, _log_to_file
    _log_to_file = log_to_file
    if _installed:
        return
    _installed = True
    orig_connect = socket.socket.connect
    orig_connect_ex = socket.socket.connect_ex
    orig_sendto = socket.socket.sendto
    orig_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        _check_address("connect to", self.family, address)
        return orig_connect(self, address)

    def connect_ex(self, address):
        _check_address("connect to", self.family, address)
        return orig_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        _check_address("datagram to", self.family, address)
        return orig_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        # Resolving a real name would send a DNS query off this machine.
        if not is_loopback_host(host):
            _refuse("name lookup of", host)
        return orig_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
