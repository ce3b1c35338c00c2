"""The per-process token cache: refresh ahead of expiry, one fetch per key at a time.

:class:`TokenCache` refreshes ahead of expiry (half-way through a long-lived token, five minutes
before the end of a short one), lets only one caller per key talk to the endpoint at a time (the
others share its result, or keep using the still-valid token), and after a failed refresh keeps
serving the valid token and waits 30 s before trying again. Its time is a
:class:`~mi_notebook.clock.Clock` (the wall clock part), so tests move it by hand.

Example::

    >>> from mi_notebook.cache import CacheKey, TokenCache
    >>> from mi_notebook.clock import VirtualClock
    >>> from mi_notebook.identity import Identity
    >>> from mi_notebook.tokens import AccessToken
    >>> tok = AccessToken("t", resource="https://management.azure.com/", expires_on=2000, fetched_at=1000)
    >>> cache = TokenCache(clock=VirtualClock(1100))
    >>> key = CacheKey("http://127.0.0.1:1", Identity.system(), tok.resource)  # usually CacheKey.of(source, ...)
    >>> cache.get(key, lambda: tok).from_cache, cache.get(key, lambda: tok).from_cache
    (False, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .clock import SYSTEM_CLOCK, Clock
from .identity import Identity
from .tokens import AccessToken

__all__ = ["CacheKey", "CacheStats", "Scoped", "TokenCache", "default_cache", "refresh_at"]

#: a long-lived token (>= 2 h left when fetched) is refreshed half-way through
LONG_LIVED = 7200.0
#: a short-lived token is refreshed this long before it expires (but not before half-way)
REFRESH_MARGIN = 300.0
#: after a failed refresh (or one that brought no newer token), wait this long before the next
RETRY_HOLD = 30.0


class Scoped(Protocol):
    """What chooses a token besides the identity and the resource: a source's ``host``, ``endpoint``
    and ``fingerprint`` (a keyed digest of its secret settings, or ``None``). Every token source has them.
    """

    @property
    def host(self) -> str: ...  # pragma: no cover - a protocol

    @property
    def endpoint(self) -> str: ...  # pragma: no cover

    @property
    def fingerprint(self) -> str | None: ...  # pragma: no cover


class CacheKey(str):
    """The TokenCache key: a digest of everything that chose a token, carrying its ``identity`` and
    ``resource`` (what a fetch asks for).

    :meth:`of` builds the key of a token from the whole normalised description: the source's host,
    its endpoint, the fingerprint of its secret, the identity *as resolved* and the resource URI, so a
    different secret, host or endpoint, or an identity the host resolves differently (Azure ML's
    ``DEFAULT_IDENTITY_CLIENT_ID``), never meets another's token. ``CacheKey(scope, identity,
    resource)`` makes one from any ``scope`` text. The key is the digest itself (a ``str``): a cache
    look-up hashes and compares it at C speed, the hash computed once.

    Example::

        >>> from types import SimpleNamespace
        >>> ml = SimpleNamespace(host="azureml", endpoint="http://127.0.0.1:1/MSI/auth", fingerprint="f1")
        >>> key = CacheKey.of(ml, Identity.system(), "https://management.azure.com/")
        >>> key[:7], key.identity, key.resource
        ('sha256:', Identity.system(), 'https://management.azure.com/')
        >>> key == CacheKey.of(SimpleNamespace(**{**vars(ml), "fingerprint": "f2"}), Identity.system(), key.resource)
        False
    """

    identity: Identity
    resource: str
    scope: str

    def __new__(cls, scope: str, identity: Identity, resource: str) -> CacheKey:
        described = json.dumps([scope, list(identity.selector or ()), resource])
        self = super().__new__(cls, "sha256:" + hashlib.sha256(described.encode("utf-8")).hexdigest())
        self.scope, self.identity, self.resource = scope, identity, resource
        return self

    @classmethod
    def of(cls, source: Scoped, identity: Identity, resource: str) -> CacheKey:
        """The key of the token ``source`` fetches for ``identity`` (as resolved) and ``resource`` (a URI)."""
        parts, endpoint = urlsplit(source.endpoint.strip()), source.endpoint.strip()
        with contextlib.suppress(ValueError):  # scheme and host are case-insensitive; a trailing "/" says nothing
            endpoint = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"),
                                   parts.query, ""))
        return cls(json.dumps([source.host, endpoint, source.fingerprint]), identity, resource)

    def __reduce__(self) -> tuple[Any, ...]:
        return (CacheKey, (self.scope, self.identity, self.resource))

    def __repr__(self) -> str:
        return f"CacheKey({str.__repr__(self)[:20]}...', identity={self.identity}, resource={self.resource!r})"


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

    Example::

        >>> CacheStats(fetches=1, hits=3).to_dict()
        {'fetches': 1, 'hits': 3, 'failures': 0, 'shared': 0, 'refreshes': 0}
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
        self.view: AccessToken | None = None  # token.served_from_cache(), built once per token


class TokenCache:
    """An in-memory, thread-safe token cache with refresh-ahead and single-flight fetches.

    ``get(key, fetch)`` returns the cached token for ``key`` (marked ``from_cache``) until its
    refresh time (:func:`refresh_at`), then calls ``fetch()`` once, however many threads ask at
    the same moment: callers holding a valid token keep getting it meanwhile; callers without one
    wait for the fetch and get its token, or its exception. A failed refresh keeps serving the
    valid token and is not retried for 30 s. ``clock``: a :class:`~mi_notebook.clock.Clock`
    whose ``wall()`` is used (a ``VirtualClock`` in tests).

    Example::

        >>> from mi_notebook.clock import VirtualClock
        >>> clock = VirtualClock(0)
        >>> cache = TokenCache(clock=clock)
        >>> fetch = lambda: AccessToken("t", resource="api://x", fetched_at=clock.now, expires_on=clock.now + 86400)
        >>> cache.get("k", fetch).from_cache
        False
        >>> clock.now = 43199; cache.get("k", fetch).from_cache
        True
        >>> clock.now = 43200; cache.get("k", fetch).from_cache
        False
        >>> cache.stats
        CacheStats(fetches=2, hits=1, failures=0, shared=0, refreshes=1)
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, retry_hold: float = RETRY_HOLD) -> None:
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must be a mi_notebook.clock.Clock (e.g. VirtualClock(...)); got {clock!r}")
        self._clock = clock.wall
        self._retry_hold = float(retry_hold)
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self._counts = {"fetches": 0, "hits": 0, "failures": 0, "shared": 0, "refreshes": 0}
        # The hot path: key -> (the "from cache" view, until when it may be served without the lock).
        # Each value is an immutable snapshot replaced (under the lock) whenever its entry changes, so
        # a hit is a dictionary look-up and a time comparison; everything else takes the lock.
        self._fresh: dict[Hashable, tuple[AccessToken, float]] = {}
        self._fast_hits = itertools.count()  # next() on it is atomic: no lock, no lost count

    def refresh_at(self, token: AccessToken) -> float:
        """When this cache will next try to replace ``token`` (epoch seconds).

        For a token it holds: the refresh-ahead time of :func:`refresh_at`, pushed back by the
        30 s hold after a failed refresh (or a refresh that brought the same token again). For
        any other token: :func:`refresh_at`.

        Example::

            >>> from mi_notebook.clock import VirtualClock
            >>> cache = TokenCache(clock=VirtualClock(0))
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
        """The token for ``key`` (a :class:`CacheKey`), fetching it with ``fetch()`` if needed.

        ``force_refresh=True`` skips the cached token (joining a fetch already in flight) and
        raises if the fetch fails.
        """
        if not force_refresh:
            fresh = self._fresh.get(key)
            if fresh is not None and self._clock() < fresh[1]:
                next(self._fast_hits)
                return fresh[0]
        return self._load(key, fetch, force_refresh)

    def _publish(self, key: Hashable, entry: _Entry) -> None:
        """Replace ``key``'s hot-path snapshot after its entry changed (called under the lock)."""
        token = entry.token
        if token is None or self._entries.get(key) is not entry:
            self._fresh.pop(key, None)
            return
        if entry.view is None:
            entry.view = token.served_from_cache()
        self._fresh[key] = (entry.view, min(max(entry.refresh_at, entry.hold_until), float(token.expires_on)))

    def _load(self, key: Hashable, fetch: Callable[[], AccessToken], force_refresh: bool) -> AccessToken:
        """``get`` past the hot path: the locked look-up, single-flight fetch and refresh-ahead."""
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
                    entry.view = cached.served_from_cache()  # type: ignore[union-attr]
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
                    fallback = cached.served_from_cache()
                    self._publish(key, entry)
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
            self._publish(key, entry)
        flight.token = token
        flight.done.set()
        return token

    def invalidate(self, key: Hashable) -> bool:
        """Forget the token for ``key`` (e.g. after a service rejected it); ``True`` if there was one."""
        with self._lock:
            entry = self._entries.pop(key, None)
            self._fresh.pop(key, None)
        return entry is not None and entry.token is not None

    def clear(self) -> None:
        """Forget every token (fetches in flight finish, but their tokens are not kept)."""
        with self._lock:
            self._entries.clear()
            self._fresh.clear()

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
            counts = dict(self._counts)
        counts["hits"] += int(repr(self._fast_hits)[len("count("):-1])  # its value, without counting one
        return CacheStats(**counts)

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
