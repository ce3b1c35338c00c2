"""mi.connect() in an AKS pod, against the emulator's workload profile (Entra ID over HTTPS, a rotating
projected token, federated credentials a test mis-sets): detection without a probe, a day of rotations
in virtual time without one AADSTS700024, each federated-credential mistake with its code and fix, the
token agent, mi.credential(), the CLI (token, doctor), and the assertion on no surface."""

from __future__ import annotations

import json
import pickle

import jwt
import pytest
from helpers import VirtualClock, cli_output

import mi_notebook as mi
from mi_notebook import connection, errors
from mi_notebook.agent.client import AgentClient
from mi_notebook.agent.upstream import build_source, describe
from mi_notebook.cache import TokenCache
from mi_notebook.emulator import Emulator
from mi_notebook.sources import (
    AssertionTimeError,
    ClientNotFoundError,
    FederatedCredentialError,
    OidcIssuerUnreachableError,
    WorkloadIdentitySource,
)

pytestmark = pytest.mark.usefixtures("clean_connection")

START = 1_800_000_000.0
POD_VARIABLES = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
CLEARED = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT",
           "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "MI_NOTEBOOK_MODE", "MI_NOTEBOOK_IMDS_URL", "MI_NOTEBOOK_SHARE",
           "AZURE_POD_IDENTITY_AUTHORITY_HOST", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", *POD_VARIABLES)


@pytest.fixture
def no_probe(monkeypatch):
    def probe(*args, **kwargs):
        raise AssertionError("auto mode probed the network although the pod's variables were set")

    monkeypatch.setattr(connection, "probe_imds", probe)


