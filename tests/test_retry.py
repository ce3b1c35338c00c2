"""RetryPolicy, execute, Attempt/Timeline and simulate: all in virtual time."""

from __future__ import annotations

import dataclasses
import pickle
import random
import statistics
import subprocess
import sys
import time

import pytest
from helpers import VirtualClock

from mi_notebook.clock import Clock
from mi_notebook.retry import Attempt, AttemptOutcome, RetryPolicy, Timeline, execute, simulate

DOCUMENTED = [0.0, 2.0, 6.0, 14.0, 30.0]


def run(answers, policy=None, *, duration=0.1, on_attempt=None, rng=None):
    """execute() against scripted outcomes (ints, "timeout", or AttemptOutcome); the last repeats."""
    vt = VirtualClock(1000.0)
    calls: list[int] = []

    def send(n: int) -> AttemptOutcome:
        calls.append(n)
        vt.now += duration
        item = answers[min(n, len(answers)) - 1]
        if isinstance(item, AttemptOutcome):
            return item
        if item == "timeout":
            return AttemptOutcome(exception=TimeoutError("read timed out"))
        return AttemptOutcome(status=item, value={"ok": True} if 200 <= item < 300 else None)

    outcome, timeline = execute(
        send,
        policy or RetryPolicy(jitter=0),
        clock=Clock(monotonic=vt, wall=lambda: 1_700_000_000.0, sleep=vt.sleep, rng=rng),
        on_attempt=on_attempt,
    )
    return outcome, timeline, vt, calls


# --- the policy as numbers ---------------------------------------------------------------------------
def test_documented_delays_exactly():
    assert RetryPolicy(jitter=0).delays() == DOCUMENTED
    assert RetryPolicy.documented().delays() == DOCUMENTED
    assert all(isinstance(d, float) for d in RetryPolicy(jitter=0).delays())


def test_defaults_are_the_documented_table():
    p = RetryPolicy()
    assert (p.max_attempts, p.min_backoff, p.max_backoff, p.delta_backoff, p.first_fast_retry) == (
        5, 0.0, 60.0, 2.0, False,
    )
    assert (p.jitter, p.gone_window, p.max_retry_after) == (0.2, 70.0, 60.0)


def test_first_fast_retry_and_min_backoff_and_cap():
    assert RetryPolicy(jitter=0, first_fast_retry=True).delays() == [0.0, 0.0, 2.0, 6.0, 14.0]
    assert RetryPolicy(jitter=0, min_backoff=1.0).delays() == [0.0, 3.0, 7.0, 15.0, 31.0]
    assert RetryPolicy(jitter=0, min_backoff=1.0, first_fast_retry=True).delays() == [0.0, 0.0, 3.0, 7.0, 15.0]
    assert RetryPolicy(jitter=0, max_attempts=8).delays() == [0.0, 2.0, 6.0, 14.0, 30.0, 60.0, 60.0, 60.0]
    assert RetryPolicy(jitter=0, max_backoff=10).delays() == [0.0, 2.0, 6.0, 10.0, 10.0]
    assert RetryPolicy(jitter=0, delta_backoff=1).delays() == [0.0, 1.0, 3.0, 7.0, 15.0]
    # far past the cap: no overflow
    assert RetryPolicy(jitter=0).backoff(5000) == 60.0


def test_policy_is_immutable_and_replace_returns_a_copy():
    p = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_attempts = 3  # type: ignore[misc]
    q = p.replace(max_attempts=3, jitter=0)
    assert q.delays() == [0.0, 2.0, 6.0] and p.max_attempts == 5
    assert hash(RetryPolicy()) == hash(RetryPolicy())


@pytest.mark.parametrize(
    "changes",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"min_backoff": -1},
        {"max_backoff": float("nan")},
        {"min_backoff": 10, "max_backoff": 5},
        {"gone_window": -1},
        {"schedule": ()},
        {"schedule": (1, -2)},
    ],
)
def test_invalid_policies_are_value_errors(changes):
    with pytest.raises(ValueError):
        RetryPolicy(**changes)


