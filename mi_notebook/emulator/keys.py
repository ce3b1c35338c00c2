"""Signing keys of the emulated Entra tenant: an RSA key per run, RS256 JWTs, a JWKS, verification.

The key sits in a self-signed X.509 certificate (as Entra publishes its keys), so the JWT header's
``x5t`` is the certificate's SHA-1 thumbprint and ``kid`` equals it, and the JWKS carries ``x5c``.

Example::

    >>> keys = SigningKeys()
    >>> token = keys.issue({"aud": "https://management.azure.com/", "sub": "me", "exp": 4102444800})
    >>> keys.verify(token, audience="https://management.azure.com/")["sub"]
    'me'
    >>> keys.jwks()["keys"][0]["kid"] == keys.kid
    True
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["EMULATOR_CLAIM", "EMULATOR_MARK", "SigningKeys"]

#: the claim every token the emulator signs carries (its value is :data:`EMULATOR_MARK`), so that any
#: reader, ``mi-notebook decode`` or a JWT viewer, can tell it from an Azure token; Azure's never have it
EMULATOR_CLAIM = "mi_notebook_emulator"
EMULATOR_MARK = "issued by the mi-notebook emulator: not an Azure token"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKeys:
    """One RSA signing key (generated fresh: nothing secret is ever stored on disk) and its certificate.

    ``issuer`` is only used for the certificate's subject and the JWKS ``issuer`` field.

    Example::

        >>> k = SigningKeys(key_size=2048)
        >>> jwt.get_unverified_header(k.issue({"a": 1}))["alg"]
        'RS256'
    """

    def __init__(self, *, key_size: int = 2048, issuer: str | None = None) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self.public_key = self._key.public_key()
        now = _dt.datetime.now(_dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mi-notebook emulator token signing")])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=365))
            .sign(self._key, hashes.SHA256())
        )
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.x5t = _b64url(hashlib.sha1(der).digest())  # noqa: S324 - SHA-1 is what x5t means
        self.kid = self.x5t
        self._x5c = base64.b64encode(der).decode("ascii")
        self.issuer = issuer

    def issue(self, claims: dict[str, Any], *, headers: Mapping[str, str] | None = None) -> str:
        """Sign ``claims`` as an RS256 JWT with header ``typ``, ``alg``, ``x5t`` and ``kid`` (Entra's), or
        with ``headers`` instead (a Kubernetes service-account token has only ``alg`` and ``kid``). The
        emulator's mark (:data:`EMULATOR_CLAIM`) is added last, unless the claims already hold it.

        Example::

            >>> k = SigningKeys()
            >>> jwt.decode(k.issue({"aud": "api://x"}), options={"verify_signature": False})
            {'aud': 'api://x', 'mi_notebook_emulator': 'issued by the mi-notebook emulator: not an Azure token'}
            >>> sorted(jwt.get_unverified_header(k.issue({"a": 1}, headers={"alg": "RS256", "kid": k.kid})))
            ['alg', 'kid']
        """
        marked = claims if EMULATOR_CLAIM in claims else {**claims, EMULATOR_CLAIM: EMULATOR_MARK}
        chosen: dict[str, str | None] = {"typ": "JWT", "alg": "RS256", "x5t": self.x5t, "kid": self.kid}
        if headers is not None:
            chosen = {"typ": None, **headers}  # PyJWT drops a typ of None
        return jwt.encode(marked, self._key, algorithm="RS256", headers=chosen)

    def jwk(self) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        jwk: dict[str, Any] = {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.x5t,
                               "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e),
                               "x5c": [self._x5c], "alg": "RS256"}
        if self.issuer:
            jwk["issuer"] = self.issuer
        return jwk

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set (as Entra's ``discovery/keys`` document)."""
        return {"keys": [self.jwk()]}

    def public_pem(self) -> str:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def verify(
        self,
        token: str,
        *,
        audience: str | Iterable[str] | None = None,
        issuer: str | None = None,
        now: float | Callable[[], float] | None = None,
        leeway: float = 0.0,
    ) -> dict[str, Any]:
        """Check signature, ``kid``, and (when given) audience and issuer; check ``nbf``/``exp`` against
        ``now`` (a number, a clock function, or None for ``time.time()``). Returns the payload.

        Raises ``jwt.InvalidTokenError`` subclasses: ``InvalidSignatureError``, ``ExpiredSignatureError``,
        ``ImmatureSignatureError``, ``InvalidAudienceError``, ``InvalidIssuerError``, ``DecodeError``.
        """
        header = jwt.get_unverified_header(token)
        if header.get("kid") not in (None, self.kid):
            raise jwt.InvalidSignatureError(f"unknown signing key id {header.get('kid')!r}")
        options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                   "verify_aud": audience is not None, "verify_iss": issuer is not None}
        aud = [audience] if isinstance(audience, str) else (list(audience) if audience is not None else None)
        payload = jwt.decode(token, self.public_key, algorithms=["RS256"], audience=aud, issuer=issuer,
                             options=options)  # type: ignore[arg-type]
        current = now() if callable(now) else (time.time() if now is None else now)
        exp = payload.get("exp")
        if isinstance(exp, (int, float)) and current >= exp + leeway:
            raise jwt.ExpiredSignatureError("Signature has expired")
        nbf = payload.get("nbf")
        if isinstance(nbf, (int, float)) and current < nbf - leeway:
            raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
        return payload
