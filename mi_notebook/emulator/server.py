"""The HTTP plumbing shared by the emulator's services: a threaded HTTP/1.1 keep-alive server that hands
each parsed request to a dispatcher and writes back what it returns, including the misbehaviours
faults ask for (hang, drop, an incomplete body).

The dispatcher is a plain function ``(HttpRequest) -> HttpResponse``: the IMDS logic never sees a
socket. Every answer is JSON (protocol errors included: no stdlib HTML error pages), every answer has
a Content-Length, and stopping the server closes idle keep-alive connections and wakes held ones.
Pass ``ssl_context`` to serve HTTPS (the TLS handshake runs in the connection's own thread).
Every answer carries ``X-Mi-Notebook-Emulator: 1`` (:data:`MARKER_HEADER`), a header no real Azure
service sends, so a client can label what it got from here as the emulator's.

Example::

    >>> import http.client, json
    >>> srv = HttpServer(lambda req: HttpResponse(200, json.dumps({"path": req.path}).encode()))
    >>> srv.start()
    >>> conn = http.client.HTTPConnection("127.0.0.1", srv.port)
    >>> conn.request("GET", "/x?y=1"); resp = conn.getresponse(); json.loads(resp.read())
    {'path': '/x'}
    >>> resp.getheader(MARKER_HEADER)
    '1'
    >>> conn.close(); srv.stop()
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .requestlog import RequestLog, RequestRecord, redact_headers

__all__ = ["JSON", "MARKER_HEADER", "TEXT", "HttpRequest", "HttpResponse", "HttpServer", "json_response"]

MARKER_HEADER = "X-Mi-Notebook-Emulator"  # on every answer: real services never send it
JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
MAX_BODY = 1 << 20  # request bodies beyond 1 MiB are refused (413) and the connection closed

_REASONS = {s: BaseHTTPRequestHandler.responses.get(s, ("Unknown",))[0]
            for s in range(100, 600)}


@dataclass
class HttpRequest:
    """A parsed request: ``path`` without the query, ``query`` the raw query string, headers in order.

    Example::

        >>> req = HttpRequest("GET", "/x?a=1", "/x", "a=1", [("Metadata", "true"), ("metadata", "false")])
        >>> req.header("METADATA"), req.header_all("metadata"), req.header("Authorization")
        ('true', ['true', 'false'], None)
    """

    method: str
    target: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    client: str = ""
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


@dataclass
class HttpResponse:
    """What to answer. ``action``: None (send it), ``"hang"`` (hold ``hang_seconds`` then close, no
    answer), ``"drop"`` (close at once, no answer), ``"incomplete"`` (advertise the full length, send
    half the body, close). ``service``/``endpoint``/``error``/``fault`` feed the request log;
    ``log=False`` keeps it out (the admin endpoint).

    Example::

        >>> r = HttpResponse(200, b"{}")
        >>> r.content_type, r.action, r.log
        ('application/json; charset=utf-8', None, True)
        >>> HttpResponse(0, action="hang", hang_seconds=5.0).status  # no answer at all: the connection is held
        0
    """

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    error_description: str | None = None
    service: str = "imds"
    endpoint: str = "other"
    fault: str | None = None
    action: str | None = None
    hang_seconds: float = 0.0
    close: bool = False
    log: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def json_response(status: int, payload: Any, **kwargs: Any) -> HttpResponse:
    """A JSON response; ``error``/``error_description`` are lifted from ``payload`` for the log.

    Example::

        >>> json_response(400, {"error": "invalid_request"}).error
        'invalid_request'
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    if isinstance(payload, dict):
        err = payload.get("error")
        if isinstance(err, dict):  # ARM's envelope
            kwargs.setdefault("error", err.get("code"))
            kwargs.setdefault("error_description", err.get("message"))
        elif isinstance(err, str):
            kwargs.setdefault("error", err)
            desc = payload.get("error_description")
            kwargs.setdefault("error_description", desc if isinstance(desc, str) else None)
    return HttpResponse(status, body, **kwargs)


