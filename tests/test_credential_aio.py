"""The async credential (issue 20, item 2): azure-core's async protocols, the sync credential's cache and
single-flight, no blocked event loop, unmodified async SDK clients (Azurite, the emulated vault), close().
"""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("azure.storage.blob")
pytest.importorskip("aiohttp")  # azure-core's async transport (the clients need it; the credential does not)

from azure.core.credentials import AccessToken as CoreAccessToken  # noqa: E402
from azure.core.credentials_async import AsyncSupportsTokenInfo, AsyncTokenCredential  # noqa: E402
from azure.keyvault.secrets.aio import SecretClient  # noqa: E402
from azure.storage.blob.aio import BlobServiceClient  # noqa: E402

import mi_notebook as mi  # noqa: E402
from mi_notebook.aio import AsyncManagedIdentityTokenCredential  # noqa: E402
from mi_notebook.emulator import Emulator  # noqa: E402

pytestmark = [pytest.mark.usefixtures("clean_connection"), pytest.mark.filterwarnings("ignore::UserWarning")]

VAULT = "https://vault.azure.net/.default"


@pytest.fixture
def conn():
    connection = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=20))
    yield connection
    mi.disconnect()


def token_requests(conn) -> list:
    return conn.emulator.requests.filter(service="imds", endpoint="token")


def test_reachable_both_ways_and_implements_azure_cores_async_protocols(conn):
    import mi_notebook.aio

    cred = mi.aio.credential()
    assert mi.aio is mi_notebook.aio and isinstance(cred, AsyncManagedIdentityTokenCredential)
    assert isinstance(cred, AsyncTokenCredential) and isinstance(cred, AsyncSupportsTokenInfo)

    async def use():
        token = await cred.get_token(VAULT)
        info = await cred.get_token_info(VAULT, options={})
        return token, info

    token, info = asyncio.run(use())
    assert isinstance(token, tuple) and CoreAccessToken(*token).token == token.token  # the namedtuple shape
    assert (info.token, info.expires_on, info.token_type) == (token.token, token.expires_on, "Bearer")
    assert info.refresh_on < info.expires_on
    assert len(token_requests(conn)) == 1  # one cache: get_token_info got the same token


def test_the_sync_and_async_credentials_share_one_cache(conn):
    sync_token = mi.credential().get_token(VAULT)
    async_token = asyncio.run(mi.aio.credential().get_token(VAULT))
    assert async_token.token == sync_token.token and len(token_requests(conn)) == 1


def test_n_concurrent_coroutines_make_one_token_request(conn):
    creds = [mi.aio.credential(), mi.aio.credential()]  # two credentials: the cache's single-flight joins them

    async def many():
        return await asyncio.gather(*(creds[i % 2].get_token(VAULT) for i in range(40)))

    tokens = asyncio.run(many())
    assert len({t.token for t in tokens}) == 1
    assert len(token_requests(conn)) == 1


def test_a_fetch_never_blocks_the_event_loop(conn, monkeypatch):
    # the token request waits until a coroutine on the loop has run: a fetch on the loop would deadlock
    # (then the wait gives up and the request fails)
    on_loop_ran = threading.Event()
    fetched_in: list[str] = []
    real = conn.client.request_token

    def slow(*args, **kwargs):
        fetched_in.append(threading.current_thread().name)
        assert on_loop_ran.wait(60), "the event loop was blocked while the token was fetched"
        return real(*args, **kwargs)

    monkeypatch.setattr(conn.client, "request_token", slow)

    async def both():
        fetch = asyncio.ensure_future(mi.aio.credential().get_token(VAULT))
        await asyncio.sleep(0)
        on_loop_ran.set()
        return await fetch

    assert asyncio.run(both()).expires_on > 0
    assert fetched_in and fetched_in[0] != threading.main_thread().name


def test_a_cached_token_is_served_on_the_loop_without_a_thread(conn, monkeypatch):
    cred = mi.aio.credential()
    asyncio.run(cred.get_token(VAULT))

    async def cached():
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "run_in_executor", lambda *a: pytest.fail("a cached token went to a thread"))
        return await cred.get_token(VAULT), await cred.get_token_info(VAULT)

    token, info = asyncio.run(cached())
    assert token.token == info.token and len(token_requests(conn)) == 1


def test_bad_input_and_use_after_close_say_what_to_do(conn):
    cred = mi.aio.credential()
    with pytest.raises(ValueError, match="exactly one scope"):
        asyncio.run(cred.get_token(VAULT, "https://storage.azure.com/.default"))

    async def scoped():
        async with cred as inside:
            return await inside.get_token(VAULT)

    assert asyncio.run(scoped()).expires_on > 0 and cred.closed
    for call in (cred.get_token(VAULT), cred.get_token_info(VAULT), cred.__aenter__()):
        with pytest.raises(RuntimeError, match=r"was closed .* make a new one with mi_notebook\.aio\.credential\(\)"):
            asyncio.run(call)
    assert "closed" in repr(cred) and len(token_requests(conn)) == 1


def test_a_sync_credential_awaited_names_the_async_one(conn):
    sync = mi.credential()

    async def awaited():
        return await sync.get_token(VAULT)

    with pytest.raises(TypeError, match=r"Use mi_notebook\.aio\.credential\(\)"):
        asyncio.run(awaited())

    async def called_from_a_loop():  # azure-core sync clients called from async code: fine
        return sync.get_token(VAULT).expires_on

    assert asyncio.run(called_from_a_loop()) > 0


def test_an_unmodified_async_secret_client_reads_the_emulated_vault(conn):
    emu = conn.emulator

    async def read():
        async with mi.aio.credential() as cred, SecretClient(
                emu.vault_url, cred, verify_challenge_resource=False, connection_verify=emu.vault_ca_bundle) as client:
            secret = await client.get_secret("greeting")
            names = sorted([p.name async for p in client.list_properties_of_secrets()])
            return secret.value, names

    assert asyncio.run(read()) == ("hello from the emulated Key Vault", ["db-password", "greeting"])
    tokens = token_requests(conn)
    assert [t.query["resource"] for t in tokens] == [["https://vault.azure.net"]]


def test_a_sync_credential_in_an_async_client_is_told_to_use_the_async_one(conn):
    emu = conn.emulator

    async def read():
        async with SecretClient(emu.vault_url, mi.credential(), verify_challenge_resource=False,
                                connection_verify=emu.vault_ca_bundle) as client:
            await client.get_secret("greeting")

    with pytest.raises(TypeError, match=r"mi_notebook\.aio\.credential\(\)"):
        asyncio.run(read())


def test_an_unmodified_async_blob_client_on_azurite(azurite, conn):
    async def roundtrip():
        async with mi.aio.credential() as cred, BlobServiceClient(
                azurite.account_url, credential=cred, connection_verify=azurite.ca_bundle) as service:
            container = service.get_container_client("aio-travel")
            if not await container.exists():
                await container.create_container()
            await container.upload_blob("hello.txt", b"hello, async", overwrite=True)
            blob = await container.download_blob("hello.txt")
            return await blob.readall(), [b.name async for b in container.list_blobs()]

    assert asyncio.run(roundtrip()) == (b"hello, async", ["hello.txt"])
    assert [t.query["resource"] for t in token_requests(conn)] == [["https://storage.azure.com/"]]
