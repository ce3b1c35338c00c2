"""Bad input at the public entry points: only a clear ValueError or ManagedIdentityError, never another type.

test_identity / test_resources / test_claims fuzz the parsers on their own (``Identity.parse``,
``Identity.user``, ``resolve_resource``, ``decode``); here the same kind of garbage goes through the
entry points users call, against a running emulator: ``Connection.get_token(resource, identity=...)``
(what ``mi.get_token`` calls), ``credential().get_token(scope)``, ``ImdsClient.request_token``,
``ArmClient.get/list(path)`` and the CLI's ``main([...])`` (an exit code, never a traceback).
The strategies and checks are shared with the reliability report (``bench/reliability/fuzz.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.reliability import fuzz
from bench.reliability.seams import connect_current, disconnect_current, forget_connection
from mi_notebook import errors
from mi_notebook.retry import RetryPolicy

S = fuzz.strategies()
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def bench():
    with fuzz.InputBench() as b:
        yield b


@FUZZ
@given(resource=S["resource"], identity=S["identity"])
def test_get_token_with_any_resource_and_identity(bench, resource, identity):
    before = len(bench.emu.requests)
    exc = bench.get_token(resource, identity)
    if isinstance(exc, ValueError) and not isinstance(exc, errors.ManagedIdentityError):
        assert len(bench.emu.requests) == before  # bad input: refused before any request


@pytest.fixture(scope="module")
def current(bench):
    """``mi.get_token``'s own path (the module function with its hot-path memo) on the bench's emulator."""
    disconnect_current()
    conn = connect_current(bench.emu.imds_url, retry=RetryPolicy.no_retry())
    yield conn
    forget_connection()


@FUZZ
@given(resource=S["resource"], identity=S["identity"])
def test_mi_get_token_with_any_resource_and_identity(current, resource, identity):
    import mi_notebook as mi

    fuzz.only_clear_errors(lambda: mi.get_token(resource, identity=identity))
    fuzz.only_clear_errors(lambda: mi.get_token(resource, identity=identity))  # again: the memoised path


@FUZZ
@given(scope=S["scope"])
def test_credential_get_token_with_any_scope(bench, scope):
    bench.credential_get_token(scope)


@FUZZ
@given(resource=S["resource"], identity=S["identity"])
def test_request_token_with_any_resource_and_identity(bench, resource, identity):
    bench.request_token(resource, identity)


@FUZZ
@given(path=S["arm_path"])
def test_arm_get_with_any_path(bench, path):
    before = len(bench.emu.requests.filter(service="arm"))
    exc = bench.arm_get(path)
    if exc is not None and type(exc) is ValueError:
        assert len(bench.emu.requests.filter(service="arm")) == before


@FUZZ
@given(path=S["arm_path"])
def test_arm_list_with_any_path(bench, path):
    bench.arm_list(path)


def test_arm_paths_that_leave_arm_are_refused_before_sending(bench):
    for path in ("https://evil.example.com/subscriptions", "http://127.0.0.1:1/subscriptions",
                 "https://127.0.0.1:1/subscriptions", "file:///etc/passwd", "HTTPS://evil.example.com/x"):
        before = len(bench.emu.requests)
        exc = bench.arm_get(path)
        assert isinstance(exc, ValueError), path
        assert len(bench.emu.requests) == before
    # a path that merely looks like a host stays a path on ARM's own origin
    assert isinstance(bench.arm_get("//evil.example.com/x"), errors.ArmError)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=S["cli"])
def test_cli_with_garbage_arguments_exits_with_a_code(bench, args):
    command, words = args
    code, out, err = fuzz.cli_property(bench.emu.imds_url, command, list(words))
    if code == 2 and command in ("nope",):
        assert "invalid choice" in err


def test_cli_known_bad_arguments():
    code, _, err = fuzz.run_cli(["token", "--client-id", "not-a-guid", "--imds-url", "http://127.0.0.1:9"])
    assert code == 1 and "Traceback" not in err and "client_id" in err.lower().replace("-", "_")
    code, _, err = fuzz.run_cli(["decode", "a.b"])
    assert code == 1 and "Traceback" not in err
    code, _, err = fuzz.run_cli(["--nope"])
    assert code == 2 and "Traceback" not in err


def test_the_strategies_reach_both_outcomes(bench):
    """The properties are not vacuous: garbage is refused and good input gets a token."""
    assert bench.get_token("arm", None) is None
    assert isinstance(bench.get_token("not a resource", None), ValueError)
    assert isinstance(bench.get_token("api://nobody", None), errors.InvalidResourceError)
    assert bench.credential_get_token("https://vault.azure.net/.default") is None
    assert bench.arm_get(bench.emu.vm.resource_group_id) is None
    assert isinstance(bench.arm_get("/subscriptions/nope"), errors.ArmError)
    tried = fuzz.run_property(st.tuples(S["resource"], S["identity"]), lambda v: bench.get_token(*v), 20)
    assert tried == 20
