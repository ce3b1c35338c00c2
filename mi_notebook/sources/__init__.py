"""Managed-identity token sources, one module per host, each only its protocol, all on one pipeline.

Every source is a :class:`TokenSource` (the retry loop, the answer classification, the error
mapping: :mod:`mi_notebook.sources._base`) and has the shape of the :class:`Source` protocol a
connection holds: ``host`` (the kind of endpoint), ``endpoint``, ``note`` (one sentence for the
connection's reason, or ``None``), ``fingerprint`` (a keyed digest of its secret settings),
``resolve_identity``, ``request_token(resource, identity=None, *, on_attempt=None) -> AccessToken``
(with a ``Timeline`` of every attempt), ``close()``, a context manager, a repr without secrets, and a
``from_environment(environ)`` classmethod reading the variables the host sets.
:func:`mi_notebook.detection.detect` decides which one this process needs.

=====================  ==================  ============================================================
class                  ``host``            host variables
=====================  ==================  ============================================================
ImdsSource             ``vm``              none (AZURE_POD_IDENTITY_AUTHORITY_HOST moves IMDS's base
                                           URL); also public as ``mi.ImdsClient``
AzureMlSource          ``azureml``         MSI_ENDPOINT, MSI_SECRET, DEFAULT_IDENTITY_CLIENT_ID (optional)
AppServiceSource       ``appservice``      IDENTITY_ENDPOINT, IDENTITY_HEADER
ArcSource              ``arc``             IDENTITY_ENDPOINT (IMDS_ENDPOINT), the agent's key directory
CloudShellSource       ``cloudshell``      MSI_ENDPOINT (tokens are the signed-in user's)
ServiceFabricSource    ``servicefabric``   IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT
                                           (named; ``request_token`` raises UnsupportedHostError)
WorkloadIdentitySource ``workload``        AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE,
                                           AZURE_AUTHORITY_HOST (AKS; tokens from Entra ID)
=====================  ==================  ============================================================

Example::

    >>> from mi_notebook.sources import SOURCE_CLASSES
    >>> sorted(SOURCE_CLASSES)
    ['appservice', 'arc', 'azureml', 'cloudshell', 'servicefabric', 'vm', 'workload']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use, so that the VM's path (IMDS) never imports the other hosts or the claims
# machinery Azure ML and Cloud Shell need: public name -> module below this package.
_LAZY: dict[str, str] = {
    "Source": "_base",
    "TokenSource": "_base",
    "host_retry_policy": "_base",
    "Secret": "_settings",
    "UserAccessToken": "_user",
    "UserTokenWarning": "_user",
    "AppServiceSource": "appservice",
    "ArcSource": "arc",
    "AzureMlSource": "azureml",
    "CloudShellSource": "cloudshell",
    "ImdsClient": "imds",
    "ImdsSource": "imds",
    "ServiceFabricSource": "servicefabric",
    "WorkloadIdentitySource": "workload",
    "AssertionTimeError": "_entra",
    "ClientNotFoundError": "_entra",
    "EntraError": "_entra",
    "EntraInvalidResourceError": "_entra",
    "FederatedCredentialError": "_entra",
    "OidcIssuerUnreachableError": "_entra",
}

__all__ = [
    "SOURCE_CLASSES",
    "AppServiceSource",
    "ArcSource",
    "AssertionTimeError",
    "AzureMlSource",
    "ClientNotFoundError",
    "CloudShellSource",
    "EntraError",
    "EntraInvalidResourceError",
    "FederatedCredentialError",
    "ImdsClient",
    "ImdsSource",
    "OidcIssuerUnreachableError",
    "Secret",
    "ServiceFabricSource",
    "Source",
    "TokenSource",
    "UserAccessToken",
    "UserTokenWarning",
    "WorkloadIdentitySource",
    "host_retry_policy",
    "source_class",
    "user_token_evidence",
]

#: each host's source class, by the host name :func:`mi_notebook.detection.detect` uses (module, class)
_CLASSES: dict[str, tuple[str, str]] = {
    "vm": ("imds", "ImdsSource"),
    "azureml": ("azureml", "AzureMlSource"),
    "appservice": ("appservice", "AppServiceSource"),
    "arc": ("arc", "ArcSource"),
    "cloudshell": ("cloudshell", "CloudShellSource"),
    "servicefabric": ("servicefabric", "ServiceFabricSource"),
    "workload": ("workload", "WorkloadIdentitySource"),
}


def source_class(host: str) -> type[TokenSource] | type[ServiceFabricSource]:
    """The source class of ``host`` (``KeyError`` for a host without one), importing only its module.

    Example::

        >>> source_class("vm").__name__, source_class("azureml").host
        ('ImdsSource', 'azureml')
    """
    module, name = _CLASSES[host]
    cls: type[TokenSource] | type[ServiceFabricSource] = getattr(importlib.import_module(f".{module}", __name__), name)
    return cls


def __getattr__(name: str) -> Any:
    if name == "SOURCE_CLASSES":
        value: Any = {host: source_class(host) for host in _CLASSES}
    elif name == "user_token_evidence":
        from ..claims import user_token_evidence as value
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - what type checkers see for the lazy names
    from ..claims import user_token_evidence
    from ._base import Source, TokenSource, host_retry_policy
    from ._entra import (
        AssertionTimeError,
        ClientNotFoundError,
        EntraError,
        EntraInvalidResourceError,
        FederatedCredentialError,
        OidcIssuerUnreachableError,
    )
    from ._settings import Secret
    from ._user import UserAccessToken, UserTokenWarning
    from .appservice import AppServiceSource
    from .arc import ArcSource
    from .azureml import AzureMlSource
    from .cloudshell import CloudShellSource
    from .imds import ImdsClient, ImdsSource
    from .servicefabric import ServiceFabricSource
    from .workload import WorkloadIdentitySource

    SOURCE_CLASSES: dict[str, type[TokenSource] | type[ServiceFabricSource]]
