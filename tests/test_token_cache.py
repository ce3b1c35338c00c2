"""TokenCache: hits and misses, refresh-ahead in virtual time, failed refreshes, single-flight."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import VirtualClock

from mi_notebook.cache import CacheStats, TokenCache, default_cache, refresh_at
from mi_notebook.identity import Identity
from mi_notebook.tokens import AccessToken

ARM = "https://management.azure.com/"
KEY = ("http://127.0.0.1:5000", Identity.system(), ARM)
T0 = 1_800_000_000.0
WAIT = 10.0  # upper bound for any thread hand-over in these tests (normally milliseconds)


class Fetcher:
    """A fetch function issuing numbered tokens that live ``lifetime`` seconds from the clock's now."""

    def __init__(self, clock: VirtualClock, lifetime: float = 86_400, *, same_token: bool = False) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail_with: BaseException | None = None
        self.same_token = same_token
        self._first: AccessToken | None = None

    def __call__(self) -> AccessToken:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        if self.same_token and self._first is not None:
            # like IMDS serving its own cached token: same token, same expires_on
            first = self._first
            return AccessToken(first.reveal(), resource=ARM, expires_on=first.expires_on,
                               fetched_at=self.clock.now)
        tok = AccessToken(f"token-{self.calls}", resource=ARM, fetched_at=self.clock.now,
                          expires_on=int(self.clock.now + self.lifetime))
        self._first = self._first or tok
        return tok


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


def test_miss_then_hits(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock)
    first = cache.get(KEY, fetch)
    assert first.from_cache is False and first.reveal() == "token-1"
    clock.now += 60
    second = cache.get(KEY, fetch)
    assert second.from_cache and second.reveal() == "token-1" and second == first
    assert fetch.calls == 1
    assert cache.stats == CacheStats(fetches=1, hits=1, failures=0, shared=0, refreshes=0)
    assert cache.tokens() == [first] and len(cache) == 1


def test_keys_are_independent(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock)
    vault = ("http://127.0.0.1:5000", Identity.system(), "https://vault.azure.net")
    uai = ("http://127.0.0.1:5000", Identity.user(client_id="6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"), ARM)
    tokens = {cache.get(k, fetch).reveal() for k in (KEY, vault, uai)}
    assert tokens == {"token-1", "token-2", "token-3"} and fetch.calls == 3
    assert cache.get(vault, fetch).reveal() == "token-2"


@pytest.mark.parametrize(
    ("lifetime", "refresh_after"),
    [
        (86_400, 43_200),  # 24 h: half-way
        (7_200, 3_600),  # exactly 2 h: half-way
        (3_600, 3_300),  # 1 h: 5 minutes before expiry
        (120, 60),  # 2 min: half-way (5 minutes before would be before it was fetched)
    ],
)
def test_refresh_ahead_happens_at_the_right_virtual_time(clock, lifetime, refresh_after):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock, lifetime)
    cache.get(KEY, fetch)
    assert refresh_at(cache.tokens()[0]) == T0 + refresh_after
    assert cache.refresh_at(cache.tokens()[0]) == T0 + refresh_after
    clock.now = T0 + refresh_after - 1
    assert cache.get(KEY, fetch).from_cache and fetch.calls == 1
    clock.now = T0 + refresh_after
    refreshed = cache.get(KEY, fetch)
    assert refreshed.from_cache is False and refreshed.reveal() == "token-2" and fetch.calls == 2
    assert cache.stats.refreshes == 1
    # the next refresh is scheduled from the new token
    clock.now = T0 + refresh_after + refresh_after - 1
    assert cache.get(KEY, fetch).reveal() == "token-2" and fetch.calls == 2
    clock.now = T0 + 2 * refresh_after
    assert cache.get(KEY, fetch).reveal() == "token-3"


def test_a_24h_token_over_a_day(clock):
    """Refreshes at 12 h, 24 h, ...: the user never sees an expired token, IMDS is asked rarely."""
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock, 86_400)
    for minute in range(0, 48 * 60, 7):
        clock.now = T0 + minute * 60
        tok = cache.get(KEY, fetch)
        assert tok.time_left(clock.now) > 43_000
    assert fetch.calls == 4  # 0 h, 12 h, 24 h, 36 h


def _calls_until_expiry(retry_hold: float) -> int:
    clock = VirtualClock(T0)
    cache = TokenCache(clock=clock, retry_hold=retry_hold)
    fetch = Fetcher(clock, 600, same_token=True)  # 10 minutes left: refresh at 5 minutes
    cache.get(KEY, fetch)
    expires_on = cache.tokens()[0].expires_on
    while clock.now < expires_on:
        cache.get(KEY, fetch)
        clock.now += 0.25
    return fetch.calls


