"""Faults where ARM and the token endpoint meet: an ARM call whose token cannot be fetched, a 401 refresh
that meets a failing IMDS, and faults in the middle of a paged list. Virtual time throughout: the
emulator's clock, the cache's clock and every client's sleep are one shared clock."""

from __future__ import annotations

import pytest
from helpers import VirtualClock

import mi_notebook as mi
from mi_notebook import errors
from mi_notebook.arm_client import ArmClient
from mi_notebook.cache import TokenCache
from mi_notebook.emulator import Emulator
from mi_notebook.retry import RetryPolicy

pytestmark = pytest.mark.timeout(30)
START = 1_800_000_000.0


@pytest.fixture
def clock():
    return VirtualClock(START, seed=5)


@pytest.fixture
def conn(clean_connection, clock, monkeypatch):
    connection = mi.connect(mode="emulator", clock=clock, emulator_factory=lambda: Emulator(
        throttle=False, clock=clock, seed="arm-token", token_lifetime=600, arm={"page_size": 2}))
    connection.cache = TokenCache(clock=clock)  # a cache on the same virtual clock
    yield connection
    mi.disconnect()


def arm_client(conn, clock) -> ArmClient:
    return ArmClient(connection=conn, clock=clock, retry=RetryPolicy(jitter=0), timeout=(1.0, 0.2))


TOKEN_FAULTS = [
    pytest.param({"fault": 500}, errors.ServerError, 500, id="500"),
    pytest.param({"fault": 429}, errors.ThrottledError, 429, id="429"),
    pytest.param({"fault": 410}, errors.ImdsUpdatingError, 410, id="410"),
    pytest.param({"fault": "hang", "seconds": 1.0}, errors.ImdsTimeoutError, None, id="hang"),
    pytest.param({"fault": "html"}, errors.UnexpectedResponseError, 200, id="html"),
    pytest.param({"fault": "bad-expires"}, errors.UnexpectedResponseError, 200, id="bad-expires"),
]


@pytest.mark.parametrize(("fault", "error", "status"), TOKEN_FAULTS)
def test_arm_call_without_a_token_raises_the_token_endpoints_error(conn, clock, fault, error, status):
    emu = conn.emulator
    conn.client.timeout = (1.0, 0.1)
    spec = dict(fault)
    emu.inject(spec.pop("fault"), "token", count=None, **spec)
    client = arm_client(conn, clock)
    with pytest.raises(error) as info:
        client.get(emu.vm.resource_group_id)
    assert type(info.value) is error and info.value.status == status
    assert info.value.endpoint == emu.imds_url  # IMDS's error, with IMDS's timeline
    assert emu.requests.filter(service="arm") == []  # no request to ARM without a token
    emu.clear_faults()


def skewed_cache(conn) -> None:
    """A cache whose clock stands still: it believes its token valid while ARM (the emulator's clock)
    finds it expired, as with clock skew between the VM and ARM."""
    conn.cache = TokenCache(clock=VirtualClock(START))


def test_a_401_refresh_that_meets_a_failing_imds_raises_imds_error(conn, clock, monkeypatch):
    skewed_cache(conn)
    emu = conn.emulator
    client = arm_client(conn, clock)
    client.token()
    clock.now += 3600  # ARM now finds the cached token expired (the emulator's clock)
    emu.inject(503, "token", count=None)
    with pytest.raises(errors.ServerError) as info:
        client.get(emu.vm.resource_group_id)
    assert info.value.status == 503 and len(info.value.timeline) == 5
    arm_records = emu.requests.filter(service="arm")
    assert [r.status for r in arm_records] == [401]  # one try with the old token, no blind retries
    emu.clear_faults()
    assert client.get(emu.vm.resource_group_id)["name"] == emu.vm.resource_group  # and it recovers


def test_an_expired_token_is_refreshed_before_arm_sees_it_and_a_failing_imds_is_reported(conn, clock):
    """With one clock for all, the cache refreshes an expired token itself: ARM is never sent it."""
    emu = conn.emulator
    client = arm_client(conn, clock)
    client.token()
    clock.now += 3600
    emu.inject(500, "token", count=None)
    with pytest.raises(errors.ServerError):
        client.get(emu.vm.resource_group_id)
    assert emu.requests.filter(service="arm") == []
    emu.clear_faults()


def test_a_401_refresh_that_meets_one_imds_fault_recovers(conn, clock, monkeypatch):
    skewed_cache(conn)
    emu = conn.emulator
    client = arm_client(conn, clock)
    old = client.token()
    clock.now += 3600
    emu.inject(500, "token", count=2)
    assert client.get(emu.vm.resource_group_id)["name"] == emu.vm.resource_group
    assert [a.status for a in client.last_timeline] == [401, 200]
    assert client.token().fingerprint != old.fingerprint
    statuses = [r.status for r in emu.requests.filter(service="imds", endpoint="token")]
    assert statuses[-3:] == [500, 500, 200]


@pytest.mark.parametrize("fault", [{"fault": 503}, {"fault": "drop"}, {"fault": "hang", "seconds": 1.0},
                                   {"fault": 429, "retry_after": 2}, {"fault": "html", "status": 502}],
                         ids=["503", "drop", "hang", "429", "html-502"])
def test_a_fault_in_the_middle_of_a_paged_list_is_retried_and_the_list_completes(conn, clock, fault):
    emu = conn.emulator
    client = arm_client(conn, clock)
    expected = client.resource_groups(emu.vm.subscription_id)
    assert expected.pages >= 3
    emu.requests.clear()
    pages_done = []

    def on_attempt(attempt, next_wait, max_attempts):
        if attempt.outcome == "success":
            pages_done.append(attempt)
            if len(pages_done) == 1:  # page 1 done: page 2's first attempt meets the fault
                spec = dict(fault)
                emu.inject(spec.pop("fault"), "arm", count=1, **spec)

    got = client.list(f"/subscriptions/{emu.vm.subscription_id}/resourcegroups", kind="resource_groups",
                      on_attempt=on_attempt)
    assert [g["id"] for g in got] == [g["id"] for g in expected]
    assert got.pages == expected.pages
    assert [len(t) for t in got.timelines][:2] == [1, 2]  # page 2 took a retry
    assert len(emu.requests.filter(service="arm")) == expected.pages + 1


def test_a_fault_on_every_attempt_of_page_two_fails_the_list_with_arms_error(conn, clock):
    emu = conn.emulator
    client = arm_client(conn, clock)
    seen = []

    def on_attempt(attempt, next_wait, max_attempts):
        seen.append(attempt)
        if len(seen) == 1:
            emu.inject(500, "arm", count=None)

    with pytest.raises(errors.ArmError) as info:
        client.list(f"/subscriptions/{emu.vm.subscription_id}/resourcegroups", on_attempt=on_attempt)
    emu.clear_faults()
    assert info.value.status == 500 and len(info.value.timeline) == 5
    assert info.value.error_description  # ARM's own message travels with the error
