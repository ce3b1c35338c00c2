"""How the emulated Key Vault judges a request's bearer token: the challenge, the audience, the issuer.

Key Vault's authentication is challenge based: a request without a token gets a 401 whose
``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
resource="https://vault.azure.net"`` names the authority and the resource to ask a token for; the
Azure SDK sends its first request bare on purpose, reads that challenge, fetches a token and retries.
Every 401 carries the challenge. The audience must be Key Vault's (``https://vault.azure.net``, with or
without the trailing slash, or its app id): a token for ARM or Storage gets ``AKV10022: Invalid
audience`` (the message of the public captures). Signature and times are checked against the emulator's
keys and clock; the issuer must be the emulated tenant. In another cloud (``cloud=``) the resource and
the challenge's authority are that cloud's (``https://vault.usgovcloudapi.net``,
``https://login.microsoftonline.us/<tenant>``).

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

import time
from collections.abc import Callable

import jwt

from .._bearer import AuthResult, BearerCheck, bearer, unverified_claims
from ..clouds import DEFAULT_CLOUD
from ..clouds import cloud as named_cloud
from ..keys import SigningKeys

__all__ = ["VAULT_APP_ID", "VAULT_AUDIENCES", "VAULT_RESOURCE", "VaultTokenCheck"]

VAULT_RESOURCE = "https://vault.azure.net"  # the public cloud's
VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
VAULT_AUDIENCES = (VAULT_RESOURCE, VAULT_RESOURCE + "/", VAULT_APP_ID)

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
        >>> VaultTokenCheck(SigningKeys(), tenant_id="t", issuer="https://sts.windows.net/t/",
        ...                 cloud="AzureUSGovernmentCloud").challenge
        'Bearer authorization="https://login.microsoftonline.us/t", resource="https://vault.usgovcloudapi.net"'
    """

    def __init__(self, keys: SigningKeys, *, tenant_id: str, issuer: str, clock: Callable[[], float] = time.time,
                 cloud: str = DEFAULT_CLOUD) -> None:
        super().__init__(keys, tenant_id=tenant_id, issuer=issuer, clock=clock)
        played = named_cloud(cloud)
        self.resource = played.vault
        self.authority = f"https://{played.authority_host}/"
        self.audiences = (self.resource, self.resource + "/", VAULT_APP_ID)

    @property
    def challenge(self) -> str:
        return f'Bearer authorization="{self.authority}{self.tenant_id}", resource="{self.resource}"'

    def check(self, authorization: str | None, *, now: float | None = None) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is missing)."""
        def fail(message: str) -> AuthResult:
            return AuthResult(code="Unauthorized", message=message, www_authenticate=self.challenge)

        token = bearer(authorization)
        if token is None:  # no header, or not a Bearer one: Key Vault says the same for both
            return fail(MISSING)
        current = self.clock() if now is None else now
        try:
            claims = self.keys.verify(token, audience=list(self.audiences), now=current)
        except jwt.InvalidAudienceError:
            aud = unverified_claims(token).get("aud")
            found = ",".join(aud) if isinstance(aud, list) else str(aud)
            return fail(f"AKV10022: Invalid audience. Expected {self.resource}, found: {found}.")
        except jwt.ExpiredSignatureError:
            return fail("The access token has expired.")  # wording ours: no public capture
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return fail("The access token is not valid.")  # wording ours
        if claims.get("iss") != self.issuer:
            return fail(f"AKV10032: Invalid issuer. Expected one of {self.issuer}, found: {claims.get('iss')}.")
        if not claims.get("oid"):
            return fail("The access token is not valid.")
        return AuthResult(claims=claims)

