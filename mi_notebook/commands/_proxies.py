"""The doctor's proxy section: which proxy variables are set (credentials masked) and whether
``NO_PROXY`` exempts IMDS for the clients that honour proxies.

The doctor's output is meant to be pasted into tickets, so :func:`mask_proxy` hides the whole user
info of any proxy value, with or without a scheme, whatever characters it holds, and never raises:
it does not parse the value as a URL (a bad port, an IPv6 literal or garbage stay as they are), it
cuts at the last ``@``.

Example::

    >>> mask_proxy("user:s3cret@proxy.example:3128"), mask_proxy("http://tok3n@[::1]:99999")
    ('***@proxy.example:3128', 'http://***@[::1]:99999')
    >>> proxy_lines({"HTTPS_PROXY": "http://u:p@proxy:3128", "NO_PROXY": "169.254.169.254"})[0]
    'HTTPS_PROXY=http://***@proxy:3128'
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

__all__ = ["IMDS_HOST", "mask_proxy", "no_proxy_covers", "proxy_lines"]

IMDS_HOST = "169.254.169.254"
MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def mask_proxy(value: object) -> str:
    """A proxy value with its user info (``user:password@``, or a token alone before ``@``) replaced
    by ``***``; the scheme, host (IPv6 brackets included), port and path are kept as written.

    Everything before the last ``@`` after the scheme is user info, so a password holding ``@``,
    ``/``, ``:`` or ``://`` is hidden whole. Control characters are shown as ``?`` (a value cannot
    add lines to a report). Never raises.

    Example::

        >>> mask_proxy("http://user:s3cret@proxy.example:3128")
        'http://***@proxy.example:3128'
        >>> mask_proxy("user:pa://ss@10.0.0.1:3128"), mask_proxy("proxy.example:3128")
        ('***@10.0.0.1:3128', 'proxy.example:3128')
        >>> mask_proxy(None)
        '<not text>'
    """
    if not isinstance(value, str):
        return "<not text>"
    scheme, sep, rest = value.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):  # no scheme, or "://" inside the user info
        scheme, sep, rest = "", "", value
    at = rest.rfind("@")
    if at >= 0:
        rest = MASK + rest[at:]
    return _UNPRINTABLE.sub("?", scheme + sep + rest)


def no_proxy_covers(host: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``NO_PROXY`` / ``no_proxy`` exempts ``host`` (exact, ``*``, CIDR or domain suffix).

    Example::

        >>> no_proxy_covers("169.254.169.254", {"NO_PROXY": "localhost,169.254.0.0/16"})
        True
        >>> no_proxy_covers("169.254.169.254", {"no_proxy": ".corp.example"})
        False
    """
    env = os.environ if environ is None else environ
    raw = ",".join(filter(None, (env.get("NO_PROXY"), env.get("no_proxy"))))
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name = entry.split(":", 1)[0] if entry.count(":") == 1 else entry
        if addr is not None and "/" in name:
            try:
                if addr in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if name.lstrip(".") == host or (addr is None and host.endswith("." + name.lstrip("."))):
            return True
    return False


def proxy_lines(environ: Mapping[str, str] | None = None) -> list[str]:
    """The proxy section's lines: each proxy variable (masked), then what ``NO_PROXY`` means for IMDS.

    Example::

        >>> proxy_lines({})
        ['none set', "NO_PROXY='': not needed (no proxy variable is set)"]
    """
    from ..http import proxy_variables

    env = os.environ if environ is None else environ
    found = proxy_variables(env)
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    shown = mask_proxy(no_proxy)
    if not found:
        return ["none set", f"NO_PROXY={shown!r}: not needed (no proxy variable is set)"]
    covered = no_proxy_covers(IMDS_HOST, env)
    lines = [f"{name}={mask_proxy(value)}" for name, value in sorted(found.items())]
    lines.append(f"NO_PROXY={shown!r}: {'covers' if covered else 'does NOT cover'} {IMDS_HOST}")
    lines.append("mi-notebook ignores proxies for IMDS; other clients (azure-identity, az) honour them"
                 + (": fine, NO_PROXY exempts IMDS" if covered else f": add {IMDS_HOST} to NO_PROXY for them"))
    return lines
