"""ImdsClient against the emulator: the wire format, parsing, and every error class (virtual time)."""

from __future__ import annotations

import logging
import threading

import pytest
from helpers import StubServer, canned, free_port, http_response, logged

from mi_notebook import errors
from mi_notebook import http as http_module
from mi_notebook.clock import Clock
from mi_notebook.http import Answer
from mi_notebook.identity import Identity
from mi_notebook.retry import AttemptOutcome, RetryPolicy
from mi_notebook.sources.imds import TOKEN_PATH, ImdsClient

ARM = "https://management.azure.com/"
UNKNOWN_GUID = "11111111-2222-3333-4444-555555555555"


def token_requests(emu, n=0):
    return logged(emu, n)


# --- the wire format --------------------------------------------------------------------------------
def test_system_request_is_exactly_the_documented_one(transport_emu, make_imds_client):
    token = make_imds_client().request_token("arm")

    (record,) = token_requests(transport_emu, 1)
    assert record.method == "GET"
    assert record.path == TOKEN_PATH
    assert record.query == {"api-version": ["2018-02-01"], "resource": [ARM]}
    assert record.headers.get("Metadata") == "true"
    assert not any(name.lower() == "x-forwarded-for" for name in record.headers)
    assert record.status == 200
    assert token.resource == ARM and token.identity == Identity.system()
    assert token.emulated and token.host == "vm" and token.endpoint == transport_emu.imds_url
    assert len(token.timeline) == 1 and token.timeline[0].outcome == "success"


@pytest.mark.parametrize("selector", ["client_id", "object_id", "resource_id"])
def test_user_assigned_selectors_use_the_documented_parameter(transport_emu, make_imds_client, selector):
    vm_identity = transport_emu.vm.user_identities[0]
    value = getattr(vm_identity, selector)
    token = make_imds_client().request_token("vault", Identity.user(**{selector: value}))

    (record,) = token_requests(transport_emu, 1)
    wire_name = {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"}[selector]
    assert record.query == {"api-version": ["2018-02-01"], "resource": ["https://vault.azure.net"],
                            wire_name: [value]}
    assert token.client_id == vm_identity.client_id
    claims = transport_emu.verify(token.reveal())
    assert claims["oid"] == vm_identity.principal_id


def test_expiry_comes_from_expires_on_not_expires_in(transport_emu, make_imds_client):
    token = make_imds_client().request_token("arm")
    claims = transport_emu.verify(token.reveal())
    assert token.expires_on == claims["exp"]
    assert token.not_before == claims["nbf"]
    assert token.expires_in is not None


def test_api_version_is_configurable(transport_emu, make_imds_client):
    make_imds_client(api_version="2019-08-01").request_token("arm")
    assert token_requests(transport_emu, 1)[0].query["api-version"] == ["2019-08-01"]


def test_each_attempt_carries_a_client_request_id(transport_emu, make_imds_client):
    transport_emu.inject(503, "token")
    token = make_imds_client().request_token("arm")
    ids = [r.headers.get("x-ms-client-request-id") for r in token_requests(transport_emu, 2)]
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]
    assert [a.request_id for a in token.timeline] == ids


@pytest.mark.parametrize(
    ("resource", "identity", "match"),
    [
        ("no-such-alias", None, "unknown resource alias"),
        ("", None, "empty"),
        ("arm", 42, "identity must be"),
        ("arm", "client_id=not-a-guid", "GUID|guid"),
        ("https://a.example/ https://b.example/", None, "one resource at a time"),
    ],
)
def test_bad_input_is_a_value_error_before_any_request(transport_emu, make_imds_client, resource, identity,
                                                       match):
    with pytest.raises(ValueError, match=match):
        make_imds_client().request_token(resource, identity)
    assert transport_emu.requests.filter(endpoint="token") == []


