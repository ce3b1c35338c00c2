"""The official clients, unmodified, against every host profile of the emulator.

azure-identity 1.27's ``ManagedIdentityCredential`` (and ``DefaultAzureCredential``) and MSAL Python
1.39's ``ManagedIdentityClient`` are configured only through the environment variables a real host
sets (``emu.environment``; for the VM profile ``AZURE_POD_IDENTITY_AUTHORITY_HOST``, the override both
honour instead of 169.254.169.254). Every other host's variables are cleared first, so detection
follows the real order. Each token is verified against the emulator's key and checked for the
identity (or user) and audience it should name.

The AKS pod (``profile="workload"``): azure-identity's ``WorkloadIdentityCredential``,
``ManagedIdentityCredential`` (its workload branch) and ``DefaultAzureCredential`` (with
``AZURE_TOKEN_CREDENTIALS=prod``: Environment, Workload and Managed identity only, per
``_internal/utils.process_credential_exclusions``), and MSAL's ``ConfidentialClientApplication`` with a
``client_assertion`` callable, configured by the webhook's four variables; the one thing a pod does
not set is trust in the emulator's CA, given here as ``REQUESTS_CA_BUNDLE`` (requests, under both).

Not covered, on purpose: MSAL's ``ManagedIdentityClient`` in Cloud Shell. MSAL does not implement
Cloud Shell there (its docstring says so): with only ``MSI_ENDPOINT`` set it would ask the VM's IMDS
at 169.254.169.254. MSAL's Cloud Shell code (used by ``PublicClientApplication.acquire_token_interactive
(prompt="none")``, which first needs Entra's authority discovery on the network) posts to the fixed
``http://localhost:50342/oauth2/token``; it is exercised below with the emulator on that port.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    CredentialUnavailableError,
    DefaultAzureCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)
from helpers import VirtualClock

from mi_notebook.emulator import Emulator

ARM_SCOPE = "https://management.azure.com/.default"
ARM_AZID = "https://management.azure.com"  # what azure-identity asks for, from the scope
ARM = "https://management.azure.com/"
ARC_PLATFORM_DIR = Path("/var/opt/azcmagent/tokens")  # azure-identity and MSAL read key files only here
HOST_VARIABLES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT",
    "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZUREPS_HOST_ENVIRONMENT", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_TOKEN_CREDENTIALS",
    "AZURE_AUTHORITY_HOST", "AZURE_KUBERNETES_TOKEN_PROXY", "AZURE_KUBERNETES_SNI_NAME", "AZURE_KUBERNETES_CA_FILE",
    "AZURE_KUBERNETES_CA_DATA", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "MSAL_FORCE_REGION",
)


@pytest.fixture
def hosted(monkeypatch):
    """Start an emulator with a profile and give the process exactly that host's environment."""
    for name in HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    emus: list[Emulator] = []

    def start(profile: str, **kw) -> Emulator:
        emu = Emulator(profile=profile, throttle=False, arm=False, **kw).start()
        emus.append(emu)
        for name, value in emu.environment.items():
            monkeypatch.setenv(name, value)
        if profile == "vm":
            monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
        return emu

    yield start
    for emu in emus:
        emu.stop()


def _arc_platform_usable() -> bool:
    if os.geteuid() == 0 or os.environ.get("CI") == "true":
        return True  # CI runs as root: it must run these, not skip them
    return ARC_PLATFORM_DIR.is_dir() and os.access(ARC_PLATFORM_DIR, os.W_OK | os.X_OK)


