"""Azure OpenAI with a managed identity: a bearer-token provider, and its two 401s explained.

:func:`bearer_token_provider` is the one line the openai SDK needs: a zero-argument callable that
returns a bearer token string, which ``AzureOpenAI(azure_ad_token_provider=...)`` and the v1
``OpenAI(base_url=".../openai/v1/", api_key=...)`` call before every request. It asks
:func:`mi_notebook.credential` for the token, so every call is the credential's cached hot path:
thousands of requests cost one token request per refresh, shared with every other client in the
process.

Azure OpenAI refuses a token in two ways, both **HTTP 401** (public captures, quoted in
docs/emulator.md): a token for another audience (or expired, or unreadable) gets ``{"statusCode": 401,
"message": "Unauthorized. Access token is missing, invalid, audience is incorrect
(https://cognitiveservices.azure.com), or have expired."}``; an identity without a data-plane role
gets ``{"error": {"code": "PermissionDenied", "message": "Principal does not have access to
API/Operation."}}``. :func:`explain_openai_error` turns the SDK's ``AuthenticationError`` (or the
body) into :class:`~mi_notebook.errors.AudienceError` / :class:`~mi_notebook.errors.TokenRejectedError`
or :class:`~mi_notebook.errors.MissingRoleError`, naming the audience the token had (read from the
request the SDK sent) and the one the service wants, or the role to assign and the ``az`` command.

Example::

    >>> import mi_notebook as mi
    >>> conn = mi.connect(mode="emulator")
    >>> token = bearer_token_provider()            # https://cognitiveservices.azure.com/.default
    >>> token() == token(), token
    (True, BearerTokenProvider('https://cognitiveservices.azure.com/.default', system-assigned))
    >>> conn.close()
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .claims import decode_unverified, emulator_evidence
from .errors import AudienceError, MissingRoleError, TokenDecodeError, TokenRejectedError
from .identity import Identity
from .resources import resource_to_scope
from .sdk_credential import ManagedIdentityTokenCredential
from .timefmt import format_utc

if TYPE_CHECKING:  # pragma: no cover
    from .claims import Claims

__all__ = [
    "AZURE_AI_USER",
    "COGNITIVE_SERVICES",
    "COGNITIVE_SERVICES_SCOPE",
    "OPENAI_USER",
    "BearerTokenProvider",
    "bearer_token_provider",
    "explain_openai_error",
    "role_assignment_command",
]

COGNITIVE_SERVICES = "https://cognitiveservices.azure.com"
#: the scope Azure OpenAI documents for Entra ID tokens, on the deployments and the v1 API alike
COGNITIVE_SERVICES_SCOPE = COGNITIVE_SERVICES + "/.default"
#: the data-plane role for inference (Microsoft Learn, "How to configure Azure OpenAI with managed identities")
OPENAI_USER = "Cognitive Services OpenAI User"
#: the role Foundry agents and projects ask for (their PermissionDenied names an AIServices data action)
AZURE_AI_USER = "Azure AI User"
#: what Microsoft Learn says a new role assignment may take before Azure OpenAI honours it
ROLE_DELAY = "up to 5 minutes"
ACCOUNT_PLACEHOLDER = "<resource id of the Azure OpenAI account>"
_EXPECTED = re.compile(r"audience is incorrect \(([^)\s]+)\)")
_PRINCIPAL = re.compile(r"principal `?([0-9a-fA-F-]{36})`?")


class TokenCredentialLike(Protocol):
    """What the provider needs of a credential: azure-core's ``TokenCredential.get_token``."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...  # pragma: no cover - a protocol


class BearerTokenProvider:
    """A zero-argument callable returning a bearer token string for one scope (see :func:`bearer_token_provider`).

    Its repr names the scope and the identity, never a token. Each call is the credential's
    ``get_token``: for :func:`mi_notebook.credential`, a few dictionary look-ups while the cached
    token is fresh.

    Example::

        >>> BearerTokenProvider(ManagedIdentityTokenCredential("system"), "https://ai.azure.com/.default")
        BearerTokenProvider('https://ai.azure.com/.default', system-assigned)
    """

    __slots__ = ("credential", "scope", "_get_token")

    def __init__(self, credential: TokenCredentialLike, scope: str) -> None:
        self.credential = credential
        self.scope = scope
        self._get_token: Callable[..., Any] = credential.get_token

    def __call__(self) -> str:
        return str(self._get_token(self.scope).token)

    def __repr__(self) -> str:
        identity = getattr(self.credential, "identity", None)
        return f"BearerTokenProvider({self.scope!r}, {identity if identity is not None else type(self.credential).__name__})"


