"""The emulator's ARM side on the wire: TLS, reads and paging, the documented 400/401/403/404/429 bodies,
RBAC per identity, throttling in virtual time, faults, headers and the request log."""

from __future__ import annotations

import json
import os
import re
import ssl
import uuid
from pathlib import Path

import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import Emulator
from mi_notebook.emulator.keys import SigningKeys

ARM = "https://management.azure.com/"
START = 1_800_000_000.0
RG_VERSION = "2025-04-01"
VM_VERSION = "2024-07-01"


def token_for(emu: Emulator, resource: str = ARM, **selector: str) -> str:
    r = requests.get(emu.token_url, headers={"Metadata": "true"},
                     params={"api-version": "2018-02-01", "resource": resource, **selector})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


class Caller:
    """GETs against the emulator's ARM side as one identity (verify= per request: REQUESTS_CA_BUNDLE)."""

    def __init__(self, emu: Emulator, token: str | None) -> None:
        self.emu = emu
        self.token = token
        self.session = requests.Session()
        self.session.trust_env = False

    def get(self, path: str, api_version: str | None = RG_VERSION, *, method: str = "GET",
            headers: dict[str, str] | None = None, **kw):
        url = path if path.startswith("http") else self.emu.arm_url + path
        params = {} if api_version is None or "api-version=" in url else {"api-version": api_version}
        params.update(kw.pop("params", {}))
        hdrs = dict(headers or {})
        if self.token is not None:
            hdrs.setdefault("Authorization", "Bearer " + self.token)
        kw.setdefault("timeout", 5)
        return self.session.request(method, url, params=params, headers=hdrs, verify=self.emu.ca_bundle,
                                    allow_redirects=False, **kw)


@pytest.fixture(scope="module")
def clock():
    return VirtualClock(START)


@pytest.fixture(scope="module")
def emu(clock):
    with Emulator(throttle=False, clock=clock, seed=11) as e:
        yield e


@pytest.fixture(autouse=True)
def _reset(emu, clock):
    clock.now = START
    emu.clear_faults()
    yield
    clock.now = START
    emu.clear_faults()


@pytest.fixture(scope="module")
def system(emu):
    return Caller(emu, token_for(emu))


@pytest.fixture(scope="module")
def user1(emu):
    return Caller(emu, token_for(emu, client_id=emu.vm.user_identities[0].client_id))


@pytest.fixture(scope="module")
def user2(emu):
    return Caller(emu, token_for(emu, client_id=emu.vm.user_identities[1].client_id))


def sub_path(emu: Emulator) -> str:
    return f"/subscriptions/{emu.vm.subscription_id}"


def follow(caller: Caller, path: str, api_version: str = RG_VERSION) -> tuple[list[dict], list[str]]:
    """Every item of a paged list, and the nextLinks followed."""
    r = caller.get(path, api_version)
    assert r.status_code == 200, r.text
    body = r.json()
    items, links = list(body["value"]), []
    while body.get("nextLink"):
        links.append(body["nextLink"])
        r = caller.get(body["nextLink"], None)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["value"]
    return items, links


# ---- TLS -------------------------------------------------------------------------------------------
def test_serves_https_with_a_per_run_ca_removed_on_stop():
    with Emulator(throttle=False) as e:
        assert e.arm_url.startswith("https://127.0.0.1:")
        bundle = e.ca_bundle
        assert os.path.isfile(bundle) and Path(bundle).read_text().startswith("-----BEGIN CERTIFICATE-----")
        # the default trust store does not know the emulator's CA ...
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(e.arm_url + "/subscriptions", timeout=5, verify=True)
        # ... the bundle does, for 127.0.0.1 and localhost (both SANs), with hostname checking on
        ctx = ssl.create_default_context(cafile=bundle)
        port = int(e.arm_url.rsplit(":", 1)[1])
        for host in ("127.0.0.1", "localhost"):
            r = requests.get(f"https://{host}:{port}/subscriptions", verify=bundle, timeout=5)
            assert r.status_code == 401
        import socket

        with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert e.ca_bundle is None and not os.path.exists(bundle) and not os.path.exists(os.path.dirname(bundle))


