"""How token requests are retried, and the record every request leaves behind.

Modelled on urllib3's ``util/retry.py``: :class:`RetryPolicy` is an immutable value object that
only *describes* the policy; :func:`execute` applies it to a ``send`` callable and returns the final
:class:`AttemptOutcome` with a :class:`Timeline` of one :class:`Attempt` per try. The clock, the
sleep and the random source are injected (as in tenacity), so tests and :func:`simulate` run in
virtual time.

The defaults are the IMDS documentation's table (ExponentialBackoff: retry count 5, min back-off
0 s, max back-off 60 s, delta back-off 2 s, no fast first retry), so the waits before the five
attempts are about 0, 2, 6, 14 and 30 s. Retried: 404, 429, 5xx, time-outs and connection errors.
410 ("IMDS is updating, back within 70 seconds") is retried until at least ``gone_window`` seconds
have passed since the first 410, past ``max_attempts`` if need be. Retry-After is honoured up to
``max_retry_after``. Every other 4xx is a design-time error and is not retried.

Example::

    >>> from mi_notebook.retry import RetryPolicy, simulate
    >>> RetryPolicy(jitter=0).delays()
    [0.0, 2.0, 6.0, 14.0, 30.0]
    >>> simulate(RetryPolicy.documented(), [500, 500, 200]).summary()
    '3 attempts over 8.2 s: 500, 500, 200'
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .clock import SYSTEM_CLOCK, Clock, VirtualClock
from .retry_policy import GONE, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

WaitReason = Literal["backoff", "retry-after", "gone-window"]
AttemptResult = Literal["success", "retried", "failed"]

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "RetryPolicy",
    "Timeline",
    "execute",
    "simulate",
]

@dataclass(frozen=True)
class AttemptOutcome:
    """What one try produced; the transport fills it in, :func:`execute` classifies it.

    ``exception`` with no ``status``: no answer (time-out, connection error): retried.
    ``exception`` with a ``status``: an answer that could not be parsed (HTML from a proxy, or
    another metadata service): not retried. ``retryable`` overrides the classification either way.
    ``value`` is the parsed success payload; it is never shown in the repr (it may hold a token).

    Example::

        >>> AttemptOutcome(status=429, retry_after=3.0).ok
        False
        >>> AttemptOutcome(status=200, value={"access_token": "secret"})
        AttemptOutcome(status=200, error=None, error_description=None, request_id=None, retry_after=None, exception=None, retryable=None)
    """

    status: int | None = None
    error: str | None = None
    error_description: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    exception: BaseException | None = None
    value: Any = field(default=None, repr=False, compare=False)
    retryable: bool | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer that parsed."""
        return self.exception is None and self.status is not None and 200 <= self.status <= 299

    @property
    def label(self) -> str:
        """``"200"``, ``"429"``, or the exception's type name (``"ReadTimeout"``) when there is no status."""
        if self.status is not None:
            return str(self.status)
        if self.exception is not None:
            return type(self.exception).__name__
        return "no answer"


def _exception_text(exc: BaseException | None) -> str | None:
    """The exception as one line of at most 300 characters, keeping its start and its end: wrapped
    network errors put the useful part ("[Errno 111] Connection refused") last.

    >>> long = ConnectionError("HTTPConnectionPool(...): Max retries exceeded " + "x" * 400 + " Connection refused'))")
    >>> text = _exception_text(long); len(text) <= 300, text.startswith("ConnectionError: HTTP"), "refused" in text
    (True, True, True)
    """
    if exc is None:
        return None
    text = " ".join((f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__).split())
    return text if len(text) <= 300 else f"{text[:150]} … {text[-147:]}"


