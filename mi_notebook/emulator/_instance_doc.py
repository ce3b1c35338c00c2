"""The instance metadata document IMDS serves, shaped by the requested api-version.

The "Azure Instance Metadata Service" article (MicrosoftDocs/azure-compute-docs,
``articles/virtual-machines/instance-metadata-service.md``) lists the supported api-versions and, for
each field of ``compute``, the version that introduced it. :func:`document` builds the newest document
for a VM and drops every field introduced after the requested version, so ``2019-03-11`` gets no
``storageProfile`` and ``2021-12-13`` no ``imageReference.exactVersion``. Every primitive is a string
and inapplicable values are present but empty, as the article says. Fields the article dates
``2017-04-02`` (when the instance category appeared) are served for every version, ``2017-03-01``
included: the article does not say what that version returns (docs/emulator.md marks it a best guess).

Example::

    >>> from mi_notebook.emulator.world import VirtualMachine
    >>> vm = VirtualMachine.build()
    >>> "storageProfile" in document(vm, "2019-06-01")["compute"], "storageProfile" in document(vm, "2019-04-30")["compute"]
    (True, False)
    >>> sorted(document(vm, "2023-07-01")["compute"]["storageProfile"]["imageReference"])[:3]
    ['communityGalleryImageId', 'exactVersion', 'id']
    >>> "2021-08-01" in API_VERSIONS, "2022-08-01" in API_VERSIONS
    (True, False)
"""

from __future__ import annotations

from typing import Any

from .world import VirtualMachine

__all__ = ["API_VERSIONS", "INTRODUCED", "NEWEST_VERSIONS", "compute", "document", "network"]

# "Supported API versions" of the article, oldest first (the article lists them newest first).
API_VERSIONS = (
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01", "2018-04-02",
    "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01",
    "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01",
    "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01",
    "2021-11-15", "2021-12-13", "2023-07-01", "2023-11-15", "2024-03-15", "2024-07-17", "2025-04-07",
)
NEWEST_VERSIONS = ["2025-04-07", "2024-07-17", "2024-03-15"]

# "Version introduced" from the article's compute / storage profile tables (later than 2017-04-02 only).
INTRODUCED: dict[str, str] = {
    "compute.azEnvironment": "2018-10-01",
    "compute.additionalCapabilities": "2021-11-01",
    "compute.customData": "2019-02-01",
    "compute.evictionPolicy": "2020-12-01",
    "compute.extendedLocation": "2021-03-01",
    "compute.host": "2021-11-15",
    "compute.hostGroup": "2021-11-15",
    "compute.isHostCompatibilityLayerVm": "2020-06-01",
    "compute.licenseType": "2020-09-01",
    "compute.osProfile": "2020-07-15",
    "compute.osProfile.disablePasswordAuthentication": "2020-10-01",
    "compute.physicalZone": "2023-11-15",
    "compute.placementGroupId": "2017-08-01",
    "compute.plan": "2018-04-02",
    "compute.platformSubFaultDomain": "2021-10-01",
    "compute.priority": "2020-12-01",
    "compute.provider": "2018-10-01",
    "compute.publicKeys": "2018-04-02",
    "compute.resourceGroupName": "2017-08-01",
    "compute.resourceId": "2019-03-11",
    "compute.securityProfile": "2020-06-01",
    "compute.securityProfile.encryptionAtHost": "2021-11-01",
    "compute.securityProfile.securityType": "2021-12-13",
    "compute.storageProfile": "2019-06-01",
    "compute.storageProfile.imageReference.communityGalleryImageId": "2023-07-01",
    "compute.storageProfile.imageReference.sharedGalleryImageId": "2023-07-01",
    "compute.storageProfile.imageReference.exactVersion": "2023-07-01",
    "compute.storageProfile.resourceDisk": "2021-02-01",
    "compute.subscriptionId": "2017-08-01",
    "compute.tags": "2017-08-01",
    "compute.tagsList": "2019-06-04",
    "compute.userData": "2021-01-01",
    "compute.virtualMachineScaleSet": "2021-03-01",
    "compute.vmScaleSetName": "2017-12-01",
    "compute.zone": "2017-12-01",
}


def _image(vm: VirtualMachine) -> dict[str, str]:
    if vm.os_type == "Linux":
        return {"offer": "0001-com-ubuntu-server-jammy", "publisher": "canonical", "sku": "22_04-lts-gen2",
                "version": "22.04.202411010"}
    return {"offer": "WindowsServer", "publisher": "MicrosoftWindowsServer", "sku": "2022-datacenter-g2",
            "version": "20348.2849.241106"}


