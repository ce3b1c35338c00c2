"""credential(): azure-core's TokenCredential protocols, proven with real Azure SDK pipelines."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import pytest
from helpers import JsonAnswerHandler, logged

from mi_notebook.cache import refresh_at
from mi_notebook.connection import connect
from mi_notebook.identity import Identity
from mi_notebook.sdk_credential import (
    ManagedIdentityTokenCredential,
    SdkAccessToken,
    SdkAccessTokenInfo,
    credential,
)

pytestmark = pytest.mark.usefixtures("clean_connection")

ARM_SCOPE = "https://management.azure.com/.default"
SUBSCRIPTION = "00000000-0000-0000-0000-00000000abcd"


class RecordingServer:
    """A loopback HTTP server answering ``{"value": []}`` and recording each request's headers."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(JsonAnswerHandler):
            def answer(self) -> tuple[int, bytes]:
                seen.append({"path": self.path, "headers": dict(self.headers)})
                return 200, json.dumps({"value": []}).encode()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_get_token_and_get_token_info_shapes(transport_emu):
    conn = connect(transport_emu.imds_url)
    cred = credential(connection=conn)
    token = cred.get_token(ARM_SCOPE)
    assert isinstance(token, SdkAccessToken) and isinstance(token, tuple)
    assert token.token == token[0] and token.expires_on == token[1]
    claims = transport_emu.verify(token.token)
    assert claims["aud"] == "https://management.azure.com/" and token.expires_on == claims["exp"]

    info = cred.get_token_info(ARM_SCOPE)
    assert isinstance(info, SdkAccessTokenInfo)
    assert info.token == token.token and info.token_type == "Bearer"
    assert info.expires_on == token.expires_on and 0 < info.refresh_on < info.expires_on
    assert len(logged(transport_emu, 1)) == 1  # the second call was served by the cache
    for text in (repr(token), str(token), repr(info), repr(cred)):
        assert token.token not in text


@pytest.mark.parametrize(("alias", "scope"), [("arm", ARM_SCOPE), ("storage", "https://storage.azure.com/.default"),
                                              ("vault", "https://vault.azure.net/.default")])
def test_an_alias_and_the_sdks_scope_share_one_token(transport_emu, alias, scope):
    import mi_notebook as mi

    conn = mi.connect(transport_emu.imds_url)
    first = mi.get_token(alias)
    sdk = credential().get_token(scope)
    info = credential(connection=conn).get_token_info(scope)
    assert sdk.token == info.token == first.reveal()
    assert len(logged(transport_emu, 1)) == 1  # one request to the emulator for all three
    assert len([t for t in conn.cache.tokens() if t.endpoint == conn.endpoint]) == 1  # one cache entry
    assert transport_emu.verify(sdk.token)["aud"] == first.resource == mi.WELL_KNOWN_RESOURCES[alias].uri


def test_matches_azure_core_types_and_protocols(transport_emu):
    from azure.core.credentials import AccessToken, AccessTokenInfo, SupportsTokenInfo, TokenCredential

    cred = credential(connection=connect(transport_emu.imds_url))
    assert isinstance(cred, TokenCredential) and isinstance(cred, SupportsTokenInfo)
    assert SdkAccessToken._fields == AccessToken._fields
    info = cred.get_token_info(ARM_SCOPE)
    for name in ("token", "expires_on", "token_type", "refresh_on"):
        assert hasattr(info, name) and hasattr(AccessTokenInfo("t", 1), name)


@pytest.mark.parametrize("scopes", [(), (ARM_SCOPE, "https://vault.azure.net/.default")])
def test_exactly_one_scope(transport_emu, scopes):
    cred = credential(connection=connect(transport_emu.imds_url))
    with pytest.raises(ValueError, match="exactly one scope"):
        cred.get_token(*scopes)
    with pytest.raises(ValueError, match="exactly one scope"):
        cred.get_token_info(*scopes)
    assert transport_emu.requests.filter(endpoint="token") == []


