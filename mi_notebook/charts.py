"""matplotlib charts: a retry timeline, retry policies side by side, and token lifetimes.

Every function draws into ``ax`` if given, else into a new 8 x 3 inch figure made with
``pyplot.subplots`` (so notebooks show it inline), and returns the Axes. matplotlib is imported
inside the functions: ``import mi_notebook`` never pulls it in. Text on the charts is derived
only from the data (no ids, no addresses), so re-running a notebook gives the same figure.

Example::

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from mi_notebook.retry import RetryPolicy, simulate
    >>> ax = plot_retry_timeline(simulate(RetryPolicy.documented(), [500, 500, 200]))
    >>> ax.get_title()
    'success after 3 attempts in 8.2 s'
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .timefmt import format_duration, format_utc

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .cache import TokenCache
    from .retry import Attempt, RetryPolicy, Timeline
    from .tokens import AccessToken

__all__ = [
    "COLOURS",
    "FIGSIZE",
    "default_policies",
    "plot_policy_comparison",
    "plot_retry_timeline",
    "plot_token_lifetimes",
]

#: every chart's size when it makes its own figure (inches)
FIGSIZE = (8.0, 3.0)

#: outcome -> colour (colour-blind friendly: Okabe-Ito)
COLOURS: dict[str, str] = {
    "success": "#009E73",
    "retried": "#E69F00",
    "failed": "#D55E00",
    "time-out": "#CC79A7",
    "wait": "#56B4E9",
    "gone-window": "#999999",
    "now": "#000000",
    "valid": "#0072B2",
    "expired": "#BBBBBB",
}
_MARKERS = {"success": "o", "retried": "o", "failed": "s", "time-out": "X"}


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new_ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    return new_ax


def _seconds(value: float) -> str:
    """``12 ms``, ``6 s``, ``1.6 s``, ``52.1 s``, ``2 min 5 s`` (for waits and totals on a seconds axis)."""
    if 0 < value < 0.1:
        return f"{value * 1000:.0f} ms"
    if value >= 120:
        return format_duration(value)
    rounded = round(value, 1)
    return f"{rounded:.0f} s" if rounded == int(rounded) else f"{rounded:.1f} s"


def _is_timeout(attempt: Attempt) -> bool:
    text = (attempt.exception or "").lower()
    return attempt.status is None and ("timeout" in text or "timed out" in text)


def _category(attempt: Attempt) -> str:
    if attempt.outcome == "success":
        return "success"
    return "time-out" if _is_timeout(attempt) else attempt.outcome


def _attempt_label(attempt: Attempt) -> str:
    if attempt.status is not None:
        return str(attempt.status)
    return "time-out" if _is_timeout(attempt) else attempt.label


def _wait_label(attempt: Attempt) -> str:
    if attempt.wait_reason == "retry-after":
        return f"Retry-After {_seconds(attempt.wait)}"
    if attempt.wait_reason == "gone-window":
        return f"wait {_seconds(attempt.wait)} (410)"
    return f"wait {_seconds(attempt.wait)}"


def _outcome_title(timeline: Timeline) -> str:
    n = len(timeline)
    noun = "attempt" if n == 1 else "attempts"
    if not n:
        return "no attempts"
    last = timeline[-1]
    if last.outcome == "success":
        return f"success after {n} {noun} in {_seconds(timeline.total)}"
    return f"failed after {n} {noun} in {_seconds(timeline.total)}: last answer {_attempt_label(last)}"


def plot_retry_timeline(timeline: Timeline, ax: Axes | None = None, *, title: str | None = None) -> Axes:
    """Each attempt of one request on a time axis, and the waits between them.

    Attempts are bars from start to end with a marker at the start, coloured by outcome (success,
    retried, failed; time-outs in their own colour and shape) and labelled with the status. The
    waits are shaded and labelled (``wait 6 s``, ``Retry-After 10 s``, ``wait 5 s (410)``; a wait too
    narrow for its label gets the duration alone, below the band). A 410 episode shows the window
    IMDS promised (``gone_window`` from the first 410, 70 s by default) in a band of its own at the
    bottom. A dashed line marks the total time; the title gives the final outcome.

    Example::

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from mi_notebook.retry import RetryPolicy, simulate
        >>> ax = plot_retry_timeline(simulate(RetryPolicy.documented(), [503, 200]))
        >>> [t.get_text() for t in ax.texts if t.get_text().startswith("wait")]
        ['wait 2 s']
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    ax = _axes(ax)
    attempts = list(timeline)
    total = timeline.total
    gone_since = timeline.gone_since
    window = timeline.policy.gone_window if timeline.policy is not None else 70.0
    has_window = gone_since is not None and window > 0
    # one attempt: the axis spans it (a 12 ms answer on a 0-1 s axis would be an empty chart)
    shortest = 1.0 if len(attempts) > 1 else max(total, 0.001)
    right = max(total, (gone_since + window) if gone_since is not None else 0.0, shortest)
    trans = ax.get_xaxis_transform()  # x in seconds, y in axes fraction
    narrow = right * 0.06
    # The 410 window gets the bottom band only when there is one, so no chart has an empty third.
    base = 0.22 if has_window else 0.0

    def y(v: float) -> float:
        return base + v * (1 - base)

    if has_window:
        ax.add_patch(Rectangle((gone_since, 0.03), window, 0.15, transform=trans, facecolor="none",
                               edgecolor=COLOURS["gone-window"], hatch="///", linewidth=0.8, gid="gone-window",
                               label="410 window"))
        ax.text(gone_since + window / 2, 0.105, f"410: IMDS back within {_seconds(window)}", transform=trans,
                ha="center", va="center", fontsize=8, color="#444444",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})

    # waits: a band behind the attempts; wide ones labelled inside, narrow ones below it (never over a marker)
    below, last_below = 0, -math.inf
    for a in attempts:
        if a.wait <= 0:
            continue
        ax.add_patch(Rectangle((a.end, y(0.18)), a.wait, y(0.58) - y(0.18), transform=trans,
                               facecolor=COLOURS["wait"], alpha=0.3, edgecolor="none", gid="wait"))
        if a.wait >= narrow:
            ax.text(a.end + a.wait / 2, y(0.38), _wait_label(a), transform=trans, ha="center", va="center",
                    fontsize=8, gid="wait-label")
            continue
        centre = a.end + a.wait / 2
        below = 1 - below if centre - last_below < right * 0.05 else 0
        last_below = centre
        ax.text(centre, y(0.15 - 0.08 * below), _seconds(a.wait), transform=trans, ha="center",
                va="top", fontsize=7, color="#24292f", gid="wait-label")

    categories = [_category(a) for a in attempts]
    level, last_x = 0, -math.inf
    for a, cat in zip(attempts, categories, strict=True):
        ax.add_patch(Rectangle((a.start, y(0.31)), max(a.duration, 0.0), y(0.45) - y(0.31), transform=trans,
                               facecolor=COLOURS[cat], edgecolor=COLOURS[cat], gid="attempt"))
        # stagger the status labels of attempts that follow each other closely
        level = 1 - level if a.start - last_x < right * 0.04 else 0
        last_x = a.start
        ax.text(a.start, y(0.62 + 0.1 * level), _attempt_label(a), transform=trans, ha="center", va="bottom",
                fontsize=8, gid="status-label")
    for cat in ("success", "retried", "failed", "time-out"):
        xs = [a.start for a, c in zip(attempts, categories, strict=True) if c == cat]
        if xs:
            ax.plot(xs, [y(0.38)] * len(xs), linestyle="none", marker=_MARKERS[cat], markersize=8,
                    color=COLOURS[cat], markeredgecolor="black", markeredgewidth=0.5, transform=trans,
                    label=cat, gid=f"attempts-{cat}")

    if attempts:
        # the line spans the attempts' band only: the status labels above it stay clear
        ax.axvline(total, ymin=y(0.12), ymax=y(0.6), color="#333333", linestyle="--", linewidth=1, gid="total")
        ax.text(total, y(0.1), f"total {_seconds(total)}", transform=trans, ha="right", va="top", fontsize=8,
                color="#333333", gid="total-label")

    ax.set_xlim(-right * 0.03, right * 1.05)
    ax.set_yticks([])
    ax.set_xlabel("seconds since the first attempt")
    ax.set_title(title if title is not None else _outcome_title(timeline))
    handles = [Line2D([], [], linestyle="none", marker=_MARKERS[c], color=COLOURS[c], markeredgecolor="black",
                      markeredgewidth=0.5, label=c) for c in ("success", "retried", "failed", "time-out")
               if c in categories]
    if any(a.wait > 0 for a in attempts):
        handles.append(Patch(facecolor=COLOURS["wait"], alpha=0.3, label="wait"))
    if gone_since is not None and window > 0:
        handles.append(Patch(facecolor="none", edgecolor=COLOURS["gone-window"], hatch="///", label="410 window"))
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=7, ncols=len(handles), frameon=False,
                  bbox_to_anchor=(0, 1.0))
    return ax


