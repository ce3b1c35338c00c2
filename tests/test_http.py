"""http.exchange without sockets: every answer kind, Retry-After, redirects, truncation, proxies, redaction.

MockTransport plays the wire; the real transport's own decisions (proxies, redirects, trust_env) are
checked by handing it a session that records what it was asked to do and sends nothing.
"""

from __future__ import annotations

import email.utils
import json
import threading

import pytest
import requests

from mi_notebook import http
from mi_notebook.clock import VirtualClock
from mi_notebook.http import (
    Answer,
    ConnectTimeout,
    MockTransport,
    Request,
    RequestsTransport,
    TlsFailure,
    Truncated,
    UnexpectedAnswer,
    choose_transport,
    describe_failure,
    exchange,
    is_loopback_host,
    parse_retry_after,
    proxies_for,
    redact,
    timeout_pair,
)

URL = "http://127.0.0.1:9/metadata/identity/oauth2/token"
NOW = 1_800_000_000.0
JWT = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL3gifQ.c2lnbmF0dXJl"


def answer_to(result, *, clock=None, request=None):
    """Exchange one request with a transport answering ``result`` (a tuple or an exception)."""
    mock = MockTransport(lambda r: result)
    got = exchange(request or Request("GET", URL), transport=mock, clock=clock or VirtualClock(NOW))
    assert len(mock.requests) == 1
    return got


# --- every answer kind ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        (200, {"Content-Type": "application/json"}, b'{"access_token": "x"}', "json"),
        (200, {}, b"", "empty"),
        (503, {}, b"   \r\n", "empty"),
        (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>", "html"),
        (200, {}, b"<!DOCTYPE html><html></html>", "html"),
        (200, {"Content-Type": "text/html"}, b'{"looks": "like json"}', "html"),
        (500, {"Content-Type": "text/plain"}, b"upstream failure", "text"),
        (200, {}, b"[1, 2, 3]", "text"),
        (200, {}, b'{"access_token": "eyJ', "invalid-json"),
        (200, {}, b"[1, 2", "invalid-json"),
        (301, {"Location": "http://elsewhere/"}, b"", "redirect"),
        (307, {"Location": "http://elsewhere/"}, b'{"a": 1}', "redirect"),
    ],
)
def test_answer_kinds_with_a_status(status, headers, body, kind):
    got = answer_to((status, headers, body))
    assert (got.kind, got.status, got.answered) == (kind, status, True)
    assert got.body == body and got.exception is None
    assert (got.document is not None) == (kind == "json")


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (ConnectTimeout("no connection"), "connect-timeout"),
        (TimeoutError("read timed out"), "timeout"),
        (ConnectionRefusedError(111, "Connection refused"), "unreachable"),
        (ConnectionResetError(104, "Connection reset by peer"), "unreachable"),
        (OSError("Network is unreachable"), "unreachable"),
        (requests.ConnectionError("Connection aborted"), "unreachable"),
        (TlsFailure("certificate verify failed"), "tls"),
    ],
)
def test_answer_kinds_without_a_status(raised, kind):
    got = answer_to(raised)
    assert (got.kind, got.status, got.answered) == (kind, None, False)
    assert got.exception is raised and got.body == b""
    assert describe_failure(got)


def test_the_real_transports_translations_keep_the_librarys_exception():
    cause = requests.exceptions.ReadTimeout("read timed out")
    try:
        raise http.ReadTimeout(str(cause)) from cause
    except http.ReadTimeout as translated:
        got = answer_to(translated)
    assert got.kind == "timeout" and got.exception is cause


def test_a_bug_in_the_transport_is_raised_not_reported_as_a_network_failure():
    with pytest.raises(KeyError):
        answer_to(KeyError("a bug"))


def test_describe_failure_says_what_happened():
    assert describe_failure(Answer("unreachable", exception=ConnectionRefusedError("[Errno 111] Connection refused"))) \
        == "connection refused (nothing listens there)"
    assert describe_failure(Answer("unreachable", exception=ConnectionResetError("reset by peer"))) \
        == "the connection was reset"
    assert describe_failure(Answer("timeout")) == "no answer within the read time-out"
    assert describe_failure(Answer("timeout", 200)) == "the body did not arrive within the read time-out"
    assert describe_failure(Answer("connect-timeout")) == "no connection within the connect time-out"
    assert describe_failure(Answer("tls", exception=TlsFailure("bad cert"))).startswith("TLS verification failed")


