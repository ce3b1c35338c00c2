"""How the emulated ARM checks a bearer token, and the documented 401 answers when it is not good.

Checks, in order: an ``Authorization: Bearer <jwt>`` header; the signature against the emulator's
signing key; the audience among ARM's accepted ones (the cloud's: ``cloud="AzureUSGovernmentCloud"``
accepts ``https://management.usgovcloudapi.net/`` and its ``core`` twin, and refuses the public
cloud's); the issuer (the emulated tenant); ``exp`` and ``nbf`` by the emulator's clock. A failure
gives ARM's error code and message (docs/emulator.md) and a
``WWW-Authenticate: Bearer authorization_uri=..., error="invalid_token", error_description=...`` whose
``authorization_uri`` names the tenant for calls inside a subscription and none for tenant-level calls
(``/subscriptions``), as the public fixtures show.

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> keys = SigningKeys()
    >>> check = TokenCheck(keys, tenant_id="t", issuer="https://sts.windows.net/t/", clock=lambda: 100.0)
    >>> check.check(None).code
    'AuthenticationFailed'
    >>> check.check("Basic abc").code
    'AuthenticationFailedInvalidHeader'
    >>> check.check(None, tenant_level=True).www_authenticate.split(",")[0]
    'Bearer authorization_uri="https://login.windows.net/"'
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

import jwt

from .._bearer import AuthResult, BearerCheck, bearer, unverified_claims
from ..clouds import DEFAULT_CLOUD
from ..clouds import cloud as named_cloud
from ..keys import SigningKeys

__all__ = ["ACCEPTED_AUDIENCES", "TokenCheck", "arm_time"]

ACCEPTED_AUDIENCES = named_cloud(DEFAULT_CLOUD).arm_audiences  # the public cloud's, in the order ARM lists them

MISSING_HEADER = "Authentication failed. The 'Authorization' header is missing."
BAD_FORMAT = "Authentication failed. The 'Authorization' header is provided in an invalid format."
INVALID = "The access token is invalid."
WRONG_ISSUER = ("The access token is from the wrong issuer '{iss}'. It must match the tenant "
                "'{expected}' associated with this subscription. Please use the authority "
                "(URL) '{authority}{tenant}' to get the token. Note, if the subscription is "
                "transferred to another tenant there is no impact to the services, but information about new "
                "tenant could take time to propagate (up to an hour). If you just transferred your subscription "
                "and see this error message, please try back later.")


def arm_time(epoch: float) -> str:
    """A UTC time as ARM's messages spell it: ``10/23/2019 3:54:29 PM``.

    Example::

        >>> arm_time(1571845769)
        '10/23/2019 3:49:29 PM'
    """
    d = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
    hour = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {hour}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}"


class TokenCheck(BearerCheck):
    """Validates ARM bearer tokens issued by ``keys`` for ``tenant_id`` (issuer ``issuer``).

    ``cloud``: whose ARM audiences are accepted and whose login URL the messages name (default the
    public cloud's).

    Example::

        >>> from mi_notebook.emulator.keys import SigningKeys
        >>> check = TokenCheck(SigningKeys(), tenant_id="t", issuer="https://sts.windows.net/t/")
        >>> check.check("Bearer not-a-jwt").message
        'The access token is invalid.'
        >>> TokenCheck(SigningKeys(), tenant_id="t", issuer="https://sts.chinacloudapi.cn/t/",
        ...            cloud="AzureChinaCloud").audiences[-1]
        'https://management.chinacloudapi.cn'
    """

    def __init__(self, keys: SigningKeys, *, tenant_id: str, issuer: str, clock: Callable[[], float] = time.time,
                 cloud: str = DEFAULT_CLOUD) -> None:
        super().__init__(keys, tenant_id=tenant_id, issuer=issuer, clock=clock)
        self.cloud = named_cloud(cloud)
        self.audiences = self.cloud.arm_audiences

    def check(self, authorization: str | None, *, now: float | None = None, tenant_level: bool = False) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is missing); ``tenant_level``:
        the request names no subscription, so the challenge names no tenant."""
        authority = self.cloud.arm_authority + ("" if tenant_level else self.tenant_id)

        def fail(code: str, message: str, description: str | None = None) -> AuthResult:
            desc = (description or message).replace('"', "'")
            header = f'Bearer authorization_uri="{authority}", error="invalid_token", error_description="{desc}"'
            return AuthResult(code=code, message=message, www_authenticate=header)

        if authorization is None or not authorization.strip():
            return fail("AuthenticationFailed", MISSING_HEADER,
                        "The authentication failed because of missing 'Authorization' header.")
        token = bearer(authorization)
        if token is None:
            return fail("AuthenticationFailedInvalidHeader", BAD_FORMAT)
        current = self.clock() if now is None else now
        try:
            claims = self.keys.verify(token, audience=list(self.audiences), now=current)
        except jwt.InvalidAudienceError:
            aud = unverified_claims(token).get("aud")
            aud_text = ",".join(aud) if isinstance(aud, list) else str(aud)
            allowed = ",".join(f"'{a}'" for a in self.audiences)
            return fail("InvalidAuthenticationTokenAudience",
                        f"The access token has been obtained for wrong audience or resource '{aud_text}'. "
                        f"It should exactly match with one of the allowed audiences {allowed}.")
        except jwt.ExpiredSignatureError:
            exp = unverified_claims(token).get("exp", 0)
            return fail("ExpiredAuthenticationToken",
                        f"The access token expiry UTC time '{arm_time(exp)}' is earlier than current "
                        f"UTC time '{arm_time(current)}'.")
        except jwt.ImmatureSignatureError:
            nbf = unverified_claims(token).get("nbf", 0)
            return fail("InvalidAuthenticationToken",
                        f"{INVALID} Its validity starts at UTC time '{arm_time(nbf)}', later than the "
                        f"current UTC time '{arm_time(current)}'.")
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return fail("InvalidAuthenticationToken", INVALID)
        if claims.get("iss") != self.issuer:
            return fail("InvalidAuthenticationTokenTenant",
                        WRONG_ISSUER.format(iss=claims.get("iss"), tenant=self.tenant_id, expected=self.issuer,
                                            authority=self.cloud.arm_authority))
        if not claims.get("oid"):
            return fail("InvalidAuthenticationToken", INVALID)
        return AuthResult(claims=claims)

