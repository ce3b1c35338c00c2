"""The emulated world (VM, identities, resources, role assignments, config) and the signing keys."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest

from mi_notebook.emulator import Emulator
from mi_notebook.emulator.keys import SigningKeys
from mi_notebook.emulator.world import DEFAULT_RESOURCES, VirtualMachine, stable_guid


def is_guid(text: str) -> bool:
    return str(uuid.UUID(text)) == text


def test_default_vm_has_one_system_and_two_user_assigned_identities():
    vm = VirtualMachine.build()
    assert [i.kind for i in vm.identities] == ["system", "user", "user"]
    system = vm.system_identity
    assert system.resource_id == vm.resource_id
    for ident in vm.identities:
        assert is_guid(ident.client_id) and is_guid(ident.object_id) and ident.principal_id == ident.object_id
    for user in vm.user_identities:
        assert user.resource_id == (f"/subscriptions/{vm.subscription_id}/resourcegroups/{vm.resource_group}"
                                    f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{user.name}")
    assert vm.token_lifetime == 86400
    assert is_guid(vm.subscription_id) and is_guid(vm.tenant_id) and is_guid(vm.vm_id)


def test_seed_makes_ids_stable_and_distinct():
    a, b, c = VirtualMachine.build(seed=1), VirtualMachine.build(seed=1), VirtualMachine.build(seed=2)
    assert a.to_dict() == b.to_dict()
    assert a.subscription_id != c.subscription_id and a.identities[0].client_id != c.identities[0].client_id
    ids = [x for i in a.identities for x in (i.client_id, i.object_id)] + [a.subscription_id, a.tenant_id]
    assert len(set(ids)) == len(ids)
    assert stable_guid("x", "y") == stable_guid("x", "y")


def test_default_role_assignments():
    vm = VirtualMachine.build()
    system, user1, user2 = vm.identities
    read = "Microsoft.Compute/virtualMachines/read"
    assert vm.is_authorized(system.object_id, read, vm.resource_id)
    assert vm.is_authorized(system.object_id, "Microsoft.Resources/subscriptions/resourceGroups/read",
                            f"/subscriptions/{vm.subscription_id}/resourceGroups/other")
    assert vm.is_authorized(user1.object_id, read, vm.resource_id)
    assert not vm.is_authorized(user1.object_id, read, f"/subscriptions/{vm.subscription_id}")
    assert not vm.is_authorized(user2.object_id, read, vm.resource_id)
    assert not vm.is_authorized(system.object_id, "Microsoft.Compute/virtualMachines/write", vm.resource_id)
    assert [(a.role, a.scope) for a in vm.assignments_for(system.object_id)] == [
        ("Reader", f"/subscriptions/{vm.subscription_id}")]


def test_resource_matching_like_entra():
    vm = VirtualMachine.build()
    for resource in ("https://management.azure.com/", "https://management.azure.com",
                     "https://management.core.windows.net", "https://management.core.windows.net/",
                     "https://vault.azure.net", "https://vault.azure.net/", "https://storage.azure.com",
                     "https://graph.microsoft.com/", "https://database.windows.net/", "https://cosmos.azure.com",
                     "https://eventhubs.azure.net", "https://servicebus.azure.net", "https://monitor.azure.com",
                     "https://api.loganalytics.io", "499b84ac-1321-427f-aa17-267ca6975798",
                     "797f4846-ba00-4fd7-ba43-dac1f8f63013", "HTTPS://MANAGEMENT.AZURE.COM/"):
        assert vm.match_resource(resource) is not None, resource
    for resource in ("https://management.azure.com//", "https://example.com/", "arm", "", "https://vault.azure.net/x"):
        assert vm.match_resource(resource) is None, resource
    assert vm.match_resource("https://management.core.windows.net").name == "Azure Resource Manager"
    assert len(DEFAULT_RESOURCES) >= 12


def test_build_options_and_validation():
    vm = VirtualMachine.build(system_assigned=False, user_assigned=["a", {"name": "b", "client_id": "c-id"}],
                              token_lifetime=3600, extra_resources=["api://my-app"])
    assert [i.name for i in vm.identities] == ["a", "b"] and vm.identities[1].client_id == "c-id"
    assert vm.match_resource("api://my-app/") is not None
    with pytest.raises(ValueError, match="token_lifetime"):
        VirtualMachine.build(token_lifetime=0)
    with pytest.raises(ValueError, match="duplicate"):
        VirtualMachine.build(user_assigned=["a", "a"])
    with pytest.raises(ValueError, match="user_assigned"):
        VirtualMachine.build(user_assigned=True)


def test_find_identity_rules():
    vm = VirtualMachine.build(system_assigned=False, user_assigned=2)
    with pytest.raises(LookupError, match="Multiple user assigned"):
        vm.find_identity()
    with pytest.raises(LookupError, match="Identity not found"):
        vm.find_identity(object_id="nope")
    with pytest.raises(ValueError):
        vm.find_identity(client_id="a", object_id="b")


def test_role_assignments_from_config_use_names_and_scope_shortcuts():
    vm = VirtualMachine.from_config({
        "user_assigned": ["writer"],
        "role_assignments": [{"principal_id": "writer", "role": "Contributor", "scope": "vm"},
                             {"principal_id": "system", "role": "Reader", "scope": "resource_group"}],
    })
    writer = vm.identity_by_name("writer")
    assert vm.is_authorized(writer.object_id, "Microsoft.Compute/virtualMachines/write", vm.resource_id)
    assert vm.is_authorized(vm.system_identity.object_id, "x/read", vm.resource_group_id + "/providers/a/b/c")
    assert not vm.is_authorized(vm.system_identity.object_id, "x/read", vm.subscription_scope)


def test_config_file_json_and_toml(tmp_path):
    cfg = {"seed": 5, "name": "vm-x", "user_assigned": 1, "token_lifetime": 7200, "throttle": False,
           "faults": [{"fault": 503, "endpoint": "token"}]}
    path = tmp_path / "emu.json"
    path.write_text(json.dumps(cfg))
    emu = Emulator(config=path)
    assert emu.vm.name == "vm-x" and len(emu.vm.identities) == 2 and emu.vm.token_lifetime == 7200
    assert emu.throttle is False and [f.kind for f in emu.faults.pending()] == [503]
    assert Emulator(config=path, token_lifetime=60).vm.token_lifetime == 60  # explicit options win
    toml = tmp_path / "emu.toml"
    toml.write_text('seed = 5\nname = "vm-x"\nthrottle = true\n[[faults]]\nfault = "drop"\n')
    emu2 = Emulator(config=toml)
    assert emu2.vm.subscription_id == emu.vm.subscription_id and emu2.throttle is True
    with pytest.raises(ValueError, match="unknown VM config keys"):
        Emulator(config={"colour": "blue"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Emulator(config=bad)


def test_signing_keys_jwks_and_verify():
    keys = SigningKeys()
    now = 1_800_000_000
    token = keys.issue({"aud": "a", "iss": "i", "nbf": now - 300, "exp": now + 60})
    header = jwt.get_unverified_header(token)
    assert header == {"typ": "JWT", "alg": "RS256", "x5t": keys.x5t, "kid": keys.kid}
    jwk = keys.jwks()["keys"][0]
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig" and jwk["kid"] == keys.kid and jwk["x5c"]
    assert keys.verify(token, audience="a", issuer="i", now=now)["aud"] == "a"
    with pytest.raises(jwt.ExpiredSignatureError):
        keys.verify(token, now=now + 60)
    with pytest.raises(jwt.ImmatureSignatureError):
        keys.verify(token, now=now - 301)
    with pytest.raises(jwt.InvalidAudienceError):
        keys.verify(token, audience="b", now=now)
    with pytest.raises(jwt.InvalidIssuerError):
        keys.verify(token, issuer="other", now=now)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidTokenError):
        keys.verify(tampered, now=now)
    # the public key from the JWKS verifies too (what any third party would do)
    key = jwt.PyJWK.from_dict(jwk).key
    assert jwt.decode(token, key, algorithms=["RS256"], audience="a",
                      options={"verify_exp": False, "verify_nbf": False})["iss"] == "i"


def test_start_up_is_fast():
    started = time.perf_counter()
    with Emulator() as emu:
        elapsed = time.perf_counter() - started
        assert emu.imds_url.startswith("http://127.0.0.1:")
    assert elapsed < 1.0  # target 300 ms; generous here because CI machines vary (bench measures it)
