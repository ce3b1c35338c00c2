"""How the emulated Key Vault judges a request's bearer token: the challenge, the audience, the issuer.

Key Vault's authentication is challenge based: a request without a token gets a 401 whose
``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
resource="https://vault.azure.net"`` names the authority and the resource to ask a token for; the
Azure SDK sends its first request bare on purpose, reads that challenge, fetches a token and retries.
Every 401 carries the challenge. The audience must be Key Vault's (``https://vault.azure.net``, with or
without the trailing slash, or its app id): a token for ARM or Storage gets ``AKV10022: Invalid
audience`` (the message of the public captures). Signature and times are checked against the emulator's
keys and clock; the issuer must be the emulated tenant.

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> keys = SigningKeys()
    >>> check = VaultTokenCheck(keys, tenant_id="t", issuer="https://sts.windows.net/t/", clock=lambda: 100.0)
    >>> bare = check.check(None)
    >>> bare.message, bare.www_authenticate
    ('AKV10000: Request is missing a Bearer or PoP token.', 'Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net"')
    >>> arm = keys.issue({"aud": "https://management.azure.com/", "iss": "https://sts.windows.net/t/", "oid": "o",
    ...                   "nbf": 0, "exp": 200})
    >>> check.check("Bearer " + arm).message
    'AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com/.'
"""

from __future__ import annotations

import jwt

from .._bearer import AuthResult, BearerCheck, bearer, unverified_claims

__all__ = ["VAULT_AUDIENCES", "VAULT_RESOURCE", "VaultTokenCheck"]

VAULT_RESOURCE = "https://vault.azure.net"
VAULT_AUDIENCES = (VAULT_RESOURCE, VAULT_RESOURCE + "/", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093")

MISSING = "AKV10000: Request is missing a Bearer or PoP token."


class VaultTokenCheck(BearerCheck):
    """Validates Key Vault bearer tokens issued by ``keys`` for ``tenant_id`` (issuer ``issuer``).

    ``check`` returns an :class:`~mi_notebook.emulator._bearer.AuthResult`: ``claims`` when good,
    else ``code`` (``"Unauthorized"``), ``message`` and the ``www_authenticate`` challenge.

    Example::

        >>> from mi_notebook.emulator.keys import SigningKeys
        >>> check = VaultTokenCheck(SigningKeys(), tenant_id="t", issuer="https://sts.windows.net/t/")
        >>> check.check("Bearer not-a-jwt").code
        'Unauthorized'
    """

    @property
    def challenge(self) -> str:
        return (f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                f'resource="{VAULT_RESOURCE}"')

    def check(self, authorization: str | None, *, now: float | None = None) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is missing)."""
        def fail(message: str) -> AuthResult:
            return AuthResult(code="Unauthorized", message=message, www_authenticate=self.challenge)

        token = bearer(authorization)
        if token is None:  # no header, or not a Bearer one: Key Vault says the same for both
            return fail(MISSING)
        current = self.clock() if now is None else now
        try:
            claims = self.keys.verify(token, audience=list(VAULT_AUDIENCES), now=current)
        except jwt.InvalidAudienceError:
            aud = unverified_claims(token).get("aud")
            found = ",".join(aud) if isinstance(aud, list) else str(aud)
            return fail(f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {found}.")
        except jwt.ExpiredSignatureError:
            return fail("The access token has expired.")  # wording ours: no public capture
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return fail("The access token is not valid.")  # wording ours
        if claims.get("iss") != self.issuer:
            return fail(f"AKV10032: Invalid issuer. Expected one of {self.issuer}, found: {claims.get('iss')}.")
        if not claims.get("oid"):
            return fail("The access token is not valid.")
        return AuthResult(claims=claims)