def test_user_assigned_identity_and_claims_challenge(transport_emu):
    user = transport_emu.vm.user_identities[0]
    cred = credential(Identity.user(client_id=user.client_id), connection=connect(transport_emu.imds_url))
    first = cred.get_token("https://vault.azure.net/.default")
    assert transport_emu.verify(first.token)["appid"] == user.client_id
    cred.get_token("https://vault.azure.net/.default")
    assert len(logged(transport_emu, 1)) == 1
    # a claims challenge means the cached token was rejected: ask IMDS again
    cred.get_token("https://vault.azure.net/.default", claims='{"access_token":{"nbf":{"essential":true}}}')
    assert len(logged(transport_emu, 2)) == 2


def test_uses_the_current_connection_by_default_and_is_a_context_manager(transport_emu):
    connect(transport_emu.imds_url)
    with ManagedIdentityTokenCredential("system") as cred:
        assert transport_emu.verify(cred.get_token(ARM_SCOPE).token)
    assert cred.get_token(ARM_SCOPE).token  # close() releases nothing shared


def test_bearer_policy_in_a_real_pipeline_sends_the_emulator_token(transport_emu):
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.core.rest import HttpRequest

    cred = credential(connection=connect(transport_emu.imds_url))
    with RecordingServer() as server:
        policy = BearerTokenCredentialPolicy(cred, ARM_SCOPE)
        client = PipelineClient(base_url=server.url, policies=[policy])
        for _ in range(2):
            response = client.send_request(HttpRequest("GET", server.url + "/subscriptions"), enforce_https=False)
            assert response.status_code == 200
        client.close()
    assert len(server.seen) == 2
    scheme, _, token = server.seen[0]["headers"]["Authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = transport_emu.verify(token)
    assert claims["aud"] == "https://management.azure.com/"
    assert claims["oid"] == transport_emu.vm.system_identity.principal_id
    assert len(logged(transport_emu, 1)) == 1


def test_an_azure_mgmt_client_sends_requests_with_it(transport_emu):
    from azure.mgmt.resource.resources import ResourceManagementClient

    cred = credential(connection=connect(transport_emu.imds_url))
    with RecordingServer() as server:
        client = ResourceManagementClient(cred, SUBSCRIPTION, base_url=server.url)
        groups = list(client.resource_groups.list(enforce_https=False))
        client.close()
    assert groups == []
    (request,) = server.seen
    assert request["path"].startswith(f"/subscriptions/{SUBSCRIPTION}/resourcegroups?api-version=")
    token = request["headers"]["Authorization"].removeprefix("Bearer ")
    assert transport_emu.verify(token)["aud"] == "https://management.azure.com/"


def test_refresh_on_is_the_cache_refresh_time(transport_emu):
    conn = connect(transport_emu.imds_url)
    info = credential(connection=conn).get_token_info(ARM_SCOPE)
    token = conn.get_token(ARM_SCOPE)
    assert info.refresh_on == int(refresh_at(token))


def test_bad_identity_is_a_value_error():
    with pytest.raises(ValueError):
        credential(identity=3.14)
    with pytest.raises(ValueError):
        credential("client_id=nope")


def test_an_azure_mgmt_client_over_tls_against_the_arm_emulator(transport_emu):
    """End to end: the SDK sends our token over https, the ARM emulator validates it and answers.

    The ARM side is part of every emulator: one that did not start fails here (it is never skipped)."""
    assert transport_emu.arm_url and transport_emu.ca_bundle, "the emulator's ARM side did not start"
    from azure.mgmt.resource.resources import ResourceManagementClient

    cred = credential(connection=connect(transport_emu.imds_url))
    client = ResourceManagementClient(cred, transport_emu.vm.subscription_id, base_url=transport_emu.arm_url,
                                      connection_verify=transport_emu.ca_bundle)
    names = [group.name for group in client.resource_groups.list()]
    client.close()
    assert transport_emu.vm.resource_group in names
    arm_requests = logged(transport_emu, 1, endpoint=None)
    assert any(r.service == "arm" and r.status == 200 for r in arm_requests)
    assert len(logged(transport_emu, 1)) == 1  # one IMDS token for every ARM call
