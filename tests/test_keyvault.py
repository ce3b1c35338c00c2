"""The emulated Key Vault: unmodified azure-keyvault-secrets reads through mi.credential(), and the lessons.

The SDK's ChallengeAuthPolicy sends its first request bare, reads the 401's ``WWW-Authenticate``
challenge and only then asks the credential for a token; by default it refuses a challenge whose
resource domain (``vault.azure.net``) is not the vault URL's (``127.0.0.1`` here), hence
``verify_challenge_resource=False``. The emulator's CA goes in ``connection_verify``.
"""

from __future__ import annotations

import json

import pytest
import requests

pytest.importorskip("azure.keyvault.secrets")

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError  # noqa: E402
from azure.keyvault.secrets import SecretClient  # noqa: E402

import mi_notebook as mi  # noqa: E402
from mi_notebook.emulator import Emulator  # noqa: E402
from mi_notebook.identity import Identity  # noqa: E402


@pytest.fixture
def conn(clean_connection):
    connection = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=16))
    yield connection
    mi.disconnect()


def client_for(emu: Emulator, identity: Identity | None = None) -> SecretClient:
    return SecretClient(emu.vault_url, mi.credential(identity), verify_challenge_resource=False,
                        connection_verify=emu.vault_ca_bundle)


def test_the_sdk_reads_lists_and_is_challenged_first(conn):
    emu = conn.emulator
    client = client_for(emu)
    secret = client.get_secret("greeting")
    assert secret.value == "hello from the emulated Key Vault"
    assert secret.properties.version == emu.vault.get("greeting").version
    assert sorted(p.name for p in client.list_properties_of_secrets()) == ["db-password", "greeting"]
    vault_requests = emu.requests.filter(service="keyvault")
    # the SDK's first request carried no token and got the challenge; every later one carried a token
    assert vault_requests[0].status == 401 and all(r.status == 200 for r in vault_requests[1:])
    token_requests = emu.requests.filter(service="imds", endpoint="token")
    assert len(token_requests) == 1 and token_requests[0].query["resource"] == ["https://vault.azure.net"]


def test_the_sdk_refuses_the_challenge_of_a_foreign_domain_unless_told(conn):
    emu = conn.emulator
    strict = SecretClient(emu.vault_url, mi.credential(), connection_verify=emu.vault_ca_bundle)
    with pytest.raises(ValueError, match="verify_challenge_resource"):
        strict.get_secret("greeting")


def test_identity_without_a_data_role_gets_forbidden_by_rbac(conn):
    emu = conn.emulator
    reader = emu.vm.user_identities[0]  # Reader on the resource group: a control-plane role only
    assert any(a.role == "Reader" for a in emu.vm.assignments_for(reader.object_id))
    with pytest.raises(HttpResponseError) as caught:
        client_for(emu, Identity.user(client_id=reader.client_id)).get_secret("greeting")
    err = caught.value
    assert err.status_code == 403 and err.error.code == "Forbidden"
    body = json.loads(err.response.text())
    assert body["error"]["innererror"]["code"] == "ForbiddenByRbac"
    assert f"oid={reader.object_id}" in body["error"]["message"]
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in body["error"]["message"]


def test_secrets_user_may_read_but_not_set(conn):
    emu = conn.emulator
    with pytest.raises(HttpResponseError) as caught:
        client_for(emu).set_secret("new-one", "value")
    assert caught.value.status_code == 403 and "setSecret" in caught.value.message
    emu.vm.add_role_assignment({"principal_id": emu.vm.system_identity.object_id,
                                "role": "Key Vault Secrets Officer", "scope": emu.vault.resource_id})
    stored = client_for(emu).set_secret("new-one", "value", content_type="text/plain")
    assert stored.value == "value" and emu.vault.get("new-one").content_type == "text/plain"
    assert client_for(emu).get_secret("new-one", stored.properties.version).value == "value"


def test_missing_secret_is_documented_404(conn):
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as caught:
        client_for(conn.emulator).get_secret("nope")
    assert caught.value.error.code == "SecretNotFound"


@pytest.mark.parametrize("resource", ["https://management.azure.com/", "https://storage.azure.com/"])
def test_a_token_for_another_audience_is_refused_with_akv10022(transport_emu, resource):
    emu = transport_emu
    token = requests.get(emu.token_url, headers={"Metadata": "true"},
                         params={"api-version": "2018-02-01", "resource": resource}).json()["access_token"]
    r = requests.get(emu.vault_url + "/secrets/greeting", params={"api-version": "7.5"},
                     headers={"Authorization": "Bearer " + token}, verify=emu.vault_ca_bundle)
    assert r.status_code == 401
    assert r.json()["error"] == {"code": "Unauthorized", "message":
                                 f"AKV10022: Invalid audience. Expected https://vault.azure.net, found: {resource}."}
    assert r.headers["WWW-Authenticate"] == (f'Bearer authorization="https://login.microsoftonline.com/'
                                             f'{emu.vm.tenant_id}", resource="https://vault.azure.net"')
    assert token not in r.text


class ArmScopedCredential:
    """A credential that ignores the scope it is asked for and hands out ARM tokens (a common bug)."""

    def get_token(self, *scopes, **kwargs):
        return mi.credential().get_token("https://management.azure.com/.default", **kwargs)


def test_the_sdk_surfaces_the_audience_error_of_an_arm_token(conn):
    emu = conn.emulator
    client = SecretClient(emu.vault_url, ArmScopedCredential(), verify_challenge_resource=False,
                          connection_verify=emu.vault_ca_bundle)
    with pytest.raises(ClientAuthenticationError, match="AKV10022: Invalid audience"):
        client.get_secret("greeting")


@pytest.mark.parametrize(("query", "status", "code"), [("", 400, "BadParameter"), ("api-version=1.0", 400, "BadParameter")])
def test_api_version_is_checked_after_the_token(transport_emu, query, status, code):
    emu = transport_emu
    token = requests.get(emu.token_url, headers={"Metadata": "true"},
                         params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"}).json()
    r = requests.get(emu.vault_url + "/secrets/greeting?" + query, verify=emu.vault_ca_bundle,
                     headers={"Authorization": "Bearer " + token["access_token"]})
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)


def test_the_vault_server_starts_on_first_use_and_stops_with_the_emulator():
    with Emulator(throttle=False) as emu:
        assert emu.keyvault.url is None  # nothing started for an emulator that never asks
        url = emu.vault_url
        assert url.startswith("https://127.0.0.1:") and emu.keyvault.url == url
    assert emu.vault_url is None and emu.keyvault.url is None


def test_keyvault_can_be_turned_off_and_takes_seeded_secrets():
    with Emulator(keyvault=False) as emu:
        assert emu.vault_url is None and emu.vault is None
    with Emulator(keyvault={"secrets": {"only": "one"}}, arm=False) as emu:
        assert emu.vault.names() == ["only"] and emu.vault_ca_bundle == emu.keyvault.ca_bundle and emu.ca_bundle is None
    with pytest.raises(ValueError, match="unknown keyvault option"):
        Emulator(keyvault={"secret": {}})
