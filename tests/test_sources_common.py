"""What every host source shares (mi_notebook.sources._base): the answer table, retries, the timeline,
errors that say what to do, and secrets that never show. Each source runs through MockTransport in
virtual time; Arc's answers come after its key-file challenge.

The helpers here are imported by the per-host test modules.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import jwt
import pytest

from mi_notebook import errors
from mi_notebook.clock import VirtualClock
from mi_notebook.http import ConnectTimeout, MockTransport, TlsFailure, Truncated
from mi_notebook.sources import (
    AppServiceSource,
    ArcSource,
    AzureMlSource,
    CloudShellSource,
    Secret,
    UserTokenWarning,
    host_retry_policy,
)

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
EXPIRES = NOW + 3600
SECRET = "S3CRET-hdr-7f1e9a"
KEY = "ARC-KEY-CONTENTS-4c2d"
CLIENT_ID = "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"
OBJECT_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
RESOURCE_ID = ("/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-demo"
               "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app")
ML_URL = "http://127.0.0.1:46808/MSI/auth"
AS_URL = "http://127.0.0.1:4141/msi/token"
ARC_URL = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
CS_URL = "http://127.0.0.1:50342/oauth2/token"


def jwt_token(**claims) -> str:
    """A signed-looking JWT with these claims (HS256 with a dummy key: only decoded, never verified)."""
    return jwt.encode({"aud": "https://management.azure.com/", "exp": EXPIRES, **claims}, "k" * 32, algorithm="HS256")


def body(token: str = "a.b.c", **extra) -> dict:
    return {"access_token": token, "expires_on": str(EXPIRES), "resource": "https://management.azure.com/",
            "token_type": "Bearer", **extra}


def ok(**extra):
    return lambda request: (200, {"Content-Type": "application/json"}, body(**extra))


def arc_keys(tmp_path: Path, contents: str = KEY, name: str = "req-1.key") -> tuple[Path, Path]:
    keys = tmp_path / "tokens"
    keys.mkdir(exist_ok=True)
    path = keys / name
    path.write_text(contents)
    return keys, path


def challenged(path: Path | str, handler):
    """Arc's agent: a 401 challenge naming ``path`` without Authorization, else ``handler``."""
    def agent(request):
        if "Authorization" not in request.headers:
            return 401, {"WWW-Authenticate": f"Basic realm={path}"}, b""
        return handler(request)
    return agent


@pytest.fixture(params=["azureml", "appservice", "arc", "cloudshell"])
def make(request, tmp_path):
    """``make(handler, **kw) -> (source, mock, clock)`` for each host in turn."""
    kind = request.param

    def build(handler, **kw):
        clock = kw.pop("clock", VirtualClock(NOW))
        if kind == "arc":
            keys, path = arc_keys(tmp_path)
            mock = MockTransport(challenged(path, handler))
            return ArcSource(ARC_URL, key_dir=keys, transport=mock, clock=clock, **kw), mock, clock
        mock = MockTransport(handler)
        cls = {"azureml": AzureMlSource, "appservice": AppServiceSource}.get(kind)
        source = cls(ML_URL if kind == "azureml" else AS_URL, SECRET, transport=mock, clock=clock, **kw) if cls \
            else CloudShellSource(CS_URL, transport=mock, clock=clock, **kw)
        return source, mock, clock

    build.kind = kind
    return build


def attempts_sent(mock: MockTransport, kind: str) -> int:
    return len(mock.requests) // 2 if kind == "arc" else len(mock.requests)


@pytest.fixture(autouse=True)
def _quiet_user_tokens():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserTokenWarning)
        yield


# --- success --------------------------------------------------------------------------------------------
def test_success_has_a_timeline_and_labels(make):
    source, mock, _ = make(ok())
    tok = source.request_token("arm")
    assert tok.host == source.host and not tok.emulated and tok.expires_on == EXPIRES and tok.resource == "https://management.azure.com/"
    assert tok.endpoint == source.endpoint and tok.fetched_at == NOW
    assert tok.timeline.summary() == "1 attempt over 0.0 s: 200" and tok.timeline.policy == source.retry
    assert attempts_sent(mock, make.kind) == 1
    assert mock.requests[-1].timeout == source.timeout


