"""The Azure clouds the emulator can play: the public cloud, US Government and China (21Vianet).

A cloud decides what the emulated tenant's resources are called (the App ID URIs a token may be
asked for), the tokens' ``iss``, what IMDS says in ``compute.azEnvironment`` and which audiences
the ARM side and the Key Vault accept. Storage keeps ``https://storage.azure.com/`` in every cloud;
asking one cloud for another cloud's audience gets Entra's AADSTS500011, as the tenant knows no such
resource. docs/emulator.md ("Clouds") gives the public source of every value and how sure it is.

Example::

    >>> gov = cloud("azureusgovernmentcloud")
    >>> gov.name, gov.arm_endpoint, gov.issuer("t")
    ('AzureUSGovernmentCloud', 'https://management.usgovcloudapi.net/', 'https://sts.windows.net/t/')
    >>> [r.name for r in gov.resources() if r.matches("https://storage.azure.com")]
    ['Azure Storage']
    >>> any(r.matches("https://management.azure.com/") for r in gov.resources())
    False
"""

from __future__ import annotations

from dataclasses import dataclass

from .tenant import DEFAULT_RESOURCES, KnownResource

__all__ = ["CLOUDS", "CLOUD_NAMES", "DEFAULT_CLOUD", "STORAGE_AUDIENCE", "Cloud", "check_cloud", "cloud"]

STORAGE_AUDIENCE = "https://storage.azure.com/"  # the same in every cloud
DEFAULT_CLOUD = "AzurePublicCloud"

# first-party application ids: the same ids are used for these services in every cloud (best guess)
_ARM_APP = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
_VAULT_APP = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
_STORAGE_APP = "e406a681-f3d4-42a8-90b6-c2b029497af1"
_GRAPH_APP = "00000003-0000-0000-c000-000000000000"
_SQL_APP = "022907d3-0f1b-48f7-badc-1ba6abab6d66"


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud as the emulator plays it (every URI as the public sources spell it).

    ``name`` is IMDS's ``compute.azEnvironment``; ``authority_host`` Entra ID's host; ``arm_audiences``
    the audiences ARM accepts, in the order its ``InvalidAuthenticationTokenAudience`` message lists
    them; ``arm_authority`` the login URL ARM's messages and challenges name; ``vault`` Key Vault's
    resource and ``vault_suffix`` its DNS suffix; ``issuer_prefix`` the v1 tokens' ``iss`` before the
    tenant id.

    Example::

        >>> cloud("AzureChinaCloud").arm_audiences[:2]
        ('https://management.core.chinacloudapi.cn/', 'https://management.core.chinacloudapi.cn')
    """

    name: str
    authority_host: str
    arm_endpoint: str
    arm_audiences: tuple[str, ...]
    arm_authority: str
    vault: str
    vault_suffix: str
    sql: str
    graph: str
    cognitive_services: str
    ossrdbms: str
    issuer_prefix: str

    def issuer(self, tenant_id: str) -> str:
        """The v1 tokens' ``iss`` for ``tenant_id`` in this cloud.

        Example::

            >>> cloud("AzureChinaCloud").issuer("t")
            'https://sts.chinacloudapi.cn/t/'
        """
        return f"{self.issuer_prefix}{tenant_id}/"

    def resources(self) -> tuple[KnownResource, ...]:
        """What this cloud's Entra ID finds by App ID URI (the public cloud: the full default list).

        A sovereign cloud knows only the services whose audience the public sources give for it
        (ARM, Key Vault, Storage, SQL, OSS RDBMS, Graph, Cognitive Services); others can be added
        with the ``extra_resources`` VM option.

        Example::

            >>> len(cloud("AzureUSGovernmentCloud").resources())
            7
        """
        if self.name == DEFAULT_CLOUD:
            return DEFAULT_RESOURCES
        return (
            KnownResource("Azure Resource Manager", (self.arm_endpoint, self.arm_audiences[0]), _ARM_APP),
            KnownResource("Azure Key Vault", (self.vault,), _VAULT_APP),
            KnownResource("Azure Storage", (STORAGE_AUDIENCE,), _STORAGE_APP),
            KnownResource("Microsoft Graph", (self.graph,), _GRAPH_APP),
            KnownResource("Azure SQL Database", (self.sql,), _SQL_APP),
            KnownResource("Azure Cognitive Services", (self.cognitive_services,)),
            KnownResource("Azure Database for PostgreSQL/MySQL", (self.ossrdbms,)),
        )


def _arm_audiences(endpoint_host: str, core_host: str) -> tuple[str, ...]:
    core, endpoint = f"https://{core_host}", f"https://{endpoint_host}"
    return (core + "/", core, endpoint + "/", endpoint)


CLOUDS: dict[str, Cloud] = {
    "AzurePublicCloud": Cloud(
        "AzurePublicCloud", "login.microsoftonline.com", "https://management.azure.com/",
        _arm_audiences("management.azure.com", "management.core.windows.net"), "https://login.windows.net/",
        "https://vault.azure.net", ".vault.azure.net", "https://database.windows.net/", "https://graph.microsoft.com/",
        "https://cognitiveservices.azure.com", "https://ossrdbms-aad.database.windows.net", "https://sts.windows.net/"),
    "AzureUSGovernmentCloud": Cloud(
        "AzureUSGovernmentCloud", "login.microsoftonline.us", "https://management.usgovcloudapi.net/",
        _arm_audiences("management.usgovcloudapi.net", "management.core.usgovcloudapi.net"),
        "https://login.microsoftonline.us/", "https://vault.usgovcloudapi.net", ".vault.usgovcloudapi.net",
        "https://database.usgovcloudapi.net/", "https://graph.microsoft.us/", "https://cognitiveservices.azure.us",
        "https://ossrdbms-aad.database.usgovcloudapi.net", "https://sts.windows.net/"),
    "AzureChinaCloud": Cloud(
        "AzureChinaCloud", "login.chinacloudapi.cn", "https://management.chinacloudapi.cn/",
        _arm_audiences("management.chinacloudapi.cn", "management.core.chinacloudapi.cn"),
        "https://login.chinacloudapi.cn/", "https://vault.azure.cn", ".vault.azure.cn",
        "https://database.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn",
        "https://cognitiveservices.azure.cn", "https://ossrdbms-aad.database.chinacloudapi.cn",
        "https://sts.chinacloudapi.cn/"),
}
CLOUD_NAMES = tuple(CLOUDS)


def check_cloud(name: str) -> str:
    """The cloud's ``azEnvironment`` name, spelled as IMDS spells it, or ``ValueError`` naming the choices.

    Example::

        >>> check_cloud(" azurechinacloud ")
        'AzureChinaCloud'
        >>> check_cloud("AzureGermanCloud")
        Traceback (most recent call last):
        ValueError: unknown cloud 'AzureGermanCloud'; choose one of AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud
    """
    wanted = str(name).strip().lower()
    for known in CLOUDS:
        if known.lower() == wanted:
            return known
    raise ValueError(f"unknown cloud {name!r}; choose one of {', '.join(CLOUDS)}")


def cloud(name: str = DEFAULT_CLOUD) -> Cloud:
    """The :class:`Cloud` called ``name`` (any letter case).

    Example::

        >>> cloud().vault, cloud("AzureUSGovernmentCloud").vault
        ('https://vault.azure.net', 'https://vault.usgovcloudapi.net')
    """
    return CLOUDS[check_cloud(name)]
