"""The emulator's token endpoint: every row of the reference's error table, the success body, identity
selection, caching, claims and signature verification."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode

import jwt
import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import Emulator

ARM = "https://management.azure.com/"
TOKEN = "/metadata/identity/oauth2/token"
START = 1_800_000_000.0


@pytest.fixture(scope="module")
def clock():
    return VirtualClock(START)


@pytest.fixture(scope="module")
def emu(clock):
    with Emulator(throttle=False, clock=clock, seed=7) as e:
        yield e


@pytest.fixture(autouse=True)
def _reset(request):
    if "emu" in request.fixturenames:
        emu = request.getfixturevalue("emu")
        clock = request.getfixturevalue("clock")
        clock.now = START
        emu.clear_faults()
        emu.issuer.clear()
        emu.requests.clear()
    yield


def get(emu, params=None, headers=None, *, raw_query=None, method="GET"):
    """Send a request with exactly these query parameters and headers (nothing added but Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    query = raw_query if raw_query is not None else urlencode(params or {})
    conn.putrequest(method, f"{TOKEN}?{query}", skip_accept_encoding=True)
    for name, value in (headers if headers is not None else {"Metadata": "true"}).items():
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def ok_params(**extra):
    return {"api-version": "2018-02-01", "resource": ARM, **extra}


def assert_error(resp, body, status, error, description=None, contains=None):
    assert resp.status == status
    assert resp.getheader("Content-Type") == "application/json; charset=utf-8"
    assert resp.getheader("Server").startswith("IMDS/150.870.65.")
    payload = json.loads(body)
    assert set(payload) == {"error", "error_description"}
    assert payload["error"] == error
    if description is not None:
        assert payload["error_description"] == description
    if contains is not None:
        assert contains in payload["error_description"]
    return payload


# ---- success ------------------------------------------------------------------------------------------
def test_success_body_keys_headers_and_string_values(emu):
    resp, body = get(emu, ok_params())
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json; charset=utf-8"
    assert resp.getheader("Server").startswith("IMDS/150.870.65.")
    assert resp.getheader("Date") and resp.getheader("Content-Length") == str(len(body))
    payload = json.loads(body)
    assert sorted(payload) == ["access_token", "client_id", "expires_in", "expires_on", "ext_expires_in",
                               "not_before", "resource", "token_type"]
    assert all(isinstance(v, str) for v in payload.values())
    assert payload["token_type"] == "Bearer"
    assert payload["resource"] == ARM
    assert payload["client_id"] == emu.vm.system_identity.client_id
    assert int(payload["expires_in"]) == 86400
    assert int(payload["expires_on"]) == int(START) + 86400
    assert int(payload["not_before"]) == int(START) - 300


def test_fresh_token_timing_and_v1_claims(emu):
    _, body = get(emu, ok_params())
    payload = json.loads(body)
    header = jwt.get_unverified_header(payload["access_token"])
    assert header["typ"] == "JWT" and header["alg"] == "RS256" and header["kid"] == header["x5t"]
    claims = emu.verify(payload["access_token"], audience=ARM)
    system = emu.vm.system_identity
    tid = emu.vm.tenant_id
    assert claims["exp"] - claims["nbf"] == 86700
    assert claims["iat"] == claims["nbf"] == int(START) - 300
    assert str(claims["exp"]) == payload["expires_on"] and str(claims["nbf"]) == payload["not_before"]
    assert claims["aud"] == ARM
    assert claims["iss"] == claims["idp"] == f"https://sts.windows.net/{tid}/"
    assert claims["tid"] == tid
    assert claims["appid"] == system.client_id
    assert claims["appidacr"] == "2" and claims["idtyp"] == "app" and claims["ver"] == "1.0"
    assert claims["oid"] == claims["sub"] == system.object_id
    assert claims["xms_mirid"] == emu.vm.resource_id.replace("/resourceGroups/", "/resourcegroups/")
    assert "/resourcegroups/" in claims["xms_mirid"]
    assert "xms_az_rid" not in claims
    for opaque in ("aio", "rh", "uti"):
        assert isinstance(claims[opaque], str) and claims[opaque]
    assert isinstance(claims["xms_tcdt"], str) and claims["xms_tcdt"].isdigit()  # as live tokens carry it


def test_user_assigned_claims_name_the_identity_and_the_vm(emu):
    user = emu.vm.user_identities[0]
    _, body = get(emu, ok_params(client_id=user.client_id))
    payload = json.loads(body)
    claims = emu.verify(payload["access_token"])
    assert payload["client_id"] == user.client_id
    assert claims["appid"] == user.client_id and claims["oid"] == user.object_id
    assert claims["xms_mirid"] == user.resource_id
    assert "/resourcegroups/" in claims["xms_mirid"]
    assert "userAssignedIdentities" in claims["xms_mirid"]
    assert claims["xms_az_rid"] == emu.vm.resource_id.replace("/resourceGroups/", "/resourcegroups/")


@pytest.mark.parametrize("selector", ["client_id", "object_id", "msi_res_id", "mi_res_id"])
def test_each_selector_picks_the_user_assigned_identity(emu, selector):
    user = emu.vm.user_identities[1]
    value = {"client_id": user.client_id, "object_id": user.object_id}.get(selector, user.resource_id)
    resp, body = get(emu, ok_params(**{selector: value}))
    assert resp.status == 200
    assert emu.verify(json.loads(body)["access_token"])["oid"] == user.object_id


def test_selectors_are_case_insensitive(emu):
    user = emu.vm.user_identities[0]
    resp, body = get(emu, ok_params(msi_res_id=user.resource_id.upper()))
    assert resp.status == 200
    resp, body = get(emu, ok_params(client_id=user.client_id.upper()))
    assert resp.status == 200


def test_resource_is_echoed_verbatim_and_is_the_audience(emu):
    for resource in ("https://management.azure.com", "https://VAULT.azure.net", "https://vault.azure.net/",
                     "499b84ac-1321-427f-aa17-267ca6975798", "https://management.core.windows.net/"):
        resp, body = get(emu, ok_params(resource=resource))
        assert resp.status == 200, resource
        payload = json.loads(body)
        assert payload["resource"] == resource
        assert emu.verify(payload["access_token"], audience=resource)["aud"] == resource


@pytest.mark.parametrize("version", ["2018-02-01", "2019-08-01", "2021-02-01", "2025-04-07"])
def test_known_api_versions_from_2018_02_01_on_are_accepted(emu, version):
    resp, _ = get(emu, {"api-version": version, "resource": ARM})
    assert resp.status == 200


def test_metadata_header_value_is_case_insensitive(emu):
    resp, _ = get(emu, ok_params(), {"metadata": "TRUE"})
    assert resp.status == 200


# ---- the error table ----------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Metadata": "false"}, {"Metadata": ""}, {"Metadata-Flavor": "Google"}])
def test_metadata_header_missing_or_wrong(emu, headers):
    resp, body = get(emu, ok_params(), headers)
    assert_error(resp, body, 400, "invalid_request", "Required metadata header not specified")


def test_several_user_assigned_none_named(emu):
    with Emulator(throttle=False, system_assigned=False, user_assigned=2) as e:
        resp, body = get(e, ok_params())
    assert_error(resp, body, 400, "invalid_request",
                 "Multiple user assigned identities exist, please specify the clientId / resourceId of the "
                 "identity in the token request")


@pytest.mark.parametrize("selector,value", [
    ("client_id", "00000000-0000-0000-0000-000000000000"),
    ("object_id", "11111111-1111-1111-1111-111111111111"),
    ("msi_res_id", "/subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z"),
    ("client_id", ""),
])
def test_no_such_identity(emu, selector, value):
    resp, body = get(emu, ok_params(**{selector: value}))
    assert_error(resp, body, 400, "invalid_request", "Identity not found")


def test_vm_without_identity(emu):
    with Emulator(throttle=False, system_assigned=False, user_assigned=0) as e:
        resp, body = get(e, ok_params())
    assert_error(resp, body, 400, "invalid_request", "Identity not found")


def test_single_user_assigned_without_system_is_picked_when_none_is_named(emu):
    with Emulator(throttle=False, system_assigned=False, user_assigned=1) as e:
        resp, body = get(e, ok_params())
        assert resp.status == 200
        assert e.verify(json.loads(body)["access_token"])["oid"] == e.vm.user_identities[0].object_id


def test_system_and_one_user_assigned_gives_system_by_default(emu):
    with Emulator(throttle=False, system_assigned=True, user_assigned=1) as e:
        resp, body = get(e, ok_params())
        assert resp.status == 200
        assert e.verify(json.loads(body)["access_token"])["oid"] == e.vm.system_identity.object_id


def test_single_user_quirk_option_answers_a_system_request_with_the_user_assigned_identity(emu):
    with Emulator(throttle=False, system_assigned=True, user_assigned=1, single_user_quirk=True) as e:
        resp, body = get(e, ok_params())
        assert resp.status == 200
        assert e.verify(json.loads(body)["access_token"])["oid"] == e.vm.user_identities[0].object_id
        # naming an identity still gets exactly that one
        resp, body = get(e, ok_params(object_id=e.vm.system_identity.object_id))
        assert e.verify(json.loads(body)["access_token"])["oid"] == e.vm.system_identity.object_id


def test_unknown_resource_is_invalid_resource_aadsts500011(emu):
    resp, body = get(emu, ok_params(resource="https://not-a-real-resource.example.com/"))
    payload = assert_error(resp, body, 400, "invalid_resource")
    assert payload["error_description"].startswith(
        "AADSTS500011: The resource principal named https://not-a-real-resource.example.com/ was not found "
        f"in the tenant named {emu.vm.tenant_id}.")


def test_throttled_body():
    with Emulator(throttle=True, clock=VirtualClock(START)) as e:
        statuses = []
        for _ in range(21):
            resp, body = get(e, ok_params())
            statuses.append(resp.status)
        assert statuses == [200] * 20 + [429]
        assert_error(resp, body, 429, "invalid_request", "Temporarily throttled, too many requests")


@pytest.mark.parametrize("status", [404, 410, 500])
def test_updating_and_server_failure_rows(emu, status):
    emu.inject(status, endpoint="token")
    resp, body = get(emu, ok_params())
    payload = json.loads(body)
    assert resp.status == status
    if status == 500:
        assert payload["error"] == "unknown"
        assert payload["error_description"].startswith("Failed to retrieve token from the Active directory")
    if status == 410:
        assert "70 seconds" in payload["error_description"]


def test_missing_api_version(emu):
    resp, body = get(emu, {"resource": ARM})
    assert_error(resp, body, 400, "invalid_request", contains="api-version")


@pytest.mark.parametrize("version", ["2017-12-01", "2018-02-02", "latest", ""])
def test_unsupported_api_version(emu, version):
    resp, body = get(emu, {"api-version": version, "resource": ARM})
    assert_error(resp, body, 400, "invalid_request", contains="api-version")


@pytest.mark.parametrize("params", [{"api-version": "2018-02-01"}, {"api-version": "2018-02-01", "resource": ""}])
def test_missing_resource(emu, params):
    resp, body = get(emu, params)
    assert_error(resp, body, 400, "invalid_request", contains="resource")


@pytest.mark.parametrize("pair", [("client_id", "object_id"), ("client_id", "msi_res_id"),
                                  ("object_id", "mi_res_id"), ("msi_res_id", "mi_res_id")])
def test_conflicting_selectors(emu, pair):
    user = emu.vm.user_identities[0]
    values = {"client_id": user.client_id, "object_id": user.object_id, "msi_res_id": user.resource_id,
              "mi_res_id": user.resource_id}
    resp, body = get(emu, ok_params(**{name: values[name] for name in pair}))
    assert_error(resp, body, 400, "invalid_request", contains="Only one of")


def test_x_forwarded_for_is_rejected(emu):
    resp, body = get(emu, ok_params(), {"Metadata": "true", "X-Forwarded-For": "10.1.2.3"})
    assert_error(resp, body, 400, "invalid_request", contains="X-Forwarded-For")


def test_duplicate_query_parameters_are_rejected(emu):
    raw = "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&resource=https%3A%2F%2Fvault.azure.net"
    resp, body = get(emu, raw_query=raw)
    assert_error(resp, body, 400, "invalid_request", contains="Duplicate query parameter 'resource'")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_only_get(emu, method):
    resp, body = get(emu, ok_params(), method=method)
    assert_error(resp, body, 405, "invalid_request", contains=method)
    assert resp.getheader("Allow") == "GET"


def test_head_gets_405_without_a_body(emu):
    resp, body = get(emu, ok_params(), method="HEAD")
    assert resp.status == 405 and body == b""


# ---- caching ------------------------------------------------------------------------------------------
def test_cached_token_same_token_same_expiry_shrinking_expires_in(emu, clock):
    first = json.loads(get(emu, ok_params())[1])
    clock.now += 600
    second = json.loads(get(emu, ok_params())[1])
    assert second["access_token"] == first["access_token"]
    assert second["expires_on"] == first["expires_on"] and second["not_before"] == first["not_before"]
    assert int(second["expires_in"]) == int(first["expires_in"]) - 600
    assert emu.issuer.issued == 1 or len(emu.issuer.cached()) == 1


def test_cache_is_per_identity_and_resource(emu):
    user = emu.vm.user_identities[0]
    tokens = {json.loads(get(emu, ok_params(**extra))[1])["access_token"]
              for extra in ({}, {"resource": "https://vault.azure.net"}, {"client_id": user.client_id},
                            {"client_id": user.client_id, "resource": "https://vault.azure.net"})}
    assert len(tokens) == 4
    # the same identity named another way shares the cache entry
    a = json.loads(get(emu, ok_params(client_id=user.client_id))[1])["access_token"]
    b = json.loads(get(emu, ok_params(object_id=user.object_id))[1])["access_token"]
    assert a == b


def test_token_near_expiry_is_replaced(emu, clock):
    first = json.loads(get(emu, ok_params())[1])
    clock.now = int(first["expires_on"]) - 200  # inside the last 5 minutes
    second = json.loads(get(emu, ok_params())[1])
    assert second["access_token"] != first["access_token"]
    assert int(second["expires_on"]) == int(clock.now) + 86400


def test_short_lifetime_and_expired_tokens_with_the_injected_clock():
    clock = VirtualClock(START)
    with Emulator(throttle=False, clock=clock, token_lifetime=60) as e:
        payload = json.loads(get(e, ok_params())[1])
        assert int(payload["expires_in"]) == 60
        claims = e.verify(payload["access_token"])
        assert claims["exp"] - claims["nbf"] == 360
        clock.now += 61
        with pytest.raises(jwt.ExpiredSignatureError):
            e.verify(payload["access_token"])
        fresh = json.loads(get(e, ok_params())[1])
        assert fresh["access_token"] != payload["access_token"]


def test_token_from_another_emulator_does_not_verify(emu):
    with Emulator(throttle=False) as other:
        foreign = json.loads(get(other, ok_params())[1])["access_token"]
    with pytest.raises(jwt.InvalidTokenError):
        emu.verify(foreign)


def test_jwks_endpoint_verifies_an_issued_token(emu):
    token = json.loads(get(emu, ok_params())[1])["access_token"]
    jwks = requests.get(emu.jwks_url, timeout=5).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=ARM,
                        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})
    assert claims["oid"] == emu.vm.system_identity.object_id
    assert jwks == emu.jwks


def test_request_log_records_answers_without_tokens(emu):
    get(emu, ok_params(), {"Metadata": "true", "Authorization": "Bearer secret-token-value"})
    get(emu, ok_params(), {})
    records = emu.requests.filter(endpoint="token")
    assert [r.status for r in records] == [200, 400]
    assert records[1].error == "invalid_request"
    assert records[0].query["resource"] == [ARM]
    assert "secret-token-value" not in repr(records) and records[0].headers["Authorization"].startswith("Bearer sha256:")
    assert records[0].extra["kind"] == "system"
    assert records[0].time == START
