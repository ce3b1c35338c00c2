"""The emulator playing an AKS pod with workload identity (``profile="workload"``), on the wire.

The webhook's four variables; Entra ID's token endpoint over HTTPS with the client-assertion grant and
its OIDC discovery; the projected service-account token (its claims, its issuer's documents and keys,
its rotation by the emulator's clock); the federated identity credentials a test mis-sets and the
AADSTS answers, in Entra's body layout of either era; 700024 for an expired assertion, 90061 on
demand; the marker header; the assertion kept out of every log; faults; the command line.
"""

from __future__ import annotations

import json
import os
import stat
import threading

import jwt
import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import MARKER_HEADER, Emulator, EmulatorOptions
from mi_notebook.emulator import command as emulator_command
from mi_notebook.emulator.keys import SigningKeys
from mi_notebook.emulator.workload import WorkloadOptions

START = 1_800_000_000.0
ARM_SCOPE = "https://management.azure.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENTRA_ERROR_KEYS = ["correlation_id", "error", "error_codes", "error_description", "timestamp", "trace_id"]


def start(clock: VirtualClock | None = None, **kw) -> Emulator:
    kw.setdefault("arm", False)
    kw.setdefault("keyvault", False)
    return Emulator(profile="workload", throttle=False, clock=clock or VirtualClock(START), **kw).start()


@pytest.fixture
def emu():
    emulator = start(workload={"rotation": False})
    yield emulator
    emulator.stop()


def assertion(emu: Emulator) -> str:
    with open(emu.environment["AZURE_FEDERATED_TOKEN_FILE"], encoding="utf-8") as fh:
        return fh.read()


def exchange(emu: Emulator, *, scope: str = ARM_SCOPE, client_assertion: str | None = None,
             headers: dict[str, str] | None = None, **form: str) -> requests.Response:
    """The client-assertion grant, as azure-identity posts it (aad_client_base._get_jwt_assertion_request)."""
    env = emu.environment
    data = {"client_assertion": assertion(emu) if client_assertion is None else client_assertion,
            "client_assertion_type": JWT_BEARER, "client_id": env["AZURE_CLIENT_ID"],
            "grant_type": "client_credentials", "scope": scope, **form}
    data = {k: v for k, v in data.items() if v is not None}
    url = env["AZURE_AUTHORITY_HOST"] + env["AZURE_TENANT_ID"] + "/oauth2/v2.0/token"
    return requests.post(url, data=data, headers=headers, verify=emu.ca_bundle, timeout=10)


def refused(r: requests.Response, code: int, status: int, error: str) -> str:
    """Entra's error body: the keys, the code in three places, the status; returns the sentence."""
    assert r.status_code == status, r.text
    body = r.json()
    assert sorted(k for k in body if k != "error_uri") == ENTRA_ERROR_KEYS
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    assert body["error_description"].endswith(f"Timestamp: {body['timestamp']}")
    return body["error_description"].split(" Trace ID:")[0].split("\r\nTrace ID:")[0]


# ---- the pod's variables and the token file -----------------------------------------------------------------
def test_the_webhooks_four_variables(emu):
    env = emu.environment
    assert list(env) == ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST"]
    assert env["AZURE_CLIENT_ID"] == emu.vm.user_identities[0].client_id == emu.workload.identity.client_id
    assert env["AZURE_TENANT_ID"] == emu.vm.tenant_id
    assert env["AZURE_AUTHORITY_HOST"].startswith("https://127.0.0.1:") and env["AZURE_AUTHORITY_HOST"].endswith("/")
    assert os.path.basename(env["AZURE_FEDERATED_TOKEN_FILE"]) == "azure-identity-token"
    assert stat.S_IMODE(os.stat(env["AZURE_FEDERATED_TOKEN_FILE"]).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(os.path.dirname(env["AZURE_FEDERATED_TOKEN_FILE"])).st_mode) == 0o700
    assert emu.token_url == env["AZURE_AUTHORITY_HOST"] + env["AZURE_TENANT_ID"] + "/oauth2/v2.0/token"
    admin = requests.get(emu.imds_url + "/__emulator__/environment", headers=emu.admin_headers, timeout=10)
    assert admin.json() == env  # nothing secret in these four: the file's content is the credential


