"""Conformance: public captures and documents of IMDS and ARM, replayed against the emulator.

The cases live in tests/conformance/*.json (see its README): each names its source, the request to
replay and what a client could see in the real answer. This module replays every case on loopback
and compares status, headers, bodies (exactly, or by keys and value types), the token's header and
claim set, and the instance document per api-version. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import Emulator

HERE = Path(__file__).resolve().parent / "conformance"
FILES = sorted(HERE.glob("*.json"))
START = 1_700_000_000.0
VM_OPTIONS = {"seed": 5, "user_assigned": 2, "tags": {"Department": "IT", "ReferenceNumber": "123456"}}


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in FILES:
        data = json.loads(path.read_text(encoding="utf-8"))
        out += [(data["service"], case) for case in data["cases"]]
    return out


CASES = _cases()


def _start(setup: dict[str, Any] | None = None) -> Emulator:
    setup = setup or {}
    arm = {"tls": True, **setup.get("arm", {})}
    return Emulator(clock=VirtualClock(START), throttle=bool(setup.get("throttle", False)),
                    strict_metadata=bool(setup.get("strict_metadata", False)), arm=arm,
                    **{**VM_OPTIONS, **setup.get("vm", {})}).start()


@pytest.fixture(scope="module")
def shared():
    emu = _start()
    yield emu
    emu.stop()


def placeholders(emu: Emulator) -> dict[str, str]:
    vm = emu.vm
    user = vm.user_identities[0]
    names = {
        "tenant_id": vm.tenant_id, "subscription_id": vm.subscription_id, "resource_group": vm.resource_group,
        "vm_name": vm.name, "vm_id": vm.vm_id, "user_client_id": user.client_id,
        "user_resource_id": user.resource_id, "user_resource_id_lower_rg": user.mirid,
    }
    if vm.system_identity is not None:
        names.update(system_client_id=vm.system_identity.client_id, oid=vm.system_identity.object_id)
    return names


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def dig(doc: Any, dotted: str) -> Any:
    for part in [p for p in dotted.split(".") if p]:
        doc = doc[part]
    return doc


def has(doc: Any, dotted: str) -> bool:
    try:
        dig(doc, dotted)
    except (KeyError, TypeError):
        return False
    return True


def shape(value: Any) -> Any:
    """Keys and value types, not values: what a parser of the answer depends on."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def primitives(value: Any):
    if isinstance(value, dict):
        for v in value.values():
            yield from primitives(v)
    elif isinstance(value, list):
        for v in value:
            yield from primitives(v)
    else:
        yield value


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    header, payload, _ = token.split(".")
    return part(header), part(payload)


def authorization(emu: Emulator, mode: str) -> str | None:
    """The Authorization header a case asks for (tokens made here never leave the test)."""
    if mode == "none":
        return None
    if mode.startswith("raw:"):
        return mode[4:]
    ident = emu.vm.system_identity
    now = int(emu.clock())
    if mode.startswith("token:"):
        return "Bearer " + emu.issuer.get(ident, mode[6:]).access_token
    if mode == "tampered":  # one of this emulator's ARM tokens with its signature reversed
        head, payload, signature = emu.issuer.get(ident, "https://management.azure.com/").access_token.split(".")
        return f"Bearer {head}.{payload}.{signature[::-1]}"
    arm = "https://management.azure.com/"
    if mode == "expired":
        claims = emu.issuer.claims(ident, arm, iat=now - 90_000, nbf=now - 90_000, exp=now - 3_600)
    elif mode.startswith("issuer:"):
        claims = emu.issuer.claims(ident, arm, iat=now - 300, nbf=now - 300, exp=now + 3_600)
        claims["iss"] = claims["idp"] = mode[7:]
    else:
        raise ValueError(f"unknown auth mode {mode!r}")
    return "Bearer " + emu.keys.issue(claims)


def send(emu: Emulator, service: str, request: dict[str, Any], names: dict[str, str]) -> requests.Response:
    request = fill(request, names)
    params = [tuple(p) for p in request.get("query", [])]
    headers = dict(request.get("headers", {}))
    if service == "arm":
        auth = authorization(emu, request.get("auth", "none"))
        if auth is not None:
            headers["Authorization"] = auth
        return requests.get(emu.arm_url + request["path"], params=params, headers=headers, verify=emu.ca_bundle,
                            timeout=5)
    return requests.get(emu.imds_url + request["path"], params=params, headers=headers, timeout=5)


def check_known_differences(case: dict[str, Any], body: Any, claims: dict[str, Any] | None) -> None:
    """A known difference must still be exactly what the case says, on both sides."""
    shape_source = case["expect"].get("body_shape", {})
    captured_claims = case["expect"].get("jwt", {}).get("claims", {})
    for diff in case.get("known_differences", []):
        where, _, name = diff["field"].partition(".")
        if where == "body":
            assert shape_source[name] == diff["captured"], f"{case['id']}: the capture no longer says {diff}"
            assert body[name] == diff["emulator"], f"{case['id']}: {name} changed: update the case and docs/emulator.md"
        else:
            name = name.removeprefix("claims.")
            assert type(captured_claims[name]).__name__ == {"string": "str"}.get(diff["captured"], diff["captured"])
            assert claims is not None and type(claims[name]).__name__ == diff["emulator"], (
                f"{case['id']}: claim {name} changed: update the case and docs/emulator.md")


