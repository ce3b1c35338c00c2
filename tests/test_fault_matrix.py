"""Every injectable fault, on the first attempt only and on every attempt, in virtual time.

For each: retried or not as documented in mi_notebook/imds.py, total virtual time within the
policy's bound, the right error type carrying status and description, and no other exception.
"""

from __future__ import annotations

import pytest
from helpers import VirtualClock, logged

from mi_notebook import errors
from mi_notebook.retry import RetryPolicy
from mi_notebook.sources.imds import ImdsClient

POLICY = RetryPolicy()  # the default: documented waits with +-20% jitter, 410 window 70 s
READ_TIMEOUT = 0.1

# fault id -> (inject kwargs, retried?, error type when every attempt fails, status on that error)
FAULTS = {
    "404": ({"fault": 404}, True, errors.ImdsUpdatingError, 404),
    "410": ({"fault": 410}, True, errors.ImdsUpdatingError, 410),
    "429": ({"fault": 429}, True, errors.ThrottledError, 429),
    "429-retry-after": ({"fault": 429, "retry_after": 4}, True, errors.ThrottledError, 429),
    "500": ({"fault": 500}, True, errors.ServerError, 500),
    "502": ({"fault": 502}, True, errors.ServerError, 502),
    "503": ({"fault": 503}, True, errors.ServerError, 503),
    "503-retry-after": ({"fault": 503, "retry_after": 1}, True, errors.ServerError, 503),
    "504": ({"fault": 504}, True, errors.ServerError, 504),
    "hang": ({"fault": "hang", "seconds": 1.0}, True, errors.ImdsTimeoutError, None),
    "drop": ({"fault": "drop"}, True, errors.EndpointUnreachableError, None),
    "truncated-short": ({"fault": "truncated", "variant": "short"}, False, errors.UnexpectedResponseError, 200),
    "truncated-incomplete": ({"fault": "truncated", "variant": "incomplete"}, True,
                             errors.UnexpectedResponseError, 200),
    "html-200": ({"fault": "html"}, False, errors.UnexpectedResponseError, 200),
    "html-502": ({"fault": "html", "status": 502}, False, errors.UnexpectedResponseError, 502),
    "bad-expires-missing": ({"fault": "bad-expires", "variant": "missing"}, False,
                            errors.UnexpectedResponseError, 200),
    "bad-expires-string": ({"fault": "bad-expires", "variant": "string"}, False,
                           errors.UnexpectedResponseError, 200),
}


def bound(policy: RetryPolicy, fault_id: str, attempts: int) -> float:
    """The most virtual time the policy may spend for this fault over ``attempts`` attempts."""
    if fault_id.startswith("410"):
        # waits continue until the 70 s window closes; the last wait is cut to the window's end
        return policy.gone_window + policy.max_backoff
    if "retry-after" in fault_id:
        retry_after = FAULTS[fault_id][0]["retry_after"]
        return min(retry_after, policy.max_retry_after) * (attempts - 1)
    most = [min(policy.min_backoff + (2**k - 1) * policy.delta_backoff * (1 + policy.jitter), policy.max_backoff)
            for k in range(1, attempts)]
    return sum(most)


@pytest.fixture(scope="module")
def emu():
    from mi_notebook.emulator import Emulator

    with Emulator(throttle=False) as emulator:
        yield emulator


def run(emu, fault_id: str, count: int | None):
    options, *_ = FAULTS[fault_id]
    emu.clear_faults()
    emu.requests.clear()
    options = dict(options)
    emu.inject(options.pop("fault"), "token", count=count, **options)
    clock = VirtualClock(seed=fault_id)
    client = ImdsClient(url=emu.imds_url, retry=POLICY, clock=clock, timeout=(1.0, READ_TIMEOUT))
    try:
        return client, clock, client.request_token("arm")
    except errors.ManagedIdentityError as exc:  # anything else fails the test as unhandled
        return client, clock, exc
    finally:
        client.close()
        emu.clear_faults()


@pytest.mark.parametrize("fault_id", list(FAULTS))
def test_fault_on_the_first_attempt_only(emu, fault_id):
    _, retried, error_type, status = FAULTS[fault_id]
    client, clock, result = run(emu, fault_id, count=1)
    if retried:
        assert not isinstance(result, Exception), f"{fault_id}: expected recovery, got {result!r}"
        assert len(result.timeline) == 2
        assert result.timeline[0].outcome == "retried" and result.timeline[1].outcome == "success"
        assert result.timeline.total <= bound(POLICY, fault_id, 2) + 1e-9
        assert emu.verify(result.reveal())["aud"] == "https://management.azure.com/"
    else:
        assert isinstance(result, error_type), f"{fault_id}: {result!r}"
        assert len(result.timeline) == 1 and clock.slept == []
        assert result.status == status
    assert sum(clock.slept) == pytest.approx(clock())
    assert len(logged(emu, 2 if retried else 1)) == (2 if retried else 1)


@pytest.mark.parametrize("fault_id", list(FAULTS))
def test_fault_on_every_attempt(emu, fault_id):
    _, retried, error_type, status = FAULTS[fault_id]
    client, clock, result = run(emu, fault_id, count=None)
    assert type(result) is error_type, f"{fault_id}: {result!r}"
    err = result
    assert err.status == status
    assert err.timeline is not None and err.endpoint == emu.imds_url and err.request_id
    attempts = len(err.timeline)
    if not retried:
        assert attempts == 1
    elif fault_id == "410":
        assert attempts >= POLICY.max_attempts
        assert err.timeline.total >= POLICY.gone_window  # the 410 rule: at least 70 s
    else:
        assert attempts == POLICY.max_attempts
    assert err.timeline.total <= bound(POLICY, fault_id, attempts) + 1e-9
    assert len(logged(emu, attempts)) == attempts
    if status is not None and not fault_id.startswith(("html", "bad-expires", "truncated")):
        assert err.error_description  # what IMDS said travels with the error
    if fault_id.endswith("retry-after"):
        assert set(clock.slept) == {FAULTS[fault_id][0]["retry_after"]}
    text = str(err)
    assert err.message in text and "What to do" in text
    if status is not None:
        assert f"HTTP {status}" in text and "no response" not in text.lower()
