"""The unmodified openai SDK against the emulated Azure OpenAI, with tokens from mi.credential().

Every client is built the way a notebook builds it on Azure, with only the endpoint and the TLS trust
changed: ``azure_ad_token_provider=get_bearer_token_provider(mi.credential(), COGNITIVE)`` for
``AzureOpenAI``, the same provider as ``api_key`` for the v1 form ``OpenAI(base_url=.../openai/v1/)``.
The SDK's HTTP client (httpx2 from openai 3 on) trusts the emulator's CA through
``openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=...))``; ``SSL_CERT_FILE`` works
too (httpcore2 reads it when no ``verify`` is given), shown once. Every client names its endpoint, so
no test can fall back on the SDK's default base URL (and the suite's loopback guard would refuse it).

Async: azure-identity's aio ``get_bearer_token_provider`` over ``mi.aio.credential()``, the async
credential on the same cache (tests/test_azure_openai.py covers ``mi.aio.bearer_token_provider``).
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterator

import pytest

openai = pytest.importorskip("openai")

from azure.identity import get_bearer_token_provider  # noqa: E402

import mi_notebook as mi  # noqa: E402
from mi_notebook.emulator import Emulator  # noqa: E402
from mi_notebook.identity import Identity  # noqa: E402

COGNITIVE = "https://cognitiveservices.azure.com/.default"
API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "Say hello to the notebook."}]
# the bodies captured from Azure OpenAI (public threads; docs/emulator.md, "Azure OpenAI")
WRONG_AUDIENCE = {"statusCode": 401, "message": "Unauthorized. Access token is missing, invalid, audience is "
                  "incorrect (https://cognitiveservices.azure.com), or have expired."}
MISSING_ROLE = {"code": "PermissionDenied", "message": "Principal does not have access to API/Operation."}


@pytest.fixture
def emu(clean_connection, monkeypatch) -> Iterator[Emulator]:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY",
                 "AZURE_OPENAI_AD_TOKEN", "OPENAI_API_VERSION", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    connection = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=22))
    yield connection.emulator
    mi.disconnect()


def trust(emu: Emulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=emu.openai_ca_bundle)


def provider(identity: Identity | None = None, scope: str = COGNITIVE) -> Callable[[], str]:
    return get_bearer_token_provider(mi.credential(identity), scope)


def azure_client(emu: Emulator, token_provider: Callable[[], str] | None = None) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                              azure_ad_token_provider=token_provider or provider(), max_retries=0,
                              http_client=openai.DefaultHttpxClient(verify=trust(emu)))


def v1_client(emu: Emulator, token_provider: Callable[[], str] | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.openai_url + "/openai/v1/", api_key=token_provider or provider(),
                         max_retries=0, http_client=openai.DefaultHttpxClient(verify=trust(emu)))


def async_provider(identity: Identity | None = None, scope: str = COGNITIVE) -> Callable[[], Awaitable[str]]:
    """The async shape the async clients take: azure-identity's aio provider over mi's async credential."""
    from azure.identity.aio import get_bearer_token_provider as aio_bearer_token_provider

    return aio_bearer_token_provider(mi.aio.credential(identity), scope)


def authorization(record) -> str:
    """The logged Authorization header (httpx sends it in lower case): a fingerprint, never the token."""
    return next(v for k, v in record.headers.items() if k.lower() == "authorization")


def token_requests(emu: Emulator) -> int:
    return len(emu.requests.filter(service="imds", endpoint="token"))


def test_azure_openai_chat_through_mi_credential(emu):
    reply = azure_client(emu).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    text = reply.choices[0].message.content
    assert "mi-notebook emulator" in text and "no model ran" in text and "Say hello to the notebook." in text
    assert reply.object == "chat.completion" and reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0
    (record,) = emu.requests.filter(service="openai")
    system = emu.vm.system_identity
    assert record.path == "/openai/deployments/gpt-4o-mini/chat/completions" and record.query["api-version"] == [API_VERSION]
    assert record.extra["oid"] == system.object_id and record.extra["appid"] == system.client_id
    assert authorization(record).startswith("Bearer sha256:")  # a fingerprint, never the token
    assert emu.requests.filter(service="imds", endpoint="token")[0].query["resource"] == [
        "https://cognitiveservices.azure.com"]
    # the same request gets the same words: the answer is derived from the input
    again = azure_client(emu).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert again.choices[0].message.content == text and again.id != reply.id


def test_embeddings_are_deterministic_unit_vectors_in_both_encodings(emu):
    client = azure_client(emu)
    floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [len(d.embedding) for d in floats.data] == [1536, 1536] and floats.model == "text-embedding-3-small"
    first = floats.data[0].embedding
    assert abs(sum(x * x for x in first) - 1.0) < 1e-6 and first != floats.data[1].embedding
    assert client.embeddings.create(model="text-embedding-3-small", input="alpha").data[0].embedding == first
    packed = client.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="base64",
                                      dimensions=8).data[0].embedding
    if isinstance(packed, str):  # openai 3 hands base64 back as it came; older versions decoded it
        import base64
        packed = list(struct.unpack("<8f", base64.b64decode(packed)))
    assert len(packed) == 8 and abs(sum(x * x for x in packed) - 1.0) < 1e-5


def test_the_v1_form_takes_the_provider_as_api_key(emu):
    client = v1_client(emu)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert "mi-notebook emulator" in reply.choices[0].message.content
    vectors = client.embeddings.create(model="text-embedding-3-small", input="v1")
    assert len(vectors.data[0].embedding) == 1536
    records = emu.requests.filter(service="openai")
    assert [r.path for r in records] == ["/openai/v1/chat/completions", "/openai/v1/embeddings"]
    assert [r.extra["deployment"] for r in records] == ["gpt-4o-mini", "text-embedding-3-small"]
    assert all(r.extra["api"] == "v1" and r.status == 200 for r in records) and token_requests(emu) == 1


def test_streaming_gives_the_same_words_as_one_answer(emu):
    client = azure_client(emu)
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(whole.split())


def test_two_hundred_calls_make_one_token_request(emu):
    client = azure_client(emu)
    for i in range(200):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}])
    calls = emu.requests.filter(service="openai")
    assert len(calls) == 200 and {r.status for r in calls} == {200}
    assert {r.extra["oid"] for r in calls} == {emu.vm.system_identity.object_id}
    assert len({authorization(r) for r in calls}) == 1  # one token, sent 200 times
    assert token_requests(emu) == 1


def test_a_token_for_arm_is_the_captured_wrong_audience_401(emu):
    client = azure_client(emu, provider(scope="https://management.azure.com/.default"))
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 401 and caught.value.body == WRONG_AUDIENCE
    (record,) = emu.requests.filter(service="openai")
    assert record.extra["auth"] == "wrong-audience" and record.extra["aud"] == "https://management.azure.com/"  # the ARM scope resolves to its one form


def test_an_identity_without_the_role_gets_the_captured_permission_denied_401(emu):
    user = emu.vm.user_identities[0]  # Reader on the resource group: a control-plane role only
    client = azure_client(emu, provider(Identity.user(client_id=user.client_id)))
    with pytest.raises(openai.AuthenticationError) as caught:  # 401, not 403 (PermissionDeniedError)
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 401 and caught.value.body == MISSING_ROLE
    assert caught.value.code == "PermissionDenied"
    assert emu.requests.filter(service="openai")[0].extra["oid"] == user.object_id
    emu.vm.add_role_assignment({"principal_id": user.object_id, "role": "Cognitive Services OpenAI User",
                                "scope": emu.openai.resource_id})
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices


def test_an_unknown_deployment_is_not_found(emu):
    with pytest.raises(openai.NotFoundError) as caught:
        azure_client(emu).chat.completions.create(model="gpt-5-nowhere", messages=HELLO)
    assert caught.value.code == "DeploymentNotFound"
    assert "does not exist" in caught.value.body["message"]


def test_an_injected_429_carries_retry_after_and_the_rate_headers(emu):
    client = azure_client(emu)
    emu.inject(429, endpoint="openai", retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7" and headers["x-ratelimit-remaining-requests"] == "0"
    assert {"x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens", "apim-request-id"} <= set(headers)
    assert caught.value.body == {"code": "429", "message": "Rate limit is exceeded. Try again in 7 seconds."}
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices  # one fault, one 429


def test_ssl_cert_file_is_enough_for_the_sdk(emu, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", emu.openai_ca_bundle)
    client = openai.AzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                                azure_ad_token_provider=provider(), max_retries=0)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content


def test_the_async_clients_through_the_async_credential(emu):
    async def run() -> tuple[str, str, int]:
        azure = openai.AsyncAzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                                        azure_ad_token_provider=async_provider(), max_retries=0,
                                        http_client=openai.DefaultAsyncHttpxClient(verify=trust(emu)))
        v1 = openai.AsyncOpenAI(base_url=emu.openai_url + "/openai/v1/", api_key=async_provider(),
                                max_retries=0, http_client=openai.DefaultAsyncHttpxClient(verify=trust(emu)))
        async with azure, v1:
            replies = await asyncio.gather(*(azure.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"async {i}"}]) for i in range(10)))
            vector = await v1.embeddings.create(model="text-embedding-3-small", input="async")
            stream = await azure.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return replies[3].choices[0].message.content, streamed, len(vector.data[0].embedding)

    text, streamed, size = asyncio.run(run())
    assert '"async 3"' in text and "mi-notebook emulator" in streamed and size == 1536
    assert len(emu.requests.filter(service="openai", status=200)) == 12 and token_requests(emu) == 1


def test_the_async_client_meets_the_same_401s(emu):
    user = emu.vm.user_identities[1]

    async def run(token: Callable[[], Awaitable[str]]) -> None:
        async with openai.AsyncAzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                                           azure_ad_token_provider=token, max_retries=0,
                                           http_client=openai.DefaultAsyncHttpxClient(verify=trust(emu))) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    with pytest.raises(openai.AuthenticationError) as audience:
        asyncio.run(run(async_provider(scope="https://storage.azure.com/.default")))
    with pytest.raises(openai.AuthenticationError) as role:
        asyncio.run(run(async_provider(Identity.user(client_id=user.client_id))))
    assert audience.value.body == WRONG_AUDIENCE and role.value.body == MISSING_ROLE
