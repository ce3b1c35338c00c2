"""Access tokens that never show themselves, and the per-process cache that serves them.

:class:`AccessToken` keeps the bearer token private: ``repr``, ``str``, ``format``, the notebook
HTML view and its errors show the resource, the identity, the expiry and a fingerprint, never the
token; :meth:`AccessToken.reveal` is the one explicit way to it. Its expiry comes from IMDS's
``expires_on`` (an absolute time), never from ``now + expires_in``.

:class:`TokenCache` refreshes ahead of expiry (half-way through a long-lived token, five minutes
before the end of a short one), lets only one caller per key talk to IMDS at a time (the others
share its result, or keep using the still-valid token), and after a failed refresh keeps serving
the valid token and waits 30 s before trying again.

Example::

    >>> from mi_notebook.tokens import AccessToken, TokenCache
    >>> tok = AccessToken("eyJhbGciOiJub25lIn0.eyJleHAiOjIwMDB9.", resource="https://management.azure.com/",
    ...                   expires_on=2000, fetched_at=1000)
    >>> tok
    AccessToken(resource='https://management.azure.com/', identity=system-assigned, expires_on=1970-01-01T00:33:20Z, fingerprint='sha256:51c269e7', source='imds')
    >>> cache = TokenCache(clock=lambda: 1100.0)
    >>> key = ("http://127.0.0.1:1", tok.identity, tok.resource)
    >>> cache.get(key, lambda: tok).source, cache.get(key, lambda: tok).source
    ('imds', 'cache')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from .errors import UnexpectedResponseError
from .identity import Identity

if TYPE_CHECKING:  # pragma: no cover
    from .claims import Claims
    from .retry import Timeline

__all__ = [
    "AccessToken",
    "CacheStats",
    "TokenCache",
    "default_cache",
    "refresh_at",
]

Source = Literal["imds", "cache"]

#: a long-lived token (>= 2 h left when fetched) is refreshed half-way through
LONG_LIVED = 7200.0
#: a short-lived token is refreshed this long before it expires (but not before half-way)
REFRESH_MARGIN = 300.0
#: after a failed refresh (or one that brought no newer token), wait this long before the next
RETRY_HOLD = 30.0

# expires_on as some hosts (App Service, older IMDS clients) send it: "11/27/2026 2:02:40 PM +00:00"
_DATE_FORMATS = ("%m/%d/%Y %I:%M:%S %p %z", "%m/%d/%Y %H:%M:%S %z", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")


def _utc(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch}"


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


def _as_int(value: Any) -> int | None:
    """An int from IMDS's string-valued numbers ("86317", "1700000000", "1.7e9"), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number == number and abs(number) != float("inf") else None
    return None


def parse_expires_on(value: Any) -> int | None:
    """``expires_on`` as epoch seconds: an epoch number/string, or the date-string form
    ``"11/27/2026 2:02:40 PM +00:00"``; ``None`` if it is neither.

    Example::

        >>> parse_expires_on("1795788160"), parse_expires_on("11/27/2026 2:02:40 PM +00:00")
        (1795788160, 1795788160)
    """
    number = _as_int(value)
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


