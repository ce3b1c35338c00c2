"""The Azure clouds: the public cloud, Azure Government and Azure China (operated by 21Vianet).

A managed identity's token is for its own cloud's resources: on an Azure Government VM, IMDS issues
tokens for ``https://management.usgovcloudapi.net/`` and Entra ID refuses the public cloud's
``https://management.azure.com/`` (AADSTS500011). Each :class:`Cloud` holds what differs: its three
names (IMDS's ``compute.azEnvironment``, ``az cloud``'s, azure-core's ``AzureClouds``), Entra ID's
authority host, ARM's endpoint and audiences, the per-cloud resources (Key Vault, SQL, Graph,
Cognitive Services, OSS RDBMS) and the v1 tokens' issuer. Storage keeps ``https://storage.azure.com/``
in every cloud. docs/clouds.md gives the public source of every value and how sure it is.

How a connection learns its cloud (:func:`of_host`): ``mi.connect(cloud=...)``; on a VM, IMDS's
``compute.azEnvironment``, asked once, when something needs the cloud (:func:`ask_imds`); on other
hosts, the environment (:func:`from_environment`). The cloud's ``learnt`` says which.

Example::

    >>> gov = cloud("AzureUSGovernment")  # az's name; IMDS's and azure-core's work too
    >>> gov.name, gov.title, gov.arm_endpoint, gov.resources["storage"]
    ('AzureUSGovernmentCloud', 'Azure Government', 'https://management.usgovcloudapi.net/', 'https://storage.azure.com/')
    >>> from_environment({"AZURE_AUTHORITY_HOST": "https://login.chinacloudapi.cn/"}).name
    'AzureChinaCloud'
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from .addresses import is_loopback_host

__all__ = [
    "CLOUDS",
    "ENV_AUTHORITY_HOST",
    "ENV_SDK_CLOUD_CONF",
    "PUBLIC",
    "STORAGE_AUDIENCE",
    "Cloud",
    "CloudSlot",
    "UnknownCloudError",
    "WrongCloudError",
    "ask_imds",
    "cloud",
    "from_az_environment",
    "from_environment",
    "of_host",
]

ENV_AUTHORITY_HOST = "AZURE_AUTHORITY_HOST"  # azure-identity's (and the workload-identity webhook's)
ENV_SDK_CLOUD_CONF = "AZURE_SDK_CLOUD_CONF"  # azure-core's setting azure_cloud
INSTANCE_API_VERSION = "2021-02-01"  # as mi_notebook.metadata's: one compute document serves both
STORAGE_AUDIENCE = "https://storage.azure.com/"  # the same in every cloud (Microsoft: "use the same resource id")


class UnknownCloudError(ValueError):
    """A cloud mi-notebook has no table for (a name nobody documents, or a closed cloud).

    Example::

        >>> issubclass(UnknownCloudError, ValueError)
        True
    """


class WrongCloudError(ValueError):
    """Another cloud's audience asked for (the public ARM audience on an Azure Government VM, ...).

    A ``ValueError``, like every other refusal of bad input before a request: that cloud's Entra ID
    would only answer AADSTS500011, which :class:`~mi_notebook.errors.InvalidResourceError` is for.
    ``right`` is the audience to ask for instead (``None`` if the cloud has none in the table).

    Example::

        >>> WrongCloudError("use https://management.usgovcloudapi.net/", right="x").right
        'x'
    """

    def __init__(self, message: str, *, right: str | None = None) -> None:
        super().__init__(message)
        self.right = right


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud: its names, Entra ID's host, ARM, the resources that differ, the v1 issuer.

    ``name`` is IMDS's ``compute.azEnvironment`` (also go-autorest's and the workload-identity webhook's
    ``AZURE_ENVIRONMENT``); ``az_name`` is ``az cloud``'s; ``sdk_name`` azure-core's ``AzureClouds``
    member (``AZURE_SDK_CLOUD_CONF``). ``resources`` maps the aliases whose audience the public
    sources give for this cloud to that audience; ``arm_audiences`` are the ARM audiences Entra ID
    issues tokens for (the endpoint form, then the ``management.core`` form). ``learnt`` says how a
    connection learnt it (empty for the table's own entries; not part of equality).

    Example::

        >>> china = cloud("AzureChinaCloud")
        >>> china.resources["vault"], china.issuer("t"), china.is_public
        ('https://vault.azure.cn', 'https://sts.chinacloudapi.cn/t/', False)
    """

    name: str
    az_name: str
    sdk_name: str
    title: str
    authority_host: str
    arm_endpoint: str
    arm_audiences: tuple[str, ...]
    resources: Mapping[str, str]
    issuer_prefix: str
    other_authority_hosts: tuple[str, ...] = ()
    learnt: str = field(default="", compare=False)

    @property
    def is_public(self) -> bool:
        """Whether this is the public (commercial) cloud."""
        return self.name == PUBLIC

    @property
    def arm_url(self) -> str:
        """ARM's base URL (the endpoint without its trailing slash), as a client sends requests to it.

        Example::

            >>> cloud("AzureChinaCloud").arm_url
            'https://management.chinacloudapi.cn'
        """
        return self.arm_endpoint.rstrip("/")

    def issuer(self, tenant_id: str) -> str:
        """The v1 tokens' ``iss`` for ``tenant_id`` in this cloud.

        Example::

            >>> cloud().issuer("t")
            'https://sts.windows.net/t/'
        """
        return f"{self.issuer_prefix}{tenant_id}/"

    def audiences(self) -> tuple[str, ...]:
        """Every audience the table knows for this cloud (its resources and both ARM forms).

        Example::

            >>> "https://management.core.usgovcloudapi.net/" in cloud("AzureUSGovernmentCloud").audiences()
            True
        """
        return tuple(dict.fromkeys((*self.resources.values(), *self.arm_audiences)))

    def because(self, learnt: str) -> Cloud:
        """This cloud, saying how it was learnt.

        Example::

            >>> cloud().because("nothing says otherwise").learnt
            'nothing says otherwise'
        """
        return dataclasses.replace(self, learnt=learnt)

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"


