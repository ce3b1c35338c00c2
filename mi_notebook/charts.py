"""matplotlib charts: a retry timeline, retry policies side by side, and token lifetimes.

Every function draws into ``ax`` if given, else into a new 8 x 3 inch figure made with
``pyplot.subplots`` (so notebooks show it inline; the lifetime chart grows for a second panel or
many rows), and returns the Axes. matplotlib is imported
inside the functions: ``import mi_notebook`` never pulls it in. Text on the charts is derived
only from the data (no ids, no addresses), so re-running a notebook gives the same figure.

Every chart takes ``provenance=``: a subtitle saying where its data came from (the emulator,
injected faults, virtual time, a simulation), so a saved picture never passes for a real incident;
:func:`describe_provenance` words it the same way everywhere.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .timefmt import format_duration, format_utc

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

    from .cache import TokenCache
    from .retry import Attempt, RetryPolicy, Timeline
    from .tokens import AccessToken

__all__ = [
    "COLOURS",
    "FIGSIZE",
    "SHORT_LIVED",
    "default_policies",
    "describe_provenance",
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


def describe_provenance(
    origin: str | None = None,
    *,
    emulator: bool = False,
    injected: Sequence[int | str] = (),
    virtual_time: bool = False,
    simulated: bool = False,
) -> str:
    """A chart's subtitle: where its data came from, e.g. ``data: mi-notebook emulator (not Azure) · ...``.

    ``origin`` is free text first (``tok.issuer_label`` for a real host); then the emulator, the
    faults injected into it, virtual time (waits computed, not slept) and ``simulated`` (scripted
    answers through :func:`mi_notebook.retry.simulate`, no endpoint at all). Empty when none is given.

    Example::

        >>> describe_provenance(emulator=True, injected=[503, 429], virtual_time=True)
        'data: mi-notebook emulator (not Azure) · injected 503, 429 · virtual time'
        >>> describe_provenance(simulated=True)
        'data: simulated (scripted answers, no endpoint)'
    """
    parts = [origin] if origin else []
    if simulated:
        parts.append("simulated (scripted answers, no endpoint)")
    if emulator:
        parts.append("mi-notebook emulator (not Azure)")
    if injected:
        parts.append("injected " + ", ".join(str(s) for s in injected))
    if virtual_time:
        parts.append("virtual time")
    return "data: " + " · ".join(parts) if parts else ""


def _subtitle(ax: Axes, text: str | None) -> None:
    """``text`` in small grey type between the title and the plot (the title moves up to make room)."""
    if not text:
        return
    title = ax.title
    ax.set_title(title.get_text(), pad=17, fontsize=title.get_fontsize())
    ax.annotate(text, xy=(0.5, 1.0), xycoords="axes fraction", xytext=(0, 4), textcoords="offset points",
                ha="center", va="bottom", fontsize=8, color="#57606a", style="italic", gid="provenance")


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


def plot_retry_timeline(timeline: Timeline, ax: Axes | None = None, *, title: str | None = None,
                        provenance: str | None = None) -> Axes:
    """Each attempt of one request on a time axis, and the waits between them.

    Attempts are bars from start to end with a marker at the start, coloured by outcome (success,
    retried, failed; time-outs in their own colour and shape) and labelled with the status. The
    waits are shaded and labelled (``wait 6 s``, ``Retry-After 10 s``, ``wait 5 s (410)``; a wait too
    narrow for its label gets the duration alone, below the band). A 410 episode shows the window
    IMDS promised (``gone_window`` from the first 410, 70 s by default) in a band of its own at the
    bottom. A dashed line marks the total time; the title gives the final outcome, and
    ``provenance`` (see :func:`describe_provenance`) a subtitle saying where the attempts came from.

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

    if gone_since is not None and has_window:
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
        # one attempt: the label goes above, opposite its status label (a short strip has no room below)
        ax.text(total, y(0.62) if len(attempts) == 1 else y(0.1), f"total {_seconds(total)}", transform=trans,
                ha="right", va="bottom" if len(attempts) == 1 else "top", fontsize=8, color="#333333",
                gid="total-label")

    ax.set_xlim(-right * 0.03, right * 1.05)
    ax.set_yticks([])
    if right < 1:  # a fast answer: "12 ms", not "0.012"
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x * 1000:g}")
    ax.set_xlabel(("milliseconds" if right < 1 else "seconds") + " since the first attempt")
    ax.set_title(title if title is not None else _outcome_title(timeline))
    _subtitle(ax, provenance)
    handles: list[Artist] = [
        Line2D([], [], linestyle="none", marker=_MARKERS[c], color=COLOURS[c], markeredgecolor="black",
               markeredgewidth=0.5, label=c) for c in ("success", "retried", "failed", "time-out") if c in categories]
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
    provenance: str | None = None,
) -> Axes:
    """Retry policies side by side: one row per policy, a marker per attempt at its start time.

    A row that runs against answers of its own says so after its end (``· answers 410``), and a
    410 episode's window is hatched behind its own row.

    ``policies`` maps a row label to a ``RetryPolicy``, or to ``(policy, statuses)`` /
    ``(policy, statuses, rng)`` to give that row its own answers (``statuses=None``: the chart's)
    or random source; default :func:`default_policies`. ``statuses`` are the scripted answers
    (see :func:`mi_notebook.retry.simulate`; default: IMDS answers 500 every time, so each policy
    shows its whole schedule). Policies with jitter draw from ``random.Random(seed)``. Every row is
    simulated, so the subtitle says so unless ``provenance`` says otherwise (``""``: none).

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
    _subtitle(ax, describe_provenance(simulated=True, virtual_time=True) if provenance is None else provenance)
    handles: list[Artist] = [
        Line2D([], [], linestyle="none", marker=_MARKERS[c], color=COLOURS[c], markeredgecolor="black",
               markeredgewidth=0.5, label=c) for c in ("success", "retried", "failed", "time-out") if c in seen]
    if any_gone:
        handles.append(Patch(facecolor="none", edgecolor=COLOURS["gone-window"], hatch="///", label="410 window"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


# --- token lifetimes ------------------------------------------------------------------------------------
#: a token valid for less than this goes to the minutes panel: on a 24-hour axis it would be a sliver
SHORT_LIVED = 2 * 3600.0
# unit -> (seconds per unit, axis label, tick steps MaxNLocator may use)
_UNITS: dict[str, tuple[float, str, list[float]]] = {
    "h": (3600.0, "hours from now", [1, 2, 3, 6, 10]),
    "min": (60.0, "minutes from now", [1, 1.5, 2, 3, 5, 10]),
}
_MARKS = {"fetched": ("o", "white"), "refresh planned": ("D", COLOURS["retried"])}


@dataclass
class _Row:
    """One bar: the tokens whose lifetimes coincide (times relative to now, in seconds)."""

    tokens: list[Any]
    start: float
    end: float
    fetched: float
    refresh: float


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


def _rows(tokens: list[Any], when: float, cache: Any) -> list[_Row]:
    """Tokens grouped into bars: tokens fetched together for the same lifetime are one fact, one bar."""
    from .frames import planned_refresh

    rows: list[_Row] = []
    for tok in sorted(tokens, key=lambda t: (t.expires_on, _token_name(t), _identity_name(t))):
        row = _Row([tok], _not_before(tok) - when, float(tok.expires_on) - when, float(tok.fetched_at) - when,
                   planned_refresh(tok, cache) - when)
        tolerance = max(1.0, (row.end - row.start) / 1000)  # 86 s on a 24-hour bar: invisible
        for other in rows:
            if all(abs(a - b) <= tolerance for a, b in ((row.start, other.start), (row.end, other.end),
                                                         (row.fetched, other.fetched), (row.refresh, other.refresh))):
                other.tokens.append(tok)
                break
        else:
            rows.append(row)
    return rows


def _listing(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" +{len(items) - limit}" if len(items) > limit else "")


def _row_label(row: _Row) -> str:
    """``arm · system`` / ``arm, vault · system, user 2615457f``, then lifetime and time left."""
    pairs = list(dict.fromkeys((_token_name(t), _identity_name(t)) for t in row.tokens))
    names, idents = list(dict.fromkeys(p[0] for p in pairs)), list(dict.fromkeys(p[1] for p in pairs))
    if len(pairs) == len(names) * len(idents):  # every resource for every identity
        who = f"{_listing(names)} · {_listing(idents, 2)}"
    else:
        who = _listing([f"{name} · {ident}" for name, ident in pairs], 2)
    span = row.end - row.start
    # IMDS back-dates nbf by 5 min: a "24 h 5 min" span is what everyone calls a 24-hour token
    life = f"{round(span / 3600)} h" if span >= SHORT_LIVED else format_duration(span)
    left = f"expired {format_duration(-row.end)} ago" if row.end <= 0 else f"{format_duration(row.end)} left"
    n = len(row.tokens)
    return f"{who}\n{life} token, {left}" if n == 1 else f"{who}\n{n} tokens of {life}, {left}"


def _split(ax: Axes, ratios: Sequence[float]) -> Axes | None:
    """A second panel under ``ax``, in the space ``ax`` had; None if ``ax`` is not on a grid."""
    spec = ax.get_subplotspec()
    if spec is None:
        return None
    # constrained layout spaces the panels itself; otherwise leave room for tick labels, axis label, title
    constrained = type(ax.figure.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    grid = spec.subgridspec(2, 1, height_ratios=list(ratios), hspace=0.02 if constrained else 0.8)
    ax.set_subplotspec(grid[0])
    return ax.figure.add_subplot(grid[1])


def _lifetime_panel(ax: Axes, rows: list[_Row], unit: str) -> None:
    """Bars from not-before to expiry on a linear axis in ``unit`` around now, with the marks."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    scale, label, steps = _UNITS[unit]
    for i, row in enumerate(rows):
        ax.barh(i, (row.end - row.start) / scale, left=row.start / scale, height=0.5,
                color=COLOURS["expired" if row.end <= 0 else "valid"], alpha=0.85, gid="lifetime")
    for name, (marker, colour) in _MARKS.items():
        xs = [(r.fetched if name == "fetched" else r.refresh) / scale for r in rows]
        if xs:
            ax.plot(xs, range(len(rows)), linestyle="none", marker=marker, color=colour, markeredgecolor="black",
                    markersize=7, gid=name, label=name, zorder=3)
    ax.axvline(0, color=COLOURS["now"], linewidth=1.2, gid="now")
    lo, hi = min([0.0] + [r.start / scale for r in rows]), max([0.0] + [max(r.end, r.refresh) / scale for r in rows])
    lo, hi = (lo, hi) if hi - lo > 1e-9 else (-1.0, 1.0)
    pad = 0.03 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=steps))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: "now" if abs(x) < 1e-9 else f"{x:+g} {unit}"))
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="both", labelsize=8)
    ax.set_yticks(range(len(rows)), [_row_label(r) for r in rows])
    ax.set_ylim(max(len(rows), 1) - 0.25, -0.75)  # a lone bar stays a bar, not a slab
    ax.set_xlabel(label, fontsize=9)


