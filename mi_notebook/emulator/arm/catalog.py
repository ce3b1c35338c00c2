"""What the emulated Azure Resource Manager knows: the subscription, its resource groups and resources.

Everything is derived from the :class:`~mi_notebook.emulator.world.VirtualMachine` on each call (the VM is
mutable: a test may add an identity to a running emulator and ARM shows it at once). The VM's own
records agree with the IMDS side: the VM's ``identity`` block lists the same principal and client ids
the tokens carry, and every user-assigned identity is a ``Microsoft.ManagedIdentity/userAssignedIdentities``
resource in its resource group.

``demo_data`` adds a handful of ordinary resource groups and resources (storage, network, a key vault,
...) so that lists need several pages at the emulator's small page size. Names are derived from the
VM's seed, so two emulators with the same seed list the same resources.

Example::

    >>> from mi_notebook.emulator.world import VirtualMachine
    >>> cat = ArmCatalog(VirtualMachine.build(seed=1))
    >>> len(cat.groups()) >= 7, cat.find(cat.vm.resource_id)["type"]
    (True, 'Microsoft.Compute/virtualMachines')
    >>> cat.vm_record()["identity"]["type"]
    'SystemAssigned, UserAssigned'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..clouds import cloud
from ..world import VirtualMachine, VmIdentity

__all__ = ["ArmCatalog", "ResourceGroup", "parse_resource_id"]

VM_TYPE = "Microsoft.Compute/virtualMachines"
UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
GROUP_TYPE = "Microsoft.Resources/resourceGroups"


@dataclass(frozen=True)
class ResourceGroup:
    """A resource group: ``name``, ``location``, ``tags``; ``id`` under ``subscription_id``.

    Example::

        >>> ResourceGroup("s", "rg", "westeurope").record()["id"]
        '/subscriptions/s/resourceGroups/rg'
    """

    subscription_id: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "type": GROUP_TYPE, "location": self.location}
        if self.tags:
            out["tags"] = dict(self.tags)
        out["properties"] = {"provisioningState": "Succeeded"}
        return out


def parse_resource_id(resource_id: str) -> dict[str, str] | None:
    """``subscription``, ``group``, ``namespace``, ``type``, ``name`` of a top-level resource id (or None).

    Example::

        >>> parse_resource_id("/subscriptions/s/resourcegroups/rg/providers/Microsoft.Web/sites/app")["type"]
        'sites'
    """
    parts = [p for p in resource_id.split("/") if p]
    low = [p.lower() for p in parts]
    if len(parts) != 8 or low[0] != "subscriptions" or low[2] != "resourcegroups" or low[4] != "providers":
        return None
    return {"subscription": parts[1], "group": parts[3], "namespace": parts[5], "type": parts[6], "name": parts[7]}


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class ArmCatalog:
    """The ARM view of ``vm``'s subscription. ``demo_data``: add the demo resource groups and resources.

    Example::

        >>> cat = ArmCatalog(VirtualMachine.build(), demo_data=False)
        >>> [g.name for g in cat.groups()], len(cat.in_group("rg-notebooks"))
        (['rg-notebooks'], 9)
    """

    def __init__(self, vm: VirtualMachine, *, demo_data: bool = True) -> None:
        self.vm = vm
        self.demo_data = demo_data
        self._h = hashlib.sha256(f"arm:{vm.seed}".encode()).hexdigest()

    # ---- the subscription ----------------------------------------------------------------------------
    @property
    def subscription_id(self) -> str:
        return self.vm.subscription_id

    def subscription_record(self) -> dict[str, Any]:
        vm = self.vm
        return {
            "id": f"/subscriptions/{vm.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": vm.subscription_id,
            "tenantId": vm.tenant_id,
            "displayName": "mi-notebook emulated subscription",
            "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                     "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        }

    # ---- resource groups -----------------------------------------------------------------------------
    def groups(self) -> list[ResourceGroup]:
        """Every resource group, the VM's first, then the demo groups, then identities' own groups."""
        vm = self.vm
        sub = vm.subscription_id
        out = [ResourceGroup(sub, vm.resource_group, vm.location, {"purpose": "notebooks"})]
        if self.demo_data:
            out += [ResourceGroup(sub, name, location, tags) for name, location, tags in self._demo_groups()]
        known = {g.name.lower() for g in out}
        for ident in vm.user_identities:
            parsed = parse_resource_id(ident.resource_id)
            if parsed and parsed["subscription"].lower() == sub.lower() and parsed["group"].lower() not in known:
                out.append(ResourceGroup(sub, parsed["group"], vm.location))
                known.add(parsed["group"].lower())
        return out

    def group(self, name: str) -> ResourceGroup | None:
        return next((g for g in self.groups() if g.name.lower() == name.lower()), None)

    def _demo_groups(self) -> list[tuple[str, str, dict[str, str]]]:
        loc = self.vm.location
        return [
            ("rg-data", loc, {"purpose": "data", "costCenter": "1234"}),
            ("rg-network", loc, {"purpose": "network"}),
            ("rg-shared", loc, {"purpose": "shared services"}),
            ("rg-web", loc, {"purpose": "web"}),
            ("rg-monitoring", loc, {}),
            ("NetworkWatcherRG", loc, {}),
            (f"DefaultResourceGroup-{_short_location(loc)}", loc, {}),
        ]

    # ---- resources -----------------------------------------------------------------------------------
    def resources(self) -> list[dict[str, Any]]:
        """Every resource's full record (the VM and the identities included), in a stable order."""
        vm = self.vm
        out = [self.vm_record()]
        out += [self._generic(vm.resource_group, t, n, extra) for t, n, extra in self._vm_group_resources()]
        out += [self.identity_record(i) for i in self._identities_here()]
        if self.demo_data:
            out += [self._generic(g, t, n, extra) for g, t, n, extra in self._demo_resources()]
        return out

    def find(self, resource_id: str) -> dict[str, Any] | None:
        """The record whose id equals ``resource_id`` (case-insensitive), or None."""
        key = resource_id.rstrip("/").lower()
        return next((r for r in self.resources() if r["id"].lower() == key), None)

    def in_group(self, group: str) -> list[dict[str, Any]]:
        g = group.lower()
        return [r for r in self.resources() if (parse_resource_id(r["id"]) or {}).get("group", "").lower() == g]

    def _identities_here(self) -> list[VmIdentity]:
        sub = self.vm.subscription_id.lower()
        return [i for i in self.vm.user_identities
                if (parse_resource_id(i.resource_id) or {}).get("subscription", "").lower() == sub]

    def _vm_group_resources(self) -> list[tuple[str, str, dict[str, Any]]]:
        name, h = self.vm.name, self._h
        return [
            ("Microsoft.Network/networkInterfaces", f"{name}-nic",
             {"properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                 "privateIPAddress": self.vm.private_ip}}], "macAddress": _mac(self.vm.mac_address)}}),
            ("Microsoft.Compute/disks", self.vm.os_disk_name,
             {"sku": {"name": "Premium_LRS", "tier": "Premium"}, "managedBy": self.vm.resource_id,
              "properties": {"diskSizeGB": 30, "osType": self.vm.os_type, "diskState": "Attached"}}),
            ("Microsoft.Network/virtualNetworks", f"{self.vm.resource_group}-vnet",
             {"properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
            ("Microsoft.Network/networkSecurityGroups", f"{name}-nsg", {}),
            ("Microsoft.Storage/storageAccounts", f"stnotebooks{h[32:40]}",
             {"kind": "StorageV2", "sku": {"name": "Standard_LRS", "tier": "Standard"}}),
            ("Microsoft.KeyVault/vaults", f"kv-notebooks-{h[40:46]}",
             {"properties": {"vaultUri": f"https://kv-notebooks-{h[40:46]}{cloud(self.vm.cloud).vault_suffix}/",
                             "tenantId": self.vm.tenant_id, "enableRbacAuthorization": True}}),
        ]

    def _demo_resources(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        h, loc = self._h, self.vm.location
        return [
            ("rg-data", "Microsoft.Storage/storageAccounts", f"stdata{h[46:54]}",
             {"kind": "StorageV2", "sku": {"name": "Standard_GRS", "tier": "Standard"}}),
            ("rg-data", "Microsoft.Sql/servers", f"sql-data-{h[54:60]}", {}),
            ("rg-data", "Microsoft.DocumentDB/databaseAccounts", f"cosmos-data-{h[:6]}", {"kind": "GlobalDocumentDB"}),
            ("rg-network", "Microsoft.Network/virtualNetworks", "vnet-hub", {}),
            ("rg-network", "Microsoft.Network/networkSecurityGroups", "nsg-hub", {}),
            ("rg-network", "Microsoft.Network/publicIPAddresses", "pip-bastion",
             {"sku": {"name": "Standard", "tier": "Regional"}}),
            ("rg-network", "Microsoft.Network/bastionHosts", "bas-hub", {}),
            ("rg-shared", "Microsoft.KeyVault/vaults", f"kv-shared-{h[6:12]}", {}),
            ("rg-shared", "Microsoft.OperationalInsights/workspaces", "log-shared", {}),
            ("rg-shared", "Microsoft.ContainerRegistry/registries", f"acrshared{h[12:20]}",
             {"sku": {"name": "Basic", "tier": "Basic"}}),
            ("rg-web", "Microsoft.Web/serverFarms", "asp-web", {"kind": "linux",
                                                                "sku": {"name": "B1", "tier": "Basic"}}),
            ("rg-web", "Microsoft.Web/sites", f"app-web-{h[20:26]}", {"kind": "app,linux"}),
            ("rg-monitoring", "Microsoft.Insights/actionGroups", "ag-oncall", {"location": "global"}),
            ("NetworkWatcherRG", "Microsoft.Network/networkWatchers", f"NetworkWatcher_{loc}", {}),
            (f"DefaultResourceGroup-{_short_location(loc)}", "Microsoft.OperationalInsights/workspaces",
             f"DefaultWorkspace-{self.vm.subscription_id}-{_short_location(loc)}", {}),
        ]

    def _generic(self, group: str, rtype: str, name: str, extra: dict[str, Any]) -> dict[str, Any]:
        extra = dict(extra)
        record: dict[str, Any] = {
            "id": f"/subscriptions/{self.vm.subscription_id}/resourceGroups/{group}/providers/{rtype}/{name}",
            "name": name, "type": rtype, "location": extra.pop("location", self.vm.location),
        }
        for key in ("kind", "sku", "managedBy"):
            if key in extra:
                record[key] = extra.pop(key)
        properties = {"provisioningState": "Succeeded", **extra.pop("properties", {})}
        record["properties"] = properties
        return record

    # ---- the VM and its identities -------------------------------------------------------------------
    def identity_block(self) -> dict[str, Any] | None:
        """The VM's ``identity`` as ARM shows it (None when the VM has no managed identity)."""
        vm = self.vm
        system, users = vm.system_identity, vm.user_identities
        if system is None and not users:
            return None
        kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if users else [])
        block: dict[str, Any] = {"type": ", ".join(kinds)}
        if system is not None:
            block["principalId"] = system.object_id
            block["tenantId"] = vm.tenant_id
        if users:
            block["userAssignedIdentities"] = {u.resource_id: {"principalId": u.object_id, "clientId": u.client_id}
                                               for u in users}
        return block

    def vm_record(self) -> dict[str, Any]:
        """The VM as ``GET .../virtualMachines/{name}`` returns it (the fields a reader needs)."""
        vm = self.vm
        nic = (f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
               f"/providers/Microsoft.Network/networkInterfaces/{vm.name}-nic")
        linux = vm.os_type.lower() == "linux"
        record: dict[str, Any] = {"name": vm.name, "id": vm.resource_id, "type": VM_TYPE, "location": vm.location}
        if vm.tags:
            record["tags"] = dict(vm.tags)
        if vm.zone:
            record["zones"] = [vm.zone]
        identity = self.identity_block()
        if identity is not None:
            record["identity"] = identity
        record["properties"] = {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.vm_size},
            "storageProfile": {
                "imageReference": ({"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                                    "sku": "22_04-lts-gen2", "version": "latest"} if linux else
                                   {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                                    "sku": "2022-datacenter-g2", "version": "latest"}),
                "osDisk": {"osType": vm.os_type, "name": vm.os_disk_name,
                           "createOption": "FromImage", "caching": "ReadWrite", "diskSizeGB": 30,
                           "managedDisk": {"storageAccountType": "Premium_LRS"}},
                "dataDisks": [],
            },
            "osProfile": {"computerName": vm.name, "adminUsername": "azureuser",
                          **({"linuxConfiguration": {"disablePasswordAuthentication": True}} if linux else {})},
            "networkProfile": {"networkInterfaces": [{"id": nic}]},
            "provisioningState": "Succeeded",
            "timeCreated": _iso(vm.tenant_created + 86400 * 30),
        }
        return record

    def identity_record(self, ident: VmIdentity) -> dict[str, Any]:
        """A user-assigned identity as ``GET .../userAssignedIdentities/{name}`` returns it."""
        parsed = parse_resource_id(ident.resource_id) or {"name": ident.name}
        return {
            "id": ident.resource_id, "name": parsed["name"], "type": UAMI_TYPE, "location": self.vm.location,
            "tags": {},
            "properties": {"isolationScope": "None", "tenantId": self.vm.tenant_id,
                           "principalId": ident.object_id, "clientId": ident.client_id},
        }


def list_item(record: dict[str, Any]) -> dict[str, Any]:
    """The shorter form a ``.../resources`` list shows (no ``properties``).

    Example::

        >>> list_item({"id": "/x", "name": "x", "type": "T", "location": "l", "properties": {}})
        {'id': '/x', 'name': 'x', 'type': 'T', 'location': 'l'}
    """
    keep = ("id", "name", "type", "kind", "sku", "location", "tags", "managedBy", "identity", "zones")
    return {k: record[k] for k in keep if k in record}


def _short_location(location: str) -> str:
    return {"westeurope": "WEU", "northeurope": "NEU", "eastus": "EUS", "eastus2": "EUS2", "westus": "WUS",
            "westus2": "WUS2", "uksouth": "SUK", "centralus": "CUS"}.get(location.lower(), location.upper()[:4])


def _mac(mac: str) -> str:
    clean = mac.replace("-", "").replace(":", "")
    return "-".join(clean[i:i + 2] for i in range(0, len(clean), 2)).upper()
