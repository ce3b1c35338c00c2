"""The fault matrix beyond the bare token client: every injectable fault, on the first attempt only and on
every attempt, through ``Connection.get_token`` (the cache and connect layers), instance metadata
(``ImdsClient.get_json``) and ARM (``ArmClient.get``), in virtual time.

``tests/test_fault_matrix.py`` covers ``ImdsClient.request_token`` alone; the cases and the checks here
live in ``bench/reliability/faults.py`` so that the figures in docs/reliability.md come from the same
code. For each case: retried or not as documented, total virtual time within the policy's bound, the
right error type with status and what the service said, no other exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.reliability import faults, report
from bench.reliability.seams import VirtualClock
from mi_notebook import errors
from mi_notebook.cache import TokenCache
from mi_notebook.identity import Identity

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def bench():
    with faults.FaultBench() as b:
        yield b


def _params(every: bool) -> list:
    out = []
    for case in faults.FAULT_CASES:
        marks = []
        if every and case.known_bug:
            marks.append(pytest.mark.xfail(strict=True, reason=case.known_bug))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def test_the_matrix_covers_every_fault_the_emulator_can_inject():
    from mi_notebook.emulator.faults import FAULT_KINDS

    for endpoint in ("token", "instance", "arm"):
        kinds = {c.inject["fault"] for c in faults.FAULT_CASES if c.endpoint == endpoint}
        expected = set(FAULT_KINDS) - ({"bad-expires"} if endpoint != "token" else set())
        assert kinds == expected, endpoint
    # with and without Retry-After, HTML at 200 and 502, both truncations, both bad expiries
    names = {c.name for c in faults.FAULT_CASES}
    assert {"429", "429-retry-after", "html-200", "html-502", "truncated-short", "truncated-incomplete",
            "bad-expires-missing", "bad-expires-string"} <= names


@pytest.mark.parametrize("case", _params(every=False))
def test_fault_on_the_first_attempt_only(bench, case):
    result = bench.run(case, every=False)
    assert result.problems == [], result.label
    if case.retried:
        assert result.error is None and result.attempts == 2 and result.statuses[-1] == 200
    else:
        assert isinstance(result.error, case.error) and result.attempts == 1
    assert result.total <= result.bound + 1e-9
    assert result.requests == result.attempts


@pytest.mark.parametrize("case", _params(every=True))
def test_fault_on_every_attempt(bench, case):
    result = bench.run(case, every=True)
    assert result.problems == [], result.label
    err = result.error
    assert type(err) is case.error and err.status == case.status
    assert result.attempts == (1 if not case.retried else faults.POLICY.max_attempts) or case.name == "410"
    assert result.total <= result.bound + 1e-9
    if case.described:
        assert err.error_description or err.error
        assert f"HTTP {case.status}" in str(err)


@pytest.mark.parametrize("case", [c for c in faults.FAULT_CASES if c.endpoint == "token"], ids=lambda c: c.id)
def test_a_valid_cached_token_outlives_every_fault(bench, case):
    """A refresh that meets a fault on every attempt keeps serving the still-valid token, quietly,
    and does not ask IMDS again for the 30 s hold."""
    emu = bench.emu
    conn, client = bench.connection(VirtualClock(seed=1))
    cache_clock = VirtualClock(1_000.0)
    cache = TokenCache(clock=cache_clock)
    try:
        first = conn.get_token("vault", identity=Identity.system(), cache=cache)
        cache_clock.now = cache.refresh_at(first) + 1  # due for a refresh; still valid for hours
        options = dict(case.inject)
        emu.inject(options.pop("fault"), "token", count=None, **options)
        emu.requests.clear()
        served = conn.get_token("vault", identity=Identity.system(), cache=cache)
        assert served.from_cache and served.fingerprint == first.fingerprint
        asked = len(emu.requests.filter(endpoint="token"))
        assert asked >= 1
        cache_clock.now += 10
        again = conn.get_token("vault", identity=Identity.system(), cache=cache)
        assert again.fingerprint == first.fingerprint
        assert len(emu.requests.filter(endpoint="token")) == asked  # the hold: no new request
        assert cache.stats.failures == 1
        assert "Error" in (cache.entries()[0]["last_error"] or "")
    finally:
        emu.clear_faults()
        client.close()


def test_force_refresh_during_a_fault_raises_the_classified_error(bench):
    """force_refresh means "a new token or an error": the cached one is not a substitute."""
    emu = bench.emu
    clock = VirtualClock()
    conn, client = bench.connection(clock)
    cache = TokenCache()
    try:
        conn.get_token("graph", cache=cache)
        emu.inject(503, "token", count=None)
        with pytest.raises(errors.ServerError) as info:
            conn.get_token("graph", cache=cache, force_refresh=True)
        assert info.value.status == 503 and len(info.value.timeline) == faults.POLICY.max_attempts
    finally:
        emu.clear_faults()
        client.close()


def test_the_time_bound_is_the_policys_worst_case():
    """The bound the matrix checks against, for the documented policy: 2, 6, 14, 30 s +20 % jitter."""
    plain = faults.case_by_id("token:500")
    assert faults.time_bound(plain, 5) == pytest.approx((2 + 6 + 14 + 30) * 1.2)
    assert faults.time_bound(faults.case_by_id("arm:429"), 5) == 20.0  # ARM's own Retry-After: 5 s
    assert faults.time_bound(faults.case_by_id("token:410"), 7) == 130.0  # 70 s window + the longest wait


def test_the_report_scripts_examples_run():
    """Every docstring example of every module of bench/reliability (and of the package itself) runs."""
    import doctest
    import importlib
    import pkgutil

    import bench.reliability as package

    modules = [package, *(importlib.import_module(f"{package.__name__}.{m.name}")
                          for m in pkgutil.iter_modules(package.__path__))]
    attempted = 0
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert len(modules) >= 9 and attempted > 5


def test_the_figures_in_the_document_are_replaced_between_the_markers(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(f"# title\n\n{report.START_MARKER}\nold figures\n{report.END_MARKER}\n\nexplanations\n")
    report.update_document(doc, "| figure | value |")
    text = doc.read_text()
    assert "old figures" not in text and "| figure | value |" in text
    assert text.startswith("# title") and text.endswith("explanations\n")
    shipped = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
    assert report.START_MARKER in shipped.read_text() and "| fault cases passed |" in shipped.read_text()
