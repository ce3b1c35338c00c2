"""One HTTP exchange under everything: IMDS, the other hosts' token endpoints, ARM, JWKS, the probe.

:func:`exchange` sends one :class:`Request` and always returns an :class:`Answer`; it never raises for
what the network or the server did (that is the answer's ``kind``), only for bad input. It owns the
rules every caller needs and nobody should write twice:

* proxies: bypassed (``proxies=False``, the default: IMDS and the hosts' local endpoints must never be
  reached through one, and loopback never is) or taken from the environment (``proxies=True``: ARM,
  Entra ID's keys);
* redirects are never followed (a 3xx is an answer of kind ``"redirect"``);
* explicit ``(connect, read)`` time-outs; bodies larger than :data:`MAX_BODY` are cut there;
* ``Retry-After`` as seconds or an HTTP date (:func:`parse_retry_after`);
* a body cut short on the wire (fewer bytes than announced, connection closed) is ``"truncated"``
  and keeps its status: something did answer;
* the body's shape: ``"json"`` (an object), ``"empty"``, ``"html"``, ``"text"``, ``"invalid-json"``.

The real wire is picked per request (:func:`default_transport`): :class:`StdlibTransport`
(``http.client``) for plain-HTTP requests that bypass proxies (IMDS, the hosts' local endpoints,
loopback: a first token never imports ``requests``), :class:`RequestsTransport` for HTTPS and proxied
ones (ARM, Entra ID's keys, Key Vault) and for a caller's own ``requests.Session``. Tests swap the
wire for a function with :class:`MockTransport` (in the spirit of httpx's), so parsing and
classification are testable without sockets; the loopback emulator tests use the real ones.

Example::

    >>> from mi_notebook.http._transports import MockTransport
    >>> def handler(request):
    ...     return 429, {"Retry-After": "3", "Content-Type": "application/json"}, b'{"error": "throttled"}'
    >>> answer = exchange(Request("GET", "http://127.0.0.1:1/x"), transport=MockTransport(handler))
    >>> answer.kind, answer.status, answer.retry_after, answer.document
    ('json', 429, 3.0, {'error': 'throttled'})
    >>> exchange(Request("GET", "http://127.0.0.1:1/x"),
    ...          transport=MockTransport(lambda r: ConnectionRefusedError("refused"))).kind
    'unreachable'
"""

from __future__ import annotations

from ._exchange import AnswerFacts, exchange, wire_outcome
from ._models import (
    EMULATOR_HEADER,
    MAX_BODY,
    USER_AGENT,
    Answer,
    ConnectTimeout,
    ReadTimeout,
    Request,
    TlsFailure,
    Transport,
    Truncated,
    UnexpectedAnswer,
    default_verify,
    describe_failure,
    is_loopback_host,
    parse_retry_after,
    proxy_variables,
    redact,
    timeout_pair,
)
from ._transports import (
    BadResponse,
    DefaultTransport,
    MockTransport,
    RequestsTransport,
    StdlibTransport,
    choose_transport,
    default_transport,
    proxies_for,
)

__all__ = [
    "Answer",
    "AnswerFacts",
    "BadResponse",
    "ConnectTimeout",
    "DefaultTransport",
    "EMULATOR_HEADER",
    "MAX_BODY",
    "MockTransport",
    "ReadTimeout",
    "Request",
    "RequestsTransport",
    "StdlibTransport",
    "TlsFailure",
    "Transport",
    "Truncated",
    "USER_AGENT",
    "UnexpectedAnswer",
    "choose_transport",
    "default_transport",
    "default_verify",
    "describe_failure",
    "exchange",
    "is_loopback_host",
    "parse_retry_after",
    "proxies_for",
    "proxy_variables",
    "redact",
    "timeout_pair",
    "wire_outcome",
]
