"""Identity truth on the command line: every token labelled by its claims, the Azure ML trap a failure.

The emulator plays an Azure ML compute instance (SSO on): with no identity named it answers with the
signed-in user's own token; DEFAULT_IDENTITY_CLIENT_ID names the compute's (system-assigned) identity.
"""

from __future__ import annotations

import json
import re
import warnings

import pytest
from helpers import run_cli

pytestmark = pytest.mark.usefixtures("clean_connection")

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
UPN = "ada.lovelace@contoso.onmicrosoft.com"
WHERE = "Azure ML Studio -> Compute -> the instance -> Managed identity"


@pytest.fixture
def host(monkeypatch, request):
    """An emulated host's variables in this process's environment (``request.param``: the profile)."""
    from mi_notebook.emulator import Emulator

    profile = getattr(request, "param", "azureml")
    with Emulator(profile=profile, throttle=False, arm=False) as emu:
        for name in ("MI_NOTEBOOK_MODE", "MI_NOTEBOOK_IMDS_URL", "DEFAULT_IDENTITY_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)
        for name, value in emu.environment.items():
            monkeypatch.setenv(name, value)
        yield emu


@pytest.fixture
def no_identity_named(host, monkeypatch):
    monkeypatch.delenv("DEFAULT_IDENTITY_CLIENT_ID")
    return host


def run(capsys, *argv):
    code, out, err = run_cli(capsys, *argv)
    assert not JWT.search(out + err)
    return code, out, err


def assert_cli_terms(err):
    """The fix is in flags and variables, and nothing on stderr is a raw Python warning."""
    assert "--client-id <guid>" in err and "DEFAULT_IDENTITY_CLIENT_ID=<guid>" in err and WHERE in err
    assert "request_token(" not in err and "identity=" not in err  # no Python advice
    assert not re.search(r"\.py:\d+", err) and "UserTokenWarning" not in err  # no file path, no category


def test_token_on_azure_ml_without_an_identity_is_the_users_own_and_fails(no_identity_named, capsys):
    code, out, err = run(capsys, "token", "arm")
    assert code == 1
    assert out.startswith(f"Token for https://management.azure.com/: YOUR OWN user token ({UPN})")
    assert "system-assigned" not in out
    assert f"mi-notebook: problem: YOUR OWN user token ({UPN}), not the compute's managed identity" in err
    assert "no identity was named" in err
    assert_cli_terms(err)


def test_token_json_carries_the_identity_and_the_problem(no_identity_named, capsys):
    code, out, err = run(capsys, "token", "arm", "-o", "json")
    doc = json.loads(out)
    assert code == 1
    assert doc["identity"]["kind"] == "user" and doc["identity"]["name"] == UPN
    assert doc["identity"]["label"] == f"YOUR OWN user token ({UPN})"
    assert doc["problem"]["severity"] == "problem" and "--client-id <guid>" in doc["problem"]["fix"]
    assert WHERE in doc["problem"]["fix"]


def test_token_raw_does_not_hand_a_script_the_persons_token(no_identity_named, capsys):
    code, out, err = run(capsys, "token", "arm", "-o", "raw")
    assert code == 1 and out == ""
    assert "the token was not printed" in err
    assert_cli_terms(err)


def test_with_the_compute_identity_named_token_and_doctor_agree(host, capsys):
    system = host.vm.system_identity
    assert host.environment["DEFAULT_IDENTITY_CLIENT_ID"] == system.client_id
    code, out, err = run(capsys, "token", "arm")
    assert code == 0, err
    assert out.startswith("Token for https://management.azure.com/ (system-assigned)")
    assert f"identity     system-assigned identity of '{host.vm.name}'" in out
    assert "user-assigned" not in out and "problem" not in err
    code, out, err = run(capsys, "token", "arm", "--json")
    doc = json.loads(out)
    assert doc["identity"]["kind"] == "system-assigned" and doc["identity"]["clientId"] == system.client_id
    code, out, err = run(capsys, "doctor")
    assert code == 0, out + err
    assert out.splitlines()[0].startswith("OK: 1 identity answered at ")
    assert re.search(r"OK\s+system-assigned: client_id " + system.client_id, out)
    assert "user-assigned" not in out.split("Identities (token for")[1]


def test_doctor_on_azure_ml_without_an_identity_fails_with_the_fix(no_identity_named, capsys):
    code, out, err = run(capsys, "doctor")
    assert code == 1
    assert out.splitlines()[0] == "1 problem"
    assert out.splitlines()[1].startswith(f"  1. YOUR OWN user token ({UPN}), not the compute's managed identity")
    assert "OK   system-assigned" not in out
    assert re.search(rf"FAIL YOUR OWN user token \({re.escape(UPN)}\)", out)
    assert_cli_terms(out)
    assert "mi-notebook doctor --client-id <guid>" in out
    assert err == ""  # no raw Python warning


@pytest.mark.parametrize("host", ["cloudshell"], indirect=True)
def test_cloud_shell_says_whose_token_it_is_as_a_warning(host, capsys):
    code, out, err = run(capsys, "token", "arm")
    assert code == 0
    assert f"YOUR OWN user token ({UPN})" in out
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and "Cloud Shell hands out only YOUR OWN user token" in lines[0]


def test_a_user_assigned_identity_is_labelled_by_its_claims(transport_emu, capsys):
    user = transport_emu.vm.user_identities[0]
    code, out, _ = run(capsys, "token", "arm", "--object-id", user.object_id, "--imds-url", transport_emu.imds_url)
    assert code == 0
    # asked by object id; the claims name the client id and the identity
    assert out.startswith(f"Token for https://management.azure.com/: user-assigned (client_id={user.client_id})")
    assert f"user-assigned identity '{user.name}' (client_id={user.client_id})" in out


def test_a_warning_during_a_command_is_one_line_without_a_path(transport_emu, capsys, monkeypatch):
    from mi_notebook.commands import token as token_command

    real = token_command.progress_printer

    def warning_printer(**kw):
        warnings.warn("mi-notebook: something to know:\n  on two lines", UserWarning, stacklevel=2)
        return real(**kw)

    monkeypatch.setattr(token_command, "progress_printer", warning_printer)
    code, out, err = run(capsys, "token", "arm", "--imds-url", transport_emu.imds_url)
    assert code == 0
    assert err.splitlines()[0] == "warning: something to know: on two lines"
    assert "UserWarning" not in err and ".py" not in err
    shown = warnings.showwarning
    assert shown is not None and getattr(shown, "__name__", "") != "show"  # the hook is gone after the run