# --- a body cut short ------------------------------------------------------------------------------
def test_truncated_body_keeps_its_status_and_headers():
    cut = Truncated(200, {"Content-Type": "application/json", "Retry-After": "2"}, b'{"access_token": "eyJ0',
                    ConnectionResetError("closed"))
    got = answer_to(cut)
    assert (got.kind, got.status, got.answered) == ("truncated", 200, True)
    assert got.body == b'{"access_token": "eyJ0' and got.retry_after == 2.0
    assert got.content_type == "application/json" and isinstance(got.exception, ConnectionResetError)
    assert "eyJ" not in got.snippet and "closed before the whole body" in describe_failure(got)


def test_body_that_stops_arriving_is_a_timeout_with_its_status():
    got = answer_to(Truncated(503, {}, b"partial", TimeoutError("read timed out"), timed_out=True))
    assert (got.kind, got.status) == ("timeout", 503)


# --- Retry-After ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-4", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_retry_after_seconds_dates_and_garbage(value, seconds):
    got = answer_to((429, {"retry-after": value}, b""))  # header names are case-insensitive
    assert got.retry_after == seconds
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_date_is_read_against_the_given_clock():
    header = {"Retry-After": email.utils.formatdate(NOW + 60, usegmt=True)}
    assert answer_to((503, header, b""), clock=VirtualClock(NOW + 45)).retry_after == 15.0


# --- redirects ------------------------------------------------------------------------------------
def test_a_redirect_is_an_answer_and_never_followed():
    seen = []

    def handler(request):
        seen.append(request.url)
        return 302, {"Location": "http://127.0.0.1:10/elsewhere"}, b""

    got = exchange(Request("GET", URL), transport=MockTransport(handler))
    assert got.kind == "redirect" and got.location == "http://127.0.0.1:10/elsewhere"
    assert seen == [URL]


