"""Service Fabric: detected and named, not spoken.

Service Fabric sets ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER`` + ``IDENTITY_SERVER_THUMBPRINT``; its
token service is reached over TLS with a self-signed certificate pinned by that thumbprint
(azure-identity ``service_fabric.py``, MSAL ``_obtain_token_on_service_fabric``), and identities are
chosen in the cluster, not per request. It is no notebook host, so mi-notebook does not implement
it: :meth:`ServiceFabricSource.request_token` raises
:class:`~mi_notebook.errors.UnsupportedHostError` saying so, instead of pretending to work.

Example::

    >>> src = ServiceFabricSource.from_environment({"IDENTITY_ENDPOINT": "https://10.0.0.4:2377/metadata/identity/oauth2/token",
    ...     "IDENTITY_HEADER": "s3cr3t", "IDENTITY_SERVER_THUMBPRINT": "AB12"})
    >>> src
    ServiceFabricSource(endpoint='https://10.0.0.4:2377/metadata/identity/oauth2/token', supported=False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UnsupportedHostError
from ..identity import Identity
from ..tokens import AccessToken
from ._settings import Secret, check_endpoint, check_secret, endpoint_from, secret_from

__all__ = ["ServiceFabricSource"]

MESSAGE = ("This process runs on Service Fabric (IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT "
           "are set). mi-notebook does not speak Service Fabric's token protocol (TLS pinned to the server "
           "thumbprint, identities chosen in the cluster), so it cannot get a token here.")


class ServiceFabricSource:
    """Service Fabric's settings, checked and named; :meth:`request_token` always raises.

    Example::

        >>> ServiceFabricSource("https://10.0.0.4:2377/t", "s3cr3t", "AB12").request_token("arm")
        Traceback (most recent call last):
        ...
        mi_notebook.errors.UnsupportedHostError: This process runs on Service Fabric (IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT are set). mi-notebook does not speak Service Fabric's token protocol (TLS pinned to the server thumbprint, identities chosen in the cluster), so it cannot get a token here.
        What to do: Use azure-identity's ManagedIdentityCredential here (it speaks Service Fabric), or run the notebook on a VM, Azure ML compute, App Service or an Arc-enabled server.
    """

    host = "servicefabric"
    service = "Service Fabric"
    note: str | None = "Service Fabric: detected, but mi-notebook cannot get tokens here."

    def __init__(self, endpoint: str, identity_header: str | Secret, server_thumbprint: str, **options: Any) -> None:
        self.endpoint = check_endpoint(endpoint, "endpoint")
        self._secret = check_secret(identity_header, "identity_header")
        self.server_thumbprint = server_thumbprint
        self.options = options

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> ServiceFabricSource:
        """Built from ``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER`` and ``IDENTITY_SERVER_THUMBPRINT``.

        Example::

            >>> ServiceFabricSource.from_environment({"IDENTITY_ENDPOINT": "https://10.0.0.4:2377/t",
            ...     "IDENTITY_HEADER": "h", "IDENTITY_SERVER_THUMBPRINT": "AB12"}).server_thumbprint
            'AB12'
        """
        return cls(endpoint_from(environ, "IDENTITY_ENDPOINT"), secret_from(environ, "IDENTITY_HEADER"),
                   (environ.get("IDENTITY_SERVER_THUMBPRINT") or "").strip(), **options)

    @property
    def kind(self) -> str:
        """Deprecated: the old name of :attr:`host`."""
        import warnings

        warnings.warn("ServiceFabricSource.kind is deprecated: use .host", DeprecationWarning, stacklevel=2)
        return self.host

    @property
    def fingerprint(self) -> str | None:
        """A keyed digest of ``IDENTITY_HEADER`` (never the value)."""
        return self._secret.fingerprint

    def resolve_identity(self, identity: Identity | str | None) -> Identity:
        """The identity as given (Service Fabric chooses identities in the cluster, not per request)."""
        return Identity.parse(identity)

    def request_token(self, resource: str, identity: Identity | str | None = None, *,
                      on_attempt: Any = None) -> AccessToken:
        """Always raises :class:`~mi_notebook.errors.UnsupportedHostError` (no request is sent)."""
        raise UnsupportedHostError(
            MESSAGE, endpoint=self.endpoint,
            hint="Use azure-identity's ManagedIdentityCredential here (it speaks Service Fabric), or run the notebook "
                 "on a VM, Azure ML compute, App Service or an Arc-enabled server.")

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> ServiceFabricSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServiceFabricSource(endpoint={self.endpoint!r}, supported=False)"
