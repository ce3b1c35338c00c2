"""How the emulated Azure OpenAI judges a caller: the bearer token, then the data-plane role.

Two failures, both **401** (not 403), in two different shapes, as public captures show them:

- the token: missing, unreadable, badly signed, expired, from another tenant, or for another
  audience (an ARM token, say) gets ``{"statusCode": 401, "message": "Unauthorized. Access token is
  missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."}``
  (:data:`UNAUTHORIZED`): one message for every cause, so :class:`~mi_notebook.emulator._bearer.AuthResult`
  keeps the cause (``code``) for the request log;
- the role: a good token whose principal lacks a data action such as
  ``.../OpenAI/deployments/chat/completions/action`` gets ``{"error": {"code": "PermissionDenied",
  "message": "Principal does not have access to API/Operation."}}`` (:data:`PERMISSION_DENIED`).

An ``api-key`` header without a token gets the captured invalid-key 401 (:data:`INVALID_KEY`): the
emulator has no keys, its lesson is the identity.

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> keys = SigningKeys()
    >>> check = OpenAITokenCheck(keys, tenant_id="t", issuer="https://sts.windows.net/t/", clock=lambda: 100.0)
    >>> arm = keys.issue({"aud": "https://management.azure.com/", "iss": "https://sts.windows.net/t/", "oid": "o",
    ...                   "nbf": 0, "exp": 200})
    >>> result = check.check("Bearer " + arm)
    >>> result.code, result.message == UNAUTHORIZED["message"]
    ('wrong-audience', True)
    >>> ok = keys.issue({"aud": "https://cognitiveservices.azure.com/", "iss": "https://sts.windows.net/t/",
    ...                  "oid": "o", "nbf": 0, "exp": 200})
    >>> check.check("Bearer " + ok).claims["oid"]
    'o'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import jwt

from .._bearer import AuthResult, BearerCheck, bearer, unverified_claims
from ..keys import SigningKeys
from .deployments import COGNITIVE_SERVICES

__all__ = ["INVALID_KEY", "PERMISSION_DENIED", "UNAUTHORIZED", "OpenAITokenCheck", "unauthorized_body"]

#: the captured wrong-audience / missing / expired token body (its own shape: no "error" envelope)
UNAUTHORIZED: dict[str, Any] = {
    "statusCode": 401,
    "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
               f"({COGNITIVE_SERVICES}), or have expired.",
}
#: the captured missing-role body: also a 401
PERMISSION_DENIED: dict[str, Any] = {
    "error": {"code": "PermissionDenied", "message": "Principal does not have access to API/Operation."}}
#: the captured body for an API key the resource does not know
INVALID_KEY: dict[str, Any] = {
    "error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. "
              "Make sure to provide a valid key for an active subscription and use a correct regional API "
              "endpoint for your resource."}}


def unauthorized_body(audience: str = COGNITIVE_SERVICES) -> dict[str, Any]:
    """The token 401's body, naming ``audience`` (the captured text names Cognitive Services').

    Example::

        >>> unauthorized_body("https://cognitiveservices.azure.us")["message"].split("(")[1].split(")")[0]
        'https://cognitiveservices.azure.us'
    """
    return {"statusCode": 401, "message": UNAUTHORIZED["message"].replace(COGNITIVE_SERVICES, audience.rstrip("/"))}


class OpenAITokenCheck(BearerCheck):
    """Validates bearer tokens issued by ``keys`` for ``tenant_id`` against ``audiences``.

    ``check`` returns an :class:`~mi_notebook.emulator._bearer.AuthResult`: ``claims`` when good, else
    ``code`` (why, for the log: ``missing``, ``wrong-audience``, ``expired``, ``invalid``,
    ``wrong-issuer``) and ``message`` (always the captured text). Audiences match with or without one
    trailing slash.

    Example::

        >>> check = OpenAITokenCheck(SigningKeys(), tenant_id="t", issuer="https://sts.windows.net/t/")
        >>> check.check(None).code, check.check("Bearer not-a-jwt").code
        ('missing', 'invalid')
    """

    def __init__(self, keys: SigningKeys, *, tenant_id: str, issuer: str,
                 audiences: Iterable[str] = (COGNITIVE_SERVICES,), clock: Callable[[], float] = time.time) -> None:
        super().__init__(keys, tenant_id=tenant_id, issuer=issuer, clock=clock)
        self.audiences = tuple(audiences)
        accepted: list[str] = []
        for audience in self.audiences:
            base = audience.rstrip("/")
            accepted += [base, base + "/"]
        self._accepted = accepted
        self.body = unauthorized_body(self.audiences[0])

    def check(self, authorization: str | None, *, now: float | None = None) -> AuthResult:
        """Judge an ``Authorization`` header value (None when the header is missing)."""
        def fail(code: str) -> AuthResult:
            return AuthResult(code=code, message=str(self.body["message"]))

        token = bearer(authorization)
        if token is None:
            return fail("missing")
        current = self.clock() if now is None else now
        try:
            claims = self.keys.verify(token, audience=self._accepted, now=current)
        except jwt.InvalidAudienceError:
            return fail("wrong-audience")
        except jwt.ExpiredSignatureError:
            return fail("expired")
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return fail("invalid")
        if claims.get("iss") != self.issuer:
            return fail("wrong-issuer")
        if not claims.get("oid"):
            return fail("invalid")
        return AuthResult(claims=claims)

    @staticmethod
    def audience_of(authorization: str | None) -> str | None:
        """The ``aud`` a token claims, unchecked (for the log of a refused request), None if unreadable.

        Example::

            >>> OpenAITokenCheck.audience_of("Bearer x") is None
            True
        """
        token = bearer(authorization)
        aud = unverified_claims(token).get("aud") if token else None
        return ",".join(map(str, aud)) if isinstance(aud, list) else (str(aud) if aud is not None else None)
