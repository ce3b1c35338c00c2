"""The emulator's options object: the keywords map onto it, bad values fail before any server starts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mi_notebook.emulator import (
    ArmOptions,
    Emulator,
    EmulatorOptions,
    EndpointOptions,
    ProfileOptions,
    VaultOptions,
    VirtualMachine,
)


def test_the_keywords_and_the_options_object_build_the_same_emulator():
    by_keywords = Emulator(seed=5, user_assigned=["app"], throttle=False, profile="azureml", sso="off",
                           arm={"page_size": 2}, keyvault={"secrets": {"k": "v"}}, latency=0.25)
    by_options = Emulator(options=EmulatorOptions(
        vm={"seed": 5, "user_assigned": ["app"]}, endpoint=EndpointOptions(throttle=False, latency=0.25),
        profile=ProfileOptions("azureml", sso="off"), arm=ArmOptions(page_size=2),
        keyvault=VaultOptions(secrets={"k": "v"})))
    assert by_keywords.options == by_options.options
    for emu in (by_keywords, by_options):
        assert (emu.profile, emu.throttle, emu.imds.latency) == ("azureml", False, 0.25)
        assert [i.name for i in emu.vm.identities] == ["vm-notebook", "app"]
        assert emu.vault is not None and emu.vault.names() == ["k"]
        assert emu.host_service is not None and emu.host_service.ctx.options == {"sso": False}
    assert by_keywords.vm.tenant_id == by_options.vm.tenant_id


def test_options_and_keywords_together_are_refused():
    with pytest.raises(TypeError, match="options= or keywords, not both"):
        Emulator(options=EmulatorOptions(), throttle=False)


def test_the_options_are_frozen_and_never_show_a_secret():
    opts = EmulatorOptions(profile=ProfileOptions("appservice", secret="hush-0123456789"),
                           keyvault=VaultOptions(secrets={"db": "pa55word-987"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.port = 1  # type: ignore[misc]
    shown = repr(opts)
    assert "hush-0123456789" not in shown and "pa55word-987" not in shown
    assert Emulator(options=opts).secret == "hush-0123456789"
    assert dataclasses.replace(opts, port=0).profile.secret == "hush-0123456789"


def test_arm_false_and_keyvault_false_mean_none():
    opts = EmulatorOptions.from_keywords(arm=False, keyvault=False)
    assert opts.arm is None and opts.keyvault is None
    with Emulator(options=opts) as emu:
        assert emu.arm_url is None and emu.ca_bundle is None and emu.vault_url is None
    assert EmulatorOptions.from_keywords(arm=True).arm == ArmOptions()


def test_explicit_keywords_win_over_the_config_file(tmp_path):
    path = tmp_path / "emu.json"
    path.write_text(json.dumps({"seed": 9, "throttle": False, "arm": {"page_size": 4}, "profile": "cloudshell",
                                "faults": [{"fault": 503, "endpoint": "token"}]}))
    opts = EmulatorOptions.from_keywords(config=path, throttle=True, faults=[{"fault": "drop"}])
    assert opts.vm == {"seed": 9} and opts.endpoint.throttle is True and opts.arm == ArmOptions(page_size=4)
    assert opts.profile.name == "cloudshell" and [f["fault"] for f in opts.faults] == [503, "drop"]
    assert EmulatorOptions.from_keywords(config=path, arm=False).arm is None
    emu = Emulator(config=str(path))
    assert emu.config["seed"] == 9 and [f.kind for f in emu.faults.pending()] == [503]


def test_a_ready_made_vm_is_used_as_is():
    vm = VirtualMachine.build(seed=3, user_assigned=0)
    emu = Emulator(options=EmulatorOptions(vm=vm, profile=ProfileOptions("cloudshell")))
    assert emu.vm is vm and len(vm.role_assignments) == 1  # no default assignment added for the user or vault


@pytest.mark.parametrize(("build", "message"), [
    (lambda: EndpointOptions(latency=-1), "latency must be between 0 and 60"),
    (lambda: ProfileOptions("aks"), "unknown profile 'aks'"),
    (lambda: ProfileOptions("vm", arc_key_dir="/tmp/x"), "key_dir only applies to the arc profile"),
    (lambda: EmulatorOptions(faults=({"fault": 999},)), "999"),
    (lambda: EmulatorOptions(vm={"colour": "blue"}), "unknown VM config keys"),
    (lambda: EmulatorOptions(port=70000), "port must be 0..65535"),
    (lambda: EmulatorOptions.from_keywords(arm={"pages": 2}), "unknown arm options"),
    (lambda: EmulatorOptions.from_keywords(keyvault={"secret": {}}), "unknown keyvault option"),
    (lambda: Emulator(latency=61), "latency must be between 0 and 60"),
])
def test_bad_values_fail_when_the_options_are_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_the_public_names_stay_importable_from_the_package():
    import mi_notebook.emulator as emulator

    for name in ("Emulator", "Azurite", "AzuriteUnavailable", "Fault", "KnownResource", "MARKER_HEADER", "PROFILES",
                 "RequestRecord", "RoleAssignment", "SignedInUser", "VirtualMachine", "VmIdentity", "EmulatorOptions"):
        assert name in emulator.__all__ and getattr(emulator, name) is not None
    from mi_notebook.emulator.arm import ArmOptions as FromArm
    from mi_notebook.emulator.keyvault import VaultServer  # noqa: F401

    assert FromArm is ArmOptions