@pytest.mark.parametrize(
    "kwargs",
    [{"url": "169.254.169.254"}, {"url": "ftp://x"}, {"url": "http://h/?q=1"}, {"timeout": 0},
     {"timeout": (1, -1)}, {"timeout": "fast"}, {"api_version": ""}],
)
def test_bad_client_configuration_is_a_value_error(kwargs):
    kw = {"url": "http://127.0.0.1:9", **kwargs}
    with pytest.raises(ValueError):
        ImdsClient(**kw)


def test_repr_and_url_handling():
    client = ImdsClient(url="http://127.0.0.1:9/", timeout=3)
    assert client.token_url == "http://127.0.0.1:9" + TOKEN_PATH
    assert client.timeout == (3.0, 3.0)
    assert "127.0.0.1:9" in repr(client) and "timeout=(3, 3)" in repr(client)


# --- error classes -------------------------------------------------------------------------------------
def test_identity_not_found(transport_emu, make_imds_client):
    with pytest.raises(errors.IdentityNotFoundError) as info:
        make_imds_client().request_token("arm", Identity.user(client_id=UNKNOWN_GUID))
    err = info.value
    assert err.status == 400 and err.error == "invalid_request"
    assert err.error_description == "Identity not found"
    assert len(err.timeline) == 1  # a design-time error: not retried
    assert err.request_id and err.endpoint == transport_emu.imds_url
    assert UNKNOWN_GUID in str(err) and "What to do" in str(err)
    assert "no response" not in str(err).lower()


def test_multiple_identities():
    from mi_notebook.emulator import Emulator

    with Emulator(throttle=False, system_assigned=False, user_assigned=2) as emu:
        client = ImdsClient(url=emu.imds_url, clock=Clock(sleep=lambda s: None))
        with pytest.raises(errors.MultipleIdentitiesError) as info:
            client.request_token("arm")
        assert info.value.status == 400
        assert "Multiple user assigned identities" in info.value.error_description
        assert len(info.value.timeline) == 1
        # naming one of them works
        client_id = emu.vm.user_identities[1].client_id
        assert client.request_token("arm", Identity.user(client_id=client_id)).client_id == client_id
        client.close()


def test_invalid_resource(transport_emu, make_imds_client):
    with pytest.raises(errors.InvalidResourceError) as info:
        make_imds_client().request_token("https://nothing-here.example.com/")
    err = info.value
    assert err.status == 400 and err.error == "invalid_resource"
    assert "AADSTS" in err.error_description
    assert "https://nothing-here.example.com/" in err.message
    assert isinstance(err, ValueError)


def test_throttled_after_retries_honours_retry_after(transport_emu, make_imds_client, virtual_clock):
    transport_emu.inject(429, "token", count=None, retry_after=3)
    with pytest.raises(errors.ThrottledError) as info:
        make_imds_client().request_token("arm")
    err = info.value
    assert err.status == 429 and len(err.timeline) == 5
    assert virtual_clock.slept == [3.0, 3.0, 3.0, 3.0]
    assert [a.wait_reason for a in err.timeline][:4] == ["retry-after"] * 4


@pytest.mark.parametrize("status", [404, 410])
def test_updating(transport_emu, make_imds_client, virtual_clock, status):
    transport_emu.inject(status, "token", count=None)
    with pytest.raises(errors.ImdsUpdatingError) as info:
        make_imds_client().request_token("arm")
    err = info.value
    assert err.status == status and err.error_description
    if status == 410:
        assert err.timeline.total >= 70.0  # the documented 410 rule
    else:
        assert len(err.timeline) == 5


def test_server_error(transport_emu, make_imds_client):
    transport_emu.inject(500, "token", count=None)
    with pytest.raises(errors.ServerError) as info:
        make_imds_client().request_token("arm")
    assert info.value.status == 500 and info.value.error == "unknown"
    assert len(token_requests(transport_emu, 5)) == 5


