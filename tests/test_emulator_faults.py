"""Injected faults (each kind), the HTTP admin endpoint and throttling."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import Emulator

ARM = "https://management.azure.com/"
PARAMS = {"api-version": "2018-02-01", "resource": ARM}
H = {"Metadata": "true"}
START = 1_800_000_000.0


@pytest.fixture(scope="module")
def emu():
    with Emulator(throttle=False) as e:
        yield e


@pytest.fixture(autouse=True)
def _clean(request):
    if "emu" in request.fixturenames:
        e = request.getfixturevalue("emu")
        e.clear_faults()
        e.requests.clear()
    yield


def token(emu, session=None, timeout=5.0, **params):
    return (session or requests).get(emu.token_url, params={**PARAMS, **params}, headers=H, timeout=timeout)


def instance(emu, timeout=5.0):
    return requests.get(emu.imds_url + "/metadata/instance", params={"api-version": "2021-02-01"}, headers=H,
                        timeout=timeout)


# ---- status faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [404, 410, 429, 500, 502, 503, 504])
def test_status_faults_on_the_token_endpoint(emu, status):
    emu.inject(status, endpoint="token")
    r = token(emu)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = r.json()
    assert set(body) == {"error", "error_description"}
    assert token(emu).status_code == 200  # count=1: consumed
    record = emu.requests.filter(endpoint="token")[0]
    assert record.fault == str(status) and record.status == status


def test_429_and_503_carry_retry_after(emu):
    emu.inject(429, endpoint="token", retry_after=7)
    emu.inject(503, endpoint="token", retry_after=0.5)
    r1, r2 = token(emu), token(emu)
    assert (r1.status_code, r1.headers["Retry-After"]) == (429, "7")
    assert r1.json() == {"error": "invalid_request", "error_description": "Temporarily throttled, too many requests"}
    assert (r2.status_code, r2.headers["Retry-After"]) == (503, "0.5")
    emu.inject(429, endpoint="token")
    assert "Retry-After" not in token(emu).headers


def test_faults_on_the_instance_endpoint_use_its_body_shape(emu):
    emu.inject(503, endpoint="instance", count=2)
    assert token(emu).status_code == 200  # a token request is not affected
    r = instance(emu)
    assert r.status_code == 503 and set(r.json()) == {"error"}
    assert instance(emu).status_code == 503
    assert instance(emu).status_code == 200


def test_any_endpoint_count_order_and_clear(emu):
    emu.inject(500, endpoint="any", count=2)
    emu.inject(404, endpoint="token")
    assert [token(emu).status_code, instance(emu).status_code, token(emu).status_code, token(emu).status_code] \
        == [500, 500, 404, 200]
    emu.inject(503, count=None)  # until cleared
    assert [token(emu).status_code for _ in range(3)] == [503, 503, 503]
    assert emu.clear_faults() == 1
    assert token(emu).status_code == 200


@pytest.mark.parametrize("kwargs,match", [
    ({"fault": 418}, "unknown fault"),
    ({"fault": "explode"}, "unknown fault"),
    ({"fault": 503, "endpoint": "nowhere"}, "unknown endpoint"),
    ({"fault": 503, "count": 0}, "count"),
    ({"fault": 500, "retry_after": 3}, "retry_after"),
    ({"fault": "hang", "seconds": 10_000}, "seconds"),
    ({"fault": "html", "status": 404}, "status"),
    ({"fault": "bad-expires", "endpoint": "instance"}, "token endpoint"),
    ({"fault": "truncated", "variant": "missing"}, "variant"),
])
def test_inject_validates_options(emu, kwargs, match):
    with pytest.raises(ValueError, match=match):
        emu.inject(**kwargs)


# ---- misbehaviours ------------------------------------------------------------------------------------
def test_hang_holds_past_the_client_timeout_then_serves_again(emu):
    emu.inject("hang", endpoint="token", seconds=2)
    started = time.perf_counter()
    with pytest.raises(requests.exceptions.ReadTimeout):
        token(emu, timeout=0.2)
    assert time.perf_counter() - started < 1.5
    assert token(emu).status_code == 200
    record = emu.requests.filter(endpoint="token")[0]
    assert record.fault == "hang" and record.status is None


def test_hang_does_not_block_shutdown():
    e = Emulator(throttle=False).start()
    e.inject("hang", seconds=120)
    errors: list[BaseException] = []

    def client():
        try:
            token(e, timeout=30)
        except requests.RequestException as exc:
            errors.append(exc)

    t = threading.Thread(target=client)
    t.start()
    deadline = time.monotonic() + 2
    while len(e.faults) and time.monotonic() < deadline:  # wait until the request holds the fault
        time.sleep(0.01)
    time.sleep(0.05)
    started = time.perf_counter()
    e.stop()
    assert time.perf_counter() - started < 1.0
    t.join(timeout=5)
    assert not t.is_alive() and errors  # the client saw the connection closed, no answer


def test_drop_closes_without_an_answer(emu):
    emu.inject("drop", endpoint="token")
    with pytest.raises(requests.exceptions.ConnectionError):
        token(emu)
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    emu.inject("drop")
    conn.request("GET", "/metadata/instance?api-version=2021-02-01", headers=H)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    assert emu.requests[-1].status is None and emu.requests[-1].fault == "drop"


def test_truncated_json(emu):
    emu.inject("truncated", endpoint="token")
    r = token(emu)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(r.content))
    with pytest.raises(ValueError):
        json.loads(r.content)
    assert r.content.startswith(b'{"access_token":')


def test_truncated_incomplete_body(emu):
    emu.inject("truncated", endpoint="token", variant="incomplete")
    with pytest.raises(requests.exceptions.RequestException):
        token(emu)
    assert token(emu).status_code == 200


@pytest.mark.parametrize("status", [200, 502])
def test_html_from_a_misconfigured_proxy(emu, status):
    emu.inject("html", endpoint="token", status=status)
    r = token(emu)
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.text.lstrip().lower().startswith("<!doctype html>")


def test_bad_expires_missing_and_not_a_number(emu):
    emu.inject("bad-expires", endpoint="token")
    emu.inject("bad-expires", endpoint="token", variant="string")
    missing, string = token(emu).json(), token(emu).json()
    assert "expires_on" not in missing and missing["access_token"]
    assert not string["expires_on"].isdigit()
    assert emu.verify(string["access_token"])  # the token itself is real


def test_bad_expires_for_a_user_assigned_identity_keeps_the_identity(emu):
    user = emu.vm.user_identities[0]
    emu.inject("bad-expires", endpoint="token")
    body = token(emu, client_id=user.client_id).json()
    assert body["client_id"] == user.client_id


# ---- admin endpoint -----------------------------------------------------------------------------------
def test_admin_faults_post_get_delete(emu):
    base, admin = emu.imds_url + "/__emulator__/faults", emu.admin_headers
    r = requests.post(base, json=[{"fault": 503, "endpoint": "token", "count": 2, "retry_after": 1},
                                  {"fault": "drop", "endpoint": "instance"}], headers=admin, timeout=5)
    assert r.status_code == 201 and [f["fault"] for f in r.json()["faults"]] == [503, "drop"]
    listed = requests.get(base, headers=admin, timeout=5).json()["faults"]
    assert [(f["fault"], f["count"]) for f in listed] == [(503, 2), ("drop", 1)]
    assert token(emu).status_code == 503
    assert requests.get(base, headers=admin, timeout=5).json()["faults"][0]["count"] == 1
    assert requests.delete(base, headers=admin, timeout=5).json() == {"cleared": 2}
    assert requests.get(base, headers=admin, timeout=5).json() == {"faults": []}
    assert token(emu).status_code == 200


@pytest.mark.parametrize("body,match", [
    (b"{not json", "not JSON"),
    (b'{"fault": 999}', "unknown fault"),
    (b'{"endpoint": "token"}', "needs a 'fault'"),
    (b'{"fault": 503, "colour": "red"}', "unknown fault keys"),
    (b'"503"', "JSON object"),
])
def test_admin_rejects_bad_faults(emu, body, match):
    r = requests.post(emu.imds_url + "/__emulator__/faults", data=body, timeout=5,
                      headers={"Content-Type": "application/json", **emu.admin_headers})
    assert r.status_code == 400 and match in r.json()["error_description"]
    assert len(emu.faults) == 0


def test_admin_requests_jwks_vm_tokens_health(emu):
    token(emu)
    requests.get(emu.token_url, params=PARAMS, timeout=5)  # no header -> 400
    admin = requests.Session()
    admin.headers.update(emu.admin_headers)
    log = admin.get(emu.imds_url + "/__emulator__/requests", timeout=5).json()["requests"]
    assert [(r["endpoint"], r["status"]) for r in log] == [("token", 200), ("token", 400)]
    assert "access_token" not in json.dumps(log)
    assert admin.delete(emu.imds_url + "/__emulator__/requests", timeout=5).json() == {"cleared": 2}
    assert len(emu.requests) == 0  # admin calls are not logged
    assert requests.get(emu.jwks_url, timeout=5).json() == emu.jwks  # public keys: no admin token needed
    vm = admin.get(emu.imds_url + "/__emulator__/vm", timeout=5).json()
    assert vm["subscription_id"] == emu.vm.subscription_id and len(vm["identities"]) == 3
    first = token(emu).json()["access_token"]
    assert admin.delete(emu.imds_url + "/__emulator__/tokens", timeout=5).json()["cleared"] >= 1
    assert token(emu).json()["access_token"] != first
    assert requests.get(emu.imds_url + "/__emulator__/health", timeout=5).json()["status"] == "ok"
    assert admin.get(emu.imds_url + "/__emulator__/nope", timeout=5).status_code == 404
    assert admin.put(emu.imds_url + "/__emulator__/jwks", timeout=5).status_code == 405
    admin.close()


# ---- throttling ---------------------------------------------------------------------------------------
def test_identity_endpoint_allows_20_per_second_then_429_until_the_window_moves():
    clock = VirtualClock(START)
    with Emulator(throttle=True, clock=clock) as e, requests.Session() as s:
        statuses = [token(e, s).status_code for _ in range(25)]
        assert statuses == [200] * 20 + [429] * 5
        clock.now += 0.5
        assert token(e, s).status_code == 429
        clock.now += 0.5
        assert [token(e, s).status_code for _ in range(20)] == [200] * 20


def test_identity_endpoint_allows_5_concurrent_requests():
    with Emulator(throttle=True, clock=VirtualClock(START), latency=0.3) as e:
        barrier = threading.Barrier(8)
        statuses: list[int] = []
        lock = threading.Lock()

        def client():
            with requests.Session() as s:
                barrier.wait()
                status = token(e, s).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert sorted(statuses) == [200] * 5 + [429] * 3


def test_throttling_off_lets_everything_through():
    with Emulator(throttle=False) as e, requests.Session() as s:
        assert {token(e, s).status_code for _ in range(60)} == {200}
