"""For tutorials that must carry on whatever machine they run on, and show the plain Azure form.

:func:`connect_or_carry_on` is the first code cell of every notebook (``notebooks/01`` to ``09``): it
connects as ``mi.connect()`` does, and when this machine's identity does not answer at all (none
turned on yet, or several and none named), it says so and what to do, then carries the lesson on
against a private, loopback emulator, whose tokens all say "emulator". It never hides the switch:
the message is printed.

The other helpers keep the emulator's wiring out of the lessons, one per need, so that a cell reads
as what you would write on Azure. Each is a no-op (or asks Azure's public API) on Azure:

* :func:`arm_sdk_options`: the keywords an ``azure-mgmt-*`` client needs to reach the emulator's ARM
  (``{}`` on Azure);
* :func:`data_targets`: where notebook 9 reads a blob and a secret (yours on Azure; Azurite and the
  emulator's vault off Azure) and the client keywords the emulator needs (``{}`` on Azure);
* :func:`openai_targets`: where notebook 11 calls Azure OpenAI (yours on Azure, the emulator's off
  Azure), the client keywords the emulator needs (``{}`` on Azure), and its log of token requests;
* :func:`lake_targets`: where notebook 10 reads ``abfs://`` paths (yours on Azure; Azurite off Azure) and
  the ``storage_options`` adlfs needs there;
* :func:`user_identities`: the VM's user-assigned identities by name, as ARM lists them;
* :func:`jwks_for`: where the keys that verify a token are (``"entra"`` on Azure);
* :func:`private_connection`: a connection to an emulator a cell started to break on purpose, which
  leaves the notebook's own connection alone.

Example::

    >>> import mi_notebook as mi
    >>> conn = connect_or_carry_on()        # the tests run in emulator mode: it answers at once
    >>> conn.chosen
    'emulator'
    >>> sorted(user_identities())
    ['id-notebook-1', 'id-notebook-2']
    >>> mi.disconnect()
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .arm_client import ArmClient
from .clouds import cloud
from .connection import Connection, connect, current_or_connect, get_token
from .errors import ArmError, IdentityNotFoundError, ManagedIdentityError, MultipleIdentitiesError
from .identity import Identity
from .resources import resolve_resource, resource_to_scope
from .sources import ImdsClient

if TYPE_CHECKING:  # pragma: no cover
    from .tokens import AccessToken

__all__ = [
    "SAMPLE_BLOB",
    "DataTargets",
    "OpenAITargets",
    "LakeTargets",
    "arm_sdk_options",
    "connect_or_carry_on",
    "data_targets",
    "openai_targets",
    "jwks_for",
    "lake_targets",
    "private_connection",
    "user_identities",
]

#: the blob notebook 9 reads on the emulator, uploaded by :func:`data_targets` ("a colleague's upload")
SAMPLE_BLOB = "sales/2024/q1.csv"
SAMPLE_CSV = b"region,units,revenue\nnorth,120,3600.0\nsouth,95,2945.5\nwest,143,4147.0\n"


def connect_or_carry_on(resource: str = "arm") -> Connection:
    """``mi.connect()``, then one token for ``resource`` to see whether this machine's identity answers.

    If it does not (``IdentityNotFoundError`` / ``MultipleIdentitiesError``), print what happened and
    what to do, and connect to a private emulator instead, so the lesson goes on; any other error
    (an unreachable endpoint, a bad resource) is raised as usual. Returns the connection in use.

    Example::

        >>> connect_or_carry_on("vault").reason.startswith("Using the embedded emulator")
        True
    """
    conn = connect()
    try:
        get_token(resource)
    except (IdentityNotFoundError, MultipleIdentitiesError) as err:  # no identity turned on (yet)
        print(err.message)
        print("What to do:", err.hint)
        conn = connect(mode="emulator")  # so that the lesson goes on; its tokens all say "emulator"
        print("Until then this notebook continues on a private emulator:", conn.endpoint)
    return conn


def arm_sdk_options(connection: Connection | None = None) -> dict[str, Any]:
    """The keywords an Azure management SDK client needs to reach ARM here: ``{}`` on Azure.

    On Azure, ``ResourceManagementClient(mi.credential(), subscription_id)`` finds
    ``https://management.azure.com`` by itself, so this returns nothing to add. Only for the emulator
    (or an ARM given by ``MI_NOTEBOOK_ARM_URL``) does it return ``base_url`` (its ARM) and
    ``connection_verify`` (its certificate authority: the SDKs send a bearer token only over https).
    Write ``Client(credential, subscription_id, **arm_sdk_options())`` and the same cell runs on both.
    In Azure Government or China it adds that cloud's ARM and ``credential_scopes`` (the SDKs default
    to the public cloud's, which another cloud refuses: Azure/azure-sdk-for-python#34347).

    Example::

        >>> conn = connect(mode="emulator")
        >>> sorted(arm_sdk_options())
        ['base_url', 'connection_verify']
        >>> conn.close()
        >>> arm_sdk_options(connect(mode="imds", probe_url="http://127.0.0.1:9", cloud="AzurePublicCloud"))
        {}
        >>> arm_sdk_options(connect(mode="imds", probe_url="http://127.0.0.1:9", cloud="AzureUSGovernment"))
        {'base_url': 'https://management.usgovcloudapi.net', 'credential_scopes': ['https://management.usgovcloudapi.net/.default']}
    """
    conn = connection if connection is not None else current_or_connect()
    client = ArmClient(connection=conn)
    try:
        url, verify = client.url, client.verify
    finally:
        client.close()
    # Azure's ARM: the client learnt the cloud (a VM's IMDS said); an emulator: the cloud it plays
    known = conn.cloud_slot.known or (cloud(conn.emulator.cloud) if conn.emulator is not None else None)
    scopes = {"credential_scopes": [resource_to_scope(resolve_resource("arm", known))]} if (
        known is not None and not known.is_public) else {}
    if known is not None and url == known.arm_url:
        return {"base_url": url, **scopes} if scopes else {}
    return {"base_url": url, "connection_verify": verify, **scopes}


def user_identities(connection: Connection | None = None) -> dict[str, Identity]:
    """This VM's user-assigned identities by name, as ARM lists them in the VM's record.

    On Azure that read needs a role on the VM (Reader on its resource group, see docs/roles.md); when
    ARM refuses, or the machine has no identity, the answer is ``{}``: put your identity's client id
    in the notebook yourself. The emulator plays a VM with two, ``id-notebook-1`` (Reader on its
    resource group) and ``id-notebook-2`` (no role anywhere).

    Example::

        >>> conn = connect(mode="emulator")
        >>> found = user_identities()
        >>> str(found["id-notebook-2"]).startswith("user-assigned (client_id=")
        True
        >>> conn.close()
    """
    conn = connection if connection is not None else current_or_connect()
    client = ArmClient(connection=conn)
    try:
        rows = client.identities()
    except (ArmError, ManagedIdentityError):  # no role to read the VM, or no identity: nothing known
        return {}
    finally:
        client.close()
    return {str(row["name"]): row["identity"] for row in rows if row["kind"] == "user"}


def jwks_for(token: AccessToken, connection: Connection | None = None) -> str:
    """What to pass as ``mi.decode(token, jwks=...)``: where the keys that signed ``token`` are.

    ``"entra"`` for a token from Azure (Entra ID's published keys of the token's tenant, fetched from
    login.microsoftonline.com). Only for an emulator token: the emulator's own key set, which lives
    as long as that emulator.

    Example::

        >>> import mi_notebook as mi
        >>> conn = connect(mode="emulator")
        >>> mi.decode(mi.get_token("arm"), jwks=jwks_for(mi.get_token("arm"))).verified
        True
        >>> conn.close()
    """
    if not token.emulated:
        return "entra"
    conn = connection if connection is not None else current_or_connect()
    if conn.emulator is not None:
        return str(conn.emulator.jwks_url)
    return f"{conn.endpoint}/__emulator__/jwks"  # an emulator in another process (mi-notebook emulator)


def private_connection(emulator: Any) -> Connection:
    """A connection to an emulator you started (``Emulator().start()``), not made the current one.

    For cells that break an emulator on purpose (injected 429s, 503s): ``mi.connect()`` would replace
    the notebook's own connection, and stop its emulator. Give it to a client
    (``mi.ArmClient(connection=...)``); ``close()`` it (that stops ``emulator`` too) or stop the
    emulator yourself.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as lab:
        ...     conn = private_connection(lab)
        ...     conn.get_token("arm").emulated, conn.endpoint == lab.imds_url
        (True, True)
    """
    url = str(emulator.imds_url).rstrip("/")
    return Connection(url, "vm", ImdsClient(url=url), chosen="emulator", emulator=emulator,
                      reason=f"Using a private emulator at {url}, started by this cell.")


@dataclass
class DataTargets:
    """Where notebook 9 reads its data, and what the clients need to reach it (see :func:`data_targets`).

    ``storage_url``, ``blob`` (``<container>/<path>``) and ``vault_url`` (``None``: not given, that part
    is skipped); ``storage_options`` and ``vault_options``: keywords for ``BlobServiceClient`` and
    ``SecretClient``, ``{}`` on Azure; ``note``: one line saying where that is.

    Example::

        >>> DataTargets("https://acct.blob.core.windows.net", "c/q1.csv", None, note="yours").vault_url is None
        True
    """

    storage_url: str | None
    blob: str | None
    vault_url: str | None
    storage_options: dict[str, Any] = field(default_factory=dict)
    vault_options: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    azurite: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Stop Azurite if :func:`data_targets` started it (its data lives in memory and goes with it)."""
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def __str__(self) -> str:
        return self.note


