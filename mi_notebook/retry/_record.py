"""The record every request leaves behind: one :class:`Attempt` per try in a :class:`Timeline`, and the
:class:`AttemptOutcome` a ``send`` callable reports to :func:`~mi_notebook.retry.execute`.

Example::

    >>> from mi_notebook.retry._execute import simulate
    >>> from mi_notebook.retry._policy import RetryPolicy
    >>> simulate(RetryPolicy.documented(), [500, 200]).statuses
    ['500', '200']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._policy import GONE, RetryPolicy

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

WaitReason = Literal["backoff", "retry-after", "gone-window"]
AttemptResult = Literal["success", "retried", "failed"]

__all__ = ["FRAME_COLUMNS", "Attempt", "AttemptOutcome", "Timeline"]

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

        >>> from mi_notebook.retry._execute import simulate
        >>> from mi_notebook.retry._policy import RetryPolicy
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

            >>> from mi_notebook.retry._execute import simulate
            >>> from mi_notebook.retry._policy import RetryPolicy
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

            >>> from mi_notebook.retry._execute import simulate
            >>> from mi_notebook.retry._policy import RetryPolicy
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

            >>> from mi_notebook.retry._execute import simulate
            >>> from mi_notebook.retry._policy import RetryPolicy
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