def test_imds_serving_the_same_token_does_not_cause_a_refresh_storm():
    # at 0, 300, 450, 525, 562.5 s, then 30 s later (592.5 s), then it is expired
    assert _calls_until_expiry(30.0) == 6
    # without the 30 s floor the halving schedule asks IMDS ever more often near expiry
    assert _calls_until_expiry(0.0) > 10


def test_failed_refresh_serves_the_valid_token_and_holds_off_30s(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock, 86_400)
    cache.get(KEY, fetch)
    clock.now = T0 + 43_200
    fetch.fail_with = ConnectionError("IMDS unreachable")
    served = cache.get(KEY, fetch)
    assert served.reveal() == "token-1" and served.from_cache
    assert fetch.calls == 2 and cache.stats.failures == 1
    entry = cache.entries()[0]
    assert entry["last_error"] == "ConnectionError: IMDS unreachable"
    assert entry["hold_until"] == T0 + 43_200 + 30
    assert entry["refresh_at"] == cache.refresh_at(served) == T0 + 43_230  # the next try
    # within 30 s: no new attempt, the valid token is served
    for dt in (1, 10, 29.9):
        clock.now = T0 + 43_200 + dt
        assert cache.get(KEY, fetch).reveal() == "token-1"
    assert fetch.calls == 2
    # after 30 s: try again (fails again: still served, another 30 s)
    clock.now = T0 + 43_230
    assert cache.get(KEY, fetch).reveal() == "token-1" and fetch.calls == 3
    clock.now = T0 + 43_259
    cache.get(KEY, fetch)
    assert fetch.calls == 3
    # IMDS is back
    fetch.fail_with = None
    clock.now = T0 + 43_260
    assert cache.get(KEY, fetch).reveal() == "token-4" and fetch.calls == 4
    assert cache.entries()[0]["last_error"] is None


def test_failure_without_a_valid_token_raises_and_is_not_held_off(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock)
    fetch.fail_with = TimeoutError("no answer")
    with pytest.raises(TimeoutError):
        cache.get(KEY, fetch)
    with pytest.raises(TimeoutError):
        cache.get(KEY, fetch)
    assert fetch.calls == 2 and cache.tokens() == []
    fetch.fail_with = None
    assert cache.get(KEY, fetch).from_cache is False


def test_expired_token_is_never_served(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock, 120)
    cache.get(KEY, fetch)
    clock.now = T0 + 60
    fetch.fail_with = OSError("down")
    assert cache.get(KEY, fetch).reveal() == "token-1"  # refresh failed, still valid
    clock.now = T0 + 120  # expired now, hold-off or not
    with pytest.raises(OSError):
        cache.get(KEY, fetch)


def test_force_refresh(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock)
    cache.get(KEY, fetch)
    fresh = cache.get(KEY, fetch, force_refresh=True)
    assert fresh.reveal() == "token-2" and fresh.from_cache is False and fetch.calls == 2
    assert cache.get(KEY, fetch).reveal() == "token-2"
    # an explicit refresh that fails raises (the caller asked for a new token) ...
    fetch.fail_with = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        cache.get(KEY, fetch, force_refresh=True)
    # ... and the cached token stays usable
    assert cache.get(KEY, fetch).reveal() == "token-2"


def test_clear_and_invalidate(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock)
    cache.get(KEY, fetch)
    cache.clear()
    assert cache.tokens() == [] and len(cache) == 0
    assert cache.get(KEY, fetch).reveal() == "token-2"
    assert cache.invalidate(KEY) is True and cache.invalidate(KEY) is False
    assert cache.get(KEY, fetch).reveal() == "token-3"


def test_fetch_must_return_an_access_token(clock):
    cache = TokenCache(clock=clock)
    with pytest.raises(TypeError, match="must return an AccessToken"):
        cache.get(KEY, lambda: "a raw string")  # type: ignore[arg-type,return-value]
    assert cache.stats.failures == 1


def test_base_exceptions_propagate_and_release_the_key(clock):
    cache = TokenCache(clock=clock)
    fetch = Fetcher(clock)
    cache.get(KEY, fetch)
    clock.now = T0 + 50_000
    fetch.fail_with = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        cache.get(KEY, fetch)
    fetch.fail_with = None
    clock.now += 31
    assert cache.get(KEY, fetch).from_cache is False