def default_policies(seed: int = 0) -> dict[str, tuple[RetryPolicy, Sequence[int | str] | None, random.Random | None]]:
    """The comparison's rows: ``{label: (policy, statuses or None for the chart's, rng)}``.

    The documented table; this toolkit's default (+-20 % jitter, drawn from a ``random.Random(seed)``
    so the chart is the same every run) for the same answers and for a 410 episode;
    azure-identity 1.27's 0.8-factor schedule and its 410 schedule.

    Example::

        >>> list(default_policies())
        ['documented', 'mi-notebook (jitter, seeded)', 'mi-notebook, 410', 'azure-identity', 'azure-identity, 410']
    """
    from .retry import RetryPolicy

    return {
        "documented": (RetryPolicy.documented(), None, None),
        "mi-notebook (jitter, seeded)": (RetryPolicy(), None, random.Random(seed)),
        "mi-notebook, 410": (RetryPolicy(), [410], random.Random(seed + 1)),
        "azure-identity": (RetryPolicy.azure_identity(), None, None),
        "azure-identity, 410": (RetryPolicy.azure_identity(), [410], None),
    }


def plot_policy_comparison(
    policies: Mapping[str, Any] | None = None,
    statuses: Sequence[int | str] = (500,),
    ax: Axes | None = None,
    *,
    seed: int = 0,
    attempt_duration: float = 0.05,
) -> Axes:
    """Retry policies side by side: one row per policy, a marker per attempt at its start time.

    A row that runs against answers of its own says so after its end (``· answers 410``), and a
    410 episode's window is hatched behind its own row.

    ``policies`` maps a row label to a ``RetryPolicy``, or to ``(policy, statuses)`` /
    ``(policy, statuses, rng)`` to give that row its own answers (``statuses=None``: the chart's)
    or random source; default :func:`default_policies`. ``statuses`` are the scripted answers
    (see :func:`mi_notebook.retry.simulate`; default: IMDS answers 500 every time, so each policy
    shows its whole schedule). Policies with jitter draw from ``random.Random(seed)``.

    Example::

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_policy_comparison()
        >>> [t.get_text() for t in ax.get_yticklabels()][-1]
        'azure-identity, 410'
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .retry import simulate

    ax = _axes(ax)
    rows = default_policies(seed) if policies is None else policies
    labels: list[str] = []
    ends: list[float] = []
    seen: set[str] = set()
    any_gone = any_own = False
    shown = ", ".join(str(s) for s in statuses)
    for i, (label, spec) in enumerate(rows.items()):
        policy, own_statuses, rng = (tuple(spec) + (None, None))[:3] if isinstance(spec, tuple) else (spec, None, None)
        rng = rng if rng is not None else random.Random(seed + i)
        script = list(own_statuses if own_statuses is not None else statuses)
        timeline = simulate(policy, script, attempt_duration=attempt_duration, rng=rng)
        gone = timeline.gone_since
        if gone is not None and policy.gone_window > 0:
            any_gone = True  # behind the row it belongs to, not between two rows
            ax.barh(i, policy.gone_window, left=gone, height=0.6, facecolor="none", edgecolor=COLOURS["gone-window"],
                    hatch="///", linewidth=0.6, zorder=0, gid=f"gone-window-{i}")
        xs = [a.start for a in timeline]
        ax.plot(xs, [i] * len(xs), color="#777777", linewidth=1, zorder=1, gid=f"row-{i}")
        for a in timeline:
            cat = _category(a)
            seen.add(cat)
            ax.plot([a.start], [i], linestyle="none", marker=_MARKERS[cat], markersize=7, color=COLOURS[cat],
                    markeredgecolor="black", markeredgewidth=0.5, zorder=2, gid=f"attempt-{i}")
        n = len(timeline)
        own = ", ".join(str(s) for s in script)
        note = f" · answers {own}" if own != shown else ""
        any_own = any_own or bool(note)
        end = max(timeline.total, (gone + policy.gone_window) if gone is not None else 0.0)
        ax.text(end, i, f"  {n} attempt{'s' if n != 1 else ''}, {_seconds(timeline.total)}{note}",
                va="center", ha="left", fontsize=8, gid=f"row-note-{i}")
        labels.append(label)
        ends.append(end)

    right = max(ends, default=1.0) or 1.0
    ax.set_xlim(-right * 0.02, right * (1.36 if any_own else 1.22))
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first row on top
    ax.set_yticks(range(len(labels)), labels)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("seconds since the first attempt")
    unless = ", unless the row says otherwise" if any_own else ""
    ax.set_title(f"retry schedules against answers {shown} (the last repeats){unless}", fontsize=10)
    handles = [Line2D([], [], linestyle="none", marker=_MARKERS[c], color=COLOURS[c], markeredgecolor="black",
                      markeredgewidth=0.5, label=c) for c in ("success", "retried", "failed", "time-out") if c in seen]
    if any_gone:
        handles.append(Patch(facecolor="none", edgecolor=COLOURS["gone-window"], hatch="///", label="410 window"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


# --- token lifetimes ------------------------------------------------------------------------------------
_LINTHRESH = 60.0  # symlog: linear within +-1 min of now, logarithmic beyond
_TICKS = (60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


def _tokens_list(tokens: Any) -> tuple[list[Any], Any]:
    if hasattr(tokens, "tokens") and callable(tokens.tokens):
        return list(tokens.tokens()), tokens
    if hasattr(tokens, "reveal"):
        return [tokens], None
    if isinstance(tokens, Iterable) and not isinstance(tokens, (str, bytes)):
        return list(tokens), None
    raise TypeError(f"plot_token_lifetimes needs AccessTokens or a TokenCache, not {type(tokens).__name__}")


def _issued_at(token: Any) -> float | None:
    from .errors import TokenDecodeError

    try:
        claims = token.claims
    except (TokenDecodeError, AttributeError):
        return None
    value = getattr(claims, "issued_at", None)
    return float(value) if value is not None else None


def _not_before(token: Any) -> float:
    nbf = getattr(token, "not_before", None)
    if nbf is not None:
        return float(nbf)
    from .errors import TokenDecodeError

    try:
        value = token.claims.not_before
    except (TokenDecodeError, AttributeError):
        value = None
    return float(value) if value is not None else float(token.fetched_at)


def _token_name(token: Any) -> str:
    from .resources import alias_for

    return alias_for(token.resource) or str(token.resource)


def _identity_name(token: Any) -> str:
    """``system`` or ``user <first 8 of the selector>``: enough to tell rows apart in a chart."""
    identity = getattr(token, "identity", None)
    selector = getattr(identity, "selector", None)
    if not selector:
        return "system"
    value = str(selector[1])
    return "user " + (value.rsplit("/", 1)[-1] if selector[0] == "resource_id" else value[:8])


def _rel_label(x: float) -> str:
    """A tick away from now (the "now" tick has its own label, with the time)."""
    return ("+" if x > 0 else "-") + format_duration(abs(x))


def _lifetime_ticks(limits: tuple[float, float], marks: Mapping[str, list[tuple[float, int]]],
                    fwd: Any) -> list[float]:
    """Now, every mark (rounded to the second, one per cluster), and the round ticks that leave room."""
    xmin, xmax = limits
    gap = 0.16 * (fwd(xmax) - fwd(xmin))  # closer than this, two tick labels would touch
    chosen = [0.0]
    for x in sorted({float(round(x)) for points in marks.values() for x, _ in points}, key=abs):
        if xmin <= x <= xmax and all(abs(fwd(x) - fwd(c)) >= gap for c in chosen):
            chosen.append(x)
    for x in (s * t for t in _TICKS for s in (-1, 1)):
        if xmin <= x <= xmax and all(abs(fwd(x) - fwd(c)) >= gap for c in chosen):
            chosen.append(float(x))
    return sorted(chosen)


def plot_token_lifetimes(
    tokens: Iterable[AccessToken] | TokenCache | AccessToken,
    now: float | None = None,
    cache: TokenCache | None = None,
    ax: Axes | None = None,
) -> Axes:
    """One bar per token from not-before to expiry, on a time axis relative to ``now``.

    Marks: issue time (``iat``, when the token decodes), fetch time, and the cache's planned
    refresh (``cache``'s plan, else the formula of :func:`mi_notebook.frames.planned_refresh`); a
    vertical line for now. The axis is symmetric-logarithmic around now (linear within a minute,
    logarithmic beyond), so a 24-hour, a 1-hour and a 2-minute token are all readable on one chart;
    each row is labelled with its lifetime and time left. The marks (a planned refresh, a fetch a few
    minutes ago) get ticks of their own. Expired tokens are grey.

    Example::

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from mi_notebook.tokens import AccessToken
        >>> tok = AccessToken("a.b.c", resource="https://management.azure.com/", fetched_at=0, expires_on=86400)
        >>> ax = plot_token_lifetimes([tok], now=600)
        >>> [t.get_text() for t in ax.get_yticklabels()]
        ['arm · system\\n24 h token, 23 h 50 min left']
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from .frames import planned_refresh

    ax = _axes(ax)
    items, own_cache = _tokens_list(tokens)
    cache = cache if cache is not None else own_cache
    when = time.time() if now is None else float(now)
    items.sort(key=lambda t: t.expires_on)

    labels, lows, highs = [], [-_LINTHRESH], [_LINTHRESH]
    marks: dict[str, list[tuple[float, int]]] = {"issued (iat)": [], "fetched": [], "refresh planned": []}
    for i, tok in enumerate(items):
        start, end = _not_before(tok) - when, float(tok.expires_on) - when
        expired = end <= 0
        ax.barh(i, end - start, left=start, height=0.45, color=COLOURS["expired" if expired else "valid"],
                alpha=0.85, gid="lifetime")
        iat = _issued_at(tok)
        if iat is not None:
            marks["issued (iat)"].append((iat - when, i))
        marks["fetched"].append((float(tok.fetched_at) - when, i))
        marks["refresh planned"].append((planned_refresh(tok, cache) - when, i))
        left = f"expired {format_duration(-end)} ago" if expired else f"{format_duration(end)} left"
        labels.append(f"{_token_name(tok)} · {_identity_name(tok)}\n"
                      f"{format_duration(float(tok.expires_on) - _not_before(tok))} token, {left}")
        lows.append(start)
        highs.append(end)
    styles = {"issued (iat)": ("v", "#555555"), "fetched": ("o", "white"), "refresh planned": ("D", COLOURS["retried"])}
    for name, points in marks.items():
        if points:
            marker, colour = styles[name]
            ax.plot([p[0] for p in points], [p[1] - 0.32 if name == "issued (iat)" else p[1] for p in points],
                    linestyle="none", marker=marker, color=colour, markeredgecolor="black", markersize=7,
                    gid=name, label=name)
    ax.axvline(0, color=COLOURS["now"], linewidth=1.2, gid="now")

    ax.set_xscale("symlog", linthresh=_LINTHRESH, linscale=0.5)
    lo, hi = min(lows), max(highs)

    # room for the labels at the bar ends: a fixed share of the axis, in symlog coordinates
    def fwd(x: float) -> float:
        return math.copysign(math.log10(1 + abs(x) / _LINTHRESH), x)

    def inv(y: float) -> float:
        return math.copysign((10 ** abs(y) - 1) * _LINTHRESH, y)

    span = fwd(hi) - fwd(lo)
    ax.set_xlim(inv(fwd(lo) - 0.04 * span), inv(fwd(hi) + 0.08 * span))
    ax.xaxis.set_major_locator(FixedLocator(_lifetime_ticks(ax.get_xlim(), marks, fwd)))
    ax.xaxis.set_minor_locator(NullLocator())
    now_label = "now\n" + format_utc(when)[11:]  # HH:MM:SS UTC; the date is in the legend
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: now_label if x == 0 else _rel_label(x)))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylim(max(len(labels) - 0.5, 0.5), -0.6)
    if not items:
        ax.text(0.5, 0.5, "no tokens", transform=ax.transAxes, ha="center", va="center", color="#57606a")
    ax.set_xlabel("time relative to now (linear within 1 min, logarithmic beyond)")
    n = len(items)
    ax.set_title(f"token lifetimes ({n} token{'s' if n != 1 else ''})")
    handles = [Patch(color=COLOURS["valid"], label="valid (nbf to exp)")]
    if any(float(t.expires_on) <= when for t in items):
        handles.append(Patch(color=COLOURS["expired"], label="expired"))
    handles += [Line2D([], [], linestyle="none", marker=styles[k][0], color=styles[k][1], markeredgecolor="black",
                       label=k) for k, v in marks.items() if v]
    handles.append(Line2D([], [], color=COLOURS["now"], label=f"now: {format_utc(when)[:10]}"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return ax
