"""What a token is for: well-known Azure resources by alias, App ID URIs, and ``.default`` scopes.

IMDS speaks the v1 protocol: it takes a ``resource`` (an App ID URI such as
``https://management.azure.com/``, or an application id GUID) and uses it verbatim as the token's
audience. The Azure SDKs speak in v2 scopes (``https://management.azure.com/.default``).
:func:`resolve_resource` accepts all three forms and returns the ``resource`` to send, or raises a
``ValueError`` that says what is wrong, before any request.

**One token per resource people mean.** For a well-known resource, the alias, its App ID URI with
or without the trailing slash (in any letter case) and its ``.default`` scope all resolve to the one
form in :data:`WELL_KNOWN_RESOURCES` (the form the resource's documentation uses, e.g.
``https://management.azure.com/``), so ``get_token("arm")`` and an Azure SDK client asking for
``https://management.azure.com/.default`` share one request and one cached token. Any other
resource is sent exactly as given (minus ``/.default``): Entra ID's App ID URIs are the app's own.

Example::

    >>> from mi_notebook.resources import resolve_resource, resource_to_scope, alias_for
    >>> resolve_resource("arm")
    'https://management.azure.com/'
    >>> resolve_resource("https://vault.azure.net/.default")
    'https://vault.azure.net'
    >>> resolve_resource("https://management.azure.com/.default")  # the SDKs' scope: the same token as "arm"
    'https://management.azure.com/'
    >>> resource_to_scope("https://management.azure.com/"), alias_for("https://graph.microsoft.com")
    ('https://management.azure.com/.default', 'graph')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "WELL_KNOWN_RESOURCES",
    "WellKnownResource",
    "alias_for",
    "list_resources",
    "resolve_resource",
    "resource_to_scope",
    "scope_to_resource",
    "suggest_aliases",
    "suggest_resources",
]

DEFAULT_SUFFIX = "/.default"
ACCEPTED_FORMS = (
    "an alias such as 'arm', 'vault', 'storage', 'graph' (see mi_notebook.resources.list_resources()), "
    "an App ID URI such as 'https://management.azure.com/' or 'api://<app id>', an application id GUID, "
    "or a scope ending in '/.default'"
)


@dataclass(frozen=True)
class WellKnownResource:
    """A Microsoft resource (API) by a short alias.

    Example::

        >>> WELL_KNOWN_RESOURCES["arm"].uri
        'https://management.azure.com/'
    """

    alias: str
    uri: str
    title: str

    @property
    def scope(self) -> str:
        """The v2 scope for the same resource (``<uri>/.default``)."""
        return resource_to_scope(self.uri)


def _table(*rows: tuple[str, str, str]) -> dict[str, WellKnownResource]:
    return {alias: WellKnownResource(alias, uri, title) for alias, uri, title in rows}


# The URIs are the resources' App ID URIs as their documentation spells them (the trailing slash
# matters: IMDS echoes the resource verbatim as the token's ``aud``).
WELL_KNOWN_RESOURCES: dict[str, WellKnownResource] = _table(
    ("arm", "https://management.azure.com/", "Azure Resource Manager"),
    ("vault", "https://vault.azure.net", "Azure Key Vault"),
    ("storage", "https://storage.azure.com/", "Azure Storage (blobs, queues, tables, files)"),
    ("graph", "https://graph.microsoft.com/", "Microsoft Graph"),
    ("sql", "https://database.windows.net/", "Azure SQL Database and Managed Instance"),
    ("cosmos", "https://cosmos.azure.com", "Azure Cosmos DB (data plane)"),
    ("eventhubs", "https://eventhubs.azure.net", "Azure Event Hubs"),
    ("servicebus", "https://servicebus.azure.net", "Azure Service Bus"),
    ("monitor", "https://monitor.azure.com/", "Azure Monitor (metrics, ingestion)"),
    ("loganalytics", "https://api.loganalytics.io", "Log Analytics query API"),
    ("devops", "499b84ac-1321-427f-aa17-267ca6975798", "Azure DevOps"),
    ("acr", "https://containerregistry.azure.net", "Azure Container Registry"),
    ("appconfig", "https://azconfig.io", "Azure App Configuration"),
    ("batch", "https://batch.core.windows.net/", "Azure Batch"),
    ("datalake", "https://datalake.azure.net/", "Azure Data Lake"),
    ("kusto", "https://kusto.kusto.windows.net", "Azure Data Explorer (Kusto)"),
    ("cognitiveservices", "https://cognitiveservices.azure.com", "Azure AI services (Cognitive Services, OpenAI)"),
    ("ossrdbms", "https://ossrdbms-aad.database.windows.net", "Azure Database for PostgreSQL / MySQL"),
    ("redis", "https://redis.azure.com", "Azure Cache for Redis"),
    ("eventgrid", "https://eventgrid.azure.net", "Azure Event Grid"),
    ("digitaltwins", "https://digitaltwins.azure.net", "Azure Digital Twins"),
    ("synapse", "https://dev.azuresynapse.net", "Azure Synapse Analytics (dev endpoint)"),
    ("databricks", "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d", "Azure Databricks"),
    ("aks", "6dae42f8-4368-4678-94ff-3960e28e3630", "AKS (Microsoft Entra server for kubectl)"),
)

# What people type for a resource when they know it by another name (az, the portal, the SDKs).
COMMON_NAMES: dict[str, str] = {
    "keyvault": "vault", "kv": "vault", "akv": "vault", "keyvaults": "vault",
    "storageaccount": "storage", "blob": "storage", "blobs": "storage", "adls": "storage", "queue": "storage",
    "management": "arm", "resourcemanager": "arm", "azure": "arm", "mgmt": "arm",
    "msgraph": "graph", "microsoftgraph": "graph",
    "sqldb": "sql", "database": "sql", "azuresql": "sql",
    "cosmosdb": "cosmos", "documentdb": "cosmos",
    "eventhub": "eventhubs", "servicebusnamespace": "servicebus", "sb": "servicebus",
    "openai": "cognitiveservices", "azureopenai": "cognitiveservices", "aoai": "cognitiveservices",
    "postgres": "ossrdbms", "postgresql": "ossrdbms", "mysql": "ossrdbms",
    "containerregistry": "acr", "adx": "kusto", "dataexplorer": "kusto", "logs": "loganalytics",
}
# Delegated (user) permissions: a managed identity has no user, so only "<resource>/.default" works.
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
_PERMISSION = re.compile(r"[A-Z][A-Za-z]*(\.[A-Z][A-Za-z]*)+|user_impersonation|access_as_user|[A-Za-z]+\.[A-Za-z]+\.All")
DEFAULT_ONLY = ("managed identities get app-only tokens, so the only scope they can ask for is "
                "'<resource>/.default' (the token then carries the app roles granted to the identity)")

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A DNS host name (labels of letters, digits, hyphens), optionally with a port; IMDS needs no more.
_HOST = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_BAD_URI_CHARS = re.compile(r"[\s<>\"{}|\\^`]")


def list_resources() -> list[WellKnownResource]:
    """The well-known resources, in table order (for pickers and ``--help``).

    Example::

        >>> [r.alias for r in list_resources()][:4]
        ['arm', 'vault', 'storage', 'graph']
    """
    return list(WELL_KNOWN_RESOURCES.values())


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_uri(text: str) -> str:
    """``text`` if it is an App ID URI IMDS can be asked for, else a ``ValueError``."""
    if _BAD_URI_CHARS.search(text):
        raise ValueError(f"resource {_short(text)!r} contains spaces or characters not allowed in a URI; expected {ACCEPTED_FORMS}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"resource {_short(text)!r} is not a valid URI ({exc}); expected {ACCEPTED_FORMS}") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise ValueError(
            f"resource {_short(text)!r} uses http://; Entra ID App ID URIs use https:// or api:// "
            f"(did you mean {'https' + text[4:]!r}?). For a legacy app registered with an http:// "
            f"URI, pass its application id GUID instead."
        )
    if scheme not in ("https", "api"):
        raise ValueError(
            f"resource {_short(text)!r} is not an App ID URI (scheme must be https:// or api://); "
            f"expected {ACCEPTED_FORMS}"
        )
    if not parts.netloc or not _HOST.fullmatch(parts.hostname or ""):
        raise ValueError(f"resource {_short(text)!r} has no valid host after {scheme}://; expected {ACCEPTED_FORMS}")
    if parts.username or parts.password:
        raise ValueError(f"resource {_short(text)!r} must not contain user info ('user@'); expected {ACCEPTED_FORMS}")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"resource {_short(text)!r} must not have a query or fragment ('?', '#'); expected {ACCEPTED_FORMS}")
    return text


def resolve_resource(text: str) -> str:
    """The ``resource`` to send to IMDS for an alias, an App ID URI, an app id or a ``.default`` scope.

    Aliases are case-insensitive. A well-known resource's URI or scope, however spelled, becomes its
    one form in :data:`WELL_KNOWN_RESOURCES` (one token per resource); any other URI is kept verbatim
    (apart from surrounding spaces and ``/.default``), because IMDS uses it verbatim as the token's
    audience.

    Example::

        >>> resolve_resource(" Graph "), resolve_resource("api://my-api/.default")
        ('https://graph.microsoft.com/', 'api://my-api')
        >>> resolve_resource("https://management.azure.com"), resolve_resource("https://STORAGE.azure.com/.default")
        ('https://management.azure.com/', 'https://storage.azure.com/')
        >>> resolve_resource("https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read")
        Traceback (most recent call last):
        ...
        ValueError: one resource at a time: 'https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read' holds 2 (IMDS issues a token for a single resource)
    """
    if not isinstance(text, str):
        raise ValueError(f"resource must be a string ({ACCEPTED_FORMS}); got {type(text).__name__}")
    value = text.strip()
    if not value:
        raise ValueError(f"resource is empty; expected {ACCEPTED_FORMS}")
    pieces = [p for p in re.split(r"[\s,;]+", value) if p]
    if len(pieces) > 1:
        raise ValueError(
            f"one resource at a time: {_short(value)!r} holds {len(pieces)} "
            "(IMDS issues a token for a single resource)"
        )
    known = WELL_KNOWN_RESOURCES.get(value.lower())
    if known is not None:
        return known.uri
    if value.lower() in OIDC_SCOPES:
        raise ValueError(f"{value!r} is a sign-in scope for users; {DEFAULT_ONLY}, e.g. 'https://graph.microsoft.com/.default'")
    if value.endswith(DEFAULT_SUFFIX):
        return _one_form(scope_to_resource(value))
    if _GUID.fullmatch(value):
        return _one_form(value)
    if "://" not in value:
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) and "." not in value:
            close = suggest_aliases(value)
            hint = f"did you mean {' or '.join(repr(a) for a in close)}? " if close else ""
            raise ValueError(
                f"unknown resource alias {value!r}; {hint}known aliases: {', '.join(WELL_KNOWN_RESOURCES)}. "
                f"Or pass an App ID URI such as 'https://management.azure.com/'"
            )
        alias = alias_for("https://" + value)
        meant = WELL_KNOWN_RESOURCES[alias].uri if alias else next(iter(suggest_resources("https://" + value)), None)
        hint = f"did you mean {meant!r}? " if meant else ""
        raise ValueError(f"resource {_short(value)!r} is not a URI; {hint}expected {ACCEPTED_FORMS}")
    _refuse_permission_scope(value)
    return _one_form(_check_uri(value))


def _one_form(resource: str) -> str:
    """A well-known resource's one form (matched ignoring case and one trailing slash), else ``resource``."""
    key = resource.lower()
    alias = _BY_SPELLING.get(key[:-1] if key.endswith("/") else key)
    return WELL_KNOWN_RESOURCES[alias].uri if alias is not None else resource


