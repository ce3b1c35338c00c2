"""The vocabulary of the one HTTP exchange: requests, answers, what the wire can do, and the small
rules about them (loopback hosts, proxy variables, time-outs, ``Retry-After``, redaction).

:mod:`mi_notebook.http` is where callers import all of it from; this module only keeps the
transports (:mod:`mi_notebook.http`) and the exchange apart without an import circle.

Example::

    >>> from mi_notebook.http._models import Answer, is_loopback_host, redact
    >>> is_loopback_host("127.0.0.1"), Answer("json", 200, {}, b'{"a": 1}').document
    (True, {'a': 1})
"""

from __future__ import annotations

import email.utils
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..addresses import is_loopback_host
from ..secret import redact_text

__all__ = [
    "EMULATOR_HEADER",
    "MAX_BODY",
    "USER_AGENT",
    "Answer",
    "ConnectTimeout",
    "ReadTimeout",
    "Request",
    "TlsFailure",
    "Transport",
    "Truncated",
    "UnexpectedAnswer",
    "default_verify",
    "describe_failure",
    "is_loopback_host",
    "parse_retry_after",
    "proxy_variables",
    "redact",
    "timeout_pair",
]

#: Bodies larger than this are no token or metadata answer (those are a few kB): reading stops there.
MAX_BODY = 1 << 20
#: The header every answer of mi-notebook's emulator carries (real services never send it).
EMULATOR_HEADER = "X-Mi-Notebook-Emulator"
USER_AGENT = "mi-notebook"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def proxy_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy variables that are set (name -> value).

    Example::

        >>> proxy_variables({"HTTPS_PROXY": "http://proxy:3128", "PATH": "/bin"})
        {'HTTPS_PROXY': 'http://proxy:3128'}
    """
    env = os.environ if environ is None else environ
    return {name: env[name] for name in PROXY_VARIABLES if env.get(name)}


def timeout_pair(timeout: float | tuple[float, float] | Sequence[float]) -> tuple[float, float]:
    """``(connect, read)`` seconds from one number or a pair; ``ValueError`` for anything else.

    Example::

        >>> timeout_pair(3), timeout_pair((0.5, 10))
        ((3.0, 3.0), (0.5, 10.0))
        >>> timeout_pair("fast")
        Traceback (most recent call last):
        ValueError: timeout must be seconds or (connect, read) seconds, got 'fast'
    """
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        pair = (float(timeout), float(timeout))
    elif (isinstance(timeout, (tuple, list)) and len(timeout) == 2
          and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in timeout)):
        pair = (float(timeout[0]), float(timeout[1]))
    else:
        raise ValueError(f"timeout must be seconds or (connect, read) seconds, got {timeout!r}")
    if not all(0 < t < 3600 for t in pair):
        raise ValueError(f"time-outs must be positive and under an hour, got {timeout!r}")
    return pair


def default_verify(environ: Mapping[str, str] | None = None) -> bool | str:
    """TLS verification for hosts reached through the environment's network (ARM, Entra ID's keys).

    The real transport never reads the environment behind the caller's back, so a corporate CA
    bundle named by ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` is honoured here, explicitly;
    otherwise ``True`` (the system's trust store).

    Example::

        >>> default_verify({}), default_verify({"REQUESTS_CA_BUNDLE": "/etc/corp-ca.pem"})
        (True, '/etc/corp-ca.pem')
    """
    env = os.environ if environ is None else environ
    return env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from now: a number of seconds or an HTTP date; ``None`` if absent or unreadable.

    Example::

        >>> parse_retry_after("3", 0), parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", 30), parse_retry_after("x", 0)
        (3.0, 30.0, None)
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def redact(body: bytes | str, limit: int = 120, *, one_line: bool = True) -> str:
    """The start of a body for an error message, with anything token-like redacted.

    A body cut off in transit may still hold most of a token, so both a JSON ``access_token`` value
    and anything shaped like a JWT are replaced. ``one_line=False`` keeps the text's own line breaks
    (a service's ``error_description``, whose layout its readers rely on).

    Example::

        >>> redact(b'{"access_token": "eyJ0eXAi.eyJhdWQi.sig", "expires_on": "1"}')
        '{"access_token": "<redacted>", "expires_on": "1"}'
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return redact_text(text, limit, one_line=one_line)


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``params`` keep their order (IMDS rejects duplicates; order is for readers).

    ``data``: a form body (Cloud Shell's POST). ``proxies``: ``False`` bypasses every proxy (the
    default), ``True`` uses the environment's (never for a loopback host). ``verify``: TLS
    verification, ``True``, ``False`` or a CA bundle path. The repr never shows header values (one
    may be a secret or a bearer token).

    Example::

        >>> Request("GET", "http://127.0.0.1:1/t", headers={"secret": "s3cr3t"})
        Request(GET http://127.0.0.1:1/t, headers=['secret'])
    """

    method: str
    url: str
    params: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] | None = None
    timeout: tuple[float, float] = (2.0, 10.0)
    proxies: bool = False
    verify: bool | str = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a request needs an http(s) URL with a host; got {self.url!r}")
        if self.method not in ("GET", "POST"):
            raise ValueError(f"only GET and POST are sent; got {self.method!r}")
        object.__setattr__(self, "timeout", timeout_pair(self.timeout))
        object.__setattr__(self, "params", tuple((str(k), str(v)) for k, v in self.params))

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url}, headers={sorted(self.headers)})"


class _Headers(dict[str, str]):
    """Case-insensitive look-ups over an answer's headers (a plain dict underneath, names as sent)."""

    def get(self, name: str, default: Any = None) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        lower = name.lower()
        for key, value in self.items():
            if key.lower() == lower:
                return value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return str(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name, _MISSING) is not _MISSING


_MISSING: Any = object()


@dataclass(frozen=True)
class Answer:
    """What one exchange produced. ``kind`` says what happened; the rest is what could be seen.

    Kinds with an HTTP status: ``"json"`` (``document`` is the object), ``"empty"``, ``"html"``,
    ``"text"``, ``"invalid-json"``, ``"redirect"``, ``"truncated"`` (the body was cut short), and
    ``"timeout"`` when the status came but not the whole body. Kinds without: ``"connect-timeout"``,
    ``"timeout"``, ``"unreachable"``, ``"tls"``. ``exception`` is what the wire raised (the
    standard library's wire: :class:`ReadTimeout`, :class:`ConnectTimeout`, ``ConnectionRefusedError``,
    ``RemoteDisconnected``...; requests': its own ``ReadTimeout``, ``SSLError``, ``ConnectionError``...).
    The body is kept (it may hold a token: the repr never shows it);
    :attr:`snippet` is its redacted start for messages.

    Example::

        >>> a = Answer("json", 200, {"x-ms-request-id": "r-1"}, b'{"access_token": "secret"}')
        >>> a.request_id, a.document, "secret" in repr(a)
        ('r-1', {'access_token': 'secret'}, False)
    """

    kind: str
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = field(default=b"", repr=False)
    retry_after: float | None = None
    exception: BaseException | None = None
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _Headers(self.headers or {}))

    @property
    def document(self) -> Any:
        """The parsed JSON object for kind ``"json"``, else ``None``."""
        if self.kind != "json":
            return None
        return json.loads(self.body.decode("utf-8", errors="replace"))

    @property
    def text(self) -> str:
        """The body as text (may hold a secret: for parsing, never for messages; use :attr:`snippet`)."""
        return self.body.decode("utf-8", errors="replace")

    @property
    def snippet(self) -> str:
        """The redacted start of the body, for error messages."""
        return redact(self.body)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def server(self) -> str | None:
        return self.headers.get("Server")

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    @property
    def request_id(self) -> str | None:
        """The service's request id (``x-ms-request-id``), else the echoed client request id."""
        return self.headers.get("x-ms-request-id") or self.headers.get("x-ms-client-request-id")

    @property
    def from_emulator(self) -> bool:
        """Whether mi-notebook's emulator sent this (it marks every answer; Azure never does)."""
        return EMULATOR_HEADER in self.headers

    @property
    def answered(self) -> bool:
        """Whether an HTTP status came back at all."""
        return self.status is not None


class Transport(Protocol):
    """Sends a :class:`Request`; returns ``(status, headers, body)`` or raises what the wire did.

    Raise ``TimeoutError`` / ``ConnectionError`` / ``OSError`` (or requests' own exceptions) for
    failures; :class:`Truncated` for a body cut short after the status arrived. Any callable will do:

    Example::

        >>> from mi_notebook.http._exchange import exchange
        >>> from mi_notebook.http._transports import MockTransport
        >>> def wire(request):
        ...     return 204, {}, b""
        >>> exchange(Request("GET", "http://127.0.0.1:1/"), transport=wire).kind
        'empty'
    """

    def __call__(self, request: Request) -> tuple[int, Mapping[str, str], bytes]: ...


class Truncated(Exception):
    """The status and headers arrived but the body did not (all of it): ``timed_out`` says why.

    Example::

        >>> from mi_notebook.http._exchange import exchange
        >>> from mi_notebook.http._transports import MockTransport
        >>> cut = Truncated(200, {}, b'{"acc', ConnectionResetError("closed"))
        >>> answer = exchange(Request("GET", "http://127.0.0.1:1/"), transport=MockTransport(lambda r: cut))
        >>> answer.kind, answer.status
        ('truncated', 200)
    """

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, cause: BaseException,
                 *, timed_out: bool = False) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.status, self.headers, self.body, self.cause, self.timed_out = status, headers, body, cause, timed_out


class UnexpectedAnswer(ValueError):
    """Marks an attempt whose answer is not the protocol speaking (a redirect, an HTML page, a body that
    is no token): a client records it as the attempt's exception, so it is not retried; ``problem``
    is what was wrong, for the error message.

    Example::

        >>> UnexpectedAnswer("HTTP 200 with an HTML page", problem="an HTML page").problem
        'an HTML page'
    """

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


class ConnectTimeout(TimeoutError):
    """No connection within the connect time-out (a transport raises it; ``exchange`` says ``connect-timeout``).

    Example::

        >>> from mi_notebook.http._exchange import exchange
        >>> from mi_notebook.http._transports import MockTransport
        >>> exchange(Request("GET", "http://127.0.0.1:1/"),
        ...          transport=MockTransport(lambda r: ConnectTimeout("no connection"))).kind
        'connect-timeout'
    """


class ReadTimeout(TimeoutError):
    """A connection but no answer within the read time-out (``exchange`` says ``timeout``).

    Example::

        >>> from mi_notebook.http._exchange import exchange
        >>> from mi_notebook.http._transports import MockTransport
        >>> exchange(Request("GET", "http://127.0.0.1:1/"), transport=MockTransport(lambda r: ReadTimeout())).kind
        'timeout'
    """


class TlsFailure(ConnectionError):
    """The TLS handshake or certificate check failed (not transient: retrying will not help).

    Example::

        >>> from mi_notebook.http._exchange import exchange
        >>> from mi_notebook.http._transports import MockTransport
        >>> exchange(Request("GET", "https://127.0.0.1:1/"),
        ...          transport=MockTransport(lambda r: TlsFailure("certificate verify failed"))).kind
        'tls'
    """


def describe_failure(answer: Answer) -> str:
    """A short human reason for an answer that failed on the wire (for error messages).

    Example::

        >>> describe_failure(Answer("unreachable", exception=ConnectionRefusedError("[Errno 111] Connection refused")))
        'connection refused (nothing listens there)'
        >>> describe_failure(Answer("truncated", 200, exception=ConnectionResetError("reset by peer")))
        'the connection closed before the whole body arrived (ConnectionResetError: reset by peer)'
    """
    exc = answer.exception
    if answer.kind == "truncated":
        return f"the connection closed before the whole body arrived ({_short(exc)})"
    if answer.kind == "connect-timeout":
        return "no connection within the connect time-out"
    if answer.kind == "timeout":
        return "the body did not arrive within the read time-out" if answer.answered else \
            "no answer within the read time-out"
    if answer.kind == "tls":
        return f"TLS verification failed ({_short(exc)})"
    if exc is None:
        return "no answer"
    chain = repr(exc).lower()
    if "refused" in chain:
        return "connection refused (nothing listens there)"
    if "reset" in chain:
        return "the connection was reset"
    if "remotedisconnected" in chain or "without response" in chain or "aborted" in chain:
        return "the connection was closed before any answer"
    if "name or service" in chain or "nodename" in chain or "getaddrinfo" in chain:
        return "the host name does not resolve"
    return _short(exc)



def _short(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown"
    return text if len(text) <= 160 else text[:159] + "…"