def bearer_token_provider(
    resource_or_scope: str = COGNITIVE_SERVICES_SCOPE,
    *,
    identity: Identity | str | None = None,
    credential: TokenCredentialLike | None = None,
) -> BearerTokenProvider:
    """A callable that returns a bearer token for ``resource_or_scope``: what the openai SDK's
    ``azure_ad_token_provider`` and the v1 ``OpenAI(api_key=...)`` take.

    ``resource_or_scope``: a ``.default`` scope, an App ID URI or an alias (``"cognitiveservices"``,
    ``"foundry"`` for a Foundry project's ``https://ai.azure.com``), checked now: an Azure OpenAI
    endpoint given as the resource (``https://<name>.openai.azure.com``) is a ``ValueError`` that names
    the audience to use, before any request. ``identity``: which managed identity (default the
    system-assigned one); ``credential``: any TokenCredential instead (e.g. ``mi.credential(...,
    connection=...)``), not with ``identity``. Tokens come from the process-wide cache, refreshed
    before they expire: a batch job of any length keeps getting valid ones. The async clients
    (``AsyncAzureOpenAI``, ``AsyncOpenAI``) take :func:`mi_notebook.aio.bearer_token_provider`.

    Example::

        >>> import mi_notebook as mi
        >>> conn = mi.connect(mode="emulator")
        >>> provider = mi.bearer_token_provider()
        >>> # openai.AzureOpenAI(azure_endpoint=..., api_version=..., azure_ad_token_provider=provider)
        >>> before = conn.cache.stats.fetches
        >>> len({provider() for _ in range(1000)}), conn.cache.stats.fetches - before   # one token request
        (1, 1)
        >>> mi.bearer_token_provider("https://my-aoai.openai.azure.com/.default")
        Traceback (most recent call last):
        ...
        ValueError: 'https://my-aoai.openai.azure.com' is an Azure OpenAI endpoint's address, not a token audience: did you mean 'https://cognitiveservices.azure.com/.default' (alias 'cognitiveservices')? Azure OpenAI accepts tokens for 'https://cognitiveservices.azure.com' on every account (the deployments and the v1 API); a Foundry project wants 'https://ai.azure.com'
        >>> conn.close()
    """
    if credential is not None and identity is not None:
        raise ValueError("give identity= or credential=, not both (a credential already names its identity)")
    scope = resource_to_scope(resource_or_scope)  # ValueError for bad input, before any request
    if credential is None:
        credential = ManagedIdentityTokenCredential(identity)
    elif not callable(getattr(credential, "get_token", None)):
        raise ValueError(f"credential must have a get_token method (an azure-core TokenCredential); got {credential!r}")
    return BearerTokenProvider(credential, scope)


def role_assignment_command(principal_id: str, role: str = OPENAI_USER, scope: str = ACCOUNT_PLACEHOLDER) -> str:
    """The ``az role assignment create`` line that gives ``principal_id`` the ``role`` on ``scope``.

    Example::

        >>> print(role_assignment_command("00000000-0000-0000-0000-000000000001", scope="/subscriptions/s"))
        az role assignment create --assignee-object-id 00000000-0000-0000-0000-000000000001 --assignee-principal-type ServicePrincipal --role "Cognitive Services OpenAI User" --scope /subscriptions/s
    """
    return (f"az role assignment create --assignee-object-id {principal_id} --assignee-principal-type "
            f'ServicePrincipal --role "{role}" --scope {scope}')


