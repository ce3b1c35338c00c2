"""What the emulated tenant knows besides the VM: the resources Entra finds, and what roles allow.

:class:`KnownResource` is a service principal a token may be requested for, found by App ID URI as
Entra finds it (:data:`DEFAULT_RESOURCES`: the common first-party ones); :class:`RoleAssignment` is an
Azure RBAC assignment, whose built-in role allows the action patterns in :data:`ROLE_ACTIONS`. The VM
that holds them is :class:`~mi_notebook.emulator.world.VirtualMachine`.

Example::

    >>> next(r.name for r in DEFAULT_RESOURCES if r.matches("https://management.azure.com"))
    'Azure Resource Manager'
    >>> RoleAssignment("p", "Reader", "/subscriptions/s").allows("Microsoft.Compute/virtualMachines/write")
    False
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DATA_ROLE_ACTIONS", "DEFAULT_RESOURCES", "ROLE_ACTIONS", "KnownResource", "RoleAssignment"]


@dataclass(frozen=True)
class KnownResource:
    """A resource (service principal) the emulated tenant knows, as Entra finds it by App ID URI.

    ``uris`` are the App ID URIs (and the app id itself) a token may be requested for; matching is
    case-insensitive and ignores one trailing slash, as Entra does.

    Example::

        >>> KnownResource("Key Vault", ("https://vault.azure.net",)).matches("https://VAULT.azure.net/")
        True
    """

    name: str
    uris: tuple[str, ...]
    app_id: str | None = None

    def matches(self, resource: str) -> bool:
        key = _resource_key(resource)
        return any(_resource_key(u) == key for u in self._all_names())

    def _all_names(self) -> Iterable[str]:
        yield from self.uris
        if self.app_id:
            yield self.app_id


def _resource_key(resource: str) -> str:
    key = resource.lower()
    return key[:-1] if key.endswith("/") else key


# The common first-party resources. App ids are the well-known first-party application ids.
DEFAULT_RESOURCES: tuple[KnownResource, ...] = (
    KnownResource(
        "Azure Resource Manager",
        ("https://management.azure.com/", "https://management.core.windows.net/"),
        "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    ),
    KnownResource("Azure Key Vault", ("https://vault.azure.net",), "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"),
    KnownResource("Azure Storage", ("https://storage.azure.com/",), "e406a681-f3d4-42a8-90b6-c2b029497af1"),
    KnownResource("Microsoft Graph", ("https://graph.microsoft.com/",), "00000003-0000-0000-c000-000000000000"),
    KnownResource("Azure SQL Database", ("https://database.windows.net/",), "022907d3-0f1b-48f7-badc-1ba6abab6d66"),
    KnownResource("Azure Cosmos DB", ("https://cosmos.azure.com",), "a232010e-820c-4083-83bb-3ace5fc29d0b"),
    KnownResource("Azure Event Hubs", ("https://eventhubs.azure.net",), "80369ed6-5f11-4dd9-bef3-692475845e77"),
    KnownResource("Azure Service Bus", ("https://servicebus.azure.net",), "80a10ef9-8168-493d-abf9-3297c4ef6e3c"),
    KnownResource("Azure Monitor", ("https://monitor.azure.com",)),
    KnownResource("Log Analytics", ("https://api.loganalytics.io",), "ca7f3f0b-7d91-482c-8e09-c5d840d0eac5"),
    KnownResource("Azure Data Lake", ("https://datalake.azure.net/",), "e9f49c6b-5ce5-44c8-925d-015017e9f7ad"),
    KnownResource("Azure DevOps", ("499b84ac-1321-427f-aa17-267ca6975798",)),
    KnownResource("Azure Kubernetes Service AAD Server", ("6dae42f8-4368-4678-94ff-3960e28e3630",)),
    KnownResource("Azure Container Registry", ("https://containerregistry.azure.net",)),
    KnownResource("Azure App Configuration", ("https://azconfig.io",)),
    KnownResource("Azure Cognitive Services", ("https://cognitiveservices.azure.com",)),
    # Foundry projects' audience (azure-ai-projects' credential_scopes): Entra knows it, whoever accepts it
    KnownResource("Azure AI Foundry", ("https://ai.azure.com",)),
    KnownResource("Azure Database for PostgreSQL/MySQL", ("https://ossrdbms-aad.database.windows.net",)),
    KnownResource("Azure Cache for Redis", ("https://redis.azure.com",)),
    KnownResource("Azure Batch", ("https://batch.core.windows.net/",)),
    KnownResource("Azure Synapse", ("https://dev.azuresynapse.net",)),
    KnownResource("Azure Digital Twins", ("https://digitaltwins.azure.net",)),
    KnownResource("Power BI", ("https://analysis.windows.net/powerbi/api",)),
)

# Built-in role -> allowed action patterns (fnmatch, case-insensitive), enough for the reads ARM serves.
ROLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "Owner": ("*",),
    "Contributor": ("*",),
    "Reader": ("*/read",),
    "Managed Identity Operator": ("Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                                  "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action"),
}

# Built-in role -> allowed *data* actions (Azure's ``dataActions``). Control-plane roles (Owner,
# Contributor, Reader) have none: being Owner of a vault or an account does not let you read its data.
DATA_ROLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "Key Vault Administrator": ("Microsoft.KeyVault/vaults/*",),
    "Key Vault Secrets Officer": ("Microsoft.KeyVault/vaults/secrets/*",),
    "Key Vault Secrets User": ("Microsoft.KeyVault/vaults/secrets/getSecret/action",
                               "Microsoft.KeyVault/vaults/secrets/readMetadata/action"),
    "Key Vault Reader": ("Microsoft.KeyVault/vaults/secrets/readMetadata/action",),
    "Storage Blob Data Owner": ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",),
    "Storage Blob Data Contributor": ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",),
    "Storage Blob Data Reader": ("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",),
    # Azure OpenAI inference (the built-in roles page, "AI + machine learning"); the User role's
    # notDataActions (stored-completions/read) touch nothing the emulator serves
    "Cognitive Services OpenAI User": (
        "Microsoft.CognitiveServices/accounts/OpenAI/*/read",
        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/completions/action",
        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/extensions/chat/completions/action",
        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action",
        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/audio/action",
        "Microsoft.CognitiveServices/accounts/OpenAI/images/generations/action",
    ),
    "Cognitive Services OpenAI Contributor": ("Microsoft.CognitiveServices/accounts/OpenAI/*",),
    "Cognitive Services User": ("Microsoft.CognitiveServices/*",),
}


@dataclass(frozen=True)
class RoleAssignment:
    """An Azure RBAC role assignment: ``principal_id`` has ``role`` at ``scope`` (and below).

    Example::

        >>> ra = RoleAssignment("p", "Reader", "/subscriptions/s")
        >>> ra.covers("/subscriptions/S/resourceGroups/rg")
        True
    """

    principal_id: str
    role: str
    scope: str

    def covers(self, scope: str) -> bool:
        mine = self.scope.rstrip("/").lower()
        other = scope.rstrip("/").lower()
        return other == mine or other.startswith(mine + "/") or mine == ""

    def allows(self, action: str) -> bool:
        patterns = ROLE_ACTIONS.get(self.role, ())
        return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)

    def allows_data(self, data_action: str) -> bool:
        """Whether the role grants a data-plane action (:data:`DATA_ROLE_ACTIONS`).

        Example::

            >>> action = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
            >>> RoleAssignment("p", "Owner", "/").allows_data(action), RoleAssignment("p", "Key Vault Secrets User", "/").allows_data(action)
            (False, True)
        """
        patterns = DATA_ROLE_ACTIONS.get(self.role, ())
        return any(fnmatch.fnmatchcase(data_action.lower(), p.lower()) for p in patterns)

    def to_dict(self) -> dict[str, str]:
        return {"principal_id": self.principal_id, "role": self.role, "scope": self.scope}

