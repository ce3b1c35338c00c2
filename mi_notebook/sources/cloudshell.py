"""Azure Cloud Shell: ``MSI_ENDPOINT`` alone. Its tokens are the signed-in *user's*.

The protocol (Learn: "Acquire a user token in Azure Cloud Shell"; azure-identity ``cloud_shell.py``):
``POST $MSI_ENDPOINT`` (e.g. ``http://localhost:50342/oauth2/token``) with the form body
``resource=<resource>`` and the header ``Metadata: true``. "Azure Managed Identities aren't available
in the Azure Cloud Shell": the token is always the user's, so identity selectors are refused with a
``ValueError`` before any request, every token comes back as a
:class:`~mi_notebook.sources.UserAccessToken`, and a :class:`~mi_notebook.sources.UserTokenWarning`
is raised. Cloud Shell only issues tokens for some audiences: a refusal says so.

**Retries** (ours, Cloud Shell documents none): :func:`~mi_notebook.sources._base.host_retry_policy`,
4 attempts, waits about 0.5, 1, 2 s.

Example::

    >>> import warnings
    >>> from mi_notebook.http import MockTransport
    >>> mock = MockTransport(lambda r: (200, {}, {"access_token": "a.b.c", "expires_on": "1800000000"}))
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     tok = CloudShellSource("http://localhost:50342/oauth2/token", transport=mock).request_token("arm")
    >>> tok.is_user_token, seen[0].category.__name__, mock.requests[0].method, dict(mock.requests[0].data)
    (True, 'UserTokenWarning', 'POST', {'resource': 'https://management.azure.com/'})
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..http import Request, Transport
from ..identity import Identity
from ..retry import RetryPolicy
from ..tokens import AccessToken
from ._base import DEFAULT_TIMEOUT, TokenSource
from ._settings import endpoint_from
from ._user import UserTokenWarning, as_user_token

__all__ = ["CloudShellSource"]

REASON = ("This is your own user token, not a managed identity's: Cloud Shell hands out the signed-in user's "
          "token and has no managed identity. Anything done with it acts as you; to act as a managed identity, "
          "run the notebook where one is assigned (a VM, Azure ML compute, App Service).")


class CloudShellSource(TokenSource):
    """Tokens (the signed-in user's) from Cloud Shell's ``MSI_ENDPOINT``.

    Example::

        >>> CloudShellSource("http://localhost:50342/oauth2/token").request_token(
        ...     "arm", "client_id=6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b")
        Traceback (most recent call last):
        ...
        ValueError: Cloud Shell has no managed identities: it hands out the signed-in user's token, so user-assigned (client_id=6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b) cannot be selected. Request without an identity.
    """

    host = "cloudshell"
    service = "Cloud Shell"
    unreachable_hint = "Cloud Shell's token service is not answering: restart Cloud Shell (its toolbar's restart button)."
    auth_hint = "Cloud Shell refused the request: sign in to the portal again and restart Cloud Shell."
    request_hint = ("Cloud Shell issues tokens for some audiences only (Learn: 'Acquire a user token in Azure Cloud "
                    "Shell'); for another resource, sign in with `az login` and use the CLI's token, or run where a "
                    "managed identity is available.")

    def __init__(self, endpoint: str, *, retry: RetryPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, transport: Transport | None = None) -> None:
        super().__init__(endpoint, retry=retry, clock=clock, timeout=timeout, transport=transport)
        self.note = "Cloud Shell: tokens here are the signed-in user's own, never a managed identity's."

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> CloudShellSource:
        """Built from ``MSI_ENDPOINT``; ``options`` (``retry``, ``clock``, ``timeout``, ``transport``) go to the constructor.

        Example::

            >>> CloudShellSource.from_environment({"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}).endpoint
            'http://localhost:50342/oauth2/token'
        """
        return cls(endpoint_from(environ, "MSI_ENDPOINT"), **options)

    def _select(self, identity: Identity) -> Identity:
        if identity.selector is not None:
            raise ValueError(
                f"Cloud Shell has no managed identities: it hands out the signed-in user's token, so {identity} "
                "cannot be selected. Request without an identity.")
        return identity

    def _request(self, resource: str, identity: Identity) -> Request:
        return Request("POST", self.endpoint, data={"resource": resource}, timeout=self.timeout,
                       headers={"Metadata": "true", "Accept": "application/json"})

    def _finish(self, token: AccessToken, identity: Identity) -> AccessToken:
        warnings.warn(UserTokenWarning(REASON), stacklevel=3)
        return as_user_token(token, REASON)
