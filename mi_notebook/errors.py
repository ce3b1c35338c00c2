"""One exception tree for everything that can go wrong getting or using a managed-identity token.

Modelled on requests' ``exceptions.py``: a small tree, with multiple inheritance where it helps
callers (a time-out is also a connection problem; bad input is also a ``ValueError``). Every error
carries what IMDS (or ARM) said, ``status``, ``error``, ``error_description``, ``request_id``, and
the ``timeline`` of attempts that led to it, and its message says what happened and what to do.
Never the token itself.

Example::

    >>> from mi_notebook.errors import IdentityNotFoundError, ManagedIdentityError
    >>> err = IdentityNotFoundError(
    ...     "IMDS has no identity with client_id 1111...",
    ...     status=400, error="invalid_request", error_description="Identity not found",
    ... )
    >>> isinstance(err, ManagedIdentityError), err.status, err.error_description
    (True, 400, 'Identity not found')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .retry import Timeline


class ManagedIdentityError(Exception):
    """Root of the tree. ``str(err)`` is the full explanation; the parts are attributes.

    ``hint`` is what to do about it; it is appended to the message on its own line.
    """

    default_hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        request_id: str | None = None,
        timeline: Timeline | None = None,
        endpoint: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.error = error
        self.error_description = error_description
        self.request_id = request_id
        self.timeline = timeline
        self.endpoint = endpoint
        self.hint = self.default_hint if hint is None else hint
        super().__init__(self._compose())

    def _compose(self) -> str:
        parts = [self.message]
        said = []
        if self.status is not None:
            said.append(f"HTTP {self.status}")
        if self.error:
            said.append(f"error={self.error!r}")
        if self.error_description:
            said.append(f"error_description={self.error_description!r}")
        if said:
            parts.append("The service answered: " + ", ".join(said) + ".")
        if self.timeline is not None and len(self.timeline):
            parts.append(f"Attempts: {self.timeline.summary()}")
        if self.request_id:
            parts.append(f"Request id: {self.request_id}.")
        if self.hint:
            parts.append(f"What to do: {self.hint}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The error as plain data (for ``--json`` output, widgets and logs)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "error": self.error,
            "error_description": self.error_description,
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "hint": self.hint,
            "attempts": len(self.timeline) if self.timeline is not None else 0,
        }


# --- the endpoint could not be used at all -------------------------------------------------------
class EndpointUnreachableError(ManagedIdentityError, ConnectionError):
    """No HTTP answer: connection refused, reset or dropped, DNS, or every attempt timed out."""

    default_hint = (
        "Check that this machine is an Azure VM with a managed identity, or run "
        "mi.connect(mode='emulator') / set MI_NOTEBOOK_MODE=emulator to use the embedded emulator."
    )


class EndpointTimeoutError(EndpointUnreachableError, TimeoutError):
    """An endpoint (a token endpoint, ARM, a key server) accepted no connection, or sent no answer, in time."""


class ImdsTimeoutError(EndpointTimeoutError):
    """IMDS accepted no connection, or sent no answer, within the time-out."""


# --- IMDS answered, and said no --------------------------------------------------------------------
class BadRequestError(ManagedIdentityError, ValueError):
    """A 4xx that retrying cannot fix (a design-time error): the request itself must change."""

    default_hint = "Fix the request; retrying the same request will not help."


class IdentityNotFoundError(BadRequestError):
    """The selected identity is not assigned to this VM (or the VM has no identity at all).

    IMDS says "Identity not found" in both cases, so the hint covers both: a wrong selector, and a VM
    whose identity was never turned on (how every new VM starts).

    Example::

        >>> hint = IdentityNotFoundError("IMDS found no identity.").hint
        >>> "check its client id" in hint, "az vm identity assign --resource-group <group> --name <vm>" in hint
        (True, True)
    """

    default_hint = (
        "If you named an identity, check its client id / object id / resource id and that it is assigned "
        "to this VM (Azure portal: the VM's Identity blade, 'User assigned' tab). If you named none, this "
        "VM may have no identity at all: turn on its system-assigned identity (the Identity blade, "
        "'System assigned' tab, Status On, Save; or az vm identity assign --resource-group <group> --name "
        "<vm>), then give it a role such as Reader. Changes can take a few minutes to reach IMDS."
    )


class MultipleIdentitiesError(BadRequestError):
    """Several user-assigned identities and no system-assigned one: IMDS needs to be told which."""

    default_hint = "Choose one: Identity.user(client_id=...), object_id=... or resource_id=...."


class InvalidResourceError(BadRequestError):
    """Entra ID knows no resource (App ID URI) by that name in this tenant."""

    default_hint = (
        "Use the resource's App ID URI exactly, e.g. https://management.azure.com/ or an alias such "
        "as 'arm', 'vault', 'storage', 'graph' (see mi_notebook.resources.WELL_KNOWN_RESOURCES)."
    )


class ThrottledError(ManagedIdentityError):
    """429: too many requests (IMDS allows 20 per second and 5 at once per VM)."""

    default_hint = (
        "Reuse tokens instead of asking again (mi_notebook caches them per process); share one "
        "credential between threads; wait and retry later."
    )


class ImdsUpdatingError(ManagedIdentityError):
    """404 or 410: IMDS is being updated; 410 promises it is back within 70 seconds."""

    default_hint = "Wait a minute and try again; IMDS updates finish within about 70 seconds."


class ServerError(ManagedIdentityError):
    """5xx: IMDS or Entra ID failed on its side, and kept failing after the retries."""

    default_hint = "This is on Azure's side; try again later. If it persists, check Azure status."


class UnexpectedResponseError(ManagedIdentityError):
    """An answer that is not IMDS speaking: HTML, non-JSON, truncated or malformed JSON.

    Usually a proxy in the way, or another cloud's metadata service answering on 169.254.169.254.
    """

    default_hint = (
        "Make sure no proxy handles 169.254.169.254 (add it to NO_PROXY) and that this is an Azure VM."
    )


# --- this machine's set-up ----------------------------------------------------------------------------
class HostConfigurationError(ManagedIdentityError, ValueError):
    """A managed-identity host's setting is unusable: an environment variable that is not a URL, an
    empty secret, an Arc key file outside its directory or too large, a challenge without a realm.
    The message names the variable, file or header."""

    default_hint = "Fix or unset the named setting; the host normally sets it, so check how this process was started."


class UnsupportedHostError(ManagedIdentityError):
    """This host hands out managed-identity tokens in a way mi-notebook does not speak (Service Fabric)."""

    default_hint = (
        "Use azure-identity's ManagedIdentityCredential on this host, or run the notebook where "
        "mi-notebook's sources work (a VM, Azure ML, App Service, Arc, Cloud Shell)."
    )


# --- local problems ----------------------------------------------------------------------------------
class TokenDecodeError(ManagedIdentityError, ValueError):
    """A string that is not a decodable JWT (bad segments, base64, JSON, or an encrypted JWE)."""

    default_hint = "Pass the access token string exactly as issued (three base64url parts joined by dots)."


class TokenVerificationError(TokenDecodeError):
    """The token decoded, but its signature, audience, issuer or lifetime did not verify against the
    JWKS, or the JWKS could not be obtained. A :class:`TokenDecodeError` (so also a ``ValueError``).

    Example::

        >>> err = TokenVerificationError("The RS256 signature does not verify with kid 'k1' from the given JWKS.")
        >>> isinstance(err, TokenDecodeError), isinstance(err, ValueError)
        (True, True)
    """

    default_hint = (
        "Check that the JWKS is the issuer's (the emulator's for emulator tokens, Entra ID's "
        "https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys for real ones) and that the "
        "audience is the resource the token was requested for."
    )


class ArmError(ManagedIdentityError):
    """Azure Resource Manager said no; ``code`` and ``arm_message`` are ARM's own words.

    ``correlation_id`` is ARM's ``x-ms-correlation-request-id``; ``principal_id`` the object id the
    token was for; ``action`` and ``scope`` what a 403 said was refused where.

    Example::

        >>> err = ArmError("ARM refused.", code="AuthorizationFailed", status=403, action="read", scope="/s")
        >>> err.error, err.action, err.to_dict()["scope"]
        ('AuthorizationFailed', 'read', '/s')
    """

    default_hint = ""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        arm_message: str | None = None,
        correlation_id: str | None = None,
        principal_id: str | None = None,
        action: str | None = None,
        scope: str | None = None,
        **kw: Any,
    ) -> None:
        self.code = code
        self.arm_message = arm_message
        self.correlation_id = correlation_id
        self.principal_id = principal_id
        self.action = action
        self.scope = scope
        kw.setdefault("error", code)
        kw.setdefault("error_description", arm_message)
        super().__init__(message, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The base's plain data plus ARM's code, correlation id, principal, action and scope."""
        data = super().to_dict()
        data.update(code=self.code, correlation_id=self.correlation_id, principal_id=self.principal_id,
                    action=self.action, scope=self.scope)
        return data