def suggest_resources(resource: str, limit: int = 1) -> list[str]:
    """Well-known App ID URIs close to ``resource`` (a likely typo), for a "did you mean" hint.

    Only a hint: Entra ID may know a custom App ID URI that looks like a typo, so nothing is refused
    on this account. Empty for a well-known resource itself and for anything not close to one.

    Example::

        >>> suggest_resources("https://vault.azure.com"), suggest_resources("https://managment.azure.com/")
        (['https://vault.azure.net'], ['https://management.azure.com/'])
        >>> suggest_resources("https://vault.azure.net/"), suggest_resources("api://my-api")
        ([], [])
    """
    if not isinstance(resource, str):
        return []
    value = resource.strip()
    if value.endswith(DEFAULT_SUFFIX):
        value = value[: -len(DEFAULT_SUFFIX)]
    if alias_for(value) is not None:
        return []
    key = re.sub(r"^[a-z]+://", "", _canonical(value))
    uris = {re.sub(r"^[a-z]+://", "", _canonical(r.uri)): r.uri for r in WELL_KNOWN_RESOURCES.values() if "://" in r.uri}
    import difflib  # only when a name was not recognised: a first token does not pay for it

    close = difflib.get_close_matches(key, list(uris), n=limit, cutoff=0.75)
    return [uris[m] for m in close if _edits(key, m) <= _TYPO_EDITS]