def test_hang_past_the_read_timeout_is_a_timeout(transport_emu, make_imds_client):
    transport_emu.inject("hang", "token", count=None, seconds=2)
    client = make_imds_client(timeout=(1.0, 0.1), retry=RetryPolicy(max_attempts=2))
    with pytest.raises(errors.ImdsTimeoutError) as info:
        client.request_token("arm")
    err = info.value
    assert isinstance(err, TimeoutError) and isinstance(err, ConnectionError)
    assert err.status is None and len(err.timeline) == 2
    assert "0.1 s read time-out" in err.message
    assert all(a.exception and a.exception.startswith("ReadTimeout") for a in err.timeline)


def test_refused_is_unreachable(make_imds_client):
    client = make_imds_client(url=f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(max_attempts=2))
    with pytest.raises(errors.EndpointUnreachableError) as info:
        client.request_token("arm")
    assert not isinstance(info.value, errors.ImdsTimeoutError)
    assert "refused" in info.value.message and info.value.status is None


def test_dropped_connection_is_retried_then_unreachable(transport_emu, make_imds_client):
    transport_emu.inject("drop", "token", count=None)
    with pytest.raises(errors.EndpointUnreachableError) as info:
        make_imds_client().request_token("arm")
    assert len(info.value.timeline) == 5
    assert "closed before any answer" in info.value.message


@pytest.mark.parametrize(
    ("fault", "options", "fragment"),
    [
        ("html", {}, "HTML page"),
        ("html", {"status": 502}, "HTML page"),
        ("truncated", {"variant": "short"}, "malformed or truncated JSON"),
        ("bad-expires", {"variant": "missing"}, "no expires_on"),
        ("bad-expires", {"variant": "string"}, "expires_on is not epoch seconds"),
    ],
)
def test_answers_that_are_not_imds_are_unexpected_and_not_retried(
    transport_emu, make_imds_client, fault, options, fragment
):
    transport_emu.inject(fault, "token", count=None, **options)
    with pytest.raises(errors.UnexpectedResponseError) as info:
        make_imds_client().request_token("arm")
    err = info.value
    assert len(err.timeline) == 1 and len(token_requests(transport_emu, 1)) == 1
    assert err.status == options.get("status", 200)
    assert fragment in err.message
    assert "no response" not in str(err).lower()


def test_body_cut_short_in_transit_is_retried_and_keeps_the_status(transport_emu, make_imds_client):
    transport_emu.inject("truncated", "token", count=None, variant="incomplete")
    with pytest.raises(errors.UnexpectedResponseError) as info:
        make_imds_client().request_token("arm")
    err = info.value
    assert len(err.timeline) == 5 and err.status == 200
    assert "closed before the whole body arrived" in err.message
    assert [a.status for a in err.timeline] == [200] * 5


def test_redirects_are_never_followed():
    with StubServer(canned(http_response(200, b"{}"))) as target:
        location = target.url + TOKEN_PATH
        redirect = http_response(302, b"", {"Location": location}, "Found")
        with StubServer(canned(redirect)) as stub:
            client = ImdsClient(url=stub.url, clock=Clock(sleep=lambda s: None))
            with pytest.raises(errors.UnexpectedResponseError) as info:
                client.request_token("arm")
            client.close()
    assert info.value.status == 302 and location in info.value.message
    assert len(info.value.timeline) == 1 and len(stub.requests) == 1
    assert target.requests == [] and target.connections == 0


def test_descriptions_are_only_a_hint(make_imds_client):
    """A reworded description falls back to BadRequestError; the code decides invalid_resource."""
    body = b'{"error":"invalid_request","error_description":"Something new and unexpected"}'
    with StubServer(canned(http_response(400, body, {"Content-Type": "application/json"}))) as stub, \
            pytest.raises(errors.BadRequestError) as info:
        make_imds_client(url=stub.url).request_token("arm")
    assert type(info.value) is errors.BadRequestError
    assert info.value.error_description == "Something new and unexpected"
    body = b'{"error":"invalid_resource","error_description":"reworded"}'
    with StubServer(canned(http_response(400, body, {"Content-Type": "application/json"}))) as stub, \
            pytest.raises(errors.InvalidResourceError):
        make_imds_client(url=stub.url).request_token("arm")