def _resources(arm: str, vault: str, sql: str, graph: str, cognitive: str, ossrdbms: str) -> dict[str, str]:
    return {"arm": arm, "vault": vault, "storage": STORAGE_AUDIENCE, "sql": sql, "graph": graph,
            "cognitiveservices": cognitive, "ossrdbms": ossrdbms}


PUBLIC = "AzurePublicCloud"
CLOUDS: dict[str, Cloud] = {c.name: c for c in (
    Cloud(PUBLIC, "AzureCloud", "AZURE_PUBLIC_CLOUD", "the Azure public cloud", "login.microsoftonline.com",
          "https://management.azure.com/",
          ("https://management.azure.com/", "https://management.core.windows.net/"),
          _resources("https://management.azure.com/", "https://vault.azure.net", "https://database.windows.net/",
                     "https://graph.microsoft.com/", "https://cognitiveservices.azure.com",
                     "https://ossrdbms-aad.database.windows.net"),
          "https://sts.windows.net/"),
    Cloud("AzureUSGovernmentCloud", "AzureUSGovernment", "AZURE_US_GOVERNMENT", "Azure Government",
          "login.microsoftonline.us", "https://management.usgovcloudapi.net/",
          ("https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net/"),
          _resources("https://management.usgovcloudapi.net/", "https://vault.usgovcloudapi.net",
                     "https://database.usgovcloudapi.net/", "https://graph.microsoft.us/",
                     "https://cognitiveservices.azure.us", "https://ossrdbms-aad.database.usgovcloudapi.net"),
          "https://sts.windows.net/"),
    Cloud("AzureChinaCloud", "AzureChinaCloud", "AZURE_CHINA_CLOUD", "Azure China (21Vianet)",
          "login.chinacloudapi.cn", "https://management.chinacloudapi.cn/",
          ("https://management.chinacloudapi.cn/", "https://management.core.chinacloudapi.cn/"),
          _resources("https://management.chinacloudapi.cn/", "https://vault.azure.cn",
                     "https://database.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn",
                     "https://cognitiveservices.azure.cn", "https://ossrdbms-aad.database.chinacloudapi.cn"),
          "https://sts.chinacloudapi.cn/", other_authority_hosts=("login.partner.microsoftonline.cn",)),
)}
_BY_ANY_NAME = {n.lower(): c for c in CLOUDS.values() for n in (c.name, c.az_name, c.sdk_name)}
_BY_AUTHORITY = {h: c for c in CLOUDS.values() for h in (c.authority_host, *c.other_authority_hosts)}