def test_the_projected_token_and_its_issuer(emu):
    token = assertion(emu)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": emu.workload.cluster.keys.kid}
    claims = jwt.decode(token, options={"verify_signature": False})
    issuer = emu.workload.cluster.issuer
    assert issuer.startswith(emu.workload.authority + "/") and issuer.endswith("/")
    assert claims["aud"] == ["api://AzureADTokenExchange"] and claims["iss"] == issuer
    assert claims["sub"] == "system:serviceaccount:jhub:jupyter-notebook"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"] == int(START)
    k8s = claims["kubernetes.io"]
    assert (k8s["namespace"], k8s["pod"]["name"], k8s["serviceaccount"]["name"]) == ("jhub", "jupyter-ada",
                                                                                       "jupyter-notebook")
    # the issuer's documents, as Entra (and `curl $ISSUER/.well-known/openid-configuration`) reads them
    doc = requests.get(issuer + ".well-known/openid-configuration", verify=emu.ca_bundle, timeout=10).json()
    assert doc["issuer"] == issuer and doc["jwks_uri"] == issuer + "openid/v1/jwks"
    keys = requests.get(doc["jwks_uri"], verify=emu.ca_bundle, timeout=10).json()["keys"]
    assert sorted(keys[0]) == ["alg", "e", "kid", "kty", "n", "use"]
    public = jwt.PyJWK(keys[0]).key
    assert jwt.decode(token, public, algorithms=["RS256"], audience="api://AzureADTokenExchange",
                      options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})["sub"] == claims["sub"]
    with pytest.raises(jwt.InvalidSignatureError):  # the cluster's key is not Entra's
        emu.verify(token)


def test_stop_removes_the_file_and_its_directory():
    emulator = start()
    path = emulator.environment["AZURE_FEDERATED_TOKEN_FILE"]
    emulator.stop()
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    assert emulator.environment == {} and emulator.ca_bundle is None


def test_a_given_token_dir_is_made_and_cleaned(tmp_path):
    where = tmp_path / "var" / "run" / "secrets" / "azure" / "wi" / "token"
    emulator = start(workload={"token_dir": str(where)})
    try:
        assert emulator.environment["AZURE_FEDERATED_TOKEN_FILE"] == str(where / "azure-identity-token")
    finally:
        emulator.stop()
    assert not (tmp_path / "var").exists() and tmp_path.exists()


# ---- rotation, by the emulator's clock -----------------------------------------------------------------------
def test_rotation_at_80_percent_on_demand_and_in_the_background():
    clock = VirtualClock(START)
    emulator = start(clock, workload={"token_lifetime": 600, "rotation_poll": 0.05})
    try:
        pod = emulator.workload
        first = assertion(emulator)
        clock.sleep(479)
        assert not pod.rotate_if_due() and assertion(emulator) == first  # 79.8%: not yet
        clock.sleep(1)
        pod.rotate_if_due()  # rotated here or, a moment earlier, by the background thread: the same state
        second = assertion(emulator)
        assert second != first and pod.token_file.current.serial == 2 and pod.token_file.rotations == 1
        assert jwt.decode(second, options={"verify_signature": False})["iat"] == int(START) + 480
        # the old token stays valid until its exp: Entra still takes it
        assert exchange(emulator, client_assertion=first).status_code == 200
        assert emulator.rotate_service_account_token().serial == 3 and assertion(emulator) != second
    finally:
        emulator.stop()


def test_the_background_rotation_follows_the_clock():
    clock = VirtualClock(START)
    emulator = start(clock, workload={"token_lifetime": 600, "rotation_poll": 0.02})
    try:
        first = assertion(emulator)
        clock.sleep(500)
        done = threading.Event()
        for _ in range(500):  # up to 10 s: the thread looks every 20 ms on a loaded machine
            if emulator.workload.token_file.current.serial == 2:
                done.set()
                break
            threading.Event().wait(0.02)
        assert done.is_set() and assertion(emulator) != first
    finally:
        emulator.stop()


