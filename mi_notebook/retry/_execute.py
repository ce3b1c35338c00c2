"""The mechanism: :func:`execute` applies a :class:`~mi_notebook.retry.RetryPolicy` to a ``send``
callable, one :class:`~mi_notebook.retry.Attempt` per try; :func:`simulate` runs it in virtual time.

Example::

    >>> from mi_notebook.retry import RetryPolicy, simulate
    >>> simulate(RetryPolicy.documented(), [500, 500, 200]).summary()
    '3 attempts over 8.2 s: 500, 500, 200'
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock, VirtualClock
from ._policy import GONE, RetryPolicy
from ._record import Attempt, AttemptOutcome, AttemptResult, Timeline, WaitReason, _exception_text

__all__ = ["OnAttempt", "execute", "simulate"]


OnAttempt = Callable[[Attempt, "float | None", int], None]


def _should_retry(outcome: AttemptOutcome, policy: RetryPolicy) -> bool:
    if outcome.ok:
        return False
    if outcome.retryable is not None:
        return outcome.retryable
    if outcome.exception is not None:
        # No status: nothing answered (time-out, refused). A status: something answered with a
        # body we cannot read, i.e. not IMDS (a proxy or another cloud's metadata service).
        return outcome.status is None
    return policy.is_retryable(outcome.status)


def execute(
    send: Callable[[int], AttemptOutcome],
    policy: RetryPolicy,
    *,
    clock: Clock = SYSTEM_CLOCK,
    on_attempt: OnAttempt | None = None,
) -> tuple[AttemptOutcome, Timeline]:
    """Call ``send(attempt_number)`` until it succeeds or the policy says stop.

    ``clock`` (a :class:`~mi_notebook.clock.Clock`) measures, sleeps and draws the jitter.
    Returns the last :class:`AttemptOutcome` and the :class:`Timeline`; it never raises for HTTP
    answers (the caller turns the outcome into a value or an error). Exceptions raised by ``send``
    itself are not caught: the transport reports time-outs and connection errors as outcomes.
    ``on_attempt(attempt, next_wait, max_attempts)`` is called after each attempt, before the wait
    (``next_wait`` is ``None`` after the last).

    The 410 rule: once a 410 is seen, retryable failures go on (past ``max_attempts``) until at
    least ``policy.gone_window`` seconds have passed since that first 410; the extra waits are the
    continued back-off, shortened so that the next attempt starts when the window closes. The
    attempt that ends past the window is the last.

    Example::

        >>> answers = iter([AttemptOutcome(status=503), AttemptOutcome(status=200, value="ok")])
        >>> clock = VirtualClock()
        >>> from mi_notebook.retry import RetryPolicy, simulate
        >>> outcome, timeline = execute(lambda n: next(answers), RetryPolicy(jitter=0), clock=clock)
        >>> outcome.value, clock.slept, timeline.summary()
        ('ok', [2.0], '2 attempts over 2.0 s: 503, 200')
    """
    monotonic, sleep, rng = clock.monotonic, clock.sleep, clock.rng
    started_at = clock.wall()
    t0 = monotonic()
    attempts: list[Attempt] = []
    gone_clock: float | None = None  # clock() at the start of the first 410 attempt
    slept_since_gone = 0.0
    number = 0
    while True:
        number += 1
        begin = monotonic()
        outcome = send(number)
        end = monotonic()

        if outcome.status == GONE and gone_clock is None:
            gone_clock = begin
        wait: float | None = None
        reason: WaitReason | None = None
        if _should_retry(outcome, policy):
            in_window = False
            remaining = 0.0
            if gone_clock is not None and policy.gone_window > 0:
                # A clock that does not move (tests, virtual time) must not retry forever: what
                # was slept counts as elapsed too.
                elapsed = max(end - gone_clock, slept_since_gone)
                remaining = policy.gone_window - elapsed
                in_window = remaining > 0
            if number < policy.max_attempts or in_window:
                gone = outcome.status == GONE
                if outcome.retry_after is not None and outcome.retry_after >= 0:
                    wait, reason = min(float(outcome.retry_after), policy.max_retry_after), "retry-after"
                else:
                    wait = policy.backoff(number, gone=gone, rng=rng)
                    reason = "backoff"
                    if gone and policy.gone_schedule is not None:
                        reason = "gone-window"
                    if number >= policy.max_attempts:
                        # Past the documented attempts only because of the 410 window: wait at
                        # least 1 s (never hammer IMDS) but not past the window's end.
                        wait, reason = min(max(wait, 1.0), remaining), "gone-window"

        if outcome.ok:
            result: AttemptResult = "success"
        elif wait is not None:
            result = "retried"
        else:
            result = "failed"
        attempt = Attempt(
            number=number,
            start=begin - t0,
            duration=max(end - begin, 0.0),
            status=outcome.status,
            error=outcome.error,
            error_description=outcome.error_description,
            exception=_exception_text(outcome.exception),
            request_id=outcome.request_id,
            outcome=result,
            wait=wait or 0.0,
            wait_reason=reason,
        )
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt, wait, policy.max_attempts)
        if wait is None:
            return outcome, Timeline(attempts=tuple(attempts), started_at=started_at, policy=policy)
        if wait > 0:
            sleep(wait)
            if gone_clock is not None:
                slept_since_gone += wait


def _simulated_outcome(item: Any, number: int) -> AttemptOutcome:
    if isinstance(item, AttemptOutcome):
        return item
    if isinstance(item, bool):
        raise ValueError(f"simulate: statuses must be HTTP status ints or 'timeout'; got {item!r}")
    if isinstance(item, int):
        if not 100 <= item <= 599:
            raise ValueError(f"simulate: {item} is not an HTTP status (100-599)")
        value = {"simulated": True} if 200 <= item <= 299 else None
        return AttemptOutcome(status=item, value=value, request_id=f"sim-{number}")
    if item == "timeout":
        return AttemptOutcome(exception=TimeoutError("simulated time-out (no answer)"))
    if item in ("refused", "connection"):
        return AttemptOutcome(exception=ConnectionRefusedError("simulated: connection refused"))
    raise ValueError(
        "simulate: each status must be an HTTP status int (e.g. 429), 'timeout', 'refused' "
        f"or an AttemptOutcome; got {item!r}"
    )


def simulate(
    policy: RetryPolicy,
    statuses: Sequence[int | str | AttemptOutcome],
    *,
    attempt_duration: float = 0.05,
    timeout_duration: float | None = None,
    rng: random.Random | None = None,
    started_at: float = 0.0,
    on_attempt: OnAttempt | None = None,
) -> Timeline:
    """Run ``policy`` against a scripted series of answers in virtual time (instant, no I/O).

    ``statuses`` items are HTTP status ints, ``"timeout"`` (no answer), ``"refused"`` (connection
    refused) or ready-made :class:`AttemptOutcome` (e.g. with ``retry_after``); the last one repeats
    if the sequence runs out. Each attempt takes ``attempt_duration`` virtual seconds
    (``timeout_duration`` for time-outs, default the same).

    Example::

        >>> from mi_notebook.retry import RetryPolicy, simulate
        >>> t = simulate(RetryPolicy.documented(), [410])
        >>> t.gone_since, round(t[-1].start, 2), len(t) > 5
        (0.0, 70.0, True)
        >>> simulate(RetryPolicy.documented(), [400]).summary()
        '1 attempt over 0.1 s: 400'
    """
    items = list(statuses)
    if not items:
        raise ValueError("simulate: statuses must hold at least one answer, e.g. [500, 200]")
    outcomes = [_simulated_outcome(item, i + 1) for i, item in enumerate(items)]
    if attempt_duration < 0 or (timeout_duration is not None and timeout_duration < 0):
        raise ValueError("simulate: durations must be >= 0 seconds")
    clock = _SimulationClock(started_at, rng)

    def send(number: int) -> AttemptOutcome:
        outcome = outcomes[min(number, len(outcomes)) - 1]
        no_answer = outcome.status is None and outcome.exception is not None
        took = timeout_duration if (no_answer and timeout_duration is not None) else attempt_duration
        clock.sleep(took)
        return outcome

    _, timeline = execute(send, policy, clock=clock, on_attempt=on_attempt)
    return timeline


class _SimulationClock(VirtualClock):
    """Virtual time whose wall clock stays at ``started_at`` (a simulated timeline starts there)."""

    def __init__(self, started_at: float, rng: random.Random | None) -> None:
        super().__init__(0.0, seed=None)
        object.__setattr__(self, "rng", rng)
        object.__setattr__(self, "wall", lambda: started_at)