@pytest.fixture
def arc(hosted):
    """The Arc profile writing its key files where the official clients look for them."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the Arc key directory the clients require is Linux's /var/opt/azcmagent/tokens")
    if not _arc_platform_usable():
        pytest.skip("Arc: the official clients read key files only from /var/opt/azcmagent/tokens; "
                    "creating it needs root (CI runs as root)")
    existed = ARC_PLATFORM_DIR.exists()
    before = set(os.listdir(ARC_PLATFORM_DIR)) if existed else set()
    emu = hosted("arc")
    yield emu
    emu.stop()
    assert ARC_PLATFORM_DIR.exists() == existed  # created for the test, removed after it (or left as found)
    if existed:
        assert set(os.listdir(ARC_PLATFORM_DIR)) <= before  # every key file written was removed


def msal_client(identity=None) -> msal.ManagedIdentityClient:
    return msal.ManagedIdentityClient(identity or msal.SystemAssignedManagedIdentity(), http_client=requests.Session())


def msal_token(identity=None, resource=ARM) -> dict:
    result = msal_client(identity).acquire_token_for_client(resource=resource)
    assert "access_token" in result, result
    return result


def app_claims(emu, token, identity, audience):
    claims = emu.verify(token, audience=audience)
    assert claims["idtyp"] == "app" and claims["oid"] == identity.object_id
    assert claims["appid"] == identity.client_id and claims["xms_mirid"] == identity.mirid
    return claims


def user_claims(emu, token, audience):
    claims = emu.verify(token, audience=audience)
    assert claims["idtyp"] == "user" and claims["oid"] == emu.user.object_id and claims["upn"] == emu.user.upn
    assert "xms_mirid" not in claims
    return claims


# ---- VM (IMDS) ---------------------------------------------------------------------------------------------
def test_vm_azure_identity(hosted):
    emu = hosted("vm")
    app_claims(emu, ManagedIdentityCredential().get_token(ARM_SCOPE).token, emu.vm.system_identity, ARM_AZID)
    user = emu.vm.user_identities[0]
    app_claims(emu, ManagedIdentityCredential(client_id=user.client_id).get_token(ARM_SCOPE).token, user, ARM_AZID)
    with pytest.raises(CredentialUnavailableError, match="Identity not found"):
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000").get_token(ARM_SCOPE)


def test_vm_msal(hosted):
    emu = hosted("vm")
    app_claims(emu, msal_token()["access_token"], emu.vm.system_identity, ARM)
    user = emu.vm.user_identities[1]
    token = msal_token(msal.UserAssignedManagedIdentity(resource_id=user.resource_id))["access_token"]
    app_claims(emu, token, user, ARM)


# ---- Azure ML ----------------------------------------------------------------------------------------------
def test_azureml_azure_identity_falls_into_the_sso_trap_unless_given_the_client_id(hosted):
    emu = hosted("azureml")
    # no client id: the signed-in user's token, although the compute has a managed identity
    user_claims(emu, ManagedIdentityCredential().get_token(ARM_SCOPE).token, ARM_AZID)
    compute_id = os.environ["DEFAULT_IDENTITY_CLIENT_ID"]
    token = ManagedIdentityCredential(client_id=compute_id).get_token(ARM_SCOPE).token
    app_claims(emu, token, emu.vm.system_identity, ARM_AZID)
    assert emu.requests.last.query["clientid"] == [compute_id]  # the parameter is clientid, not client_id


def test_azureml_msal(hosted):
    emu = hosted("azureml")
    user_claims(emu, msal_token()["access_token"], ARM)
    user = emu.vm.user_identities[0]
    token = msal_token(msal.UserAssignedManagedIdentity(client_id=user.client_id))["access_token"]
    app_claims(emu, token, user, ARM)
    # an object id is no selector on Azure ML: the request goes out without clientid, and SSO answers
    token = msal_token(msal.UserAssignedManagedIdentity(object_id=user.object_id))["access_token"]
    user_claims(emu, token, ARM)


def test_azureml_failures_reach_the_clients(hosted, monkeypatch):
    """Azure ML's failures are text/plain. azure-identity 1.27 hands the request to MSAL, which parses the
    body as JSON: what the caller gets is a bare JSONDecodeError, without the service's message (older
    azure-identity said 'Unexpected content type "text/plain"' and showed it, issue 34250)."""
    emu = hosted("azureml")
    with pytest.raises(json.JSONDecodeError):  # unknown client id: 400 text/plain
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000").get_token(ARM_SCOPE)
    assert emu.requests.last.status == 400
    assert emu.requests.last.error_description.startswith(f"Error Token service {emu.vm.name}.")
    monkeypatch.setenv("MSI_SECRET", "not-the-secret")
    with pytest.raises(json.JSONDecodeError):
        ManagedIdentityCredential().get_token(ARM_SCOPE)
    assert emu.requests.last.status == 401
    with pytest.raises(json.JSONDecodeError):
        msal_client().acquire_token_for_client(resource=ARM)
    assert emu.requests.last.status == 401


def test_azureml_sso_unavailable(hosted):
    emu = hosted("azureml", sso="unavailable")
    with pytest.raises(json.JSONDecodeError) as raised:
        ManagedIdentityCredential().get_token(ARM_SCOPE)
    assert raised.value.doc.startswith("SSO failure: unable to retrieve a token.")  # the captured body
    assert emu.requests.last.status == 400
    # naming the compute's identity avoids SSO altogether
    token = ManagedIdentityCredential(client_id=os.environ["DEFAULT_IDENTITY_CLIENT_ID"]).get_token(ARM_SCOPE)
    app_claims(emu, token.token, emu.vm.system_identity, ARM_AZID)


# ---- App Service ---------------------------------------------------------------------------------------------
def test_appservice_azure_identity(hosted):
    emu = hosted("appservice")
    app_claims(emu, ManagedIdentityCredential().get_token(ARM_SCOPE).token, emu.vm.system_identity, ARM_AZID)
    user = emu.vm.user_identities[0]
    for credential in (ManagedIdentityCredential(client_id=user.client_id),
                       ManagedIdentityCredential(identity_config={"object_id": user.object_id}),
                       ManagedIdentityCredential(identity_config={"resource_id": user.resource_id})):
        app_claims(emu, credential.get_token(ARM_SCOPE).token, user, ARM_AZID)


def test_appservice_msal(hosted):
    emu = hosted("appservice")
    app_claims(emu, msal_token()["access_token"], emu.vm.system_identity, ARM)
    user = emu.vm.user_identities[1]
    for identity in (msal.UserAssignedManagedIdentity(object_id=user.object_id),
                     msal.UserAssignedManagedIdentity(resource_id=user.resource_id)):
        app_claims(emu, msal_token(identity)["access_token"], user, ARM)


def test_appservice_failures_reach_the_clients(hosted, monkeypatch):
    emu = hosted("appservice")
    result = msal_client().acquire_token_for_client(resource="https://nope.example/")
    assert result["error"] == "invalid_scope" and result["error_description"].startswith("500, An unexpected error")
    with pytest.raises(ClientAuthenticationError, match="Unable to load the proper Managed Identity"):
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000").get_token(ARM_SCOPE)
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(ARM_SCOPE)
    assert emu.requests.last.status == 401


@pytest.mark.parametrize("profile", ["appservice", "azureml"])
def test_default_azure_credential(hosted, profile):
    emu = hosted(profile)
    token = DefaultAzureCredential().get_token(ARM_SCOPE).token
    if profile == "azureml":
        user_claims(emu, token, ARM_AZID)  # the SSO trap reaches DefaultAzureCredential too
    else:
        app_claims(emu, token, emu.vm.system_identity, ARM_AZID)


# ---- Arc ------------------------------------------------------------------------------------------------------
def test_arc_azure_identity(arc):
    app_claims(arc, ManagedIdentityCredential().get_token(ARM_SCOPE).token, arc.vm.system_identity, ARM_AZID)
    user = arc.vm.user_identities[0]
    credential = ManagedIdentityCredential(identity_config={"resource_id": user.resource_id})
    app_claims(arc, credential.get_token(ARM_SCOPE).token, user, ARM_AZID)
    app_claims(arc, ManagedIdentityCredential(client_id=user.client_id).get_token(ARM_SCOPE).token, user, ARM_AZID)
    assert [r.status for r in arc.requests] == [401, 200] * 3


def test_arc_msal(arc):
    app_claims(arc, msal_token()["access_token"], arc.vm.system_identity, ARM)
    user = arc.vm.user_identities[1]
    token = msal_token(msal.UserAssignedManagedIdentity(resource_id=user.resource_id))["access_token"]
    app_claims(arc, token, user, ARM)
    assert arc.requests.last.query["msi_res_id"] == [user.resource_id]


def test_arc_wrong_key_and_unknown_identity(arc):
    params = {"api-version": "2020-06-01", "resource": ARM}
    r = requests.get(arc.token_url, params=params, headers={"Metadata": "true", "Authorization": "Basic guess"},
                     timeout=5)
    assert r.status_code == 401
    with pytest.raises(ClientAuthenticationError, match="Identity not found"):  # refused before any challenge
        ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000").get_token(ARM_SCOPE)
    result = msal_client(msal.UserAssignedManagedIdentity(client_id=arc.vm.system_identity.client_id)
                         ).acquire_token_for_client(resource=ARM)
    assert result["error"] == "invalid_request" and "Identity not found" in result["error_description"]


# ---- Cloud Shell ----------------------------------------------------------------------------------------------
def test_cloudshell_azure_identity_gets_the_users_token(hosted):
    emu = hosted("cloudshell")
    user_claims(emu, ManagedIdentityCredential().get_token(ARM_SCOPE).token, ARM_AZID)
    user_claims(emu, ManagedIdentityCredential().get_token("https://vault.azure.net/.default").token,
                "https://vault.azure.net")
    with pytest.raises(ClientAuthenticationError, match="AudienceNotSupported"):
        ManagedIdentityCredential().get_token("https://cognitiveservices.azure.com/.default")
    assert emu.requests.last.status == 400


def test_cloudshell_msal_cloud_shell_code_on_its_fixed_port(monkeypatch, cloud_shell_port):
    """MSAL's Cloud Shell path (msal/cloudshell.py, behind PublicClientApplication's prompt="none") posts to
    http://localhost:50342/oauth2/token: run the emulator there (the suite reserved the port for this test)."""
    from msal.cloudshell import _obtain_token

    emu = Emulator(profile="cloudshell", port=cloud_shell_port, throttle=False, arm=False).start()
    try:
        with requests.Session() as session:
            result = _obtain_token(session, [ARM_SCOPE], client_id="04b07795-8ddb-461a-bbee-02f9e1bf7b46")
            assert user_claims(emu, result["access_token"], None)["aud"].rstrip("/") == ARM_AZID
            assert result["id_token_claims"]["preferred_username"] == emu.user.upn
            refused = _obtain_token(session, ["https://cognitiveservices.azure.com/.default"])
        assert refused["error"] == "AudienceNotSupported"
    finally:
        emu.stop()


