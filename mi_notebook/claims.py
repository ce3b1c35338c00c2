"""Decode an access token with pyjwt, explain every claim, and check it against what was asked for.

By default the signature is **not** verified (a notebook usually wants to *look* at a token it
just got from IMDS) and every view says so. Verification against a JWKS is one call away:
``decode(token, verify=True, jwks=...)`` with a JWKS dict, a JWKS (or OpenID configuration) URL,
or ``"entra"`` for Entra ID's keys of the token's tenant.

A :class:`Claims` never holds the raw token: only the decoded header and payload, whether (and
how) the signature was verified, the token's fingerprint and the context of the request
(resource, identity, ``expires_on``) when it was decoded from an ``AccessToken``.

Example::

    >>> import jwt
    >>> raw = jwt.encode({"aud": "https://management.azure.com/", "exp": 1767225600, "ver": "1.0"}, "k" * 32)
    >>> claims = decode(raw)
    >>> claims["aud"], claims.verified
    ('https://management.azure.com/', False)
    >>> [c.status for c in claims.checks(resource="arm", now=1767222000)][:3]
    ['skipped', 'ok', 'skipped']
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import html as _h
from .errors import TokenDecodeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "CHECK_STATUSES",
    "CLAIM_MEANINGS",
    "HEADER_MEANINGS",
    "Check",
    "Claims",
    "TokenVerificationError",
    "decode",
    "entra_jwks_url",
    "format_duration",
    "format_relative",
    "format_utc",
]

CHECK_STATUSES = ("ok", "warning", "problem", "skipped")

#: Seconds before expiry from which a token counts as "expiring soon" (caches refresh 5 min ahead).
EXPIRING_SOON = 300.0

#: The asymmetric algorithms a signature may use; HS* (shared secrets) and "none" are never accepted.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)

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
}

#: Claims holding epoch seconds, shown as UTC and relative to now.
TIME_CLAIMS = frozenset({"iat", "nbf", "exp", "auth_time", "xms_tcdt", "pwd_exp"})

_UNKNOWN = "unknown claim: not in mi-notebook's list of Entra ID access-token claims"
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEGMENT_NAMES = ("header", "payload", "signature")
_VM_MARKERS = ("/providers/microsoft.compute/virtualmachines/", "/providers/microsoft.compute/virtualmachinescalesets/")
_UAMI_MARKER = "/providers/microsoft.managedidentity/userassignedidentities/"


class TokenVerificationError(TokenDecodeError):
    """The token decoded, but its signature, audience, issuer or lifetime did not verify against the
    JWKS, or the JWKS could not be obtained. A :class:`TokenDecodeError` (so also a ``ValueError``).

    >>> import jwt
    >>> decode(jwt.encode({"aud": "api://x"}, "k" * 32), jwks={"keys": []})
    Traceback (most recent call last):
    ...
    mi_notebook.claims.TokenVerificationError: The token's alg 'HS256' is not an asymmetric signature algorithm; access tokens are signed with one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA.
    What to do: ...
    """

    default_hint = (
        "Check that the JWKS is the issuer's (the emulator's for emulator tokens, Entra ID's "
        "https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys for real ones) and that the "
        "audience is the resource the token was requested for."
    )


# --- time formatting (shared with frames.py and charts.py) ------------------------------------------
def format_utc(epoch: float) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS UTC``.

    >>> format_utc(1767225600)
    '2026-01-01 00:00:00 UTC'
    """
    moment = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """A duration for people: ``3 d 2 h``, ``23 h 59 min``, ``4 min 10 s``, ``42 s`` (truncated, not rounded).

    Hours up to two days, so a fresh managed-identity token reads ``24 h 5 min``, not ``1 d``.

    >>> format_duration(86399), format_duration(120), format_duration(3.7), format_duration(200000)
    ('23 h 59 min', '2 min', '3 s', '2 d 7 h')
    """
    total = int(abs(seconds))
    days, rest = divmod(total, 86400) if total >= 2 * 86400 else (0, total)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        big, small = (days, "d"), (hours, "h")
    elif hours:
        big, small = (hours, "h"), (minutes, "min")
    elif minutes:
        big, small = (minutes, "min"), (secs, "s")
    else:
        return f"{secs} s"
    return f"{big[0]} {big[1]}" + (f" {small[0]} {small[1]}" if small[0] else "")


