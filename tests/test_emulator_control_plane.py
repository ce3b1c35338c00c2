"""The emulator's control plane (``/__emulator__/...``) is locked: its admin token, no web page, no
foreign ``Host``, no host secret over HTTP (issue 24, finding 6 of the security review)."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from mi_notebook.emulator import Emulator, EmulatorOptions

PROTECTED = [("GET", "/faults"), ("POST", "/faults"), ("DELETE", "/faults"), ("GET", "/requests"),
             ("DELETE", "/requests"), ("GET", "/vm"), ("DELETE", "/tokens"), ("GET", "/environment")]
FAULT = json.dumps({"fault": 503, "endpoint": "token"}).encode()
ARM = "https://management.azure.com/"


@pytest.fixture(scope="module")
def emu():
    with Emulator(profile="azureml", throttle=False, keyvault=False) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _no_faults_left(emu):
    emu.clear_faults()
    yield
    emu.clear_faults()


def admin(emu, method: str, route: str, headers: dict[str, str] | None = None, body: bytes | None = None,
          *, base: str | None = None) -> tuple[int, dict]:
    """One raw request to the control plane, every header as given (http.client adds Host only if absent)."""
    url = base or emu.imds_url
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    if url.startswith("https"):
        import ssl

        conn = http.client.HTTPSConnection(host, int(port), timeout=5,
                                           context=ssl.create_default_context(cafile=emu.ca_bundle))
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, "/__emulator__" + route, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("method", "route"), PROTECTED)
def test_every_admin_route_needs_the_admin_token(emu, method, route):
    body = FAULT if method == "POST" else None
    json_type = {"Content-Type": "application/json"} if body else {}
    status, answer = admin(emu, method, route, json_type, body)
    assert status == 401 and answer["error"] == "unauthorized" and "admin token" in answer["error_description"]
    status, _ = admin(emu, method, route, {**json_type, **bearer("not-the-token-0123456789abcdef")}, body)
    assert status == 401
    status, _ = admin(emu, method, route, {**json_type, **bearer(emu.admin_token)}, body)
    assert status in (200, 201)


def test_refused_requests_change_nothing_and_never_echo_the_token(emu):
    emu.inject(500, endpoint="instance", count=None)
    for headers in ({}, bearer(emu.admin_token[:-1] + "x"), {"Authorization": f"Basic {emu.admin_token}"},
                    {"Authorization": emu.admin_token}):
        status, answer = admin(emu, "DELETE", "/faults", headers)
        assert status == 401 and emu.admin_token not in json.dumps(answer)
    assert [f.kind for f in emu.faults.pending()] == [500]
    status, _ = admin(emu, "GET", "/faults?token=" + emu.admin_token)  # a token in the URL is not accepted
    assert status == 401


def test_two_authorization_headers_are_refused(emu):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    conn.putrequest("GET", "/__emulator__/vm")
    conn.putheader("Authorization", f"Bearer {emu.admin_token}")
    conn.putheader("Authorization", "Bearer something-else-0123456789")
    conn.endheaders()
    assert conn.getresponse().status == 401
    conn.close()


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1"])
def test_a_web_page_is_refused_even_with_the_token(emu, origin):
    headers = {"Origin": origin, "Content-Type": "application/json", **bearer(emu.admin_token)}
    status, answer = admin(emu, "POST", "/faults", headers, FAULT)
    assert status == 403 and "Origin" in answer["error_description"]
    assert admin(emu, "GET", "/jwks", {"Origin": origin})[0] == 403  # the public routes too
    assert emu.faults.pending() == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "10.0.0.4", "127.0.0.1.evil.example"])
def test_a_foreign_host_header_is_refused(emu, host):
    """DNS rebinding: a page's own name resolving to 127.0.0.1 arrives with that name as Host."""
    status, answer = admin(emu, "GET", "/vm", {"Host": host, **bearer(emu.admin_token)})
    assert status == 403 and "loopback" in answer["error_description"]
    assert admin(emu, "GET", "/health", {"Host": host})[0] == 403


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]:1234", "127.1.2.3:80", "LOCALHOST:8080"])
def test_loopback_host_headers_are_fine(emu, host):
    assert admin(emu, "GET", "/vm", {"Host": host, **bearer(emu.admin_token)})[0] == 200


