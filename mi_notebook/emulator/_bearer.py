"""What every emulated service's bearer-token check shares: the ``Authorization`` parser, the result, the base.

ARM (:mod:`.arm.auth`) and Key Vault (:mod:`.keyvault.auth`) judge a token by their own rules and
answer in their own words; both read the header with :func:`bearer`, word errors with
:func:`unverified_claims` and build on :class:`BearerCheck` (signing keys, tenant, issuer, clock).

Example::

    >>> bearer("Bearer abc"), AuthResult(claims={"oid": "o"}).ok
    ('abc', True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from .keys import SigningKeys

__all__ = ["AuthResult", "BearerCheck", "bearer", "unverified_claims"]


@dataclass(frozen=True)
class AuthResult:
    """``claims`` when the token is good; otherwise ``code``, ``message`` and ``www_authenticate``.

    Example::

        >>> AuthResult(code="AuthenticationFailed").ok
        False
    """

    claims: dict[str, Any] | None = field(default=None, repr=False)
    code: str | None = None
    message: str | None = None
    www_authenticate: str | None = None

    @property
    def ok(self) -> bool:
        return self.claims is not None


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, or ``None`` if it is not one.

    Example::

        >>> bearer("Bearer abc"), bearer("Basic abc"), bearer("Bearer "), bearer(None)
        ('abc', None, None, None)
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of ``token`` without checking anything (to word an error), ``{}`` if unreadable.

    Example::

        >>> unverified_claims("not-a-jwt")
        {}
    """
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}


class BearerCheck:
    """What every service's token check holds: the signing keys, the tenant, the issuer, the clock.

    Example::

        >>> BearerCheck(SigningKeys(), tenant_id="t", issuer="https://sts.windows.net/t/").tenant_id
        't'
    """

    def __init__(self, keys: SigningKeys, *, tenant_id: str, issuer: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.tenant_id = tenant_id
        self.issuer = issuer
        self.clock = clock
