"""Checks of a decoded token against what was asked for: signature, audience, identity, ``exp`` vs
``expires_on``, and the validity window.

Each check returns a :class:`Check` (``ok``, ``warning``, ``problem`` or ``skipped``, with one
sentence saying why). :meth:`mi_notebook.claims.Claims.checks` runs them all with the context an
``AccessToken`` recorded; they are plain functions of claim values, so they are easy to test alone.

Example::

    >>> from mi_notebook.claims._checks import check_audience, check_validity
    >>> check_audience("https://management.azure.com/", "arm").status
    'ok'
    >>> str(check_validity({"exp": 1000}, now=2000))
    '[problem] validity: expired at 1970-01-01 00:16:40 UTC (16 min 40 s ago): get a new token'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..clouds import CLOUDS, Cloud, WrongCloudError
from ..clouds import cloud as _cloud
from ..identity import Identity
from ..resources import resolve_resource
from ..timefmt import as_epoch, format_relative, format_utc
from ._glossary import WRONG_AUDIENCE_ANSWERS, audience_note

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "CHECKS_COLUMNS",
    "check_principal",
    "user_token_evidence",
    "CHECK_STATUSES",
    "EXPIRING_SOON",
    "Check",
    "IdentityClaims",
    "check_audience",
    "check_expires_on",
    "check_identity",
    "check_issuer",
    "check_signature",
    "check_validity",
    "checks_frame",
    "requested_resource",
    "worst",
]

CHECK_STATUSES = ("ok", "warning", "problem", "skipped")
CHECKS_COLUMNS = ("name", "status", "explanation")

#: Seconds before expiry from which a token counts as "expiring soon" (caches refresh 5 min ahead).
EXPIRING_SOON = 300.0


@dataclass(frozen=True)
class Check:
    """The result of one check: ``name``, ``status`` (ok / warning / problem / skipped), ``explanation``.

    Example::

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


class IdentityClaims(Protocol):
    """What :func:`check_identity` reads from a token (:class:`~mi_notebook.claims.Claims` has it all).

    Example::

        >>> from types import SimpleNamespace
        >>> token = SimpleNamespace(identity_kind="system", client_id=None, object_id=None,
        ...                         mi_resource_id=None, describe_identity=lambda: "the VM's identity")
        >>> check_identity(token, "system").status
        'ok'
    """

    @property
    def identity_kind(self) -> str | None: ...  # "system", "user" or None
    @property
    def client_id(self) -> str | None: ...
    @property
    def object_id(self) -> str | None: ...
    @property
    def mi_resource_id(self) -> str | None: ...
    def describe_identity(self) -> str: ...


def checks_frame(checks: Iterable[Check]) -> pd.DataFrame:
    """One row per check: ``name``, ``status``, ``explanation`` (pandas is imported only now).

    Example::

        >>> checks_frame([Check("audience", "ok", "aud is the resource")])["status"].tolist()
        ['ok']
    """
    import pandas as pd

    return pd.DataFrame([(c.name, c.status, c.explanation) for c in checks], columns=list(CHECKS_COLUMNS))


def worst(checks: Iterable[Check]) -> str:
    """The most serious status among ``checks`` (``skipped`` when there is nothing else).

    Example::

        >>> worst([Check("a", "ok", "."), Check("b", "warning", ".")]), worst([])
        ('warning', 'skipped')
    """
    statuses = {c.status for c in checks}
    return next((s for s in ("problem", "warning", "ok") if s in statuses), "skipped")


def requested_resource(resource: str, cloud: Cloud | str | None = None) -> str:
    """An alias or ``.default`` scope -> the resource URI IMDS would have been sent (in ``cloud``, default
    the public cloud's table); else unchanged.

    Example::

        >>> requested_resource("arm"), requested_resource("api://my-app")
        ('https://management.azure.com/', 'api://my-app')
        >>> requested_resource("arm", "AzureChinaCloud")
        'https://management.chinacloudapi.cn/'
    """
    try:
        return resolve_resource(resource, cloud)
    except ValueError:
        return resource


def check_signature(verified: bool, verification: str) -> Check:
    """``ok`` with how the signature was verified, else ``skipped`` saying it was not.

    Example::

        >>> check_signature(False, "signature not verified").status
        'skipped'
    """
    if verified:
        return Check("signature", "ok", verification)
    return Check(
        "signature",
        "skipped",
        "signature NOT verified (claims are as the token states them); verify with "
        "decode(token, verify=True, jwks=...)",
    )


