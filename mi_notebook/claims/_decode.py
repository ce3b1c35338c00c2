"""Decoding without verifying: :func:`decode` turns a token into a :class:`Claims` view.

Example::

    >>> from mi_notebook.claims import decode_unverified
    >>> decode_unverified("eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.").payload["aud"]
    'x'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import html as _h
from ..errors import TokenDecodeError
from ..timefmt import as_epoch, format_relative, format_utc
from . import _checks
from ._glossary import CLAIM_MEANINGS, TIME_CLAIMS, explain_claim, explain_header, mirid_kind

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CLAIMS_COLUMNS", "Claims", "decode", "decode_unverified", "token_text"]

CLAIMS_COLUMNS = ("claim", "value", "meaning")

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_SEGMENT_NAMES = ("header", "payload", "signature")


@dataclass(frozen=True, repr=False)
class Claims:
    """A decoded access token: header, payload, and how far to trust them. Never the raw token.

    Build it with :func:`decode`. Claims read like a mapping (``claims["aud"]``, ``"xms_az_rid" in
    claims``); ``to_frame()`` is the explained table, ``checks()`` the audience / identity / expiry
    checks, and notebooks show a card (``_repr_html_``).

    ``resource``, ``identity`` and ``expires_on`` are what was asked for and what IMDS answered
    (filled in when decoding an ``AccessToken``); ``now`` pins "now" for the relative times in the
    views (``None``: the time of rendering).

    Example::

        >>> import jwt
        >>> c = decode_unverified(jwt.encode({"oid": "x", "custom": 1}, "k" * 32))
        >>> c.unknown_claims, c.verified
        (['custom'], False)
    """

    header: dict[str, Any]
    payload: dict[str, Any]
    verified: bool = False
    verification: str = "signature not verified"
    fingerprint: str | None = None
    resource: str | None = None
    identity: Any = None
    expires_on: int | None = None
    now: float | None = field(default=None, compare=False)

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    # mapping-like access to the payload
    def __getitem__(self, name: str) -> Any:
        return self.payload[name]

    def __contains__(self, name: object) -> bool:
        return name in self.payload

    def __iter__(self) -> Iterator[str]:
        return iter(self.payload)

    def __len__(self) -> int:
        return len(self.payload)

    def get(self, name: str, default: Any = None) -> Any:
        """The claim ``name``, or ``default`` when the token has none.

        >>> Claims({}, {"tid": "t"}).get("tid"), Claims({}, {}).get("tid", "-")
        ('t', '-')
        """
        return self.payload.get(name, default)

    # well-known claims, by role
    @property
    def version(self) -> str | None:
        """``"1.0"`` or ``"2.0"`` (the ``ver`` claim)."""
        ver = self.payload.get("ver")
        return None if ver is None else str(ver)

    @property
    def audience(self) -> str | list[str] | None:
        """The ``aud`` claim."""
        return self.payload.get("aud")

    @property
    def tenant_id(self) -> str | None:
        """The ``tid`` claim."""
        return _str_or_none(self.payload.get("tid"))

    @property
    def object_id(self) -> str | None:
        """The identity's object (principal) id: ``oid``."""
        return _str_or_none(self.payload.get("oid"))

    @property
    def client_id(self) -> str | None:
        """The identity's client id: ``appid`` (v1) or ``azp`` (v2)."""
        return _str_or_none(self.payload.get("appid", self.payload.get("azp")))

    @property
    def issued_at(self) -> float | None:
        """``iat`` as epoch seconds."""
        return as_epoch(self.payload.get("iat"))

    @property
    def not_before(self) -> float | None:
        """``nbf`` as epoch seconds."""
        return as_epoch(self.payload.get("nbf"))

    @property
    def expires_at(self) -> float | None:
        """``exp`` as epoch seconds."""
        return as_epoch(self.payload.get("exp"))

    @property
    def mi_resource_id(self) -> str | None:
        """``xms_mirid``: the managed identity's resource id (the VM's for system-assigned)."""
        return _str_or_none(self.payload.get("xms_mirid"))

    @property
    def identity_kind(self) -> str | None:
        """``"system"`` or ``"user"`` as the token shows it (``xms_mirid`` / ``xms_az_rid``), else None."""
        mirid = self.mi_resource_id
        kind = mirid_kind(mirid)
        return "user" if mirid and (kind == "user" or "xms_az_rid" in self.payload) else kind

    @property
    def identity_name(self) -> str | None:
        """The last segment of ``xms_mirid``: the identity's name, or the VM's for system-assigned."""
        mirid = self.mi_resource_id
        return mirid.rstrip("/").rsplit("/", 1)[-1] if mirid else None

    @property
    def unknown_claims(self) -> list[str]:
        """Payload claims the glossary has no explanation for, in token order."""
        return [name for name in self.payload if name not in CLAIM_MEANINGS]

    def describe_identity(self) -> str:
        """One phrase naming the identity, e.g. ``user-assigned identity 'id-app' (client id …)``.

        >>> Claims({}, {"oid": "o"}).describe_identity()
        'identity of unknown kind (no xms_mirid claim), object id o'
        """
        ids = [f"client id {self.client_id}"] if self.client_id else []
        if self.object_id:
            ids.append(f"object id {self.object_id}")
        kind = self.identity_kind
        if kind == "user":
            head = f"user-assigned identity '{self.identity_name}'"
        elif kind == "system":
            head = f"system-assigned identity of '{self.identity_name}'"
        elif self.mi_resource_id:
            head = f"identity '{self.identity_name}' (xms_mirid is neither a VM nor a user-assigned identity)"
        else:
            head = "identity of unknown kind (no xms_mirid claim)"
        return f"{head}, {', '.join(ids)}" if ids else head

    # the explained table
    def rows(self, now: float | None = None, *, relative: bool = True) -> list[tuple[str, str, str]]:
        """``(claim, value, meaning)`` for every payload claim, in token order.

        Times read ``<epoch> = <UTC>`` plus, when ``relative`` is true, ``(in 23 h 59 min)``
        against ``now`` (default: ``self.now``, else the current time).

        >>> Claims({}, {"exp": 3600}).rows(now=0)[0][1]
        '3600 = 1970-01-01 01:00:00 UTC (in 1 h)'
        """
        when = self._now(now) if relative else None
        return [(name, _format_value(name, value, when), explain_claim(name, value))
                for name, value in self.payload.items()]

    def header_rows(self) -> list[tuple[str, str, str]]:
        """``(name, value, meaning)`` for every header parameter.

        >>> Claims({"alg": "RS256"}, {}).header_rows()
        [('alg', 'RS256', 'signature algorithm (Entra ID signs with RS256)')]
        """
        return [(name, _format_value(name, value, None), explain_header(name)) for name, value in self.header.items()]

    def to_frame(self, now: float | None = None) -> pd.DataFrame:
        """The claims table (pandas, imported only now): columns ``claim``, ``value``, ``meaning``.

        >>> Claims({}, {"exp": 60, "odd": True}).to_frame(now=0)["value"].tolist()
        ['60 = 1970-01-01 00:01:00 UTC (in 1 min)', 'true']
        """
        import pandas as pd

        return pd.DataFrame(self.rows(now), columns=list(CLAIMS_COLUMNS))

    # checks
    def checks(self, *, resource: str | None = None, identity: Any = None, expires_on: int | str | None = None,
               now: float | None = None, soon: float = _checks.EXPIRING_SOON) -> list[_checks.Check]:
        """Signature, audience, identity, principal (a managed identity, or a person's own token), ``exp``
        vs ``expires_on``, and validity at ``now``.

        Arguments default to the context recorded by :func:`decode` (an ``AccessToken``'s resource,
        identity and ``expires_on``); a check without anything to compare with is ``skipped``.
        ``identity`` is an ``Identity`` (anything with ``kind`` and ``selector``) or text such as
        ``"system"`` / ``"client_id=<guid>"``.

        >>> [c.name for c in Claims({}, {"aud": "api://x"}).checks(now=0)]
        ['signature', 'audience', 'identity', 'principal', 'expires_on', 'validity']
        """
        return [
            _checks.check_signature(self.verified, self.verification),
            _checks.check_audience(self.audience, self.resource if resource is None else resource),
            _checks.check_identity(self, self.identity if identity is None else identity),
            _checks.check_principal(self.payload),
            _checks.check_expires_on(self.payload.get("exp"), self.expires_on if expires_on is None else expires_on),
            _checks.check_validity(self.payload, self._now(now), soon),
        ]

    def checks_frame(self, **kwargs: Any) -> pd.DataFrame:
        """:meth:`checks` as a DataFrame (``name``, ``status``, ``explanation``); pandas is imported only now.

        >>> Claims({}, {"aud": "api://x"}).checks_frame(resource="api://x", now=0)["status"].tolist()[1]
        'ok'
        """
        return _checks.checks_frame(self.checks(**kwargs))

    def _now(self, now: float | None) -> float:
        if now is not None:
            return float(now)
        return float(self.now) if self.now is not None else time.time()

    def _pinned(self, now: float | None) -> bool:
        """Whether the caller fixed "now" (then every time may be shown relative to it)."""
        return now is not None or self.now is not None

    # views
    def summary(self) -> str:
        """One stable line (no relative times): version, audience, identity, expiry, verification.

        >>> Claims({}, {"ver": "1.0", "aud": "api://x", "exp": 0}).summary()
        'v1.0, aud=api://x, identity of unknown kind (no xms_mirid claim), exp=1970-01-01 00:00:00 UTC, signature not verified'
        """
        exp = self.expires_at
        parts = [
            f"v{self.version}" if self.version else "no ver",
            f"aud={_short(self.audience)}",
            self.describe_identity(),
            f"exp={format_utc(exp)}" if exp is not None else "no exp",
            "verified" if self.verified else "signature not verified",
        ]
        if self.fingerprint:
            parts.append(self.fingerprint)
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"Claims({self.summary()})"

    def to_text(self, now: float | None = None) -> str:
        """The card as plain text (for terminals and logs): overview, checks, claims.

        The expiry line and the validity check are relative to now; the claims' times are shown
        relative too only when ``now`` is given (here or to :func:`decode`), so that output
        stored in a notebook changes in as few places as possible between runs.

        >>> print(Claims({}, {"exp": 7200}).to_text(now=0).splitlines()[2])
          expires      1970-01-01 02:00:00 UTC (in 2 h)
        """
        when = self._now(now)
        lines = [f"Access token claims ({'signature verified' if self.verified else 'signature NOT verified'})"]
        lines += [f"  {key:<12} {value}" for key, value in self._overview(when)]
        lines.append("Checks:")
        lines += [f"  {check}" for check in self.checks(now=when)]
        lines.append(f"Claims ({len(self.payload)}):")
        width = max((len(name) for name in self.payload), default=0)
        lines += [
            f"  {name:<{width}}  {value}" + ("  (unknown claim)" if name not in CLAIM_MEANINGS else "")
            for name, value, _ in self.rows(when, relative=self._pinned(now))
        ]
        if self.fingerprint:
            lines.append(f"Token {self.fingerprint} (the token itself is never shown)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def to_html(self, now: float | None = None) -> str:
        """The notebook card: overview, checks (with status badges), all claims in a collapsed table.

        Relative times as in :meth:`to_text`. Static HTML with inline styles: no ids, no scripts.

        >>> Claims({}, {"aud": "api://x"}).to_html(now=0).startswith("<div")
        True
        """
        when = self._now(now)
        checks = self.checks(now=when)
        sections = [
            _h.kv_table(self._overview(when)),
            _h.table(["check", "status", "explanation"], [(c.name, _h.badge(c.status), c.explanation) for c in checks],
                     raw_columns=(1,)),
            _h.details(f"All {len(self.payload)} claims", _h.table(["claim", "value", "meaning"],
                                                                        self.rows(when, relative=self._pinned(now)))),
            _h.details(f"Header ({len(self.header)})", _h.table(["parameter", "value", "meaning"], self.header_rows())),
        ]
        status = _checks.worst(checks)
        badges = [
            _h.badge("ok", "signature verified") if self.verified else _h.badge("warning", "signature not verified"),
            _h.badge(status, f"checks: {status}"),
        ]
        footer = f"token {self.fingerprint}; the token itself is never shown" if self.fingerprint else None
        return _h.card("Access token claims", sections, badges=badges, footer=footer)

    def _repr_html_(self) -> str:
        return self.to_html()

    def _overview(self, now: float) -> list[tuple[str, str]]:
        rows = [("identity", self.describe_identity())]
        if self.audience is not None:
            rows.append(("audience", _format_value("aud", self.audience, None)))
        for label, claim in (("tenant", "tid"), ("issuer", "iss"), ("version", "ver")):
            if claim in self.payload:
                rows.append((label, _format_value(claim, self.payload[claim], None)))
        for label, epoch in (("issued", self.issued_at), ("valid from", self.not_before)):
            if epoch is not None:
                rows.append((label, format_utc(epoch)))
        exp = self.expires_at
        if exp is not None:
            rows.append(("expires" if exp > now else "expired", f"{format_utc(exp)} ({format_relative(exp, now)})"))
        return rows


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _short(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def _format_value(name: str, value: Any, now: float | None) -> str:
    number = int(value) if isinstance(value, str) and value.isdigit() else value  # live xms_tcdt is a string
    epoch = as_epoch(number) if name in TIME_CLAIMS else None
    if epoch is not None:
        return f"{value} = {format_utc(epoch)}" + ("" if now is None else f" ({format_relative(epoch, now)})")
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ", ".join(value)
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


# --- decoding ---------------------------------------------------------------------------------------
def _raw_token(token: Any) -> tuple[str, dict[str, Any]]:
    """The token string and the request context, with clear errors for everything that is not a token."""
    context: dict[str, Any] = {}
    if token is None:
        raise TokenDecodeError("No token to decode: got None.")
    reveal = getattr(token, "reveal", None)
    if callable(reveal) and not isinstance(token, (str, bytes)):
        context = {name: getattr(token, name, None) for name in ("resource", "identity", "expires_on")}
        token = reveal()
    if not isinstance(token, str):
        got = f"got {type(token).__name__}"
        raise TokenDecodeError(
            f"Expected the token as str, {got}; decode it first (value.decode('ascii'))."
            if isinstance(token, (bytes, bytearray, memoryview)) else f"Expected a token string or an AccessToken, {got}.",
            hint="Pass the access token string, or the AccessToken object mi-notebook returned.",
        )
    raw = token.strip()
    if raw[:7].lower() == "bearer ":  # pasted from an Authorization header
        raw = raw[7:].strip()
    if not raw:
        raise TokenDecodeError("The token is empty.")
    return raw, context


def _segment(part: str, index: int, total: int) -> bytes:
    name = _SEGMENT_NAMES[index]
    where = f"the {name} (part {index + 1} of {total})"
    if not part and name != "signature":
        raise TokenDecodeError(f"The token is not a JWT: {where} is empty.")
    if not _B64URL.fullmatch(part):
        bad = next((i for i, ch in enumerate(part) if not (ch.isascii() and (ch.isalnum() or ch in "-_="))), None)
        detail = f"a character outside the base64url alphabet at position {bad}" if bad is not None else "misplaced '=' padding"
        raise TokenDecodeError(f"The token is not a JWT: {where} is not base64url ({detail}).")
    stripped = part.rstrip("=")
    if len(stripped) % 4 == 1 or (len(part) != len(stripped) and len(part) % 4):
        raise TokenDecodeError(f"The token is not a JWT: {where} is not base64url (impossible length {len(stripped)}).")
    try:
        data = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise TokenDecodeError(f"The token is not a JWT: {where} is not base64url.") from None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != stripped:
        raise TokenDecodeError(f"The token is not a JWT: {where} is not canonical base64url (stray bits at its end).")
    return data


def _json_object(data: bytes, index: int) -> dict[str, Any]:
    where = f"the {_SEGMENT_NAMES[index]} (part {index + 1} of 3)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenDecodeError(f"The token is not a JWT: {where} decodes to bytes that are not UTF-8 text.") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenDecodeError(f"The token is not a JWT: {where} is not JSON ({exc.msg} at character {exc.pos}).") from None
    except RecursionError:
        raise TokenDecodeError(f"The token is not a JWT: {where} is JSON nested too deeply.") from None
    if not isinstance(value, dict):
        raise TokenDecodeError(f"The token is not a JWT: {where} is JSON but not an object (it is a {type(value).__name__}).")
    return value


def _decode_unverified(raw: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import jwt

    parts = raw.split(".")
    if len(parts) == 5:
        raise TokenDecodeError(
            "This is an encrypted token (JWE, five dot-separated parts): its claims can only be read with "
            "the recipient's private key. Managed-identity access tokens are signed JWTs with three parts.",
            hint="Decode the access token itself, not an encrypted (JWE) token.",
        )
    if len(parts) != 3:
        found = "no '.'" if len(parts) == 1 else f"{len(parts)} dot-separated parts"
        raise TokenDecodeError(f"The token is not a JWT: it has {found}; a JWT has 3 (header.payload.signature).")
    data = [_segment(part, i, 3) for i, part in enumerate(parts)]
    _json_object(data[0], 0)
    _json_object(data[1], 1)
    try:
        decoded = jwt.api_jwt.decode_complete(raw, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenDecodeError(f"The token is not a usable JWT: {exc}.") from None
    return decoded["header"], decoded["payload"]


def _fingerprint(raw: str) -> str:
    return "sha256:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]


def token_text(token: Any) -> str:
    """The token string of ``token`` (a string, maybe pasted with ``Bearer``, or an ``AccessToken``).

    For code that must hand the token itself to a library (:mod:`mi_notebook.jwks` verifies it with
    PyJWT); never print it.

    Example::

        >>> token_text("  Bearer a.b.c\\n")
        'a.b.c'
    """
    return _raw_token(token)[0]


def decode_unverified(token: Any, *, now: float | None = None) -> Claims:
    """Decode an access token (a string, or an ``AccessToken``) into :class:`Claims`, without verifying it.

    ``now`` pins "now" for the relative times of the views. Anything that is not a decodable JWT ->
    :class:`~mi_notebook.errors.TokenDecodeError` saying what is wrong (never containing the token).
    To verify the signature too, use ``mi.decode(token, jwks=...)`` (:func:`mi_notebook.jwks.decode`).

    Example::

        >>> import jwt
        >>> decode_unverified(jwt.encode({"aud": "api://x"}, "k" * 32)).audience
        'api://x'
        >>> decode_unverified("not-a-token")
        Traceback (most recent call last):
        ...
        mi_notebook.errors.TokenDecodeError: The token is not a JWT: it has no '.'; a JWT has 3 (header.payload.signature).
        What to do: Pass the access token string exactly as issued (three base64url parts joined by dots).
    """
    raw, context = _raw_token(token)
    header, payload = _decode_unverified(raw)
    expires_on = context.get("expires_on")
    return Claims(header, payload, fingerprint=_fingerprint(raw), resource=context.get("resource"),
                  identity=context.get("identity"), now=now,
                  expires_on=int(expires_on) if expires_on is not None else None)


def decode(token: Any, *, now: float | None = None) -> Claims:
    """Deprecated: :func:`decode_unverified` (this name never verified, while ``mi.decode`` may; one name,
    one contract). Kept for one release; warns with a ``DeprecationWarning``.

    Example::

        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     decode("eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.").audience
        'x'
    """
    import warnings

    warnings.warn("mi_notebook.claims.decode is deprecated: it never verifies; call decode_unverified() (or "
                  "mi.decode(token, jwks=...) to verify the signature)", DeprecationWarning, stacklevel=2)
    return decode_unverified(token, now=now)
