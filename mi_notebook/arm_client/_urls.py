"""Where Azure Resource Manager is, which api-version a path gets, and which URLs may carry the token.

The rules that protect the bearer token, all checked before any request (``ValueError``):

* it is sent only over https, or over http to a loopback address chosen explicitly (the emulator,
  an ``url=``, ``MI_NOTEBOOK_ARM_URL``): :func:`check_base_url`;
* a ``nextLink`` (or an absolute path given to ``get``) must stay on ARM's scheme, host and port:
  :func:`follow`;
* paths and names are plain (no query or fragment smuggled in): :func:`target`, :func:`segment`.

Where ARM is (:func:`locate`): the embedded emulator's ``arm_url`` and CA bundle, else
``MI_NOTEBOOK_ARM_URL`` / ``MI_NOTEBOOK_ARM_CA_BUNDLE``, else the connection's cloud's ARM
(``https://management.azure.com`` in the public cloud, ``https://management.usgovcloudapi.net`` in
Azure Government, ...: :mod:`mi_notebook.clouds`). The token is always for the connection's cloud's
ARM audience (``"arm"``), the emulator's ARM included.

Example::

    >>> target("https://management.azure.com", "/subscriptions", None, {"$top": "5"})
    ('https://management.azure.com/subscriptions', [('api-version', '2022-12-01'), ('$top', '5')])
    >>> check_base_url("http://10.0.0.1")
    Traceback (most recent call last):
    ValueError: refusing to send a bearer token over plain http to 10.0.0.1: use https (http is allowed only to a loopback address such as the emulator on 127.0.0.1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..clouds import Cloud
from ..http import is_loopback_host

__all__ = [
    "API_VERSIONS",
    "ARM_RESOURCE",
    "ARM_URL",
    "ENV_ARM_CA_BUNDLE",
    "ENV_ARM_URL",
    "SUBSCRIPTIONS_API_VERSION",
    "check_base_url",
    "default_api_version",
    "follow",
    "locate",
    "segment",
    "target",
]

ARM_URL = "https://management.azure.com"  # the public cloud's; a connection's own: its cloud.arm_url
ARM_RESOURCE = "https://management.azure.com/"  # the public cloud's; a connection's own: resolve_resource("arm", cloud)
ENV_ARM_URL = "MI_NOTEBOOK_ARM_URL"
ENV_ARM_CA_BUNDLE = "MI_NOTEBOOK_ARM_CA_BUNDLE"

#: api-version used when none is given, by provider namespace (``None``: Microsoft.Resources paths).
API_VERSIONS: dict[str | None, str] = {
    None: "2021-04-01",
    "microsoft.compute": "2024-07-01",
    "microsoft.managedidentity": "2023-01-31",
}
SUBSCRIPTIONS_API_VERSION = "2022-12-01"


def default_api_version(path: str) -> str:
    """The api-version used for ``path`` when none is given (by the provider it names).

    Example::

        >>> default_api_version("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")
        '2024-07-01'
        >>> default_api_version("/subscriptions"), default_api_version("/subscriptions/s/resourcegroups")
        ('2022-12-01', '2021-04-01')
    """
    segments = [s.lower() for s in urlsplit(path).path.split("/") if s]
    if segments[:1] == ["subscriptions"] and len(segments) <= 2:
        return SUBSCRIPTIONS_API_VERSION
    namespace = None
    if "providers" in segments:
        i = len(segments) - 1 - segments[::-1].index("providers")
        namespace = segments[i + 1] if i + 1 < len(segments) else None
    return API_VERSIONS.get(namespace, API_VERSIONS[None])


def check_base_url(url: str) -> str:
    """ARM's base URL as ``scheme://host[:port]``; ``ValueError`` unless it is safe for a bearer token.

    Example::

        >>> check_base_url("http://127.0.0.1:8443/"), check_base_url("https://management.azure.com")
        ('http://127.0.0.1:8443', 'https://management.azure.com')
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the ARM url must look like https://host[:port], got {url!r}")
    if parts.query or parts.fragment or parts.path.strip("/"):
        raise ValueError(f"the ARM url must be a base url (no path, query or fragment), got {url!r}")
    if "@" in parts.netloc:  # any user info, even an empty user name
        raise ValueError("the ARM url must not carry user credentials (user info before '@')")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to send a bearer token over plain http to {parts.hostname}: use https "
            "(http is allowed only to a loopback address such as the emulator on 127.0.0.1)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def follow(base: str, link: str) -> tuple[str, list[tuple[str, str]]]:
    """``(url, query)`` for an absolute ``link`` (a ``nextLink``) that stays on ``base``'s origin.

    Example::

        >>> follow("https://management.azure.com", "https://management.azure.com:443/subscriptions?$skiptoken=x")
        ('https://management.azure.com/subscriptions', [('$skiptoken', 'x')])
        >>> follow("https://management.azure.com", "https://evil.example/subscriptions")
        Traceback (most recent call last):
        ValueError: refusing to send the token to https://evil.example: the link leaves https://management.azure.com
    """
    parts, mine = urlsplit(link), urlsplit(base)
    if _origin(parts.scheme, parts.hostname, parts.port) != _origin(mine.scheme, mine.hostname, mine.port):
        raise ValueError(f"refusing to send the token to {parts.scheme}://{parts.netloc}: the link leaves {base}")
    return f"{mine.scheme}://{mine.netloc}{parts.path}", parse_qsl(parts.query, keep_blank_values=True)