def explain_openai_error(
    error: BaseException | Mapping[str, Any],
    token: Any = None,
    *,
    scope: str | None = None,
    now: float | None = None,
) -> TokenRejectedError | MissingRoleError | None:
    """The explained error for an Azure OpenAI 401, or ``None`` when ``error`` is not one of the two.

    ``error``: the openai SDK's ``AuthenticationError`` (or any exception with the HTTP ``response``:
    azure-core's ``ClientAuthenticationError``, an ``httpx.HTTPStatusError``), or the body as a dict.
    ``token``: what the client sent, so that its claims name the audience and the principal: the
    provider you gave the client (it is called: the cache hands back the token it sent), a token
    string or an ``AccessToken``. Without it, the request's ``Authorization`` header is read where
    the exception kept it (the openai SDK removes it from its errors, so pass the provider). Only
    claims are read; the token is never kept or shown. ``scope``: the account's resource id, for
    the ``az`` command (else a placeholder). Returns, never raises: ``raise explained from err``.

    * wrong audience: :class:`~mi_notebook.errors.AudienceError` naming both audiences;
    * the same 401 for a token that is expired or that the service cannot use:
      :class:`~mi_notebook.errors.TokenRejectedError` saying which;
    * ``PermissionDenied``: :class:`~mi_notebook.errors.MissingRoleError` with the role, the command,
      and that a new assignment can take up to 5 minutes.

    Example::

        >>> body = {"error": {"code": "PermissionDenied", "message": "Principal does not have access to API/Operation."}}
        >>> err = explain_openai_error(body)
        >>> type(err).__name__, err.role, err.status
        ('MissingRoleError', 'Cognitive Services OpenAI User', 401)
        >>> explain_openai_error({"error": {"code": "404", "message": "Resource not found"}}) is None
        True
    """
    status, body, authorization = _parts(error)
    if body is None or (status is not None and status != 401):
        return None
    inner = body["error"] if isinstance(body.get("error"), Mapping) else body
    code = str(inner.get("code") or "")
    message = str(inner.get("message") or "")
    if token is not None and callable(token):
        token = token()  # a provider (mi.bearer_token_provider(), get_bearer_token_provider(...)): its cached token
    claims = _claims(token if token is not None else authorization)
    if code.lower() == "permissiondenied":
        return _missing_role(message, claims, scope)
    if "statusCode" in inner or "audience is incorrect" in message:
        if str(inner.get("statusCode", 401)) != "401":
            return None
        return _rejected(message, claims, time.time() if now is None else now,
                         given=token is not None or authorization is not None)
    return None


# --- internals ---------------------------------------------------------------------------------------
def _parts(error: BaseException | Mapping[str, Any]) -> tuple[int | None, Mapping[str, Any] | None, str | None]:
    """(HTTP status, the body as a dict, the request's Authorization header) of an exception or a body."""
    if isinstance(error, Mapping):
        status = error.get("statusCode")
        return (status if isinstance(status, int) else None), error, None
    response = getattr(error, "response", None)
    status = getattr(error, "status_code", None) or getattr(response, "status_code", None)
    body: Any = None
    try:
        body = response.json() if response is not None else None
    except Exception:  # noqa: BLE001 - not JSON (or no body): fall back on what the exception kept
        body = None
    if not isinstance(body, Mapping):
        body = getattr(error, "body", None)
    request = getattr(response, "request", None) if response is not None else None
    headers = getattr(request, "headers", None) if request is not None else None
    return (status if isinstance(status, int) else None), (body if isinstance(body, Mapping) else None), _header(headers)


def _header(headers: Any, name: str = "authorization") -> str | None:
    if headers is None:
        return None
    try:
        items = list(headers.items())
    except (AttributeError, TypeError):
        return None
    return next((str(v) for k, v in items if str(k).lower() == name), None)


def _claims(token: Any) -> Claims | None:
    if token is None:
        return None
    if not isinstance(token, str) and isinstance(getattr(token, "token", None), str):
        token = token.token  # an azure-core AccessToken (mi.credential().get_token(...))
    try:
        return decode_unverified(token)
    except (TokenDecodeError, ValueError, TypeError):
        return None


def _audiences(claims: Claims | None) -> list[str]:
    aud = claims.audience if claims is not None else None
    return [str(a) for a in aud] if isinstance(aud, list) else ([str(aud)] if aud else [])


