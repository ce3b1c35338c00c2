"""mi.bearer_token_provider and mi.explain_openai_error: the openai SDK through mi-notebook's cache, and
Azure OpenAI's two 401s explained where mi-notebook sees them (the SDK's errors, the local resource
check, ``mi-notebook decode --for``), against the emulated Azure OpenAI account.

The unmodified openai SDK is used as a notebook uses it (tests/test_openai_sdk.py covers the SDK with
azure-identity's ``get_bearer_token_provider`` over ``mi.credential()``).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest

import mi_notebook as mi
from mi_notebook.azure_openai import (
    AZURE_AI_USER,
    COGNITIVE_SERVICES_SCOPE,
    OPENAI_USER,
    BearerTokenProvider,
    explain_openai_error,
    role_assignment_command,
)
from mi_notebook.cli import main
from mi_notebook.connection import current
from mi_notebook.emulator import Emulator
from mi_notebook.emulator.azureopenai.auth import PERMISSION_DENIED, UNAUTHORIZED, unauthorized_body
from mi_notebook.errors import AudienceError, ManagedIdentityError, MissingRoleError, TokenRejectedError
from mi_notebook.identity import Identity
from mi_notebook.resources import resolve_resource, suggest_resources
from mi_notebook.sdk_credential import EmulatorTokenWarning
from mi_notebook.tutorial import openai_targets

ROOT = Path(__file__).resolve().parent.parent
API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "Say hello to the notebook."}]
# every token here is the emulator's: mi.credential() says so once per process, tested elsewhere
pytestmark = pytest.mark.filterwarnings(f"ignore::{EmulatorTokenWarning.__module__}.{EmulatorTokenWarning.__name__}")
FOUNDRY_DENIED = {"error": {"code": "PermissionDenied", "message": (
    "The principal `11111111-2222-3333-4444-555555555555` lacks the required data action "
    "`Microsoft.CognitiveServices/accounts/AIServices/agents/read` to perform `GET /api/projects/{projectName}/"
    "assistants/{assistantId}` operation. For instructions on granting the necessary permissions, see "
    "https://aka.ms/FoundryPermissions.")}}


@pytest.fixture
def emu(clean_connection, monkeypatch) -> Iterator[Emulator]:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY",
                 "AZURE_OPENAI_AD_TOKEN", "OPENAI_API_VERSION", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    connection = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=11))
    yield connection.emulator
    mi.disconnect()


def azure_client(emu: Emulator, provider: Any) -> Any:
    openai = pytest.importorskip("openai")
    http = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=emu.openai_ca_bundle))
    return openai.AzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                              azure_ad_token_provider=provider, max_retries=0, http_client=http)


def token_requests(emu: Emulator, resource: str = "https://cognitiveservices.azure.com") -> int:
    return sum(1 for r in emu.requests.filter(service="imds", endpoint="token") if r.query["resource"] == [resource])


def refused(emu: Emulator, provider: Any) -> Any:
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.AuthenticationError) as caught:
        azure_client(emu, provider).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    return caught.value


def unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


# --- the provider ------------------------------------------------------------------------------------------
def test_the_provider_drives_the_sdk_and_two_hundred_calls_cost_one_token_request(emu):
    provider = mi.bearer_token_provider()
    client = azure_client(emu, provider)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert "mi-notebook emulator" in first.choices[0].message.content
    for i in range(199):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}])
    calls = emu.requests.filter(service="openai")
    assert len(calls) == 200 and {r.status for r in calls} == {200}
    assert {r.extra["oid"] for r in calls} == {emu.vm.system_identity.object_id}
    assert token_requests(emu) == 1


def test_the_v1_client_takes_the_provider_as_api_key(emu):
    openai = pytest.importorskip("openai")
    http = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=emu.openai_ca_bundle))
    client = openai.OpenAI(base_url=emu.openai_url + "/openai/v1/", api_key=mi.bearer_token_provider("cognitiveservices"),
                           max_retries=0, http_client=http)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert "mi-notebook emulator" in reply.choices[0].message.content
    assert emu.requests.filter(service="openai")[0].path == "/openai/v1/chat/completions"


def test_a_call_on_the_cached_path_fetches_nothing_and_takes_no_lock(emu):
    provider = mi.bearer_token_provider()
    token = provider()
    conn = current()
    before = conn.cache.stats
    lock = conn.cache._lock

    class NoLock:
        def __enter__(self):
            raise AssertionError("the cached path took the cache's lock")

        def __exit__(self, *exc):
            return False

    conn.cache._lock = NoLock()
    try:
        assert {provider() for _ in range(5000)} == {token}
    finally:
        conn.cache._lock = lock
    after = conn.cache.stats
    assert after.fetches == before.fetches and after.hits - before.hits == 5000


def test_each_identity_gets_its_own_token_and_the_repr_shows_none(emu):
    user = emu.vm.user_identities[0]
    system, mine = mi.bearer_token_provider(), mi.bearer_token_provider(identity=Identity.user(client_id=user.client_id))
    assert system() != mine() and mi.decode(mine()).object_id == user.object_id
    assert repr(system) == "BearerTokenProvider('https://cognitiveservices.azure.com/.default', system-assigned)"
    assert mine() not in repr(mine) and "user-assigned (client_id=" in repr(mine)


def test_any_token_credential_can_stand_behind_the_provider():
    calls = []

    class Fixed:
        def get_token(self, *scopes: str, **kwargs: Any) -> SimpleNamespace:
            calls.append(scopes)
            return SimpleNamespace(token="opaque", expires_on=0)

    provider = mi.bearer_token_provider("foundry", credential=Fixed())
    assert provider() == "opaque" and calls == [("https://ai.azure.com/.default",)]
    assert repr(provider) == "BearerTokenProvider('https://ai.azure.com/.default', Fixed)"


@pytest.mark.parametrize("bad, words", [
    ("https://my-aoai.openai.azure.com/.default", "is an Azure OpenAI endpoint's address, not a token audience"),
    ("https://openai.azure.com/.default", "did you mean 'https://cognitiveservices.azure.com/.default'"),
    ("https://my-aoai.openai.azure.com/openai/deployments/gpt-4o", "(alias 'cognitiveservices')"),
    ("https://acct.cognitiveservices.azure.com", "is an Azure AI services endpoint's address"),
    ("https://acct.services.ai.azure.com/.default", "'https://ai.azure.com/.default' (alias 'foundry') or"),
    ("openai", "did you mean 'cognitiveservices'"),
])
def test_an_endpoint_or_a_name_for_the_resource_is_refused_before_any_request(clean_connection, bad, words):
    with pytest.raises(ValueError) as caught:
        mi.bearer_token_provider(bad)
    assert words in str(caught.value)
    assert current() is None  # nothing was asked: not even a connection


def test_identity_and_credential_are_exclusive_and_a_credential_must_get_tokens():
    with pytest.raises(ValueError, match="not both"):
        mi.bearer_token_provider(identity="system", credential=mi.credential())
    with pytest.raises(ValueError, match="must have a get_token method"):
        mi.bearer_token_provider(credential=object())


def test_the_foundry_alias_and_the_typo_hints_beside_it():
    assert resolve_resource("foundry") == resolve_resource("https://ai.azure.com/.default") == "https://ai.azure.com"
    assert resolve_resource("https://AI.azure.com/") == "https://ai.azure.com"  # one token per resource meant
    # a short well-known URI must not crowd out the typo's real target
    assert suggest_resources("https://vault.azure.com") == ["https://vault.azure.net"]
    assert suggest_resources("https://cognitiveservice.azure.com") == ["https://cognitiveservices.azure.com"]


# --- the two 401s, from the SDK's errors --------------------------------------------------------------------
def test_a_token_for_arm_is_explained_as_the_wrong_audience(emu):
    wrong = mi.bearer_token_provider("arm")
    err = refused(emu, wrong)
    explained = explain_openai_error(err, wrong)
    assert isinstance(explained, AudienceError) and isinstance(explained, TokenRejectedError)
    assert explained.audience == "https://management.azure.com/"
    assert explained.expected_audience == "https://cognitiveservices.azure.com"
    assert explained.principal_id == emu.vm.system_identity.object_id and explained.status == 401
    text = str(explained)
    assert "it is for 'https://management.azure.com/', and Azure OpenAI accepts only 'https://cognitiveservices.azure.com'" in text
    assert "'https://cognitiveservices.azure.com/.default'" in explained.hint
    assert UNAUTHORIZED["message"] in text  # the service's own words
    assert wrong() not in text + repr(explained) + json.dumps(explained.to_dict())


def test_a_foundry_project_token_is_named_as_such(emu):
    foundry = mi.bearer_token_provider("foundry")
    explained = explain_openai_error(refused(emu, foundry), foundry)
    assert isinstance(explained, AudienceError) and explained.audience == "https://ai.azure.com"
    assert "what Foundry projects (azure-ai-projects) ask for" in explained.message


def test_an_identity_without_the_role_gets_the_role_the_command_and_the_delay(emu):
    user = emu.vm.user_identities[0]  # Reader on the resource group: a control-plane role only
    provider = mi.bearer_token_provider(identity=Identity.user(client_id=user.client_id))
    err = refused(emu, provider)
    explained = explain_openai_error(err, provider, scope=emu.openai.resource_id)
    assert isinstance(explained, MissingRoleError) and isinstance(explained, PermissionError)
    assert (explained.role, explained.principal_id, explained.scope) == (OPENAI_USER, user.object_id, emu.openai.resource_id)
    assert explained.command == role_assignment_command(user.object_id, OPENAI_USER, emu.openai.resource_id)
    assert explained.error == "PermissionDenied" and explained.status == 401
    assert "not 403" in explained.message and "up to 5 minutes" in explained.hint
    assert explained.command in explained.hint and "--assignee-principal-type ServicePrincipal" in explained.command
    # the command, run (here: the emulator's own assignment), is what fixes it
    emu.vm.add_role_assignment({"principal_id": explained.principal_id, "role": explained.role,
                                "scope": explained.scope})
    assert azure_client(emu, provider).chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices


def test_without_the_token_the_error_says_what_the_401_can_mean_and_how_to_know(emu):
    err = refused(emu, mi.bearer_token_provider("storage"))
    explained = explain_openai_error(err)  # the openai SDK keeps no Authorization header in its errors
    assert type(explained) is TokenRejectedError and explained.audience is None
    assert "give explain_openai_error the provider (or token) the client used" in explained.message


def test_the_async_twin_drives_the_async_clients_on_one_token_request(emu):
    openai = pytest.importorskip("openai")
    provider = mi.aio.bearer_token_provider()
    assert repr(provider) == "AsyncBearerTokenProvider('https://cognitiveservices.azure.com/.default', system-assigned)"

    async def run() -> list[str]:
        trust = ssl.create_default_context(cafile=emu.openai_ca_bundle)
        azure = openai.AsyncAzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                                        azure_ad_token_provider=provider, max_retries=0,
                                        http_client=openai.DefaultAsyncHttpxClient(verify=trust))
        v1 = openai.AsyncOpenAI(base_url=emu.openai_url + "/openai/v1/", api_key=provider, max_retries=0,
                                http_client=openai.DefaultAsyncHttpxClient(verify=trust))
        async with azure, v1:
            replies = await asyncio.gather(*(client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"async {i}"}])
                for i in range(20) for client in (azure, v1)))
        return [r.choices[0].message.content for r in replies]

    texts = asyncio.run(run())
    assert len(texts) == 40 and all("mi-notebook emulator" in t for t in texts)
    assert {r.status for r in emu.requests.filter(service="openai")} == {200} and token_requests(emu) == 1
    # the sync and the async provider share the one cached token
    assert mi.bearer_token_provider()() == asyncio.run(provider()) and token_requests(emu) == 1


def test_the_async_twin_refuses_a_sync_credential_and_bad_input(clean_connection):
    with pytest.raises(ValueError, match="must be an async TokenCredential"):
        mi.aio.bearer_token_provider(credential=mi.credential())
    with pytest.raises(ValueError, match="not both"):
        mi.aio.bearer_token_provider(identity="system", credential=mi.aio.credential())
    with pytest.raises(ValueError, match="is an Azure OpenAI endpoint's address"):
        mi.aio.bearer_token_provider("https://my-aoai.openai.azure.com")
    assert current() is None


def test_the_async_client_meets_the_same_explanations(emu):
    openai = pytest.importorskip("openai")
    wrong = mi.aio.bearer_token_provider("arm")
    user = emu.vm.user_identities[0]
    reader = mi.aio.bearer_token_provider(identity=Identity.user(client_id=user.client_id))

    async def run(provider: Any) -> Any:
        http = openai.DefaultAsyncHttpxClient(verify=ssl.create_default_context(cafile=emu.openai_ca_bundle))
        async with openai.AsyncAzureOpenAI(azure_endpoint=emu.openai_url, api_version=API_VERSION,
                                           azure_ad_token_provider=provider, max_retries=0, http_client=http) as client:
            try:
                await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            except openai.AuthenticationError as err:
                return explain_openai_error(err, await provider())
        return None

    audience, role = asyncio.run(run(wrong)), asyncio.run(run(reader))
    assert isinstance(audience, AudienceError) and audience.audience == "https://management.azure.com/"
    assert isinstance(role, MissingRoleError) and role.principal_id == user.object_id


# --- the two 401s, from bodies and other clients ---------------------------------------------------------
def test_bodies_in_both_shapes_and_everything_else():
    assert isinstance(explain_openai_error(PERMISSION_DENIED), MissingRoleError)
    assert isinstance(explain_openai_error(PERMISSION_DENIED["error"]), MissingRoleError)  # the SDK's err.body
    assert type(explain_openai_error(UNAUTHORIZED)) is TokenRejectedError
    for other in ({"error": {"code": "404", "message": "Resource not found"}},
                  {"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 2 seconds."}},
                  {"statusCode": 403, "message": "Forbidden"}, {}):
        assert explain_openai_error(other) is None


def test_a_foundry_permission_denied_names_azure_ai_user_and_its_principal():
    explained = explain_openai_error(FOUNDRY_DENIED)
    assert isinstance(explained, MissingRoleError) and explained.role == AZURE_AI_USER
    assert explained.principal_id == "11111111-2222-3333-4444-555555555555"
    assert "Foundry project" in explained.message and "<resource id of the Azure OpenAI account>" in explained.command


def test_an_expired_token_is_told_apart_from_a_wrong_audience():
    now = 1_767_225_600
    expired = unsigned({"aud": "https://cognitiveservices.azure.com", "oid": "o", "exp": now - 60, "nbf": now - 3600})
    explained = explain_openai_error(UNAUTHORIZED, expired, now=now)
    assert type(explained) is TokenRejectedError and "expired at 2025-12-31 23:59:00 UTC" in explained.message
    assert "token provider" in explained.hint and "not a token string" in explained.hint
    fresh = unsigned({"aud": "https://cognitiveservices.azure.com/", "oid": "o", "exp": now + 600,
                      "tid": "t", "iss": "https://sts.windows.net/t/"})
    other = explain_openai_error(UNAUTHORIZED, fresh, now=now)
    assert type(other) is TokenRejectedError and "another tenant" in other.message
    assert "not a jwt" in str(explain_openai_error(UNAUTHORIZED, "not-a-jwt")).lower()


def test_an_emulator_token_sent_to_a_real_service_says_so(emu):
    explained = explain_openai_error(UNAUTHORIZED, mi.get_token("cognitiveservices"))
    assert type(explained) is TokenRejectedError and "the mi-notebook emulator issued it" in explained.message


def test_the_audience_the_service_names_is_the_one_expected():
    """A Government account names its own audience in the body (no cloud logic here: the body says it)."""
    commercial = unsigned({"aud": "https://cognitiveservices.azure.com", "oid": "o", "exp": 2_000_000_000})
    explained = explain_openai_error(unauthorized_body("https://cognitiveservices.azure.us"), commercial, now=0)
    assert isinstance(explained, AudienceError)
    assert explained.expected_audience == "https://cognitiveservices.azure.us"
    assert "'https://cognitiveservices.azure.us/.default'" in explained.hint


def test_an_exception_that_keeps_its_request_headers_is_read_without_help():
    """azure-core's ClientAuthenticationError and requests' HTTPError keep the request with its headers."""
    raw = unsigned({"aud": "https://management.azure.com/", "oid": "o", "exp": 2_000_000_000})
    request = SimpleNamespace(headers={"Authorization": f"Bearer {raw}"})
    response = SimpleNamespace(status_code=401, request=request, json=lambda: UNAUTHORIZED)
    explained = explain_openai_error(SimpleNamespace(response=response))
    assert isinstance(explained, AudienceError) and explained.audience == "https://management.azure.com/"
    broken = SimpleNamespace(status_code=401, request=request, json=lambda: json.loads("<html>"))
    assert explain_openai_error(SimpleNamespace(response=broken, body=PERMISSION_DENIED["error"])).role == OPENAI_USER


def test_the_explained_errors_are_in_the_one_tree():
    for cls in (TokenRejectedError, AudienceError, MissingRoleError):
        assert issubclass(cls, ManagedIdentityError) and getattr(mi, cls.__name__) is cls
    assert mi.explain_openai_error is explain_openai_error and mi.bearer_token_provider().scope == COGNITIVE_SERVICES_SCOPE
    data = MissingRoleError("m", role="r", principal_id="p", scope="s", command="c").to_dict()
    assert {k: data[k] for k in ("type", "role", "principal_id", "scope", "command")} == {
        "type": "MissingRoleError", "role": "r", "principal_id": "p", "scope": "s", "command": "c"}
    assert isinstance(BearerTokenProvider(mi.credential(), "x"), BearerTokenProvider)


# --- claim checks and decode ---------------------------------------------------------------------------------
def test_the_claim_checks_know_the_azure_ai_audiences():
    from mi_notebook.claims import check_audience, explain_claim

    check = check_audience("https://ai.azure.com", "cognitiveservices")
    assert check.status == "problem" and "Azure AI Foundry projects" in check.explanation
    assert "audience is incorrect (https://cognitiveservices.azure.com)" in check.explanation
    assert "InvalidAuthenticationTokenAudience" not in check_audience("https://cognitiveservices.azure.com", "foundry").explanation
    assert "InvalidAuthenticationTokenAudience" in check_audience("https://vault.azure.net", "arm").explanation
    assert explain_claim("aud", "https://cognitiveservices.azure.com/").endswith(
        "(here: Azure AI services: Azure OpenAI (deployments and the v1 API) and Foundry model inference)")


def _raw(capsys, resource: str, imds_url: str) -> str:
    assert main(["token", resource, "-o", "raw", "--imds-url", imds_url]) == 0
    return capsys.readouterr().out.strip()


def test_decode_for_openai_says_which_audience_and_exits_1_when_wrong(transport_emu, capsys):
    arm = _raw(capsys, "arm", transport_emu.imds_url)
    assert main(["decode", "--for", "openai", arm]) == 1
    out = capsys.readouterr().out
    assert "Audience for openai: [problem] audience: aud is 'https://management.azure.com/', not the requested " \
           "resource 'https://cognitiveservices.azure.com'" in out
    assert "audience is incorrect (https://cognitiveservices.azure.com)" in out and arm not in out
    right = _raw(capsys, "cognitiveservices", transport_emu.imds_url)
    assert main(["decode", "--for", "Azure-OpenAI", right, "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["audienceCheck"]
    assert check["status"] == "ok" and check["wanted"] == "https://cognitiveservices.azure.com"


def test_decode_names_an_azure_ai_audience_unasked_and_nothing_for_others(transport_emu, capsys):
    right = _raw(capsys, "cognitiveservices", transport_emu.imds_url)
    assert main(["decode", right]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("NOT an Azure token")
    assert lines[1] == ("Audience: https://cognitiveservices.azure.com is for Azure AI services: Azure OpenAI "
                        "(deployments and the v1 API) and Foundry model inference.")
    assert main(["decode", _raw(capsys, "vault", transport_emu.imds_url)]) == 0
    assert "Audience:" not in capsys.readouterr().out.split("Access token claims")[0]


def test_decode_for_an_endpoint_is_refused_with_the_audience_to_use(capsys):
    raw = unsigned({"aud": "https://cognitiveservices.azure.com", "exp": int(time.time()) + 600})
    assert main(["decode", "--for", "https://my-aoai.openai.azure.com", raw]) == 1
    assert "did you mean 'https://cognitiveservices.azure.com/.default'" in capsys.readouterr().err


# --- the tutorial's helper -----------------------------------------------------------------------------------
def test_openai_targets_off_azure_is_the_emulators_account_and_its_log(emu):
    targets = openai_targets()
    assert targets.ready and targets.endpoint == emu.openai_url and targets.deployment == "gpt-4o-mini"
    assert targets.account_id == emu.openai.resource_id and targets.v1_url == emu.openai_url + "/openai/v1/"
    assert str(targets).startswith(f"Azure OpenAI: the emulator's account {emu.openai.name} at https://127.0.0.1:")
    assert targets.token_requests() == 0
    client = azure_client(emu, mi.bearer_token_provider())
    for _ in range(3):
        client.chat.completions.create(model=targets.deployment, messages=HELLO)
    assert targets.token_requests() == 1 and targets.token_requests("https://vault.azure.net") == 0
    options = targets.client_options()
    assert sorted(options) == ["http_client", "max_retries"] and options["max_retries"] == 0
    openai = pytest.importorskip("openai")
    assert isinstance(targets.client_options(asynchronous=True)["http_client"], openai.DefaultAsyncHttpxClient)
    assert isinstance(options["http_client"], openai.DefaultHttpxClient)


def test_openai_targets_on_azure_is_yours_and_adds_nothing(clean_connection, monkeypatch):
    conn = mi.connect("http://127.0.0.1:9")  # as on a VM: nothing is asked for here
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env-aoai.openai.azure.com")
    targets = openai_targets(deployment="gpt-4o", connection=conn)
    assert (targets.endpoint, targets.deployment, targets.account_id) == ("https://env-aoai.openai.azure.com", "gpt-4o", None)
    assert targets.client_options() == {} and targets.token_requests() is None
    assert openai_targets("https://mine.openai.azure.com", connection=conn).endpoint == "https://mine.openai.azure.com"
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
    assert not openai_targets(connection=conn).ready


def test_without_the_openai_package_the_note_says_how_to_install_it(emu, monkeypatch):
    import mi_notebook.tutorial as tutorial

    monkeypatch.setattr(tutorial, "_openai_installed", lambda: False)
    targets = openai_targets()
    assert not targets.ready and targets.endpoint == emu.openai_url
    assert 'the openai package is not installed: pip install -e ".[openai]"' in str(targets)


def test_notebook_11_without_the_openai_package_explains_and_carries_on(tmp_path):
    """A kernel where ``import openai`` fails: every cell runs, none errs, and the first says what to install."""
    sys.path.insert(0, str(ROOT / "tests"))
    from real_vm_view import GUARD_DIR, execute

    shadow = tmp_path / "shadow" / "openai"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("No module named \'openai\' (hidden by the test)")\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MI_NOTEBOOK_") and "proxy" not in k.lower()}
    env.pop("MPLBACKEND", None)
    env.update(MI_NOTEBOOK_MODE="emulator", MI_NOTEBOOK_LOOPBACK_GUARD="1",
               MI_NOTEBOOK_GUARD_LOG=str(tmp_path / "guard.log"),
               PYTHONPATH=os.pathsep.join([str(shadow.parent), str(GUARD_DIR), str(ROOT)]))
    notebook = ROOT / "notebooks" / "11-azure-openai.ipynb"
    result = execute(notebook, env, tmp_path)
    assert result["errors"] == [], result["errors"]
    cells = json.loads((tmp_path / notebook.name).read_text(encoding="utf-8"))["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    assert 'the openai package is not installed: pip install -e ".[openai]"' in text
    assert "Skipped: Azure OpenAI:" in text and "cognitiveservices  https://cognitiveservices.azure.com/.default" in text
    assert not (tmp_path / "guard.log").exists() or not (tmp_path / "guard.log").read_text().strip()