def check_audience(aud: Any, resource: str | None, cloud: Cloud | str | None = None) -> Check:
    """Is ``aud`` the requested ``resource`` (an alias, URI or ``.default`` scope)? Near misses warn.

    ``cloud``: the cloud the token should be for (aliases resolve there; another cloud's audience is a
    problem that names the right one). Without it, an alias matches its form in any cloud.

    Example::

        >>> check_audience("https://management.azure.com", "https://management.azure.com/").status
        'warning'
        >>> check_audience("https://management.usgovcloudapi.net/", "arm").explanation
        "aud 'https://management.usgovcloudapi.net/' is the requested resource 'arm' in Azure Government"
        >>> check_audience("https://management.azure.com/", "arm", cloud="AzureUSGovernmentCloud").status
        'problem'
    """
    if aud is None:
        return Check("audience", "problem", "the token has no aud claim: no resource will accept it")
    auds = [str(a) for a in aud] if isinstance(aud, list) else [str(aud)]
    shown = " / ".join(repr(a) for a in auds)
    if resource is None:
        return Check("audience", "skipped", f"no requested resource to compare with; aud is {shown}")
    wanted = requested_resource(resource, cloud)
    asked = repr(resource) + (f" (= {wanted!r})" if wanted != resource else "")
    if wanted in auds:
        return Check("audience", "ok", f"aud {wanted!r} is exactly the requested resource {asked}")
    for other in CLOUDS.values() if cloud is None else ():
        form = requested_resource(resource, other)
        if form != wanted and form in auds:
            return Check("audience", "ok", f"aud {form!r} is the requested resource {resource!r} in {other.title}")
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
    key = wanted.lower().rstrip("/")
    ai = audience_note(wanted) is not None  # an Azure AI audience: its own 401, and which scope is which
    answer = WRONG_AUDIENCE_ANSWERS.get(key) or ("a 401" if ai else "401 (InvalidAuthenticationTokenAudience)")
    noted = [note for note in map(audience_note, auds) if note]
    what = f" ({noted[0]})" if noted and ai else ""
    return Check(
        "audience",
        "problem",
        f"aud is {shown}{what}, not the requested resource {asked}: this token is for another resource, "
        f"which will answer {answer}.{_other_cloud(auds, cloud)}",
    )


def _other_cloud(auds: list[str], cloud: Cloud | str | None) -> str:
    """`` <why>`` when one of ``auds`` is another cloud's audience, else ``""``."""
    for a in auds if cloud is not None else ():
        try:
            resolve_resource(a, cloud)
        except WrongCloudError as exc:
            return f" Besides, {exc}"
        except ValueError:
            continue
    return ""


def check_issuer(iss: Any, cloud: Cloud | str) -> Check:
    """Was the token issued by ``cloud``'s Entra ID (its v1 ``https://sts.../<tenant>/``, or a v2 issuer on
    its authority host)? The public and Government clouds share the v1 issuer ``https://sts.windows.net/``.

    Example::

        >>> check_issuer("https://sts.chinacloudapi.cn/t/", "AzureChinaCloud").status
        'ok'
        >>> check_issuer("https://sts.windows.net/t/", "AzureChinaCloud").explanation[:62]
        "iss 'https://sts.windows.net/t/' is not Azure China (21Vianet)"
    """
    where = _cloud(cloud)
    if not isinstance(iss, str) or not iss:
        return Check("issuer", "problem", "the token has no iss claim: no service will accept it")
    prefixes = (where.issuer_prefix, *(f"https://{h}/" for h in (where.authority_host, *where.other_authority_hosts)))
    if iss.lower().startswith(tuple(p.lower() for p in prefixes)):
        shared = [c.title for c in CLOUDS.values() if c != where and c.issuer_prefix == where.issuer_prefix]
        also = f" (an issuer {where.title} shares with {', '.join(shared)})" if shared and iss.startswith(
            where.issuer_prefix) else ""
        return Check("issuer", "ok", f"iss {iss!r} is {where.title}'s Entra ID{also}")
    owners = [c.title for c in CLOUDS.values() if iss.lower().startswith(c.issuer_prefix)]
    whose = f", it is {' or '.join(owners)}'s" if owners else ""
    return Check("issuer", "problem", f"iss {iss!r} is not {where.title}'s Entra ID (expected it to start with "
                                      f"{' or '.join(prefixes)}){whose}: the token is from another cloud or tenant")


def _selector(identity: Any) -> tuple[str, str | None, str | None]:
    """``(kind, selector name, value)`` of an Identity-like object or identity text."""
    if isinstance(identity, str):
        identity = Identity.parse(identity)
    kind = getattr(identity, "kind", None)
    if kind not in ("system", "user"):
        raise ValueError(f"identity must be an Identity or text such as 'system', not {identity!r}")
    selector = getattr(identity, "selector", None)
    if not selector:
        return kind, None, None
    name, value = selector
    return kind, name, str(value)


_USER_CLAIMS = ("upn", "unique_name", "scp")


