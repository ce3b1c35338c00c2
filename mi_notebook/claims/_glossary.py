"""What every claim and header field of an Entra ID access token means (v1 and v2), as data.

The tables are plain dicts and tuples so that views (the claims table, the card, the CLI, the
widgets) and tests read the same words; :func:`explain_claim` adds what a particular value says
(``appidacr`` 2 is a certificate, an ``xms_mirid`` under ``Microsoft.Compute`` is a system-assigned
identity). No code here decodes or checks anything.

Example::

    >>> from mi_notebook.claims._glossary import CLAIM_MEANINGS, explain_claim, mirid_kind
    >>> CLAIM_MEANINGS["tid"]
    'tenant id: the Entra ID tenant that issued the token'
    >>> explain_claim("appidacr", "2").endswith("(here: certificate)")
    True
    >>> mirid_kind("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")
    'system'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AUDIENCE_NOTES",
    "CLAIM_MEANINGS",
    "HEADER_MEANINGS",
    "MIRID_KINDS",
    "TIME_CLAIMS",
    "UNKNOWN_CLAIM",
    "UNKNOWN_HEADER",
    "VALUE_NOTES",
    "WRONG_AUDIENCE_ANSWERS",
    "audience_note",
    "explain_claim",
    "explain_header",
    "mirid_kind",
]

HEADER_MEANINGS: dict[str, str] = {
    "typ": "token type: always JWT for access tokens",
    "alg": "signature algorithm (Entra ID signs with RS256)",
    "kid": "id of the signing key in the issuer's JWKS (the keys rotate)",
    "x5t": "SHA-1 thumbprint of the signing certificate (v1 tokens: same value as kid)",
    "nonce": "opaque, used by some services for proof of possession; makes the signature unverifiable elsewhere",
    "cty": "content type of a nested token",
    "enc": "content encryption algorithm (encrypted JWE)",
    "jku": "URL of the JWKS holding the signing key (never trust it blindly)",
    "x5c": "certificate chain of the signing key",
}

CLAIM_MEANINGS: dict[str, str] = {
    # --- present in managed-identity tokens (imds-and-arm.md, section 2) ---
    "aud": "audience: the resource the token is for; IMDS sets it to the requested resource verbatim",
    "iss": "issuer: the security token service and tenant (v1: https://sts.windows.net/<tid>/, "
    "v2: https://login.microsoftonline.com/<tid>/v2.0)",
    "iat": "issued at: when the token was issued (back-dated 5 minutes for managed identities)",
    "nbf": "not before: the token is not valid before this time (= the response's not_before)",
    "exp": "expiry: the token is not valid from this time on (= the response's expires_on)",
    "aio": "opaque: internal data Entra ID uses to reuse tokens; do not interpret",
    "appid": "v1: client (application) id of the identity the token was issued to",
    "appidacr": "v1: how the client authenticated: 0 public client, 1 client secret, 2 certificate "
    "(managed identities: 2)",
    "azp": "v2: client (application) id of the identity the token was issued to (replaces appid)",
    "azpacr": "v2: how the client authenticated: 0 public client, 1 client secret, 2 certificate "
    "(replaces appidacr)",
    "idp": "identity provider that authenticated the subject (the tenant's STS for managed identities)",
    "idtyp": "identity type: 'app' for an application or managed identity, 'user' for a user",
    "oid": "object id of the identity (the managed identity's principal id; used in role assignments)",
    "rh": "opaque: internal data Entra ID uses to revalidate tokens; do not interpret",
    "sub": "subject: the principal the token asserts (for app tokens equal to oid)",
    "tid": "tenant id: the Entra ID tenant that issued the token",
    "uti": "opaque: token identifier used to revalidate tokens; do not interpret",
    "ver": "token format version: '1.0' or '2.0' (set by the resource, not by the caller)",
    "xms_mirid": "managed identity resource id: for a system-assigned identity the VM's resource id "
    "(.../Microsoft.Compute/virtualMachines/...), for a user-assigned one the identity's "
    "(.../Microsoft.ManagedIdentity/userAssignedIdentities/...)",
    "xms_az_rid": "user-assigned identities only: resource id of the Azure resource (VM) that requested the token",
    "xms_tcdt": "tenant creation date (epoch seconds)",
    # --- other standard Entra ID access-token claims (user and delegated tokens) ---
    "acr": "v1 user tokens: authentication context class ('0' = did not meet ISO/IEC 29115 level 1)",
    "amr": "authentication methods used (e.g. pwd, mfa, rsa)",
    "auth_time": "when the user last authenticated",
    "roles": "app roles (application permissions) granted to the caller on this resource",
    "scp": "delegated permissions (scopes) the user consented to, space-separated",
    "wids": "directory roles (role template ids) of the user",
    "groups": "object ids of groups the subject belongs to (if group claims are configured)",
    "hasgroups": "too many groups to list in the token: call Microsoft Graph for the subject's groups",
    "_claim_names": "groups overage: which claims are in another source (see _claim_sources)",
    "_claim_sources": "groups overage: where to fetch the claims named in _claim_names",
    "xms_cc": "client capabilities, e.g. cp1 (the client handles claims challenges / continuous access evaluation)",
    "xms_idrel": "relationship of the user to the tenant (1 = member, 8 = guest)",
    "xms_ssm": "opaque: internal Entra ID session data",
    "xms_pdl": "preferred data location (multi-geo tenants)",
    "xms_pl": "user's preferred language",
    "xms_tpl": "tenant's preferred language",
    "name": "display name of the user",
    "upn": "user principal name (v1; may change, do not use as an identifier)",
    "unique_name": "v1: human-readable user name (may change, do not use as an identifier)",
    "preferred_username": "v2: user name the user signs in with (may change, do not use as an identifier)",
    "ipaddr": "IP address the user authenticated from",
    "family_name": "user's last name",
    "given_name": "user's first name",
    "email": "user's e-mail address (if present)",
    "login_hint": "opaque, reliable login hint for the user",
    "puid": "opaque: internal user id",
    "onprem_sid": "security identifier of the user in on-premises Active Directory",
    "pwd_exp": "when the user's password expires",
    "pwd_url": "where the user can change the password",
    "sid": "session id",
    "ctry": "user's country or region",
    "tenant_ctry": "tenant's country or region",
    "tenant_region_scope": "region of the tenant",
    "in_corp": "the client signs in from the corporate network",
    "nonce": "value from the authorization request (id tokens)",
    "cnf": "confirmation: key the token is bound to (proof of possession)",
    "deviceid": "device id of a registered device",
    "verified_primary_email": "user's verified primary e-mail addresses",
    "verified_secondary_email": "user's verified secondary e-mail addresses",
    "acrs": "authentication context ids the user satisfied",
    "xms_ftd": "opaque: internal Entra ID routing data",
    "xms_rd": "opaque: internal Entra ID data",
    # --- not Entra ID's: the mi-notebook emulator marks every token it signs ---
    "mi_notebook_emulator": "the mi-notebook emulator's mark: it issued this token, not Azure; the token works "
    "only against the emulator's own services, and only its keys (for as long as it runs) verify it",
}

#: Claims holding epoch seconds (views show them as UTC, and relative to now).
TIME_CLAIMS: frozenset[str] = frozenset({"iat", "nbf", "exp", "auth_time", "xms_tcdt", "pwd_exp"})

#: What a particular value of a claim says (compared as text: ``2`` and ``"2"`` read the same).
VALUE_NOTES: dict[str, dict[str, str]] = {
    "idtyp": {"app": "an application or managed identity"},
    "appidacr": {"0": "public client", "1": "client secret", "2": "certificate"},
    "azpacr": {"0": "public client", "1": "client secret", "2": "certificate"},
    "xms_idrel": {"1": "member", "8": "guest"},
}

#: ``(kind, what it is, lower-case markers)``: the resource id in ``xms_mirid`` names the kind of
#: managed identity (user-assigned first: its resource type is the more specific).
MIRID_KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("user", "a user-assigned identity", ("/providers/microsoft.managedidentity/userassignedidentities/",)),
    ("system", "a system-assigned identity", ("/providers/microsoft.compute/virtualmachines/",
                                              "/providers/microsoft.compute/virtualmachinescalesets/")),
)

#: What an ``aud`` is for, where more than its alias helps: the Azure AI audiences, whose scopes people
#: mix up. Sources: Microsoft Learn "How to configure Azure OpenAI with managed identities" and the
#: api-version lifecycle page (cognitiveservices on both APIs); azure-ai-projects' ``credential_scopes``
#: (ai.azure.com). Keys: lower case, no trailing slash.
AUDIENCE_NOTES: dict[str, str] = {
    "https://cognitiveservices.azure.com": "Azure AI services: Azure OpenAI (deployments and the v1 API) and "
    "Foundry model inference",
    "https://ai.azure.com": "Azure AI Foundry projects (azure-ai-projects); Azure OpenAI inference wants "
    "https://cognitiveservices.azure.com instead",
}

#: What a service answers a token for another audience, where it is not ARM's
#: ``InvalidAuthenticationTokenAudience`` (keys as in :data:`AUDIENCE_NOTES`). Azure OpenAI's body is
#: captured in public threads (run-llama/llama_index#12484, Azure-Samples/azure-search-openai-demo#458).
WRONG_AUDIENCE_ANSWERS: dict[str, str] = {
    "https://cognitiveservices.azure.com": "401 'Unauthorized. Access token is missing, invalid, audience is "
    "incorrect (https://cognitiveservices.azure.com), or have expired.'",
}

UNKNOWN_CLAIM = "unknown claim: not in mi-notebook's list of Entra ID access-token claims"
UNKNOWN_HEADER = "unknown header parameter"


def mirid_kind(mirid: Any) -> str | None:
    """``"user"`` or ``"system"`` for an ``xms_mirid`` resource id (see :data:`MIRID_KINDS`), else None.

    Example::

        >>> mirid_kind("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id")
        'user'
        >>> mirid_kind("/subscriptions/s/resourcegroups/rg/providers/Microsoft.Web/sites/app") is None
        True
    """
    lowered = mirid.lower() if isinstance(mirid, str) else ""
    return next((kind for kind, _, markers in MIRID_KINDS if any(m in lowered for m in markers)), None)


def audience_note(aud: Any) -> str | None:
    """What an audience is for (:data:`AUDIENCE_NOTES`), ignoring case and one trailing slash; else None.

    Example::

        >>> audience_note("https://ai.azure.com/").startswith("Azure AI Foundry projects")
        True
        >>> audience_note("https://vault.azure.net") is None
        True
    """
    key = aud.strip().lower() if isinstance(aud, str) else ""
    return AUDIENCE_NOTES.get(key[:-1] if key.endswith("/") else key)


def explain_claim(name: str, value: Any = None) -> str:
    """The meaning of claim ``name``, plus what this particular ``value`` says where that helps.

    Example::

        >>> explain_claim("idtyp", "app").endswith("(here: an application or managed identity)")
        True
        >>> explain_claim("foo")
        "unknown claim: not in mi-notebook's list of Entra ID access-token claims"
    """
    meaning = CLAIM_MEANINGS.get(name, UNKNOWN_CLAIM)
    if name == "xms_mirid":
        kind = mirid_kind(value)
        note = next((text for k, text, _ in MIRID_KINDS if k == kind), None)
    elif name == "aud":
        note = audience_note(value)
    else:
        note = VALUE_NOTES.get(name, {}).get(str(value))
    return f"{meaning} (here: {note})" if note else meaning


def explain_header(name: str) -> str:
    """The meaning of header parameter ``name``.

    Example::

        >>> explain_header("kid")
        "id of the signing key in the issuer's JWKS (the keys rotate)"
        >>> explain_header("zip")
        'unknown header parameter'
    """
    return HEADER_MEANINGS.get(name, UNKNOWN_HEADER)