def test_plain_http_option_and_config_file_options(tmp_path):
    cfg = tmp_path / "emu.json"
    cfg.write_text(json.dumps({"arm": {"tls": False, "page-size": 2}}))
    with Emulator(config=str(cfg), throttle=False) as e:
        assert e.arm_url.startswith("http://127.0.0.1:") and e.ca_bundle is None
        items, links = follow(Caller(e, token_for(e)), sub_path(e) + "/resourcegroups")
        assert len(links) == (len(items) - 1) // 2 and all(link.startswith("http://") for link in links)
    with pytest.raises(ValueError, match="page_size"):
        Emulator(arm={"page_size": 0})
    with Emulator(arm=False) as e:
        assert e.arm_url is None and e.ca_bundle is None


# ---- reads -----------------------------------------------------------------------------------------
def test_subscriptions_list_and_get(emu, system):
    r = system.get("/subscriptions", "2022-12-01")
    assert r.status_code == 200
    body = r.json()
    assert [s["subscriptionId"] for s in body["value"]] == [emu.vm.subscription_id]
    assert body["value"][0]["tenantId"] == emu.vm.tenant_id and body["value"][0]["state"] == "Enabled"
    assert "x-ms-ratelimit-remaining-tenant-reads" in r.headers
    one = system.get(sub_path(emu), "2022-12-01").json()
    assert one["id"] == sub_path(emu) and one["displayName"]


def test_resource_groups_page_with_absolute_next_links(emu, system):
    items, links = follow(system, sub_path(emu) + "/resourcegroups")
    names = [g["name"] for g in items]
    assert names[0] == emu.vm.resource_group and len(names) == len(set(names)) >= 7
    assert len(links) == (len(items) - 1) // 3  # default page size 3: several pages
    for link in links:
        assert link.startswith(emu.arm_url + sub_path(emu) + "/resourcegroups?")
        assert "api-version=" + RG_VERSION in link and "%24skiptoken=" in link
    assert all(g["type"] == "Microsoft.Resources/resourceGroups" and g["id"].endswith("/" + g["name"])
               for g in items)
    first = system.get(sub_path(emu) + "/resourcegroups").json()
    assert len(first["value"]) == 3 and "nextLink" in first


