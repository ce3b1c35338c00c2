"""The emulated world: one Azure VM, its managed identities, the resources Entra knows, role assignments.

Everything the IMDS side (and the ARM side) answers is derived from a :class:`VirtualMachine`. Defaults are
deterministic: every GUID is derived from a seed, so two emulators built with the same seed describe the
same VM (handy for stored notebook outputs), and a different seed gives a different, equally stable VM.
The tenant's known resources and role assignments are :mod:`.tenant`'s; config files are read by
:mod:`.config` (all their names are importable from here too).

Example::

    >>> vm = VirtualMachine.build(seed=1)
    >>> [i.kind for i in vm.identities]
    ['system', 'user', 'user']
    >>> vm.resource_id.startswith(f"/subscriptions/{vm.subscription_id}/resourceGroups/")
    True
    >>> vm.match_resource("https://management.azure.com") is not None  # trailing slash does not matter
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .clouds import DEFAULT_CLOUD, check_cloud, cloud
from .config import load_config, vm_keywords
from .tenant import DEFAULT_RESOURCES, ROLE_ACTIONS, KnownResource, RoleAssignment

__all__ = [
    "DEFAULT_RESOURCES",
    "DEFAULT_TOKEN_LIFETIME",
    "ROLE_ACTIONS",
    "KnownResource",
    "RoleAssignment",
    "VirtualMachine",
    "VmIdentity",
    "load_config",
    "stable_guid",
]

DEFAULT_TOKEN_LIFETIME = 86400  # seconds; IMDS tokens live about 24 h (exp - nbf = 86400 + 300)

IdentityKind = Literal["system", "user"]


def stable_guid(seed: int | str, label: str) -> str:
    """A GUID that depends only on ``seed`` and ``label`` (a version-4 shaped UUID from SHA-256).

    Example::

        >>> stable_guid(0, "tenant") == stable_guid(0, "tenant") != stable_guid(1, "tenant")
        True
    """
    digest = hashlib.sha256(f"mi-notebook-emulator:{seed}:{label}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass(frozen=True)
class VmIdentity:
    """One managed identity of the VM.

    ``object_id`` is the principal id (the token's ``oid``/``sub``). For the system-assigned identity
    ``resource_id`` is the VM's resource id; for a user-assigned one it is the identity's own.

    Example::

        >>> vm = VirtualMachine.build()
        >>> vm.identities[1].resource_id.split("/")[-2]
        'userAssignedIdentities'
    """

    kind: IdentityKind
    name: str
    client_id: str
    object_id: str
    resource_id: str

    @property
    def principal_id(self) -> str:
        return self.object_id

    @property
    def mirid(self) -> str:
        """The resource id as the token's ``xms_mirid`` spells it (lower-case ``resourcegroups``)."""
        return _lower_segment_names(self.resource_id)

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "client_id": self.client_id,
                "object_id": self.object_id, "resource_id": self.resource_id}


def _lower_segment_names(resource_id: str) -> str:
    parts = resource_id.split("/")
    for i, part in enumerate(parts):
        if part.lower() in {"resourcegroups", "subscriptions", "providers"}:
            parts[i] = part.lower()
    return "/".join(parts)