def user_token_evidence(payload: Mapping[str, Any]) -> str | None:
    """Why these claims are a signed-in user's token (a short phrase), or ``None`` if nothing says so.

    ``idtyp`` ``"user"``, or ``upn`` / ``unique_name`` / ``scp`` present and no ``xms_mirid``
    (managed-identity tokens always carry their identity's resource id there).

    Example::

        >>> user_token_evidence({"scp": "user_impersonation", "unique_name": "ada@contoso.com"})
        'it carries unique_name, scp and no xms_mirid'
        >>> user_token_evidence({"idtyp": "app", "xms_mirid": "/subscriptions/s/..."}) is None
        True
    """
    if str(payload.get("idtyp", "")).lower() == "user":
        return "idtyp is 'user'"
    if "xms_mirid" in payload:
        return None
    seen = [name for name in _USER_CLAIMS if name in payload]
    return f"it carries {', '.join(seen)} and no xms_mirid" if seen else None


def check_principal(payload: Mapping[str, Any]) -> Check:
    """Is this a managed identity's token, or the signed-in user's own (Azure ML with SSO, Cloud Shell)?

    Example::

        >>> check_principal({"idtyp": "user", "upn": "ada@contoso.com"}).status
        'problem'
        >>> check_principal({"idtyp": "app", "xms_mirid": "/subscriptions/s/providers/x"}).status
        'ok'
    """
    evidence = user_token_evidence(payload)
    if evidence is not None:
        who = payload.get("upn") or payload.get("unique_name") or payload.get("name") or "a person"
        return Check("principal", "problem", (
            f"this is your own user token ({who}; {evidence}), not the compute's managed identity: code "
            "using it acts as you. On Azure ML, name the identity (its client id, or set "
            "DEFAULT_IDENTITY_CLIENT_ID); Cloud Shell only ever hands out your own token."))
    if "xms_mirid" in payload or str(payload.get("idtyp", "")).lower() == "app":
        return Check("principal", "ok", "an application's token (a managed identity), not a person's")
    return Check("principal", "skipped", "nothing in the claims says whether a person or an application holds it")


def check_identity(claims: IdentityClaims, identity: Any) -> Check:
    """Is the token for the ``identity`` that was asked for (an ``Identity``, or text such as ``"system"``)?

    Example::

        >>> from types import SimpleNamespace
        >>> token = SimpleNamespace(identity_kind="user", client_id="c", object_id="o", mi_resource_id=None,
        ...                         describe_identity=lambda: "user-assigned identity 'id-app'")
        >>> check_identity(token, "system").status
        'problem'
    """
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


def check_expires_on(exp: Any, expires_on: int | str | None) -> Check:
    """Does the token's ``exp`` equal the ``expires_on`` IMDS answered (as documented)?

    Example::

        >>> check_expires_on(1767225600, "1767225600").explanation
        "exp equals the response's expires_on (1767225600 = 2026-01-01 00:00:00 UTC)"
    """
    if expires_on is None:
        return Check("expires_on", "skipped", "no expires_on from the IMDS response to compare exp with")
    try:
        answered = int(str(expires_on).strip())
    except ValueError:
        return Check("expires_on", "problem", f"the response's expires_on {expires_on!r} is not epoch seconds")
    epoch = as_epoch(exp)
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


def check_validity(payload: Mapping[str, Any], now: float, soon: float = EXPIRING_SOON, leeway: float = 0.0) -> Check:
    """Is the token valid at ``now`` (``nbf`` / ``exp``, tolerating ``leeway`` seconds of clock skew)?
    A ``warning`` when less than ``soon`` seconds are left.

    Example::

        >>> check_validity({"nbf": 0, "exp": 7200}, now=3600).explanation
        'valid from 1970-01-01 00:00:00 UTC until 1970-01-01 02:00:00 UTC (expires in 1 h)'
    """
    exp = as_epoch(payload.get("exp"))
    if exp is None:
        return Check("validity", "problem", "the token has no usable exp claim: its lifetime is unknown")
    nbf = as_epoch(payload.get("nbf"))
    if nbf is not None and nbf - leeway > now:
        return Check(
            "validity",
            "problem",
            f"not valid yet: valid from {format_utc(nbf)} ({format_relative(nbf, now)}); "
            "check this machine's clock",
        )
    if exp + leeway <= now:
        return Check("validity", "problem", f"expired at {format_utc(exp)} ({format_relative(exp, now)}): get a new token")
    if exp - now < soon:
        return Check(
            "validity",
            "warning",
            f"expires soon: at {format_utc(exp)} ({format_relative(exp, now)}); get a fresh token before using it",
        )
    start = f"from {format_utc(nbf)} " if nbf is not None else ""
    return Check("validity", "ok", f"valid {start}until {format_utc(exp)} (expires {format_relative(exp, now)})")
