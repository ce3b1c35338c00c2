"""Which wire a request goes through: the process-wide :class:`DefaultTransport` picks per request.

* a plain ``http://`` request that bypasses proxies (IMDS, the hosts' local endpoints, loopback):
  :class:`~mi_notebook.http.StdlibTransport`, so a first token never imports ``requests``;
* anything else (HTTPS: ARM, Entra ID's keys, Key Vault; a request taking the environment's proxies):
  :class:`~mi_notebook.http.RequestsTransport`, built (and ``requests`` imported) on first need.

A client given a caller's ``requests.Session`` sends everything through it instead
(:func:`choose_transport`), as before.

Example::

    >>> from mi_notebook.http import Request
    >>> wire = default_transport()
    >>> type(wire.transport_for(Request("GET", "http://169.254.169.254/metadata/identity/oauth2/token"))).__name__
    'StdlibTransport'
    >>> type(wire.transport_for(Request("GET", "https://management.azure.com/", proxies=True))).__name__
    'RequestsTransport'
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._models import Request, Transport, is_loopback_host
from ._requests import RequestsTransport
from .stdlib import StdlibTransport

__all__ = ["DefaultTransport", "choose_transport", "default_transport"]


class DefaultTransport:
    """Routes each request to the standard library's wire or to requests' (see the module docstring).

    Example::

        >>> from mi_notebook.http import Request
        >>> wire = DefaultTransport()
        >>> wire.transport_for(Request("GET", "http://127.0.0.1:8080/x", proxies=True)) is wire.stdlib
        True
        >>> wire.close()
    """

    def __init__(self) -> None:
        self.stdlib = StdlibTransport()
        self._requests: RequestsTransport | None = None
        self._lock = threading.Lock()

    @property
    def requests(self) -> RequestsTransport:
        """The requests-based wire, created (and ``requests`` imported) on first use."""
        if self._requests is None:
            with self._lock:
                if self._requests is None:
                    self._requests = RequestsTransport()
        return self._requests

    def transport_for(self, request: Request) -> Transport:
        """The wire ``request`` goes through."""
        parts = urlsplit(request.url)
        if parts.scheme == "http" and (not request.proxies or is_loopback_host(parts.hostname or "")):
            return self.stdlib
        return self.requests

    def __call__(self, request: Request) -> tuple[int, Mapping[str, str], bytes]:
        return self.transport_for(request)(request)

    def close(self) -> None:
        """Close both wires' kept connections (they stay usable)."""
        self.stdlib.close()
        if self._requests is not None:
            self._requests.close()
            self._requests = None


def choose_transport(transport: Transport | None = None, session: Any = None) -> Transport | None:
    """What a client sends through: ``transport`` as given, a caller's ``requests.Session`` wrapped in
    :class:`RequestsTransport` (the same rules apply on it), or ``None`` for :func:`default_transport`.

    Example::

        >>> choose_transport() is None, isinstance(choose_transport(session=__import__("requests").Session()),
        ...                                        RequestsTransport)
        (True, True)
    """
    if transport is not None and session is not None:
        raise ValueError("give transport= or session=, not both")
    if transport is not None and not callable(transport):
        raise ValueError(f"transport must be callable (e.g. mi_notebook.http.MockTransport); got {transport!r}")
    if session is not None:
        if not callable(getattr(session, "request", None)):
            raise ValueError(f"session must be a requests.Session; got {session!r}")
        return RequestsTransport(session)
    return transport


_DEFAULT_TRANSPORT: DefaultTransport | None = None
_DEFAULT_LOCK = threading.Lock()


def default_transport() -> DefaultTransport:
    """The process-wide real transport (created on first use; it picks a wire per request).

    Example::

        >>> default_transport() is default_transport()
        True
    """
    global _DEFAULT_TRANSPORT
    if _DEFAULT_TRANSPORT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT_TRANSPORT is None:
                _DEFAULT_TRANSPORT = DefaultTransport()
                atexit.register(_DEFAULT_TRANSPORT.close)  # kept connections closed, not left to the collector
    return _DEFAULT_TRANSPORT