def format_relative(epoch: float, now: float) -> str:
    """``in 23 h 59 min`` / ``5 min ago`` / ``now`` (within a second).

    >>> format_relative(1000, 880), format_relative(880, 1000), format_relative(1000, 1000.4)
    ('in 2 min', '2 min ago', 'now')
    """
    delta = epoch - now
    if abs(delta) < 1:
        return "now"
    return f"in {format_duration(delta)}" if delta > 0 else f"{format_duration(delta)} ago"


def _as_epoch(value: Any) -> float | None:
    """A claim value as epoch seconds, or None if it is not a usable time (bools, NaN, absurd years)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not -62_135_596_800 <= value <= 253_402_300_799:  # years 1..9999: datetime's range
        return None
    return float(value)


def _describe_time(epoch: float, now: float | None) -> str:
    text = format_utc(epoch)
    return text if now is None else f"{text} ({format_relative(epoch, now)})"


# --- checks ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """The result of one check: ``name``, ``status`` (ok / warning / problem / skipped), ``explanation``.

    >>> Check("audience", "ok", "aud is the requested resource").status
    'ok'
    """

    name: str
    status: str
    explanation: str

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"status must be one of {CHECK_STATUSES}, not {self.status!r}")

    def __str__(self) -> str:
        return f"[{self.status}] {self.name}: {self.explanation}"


# --- the decoded token ----------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Claims:
    """A decoded access token: header, payload, and how far to trust them. Never the raw token.

    Build it with :func:`decode`. Claims read like a mapping (``claims["aud"]``, ``"xms_az_rid" in
    claims``); ``to_frame()`` is the explained table, ``checks()`` the audience / identity / expiry
    checks, and notebooks show a card (``_repr_html_``).

    ``resource``, ``identity`` and ``expires_on`` are what was asked for and what IMDS answered
    (filled in when decoding an ``AccessToken``); ``now`` pins "now" for the relative times in the
    views (``None``: the time of rendering).

    >>> import jwt
    >>> c = decode(jwt.encode({"oid": "x", "custom": 1}, "k" * 32))
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
        """The claim ``name``, or ``default`` when the token has none."""
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
        return _as_epoch(self.payload.get("iat"))

    @property
    def not_before(self) -> float | None:
        """``nbf`` as epoch seconds."""
        return _as_epoch(self.payload.get("nbf"))

    @property
    def expires_at(self) -> float | None:
        """``exp`` as epoch seconds."""
        return _as_epoch(self.payload.get("exp"))

    @property
    def mi_resource_id(self) -> str | None:
        """``xms_mirid``: the managed identity's resource id (the VM's for system-assigned)."""
        return _str_or_none(self.payload.get("xms_mirid"))

    @property
    def identity_kind(self) -> str | None:
        """``"system"`` or ``"user"`` as the token shows it (``xms_mirid`` / ``xms_az_rid``), else None."""
        mirid = (self.mi_resource_id or "").lower()
        if _UAMI_MARKER in mirid or (mirid and "xms_az_rid" in self.payload):
            return "user"
        if any(marker in mirid for marker in _VM_MARKERS):
            return "system"
        return None

    @property
    def identity_name(self) -> str | None:
        """The last segment of ``xms_mirid``: the identity's name, or the VM's for system-assigned."""
        mirid = self.mi_resource_id
        return mirid.rstrip("/").rsplit("/", 1)[-1] if mirid else None

    @property
    def unknown_claims(self) -> list[str]:
        """Payload claims this module has no explanation for, in token order."""
        return [name for name in self.payload if name not in CLAIM_MEANINGS]

    def describe_identity(self) -> str:
        """One phrase naming the identity, e.g. ``user-assigned identity 'id-app' (client id …)``.

        >>> Claims({}, {"oid": "o"}).describe_identity()
        'identity of unknown kind (no xms_mirid claim), object id o'
        """
        ids = []
        if self.client_id:
            ids.append(f"client id {self.client_id}")
        if self.object_id:
            ids.append(f"object id {self.object_id}")
        tail = ", ".join(ids)
        kind = self.identity_kind
        if kind == "user":
            head = f"user-assigned identity '{self.identity_name}'"
        elif kind == "system":
            head = f"system-assigned identity of '{self.identity_name}'"
        elif self.mi_resource_id:
            head = f"identity '{self.identity_name}' (xms_mirid is neither a VM nor a user-assigned identity)"
        else:
            head = "identity of unknown kind (no xms_mirid claim)"
        return f"{head}, {tail}" if tail else head

    # the explained table
    def rows(self, now: float | None = None, *, relative: bool = True) -> list[tuple[str, str, str]]:
        """``(claim, value, meaning)`` for every payload claim, in token order.

        Times read ``<epoch> = <UTC>`` plus, when ``relative`` is true, ``(in 23 h 59 min)``
        against ``now`` (default: ``self.now``, else the current time).
        """
        when = self._now(now) if relative else None
        return [(name, _format_value(name, value, when), explain_claim(name, value)) for name, value in self.payload.items()]

    def header_rows(self) -> list[tuple[str, str, str]]:
        """``(name, value, meaning)`` for every header parameter."""
        return [
            (name, _format_value(name, value, None), HEADER_MEANINGS.get(name, "unknown header parameter"))
            for name, value in self.header.items()
        ]

    def to_frame(self, now: float | None = None) -> pd.DataFrame:
        """The claims table (pandas): columns ``claim``, ``value``, ``meaning``."""
        from .frames import claims_frame

        return claims_frame(self, now=now)

    # checks
    def checks(
        self,
        *,
        resource: str | None = None,
        identity: Any = None,
        expires_on: int | str | None = None,
        now: float | None = None,
        soon: float = EXPIRING_SOON,
    ) -> list[Check]:
        """Signature, audience, identity, ``exp`` vs ``expires_on``, and validity at ``now``.

        Arguments default to the context recorded by :func:`decode` (an ``AccessToken``'s resource,
        identity and ``expires_on``); a check without anything to compare with is ``skipped``.
        ``identity`` is an ``Identity`` (anything with ``kind`` and ``selector``) or text such as
        ``"system"`` / ``"client_id=<guid>"``.
        """
        return [
            self._check_signature(),
            _check_audience(self.audience, self.resource if resource is None else resource),
            _check_identity(self, self.identity if identity is None else identity),
            _check_expires_on(self.payload.get("exp"), self.expires_on if expires_on is None else expires_on),
            _check_validity(self.payload, self._now(now), soon),
        ]

    def checks_frame(self, **kwargs: Any) -> pd.DataFrame:
        """:meth:`checks` as a DataFrame (``name``, ``status``, ``explanation``)."""
        from .frames import checks_frame

        return checks_frame(self.checks(**kwargs))

    def _check_signature(self) -> Check:
        if self.verified:
            return Check("signature", "ok", self.verification)
        return Check(
            "signature",
            "skipped",
            "signature NOT verified (claims are as the token states them); verify with "
            "decode(token, verify=True, jwks=...)",
        )

    def _now(self, now: float | None) -> float:
        if now is not None:
            return float(now)
        return float(self.now) if self.now is not None else time.time()

    # views
    def summary(self) -> str:
        """One stable line (no relative times): version, audience, identity, expiry, verification."""
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

    def _pinned(self, now: float | None) -> bool:
        """Whether the caller fixed "now" (then every time may be shown relative to it)."""
        return now is not None or self.now is not None

    def to_text(self, now: float | None = None) -> str:
        """The card as plain text (for terminals and logs): overview, checks, claims.

        The expiry line and the validity check are relative to now; the claims' times are shown
        relative too only when ``now`` is given (here or to :func:`decode`), so that output
        stored in a notebook changes in as few places as possible between runs.
        """
        when = self._now(now)
        lines = [f"Access token claims ({'signature verified' if self.verified else 'signature NOT verified'})"]
        lines += [f"  {key:<12} {value}" for key, value in self._overview(when)]
        lines.append("Checks:")
        lines += [f"  [{c.status}] {c.name}: {c.explanation}" for c in self.checks(now=when)]
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
        worst = _worst(checks)
        badges = [
            _h.badge("ok", "signature verified") if self.verified else _h.badge("warning", "signature not verified"),
            _h.badge(worst, f"checks: {worst}"),
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
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _worst(checks: Sequence[Check]) -> str:
    statuses = {c.status for c in checks}
    for status in ("problem", "warning", "ok"):
        if status in statuses:
            return status
    return "skipped"


def _format_value(name: str, value: Any, now: float | None) -> str:
    if name in TIME_CLAIMS:
        epoch = _as_epoch(value)
        if epoch is not None:
            return f"{value} = {_describe_time(epoch, now)}"
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = ", ".join(value)
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def explain_claim(name: str, value: Any = None) -> str:
    """The meaning of claim ``name``, plus what this particular ``value`` says where that helps.

    >>> explain_claim("idtyp", "app").endswith("(here: an application or managed identity)")
    True
    >>> explain_claim("foo")
    "unknown claim: not in mi-notebook's list of Entra ID access-token claims"
    """
    meaning = CLAIM_MEANINGS.get(name, _UNKNOWN)
    note = None
    if name == "idtyp" and value == "app":
        note = "an application or managed identity"
    elif name in ("appidacr", "azpacr"):
        note = {"0": "public client", "1": "client secret", "2": "certificate"}.get(str(value))
    elif name == "xms_mirid" and isinstance(value, str):
        lowered = value.lower()
        if _UAMI_MARKER in lowered:
            note = "a user-assigned identity"
        elif any(marker in lowered for marker in _VM_MARKERS):
            note = "a system-assigned identity"
    elif name == "xms_idrel":
        note = {"1": "member", "8": "guest"}.get(str(value))
    return f"{meaning} (here: {note})" if note else meaning


# --- the checks themselves --------------------------------------------------------------------------
def _requested_resource(resource: str) -> str:
    """An alias or ``.default`` scope -> the resource URI IMDS would have been sent; else unchanged."""
    try:
        from .resources import resolve_resource
    except ImportError:  # resources.py not installed yet: only strip a scope suffix
        return resource[: -len("/.default")] if resource.endswith("/.default") else resource
    try:
        return resolve_resource(resource)
    except ValueError:
        return resource


def _check_audience(aud: Any, resource: str | None) -> Check:
    if aud is None:
        return Check("audience", "problem", "the token has no aud claim: no resource will accept it")
    auds = [str(a) for a in aud] if isinstance(aud, list) else [str(aud)]
    shown = " / ".join(repr(a) for a in auds)
    if resource is None:
        return Check("audience", "skipped", f"no requested resource to compare with; aud is {shown}")
    wanted = _requested_resource(resource)
    asked = repr(resource) + (f" (= {wanted!r})" if wanted != resource else "")
    if wanted in auds:
        return Check("audience", "ok", f"aud {wanted!r} is exactly the requested resource {asked}")
    for a in auds:
        if a.rstrip("/") == wanted.rstrip("/"):
            has, lacks = (repr(a), repr(wanted)) if a.endswith("/") else (repr(wanted), repr(a))
            return Check(
                "audience",
                "warning",
                f"aud {a!r} differs from the requested resource {asked} only by a trailing slash: "
                f"{has} ends with '/', {lacks} does not. IMDS copies the requested resource into aud "
                "verbatim, so this token was asked for with the other spelling. ARM accepts both; "
                "services that compare audiences exactly will reject it.",
            )
        if a.lower() == wanted.lower():
            return Check(
                "audience",
                "warning",
                f"aud {a!r} differs from the requested resource {asked} only in letter case; "
                "services that compare audiences exactly will reject it.",
            )
    return Check(
        "audience",
        "problem",
        f"aud is {shown}, not the requested resource {asked}: this token is for another resource, "
        "which will answer 401 (InvalidAuthenticationTokenAudience).",
    )


def _selector(identity: Any) -> tuple[str, str | None, str | None]:
    """``(kind, selector name, value)`` of an Identity-like object or identity text."""
    if isinstance(identity, str):
        text = identity.strip()
        if text.lower() in ("system", "system-assigned", "systemassigned"):
            return "system", None, None
        try:
            from .identity import Identity
        except ImportError:
            if "=" in text:
                name, value = text.split("=", 1)
                return "user", name.strip(), value.strip()
            if _GUID.match(text):
                return "user", "client_id", text
            if text.startswith("/"):
                return "user", "resource_id", text
            raise ValueError(f"cannot read an identity from {text!r}") from None
        identity = Identity.parse(text)
    kind = getattr(identity, "kind", None)
    if kind not in ("system", "user"):
        raise ValueError(f"identity must be an Identity or text such as 'system', not {identity!r}")
    selector = getattr(identity, "selector", None)
    if not selector:
        return kind, None, None
    name, value = selector
    return kind, name, str(value)


def _check_identity(claims: Claims, identity: Any) -> Check:
    got = claims.describe_identity()
    if identity is None:
        return Check("identity", "skipped", f"no identity to compare with; the token is for the {got}")
    kind, name, value = _selector(identity)
    actual = claims.identity_kind
    if kind == "system" and name is None:
        if actual == "system":
            return Check("identity", "ok", f"asked for the system-assigned identity and got it: {got}")
        if actual == "user":
            return Check(
                "identity",
                "problem",
                f"asked for the system-assigned identity but got a token for the {got}. IMDS does this "
                "when the VM has no system-assigned identity and exactly one user-assigned one. Enable "
                "the VM's system-assigned identity, or ask for this identity explicitly with "
                f"Identity.user(client_id={claims.client_id!r}).",
            )
        return Check(
            "identity",
            "warning",
            f"asked for the system-assigned identity; the token cannot show which kind it is for ({got})",
        )
    if name == "client_id":
        actual_value, label = claims.client_id, "client id (appid/azp)"
    elif name == "object_id":
        actual_value, label = claims.object_id, "object id (oid)"
    elif name == "resource_id":
        actual_value, label = claims.mi_resource_id, "resource id (xms_mirid)"
    else:  # a user-assigned identity without a selector: IMDS picks the only one
        if actual == "user":
            return Check("identity", "ok", f"asked for the VM's user-assigned identity and got the {got}")
        return Check("identity", "warning", f"asked for a user-assigned identity; the token is for the {got}")
    if actual_value is None:
        return Check("identity", "warning", f"asked for {name}={value}, but the token has no {label}: {got}")
    if actual_value.rstrip("/").lower() != (value or "").rstrip("/").lower():
        return Check(
            "identity",
            "problem",
            f"asked for {name}={value}, but the token's {label} is {actual_value}: it is for the {got}",
        )
    if actual == "system":
        return Check(
            "identity",
            "warning",
            f"{label} matches {value}, but the token looks system-assigned (xms_mirid is a VM): {got}",
        )
    return Check("identity", "ok", f"asked for {name}={value} and got it: {got}")


def _check_expires_on(exp: Any, expires_on: int | str | None) -> Check:
    if expires_on is None:
        return Check("expires_on", "skipped", "no expires_on from the IMDS response to compare exp with")
    try:
        answered = int(str(expires_on).strip())
    except ValueError:
        return Check("expires_on", "problem", f"the response's expires_on {expires_on!r} is not epoch seconds")
    epoch = _as_epoch(exp)
    if epoch is None:
        return Check("expires_on", "problem", f"the token's exp {exp!r} is not a time; expires_on is {answered}")
    if int(epoch) == answered:
        return Check("expires_on", "ok", f"exp equals the response's expires_on ({answered} = {format_utc(answered)})")
    diff = int(epoch) - answered
    return Check(
        "expires_on",
        "problem",
        f"exp {int(epoch)} ({format_utc(epoch)}) differs from the response's expires_on {answered} "
        f"({format_utc(answered)}) by {diff:+d} s; IMDS documents them as equal. Refresh is scheduled "
        "by expires_on, so the token may be used past its real expiry (or dropped early).",
    )


def _check_validity(payload: Mapping[str, Any], now: float, soon: float) -> Check:
    exp = _as_epoch(payload.get("exp"))
    if exp is None:
        return Check("validity", "problem", "the token has no usable exp claim: its lifetime is unknown")
    nbf = _as_epoch(payload.get("nbf"))
    if nbf is not None and nbf > now:
        return Check(
            "validity",
            "problem",
            f"not valid yet: valid from {format_utc(nbf)} ({format_relative(nbf, now)}); "
            "check this machine's clock",
        )
    if exp <= now:
        return Check("validity", "problem", f"expired at {format_utc(exp)} ({format_relative(exp, now)}): get a new token")
    if exp - now < soon:
        return Check(
            "validity",
            "warning",
            f"expires soon: at {format_utc(exp)} ({format_relative(exp, now)}); get a fresh token before using it",
        )
    start = f"from {format_utc(nbf)} " if nbf is not None else ""
    return Check("validity", "ok", f"valid {start}until {format_utc(exp)} (expires {format_relative(exp, now)})")


# --- decoding ---------------------------------------------------------------------------------------
def _raw_token(token: Any) -> tuple[str, dict[str, Any]]:
    """The token string and the request context, with clear errors for everything that is not a token."""
    context: dict[str, Any] = {}
    if token is None:
        raise TokenDecodeError("No token to decode: got None.")
    reveal = getattr(token, "reveal", None)
    if callable(reveal) and not isinstance(token, (str, bytes)):
        context = {
            "resource": getattr(token, "resource", None),
            "identity": getattr(token, "identity", None),
            "expires_on": getattr(token, "expires_on", None),
        }
        token = reveal()
    if isinstance(token, (bytes, bytearray, memoryview)):
        raise TokenDecodeError(
            f"Expected the token as str, got {type(token).__name__}; decode it first (value.decode('ascii')).",
            hint="Pass the access token string, or the AccessToken object mi-notebook returned.",
        )
    if not isinstance(token, str):
        raise TokenDecodeError(
            f"Expected a token string or an AccessToken, got {type(token).__name__}.",
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
        raise TokenDecodeError(
            f"The token is not a JWT: {where} is not JSON ({exc.msg} at character {exc.pos})."
        ) from None
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


def entra_jwks_url(tenant_id: str) -> str:
    """Entra ID's signing keys for a tenant (what real managed-identity tokens are signed with).

    >>> entra_jwks_url("72f988bf-86f1-41af-91ab-2d7cd011db47")
    'https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys'
    """
    if not isinstance(tenant_id, str) or not _GUID.match(tenant_id):
        raise ValueError(f"tenant_id must be a GUID, not {tenant_id!r}")
    return f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"


def _fetch_json(url: str, timeout: float | tuple[float, float], what: str) -> Any:
    import requests

    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise TokenVerificationError(f"Could not fetch the {what} from {url}: {type(exc).__name__}.") from None
    if response.status_code != 200:
        raise TokenVerificationError(f"Could not fetch the {what} from {url}: HTTP {response.status_code}.")
    try:
        return response.json()
    except ValueError:
        raise TokenVerificationError(f"The {what} at {url} is not JSON.") from None


def _load_jwks(jwks: Any, payload: Mapping[str, Any], timeout: float | tuple[float, float]) -> tuple[list[dict], str]:
    """``(keys, where they came from)`` for a JWKS dict, a single JWK, a URL or ``"entra"``."""
    source = "the given JWKS"
    if isinstance(jwks, str):
        url = jwks
        if jwks.lower() == "entra":
            tid = payload.get("tid")
            if not isinstance(tid, str) or not _GUID.match(tid):
                raise TokenVerificationError("jwks='entra' needs the token's tid claim (a GUID); it has none.")
            url = entra_jwks_url(tid)
        elif not re.match(r"^https?://", jwks, re.IGNORECASE):
            raise ValueError(f"jwks must be a dict, a JWKS URL or 'entra', not the text {jwks!r}")
        jwks = _fetch_json(url, timeout, "JWKS")
        if isinstance(jwks, dict) and "keys" not in jwks and isinstance(jwks.get("jwks_uri"), str):
            url = jwks["jwks_uri"]  # an OpenID configuration: follow it once
            jwks = _fetch_json(url, timeout, "JWKS")
        source = url
    if isinstance(jwks, Mapping) and "kty" in jwks:
        jwks = {"keys": [dict(jwks)]}
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise TokenVerificationError(f"{source} is not a JWKS (a JSON object with a 'keys' list).")
    return [k for k in jwks["keys"] if isinstance(k, Mapping)], source


def _verify(
    raw: str,
    header: Mapping[str, Any],
    payload: Mapping[str, Any],
    jwks: Any,
    *,
    audience: str | None,
    issuer: str | None,
    leeway: float,
    now: float,
    timeout: float | tuple[float, float],
) -> str:
    import jwt

    alg = header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise TokenVerificationError(
            f"The token's alg {alg!r} is not an asymmetric signature algorithm; access tokens are signed "
            f"with one of {', '.join(ASYMMETRIC_ALGORITHMS)}."
        )
    keys, source = _load_jwks(jwks, payload, timeout)
    kid, x5t = header.get("kid"), header.get("x5t")
    if kid is not None:
        candidates = [k for k in keys if k.get("kid") == kid]
        wanted = f"kid {kid!r}"
    elif x5t is not None:
        candidates = [k for k in keys if k.get("x5t") == x5t or k.get("kid") == x5t]
        wanted = f"x5t {x5t!r}"
    else:
        candidates, wanted = list(keys), "any key"
    if not candidates:
        known = ", ".join(repr(k.get("kid")) for k in keys) or "none"
        raise TokenVerificationError(
            f"No key with {wanted} in {source} (its keys: {known}). Keys rotate: fetch the JWKS again, or "
            "the token comes from another issuer (emulator tokens verify only against the emulator's JWKS)."
        )
    if audience is not None:
        audience = _requested_resource(audience)
    options = {
        "verify_signature": True,
        "verify_exp": False,  # times are checked below against the injectable now
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": audience is not None,
        "verify_iss": issuer is not None,
    }
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
            raise TokenVerificationError(
                f"The signature is valid, but the audience is wrong: aud is {_short(payload.get('aud'))!r}, "
                f"expected {audience!r}."
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenVerificationError(
                f"The signature is valid, but the issuer is wrong: iss is {payload.get('iss')!r}, expected {issuer!r}."
            ) from None
        except jwt.PyJWTError as exc:
            raise TokenVerificationError(f"The token did not verify: {exc}.") from None
        break
    else:
        raise TokenVerificationError(f"The {alg} signature does not verify with {wanted} from {source}.")
    exp, nbf = _as_epoch(payload.get("exp")), _as_epoch(payload.get("nbf"))
    if exp is None:
        raise TokenVerificationError("The signature is valid, but the token has no usable exp claim.")
    if exp + leeway <= now:
        raise TokenVerificationError(
            f"The signature is valid, but the token expired at {format_utc(exp)} ({format_relative(exp, now)})."
        )
    if nbf is not None and nbf - leeway > now:
        raise TokenVerificationError(
            f"The signature is valid, but the token is not valid before {format_utc(nbf)} ({format_relative(nbf, now)})."
        )
    used = key_data.get("kid") or key_data.get("x5t") or "(no kid)"
    checked = f"audience {audience!r}" if audience is not None else "audience not checked (none given)"
    if issuer is not None:
        checked += f", issuer {issuer!r}"
    return f"{alg} signature verified with key {used!r} from {source}; {checked}; valid at the time of checking"


def decode(
    token: Any,
    *,
    verify: bool | None = None,
    jwks: Any = None,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = 0.0,
    now: float | None = None,
    timeout: float | tuple[float, float] = (3.05, 10.0),
) -> Claims:
    """Decode an access token (a string, or an ``AccessToken``) into :class:`Claims`.

    Without ``jwks`` the signature is not verified (and the claims say so). With ``jwks`` (or
    ``verify=True``, which then needs one) the signature is verified against that key set: a dict
    (``{"keys": [...]}`` or a single JWK), a JWKS or OpenID-configuration URL (fetched with
    requests, ``timeout``), or ``"entra"`` for Entra ID's keys of the token's tenant. ``audience``
    (default: the ``AccessToken``'s resource) and ``issuer`` are checked too, and ``exp`` / ``nbf``
    against ``now`` with ``leeway`` seconds. Failure -> :class:`TokenVerificationError`.

    Anything that is not a decodable JWT -> :class:`~mi_notebook.errors.TokenDecodeError` saying what
    is wrong (never containing the token).

    >>> import jwt
    >>> decode(jwt.encode({"aud": "api://x"}, "k" * 32)).audience
    'api://x'
    >>> decode("not-a-token")
    Traceback (most recent call last):
    ...
    mi_notebook.errors.TokenDecodeError: The token is not a JWT: it has no '.'; a JWT has 3 (header.payload.signature).
    What to do: Pass the access token string exactly as issued (three base64url parts joined by dots).
    """
    raw, context = _raw_token(token)
    header, payload = _decode_unverified(raw)
    if verify is None:
        verify = jwks is not None
    verified, verification = False, "signature not verified"
    if verify:
        if jwks is None:
            raise ValueError("verify=True needs jwks=: a JWKS dict, a JWKS URL, or 'entra' for Entra ID's keys")
        verification = _verify(
            raw,
            header,
            payload,
            jwks,
            audience=audience if audience is not None else context.get("resource"),
            issuer=issuer,
            leeway=leeway,
            now=time.time() if now is None else float(now),
            timeout=timeout,
        )
        verified = True
    expires_on = context.get("expires_on")
    return Claims(
        header=header,
        payload=payload,
        verified=verified,
        verification=verification,
        fingerprint=_fingerprint(raw),
        resource=context.get("resource"),
        identity=context.get("identity"),
        expires_on=int(expires_on) if expires_on is not None else None,
        now=now,
    )
