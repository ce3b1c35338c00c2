"""How the emulated ARM checks a bearer token, and the documented 401 answers when it is not good.

Checks, in order: an ``Authorization: Bearer <jwt>`` header; the signature against the emulator's
signing key; the audience among ARM's accepted ones; the issuer (the emulated tenant); ``exp`` and
``nbf`` by the emulator's clock. A failure gives ARM's error code and message (docs/emulator.md) and a
``WWW-Authenticate: Bearer authorization_uri=..., error="invalid_token", error_description=...``.

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> keys = SigningKeys()
    >>> check = TokenCheck(keys, tenant_id="t", issuer="https://sts.windows.net/t/", clock=lambda: 100.0)
    >>> check.check(None).code
    'AuthenticationFailed'
    >>> good = keys.issue({"aud": "https://management.azure.com/", "iss": "https://sts.windows.net/t/",
    ...                    "oid": "o", "nbf": 0, "exp": 200})
    >>> check.check("Bearer " + good).claims["oid"]
    'o'
    >>> check.check("Bearer " + good, now=300.0).code
    'ExpiredAuthenticationToken'
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from .keys import SigningKeys

__all__ = ["ACCEPTED_AUDIENCES", "AuthResult", "TokenCheck", "arm_time"]

ACCEPTED_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)

MISSING_HEADER = "Authentication failed. The 'Authorization' header is missing."
BAD_FORMAT = "Authentication failed. The 'Authorization' header is provided in an invalid format."
INVALID = "The access token is invalid."


def arm_time(epoch: float) -> str:
    """A UTC time as ARM's messages spell it: ``10/23/2019 3:54:29 PM``.

    Example::

        >>> arm_time(1571845769)
        '10/23/2019 3:49:29 PM'
    """
    d = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
    hour = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {hour}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}"


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


class TokenCheck:
    """Validates ARM bearer tokens issued by ``keys`` for ``tenant_id`` (issuer ``issuer``).

    Example::

        >>> check = TokenCheck(SigningKeys(), tenant_id="t", issuer="https://sts.windows.net/t/")
        >>> check.check("Bearer not-a-jwt").message
        'The access token is invalid.'
    """

    def __init__(self, keys: SigningKeys, *, tenant_id: str, issuer: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.tenant_id = tenant_id
        self.issuer = issuer
        self.clock = clock

    def _fail(self, code: str, message: str, description: str | None = None) -> AuthResult:
        desc = (description or message).replace('"', "'")
        header = (f'Bearer authorization_uri="https://login.windows.net/{self.tenant_id}", '
                  f'error="invalid_token", error_description="{desc}"')
        return AuthResult(code=code, message=message, www_authenticate=header)

    def check(self, authorization: str | None, *, now: float | None = None) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is missing)."""
        if authorization is None or not authorization.strip():
            return self._fail("AuthenticationFailed", MISSING_HEADER,
                              "The authentication failed because of missing 'Authorization' header.")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._fail("AuthenticationFailed", BAD_FORMAT)
        current = self.clock() if now is None else now
        try:
            claims = self.keys.verify(token, audience=list(ACCEPTED_AUDIENCES), now=current)
        except jwt.InvalidAudienceError:
            aud = _unverified(token).get("aud")
            aud_text = ",".join(aud) if isinstance(aud, list) else str(aud)
            allowed = ",".join(f"'{a}'" for a in ACCEPTED_AUDIENCES)
            return self._fail("InvalidAuthenticationTokenAudience",
                              f"The access token has been obtained for wrong audience or resource '{aud_text}'. "
                              f"It should exactly match with one of the allowed audiences {allowed}.")
        except jwt.ExpiredSignatureError:
            exp = _unverified(token).get("exp", 0)
            return self._fail("ExpiredAuthenticationToken",
                              f"The access token expiry UTC time '{arm_time(exp)}' is earlier than current "
                              f"UTC time '{arm_time(current)}'.")
        except jwt.ImmatureSignatureError:
            nbf = _unverified(token).get("nbf", 0)
            return self._fail("InvalidAuthenticationToken",
                              f"{INVALID} Its validity starts at UTC time '{arm_time(nbf)}', later than the "
                              f"current UTC time '{arm_time(current)}'.")
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return self._fail("InvalidAuthenticationToken", INVALID)
        if claims.get("iss") != self.issuer:
            return self._fail("InvalidAuthenticationTokenTenant",
                              f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match "
                              f"the tenant 'https://sts.windows.net/{self.tenant_id}/' associated with this "
                              "subscription. Please use the authority (URL) "
                              f"'https://login.windows.net/{self.tenant_id}' to get the token.")
        if not claims.get("oid"):
            return self._fail("InvalidAuthenticationToken", INVALID)
        return AuthResult(claims=claims)


def _unverified(token: str) -> dict[str, Any]:
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