def data_targets(storage_url: str | None = None, blob: str | None = None, vault_url: str | None = None, *,
                 connection: Connection | None = None) -> DataTargets:
    """Where to read a blob and a secret: yours on Azure; off Azure, Azurite and the emulator's vault.

    On Azure (any connection but the embedded emulator) this returns what you gave, with no extra
    client keywords: ``BlobServiceClient(storage_url, credential=mi.credential())`` is all it takes.

    Only for the emulator: it starts Azurite (Microsoft's Storage emulator, on loopback, telemetry
    off), uploads a small CSV as :data:`SAMPLE_BLOB` (a colleague's upload, so there is something to
    read), and uses the emulator's Key Vault. Their keywords: ``connection_verify`` (their own
    certificate authorities) and, for Key Vault, ``verify_challenge_resource=False``: the SDK follows
    a vault's authentication challenge only within ``*.vault.azure.net``, and the emulated vault is at
    127.0.0.1. Without Node.js and Azurite, Blob Storage is skipped and the note says how to install
    them. Call ``close()`` at the end.

    Example::

        >>> targets = data_targets("https://acct.blob.core.windows.net", "sales/q1.csv",
        ...                        connection=connect("http://127.0.0.1:9"))
        >>> targets.storage_options, targets.vault_url
        ({}, None)
        >>> print(targets)
        Blob Storage: sales/q1.csv at https://acct.blob.core.windows.net | Key Vault: not set (VAULT_URL)
    """
    conn = connection if connection is not None else current_or_connect()
    if conn.emulator is None:
        where = f"{blob} at {storage_url}" if storage_url and blob else "not set (STORAGE_URL and BLOB)"
        return DataTargets(storage_url, blob, vault_url,
                           note=f"Blob Storage: {where} | Key Vault: {vault_url or 'not set (VAULT_URL)'}")
    emulator = conn.emulator
    vault_options = {"connection_verify": emulator.vault_ca_bundle, "verify_challenge_resource": False}
    vault_note = f"Key Vault: the emulator's vault at {emulator.vault_url}"
    from .emulator import Azurite, AzuriteUnavailable  # only off Azure; the lazy import keeps Azure light

    try:
        azurite = Azurite().start()  # loopback, HTTPS, OAuth, --disableTelemetry
    except AzuriteUnavailable as err:
        return DataTargets(None, None, emulator.vault_url, vault_options=vault_options,
                           note=f"Blob Storage: none here ({err}) | {vault_note}")
    account_url = str(azurite.account_url)
    storage_options = {"connection_verify": azurite.ca_bundle}
    _upload_sample(account_url, storage_options, conn)
    return DataTargets(account_url, SAMPLE_BLOB, emulator.vault_url, storage_options, vault_options,
                       note=f"Blob Storage: Azurite at {account_url} (holding {SAMPLE_BLOB}) | {vault_note}",
                       azurite=azurite)


