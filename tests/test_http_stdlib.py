"""The standard library's wire (StdlibTransport) against loopback stub servers: what it sends, how it
reads chunked, cut, slow, reset and oversized bodies, connection refused and connect time-outs,
redirects not followed, header names, and connection reuse (a kept connection the server closed is
replaced; a request already written is never sent again).

No test waits on a wall-clock deadline the machine could miss: a time-out test uses a server that never
answers (until the test ends) and asserts only on the kind of failure.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import LOOPBACK, StubServer, canned, free_port, header_of, http_response

from mi_notebook.http import (
    MAX_BODY,
    Answer,
    BadResponse,
    ConnectTimeout,
    ReadTimeout,
    Request,
    StdlibTransport,
    default_transport,
    exchange,
)

SHORT = (5.0, 0.3)  # read time-outs only ever fire against servers that never answer


@pytest.fixture
def transport() -> Iterator[StdlibTransport]:
    wire = StdlibTransport()
    yield wire
    wire.close()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set when the test ends: servers that hold a connection wait on it (never on a clock)."""
    done = threading.Event()
    yield done
    done.set()


@contextlib.contextmanager
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A loopback port that listens and never accepts: ``untouched(sock)`` says whether anyone connected."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(4)
        sock.setblocking(False)
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}", sock