@pytest.mark.parametrize("expires_on", [EXPIRES, str(EXPIRES), f"{EXPIRES}.0"])
def test_expires_on_as_int_or_string(make, expires_on):
    source, _, _ = make(lambda r: (200, {}, {"access_token": "a.b.c", "expires_on": expires_on}))
    assert source.request_token("arm").expires_on == EXPIRES


def test_the_emulator_is_labelled(make):
    source, _, _ = make(lambda r: (200, {"X-Mi-Notebook-Emulator": "1"}, body()))
    assert source.request_token("arm").emulated


def test_retried_then_success_records_every_attempt(make):
    answers = iter([(503, {}, "busy"), (500, {}, {"error": "x"})])
    source, _, clock = make(lambda r: next(answers, (200, {}, body())), retry=host_retry_policy("t").replace(jitter=0))
    calls = []
    tok = source.request_token("arm", on_attempt=lambda a, wait, n: calls.append((a.number, a.outcome, wait, n)))
    assert tok.timeline.statuses == ["503", "500", "200"]
    assert clock.slept == [0.5, 1.0]
    assert calls == [(1, "retried", 0.5, 4), (2, "retried", 1.0, 4), (3, "success", None, 4)]


# --- the failure table ------------------------------------------------------------------------------------
FAILURES = [
    # (answer, error class, attempts, a phrase of the message)
    ((200, {}, {"expires_on": str(EXPIRES)}), errors.UnexpectedResponseError, 1, "access_token"),
    ((200, {}, {"access_token": "a.b.c", "expires_on": "soon"}), errors.UnexpectedResponseError, 1, "expires_on"),
    ((200, {}, {"access_token": "a.b.c", "expires_on": EXPIRES * 1000}), errors.UnexpectedResponseError, 1, "milliseconds"),
    ((200, {}, {"access_token": "a.b.c", "expires_on": NOW - 10}), errors.UnexpectedResponseError, 1, "in the past"),
    ((200, {"Content-Type": "text/html"}, "<html>proxy</html>"), errors.UnexpectedResponseError, 1, "HTML page"),
    ((200, {}, "plain words"), errors.UnexpectedResponseError, 1, "not JSON"),
    ((200, {}, b""), errors.UnexpectedResponseError, 1, "empty body"),
    ((302, {"Location": "http://elsewhere/"}, b""), errors.UnexpectedResponseError, 1, "redirect"),
    ((500, {}, {"error": "server_error"}), errors.ServerError, 4, "HTTP 500"),
    ((503, {"Content-Type": "text/plain"}, "Service busy"), errors.ServerError, 4, "HTTP 503"),
    ((501, {}, b""), errors.ServerError, 1, "HTTP 501"),
    ((429, {"Retry-After": "3"}, b""), errors.ThrottledError, 4, "429"),
    ((400, {}, {"error": "invalid_resource", "error_description": "AADSTS500011: not found"}),
     errors.InvalidResourceError, 1, "does not know the resource"),
    ((400, {}, {"error": "invalid_request", "error_description": "Identity not found"}),
     errors.IdentityNotFoundError, 1, "no identity matching"),
    ((404, {}, {"error": "not_found"}), errors.BadRequestError, 1, "HTTP 404"),
    ((403, {}, b""), errors.BadRequestError, 1, "refused the request's credentials"),
    (ConnectionRefusedError("[Errno 111] Connection refused"), errors.EndpointUnreachableError, 4, "refused"),
    (TimeoutError("read timed out"), errors.EndpointTimeoutError, 4, "read time-out"),
    (ConnectTimeout("connect"), errors.EndpointTimeoutError, 4, "connect time-out"),
    (TlsFailure("certificate verify failed"), errors.EndpointUnreachableError, 1, "TLS"),
    (Truncated(200, {}, b'{"access_token": "eyJ0eX', ConnectionResetError("reset")),
     errors.UnexpectedResponseError, 4, "cut short"),
]


@pytest.mark.parametrize(("answer", "cls", "attempts", "phrase"), FAILURES,
                         ids=[f"{getattr(a, '__name__', type(a).__name__)}-{i}" for i, (a, *_) in enumerate(FAILURES)])