#: the container notebook 10 reads on the emulator, and its daily files (``day-01.csv`` ...)
LAKE_CONTAINER = "sales"
_REGIONS = (("north", 120, 30.0), ("south", 95, 31.0), ("west", 143, 29.0))


@dataclass
class LakeTargets:
    """Where notebook 10 reads ``abfs://`` paths (see :func:`lake_targets`).

    ``container`` (``None``: not given, the reads are skipped), ``storage_options`` for pandas and Dask,
    ``note``: one line saying where that is. ``url(path)`` is ``abfs://<container>/<path>``.

    Example::

        >>> LakeTargets("sales", {}, note="yours").url("2024/*.csv")
        'abfs://sales/2024/*.csv'
    """

    container: str | None
    storage_options: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    azurite: Any = field(default=None, repr=False)

    def url(self, path: str) -> str:
        """``abfs://<container>/<path>``, as pandas and Dask take it."""
        return f"abfs://{self.container}/{path.lstrip('/')}"

    def close(self) -> None:
        """Stop Azurite if :func:`lake_targets` started it (its data lives in memory and goes with it)."""
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def __str__(self) -> str:
        return self.note


def lake_targets(account_name: str | None = None, container: str | None = None, *, days: int = 16,
                 connection: Connection | None = None) -> LakeTargets:
    """Where to read ``abfs://`` paths: your account on Azure; off Azure, Azurite holding ``days`` daily CSVs.

    On Azure (any connection but the embedded emulator): ``abfs_options(account_name)``, this machine's
    identity through the async credential, and nothing else. Only for the emulator: it starts Azurite,
    uploads ``day-01.csv`` ... to the container :data:`LAKE_CONTAINER` (a colleague's uploads), and adds
    what adlfs needs to reach it: Azurite's host (``account_host``) and its certificate authority
    (``SSL_CERT_FILE``, see :func:`mi_notebook.data.trust_ca`). Without Node.js and Azurite, the note
    says how to install them and the reads are skipped. Call ``close()`` at the end.

    Example::

        >>> lake = lake_targets("mydatalake", "sales", connection=connect("http://127.0.0.1:9"))
        >>> sorted(lake.storage_options), lake.url("2024/day-01.csv")
        (['account_name', 'credential'], 'abfs://sales/2024/day-01.csv')
        >>> print(lake_targets(connection=connect("http://127.0.0.1:9")))
        abfs://: not set (ACCOUNT and CONTAINER)
    """
    from .data import abfs_options

    conn = connection if connection is not None else current_or_connect()
    if conn.emulator is None:
        if not (account_name and container):
            return LakeTargets(None, note="abfs://: not set (ACCOUNT and CONTAINER)")
        return LakeTargets(container, abfs_options(account_name),
                           note=f"abfs://{container}/ in the storage account {account_name}")
    from .emulator import Azurite, AzuriteUnavailable  # only off Azure
    from .emulator.azurite import ACCOUNT

    try:
        azurite = Azurite().start()  # loopback, HTTPS, OAuth, --disableTelemetry
    except AzuriteUnavailable as err:
        return LakeTargets(None, note=f"abfs://: none here ({err})")
    account_url = str(azurite.account_url)
    files = {f"day-{day:02d}.csv": b"region,units,revenue\n" + b"".join(
        f"{region},{units + day},{(units + day) * price:.1f}\n".encode() for region, units, price in _REGIONS)
        for day in range(1, days + 1)}
    try:
        _upload_sample(account_url, {"connection_verify": azurite.ca_bundle}, conn, LAKE_CONTAINER, files)
        options = abfs_options(ACCOUNT, account_url=account_url, ca_bundle=azurite.ca_bundle)
    except BaseException:
        azurite.stop()  # nobody else holds it yet
        raise
    return LakeTargets(LAKE_CONTAINER, options, azurite=azurite,
                       note=f"abfs://{LAKE_CONTAINER}/ on Azurite at {account_url} ({days} daily CSVs)")