def test_other_4xx_is_bad_request_with_the_response_request_id(make_imds_client):
    body = b'{"error":"invalid_request","error_description":"Method not allowed"}'
    headers = {"Content-Type": "application/json", "x-ms-request-id": "server-side-id"}
    with StubServer(canned(http_response(405, body, headers))) as stub, pytest.raises(errors.BadRequestError) as info:
        make_imds_client(url=stub.url).request_token("arm")
    assert info.value.status == 405 and info.value.request_id == "server-side-id"
    assert len(info.value.timeline) == 1


def test_foreign_404_html_is_not_mistaken_for_updating(make_imds_client):
    page = b"<html><body><h1>404 - Not Found</h1></body></html>"
    headers = {"Content-Type": "text/html", "Server": "EC2ws"}
    with StubServer(canned(http_response(404, page, headers))) as stub, \
            pytest.raises(errors.UnexpectedResponseError) as info:
        make_imds_client(url=stub.url).request_token("arm")
    assert len(info.value.timeline) == 1 and "EC2ws" in info.value.message


def test_classify_failure_directly():
    err = ImdsClient(url="http://127.0.0.1:1")._failure(
        AttemptOutcome(status=400, error="invalid_request", error_description="Identity not found"),
        Answer("json", 400), None, None, Identity.user(client_id=UNKNOWN_GUID),
    )
    assert isinstance(err, errors.IdentityNotFoundError) and err.timeline is None


def test_the_old_module_still_imports_with_a_deprecation_warning():
    import importlib
    import sys

    sys.modules.pop("mi_notebook.imds", None)
    with pytest.warns(DeprecationWarning, match="mi_notebook.imds is deprecated"):
        old = importlib.import_module("mi_notebook.imds")
    import mi_notebook as mi
    from mi_notebook.sources import ImdsClient as from_sources

    assert old.ImdsClient is ImdsClient is from_sources is mi.ImdsClient
    assert (old.IMDS_URL, old.TOKEN_PATH, old.DEFAULT_TIMEOUT) == ("http://169.254.169.254", TOKEN_PATH, (2.0, 10.0))
    err = old.classify_failure(AttemptOutcome(status=410), Answer("empty", 410), None, endpoint="http://127.0.0.1:1")
    assert isinstance(err, errors.ImdsUpdatingError)


def test_the_url_is_checked_like_every_host_endpoint():
    """User info reads like loopback and goes elsewhere: refused, as for every host's endpoint."""
    for url in ("http://127.0.0.1:1@192.0.2.9", "http://user:pw@127.0.0.1:9", "http://127.0.0.1:9/#x"):
        with pytest.raises(errors.HostConfigurationError, match="user info|fragment"):
            ImdsClient(url=url)


# --- progress, proxies ----------------------------------------------------------------------------------
def test_on_attempt_reports_every_attempt(transport_emu, make_imds_client):
    transport_emu.inject(503, "token", count=2)
    seen = []
    token = make_imds_client(retry=RetryPolicy(jitter=0)).request_token(
        "arm", on_attempt=lambda attempt, wait, most: seen.append((attempt.number, attempt.status, wait, most))
    )
    assert seen == [(1, 503, 2.0, 5), (2, 503, 6.0, 5), (3, 200, None, 5)]
    assert token.timeline.summary().endswith("503, 503, 200")


def test_proxies_in_the_environment_are_bypassed(transport_emu, monkeypatch, caplog):
    proxy_answer = http_response(502, b"proxy!", {"Content-Type": "text/plain"})
    with StubServer(canned(proxy_answer)) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setattr(http_module._exchange, "_proxy_warned", threading.Event())
        with caplog.at_level(logging.WARNING, logger="mi_notebook.http"):
            client = ImdsClient(url=transport_emu.imds_url, clock=Clock(sleep=lambda s: None))
            client.request_token("arm")
            client.request_token("vault")
            # a caller's session that trusts the environment and has its own proxies is bypassed too
            import requests

            session = requests.Session()
            session.proxies = {"http": proxy.url, "all": proxy.url}
            ImdsClient(url=transport_emu.imds_url, session=session).request_token("storage")
            session.close()
            client.close()
        assert proxy.connections == 0 and proxy.requests == []
    assert len(token_requests(transport_emu, 3)) == 3
    warnings = [r for r in caplog.records if "ignored for" in r.getMessage()]
    assert len(warnings) == 1 and "HTTP_PROXY" in warnings[0].getMessage()