Dispatcher = Callable[[HttpRequest], HttpResponse]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 600  # an idle keep-alive connection is closed after 10 minutes (and at stop)
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.command = ""
        self.request_version = "HTTP/1.1"
        self.requestline = ""

    def version_string(self) -> str:
        return self.server.server_header or ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the RequestLog is the log

    def handle_one_request(self) -> None:
        try:
            self.command = ""
            self.path = ""
            self.headers = None  # type: ignore[assignment]
            self.request_version = "HTTP/1.1"
            self.raw_requestline = self.rfile.readline(65537)
            for _ in range(4):  # RFC 9112 2.2: ignore a few empty lines before the request line
                if self.raw_requestline not in (b"\r\n", b"\n"):
                    break
                self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414, "Request line too long")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            if self.request_version == "HTTP/0.9":
                self.request_version = "HTTP/1.0"
                self.send_error(400, "HTTP/0.9 requests are not supported")
                return
            self._serve()
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors as JSON (the stdlib would send an HTML page)."""
        description = message or _REASONS.get(code, "Bad request")
        self.close_connection = True
        response = json_response(int(code), {"error": "invalid_request", "error_description": description},
                                 close=True, endpoint="protocol", service=self.server.service)
        self._log(response, time.perf_counter(), self.server.clock(), HttpRequest(
            self.command or "", self.path or "", (self.path or "").partition("?")[0], "", []))
        self._write(response)

    # ---- one request -------------------------------------------------------------------------------
    def _serve(self) -> None:
        started = time.perf_counter()
        arrived = self.server.clock()
        target = self.path
        path, _, query = target.partition("?")
        query = query.partition("#")[0]
        headers = list(self.headers.items())
        request = HttpRequest(self.command, target, path, query, headers, b"",
                              self.client_address[0] if self.client_address else "", self.request_version)
        body_problem = self._read_body(request)
        if body_problem is not None:
            response = body_problem
        else:
            try:
                response = self.server.dispatcher(request)
            except Exception as exc:  # never let a bug kill the connection thread silently
                response = json_response(500, {"error": "unknown",
                                               "error_description": f"emulator bug: {type(exc).__name__}: {exc}"})
        # logged before answering, so a client that has its answer always finds it in the log
        self._log(response, started, arrived, request)
        self._perform(response)

    def _read_body(self, request: HttpRequest) -> HttpResponse | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # no chunked bodies: answer, then close
            return None
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return json_response(400, {"error": "invalid_request", "error_description": "bad Content-Length"},
                                 close=True, endpoint="protocol")
        if n > MAX_BODY:
            self.close_connection = True
            return json_response(413, {"error": "invalid_request", "error_description": "request body too large"},
                                 close=True, endpoint="protocol")
        request.body = self.rfile.read(n) if n else b""
        if len(request.body) < n:
            self.close_connection = True
        return None

    def _perform(self, response: HttpResponse) -> None:
        if response.action in ("hang", "drop"):
            if response.action == "hang":
                self.server.stopping.wait(max(0.0, response.hang_seconds))
            self._abort()
            return
        if response.action == "incomplete":
            self._write(response, body_limit=len(response.body) // 2)
            self._abort()
            return
        self._write(response)

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, response: HttpResponse, body_limit: int | None = None) -> None:
        if response.close:
            self.close_connection = True
        lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}"]
        if self.server.server_header:  # some hosts' endpoints send no Server header
            lines.append(f"Server: {self.server.server_header}")
        lines += [f"Date: {email.utils.formatdate(usegmt=True)}",
                  f"Content-Type: {response.content_type}",
                  f"Content-Length: {len(response.body)}",
                  f"{MARKER_HEADER}: 1"]
        lines += [f"{k}: {v}" for k, v in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        body = response.body if body_limit is None else response.body[:body_limit]
        if self.command == "HEAD":
            body = b""
        try:
            self.wfile.write(head + body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _log(self, response: HttpResponse, started: float, arrived: float, request: HttpRequest) -> None:
        log = self.server.request_log
        if not response.log or log is None:
            return
        from urllib.parse import parse_qs

        try:
            query = parse_qs(request.query, keep_blank_values=True)
        except ValueError:
            query = {}
        status = None if response.action in ("hang", "drop") else response.status
        log.add(RequestRecord(
            time=arrived, service=response.service, endpoint=response.endpoint, method=request.method,
            path=request.path, query=query, headers=redact_headers(request.headers), status=status,
            error=response.error, error_description=response.error_description, fault=response.fault,
            client=request.client, duration=time.perf_counter() - started, extra=dict(response.extra)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dispatcher: Dispatcher, *, server_header: str | None,
                 request_log: RequestLog | None, clock: Callable[[], float], service: str,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.dispatcher = dispatcher
        self.server_header = server_header
        self.request_log = request_log
        self.clock = clock
        self.service = service
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ssl.SSLError):
                return
        with self.connections_lock:
            self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that vanished mid-request is not our problem to print


class HttpServer:
    """A background-thread HTTP/1.1 server on ``host:port`` (0 = any free port).

    ``server_header`` is the ``Server`` header of every answer (None: no ``Server`` header); every
    answer also carries ``X-Mi-Notebook-Emulator: 1``. ``request_log`` receives one record per
    request whose response has ``log=True``; ``clock`` stamps records (epoch seconds).

    Example::

        >>> import http.client
        >>> log = RequestLog()
        >>> srv = HttpServer(lambda req: HttpResponse(404, b'{"error":"Not found"}'), server_header=None,
        ...                  request_log=log, clock=lambda: 0.0)
        >>> srv.start(); srv.running, srv.host
        (True, '127.0.0.1')
        >>> conn = http.client.HTTPConnection(srv.host, srv.port)
        >>> conn.request("GET", "/nope"); resp = conn.getresponse(); resp.status, resp.getheader("Server"), resp.read()
        (404, None, b'{"error":"Not found"}')
        >>> conn.close(); srv.stop(); srv.running, [(r.path, r.status) for r in log]
        (False, [('/nope', 404)])
    """

    def __init__(self, dispatcher: Dispatcher, *, host: str = "127.0.0.1", port: int = 0,
                 server_header: str | None = "mi-notebook-emulator", request_log: RequestLog | None = None,
                 clock: Callable[[], float] = time.time, service: str = "imds",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._args = dict(dispatcher=dispatcher, server_header=server_header, request_log=request_log,
                          clock=clock, service=service, ssl_context=ssl_context)
        self.host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def stopping(self) -> threading.Event:
        assert self._server is not None
        return self._server.stopping

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self._requested_port), **self._args)  # type: ignore[arg-type]
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"emulator-{self._args['service']}-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = None
        server.stopping.set()  # wakes hanging requests
        server.shutdown()
        with server.connections_lock:
            conns = list(server.connections)
        for conn in conns:  # ends idle keep-alive connections at once
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
