"""Times and durations as people read them: the one place the package formats them.

Every surface (a token's repr and card, the claims table, frames, charts, the CLI) uses these, so a
time reads the same everywhere.

Example::

    >>> from mi_notebook.timefmt import format_duration, format_iso, format_relative, format_utc
    >>> format_utc(1767225600), format_iso(1767225600)
    ('2026-01-01 00:00:00 UTC', '2026-01-01T00:00:00Z')
    >>> format_duration(86700), format_relative(1000, 880)
    ('24 h 5 min', 'in 2 min')
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

__all__ = ["as_epoch", "format_duration", "format_iso", "format_relative", "format_utc"]


def _moment(epoch: float) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def format_utc(epoch: float) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS UTC`` (``epoch <n>`` when out of datetime's range).

    Example::

        >>> format_utc(1767225600), format_utc(1e20)
        ('2026-01-01 00:00:00 UTC', 'epoch 1e+20')
    """
    moment = _moment(epoch)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else f"epoch {epoch}"


def format_iso(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC, ``YYYY-MM-DDTHH:MM:SSZ`` (compact, for reprs and logs).

    Example::

        >>> format_iso(2000)
        '1970-01-01T00:33:20Z'
    """
    moment = _moment(epoch)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else f"epoch {epoch}"


def format_duration(seconds: float) -> str:
    """A duration for people: ``3 d 2 h``, ``23 h 59 min``, ``4 min 10 s``, ``42 s`` (truncated, not rounded).

    Hours up to two days, so a fresh managed-identity token reads ``24 h 5 min``, not ``1 d``.

    Example::

        >>> format_duration(86399), format_duration(120), format_duration(3.7), format_duration(200000)
        ('23 h 59 min', '2 min', '3 s', '2 d 7 h')
    """
    total = int(abs(seconds))
    days, rest = divmod(total, 86400) if total >= 2 * 86400 else (0, total)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        big, small = (days, "d"), (hours, "h")
    elif hours:
        big, small = (hours, "h"), (minutes, "min")
    elif minutes:
        big, small = (minutes, "min"), (secs, "s")
    else:
        return f"{secs} s"
    return f"{big[0]} {big[1]}" + (f" {small[0]} {small[1]}" if small[0] else "")


def format_relative(epoch: float, now: float) -> str:
    """``in 23 h 59 min`` / ``5 min ago`` / ``now`` (within a second).

    Example::

        >>> format_relative(1000, 880), format_relative(880, 1000), format_relative(1000, 1000.4)
        ('in 2 min', '2 min ago', 'now')
    """
    delta = epoch - now
    if abs(delta) < 1:
        return "now"
    return f"in {format_duration(delta)}" if delta > 0 else f"{format_duration(delta)} ago"


def as_epoch(value: Any) -> float | None:
    """A value as usable epoch seconds, or ``None`` (bools, NaN, infinities, years outside 1..9999).

    Example::

        >>> as_epoch(1700000000), as_epoch(True), as_epoch(float("nan")), as_epoch(1e20)
        (1700000000.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not -62_135_596_800 <= value <= 253_402_300_799:  # years 1..9999: datetime's range
        return None
    return float(value)