# ---- AKS pod with workload identity ------------------------------------------------------------------------
VAULT_SCOPE = "https://vault.azure.net/.default"


@pytest.fixture
def pod(hosted, monkeypatch):
    """The workload profile; the process trusts the emulator's CA (a pod needs no such thing for Entra ID)."""

    def start(**kw) -> Emulator:
        emu = hosted("workload", **kw)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        return emu

    return start


def workload_claims(emu, token, audience):
    """A v1 app token for the pod's federated identity, from the emulator's Entra ID (not from IMDS)."""
    identity = emu.workload.identity
    claims = app_claims(emu, token, identity, audience)
    last = emu.requests.last
    assert (last.service, last.endpoint, last.status) == ("entra", "token", 200)
    assert last.extra["identity"] == identity.name and last.extra["credential"] == emu.workload.federated_credentials[0].name
    return claims


def msal_workload_app(**kw) -> msal.ConfidentialClientApplication:
    """The documented MSAL pattern (azure-workload-identity's MSAL sample): the callable reads the file."""

    def read_assertion() -> str:
        with open(os.environ["AZURE_FEDERATED_TOKEN_FILE"], encoding="utf-8") as fh:
            return fh.read()

    return msal.ConfidentialClientApplication(
        os.environ["AZURE_CLIENT_ID"], client_credential={"client_assertion": read_assertion},
        authority=os.environ["AZURE_AUTHORITY_HOST"] + os.environ["AZURE_TENANT_ID"], **kw)