def test_the_token_never_appears_in_errors_or_reprs(transport_emu, make_imds_client):
    client = make_imds_client()
    token = client.request_token("arm")
    secret = token.reveal()
    transport_emu.inject("bad-expires", "token", variant="string")
    with pytest.raises(errors.UnexpectedResponseError) as info:
        client.request_token("arm")
    for text in (repr(token), str(token), str(info.value), repr(info.value), repr(client),
                 token.timeline.summary(), str(info.value.to_dict())):
        assert secret not in text
        assert secret.split(".")[2] not in text


@pytest.mark.parametrize("variant", ["short", "incomplete"])
def test_a_cut_off_token_answer_leaks_no_token_fragment(transport_emu, make_imds_client, variant):
    transport_emu.inject("truncated", "token", count=None, variant=variant)
    with pytest.raises(errors.UnexpectedResponseError) as info:
        make_imds_client().request_token("arm")
    err = info.value
    everything = " ".join([str(err), repr(err), str(err.to_dict()), err.timeline.summary(),
                           *(str(a.to_dict()) for a in err.timeline)])
    assert "eyJ" not in everything


# --- answer parsing without sockets (MockTransport) ------------------------------------------------------
NOW = 1_800_000_000
BODY = {"access_token": "header.payload.signature", "expires_on": str(NOW + 86400), "expires_in": "86400",
        "not_before": str(NOW - 300), "resource": ARM, "token_type": "Bearer"}


def mocked(*answers, **kw):
    """An ImdsClient in virtual time whose wire answers ``answers`` in turn (the last one repeats)."""
    from mi_notebook.clock import VirtualClock
    from mi_notebook.http import MockTransport

    queue = list(answers)
    transport = MockTransport(lambda request: queue.pop(0) if len(queue) > 1 else queue[0])
    kw.setdefault("clock", VirtualClock(NOW))
    return ImdsClient(url="http://127.0.0.1:9", transport=transport, **kw), transport


def test_the_request_on_the_wire_through_a_mock_transport():
    client, wire = mocked((200, {}, BODY))
    client.request_token("arm", Identity.user(client_id=UNKNOWN_GUID))
    (request,) = wire.requests
    assert request.method == "GET" and request.url == "http://127.0.0.1:9" + TOKEN_PATH
    assert request.params == (("api-version", "2018-02-01"), ("resource", ARM), ("client_id", UNKNOWN_GUID))
    assert request.headers["Metadata"] == "true" and request.headers["x-ms-client-request-id"]
    assert request.proxies is False and request.timeout == (2.0, 10.0)


def test_not_before_in_exponent_form_is_accepted():
    """``"1.7e9"`` is a number to tokens.as_int, so it must not make a token answer unusable."""
    client, _ = mocked((200, {}, {**BODY, "not_before": "1.7e9", "expires_in": "8.64e4"}))
    token = client.request_token("arm")
    assert token.not_before == 1_700_000_000 and token.expires_in == 86_400
    client, _ = mocked((200, {}, {**BODY, "not_before": "soon"}))
    with pytest.raises(errors.UnexpectedResponseError, match="not_before is not a number"):
        client.request_token("arm")


def test_tokens_are_labelled_emulator_only_when_the_answer_says_so():
    client, _ = mocked((200, {}, BODY))
    assert not client.request_token("arm").emulated
    client, _ = mocked((200, {"X-Mi-Notebook-Emulator": "1"}, BODY))
    assert client.request_token("arm").emulated