def _same(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def _rejected(message: str, claims: Claims | None, now: float, *, given: bool) -> TokenRejectedError:
    found = _EXPECTED.search(message)
    expected = found.group(1) if found else COGNITIVE_SERVICES
    wanted_scope = expected.rstrip("/") + "/.default"
    said = message or None  # the service's words, for every explanation
    principal = claims.object_id if claims is not None else None
    audiences = _audiences(claims)
    if claims is None and not given:
        return TokenRejectedError(
            "Azure OpenAI refused the token (HTTP 401): it is missing, invalid, for another audience or expired, "
            f"and the service wants {expected!r}. Which of these it is, the token says: give explain_openai_error "
            "the provider (or token) the client used.", expected_audience=expected, status=401, error_description=said,
            hint=f"Send a token for {wanted_scope!r}: azure_ad_token_provider=mi.bearer_token_provider().")
    if claims is None:
        return TokenRejectedError(
            "Azure OpenAI refused the token (HTTP 401), and it is not a JWT: no Entra ID token was sent.",
            expected_audience=expected, status=401, error_description=said,
            hint=f"Send an Entra ID token for {wanted_scope!r}: azure_ad_token_provider=mi.bearer_token_provider().")
    shown = " / ".join(repr(a) for a in audiences) or "no audience"
    if not any(_same(a, expected) for a in audiences):
        if any(_same(a, "https://ai.azure.com") for a in audiences):
            why = (" 'https://ai.azure.com' is what Foundry projects (azure-ai-projects) ask for; this endpoint wants "
                   "the other one.")
        else:
            why = ""
        return AudienceError(
            f"Azure OpenAI refused the token (HTTP 401): it is for {shown}, and Azure OpenAI accepts only "
            f"{expected!r}.{why}",
            audience=audiences[0] if audiences else None, expected_audience=expected, principal_id=principal, status=401, error_description=said,
            hint=(f"Ask for the scope {wanted_scope!r}: mi.bearer_token_provider() does by default, as does "
                  f"azure.identity.get_bearer_token_provider(credential, {wanted_scope!r}). The account's endpoint "
                  "(https://<name>.openai.azure.com) is where requests go, never the token's audience."))
    exp = claims.expires_at
    if exp is not None and exp <= now:
        return TokenRejectedError(
            f"Azure OpenAI refused the token (HTTP 401): its audience {shown} is right, but it expired at "
            f"{format_utc(exp)}.", audience=audiences[0], expected_audience=expected, principal_id=principal, status=401, error_description=said,
            hint=("Give the client a token provider (azure_ad_token_provider=mi.bearer_token_provider()), not a "
                  "token string: the SDK calls it before every request, and the cache hands out a fresh token "
                  "before the old one expires, however long the batch runs."))
    emulated = emulator_evidence(claims)
    if emulated is not None:
        why, hint = (f"the mi-notebook emulator issued it ({emulated}), and only the emulator accepts its tokens",
                     "On Azure, run where the identity is (a VM, Azure ML...): mi.connect() then gets Entra ID's tokens.")
    else:
        why, hint = ("so Azure OpenAI found it invalid: most often a token from another tenant than the account's",
                     "Check that the identity and the Azure OpenAI account are in the same Entra ID tenant (the "
                     "token's tid claim; `mi-notebook decode` shows it).")
    return TokenRejectedError(
        f"Azure OpenAI refused the token (HTTP 401): its audience {shown} is right and it has not expired, {why}.",
        audience=audiences[0], expected_audience=expected, principal_id=principal, status=401, error_description=said, hint=hint)


def _missing_role(message: str, claims: Claims | None, scope: str | None) -> MissingRoleError:
    foundry = "AIServices/" in message or "aka.ms/FoundryPermissions" in message
    role = AZURE_AI_USER if foundry else OPENAI_USER
    named = _PRINCIPAL.search(message)
    principal = (claims.object_id if claims is not None else None) or (named.group(1) if named else None)
    where = scope or ACCOUNT_PLACEHOLDER
    command = role_assignment_command(principal or "<principal id>", role, where)
    who = f"the identity {principal}" if principal else "the identity"
    account = "Foundry project" if foundry else "Azure OpenAI account"
    return MissingRoleError(
        f"Azure OpenAI refused {who} (HTTP 401 PermissionDenied, not 403): the token was accepted, but the "
        f"identity holds no data-plane role on the {account} that allows this call.",
        role=role, principal_id=principal, scope=where, command=command,
        status=401, error="PermissionDenied", error_description=message or None,
        hint=(f"Give it the role {role!r} on the {account} (or its resource group). A new role assignment can "
              f"take {ROLE_DELAY} to reach the service: wait, then retry (the token you hold stays good). Owner "
              f"and Contributor carry no data actions, so they do not help. The command: {command}"))