def check_jwt(case: dict[str, Any], token: str, names: dict[str, str]) -> dict[str, Any]:
    spec = case["expect"]["jwt"]
    header, claims = jwt_parts(token)
    assert set(header) == set(spec["header"]), f"{case['id']}: JWT header keys"
    for key in ("typ", "alg"):
        assert header[key] == spec["header"][key]
    captured = spec["claims"]
    missing = set(captured) - set(claims)
    assert not missing, f"{case['id']}: claims the live token has and the emulator's lacks: {sorted(missing)}"
    assert set(claims) - set(captured) == set(spec.get("extra_claims", {})), f"{case['id']}: unexplained extra claims"
    skipped = {d["field"].removeprefix("jwt.claims.") for d in case.get("known_differences", [])}
    for name, value in captured.items():
        if name not in skipped:
            assert type(claims[name]) is type(value), f"{case['id']}: claim {name} is {type(claims[name]).__name__}"
    for name, value in fill(spec.get("claim_values", {}), names).items():
        assert claims[name] == value, f"{case['id']}: claim {name}"
    env = {**header, **claims}
    for relation in spec.get("relations", []):
        left, op, right = re.fullmatch(r"(.+?) (==) (.+)", relation).groups()
        assert eval(left, {}, env) == eval(right, {}, env), f"{case['id']}: {relation}"  # noqa: S307 (case data)
    return claims


def check_answer(case: dict[str, Any], response: requests.Response, names: dict[str, str]) -> None:
    expect = fill(case["expect"], names)
    cid = case["id"]
    assert response.status_code == expect["status"], f"{cid}: status"
    for name, value in expect.get("headers", {}).items():
        assert response.headers.get(name) == value, f"{cid}: header {name}"
    for name, pattern in expect.get("header_patterns", {}).items():
        assert re.search(pattern, response.headers.get(name, "")), f"{cid}: header {name}"
    for name in expect.get("absent_headers", []):
        assert name not in response.headers, f"{cid}: header {name} should be absent"
    if "text" in expect:
        assert response.text == expect["text"], f"{cid}: text body"
        return
    body = response.json() if response.content else None
    if "body" in expect:
        assert body == expect["body"], f"{cid}: body"
    if "body_keys" in expect:
        assert sorted(body) == sorted(expect["body_keys"]), f"{cid}: body keys"
    if "body_shape" in expect:
        assert shape(body) == shape(case["expect"]["body_shape"]), f"{cid}: body keys and value types"
    for dotted, value in expect.get("body_values", {}).items():
        assert dig(body, dotted) == value, f"{cid}: {dotted}"
    for dotted, pattern in expect.get("body_patterns", {}).items():
        assert re.search(pattern, dig(body, dotted)), f"{cid}: {dotted} does not match the captured text"
    for dotted, keys in expect.get("body_has_keys", {}).items():
        node = dig(body, dotted)
        assert not set(keys) - set(node), f"{cid}: {dotted or 'the body'} lacks {sorted(set(keys) - set(node))}"
    if expect.get("all_primitives_strings"):
        assert all(isinstance(v, str) for v in primitives(body)), f"{cid}: a primitive that is not a string"
    if "timing" in expect:
        assert int(body["expires_on"]) - int(body["not_before"]) == expect["timing"]["expires_on_minus_not_before"]
    claims = check_jwt(case, body["access_token"], names) if "jwt" in expect else None
    check_known_differences(case, body, claims)


@pytest.mark.parametrize("service,case", CASES, ids=[c["id"] for _, c in CASES])
def test_conformance(service, case, shared):
    own = "setup" in case
    emu = _start(case["setup"]) if own else shared
    try:
        names = placeholders(emu)
        if "per_version" in case:
            for step in case["per_version"]:
                r = send(emu, service, {"path": "/metadata/instance/compute", "query": [["api-version", step["api-version"]]],
                                        "headers": {"Metadata": "true"}}, names)
                assert r.status_code == 200, f"{case['id']}: {step['api-version']}"
                doc = r.json()
                for dotted in step["present"]:
                    assert has(doc, dotted), f"{case['id']}: {step['api-version']} should have {dotted}"
                for dotted in step["absent"]:
                    assert not has(doc, dotted), f"{case['id']}: {step['api-version']} should not have {dotted}"
            return
        for _ in range(case.get("setup", {}).get("repeat_before", 0)):
            send(emu, service, case["request"], names)
        check_answer(case, send(emu, service, case["request"], names), names)
    finally:
        if own:
            emu.stop()


def test_every_case_names_its_source():
    ids = [case["id"] for _, case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert {service for service, _ in CASES} == {"imds", "arm"}
    for _, case in CASES:
        source = case["source"]
        assert source["kind"] in {"captured", "fixture", "documented"}, case["id"]
        assert source["ref"].strip(), case["id"]
        if source["kind"] == "captured":
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source.get("date", "")), f"{case['id']}: a capture needs its date"


def test_the_suite_covers_token_instance_and_arm():
    paths = {case["request"]["path"] for _, case in CASES if "request" in case}
    assert "/metadata/identity/oauth2/token" in paths
    assert any(p.startswith("/metadata/instance") for p in paths) and "/metadata/versions" in paths
    assert any(p.startswith("/subscriptions") for p in paths)
    assert any("per_version" in case for _, case in CASES)