def test_workload_identity_credential(pod):
    emu = pod()
    credential = WorkloadIdentityCredential()
    workload_claims(emu, credential.get_token(ARM_SCOPE).token, ARM_AZID)
    workload_claims(emu, credential.get_token(VAULT_SCOPE).token, "https://vault.azure.net")
    assert {r.service for r in emu.requests} == {"entra"}  # straight to the token endpoint: no discovery


def test_managed_identity_credential_takes_its_workload_branch(pod):
    emu = pod()
    workload_claims(emu, ManagedIdentityCredential().get_token(ARM_SCOPE).token, ARM_AZID)
    other = emu.vm.user_identities[1]  # an identity with no federated credential
    with pytest.raises(ClientAuthenticationError, match="AADSTS70025"):
        ManagedIdentityCredential(client_id=other.client_id).get_token(ARM_SCOPE)
    assert emu.requests.last.status == 400


def test_default_azure_credential_prod_tries_nothing_else(pod, monkeypatch):
    emu = pod()
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")
    workload_claims(emu, DefaultAzureCredential().get_token(ARM_SCOPE).token, ARM_AZID)
    assert [(r.service, r.endpoint) for r in emu.requests] == [("entra", "token")]


def test_msal_confidential_client_with_an_assertion_callable(pod):
    emu = pod()
    app = msal_workload_app(instance_discovery=False)
    result = app.acquire_token_for_client(scopes=[ARM_SCOPE])
    assert "access_token" in result, result
    workload_claims(emu, result["access_token"], ARM_AZID)
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3600
    # MSAL asked for the tenant's OpenID configuration first, then posted to the endpoint it names
    assert [r.endpoint for r in emu.requests] == ["openid-configuration", "token"]


