"""The wires under :func:`mi_notebook.http.exchange`, one module each (import them from :mod:`mi_notebook.http`):

* :mod:`.stdlib`: :class:`StdlibTransport`, ``http.client`` for plain-HTTP requests that bypass
  proxies (IMDS, the hosts' local endpoints, loopback);
* :mod:`._requests`: :class:`RequestsTransport` and :func:`proxies_for`, for HTTPS and proxied
  requests and for a caller's own ``requests.Session`` (``requests`` imported only when one is built);
* :mod:`.mock`: :class:`MockTransport`, a function in the wire's place for tests;
* :mod:`.default`: :func:`default_transport`, which picks one of the first two per request, and
  :func:`choose_transport`.

Example::

    >>> from mi_notebook.http import Request
    >>> type(default_transport().transport_for(Request("GET", "http://127.0.0.1:1/"))).__name__
    'StdlibTransport'
"""

from __future__ import annotations

from ._requests import RequestsTransport, proxies_for
from .default import DefaultTransport, choose_transport, default_transport
from .mock import MockTransport
from .stdlib import BadResponse, StdlibTransport

__all__ = [
    "BadResponse",
    "DefaultTransport",
    "MockTransport",
    "RequestsTransport",
    "StdlibTransport",
    "choose_transport",
    "default_transport",
    "proxies_for",
]
