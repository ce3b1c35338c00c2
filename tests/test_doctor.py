"""mi-notebook doctor leads with its verdict: OK or N problems each with its fix, then the endpoint in use
said once, the host matrix and DefaultAzureCredential's chain only with --verbose."""

from __future__ import annotations

import re

import pytest
from helpers import PYTHON_ADVICE, UNKNOWN_GUID
from helpers import run_cli as run

from mi_notebook.commands.doctor import clock_problem
from mi_notebook.tokens import AccessToken

pytestmark = pytest.mark.usefixtures("clean_connection")


def test_ok_first_then_the_endpoint_once_in_emulator_mode(capsys):
    code, out, _ = run(capsys, "doctor", "--mode", "emulator")
    lines = out.splitlines()
    assert code == 0
    assert re.fullmatch(r"OK: 3 identities answered at http://127\.0\.0\.1:\d+ \(the emulator, NOT Azure\)", lines[0])
    assert lines[1] == "Endpoint" and lines[2].startswith("  emulator: http://127.0.0.1:")
    assert "because --mode emulator was given" in lines[3]
    # one story about the endpoint: no "Azure VM: ... IMDS at 169.254.169.254", no host matrix, no Python fix
    assert "169.254.169.254" not in out.split("Proxy variables")[0]
    assert "Azure VM" not in out and "the other hosts" not in out and "DefaultAzureCredential" not in out
    assert not PYTHON_ADVICE.search(out)
    assert len(lines) <= 25


def test_explicit_url_mode_says_one_thing_about_the_endpoint(transport_emu, capsys):
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url)
    assert code == 0 and out.startswith(f"OK: 1 identity answered at {transport_emu.imds_url}\n")
    endpoint = out.split("Endpoint\n")[1].split("Identities")[0]
    assert f"given: {transport_emu.imds_url}" in endpoint and "because --imds-url gave it" in endpoint
    assert "Azure VM" not in out and "emulator serves" not in out and not PYTHON_ADVICE.search(out)


def test_verbose_adds_host_detection_and_the_credential_chain_without_contradiction(transport_emu, capsys):
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url, "--verbose")
    assert code == 0
    section = out.split("Host detection")[1]
    assert section.startswith(" (not used: the endpoint was given explicitly; this is what auto mode would decide)")
    assert "the other hosts:" in section and "DefaultAzureCredential (azure-identity 1.27)" in section
    assert "Azure VM: " not in section  # this machine is not one: the reason does not open with "Azure VM:"
    assert not PYTHON_ADVICE.search(out)


def test_problems_come_first_each_with_its_fix(transport_emu, capsys):
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url, "--client-id", UNKNOWN_GUID)
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == "1 problem"
    assert lines[1].startswith(f"  1. user-assigned (client_id={UNKNOWN_GUID}): IdentityNotFoundError: ")
    assert lines[2].startswith("     fix: Check the id (") and "`mi-notebook doctor` lists the VM's identities" in lines[2]
    assert re.search(rf"FAIL user-assigned \(client_id={UNKNOWN_GUID}\): IdentityNotFoundError, HTTP 400", out)
    assert not PYTHON_ADVICE.search(out)


def test_two_problems_are_counted(transport_emu, capsys):
    from helpers import free_port

    closed = f"https://127.0.0.1:{free_port()}/"
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url, "--client-id", UNKNOWN_GUID,
                       "--network", "--arm-url", closed, "--entra-url", closed, "--ca-bundle", transport_emu.ca_bundle)
    assert code == 1 and out.splitlines()[0] == "3 problems"
    assert f"  3. Entra ID {closed} is NOT reachable: connection refused" in out


def test_an_unreachable_explicit_url_names_the_url_given(capsys):
    from helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, out, _ = run(capsys, "doctor", "--imds-url", url)
    assert code == 1 and out.splitlines()[0] == "1 problem"
    assert f"{url} is the URL --imds-url gave" in out and "Azure VM" not in out
    assert "FAIL system-assigned: EndpointUnreachableError, no answer" in out


@pytest.mark.parametrize(("expires_in", "fetched", "verdict"), [(3600, 1000, None), (3600, 1100, None),
                                                                  (3600, 1600, "600 s ahead of"),
                                                                  (3600, 700, "300 s behind")])
def test_clock_skew_is_a_problem_with_a_fix(expires_in, fetched, verdict):
    token = AccessToken("t", resource="api://x", expires_on=1000 + 3600, expires_in=expires_in, fetched_at=fetched)
    found = clock_problem(token, fetched)
    if verdict is None:
        assert found is None
    else:
        assert found is not None and verdict in found.message and "timedatectl" in (found.fix or "")


def test_a_token_not_yet_valid_here_is_a_clock_problem():
    token = AccessToken("t", resource="api://x", expires_on=10_000, not_before=5_000, fetched_at=1_000)
    found = clock_problem(token, 1_000)
    assert found is not None and "behind" in found.message
