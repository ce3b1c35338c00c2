"""What the agent asks on its clients' behalf: a connection's endpoint, described and rebuilt.

A client describes its connection (:func:`describe`: the host, the endpoint, who issues its tokens,
and for a host the variables its source reads); the agent rebuilds the same source from that
description (:func:`build_source`: the same classes ``mi.connect()`` uses) and keeps one
:class:`Upstream` per description. An upstream's :meth:`Upstream.fetch` is where a 429 with
``Retry-After`` or a 410 met by one request holds back every other request to that endpoint.

Example::

    >>> from mi_notebook.clock import VirtualClock
    >>> desc = {"host": "vm", "endpoint": "http://127.0.0.1:9"}
    >>> up = Upstream(desc, clock=VirtualClock())
    >>> up.client.endpoint, up.client.host
    ('http://127.0.0.1:9', 'vm')
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..clock import SYSTEM_CLOCK, Clock
from ..detection import SEEN_VARIABLES, detect
from ..identity import Identity
from ..secret import Secret
from ..tokens import AccessToken

if TYPE_CHECKING:  # pragma: no cover
    from ..sources import Source

__all__ = ["Upstream", "build_source", "describe"]

_HOSTS = ("vm", "azureml", "appservice", "arc", "cloudshell", "servicefabric", "workload")
#: statuses whose wait applies to every request to the endpoint, not only to the one that met it
_HOLDING = frozenset({429, 410})


def describe(conn: Any) -> dict[str, Any]:
    """The description of ``conn`` (a :class:`~mi_notebook.connection.Connection`) an agent rebuilds it
    from. It holds the host's variables, secrets included: it travels only to this user's agent. For
    workload identity that is the token file's *path* (the agent reads the file itself, for every
    request) and the CA bundle the source trusts, never the file's contents.

    Example::

        >>> from mi_notebook.connection import connect
        >>> describe(connect("http://127.0.0.1:9"))
        {'host': 'vm', 'endpoint': 'http://127.0.0.1:9'}
    """
    desc: dict[str, Any] = {"host": conn.host, "endpoint": conn.endpoint}
    if conn.host == "vm":
        return desc
    environ = getattr(conn.detection, "_environ", None) or {}
    desc["environ"] = {name: _plain(environ[name]) for name in SEEN_VARIABLES if name in environ}
    key_dir = getattr(conn.client, "key_dir", None)
    if key_dir is not None:
        desc["key_dir"] = key_dir
    verify = getattr(conn.client, "verify", None) if conn.host == "workload" else None
    if isinstance(verify, str):  # a CA bundle's path (the emulator's, a proxy's): the agent trusts the same
        desc["verify"] = verify
    return desc


def _plain(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def build_source(desc: Mapping[str, Any], *, clock: Clock = SYSTEM_CLOCK) -> Source:
    """The token source ``desc`` (from :func:`describe`) names; ``ValueError`` for a description that
    is not one, or whose source would talk to another endpoint than the ``endpoint`` it names (its
    variables pointing elsewhere: the agent must never cache one endpoint's answer as another's).

    Example::

        >>> build_source({"host": "appservice", "endpoint": "http://127.0.0.1:4141/msi/token",
        ...               "environ": {"IDENTITY_ENDPOINT": "http://127.0.0.1:4141/msi/token",
        ...                           "IDENTITY_HEADER": "h"}}).host
        'appservice'
        >>> build_source({"host": "mainframe"})
        Traceback (most recent call last):
        ...
        ValueError: the connection description names no known host (got 'mainframe')
        >>> build_source({"host": "appservice", "endpoint": "http://127.0.0.1:4141/msi/token",
        ...               "environ": {"IDENTITY_ENDPOINT": "http://127.0.0.1:9/elsewhere", "IDENTITY_HEADER": "h"}})
        Traceback (most recent call last):
        ...
        ValueError: the connection description names the endpoint 'http://127.0.0.1:4141/msi/token' but its variables point at 'http://127.0.0.1:9/elsewhere': refused
    """
    source = _build(desc, clock)
    if _normal(source.endpoint) != _normal(desc["endpoint"]):
        source.close()
        raise ValueError(f"the connection description names the endpoint {str(desc['endpoint'])[:200]!r} but its "
                         f"variables point at {source.endpoint[:200]!r}: refused")
    return source


def _normal(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "")


def _build(desc: Mapping[str, Any], clock: Clock) -> Source:
    host = desc.get("host")
    if host not in _HOSTS:
        raise ValueError(f"the connection description names no known host (got {str(host)[:40]!r})")
    endpoint = desc.get("endpoint")
    if not isinstance(endpoint, str):
        raise ValueError("the connection description has no endpoint URL")
    if host == "vm":
        from ..sources.imds import ImdsSource

        return ImdsSource(endpoint, clock=clock)
    environ = desc.get("environ")
    if not isinstance(environ, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in environ.items()):
        raise ValueError("the connection description's variables must be an object of strings")
    found = detect(environ, sysfs_root="/nonexistent", himds_path="/nonexistent")
    if found.host != host:
        raise ValueError(f"the variables describe {found.host}, not {host}")
    options: dict[str, Any] = {"clock": clock}
    if host == "arc" and isinstance(desc.get("key_dir"), str):
        options["key_dir"] = desc["key_dir"]
    if host == "workload" and isinstance(desc.get("verify"), str):
        options["verify"] = desc["verify"]
    return found.build_source(**options)


class Upstream:
    """One endpoint the agent asks: its source, and how long every request to it must wait.

    ``fetch(resource, identity)`` waits out a hold set by another request's 429 (its ``Retry-After``
    or back-off) or 410, then asks the source, setting the hold itself when it meets one.

    Example::

        >>> from mi_notebook.clock import VirtualClock
        >>> up = Upstream({"host": "vm", "endpoint": "http://127.0.0.1:9"}, clock=VirtualClock())
        >>> up.held_for()
        0.0
    """

    def __init__(self, desc: Mapping[str, Any], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.client = build_source(desc, clock=clock)
        self.endpoint: str = self.client.endpoint
        self._clock = clock
        self._lock = threading.Lock()
        self._hold_until = 0.0
        self.holds = 0

    def held_for(self) -> float:
        """Seconds every request to this endpoint must still wait (0 when none)."""
        with self._lock:
            return max(self._hold_until - self._clock.monotonic(), 0.0)

    def _observe(self, attempt: Any, next_wait: float | None, _max_attempts: int) -> None:
        if attempt.status in _HOLDING and next_wait:
            with self._lock:
                self._hold_until = max(self._hold_until, self._clock.monotonic() + next_wait)
                self.holds += 1

    def fetch(self, resource: str, identity: Identity) -> AccessToken:
        """A token from the endpoint, after any hold another request met has passed."""
        wait = self.held_for()
        if wait > 0:
            self._clock.sleep(wait)
        return self.client.request_token(resource, identity, on_attempt=self._observe)

    def close(self) -> None:
        """Close the source's HTTP session."""
        self.client.close()