def storage_profile(vm: VirtualMachine) -> dict[str, Any]:
    """``compute.storageProfile``: the marketplace image, the managed OS disk (the one ARM lists), no
    data disks, a 16 GiB local temp disk; the shape of the article's example response."""
    image = _image(vm)
    return {
        "dataDisks": [],
        "imageReference": {
            "id": "", "offer": image["offer"], "publisher": image["publisher"], "sku": image["sku"],
            "version": image["version"], "communityGalleryImageId": "", "sharedGalleryImageId": "",
            "exactVersion": "",
        },
        "osDisk": {
            "caching": "ReadWrite",
            "createOption": "FromImage",
            "diffDiskSettings": {"option": ""},
            "diskSizeGB": "30",
            "encryptionSettings": {"enabled": "false"},
            "image": {"uri": ""},
            "managedDisk": {
                "id": f"{vm.resource_group_id}/providers/Microsoft.Compute/disks/{vm.os_disk_name}",
                "storageAccountType": "Premium_LRS",
            },
            "name": vm.os_disk_name,
            "osType": vm.os_type,
            "vhd": {"uri": ""},
            "writeAcceleratorEnabled": "false",
        },
        "resourceDisk": {"size": "16384"},
    }


def compute(vm: VirtualMachine) -> dict[str, Any]:
    """The newest ``compute`` section: every primitive a string, inapplicable values ``""``.

    Example::

        >>> c = compute(VirtualMachine.build(tags={"env": "dev"}))
        >>> c["tags"], c["tagsList"], c["vmScaleSetName"]
        ('env:dev', [{'name': 'env', 'value': 'dev'}], '')
    """
    linux = vm.os_type == "Linux"
    image = _image(vm)
    return {
        "additionalCapabilities": {"hibernationEnabled": "false"},
        "azEnvironment": vm.cloud,
        "customData": "",
        "evictionPolicy": "",
        "extendedLocation": {"name": "", "type": ""},
        "host": {"id": ""},
        "hostGroup": {"id": ""},
        "isHostCompatibilityLayerVm": "false",
        "licenseType": "",
        "location": vm.location,
        "name": vm.name,
        "offer": image["offer"],
        "osProfile": {"adminUsername": "azureuser", "computerName": vm.name,
                      "disablePasswordAuthentication": "true" if linux else "false"},
        "osType": vm.os_type,
        "physicalZone": f"{vm.location}-az0{vm.zone}" if vm.zone else "",
        "placementGroupId": "",
        "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": "0",
        "platformSubFaultDomain": "",
        "platformUpdateDomain": "0",
        "priority": "",
        "provider": "Microsoft.Compute",
        "publicKeys": [],
        "publisher": image["publisher"],
        "resourceGroupName": vm.resource_group,
        "resourceId": vm.resource_id,
        "securityProfile": {"encryptionAtHost": "false", "secureBootEnabled": "true",
                            "securityType": "TrustedLaunch", "virtualTpmEnabled": "true"},
        "sku": image["sku"],
        "storageProfile": storage_profile(vm),
        "subscriptionId": vm.subscription_id,
        "tags": ";".join(f"{k}:{v}" for k, v in vm.tags.items()),
        "tagsList": [{"name": k, "value": v} for k, v in vm.tags.items()],
        "userData": "",
        "version": image["version"],
        "virtualMachineScaleSet": {"id": ""},
        "vmId": vm.vm_id,
        "vmScaleSetName": "",
        "vmSize": vm.vm_size,
        "zone": vm.zone,
    }


def network(vm: VirtualMachine) -> dict[str, Any]:
    """The ``network`` section: one interface with the VM's private address and MAC.

    Example::

        >>> network(VirtualMachine.build())["interface"][0]["ipv4"]["subnet"]
        [{'address': '10.0.0.0', 'prefix': '24'}]
    """
    address, _, prefix = vm.subnet_prefix.partition("/")
    return {"interface": [{
        "ipv4": {"ipAddress": [{"privateIpAddress": vm.private_ip, "publicIpAddress": ""}],
                 "subnet": [{"address": address, "prefix": prefix or "24"}]},
        "ipv6": {"ipAddress": []},
        "macAddress": vm.mac_address,
    }]}


def _prune(node: Any, path: str, version: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            child = f"{path}.{key}"
            if INTRODUCED.get(child, "") > version:
                continue
            out[key] = _prune(value, child, version)
        return out
    if isinstance(node, list):
        return [_prune(item, path, version) for item in node]
    return node


def document(vm: VirtualMachine, version: str) -> dict[str, Any]:
    """The ``/metadata/instance`` document for ``version`` (one of :data:`API_VERSIONS`).

    Example::

        >>> doc = document(VirtualMachine.build(), "2018-02-01")
        >>> "resourceId" in doc["compute"], "vmScaleSetName" in doc["compute"], sorted(doc)
        (False, True, ['compute', 'network'])
    """
    if version not in API_VERSIONS:
        raise ValueError(f"api-version {version!r} is not one IMDS lists; choose one of {', '.join(API_VERSIONS)}")
    return {"compute": _prune(compute(vm), "compute", version), "network": network(vm)}