class RecordingSession:
    """A stand-in requests.Session: records what the real transport asks for and sends nothing."""

    def __init__(self, answer: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.answer = answer or requests.ConnectionError("nothing is sent in this test")
        self.proxies = {"http": "http://proxy.invalid:3128", "all": "http://proxy.invalid:3128"}

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        raise self.answer


def test_the_real_transport_never_follows_redirects_and_bounds_time():
    session = RecordingSession()
    got = exchange(Request("GET", URL, timeout=(0.5, 3)), transport=RequestsTransport(session))
    assert got.kind == "unreachable"
    ((_, _, kwargs),) = session.calls
    assert kwargs["allow_redirects"] is False and kwargs["timeout"] == (0.5, 3.0) and kwargs["stream"] is True


def test_the_real_transports_own_session_ignores_the_environment():
    transport = RequestsTransport()
    try:
        assert transport.session.trust_env is False and transport.session.proxies == {}
        assert transport.session.cookies._policy.allowed_domains() == ()  # shared: keeps no cookies
    finally:
        transport.close()


# --- proxies --------------------------------------------------------------------------------------
@pytest.fixture
def proxy_env(monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    return "http://proxy.invalid:3128"


def test_proxies_bypassed_by_default_even_for_a_non_loopback_url(proxy_env):
    for url in ("http://169.254.169.254/metadata/identity/oauth2/token", "http://127.0.0.1:9/x"):
        chosen = proxies_for(Request("GET", url))
        assert chosen and set(chosen.values()) == {None}
        assert {"http", "https", "all"} <= set(chosen)


def test_environment_proxies_for_a_non_loopback_url_that_asks_for_them(proxy_env):
    chosen = proxies_for(Request("GET", "https://management.azure.com/subscriptions", proxies=True))
    assert chosen.get("https") == proxy_env and chosen.get("http") == proxy_env


def test_no_proxy_is_honoured_and_loopback_never_proxied(proxy_env, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "management.azure.com")
    assert not any(proxies_for(Request("GET", "https://management.azure.com/x", proxies=True)).values())
    assert set(proxies_for(Request("GET", "https://127.0.0.1:8443/x", proxies=True)).values()) == {None}
    assert set(proxies_for(Request("GET", "http://localhost:8443/x", proxies=True)).values()) == {None}


def test_the_real_transport_is_asked_to_use_exactly_those_proxies(proxy_env):
    session = RecordingSession()  # carries proxies of its own, as a caller's session might
    transport = RequestsTransport(session)
    exchange(Request("GET", "http://169.254.169.254/metadata/identity/oauth2/token"), transport=transport)
    exchange(Request("GET", "https://management.azure.com/subscriptions", proxies=True), transport=transport)
    (_, _, imds), (_, _, arm) = session.calls
    assert set(imds["proxies"].values()) == {None}  # nulls every key, so the session's own cannot apply
    assert arm["proxies"].get("https") == proxy_env


def test_a_set_proxy_variable_is_logged_once_when_bypassed(proxy_env, monkeypatch, caplog):
    monkeypatch.setattr(http._exchange, "_proxy_warned", threading.Event())
    with caplog.at_level("WARNING", logger="mi_notebook.http"):
        for _ in range(3):
            answer_to((200, {}, b"{}"))
        answer_to((200, {}, b"{}"), request=Request("GET", "https://127.0.0.1:1/", proxies=True))
    assert len([r for r in caplog.records if "ignored for" in r.getMessage()]) == 1


# --- requests, answers, redaction -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "GET", "url": "169.254.169.254/x"}, "http"),
        ({"method": "GET", "url": "ftp://127.0.0.1/x"}, "http"),
        ({"method": "DELETE", "url": URL}, "GET and POST"),
        ({"method": "GET", "url": URL, "timeout": 0}, "positive"),
        ({"method": "GET", "url": URL, "timeout": "fast"}, "seconds"),
        ({"method": "GET", "url": URL, "timeout": (1, True)}, "seconds"),
    ],
)
def test_bad_requests_are_value_errors_before_anything_is_sent(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Request(**kwargs)


def test_timeouts_and_params_are_normalised():
    request = Request("GET", URL, params=[("resource", "https://x/"), ("api-version", 1)], timeout=4)
    assert request.timeout == (4.0, 4.0) and request.params == (("resource", "https://x/"), ("api-version", "1"))
    assert timeout_pair([1, 2]) == (1.0, 2.0)


def test_secrets_never_in_reprs_or_snippets():
    request = Request("GET", URL, headers={"Authorization": f"Bearer {JWT}", "X-IDENTITY-HEADER": "s3cr3t"})
    got = Answer("json", 200, {}, json.dumps({"access_token": JWT}).encode())
    for text in (repr(request), repr(got), got.snippet, redact(f"token={JWT} and more")):
        assert JWT not in text and "s3cr3t" not in text and "c2lnbmF0dXJl" not in text
    assert got.document["access_token"] == JWT  # the caller can still parse it
    assert redact("x" * 500, limit=20) == "x" * 19 + "…"


def test_headers_are_case_insensitive_and_the_emulator_mark_is_seen():
    got = answer_to((200, {"x-mi-notebook-emulator": "1", "X-MS-REQUEST-ID": "r-1", "server": "IMDS/1"}, b"{}"))
    assert got.from_emulator and got.request_id == "r-1" and got.server == "IMDS/1"
    assert not answer_to((200, {}, b"{}")).from_emulator


def test_mock_transport_encodes_dicts_and_text():
    assert answer_to((200, {}, {"a": 1})).document == {"a": 1}
    assert answer_to((200, None, "plain")).kind == "text"


def test_choose_transport():
    mock = MockTransport(lambda r: (200, {}, b""))
    assert choose_transport(mock) is mock and choose_transport() is None
    session = requests.Session()
    wrapped = choose_transport(session=session)
    assert isinstance(wrapped, RequestsTransport) and wrapped.session is session
    wrapped.close()  # a caller's session is theirs: not closed by the transport
    with pytest.raises(ValueError, match="not both"):
        choose_transport(mock, session)
    with pytest.raises(ValueError, match="callable"):
        choose_transport("http://127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="requests.Session"):
        choose_transport(session=object())
    session.close()


def test_unexpected_answer_and_loopback_hosts():
    assert UnexpectedAnswer("HTTP 200 with an HTML page", problem="an HTML page").problem == "an HTML page"
    assert [is_loopback_host(h) for h in ("localhost", "127.1.2.3", "[::1]", "169.254.169.254", "127.x")] == \
        [True, True, True, False, False]
