"""The emulated Azure OpenAI on the wire: the checks in their order, the captured bodies, options and faults.

Raw HTTP (requests) against the emulator, tokens straight from its IMDS: what the unmodified SDK
makes of these answers is tests/test_openai_sdk.py.
"""

from __future__ import annotations

import base64
import json
import struct

import pytest
import requests

from mi_notebook.emulator import MARKER_HEADER, Emulator, EmulatorOptions, OpenAIOptions

CHAT = "/openai/deployments/gpt-4o-mini/chat/completions"
EMBED = "/openai/deployments/text-embedding-3-small/embeddings"
V1_CHAT = "/openai/v1/chat/completions"
GA = {"api-version": "2024-10-21"}
HELLO = {"messages": [{"role": "user", "content": "hello"}]}
WRONG_AUDIENCE = {"statusCode": 401, "message": "Unauthorized. Access token is missing, invalid, audience is "
                  "incorrect (https://cognitiveservices.azure.com), or have expired."}
NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}


def token(emu: Emulator, resource: str = "https://cognitiveservices.azure.com", client_id: str | None = None) -> str:
    params = {"api-version": "2018-02-01", "resource": resource}
    if client_id:
        params["client_id"] = client_id
    r = requests.get(emu.token_url, headers={"Metadata": "true"}, params=params)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def post(emu: Emulator, path: str, body: object = None, *, params: dict[str, str] | None = None,
         bearer: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    sent = dict(headers or {})
    if bearer is not None:
        sent["Authorization"] = "Bearer " + bearer
    return requests.post(emu.openai_url + path, params=GA if params is None else params, headers=sent,
                         json=HELLO if body is None else body, verify=emu.openai_ca_bundle, timeout=30)


@pytest.fixture
def emu():
    with Emulator(throttle=False, seed=5, arm=False, keyvault=False) as running:
        yield running


def test_a_chat_answer_is_shaped_as_the_sdk_parses_it(emu):
    r = post(emu, CHAT, {"messages": [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": [{"type": "text", "text": "parts"}]}], "n": 2},
             bearer=token(emu))
    body = r.json()
    assert r.status_code == 200 and r.headers[MARKER_HEADER] == "1"
    assert {"id", "object", "created", "model", "choices", "usage"} <= set(body) and body["object"] == "chat.completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    first, second = (c["message"]["content"] for c in body["choices"])
    assert first != second and all('to "parts"' in t and "no model ran" in t for t in (first, second))
    assert body["usage"]["completion_tokens"] == len(first.split()) + len(second.split())
    assert r.headers["apim-request-id"] and r.headers["x-ms-region"] == emu.vm.location
    assert "x-ratelimit-remaining-requests" not in r.headers  # no limit configured: no limit reported


def test_max_tokens_cuts_the_answer_with_finish_reason_length(emu):
    body = post(emu, CHAT, {**HELLO, "max_tokens": 4}, bearer=token(emu)).json()
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 4


def test_the_v1_path_takes_the_deployment_from_model_and_ignores_api_version(emu):
    tok = token(emu)
    for params in ({}, {"api-version": "preview"}):
        r = post(emu, V1_CHAT, {**HELLO, "model": "gpt-4o-mini"}, params=params, bearer=tok)
        assert r.status_code == 200 and r.json()["model"] == "gpt-4o-mini-2024-07-18"
    missing = post(emu, V1_CHAT, HELLO, params={}, bearer=tok)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"


def test_embeddings_in_float_and_base64(emu):
    tok = token(emu)
    floats = post(emu, EMBED, {"input": ["one", "two"]}, bearer=tok).json()
    packed = post(emu, EMBED, {"input": "one", "encoding_format": "base64"}, bearer=tok).json()
    assert [d["index"] for d in floats["data"]] == [0, 1] and floats["object"] == "list"
    decoded = struct.unpack("<1536f", base64.b64decode(packed["data"][0]["embedding"]))
    assert max(abs(a - b) for a, b in zip(decoded, floats["data"][0]["embedding"], strict=True)) < 1e-6
    tokens = post(emu, EMBED, {"input": [[1, 2, 3]], "dimensions": 16}, bearer=tok).json()
    assert len(tokens["data"][0]["embedding"]) == 16
    too_big = post(emu, EMBED, {"input": "x", "dimensions": 5000}, bearer=tok)
    assert too_big.status_code == 400 and too_big.json()["error"]["param"] == "dimensions"


def test_streaming_is_server_sent_events_ending_in_done(emu):
    r = post(emu, CHAT, {**HELLO, "stream": True}, bearer=token(emu))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in r.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("resource", ["https://management.azure.com/", "https://storage.azure.com/",
                                      "https://ai.azure.com"])
def test_a_token_for_another_audience_gets_the_captured_401(emu, resource):
    tok = token(emu, resource)
    r = post(emu, CHAT, bearer=tok)
    assert r.status_code == 401 and r.json() == WRONG_AUDIENCE and tok not in r.text
    record = emu.requests.filter(service="openai")[-1]
    assert record.extra["auth"] == "wrong-audience" and record.extra["aud"] == resource and "oid" not in record.extra


def test_both_spellings_of_the_audience_are_accepted(emu):
    for resource in ("https://cognitiveservices.azure.com", "https://cognitiveservices.azure.com/"):
        assert post(emu, CHAT, bearer=token(emu, resource)).status_code == 200


def test_no_token_a_bad_one_and_an_expired_one_all_get_the_same_401():
    now = [1_800_000_000.0]
    with Emulator(throttle=False, arm=False, keyvault=False, clock=lambda: now[0], token_lifetime=3600) as emu:
        tok = token(emu)
        now[0] += 7200
        for bearer, cause in ((None, "missing"), ("not.a.jwt", "invalid"), (tok, "expired")):
            r = post(emu, CHAT, bearer=bearer)
            assert (r.status_code, r.json()) == (401, WRONG_AUDIENCE)
            assert emu.requests.filter(service="openai")[-1].extra["auth"] == cause


def test_an_api_key_gets_the_captured_invalid_key_401(emu):
    r = post(emu, CHAT, headers={"api-key": "0123456789abcdef"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    assert r.json()["error"]["message"].startswith("Access denied due to invalid subscription key or wrong API endpoint.")


def test_the_foundry_audience_works_where_it_is_configured():
    with Emulator(throttle=False, arm=False, keyvault=False,
                  openai={"audiences": ["https://cognitiveservices.azure.com", "https://ai.azure.com"]}) as emu:
        assert post(emu, CHAT, bearer=token(emu, "https://ai.azure.com/")).status_code == 200
    with Emulator(throttle=False, arm=False, keyvault=False,
                  openai={"audiences": ["https://cognitiveservices.azure.us"]}) as gov:
        r = post(gov, CHAT, bearer=token(gov))
        assert r.status_code == 401 and "(https://cognitiveservices.azure.us)" in r.json()["message"]


def test_routes_and_api_versions_answer_resource_not_found(emu):
    tok = token(emu)
    assert post(emu, CHAT, params={}, bearer=tok).json() == NOT_FOUND  # the classic path needs an api-version
    assert post(emu, CHAT, params={"api-version": "v7"}, bearer=tok).json() == NOT_FOUND
    assert post(emu, CHAT, params={"api-version": "2025-04-01-preview"}, bearer=tok).status_code == 200
    assert post(emu, "/openai/deployments/gpt-4o-mini/images", bearer=tok).json() == NOT_FOUND
    get = requests.get(emu.openai_url + CHAT, params=GA, headers={"Authorization": "Bearer " + tok},
                       verify=emu.openai_ca_bundle)
    assert get.status_code == 404


def test_unknown_deployment_and_the_wrong_kind_of_model(emu):
    tok = token(emu)
    missing = post(emu, "/openai/deployments/nope/chat/completions", bearer=tok)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"
    wrong = post(emu, "/openai/deployments/text-embedding-3-small/chat/completions", bearer=tok)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "OperationNotSupported"
    bad = post(emu, CHAT, {"messages": []}, bearer=tok)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("role", "allowed"), [("Cognitive Services OpenAI User", True),
                                               ("Cognitive Services OpenAI Contributor", True),
                                               ("Cognitive Services User", True),
                                               ("Owner", False), ("Cognitive Services Contributor", False)])
def test_only_roles_with_the_data_action_may_call(emu, role, allowed):
    user = emu.vm.user_identities[1]  # no role at all to begin with
    emu.vm.add_role_assignment({"principal_id": user.object_id, "role": role, "scope": emu.openai.resource_id})
    r = post(emu, CHAT, bearer=token(emu, client_id=user.client_id))
    if allowed:
        assert r.status_code == 200
    else:
        assert r.status_code == 401 and r.json()["error"]["code"] == "PermissionDenied"


def test_the_default_roles_and_explicit_role_assignments():
    with Emulator(throttle=False, arm=False, keyvault=False) as emu:
        holders = {a.principal_id for a in emu.vm.role_assignments if a.role == "Cognitive Services OpenAI User"}
        assert holders == {emu.vm.system_identity.object_id}
    with Emulator(throttle=False, arm=False, keyvault=False,
                  role_assignments=[{"principal_id": "system", "role": "Reader", "scope": "subscription"}]) as emu:
        r = post(emu, CHAT, bearer=token(emu))
        assert r.status_code == 401 and r.json()["error"]["code"] == "PermissionDenied"


def test_requests_per_minute_is_enforced_by_the_emulator_clock():
    now = [1_800_000_000.0]
    with Emulator(throttle=False, arm=False, keyvault=False, clock=lambda: now[0],
                  openai={"requests_per_minute": 2}) as emu:
        tok = token(emu)
        first, second = post(emu, CHAT, bearer=tok), post(emu, CHAT, bearer=tok)
        assert [first.headers["x-ratelimit-remaining-requests"], second.headers["x-ratelimit-remaining-requests"]] == ["1", "0"]
        assert int(second.headers["x-ratelimit-remaining-tokens"]) < int(first.headers["x-ratelimit-remaining-tokens"])
        now[0] += 20
        third = post(emu, CHAT, bearer=tok)
        assert third.status_code == 429 and third.headers["retry-after"] == "40"
        assert third.json() == {"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 40 seconds."}}
        assert post(emu, EMBED, {"input": "x"}, bearer=tok).status_code == 200  # the limit is per deployment
        now[0] += 40
        assert post(emu, CHAT, bearer=tok).status_code == 200


@pytest.mark.parametrize("fault", [500, 503])
def test_injected_faults_reach_the_openai_endpoint(emu, fault):
    emu.inject(fault, endpoint="openai", retry_after=3 if fault == 503 else None)
    tok = token(emu)  # the fault is the OpenAI side's only: IMDS still answers
    r = post(emu, CHAT, bearer=tok)
    assert r.status_code == fault and r.json()["error"]["code"] == str(fault)
    assert emu.requests.filter(service="openai")[-1].fault == str(fault)
    assert post(emu, CHAT, bearer=tok).status_code == 200


def test_a_truncated_answer_is_cut(emu):
    tok = token(emu)
    emu.inject("truncated", endpoint="openai")
    r = post(emu, CHAT, bearer=tok)
    with pytest.raises(ValueError):
        json.loads(r.text)


def test_options_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match="deployment name"):
        OpenAIOptions(deployments={"bad name!": "gpt-4o"})
    with pytest.raises(ValueError, match="unknown openai option"):
        EmulatorOptions.from_keywords(openai={"rpm": 5})
    assert EmulatorOptions.from_keywords(openai=False).openai is None
    assert EmulatorOptions.from_config({"openai": {"deployments": {"chat": "gpt-4o"}}}).openai.deployments == {
        "chat": "gpt-4o"}
    with Emulator(arm=False, keyvault=False, openai=False) as emu:
        assert emu.openai_url is None and emu.openai is None


def test_the_server_starts_on_first_use_and_shares_the_arm_ca():
    with Emulator(throttle=False, keyvault=False) as emu:
        assert emu.openai_server.url is None  # nothing started until asked
        assert emu.openai_url and emu.openai_ca_bundle == emu.ca_bundle
    assert emu.openai_server.url is None and emu.openai_url is None