def _upload_sample(account_url: str, options: dict[str, Any], conn: Connection, container: str | None = None,
                   files: dict[str, bytes] | None = None) -> None:
    from azure.core.credentials import AccessToken as SdkToken
    from azure.storage.blob import BlobServiceClient

    class ConnectionCredential:
        """The connection's tokens, for this set-up only. Not ``mi.credential()``: its once-per-process
        "emulator tokens" warning belongs to the notebook's own SDK clients."""

        def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                      enable_cae: bool = False, **kwargs: Any) -> SdkToken:
            token = conn.get_token(scopes[0])
            return SdkToken(token.reveal(), int(token.expires_on))

    if container is None or files is None:
        container, _, name = SAMPLE_BLOB.partition("/")
        files = {name: SAMPLE_CSV}
    with BlobServiceClient(account_url, credential=ConnectionCredential(), **options) as blobs:
        blobs.create_container(container)
        for name, data in files.items():
            blobs.get_blob_client(container, name).upload_blob(data)


#: the chat deployment the emulator serves (on Azure: yours, given to :func:`openai_targets`)
EMULATED_CHAT = "gpt-4o-mini"


@dataclass
class OpenAITargets:
    """Where notebook 11 calls Azure OpenAI, and what its clients need (see :func:`openai_targets`).

    ``endpoint`` (``azure_endpoint=``; ``None``: not given), ``deployment``, ``account_id`` (the
    account's resource id for ``az role assignment create --scope``, ``None`` when unknown) and
    ``note``: one line saying where that is, or why nothing will be called. ``ready``: there is an
    endpoint and the openai package is installed.

    Example::

        >>> OpenAITargets(None, "gpt-4o", None, note="no endpoint").ready
        False
    """

    endpoint: str | None
    deployment: str
    account_id: str | None
    note: str = ""
    installed: bool = True
    emulator: Any = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        """An endpoint to call, and the openai SDK to call it with."""
        return self.endpoint is not None and self.installed

    @property
    def v1_url(self) -> str | None:
        """The v1 API's base URL (``OpenAI(base_url=...)``): ``<endpoint>/openai/v1/``."""
        return self.endpoint.rstrip("/") + "/openai/v1/" if self.endpoint else None

    def client_options(self, *, asynchronous: bool = False) -> dict[str, Any]:
        """Keywords for ``AzureOpenAI`` / ``OpenAI`` (``asynchronous``: their async twins): ``{}`` on Azure.

        Off Azure, ``http_client``: the openai SDK's own client, trusting the emulator's certificate
        authority (its HTTPS is served with a CA of its own), and ``max_retries=0`` (the refusals this
        notebook shows are not worth retrying).
        """
        if self.emulator is None:
            return {}
        import openai  # only off Azure, and only once the notebook calls the SDK

        trust = ssl.create_default_context(cafile=self.emulator.openai_ca_bundle)
        client = openai.DefaultAsyncHttpxClient(verify=trust) if asynchronous else openai.DefaultHttpxClient(verify=trust)
        return {"http_client": client, "max_retries": 0}

    def token_requests(self, resource: str = "https://cognitiveservices.azure.com") -> int | None:
        """How many token requests for ``resource`` reached the emulator's token endpoint (its request
        log); ``None`` on Azure, where no log is kept (``connection.cache.stats`` counts there)."""
        if self.emulator is None:
            return None
        wanted = resource.rstrip("/")
        return sum(1 for r in self.emulator.requests.filter(endpoint="token")
                   if any(v.rstrip("/") == wanted for v in r.query.get("resource", [])))

    def __str__(self) -> str:
        return self.note