def test_top_and_bad_skiptoken(emu, system):
    body = system.get(sub_path(emu) + "/resourcegroups", params={"$top": "100"}).json()
    assert "nextLink" not in body and len(body["value"]) >= 7
    r = system.get(sub_path(emu) + "/resourcegroups", params={"$skiptoken": "not-a-token"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidSkipToken"


def test_paths_are_case_insensitive(emu, system):
    upper = f"/SUBSCRIPTIONS/{emu.vm.subscription_id.upper()}/RESOURCEGROUPS/{emu.vm.resource_group.upper()}"
    r = system.get(upper)
    assert r.status_code == 200 and r.json()["name"] == emu.vm.resource_group
    vm = system.get(emu.vm.resource_id.lower(), VM_VERSION)
    assert vm.status_code == 200 and vm.json()["id"] == emu.vm.resource_id


def test_resources_in_group_page_and_include_vm_and_identities(emu, system):
    items, links = follow(system, f"{sub_path(emu)}/resourceGroups/{emu.vm.resource_group}/resources")
    types = [i["type"] for i in items]
    assert len(links) >= 2
    assert "Microsoft.Compute/virtualMachines" in types
    assert types.count("Microsoft.ManagedIdentity/userAssignedIdentities") == len(emu.vm.user_identities)
    assert all("properties" not in i for i in items)
    everything, _ = follow(system, sub_path(emu) + "/resources")
    assert len(everything) > len(items)


def test_vm_record_agrees_with_imds(emu, system, user1):
    vm = system.get(emu.vm.resource_id, VM_VERSION).json()
    assert vm["name"] == emu.vm.name and vm["type"] == "Microsoft.Compute/virtualMachines"
    assert vm["properties"]["vmId"] == emu.vm.vm_id
    assert vm["properties"]["hardwareProfile"]["vmSize"] == emu.vm.vm_size
    ident = vm["identity"]
    assert ident["type"] == "SystemAssigned, UserAssigned" and ident["tenantId"] == emu.vm.tenant_id
    assert ident["principalId"] == emu.verify(system.token)["oid"]
    claims = emu.verify(user1.token)
    entry = ident["userAssignedIdentities"][claims["xms_mirid"]]
    assert entry == {"principalId": claims["oid"], "clientId": claims["appid"]}
    assert len(ident["userAssignedIdentities"]) == len(emu.vm.user_identities)


def test_user_assigned_identity_get_and_list(emu, system):
    ua = emu.vm.user_identities[0]
    r = system.get(ua.resource_id, "2023-01-31")
    assert r.status_code == 200
    props = r.json()["properties"]
    assert (props["clientId"], props["principalId"], props["tenantId"]) == (ua.client_id, ua.object_id,
                                                                             emu.vm.tenant_id)
    items, _ = follow(system, f"{sub_path(emu)}/resourceGroups/{emu.vm.resource_group}/providers/"
                              "Microsoft.ManagedIdentity/userAssignedIdentities", "2023-01-31")
    assert sorted(i["name"] for i in items) == sorted(u.name for u in emu.vm.user_identities)


def test_vm_without_identity_has_no_identity_block():
    with Emulator(throttle=False, system_assigned=False, user_assigned=0) as e:
        from mi_notebook.emulator.arm.catalog import ArmCatalog

        assert "identity" not in ArmCatalog(e.vm).vm_record()


# ---- documented errors -----------------------------------------------------------------------------
def test_api_version_required_and_checked(emu, system):
    r = system.get(sub_path(emu) + "/resourcegroups", None)
    assert r.status_code == 400
    assert r.json() == {"error": {"code": "MissingApiVersionParameter", "message":
                                  "The api-version query parameter (?api-version=) is required for all requests."}}
    r = system.get(sub_path(emu) + "/resourcegroups", "2099-01-01")
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "InvalidApiVersionParameter"
    assert err["message"].startswith("The api-version '2099-01-01' is invalid. The supported versions are '")
    r = system.get(emu.vm.resource_id, "1999-01-01")
    assert r.status_code == 400 and r.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "for type 'virtualMachines'" in r.json()["error"]["message"]


def test_missing_and_malformed_authorization(emu):
    anon = Caller(emu, None)
    r = anon.get(sub_path(emu) + "/resourcegroups")
    assert r.status_code == 401
    assert r.json()["error"] == {"code": "AuthenticationFailed",
                                 "message": "Authentication failed. The 'Authorization' header is missing."}
    www = r.headers["WWW-Authenticate"]
    assert www.startswith(f'Bearer authorization_uri="https://login.windows.net/{emu.vm.tenant_id}"')
    assert 'error="invalid_token"' in www and "error_description=" in www
    r = anon.get(sub_path(emu), headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401 and r.json()["error"] == {
        "code": "AuthenticationFailedInvalidHeader",
        "message": "Authentication failed. The 'Authorization' header is provided in an invalid format."}
    r = anon.get("/subscriptions")  # tenant-level: the challenge names no tenant
    assert r.headers["WWW-Authenticate"].startswith('Bearer authorization_uri="https://login.windows.net/",')
    r = Caller(emu, "not.a.jwt").get(sub_path(emu))
    assert r.status_code == 401
    assert r.json()["error"] == {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}


def test_token_signed_by_another_key_is_invalid(emu):
    forged = SigningKeys().issue({"aud": ARM, "iss": emu.issuer_url, "oid": str(uuid.uuid4()),
                                  "nbf": START - 10, "exp": START + 3600})
    r = Caller(emu, forged).get(sub_path(emu))
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_wrong_audience(emu):
    r = Caller(emu, token_for(emu, "https://vault.azure.net")).get(sub_path(emu))
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "InvalidAuthenticationTokenAudience"
    assert err["message"] == (
        "The access token has been obtained for wrong audience or resource 'https://vault.azure.net'. It should "
        "exactly match with one of the allowed audiences 'https://management.core.windows.net/',"
        "'https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_other_arm_audience_accepted(emu):
    r = Caller(emu, token_for(emu, "https://management.core.windows.net/")).get(sub_path(emu), "2022-12-01")
    assert r.status_code == 200


def test_expired_token(emu, clock, system):
    exp = emu.verify(system.token)["exp"]
    clock.now = exp + 15
    r = system.get(sub_path(emu))
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "ExpiredAuthenticationToken"
    assert re.fullmatch(r"The access token expiry UTC time '\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M' is "
                        r"earlier than current UTC time '\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M'\.",
                        err["message"]), err["message"]
    assert err["message"] in r.headers["WWW-Authenticate"]


def test_not_yet_valid_token(emu, clock, system):
    clock.now = emu.verify(system.token)["nbf"] - 60
    r = system.get(sub_path(emu))
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_not_found_bodies(emu, system):
    r = system.get(f"{sub_path(emu)}/resourceGroups/rg-nope")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "ResourceGroupNotFound", "message": "Resource group 'rg-nope' could not be found."}
    r = system.get(f"{sub_path(emu)}/resourceGroups/{emu.vm.resource_group}/providers/"
                   "Microsoft.Compute/virtualMachines/vm-nope", VM_VERSION)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"
    assert r.json()["error"]["message"].startswith(
        f"The Resource 'Microsoft.Compute/virtualMachines/vm-nope' under resource group '{emu.vm.resource_group}' "
        "was not found.")
    other = str(uuid.uuid4())
    r = system.get(f"/subscriptions/{other}/resourcegroups")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "SubscriptionNotFound", "message": f"The subscription '{other}' could not be found."}
    r = system.get("/tenants/x")
    assert r.status_code == 404 and r.json()["error"]["code"] == "InvalidRequestUri"


# ---- RBAC ------------------------------------------------------------------------------------------
def test_rbac_three_identities(emu, system, user1, user2):
    groups_path = sub_path(emu) + "/resourcegroups"
    # system-assigned: Reader on the subscription
    assert len(follow(system, groups_path)[0]) >= 7
    assert system.get(f"{sub_path(emu)}/resourceGroups/rg-data").status_code == 200
    # user #1: Reader on the VM's resource group only: lists are filtered, other groups are 403
    assert [g["name"] for g in follow(user1, groups_path)[0]] == [emu.vm.resource_group]
    assert user1.get(emu.vm.resource_id, VM_VERSION).status_code == 200
    r = user1.get(f"{sub_path(emu)}/resourceGroups/rg-data")
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
    assert {i["id"].split("/")[4] for i in follow(user1, sub_path(emu) + "/resources")[0]} == {emu.vm.resource_group}
    # user #2: nothing
    oid = emu.verify(user2.token)["oid"]
    r = user2.get(emu.vm.resource_id, VM_VERSION)
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "AuthorizationFailed", "message": (
        f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
        f"'Microsoft.Compute/virtualMachines/read' over scope '{emu.vm.resource_id}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials.")}
    r = user2.get(groups_path)
    assert r.status_code == 403 and "'Microsoft.Resources/subscriptions/resourceGroups/read'" in r.text
    assert f"over scope '{sub_path(emu)}'" in r.text
    assert user2.get("/subscriptions", "2022-12-01").json()["value"] == []
    rec = emu.requests.filter(service="arm", status=403)[-1]
    assert rec.extra["identity"] == emu.vm.user_identities[1].name and rec.extra["principal"] == oid


def test_role_assignment_added_at_runtime_takes_effect(emu, user2):
    from mi_notebook.emulator import RoleAssignment

    oid = emu.verify(user2.token)["oid"]
    assert user2.get(emu.vm.resource_id, VM_VERSION).status_code == 403
    ra = emu.vm.add_role_assignment(RoleAssignment(oid, "Reader", emu.vm.resource_id))
    try:
        assert user2.get(emu.vm.resource_id, VM_VERSION).status_code == 200
        assert user2.get(emu.vm.resource_group_id).status_code == 403  # the scope is the VM only
    finally:
        emu.vm.role_assignments.remove(ra)


def test_writes_need_write_permission_and_are_not_served(emu, system):
    r = system.get(f"{sub_path(emu)}/resourceGroups/rg-new", method="PUT", json={"location": "westeurope"})
    assert r.status_code == 403
    assert "'Microsoft.Resources/subscriptions/resourceGroups/write'" in r.json()["error"]["message"]


# ---- headers, throttling ---------------------------------------------------------------------------
def test_common_headers(emu, system):
    cid = str(uuid.uuid4())
    r1 = system.get(sub_path(emu) + "/resourcegroups", headers={"x-ms-correlation-request-id": cid})
    r2 = system.get(sub_path(emu) + "/resourcegroups")
    for r in (r1, r2):
        uuid.UUID(r.headers["x-ms-request-id"])
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r1.headers["x-ms-correlation-request-id"] == cid
    assert r1.headers["x-ms-request-id"] != r2.headers["x-ms-request-id"]
    assert int(r2.headers["x-ms-ratelimit-remaining-subscription-reads"]) == \
        int(r1.headers["x-ms-ratelimit-remaining-subscription-reads"]) - 1
    assert system.get(sub_path(emu) + "/resourcegroups", None).headers.get("x-ms-request-id")  # errors too


def test_throttling_token_bucket_in_virtual_time():
    clock = VirtualClock(START)
    with Emulator(clock=clock, arm={"read_capacity": 3, "read_refill": 0.5}) as e:
        system, user1 = Caller(e, token_for(e)), Caller(e, token_for(e, client_id=e.vm.user_identities[0].client_id))
        path = e.vm.resource_group_id
        remaining = [int(system.get(path).headers["x-ms-ratelimit-remaining-subscription-reads"]) for _ in range(3)]
        assert remaining == [2, 1, 0]
        r = system.get(path)
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        assert r.json()["error"] == {"code": "SubscriptionRequestsThrottled", "message": (
            f"Number of 'read' requests for subscription '{e.vm.subscription_id}' actor "
            f"'{e.verify(system.token)['oid']}' exceeded. Please try again after '2' seconds after additional "
            "tokens are available. Refer to https://aka.ms/arm-throttling for additional information.")}
        assert user1.get(path).status_code == 200  # per principal
        clock.now += 2
        assert system.get(path).status_code == 200
    assert Emulator(arm={"throttle": False}).throttle  # the IMDS side keeps its own setting


def test_documented_bucket_defaults():
    from mi_notebook.emulator.arm import ArmOptions

    assert (ArmOptions().read_capacity, ArmOptions().read_refill) == (250, 25.0)


# ---- faults ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,code", [(404, "NotFound"), (500, "InternalServerError"), (502, "BadGateway"),
                                         (503, "ServiceUnavailable"), (504, "GatewayTimeout")])
