"""Tokens are cached by everything that chose them (security review, finding 2).

The process cache and the token agent key a token by a digest of the whole normalised description:
host, endpoint, the identity as the host resolves it, the resource, and a keyed fingerprint of the
host's secret. A description whose ``endpoint`` is one endpoint and whose variables name another is
refused by the agent before any request. Each test reproduces one case of the review against the
emulator (Azure ML profile), on loopback, with the agent in this process's threads.
"""

from __future__ import annotations

import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from test_agent_support import agent_dir

import mi_notebook as mi
from mi_notebook import errors
from mi_notebook.agent.client import AgentClient, AgentUnavailable
from mi_notebook.agent.server import AgentServer
from mi_notebook.cache import CacheKey, TokenCache
from mi_notebook.emulator import Emulator
from mi_notebook.identity import Identity
from mi_notebook.sources import AzureMlSource, Secret, UserTokenWarning

pytestmark = pytest.mark.usefixtures("clean_connection")

ATTACKER = "eyJhbGciOiJub25lIn0.eyJvaWQiOiJhdHRhY2tlci1jaG9zZW4ifQ."  # {"oid": "attacker-chosen"}, unsigned


@pytest.fixture
def ml():
    with Emulator(profile="azureml", keyvault=False, throttle=False) as emulator:
        yield emulator


@pytest.fixture
def served():
    with agent_dir() as directory:
        server = AgentServer(directory, idle_timeout=30, read_timeout=0.5, heartbeat=0.05).start()
        try:
            yield server, AgentClient(directory, start=False)
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _quiet_user_tokens():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserTokenWarning)
        yield


def token_requests(emu) -> int:
    return len(emu.requests.filter(endpoint="token"))