def _openai_installed() -> bool:
    try:
        import openai  # noqa: F401 - the notebook imports it next anyway
    except ImportError:
        return False
    return True


def openai_targets(endpoint: str | None = None, deployment: str | None = None, *,
                   connection: Connection | None = None) -> OpenAITargets:
    """Where to call Azure OpenAI: yours on Azure; off Azure, the emulator's Azure OpenAI account.

    On Azure (any connection but the embedded emulator) this returns ``endpoint`` (else the openai
    SDK's own ``AZURE_OPENAI_ENDPOINT``) and ``deployment``, with no extra client keywords. Only for
    the emulator: its account's endpoint, its chat deployment (``gpt-4o-mini``) and resource id, and
    the keywords that make the SDK trust its certificate authority. Without the openai package,
    ``ready`` is False and the note says how to install it.

    Example::

        >>> targets = openai_targets("https://my-aoai.openai.azure.com", "gpt-4o",
        ...                          connection=connect("http://127.0.0.1:9"))
        >>> targets.client_options(), targets.v1_url
        ({}, 'https://my-aoai.openai.azure.com/openai/v1/')
        >>> print(openai_targets(connection=connect("http://127.0.0.1:9")))
        Azure OpenAI: no endpoint given (ENDPOINT in the first cell, or AZURE_OPENAI_ENDPOINT): the calls are skipped
    """
    conn = connection if connection is not None else current_or_connect()
    installed = _openai_installed()
    missing = "" if installed else (" | the openai package is not installed: pip install -e \".[openai]\" in your clone "
                                    "of mi-notebook (or pip install openai), then run the notebook again")
    emulator = conn.emulator
    account = emulator.openai if emulator is not None else None
    if emulator is None or account is None or emulator.openai_url is None:
        endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT") or None
        where = (f"{endpoint}, deployment {deployment or '(not set: DEPLOYMENT)'}" if endpoint else
                 "no endpoint given (ENDPOINT in the first cell, or AZURE_OPENAI_ENDPOINT): the calls are skipped")
        return OpenAITargets(endpoint, deployment or "", None, note=f"Azure OpenAI: {where}{missing}",
                             installed=installed)
    return OpenAITargets(str(emulator.openai_url), EMULATED_CHAT, account.resource_id, installed=installed,
                         emulator=emulator,
                         note=f"Azure OpenAI: the emulator's account {account.name} at {emulator.openai_url}, "
                              f"deployment {EMULATED_CHAT}{missing}")
