"""Which addresses are this machine's own: the one test every layer uses (never resolving a name).

Example::

    >>> is_loopback_host("127.0.0.1"), is_loopback_host("[::1]"), is_loopback_host("127.example.com")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``); never resolves a name.

    Example::

        >>> is_loopback_host("localhost"), is_loopback_host("10.0.0.1"), is_loopback_host("")
        (True, False, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