def test_jitter_stays_within_bounds_over_many_draws():
    rng = random.Random(1234)
    policy = RetryPolicy()  # +-20 %
    draws = [policy.delays(rng) for _ in range(2000)]
    for k, base in enumerate(DOCUMENTED):
        column = [d[k] for d in draws]
        if base == 0:
            assert set(column) == {0.0}
            continue
        assert min(column) >= base * 0.8 - 1e-9
        assert max(column) <= base * 1.2 + 1e-9
        # really spread out (kernels must not retry in step), and centred on the documented value
        assert min(column) < base * 0.83 and max(column) > base * 1.17
        assert statistics.fmean(column) == pytest.approx(base, rel=0.02)


def test_jitter_rng_is_injectable_and_default_rng_varies():
    a = RetryPolicy().delays(random.Random(7))
    b = RetryPolicy().delays(random.Random(7))
    assert a == b
    assert RetryPolicy().delays() != RetryPolicy().delays()  # OS-seeded process rng


@pytest.mark.parametrize("status", [404, 410, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status):
    assert RetryPolicy().is_retryable(status)


@pytest.mark.parametrize("status", [200, 201, 204, 301, 302, 400, 401, 403, 405, 409, 413, 418, 499])
def test_not_retryable_statuses(status):
    assert not RetryPolicy().is_retryable(status)


def test_no_answer_is_retryable():
    assert RetryPolicy().is_retryable(None)


# --- execute: each class of answer ---------------------------------------------------------------------
def test_success_on_first_attempt():
    outcome, t, vt, calls = run([200])
    assert outcome.ok and outcome.value == {"ok": True}
    assert calls == [1] and vt.slept == []
    assert len(t) == 1 and t[0].outcome == "success" and t[0].wait == 0.0 and t[0].wait_reason is None
    assert t.outcome == "success" and t.started_at == 1_700_000_000.0


def test_server_errors_then_success_follow_the_documented_waits():
    outcome, t, vt, calls = run([500, 503, 200])
    assert outcome.status == 200 and calls == [1, 2, 3]
    assert vt.slept == [2.0, 6.0]
    assert [a.outcome for a in t] == ["retried", "retried", "success"]
    assert [a.wait_reason for a in t] == ["backoff", "backoff", None]
    assert [a.start for a in t] == pytest.approx([0.0, 2.1, 8.2])
    assert t.total == pytest.approx(8.3)
    assert t.summary() == "3 attempts over 8.3 s: 500, 503, 200"


@pytest.mark.parametrize("status", [404, 429, 500, 503])
def test_retryable_status_exhausts_max_attempts(status):
    outcome, t, vt, calls = run([status])
    assert outcome.status == status and not outcome.ok
    assert calls == [1, 2, 3, 4, 5]
    assert vt.slept == [2.0, 6.0, 14.0, 30.0]
    assert t.outcome == "failed" and t[-1].outcome == "failed" and t[-1].wait == 0.0


@pytest.mark.parametrize("status", [400, 401, 403, 405, 409])
def test_other_4xx_are_not_retried(status):
    outcome, t, vt, calls = run([status, 200])
    assert outcome.status == status and calls == [1] and vt.slept == []
    assert t.outcome == "failed" and t.summary() == f"1 attempt over 0.1 s: {status}"


def test_timeouts_and_connection_errors_are_retried():
    outcome, t, vt, calls = run(["timeout", AttemptOutcome(exception=ConnectionResetError("reset")), 200])
    assert outcome.ok and calls == [1, 2, 3]
    assert t[0].exception == "TimeoutError: read timed out" and t[0].status is None
    assert t[1].exception == "ConnectionResetError: reset"
    assert t.statuses == ["TimeoutError", "ConnectionResetError", "200"]


def test_all_timeouts_end_failed_after_max_attempts():
    outcome, t, vt, calls = run(["timeout"], duration=2.0)
    assert outcome.exception is not None and len(t) == 5 and t.outcome == "failed"
    assert t.total == pytest.approx(2.0 * 5 + 52.0)


def test_unparsable_answer_is_not_retried():
    html = AttemptOutcome(status=200, exception=ValueError("HTTP 200 with an HTML body"))
    outcome, t, _, calls = run([html, 200])
    assert calls == [1] and not outcome.ok and t.outcome == "failed"
    assert t[0].exception == "ValueError: HTTP 200 with an HTML body"


def test_retryable_override_from_the_transport():
    truncated = AttemptOutcome(status=200, exception=ValueError("cut short"), retryable=True)
    _, t, _, calls = run([truncated, 200])
    assert calls == [1, 2] and t.outcome == "success"
    proxy_503 = AttemptOutcome(status=503, retryable=False)
    _, t, _, calls = run([proxy_503, 200])
    assert calls == [1] and t.outcome == "failed"


def test_error_fields_and_request_id_are_recorded():
    answer = AttemptOutcome(status=429, error="invalid_request", error_description="Temporarily throttled",
                            request_id="req-1")
    _, t, _, _ = run([answer, 200])
    first = t[0]
    assert (first.status, first.error, first.error_description, first.request_id) == (
        429, "invalid_request", "Temporarily throttled", "req-1",
    )


def test_send_exceptions_propagate():
    def send(n):
        raise RuntimeError("bug in the transport")

    with pytest.raises(RuntimeError, match="bug in the transport"):
        execute(send, RetryPolicy(), clock=Clock(sleep=lambda s: None))


# --- Retry-After ------------------------------------------------------------------------------------------
def test_retry_after_is_honoured_and_recorded():
    _, t, vt, _ = run([AttemptOutcome(status=429, retry_after=7.0), 200])
    assert vt.slept == [7.0]
    assert t[0].wait == 7.0 and t[0].wait_reason == "retry-after"


def test_retry_after_is_bounded_by_max_retry_after():
    _, t, vt, _ = run([AttemptOutcome(status=503, retry_after=3600.0), 200])
    assert vt.slept == [60.0] and t[0].wait_reason == "retry-after"
    _, t, vt, _ = run([AttemptOutcome(status=503, retry_after=3600.0), 200], RetryPolicy(jitter=0, max_retry_after=5))
    assert vt.slept == [5.0]


def test_retry_after_on_a_non_retryable_answer_is_ignored():
    outcome, t, vt, calls = run([AttemptOutcome(status=400, retry_after=1.0), 200])
    assert calls == [1] and vt.slept == [] and outcome.status == 400


def test_retry_after_does_not_extend_max_attempts():
    outcome, t, vt, calls = run([AttemptOutcome(status=429, retry_after=1.0)])
    assert calls == [1, 2, 3, 4, 5] and vt.slept == [1.0] * 4


# --- the 410 rule ----------------------------------------------------------------------------------------
def _check_gone_rule(t: Timeline, policy: RetryPolicy):
    gone = t.gone_since
    assert gone is not None
    last = t[-1]
    # retried for at least the window since the first 410: the last attempt ends past it...
    assert last.end - gone >= policy.gone_window - 1e-9
    # ... every earlier one ended inside it (the attempt that crosses the window is the last) ...
    assert all(a.end - gone < policy.gone_window for a in t.attempts[:-1] if a.start >= gone)
    # ... and the last one started no more than one back-off after the window
    assert last.start - gone <= policy.gone_window + policy.max_backoff


def test_410_keeps_retrying_past_max_attempts_for_70_seconds():
    policy = RetryPolicy(jitter=0)
    outcome, t, vt, calls = run([410], policy)
    assert outcome.status == 410 and t.outcome == "failed"
    assert len(t) > policy.max_attempts
    assert t.gone_since == 0.0
    assert t.total >= 70.0
    _check_gone_rule(t, policy)
    assert [a.wait_reason for a in t] == ["backoff"] * 4 + ["gone-window"] + [None]
    assert t[-1].start == pytest.approx(70.0)


def test_410_window_counts_from_the_first_410():
    policy = RetryPolicy(jitter=0)
    _, t, _, calls = run([500, 500, 500, 410], policy)
    assert t.gone_since == pytest.approx(22.3)
    _check_gone_rule(t, policy)
    assert len(t) == 6


def test_410_then_success():
    outcome, t, _, calls = run([410, 410, 200])
    assert outcome.ok and calls == [1, 2, 3] and t.gone_since == 0.0


def test_410_rule_holds_with_jitter_and_slow_attempts():
    for seed in range(50):
        policy = RetryPolicy()
        duration = random.Random(seed).uniform(0.01, 5.0)
        _, t, _, _ = run([410], policy, duration=duration, rng=random.Random(seed))
        _check_gone_rule(t, policy)


def test_410_rule_with_a_larger_window_and_early_410():
    policy = RetryPolicy(jitter=0, gone_window=200)
    _, t, _, _ = run([410], policy)
    _check_gone_rule(t, policy)
    assert all(a.wait <= policy.max_backoff for a in t)


def test_410_with_a_frozen_clock_terminates():
    calls = []

    def send(n):
        calls.append(n)
        return AttemptOutcome(status=410)

    slept = []
    outcome, t = execute(send, RetryPolicy(jitter=0), clock=Clock(monotonic=lambda: 0.0, sleep=slept.append))
    assert outcome.status == 410
    assert sum(slept) >= 70.0 and len(calls) < 20


def test_gone_window_zero_disables_the_extension():
    _, t, _, calls = run([410], RetryPolicy(jitter=0, gone_window=0))
    assert calls == [1, 2, 3, 4, 5]


# --- callbacks -----------------------------------------------------------------------------------------
def test_on_attempt_is_called_after_each_attempt_with_the_next_wait():
    seen = []
    _, t, _, _ = run([500, 429, 200], on_attempt=lambda a, w, m: seen.append((a, w, m)))
    assert [(a.number, w, m) for a, w, m in seen] == [(1, 2.0, 5), (2, 6.0, 5), (3, None, 5)]
    assert [a for a, _, _ in seen] == list(t)


def test_on_attempt_runs_before_the_sleep():
    order = []
    vt = VirtualClock(1000.0)

    def send(n):
        order.append(f"send {n}")
        return AttemptOutcome(status=500 if n == 1 else 200)

    def sleep(s):
        order.append(f"sleep {s:g}")

    execute(send, RetryPolicy(jitter=0), clock=Clock(monotonic=vt, sleep=sleep),
            on_attempt=lambda a, w, m: order.append(f"attempt {a.number}"))
    assert order == ["send 1", "attempt 1", "sleep 2", "send 2", "attempt 2"]


# --- Attempt and Timeline -------------------------------------------------------------------------------
def test_timeline_is_a_sequence_with_a_readable_repr():
    _, t, _, _ = run([500, 200])
    assert len(t) == 2 and [a.number for a in t] == [1, 2] and t[1].status == 200 and t[-1] is t.attempts[-1]
    assert repr(t) == "Timeline(2 attempts over 2.2 s: 500, 200; outcome='success')"
    assert "0x" not in repr(t) and "0x" not in repr(t[0])
    assert repr(Timeline()) == "Timeline(no attempts)" and Timeline().outcome is None and Timeline().total == 0.0
    assert t.waited == 2.0
    assert t[0].end == pytest.approx(0.1)


def test_timeline_is_immutable_and_plain_data_friendly():
    _, t, _, _ = run(["timeout", 429, 200])
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.attempts = ()  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(t)) == t
    d = t.to_dict()
    assert d["attempts"][0]["exception"] == "TimeoutError: read timed out"
    assert d["policy"]["max_attempts"] == 5
    assert Timeline.from_dict(d) == t
    import json

    json.dumps(d)  # JSON-friendly