# ---- the token endpoint ---------------------------------------------------------------------------------------
def test_a_token_for_the_federated_identity(emu):
    r = exchange(emu, headers={"client-request-id": "abc-123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["token_type", "expires_in", "ext_expires_in", "access_token"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == body["ext_expires_in"] == 86399
    assert r.headers[MARKER_HEADER] == "1" and r.headers["client-request-id"] == "abc-123"
    assert r.headers["Cache-Control"] == "no-store, no-cache"
    claims = emu.verify(body["access_token"], audience="https://management.azure.com")
    identity = emu.workload.identity
    assert (claims["oid"], claims["appid"], claims["idtyp"], claims["ver"]) == (identity.object_id,
                                                                                identity.client_id, "app", "1.0")
    assert claims["iss"] == f"https://sts.windows.net/{emu.vm.tenant_id}/" and claims["xms_mirid"] == identity.mirid
    assert claims["exp"] == int(START) + 86400
    record = emu.requests.last
    assert (record.service, record.endpoint, record.extra["identity"]) == ("entra", "token", identity.name)


def test_tokens_of_another_cloud():
    emulator = start(cloud="AzureChinaCloud")
    try:
        r = exchange(emulator, scope="https://management.chinacloudapi.cn/.default")
        claims = emulator.verify(r.json()["access_token"])
        assert claims["iss"] == f"https://sts.chinacloudapi.cn/{emulator.vm.tenant_id}/"
        sentence = refused(exchange(emulator), 500011, 400, "invalid_resource")
        assert sentence.startswith("AADSTS500011: The resource principal named https://management.azure.com was "
                                   f"not found in the tenant named {emulator.vm.tenant_id}.")
    finally:
        emulator.stop()


def test_discovery_and_keys(emu):
    base, tenant = emu.workload.authority, emu.vm.tenant_id
    doc = requests.get(f"{base}/{tenant}/v2.0/.well-known/openid-configuration", verify=emu.ca_bundle,
                       timeout=10).json()
    assert doc["token_endpoint"] == emu.token_url and doc["issuer"] == f"{base}/{tenant}/v2.0"
    assert doc["authorization_endpoint"] == f"{base}/{tenant}/oauth2/v2.0/authorize"
    keys = requests.get(doc["jwks_uri"], verify=emu.ca_bundle, timeout=10).json()
    assert keys == emu.jwks
    other = requests.get(f"{base}/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration",
                         verify=emu.ca_bundle, timeout=10)
    refused(other, 90002, 400, "invalid_request")


def test_the_plain_port_has_no_managed_identity_endpoint(emu):
    r = requests.get(emu.imds_url + "/metadata/identity/oauth2/token", headers={"Metadata": "true"},
                     params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"}, timeout=10)
    assert r.status_code == 404 and emu.workload.authority in r.json()["error_description"]


# ---- federated identity credentials, mis-set ------------------------------------------------------------------
def test_an_issuer_without_its_trailing_slash(emu):
    issuer = emu.workload.cluster.issuer
    emu.workload.set_federated_credential(issuer=issuer.rstrip("/"))
    sentence = refused(exchange(emu), 700211, 401, "invalid_client")
    assert sentence.startswith(f"AADSTS700211: No matching federated identity record found for presented assertion "
                               f"issuer '{issuer}'. Please check your federated identity credential Subject, Audience "
                               "and Issuer against the presented assertion.")


def test_a_subject_in_the_wrong_case_or_wrong(emu):
    emu.workload.set_federated_credential(subject="system:serviceaccount:jhub:Jupyter-Notebook")
    sentence = refused(exchange(emu), 7002138, 401, "invalid_client")
    assert "The subject matches with case-insensitive comparison, but not with case-sensitive comparison." in sentence
    emu.workload.set_federated_credential(subject="system:serviceaccount:default:workload-identity-sa")
    sentence = refused(exchange(emu), 700213, 401, "invalid_client")
    assert sentence.startswith("AADSTS700213: No matching federated identity record found for presented assertion "
                               "subject 'system:serviceaccount:jhub:jupyter-notebook'.")


def test_an_audience_and_no_credential_at_all(emu):
    emu.workload.set_federated_credential(audiences=["api://SomethingElse"])
    refused(exchange(emu), 70021, 400, "invalid_request")
    emu.workload.federated_credentials.clear()
    sentence = refused(exchange(emu), 70025, 400, "invalid_client")
    assert "has no configured federated identity credentials" in sentence


def test_the_2022_answers_say_70021_on_separate_lines():
    emulator = start(workload={"entra_errors": "2022"})
    try:
        pod = emulator.workload
        for mistake in ({"issuer": pod.cluster.issuer.rstrip("/")}, {"subject": pod.cluster.subject.upper()}):
            pod.set_federated_credential(**mistake)
            r = exchange(emulator)
            sentence = refused(r, 70021, 400, "invalid_request")
            assert sentence == (
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: "
                f"'{pod.cluster.issuer}'. Assertion Subject: '{pod.cluster.subject}'. Assertion Audience: "
                "'api://AzureADTokenExchange'. "
                "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation")
            assert r.json()["error_uri"] == "https://login.microsoftonline.com/error?code=70021"
            assert "\r\nTrace ID: " in r.json()["error_description"]
    finally:
        emulator.stop()


def test_a_new_credential_takes_a_while_to_propagate():
    clock = VirtualClock(START)
    emulator = start(clock, workload={"propagation": 120, "rotation": False})
    try:
        assert exchange(emulator).status_code == 200  # configured before the pod started: in effect
        emulator.workload.set_federated_credential(name="recreated")
        refused(exchange(emulator), 700211, 401, "invalid_client")
        clock.sleep(120)
        assert exchange(emulator).status_code == 200
    finally:
        emulator.stop()


# ---- 700024 and 90061 --------------------------------------------------------------------------------------------
def test_an_expired_assertion_gets_700024():
    clock = VirtualClock(START)
    emulator = start(clock, workload={"token_lifetime": 600, "rotation": False})
    try:
        stale = assertion(emulator)
        clock.sleep(600)
        sentence = refused(exchange(emulator, client_assertion=stale), 700024, 401, "invalid_client")
        assert sentence == (
            "AADSTS700024: Client assertion is not within its valid time range. Current time: "
            "2027-01-15T08:10:00.0000000Z, assertion valid from 2027-01-15T08:00:00.0000000Z, expiry time of "
            "assertion 2027-01-15T08:10:00.0000000Z. Review the documentation at "
            "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        emulator.rotate_service_account_token()
        assert exchange(emulator).status_code == 200  # a re-read of the rotated file
    finally:
        emulator.stop()


def test_an_unreachable_issuer_gets_90061(emu):
    emu.workload.issuer_reachable = False
    sentence = refused(exchange(emu), 90061, 400, "invalid_request")
    assert sentence == "AADSTS90061: Request to External OIDC endpoint failed."
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.workload.cluster.issuer + ".well-known/openid-configuration", verify=emu.ca_bundle,
                     timeout=10)
    emu.workload.issuer_reachable = True
    assert exchange(emu).status_code == 200


# ---- the request, refused -------------------------------------------------------------------------------------
def test_malformed_requests(emu):
    refused(exchange(emu, client_id="00000000-0000-0000-0000-000000000000"), 700016, 400, "unauthorized_client")
    refused(exchange(emu, client_id=emu.vm.system_identity.client_id), 700016, 400, "unauthorized_client")
    refused(exchange(emu, scope="https://management.azure.com/"), 70011, 400, "invalid_scope")
    refused(exchange(emu, scope=ARM_SCOPE + " https://vault.azure.net/.default"), 70011, 400, "invalid_scope")
    refused(exchange(emu, scope=None), 900144, 400, "invalid_request")
    refused(exchange(emu, grant_type="password"), 70003, 400, "unsupported_grant_type")
    refused(exchange(emu, client_assertion_type="urn:other"), 7000216, 401, "invalid_client")
    refused(exchange(emu, client_assertion="not-a-jwt"), 50027, 400, "invalid_request")
    refused(exchange(emu, scope="https://nope.example/.default"), 500011, 400, "invalid_resource")
    got = requests.get(emu.token_url, verify=emu.ca_bundle, timeout=10)
    refused(got, 900561, 400, "invalid_request")


def test_an_assertion_signed_by_another_key(emu):
    claims = jwt.decode(assertion(emu), options={"verify_signature": False})
    forged = SigningKeys().issue(claims, headers={"alg": "RS256", "kid": emu.workload.cluster.keys.kid})
    sentence = refused(exchange(emu, client_assertion=forged), 50013, 401, "invalid_client")
    assert sentence.startswith("AADSTS50013: Assertion failed signature validation.")


def test_the_assertion_never_reaches_a_log(emu):
    token = assertion(emu)
    exchange(emu)
    emu.workload.set_federated_credential(subject="nope")
    exchange(emu)
    logged = json.dumps([r.to_dict() for r in emu.requests])
    served = requests.get(emu.imds_url + "/__emulator__/requests", headers=emu.admin_headers, timeout=10).text
    for text in (logged, served, repr(emu.workload.token_file.current), repr(list(emu.requests))):
        assert token not in text and token.split(".")[1] not in text
    assert [r.extra.get("aadsts") for r in emu.requests] == [None, 700213]


# ---- faults, the ARM side, options, command line ----------------------------------------------------------------
def test_faults_on_the_token_endpoint(emu):
    emu.inject(503, endpoint="token", retry_after=2)
    r = exchange(emu)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert r.json()["error"] == "temporarily_unavailable"
    emu.inject("bad-expires", endpoint="token")
    assert "expires_in" not in exchange(emu).json()
    assert exchange(emu).status_code == 200


def test_arm_takes_the_pods_tokens_over_the_same_ca():
    emulator = start(arm=True)
    try:
        assert emulator.ca_bundle == emulator.arm.ca_bundle == emulator.workload.ca_bundle
        token = exchange(emulator).json()["access_token"]
        rg = f"/subscriptions/{emulator.vm.subscription_id}/resourceGroups/{emulator.vm.resource_group}"
        r = requests.get(emulator.arm_url + rg, params={"api-version": "2025-04-01"},
                         headers={"Authorization": "Bearer " + token}, verify=emulator.ca_bundle, timeout=10)
        assert r.status_code == 200, r.text  # id-notebook-1 is Reader on the resource group
    finally:
        emulator.stop()


def test_options_and_their_refusals():
    with pytest.raises(ValueError, match="workload options only apply to the workload profile"):
        Emulator(workload={"namespace": "x"})
    with pytest.raises(ValueError, match="federates a user-assigned identity, and the VM has none"):
        Emulator(profile="workload", user_assigned=0)
    with pytest.raises(ValueError, match="workload identity 'nope' is none of the user-assigned identities"):
        Emulator(profile="workload", workload={"identity": "nope"})
    with pytest.raises(ValueError, match="unknown workload option"):
        Emulator(profile="workload", workload={"lifetime": 600})
    with pytest.raises(ValueError, match="token_lifetime must be between 60 and 86400"):
        WorkloadOptions(token_lifetime=30)
    with pytest.raises(ValueError, match="entra_errors must be"):
        WorkloadOptions(entra_errors="2019")
    opts = EmulatorOptions.from_keywords(profile="workload", config={"workload": {"token-lifetime": 900}})
    assert opts.workload.token_lifetime == 900
    assert Emulator(profile="workload", workload={"identity": "id-notebook-2"}).workload.identity.name == "id-notebook-2"
    with pytest.raises(RuntimeError, match="only the workload profile"):
        Emulator().rotate_service_account_token()


def test_the_command_line_prints_the_pods_exports(capsys):
    stop = threading.Event()
    stop.set()
    assert emulator_command.main(["--profile", "workload", "--no-arm", "--quiet"], stop=stop) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("IMDS http://127.0.0.1:") and lines[1].startswith("CA /")
    names = [line.split("=", 1)[0] for line in lines if line.startswith("export ")]
    assert names == ["export AZURE_CLIENT_ID", "export AZURE_TENANT_ID", "export AZURE_FEDERATED_TOKEN_FILE",
                     "export AZURE_AUTHORITY_HOST", "export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN"]
    assert emulator_command.main(["--profile", "workload", "--no-arm"], stop=stop) == 0
    out = capsys.readouterr().out
    assert "trust: export REQUESTS_CA_BUNDLE=" in out and "try: curl --cacert " in out