def test_timeouts_are_imds_timeouts():
    from mi_notebook.http import ConnectTimeout, Truncated

    for raised in (TimeoutError("read timed out"), ConnectTimeout("no connection"),
                   Truncated(200, {}, b'{"access', TimeoutError("slow"), timed_out=True)):
        client, wire = mocked(raised, retry=RetryPolicy(max_attempts=2))
        with pytest.raises(errors.ImdsTimeoutError) as info:
            client.request_token("arm")
        assert isinstance(info.value, errors.EndpointTimeoutError) and len(wire.requests) == 2


def test_retry_after_as_an_http_date_is_honoured_in_virtual_time():
    import email.utils

    throttled = (429, {"Retry-After": email.utils.formatdate(NOW + 4, usegmt=True)},
                 {"error": "invalid_request", "error_description": "Temporarily throttled, too many requests"})
    client, wire = mocked(throttled, (200, {}, BODY))
    token = client.request_token("arm")
    assert client.clock.slept == [4.0] and [a.status for a in token.timeline] == [429, 200]


@pytest.mark.parametrize(
    ("answer", "retried", "error", "fragment"),
    [
        ((200, {"Content-Type": "text/html"}, b"<html>sign in</html>"), False, errors.UnexpectedResponseError,
         "HTML page"),
        ((302, {"Location": "http://127.0.0.1:10/x"}, b""), False, errors.UnexpectedResponseError, "never redirects"),
        ((200, {}, b""), False, errors.UnexpectedResponseError, "an empty body"),
        ((200, {}, b'{"access_token": "eyJ0eXAi.eyJh'), False, errors.UnexpectedResponseError, "malformed"),
        ((200, {}, {**BODY, "expires_on": str(NOW - 5)}), False, errors.UnexpectedResponseError, "in the past"),
        ((503, {"Content-Type": "text/plain"}, b"busy"), True, errors.ServerError, "HTTP 503"),
        ((404, {}, b""), True, errors.ImdsUpdatingError, "HTTP 404"),
        ((400, {}, b"plain words"), False, errors.UnexpectedResponseError, "not JSON"),
        ((403, {}, {"error": "forbidden", "error_description": "nope"}), False, errors.BadRequestError, "403"),
    ],
)
def test_answers_parsed_and_classified_without_sockets(answer, retried, error, fragment):
    client, wire = mocked(answer, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(error) as info:
        client.request_token("arm")
    assert type(info.value) is error and fragment in str(info.value)
    assert len(wire.requests) == (3 if retried else 1) and info.value.status == answer[0]
    assert "eyJ" not in str(info.value)


def test_a_body_cut_short_is_retried_and_keeps_its_status():
    from mi_notebook.http import Truncated

    cut = Truncated(200, {"Content-Type": "application/json"}, b'{"access_token": "eyJ0', ConnectionResetError())
    client, wire = mocked(cut, (200, {}, BODY))
    assert client.request_token("arm").timeline.statuses == ["200", "200"]
    client, wire = mocked(cut, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(errors.UnexpectedResponseError, match="closed before the whole body") as info:
        client.request_token("arm")
    assert info.value.status == 200 and len(wire.requests) == 2


def test_get_json_through_a_mock_transport():
    client, wire = mocked((200, {}, {"apiVersions": ["2018-02-01"]}))
    document, timeline = client.get_json("/metadata/versions")
    assert document == {"apiVersions": ["2018-02-01"]} and len(timeline) == 1
    assert wire.requests[0].headers["Metadata"] == "true" and wire.requests[0].params == ()
    with pytest.raises(ValueError, match="start with"):
        client.get_json("metadata/versions")


def test_transport_and_session_arguments():
    import requests

    from mi_notebook.http import RequestsTransport

    with requests.Session() as session:
        client = ImdsClient(url="http://127.0.0.1:9", session=session)
        assert isinstance(client.transport, RequestsTransport) and client.transport.session is session
        with pytest.raises(ValueError, match="not both"):
            ImdsClient(url="http://127.0.0.1:9", session=session, transport=client.transport)
