"""Instance metadata reads against the emulator (same wire rules and error classes as tokens)."""

from __future__ import annotations

import pytest
from helpers import logged

from mi_notebook import errors
from mi_notebook.connection import connect
from mi_notebook.metadata import (
    INSTANCE_API_VERSION,
    InstanceMetadata,
    api_versions,
    instance_metadata,
    tenant_id,
)


def test_compute_metadata_names_this_vm(transport_emu, make_imds_client):
    md = instance_metadata(make_imds_client())
    vm = transport_emu.vm
    assert md.subscription_id == vm.subscription_id
    assert md.resource_group == vm.resource_group
    assert md.vm_name == vm.name
    assert md.resource_id == vm.resource_id
    assert md.location and md.vm_id and md.tags
    (record,) = logged(transport_emu, 1, endpoint="instance")
    assert record.path == "/metadata/instance/compute"
    assert record.query == {"api-version": [INSTANCE_API_VERSION]}
    assert record.headers.get("Metadata") == "true"
    assert md.to_dict()["vm_name"] == vm.name


def test_tenant_and_versions(transport_emu, make_imds_client):
    client = make_imds_client()
    assert tenant_id(client) == transport_emu.vm.tenant_id
    assert INSTANCE_API_VERSION in api_versions(client)


def test_retries_like_tokens(transport_emu, make_imds_client, virtual_clock):
    transport_emu.inject(503, "instance")
    md = instance_metadata(make_imds_client())
    assert md.timeline.summary().endswith("503, 200") and len(virtual_clock.slept) == 1


def test_errors_are_classified(transport_emu, make_imds_client):
    transport_emu.inject("html", "instance", count=None)
    with pytest.raises(errors.UnexpectedResponseError) as info:
        instance_metadata(make_imds_client())
    assert "instance metadata request" in info.value.message
    transport_emu.clear_faults()
    with pytest.raises(errors.BadRequestError) as info:
        instance_metadata(make_imds_client(), api_version="1999-01-01")
    assert info.value.status == 400


def test_uses_the_current_connection_by_default(transport_emu, clean_connection):
    connect(transport_emu.imds_url)
    assert instance_metadata().vm_name == transport_emu.vm.name


def test_from_compute_fills_gaps_from_the_resource_id():
    rid = "/subscriptions/s-1/resourcegroups/rg-a/providers/Microsoft.Compute/virtualMachines/vm-b"
    md = InstanceMetadata.from_compute({"resourceId": rid, "tagsList": [{"name": "k", "value": "v"}]})
    assert (md.subscription_id, md.resource_group, md.vm_name, md.tags) == ("s-1", "rg-a", "vm-b", {"k": "v"})
    built = InstanceMetadata.from_compute({"subscriptionId": "s", "resourceGroupName": "g", "name": "n"})
    assert built.resource_id == "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/n"
    with pytest.raises(errors.UnexpectedResponseError):
        InstanceMetadata.from_compute(["not", "a", "dict"])


def test_instance_metadata_parsed_without_sockets():
    from mi_notebook.clock import VirtualClock
    from mi_notebook.http import MockTransport
    from mi_notebook.sources.imds import ImdsClient

    rid = "/subscriptions/s-1/resourceGroups/rg-a/providers/Microsoft.Compute/virtualMachines/vm-b"
    answers = iter([(503, {"Content-Type": "text/plain"}, b"busy"),
                    (200, {}, {"compute": {"resourceId": rid, "location": "westeurope", "tags": "env:dev"}})])
    wire = MockTransport(lambda request: next(answers))
    clock = VirtualClock()
    md = instance_metadata(ImdsClient(url="http://127.0.0.1:9", transport=wire, clock=clock))
    assert (md.subscription_id, md.resource_group, md.vm_name, md.tags) == ("s-1", "rg-a", "vm-b", {"env": "dev"})
    assert md.timeline.statuses == ["503", "200"] and len(clock.slept) == 1
    assert [r.params for r in wire.requests] == [(("api-version", INSTANCE_API_VERSION),)] * 2
    assert all(r.headers["Metadata"] == "true" and r.proxies is False for r in wire.requests)