class AccessToken:
    """A bearer token with what it is for and where it came from; the token itself stays hidden.

    Immutable. ``expires_on`` / ``not_before`` are epoch seconds as IMDS sent them; ``expires_in``
    is kept as received (it shrinks while IMDS serves the same cached token, so it is not used for
    expiry); ``fetched_at`` is the wall-clock time the answer arrived. Copying returns the same
    object; pickling is refused (see :meth:`to_dict` for an explicit export).

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

    __slots__ = (
        "_secret",
        "_claims",
        "resource",
        "identity",
        "expires_on",
        "not_before",
        "expires_in",
        "token_type",
        "client_id",
        "fetched_at",
        "source",
        "timeline",
        "endpoint",
    )

    _secret: str
    _claims: Claims | None
    resource: str
    identity: Identity
    expires_on: int
    not_before: int | None
    expires_in: int | None
    token_type: str
    client_id: str | None
    fetched_at: float
    source: Source
    timeline: Timeline | None
    endpoint: str | None

    def __init__(
        self,
        token: str,
        *,
        resource: str,
        expires_on: int,
        identity: Identity | None = None,
        not_before: int | None = None,
        expires_in: int | None = None,
        token_type: str = "Bearer",
        client_id: str | None = None,
        fetched_at: float | None = None,
        source: Source = "imds",
        timeline: Timeline | None = None,
        endpoint: str | None = None,
    ) -> None:
        if not isinstance(token, str) or not token:
            # Never echo the value: it may be (part of) a secret.
            raise ValueError(f"AccessToken needs the token as a non-empty string; got {type(token).__name__}")
        expires = _as_int(expires_on)
        if expires is None:
            raise ValueError(f"expires_on must be epoch seconds (an int); got {expires_on!r}")
        if source not in ("imds", "cache"):
            raise ValueError(f"source must be 'imds' or 'cache'; got {source!r}")
        if identity is not None and not isinstance(identity, Identity):
            raise ValueError(f"identity must be an Identity; got {type(identity).__name__}")
        setter = object.__setattr__
        setter(self, "_secret", token)
        setter(self, "_claims", None)
        setter(self, "resource", resource)
        setter(self, "identity", identity if identity is not None else Identity.system())
        setter(self, "expires_on", expires)
        setter(self, "not_before", _as_int(not_before))
        setter(self, "expires_in", _as_int(expires_in))
        setter(self, "token_type", token_type or "Bearer")
        setter(self, "client_id", client_id or None)
        setter(self, "fetched_at", float(time.time() if fetched_at is None else fetched_at))
        setter(self, "source", source)
        setter(self, "timeline", timeline)
        setter(self, "endpoint", endpoint)

    # --- construction from the wire -----------------------------------------------------------------
    @classmethod
    def from_imds_response(
        cls,
        body: dict[str, Any],
        *,
        identity: Identity | None,
        resource_requested: str,
        endpoint: str | None = None,
        fetched_at: float | None = None,
        timeline: Timeline | None = None,
    ) -> AccessToken:
        """An AccessToken from IMDS's success body (every value a JSON string).

        Raises :class:`~mi_notebook.errors.UnexpectedResponseError` naming the field when
        ``access_token`` or ``expires_on`` is missing or unusable (never showing the token).

        Example::

            >>> body = {"access_token": "a.b.c", "expires_on": "1800000000", "expires_in": "86317",
            ...         "not_before": "1799913300", "resource": "https://management.azure.com/",
            ...         "token_type": "Bearer", "client_id": "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"}
            >>> tok = AccessToken.from_imds_response(body, identity=None, fetched_at=1799913683,
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
                f"The token endpoint answered 200 but 'access_token' {problem}; this is not an IMDS token answer.",
                **common,
            )
        raw_expiry = body.get("expires_on")
        expires_on = parse_expires_on(raw_expiry)
        if expires_on is None:
            problem = (
                "is missing"
                if "expires_on" not in body
                else f"is not epoch seconds or a date ({_describe(raw_expiry)})"
            )
            raise UnexpectedResponseError(
                f"The token endpoint answered 200 but 'expires_on' {problem}; the token's expiry is unknown.",
                **common,
            )
        client_id = body.get("client_id")
        return cls(
            token,
            resource=resource_requested,
            identity=identity,
            expires_on=expires_on,
            not_before=parse_expires_on(body.get("not_before")),
            expires_in=_as_int(body.get("expires_in")),
            token_type=str(body.get("token_type") or "Bearer"),
            client_id=client_id if isinstance(client_id, str) and client_id else None,
            fetched_at=fetched_at,
            source="imds",
            timeline=timeline,
            endpoint=endpoint,
        )

    # --- immutability, copying, pickling --------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"AccessToken is immutable; use with_source() or build a new one (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"AccessToken is immutable (cannot delete {name!r})")

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
        return self._secret

    @property
    def fingerprint(self) -> str:
        """``"sha256:"`` + the first 8 hex digits of the token's SHA-256: tells tokens apart safely."""
        return "sha256:" + hashlib.sha256(self._secret.encode("utf-8")).hexdigest()[:8]

    @property
    def claims(self) -> Claims:
        """The decoded claims (unverified), decoded on first use with :func:`mi_notebook.claims.decode`."""
        if self._claims is None:
            from .claims import decode

            object.__setattr__(self, "_claims", decode(self))
        return self._claims  # type: ignore[return-value]

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
        payload = _jwt_payload(self._secret)
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

    def with_source(self, source: Source) -> AccessToken:
        """The same token, marked as coming from ``"imds"`` or the ``"cache"``.

        Example::

            >>> AccessToken("a.b.c", resource="api://x", expires_on=1).with_source("cache").source
            'cache'
        """
        if source == self.source:
            return self
        copy = AccessToken(
            self._secret,
            resource=self.resource,
            identity=self.identity,
            expires_on=self.expires_on,
            not_before=self.not_before,
            expires_in=self.expires_in,
            token_type=self.token_type,
            client_id=self.client_id,
            fetched_at=self.fetched_at,
            source=source,
            timeline=self.timeline,
            endpoint=self.endpoint,
        )
        object.__setattr__(copy, "_claims", self._claims)
        return copy

    def to_dict(self, *, include_token: bool = False) -> dict[str, Any]:
        """Plain data about the token; the token itself only with ``include_token=True``.

        Example::

            >>> d = AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1).to_dict()
            >>> "token" in d, d["fingerprint"], d["expires_on"]
            (False, 'sha256:845e3044', 5)
        """
        data: dict[str, Any] = {
            "resource": self.resource,
            "identity": str(self.identity),
            "identity_selector": list(self.identity.selector) if self.identity.selector else None,
            "expires_on": self.expires_on,
            "not_before": self.not_before,
            "expires_in": self.expires_in,
            "token_type": self.token_type,
            "client_id": self.client_id,
            "fetched_at": self.fetched_at,
            "source": self.source,
            "endpoint": self.endpoint,
            "fingerprint": self.fingerprint,
            "exp_skew": self.exp_skew,
            "attempts": len(self.timeline) if self.timeline is not None else None,
        }
        if include_token:
            data["token"] = self._secret
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccessToken:
        """Rebuild a token exported with ``to_dict(include_token=True)`` (the timeline is not kept).

        Example::

            >>> tok = AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1)
            >>> AccessToken.from_dict(tok.to_dict(include_token=True)) == tok
            True
        """
        if "token" not in data:
            raise ValueError("from_dict needs the 'token' key: export with to_dict(include_token=True)")
        selector = data.get("identity_selector")
        identity = Identity(**{selector[0]: selector[1]}) if selector else Identity.system()
        return cls(
            data["token"],
            resource=data["resource"],
            identity=identity,
            expires_on=data["expires_on"],
            not_before=data.get("not_before"),
            expires_in=data.get("expires_in"),
            token_type=data.get("token_type") or "Bearer",
            client_id=data.get("client_id"),
            fetched_at=data.get("fetched_at"),
            source=data.get("source") or "imds",
            endpoint=data.get("endpoint"),
        )

    # --- equality and display -------------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (self._secret, self.resource, self.identity, self.expires_on, self.not_before, self.endpoint)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccessToken):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"AccessToken(resource={self.resource!r}, identity={self.identity}, "
            f"expires_on={_utc(self.expires_on)}, fingerprint={self.fingerprint!r}, source={self.source!r})"
        )

    def __str__(self) -> str:
        return (
            f"{self.token_type} token for {self.resource} ({self.identity}), "
            f"expires {_utc(self.expires_on)}, {self.fingerprint}"
        )

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def _repr_html_(self) -> str:
        rows = [
            ("resource", self.resource),
            ("identity", str(self.identity)),
            ("expires_on", f"{_utc(self.expires_on)} ({self.expires_on})"),
            ("not_before", f"{_utc(self.not_before)} ({self.not_before})" if self.not_before is not None else "-"),
            ("fetched_at", _utc(self.fetched_at)),
            ("client_id", self.client_id or "-"),
            ("source", self.source),
            ("fingerprint", self.fingerprint),
        ]
        if self.timeline is not None:
            rows.append(("attempts", self.timeline.summary()))
        cell = "padding:2px 8px;text-align:left;vertical-align:top;border:none"
        body = "".join(
            f'<tr><td style="{cell};color:#57606a">{html.escape(k)}</td>'
            f'<td style="{cell}">{html.escape(str(v))}</td></tr>'
            for k, v in rows
        )
        return (
            '<div style="border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:4px 0;'
            'font-family:system-ui,sans-serif;font-size:13px">'
            f'<div style="font-weight:600">{html.escape(self.token_type)} token '
            '<span style="color:#57606a;font-weight:400">(hidden: use .reveal())</span></div>'
            f'<table style="border-collapse:collapse">{body}</table></div>'
        )


