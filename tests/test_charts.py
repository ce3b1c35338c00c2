"""charts.py: each chart rendered to PNG (Agg) and checked for what it shows."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")  # this test module only; notebooks keep their inline backend

import jwt  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mi_notebook.cache import TokenCache
from mi_notebook.charts import (  # noqa: E402
    FIGSIZE,
    default_policies,
    describe_provenance,
    plot_policy_comparison,
    plot_retry_timeline,
    plot_token_lifetimes,
)
from mi_notebook.clock import VirtualClock
from mi_notebook.frames import planned_refresh  # noqa: E402
from mi_notebook.identity import Identity  # noqa: E402
from mi_notebook.retry import AttemptOutcome, RetryPolicy, simulate  # noqa: E402
from mi_notebook.tokens import AccessToken  # noqa: E402

NOW = 1_767_225_600  # 2026-01-01 00:00:00 UTC
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def render(ax, tmp_path, name):
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path, dpi=80)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    return path


def by_gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def legend_labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def wait_text(seconds: float) -> str:
    rounded = round(seconds, 1)
    return f"{rounded:.0f} s" if rounded == int(rounded) else f"{rounded:.1f} s"


def extents(ax, artists):
    renderer = ax.figure.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


def assert_nothing_overlaps(ax):
    """No label sits on a marker or on the dashed total line, and labels do not touch each other."""
    ax.figure.canvas.draw()
    labels = [t for t in ax.texts if t.get_gid() in ("wait-label", "status-label", "total-label")]
    boxes = extents(ax, labels)
    markers = extents(ax, [line for line in ax.lines if (line.get_gid() or "").startswith("attempts-")])
    marker_points = [ax.transData.transform((x, 0))[0] for line in ax.lines
                     if (line.get_gid() or "").startswith("attempts-") for x in line.get_xdata()]
    marker_y = markers[0].y0, markers[0].y1
    for label, box in zip(labels, boxes, strict=True):
        for x in marker_points:
            on_marker = box.x0 - 4 < x < box.x1 + 4 and box.y0 < marker_y[1] and box.y1 > marker_y[0]
            assert not on_marker, f"{label.get_text()!r} is drawn over a marker"
    (total,) = by_gid(ax.lines, "total")
    line_x = ax.transData.transform((total.get_xdata()[0], 0))[0]
    line_box = total.get_window_extent(ax.figure.canvas.get_renderer())
    for label, box in zip(labels, boxes, strict=True):
        if label.get_gid() != "total-label" and box.x0 < line_x < box.x1:
            assert box.y0 > line_box.y1 or box.y1 < line_box.y0, f"{label.get_text()!r} is on the total line"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "two labels overlap"


def assert_no_empty_band(ax, tmp_path, name):
    """No horizontal third of the plot area is blank (checked on the rendered pixels)."""
    from matplotlib.image import imread

    path = render(ax, tmp_path, name)
    pixels = imread(path)[..., :3]
    box = ax.get_window_extent()
    height = pixels.shape[0]
    top, bottom = int(height - box.y1 * 80 / ax.figure.dpi) + 3, int(height - box.y0 * 80 / ax.figure.dpi) - 3
    left, right = int(box.x0 * 80 / ax.figure.dpi) + 3, int(box.x1 * 80 / ax.figure.dpi) - 3
    area = pixels[top:bottom, left:right]
    third = (bottom - top) // 3
    for k in range(3):
        band = area[k * third:(k + 1) * third]
        assert (band < 0.9).any(axis=2).mean() > 0.01, f"band {k} of {name} is empty"


# --- retry timeline ----------------------------------------------------------------------------------
def test_five_attempt_5xx_episode(tmp_path):
    timeline = simulate(RetryPolicy(), [500, 502, "timeout", 503, 500], rng=random.Random(1), timeout_duration=1.0)
    assert len(timeline) == 5 and timeline.outcome == "failed"
    ax = plot_retry_timeline(timeline)
    render(ax, tmp_path, "5xx")

    assert tuple(ax.figure.get_size_inches()) == FIGSIZE
    assert repr(ax.figure) == "<Figure size 800x300 with 1 Axes>"
    # one bar per attempt, spanning its duration (the time-out took 1 s)
    bars = by_gid(ax.patches, "attempt")
    assert [(round(b.get_x(), 3), round(b.get_width(), 3)) for b in bars] == [
        (round(a.start, 3), round(a.duration, 3)) for a in timeline]
    assert bars[2].get_width() == pytest.approx(1.0)
    # markers by outcome: 3 retried (one of them a time-out, drawn apart), 1 failed
    markers = {line.get_label(): list(line.get_xdata()) for line in ax.lines if (line.get_gid() or "").startswith("attempts-")}
    assert markers == {
        "retried": [timeline[0].start, timeline[1].start, timeline[3].start],
        "time-out": [timeline[2].start],
        "failed": [timeline[4].start],
    }
    # the four waits, shaded and labelled with their (jittered) lengths
    waits = by_gid(ax.patches, "wait")
    assert [round(w.get_width(), 6) for w in waits] == [round(a.wait, 6) for a in timeline[:4]]
    narrow = ax.get_xlim()[1] / 1.05 * 0.06  # a wait narrower than this is labelled below the band
    assert [t.get_text() for t in ax.texts if t.get_gid() == "wait-label"] == [
        wait_text(a.wait) if a.wait < narrow else f"wait {wait_text(a.wait)}" for a in timeline[:4]]
    assert_nothing_overlaps(ax)
    assert [t.get_text() for t in ax.texts if t.get_gid() == "status-label"] == ["500", "502", "time-out", "503", "500"]
    # total time and final outcome
    assert by_gid(ax.lines, "total")[0].get_xdata()[0] == pytest.approx(timeline.total)
    assert f"total {timeline.total:.1f} s" in [t.strip() for t in texts(ax)]
    assert ax.get_title() == f"failed after 5 attempts in {timeline.total:.1f} s: last answer 500"
    assert legend_labels(ax) == ["retried", "failed", "time-out", "wait"]
    left, right = ax.get_xlim()
    assert left < 0 < timeline.total < right < timeline.total * 1.1
    assert not by_gid(ax.patches, "gone-window")


def test_410_episode_shows_the_70_second_window(tmp_path):
    timeline = simulate(RetryPolicy.documented(), [410] * 5 + [200])
    assert timeline.gone_since == 0.0 and timeline.outcome == "success"
    ax = plot_retry_timeline(timeline)
    render(ax, tmp_path, "410")

    (window,) = by_gid(ax.patches, "gone-window")
    assert (window.get_x(), window.get_width()) == (0.0, 70.0)
    assert "410: IMDS back within 70 s" in texts(ax)
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "wait-label"]
    assert labels[:4] == ["2 s", "wait 6 s", "wait 14 s", "wait 30 s"]  # 2 s is too narrow: below the band
    assert_nothing_overlaps(ax)
    assert labels[4].endswith("(410)")  # the extra wait comes from the 410 window
    assert ax.get_title() == "success after 6 attempts in 70 s"
    assert legend_labels(ax) == ["success", "retried", "wait", "410 window"]
    assert ax.get_xlim()[1] >= 70
    # status labels of attempts close together are staggered, not drawn over each other
    status = [t for t in ax.texts if t.get_gid() == "status-label"]
    assert status[0].get_position()[1] != status[1].get_position()[1]


@pytest.mark.parametrize("answers", [[503, 429, 200], [500, 502, "timeout", 503, 500], [410] * 6, [410, 410, 200]])
def test_no_third_of_the_retry_plot_is_empty(tmp_path, answers):
    timeline = simulate(RetryPolicy(), answers, rng=random.Random(1), timeout_duration=1.0)
    ax = plot_retry_timeline(timeline)
    assert_no_empty_band(ax, tmp_path, "bands")
    assert_nothing_overlaps(ax)


def test_retry_after_is_labelled(tmp_path):
    timeline = simulate(RetryPolicy.documented(), [AttemptOutcome(status=429, retry_after=10), 200])
    ax = plot_retry_timeline(timeline)
    render(ax, tmp_path, "retry-after")
    assert [t.get_text() for t in ax.texts if t.get_gid() == "wait-label"] == ["Retry-After 10 s"]
    assert ax.get_title() == "success after 2 attempts in 10.1 s"


def test_the_retry_timeline_says_where_its_attempts_came_from(tmp_path):
    timeline = simulate(RetryPolicy.documented(), [503, 200])
    assert not [t for t in plot_retry_timeline(timeline).texts if t.get_gid() == "provenance"]  # unknown: none
    source = describe_provenance(emulator=True, injected=[503], virtual_time=True)
    ax = plot_retry_timeline(timeline, provenance=source)
    render(ax, tmp_path, "provenance")
    assert [t.get_text() for t in ax.texts if t.get_gid() == "provenance"] == [
        "data: mi-notebook emulator (not Azure) · injected 503 · virtual time"]
    assert ax.get_title() == "success after 2 attempts in 2.1 s"  # the title is unchanged, the subtitle below it
    assert_nothing_overlaps(ax)


def test_draws_into_a_given_axes():
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
    before = plt.get_fignums()
    assert plot_retry_timeline(simulate(RetryPolicy.documented(), [200]), ax=ax2) is ax2
    assert plt.get_fignums() == before
    assert ax2.get_title() == "success after 1 attempt in 50 ms" and not ax1.has_data()


# --- policy comparison --------------------------------------------------------------------------------
def row_starts(ax, i):
    return [float(line.get_xdata()[0]) for line in by_gid(ax.lines, f"attempt-{i}")]


def test_policy_comparison_default_rows(tmp_path):
    ax = plot_policy_comparison()
    render(ax, tmp_path, "policies")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(default_policies())
    # the documented table: waits 2, 6, 14, 30 s after 50 ms attempts
    assert row_starts(ax, 0) == pytest.approx([0, 2.05, 8.1, 22.15, 52.2])
    # azure-identity: 0.8 factor (0, 1.6, 3.2, 6.4, 12.8) and, after 410, 0, 5, 10, 20, 40
    assert row_starts(ax, 3) == pytest.approx([0, 0.05, 1.7, 4.95, 11.4, 24.25])
    assert row_starts(ax, 4) == pytest.approx([0, 0.05, 5.1, 15.15, 35.2, 75.25])
    # jitter, seeded: within +-20 % of the table, and the same on every run
    jittered = row_starts(ax, 1)
    assert len(jittered) == 5 and jittered != pytest.approx(row_starts(ax, 0))
    for got, table in zip(jittered[1:], [2.05, 8.1, 22.15, 52.2], strict=True):
        assert table * 0.75 < got < table * 1.25
    assert row_starts(plot_policy_comparison(), 1) == jittered
    # the toolkit keeps going through the 410 window: its row reaches 70 s
    assert row_starts(ax, 2)[-1] == pytest.approx(70.0, abs=0.1)
    # the 410 window sits behind its own row, centred on it
    (window,) = by_gid(ax.patches, "gone-window-2")
    assert window.get_y() + window.get_height() / 2 == pytest.approx(2)
    assert (window.get_x(), window.get_width()) == (0.0, 70.0)
    assert by_gid(ax.patches, "gone-window-4") == []
    assert "5 attempts, 52.2 s" in [t.strip() for t in texts(ax)]
    # rows that run against 410 say so; the title does not claim 500 for them
    assert "6 attempts, 75.3 s · answers 410" in [t.strip() for t in texts(ax)]
    assert "6 attempts, 70 s · answers 410" in [t.strip() for t in texts(ax)]
    assert ax.get_xlim()[1] > 75.3
    assert legend_labels(ax) == ["retried", "failed", "410 window"]
    assert ax.get_title() == "retry schedules against answers 500 (the last repeats), unless the row says otherwise"
    same = plot_policy_comparison({"documented": RetryPolicy.documented()})
    assert same.get_title() == "retry schedules against answers 500 (the last repeats)"
    # every row is a simulation, and the chart says so unless told otherwise
    notes = [t.get_text() for t in ax.texts if t.get_gid() == "provenance"]
    assert notes == ["data: simulated (scripted answers, no endpoint) · virtual time"]
    assert not [t for t in plot_policy_comparison(provenance="").texts if t.get_gid() == "provenance"]


def test_policy_comparison_custom_policies_and_statuses(tmp_path):
    policies = {"fast": RetryPolicy(jitter=0, delta_backoff=0.5), "table": RetryPolicy.documented(),
                "no retry": (RetryPolicy.no_retry(), [503])}
    ax = plot_policy_comparison(policies, statuses=[503, "timeout", 200])
    render(ax, tmp_path, "custom")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fast", "table", "no retry"]
    assert [len(by_gid(ax.lines, f"attempt-{i}")) for i in range(3)] == [3, 3, 1]
    colours = [line.get_color() for line in by_gid(ax.lines, "attempt-1")]
    assert colours[-1] != colours[0]  # success differs from retried
    assert legend_labels(ax) == ["success", "retried", "failed", "time-out"]


# --- token lifetimes ----------------------------------------------------------------------------------
USER = Identity.user(client_id="2615457f-4ab1-4e08-8e18-957dbbab22d9")


def make_token(resource, lifetime, *, fetched_ago, backdate=300, decodable=True, identity=None, emulated=False):
    fetched = NOW - fetched_ago
    issued = fetched - backdate
    raw = (jwt.encode({"aud": resource, "iat": issued, "nbf": issued, "exp": fetched + lifetime}, "k" * 32)
           if decodable else f"opaque-{resource}-{lifetime}")
    return AccessToken(raw, resource=resource, expires_on=fetched + lifetime, not_before=issued, fetched_at=fetched,
                       identity=identity or Identity.system(), emulated=emulated)


@pytest.fixture()
def three_tokens():
    return [
        make_token("https://management.azure.com/", 86400, fetched_ago=600),
        make_token("https://vault.azure.net", 3600, fetched_ago=300, backdate=0),
        make_token("https://storage.azure.com/", 120, fetched_ago=30, backdate=0),
    ]


def bar_pixels(ax, bar):
    x0 = ax.transData.transform((bar.get_x(), 0))[0]
    x1 = ax.transData.transform((bar.get_x() + bar.get_width(), 0))[0]
    return x1 - x0


def spans(ax):
    return [(round(b.get_x(), 4), round(b.get_x() + b.get_width(), 4)) for b in by_gid(ax.patches, "lifetime")]


def row_labels(ax):
    return [t.get_text() for t in ax.get_yticklabels()]


def tick_labels(ax):
    """The x tick labels matplotlib draws (inside the view)."""
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]


def subtitle(ax):
    found = [t.get_text() for t in ax.texts if t.get_gid() == "provenance"]
    assert len(found) <= 1
    return found[0] if found else None


def test_token_lifetimes_24h_in_hours_and_short_tokens_in_minutes(tmp_path, three_tokens):
    ax = plot_token_lifetimes(three_tokens, now=NOW)
    render(ax, tmp_path, "lifetimes")
    top, bottom = ax.figure.axes
    assert top is ax and repr(ax.figure) == "<Figure size 800x460 with 2 Axes>"
    gap = top.get_position().y0 - bottom.get_position().y1  # figure fraction, after layout
    assert 0 < gap < 0.22, f"the panels are {gap:.0%} of the figure apart"
    # a linear axis in hours for the 24-hour token: bar from not-before to expiry, relative to now
    assert ax.get_xscale() == bottom.get_xscale() == "linear"
    assert spans(ax) == [(-0.25, 23.8333)]
    assert ax.get_xlabel() == "hours from now"
    assert tick_labels(ax) == ["now", "+6 h", "+12 h", "+18 h", "+24 h"]
    # the short-lived ones in their own panel, in minutes, sorted by expiry
    assert spans(bottom) == [(-0.5, 1.5), (-5.0, 55.0)]
    assert bottom.get_xlabel() == "minutes from now (now = 2026-01-01 00:00:00 UTC)"
    assert tick_labels(bottom)[:2] == ["now", "+15 min"] and all(t.endswith(" min") for t in tick_labels(bottom)[1:])
    assert row_labels(ax) == ["arm · system\n24 h token, 23 h 50 min left"]
    assert row_labels(bottom) == ["storage · system\n2 min token, 1 min 30 s left", "vault · system\n1 h token, 55 min left"]
    # every bar is readable in its panel (on one 24-hour axis the 2-minute one would be 0.1 % wide)
    for panel in (ax, bottom):
        width = panel.get_window_extent().width
        assert all(bar_pixels(panel, b) > 0.025 * width for b in by_gid(panel.patches, "lifetime"))
    # marks: fetch time and planned refresh on each bar, a line at now in each panel
    assert list(by_gid(ax.lines, "fetched")[0].get_xdata()) == [pytest.approx(-600 / 3600)]
    assert list(by_gid(ax.lines, "refresh planned")[0].get_xdata()) == [pytest.approx(42600 / 3600)]
    assert list(by_gid(bottom.lines, "refresh planned")[0].get_xdata()) == pytest.approx(
        [(planned_refresh(t) - NOW) / 60 for t in three_tokens[:0:-1]])
    assert [list(by_gid(p.lines, "now")[0].get_xdata()) for p in (ax, bottom)] == [[0, 0], [0, 0]]
    assert legend_labels(ax) == ["valid (nbf to exp)", "fetched", "refresh planned", "now"]
    assert subtitle(ax) is None  # made-up tokens labelled "imds": no provenance unless the caller gives one
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    tick_boxes = extents(ax, [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high])
    assert all(b.x0 - a.x1 >= 4 for a, b in zip(tick_boxes, tick_boxes[1:], strict=False)), "tick labels touch"


def test_tokens_fetched_together_are_one_bar_with_the_emulator_said(tmp_path):
    together = [make_token(resource, 86400, fetched_ago=2, identity=ident, emulated=True)
                for ident in (Identity.system(), USER) for resource in ("https://management.azure.com/",
                                                                         "https://vault.azure.net")]
    later = make_token("https://management.azure.com/", 86400, fetched_ago=-1, emulated=True)  # 1 s later: same
    ax = plot_token_lifetimes([*together, later], now=NOW)
    render(ax, tmp_path, "together")
    assert len(by_gid(ax.patches, "lifetime")) == 1 and len(ax.figure.axes) == 1
    assert row_labels(ax) == ["arm, vault · system, user 2615457f\n5 tokens of 24 h, 23 h 59 min left"]
    assert ax.get_title() == "token lifetimes (5 tokens)"
    assert subtitle(ax) == "data: mi-notebook emulator (not Azure)"
    # a token fetched an hour earlier is another fact: its own bar
    earlier = make_token("https://storage.azure.com/", 86400, fetched_ago=3600, identity=USER, emulated=True)
    ax = plot_token_lifetimes([*together, earlier], now=NOW, provenance="")
    assert len(by_gid(ax.patches, "lifetime")) == 2 and subtitle(ax) is None
    assert row_labels(ax)[0] == "storage · user 2615457f\n24 h token, 23 h left"
    # not every resource for every identity: the pairs are listed
    ax = plot_token_lifetimes([together[0], together[3]], now=NOW, provenance="data: a test")
    assert row_labels(ax) == ["arm · system, vault · user 2615457f\n2 tokens of 24 h, 23 h 59 min left"]
    assert subtitle(ax) == "data: a test"


def test_the_subtitle_sits_between_the_title_and_the_plot(tmp_path):
    ax = plot_token_lifetimes([make_token("https://vault.azure.net", 86400, fetched_ago=0, emulated=True)], now=NOW)
    render(ax, tmp_path, "subtitle")
    renderer = ax.figure.canvas.get_renderer()
    (note,) = [t for t in ax.texts if t.get_gid() == "provenance"]
    title, box, plot = ax.title.get_window_extent(renderer), note.get_window_extent(renderer), ax.get_window_extent()
    assert plot.y1 <= box.y0 and box.y1 <= title.y0, (plot, box, title)
    assert note.get_fontsize() < ax.title.get_fontsize()


def test_token_lifetimes_expired_undecodable_and_cache(tmp_path):
    expired = make_token("https://vault.azure.net", 3600, fetched_ago=3900, backdate=0)
    opaque = make_token("api://my-api", 7200, fetched_ago=60, backdate=0, decodable=False)
    cache = TokenCache(clock=VirtualClock(NOW))
    for tok in (expired, opaque):
        cache.get(("http://127.0.0.1:1", tok.identity, tok.resource), lambda tok=tok: tok)
    ax = plot_token_lifetimes(cache, now=NOW)
    render(ax, tmp_path, "cache")
    top, bottom = ax.figure.axes  # 2 h goes on the hours axis, the 1-hour token below it in minutes
    (long_bar,), (short_bar,) = by_gid(top.patches, "lifetime"), by_gid(bottom.patches, "lifetime")
    assert long_bar.get_facecolor() != short_bar.get_facecolor()  # expired is grey
    assert row_labels(top) == ["api://my-api · system\n2 h token, 1 h 59 min left"]
    assert row_labels(bottom) == ["vault · system\n1 h token, expired 5 min ago"]
    assert spans(bottom) == [(-65.0, -5.0)]
    assert "expired" in legend_labels(ax)
    # the cache's plan is used
    planned = {e["token"].resource: e["refresh_at"] - NOW for e in cache.entries()}
    assert list(by_gid(top.lines, "refresh planned")[0].get_xdata()) == [pytest.approx(planned["api://my-api"] / 3600)]


def test_token_lifetimes_into_given_axes():
    fig, ax = plt.subplots(figsize=(4, 2))
    tok = make_token("https://management.azure.com/", 86400, fetched_ago=0)
    assert plot_token_lifetimes(tok, now=NOW, ax=ax) is ax
    assert ax.get_title() == "token lifetimes (1 token)" and len(fig.axes) == 1
    with pytest.raises(TypeError, match="plot_token_lifetimes needs a TokenCache, an AccessToken or a list of them"):
        plot_token_lifetimes(42, now=NOW)


def test_a_given_axes_is_split_for_short_tokens_unless_it_is_not_on_a_grid(three_tokens):
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    assert plot_token_lifetimes(three_tokens, now=NOW, ax=ax) is ax
    assert len(fig.axes) == 2 and len(by_gid(ax.patches, "lifetime")) == 1
    assert ax.get_position().y0 > fig.axes[1].get_position().y1  # the hours panel on top
    free = Figure(figsize=FIGSIZE).add_axes((0.3, 0.2, 0.5, 0.6))  # no grid to split: one panel, in hours
    plot_token_lifetimes(three_tokens, now=NOW, ax=free)
    assert len(free.figure.axes) == 1 and len(by_gid(free.patches, "lifetime")) == 3
    assert free.get_xlabel().startswith("hours from now")


def test_only_short_tokens_get_one_panel_in_minutes(tmp_path, three_tokens):
    ax = plot_token_lifetimes(three_tokens[1:], now=NOW)
    render(ax, tmp_path, "short")
    assert len(ax.figure.axes) == 1 and ax.get_xlabel().startswith("minutes from now")
    assert spans(ax) == [(-0.5, 1.5), (-5.0, 55.0)]
    assert repr(ax.figure) == "<Figure size 800x300 with 1 Axes>"


def test_empty_inputs_still_draw(tmp_path):
    from mi_notebook.retry import Timeline

    assert plot_retry_timeline(Timeline()).get_title() == "no attempts"
    ax = plot_token_lifetimes([], now=NOW)
    render(ax, tmp_path, "no-tokens")
    assert "no tokens" in texts(ax) and not by_gid(ax.patches, "lifetime")


def test_describe_provenance_words_every_source():
    assert describe_provenance() == ""
    assert describe_provenance("Azure IMDS (this VM)") == "data: Azure IMDS (this VM)"
    assert describe_provenance(simulated=True, virtual_time=True) == (
        "data: simulated (scripted answers, no endpoint) · virtual time")
    assert describe_provenance(emulator=True, injected=["503", "429 (Retry-After 3 s)"], virtual_time=True) == (
        "data: mi-notebook emulator (not Azure) · injected 503, 429 (Retry-After 3 s) · virtual time")


def test_a_one_attempt_timeline_spans_the_attempt(tmp_path):
    timeline = simulate(RetryPolicy(), [200], attempt_duration=0.012)
    ax = plot_retry_timeline(timeline)
    render(ax, tmp_path, "one")
    (bar,) = by_gid(ax.patches, "attempt")
    left, right = ax.get_xlim()
    assert bar.get_width() > 0.9 * (right - left) / 1.08  # the bar fills the axis, not 1 % of a 0-1 s one
    assert ax.get_title() == "success after 1 attempt in 12 ms"
    assert ax.get_xlabel() == "milliseconds since the first attempt"
    assert tick_labels(ax)[:3] == ["0", "2", "4"]  # not 0.000, 0.002, 0.004
    # a short strip, as the widget draws it: the total's label stays inside the plot, clear of "200"
    fig = plt.figure(figsize=(7.0, 1.7))
    strip = plot_retry_timeline(timeline, ax=fig.add_subplot())
    fig.tight_layout()
    fig.canvas.draw()
    (total,) = [t for t in strip.texts if t.get_gid() == "total-label"]
    box, frame = extents(strip, [total])[0], strip.get_window_extent()
    assert frame.y0 <= box.y0 and box.y1 <= frame.y1, "the total's label crosses the frame"
    assert_nothing_overlaps(strip)
