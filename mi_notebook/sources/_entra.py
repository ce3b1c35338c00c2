"""Entra ID's refusals of a workload-identity token request, as typed errors that say what to fix.

Entra ID answers a failed client-assertion grant with JSON holding ``error``, ``error_description``
(``AADSTS<code>: ...``, then ``Trace ID``, ``Correlation ID``, ``Timestamp``) and ``error_codes``
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
:func:`entra_error` turns one into an :class:`EntraError` subclass that keeps the code
(``err.aadsts``) and the service's words, and whose hint is the fix for *that* code:

==========================  ======================================  =========================================
AADSTS                      error                                   the fix
==========================  ======================================  =========================================
70021, 700211, 700213,      :class:`FederatedCredentialError`       the federated identity credential: its
7002138, 70025                                                      issuer exactly (trailing ``/``), its
                                                                    subject ``system:serviceaccount:NS:NAME``
                                                                    (case), its audience; the pod's service
                                                                    account and label; a few minutes'
                                                                    propagation
700024                      :class:`AssertionTimeError`             the assertion's time window (a stale
                                                                    read, the clock)
90061                       :class:`OidcIssuerUnreachableError`     the cluster's OIDC issuer must be public
700016                      :class:`ClientNotFoundError`            ``AZURE_CLIENT_ID`` / ``AZURE_TENANT_ID``
500011                      :class:`EntraInvalidResourceError`      the resource's App ID URI (the cloud's)
any other                   :class:`EntraError`                     Entra's own words
==========================  ======================================  =========================================

Sources of the codes and their usual causes: azure-workload-identity ``docs/book/src/troubleshooting.md``
(70021 and the trailing slash; 90061) and its FAQ (propagation); azure-workload-identity#1200
(700211); Azure/login#482 and #517 (700213, subjects now matched case-sensitively); #693 and
azure-sdk-for-python#44488 (700024). The audience has no confirmed code of its own: 70021 covers it.

Example::

    >>> err = entra_error({"error": "invalid_client", "error_codes": [700211], "error_description":
    ...     "AADSTS700211: No matching federated identity record found for presented assertion issuer "
    ...     "'https://oidc.example/x/'. Trace ID: t"}, status=401, issuer="https://oidc.example/x/",
    ...     subject="system:serviceaccount:jhub:nb")
    >>> type(err).__name__, err.aadsts, err.status
    ('FederatedCredentialError', 700211, 401)
    >>> "trailing '/'" in err.hint and "az aks show" in err.hint
    True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import BadRequestError, IdentityNotFoundError, InvalidResourceError

__all__ = ["AssertionTimeError", "ClientNotFoundError", "EntraError", "EntraInvalidResourceError",
           "FederatedCredentialError", "OidcIssuerUnreachableError", "aadsts_code", "entra_error"]

_CODE = re.compile(r"\bAADSTS(\d{4,8})\b")
_FIC_CODES = frozenset({70021, 70025, 700211, 700213, 7002138})
_PROPAGATION = ("A federated credential created or changed in the last few minutes may not have reached Entra ID "
                "yet: wait a few minutes and try again.")
_LIST = "az identity federated-credential list --identity-name <identity> --resource-group <group>"
_ISSUER = "az aks show --resource-group <group> --name <cluster> --query oidcIssuerProfile.issuerUrl -o tsv"


class EntraError(BadRequestError):
    """Entra ID refused the workload-identity token request; ``aadsts`` is its ``AADSTS`` code (``None``
    when the refusal is mi-notebook's own, made before anything was sent)."""

    aadsts: int | None = None

    def __init__(self, message: str, *, aadsts: int | None = None, **kwargs: Any) -> None:
        self.aadsts = aadsts
        super().__init__(message, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The error as plain data, with its ``aadsts`` code."""
        return {**super().to_dict(), "aadsts": self.aadsts}


class FederatedCredentialError(EntraError):
    """No federated identity credential of the identity matches the assertion's issuer, subject and
    audience (AADSTS70021, 700211, 700213, 7002138), or the identity has none (70025)."""


class AssertionTimeError(EntraError):
    """The assertion (the service-account token) is outside its time window: expired or not yet valid
    (AADSTS700024), or found expired in the file before it was sent (``aadsts`` ``None``)."""


class OidcIssuerUnreachableError(EntraError):
    """Entra ID could not fetch the cluster's OIDC discovery document or keys (AADSTS90061)."""


class ClientNotFoundError(EntraError, IdentityNotFoundError):
    """The client id is no application or identity in the tenant (AADSTS700016)."""


class EntraInvalidResourceError(EntraError, InvalidResourceError):
    """The scope's resource is not known in the tenant (AADSTS500011)."""


def aadsts_code(document: Any) -> int | None:
    """The ``AADSTS`` code of an Entra error body: ``error_codes[0]``, else the one in ``error_description``.

    Example::

        >>> aadsts_code({"error_codes": [90061]}), aadsts_code({"error_description": "AADSTS700024: late"})
        (90061, 700024)
        >>> aadsts_code("not json") is None
        True
    """
    if not isinstance(document, Mapping):
        return None
    codes = document.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int) and not isinstance(codes[0], bool):
        return codes[0]
    found = _CODE.search(str(document.get("error_description") or ""))
    return int(found.group(1)) if found else None


def _fic_hint(code: int, issuer: str | None, subject: str | None, audiences: tuple[str, ...]) -> str:
    said_iss = f"{issuer!r}" if issuer else "the cluster's issuer URL"
    said_sub = f"{subject!r}" if subject else "system:serviceaccount:<namespace>:<service account>"
    issuer_fix = (f"The federated credential's issuer must be the assertion's issuer exactly, {said_iss}, its trailing "
                  f"'/' included (`{_ISSUER}` prints it).")
    subject_fix = (f"Its subject must be {said_sub} character for character: Entra ID compares subjects "
                   "case-sensitively, and the pod must run as that service account (Zero to JupyterHub: "
                   "singleuser.serviceAccountName) in that namespace.")
    audience_fix = f"Its audience must be {', '.join(audiences) or 'api://AzureADTokenExchange'}."
    label = ("The pod needs the label azure.workload.identity/use: \"true\" (Zero to JupyterHub: "
             "singleuser.extraLabels) and a service account annotated azure.workload.identity/client-id.")
    see = f"`{_LIST}` shows what is configured."
    if code == 70025:
        return (f"Create one: az identity federated-credential create --name <name> --identity-name <identity> "
                f"--resource-group <group> --issuer {issuer or '<issuer>'} --subject {said_sub.strip(chr(39))} "
                f"--audience api://AzureADTokenExchange. {_PROPAGATION}")
    if code == 700211:
        return f"{issuer_fix} {see} {_PROPAGATION}"
    if code in (700213, 7002138):
        return f"{subject_fix} {label} {see} {_PROPAGATION}"
    return f"{issuer_fix} {subject_fix} {audience_fix} {label} {see} {_PROPAGATION}"


def entra_error(document: Any, *, status: int | None, issuer: str | None = None, subject: str | None = None,
                audiences: tuple[str, ...] = (), client_id: str | None = None, tenant: str | None = None,
                resource: str | None = None, **common: Any) -> EntraError | None:
    """The typed error for Entra's error body ``document`` (``None`` when it carries no AADSTS code).

    ``issuer``, ``subject`` and ``audiences`` are the sent assertion's claims (none secret) so that a
    federated-credential hint names the values to configure; ``client_id``, ``tenant`` and
    ``resource`` what was asked; ``common`` goes to the error (``error``, ``error_description``,
    ``request_id``, ``timeline``, ``endpoint``).

    Example::

        >>> err = entra_error({"error_codes": [90061], "error_description": "AADSTS90061: Request to External "
        ...                    "OIDC endpoint failed."}, status=400, issuer="https://oidc.example/x/")
        >>> type(err).__name__, "az aks update" in err.hint
        ('OidcIssuerUnreachableError', True)
    """
    code = aadsts_code(document)
    if code is None:
        return None
    where = f"AADSTS{code}"
    common = {"status": status, **common}
    if code in _FIC_CODES:
        what = {70025: "the identity has no federated identity credential at all",
                700211: "no federated identity credential matches the assertion's issuer",
                700213: "no federated identity credential matches the assertion's subject",
                7002138: "the assertion's subject matches a federated credential only when case is ignored",
                }.get(code, "no federated identity credential matches the assertion's issuer, subject and audience")
        return FederatedCredentialError(
            f"Entra ID refused the service-account token ({where}): {what} (issuer {issuer!r}, subject {subject!r}).",
            aadsts=code, hint=_fic_hint(code, issuer, subject, audiences), **common)
    if code == 700024:
        return AssertionTimeError(
            f"Entra ID refused the service-account token ({where}): it is not within its valid time range by Entra "
            "ID's clock.", aadsts=code, hint=(
                "mi-notebook reads AZURE_FEDERATED_TOKEN_FILE again for every request and never sends a token it "
                "sees expired, so a stale read is not the cause here: check this machine's clock against Entra "
                "ID's (NTP) and that the kubelet rotates the file (`mi-notebook doctor` shows its exp)."), **common)
    if code == 90061:
        return OidcIssuerUnreachableError(
            f"Entra ID could not reach the cluster's OIDC issuer {issuer!r} ({where}) to check the service-account "
            "token.", aadsts=code, hint=(
                "The issuer must be enabled and publicly reachable over HTTPS: `az aks update --resource-group "
                "<group> --name <cluster> --enable-oidc-issuer`, then check that "
                f"{(issuer or '<issuer>/').rstrip('/')}/.well-known/openid-configuration and its jwks_uri answer "
                "from the internet (and that the federated credential names this issuer)."), **common)
    if code == 700016:
        return ClientNotFoundError(
            f"Entra ID knows no application or identity with client id {client_id!r} in tenant {tenant!r} ({where}).",
            aadsts=code, hint=(
                "Check AZURE_CLIENT_ID (the service account's annotation azure.workload.identity/client-id: the "
                "identity's client id, not its object id) and AZURE_TENANT_ID (the identity's tenant). A new "
                "identity can take a few minutes to reach Entra ID."), **common)
    if code == 500011:
        return EntraInvalidResourceError(
            f"Entra ID does not know the resource {resource!r} in tenant {tenant!r} ({where}).", aadsts=code,
            hint=InvalidResourceError.default_hint + " In a sovereign cloud, use that cloud's App ID URI.", **common)
    if code == 90002:
        return EntraError(f"Entra ID does not know the tenant {tenant!r} ({where}).", aadsts=code, hint=(
            "Check AZURE_TENANT_ID, and that AZURE_AUTHORITY_HOST is the login host of the identity's cloud."),
            **common)
    return EntraError(f"Entra ID refused the workload-identity token request ({where}).", aadsts=code,
                      hint="Entra ID's words above say why; retrying the same request will not help.", **common)