class _FakeTokenServer:
    """A loopback server that answers every GET with a token of its own choosing, and counts them."""

    def __init__(self) -> None:
        owner = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                owner.hits += 1
                body = json.dumps({"access_token": ATTACKER, "expires_on": "4102444800"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/MSI/auth"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the key itself ------------------------------------------------------------------------------------
def test_the_key_is_a_digest_of_everything_that_chose_the_token():
    ml = AzureMlSource("http://127.0.0.1:46808/MSI/auth", "s3cr3t")
    key = CacheKey.of(ml, Identity.system(), "https://management.azure.com/")
    assert key == CacheKey.of(AzureMlSource("HTTP://127.0.0.1:46808/MSI/auth/", Secret("s3cr3t")),
                              Identity.system(), "https://management.azure.com/")
    others = [
        CacheKey.of(AzureMlSource(ml.endpoint, "another-secret"), Identity.system(), key.resource),
        CacheKey.of(AzureMlSource("http://127.0.0.1:46809/MSI/auth", "s3cr3t"), Identity.system(), key.resource),
        CacheKey.of(mi.ImdsClient(ml.endpoint), Identity.system(), key.resource),
        CacheKey.of(ml, Identity.user(client_id="6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"), key.resource),
        CacheKey.of(ml, Identity.system(), "https://vault.azure.net"),
    ]
    assert all(other != key for other in others) and len(set(others)) == len(others)
    assert "s3cr3t" not in repr(key) and "s3cr3t" not in key.scope


def test_the_secrets_fingerprint_is_keyed_not_a_plain_hash():
    import hashlib

    fingerprint = Secret("s3cr3t").fingerprint
    assert fingerprint == Secret("s3cr3t").fingerprint != Secret("s3cr3T").fingerprint
    assert "s3cr3t" not in fingerprint
    assert hashlib.sha256(b"s3cr3t").hexdigest()[:32] not in fingerprint  # a short secret cannot be looked up


# --- the process cache (finding 2c in one process, and 2a) ---------------------------------------------
def test_two_connections_with_different_default_identity_do_not_mix(ml):
    env = dict(ml.environment)
    without = {k: v for k, v in env.items() if k != "DEFAULT_IDENTITY_CLIENT_ID"}
    cache = TokenCache()
    sso = mi.connect(environ=without, host="azureml")
    sso.cache = cache
    user_token = sso.get_token("graph")
    assert user_token.identity == Identity.system() and getattr(user_token, "is_user_token", False)
    compute = mi.connect(environ=env, host="azureml")
    compute.cache = cache
    token = compute.get_token("graph")
    assert not token.from_cache and token.fingerprint != user_token.fingerprint
    assert token.identity == Identity.user(client_id=env["DEFAULT_IDENTITY_CLIENT_ID"])
    assert not getattr(token, "is_user_token", False) and token_requests(ml) == 2


def test_another_secret_in_the_same_process_is_not_served_the_cached_token(ml):
    cache = TokenCache()
    good = mi.connect(environ=ml.environment, host="azureml")
    good.cache = cache
    good.get_token("arm")
    stale = mi.connect(environ={**ml.environment, "MSI_SECRET": "WRONG"}, host="azureml")
    stale.cache = cache
    with pytest.raises(errors.BadRequestError) as info:  # the endpoint's 401, not the other's token
        stale.get_token("arm")
    assert info.value.status == 401 and token_requests(ml) == 2


# --- the agent (finding 2a, 2b, 2c) ----------------------------------------------------------------------
def test_the_agent_serves_no_description_another_ones_token(ml, served):
    _, client = served
    env = dict(ml.environment)
    endpoint = env["MSI_ENDPOINT"]
    first = client.token({"host": "azureml", "endpoint": endpoint, "environ": env}, "arm", Identity.system())
    again = client.token({"host": "azureml", "endpoint": endpoint, "environ": env}, "arm", Identity.system())
    assert again.from_cache and again.fingerprint == first.fingerprint and token_requests(ml) == 1

    with pytest.raises(errors.BadRequestError):  # another secret: a miss, and the endpoint says 401
        client.token({"host": "azureml", "endpoint": endpoint, "environ": {**env, "MSI_SECRET": "WRONG"}},
                     "arm", Identity.system())
    with pytest.raises(AgentUnavailable, match="point at"):  # Cloud Shell variables naming another endpoint
        client.token({"host": "cloudshell", "endpoint": endpoint, "environ": {"MSI_ENDPOINT": "http://127.0.0.1:9/x"}},
                     "arm", Identity.system())
    try:  # another host (IMDS, no secret) at the same URL: asked itself, never the cached token
        other = client.token({"host": "vm", "endpoint": endpoint}, "arm", Identity.system())
    except errors.ManagedIdentityError:
        pass
    else:
        assert not other.from_cache and other.fingerprint != first.fingerprint
    assert token_requests(ml) >= 2


def test_a_description_pointing_elsewhere_cannot_poison_the_agents_cache(ml, served):
    _, client = served
    env = dict(ml.environment)
    fake = _FakeTokenServer()
    try:
        poison = {"host": "azureml", "endpoint": env["MSI_ENDPOINT"], "environ": {**env, "MSI_ENDPOINT": fake.url}}
        with pytest.raises(AgentUnavailable, match="refused"):
            client.token(poison, "storage", Identity.system(), force_refresh=True)
        assert fake.hits == 0  # refused before any request
        legit = client.token({"host": "azureml", "endpoint": env["MSI_ENDPOINT"], "environ": env}, "storage",
                             Identity.system())
    finally:
        fake.close()
    assert legit.reveal() != ATTACKER and ml.verify(legit.reveal())["aud"].startswith("https://storage")


def test_the_agent_resolves_the_identity_before_it_looks_in_its_cache(ml, served):
    _, client = served
    env = dict(ml.environment)
    without = {k: v for k, v in env.items() if k != "DEFAULT_IDENTITY_CLIENT_ID"}
    user = client.token({"host": "azureml", "endpoint": env["MSI_ENDPOINT"], "environ": without}, "graph",
                        Identity.system())
    assert user.claims.payload.get("idtyp") == "user"
    compute = client.token({"host": "azureml", "endpoint": env["MSI_ENDPOINT"], "environ": env}, "graph",
                           Identity.system())
    assert not compute.from_cache and compute.claims.payload.get("idtyp") != "user"
    assert compute.identity == Identity.user(client_id=env["DEFAULT_IDENTITY_CLIENT_ID"])
