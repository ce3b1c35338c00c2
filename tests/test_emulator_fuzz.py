"""Property-based: garbage methods, paths, queries, headers and bytes never crash the emulator, never get a
status IMDS would not send, always get a JSON error body, and the server keeps serving."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mi_notebook.emulator import Emulator

# 401/403: the locked control plane (/__emulator__/...) refuses a request without its token or with a foreign Host
ALLOWED = {200, 400, 401, 403, 404, 405, 413, 414, 429, 431, 505}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# anything that may appear in a request line except the separators (space, CR, LF)
TARGET_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\r\n ")
HEADER_VALUE_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\r\n")

methods = st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE",
                                     "CONNECT", "get", "Get"]),
                    st.text(TOKEN_CHARS, min_size=1, max_size=12))
paths = st.one_of(
    st.sampled_from(["/metadata/identity/oauth2/token", "/metadata/instance", "/metadata/instance/compute",
                     "/metadata/instance/compute/vmId", "/metadata/instance/network/interface/0/ipv4",
                     "/metadata/versions", "/metadata/identity/info", "/", "/__emulator__/nope", "*"]),
    st.text(TARGET_CHARS, max_size=60).map(lambda t: "/" + t.replace("?", "")),
)
query_parts = st.one_of(
    st.sampled_from(["api-version=2018-02-01", "api-version=2021-02-01", "resource=https://management.azure.com/",
                     "resource=https%3A%2F%2Fvault.azure.net", "format=text", "format=json", "client_id=x",
                     "object_id=", "msi_res_id=/subscriptions/x", "mi_res_id=%ZZ", "api-version", "&&", "=",
                     "resource=%00%ff", "api-version=2018-02-01&api-version=2018-02-01"]),
    st.text(TARGET_CHARS, max_size=40),
)
queries = st.lists(query_parts, max_size=5).map("&".join)
header_names = st.one_of(st.sampled_from(["Metadata", "metadata", "X-Forwarded-For", "Host", "Accept",
                                          "Authorization", "Content-Type", "Expect"]),
                         st.text(TOKEN_CHARS, min_size=1, max_size=20))
header_values = st.one_of(st.sampled_from(["true", "TRUE", "false", "", "1.2.3.4", "Bearer abc"]),
                          st.text(HEADER_VALUE_CHARS, max_size=40))
header_lists = st.lists(st.tuples(header_names, header_values), max_size=8).map(
    lambda hs: [(n, v) for n, v in hs if n.lower() not in ("content-length", "transfer-encoding", "expect")])
bodies = st.one_of(st.just(b""), st.binary(max_size=64))
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1.x",
                            "FOO"])


@pytest.fixture(scope="module")
def emu():
    with Emulator(throttle=False) as e:
        yield e


def _exchange(port: int, raw: bytes, method: str) -> tuple[int, dict[str, str], bytes] | None:
    """Send raw bytes, half-close, parse one answer (None when the server closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
        except http.client.RemoteDisconnected:
            return None
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def _check_answer(answer, method: str) -> None:
    assert answer is not None, "no answer to a complete request"
    status, headers, body = answer
    assert status in ALLOWED, (status, body)
    assert headers["server"].startswith("IMDS/")
    assert headers["content-length"] == str(len(body)) or method == "HEAD"
    if method == "HEAD":
        assert body == b""
        return
    if status == 200 and headers["content-type"].startswith("text/plain"):
        return
    assert headers["content-type"] == "application/json; charset=utf-8"
    payload = json.loads(body)
    if status != 200:
        assert isinstance(payload, dict) and "error" in payload


def _still_serving(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
                 headers={"Metadata": "true"})
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["token_type"] == "Bearer"
    conn.close()


@FUZZ
@given(method=methods, path=paths, query=queries, headers=header_lists, body=bodies, version=versions)
def test_garbage_requests_get_documented_answers(emu, method, path, query, headers, body, version):
    target = path + ("?" + query if query else "")
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    answer = _exchange(emu.port, raw, method)
    _check_answer(answer, method)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_break_the_server(emu, raw):
    answer = _exchange(emu.port, raw + b"\r\n\r\n", "GET")
    if answer is not None:  # e.g. blank lines only: nothing to answer
        status, headers, body = answer
        assert status in ALLOWED
        assert headers["content-type"].startswith(("application/json", "text/plain"))
        if status != 200:
            assert "error" in json.loads(body)


@FUZZ
@given(requests_=st.lists(st.tuples(methods, paths, queries, header_lists), min_size=1, max_size=4))
def test_keep_alive_sequences_stay_in_step(emu, requests_):
    """Several requests on one connection: each gets its own answer, in order."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        for method, path, query, headers in requests_:
            target = path + ("?" + query if query else "")
            try:
                conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value.encode("latin-1"))
                conn.endheaders()
            except (ValueError, http.client.InvalidURL, UnicodeEncodeError):
                conn.close()  # http.client refuses to send it: nothing to test
                conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
                continue
            resp = conn.getresponse()
            body = resp.read()
            _check_answer((resp.status, {k.lower(): v for k, v in resp.getheaders()}, body), method)
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    finally:
        conn.close()


def test_server_still_serves_after_the_fuzzing(emu):
    _still_serving(emu.port)
    assert not [r for r in emu.requests if r.status is not None and r.status not in ALLOWED]
