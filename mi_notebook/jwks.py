"""Signing keys and signature verification: ``mi.decode``.

:func:`decode` is :func:`mi_notebook.claims.decode` plus, when asked, verification of the signature
with PyJWT against a JWKS: one given as a dict (or a single JWK), or fetched over HTTP from a JWKS
(or OpenID configuration) URL, the emulator's ``jwks_url``, or ``"entra"`` for Entra ID's keys of
the token's tenant (``https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys``).

Secure by default, loud when asked to be unsafe: ``jwks=`` alone means verify; ``verify=True``
without keys is an error; and arguments that only apply when verifying (``jwks``, ``audience``,
``issuer``, ``leeway``) are never dropped silently: not verifying while they were given warns.

Every fetch goes through :func:`_fetch_json`, one :func:`mi_notebook.http.exchange`: no redirects,
explicit time-outs, the environment's proxies and CA bundle for Entra ID, never a proxy for a
loopback host.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(arm=False) as emu:
    ...     raw = emu.keys.issue({"aud": "api://x", "iss": emu.issuer_url, "exp": 2000})
    ...     decode(raw, jwks=emu.jwks_url, now=1000).verification.startswith("RS256 signature verified")
    True
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .claims import Claims, check_validity, decode_unverified, requested_resource, token_text
from .errors import TokenVerificationError
from .http import USER_AGENT, Request, Transport, default_verify, describe_failure, exchange, timeout_pair
from .identity import is_guid

if TYPE_CHECKING:  # pragma: no cover
    from jwt.types import Options

__all__ = ["ASYMMETRIC_ALGORITHMS", "decode", "entra_jwks_url", "fetch_jwks"]

#: The asymmetric algorithms a signature may use; HS* (shared secrets) and "none" are never accepted.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)

Timeout = float | tuple[float, float]


def entra_jwks_url(tenant_id: str) -> str:
    """Entra ID's signing keys for a tenant (what real managed-identity tokens are signed with).

    Example::

        >>> entra_jwks_url("72f988bf-86f1-41af-91ab-2d7cd011db47")
        'https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys'
    """
    if not isinstance(tenant_id, str) or not is_guid(tenant_id):
        raise ValueError(f"tenant_id must be a GUID, not {tenant_id!r}")
    return f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"


def _fetch_json(url: str, timeout: Timeout, what: str, transport: Transport | None = None) -> Any:
    """GET ``url`` as a JSON object; any failure -> :class:`~mi_notebook.errors.TokenVerificationError`
    whose ``endpoint`` is ``url`` (the keys could not be had; nothing was verified)."""
    request = Request("GET", url, headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                      timeout=timeout_pair(timeout), proxies=True, verify=default_verify())
    answer = exchange(request, transport=transport)
    if not answer.answered or answer.kind in ("truncated", "timeout"):
        name = f" ({type(answer.exception).__name__})" if answer.exception is not None else ""
        raise TokenVerificationError(f"Could not fetch the {what} from {url}: {describe_failure(answer)}{name}.",
                                     endpoint=url, hint=_UNREACHABLE_KEYS) from answer.exception
    if answer.status != 200:
        moved = " (a redirect: not followed)" if answer.kind == "redirect" else ""
        raise TokenVerificationError(f"Could not fetch the {what} from {url}: HTTP {answer.status}{moved}.",
                                     status=answer.status, endpoint=url, hint=_NOT_KEYS)
    if answer.kind != "json":
        said = {"html": "an HTML page", "empty": "an empty body"}.get(answer.kind, "a body that is not a JSON object")
        raise TokenVerificationError(f"The {what} at {url} is not JSON: the server sent {said}.", endpoint=url,
                                     hint=_NOT_KEYS)
    return answer.document


_UNREACHABLE_KEYS = ("Check this machine's network and proxy settings; without the issuer's keys nothing can be "
                     "verified (decoding without verifying still shows the claims).")
_NOT_KEYS = "Check the URL: it must serve a JWKS (JSON with 'keys') or an OpenID configuration (with 'jwks_uri')."


def fetch_jwks(url: str, timeout: Timeout = (3.05, 10.0), *, transport: Transport | None = None) -> tuple[Any, str]:
    """``(document, url)``: the JWKS at ``url``; an OpenID configuration's ``jwks_uri`` is followed once.

    Failures (unreachable, not 200, not JSON) -> :class:`~mi_notebook.errors.TokenVerificationError`.
    ``transport``: the real wire by default (a :class:`~mi_notebook.http.MockTransport` in tests).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(arm=False) as emu:
        ...     document, url = fetch_jwks(emu.jwks_url, timeout=5)
        >>> [key["kty"] for key in document["keys"]], url.endswith("/jwks")
        (['RSA'], True)
    """
    document = _fetch_json(url, timeout, "JWKS", transport)
    if isinstance(document, dict) and "keys" not in document and isinstance(document.get("jwks_uri"), str):
        url = document["jwks_uri"]  # an OpenID configuration: follow it once
        document = _fetch_json(url, timeout, "JWKS", transport)
    return document, url


def _load_keys(jwks: Any, payload: Mapping[str, Any], timeout: Timeout) -> tuple[list[Mapping[str, Any]], str]:
    """``(keys, where they came from)`` for a JWKS dict, a single JWK, a URL or ``"entra"``."""
    source = "the given JWKS"
    if isinstance(jwks, str):
        url = jwks
        if jwks.lower() == "entra":
            tid = payload.get("tid")
            if not isinstance(tid, str) or not is_guid(tid):
                raise TokenVerificationError("jwks='entra' needs the token's tid claim (a GUID); it has none.")
            url = entra_jwks_url(tid)
        jwks, source = fetch_jwks(url, timeout)
    if isinstance(jwks, Mapping) and "kty" in jwks:
        jwks = {"keys": [dict(jwks)]}
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise TokenVerificationError(f"{source} is not a JWKS (a JSON object with a 'keys' list).")
    return [k for k in jwks["keys"] if isinstance(k, Mapping)], source


def _verify(raw: str, claims: Claims, jwks: Any, *, audience: str | None, issuer: str | None, leeway: float,
            now: float, timeout: Timeout) -> str:
    """Verify ``raw`` (decoded as ``claims``) against ``jwks``; how, as one sentence. Failure -> raises."""
    import jwt

    alg = claims.header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:  # before any fetch: such a token never verifies
        raise TokenVerificationError(
            f"The token's alg {alg!r} is not an asymmetric signature algorithm; access tokens are signed "
            f"with one of {', '.join(ASYMMETRIC_ALGORITHMS)}."
        )
    keys, source = _load_keys(jwks, claims.payload, timeout)
    kid, x5t = claims.header.get("kid"), claims.header.get("x5t")
    if kid is not None:
        candidates, wanted = [k for k in keys if k.get("kid") == kid], f"kid {kid!r}"
    elif x5t is not None:
        candidates, wanted = [k for k in keys if x5t in (k.get("x5t"), k.get("kid"))], f"x5t {x5t!r}"
    else:
        candidates, wanted = list(keys), "any key"
    if not candidates:
        known = ", ".join(repr(k.get("kid")) for k in keys) or "none"
        raise TokenVerificationError(
            f"No key with {wanted} in {source} (its keys: {known}). Keys rotate: fetch the JWKS again, or "
            "the token comes from another issuer (emulator tokens verify only against the emulator's JWKS)."
        )
    audience = requested_resource(audience) if audience is not None else None
    options: Options = {"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
               "verify_aud": audience is not None, "verify_iss": issuer is not None}  # times: below, at `now`
    for key_data in candidates:
        try:
            key = jwt.PyJWK(dict(key_data), algorithm=alg)
        except jwt.PyJWTError:
            continue  # a key of another type or algorithm: try the next
        try:
            jwt.decode(raw, key=key, algorithms=[alg], options=options, audience=audience, issuer=issuer)
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidAudienceError:
            raise TokenVerificationError(f"The signature is valid, but the audience is wrong: aud is "
                                         f"{claims.audience!r}, expected {audience!r}.") from None
        except jwt.InvalidIssuerError:
            raise TokenVerificationError(f"The signature is valid, but the issuer is wrong: iss is "
                                         f"{claims.get('iss')!r}, expected {issuer!r}.") from None
        except jwt.PyJWTError as exc:
            raise TokenVerificationError(f"The token did not verify: {exc}.") from None
        break
    else:
        raise TokenVerificationError(f"The {alg} signature does not verify with {wanted} from {source}.")
    validity = check_validity(claims.payload, now, soon=0.0, leeway=leeway)
    if validity.status == "problem":
        raise TokenVerificationError(f"The signature is valid, but the token is not valid at the time of "
                                     f"checking: {validity.explanation}.")
    used = key_data.get("kid") or key_data.get("x5t") or "(no kid)"
    checked = f"audience {audience!r}" if audience is not None else "audience not checked (none given)"
    if issuer is not None:
        checked += f", issuer {issuer!r}"
    return f"{alg} signature verified with key {used!r} from {source}; {checked}; valid at the time of checking"


def _wants_verification(verify: bool | None, jwks: Any, audience: Any, issuer: Any, leeway: float) -> bool:
    """``verify`` if given, else whether keys were given; a warning when that ignores arguments."""
    if isinstance(jwks, str) and jwks.lower() != "entra" and not re.match(r"^https?://", jwks, re.IGNORECASE):
        raise ValueError(f"jwks must be a dict, a JWKS URL or 'entra', not the text {jwks!r}")
    if verify or (verify is None and jwks is not None):
        if jwks is None:
            raise ValueError("verify=True needs jwks=: a JWKS dict, a JWKS URL, or 'entra' for Entra ID's keys")
        return True
    given = {"jwks": jwks is not None, "audience": audience is not None, "issuer": issuer is not None,
             "leeway": bool(leeway)}
    ignored = ", ".join(f"{name}=" for name, present in given.items() if present)
    if ignored:
        why = "verify=False was given" if verify is False else "no jwks= was given"
        fix = ("drop verify=False to verify against those keys (jwks= alone means verify)" if jwks is not None
               else "pass jwks= to verify; to compare aud without verifying, use .checks(resource=...)")
        warnings.warn(f"decode() ignored {ignored}: the signature is NOT verified ({why}) and those arguments "
                      f"apply only when verifying; {fix}", UserWarning, stacklevel=3)
    return False


def decode(
    token: Any,
    *,
    verify: bool | None = None,
    jwks: Any = None,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = 0.0,
    now: float | None = None,
    timeout: Timeout = (3.05, 10.0),
) -> Claims:
    """Decode an access token (a string, or an ``AccessToken``) into :class:`~mi_notebook.claims.Claims`,
    and verify its signature when given keys. This is ``mi.decode``.

    Without ``jwks`` the signature is not verified (and the claims say so). **``jwks=`` alone means
    verify**: the signature is checked against that key set, a dict (``{"keys": [...]}`` or a single
    JWK), a JWKS or OpenID-configuration URL (fetched, ``timeout``), or ``"entra"`` for Entra ID's
    keys of the token's tenant. ``audience`` (default: the ``AccessToken``'s resource) and ``issuer``
    are checked too, and ``exp`` / ``nbf`` against ``now`` with ``leeway`` seconds. Failure ->
    :class:`~mi_notebook.errors.TokenVerificationError`. ``verify=True`` without ``jwks``, or a ``jwks``
    text that is neither a URL nor ``"entra"`` -> ``ValueError``.

    ``verify=False`` with ``jwks`` (or ``audience`` / ``issuer`` / ``leeway`` without verifying)
    decodes without verifying, fetches nothing, and warns (``UserWarning``) naming what it ignored.

    Anything that is not a decodable JWT -> :class:`~mi_notebook.errors.TokenDecodeError` saying what
    is wrong (never containing the token).

    Example::

        >>> import warnings
        >>> from mi_notebook.emulator.keys import SigningKeys
        >>> keys = SigningKeys()
        >>> raw = keys.issue({"aud": "api://x", "exp": 2000})
        >>> decode(raw, jwks=keys.jwks(), now=1000).verified
        True
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     decode(raw, verify=False, jwks=keys.jwks()).verified
        False
        >>> str(caught[0].message).split(":")[0]
        'decode() ignored jwks='
    """
    claims = decode_unverified(token, now=now)
    if not _wants_verification(verify, jwks, audience, issuer, leeway):
        return claims
    verification = _verify(
        token_text(token), claims, jwks,
        audience=audience if audience is not None else claims.resource, issuer=issuer, leeway=leeway,
        now=time.time() if now is None else float(now), timeout=timeout,
    )
    return dataclasses.replace(claims, verified=True, verification=verification)
