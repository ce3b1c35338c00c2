"""Managed-identity token sources, one module per host, each only its protocol.

Every source has the shape of :class:`~mi_notebook.imds.ImdsClient`, so a connection can hold any of
them: ``kind`` (the tokens' ``source`` label), ``endpoint``, ``request_token(resource, identity=None,
*, on_attempt=None) -> AccessToken`` (with a ``Timeline`` of every attempt), ``close()``, a context
manager, a repr without secrets, ``note`` (one sentence for the connection's reason, or ``None``),
and a ``from_environment(environ)`` classmethod reading the variables the host sets.
:func:`mi_notebook.detection.detect` decides which one this process needs.

=====================  ==============  ================================================================
class                  ``kind``        host variables
=====================  ==============  ================================================================
AzureMlSource          ``azureml``     MSI_ENDPOINT, MSI_SECRET, DEFAULT_IDENTITY_CLIENT_ID (optional)
AppServiceSource       ``appservice``  IDENTITY_ENDPOINT, IDENTITY_HEADER
ArcSource              ``arc``         IDENTITY_ENDPOINT (IMDS_ENDPOINT), the agent's key directory
CloudShellSource       ``cloudshell``  MSI_ENDPOINT (tokens are the signed-in user's)
ServiceFabricSource    -               IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT
                                       (named; ``request_token`` raises UnsupportedHostError)
=====================  ==============  ================================================================

Example::

    >>> from mi_notebook.sources import SOURCE_CLASSES
    >>> sorted(SOURCE_CLASSES)
    ['appservice', 'arc', 'azureml', 'cloudshell', 'servicefabric']
"""

from __future__ import annotations

from ..claims import user_token_evidence
from ._base import TokenSource, host_retry_policy
from ._settings import Secret
from ._user import UserAccessToken, UserTokenWarning
from .appservice import AppServiceSource
from .arc import ArcSource
from .azureml import AzureMlSource
from .cloudshell import CloudShellSource
from .servicefabric import ServiceFabricSource

__all__ = [
    "SOURCE_CLASSES",
    "AppServiceSource",
    "ArcSource",
    "AzureMlSource",
    "CloudShellSource",
    "Secret",
    "ServiceFabricSource",
    "TokenSource",
    "UserAccessToken",
    "UserTokenWarning",
    "host_retry_policy",
    "user_token_evidence",
]

#: each host's source class, by the host name :func:`mi_notebook.detection.detect` uses
SOURCE_CLASSES: dict[str, type] = {
    "azureml": AzureMlSource,
    "appservice": AppServiceSource,
    "arc": ArcSource,
    "cloudshell": CloudShellSource,
    "servicefabric": ServiceFabricSource,
}