def plot_token_lifetimes(
    tokens: Iterable[AccessToken] | TokenCache | AccessToken,
    now: float | None = None,
    cache: TokenCache | None = None,
    ax: Axes | None = None,
    *,
    provenance: str | None = None,
) -> Axes:
    """One bar per distinct lifetime, from not-before to expiry, on a linear time axis around ``now``.

    The axis is in hours from now (``now``, ``+6 h``, ``+12 h``, ...), with a line at now; each bar
    carries a circle where the token was fetched and a diamond where the cache plans to refresh it
    (``cache``'s plan, else :func:`mi_notebook.frames.planned_refresh`: half-way through a 24-hour
    token). Tokens valid for less than :data:`SHORT_LIVED` get a panel of their own, in minutes,
    below (``ax`` is split in two; ``ax`` stays the top panel). Tokens fetched together for the same
    lifetime (two identities, two resources: one fact) share one bar, labelled with all of them.
    Each row says its lifetime and the time left; expired tokens are grey.

    ``provenance`` is a subtitle saying where the data came from (see :func:`describe_provenance`);
    by default it is shown when a token came from the mi-notebook emulator; ``""`` shows none.

    Example::

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from mi_notebook.tokens import AccessToken
        >>> tok = AccessToken("a.b.c", resource="https://management.azure.com/", fetched_at=0, expires_on=86400)
        >>> ax = plot_token_lifetimes([tok], now=600)
        >>> [t.get_text() for t in ax.get_yticklabels()], ax.get_xlabel()
        (['arm · system\\n24 h token, 23 h 50 min left'], 'hours from now (now = 1970-01-01 00:10:00 UTC)')
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .frames import tokens_of

    items, own_cache = tokens_of(tokens, "plot_token_lifetimes")
    cache = cache if cache is not None else own_cache
    when = time.time() if now is None else float(now)
    rows = _rows(items, when, cache)
    long_rows = [r for r in rows if r.end - r.start >= SHORT_LIVED]
    short_rows = [r for r in rows if r.end - r.start < SHORT_LIVED]
    two = bool(long_rows and short_rows)
    if ax is None:
        import matplotlib.pyplot as plt

        height = FIGSIZE[1] + (1.6 if two else 0.0) + 0.45 * max(0, len(rows) - 4)
        _, ax = plt.subplots(figsize=(FIGSIZE[0], height), layout="constrained")
    lower = _split(ax, [len(long_rows) + 1, len(short_rows) + 1]) if two else None
    if lower is not None:
        _lifetime_panel(ax, long_rows, "h")
        _lifetime_panel(lower, short_rows, "min")
        lower.set_title(f"valid for less than {format_duration(SHORT_LIVED)}, in minutes", fontsize=8, loc="left")
    else:
        _lifetime_panel(ax, rows, "h" if long_rows or not rows else "min")
    if not rows:
        ax.text(0.5, 0.5, "no tokens", transform=ax.transAxes, ha="center", va="center", color="#57606a")
    bottom = lower if lower is not None else ax
    bottom.set_xlabel(f"{bottom.get_xlabel()} (now = {format_utc(when)})", fontsize=9)
    n = len(items)
    ax.set_title(f"token lifetimes ({n} token{'s' if n != 1 else ''})")
    if provenance is None and any(getattr(t, "emulated", False) for t in items):
        provenance = describe_provenance(emulator=True)
    _subtitle(ax, provenance)
    handles: list[Artist] = [Patch(color=COLOURS["valid"], label="valid (nbf to exp)")]
    if any(r.end <= 0 for r in rows):
        handles.append(Patch(color=COLOURS["expired"], label="expired"))
    if rows:
        handles += [Line2D([], [], linestyle="none", marker=m, color=c, markeredgecolor="black", label=k)
                    for k, (m, c) in _MARKS.items()]
    handles.append(Line2D([], [], color=COLOURS["now"], label="now"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return ax
