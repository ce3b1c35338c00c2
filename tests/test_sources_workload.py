"""The workload-identity source through MockTransport in virtual time: the request Entra ID gets, the
token file read for every attempt (an expired assertion never leaves), identities, retries, Entra's
refusals as typed errors, and the assertion kept out of every dump."""

from __future__ import annotations

import copy
import os
import pickle
import time
from urllib.parse import urlsplit

import jwt
import pytest

from mi_notebook import errors
from mi_notebook.clock import SYSTEM_CLOCK, VirtualClock
from mi_notebook.detection import detect
from mi_notebook.http import MockTransport
from mi_notebook.sources import (
    AssertionTimeError,
    ClientNotFoundError,
    EntraError,
    EntraInvalidResourceError,
    FederatedCredentialError,
    OidcIssuerUnreachableError,
    WorkloadIdentitySource,
    source_class,
)
from mi_notebook.sources._assertion import inspect_token_file
from mi_notebook.sources.workload import ASSERTION_TYPE, entra_retry_policy

NOW = 1_767_225_600
CLIENT_ID = "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = "https://eastus.oic.prod-aks.azure.com/72f988bf/0c4b2d1e/"
SUBJECT = "system:serviceaccount:jhub:jupyter-notebook"
URL = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"


def projected(*, iat: int = NOW, lifetime: int = 3600, serial: int = 1, **claims) -> str:
    """A projected service-account token's shape (HS256: never verified here)."""
    body = {"aud": ["api://AzureADTokenExchange"], "iss": ISSUER, "sub": SUBJECT, "iat": iat, "nbf": iat,
            "exp": iat + lifetime, "jti": f"serial-{serial}", **claims}
    return jwt.encode(body, "k" * 32, algorithm="HS256")


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "azure-identity-token"
    path.write_text(projected())
    return path


def ok(request):
    return 200, {"Content-Type": "application/json"}, {"token_type": "Bearer", "expires_in": 3599,
                                                       "ext_expires_in": 3599, "access_token": "a.b.c"}


def entra(code: int, status: int = 400, error: str = "invalid_request", sentence: str = "Refused."):
    body = {"error": error, "error_codes": [code], "error_description": f"AADSTS{code}: {sentence} Trace ID: t-1 "
            "Correlation ID: c-1 Timestamp: 2026-01-01 00:00:00Z", "trace_id": "t-1", "correlation_id": "c-1"}
    return lambda request: (status, {"Content-Type": "application/json", "x-ms-request-id": "t-1"}, body)


def source(path, handler=ok, clock=None, **kw):
    mock = MockTransport(handler)
    kw.setdefault("client_id", CLIENT_ID)
    src = WorkloadIdentitySource("https://login.microsoftonline.com/", TENANT, str(path), transport=mock,
                                 clock=clock or VirtualClock(NOW), **kw)
    return src, mock


