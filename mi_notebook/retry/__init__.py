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

    >>> from mi_notebook.retry._execute import simulate
    >>> from mi_notebook.retry._policy import RetryPolicy
    >>> RetryPolicy(jitter=0).delays()
    [0.0, 2.0, 6.0, 14.0, 30.0]
    >>> simulate(RetryPolicy.documented(), [500, 500, 200]).summary()
    '3 attempts over 8.2 s: 500, 500, 200'
"""

from __future__ import annotations

from ._execute import OnAttempt, execute, simulate
from ._policy import GONE, RETRYABLE_STATUSES, RetryPolicy
from ._record import FRAME_COLUMNS, Attempt, AttemptOutcome, Timeline

__all__ = [
    "FRAME_COLUMNS",
    "GONE",
    "RETRYABLE_STATUSES",
    "Attempt",
    "AttemptOutcome",
    "OnAttempt",
    "RetryPolicy",
    "Timeline",
    "execute",
    "simulate",
]