# --- a service refused the token -------------------------------------------------------------------
class TokenRejectedError(ManagedIdentityError):
    """A service refused the bearer token itself (missing, invalid, expired or for another audience).

    Azure OpenAI answers all of these with one 401 body, ``{"statusCode": 401, "message":
    "Unauthorized. Access token is missing, invalid, audience is incorrect (<audience>), or have
    expired."}``; :func:`mi_notebook.explain_openai_error` reads the token's own claims to say which.
    ``audience``: the token's ``aud`` (None when unknown); ``expected_audience``: the one the service
    wants; ``principal_id``: the token's ``oid``; ``service``: who refused.

    Example::

        >>> err = TokenRejectedError("Azure OpenAI refused the token: it expired.", status=401,
        ...                          audience="https://cognitiveservices.azure.com",
        ...                          expected_audience="https://cognitiveservices.azure.com")
        >>> err.to_dict()["expected_audience"], isinstance(err, ManagedIdentityError)
        ('https://cognitiveservices.azure.com', True)
    """

    default_hint = "Get a fresh token for the service's own scope and send it with the request."

    def __init__(
        self,
        message: str,
        *,
        audience: str | None = None,
        expected_audience: str | None = None,
        principal_id: str | None = None,
        service: str = "Azure OpenAI",
        **kw: Any,
    ) -> None:
        self.audience = audience
        self.expected_audience = expected_audience
        self.principal_id = principal_id
        self.service = service
        super().__init__(message, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The base's plain data plus the token's audience, the expected one, the principal and the service."""
        data = super().to_dict()
        data.update(audience=self.audience, expected_audience=self.expected_audience,
                    principal_id=self.principal_id, service=self.service)
        return data


class AudienceError(TokenRejectedError):
    """The token is for another resource than the service (its ``aud`` is not the expected audience).

    Example::

        >>> err = AudienceError("wrong audience", audience="https://management.azure.com/",
        ...                     expected_audience="https://cognitiveservices.azure.com")
        >>> isinstance(err, TokenRejectedError), err.audience
        (True, 'https://management.azure.com/')
    """


class MissingRoleError(ManagedIdentityError, PermissionError):
    """The token was accepted, but its principal holds no role with the data action it asked for.

    Azure OpenAI says so with a **401** (not 403) ``PermissionDenied``. ``role``: the least role that
    grants the action; ``principal_id``: the token's ``oid``; ``scope``: where to assign the role
    (a resource id, or a placeholder); ``command``: the ``az role assignment create`` line.

    Example::

        >>> err = MissingRoleError("no role", role="Cognitive Services OpenAI User", principal_id="o",
        ...                        scope="/subscriptions/s", command="az role assignment create ...")
        >>> isinstance(err, PermissionError), err.to_dict()["role"]
        (True, 'Cognitive Services OpenAI User')
    """

    default_hint = ""

    def __init__(
        self,
        message: str,
        *,
        role: str | None = None,
        principal_id: str | None = None,
        scope: str | None = None,
        command: str | None = None,
        service: str = "Azure OpenAI",
        **kw: Any,
    ) -> None:
        self.role = role
        self.principal_id = principal_id
        self.scope = scope
        self.command = command
        self.service = service
        super().__init__(message, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The base's plain data plus the role, principal, scope, the ``az`` command and the service."""
        data = super().to_dict()
        data.update(role=self.role, principal_id=self.principal_id, scope=self.scope, command=self.command,
                    service=self.service)
        return data