# ---- the request ------------------------------------------------------------------------------------------------
def test_the_client_assertion_grant_as_entra_documents_it(token_file, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp-ca.pem")
    src, mock = source(token_file)
    tok = src.request_token("arm")
    sent = mock.requests[0]
    assert (sent.method, sent.url, sent.proxies, sent.verify) == ("POST", URL, True, "/etc/ssl/corp-ca.pem")
    assert dict(sent.data) == {"client_id": CLIENT_ID, "scope": "https://management.azure.com//.default",
                               "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                               "client_assertion": token_file.read_text()}
    assert (tok.host, tok.resource, tok.endpoint, tok.emulated) == ("workload", "https://management.azure.com/", URL,
                                                                    False)
    assert tok.expires_on == NOW + 3599 and tok.expires_in == 3599  # from expires_in: Entra sends no expires_on
    assert src.request_token("https://vault.azure.net").timeline.summary().endswith(": 200")
    assert mock.requests[1].data["scope"] == "https://vault.azure.net/.default"


@pytest.mark.parametrize(("given", "expected"), [
    ("https://login.microsoftonline.com/", "https://login.microsoftonline.com"),
    ("login.microsoftonline.us", "https://login.microsoftonline.us"),
    (" https://login.chinacloudapi.cn// ", "https://login.chinacloudapi.cn"),
])
def test_the_authority_as_azure_identity_reads_it(given, expected, token_file):
    src = WorkloadIdentitySource(given, TENANT, str(token_file), client_id=CLIENT_ID)
    assert src.endpoint == f"{expected}/{TENANT}/oauth2/v2.0/token" and src.authority == expected


@pytest.mark.parametrize(("authority", "tenant", "words"), [
    ("http://login.microsoftonline.com/", TENANT, "is not an https URL"),
    ("https://user@login.microsoftonline.com/", TENANT, "holds user info"),
    ("", TENANT, "AZURE_AUTHORITY_HOST is empty"),
    ("https://login.microsoftonline.com/", "a/b", "is not a tenant id"),
    ("https://login.microsoftonline.com/", "", "is not a tenant id"),
])
def test_bad_variables_fail_before_any_request(authority, tenant, words, token_file):
    with pytest.raises(errors.HostConfigurationError, match=words):
        WorkloadIdentitySource(authority, tenant, str(token_file), client_id=CLIENT_ID)
    with pytest.raises(errors.HostConfigurationError, match="AZURE_CLIENT_ID"):
        WorkloadIdentitySource("https://login.microsoftonline.com/", TENANT, str(token_file), client_id="my-app")


# ---- identities --------------------------------------------------------------------------------------------------
def test_azure_client_id_or_a_named_client_id(token_file):
    src, mock = source(token_file)
    assert src.request_token("arm").identity.client_id == CLIENT_ID
    other = "11111111-2222-3333-4444-555555555555"
    assert src.request_token("arm", f"client_id={other}").identity.client_id == other
    assert mock.requests[1].data["client_id"] == other


@pytest.mark.parametrize("named", ["object_id=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
                                   "resource_id=/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/g/providers/"
                                   "Microsoft.ManagedIdentity/userAssignedIdentities/id-app"])
def test_object_and_resource_ids_are_refused_before_any_request(named, token_file):
    src, mock = source(token_file)
    with pytest.raises(ValueError, match="client id only"):
        src.request_token("arm", named)
    assert mock.requests == []


def test_without_azure_client_id_a_request_must_name_one(token_file):
    src, mock = source(token_file, client_id=None)
    with pytest.raises(ValueError, match="AZURE_CLIENT_ID is not set"):
        src.request_token("arm")
    assert mock.requests == [] and "AZURE_CLIENT_ID is not set" in src.note
    assert src.request_token("arm", f"client_id={CLIENT_ID}").identity.client_id == CLIENT_ID


# ---- the file: read for every attempt, an expired assertion never sent ---------------------------------------------
def test_the_file_is_read_again_for_every_attempt(token_file):
    def busy_then_ok(request):
        if len(mock.requests) == 1:
            token_file.write_text(projected(serial=2))  # the kubelet rotates it between two attempts
            return 503, {"Retry-After": "1"}, {"error": "temporarily_unavailable"}
        return ok(request)

    src, mock = source(token_file, busy_then_ok)
    first = token_file.read_text()
    tok = src.request_token("arm")
    sent = [r.data["client_assertion"] for r in mock.requests]
    assert sent == [first, token_file.read_text()] and sent[0] != sent[1]
    assert tok.timeline.summary() == "2 attempts over 1.0 s: 503, 200"


def test_a_long_running_kernel_sends_the_rotated_assertion_never_a_stale_one(token_file):
    clock = VirtualClock(NOW)
    seen: list[tuple[float, dict]] = []

    def entra_id(request):
        seen.append((clock.wall(), jwt.decode(request.data["client_assertion"], options={"verify_signature": False})))
        return ok(request)

    src, _ = source(token_file, entra_id, clock=clock)
    for hour in range(1, 25):  # a day of kernel time, the kubelet rotating at 80% of 1 h
        clock.sleep(2880)
        token_file.write_text(projected(iat=int(clock.wall()), serial=hour + 1))
        src.request_token("arm")
    assert [claims["jti"] for _, claims in seen] == [f"serial-{n}" for n in range(2, 26)]  # always the newest
    assert all(claims["nbf"] <= when < claims["exp"] for when, claims in seen)


def test_an_expired_assertion_is_never_sent(token_file):
    clock = VirtualClock(NOW)
    src, mock = source(token_file, clock=clock)
    clock.sleep(3600)  # the kubelet never rotated it
    with pytest.raises(AssertionTimeError) as caught:
        src.request_token("arm")
    err = caught.value
    assert mock.requests == [] and err.aadsts is None and err.timeline is None
    assert "expired 0 s ago" in err.message and "AADSTS700024" in err.message and "kubectl describe pod" in err.hint
    assert token_file.read_text() not in str(err) + repr(err.to_dict())


def test_expiry_between_two_attempts_ends_the_request(token_file):
    clock = VirtualClock(NOW)
    token_file.write_text(projected(lifetime=61))
    src, mock = source(token_file, lambda r: (503, {"Retry-After": "60"}, {"error": "busy"}), clock=clock)
    with pytest.raises(AssertionTimeError) as caught:
        src.request_token("arm")
    assert len(mock.requests) == 2 and "503" in caught.value.timeline.summary()


@pytest.mark.parametrize(("contents", "words"), [
    ("", "is empty"),
    ("not-a-jwt", "does not hold a JWT"),
    ("two words", "more than one line or word"),
    ("ünïcode", "not ASCII"),
])
def test_a_file_that_is_no_token_fails_before_any_request_without_showing_it(contents, words, token_file):
    token_file.write_text(contents)
    src, mock = source(token_file)
    with pytest.raises(errors.HostConfigurationError, match=words) as caught:
        src.request_token("arm")
    assert mock.requests == []
    if len(contents) > 3:
        assert contents not in str(caught.value)


def test_a_missing_or_unreadable_file_says_what_to_check(tmp_path):
    src, _ = source(tmp_path / "gone")
    with pytest.raises(errors.HostConfigurationError, match="does not exist") as caught:
        src.request_token("arm")
    assert "azure.workload.identity/use" in caught.value.hint
    src, _ = source(tmp_path)
    with pytest.raises(errors.HostConfigurationError, match="directory"):
        src.request_token("arm")
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked"
        locked.write_text(projected())
        locked.chmod(0o000)
        with pytest.raises(errors.HostConfigurationError, match="fsGroup"):
            source(locked)[0].request_token("arm")


# ---- retries per Entra's guidance ----------------------------------------------------------------------------------
def test_429_and_5xx_are_retried_with_retry_after_and_4xx_are_not(token_file):
    answers = iter([(429, {"Retry-After": "7"}, {"error": "throttled"}), (502, {}, b""), ok(None)])
    src, mock = source(token_file, lambda r: next(answers), retry=entra_retry_policy().replace(jitter=0))
    tok = src.request_token("arm")
    assert tok.timeline.summary() == "3 attempts over 8.6 s: 429, 502, 200"
    assert [a.wait_reason for a in tok.timeline] == ["retry-after", "backoff", None]
    src, mock = source(token_file, entra(70011, sentence="The scope is not valid."))
    with pytest.raises(EntraError) as caught:
        src.request_token("arm")
    assert len(mock.requests) == 1 and caught.value.aadsts == 70011
    src, mock = source(token_file, lambda r: (503, {}, {"error": "temporarily_unavailable"}))
    with pytest.raises(errors.ServerError) as failed:
        src.request_token("arm")
    assert len(mock.requests) == 4 and failed.value.timeline.summary().startswith("4 attempts")


# ---- Entra's refusals ------------------------------------------------------------------------------------------
REFUSALS = [
    (70021, 400, "invalid_request", FederatedCredentialError, ["trailing '/'", SUBJECT, "case-sensitively",
                                                               "api://AzureADTokenExchange",
                                                               'azure.workload.identity/use: "true"', "few minutes"]),
    (700211, 401, "invalid_client", FederatedCredentialError, [ISSUER, "trailing '/'", "few minutes"]),
    (700213, 401, "invalid_client", FederatedCredentialError, [SUBJECT, "case-sensitively", "serviceAccountName",
                                                               'azure.workload.identity/use: "true"']),
    (7002138, 401, "invalid_client", FederatedCredentialError, [SUBJECT, "case-sensitively"]),
    (70025, 400, "invalid_client", FederatedCredentialError, ["az identity federated-credential create", ISSUER,
                                                              SUBJECT, "--audience api://AzureADTokenExchange"]),
    (700024, 401, "invalid_client", AssertionTimeError, ["clock", "never sends a token it sees expired"]),
    (90061, 400, "invalid_request", OidcIssuerUnreachableError, ["--enable-oidc-issuer",
                                                                 ISSUER + ".well-known/openid-configuration"]),
    (700016, 400, "unauthorized_client", ClientNotFoundError, ["AZURE_CLIENT_ID", "not its object id",
                                                               "few minutes"]),
    (500011, 400, "invalid_resource", EntraInvalidResourceError, ["App ID URI"]),
    (90002, 400, "invalid_request", EntraError, ["AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"]),
]


@pytest.mark.parametrize(("code", "status", "error", "cls", "words"), REFUSALS, ids=[str(r[0]) for r in REFUSALS])
def test_each_refusal_is_typed_keeps_its_code_and_says_the_fix(code, status, error, cls, words, token_file):
    src, mock = source(token_file, entra(code, status, error))
    with pytest.raises(cls) as caught:
        src.request_token("arm")
    err = caught.value
    assert type(err) is cls and isinstance(err, errors.BadRequestError)
    assert err.aadsts == code and err.to_dict()["aadsts"] == code and f"AADSTS{code}" in err.message
    assert (err.status, err.error, err.request_id) == (status, error, "t-1")
    assert err.error_description.startswith(f"AADSTS{code}: ") and len(mock.requests) == 1
    for word in words:
        assert word in err.hint, (word, err.hint)
    dumped = str(err) + repr(err.to_dict()) + repr(pickle.loads(pickle.dumps(err)).__dict__)
    assert token_file.read_text() not in dumped and token_file.read_text().split(".")[1] not in dumped
    if code == 700016:
        assert isinstance(err, errors.IdentityNotFoundError)
    if code == 500011:
        assert isinstance(err, errors.InvalidResourceError)


def test_a_refusal_without_a_code_is_the_generic_one(token_file):
    src, _ = source(token_file, lambda r: (400, {}, {"error": "invalid_request", "error_description": "nope"}))
    with pytest.raises(errors.BadRequestError) as caught:
        src.request_token("arm")
    assert not isinstance(caught.value, EntraError)


def test_an_untrusted_certificate_says_how_to_trust_one(token_file):
    from mi_notebook.http import TlsFailure

    def refuse(request):
        raise TlsFailure("certificate verify failed: self-signed certificate in certificate chain")

    src, mock = source(token_file, refuse)
    with pytest.raises(errors.EndpointUnreachableError) as caught:
        src.request_token("arm")
    assert len(mock.requests) == 1 and "REQUESTS_CA_BUNDLE" in caught.value.hint
    assert "REQUESTS_CA_BUNDLE" in str(caught.value)


# ---- secrets, detection ------------------------------------------------------------------------------------------
def test_the_assertion_is_in_no_dump_of_the_source(token_file):
    token_file.write_text(projected(iat=int(time.time())))
    src, mock = source(token_file, entra(700213, 401, "invalid_client"), clock=SYSTEM_CLOCK)
    with pytest.raises(FederatedCredentialError):
        src.request_token("arm")
    secret = token_file.read_text()
    src.transport = None  # the test's mock holds a lock; the source itself copies and pickles
    dumps = [repr(src), str(src), repr(vars(src)), repr(vars(copy.deepcopy(src))),
             pickle.dumps(src).decode("latin-1"), repr(mock.requests[0])]
    for text in dumps:
        assert secret not in text and secret.split(".")[2] not in text
    assert src.fingerprint.startswith("hmac-sha256:") and str(token_file) not in src.fingerprint


def test_detection_builds_it_from_the_four_variables(token_file):
    env = {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": TENANT, "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
           "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/"}
    found = detect(env, sysfs_root="/nonexistent", himds_path="/nonexistent")
    assert (found.host, found.endpoint) == ("workload", URL)
    src = found.build_source(clock=VirtualClock(NOW), verify="/ca.pem", key_dir="/ignored")
    assert isinstance(src, WorkloadIdentitySource) and source_class("workload") is WorkloadIdentitySource
    assert (src.client_id, src.token_file, src.verify, src.endpoint) == (CLIENT_ID, str(token_file), "/ca.pem", URL)
    assert urlsplit(src.endpoint).hostname == "login.microsoftonline.com"


def test_the_doctors_view_of_the_file_never_shows_it(token_file):
    report = inspect_token_file(str(token_file), now=NOW + 60)
    text = "\n".join(report.lines)
    assert report.ok and ISSUER in text and SUBJECT in text and "api://AzureADTokenExchange" in text
    assert token_file.read_text().split(".")[1] not in text and "59 min" in text
    expired = inspect_token_file(str(token_file), now=NOW + 4000)
    assert not expired.ok and "expired 6 min 40 s ago" in expired.problems[0][0]
    token_file.write_text(projected(aud=["api://Other"], sub="nobody"))
    messages = [m for m, _ in inspect_token_file(str(token_file), now=NOW).problems]
    assert any("not system:serviceaccount" in m for m in messages) and any("audience" in m for m in messages)
