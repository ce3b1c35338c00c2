"""Instance metadata: which VM this is (subscription, resource group, name, resource id, ...).

Reads ``GET /metadata/instance/compute?api-version=...`` (header ``Metadata: true``) through the
same wire layer as tokens (:meth:`mi_notebook.sources.ImdsSource.get_json`): no proxies, no redirects,
explicit time-outs, the documented retries, and the same error classes.

Example::

    >>> import mi_notebook as mi
    >>> conn = mi.connect(mode="emulator")
    >>> vm = instance_metadata(conn.client)
    >>> vm.resource_id.startswith(f"/subscriptions/{vm.subscription_id}/resourceGroups/")
    True
    >>> conn.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import clouds, errors

if TYPE_CHECKING:  # pragma: no cover
    from .retry import Timeline
    from .sources.imds import ImdsSource

__all__ = ["INSTANCE_API_VERSION", "InstanceMetadata", "api_versions", "instance_metadata", "tenant_id"]

#: A version every IMDS in service supports and that has every field used here (``azEnvironment`` included:
#: a connection learning its cloud reads the same document, :func:`mi_notebook.clouds.ask_imds`).
INSTANCE_API_VERSION = clouds.INSTANCE_API_VERSION


@dataclass(frozen=True)
class InstanceMetadata:
    """The ``compute`` section of instance metadata, with Pythonic names (missing fields are ``""``).

    Example::

        >>> md = InstanceMetadata.from_compute({
        ...     "subscriptionId": "00000000-0000-0000-0000-000000000001", "resourceGroupName": "rg",
        ...     "name": "vm1", "tags": "env:dev;team:data",
        ...     "resourceId": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/"
        ...                   "providers/Microsoft.Compute/virtualMachines/vm1"})
        >>> md.vm_name, md.resource_group, md.tags
        ('vm1', 'rg', {'env': 'dev', 'team': 'data'})
    """

    subscription_id: str
    resource_group: str
    vm_name: str
    resource_id: str
    location: str = ""
    vm_id: str = ""
    vm_size: str = ""
    os_type: str = ""
    az_environment: str = ""
    vm_scale_set_name: str = ""
    zone: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    compute: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    timeline: Timeline | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_compute(cls, compute: Mapping[str, Any], timeline: Timeline | None = None) -> InstanceMetadata:
        """Build from the ``compute`` JSON object (``UnexpectedResponseError`` if it is not one)."""
        if not isinstance(compute, Mapping):
            raise errors.UnexpectedResponseError(
                f"instance metadata 'compute' is not a JSON object ({type(compute).__name__})", timeline=timeline
            )

        def text(key: str) -> str:
            value = compute.get(key)
            return "" if value is None else str(value)

        resource_id = text("resourceId")
        subscription = text("subscriptionId")
        group = text("resourceGroupName")
        name = text("name")
        if resource_id and not (subscription and group and name):
            subscription, group, name = _parse_vm_resource_id(resource_id, subscription, group, name)
        if not resource_id and subscription and group and name:
            resource_id = (
                f"/subscriptions/{subscription}/resourceGroups/{group}"
                f"/providers/Microsoft.Compute/virtualMachines/{name}"
            )
        return cls(
            subscription_id=subscription,
            resource_group=group,
            vm_name=name,
            resource_id=resource_id,
            location=text("location"),
            vm_id=text("vmId"),
            vm_size=text("vmSize"),
            os_type=text("osType"),
            az_environment=text("azEnvironment"),
            vm_scale_set_name=text("vmScaleSetName"),
            zone=text("zone"),
            tags=_parse_tags(compute.get("tagsList"), text("tags")),
            compute=dict(compute),
            timeline=timeline,
        )

    @property
    def cloud(self) -> clouds.Cloud:
        """The Azure cloud ``az_environment`` names (:func:`mi_notebook.clouds.from_az_environment`).

        Example::

            >>> InstanceMetadata("s", "rg", "vm", "", az_environment="AzureUSGovernmentCloud").cloud.title
            'Azure Government'
        """
        return clouds.from_az_environment(self.az_environment)

    def to_dict(self) -> dict[str, Any]:
        """The named fields as plain data (without the raw ``compute`` object and the timeline)."""
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "vm_name": self.vm_name,
            "resource_id": self.resource_id,
            "location": self.location,
            "vm_id": self.vm_id,
            "vm_size": self.vm_size,
            "os_type": self.os_type,
            "az_environment": self.az_environment,
            "vm_scale_set_name": self.vm_scale_set_name,
            "zone": self.zone,
            "tags": dict(self.tags),
        }


def instance_metadata(client: ImdsSource | None = None, *, api_version: str = INSTANCE_API_VERSION) -> (
    InstanceMetadata
):
    """Read this VM's compute metadata through ``client`` (default: the current connection's client).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> from mi_notebook.sources import ImdsSource
        >>> with Emulator() as emu, ImdsSource(url=emu.imds_url) as client:
        ...     md = instance_metadata(client)
        ...     md.vm_name == emu.vm.name
        True
    """
    client = _client(client)
    document, timeline = client.get_json("/metadata/instance/compute", [("api-version", api_version)])
    compute = document["compute"] if isinstance(document.get("compute"), dict) else document
    return InstanceMetadata.from_compute(compute, timeline)


def tenant_id(client: ImdsSource | None = None, *, api_version: str = "2018-02-01") -> str | None:
    """The tenant of this VM's identities (``GET /metadata/identity/info``), or ``None`` if not said.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> from mi_notebook.sources import ImdsSource
        >>> with Emulator() as emu, ImdsSource(url=emu.imds_url) as client:
        ...     tenant_id(client) == emu.vm.tenant_id
        True
    """
    document, _ = _client(client).get_json("/metadata/identity/info", [("api-version", api_version)])
    value = document.get("tenantId")
    return str(value) if value else None


def api_versions(client: ImdsSource | None = None) -> list[str]:
    """The api-versions this IMDS supports (``GET /metadata/versions``, no api-version needed).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> from mi_notebook.sources import ImdsSource
        >>> with Emulator() as emu, ImdsSource(url=emu.imds_url) as client:
        ...     "2021-02-01" in api_versions(client)
        True
    """
    document, _ = _client(client).get_json("/metadata/versions")
    versions = document.get("apiVersions")
    if not isinstance(versions, list):
        raise errors.UnexpectedResponseError("/metadata/versions has no apiVersions list")
    return [str(v) for v in versions]


def _client(client: ImdsSource | None) -> ImdsSource:
    from .sources.imds import ImdsSource

    if client is None:
        from .connection import current_or_connect

        conn = current_or_connect()
        if not isinstance(conn.client, ImdsSource):
            raise errors.UnsupportedHostError(
                f"Instance metadata comes from a VM's IMDS; the current connection is to {conn.endpoint} "
                f"({conn.host}), which has none.", hint="Pass an ImdsSource for the VM, or connect to one.")
        return conn.client
    return client


def _parse_vm_resource_id(resource_id: str, sub: str, group: str, name: str) -> tuple[str, str, str]:
    parts = [p for p in resource_id.split("/") if p]
    lower = [p.lower() for p in parts]

    def after(key: str) -> str:
        return parts[lower.index(key) + 1] if key in lower and lower.index(key) + 1 < len(parts) else ""

    return (sub or after("subscriptions"), group or after("resourcegroups"), name or after("virtualmachines"))


def _parse_tags(tags_list: Any, tags: str) -> dict[str, str]:
    if isinstance(tags_list, list) and tags_list:
        return {
            str(t.get("name", "")): str(t.get("value", ""))
            for t in tags_list
            if isinstance(t, Mapping) and t.get("name")
        }
    out: dict[str, str] = {}
    for pair in filter(None, (tags or "").split(";")):
        key, _, value = pair.partition(":")
        if key:
            out[key] = value
    return out
