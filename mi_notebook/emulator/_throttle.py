"""IMDS's per-VM limits: a requests-per-second window and a concurrent-requests cap.

Documented limits: the managed-identity endpoint takes 20 requests per second and 5 concurrent
requests per VM; the rest of IMDS 5 requests per second. Beyond that: 429. The window is a sliding
one-second window over accepted requests, measured with the emulator's (injectable) clock.

Example::

    >>> now = [100.0]
    >>> limiter = RateLimiter(2, clock=lambda: now[0])
    >>> [limiter.try_acquire() for _ in range(3)]
    [True, True, False]
    >>> now[0] += 1.0
    >>> limiter.try_acquire()
    True
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["ConcurrencyLimiter", "RateLimiter"]


class RateLimiter:
    """At most ``rate`` accepted calls in any ``window`` seconds (rejected calls do not count).

    Example::

        >>> now = [0.0]
        >>> limiter = RateLimiter(1, window=2.0, clock=lambda: now[0])
        >>> limiter.try_acquire(), limiter.try_acquire(), limiter.retry_after()
        (True, False, 2.0)
        >>> now[0] = 2.0; limiter.try_acquire()
        True
    """

    def __init__(self, rate: int, *, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 1:
            raise ValueError("rate must be >= 1")
        self.rate = rate
        self.window = window
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        now = self._clock()
        with self._lock:
            while self._stamps and now - self._stamps[0] >= self.window:
                self._stamps.popleft()
            if len(self._stamps) >= self.rate:
                return False
            self._stamps.append(now)
            return True

    def retry_after(self) -> float:
        """Seconds until the window has room again (0 when it has room now)."""
        now = self._clock()
        with self._lock:
            if len(self._stamps) < self.rate:
                return 0.0
            return max(0.0, self._stamps[0] + self.window - now)

    def reset(self) -> None:
        with self._lock:
            self._stamps.clear()


class ConcurrencyLimiter:
    """At most ``limit`` requests in flight; ``try_enter`` fails instead of waiting.

    Example::

        >>> c = ConcurrencyLimiter(1)
        >>> c.try_enter(), c.try_enter()
        (True, False)
        >>> c.leave(); c.try_enter()
        True
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self._in_flight >= self.limit:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    @property
    def in_flight(self) -> int:
        return self._in_flight