def test_a_text_plain_post_injects_nothing(emu):
    """The security review's reproduction: a CORS "simple" request (no preflight) that injected a fault."""
    plain = {"Content-Type": "text/plain"}
    assert admin(emu, "POST", "/faults", plain, FAULT)[0] == 401
    status, answer = admin(emu, "POST", "/faults", {**plain, **bearer(emu.admin_token)}, FAULT)
    assert status == 415 and "application/json" in answer["error_description"]
    assert emu.faults.pending() == []


@pytest.mark.parametrize("profile", ["azureml", "appservice"])
def test_the_host_secret_is_never_served(profile):
    with Emulator(profile=profile, throttle=False, arm=False, keyvault=False) as emu:
        status, served = admin(emu, "GET", "/environment", bearer(emu.admin_token))
        assert status == 200 and emu.secret not in json.dumps(served)
        assert not {"MSI_SECRET", "IDENTITY_HEADER"} & set(served)
        assert served["MSI_ENDPOINT" if profile == "azureml" else "IDENTITY_ENDPOINT"] == emu.token_url
        assert emu.secret in emu.environment.values()  # in process, the environment is whole


def test_jwks_and_health_stay_public(emu):
    assert requests.get(emu.jwks_url, timeout=5).json() == emu.jwks
    assert requests.get(emu.imds_url + "/__emulator__/health", timeout=5).json()["profile"] == "azureml"


def test_the_arm_port_has_the_same_lock(emu):
    assert admin(emu, "GET", "/vm", base=emu.arm_url)[0] == 401
    assert admin(emu, "GET", "/vm", {"Origin": "https://evil.example", **bearer(emu.admin_token)},
                 base=emu.arm_url)[0] == 403
    assert admin(emu, "GET", "/vm", {"Host": "evil.example", **bearer(emu.admin_token)}, base=emu.arm_url)[0] == 403
    assert admin(emu, "GET", "/vm", bearer(emu.admin_token), base=emu.arm_url)[0] == 200


def test_in_process_users_never_notice(emu):
    fault = emu.inject(503, endpoint="token")
    assert emu.faults.pending() == [fault]
    r = requests.get(emu.token_url, params={"api-version": "2017-09-01", "resource": ARM},
                     headers={"secret": emu.secret}, timeout=5)
    assert r.status_code == 503 and emu.clear_faults() == 0
    r = requests.get(emu.token_url, params={"api-version": "2017-09-01", "resource": ARM},
                     headers={"secret": emu.secret}, timeout=5)
    assert emu.verify(r.json()["access_token"])["aud"] == ARM
    assert emu.requests.last.status == 200 and "MSI_SECRET" in emu.environment


def test_the_admin_token_is_random_per_emulator_and_never_shown(emu):
    other = Emulator(arm=False, keyvault=False)
    assert len(emu.admin_token) >= 32 and other.admin_token != emu.admin_token
    assert emu.admin_token not in repr(emu) and emu.admin_token not in repr(emu.options)
    assert all(emu.admin_token not in json.dumps(r.to_dict()) for r in emu.requests)


def test_the_admin_token_can_be_chosen(monkeypatch):
    chosen = "chosen-admin-token-0123456789"
    assert Emulator(admin_token=chosen, arm=False).admin_token == chosen
    assert Emulator(options=EmulatorOptions(admin_token=chosen)).admin_token == chosen
    monkeypatch.setenv("MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN", chosen)  # what a parent process hands down
    assert Emulator(arm=False).admin_token == chosen
    monkeypatch.setenv("MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN", "weak")
    with pytest.raises(ValueError, match="MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN must be 16 or more") as caught:
        Emulator(arm=False)
    assert "weak" not in str(caught.value)
    with pytest.raises(ValueError, match="admin_token must be 16 or more"):
        EmulatorOptions(admin_token="short")
    with pytest.raises(ValueError, match="does not belong in a config file"):
        Emulator(config={"admin_token": chosen})
