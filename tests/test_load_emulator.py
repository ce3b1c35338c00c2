"""The emulator under 200 concurrent connections: it keeps answering (every connection gets an HTTP answer,
none is dropped), and with throttling on it answers 429, with the documented body, beyond the documented
limits: 20 requests per second and 5 concurrent for the identity endpoint, 5 per second for instance
metadata. The emulator's clock is frozen, so the rate window never moves during a storm."""

from __future__ import annotations

import math

import pytest

from bench.reliability.load import run_emulator_storm

pytestmark = pytest.mark.timeout(40)


def test_200_concurrent_token_requests_at_most_20_per_second():
    storm = run_emulator_storm(200, path="token", throttle=True)
    assert storm.unanswered == 0 and sum(storm.statuses.values()) == 200
    assert set(storm.statuses) <= {200, 429}
    assert 1 <= storm.statuses[200] <= 20
    assert storm.throttled_bodies_ok and storm.serving_after


def test_200_concurrent_slow_token_requests_at_most_5_at_once():
    latency = 2.0
    storm = run_emulator_storm(200, path="token", throttle=True, latency=latency)
    assert storm.unanswered == 0 and set(storm.statuses) <= {200, 429}
    # each accepted request holds a slot for `latency` s: at most 5 slots per `latency` s of storm
    assert 1 <= storm.statuses[200] <= 5 * math.ceil(storm.seconds / latency)
    assert storm.statuses[200] <= 20
    assert storm.throttled_bodies_ok and storm.serving_after


def test_200_concurrent_instance_metadata_requests_at_most_5_per_second():
    storm = run_emulator_storm(200, path="instance", throttle=True)
    assert storm.unanswered == 0 and set(storm.statuses) <= {200, 429}
    assert 1 <= storm.statuses[200] <= 5
    assert storm.throttled_bodies_ok and storm.serving_after


def test_200_concurrent_requests_without_throttling_all_succeed():
    storm = run_emulator_storm(200, path="token", throttle=False)
    assert storm.statuses == {200: 200} and storm.unanswered == 0 and storm.serving_after
