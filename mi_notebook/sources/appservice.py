"""App Service, Azure Functions, Container Apps (and Automation): ``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``.

The protocol (Learn: "Managed identities for App Service", REST endpoint reference; azure-identity
``app_service.py``, MSAL ``_obtain_token_on_app_service``):
``GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=<resource>`` plus at most one of
``client_id``, ``principal_id`` (the object id) or ``mi_res_id`` (the resource id), with the header
``X-IDENTITY-HEADER: $IDENTITY_HEADER``. ``expires_on`` comes as epoch seconds in a string (the
older 2017-09-01 api sent a date string; both parse).

A wrong resource comes back as a vague HTTP 500 ``{"statusCode": 500, "message": "An unexpected
error occured while fetching the AAD Token.", "correlationId": ...}`` (MSAL notes it; reported in
azure-sdk-for-python 33858, azure-functions-host 9884): that body is explained as most likely a wrong
resource (:class:`~mi_notebook.errors.InvalidResourceError`) and not retried; the correlation id is
the error's ``request_id``.

**Retries** (ours, App Service documents none): :func:`~mi_notebook.sources._base.host_retry_policy`,
4 attempts, waits about 0.5, 1, 2 s.

Example::

    >>> from mi_notebook.http import MockTransport
    >>> mock = MockTransport(lambda r: (200, {}, {"access_token": "a.b.c", "expires_on": "1800000000"}))
    >>> src = AppServiceSource("http://localhost:4141/msi/token", "hdr", transport=mock)
    >>> src.request_token("vault", "object_id=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0").expires_on
    1800000000
    >>> mock.requests[0].params[2], sorted(mock.requests[0].headers)
    (('principal_id', '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0'), ['Accept', 'X-IDENTITY-HEADER'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import Answer, Request, Transport
from ..identity import Identity
from ..retry import RetryPolicy
from ._base import DEFAULT_TIMEOUT, TokenSource
from ._settings import Secret, check_secret, endpoint_from, secret_from

__all__ = ["API_VERSION", "AppServiceSource"]

API_VERSION = "2019-08-01"
#: App Service's query parameter for each way of naming a user-assigned identity
QUERY_PARAM = {"client_id": "client_id", "object_id": "principal_id", "resource_id": "mi_res_id"}


def _vague_500(answer: Answer) -> bool:
    document = answer.document
    return (answer.status == 500 and isinstance(document, dict) and "access_token" not in document
            and str(document.get("statusCode")) == "500" and "message" in document)


class AppServiceSource(TokenSource):
    """Tokens from App Service's (Functions', Container Apps') ``IDENTITY_ENDPOINT``.

    ``endpoint`` and ``identity_header`` are ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``.

    Example::

        >>> AppServiceSource.from_environment({"IDENTITY_ENDPOINT": "http://localhost:4141/msi/token",
        ...                                     "IDENTITY_HEADER": "s3cr3t"})
        AppServiceSource(endpoint='http://localhost:4141/msi/token', timeout=(2, 10), retry='appservice')
    """

    host = "appservice"
    service = "App Service"
    unreachable_hint = ("The app's identity endpoint is not answering: check that the app has a managed identity "
                        "(portal: the app's Identity blade), then restart the app.")
    auth_hint = ("IDENTITY_HEADER was refused: it rotates when the app restarts, so a process started before "
                 "holds a stale one. Restart the kernel (or the app).")
    identity_hint = ("Check the identity's client id / principal id / resource id and that it is assigned to this "
                     "app (portal: the app's Identity blade, User assigned).")

    def __init__(self, endpoint: str, identity_header: str | Secret, *, retry: RetryPolicy | None = None,
                 clock: Clock = SYSTEM_CLOCK, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                 transport: Transport | None = None) -> None:
        super().__init__(endpoint, retry=retry, clock=clock, timeout=timeout, transport=transport)
        self._secret = check_secret(identity_header, "identity_header")

    @property
    def fingerprint(self) -> str | None:
        """A keyed digest of the host's secret (never the secret): a different secret, a different cache key."""
        return self._secret.fingerprint

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> AppServiceSource:
        """Built from ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``; ``options`` go to the constructor.

        Example::

            >>> AppServiceSource.from_environment({"IDENTITY_ENDPOINT": "http://localhost:4141/msi/token"})
            Traceback (most recent call last):
            ...
            mi_notebook.errors.HostConfigurationError: IDENTITY_HEADER is empty.
            What to do: The host sets IDENTITY_HEADER for the processes it starts; start this kernel from the host (or restart it) instead of copying the value by hand.
        """
        return cls(endpoint_from(environ, "IDENTITY_ENDPOINT"), secret_from(environ, "IDENTITY_HEADER"), **options)

    def _request(self, resource: str, identity: Identity) -> Request:
        params = [("api-version", API_VERSION), ("resource", resource)]
        if identity.selector is not None:
            name, value = identity.selector
            params.append((QUERY_PARAM[name], value))
        return Request("GET", self.endpoint, params=tuple(params), timeout=self.timeout,
                       headers={"X-IDENTITY-HEADER": self._secret.reveal(), "Accept": "application/json"})

    def _retryable(self, answer: Answer, error: str | None, description: str | None) -> bool | None:
        return not _vague_500(answer) and super()._retryable(answer, error, description)

    def _explain(self, status: int, error: str | None, description: str | None, answer: Answer,
                 resource: str | None, identity: Identity | None,
                 common: dict[str, Any]) -> errors.ManagedIdentityError | None:
        if not _vague_500(answer):
            return None
        correlation = answer.document.get("correlationId")
        if correlation and not common.get("request_id"):
            common = {**common, "request_id": str(correlation)}
        chosen = "" if identity is None or identity.selector is None else f", or {identity} is not assigned to this app"
        return errors.InvalidResourceError(
            f"App Service answered HTTP 500 with its vague {{\"statusCode\": 500, \"message\": ...}} body. It sends "
            f"that when Entra ID refuses the token request, most often because the resource is wrong: most likely "
            f"{resource!r} is not a resource Entra ID knows in this tenant{chosen}.",
            hint="Check the resource's App ID URI (e.g. 'https://cognitiveservices.azure.com' for Azure OpenAI, not "
                 "its endpoint URL); if it is right, this was a passing failure: try again in a minute.",
            **common)