def test_to_frame_columns_and_values():
    _, t, _, _ = run(["timeout", 503, 200])
    frame = t.to_frame()
    assert list(frame.columns) == [
        "attempt", "start_s", "duration_s", "status", "error", "outcome", "wait_s", "wait_reason", "exception",
    ]
    assert frame["attempt"].tolist() == [1, 2, 3]
    assert frame["outcome"].tolist() == ["retried", "retried", "success"]
    assert frame["wait_s"].tolist() == [2.0, 6.0, 0.0]
    assert frame["status"].isna().tolist() == [True, False, False]


def test_attempt_outcome_repr_hides_the_value():
    o = AttemptOutcome(status=200, value={"access_token": "super-secret-token"})
    assert "super-secret-token" not in repr(o)
    assert AttemptOutcome(exception=TimeoutError()).label == "TimeoutError"


def test_attempt_exception_text_is_bounded():
    _, t, _, _ = run([AttemptOutcome(exception=OSError("x" * 5000)), 200])
    assert len(t[0].exception) <= 300


def test_attempt_label():
    a = Attempt(number=1, start=0, duration=1, exception="ReadTimeout: boom")
    assert a.label == "ReadTimeout" and a.end == 1


# --- simulate and presets ---------------------------------------------------------------------------------
def test_simulate_is_instant_and_deterministic_without_jitter():
    began = time.perf_counter()
    t = simulate(RetryPolicy.documented(), [410])
    assert time.perf_counter() - began < 0.5
    assert t.total >= 70.0 and t.policy == RetryPolicy.documented()
    assert simulate(RetryPolicy.documented(), [410]) == t