class _LoopbackOnly:
    """An MSAL http_client that records every URL and refuses, without sending, any non-loopback one."""

    def __init__(self, verify: str) -> None:
        self.session = requests.Session()
        self.session.verify = verify
        self.refused: list[str] = []

    def _check(self, url: str) -> None:
        host = requests.utils.urlparse(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            self.refused.append(url)
            raise requests.ConnectionError(f"refused by the test: {url}")

    def get(self, url, **kw):
        self._check(url)
        return self.session.get(url, **kw)

    def post(self, url, **kw):
        self._check(url)
        return self.session.post(url, **kw)

    def close(self) -> None:
        self.session.close()


def test_msal_asks_the_central_instance_discovery_for_an_unfamiliar_authority(pod):
    """msal/authority.py: an authority host outside WELL_KNOWN_AUTHORITY_HOSTS is checked against
    https://login.microsoftonline.com/common/discovery/instance, never against the authority itself,
    so an MSAL client pointed at the emulator passes instance_discovery=False (documented since 1.19.0)."""
    emu = pod()
    client = _LoopbackOnly(emu.ca_bundle)
    with pytest.raises(requests.ConnectionError):
        msal_workload_app(http_client=client)
    assert [u.split("?")[0] for u in client.refused] == ["https://login.microsoftonline.com/common/discovery/instance"]
    assert len(emu.requests) == 0
    result = msal_workload_app(http_client=client, instance_discovery=False).acquire_token_for_client(
        scopes=[ARM_SCOPE])
    assert "access_token" in result and len(client.refused) == 1


def test_a_rotated_file_and_a_stale_read(pod):
    """The kubelet rotates at 80% of the token's life; azure-identity re-reads the file only after 600 s (of
    real time), MSAL's documented callable reads it for every request. With a 600 s token and the emulator's
    clock moved past its exp, the re-reader gets a token and the cached assertion gets AADSTS700024."""
    clock = VirtualClock(1_800_000_000.0)
    emu = pod(clock=clock, workload={"token_lifetime": 600, "rotation": False})
    credential, app = WorkloadIdentityCredential(), msal_workload_app(instance_discovery=False)
    workload_claims(emu, credential.get_token(ARM_SCOPE).token, ARM_AZID)
    first = emu.requests.last.extra["assertion_iat"]
    clock.sleep(480)
    assert emu.workload.rotate_if_due()  # 80% of 600 s
    clock.sleep(150)  # the first token expired 30 s ago; the file holds the rotated one
    result = app.acquire_token_for_client(scopes=[ARM_SCOPE])
    assert "access_token" in result, result
    assert emu.requests.last.extra["assertion_iat"] == first + 480
    with pytest.raises(ClientAuthenticationError, match="AADSTS700024: Client assertion is not within its valid "
                                                        "time range"):
        credential.get_token(VAULT_SCOPE)  # a new scope: a new request, with the JWT read at the start
    assert emu.requests.last.status == 401 and emu.requests.last.extra["assertion_iat"] == first