def test_failure_table(make, answer, cls, attempts, phrase):
    source, mock, clock = make(lambda r: answer)
    with pytest.raises(cls) as caught:
        source.request_token("arm")
    err = caught.value
    assert type(err) is cls, (type(err), str(err))
    assert phrase in str(err)
    assert len(err.timeline) == attempts == attempts_sent(mock, make.kind)
    assert err.endpoint == source.endpoint and "What to do:" in str(err)
    assert "eyJ0eX" not in str(err)
    if isinstance(answer, tuple) and answer[0] == 429:
        assert clock.slept == [3.0, 3.0, 3.0]  # Retry-After honoured


def test_text_plain_failure_keeps_the_text(make):
    source, _, _ = make(lambda r: (500, {"Content-Type": "text/plain"}, "InternalError: upstream 404 from token service"))
    with pytest.raises(errors.ServerError) as caught:
        source.request_token("arm")
    assert caught.value.error_description == "InternalError: upstream 404 from token service"
    assert caught.value.timeline[-1].error_description == "InternalError: upstream 404 from token service"


def test_retry_policy_is_the_hosts_own(make):
    source, _, _ = make(ok())
    assert source.retry.max_attempts == 4 and source.retry.gone_window == 0 and source.retry.label == source.host


# --- bad input: refused before any request -----------------------------------------------------------------
@pytest.mark.parametrize("resource", ["", "nope", "http://vault.azure.net", "a b"])
def test_bad_resource_is_refused_before_any_request(make, resource):
    source, mock, _ = make(ok())
    with pytest.raises(ValueError):
        source.request_token(resource)
    assert mock.requests == []


def test_bad_identity_text_is_refused_before_any_request(make):
    source, mock, _ = make(ok())
    with pytest.raises(ValueError):
        source.request_token("arm", "client_id=not-a-guid")
    assert mock.requests == []


@pytest.mark.parametrize("endpoint", ["", "localhost:4141", "ftp://x/y", "http://", "http://h:99999/"])
def test_bad_endpoint_is_a_host_configuration_error(make, endpoint):
    source, _, _ = make(ok())
    with pytest.raises(errors.HostConfigurationError) as caught:
        type(source)(endpoint, SECRET) if make.kind in ("azureml", "appservice") else type(source)(endpoint)
    assert "endpoint" in str(caught.value)


@pytest.mark.parametrize("timeout", [0, -1, (1, 0), "5", (1, 2, 3), True])
def test_bad_timeout(make, timeout):
    with pytest.raises(ValueError):
        make(ok(), timeout=timeout)


# --- life cycle, repr, secrets ------------------------------------------------------------------------------
def test_context_manager_and_close(make):
    source, mock, _ = make(ok())
    with source as same:
        assert same is source
    with pytest.raises(RuntimeError, match="closed"):
        source.request_token("arm")
    assert mock.requests == []


def test_secrets_never_show(make, caplog):
    caplog.set_level(logging.DEBUG)
    source, mock, _ = make(lambda r: (401, {}, {"error": "unauthorized", "error_description": "bad secret"})
                           if make.kind != "arc" else (500, {}, b""))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(errors.ManagedIdentityError) as caught:
            source.request_token("arm")
    err = caught.value
    surfaces = [repr(source), str(source), str(err), repr(err), repr(err.to_dict()), repr(err.timeline.to_dict()),
                caplog.text, " ".join(str(w.message) for w in seen), repr(vars(source)), repr(mock.requests)]
    for text in surfaces:
        assert SECRET not in text and KEY not in text


def test_a_pickled_secret_leaves_its_value_behind():
    import pickle

    data = pickle.dumps(Secret(SECRET))
    assert SECRET.encode() not in data
    arrived = pickle.loads(data)
    assert arrived.is_withheld and arrived != Secret(SECRET)
    with pytest.raises(errors.HostConfigurationError, match="left behind") as caught:
        arrived.reveal()
    assert SECRET not in str(caught.value)
    with pytest.raises(errors.HostConfigurationError, match="left behind"):
        AzureMlSource(ML_URL, arrived)  # refused at once, not when the header is built