@pytest.fixture
def pod(monkeypatch):
    """``pod(clock=None, **workload)``: a started workload emulator; this process trusts its CA (what a pod
    gets from its system bundle) and has no other host's variables."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    started: list[Emulator] = []

    def start(clock: VirtualClock | None = None, entra_lifetime: int = 86400, **workload) -> Emulator:
        workload.setdefault("rotation", False)  # the tests play the kubelet, by the emulator's clock
        emu = Emulator(profile="workload", throttle=False, arm=False, keyvault=False, openai=False,
                       clock=clock or VirtualClock(START), token_lifetime=entra_lifetime, workload=workload).start()
        started.append(emu)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        return emu

    yield start
    for emu in started:
        emu.stop()


def assertions_sent(emu: Emulator) -> list[dict]:
    return [r.extra for r in emu.requests if r.service == "entra" and r.endpoint == "token"]


def read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


# ---- detection and the first token --------------------------------------------------------------------------------
def test_the_four_variables_alone_pick_workload_identity_without_a_probe(pod, no_probe):
    clock = VirtualClock(START)
    emu = pod(clock)
    env = emu.environment
    assert sorted(env) == sorted(POD_VARIABLES)
    conn = mi.connect(environ=env, clock=clock)
    assert (conn.host, conn.chosen, conn.probe, conn.emulated) == ("workload", "detected", None, False)
    assert conn.endpoint == emu.workload.token_url and isinstance(conn.client, WorkloadIdentitySource)
    assert "no network probe was needed" in conn.reason and "read again for every request" in conn.reason
    tok = mi.get_token("arm")
    claims = emu.verify(tok.reveal(), audience="https://management.azure.com/")
    assert claims["appid"] == env["AZURE_CLIENT_ID"] == tok.identity.client_id
    assert (tok.host, tok.emulated, tok.resource) == ("workload", True, "https://management.azure.com/")
    assert "emulated=True" in repr(tok) and "emulator" in str(tok) and "emulator (not Azure)" in tok.issuer_label
    assert mi.get_token("arm") is not tok and mi.get_token("arm").from_cache  # the connection's cache
    assert len(assertions_sent(emu)) == 1


def test_connect_host_workload_and_the_emulator_playing_the_pod(pod, no_probe, monkeypatch):
    emu = pod()
    assert mi.connect(host="workload", environ=emu.environment, clock=emu.clock).chosen == "requested"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # the emulator connect() starts brings its own CA
    conn = mi.connect(mode="emulator", profile="workload")
    try:
        assert conn.emulated and conn.host == "workload" and conn.client.verify == conn.emulator.ca_bundle
        tok = conn.get_token("storage")
        assert tok.emulated and "playing AKS workload identity" in tok.issuer_label
    finally:
        mi.disconnect()


# ---- rotation under a long-running kernel ---------------------------------------------------------------------------
def test_a_day_of_rotations_gives_tokens_and_never_700024(pod):
    """Projected tokens living 10 min, Entra tokens 15 min: the kubelet rotates at 80% (8 min) and the
    connection's cache refreshes 5 min before expiry, for a day of virtual time. A client re-reading the
    file only every 600 s (azure-identity 1.27) would send expired assertions here; this one reads it
    for every request."""
    clock = VirtualClock(START)
    emu = pod(clock, entra_lifetime=900, token_lifetime=600)
    conn = mi.connect(environ=emu.environment, clock=clock)
    conn.cache = TokenCache(clock=clock)  # a kernel's cache, on the same virtual clock
    path = emu.environment["AZURE_FEDERATED_TOKEN_FILE"]
    for _ in range(720):  # 24 h in steps of 2 min
        clock.sleep(120)
        emu.workload.rotate_if_due()  # the kubelet's look, by the emulator's clock
        before = len(assertions_sent(emu))
        tok = conn.get_token("arm")
        assert tok.expires_on > clock.wall()
        if len(assertions_sent(emu)) > before:  # Entra ID was asked: with the file's current token
            current = jwt.decode(read(path), options={"verify_signature": False})
            assert assertions_sent(emu)[-1]["assertion_iat"] == current["iat"]
    sent = assertions_sent(emu)
    assert emu.workload.token_file.rotations >= 170 and len(sent) >= 140
    assert all(extra.get("aadsts") is None for extra in sent)  # never 700024, nor anything else
    assert len({extra["assertion_iat"] for extra in sent}) >= 100  # the rotated tokens were the ones sent


def test_a_missing_rotation_is_a_local_error_and_nothing_is_sent(pod):
    clock = VirtualClock(START)
    emu = pod(clock, token_lifetime=600)
    conn = mi.connect(environ=emu.environment, clock=clock)
    conn.get_token("arm")
    clock.sleep(600)  # the kubelet stopped rotating: the file's token is at its exp
    before = len(assertions_sent(emu))
    with pytest.raises(AssertionTimeError) as caught:
        conn.get_token("vault")
    assert caught.value.aadsts is None and len(assertions_sent(emu)) == before
    assert "kubectl describe pod" in caught.value.hint
    emu.rotate_service_account_token()
    assert conn.get_token("vault").resource == "https://vault.azure.net"


# ---- the federated credential, mis-set --------------------------------------------------------------------------------
MISTAKES = {
    "issuer without its trailing slash": (lambda pod: {"issuer": pod.cluster.issuer.rstrip("/")}, 700211,
                                          ["trailing '/'", "oidcIssuerProfile.issuerUrl"]),
    "subject in another case": (lambda pod: {"subject": pod.cluster.subject.replace("jupyter", "Jupyter")}, 7002138,
                                ["system:serviceaccount:jhub:jupyter-notebook", "case-sensitively"]),
    "another service account": (lambda pod: {"subject": "system:serviceaccount:jhub:default"}, 700213,
                                ["system:serviceaccount:jhub:jupyter-notebook", "serviceAccountName",
                                 'azure.workload.identity/use: "true"']),
    "another audience": (lambda pod: {"audiences": ["api://Something"]}, 70021,
                         ["api://AzureADTokenExchange", "trailing '/'", "case-sensitively"]),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_federated_credential_mistake_gives_its_code_and_the_fix(mistake, pod):
    clock = VirtualClock(START)
    emu = pod(clock)
    change, code, words = MISTAKES[mistake]
    emu.workload.set_federated_credential(**change(emu.workload))
    conn = mi.connect(environ=emu.environment, clock=clock)
    with pytest.raises(FederatedCredentialError) as caught:
        conn.get_token("arm")
    err = caught.value
    assert err.aadsts == code and f"AADSTS{code}" in str(err) and err.timeline.summary().startswith("1 attempt")
    assert emu.workload.cluster.issuer in err.hint or code in (7002138, 700213)
    for word in words + ["few minutes"]:
        assert word in err.hint, (word, err.hint)
    assert read(emu.environment["AZURE_FEDERATED_TOKEN_FILE"]) not in str(err)


def test_the_2022_answers_and_no_credential_at_all(pod):
    clock = VirtualClock(START)
    emu = pod(clock, entra_errors="2022")
    emu.workload.set_federated_credential(issuer=emu.workload.cluster.issuer.rstrip("/"))
    conn = mi.connect(environ=emu.environment, clock=clock)
    with pytest.raises(FederatedCredentialError) as caught:
        conn.get_token("arm")
    assert caught.value.aadsts == 70021 and "trailing '/'" in caught.value.hint
    emu.workload.federated_credentials.clear()
    with pytest.raises(FederatedCredentialError) as none:
        conn.get_token("vault")
    assert none.value.aadsts == 70025 and "az identity federated-credential create" in none.value.hint
    assert "--subject system:serviceaccount:jhub:jupyter-notebook" in none.value.hint


def test_a_new_credential_propagates_in_a_few_minutes(pod):
    clock = VirtualClock(START)
    emu = pod(clock, propagation=120)
    emu.workload.set_federated_credential(name="recreated")
    conn = mi.connect(environ=emu.environment, clock=clock)
    with pytest.raises(FederatedCredentialError, match="AADSTS700211") as caught:
        conn.get_token("arm")
    assert "wait a few minutes" in caught.value.hint
    clock.sleep(120)
    assert conn.get_token("arm").emulated


def test_an_unreachable_issuer_an_unknown_client_and_a_skewed_clock(pod):
    clock = VirtualClock(START)
    emu = pod(clock, token_lifetime=600)
    conn = mi.connect(environ=emu.environment, clock=clock)
    emu.workload.issuer_reachable = False
    with pytest.raises(OidcIssuerUnreachableError) as issuer:
        conn.get_token("arm")
    assert issuer.value.aadsts == 90061 and "--enable-oidc-issuer" in issuer.value.hint
    emu.workload.issuer_reachable = True
    with pytest.raises(ClientNotFoundError) as client:
        conn.get_token("arm", identity="client_id=00000000-0000-0000-0000-00000000dead")
    assert client.value.aadsts == 700016 and isinstance(client.value, errors.IdentityNotFoundError)
    # this pod's clock 10 min behind Entra ID's: the file's token looks valid here, expired there
    behind = mi.connect(environ=emu.environment, clock=VirtualClock(START))
    clock.sleep(600)
    with pytest.raises(AssertionTimeError) as late:
        behind.get_token("storage")
    assert late.value.aadsts == 700024 and "clock" in late.value.hint and late.value.status == 401


def test_throttling_and_outages_are_retried_with_retry_after_in_the_timeline(pod):
    clock = VirtualClock(START)
    emu = pod(clock)
    conn = mi.connect(environ=emu.environment, clock=clock)
    emu.inject(429, endpoint="token", retry_after=5)
    emu.inject(503, endpoint="token")
    tok = conn.get_token("arm")
    assert tok.timeline.summary().startswith("3 attempts") and tok.timeline.summary().endswith(": 429, 503, 200")
    assert [a.wait_reason for a in tok.timeline] == ["retry-after", "backoff", None]
    assert tok.timeline[0].wait == 5


# ---- the agent, mi.credential() ---------------------------------------------------------------------------------------
def test_the_agent_rebuilds_the_source_from_the_files_path(pod, tmp_path):
    emu = pod(clock=None)
    conn = mi.connect(environ=emu.environment)
    desc = describe(conn)
    secret = read(emu.environment["AZURE_FEDERATED_TOKEN_FILE"])
    assert desc["host"] == "workload" and desc["verify"] == emu.ca_bundle
    assert desc["environ"] == emu.environment and secret not in json.dumps(desc)
    rebuilt = build_source(desc)
    assert isinstance(rebuilt, WorkloadIdentitySource) and rebuilt.endpoint == conn.endpoint
    with pytest.raises(ValueError, match="refused"):
        build_source({**desc, "endpoint": "https://127.0.0.1:9/t/oauth2/v2.0/token"})


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::mi_notebook.sdk_credential.EmulatorTokenWarning")  # said once per process
def test_shared_through_the_agent_and_handed_to_an_sdk_client(monkeypatch, tmp_path):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    agent_dir = str(tmp_path / "agent")
    with Emulator(profile="workload", throttle=False, arm=False, keyvault=False, openai=False) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        try:
            conn = mi.connect(environ=emu.environment, share=True, agent_dir=agent_dir)
            assert type(conn.cache).__name__ == "SharedCache"
            tok = mi.get_token("arm")
            again = mi.connect(environ=emu.environment, share=True, agent_dir=agent_dir).get_token("arm")
            assert again.reveal() == tok.reveal() and again.host == "workload" and again.emulated
            assert len(assertions_sent(emu)) == 1  # the second process-cache miss was the agent's hit
            status = AgentClient(agent_dir, start=False).status()
            assert read(emu.environment["AZURE_FEDERATED_TOKEN_FILE"]) not in json.dumps(status)
            cred = mi.credential()
            sdk = cred.get_token("https://storage.azure.com/.default")
            info = cred.get_token_info("https://vault.azure.net/.default")
            assert emu.verify(sdk.token)["aud"] == "https://storage.azure.com/" and info.token_type == "Bearer"
        finally:
            mi.disconnect()
            AgentClient(agent_dir, start=False).stop()


# ---- the command line -------------------------------------------------------------------------------------------------
cli = cli_output


def test_token_and_doctor_in_a_pod(monkeypatch, tmp_path):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    with Emulator(profile="workload", throttle=False, arm=False, keyvault=False, openai=False) as emu:
        for name, value in {**emu.environment, "REQUESTS_CA_BUNDLE": emu.ca_bundle}.items():
            monkeypatch.setenv(name, value)
        secret = read(emu.environment["AZURE_FEDERATED_TOKEN_FILE"])
        code, out = cli(["token", "-o", "json"])
        doc = json.loads(out[: out.rindex("}") + 1])
        assert code == 0 and doc["host"] == "workload" and doc["emulated"] is True
        assert "NOT an Azure token: issued by the mi-notebook emulator" in out
        code, out = cli(["doctor"])
        assert code == 0 and out.startswith("OK: ")
        for words in ("Workload identity (AKS", *(f"{name}=" for name in POD_VARIABLES), "readable, mode 0644",
                      "contents not shown", f"issuer (iss): '{emu.workload.cluster.issuer}'",
                      "subject (sub): 'system:serviceaccount:jhub:jupyter-notebook'",
                      "audience (aud): api://AzureADTokenExchange", "valid: from"):
            assert words in out, words
        assert secret not in out and secret.split(".")[1] not in out and secret.split(".")[2] not in out
        # a file the kubelet stopped rotating: both commands say so, and nothing is sent
        stale = tmp_path / "azure-identity-token"
        claims = jwt.decode(secret, options={"verify_signature": False})
        stale.write_text(jwt.encode({**claims, "iat": 1_000_000_000, "nbf": 1_000_000_000, "exp": 1_000_003_600},
                                    "k" * 32))
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(stale))
        before = len(emu.requests.filter(endpoint="token"))
        code, out = cli(["token"])
        assert code == 1 and "AssertionTimeError" in out and "kubectl describe pod" in out
        code, out = cli(["doctor"])
        assert code == 1 and "the token in the file expired" in out and "valid: NO" in out
        assert len(emu.requests.filter(endpoint="token")) == before


def test_the_assertion_is_on_no_surface(pod):
    clock = VirtualClock(START)
    emu = pod(clock, token_lifetime=600)
    path = emu.environment["AZURE_FEDERATED_TOKEN_FILE"]
    secrets = {read(path)}
    conn = mi.connect(environ=emu.environment, clock=clock)
    texts = []
    for _ in range(3):
        tok = conn.get_token("arm", force_refresh=True)
        texts += [repr(tok), str(tok), tok._repr_html_(), repr(tok.claims.checks()), tok.timeline.summary()]
        emu.rotate_service_account_token()
        secrets.add(read(path))
    emu.workload.set_federated_credential(subject="nope")
    with pytest.raises(FederatedCredentialError) as caught:
        conn.get_token("vault")
    err = caught.value
    texts += [str(err), repr(err), json.dumps(err.to_dict()), repr(vars(pickle.loads(pickle.dumps(err)))),
              repr(conn), str(conn), conn._repr_html_(), repr(conn.client), repr(vars(conn.client)),
              pickle.dumps(conn.client.__dict__ | {"clock": None}).decode("latin-1"), repr(conn.detection),
              repr(vars(conn.detection)), json.dumps(describe(conn)), json.dumps([r.to_dict() for r in emu.requests])]
    blob = "\n".join(texts)
    for secret in secrets:
        header, payload, signature = secret.split(".")
        assert payload not in blob and signature not in blob


def test_a_workload_token_passes_its_own_claim_checks(pod, no_probe):
    """expires_on comes from the token's own exp (Entra's expires_in is one second short of the lifetime),
    so the claims' expires_on check finds no problem, as for IMDS's tokens."""
    clock = VirtualClock(START)
    emu = pod(clock)
    mi.connect(environ=emu.environment, clock=clock)
    tok = mi.get_token("arm")
    statuses = {check.name: check.status for check in tok.claims.checks(resource="arm")}
    assert statuses["expires_on"] == "ok", tok.claims.checks(resource="arm")
    assert tok.expires_on == tok.claims.payload["exp"]
