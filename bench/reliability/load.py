"""Load: many threads asking for tokens through faults, and the emulator under a storm of connections.

:func:`run_token_load`: 64 threads x 1,000 ``get_token`` calls over 3 identities x 2 resources with
intermittent 429 / 500 at the token endpoint and short-lived tokens (virtual time);
:func:`run_emulator_storm`: 200 concurrent connections to the emulator with its throttling on or off.

Example::

    >>> storm = run_emulator_storm(8, throttle=False)
    >>> storm.statuses, storm.unanswered, storm.serving_after
    (Counter({200: 8}), 0, True)
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from bench.reliability.records import logged
from bench.reliability.seams import VirtualClock, explicit_connection, intercept_token_requests
from mi_notebook import errors


@dataclass
class LoadResult:
    """What the many-thread ``get_token`` run produced (see :func:`run_token_load`)."""

    threads: int
    calls: int
    errors: list[str]  # errors that reached a caller while a valid token existed
    errors_no_valid_token: int  # errors of callers for whose key no valid token existed any more
    seconds: float
    virtual_seconds: float
    lifetime: int
    keys: int
    refreshes: dict[Any, int]  # key -> successful fetches (IMDS round trips that ended with a token)
    failed_fetches: int  # fetches that gave up (every attempt failed): the valid token was served instead
    answers_200: dict[Any, int]  # key -> 200 answers logged by the emulator
    tokens_seen: dict[Any, int]  # key -> distinct tokens callers got
    attempts: int  # attempts recorded by the fetches' timelines
    requests: int  # token requests logged by the emulator
    failed_answers: int  # injected 429 / 500 answers (absorbed by retries)
    expired_served: int
    alive: int

    @property
    def requests_per_refresh(self) -> float:
        """Successful token answers the emulator logged per successful refresh (single-flight: 1.0)."""
        total = sum(self.refreshes.values())
        return sum(self.answers_200.values()) / total if total else 0.0

    @property
    def most_refreshes_allowed(self) -> int:
        """Refresh-ahead at half-life: one refresh per ``lifetime / 2`` of virtual time, plus the first."""
        return int(self.virtual_seconds // (self.lifetime / 2)) + 2


class CallClock:
    """Virtual epoch time that advances ``step`` s with each ``get_token`` call made (``tick``).

    While a token request is in flight (``pause()`` / ``resume()``) time stands still: IMDS answers
    in milliseconds and tokens live for hours, and without this a fetch starved of the GIL by 63
    busy threads would see minutes of virtual time go by.

    Example::

        >>> clock = CallClock(start=100.0, step=0.5)
        >>> clock.tick(); clock.pause(); clock.tick(); clock.resume(); clock.tick(); clock()
        101.0
    """

    def __init__(self, start: float = 1_800_000_000.0, step: float = 0.05) -> None:
        self.start, self.step = start, step
        self._n = 0
        self._paused = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        """One ``get_token`` call made: ``step`` s pass, unless a token request is in flight."""
        with self._lock:
            if not self._paused:
                self._n += 1

    def pause(self) -> None:
        """A token request starts: time stands still until the matching :meth:`resume`."""
        with self._lock:
            self._paused += 1

    def resume(self) -> None:
        """A token request ended."""
        with self._lock:
            self._paused -= 1

    def __call__(self) -> float:
        return self.start + self._n * self.step


def run_token_load(threads: int = 64, calls: int = 1000, *, lifetime: int = 300, step: float = 0.5,
                   burst: int = 4, gap: float = 60.0, time_limit: float = 60.0) -> LoadResult:
    """``threads`` x ``calls`` ``get_token`` over 3 identities x 2 resources, 429 / 500 bursts injected.

    Tokens live ``lifetime`` s of virtual time and the clock moves ``step`` s per call, so every key
    is refreshed many times. Bursts of at most ``burst`` faults (fewer than the policy's 5 attempts)
    are injected at the token endpoint ``gap`` s of *virtual* time after the previous burst is used up
    (paced by the calls, not by the machine's speed, so a loaded machine meets the same fault rate),
    and concurrent refreshes share them.
    Retry waits are virtual. ``errors`` lists the errors that reached a caller while a token for that
    key was still valid (must be none); ``errors_no_valid_token`` counts the others. Returns the counts
    the load test checks.

    Example::

        >>> load = run_token_load(threads=4, calls=200, lifetime=20)
        >>> load.errors, load.expired_served, load.alive, load.requests_per_refresh
        ([], 0, 0, 1.0)
    """
    from mi_notebook.cache import TokenCache
    from mi_notebook.clock import Clock
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity
    from mi_notebook.sources.imds import ImdsClient

    clock = CallClock(step=step)
    emu = Emulator(throttle=False, clock=clock, seed="load", token_lifetime=lifetime, user_assigned=2)
    retry_time = VirtualClock()
    errors_seen: list[str] = []
    seen: dict[Any, set[str]] = defaultdict(set)
    fetched: Counter = Counter()
    counters = {"expired": 0, "attempts": 0, "failed_fetches": 0, "injected": 0, "errors_no_valid_token": 0}
    lock = threading.Lock()
    with emu:
        client = ImdsClient(url=emu.imds_url, timeout=(2.0, 5.0),
                            clock=Clock(monotonic=retry_time, sleep=retry_time.sleep, wall=clock, rng=random.Random(3)))

        def counted(request_token: Any, resource: str, identity: Any = None, **kw: Any) -> Any:
            clock.pause()
            try:
                tok = request_token(resource, identity, **kw)
            except errors.ManagedIdentityError as exc:
                with lock:
                    counters["failed_fetches"] += 1
                    counters["attempts"] += len(exc.timeline or ())
                raise
            finally:
                clock.resume()
            with lock:
                fetched[(identity, resource)] += 1
                counters["attempts"] += len(tok.timeline or ())
            return tok

        intercept_token_requests(client, counted)
        conn = explicit_connection(emu.imds_url, client, "load")
        cache = TokenCache(clock=Clock(wall=clock))
        identities = [Identity.system(), *(Identity.user(client_id=i.client_id) for i in emu.vm.user_identities)]
        keys = [(ident, res) for ident in identities for res in ("arm", "vault")]
        latest: dict[Any, float] = {}
        for ident, res in keys:  # every key holds a valid token before the faults start
            latest[(ident, res)] = conn.get_token(res, identity=ident, cache=cache).expires_on
        emu.requests.clear()
        fetched.clear()
        counters["attempts"] = 0
        stop = threading.Event()

        def injector() -> None:
            rng = random.Random(11)
            used_up_at: float | None = None
            while not stop.is_set():
                if len(emu.faults) == 0:
                    now = clock()
                    used_up_at = now if used_up_at is None else used_up_at
                    if now - used_up_at >= gap:
                        emu.inject(rng.choice([429, 500]), "token", count=rng.randint(1, burst))
                        counters["injected"] += 1
                        used_up_at = None
                stop.wait(0.001)

        def worker(n: int) -> None:
            rng = random.Random(n)
            for _ in range(calls):
                key = keys[rng.randrange(len(keys))]
                with lock:
                    asked_at = clock()
                    known = latest[key]  # the newest expiry a caller has seen for this key
                try:
                    tok = conn.get_token(key[1], identity=key[0], cache=cache)
                except Exception as exc:  # noqa: BLE001 - any error reaching a caller is what is counted
                    with lock:
                        # A bug only if a token known before asking is valid even now: virtual time
                        # moves with other threads' calls, so it may have expired while this call
                        # waited for the GIL, and then an error is the right answer.
                        if known > clock():
                            errors_seen.append(f"{type(exc).__name__}: {exc}")
                        else:
                            counters["errors_no_valid_token"] += 1
                else:
                    with lock:
                        seen[key].add(tok.fingerprint)
                        latest[key] = max(latest[key], tok.expires_on)
                        if tok.expires_on <= asked_at:
                            counters["expired"] += 1
                clock.tick()

        started = time.monotonic()
        pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
        side = threading.Thread(target=injector, daemon=True)
        side.start()
        for t in pool:
            t.start()
        for t in pool:
            t.join(max(0.1, time_limit - (time.monotonic() - started)))
        stop.set()
        side.join(5)
        seconds = time.monotonic() - started
        alive = sum(t.is_alive() for t in pool)
        emu.clear_faults()
        records = logged(emu, counters["attempts"], "token", service="imds")
        client.close()
    uris = {"https://management.azure.com/": "arm", "https://vault.azure.net": "vault"}
    by_client_id = {ident.client_id: ident for ident in identities if ident.client_id}
    answers: Counter = Counter()
    for r in records:
        if r.status == 200:
            ident = by_client_id.get((r.query.get("client_id") or [None])[0], Identity.system())
            answers[(ident, uris.get((r.query.get("resource") or [""])[0], "?"))] += 1
    refreshes = {(ident, uris.get(res, "?")): n for (ident, res), n in fetched.items()}
    return LoadResult(
        threads, calls, errors_seen, counters["errors_no_valid_token"], seconds, clock() - clock.start, lifetime, len(keys), refreshes,
        counters["failed_fetches"], dict(answers), {k: len(v) for k, v in seen.items()}, counters["attempts"],
        len(records), sum(1 for r in records if r.status != 200), counters["expired"], alive)


@dataclass
class StormResult:
    """The emulator under many concurrent connections (see :func:`run_emulator_storm`)."""

    connections: int
    statuses: Counter
    unanswered: int
    seconds: float
    throttled_bodies_ok: bool
    serving_after: bool


def run_emulator_storm(connections: int = 200, *, path: str = "token", throttle: bool = True,
                       latency: float = 0.0) -> StormResult:
    """``connections`` clients at once (a barrier), each one request; the emulator clock is frozen.

    Example::

        >>> storm = run_emulator_storm(30, path="instance", throttle=True)
        >>> storm.statuses[200], storm.statuses[429], storm.throttled_bodies_ok  # 5 per second, the rest 429
        (5, 25, True)
    """
    import requests

    from mi_notebook.emulator import Emulator

    frozen = [1_800_000_000.0]
    emu = Emulator(throttle=throttle, clock=lambda: frozen[0], latency=latency, seed="storm")
    statuses: Counter = Counter()
    bodies: list[Any] = []
    unanswered = [0]
    lock = threading.Lock()
    with emu:
        url = emu.token_url if path == "token" else emu.imds_url + "/metadata/instance"
        params = ({"api-version": "2018-02-01", "resource": "https://management.azure.com/"} if path == "token"
                  else {"api-version": "2021-02-01"})
        barrier = threading.Barrier(connections)

        def one() -> None:
            try:
                barrier.wait(10)
                with requests.Session() as s:
                    s.trust_env = False
                    r = s.get(url, params=params, headers={"Metadata": "true"}, timeout=10)
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 429:
                        bodies.append(r.json())
            except Exception:  # noqa: BLE001 - an unanswered connection is what is counted
                with lock:
                    unanswered[0] += 1

        started = time.monotonic()
        pool = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
        seconds = time.monotonic() - started
        frozen[0] += 1.0  # the rate window moves on
        r = requests.get(url, params=params, headers={"Metadata": "true"}, timeout=5)
        serving = r.status_code == 200
    ok_bodies = all(isinstance(b, dict) and "error" in b for b in bodies)
    if path == "token":
        ok_bodies = ok_bodies and all(b.get("error_description") == "Temporarily throttled, too many requests"
                                      for b in bodies)
    return StormResult(connections, statuses, unanswered[0], seconds, ok_bodies, serving)