@dataclass
class VirtualMachine:
    """The emulated VM and its tenant: what IMDS describes and what tokens are issued for.

    Build one with :meth:`build` (keyword options) or :meth:`from_config` (a dict or a JSON/TOML file).
    Instances are mutable on purpose: a test may add an identity or a role assignment to a running
    emulator (the IMDS side reads the world on every request).

    Example::

        >>> vm = VirtualMachine.build(seed=3, system_assigned=False, user_assigned=["app"])
        >>> vm.find_identity().name  # no system-assigned identity and a single user-assigned one: that one
        'app'
        >>> vm.find_identity(client_id="00000000-0000-0000-0000-000000000000").name
        Traceback (most recent call last):
        LookupError: Identity not found
        >>> vm.find_identity(client_id=vm.identities[0].client_id).name
        'app'
    """

    subscription_id: str
    tenant_id: str
    resource_group: str
    name: str
    location: str
    vm_id: str
    vm_size: str = "Standard_D2s_v3"
    os_type: str = "Linux"
    zone: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    private_ip: str = "10.0.0.4"
    mac_address: str = "000D3A000000"
    subnet_prefix: str = "10.0.0.0/24"
    identities: list[VmIdentity] = field(default_factory=list)
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    resources: list[KnownResource] = field(default_factory=lambda: list(DEFAULT_RESOURCES))
    role_assignments: list[RoleAssignment] = field(default_factory=list)
    tenant_created: int = 1_600_000_000  # xms_tcdt: the tenant's creation time (epoch seconds)
    seed: int | str = 0
    cloud: str = DEFAULT_CLOUD  # IMDS's azEnvironment: which cloud's names the tenant uses (clouds.py)

    # ---- derived -------------------------------------------------------------------------------------
    @property
    def resource_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Compute/virtualMachines/{self.name}")

    @property
    def issuer_url(self) -> str:
        """The v1 tokens' ``iss``: the cloud's prefix and the tenant (``https://sts.windows.net/<tenant>/``)."""
        return cloud(self.cloud).issuer(self.tenant_id)

    @property
    def os_disk_name(self) -> str:
        """The OS disk's name, as ARM lists it and IMDS's ``storageProfile.osDisk`` reports it."""
        return f"{self.name}_OsDisk_1_{hashlib.sha256(f'arm:{self.seed}'.encode()).hexdigest()[:32]}"

    @property
    def resource_group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def system_identity(self) -> VmIdentity | None:
        return next((i for i in self.identities if i.kind == "system"), None)

    @property
    def user_identities(self) -> list[VmIdentity]:
        return [i for i in self.identities if i.kind == "user"]

    def user_identity_resource_id(self, name: str) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourcegroups/{self.resource_group}"
                f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")

    # ---- lookups -------------------------------------------------------------------------------------
    def find_identity(self, *, client_id: str | None = None, object_id: str | None = None,
                      resource_id: str | None = None, single_user_quirk: bool = False) -> VmIdentity:
        """The identity IMDS would pick for these selectors (at most one may be given).

        Raises ``LookupError("Identity not found")`` when nothing matches and
        ``LookupError("Multiple user assigned identities...")`` when no selector is given, there is
        no system-assigned identity and several user-assigned ones. With no system-assigned identity
        and exactly one user-assigned one, no selector picks that one (documented IMDS behaviour).
        ``single_user_quirk``: with a system-assigned identity *and* exactly one user-assigned one, no
        selector picks the user-assigned one (the known quirk: a system-assigned request may return
        the user-assigned identity's token).
        """
        given = [(k, v) for k, v in (("client_id", client_id), ("object_id", object_id),
                                     ("resource_id", resource_id)) if v is not None]
        if len(given) > 1:
            raise ValueError("at most one of client_id, object_id, resource_id")
        if not given:
            system = self.system_identity
            users = self.user_identities
            if system is not None:
                return users[0] if single_user_quirk and len(users) == 1 else system
            if len(users) == 1:
                return users[0]
            if len(users) > 1:
                raise LookupError(MULTIPLE_IDENTITIES)
            raise LookupError(IDENTITY_NOT_FOUND)
        key, value = given[0]
        want = value.strip().lower()
        for ident in self.identities:
            have = {"client_id": ident.client_id, "object_id": ident.object_id,
                    "resource_id": ident.resource_id}[key]
            if key == "resource_id" and ident.kind == "system":
                continue  # msi_res_id names user-assigned identities
            if have.lower() == want:
                return ident
        raise LookupError(IDENTITY_NOT_FOUND)

    def identity_by_name(self, name: str) -> VmIdentity:
        for ident in self.identities:
            if ident.name == name or (name == "system" and ident.kind == "system"):
                return ident
        raise KeyError(name)

    def match_resource(self, resource: str) -> KnownResource | None:
        """The known resource a token request's ``resource`` names, or None (-> AADSTS500011)."""
        return next((r for r in self.resources if r.matches(resource)), None)

    def assignments_for(self, principal_id: str) -> list[RoleAssignment]:
        pid = principal_id.lower()
        return [a for a in self.role_assignments if a.principal_id.lower() == pid]

    def is_authorized(self, principal_id: str, action: str, scope: str) -> bool:
        """True when a role assignment of ``principal_id`` at or above ``scope`` allows ``action``.

        Example::

            >>> vm = VirtualMachine.build()
            >>> sys_id = vm.system_identity.object_id
            >>> vm.is_authorized(sys_id, "Microsoft.Compute/virtualMachines/read", vm.resource_id)
            True
        """
        return any(a.covers(scope) and a.allows(action) for a in self.assignments_for(principal_id))

    def is_data_authorized(self, principal_id: str, data_action: str, scope: str) -> bool:
        """True when a role assignment at or above ``scope`` grants the data-plane ``data_action``.

        Example::

            >>> vm = VirtualMachine.build()
            >>> sys_id = vm.system_identity.object_id  # Reader on the subscription: no data actions
            >>> vm.is_data_authorized(sys_id, "Microsoft.KeyVault/vaults/secrets/getSecret/action", vm.resource_id)
            False
        """
        return any(a.covers(scope) and a.allows_data(data_action) for a in self.assignments_for(principal_id))

    # ---- construction --------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        *,
        seed: int | str = 0,
        system_assigned: bool = True,
        user_assigned: int | Iterable[str | Mapping[str, Any]] = 2,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        subscription_id: str | None = None,
        tenant_id: str | None = None,
        resource_group: str = "rg-notebooks",
        name: str = "vm-notebook",
        location: str = "westeurope",
        vm_size: str = "Standard_D2s_v3",
        os_type: str = "Linux",
        zone: str = "1",
        tags: Mapping[str, str] | None = None,
        private_ip: str = "10.0.0.4",
        mac_address: str | None = None,
        extra_resources: Iterable[str | Mapping[str, Any] | KnownResource] = (),
        role_assignments: Iterable[Mapping[str, str] | RoleAssignment] | None = None,
        vm_id: str | None = None,
        cloud: str = DEFAULT_CLOUD,
    ) -> VirtualMachine:
        """A VM with deterministic ids. Default: a system-assigned and two user-assigned identities,
        the system one Reader on the subscription, user #1 Reader on the resource group, user #2 none.

        ``user_assigned`` is a count (names ``id-notebook-1``, ``-2``, ...) or a list of names or dicts
        (``name``, optional ``client_id``, ``object_id``). ``role_assignments`` replaces the defaults;
        each item has ``principal_id`` (a GUID, ``"system"`` or a user-assigned identity's name),
        ``role`` and ``scope`` (``"subscription"``, ``"resource_group"``, ``"vm"`` or a full scope).
        ``cloud``: ``"AzurePublicCloud"`` (default), ``"AzureUSGovernmentCloud"`` or ``"AzureChinaCloud"``:
        the tenant's resources, the tokens' issuer and IMDS's ``azEnvironment`` are that cloud's.
        """
        if isinstance(token_lifetime, bool) or not isinstance(token_lifetime, int) or token_lifetime <= 0:
            raise ValueError(f"token_lifetime must be a positive number of seconds, got {token_lifetime!r}")
        sub = subscription_id or stable_guid(seed, "subscription")
        vm = cls(
            subscription_id=sub,
            tenant_id=tenant_id or stable_guid(seed, "tenant"),
            resource_group=resource_group,
            name=name,
            location=location,
            vm_id=vm_id or stable_guid(seed, "vmId"),
            vm_size=vm_size,
            os_type=os_type,
            zone=zone,
            tags=dict(tags) if tags is not None else {"environment": "emulator", "owner": "mi-notebook"},
            private_ip=private_ip,
            mac_address=mac_address or ("000D3A" + hashlib.sha256(f"{seed}:mac".encode()).hexdigest()[:6].upper()),
            token_lifetime=token_lifetime,
            seed=seed,
            cloud=check_cloud(cloud),
        )
        vm.resources = list(_cloud_resources(vm.cloud))
        if system_assigned:
            vm.identities.append(VmIdentity("system", name, stable_guid(seed, "system:client"),
                                            stable_guid(seed, "system:object"), vm.resource_id))
        if isinstance(user_assigned, bool):
            raise ValueError("user_assigned must be a count or a list of names/dicts, not a bool")
        specs: list[str | Mapping[str, Any]]
        if isinstance(user_assigned, int):
            if user_assigned < 0:
                raise ValueError("user_assigned count must be >= 0")
            specs = [f"id-notebook-{n}" for n in range(1, user_assigned + 1)]
        else:
            specs = list(user_assigned)
        for spec in specs:
            vm.add_user_identity(spec)
        for extra in extra_resources:
            vm.add_resource(extra)
        if role_assignments is None:
            vm._default_role_assignments()
        else:
            for ra in role_assignments:
                vm.add_role_assignment(ra)
        return vm

    def add_user_identity(self, spec: str | Mapping[str, Any]) -> VmIdentity:
        """Attach a user-assigned identity (a name, or a dict with ``name`` and optional ids)."""
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise ValueError(f"a user-assigned identity needs a name, got {spec!r}")
        unknown = set(spec) - {"name", "client_id", "object_id", "resource_id"}
        if unknown:
            raise ValueError(f"unknown user-assigned identity keys: {sorted(unknown)}")
        name = spec["name"]
        if any(i.kind == "user" and i.name == name for i in self.identities):
            raise ValueError(f"duplicate user-assigned identity name {name!r}")
        ident = VmIdentity(
            "user", name,
            str(spec.get("client_id") or stable_guid(self.seed, f"user:{name}:client")),
            str(spec.get("object_id") or stable_guid(self.seed, f"user:{name}:object")),
            str(spec.get("resource_id") or self.user_identity_resource_id(name)),
        )
        self.identities.append(ident)
        return ident

    def add_resource(self, spec: str | Mapping[str, Any] | KnownResource) -> KnownResource:
        """Make a resource known to the tenant (an App ID URI, a dict ``name``/``uris``/``app_id``)."""
        if isinstance(spec, str):
            res = KnownResource(spec, (spec,))
        elif isinstance(spec, KnownResource):
            res = spec
        elif isinstance(spec, Mapping) and spec.get("uris"):
            uris = spec["uris"]
            res = KnownResource(str(spec.get("name", uris[0])), tuple(uris) if not isinstance(uris, str) else (uris,),
                                spec.get("app_id"))
        else:
            raise ValueError(f"a resource is an App ID URI or a dict with 'uris', got {spec!r}")
        self.resources.append(res)
        return res

    def add_role_assignment(self, spec: Mapping[str, str] | RoleAssignment) -> RoleAssignment:
        """Add a role assignment; ``principal_id`` may be a GUID, ``"system"`` or an identity name."""
        if isinstance(spec, RoleAssignment):
            ra = spec
        else:
            try:
                principal, role, scope = spec["principal_id"], spec["role"], spec["scope"]
            except (KeyError, TypeError):
                raise ValueError(f"a role assignment needs principal_id, role and scope: {spec!r}") from None
            with contextlib.suppress(KeyError):  # else it is taken as a principal id
                principal = self.identity_by_name(principal).object_id
            scope = {"subscription": self.subscription_scope, "resource_group": self.resource_group_id,
                     "vm": self.resource_id}.get(scope, scope)
            ra = RoleAssignment(principal, role, scope)
        self.role_assignments.append(ra)
        return ra

    def _default_role_assignments(self) -> None:
        system = self.system_identity
        users = self.user_identities
        if system is not None:
            self.role_assignments.append(RoleAssignment(system.object_id, "Reader", self.subscription_scope))
        if users:
            self.role_assignments.append(RoleAssignment(users[0].object_id, "Reader", self.resource_group_id))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | Path) -> VirtualMachine:
        """Build from a dict or a JSON/TOML file holding :meth:`build`'s keyword options.

        Example::

            >>> VirtualMachine.from_config({"seed": 2, "user_assigned": ["a"]}).user_identities[0].name
            'a'
        """
        data = vm_keywords(load_config(config))
        allowed = set(inspect.signature(cls.build).parameters)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown VM config keys: {sorted(unknown)} (known: {sorted(allowed)})")
        return cls.build(**data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``/__emulator__/vm`` serves)."""
        return {
            "subscription_id": self.subscription_id, "tenant_id": self.tenant_id,
            "resource_group": self.resource_group, "name": self.name, "location": self.location,
            "vm_id": self.vm_id, "vm_size": self.vm_size, "os_type": self.os_type, "zone": self.zone,
            "tags": dict(self.tags), "private_ip": self.private_ip, "mac_address": self.mac_address,
            "resource_id": self.resource_id, "token_lifetime": self.token_lifetime, "cloud": self.cloud,
            "identities": [i.to_dict() for i in self.identities],
            "resources": [{"name": r.name, "uris": list(r.uris), "app_id": r.app_id} for r in self.resources],
            "role_assignments": [a.to_dict() for a in self.role_assignments],
        }


def _cloud_resources(name: str) -> tuple[KnownResource, ...]:
    return cloud(name).resources()


MULTIPLE_IDENTITIES = ("Multiple user assigned identities exist, please specify the clientId / resourceId "
                       "of the identity in the token request")
IDENTITY_NOT_FOUND = "Identity not found"