def cloud(name: str | Cloud = PUBLIC) -> Cloud:
    """The cloud called ``name``: IMDS's, az's or azure-core's spelling, in any letter case.

    Example::

        >>> cloud("azure_us_government").name, cloud("AzureCloud").name
        ('AzureUSGovernmentCloud', 'AzurePublicCloud')
        >>> cloud("AzureGermanCloud")
        Traceback (most recent call last):
        mi_notebook.clouds.UnknownCloudError: unknown cloud 'AzureGermanCloud': choose AzurePublicCloud (az: AzureCloud, azure-core: AZURE_PUBLIC_CLOUD), AzureUSGovernmentCloud (az: AzureUSGovernment, azure-core: AZURE_US_GOVERNMENT) or AzureChinaCloud (az: AzureChinaCloud, azure-core: AZURE_CHINA_CLOUD)
    """
    if isinstance(name, Cloud):
        return name
    found = _BY_ANY_NAME.get(str(name).strip().lower())
    if found is None:
        names = [f"{c.name} (az: {c.az_name}, azure-core: {c.sdk_name})" for c in CLOUDS.values()]
        raise UnknownCloudError(f"unknown cloud {name!r}: choose {', '.join(names[:-1])} or {names[-1]}")
    return found


def from_az_environment(value: object) -> Cloud:
    """The cloud IMDS's ``compute.azEnvironment`` names (missing or empty: the public cloud, said so).

    Example::

        >>> from_az_environment("AzureUSGovernmentCloud").learnt
        "IMDS's compute.azEnvironment is 'AzureUSGovernmentCloud'"
        >>> from_az_environment(None).name
        'AzurePublicCloud'
    """
    if value is None or not str(value).strip():
        return CLOUDS[PUBLIC].because("IMDS's instance metadata has no compute.azEnvironment, so the public "
                                      "cloud is assumed (pass mi.connect(cloud=...) if this is not it)")
    try:
        found = cloud(str(value))
    except UnknownCloudError:
        raise UnknownCloudError(
            f"IMDS says this VM is in {value!r} (compute.azEnvironment), a cloud mi-notebook has no table for: "
            f"ask for App ID URIs rather than aliases, and pass ARM's url= to mi.arm()") from None
    return found.because(f"IMDS's compute.azEnvironment is {value!r}")


def from_environment(environ: Mapping[str, str]) -> Cloud:
    """The cloud a host's environment names: ``AZURE_AUTHORITY_HOST`` (Entra ID's host, as azure-identity
    reads it), else ``AZURE_SDK_CLOUD_CONF`` (azure-core's), else the public cloud.

    A loopback authority (an emulator's) names no cloud; an authority host the table does not know
    is an :class:`UnknownCloudError` (Azure Stack, the newer sovereign clouds).

    Example::

        >>> from_environment({"AZURE_SDK_CLOUD_CONF": "AZURE_US_GOVERNMENT"}).learnt
        'AZURE_SDK_CLOUD_CONF is AZURE_US_GOVERNMENT'
        >>> from_environment({}).learnt
        'nothing in the environment names another cloud (AZURE_AUTHORITY_HOST, AZURE_SDK_CLOUD_CONF)'
    """
    authority = environ.get(ENV_AUTHORITY_HOST, "").strip()
    if authority:
        host = (urlsplit(authority if "://" in authority else "https://" + authority).hostname or "").lower()
        if host in _BY_AUTHORITY:
            return _BY_AUTHORITY[host].because(f"{ENV_AUTHORITY_HOST} is {authority}")
        if not is_loopback_host(host):
            raise UnknownCloudError(
                f"{ENV_AUTHORITY_HOST} is {authority}, an authority mi-notebook knows no cloud for (it knows "
                f"{', '.join(sorted(_BY_AUTHORITY))}): pass mi.connect(cloud=...), or ask for App ID URIs")
    conf = environ.get(ENV_SDK_CLOUD_CONF, "").strip()
    if conf:
        try:
            return cloud(conf).because(f"{ENV_SDK_CLOUD_CONF} is {conf}")
        except UnknownCloudError as exc:
            raise UnknownCloudError(f"{ENV_SDK_CLOUD_CONF}: {exc}") from None
    return CLOUDS[PUBLIC].because(
        f"nothing in the environment names another cloud ({ENV_AUTHORITY_HOST}, {ENV_SDK_CLOUD_CONF})")


