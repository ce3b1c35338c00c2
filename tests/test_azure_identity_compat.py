"""Unmodified azure-identity ManagedIdentityCredential against the emulator.

azure-identity builds the IMDS URL as ``$AZURE_POD_IDENTITY_AUTHORITY_HOST.strip("/") +
"/metadata/identity/oauth2/token"`` and sends ``api-version=2018-02-01&resource=<scope minus /.default>``
plus the identity selector (azure/identity/_credentials/imds.py, ``_get_request``). With that variable
set it also skips its availability probe.
"""

from __future__ import annotations

import jwt
import pytest

azure_identity = pytest.importorskip("azure.identity")
from azure.identity import ManagedIdentityCredential  # noqa: E402

from mi_notebook.emulator import Emulator  # noqa: E402

ARM_SCOPE = "https://management.azure.com/.default"
OTHER_MI_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                      "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
                      "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")


@pytest.fixture(scope="module")
def emu():
    with Emulator(throttle=False) as e:
        yield e


@pytest.fixture
def pointed(emu, monkeypatch):
    for name in OTHER_MI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_url)
    emu.requests.clear()
    return emu


def _check(emu, access_token, identity, audience="https://management.azure.com"):
    claims = emu.verify(access_token, audience=audience)
    assert claims["oid"] == identity.object_id and claims["appid"] == identity.client_id
    jwks_claims = jwt.decode(
        access_token, jwt.PyJWKSet.from_dict(emu.jwks).keys[0].key, algorithms=["RS256"],
        audience=audience, options={"verify_exp": False, "verify_nbf": False, "verify_iat": False})
    assert jwks_claims == claims


def test_system_assigned(pointed):
    emu = pointed
    with ManagedIdentityCredential() as cred:
        tok = cred.get_token(ARM_SCOPE)
    _check(emu, tok.token, emu.vm.system_identity)
    assert tok.expires_on == emu.verify(tok.token)["exp"]
    record = emu.requests.filter(endpoint="token")[-1]
    assert record.status == 200
    assert record.query == {"api-version": ["2018-02-01"], "resource": ["https://management.azure.com"]}
    assert record.headers.get("Metadata") == "true"


def test_user_assigned_by_client_id(pointed):
    emu = pointed
    user = emu.vm.user_identities[0]
    with ManagedIdentityCredential(client_id=user.client_id) as cred:
        info = cred.get_token_info("https://vault.azure.net/.default")
    _check(emu, info.token, user, audience="https://vault.azure.net")
    record = emu.requests.filter(endpoint="token")[-1]
    assert record.query["client_id"] == [user.client_id]


@pytest.mark.parametrize("key", ["object_id", "resource_id"])
def test_user_assigned_by_identity_config(pointed, key):
    emu = pointed
    user = emu.vm.user_identities[1]
    value = user.object_id if key == "object_id" else user.resource_id
    with ManagedIdentityCredential(identity_config={key: value}) as cred:
        tok = cred.get_token(ARM_SCOPE)
    _check(emu, tok.token, user)
    sent = emu.requests.filter(endpoint="token")[-1].query
    wire_name = {"object_id": "object_id", "resource_id": "msi_res_id"}[key]
    assert sent[wire_name] == [value], sent


def test_unknown_client_id_is_reported_as_unavailable(pointed):
    from azure.core.exceptions import ClientAuthenticationError

    with ManagedIdentityCredential(client_id="00000000-0000-0000-0000-000000000000") as cred, \
            pytest.raises(ClientAuthenticationError, match="Identity not found"):
        cred.get_token(ARM_SCOPE)