def untouched(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def get(transport: StdlibTransport, url: str, **kwargs: object) -> Answer:
    return exchange(Request("GET", url, **kwargs), transport=transport)


def read_request(conn: socket.socket) -> bytes:
    """One more request head from a kept connection (b"" when the client closed it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def keep_alive(body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# --- what is sent ----------------------------------------------------------------------------------
def test_the_request_line_params_headers_and_form_body(transport):
    with StubServer(canned(http_response(200, b"{}"))) as stub:
        got = exchange(Request("GET", f"{stub.url}/metadata/identity/oauth2/token?api-version=2018-02-01",
                               params=[("resource", "https://management.azure.com/"), ("client_id", "a b")],
                               headers={"Metadata": "true"}), transport=transport)
    assert got.kind == "json"
    (head,) = stub.requests
    assert head.startswith(b"GET /metadata/identity/oauth2/token?api-version=2018-02-01"
                           b"&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=a+b HTTP/1.1\r\n")
    assert header_of(head, "Metadata") == "true" and header_of(head, "User-Agent") == "mi-notebook"
    assert header_of(head, "Host") == f"{LOOPBACK}:{stub.port}"

    bodies: list[bytes] = []

    def form(conn: socket.socket, request: bytes) -> None:
        length = int(header_of(request, "Content-Length") or 0)
        body = request.partition(b"\r\n\r\n")[2]
        while len(body) < length:
            body += conn.recv(65536)
        bodies.append(body)
        conn.sendall(http_response(200, b"{}"))

    with StubServer(form) as stub:
        exchange(Request("POST", f"{stub.url}/oauth2/token", data={"resource": "https://x/", "a": "1&2"}),
                 transport=transport)
    assert bodies == [b"resource=https%3A%2F%2Fx%2F&a=1%262"]
    assert header_of(stub.requests[0], "Content-Type") == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("headers", [{"X-IDENTITY-HEADER": "s3cr3t\r\nInjected: 1"}, {"secret": "s3cr3t\x00"},
                                     {"secret": "s3cr3t\u20ac"}, {"Bad Name": "s3cr3t"}])
def test_a_malformed_header_is_refused_before_sending_without_its_value(transport, headers):
    with listener() as (url, sock):
        with pytest.raises(ValueError, match="value not shown") as caught:
            transport(Request("GET", url, headers=headers))
        assert untouched(sock)
    assert "s3cr3t" not in str(caught.value)


def test_only_plain_http(transport):
    with pytest.raises(ValueError, match="plain http"):
        transport(Request("GET", "https://127.0.0.1:1/"))


def test_environment_proxies_are_never_used(transport, monkeypatch):
    with listener() as (proxy, sock), StubServer(canned(http_response(200, b'{"direct": true}'))) as target:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        got = exchange(Request("GET", f"{target.url}/x"))  # the process-wide transport picks this wire
        assert got.document == {"direct": True} and untouched(sock)


# --- bodies ----------------------------------------------------------------------------------------
def test_a_chunked_body_is_decoded(transport):
    chunks = [b'{"access_token": ', b'"abc", ', b'"expires_in": "3599"}']
    wire = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    with StubServer(canned(head + wire)) as stub:
        got = get(transport, stub.url)
    assert (got.kind, got.status, got.body) == ("json", 200, b"".join(chunks))


def test_a_chunked_body_cut_short_is_truncated_with_its_status(transport):
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with StubServer(canned(head + b"10\r\n{\"access_tok")) as stub:  # a 16-byte chunk, 12 sent, then closed
        got = get(transport, stub.url)
    assert (got.kind, got.status) == ("truncated", 200)
    assert isinstance(got.exception, http.client.IncompleteRead)


def test_a_body_shorter_than_its_content_length_is_truncated_with_its_status(transport):
    body = b'{"access_token": "eyJ0eXAi'
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\nContent-Type: application/json\r\n\r\n" + body
    with StubServer(canned(cut)) as stub:
        got = get(transport, stub.url)
    assert (got.kind, got.status, got.body, got.content_type) == ("truncated", 200, body, "application/json")
    assert isinstance(got.exception, http.client.IncompleteRead)


def test_a_reset_mid_body_is_truncated_with_its_status(transport):
    def reset(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 400\r\n\r\n{\"error\": ")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        conn.close()

    with StubServer(reset) as stub:
        got = get(transport, stub.url)
    assert (got.kind, got.status) == ("truncated", 503)
    assert isinstance(got.exception, ConnectionResetError)


def test_a_body_that_stops_arriving_is_a_read_timeout_with_its_status(transport, release):
    def slow(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n{\"acc")
        release.wait(60)

    with StubServer(slow) as stub:
        got = get(transport, stub.url, timeout=SHORT)
        release.set()
    assert (got.kind, got.status, got.body) == ("timeout", 200, b'{"acc')


def test_a_body_over_max_body_is_cut_there(transport):
    big = b"x" * (MAX_BODY + 50_000)
    with StubServer(canned(http_response(200, big, {"Content-Type": "text/plain"}))) as stub:
        got = get(transport, stub.url)
    assert (got.kind, got.status, len(got.body)) == ("text", 200, MAX_BODY)


# --- no answer -------------------------------------------------------------------------------------
def test_connection_refused_is_unreachable(transport):
    got = get(transport, f"http://{LOOPBACK}:{free_port()}/")
    assert (got.kind, got.status) == ("unreachable", None)
    assert isinstance(got.exception, ConnectionRefusedError)


def test_no_status_within_the_read_timeout(transport, release):
    with StubServer(lambda conn, request: release.wait(60)) as stub:
        got = get(transport, stub.url, timeout=SHORT)
        release.set()
    assert (got.kind, got.status) == ("timeout", None)
    assert isinstance(got.exception, ReadTimeout) and "read time-out" in str(got.exception)


def test_no_connection_within_the_connect_timeout(transport):
    """A listener whose accept queue is full: the kernel drops further handshakes (Linux), so a connect
    waits out its time-out. Skipped where the kernel refuses instead."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # fill the queue until a connect stalls
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((LOOPBACK, port))
            fillers.append(s)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect((LOOPBACK, port))
        except TimeoutError:
            pass
        else:
            pytest.skip("this kernel completes handshakes past a full accept queue")
        finally:
            probe.close()
        got = get(transport, f"http://{LOOPBACK}:{port}/", timeout=(0.3, 5.0))
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert (got.kind, got.status) == ("connect-timeout", None)
    assert isinstance(got.exception, ConnectTimeout)


def test_closed_without_an_answer_is_unreachable(transport):
    with StubServer(lambda conn, request: None) as stub:  # reads the request, closes
        got = get(transport, stub.url)
    assert (got.kind, got.status) == ("unreachable", None)
    assert isinstance(got.exception, http.client.RemoteDisconnected)


def test_an_answer_that_is_not_http_is_unreachable(transport):
    with StubServer(canned(b"SSH-2.0-OpenSSH_9.6\r\n")) as stub:
        got = get(transport, stub.url)
    assert (got.kind, got.status) == ("unreachable", None)
    assert isinstance(got.exception, BadResponse) and "not HTTP" in str(got.exception)


# --- redirects, headers ----------------------------------------------------------------------------
def test_a_redirect_is_answered_not_followed(transport):
    with listener() as (elsewhere, sock), \
            StubServer(canned(http_response(302, b"", {"Location": f"{elsewhere}/x"}, "Found"))) as stub:
        got = get(transport, stub.url)
        assert untouched(sock)
    assert (got.kind, got.status, got.location) == ("redirect", 302, f"{elsewhere}/x")


def test_header_names_are_case_insensitive_and_repeats_joined(transport):
    raw = (b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 3\r\n"
           b"X-Ms-Request-Id: r-1\r\nWarning: a\r\nwarning: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    with StubServer(canned(raw)) as stub:
        status, headers, body = transport(Request("GET", stub.url))
        got = get(transport, stub.url)
    assert (status, body) == (429, b"{}")
    assert headers["Content-Type"] == headers["CONTENT-TYPE"] == "application/json"
    assert "X-MS-REQUEST-ID" in headers and headers["warning"] == "a, b"
    assert (got.kind, got.retry_after, got.request_id, got.content_type) == ("json", 3.0, "r-1", "application/json")


# --- connection reuse ------------------------------------------------------------------------------
def serve_keep_alive(answers: int, after: Callable[[socket.socket], None] | None = None):
    """A handler answering ``answers`` requests on one connection, then calling ``after(conn)``."""

    def handler(conn: socket.socket, request: bytes) -> None:
        for n in range(answers):
            if n:
                request = read_request(conn)
                if not request:
                    return
            conn.sendall(keep_alive(b'{"n": %d}' % n))
        if after is not None:
            after(conn)

    return handler


def test_a_kept_connection_is_reused(transport):
    with StubServer(serve_keep_alive(3)) as stub:
        answers = [get(transport, stub.url).document for _ in range(3)]
    assert answers == [{"n": 0}, {"n": 1}, {"n": 2}] and stub.connections == 1


def test_a_kept_connection_the_server_closed_is_replaced_before_sending(transport):
    closed = threading.Event()

    def close_then_tell(conn: socket.socket) -> None:
        conn.close()
        closed.set()

    with StubServer(serve_keep_alive(1, close_then_tell)) as stub:
        first = get(transport, stub.url)
        assert closed.wait(30)
        ((kept,),) = transport._idle.values()
        assert select.select([kept.sock], [], [], 30)[0]  # the server's end-of-file has arrived
        second = get(transport, stub.url)
    assert (first.kind, second.kind, second.document) == ("json", "json", {"n": 0})
    assert stub.connections == 2 and len(stub.requests) == 2


def test_a_request_already_written_is_never_sent_again(transport):
    """The kept connection takes the second request, then dies without an answer: that is the answer
    (unreachable); the transport does not silently send the (token) request a second time."""
    seen: list[bytes] = []

    def read_then_close(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        conn.close()

    with StubServer(serve_keep_alive(1, read_then_close)) as stub:
        first = get(transport, stub.url)
        second = get(transport, stub.url)
    assert (first.kind, second.kind, second.status) == ("json", "unreachable", None)
    assert len(seen) == 1 and seen[0].startswith(b"GET / HTTP/1.1")
    assert stub.connections == 1  # no second connection: nothing was resent


def test_kept_connections_are_bounded_per_host_and_in_hosts():
    wire = StdlibTransport(max_idle=1, max_hosts=1)
    released = threading.Event()

    def until_released(conn: socket.socket, request: bytes) -> None:
        conn.sendall(keep_alive(b"{}"))
        if not read_request(conn):  # the client closed its kept connection
            released.set()

    try:
        with StubServer(until_released) as first, StubServer(serve_keep_alive(1)) as second:
            get(wire, first.url)
            assert list(wire._idle) == [(LOOPBACK, first.port)]
            get(wire, second.url)  # a second host: the first one's connection is closed
            assert released.wait(30) and list(wire._idle) == [(LOOPBACK, second.port)]
    finally:
        wire.close()


def test_connection_close_answers_are_not_kept(transport):
    with StubServer(canned(http_response(200, b"{}"))) as stub:  # http_response says Connection: close
        get(transport, stub.url)
        get(transport, stub.url)
    assert stub.connections == 2 and not any(transport._idle.values())


class _EchoPath(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b'{"path": "%s"}' % self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_threads_share_the_transport_safely():
    server = ThreadingHTTPServer((LOOPBACK, 0), _EchoPath)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://{LOOPBACK}:{server.server_address[1]}"
    wire = StdlibTransport(max_idle=2)
    results: list[object] = []
    barrier = threading.Barrier(6)

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(5):
            results.append(get(wire, f"{url}/{i}/{j}").document == {"path": f"/{i}/{j}"})

    try:
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(60)
        assert results == [True] * 30  # each thread got its own answers: no connection was shared mid-exchange
        assert sum(map(len, wire._idle.values())) <= 2  # no more kept than max_idle
    finally:
        wire.close()
        server.shutdown()
        server.server_close()


def test_the_default_transport_picks_the_wire_per_request():
    wire = default_transport()
    assert wire.transport_for(Request("GET", "http://169.254.169.254/metadata/instance")) is wire.stdlib
    assert wire.transport_for(Request("GET", "http://127.0.0.1:8080/x", proxies=True)) is wire.stdlib
    assert wire.transport_for(Request("GET", "https://127.0.0.1:8443/x")) is wire.requests
    assert wire.transport_for(Request("GET", "http://management.example/x", proxies=True)) is wire.requests
