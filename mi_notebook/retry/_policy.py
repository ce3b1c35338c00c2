"""The retry policy as a value: the documented back-off table, the 410 window, Retry-After's cap.

Modelled on urllib3's ``Retry``: :class:`RetryPolicy` only *describes* a policy; the mechanism that
applies it (:func:`mi_notebook.retry.execute`) lives apart, and so do the records it leaves.

Example::

    >>> from mi_notebook.retry._policy import RetryPolicy
    >>> RetryPolicy(jitter=0).delays(), RetryPolicy(jitter=0).is_retryable(410)
    ([0.0, 2.0, 6.0, 14.0, 30.0], True)
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GONE", "RETRYABLE_STATUSES", "RetryPolicy"]

RETRYABLE_STATUSES = frozenset({404, 410, 429})
GONE = 410

# One process-wide source of jitter. Seeded from the OS, so that kernels started at the same
# moment still draw different waits (the whole point of jitter).
_RNG = random.Random()


def _check_schedule(name: str, schedule: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if schedule is None:
        return None
    values = tuple(float(v) for v in schedule)
    if not values:
        raise ValueError(f"{name} must hold at least one wait (seconds), e.g. (0, 1.6, 3.2); got ()")
    if any(v < 0 or v != v for v in values):
        raise ValueError(f"{name} waits must be >= 0 seconds; got {values!r}")
    return values


@dataclass(frozen=True)
class RetryPolicy:
    """An immutable description of how to retry an IMDS token request.

    The waits follow the documented ExponentialBackoff: before retry ``k`` (1-based),
    ``min(min_backoff + (2**k - 1) * delta_backoff * j, max_backoff)`` seconds, where ``j`` is drawn
    uniformly from ``[1 - jitter, 1 + jitter]`` (so many kernels hitting a throttled IMDS do not all
    come back in step). ``first_fast_retry`` makes the first retry immediate and shifts the rest.

    Two optional overrides express other clients' policies for comparison charts:

    - ``schedule``: explicit waits before retry 1, 2, ... (the last one repeats if more are
      needed); ``max_backoff`` still caps them and ``jitter`` still applies.
    - ``gone_schedule``: the waits used instead after a 410 (azure-identity switches its back-off
      factor from 0.8 to 2.5 for 410).

    ``gone_window`` is the 410 rule: after a 410, keep retrying (past ``max_attempts`` if need be)
    until at least that many seconds have passed since the first 410; 0 turns the extension off.

    Example::

        >>> p = RetryPolicy(jitter=0)
        >>> p.delays(), p.is_retryable(429), p.is_retryable(400)
        ([0.0, 2.0, 6.0, 14.0, 30.0], True, False)
        >>> RetryPolicy.azure_identity().delays()
        [0.0, 0.0, 1.6, 3.2, 6.4, 12.8]
        >>> p.replace(max_attempts=3).delays()
        [0.0, 2.0, 6.0]
    """

    max_attempts: int = 5
    min_backoff: float = 0.0
    max_backoff: float = 60.0
    delta_backoff: float = 2.0
    first_fast_retry: bool = False
    jitter: float = 0.2
    gone_window: float = 70.0
    max_retry_after: float = 60.0
    schedule: tuple[float, ...] | None = None
    gone_schedule: tuple[float, ...] | None = None
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be an int >= 1; got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 (1 = no retries); got {self.max_attempts}")
        for name in ("min_backoff", "max_backoff", "delta_backoff", "gone_window", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or value != value:
                raise ValueError(f"{name} must be a number of seconds >= 0; got {value!r}")
        if self.min_backoff > self.max_backoff:
            raise ValueError(
                f"min_backoff ({self.min_backoff}) must not exceed max_backoff ({self.max_backoff})"
            )
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be a fraction in [0, 1), e.g. 0.2 for +-20%; got {self.jitter!r}")
        object.__setattr__(self, "schedule", _check_schedule("schedule", self.schedule))
        object.__setattr__(self, "gone_schedule", _check_schedule("gone_schedule", self.gone_schedule))

    # --- presets (for comparisons) ------------------------------------------------------------------
    @classmethod
    def documented(cls) -> RetryPolicy:
        """The IMDS documentation's table exactly, without jitter: waits 0, 2, 6, 14, 30 s.

        Example::

            >>> RetryPolicy.documented().delays()
            [0.0, 2.0, 6.0, 14.0, 30.0]
        """
        return cls(jitter=0.0, name="documented")

    @classmethod
    def azure_identity(cls) -> RetryPolicy:
        """azure-identity 1.27's IMDS policy: 5 retries, back-off factor 0.8, 2.5 after a 410.

        Waits between attempts 0, 1.6, 3.2, 6.4, 12.8 s (24 s in all); after a 410
        0, 5, 10, 20, 40 s (75 s). No jitter, no window beyond its 5 retries.

        Example::

            >>> p = RetryPolicy.azure_identity()
            >>> p.max_attempts, sum(p.delays()), sum(p.delays(gone=True))
            (6, 24.0, 75.0)
        """
        return cls(
            max_attempts=6,
            jitter=0.0,
            gone_window=0.0,
            schedule=(0.0, 1.6, 3.2, 6.4, 12.8),
            gone_schedule=(0.0, 5.0, 10.0, 20.0, 40.0),
            name="azure-identity",
        )

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        """One attempt, no retries (what MSAL Python does for managed identity).

        Example::

            >>> RetryPolicy.no_retry().delays()
            [0.0]
        """
        return cls(max_attempts=1, jitter=0.0, gone_window=0.0, name="no-retry")

    @classmethod
    def presets(cls) -> dict[str, RetryPolicy]:
        """Named policies for comparison charts: ``{"documented": ..., "azure-identity": ..., ...}``.

        ``"mi-notebook"`` is this package's default (the documented table with +-20% jitter).

        Example::

            >>> sorted(RetryPolicy.presets())
            ['azure-identity', 'documented', 'mi-notebook', 'no-retry']
        """
        return {
            "mi-notebook": cls(name="mi-notebook"),
            "documented": cls.documented(),
            "azure-identity": cls.azure_identity(),
            "no-retry": cls.no_retry(),
        }

    # --- the policy as numbers ----------------------------------------------------------------------
    @property
    def label(self) -> str:
        """A short name for legends: ``name`` if set, else a compact description."""
        if self.name:
            return self.name
        return f"RetryPolicy(max_attempts={self.max_attempts}, jitter={self.jitter:g})"

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with some fields changed (the policy itself never changes).

        Example::

            >>> RetryPolicy().replace(jitter=0, max_attempts=2).delays()
            [0.0, 2.0]
        """
        return dataclasses.replace(self, **changes)

    def backoff(self, retry: int, *, gone: bool = False, rng: random.Random | None = None) -> float:
        """The wait in seconds before retry number ``retry`` (1 = the second attempt).

        ``gone=True`` uses ``gone_schedule`` if the policy has one. Retries beyond ``max_attempts``
        (the 410 window) continue the same sequence, capped at ``max_backoff``.

        Example::

            >>> [RetryPolicy(jitter=0).backoff(k) for k in (1, 2, 3, 4, 5, 6)]
            [2.0, 6.0, 14.0, 30.0, 60.0, 60.0]
        """
        if retry < 1:
            raise ValueError(f"retry counts from 1 (the wait before the second attempt); got {retry}")
        schedule = self.gone_schedule if gone and self.gone_schedule is not None else self.schedule
        if schedule is not None:
            base = schedule[min(retry, len(schedule)) - 1]
            wait = base * self._jitter_factor(rng) if base else 0.0
            return float(min(wait, self.max_backoff))
        exponent = retry - 1 if self.first_fast_retry else retry
        if exponent == 0:
            return 0.0  # the fast first retry: immediately
        # Cap the exponent: 2**1100 would overflow a float long after max_backoff has taken over.
        growth = (2.0 ** min(exponent, 64) - 1.0) * self.delta_backoff
        wait = self.min_backoff + growth * self._jitter_factor(rng)
        return float(min(wait, self.max_backoff))

    def _jitter_factor(self, rng: random.Random | None) -> float:
        if not self.jitter:
            return 1.0
        return (rng or _RNG).uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def delays(self, rng: random.Random | None = None, *, gone: bool = False) -> list[float]:
        """The waits *before* each of the ``max_attempts`` attempts (the first is always 0).

        With jitter, each call draws new waits (from ``rng`` if given). ``gone=True``: the waits
        if every answer were 410 (without the window's extra attempts).

        Example::

            >>> RetryPolicy(jitter=0).delays()
            [0.0, 2.0, 6.0, 14.0, 30.0]
            >>> RetryPolicy(jitter=0, first_fast_retry=True).delays()
            [0.0, 0.0, 2.0, 6.0, 14.0]
        """
        return [0.0] + [self.backoff(k, gone=gone, rng=rng) for k in range(1, self.max_attempts)]

    def is_retryable(self, status: int | None) -> bool:
        """Whether an answer with this HTTP status is worth another try.

        404, 410, 429 and 5xx are; ``None`` (no answer: a time-out or connection error) is too;
        every other status is not (2xx is success, other 4xx are design-time errors).

        Example::

            >>> p = RetryPolicy()
            >>> [p.is_retryable(s) for s in (200, 400, 404, 410, 429, 503)]
            [False, False, True, True, True, True]
        """
        if status is None:
            return True
        return status in RETRYABLE_STATUSES or 500 <= status <= 599