@dataclass(frozen=True)
class Attempt:
    """The record of one try: when it started, how long it took, what came back, what followed.

    ``start`` is seconds since the first attempt began; ``wait`` is the time slept after it
    (0 for the last); ``wait_reason`` says why (``"backoff"``, ``"retry-after"``,
    ``"gone-window"``: the wait came from the 410 rule) or ``None`` when nothing followed.

    Example::

        >>> a = Attempt(number=1, start=0.0, duration=0.25, status=500, outcome="retried", wait=2.0,
        ...             wait_reason="backoff")
        >>> a.end, a.label
        (0.25, '500')
    """

    number: int
    start: float
    duration: float
    status: int | None = None
    error: str | None = None
    error_description: str | None = None
    exception: str | None = None
    request_id: str | None = None
    outcome: AttemptResult = "failed"
    wait: float = 0.0
    wait_reason: WaitReason | None = None

    @property
    def end(self) -> float:
        """``start + duration``."""
        return self.start + self.duration

    @property
    def label(self) -> str:
        """The status as text, or the exception type (``"ReadTimeout"``) for attempts with no answer."""
        if self.status is not None:
            return str(self.status)
        if self.exception:
            return self.exception.split(":", 1)[0]
        return "no answer"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-friendly)."""
        return dataclasses.asdict(self)


FRAME_COLUMNS = (
    "attempt",
    "start_s",
    "duration_s",
    "status",
    "error",
    "outcome",
    "wait_s",
    "wait_reason",
    "exception",
)


@dataclass(frozen=True)
class Timeline:
    """Every attempt one request made, in order, with the policy that drove it.

    Behaves like a sequence of :class:`Attempt`; ``summary()`` is the one-line story.

    Example::

        >>> t = simulate(RetryPolicy.documented(), [429, 200], attempt_duration=0.1)
        >>> len(t), t.outcome, t[0].wait, t.summary()
        (2, 'success', 2.0, '2 attempts over 2.2 s: 429, 200')
        >>> t
        Timeline(2 attempts over 2.2 s: 429, 200; outcome='success')
    """

    attempts: tuple[Attempt, ...] = ()
    started_at: float = 0.0
    policy: RetryPolicy | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attempts", tuple(self.attempts))

    def __len__(self) -> int:
        return len(self.attempts)

    def __iter__(self) -> Iterator[Attempt]:
        return iter(self.attempts)

    def __getitem__(self, index: int) -> Attempt:
        return self.attempts[index]

    def __repr__(self) -> str:
        if not self.attempts:
            return "Timeline(no attempts)"
        return f"Timeline({self.summary()}; outcome={self.outcome!r})"

    @property
    def total(self) -> float:
        """Seconds from the start of the first attempt to the end of the last."""
        return self.attempts[-1].end if self.attempts else 0.0

    @property
    def outcome(self) -> AttemptResult | None:
        """``"success"`` or ``"failed"`` (the last attempt's), ``None`` if nothing was tried."""
        return self.attempts[-1].outcome if self.attempts else None

    @property
    def gone_since(self) -> float | None:
        """Offset (s) at which the first 410 attempt started, or ``None``."""
        return next((a.start for a in self.attempts if a.status == GONE), None)

    @property
    def statuses(self) -> list[str]:
        """Each attempt's label: ``["500", "ReadTimeout", "200"]``."""
        return [a.label for a in self.attempts]

    @property
    def waited(self) -> float:
        """Total seconds slept between attempts."""
        return sum(a.wait for a in self.attempts)

    def summary(self) -> str:
        """One line: ``"3 attempts over 8.1 s: 500, 500, 200"``."""
        n = len(self.attempts)
        noun = "attempt" if n == 1 else "attempts"
        return f"{n} {noun} over {self.total:.1f} s: " + ", ".join(self.statuses)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-friendly): ``started_at``, ``policy`` (dict or None), ``attempts``.

        Example::

            >>> d = simulate(RetryPolicy.documented(), [200]).to_dict()
            >>> d["attempts"][0]["status"], d["policy"]["max_attempts"]
            (200, 5)
        """
        policy = dataclasses.asdict(self.policy) if self.policy is not None else None
        return {
            "started_at": self.started_at,
            "policy": policy,
            "attempts": [a.to_dict() for a in self.attempts],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """The inverse of :meth:`to_dict`.

        Example::

            >>> t = simulate(RetryPolicy.documented(), [500, 200])
            >>> Timeline.from_dict(t.to_dict()) == t
            True
        """
        policy = data.get("policy")
        if policy is not None:
            policy = dict(policy)
            for key in ("schedule", "gone_schedule"):
                if policy.get(key) is not None:
                    policy[key] = tuple(policy[key])
            policy = RetryPolicy(**policy)
        return cls(
            attempts=tuple(Attempt(**a) for a in data.get("attempts", ())),
            started_at=float(data.get("started_at", 0.0)),
            policy=policy,
        )

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame, one row per attempt (pandas is imported only now).

        Columns: attempt, start_s, duration_s, status, error, outcome, wait_s, wait_reason, exception.

        Example::

            >>> simulate(RetryPolicy.documented(), [503, 200]).to_frame()["status"].tolist()
            [503, 200]
            >>> simulate(RetryPolicy.documented(), ["timeout", 200]).to_frame()["exception"].notna().tolist()
            [True, False]
        """
        import pandas as pd

        rows = [
            (a.number, a.start, a.duration, a.status, a.error, a.outcome, a.wait, a.wait_reason, a.exception)
            for a in self.attempts
        ]
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        frame["status"] = frame["status"].astype("Int64")  # integers with gaps (time-outs have none)
        return frame


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
