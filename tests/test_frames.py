"""frames.py: DataFrame views that combine several objects: timelines, tokens (never the token)."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pandas as pd
import pytest

from mi_notebook.cache import TokenCache
from mi_notebook.clock import VirtualClock
from mi_notebook.frames import (
    TOKENS_COLUMNS,
    planned_refresh,
    tokens_frame,
)
from mi_notebook.identity import Identity
from mi_notebook.retry import FRAME_COLUMNS, RetryPolicy, simulate
from mi_notebook.tokens import AccessToken

NOW = 1_767_225_600  # 2026-01-01 00:00:00 UTC
UAMI = Identity.user(client_id="33333333-3333-4333-8333-333333333333")


def token(resource, lifetime, fetched_ago, identity=None, secret=None):
    fetched = NOW - fetched_ago
    raw = secret or jwt.encode({"aud": resource, "iat": fetched, "exp": fetched + lifetime}, "k" * 32)
    return AccessToken(raw, resource=resource, expires_on=fetched + lifetime, not_before=fetched,
                       fetched_at=fetched, identity=identity)


def test_timeline_frame_one_row_per_attempt():
    timeline = simulate(RetryPolicy.documented(), [503, "timeout", 429, 200])
    frame = timeline.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert frame["attempt"].tolist() == [1, 2, 3, 4]
    assert frame["status"].tolist()[0] == 503 and frame["status"].isna().tolist() == [False, True, False, False]
    assert str(frame["status"].dtype) == "Int64"
    assert frame["outcome"].tolist() == ["retried", "retried", "retried", "success"]
    assert frame["wait_s"].tolist() == [2.0, 6.0, 14.0, 0.0]
    assert frame["wait_reason"].tolist()[:3] == ["backoff"] * 3
    assert frame["exception"].tolist()[1].startswith("TimeoutError")
    assert frame["start_s"].tolist() == pytest.approx([a.start for a in timeline])


def test_timeline_frame_empty():
    from mi_notebook.retry import Timeline

    assert Timeline().to_frame().empty


def test_tokens_frame_from_a_list():
    tokens = [token("https://management.azure.com/", 86400, 600),
              token("https://storage.azure.com/", 120, 30, identity=UAMI),
              token("https://vault.azure.net", 3600, 3900)]
    frame = tokens_frame(tokens, now=NOW)
    assert tuple(frame.columns) == TOKENS_COLUMNS
    # sorted by expiry; expired shown as such
    assert frame["resource"].tolist() == ["https://vault.azure.net", "https://storage.azure.com/",
                                          "https://management.azure.com/"]
    assert frame["time_left"].tolist() == ["expired", "1 min 30 s", "23 h 50 min"]
    assert frame["time_left_s"].tolist() == [-300, 90, 85800]
    assert frame["identity"].tolist()[1] == str(UAMI)
    assert frame["host"].tolist() == ["vm"] * 3
    assert frame["expires_on"].tolist()[2] == pd.Timestamp("2026-01-01 23:50:00", tz="UTC")
    assert frame["refresh_at"].tolist()[2] == pd.Timestamp(planned_refresh(tokens[0]), unit="s", tz="UTC")
    assert frame["refresh_at"].tolist()[1] == pd.Timestamp(NOW + 30, unit="s", tz="UTC")  # half of 2 min
    assert frame["fingerprint"].tolist() == [t.fingerprint for t in (tokens[2], tokens[1], tokens[0])]
    for tok in tokens:
        for text in (frame.to_string(), frame.to_html(), repr(frame.to_dict())):
            assert tok.reveal() not in text
            assert tok.reveal().split(".")[2] not in text


def test_tokens_frame_from_a_cache_uses_its_plan():
    cache = TokenCache(clock=VirtualClock(NOW))
    secret = "opaque-secret-value-1234567890"
    tok = token("api://my-api", 86400, 0, secret=secret)
    cache.get(("http://127.0.0.1:1", tok.identity, tok.resource), lambda: tok)
    frame = tokens_frame(cache, now=NOW + 3600)
    assert len(frame) == 1
    assert frame["time_left"].item() == "23 h"
    entry = cache.entries()[0]
    assert frame["refresh_at"].item() == pd.Timestamp(entry["refresh_at"], unit="s", tz="UTC")
    assert secret not in frame.to_string() and secret not in frame.to_html()
    # a single token works too, and so does an empty cache
    assert len(tokens_frame(tok, now=NOW)) == 1
    assert tokens_frame(TokenCache(), now=NOW).empty
    with pytest.raises(TypeError, match="TokenCache, an AccessToken or a list"):
        tokens_frame(42)


def test_planned_refresh_prefers_the_cache():
    tok = token("api://x", 86400, 0)

    class Planner:
        def refresh_at(self, t):
            return 123.0

    assert planned_refresh(tok, Planner()) == 123.0
    assert planned_refresh(tok) == NOW + 43200
    assert planned_refresh(token("api://x", 3600, 0)) == NOW + 3300
    assert planned_refresh(token("api://x", 120, 0)) == NOW + 60
    assert planned_refresh(tok, TokenCache()) == NOW + 43200  # a cache without this token: the formula


def test_presentation_modules_import_nothing_heavy():
    code = (
        "import sys, mi_notebook, mi_notebook.claims, mi_notebook.frames, mi_notebook.charts, mi_notebook.html\n"
        "import mi_notebook.claims, mi_notebook.claims, mi_notebook.jwks\n"
        "mi_notebook.decode, mi_notebook.plot_retry_timeline, mi_notebook.plot_policy_comparison\n"
        "heavy = sorted(m for m in ('pandas', 'matplotlib', 'requests', 'ipywidgets', 'jwt') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
