"""pandas views that combine several objects: the tokens of a cache (or a list).

Never the tokens themselves. A single object's own table is its ``to_frame()`` (``Claims.to_frame()``,
``Claims.checks_frame()``, ``Timeline.to_frame()``); this module is presentation. pandas is
imported inside each function, so importing this module stays cheap and ``import mi_notebook``
never pulls pandas in.

Example::

    >>> from mi_notebook.tokens import AccessToken
    >>> tok = AccessToken("t", resource="https://vault.azure.net", fetched_at=0, expires_on=86400)
    >>> tokens_frame([tok], now=3600)[["resource", "time_left"]].values.tolist()
    [['https://vault.azure.net', '23 h']]
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .timefmt import format_duration

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .cache import TokenCache
    from .tokens import AccessToken

__all__ = [
    "TOKENS_COLUMNS",
    "planned_refresh",
    "tokens_frame",
    "tokens_of",
]

TOKENS_COLUMNS = (
    "resource",
    "identity",
    "host",
    "emulated",
    "fetched_at",
    "expires_on",
    "time_left",
    "time_left_s",
    "refresh_at",
    "fingerprint",
)
# the columns Timeline.to_frame() documents


def planned_refresh(token: AccessToken, cache: TokenCache | None = None) -> float:
    """When the cache plans to replace ``token`` (epoch s).

    The cache's plan when given one (``cache.refresh_at(token)``, which for a token it does not hold
    is the formula), else :func:`mi_notebook.cache.refresh_at`: half-way through a token that had
    2 h or more left when fetched, otherwise 5 minutes before expiry but not before half-way.

    Example::

        >>> from mi_notebook.tokens import AccessToken
        >>> planned_refresh(AccessToken("t", resource="api://x", fetched_at=0, expires_on=86400))
        43200.0
        >>> planned_refresh(AccessToken("t", resource="api://x", fetched_at=0, expires_on=120))
        60.0
    """
    if cache is not None:
        return float(cache.refresh_at(token))
    from .cache import refresh_at

    return refresh_at(token)


def tokens_of(tokens_or_cache: Any, caller: str = "tokens_frame") -> tuple[list[Any], Any]:
    """``(tokens, the cache they came from or None)`` from a cache, one token or an iterable of them.

    What every view of "some tokens" accepts; anything else is a ``TypeError`` naming ``caller``.

    Example::

        >>> from mi_notebook.tokens import AccessToken
        >>> tok = AccessToken("t", resource="api://x", fetched_at=0, expires_on=60)
        >>> tokens_of(tok) == ([tok], None), tokens_of([tok, tok])[0] == [tok, tok]
        (True, True)
        >>> tokens_of(42, "a chart")
        Traceback (most recent call last):
        TypeError: a chart needs a TokenCache, an AccessToken or a list of them, not int
    """
    if hasattr(tokens_or_cache, "tokens") and callable(tokens_or_cache.tokens):
        return list(tokens_or_cache.tokens()), tokens_or_cache
    if hasattr(tokens_or_cache, "reveal"):  # a single AccessToken
        return [tokens_or_cache], None
    if isinstance(tokens_or_cache, Iterable) and not isinstance(tokens_or_cache, (str, bytes)):
        return list(tokens_or_cache), None
    raise TypeError(
        f"{caller} needs a TokenCache, an AccessToken or a list of them, not {type(tokens_or_cache).__name__}"
    )


def tokens_frame(tokens_or_cache: Iterable[AccessToken] | TokenCache | AccessToken, now: float | None = None,
                 *, cache: TokenCache | None = None) -> pd.DataFrame:
    """One row per token: resource, identity, host, emulated, fetched / expiry / planned refresh (UTC),
    time left at ``now`` (text and seconds), fingerprint. Never the token.

    Given a cache, its tokens and its ``refresh_at``; given tokens, the refresh formula (or
    ``cache=``'s). Sorted by expiry.

    Example::

        >>> tokens_frame([]).columns.tolist()[:3]
        ['resource', 'identity', 'host']
    """
    import pandas as pd

    tokens, own_cache = tokens_of(tokens_or_cache)
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
                _identity_label(tok),
                getattr(tok, "host", None),
                bool(getattr(tok, "emulated", False)),
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


def _identity_label(token: Any) -> str:
    """Whose token it is by its claims; what was asked when the claims cannot say (an opaque token)."""
    from .claims import token_identity

    who = token_identity(token)
    return who.label if who.kind != "unknown" else str(getattr(token, "identity", who.label))
