"""pandas views that combine several objects: the tokens of a cache (or a list), retry timelines.

Never the tokens themselves. A single object's own table is its ``to_frame()`` (``Claims.to_frame()``,
``Claims.checks_frame()``); this module is presentation. pandas is
imported inside each function, so importing this module stays cheap and ``import mi_notebook``
never pulls pandas in.

Example::

    >>> from mi_notebook.retry import RetryPolicy, simulate
    >>> timeline_frame(simulate(RetryPolicy.documented(), [500, 200]))[["attempt", "status", "outcome"]]
       attempt  status  outcome
    0        1     500  retried
    1        2     200  success
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .retry import FRAME_COLUMNS
from .timefmt import format_duration

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .retry import Timeline
    from .tokens import AccessToken, TokenCache

__all__ = [
    "TOKENS_COLUMNS",
    "planned_refresh",
    "timeline_frame",
    "tokens_frame",
]

TOKENS_COLUMNS = (
    "resource",
    "identity",
    "source",
    "fetched_at",
    "expires_on",
    "time_left",
    "time_left_s",
    "refresh_at",
    "fingerprint",
)
# the columns Timeline.to_frame() documents
TIMELINE_COLUMNS = FRAME_COLUMNS


def timeline_frame(timeline: Timeline) -> pd.DataFrame:
    """One row per attempt: number, start and duration (s), status, error, outcome, wait that followed
    (s) and why, and the exception text for attempts without an answer.

    ``Timeline.to_frame()`` still delegates here (retry.py reaches this module: the last core -> frames
    import); once it builds its frame from its own rows, this becomes ``return timeline.to_frame()``.

    Example::

        >>> from mi_notebook.retry import RetryPolicy, simulate
        >>> timeline_frame(simulate(RetryPolicy.documented(), ["timeout", 200]))["exception"].notna().tolist()
        [True, False]
    """
    import pandas as pd

    rows = [
        (a.number, a.start, a.duration, a.status, a.error, a.outcome, a.wait, a.wait_reason, a.exception)
        for a in timeline
    ]
    frame = pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))
    frame["status"] = frame["status"].astype("Int64")  # integers with gaps (time-outs have none)
    return frame


def planned_refresh(token: AccessToken, cache: TokenCache | None = None) -> float:
    """When the cache plans to replace ``token`` (epoch s).

    The cache's own plan when it has one for this token (``cache.refresh_at(token)``, or its
    ``entries()``), else :func:`mi_notebook.tokens.refresh_at`: half-way through a token that had
    2 h or more left when fetched, otherwise 5 minutes before expiry but not before half-way.

    Example::

        >>> from mi_notebook.tokens import AccessToken
        >>> planned_refresh(AccessToken("t", resource="api://x", fetched_at=0, expires_on=86400))
        43200.0
        >>> planned_refresh(AccessToken("t", resource="api://x", fetched_at=0, expires_on=120))
        60.0
    """
    if cache is not None:
        if callable(getattr(cache, "refresh_at", None)):
            return float(cache.refresh_at(token))
        for entry in cache.entries() if callable(getattr(cache, "entries", None)) else ():
            if entry.get("token") is token and entry.get("refresh_at") is not None:
                return float(entry["refresh_at"])
    from .tokens import refresh_at

    return refresh_at(token)


def _tokens_of(tokens_or_cache: Any) -> tuple[list[Any], Any]:
    if hasattr(tokens_or_cache, "tokens") and callable(tokens_or_cache.tokens):
        return list(tokens_or_cache.tokens()), tokens_or_cache
    if hasattr(tokens_or_cache, "reveal"):  # a single AccessToken
        return [tokens_or_cache], None
    if isinstance(tokens_or_cache, Iterable) and not isinstance(tokens_or_cache, (str, bytes)):
        return list(tokens_or_cache), None
    raise TypeError(
        f"tokens_frame needs a TokenCache, an AccessToken or a list of them, not {type(tokens_or_cache).__name__}"
    )


def tokens_frame(tokens_or_cache: Iterable[AccessToken] | TokenCache | AccessToken, now: float | None = None,
                 *, cache: TokenCache | None = None) -> pd.DataFrame:
    """One row per token: resource, identity, source, fetched / expiry / planned refresh (UTC),
    time left at ``now`` (text and seconds), fingerprint. Never the token.

    Given a cache, its tokens and its ``refresh_at``; given tokens, the refresh formula (or
    ``cache=``'s). Sorted by expiry.

    Example::

        >>> tokens_frame([]).columns.tolist()[:3]
        ['resource', 'identity', 'source']
    """
    import pandas as pd

    tokens, own_cache = _tokens_of(tokens_or_cache)
    cache = cache if cache is not None else own_cache
    when = time.time() if now is None else float(now)

    def utc(epoch: float | None) -> Any:
        return pd.NaT if epoch is None else pd.Timestamp(epoch, unit="s", tz="UTC").floor("s")

    rows = []
    for tok in sorted(tokens, key=lambda t: t.expires_on):
        left = tok.expires_on - when
        rows.append(
            (
                tok.resource,
                str(tok.identity),
                getattr(tok, "source", None),
                utc(getattr(tok, "fetched_at", None)),
                utc(tok.expires_on),
                "expired" if left <= 0 else format_duration(left),
                int(left),
                utc(planned_refresh(tok, cache)),
                getattr(tok, "fingerprint", None),
            )
        )
    frame = pd.DataFrame(rows, columns=list(TOKENS_COLUMNS))
    for column in ("fetched_at", "expires_on", "refresh_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
