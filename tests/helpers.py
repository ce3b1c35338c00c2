"""Small loopback test seams: a virtual clock and raw-socket stub servers.

``VirtualClock`` and ``logged`` are the reliability package's (``bench/reliability/``), re-exported
here: one copy of each, shared by the tests and the report.

The emulator is the test substrate for the protocol; these stubs play the *other* things that can
answer on an address: a proxy that must receive nothing, a server that hangs, AWS's and GCP's
metadata services, a bare IMDS look-alike for the probe, a server recording request headers.

Example::

    >>> clock = VirtualClock()
    >>> clock.sleep(2.5); clock()
    2.5
    >>> with StubServer(canned(b"HTTP/1.1 204 No Content\\r\\nContent-Length: 0\\r\\n\\r\\n")) as stub:
    ...     import requests
    ...     requests.get(stub.url).status_code
    204
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from bench.reliability.records import logged  # noqa: F401 - re-exported: tests import it from here

# The tests' clock: it moves only when slept on (or when ``now`` is set). One instance can be shared
# by everything that tells time in a test: the client's ``clock`` and ``sleep``, a
# ``TokenCache(clock=...)``, the emulator's ``clock`` (start it at an epoch time then).
from mi_notebook.clock import VirtualClock  # noqa: F401 - re-exported: tests import it from here

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port with nothing listening on it (connecting is refused)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class StubServer:
    """A loopback TCP server calling ``handler(conn, request_bytes)`` for each connection.

    ``requests`` holds the raw request head of every connection that sent one. ``accept=False``
    listens but never accepts (the kernel completes the handshake; no answer ever comes).
    """

    def __init__(self, handler: Callable[[socket.socket, bytes], None] | None, *, accept: bool = True) -> None:
        self.handler = handler
        self.accept = accept
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> StubServer:
        if self.accept:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for conn in list(self._open):
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if data:
            self.requests.append(data)
        if self.handler is not None:
            with contextlib.suppress(OSError):
                self.handler(conn, data)
        if not self._stop.is_set():
            with contextlib.suppress(OSError):
                conn.close()


class JsonAnswerHandler(BaseHTTPRequestHandler):
    """An ``http.server`` handler answering each GET with ``answer()``'s ``(status, body)`` as JSON, quietly.

    Subclass it and define ``answer`` (``self.path`` and ``self.headers`` are the request's).

    Example::

        >>> from http.server import ThreadingHTTPServer
        >>> class Hello(JsonAnswerHandler):
        ...     def answer(self): return 200, b'{"hello": "world"}'
        >>> server = ThreadingHTTPServer((LOOPBACK, 0), Hello)
        >>> threading.Thread(target=server.serve_forever, daemon=True).start()
        >>> import requests
        >>> requests.get(f"http://{LOOPBACK}:{server.server_address[1]}/").json()
        {'hello': 'world'}
        >>> server.shutdown(); server.server_close()
    """

    def answer(self) -> tuple[int, bytes]:
        raise NotImplementedError

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status, body = self.answer()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def canned(response: bytes) -> Callable[[socket.socket, bytes], None]:
    """A handler that sends ``response`` as is."""

    def handler(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(response)

    return handler


def http_response(status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  reason: str = "Status") -> bytes:
    """Raw HTTP/1.1 response bytes (``Connection: close``)."""
    head = [f"HTTP/1.1 {status} {reason}"]
    for name, value in {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}.items():
        head.append(f"{name}: {value}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def hang(seconds: float = 3.0) -> Callable[[socket.socket, bytes], None]:
    """A handler that reads the request and answers nothing for ``seconds`` (or until shut down)."""

    def handler(conn: socket.socket, _request: bytes) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
            try:
                conn.getpeername()
            except OSError:
                return

    return handler


AWS_LIKE = http_response(
    404,
    b'<?xml version="1.0" encoding="iso-8859-1"?>\n<html><head><title>404 - Not Found</title></head>'
    b"<body><h1>404 - Not Found</h1></body></html>\n",
    {"Content-Type": "text/html", "Server": "EC2ws"},
    "Not Found",
)
GCP_LIKE = http_response(
    404,
    b"<!DOCTYPE html><html><body>404 page not found</body></html>",
    {"Content-Type": "text/html; charset=UTF-8", "Metadata-Flavor": "Google", "Server": "Metadata Server for VM"},
    "Not Found",
)
_NO_METADATA_HEADER = b'{"error":"invalid_request","error_description":"Required metadata header not specified"}'
_JSON = {"Content-Type": "application/json; charset=utf-8"}
IMDS_LIKE = http_response(400, _NO_METADATA_HEADER, {**_JSON, "Server": "IMDS/150.870.65.1684"}, "Bad Request")
IMDS_LIKE_NO_SERVER = http_response(400, _NO_METADATA_HEADER, _JSON, "Bad Request")
NGINX_404 = http_response(404, b"<html><body><h1>404 Not Found</h1></body></html>",
                          {"Content-Type": "text/html", "Server": "nginx"}, "Not Found")


def header_of(request: bytes, name: str) -> str | None:
    """The value of header ``name`` in a raw request head, or None."""
    for line in request.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None



# --- the command line, run in this process ----------------------------------------------------------------
#: a client id no emulator has
UNKNOWN_GUID = "11111111-2222-3333-4444-555555555555"
#: Python advice that a CLI message must not give (it speaks in flags and variables)
PYTHON_ADVICE = re.compile(r"mi\.connect\(|Identity\.user\(|request_token\(|identity='|mi_notebook\.")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``mi-notebook ARGV`` in this process, its output captured by pytest's ``capsys``: ``(exit code, stdout,
    stderr)``; a traceback in either fails the test."""
    from mi_notebook.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def cli_output(argv: list[str]) -> tuple[int, str]:
    """``mi-notebook ARGV`` in this process, without ``capsys`` (inside a longer test): ``(exit code,
    stdout + stderr)``, argparse's ``SystemExit`` read as its code."""
    from mi_notebook.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return int(code or 0), out.getvalue() + err.getvalue()