def test_simulate_repeats_the_last_status_and_understands_timeouts():
    t = simulate(RetryPolicy.documented(), [500, "timeout"], attempt_duration=0.5, timeout_duration=3.0)
    assert t.statuses == ["500", "TimeoutError", "TimeoutError", "TimeoutError", "TimeoutError"]
    assert [a.duration for a in t] == [0.5, 3.0, 3.0, 3.0, 3.0]
    t = simulate(RetryPolicy.documented(), ["refused", 200])
    assert t.statuses == ["ConnectionRefusedError", "200"]


def test_simulate_accepts_ready_made_outcomes():
    t = simulate(RetryPolicy.documented(), [AttemptOutcome(status=429, retry_after=4), 200])
    assert t[0].wait == 4 and t[0].wait_reason == "retry-after"


@pytest.mark.parametrize("bad", [[], ["boom"], [99], [True], [700]])
def test_simulate_rejects_bad_statuses(bad):
    with pytest.raises(ValueError):
        simulate(RetryPolicy(), bad)


def test_simulate_with_jitter_uses_the_given_rng():
    a = simulate(RetryPolicy(), [500], rng=random.Random(3))
    b = simulate(RetryPolicy(), [500], rng=random.Random(3))
    assert a == b and [x.wait for x in a][:4] != [2.0, 6.0, 14.0, 30.0]


