"""The emulator's ARM side fuzzed with garbage requests over TLS (test_emulator_fuzz.py does the IMDS side):
every answer is one ARM documents (never a 500 ARM would not send), errors come in ARM's
``{"error": {"code", "message"}}`` envelope, and the server keeps serving."""

from __future__ import annotations

import ssl

import pytest
from helpers import LOOPBACK, StubServer, canned, hang, http_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.reliability import arm_garbage
from mi_notebook.emulator import Emulator

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def emu():
    with Emulator(throttle=False, seed="arm-fuzz") as e:
        yield e


@pytest.fixture(scope="module")
def token(emu):
    return arm_garbage.arm_token(emu)


@FUZZ
@given(value=arm_garbage.arm_request_strategy())
def test_garbage_arm_requests_get_documented_answers(emu, token, value):
    arm_garbage.arm_fuzz_case(emu, token, value)


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_random_bytes_inside_tls_never_break_the_server(emu, raw):
    # TLS has no half-close: a server still waiting for a request line (only blank lines so far) or for
    # an announced body may rightly keep waiting; anything else must be answered or closed at once
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    may_wait = not raw.strip() or b"content-length" in head or b"transfer-encoding" in head
    try:
        answer = arm_garbage.arm_exchange(emu, raw + b"\r\n\r\n", timeout=1.0 if may_wait else 5.0)
    except TimeoutError:
        assert may_wait, raw
        return
    if answer is not None:
        status, headers, body = answer
        assert status in arm_garbage.ARM_ALLOWED, (status, body[:200])


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=300))
def test_plain_garbage_on_the_tls_port_is_refused_quietly(emu, raw):
    """Not even a TLS handshake: the server sends nothing but a TLS alert, closes the connection (no
    hang), serves no request, and goes on serving."""
    arm_garbage.plain_garbage_case(emu, raw)


def test_the_plain_garbage_check_fails_a_server_that_answers_or_hangs():
    """Control: the check above can fail. A server that answers the garbage (in HTTP) or holds the
    connection open is caught; one that closes at once, or after a TLS alert, passes."""
    with StubServer(canned(http_response(400, b"bad request"))) as stub, \
            pytest.raises(AssertionError, match="not a TLS alert"):
        arm_garbage.check_refused(arm_garbage.plain_exchange(LOOPBACK, stub.port, b"\x00garbage"))
    with StubServer(hang(2.0)) as stub, pytest.raises(AssertionError, match="neither answered nor closed"):
        arm_garbage.plain_exchange(LOOPBACK, stub.port, b"\x00garbage", timeout=0.2)
    alert = bytes([arm_garbage.TLS_ALERT, 3, 3, 0, 2, 2, 50])
    for answer in (b"", alert):
        with StubServer(canned(answer)) as stub:
            received = arm_garbage.plain_exchange(LOOPBACK, stub.port, b"\x00garbage")
        assert received == answer
        arm_garbage.check_refused(received)


def test_the_fuzz_reaches_success_and_every_error_class(emu, token):
    """Not vacuous: the same request shapes produce 200, 400, 401, 403/404 and 405."""
    seen = set()
    shapes = [("GET", ["subscriptions", "{s}", "resourcegroups", "{rg}"], "api-version=2021-04-01", "valid", b""),
              ("GET", ["subscriptions", "{s}", "resourcegroups", "{rg}"], "", "valid", b""),
              ("GET", ["subscriptions", "{s}", "resourcegroups", "{rg}"], "api-version=2021-04-01", "none", b""),
              ("GET", ["subscriptions", "nope"], "api-version=2021-04-01", "valid", b""),
              ("DELETE", ["subscriptions", "{s}"], "api-version=2021-04-01", "valid", b"")]
    for shape in shapes:
        answer = arm_garbage.arm_exchange(emu, arm_garbage.arm_request(emu, token, shape))
        arm_garbage.check_arm_answer(answer, shape[0])
        seen.add(answer[0])
    assert {200, 400, 401} <= seen and seen & {403, 404} and seen & {405, 403}


def test_arm_still_serves_after_the_fuzzing(emu):
    assert arm_garbage.arm_still_serving(emu)
    assert not [r for r in emu.requests.filter(service="arm") if r.status is not None and r.status >= 500]


def test_tls_is_required(emu):
    """Plain http to the ARM port gets no ARM answer (the token would travel in clear otherwise)."""
    import requests

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.arm_url.replace("https://", "http://") + "/subscriptions", timeout=5)
    assert isinstance(ssl.create_default_context(cafile=emu.ca_bundle), ssl.SSLContext)
