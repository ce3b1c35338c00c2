"""Azure ML compute instances and clusters: ``MSI_ENDPOINT`` + ``MSI_SECRET``.

The protocol (azure-identity ``azure_ml.py``, MSAL ``_obtain_token_on_machine_learning``; Azure ML
publishes no reference): ``GET $MSI_ENDPOINT?api-version=2017-09-01&resource=<resource>[&clientid=<guid>]``
with the header ``secret: $MSI_SECRET``. The parameter is ``clientid`` (no underscore), and only a
client id can select an identity: object ids and resource ids are refused before any request.
``expires_on`` comes as an integer (or a string of one); failures may be ``text/plain``
(``SSO failure ... Token not found``), kept as the error's ``error_description``.

**SSO.** On a compute instance with SSO on, a request without ``clientid`` succeeds with the
*signed-in user's* token. The platform sets ``DEFAULT_IDENTITY_CLIENT_ID`` to the compute's
identity (or to the placeholder ``clientid`` when it has none): when the caller names no identity
and it is a GUID, it is sent (as Go, msal-node and MSAL .NET do; azure-identity 1.27 and MSAL
Python 1.39 do not), logged, and said in :attr:`AzureMlSource.note`. A token that still turns out to
be a user's (by its claims) raises a :class:`~mi_notebook.sources.UserTokenWarning` and comes back
as a :class:`~mi_notebook.sources.UserAccessToken`.

**Retries** (ours, not documented by Azure ML): :func:`~mi_notebook.sources._base.host_retry_policy`,
4 attempts, waits about 0.5, 1, 2 s; ``Token not found`` is not retried (it is not transient).

Example::

    >>> from mi_notebook.http import MockTransport
    >>> mock = MockTransport(lambda r: (200, {}, {"access_token": "a.b.c", "expires_on": 1800000000}))
    >>> src = AzureMlSource("http://127.0.0.1:46808/MSI/auth", "s3cr3t", transport=mock,
    ...                     default_client_id="6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b")
    >>> src.request_token("arm").identity
    Identity.user(client_id='6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b')
    >>> mock.requests[0].params
    (('api-version', '2017-09-01'), ('resource', 'https://management.azure.com/'), ('clientid', '6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b'))
    >>> src
    AzureMlSource(endpoint='http://127.0.0.1:46808/MSI/auth', default_client_id='6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b', timeout=(2, 10), retry='azureml')
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import Answer, Request, Transport
from ..identity import Identity, is_guid, validate_guid
from ..retry import RetryPolicy
from ..tokens import AccessToken
from ._base import DEFAULT_TIMEOUT, TokenSource
from ._settings import Secret, check_secret, endpoint_from, secret_from
from ._user import UserTokenWarning, as_user_token, token_user_evidence

__all__ = ["API_VERSION", "AzureMlSource"]

logger = logging.getLogger("mi_notebook.sources")

API_VERSION = "2017-09-01"
#: what the platform sets DEFAULT_IDENTITY_CLIENT_ID to when the compute has no managed identity
PLACEHOLDER = "clientid"
_FIX = ("set DEFAULT_IDENTITY_CLIENT_ID to the compute's identity's client id, or pass it: "
        "request_token(resource, identity='client_id=<guid>')")


class AzureMlSource(TokenSource):
    """Tokens from an Azure ML compute's ``MSI_ENDPOINT``.

    ``endpoint`` and ``secret`` are ``MSI_ENDPOINT`` and ``MSI_SECRET``; ``default_client_id`` the
    identity sent when the caller names none (``DEFAULT_IDENTITY_CLIENT_ID``; a GUID or ``None``).

    Example::

        >>> src = AzureMlSource.from_environment({"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth",
        ...                                        "MSI_SECRET": "s3cr3t", "DEFAULT_IDENTITY_CLIENT_ID": "clientid"})
        >>> src.default_client_id is None, src.note.startswith("DEFAULT_IDENTITY_CLIENT_ID is the placeholder")
        (True, True)
    """

    host = "azureml"
    service = "Azure ML compute"
    unreachable_hint = ("The compute's identity service is not answering: restart the kernel, or stop and "
                        "start the compute instance.")
    auth_hint = ("MSI_SECRET was refused: it changes when the compute restarts, so a kernel started before "
                 "holds a stale one. Restart the kernel.")
    identity_hint = ("Use the client id of an identity assigned to this compute (Azure ML Studio: Compute, "
                     "the instance's Managed identity); DEFAULT_IDENTITY_CLIENT_ID holds it when one is assigned.")

    def __init__(self, endpoint: str, secret: str | Secret, *, default_client_id: str | None = None,
                 retry: RetryPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, transport: Transport | None = None) -> None:
        super().__init__(endpoint, retry=retry, clock=clock, timeout=timeout, transport=transport)
        self._secret = check_secret(secret, "secret")
        self.default_client_id = (validate_guid(default_client_id, "default_client_id")
                                  if default_client_id is not None else None)
        if self.default_client_id:
            self.note = (f"Azure ML: when no identity is named, the compute's identity "
                         f"DEFAULT_IDENTITY_CLIENT_ID={self.default_client_id} is requested (clientid), "
                         "not the SSO user's token.")
        else:
            self.note = ("Azure ML: no DEFAULT_IDENTITY_CLIENT_ID, so a request naming no identity gets, with "
                         "SSO on, your own user token (flagged when it happens).")

    @property
    def fingerprint(self) -> str | None:
        """A keyed digest of the host's secret (never the secret): a different secret, a different cache key."""
        return self._secret.fingerprint

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> AzureMlSource:
        """Built from ``MSI_ENDPOINT``, ``MSI_SECRET`` and ``DEFAULT_IDENTITY_CLIENT_ID`` (optional).

        The placeholder ``clientid`` means "no identity on this compute" and is not sent; any other
        value that is not a GUID is a ``HostConfigurationError``. ``options`` go to the constructor.

        Example::

            >>> AzureMlSource.from_environment({"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth",
            ...     "MSI_SECRET": "x", "DEFAULT_IDENTITY_CLIENT_ID": "my-identity"})
            Traceback (most recent call last):
            ...
            mi_notebook.errors.HostConfigurationError: DEFAULT_IDENTITY_CLIENT_ID='my-identity' is not a client id (a GUID).
            What to do: Set it to the client id of the compute's identity (Azure ML Studio: the compute's Managed identity), or unset it.
        """
        endpoint = endpoint_from(environ, "MSI_ENDPOINT")
        secret = secret_from(environ, "MSI_SECRET")
        raw = (environ.get("DEFAULT_IDENTITY_CLIENT_ID") or "").strip()
        default = raw if is_guid(raw) else None
        if raw and not default and raw.lower() != PLACEHOLDER:
            raise errors.HostConfigurationError(
                f"DEFAULT_IDENTITY_CLIENT_ID={raw[:80]!r} is not a client id (a GUID).",
                hint="Set it to the client id of the compute's identity (Azure ML Studio: the compute's Managed "
                     "identity), or unset it.")
        source = cls(endpoint, secret, default_client_id=default, **options)
        if raw.lower() == PLACEHOLDER:
            source.note = ("DEFAULT_IDENTITY_CLIENT_ID is the placeholder 'clientid': this compute has no managed "
                           "identity, so a request naming no identity gets, with SSO on, your own user token.")
        return source

    # --- the protocol ---------------------------------------------------------------------------------
    def _select(self, identity: Identity) -> Identity:
        selector = identity.selector
        if selector is not None and selector[0] != "client_id":
            raise ValueError(
                f"Azure ML selects an identity by client id only (clientid=<guid>); {selector[0]} cannot be used "
                f"here. Pass the identity's client id: identity='client_id=<guid>'")
        if selector is None and self.default_client_id:
            logger.info("Azure ML: no identity named; requesting DEFAULT_IDENTITY_CLIENT_ID=%s",
                        self.default_client_id)
            return Identity.user(client_id=self.default_client_id)
        return identity

    def _request(self, resource: str, identity: Identity) -> Request:
        params = [("api-version", API_VERSION), ("resource", resource)]
        if identity.client_id:
            params.append(("clientid", identity.client_id))
        return Request("GET", self.endpoint, params=tuple(params), timeout=self.timeout,
                       headers={"secret": self._secret.reveal(), "Accept": "application/json"})

    def _retryable(self, answer: Answer, error: str | None, description: str | None) -> bool | None:
        if "token not found" in (description or "").lower():
            return False
        return super()._retryable(answer, error, description)

    def _explain(self, status: int, error: str | None, description: str | None, answer: Answer,
                 resource: str | None, identity: Identity | None,
                 common: dict[str, Any]) -> errors.ManagedIdentityError | None:
        text = (description or "").lower()
        if "token not found" in text or "sso failure" in text:
            cls = errors.ServerError if status >= 500 else errors.BadRequestError
            return cls(
                f"{self.service} could not find a token for {identity} (HTTP {status}): with SSO on and no identity "
                "named, it looks for your own user token, and it holds none right now.",
                hint=f"Open the compute instance from Azure ML Studio (e.g. JupyterLab) to refresh SSO, or {_FIX}.",
                **common)
        return None

    def _finish(self, token: AccessToken, identity: Identity) -> AccessToken:
        evidence = token_user_evidence(token)
        if evidence is None:
            return token
        sent = f"clientid={identity.client_id} was sent, yet " if identity.client_id else "no identity was named, so "
        reason = (f"This is your own user token, not the compute's managed identity ({evidence}): {sent}the compute "
                  f"answered with the SSO user's token; anything done with it acts as you. To use the compute's "
                  f"identity, {_FIX}.")
        warnings.warn(UserTokenWarning(reason), stacklevel=3)
        return as_user_token(token, reason)

    def _repr_extra(self) -> str:
        return f", default_client_id={self.default_client_id!r}"