def test_entries_and_repr_never_show_the_token(clock):
    cache = TokenCache(clock=clock)
    cache.get(KEY, Fetcher(clock))
    assert "token-1" not in repr(cache.entries()) and "token-1" not in repr(cache)
    assert repr(cache) == "TokenCache(1 tokens, fetches=1, hits=0, failures=0)"


def test_default_cache_is_process_wide():
    assert default_cache() is default_cache()
    assert isinstance(default_cache(), TokenCache)


# --- threads ------------------------------------------------------------------------------------------
def _wait_until(predicate, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the threads")
        time.sleep(0.001)


def _run_threads(n: int, target) -> tuple[list, list[threading.Thread]]:
    results: list = [None] * n

    def body(i: int) -> None:
        try:
            results[i] = target()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return results, threads


@pytest.mark.timeout(30)
def test_single_flight_64_threads_one_fetch():
    cache = TokenCache()
    release = threading.Event()
    calls = []

    def fetch() -> AccessToken:
        calls.append(threading.get_ident())
        assert release.wait(WAIT), "never released"
        return AccessToken("shared-token", resource=ARM, expires_on=int(time.time()) + 86_400)

    results, threads = _run_threads(64, lambda: cache.get(KEY, fetch))
    # every other caller is now waiting for the one fetch in flight
    _wait_until(lambda: cache.stats.shared == 63)
    assert len(calls) == 1
    release.set()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert len(calls) == 1
    assert all(isinstance(r, AccessToken) and r.reveal() == "shared-token" for r in results)
    assert cache.stats.fetches == 1 and cache.stats.shared == 63


@pytest.mark.timeout(30)
def test_waiting_callers_get_the_leaders_exception():
    cache = TokenCache()
    release = threading.Event()

    def fetch() -> AccessToken:
        assert release.wait(WAIT)
        raise ConnectionRefusedError("IMDS refused")

    results, threads = _run_threads(16, lambda: cache.get(KEY, fetch))
    _wait_until(lambda: cache.stats.shared == 15)
    release.set()
    for t in threads:
        t.join(WAIT)
    assert all(isinstance(r, ConnectionRefusedError) for r in results)
    assert cache.stats.fetches == 1 and cache.stats.failures == 1


@pytest.mark.timeout(30)
def test_callers_with_a_valid_token_do_not_wait_for_the_refresh():
    clock = VirtualClock(T0)
    cache = TokenCache(clock=clock)
    cache.get(KEY, Fetcher(clock, 86_400))
    clock.now = T0 + 50_000  # refresh due, token still valid for hours
    release = threading.Event()
    started = threading.Event()

    def slow_fetch() -> AccessToken:
        started.set()
        assert release.wait(WAIT)
        return AccessToken("token-new", resource=ARM, fetched_at=clock.now, expires_on=int(clock.now + 86_400))

    leader_result, leader = _run_threads(1, lambda: cache.get(KEY, slow_fetch))
    assert started.wait(WAIT)
    # while the refresh is in flight, 32 more callers are served the cached token at once
    began = time.monotonic()
    results, threads = _run_threads(32, lambda: cache.get(KEY, slow_fetch))
    for t in threads:
        t.join(WAIT)
    assert time.monotonic() - began < WAIT / 2
    assert all(r.reveal() == "token-1" and r.from_cache for r in results)
    release.set()
    leader[0].join(WAIT)
    assert leader_result[0].reveal() == "token-new"
    assert cache.get(KEY, slow_fetch).reveal() == "token-new"
    assert cache.stats.fetches == 2


@pytest.mark.timeout(30)
def test_hammering_many_keys_from_many_threads_is_consistent():
    cache = TokenCache()
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def fetch_for(resource: str):
        def fetch() -> AccessToken:
            with lock:
                counts[resource] = counts.get(resource, 0) + 1
            time.sleep(0.002)
            return AccessToken(f"tok-{resource}", resource=resource, expires_on=int(time.time()) + 3600)

        return fetch

    resources = [f"api://app-{i}" for i in range(8)]

    def worker() -> list[str]:
        return [cache.get(("e", Identity.system(), r), fetch_for(r)).reveal() for r in resources * 5]

    results, threads = _run_threads(24, worker)
    for t in threads:
        t.join(WAIT)
    assert all(r == [f"tok-{x}" for x in resources * 5] for r in results)
    assert counts == {r: 1 for r in resources}
    assert cache.stats.fetches == 8