_TYPO_EDITS = 3  # a typo changes a few characters ("vault.azure.com"), not a whole label ("batch." vs "management.")


def _edits(a: str, b: str) -> int:
    """The Levenshtein distance between ``a`` and ``b`` (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def suggest_aliases(text: str, limit: int = 2) -> list[str]:
    """Well-known aliases close to ``text`` (a common other name first, then close spellings).

    Example::

        >>> suggest_aliases("keyvault"), suggest_aliases("stroage"), suggest_aliases("zzz")
        (['vault'], ['storage'], [])
    """
    value = re.sub(r"[\s_.-]", "", str(text).lower())
    if value in COMMON_NAMES:
        return [COMMON_NAMES[value]]
    import difflib  # only when a name was not recognised

    return difflib.get_close_matches(value, list(WELL_KNOWN_RESOURCES), n=limit, cutoff=0.6)


def _refuse_permission_scope(value: str) -> None:
    """A ``ValueError`` for a delegated permission such as ``https://graph.microsoft.com/User.Read``.

    App ID URIs may have a path (``api://contoso.com/productsapi``), so only a path below a
    well-known resource, or a last segment shaped like a permission, is refused.
    """
    try:
        parts = urlsplit(value)
    except ValueError:
        return  # _check_uri says what is wrong
    path = parts.path.strip("/")
    if not path:
        return
    base = f"{parts.scheme}://{parts.netloc}"
    below_known = _canonical(base) in _BY_URI
    if below_known or _PERMISSION.fullmatch(path.rsplit("/", 1)[-1]):
        scope = resource_to_scope(base if below_known else value.rsplit("/", 1)[0])
        raise ValueError(f"{_short(value)!r} is a permission (a delegated scope), not a resource: {DEFAULT_ONLY}. "
                         f"Ask for {scope!r} instead")


def scope_to_resource(scope: str) -> str:
    """The v1 resource for a v2 ``.default`` scope (``https://x/.default`` -> ``https://x``).

    Example::

        >>> scope_to_resource("https://management.azure.com//.default")
        'https://management.azure.com/'
        >>> scope_to_resource("https://management.azure.com/.default")
        'https://management.azure.com'
    """
    if not isinstance(scope, str):
        raise ValueError(f"scope must be a string such as 'https://management.azure.com/.default'; got {type(scope).__name__}")
    value = scope.strip()
    if not value.endswith(DEFAULT_SUFFIX):
        raise ValueError(
            f"scope {_short(value)!r} does not end in '/.default'; managed identity tokens are app-only, "
            f"so only '<resource>/.default' scopes can be requested (e.g. 'https://management.azure.com/.default')"
        )
    resource = value[: -len(DEFAULT_SUFFIX)]
    if not resource:
        raise ValueError("scope '/.default' names no resource; expected e.g. 'https://management.azure.com/.default'")
    if _GUID.fullmatch(resource):
        return resource
    if "://" not in resource:
        raise ValueError(f"scope {_short(value)!r} does not start with an App ID URI; expected {ACCEPTED_FORMS}")
    return _check_uri(resource)


def resource_to_scope(resource: str) -> str:
    """The v2 scope for a resource, alias or scope (idempotent).

    One trailing slash is dropped first, the usual spelling (``https://management.azure.com/.default``).

    Example::

        >>> resource_to_scope("arm"), resource_to_scope("https://vault.azure.net")
        ('https://management.azure.com/.default', 'https://vault.azure.net/.default')
    """
    value = resolve_resource(resource)
    if value.endswith("/"):
        value = value[:-1]
    return value + DEFAULT_SUFFIX


def _canonical(uri: str) -> str:
    return uri.strip().rstrip("/").lower()


_BY_URI = {_canonical(r.uri): r.alias for r in WELL_KNOWN_RESOURCES.values()}
# the spellings that name a well-known resource: its URI in lower case, without one trailing slash
_BY_SPELLING = {(r.uri.lower()[:-1] if r.uri.endswith("/") else r.uri.lower()): r.alias
                for r in WELL_KNOWN_RESOURCES.values()}


def alias_for(resource: str) -> str | None:
    """The alias of a well-known resource (ignoring case and a trailing slash), else ``None``.

    Example::

        >>> alias_for("https://management.azure.com"), alias_for("api://my-api")
        ('arm', None)
    """
    if not isinstance(resource, str):
        return None
    value = resource.strip()
    if value.endswith(DEFAULT_SUFFIX):
        value = value[: -len(DEFAULT_SUFFIX)]
    if value.lower() in WELL_KNOWN_RESOURCES:
        return value.lower()
    return _BY_URI.get(_canonical(value))
