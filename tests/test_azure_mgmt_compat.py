"""Unmodified official management SDKs read from the emulator's ARM side, given only its endpoint and CA.

azure-mgmt-resource 26 / azure-mgmt-compute / azure-mgmt-msi build an ``ARMPipelineClient`` with
``ARMChallengeAuthenticationPolicy``: bearer tokens only over https (hence the emulator's TLS),
``connection_verify`` is passed to requests per call (so the emulator's CA bundle wins over
REQUESTS_CA_BUNDLE), and lists follow ``nextLink``. The credential is ``mi.credential()``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("azure.mgmt.resource")

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError  # noqa: E402

try:  # azure-mgmt-resource >= 26 keeps it in the resources subpackage
    from azure.mgmt.resource.resources import ResourceManagementClient
except ImportError:  # pragma: no cover - older releases
    from azure.mgmt.resource import ResourceManagementClient

import mi_notebook as mi  # noqa: E402
from mi_notebook.emulator import Emulator  # noqa: E402

SCOPES = ["https://management.azure.com/.default"]


@pytest.fixture
def conn(clean_connection):
    connection = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=5))
    yield connection
    mi.disconnect()


def sdk_kwargs(emu: Emulator) -> dict:
    return {"base_url": emu.arm_url, "connection_verify": emu.ca_bundle, "credential_scopes": SCOPES}


def test_resource_management_client_lists_groups_and_resources(conn):
    emu = conn.emulator
    client = ResourceManagementClient(mi.credential(), emu.vm.subscription_id, **sdk_kwargs(emu))
    groups = list(client.resource_groups.list())
    assert groups[0].name == emu.vm.resource_group and len(groups) >= 7  # several pages followed
    pages = [r for r in emu.requests.filter(service="arm") if r.path.lower().endswith("/resourcegroups")]
    assert len(pages) >= 3 and any("$skiptoken" in r.query for r in pages)
    assert client.resource_groups.get(emu.vm.resource_group).location == emu.vm.location
    types = {r.type for r in client.resources.list_by_resource_group(emu.vm.resource_group)}
    assert {"Microsoft.Compute/virtualMachines", "Microsoft.ManagedIdentity/userAssignedIdentities"} <= types
    # one IMDS request served every ARM call: the SDK went through mi-notebook's cache
    assert len(emu.requests.filter(service="imds", endpoint="token")) == 1


def test_compute_client_reads_the_vm_and_its_identities(conn):
    from azure.mgmt.compute import ComputeManagementClient

    emu = conn.emulator
    client = ComputeManagementClient(mi.credential(), emu.vm.subscription_id, **sdk_kwargs(emu))
    vm = client.virtual_machines.get(emu.vm.resource_group, emu.vm.name)
    assert vm.id == emu.vm.resource_id and vm.vm_id == emu.vm.vm_id
    assert vm.hardware_profile.vm_size == emu.vm.vm_size
    assert vm.identity.principal_id == emu.vm.system_identity.object_id
    assert vm.identity.type == "SystemAssigned, UserAssigned"  # a str enum in the SDK
    got = {k.lower(): (v.client_id, v.principal_id) for k, v in vm.identity.user_assigned_identities.items()}
    assert got == {u.resource_id.lower(): (u.client_id, u.object_id) for u in emu.vm.user_identities}


def test_msi_client_reads_a_user_assigned_identity(conn):
    msi = pytest.importorskip("azure.mgmt.msi")
    emu = conn.emulator
    ua = emu.vm.user_identities[0]
    client = msi.ManagedServiceIdentityClient(mi.credential(), emu.vm.subscription_id, **sdk_kwargs(emu))
    got = client.user_assigned_identities.get(emu.vm.resource_group, ua.name)
    assert (got.client_id, got.principal_id) == (ua.client_id, ua.object_id)


def test_sdk_sees_the_documented_403_and_401(conn):
    emu = conn.emulator
    nobody = emu.vm.user_identities[1]
    client = ResourceManagementClient(mi.credential(mi.Identity.user(client_id=nobody.client_id)),
                                      emu.vm.subscription_id, **sdk_kwargs(emu))
    with pytest.raises(HttpResponseError) as info:
        client.resource_groups.get(emu.vm.resource_group)
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
    assert nobody.object_id in info.value.error.message

    vault = ResourceManagementClient(mi.credential(), emu.vm.subscription_id, base_url=emu.arm_url,
                                     connection_verify=emu.ca_bundle,
                                     credential_scopes=["https://vault.azure.net/.default"])
    with pytest.raises(ClientAuthenticationError) as info:
        vault.resource_groups.get(emu.vm.resource_group)
    assert info.value.status_code == 401 and info.value.error.code == "InvalidAuthenticationTokenAudience"


def test_sdk_refuses_plain_http_which_is_why_the_emulator_speaks_tls(clean_connection):
    from azure.core.exceptions import ServiceRequestError

    with Emulator(throttle=False, arm={"tls": False}) as emu:
        conn = mi.connect(emu.imds_url)
        client = ResourceManagementClient(mi.credential(connection=conn), emu.vm.subscription_id,
                                          base_url=emu.arm_url, credential_scopes=SCOPES, retry_total=0)
        with pytest.raises(ServiceRequestError, match="(?i)https|TLS|bearer"):
            client.resource_groups.get(emu.vm.resource_group)
        assert not emu.requests.filter(service="arm")
        mi.disconnect()