def _describe(value: Any) -> str:
    """A short, safe description of a bad field value (its type, and the text when short)."""
    if isinstance(value, str):
        return f"got {value!r}" if len(value) <= 40 else f"got a {len(value)}-character string"
    return f"got {type(value).__name__}"


# --- the cache ---------------------------------------------------------------------------------------
def refresh_at(token: AccessToken) -> float:
    """When the cache fetches a replacement for ``token`` (epoch seconds).

    Half-way through a token that had at least 2 h left when fetched; otherwise 5 minutes before
    it expires, but not before half-way (so a 2-minute token is refreshed after 1 minute).

    Example::

        >>> day = AccessToken("t", resource="api://x", fetched_at=0, expires_on=86400)
        >>> short = AccessToken("t", resource="api://x", fetched_at=0, expires_on=120)
        >>> hour = AccessToken("t", resource="api://x", fetched_at=0, expires_on=3600)
        >>> refresh_at(day), refresh_at(short), refresh_at(hour)
        (43200.0, 60.0, 3300.0)
    """
    remaining = token.expires_on - token.fetched_at
    halfway = token.fetched_at + remaining / 2
    if remaining >= LONG_LIVED:
        return float(halfway)
    return float(max(token.expires_on - REFRESH_MARGIN, halfway))


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`TokenCache` (a snapshot).

    ``fetches``: calls of a ``fetch`` function (IMDS requests with their retries); ``hits``: calls
    served a cached token; ``failures``: fetches that raised; ``shared``: calls that waited for
    another caller's fetch instead of starting their own; ``refreshes``: fetches made ahead of
    expiry while a valid token was cached.
    """

    fetches: int = 0
    hits: int = 0
    failures: int = 0
    shared: int = 0
    refreshes: int = 0

    def to_dict(self) -> dict[str, int]:
        """Plain data."""
        return asdict(self)


class _Flight:
    """One fetch in progress for one key; followers wait on ``done``."""

    __slots__ = ("done", "token", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: AccessToken | None = None
        self.error: BaseException | None = None


class _Entry:
    __slots__ = ("token", "refresh_at", "hold_until", "flight", "last_error", "last_fetch", "view")

    def __init__(self) -> None:
        self.token: AccessToken | None = None
        self.refresh_at = 0.0
        self.hold_until = 0.0
        self.flight: _Flight | None = None
        self.last_error: BaseException | None = None
        self.last_fetch: float | None = None
        self.view: AccessToken | None = None  # token.with_source("cache"), built once per token


class TokenCache:
    """An in-memory, thread-safe token cache with refresh-ahead and single-flight fetches.

    ``get(key, fetch)`` returns the cached token for ``key`` (marked ``source="cache"``) until its
    refresh time (:func:`refresh_at`), then calls ``fetch()`` once, however many threads ask at
    the same moment: callers holding a valid token keep getting it meanwhile; callers without one
    wait for the fetch and get its token, or its exception. A failed refresh keeps serving the
    valid token and is not retried for 30 s. ``clock`` is the wall clock (injectable for tests).

    Example::

        >>> now = [0.0]
        >>> cache = TokenCache(clock=lambda: now[0])
        >>> fetch = lambda: AccessToken("t", resource="api://x", fetched_at=now[0], expires_on=now[0] + 86400)
        >>> cache.get("k", fetch).source
        'imds'
        >>> now[0] = 43199; cache.get("k", fetch).source
        'cache'
        >>> now[0] = 43200; cache.get("k", fetch).source
        'imds'
        >>> cache.stats
        CacheStats(fetches=2, hits=1, failures=0, shared=0, refreshes=1)
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, retry_hold: float = RETRY_HOLD) -> None:
        self._clock = clock
        self._retry_hold = float(retry_hold)
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self._counts = {"fetches": 0, "hits": 0, "failures": 0, "shared": 0, "refreshes": 0}

    def refresh_at(self, token: AccessToken) -> float:
        """When this cache will next try to replace ``token`` (epoch seconds).

        For a token it holds: the refresh-ahead time of :func:`refresh_at`, pushed back by the
        30 s hold after a failed refresh (or a refresh that brought the same token again). For
        any other token: :func:`refresh_at`.

        Example::

            >>> cache = TokenCache(clock=lambda: 0.0)
            >>> tok = cache.get("k", lambda: AccessToken("t", resource="api://x", fetched_at=0, expires_on=120))
            >>> cache.refresh_at(tok)
            60.0
        """
        with self._lock:
            for entry in self._entries.values():
                if entry.token is not None and entry.token == token:
                    return float(max(entry.refresh_at, entry.hold_until))
        return refresh_at(token)

    def get(self, key: Hashable, fetch: Callable[[], AccessToken], *, force_refresh: bool = False) -> AccessToken:
        """The token for ``key`` (``(endpoint, identity, resource)``), fetching it with ``fetch()`` if needed.

        ``force_refresh=True`` skips the cached token (joining a fetch already in flight) and
        raises if the fetch fails.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            now = self._clock()
            cached = entry.token
            valid = cached is not None and cached.expires_on > now
            flight = entry.flight
            if valid and not force_refresh and (
                now < entry.refresh_at or flight is not None or now < entry.hold_until
            ):
                self._counts["hits"] += 1
                if entry.view is None:  # a hit must stay cheap: reuse one "cache" view per token
                    entry.view = cached.with_source("cache")  # type: ignore[union-attr]
                return entry.view
            leader = flight is None
            if leader:
                flight = entry.flight = _Flight()
                self._counts["fetches"] += 1
                if valid:
                    self._counts["refreshes"] += 1
            else:
                self._counts["shared"] += 1
        assert flight is not None

        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.token  # type: ignore[return-value]

        try:
            token = fetch()
            if not isinstance(token, AccessToken):
                raise TypeError(f"the fetch function must return an AccessToken; got {type(token).__name__}")
        except BaseException as exc:
            fallback = None
            with self._lock:
                self._counts["failures"] += 1
                now = self._clock()
                entry.last_error = exc
                entry.last_fetch = now
                entry.flight = None
                cached = entry.token
                if (
                    isinstance(exc, Exception)
                    and not force_refresh
                    and cached is not None
                    and cached.expires_on > now
                ):
                    entry.hold_until = now + self._retry_hold
                    self._counts["hits"] += 1
                    fallback = cached.with_source("cache")
            flight.error = exc
            flight.done.set()
            if fallback is not None:
                return fallback
            raise

        with self._lock:
            now = self._clock()
            previous = entry.token
            entry.token = token
            entry.view = None
            entry.last_error = None
            entry.last_fetch = now
            entry.hold_until = 0.0
            next_refresh = refresh_at(token)
            if previous is not None and token.expires_on <= previous.expires_on:
                # IMDS served the same (cached) token again: refreshing ever more often as it
                # nears expiry would not help, so wait at least the hold before asking again.
                next_refresh = max(next_refresh, now + self._retry_hold)
            entry.refresh_at = next_refresh
            entry.flight = None
        flight.token = token
        flight.done.set()
        return token

    def invalidate(self, key: Hashable) -> bool:
        """Forget the token for ``key`` (e.g. after a service rejected it); ``True`` if there was one."""
        with self._lock:
            entry = self._entries.pop(key, None)
        return entry is not None and entry.token is not None

    def clear(self) -> None:
        """Forget every token (fetches in flight finish, but their tokens are not kept)."""
        with self._lock:
            self._entries.clear()

    def tokens(self) -> list[AccessToken]:
        """The cached tokens (the latest per key, expired ones included), oldest fetch first."""
        with self._lock:
            found = [e.token for e in self._entries.values() if e.token is not None]
        return sorted(found, key=lambda t: t.fetched_at)

    def entries(self) -> list[dict[str, Any]]:
        """One plain-data row per key: the token's facts, ``refresh_at``, ``hold_until``,
        ``in_flight`` and the last error (as text), for tables and widgets. Never the token.
        """
        with self._lock:
            items = list(self._entries.items())
            rows = []
            for key, e in items:
                rows.append(
                    {
                        "key": key,
                        "token": e.token,
                        "refresh_at": max(e.refresh_at, e.hold_until) if e.token is not None else None,
                        "hold_until": e.hold_until or None,
                        "in_flight": e.flight is not None,
                        "last_error": f"{type(e.last_error).__name__}: {e.last_error}" if e.last_error else None,
                    }
                )
        return rows

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters (fetches, hits, failures, shared, refreshes)."""
        with self._lock:
            return CacheStats(**self._counts)

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.token is not None)

    def __repr__(self) -> str:
        s = self.stats
        return f"TokenCache({len(self)} tokens, fetches={s.fetches}, hits={s.hits}, failures={s.failures})"


_DEFAULT: TokenCache | None = None
_DEFAULT_LOCK = threading.Lock()


def default_cache() -> TokenCache:
    """The process-wide cache that ``get_token`` and the credential share.

    Example::

        >>> default_cache() is default_cache()
        True
    """
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = TokenCache()
    return _DEFAULT