def target(base: str, path: str, api_version: str | None,
           params: Mapping[str, str] | None) -> tuple[str, list[tuple[str, str]]]:
    """``(url, query)`` for ``path`` (``/subscriptions/...`` or a same-origin absolute URL) on ``base``:
    ``api-version`` first (given, already in the link, or :func:`default_api_version`), then ``params``.

    Example::

        >>> target("https://management.azure.com", "/subscriptions/s/resourcegroups", "2020-01-01", None)
        ('https://management.azure.com/subscriptions/s/resourcegroups', [('api-version', '2020-01-01')])
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"path must be a non-empty string such as '/subscriptions', got {path!r}")
    if "://" in path:
        url, query = follow(base, path)
    else:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/' (e.g. '/subscriptions/...'), got {path!r}")
        if "?" in path or "#" in path:
            raise ValueError("put query parameters in params=..., not in the path")
        url, query = base + path, []
    if api_version is not None and (not isinstance(api_version, str) or not api_version.strip()):
        raise ValueError(f"api_version must be a non-empty string such as '2021-04-01', got {api_version!r}")
    query = [(k, v) for k, v in query if k.lower() != "api-version" or api_version is None]
    if not any(k.lower() == "api-version" for k, _ in query):
        query.insert(0, ("api-version", api_version or default_api_version(urlsplit(url).path)))
    for key, value in (params or {}).items():
        query = [(k, v) for k, v in query if k != key] + [(str(key), str(value))]
    return url, query


def segment(value: str | None, name: str) -> str:
    """``value`` if it is a plain name or id (one path segment), else ``ValueError`` naming ``name``.

    Example::

        >>> segment("rg-data", "group")
        'rg-data'
        >>> segment("a/b", "group")
        Traceback (most recent call last):
        ValueError: group must be a plain name or id without '/', '?' or '#', got 'a/b'
    """
    if not value or not isinstance(value, str) or "/" in value or "?" in value or "#" in value:
        raise ValueError(f"{name} must be a plain name or id without '/', '?' or '#', got {value!r}")
    return value


def locate(connection: Any) -> tuple[str, bool | str | None]:
    """ARM's URL and TLS verification for a connection: the emulator's own, the environment's, or its
    cloud's (the connection's ``cloud``, which a VM learns from IMDS; the public cloud without one).

    Example::

        >>> from types import SimpleNamespace
        >>> from mi_notebook.clouds import cloud
        >>> locate(SimpleNamespace(chosen="probed", endpoint="http://169.254.169.254", emulator=None))
        ('https://management.azure.com', None)
        >>> locate(SimpleNamespace(chosen="probed", endpoint="http://169.254.169.254", emulator=None,
        ...                        cloud=cloud("AzureUSGovernmentCloud")))
        ('https://management.usgovcloudapi.net', None)
    """
    emulator = getattr(connection, "emulator", None)
    arm_url = getattr(emulator, "arm_url", None) if emulator is not None else None
    if arm_url:
        return str(arm_url), getattr(emulator, "ca_bundle", None) or None
    env_url = os.environ.get(ENV_ARM_URL, "").strip()
    if env_url:
        return env_url, os.environ.get(ENV_ARM_CA_BUNDLE) or None
    chosen = getattr(connection, "chosen", None)
    if chosen == "emulator":
        raise ValueError("this emulator has no ARM side (started with arm=False); pass url=... explicitly")
    endpoint = str(getattr(connection, "endpoint", ""))
    if chosen == "given" and is_loopback_host(urlsplit(endpoint).hostname or ""):
        # Tokens from a loopback IMDS (an emulator in another process) mean nothing to Azure's ARM.
        raise ValueError(
            f"IMDS is the loopback endpoint {endpoint}, so Azure's ARM would reject its tokens: "
            f"set {ENV_ARM_URL} (and {ENV_ARM_CA_BUNDLE}) to the ARM and CA lines `mi-notebook emulator` "
            "printed, or pass url=... explicitly"
        )
    cloud = getattr(connection, "cloud", None)  # a VM asks its IMDS, once
    return (cloud.arm_url if isinstance(cloud, Cloud) else ARM_URL), None


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    return scheme, (host or "").lower(), port or (443 if scheme == "https" else 80)