def of_host(host: str, environ: Mapping[str, str], played: str | None = None) -> Cloud | UnknownCloudError | None:
    """How a connection to ``host`` learns its cloud, when nothing was given: ``None`` for a VM (its IMDS
    is asked, once, when a cloud is needed: :func:`ask_imds`); the cloud an embedded emulator ``played``;
    else :func:`from_environment` (its error returned, not raised: only what needs the cloud fails).

    Example::

        >>> of_host("vm", {}) is None, of_host("appservice", {}, played="AzureChinaCloud").learnt
        (True, 'the embedded emulator plays AzureChinaCloud')
        >>> of_host("azureml", {"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us"}).name
        'AzureUSGovernmentCloud'
    """
    if host == "vm":
        return None
    if played:
        return cloud(played).because(f"the embedded emulator plays {played}")
    try:
        return from_environment(environ)
    except UnknownCloudError as exc:
        return exc


class _MetadataReader(Protocol):
    def get_json(self, path: str, params: list[tuple[str, str]] | None = None, *,
                 on_attempt: Callable[..., None] | None = None) -> tuple[dict[str, Any], Any]: ...


def ask_imds(client: _MetadataReader | object, slot: CloudSlot | None = None, *,
             on_attempt: Callable[..., None] | None = None) -> Cloud:
    """The cloud a VM's IMDS names: ``GET /metadata/instance/compute`` through ``client.get_json`` (an
    :class:`~mi_notebook.sources.ImdsSource`: the same wire, retries and errors as tokens), read for
    ``azEnvironment``. A client with no instance metadata (not a VM's IMDS) means the public cloud.
    ``slot`` keeps the ``compute`` document, so that reading which VM this is asks IMDS no more;
    ``on_attempt`` reports the request's attempts, as for a token.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> from mi_notebook.sources import ImdsSource
        >>> with Emulator(cloud="AzureChinaCloud", arm=False) as emu, ImdsSource(emu.imds_url) as client:
        ...     str(ask_imds(client))
        'Azure China (21Vianet) (AzureChinaCloud)'
    """
    get_json = getattr(client, "get_json", None)
    if get_json is None:
        return CLOUDS[PUBLIC].because("this host has no instance metadata naming a cloud, so the public cloud "
                                      "is assumed (pass mi.connect(cloud=...) if this is not it)")
    document, _ = get_json("/metadata/instance/compute", [("api-version", INSTANCE_API_VERSION)], on_attempt=on_attempt)
    if not isinstance(document, Mapping):
        document = {}
    if slot is not None:
        slot.compute = dict(document)
    return from_az_environment(document.get("azEnvironment"))


class CloudSlot:
    """Where a connection keeps its cloud: given, or learnt once (under a lock), or why it is unknown.

    An :class:`UnknownCloudError` is kept too (asked once, refused alike every time); any other error
    of ``learn`` (IMDS unreachable) is raised and not kept, so the next need asks again.

    Example::

        >>> slot = CloudSlot()
        >>> slot.get(lambda: cloud("AzureCloud")).name, slot.get(lambda: 1 / 0).name  # learnt once
        ('AzurePublicCloud', 'AzurePublicCloud')
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Cloud | UnknownCloudError | None = None
        #: the instance metadata's ``compute`` document, when the cloud was learnt from it
        self.compute: dict[str, Any] | None = None

    def set(self, value: Cloud | UnknownCloudError | None) -> None:
        """Keep ``value`` (``None``: nothing known yet, learn on first need)."""
        if value is not None:
            self._value = value

    def offer(self, compute: Mapping[str, Any]) -> None:
        """Learn from an instance metadata ``compute`` document read for another purpose, if nothing is known."""
        with self._lock:
            if self._value is None:
                try:
                    self._value = from_az_environment(compute.get("azEnvironment"))
                except UnknownCloudError as exc:
                    self._value = exc
                self.compute = dict(compute)

    @property
    def known(self) -> Cloud | None:
        """The cloud if it is known already (never asks anything): for displays."""
        return self._value if isinstance(self._value, Cloud) else None

    def get(self, learn: Callable[[], Cloud]) -> Cloud:
        """The cloud, calling ``learn`` the first time (one caller at a time)."""
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    try:
                        self._value = learn()
                    except UnknownCloudError as exc:
                        self._value = exc
                value = self._value
        if isinstance(value, UnknownCloudError):
            raise UnknownCloudError(str(value))
        assert value is not None
        return value