def test_status_faults_use_the_arm_envelope(emu, system, status, code):
    emu.inject(status, endpoint="arm")
    r = system.get(sub_path(emu))
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert r.headers["x-ms-request-id"]
    assert system.get(sub_path(emu), "2022-12-01").status_code == 200  # count=1


def test_429_fault_has_retry_after_and_does_not_touch_imds(emu, system):
    emu.inject(429, endpoint="arm", retry_after=7)
    token_for(emu)  # IMDS is not affected by an "arm" fault
    r = system.get(sub_path(emu))
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "SubscriptionRequestsThrottled"


def test_behaviour_faults(emu, system):
    emu.inject("html", endpoint="arm")
    r = system.get(sub_path(emu))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    emu.inject("truncated", endpoint="arm")
    r = system.get(sub_path(emu), "2022-12-01")
    with pytest.raises(ValueError):
        json.loads(r.text)
    emu.inject("drop", endpoint="arm")
    with pytest.raises(requests.ConnectionError):
        system.get(sub_path(emu))
    emu.inject("hang", endpoint="arm", seconds=5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        system.get(sub_path(emu), timeout=(2, 0.3))
    assert system.get(sub_path(emu), "2022-12-01").status_code == 200


def test_admin_endpoint_injects_arm_faults_on_both_ports(emu, system):
    for base, verify in ((emu.imds_url, None), (emu.arm_url, emu.ca_bundle)):
        r = requests.post(base + "/__emulator__/faults", json={"fault": 503, "endpoint": "arm"}, verify=verify,
                          headers=emu.admin_headers)
        assert r.status_code == 201
        assert system.get(sub_path(emu)).status_code == 503


def test_request_log_records_arm_without_tokens(emu, system):
    emu.requests.clear()
    system.get(emu.vm.resource_id, VM_VERSION)
    rec = emu.requests.last
    assert (rec.service, rec.endpoint, rec.status) == ("arm", "resource", 200)
    assert rec.extra["action"] == "Microsoft.Compute/virtualMachines/read" and rec.extra["identity"] == emu.vm.name
    assert system.token not in json.dumps(rec.to_dict())
    assert rec.headers["Authorization"].startswith("Bearer sha256:")


def test_simple_filters_and_unsupported_ones(emu, system):
    path = f"{sub_path(emu)}/resourceGroups/{emu.vm.resource_group}/resources"
    r = system.get(path, params={"$filter": "resourceType eq 'microsoft.managedidentity/userassignedidentities'"})
    assert sorted(i["name"] for i in r.json()["value"]) == sorted(u.name for u in emu.vm.user_identities)
    r = system.get(path, params={"$filter": f"name eq '{emu.vm.name}' and resourceType eq "
                                            "'Microsoft.Compute/virtualMachines'"})
    assert [i["id"] for i in r.json()["value"]] == [emu.vm.resource_id]
    r = system.get(path, params={"$filter": "startswith(name, 'vm')"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidFilter"
