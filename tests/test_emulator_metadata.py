"""Instance metadata endpoints of the emulator: documents, leaf paths, versions, identity info, errors."""

from __future__ import annotations

import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import Emulator

V = "2021-02-01"
H = {"Metadata": "true"}
BAD_VERSION = {
    "error": "Bad request. api-version is invalid or was not specified in the request. For more information "
             "refer to aka.ms/azureimds",
    "newest-versions": ["2025-04-07", "2024-07-17", "2024-03-15"],
}


@pytest.fixture(scope="module")
def emu():
    with Emulator(throttle=False, seed=11, user_assigned=["alpha"], tags={"env": "test", "team": "ml"}) as e:
        yield e


@pytest.fixture(scope="module")
def http():
    with requests.Session() as s:
        yield s


def get(http, emu, path, params=None, headers=H):
    return http.get(emu.imds_url + path, params=params, headers=headers, timeout=5)


def test_instance_document(emu, http):
    r = get(http, emu, "/metadata/instance", {"api-version": V})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["Server"].startswith("IMDS/150.870.65.")
    doc = r.json()
    assert set(doc) == {"compute", "network"}
    c = doc["compute"]
    vm = emu.vm
    assert c["subscriptionId"] == vm.subscription_id and c["resourceGroupName"] == vm.resource_group
    assert c["name"] == vm.name and c["location"] == vm.location and c["vmId"] == vm.vm_id
    assert c["resourceId"] == (f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                               f"/providers/Microsoft.Compute/virtualMachines/{vm.name}")
    assert c["tags"] == "env:test;team:ml"
    assert c["tagsList"] == [{"name": "env", "value": "test"}, {"name": "team", "value": "ml"}]
    assert c["azEnvironment"] == "AzurePublicCloud" and c["vmScaleSetName"] == ""
    for key in ("azEnvironment", "location", "name", "osType", "resourceGroupName", "resourceId",
                "subscriptionId", "tags", "vmId", "vmSize", "vmScaleSetName", "zone"):
        assert isinstance(c[key], str), key
    nic = doc["network"]["interface"][0]
    assert nic["ipv4"]["ipAddress"][0]["privateIpAddress"] == vm.private_ip
    assert nic["macAddress"] == vm.mac_address


def test_compute_and_network_sections(emu, http):
    compute = get(http, emu, "/metadata/instance/compute", {"api-version": V}).json()
    assert compute["vmId"] == emu.vm.vm_id
    network = get(http, emu, "/metadata/instance/network", {"api-version": V}).json()
    assert "interface" in network


@pytest.mark.parametrize("path,expected", [
    ("/metadata/instance/compute/vmId", lambda vm: vm.vm_id),
    ("/metadata/instance/compute/subscriptionId", lambda vm: vm.subscription_id),
    ("/metadata/instance/compute/location", lambda vm: vm.location),
    ("/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress", lambda vm: vm.private_ip),
    ("/metadata/instance/compute/tagsList/1/value", lambda vm: "ml"),
])
def test_leaf_with_format_text(emu, http, path, expected):
    r = get(http, emu, path, {"api-version": V, "format": "text"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == expected(emu.vm)


def test_leaf_without_format_text_is_400(emu, http):
    r = get(http, emu, "/metadata/instance/compute/vmId", {"api-version": V})
    assert r.status_code == 400
    assert set(r.json()) == {"error"} and "format=text" in r.json()["error"]


def test_text_format_on_a_node_lists_its_children(emu, http):
    r = get(http, emu, "/metadata/instance", {"api-version": V, "format": "text"})
    assert r.text.splitlines() == ["compute/", "network/"]
    r = get(http, emu, "/metadata/instance/network/interface", {"api-version": V, "format": "text"})
    assert r.text.splitlines() == ["0/"]


def test_unknown_instance_path_is_404(emu, http):
    r = get(http, emu, "/metadata/instance/compute/nope", {"api-version": V, "format": "text"})
    assert r.status_code == 404 and "error" in r.json()


def test_missing_header_on_instance(emu, http):
    r = get(http, emu, "/metadata/instance", {"api-version": V}, headers={})
    assert r.status_code == 400
    assert r.json() == {"error": "Bad request. Required metadata header not specified"}


@pytest.mark.parametrize("params", [{}, {"api-version": "2016-01-01"}, {"api-version": "nonsense"}])
def test_missing_or_unsupported_api_version_on_instance(emu, http, params):
    r = get(http, emu, "/metadata/instance", params)
    assert r.status_code == 400
    assert r.json() == BAD_VERSION


def test_versions_needs_no_api_version(emu, http):
    r = get(http, emu, "/metadata/versions")
    assert r.status_code == 200
    versions = r.json()["apiVersions"]
    assert "2018-02-01" in versions and "2025-04-07" in versions and versions == sorted(versions)


def test_versions_still_needs_the_header(emu, http):
    r = get(http, emu, "/metadata/versions", headers={})
    assert r.status_code == 400


def test_identity_info(emu, http):
    r = get(http, emu, "/metadata/identity/info", {"api-version": "2018-02-01"})
    assert r.status_code == 200 and r.json() == {"tenantId": emu.vm.tenant_id}
    r = get(http, emu, "/metadata/identity/info", {"api-version": "2018-02-01"}, headers={})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_unknown_paths_are_json_404(emu, http):
    for path in ("/", "/latest/meta-data/", "/computeMetadata/v1/", "/metadata/identity/oauth2/token/extra"):
        r = get(http, emu, path)
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("application/json")
        assert "error" in r.json()


def test_post_on_instance_is_405(emu, http):
    r = http.post(emu.imds_url + "/metadata/instance", params={"api-version": V}, headers=H, data="x", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"


def test_x_forwarded_for_on_instance(emu, http):
    r = get(http, emu, "/metadata/instance", {"api-version": V}, headers={**H, "X-Forwarded-For": "1.2.3.4"})
    assert r.status_code == 400 and "X-Forwarded-For" in r.json()["error"]


def test_instance_metadata_throttle_is_5_per_second():
    clock = VirtualClock(1_800_000_000.0)
    with Emulator(throttle=True, clock=clock) as e, requests.Session() as s:
        statuses = [s.get(e.imds_url + "/metadata/instance", params={"api-version": V}, headers=H,
                          timeout=5).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        clock.now += 1.0
        assert s.get(e.imds_url + "/metadata/instance", params={"api-version": V}, headers=H,
                     timeout=5).status_code == 200
