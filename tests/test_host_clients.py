"""The official clients, unmodified, against every host profile of the emulator.

azure-identity 1.27's ``ManagedIdentityCredential`` (and ``DefaultAzureCredential``) and MSAL Python
1.39's ``ManagedIdentityClient`` are configured only through the environment variables a real host
sets (``emu.environment``; for the VM profile ``AZURE_POD_IDENTITY_AUTHORITY_HOST``, the override both
honour instead of 169.254.169.254). Every other host's variables are cleared first, so detection
follows the real order. Each token is verified against the emulator's key and checked for the
identity (or user) and audience it should name.

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
from azure.identity import CredentialUnavailableError, DefaultAzureCredential, ManagedIdentityCredential

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
    "AZURE_AUTHORITY_HOST",
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


def test_cloudshell_msal_cloud_shell_code_on_its_fixed_port(monkeypatch):
    """MSAL's Cloud Shell path (msal/cloudshell.py, behind PublicClientApplication's prompt="none") posts to
    http://localhost:50342/oauth2/token: run the emulator there, if the port is free."""
    from msal.cloudshell import _obtain_token

    try:
        emu = Emulator(profile="cloudshell", port=50342, throttle=False, arm=False).start()
    except OSError:
        pytest.skip("port 50342 (Cloud Shell's fixed port, which MSAL hard-codes) is in use")
    try:
        with requests.Session() as session:
            result = _obtain_token(session, [ARM_SCOPE], client_id="04b07795-8ddb-461a-bbee-02f9e1bf7b46")
            assert user_claims(emu, result["access_token"], None)["aud"].rstrip("/") == ARM_AZID
            assert result["id_token_claims"]["preferred_username"] == emu.user.upn
            refused = _obtain_token(session, ["https://cognitiveservices.azure.com/.default"])
        assert refused["error"] == "AudienceNotSupported"
    finally:
        emu.stop()