def test_azure_identity_preset():
    p = RetryPolicy.azure_identity()
    assert p.delays() == [0.0, 0.0, 1.6, 3.2, 6.4, 12.8]
    assert p.delays(gone=True) == [0.0, 0.0, 5.0, 10.0, 20.0, 40.0]
    t = simulate(p, [410], attempt_duration=0.0)
    assert [a.wait for a in t] == [0.0, 5.0, 10.0, 20.0, 40.0, 0.0]
    assert [a.wait_reason for a in t][1:5] == ["gone-window"] * 4
    assert t.total == pytest.approx(75.0) and len(t) == 6
    t = simulate(p, [500], attempt_duration=0.0)
    assert t.total == pytest.approx(24.0)


def test_presets():
    presets = RetryPolicy.presets()
    assert set(presets) == {"mi-notebook", "documented", "azure-identity", "no-retry"}
    assert presets["mi-notebook"] == RetryPolicy()
    assert presets["no-retry"].delays() == [0.0]
    assert simulate(presets["no-retry"], [500, 200]).summary() == "1 attempt over 0.1 s: 500"
    assert {p.label for p in presets.values()} == set(presets)
    assert "max_attempts=5" in RetryPolicy().label


def test_core_modules_do_not_import_heavy_packages():
    code = (
        "import sys, mi_notebook.retry, mi_notebook.tokens, mi_notebook.identity, mi_notebook.resources;"
        "bad = [m for m in ('pandas', 'matplotlib', 'ipywidgets', 'requests') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docstring_examples_run():
    import doctest

    import mi_notebook.retry as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
