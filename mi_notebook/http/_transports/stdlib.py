"""The standard library's wire: ``http.client`` for plain ``http://`` requests that bypass proxies.

IMDS (``169.254.169.254``), the hosts' local token endpoints and loopback are reached over plain
HTTP and never through a proxy, so ``requests`` brings them nothing the exchange does not already
own, only its import time (most of a first token's). :class:`StdlibTransport` keeps the same
contract as :class:`~mi_notebook.http.RequestsTransport`:

* explicit ``(connect, read)`` time-outs: a connection not made in time is
  :class:`~mi_notebook.http.ConnectTimeout`, no status in time :class:`~mi_notebook.http.ReadTimeout`,
  a body that stops arriving after the status ``Truncated(timed_out=True)``;
* no redirects followed, no proxies, no cookies, nothing read from the environment;
* bodies read up to :data:`~mi_notebook.http.MAX_BODY`; chunked bodies decoded; a body shorter than
  its ``Content-Length`` (the connection closed) is :class:`~mi_notebook.http.Truncated`, status kept;
* an answer that is not HTTP at all is :class:`BadResponse` (a ``ConnectionError``: unreachable);
* header names case-insensitive;
* connections kept alive per host in a small pool, each used by one thread at a time. A kept
  connection the server has closed is noticed *before* the request is written (the socket is
  readable while idle: end of file) and replaced. Once a request is written it is never sent again
  by the transport: if the connection fails then, the failure is the answer (a token request
  must not be issued twice behind the caller's back; the caller's retry policy decides, visibly).

Example::

    >>> transport = StdlibTransport()       # sends nothing until called
    >>> transport(Request("GET", "https://127.0.0.1:1/"))
    Traceback (most recent call last):
    ValueError: StdlibTransport sends plain http:// requests; got https://127.0.0.1:1/
    >>> transport.close()
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import select
import socket
import sys
import threading
from collections.abc import Mapping
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from .._models import MAX_BODY, USER_AGENT, ConnectTimeout, ReadTimeout, Request, Truncated, _Headers

__all__ = ["BadResponse", "StdlibTransport"]

_CHUNK = 65536
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.1: a token
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")  # control characters (HTAB allowed), non-Latin-1
#: characters left as they are in a URL's path and query (requests' ``requote_uri`` keeps the same)
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


class BadResponse(ConnectionError):
    """The peer answered something that is not HTTP (no status line, malformed headers).

    Example::

        >>> from mi_notebook.http import MockTransport, Request, exchange
        >>> exchange(Request("GET", "http://127.0.0.1:1/"), transport=MockTransport(lambda r: BadResponse("SSH-2.0"))).kind
        'unreachable'
    """


class _Connection(http.client.HTTPConnection):
    """One connection: the connect time-out bounds the handshake, the read time-out everything after."""

    def __init__(self, host: str, port: int, timeouts: tuple[float, float]) -> None:
        super().__init__(host, port, timeout=timeouts[0])
        self.read_timeout = timeouts[1]

    def connect(self) -> None:
        sys.audit("http.client.connect", self, self.host, self.port)
        # An ASCII host goes to getaddrinfo as bytes: a str would load the IDNA codec (and unicodedata)
        # for every address, an IP literal included.
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        self.sock = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.read_timeout)


class StdlibTransport:
    """Plain-HTTP requests through ``http.client``, with the exchange's rules (see the module docstring).

    ``max_idle``: kept connections per host (more concurrent requests open more; the extras are
    closed when done); ``max_hosts``: hosts with kept connections (the least recently used one's are
    closed beyond that, as urllib3 bounds its pools). Thread-safe. :meth:`close` closes the kept
    connections.

    Example::

        >>> from mi_notebook.http import Request, exchange
        >>> from mi_notebook.emulator import Emulator
        >>> transport = StdlibTransport()
        >>> with Emulator(arm=False) as emu:
        ...     answer = exchange(Request("GET", emu.imds_url + "/metadata/instance",
        ...                               params=[("api-version", "2021-02-01")], headers={"Metadata": "true"}),
        ...                       transport=transport)
        >>> answer.kind, answer.status, answer.from_emulator
        ('json', 200, True)
        >>> transport.close()
    """

    def __init__(self, *, max_idle: int = 4, max_hosts: int = 10) -> None:
        self.max_idle, self.max_hosts = max_idle, max_hosts
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __call__(self, request: Request) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(request.url)
        if parts.scheme != "http":
            raise ValueError(f"StdlibTransport sends plain http:// requests; got {request.url}")
        host, port = parts.hostname or "", parts.port or 80  # a bad port: ValueError, before anything is sent
        target, body, headers = _message(request, parts)
        conn = self._kept((host, port), request.timeout) or self._open(host, port, request.timeout)
        try:
            conn.request(request.method, target, body=body, headers=headers)
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise ReadTimeout(f"no answer from {parts.netloc} within the {request.timeout[1]:g} s read time-out") \
                from None
        except OSError:
            conn.close()
            raise  # refused, reset, closed without an answer (RemoteDisconnected): unreachable
        except http.client.HTTPException as exc:
            conn.close()
            raise BadResponse(f"the answer from {parts.netloc} is not HTTP ({type(exc).__name__}: {exc})") from exc
        except BaseException:
            conn.close()
            raise
        status, answer_headers = response.status, _headers(response.msg)
        data, complete = _read_body(response, status, answer_headers, conn)
        response.close()
        if complete and not response.will_close:
            self._keep((host, port), conn)
        else:
            conn.close()
        return status, answer_headers, data

    def close(self) -> None:
        """Close the kept connections (the transport stays usable: new ones are opened as needed)."""
        with self._lock:
            kept, self._idle = self._idle, {}
        for pool in kept.values():
            for conn in pool:
                conn.close()

    # --- the pool ---------------------------------------------------------------------------------
    def _kept(self, key: tuple[str, int], timeouts: tuple[float, float]) -> _Connection | None:
        """A kept connection to ``key`` that is still open, or None. Checked before anything is written."""
        while True:
            with self._lock:
                if self._pid != os.getpid():  # a forked child must not share its parent's sockets
                    self._idle, self._pid = {}, os.getpid()
                pool = self._idle.get(key)
                conn = pool.pop() if pool else None
            if conn is None:
                return None
            if conn.sock is not None and not _dropped(conn.sock):
                conn.sock.settimeout(timeouts[1])
                return conn
            conn.close()  # the server closed it while it was idle: nothing was sent on it

    def _keep(self, key: tuple[str, int], conn: _Connection) -> None:
        evicted: list[_Connection] = [conn]
        with self._lock:
            pool = self._idle.pop(key, [])
            self._idle[key] = pool  # the most recently used host last
            if len(pool) < self.max_idle and self._pid == os.getpid():
                pool.append(conn)
                evicted.clear()
            while len(self._idle) > self.max_hosts:
                evicted.extend(self._idle.pop(next(iter(self._idle))))
        for extra in evicted:
            extra.close()

    @staticmethod
    def _open(host: str, port: int, timeouts: tuple[float, float]) -> _Connection:
        conn = _Connection(host, port, timeouts)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise ConnectTimeout(f"no connection to {host}:{port} within the {timeouts[0]:g} s connect time-out") \
                from None
        except OSError:
            conn.close()
            raise
        return conn


# --- helpers -------------------------------------------------------------------------------------
def _message(request: Request, parts: SplitResult) -> tuple[str, bytes | None, dict[str, str]]:
    """The request target (path and query, parameters appended), the form body and the headers."""
    query = quote(parts.query, safe=_URL_SAFE)
    if request.params:
        extra = urlencode(list(request.params))
        query = f"{query}&{extra}" if query else extra
    target = quote(parts.path or "/", safe=_URL_SAFE) + (f"?{query}" if query else "")
    headers = dict(request.headers)
    for name, value in headers.items():
        # http.client would refuse these too, but with the value in its message: a header may be a secret
        if not _HEADER_NAME.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"header {name!r}: a name that is not a token, or a value with a line break, a control "
                             "character or a character outside Latin-1 (value not shown)")
    names = {name.lower() for name in headers}
    if "user-agent" not in names:
        headers["User-Agent"] = USER_AGENT
    body = None
    if request.data is not None:
        body = urlencode(list(request.data.items())).encode()
        if "content-type" not in names:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    return target, body, headers


def _headers(message: http.client.HTTPMessage) -> _Headers:
    """The answer's headers, names as sent; a repeated header's values joined with ``", "`` (RFC 9110 5.3)."""
    headers = _Headers()
    for name, value in message.items():
        previous = headers.get(name)
        if previous is None:
            headers[name] = value
        else:
            headers[next(k for k in headers if k.lower() == name.lower())] = f"{previous}, {value}"
    return headers


def _read_body(response: http.client.HTTPResponse, status: int, headers: _Headers,
               conn: _Connection) -> tuple[bytes, bool]:
    """The body, up to :data:`MAX_BODY`, and whether all of it was read (so the connection can be kept).

    ``Truncated`` when the connection fails or closes before the whole body came."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < MAX_BODY:
            chunk = response.read1(min(_CHUNK, MAX_BODY - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        partial = exc.partial if isinstance(exc, http.client.IncompleteRead) else b""
        raise Truncated(status, headers, b"".join(chunks) + partial, exc, timed_out=isinstance(exc, TimeoutError)) \
            from exc
    body = b"".join(chunks)
    if size >= MAX_BODY:
        return body, False  # cut here: the rest stays unread, so the connection cannot be reused
    if response.length:  # Content-Length promised more than arrived before the connection closed
        conn.close()
        cut = http.client.IncompleteRead(body, response.length)
        raise Truncated(status, headers, body, cut)
    return body, True


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle kept connection can no longer carry a request: readable while idle means the
    server closed it (end of file) or sent something nobody asked for (the exchange is out of step)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
