"""Time, as one object: the monotonic clock, the wall clock, sleeping and jitter's random source.

Everything that waits or timestamps (the retry machinery, every client, the cache, the widgets)
takes one ``clock=`` argument instead of four separate callables. :data:`SYSTEM_CLOCK` is real
time; :class:`VirtualClock` only moves when slept on, so a 70 s retry schedule runs in no time in
tests, notebooks and benchmarks (the waits are recorded in ``slept``, not slept).

Example::

    >>> from mi_notebook.clock import SYSTEM_CLOCK, VirtualClock
    >>> clock = VirtualClock(1_800_000_000.0)
    >>> clock.sleep(2.5); clock.monotonic(), clock.wall(), clock.slept
    (1800000002.5, 1800000002.5, [2.5])
    >>> SYSTEM_CLOCK.wall() > 1_700_000_000
    True
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SYSTEM_CLOCK", "Clock", "VirtualClock"]


@dataclass(frozen=True)
class Clock:
    """Real time by default; any part can be replaced (``Clock(sleep=my_sleep)``).

    ``monotonic()`` measures durations, ``wall()`` is epoch seconds (expiry, ``Retry-After`` dates),
    ``sleep(seconds)`` waits, ``rng`` draws retry jitter (``None``: one process-wide source seeded
    by the OS, so kernels started together still spread out).

    Example::

        >>> slept = []
        >>> Clock(sleep=slept.append).sleep(3); slept
        [3]
    """

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = time.sleep
    rng: random.Random | None = field(default=None, compare=False)


SYSTEM_CLOCK = Clock()


class VirtualClock(Clock):
    """A clock that only moves when slept on (or when ``now`` is set); thread-safe.

    ``monotonic()``, ``wall()`` and calling the clock all return ``now``: ``start`` plus what was
    slept (a monotonic clock's origin is arbitrary, so one number serves both); ``start`` stays
    what it was made with. A negative wait is no wait. ``rng`` is a
    seeded ``random.Random`` (pass ``seed=None`` for the process-wide source).

    Example::

        >>> clock = VirtualClock(); clock.sleep(2.5); clock.sleep(-1); clock(), clock.slept
        (2.5, [2.5, 0.0])
        >>> VirtualClock(1_800_000_000.0).wall()
        1800000000.0
    """

    _now: float
    start: float
    slept: list[float]
    _lock: threading.Lock

    def __init__(self, start: float = 0.0, *, seed: int | None = 7) -> None:
        object.__setattr__(self, "_now", float(start))
        object.__setattr__(self, "start", float(start))
        object.__setattr__(self, "slept", [])
        object.__setattr__(self, "_lock", threading.Lock())
        rng = random.Random(seed) if seed is not None else None
        super().__init__(monotonic=self.__call__, wall=self.__call__, sleep=self._sleep, rng=rng)

    @property
    def now(self) -> float:
        """The virtual time (what ``monotonic()`` and ``wall()`` return); settable."""
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        object.__setattr__(self, "_now", float(value))

    def _sleep(self, seconds: float) -> None:
        wait = max(0.0, float(seconds))
        with self._lock:
            self.slept.append(wait)
            object.__setattr__(self, "_now", self._now + wait)

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:g}, slept={len(self.slept)} times)"

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other
