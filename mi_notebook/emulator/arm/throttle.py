"""ARM's request throttling: a token bucket per (subscription, principal) and operation kind.

Documented (ARM "Understand how Azure Resource Manager throttles requests"): reads use a bucket of
250 tokens refilled at 25 per second, per subscription and per security principal; each request takes
one token; an empty bucket answers 429 with ``Retry-After``. What is left goes out in the
``x-ms-ratelimit-remaining-subscription-reads`` header. Time comes from an injectable clock.

Example::

    >>> now = [0.0]
    >>> buckets = TokenBuckets(capacity=2, refill=1.0, clock=lambda: now[0])
    >>> [buckets.take(("sub", "me")) for _ in range(3)]
    [(True, 1, 0.0), (True, 0, 0.0), (False, 0, 1.0)]
    >>> now[0] += 1.0; buckets.take(("sub", "me"))[0]
    True
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["READ_CAPACITY", "READ_REFILL", "TokenBuckets", "throttled_message"]

READ_CAPACITY = 250
READ_REFILL = 25.0


def throttled_message(where: str, actor: str, retry_after: float) -> str:
    """ARM's 429 message, in full as live answers quote it (``where``: "subscription '<id>'" or
    "tenant '<id>'").

    Example::

        >>> throttled_message("subscription 's'", "o", 2.0)[:60]
        "Number of 'read' requests for subscription 's' actor 'o' exc"
        >>> throttled_message("subscription 's'", "o", 2.0).endswith("https://aka.ms/arm-throttling for additional information.")
        True
    """
    return (f"Number of 'read' requests for {where} actor '{actor}' exceeded. Please try again after "
            f"'{retry_after:g}' seconds after additional tokens are available. Refer to "
            "https://aka.ms/arm-throttling for additional information.")


class TokenBuckets:
    """One bucket per key, each holding at most ``capacity`` tokens and gaining ``refill`` per second.

    Example::

        >>> TokenBuckets().take(("subscription", "s", "principal"))
        (True, 249, 0.0)
    """

    def __init__(self, *, capacity: int = READ_CAPACITY, refill: float = READ_REFILL,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"bucket capacity must be a positive integer, got {capacity!r}")
        if isinstance(refill, bool) or not isinstance(refill, (int, float)) or refill <= 0:
            raise ValueError(f"refill must be a positive number of tokens per second, got {refill!r}")
        self.capacity = capacity
        self.refill = float(refill)
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> tuple[bool, int, float]:
        """Take one token: ``(allowed, remaining (whole tokens), retry_after seconds (0 if allowed))``."""
        now = self._clock()
        with self._lock:
            tokens, since = self._buckets.get(key, (float(self.capacity), now))
            tokens = min(float(self.capacity), tokens + max(0.0, now - since) * self.refill)
            if tokens >= 1.0:
                tokens -= 1.0
                self._buckets[key] = (tokens, now)
                return True, int(tokens), 0.0
            self._buckets[key] = (tokens, now)
            return False, 0, float(max(1, math.ceil((1.0 - tokens) / self.refill)))

    def remaining(self, key: Hashable) -> int:
        """Whole tokens left in ``key``'s bucket right now (without taking one)."""
        now = self._clock()
        with self._lock:
            tokens, since = self._buckets.get(key, (float(self.capacity), now))
            return int(min(float(self.capacity), tokens + max(0.0, now - since) * self.refill))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
