"""Access tokens that never show themselves.

:class:`AccessToken` keeps the bearer token private: ``repr``, ``str``, ``format``, the notebook
HTML card and every error show the resource, the identity, the expiry, a fingerprint and who issued
it, never the token; :meth:`AccessToken.reveal` is the one explicit way to it. Its expiry comes
from the endpoint's ``expires_on`` (an absolute time), never from ``now + expires_in``.

``host`` says which kind of endpoint issued the token (:data:`~mi_notebook.hosts.HOSTS`: the VM's
IMDS, Azure ML, App Service, Arc, Cloud Shell), ``emulated`` whether the embedded emulator did (playing
that host); ``from_cache`` says whether the cache served it. A token from the emulator says
"emulator" on every surface.

Example::

    >>> from mi_notebook.tokens import AccessToken
    >>> tok = AccessToken("eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDB9.", resource="https://management.azure.com/",
    ...                   expires_on=2000, fetched_at=1000, host="azureml", emulated=True)
    >>> tok
    AccessToken(resource='https://management.azure.com/', identity=system-assigned, expires_on=1970-01-01T00:33:20Z, fingerprint='sha256:51c269e7', host='azureml', emulated=True)
    >>> str(tok.served_from_cache())
    'Bearer token for https://management.azure.com/ (system-assigned), expires 1970-01-01T00:33:20Z, sha256:51c269e7, issued by the mi-notebook emulator (not Azure) playing Azure ML compute, served from the cache'
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .errors import UnexpectedResponseError
from .hosts import HOST_LABELS, Host, host_label, legacy_source
from .identity import Identity
from .secret import Secret
from .timefmt import format_iso

if TYPE_CHECKING:  # pragma: no cover
    from .claims import Claims
    from .retry import Timeline

__all__ = ["AccessToken", "as_int", "parse_expires_on"]

# expires_on as some hosts (App Service, older IMDS clients) send it: "11/27/2026 2:02:40 PM +00:00"
_DATE_FORMATS = ("%m/%d/%Y %I:%M:%S %p %z", "%m/%d/%Y %H:%M:%S %z", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")


def _jwt_payload(token: str) -> dict[str, Any] | None:
    """The JWT payload as a dict, or ``None`` if ``token`` is not a JWS (never raises)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def as_int(value: Any) -> int | None:
    """An int from the string-valued numbers token endpoints send ("86317", "1700000000", "1.7e9"), else ``None``.

    Example::

        >>> as_int("86317"), as_int("1.7e9"), as_int(12.9), as_int("soon"), as_int(True)
        (86317, 1700000000, 12, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    return None


def parse_expires_on(value: Any) -> int | None:
    """``expires_on`` as epoch seconds: an epoch number/string, or the date-string form
    ``"11/27/2026 2:02:40 PM +00:00"``; ``None`` if it is neither.

    Example::

        >>> parse_expires_on("1795788160"), parse_expires_on("11/27/2026 2:02:40 PM +00:00")
        (1795788160, 1795788160)
    """
    number = as_int(value)
    if number is not None:
        return number
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:  # no offset given: these services speak UTC
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp())
    return None


def _describe(value: Any) -> str:
    """A short, safe description of a bad field value (its type, and the text when short)."""
    if isinstance(value, str):
        return f"got {value!r}" if len(value) <= 40 else f"got a {len(value)}-character string"
    return f"got {type(value).__name__}"


@dataclass(frozen=True, repr=False, slots=True)
class AccessToken:
    """A bearer token with what it is for and where it came from; the token itself stays hidden.

    Immutable. ``expires_on`` / ``not_before`` are epoch seconds as the endpoint sent them;
    ``expires_in`` is kept as received (it shrinks while IMDS serves the same cached token, so it is
    not used for expiry); ``fetched_at`` is the wall-clock time the answer arrived. Equal tokens are
    the same token for the same resource, identity and endpoint. Copying returns the same object;
    pickling is refused (see :meth:`to_dict` for an explicit export). The token itself is held as a
    :class:`~mi_notebook.secret.Secret`, so ``dataclasses.asdict`` and ``astuple`` show
    ``Secret(<hidden>)`` for it.

    Example::

        >>> tok = AccessToken("header.payload.signature", resource="https://vault.azure.net",
        ...                   expires_on=1_800_000_000, fetched_at=1_799_913_600)
        >>> "signature" in repr(tok) + str(tok) + f"{tok}" + tok._repr_html_()
        False
        >>> tok.reveal()
        'header.payload.signature'
        >>> tok.lifetime, tok.time_left(now=1_799_999_000), tok.is_expired(now=1_800_000_000)
        (86400, 1000.0, True)
    """

    _secret: str | Secret  # a Secret once built (asdict and deepcopy keep the wrapper, never the text)
    _: dataclasses.KW_ONLY
    resource: str
    expires_on: int
    identity: Identity = field(default_factory=Identity.system)
    not_before: int | None = None
    expires_in: int | None = field(default=None, compare=False)
    token_type: str = field(default="Bearer", compare=False)
    client_id: str | None = field(default=None, compare=False)
    fetched_at: float = field(default_factory=time.time, compare=False)
    host: Host = field(default="vm", compare=False)
    emulated: bool = field(default=False, compare=False)
    from_cache: bool = field(default=False, compare=False)
    timeline: Timeline | None = field(default=None, compare=False)
    endpoint: str | None = None
    _claims_view: Claims | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given = self._secret
        text = given.reveal() if isinstance(given, Secret) else given
        if not isinstance(text, str) or not text:
            # Never echo the value: it may be (part of) a secret.
            raise ValueError(f"AccessToken needs the token as a non-empty string; got {type(given).__name__}")
        if not isinstance(given, Secret):
            object.__setattr__(self, "_secret", Secret(text))
        expires = as_int(self.expires_on)
        if expires is None:
            raise ValueError(f"expires_on must be epoch seconds (an int); got {self.expires_on!r}")
        if self.host not in HOST_LABELS:
            raise ValueError(f"host must be one of {', '.join(HOST_LABELS)}; got {self.host!r}")
        if self.identity is None:  # not given: system-assigned
            object.__setattr__(self, "identity", Identity.system())
        if not isinstance(self.identity, Identity):
            raise ValueError(f"identity must be an Identity; got {type(self.identity).__name__}")
        normal = {
            "expires_on": expires,
            "not_before": as_int(self.not_before),
            "expires_in": as_int(self.expires_in),
            "token_type": self.token_type or "Bearer",
            "client_id": self.client_id or None,
            "fetched_at": float(self.fetched_at),
            "from_cache": bool(self.from_cache),
            "emulated": bool(self.emulated),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    # --- construction from the wire -----------------------------------------------------------------
    @classmethod
    def from_response(
        cls,
        body: Any,
        *,
        host: Host,
        emulated: bool = False,
        identity: Identity | None,
        resource_requested: str,
        endpoint: str | None = None,
        fetched_at: float | None = None,
        timeline: Timeline | None = None,
    ) -> AccessToken:
        """An AccessToken from a token endpoint's success body (IMDS and the hosts all send these keys).

        Raises :class:`~mi_notebook.errors.UnexpectedResponseError` naming the field when
        ``access_token`` or ``expires_on`` is missing or unusable (never showing the token).

        Example::

            >>> body = {"access_token": "a.b.c", "expires_on": "1800000000", "expires_in": "86317",
            ...         "not_before": "1799913300", "resource": "https://management.azure.com/",
            ...         "token_type": "Bearer", "client_id": "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"}
            >>> tok = AccessToken.from_response(body, host="vm", identity=None, fetched_at=1799913683,
            ...     resource_requested="https://management.azure.com/", endpoint="http://127.0.0.1:1")
            >>> tok.expires_on, tok.expires_in, tok.client_id[:8]
            (1800000000, 86317, '6f2e0b2a')
        """
        common: dict[str, Any] = {"status": 200, "endpoint": endpoint, "timeline": timeline}
        if not isinstance(body, dict):
            raise UnexpectedResponseError(
                f"The token endpoint answered 200 with a JSON {type(body).__name__}, not an object.", **common
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token.strip():
            problem = "is missing" if "access_token" not in body else "is empty or not a string"
            raise UnexpectedResponseError(
                f"The token endpoint answered 200 but 'access_token' {problem}; this is not a token answer.",
                **common,
            )
        raw_expiry = body.get("expires_on")
        expires_on = parse_expires_on(raw_expiry)
        if expires_on is None:
            problem = (
                "is missing" if "expires_on" not in body else f"is not epoch seconds or a date ({_describe(raw_expiry)})"
            )
            raise UnexpectedResponseError(
                f"The token endpoint answered 200 but 'expires_on' {problem}; the token's expiry is unknown.",
                **common,
            )
        client_id = body.get("client_id")
        return cls(
            token,
            resource=resource_requested,
            identity=identity if identity is not None else Identity.system(),
            expires_on=expires_on,
            not_before=parse_expires_on(body.get("not_before")),
            expires_in=as_int(body.get("expires_in")),
            token_type=str(body.get("token_type") or "Bearer"),
            client_id=client_id if isinstance(client_id, str) and client_id else None,
            fetched_at=time.time() if fetched_at is None else fetched_at,
            host=host,
            emulated=emulated,
            timeline=timeline,
            endpoint=endpoint,
        )

    # --- copying, pickling ----------------------------------------------------------------------------
    def __copy__(self) -> AccessToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AccessToken:
        return self

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(
            "AccessToken refuses to be pickled: it holds a bearer token, and pickles end up in files. "
            "If you really must, export it explicitly with token.to_dict(include_token=True) and "
            "rebuild with AccessToken.from_dict(...)."
        )

    def __getstate__(self) -> Any:
        raise TypeError("AccessToken refuses to be pickled: it holds a bearer token (see to_dict)")

    # --- the secret, and what can be said about it ------------------------------------------------
    def reveal(self) -> str:
        """The raw bearer token: the only way to it. Do not print or log it.

        Example::

            >>> AccessToken("a.b.c", resource="api://x", expires_on=1).reveal()
            'a.b.c'
        """
        secret = self._secret
        return secret.reveal() if isinstance(secret, Secret) else secret

    @property
    def fingerprint(self) -> str:
        """``"sha256:"`` + the first 8 hex digits of the token's SHA-256: tells tokens apart safely."""
        import hashlib  # here, not at the top: a first token in a fresh process does not need it

        return "sha256:" + hashlib.sha256(self.reveal().encode("utf-8")).hexdigest()[:8]

    @property
    def issuer_label(self) -> str:
        """Who issued the token, for people: ``"Azure VM (IMDS)"``, ``"the mi-notebook emulator (not Azure)
        playing Azure ML compute"``...

        Example::

            >>> AccessToken("t", resource="api://x", expires_on=1, host="azureml").issuer_label
            'Azure ML compute'
        """
        return host_label(self.host, emulated=self.emulated)

    @property
    def source(self) -> str:
        """Deprecated (use :attr:`host` and :attr:`emulated`): ``"emulator"`` for an emulated token,
        ``"imds"`` for a VM's, else the host.

        Example::

            >>> import warnings
            >>> with warnings.catch_warnings():
            ...     warnings.simplefilter("ignore", DeprecationWarning)
            ...     AccessToken("t", resource="api://x", expires_on=1, host="vm").source
            'imds'
        """
        warnings.warn("AccessToken.source is deprecated: use .host (which kind of endpoint issued it) and "
                      ".emulated (whether the emulator did)", DeprecationWarning, stacklevel=2)
        return legacy_source(self.host, emulated=self.emulated)

    @property
    def claims(self) -> Claims:
        """The decoded claims (unverified), decoded on first use with :func:`mi_notebook.claims.decode_unverified`."""
        cached = self._claims_view
        if cached is None:
            from .claims import decode_unverified as decode

            cached = decode(self)
            object.__setattr__(self, "_claims_view", cached)
        return cached

    @property
    def exp_skew(self) -> int | None:
        """The JWT's ``exp`` claim minus ``expires_on`` (0 when they agree), or ``None`` if the
        token is not a JWT with a numeric ``exp``.

        Example::

            >>> AccessToken("eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDB9.", resource="api://x", expires_on=1990).exp_skew
            10
            >>> AccessToken("opaque", resource="api://x", expires_on=1990).exp_skew is None
            True
        """
        payload = _jwt_payload(self.reveal())
        if payload is None:
            return None
        exp = payload.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        return int(exp) - self.expires_on

    @property
    def lifetime(self) -> int:
        """Seconds from ``not_before`` (or, without it, ``fetched_at``) to ``expires_on``."""
        start = self.not_before if self.not_before is not None else int(self.fetched_at)
        return self.expires_on - start

    def time_left(self, now: float | None = None) -> float:
        """Seconds until ``expires_on`` (negative once expired); ``now`` defaults to ``time.time()``."""
        return float(self.expires_on - (time.time() if now is None else now))

    def is_expired(self, now: float | None = None) -> bool:
        """Whether ``expires_on`` has passed at ``now`` (default: the current time)."""
        return self.time_left(now) <= 0

    def served_from_cache(self) -> AccessToken:
        """The same token, marked as served from the cache (claims already decoded are kept).

        Example::

            >>> tok = AccessToken("a.b.c", resource="api://x", expires_on=1, emulated=True)
            >>> cached = tok.served_from_cache()
            >>> cached.from_cache, cached.emulated, cached == tok, cached.served_from_cache() is cached
            (True, True, True, True)
        """
        if self.from_cache:
            return self
        copy = dataclasses.replace(self, from_cache=True)
        object.__setattr__(copy, "_claims_view", self._claims_view)
        return copy

    def to_dict(self, *, include_token: bool = False) -> dict[str, Any]:
        """Plain data about the token; the token itself only with ``include_token=True``.

        Example::

            >>> d = AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1).to_dict()
            >>> "token" in d, d["fingerprint"], d["expires_on"], d["host"], d["emulated"]
            (False, 'sha256:845e3044', 5, 'vm', False)
        """
        data: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("_secret", "_claims_view", "identity", "timeline")
        }
        data.update(
            identity=str(self.identity),
            identity_selector=list(self.identity.selector) if self.identity.selector else None,
            fingerprint=self.fingerprint,
            exp_skew=self.exp_skew,
            attempts=len(self.timeline) if self.timeline is not None else None,
        )
        if include_token:
            data["token"] = self.reveal()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessToken:
        """Rebuild a token exported with ``to_dict(include_token=True)`` (the timeline is not kept).

        A dict of the previous release (a ``"source"`` key instead of ``"host"`` and ``"emulated"``) is
        read too.

        Example::

            >>> tok = AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1)
            >>> AccessToken.from_dict(tok.to_dict(include_token=True)) == tok
            True
        """
        if "token" not in data:
            raise ValueError("from_dict needs the 'token' key: export with to_dict(include_token=True)")
        selector = data.get("identity_selector")
        names = {f.name for f in dataclasses.fields(cls) if f.init} - {"_secret", "identity", "timeline"}
        kwargs = {name: data[name] for name in names if data.get(name) is not None}
        old = data.get("source")
        if "host" not in data and isinstance(old, str):
            kwargs["emulated"] = old == "emulator"
            if old not in ("imds", "emulator"):
                kwargs["host"] = old
        identity = Identity(**{selector[0]: selector[1]}) if selector else Identity.system()
        return cls(data["token"], identity=identity, **kwargs)

    # --- display ----------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        cached = ", from_cache=True" if self.from_cache else ""
        emulated = ", emulated=True" if self.emulated else ""
        return (
            f"AccessToken(resource={self.resource!r}, identity={self.identity}, "
            f"expires_on={format_iso(self.expires_on)}, fingerprint={self.fingerprint!r}, "
            f"host={self.host!r}{emulated}{cached})"
        )

    def __str__(self) -> str:
        cached = ", served from the cache" if self.from_cache else ""
        return (
            f"{self.token_type} token for {self.resource} ({self.identity}), "
            f"expires {format_iso(self.expires_on)}, {self.fingerprint}, issued by {self.issuer_label}{cached}"
        )

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def _repr_html_(self) -> str:
        rows = [
            ("resource", self.resource),
            ("identity", _claimed_identity(self)),
            ("expires_on", f"{format_iso(self.expires_on)} ({self.expires_on})"),
            (
                "not_before",
                f"{format_iso(self.not_before)} ({self.not_before})" if self.not_before is not None else "-",
            ),
            ("fetched_at", format_iso(self.fetched_at)),
            ("client_id", self.client_id or "-"),
            ("issued by", self.issuer_label),
            ("served from", "the cache" if self.from_cache else "the endpoint"),
            ("fingerprint", self.fingerprint),
        ]
        if self.timeline is not None:
            rows.append(("attempts", self.timeline.summary()))
        import html

        cell = "padding:2px 8px;text-align:left;vertical-align:top;border:none"
        body = "".join(
            f'<tr><td style="{cell};color:#57606a">{html.escape(k)}</td>'
            f'<td style="{cell}">{html.escape(str(v))}</td></tr>'
            for k, v in rows
        )
        warning = ""
        if self.emulated:
            warning = (
                '<div style="color:#9a6700;font-weight:600">From the mi-notebook emulator: not an Azure token, '
                "useless against Azure.</div>"
            )
        return (
            '<div style="border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:4px 0;'
            'font-family:system-ui,sans-serif;font-size:13px">'
            f'<div style="font-weight:600">{html.escape(self.token_type)} token '
            '<span style="color:#57606a;font-weight:400">(hidden: use .reveal())</span></div>'
            f'{warning}<table style="border-collapse:collapse">{body}</table></div>'
        )


def _claimed_identity(token: AccessToken) -> str:
    """Whose token it is, by its claims (what was asked only when the claims cannot say, said so)."""
    from .claims import token_identity

    return token_identity(token).label_for(token.identity)
