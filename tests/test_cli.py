"""The token, decode and doctor commands through mi_notebook.cli.main, plus one real subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import VirtualClock, logged, run_cli

from mi_notebook.cli import main
from mi_notebook.sources.imds import ImdsClient

pytestmark = pytest.mark.usefixtures("clean_connection")

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
UNKNOWN_GUID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def virtual_time(monkeypatch):
    """Clients the commands build sleep on a virtual clock (retries take no real time)."""
    clock = VirtualClock()
    original = ImdsClient.__init__
    monkeypatch.setattr(ImdsClient, "__init__", lambda self, *a, **kw: original(self, *a, **{**kw, "clock": clock}))
    return clock


run = run_cli


# --- token ------------------------------------------------------------------------------------------------
def test_token_is_redacted_by_default(transport_emu, capsys):
    code, out, err = run(capsys, "token", "arm", "--imds-url", transport_emu.imds_url)
    assert code == 0
    assert "Token for https://management.azure.com/ (system-assigned)" in out
    assert "<redacted" in out and not JWT.search(out + err)
    assert re.search(r"fingerprint\s+sha256:[0-9a-f]{8}", out)


def test_token_json_is_shaped_like_az_and_shows_the_token_only_when_asked(transport_emu, capsys):
    code, out, _ = run(capsys, "token", "vault", "--json", "--imds-url", transport_emu.imds_url)
    assert code == 0
    doc = json.loads(out)
    for key in ("accessToken", "expiresOn", "expires_on", "resource", "tokenType", "identity", "fingerprint"):
        assert key in doc
    assert doc["resource"] == "https://vault.azure.net" and doc["tokenType"] == "Bearer"
    assert not JWT.search(doc["accessToken"]) and doc["identity"]["kind"] == "system-assigned"
    assert doc["identity"]["label"] == "system-assigned" and doc["identity"]["name"] == "vm-notebook"
    assert doc["problem"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", doc["expiresOn"])

    user = transport_emu.vm.user_identities[0]
    code, out, _ = run(capsys, "token", "vault", "--json", "--show-token", "--client-id", user.client_id,
                       "--imds-url", transport_emu.imds_url)
    doc = json.loads(out)
    claims = transport_emu.verify(doc["accessToken"])
    assert claims["appid"] == user.client_id and doc["expires_on"] == claims["exp"]
    assert doc["fingerprint"].startswith("sha256:")


def test_token_honours_the_environment(transport_emu, capsys, monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_IMDS_URL", transport_emu.imds_url)
    code, out, _ = run(capsys, "token", "storage")
    assert code == 0 and transport_emu.imds_url in out
    assert len(logged(transport_emu, 1)) == 1


def test_token_in_emulator_mode_says_so(capsys):
    code, out, err = run(capsys, "token", "--mode", "emulator")
    assert code == 0 and "Using the embedded emulator" in err and "(vm, emulator)" in out


def test_progress_while_retrying(transport_emu, capsys, virtual_time):
    transport_emu.inject(503, "token", count=2)
    code, out, err = run(capsys, "token", "arm", "--imds-url", transport_emu.imds_url)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("IMDS attempt")]
    assert len(lines) == 2
    assert re.fullmatch(r"IMDS attempt 1 of 5: HTTP 503 \w+; next in \d+\.\d s", lines[0])
    assert lines[1].startswith("IMDS attempt 2 of 5: HTTP 503")
    assert "503, 503, 200" in out
    assert len(virtual_time.slept) == 2


@pytest.mark.parametrize(
    ("argv", "inject", "expected"),
    [
        (["--client-id", UNKNOWN_GUID], None, "IdentityNotFoundError"),
        (["https://unknown.example.com/"], None, "InvalidResourceError"),
        ([], (500, {"count": None}), "ServerError"),
        ([], ("html", {"count": None}), "UnexpectedResponseError"),
        (["--client-id", "not-a-guid"], None, "invalid input"),
        (["not-an-alias"], None, "invalid input"),
    ],
)
def test_token_errors_are_readable_and_exit_1(transport_emu, capsys, virtual_time, argv, inject, expected):
    if inject:
        transport_emu.inject(inject[0], "token", **inject[1])
    code, out, err = run(capsys, "token", *argv, "--imds-url", transport_emu.imds_url)
    assert code == 1 and out == ""
    message = err[err.index("mi-notebook: "):]  # after any retry progress lines
    assert expected in message and "Traceback" not in err
    if "invalid input" not in expected:
        assert "What to do:" in err
    if "invalid input" in expected:
        assert transport_emu.requests.filter(endpoint="token") == []


def test_token_unreachable_endpoint(capsys, virtual_time):
    """A loopback URL given explicitly that refuses: nothing listens there, so two attempts, not five over 48 s."""
    from helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "token", "--imds-url", url)
    assert code == 1 and "EndpointUnreachableError" in err and "refused" in err
    lines = [line for line in err.splitlines() if line.startswith("IMDS attempt")]
    assert len(lines) == 2 and all(len(line) < 80 for line in lines)
    assert re.fullmatch(r"IMDS attempt 1 of 5: connection refused; next in \d+\.\d s", lines[0])
    assert lines[-1] == "IMDS attempt 2 of 5: connection refused; giving up"
    assert len(virtual_time.slept) == 1  # one wait (virtual), then it stops
    assert f"Nothing listens at {url}" in err and f"{url} is the URL --imds-url gave" in err
    assert "Azure VM" not in err and "mi.connect" not in err
    assert "HTTPConnectionPool" not in err and "..." not in err


def test_token_output_raw_prints_only_the_token(transport_emu, capsys):
    code, out, err = run(capsys, "token", "arm", "-o", "raw", "--imds-url", transport_emu.imds_url)
    assert code == 0 and out.count("\n") == 1 and JWT.fullmatch(out.strip())
    assert transport_emu.verify(out.strip())["aud"] == "https://management.azure.com/"
    assert not JWT.search(err)


def test_token_output_tsv_is_one_redacted_line(transport_emu, capsys):
    code, out, _ = run(capsys, "token", "vault", "--output", "tsv", "--imds-url", transport_emu.imds_url)
    fields = out.rstrip("\n").split("\t")
    assert code == 0 and out.count("\n") == 1 and not JWT.search(out)
    assert fields[0].startswith("<redacted") and "https://vault.azure.net" in fields
    code, out, _ = run(capsys, "token", "vault", "-o", "tsv", "--show-token", "--imds-url", transport_emu.imds_url)
    assert JWT.fullmatch(out.split("\t")[0])


@pytest.mark.parametrize(("alias", "suggestion"), [("keyvault", "'vault'"), ("storageaccount", "'storage'"),
                                                   ("grpah", "'graph'")])
def test_unknown_alias_gets_a_suggestion_before_any_request(transport_emu, capsys, alias, suggestion):
    code, out, err = run(capsys, "token", alias, "--imds-url", transport_emu.imds_url)
    assert code == 1 and out == "" and f"did you mean {suggestion}?" in err
    assert transport_emu.requests.filter(endpoint="token") == []


def test_a_delegated_scope_is_refused_locally(transport_emu, capsys):
    code, _, err = run(capsys, "token", "https://graph.microsoft.com/User.Read", "--imds-url", transport_emu.imds_url)
    assert code == 1 and "managed identities" in err and "'https://graph.microsoft.com/.default'" in err
    assert "AADSTS" not in err and transport_emu.requests.filter(endpoint="token") == []


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and re.search(r"0\s+success", out) and re.search(r"2\s+bad usage", out)
    with pytest.raises(SystemExit) as info:  # argparse's own usage error
        main(["token", "--output", "yaml"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


# --- decode -----------------------------------------------------------------------------------------------
def test_decode_argument_and_stdin(transport_emu, capsys, monkeypatch):
    from mi_notebook.sources.imds import ImdsClient as Client

    with Client(url=transport_emu.imds_url) as client:
        raw = client.request_token("arm").reveal()
    code, out, _ = run(capsys, "decode", raw)
    assert code == 0 and "https://management.azure.com/" in out and raw not in out
    assert "signature NOT verified" in out

    monkeypatch.setattr(sys, "stdin", io.StringIO(raw + "\n"))
    code, out, _ = run(capsys, "decode", "-", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["payload"]["aud"] == "https://management.azure.com/" and raw not in out


def test_decode_shows_meanings_and_pipes_from_token_raw(transport_emu, capsys, monkeypatch):
    run(capsys, "token", "arm", "-o", "raw", "--imds-url", transport_emu.imds_url)
    code, raw, _ = run(capsys, "token", "arm", "-o", "raw", "--imds-url", transport_emu.imds_url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(raw))
    code, out, _ = run(capsys, "decode")
    assert code == 0 and raw.strip() not in out
    assert re.search(r"  aud\s+https://management.azure.com/\n\s+audience: the resource the token is for", out)
    assert re.search(r"  xms_mirid .*\n\s+managed identity resource id", out)
    assert re.search(r"  alg\s+RS256\n\s+signature algorithm", out)


def test_decode_verify_with_the_emulators_keys(transport_emu, capsys):
    code, raw, _ = run(capsys, "token", "arm", "-o", "raw", "--imds-url", transport_emu.imds_url)
    code, out, _ = run(capsys, "decode", raw.strip(), "--verify", "--imds-url", transport_emu.imds_url)
    assert code == 0 and "(signature verified)" in out and "RS256 signature verified with key" in out
    code, out, _ = run(capsys, "decode", raw.strip(), "--jwks", transport_emu.jwks_url, "--json")
    assert code == 0 and json.loads(out)["verified"] is True
    assert json.loads(out)["meanings"]["oid"].startswith("object id")


def test_decode_verify_fails_against_other_keys(transport_emu, capsys):
    from mi_notebook.emulator import Emulator

    code, raw, _ = run(capsys, "token", "arm", "-o", "raw", "--imds-url", transport_emu.imds_url)
    with Emulator(arm=False) as other:
        code, out, err = run(capsys, "decode", raw.strip(), "--verify", "--imds-url", other.imds_url)
    assert code == 1 and out == "" and "TokenVerificationError: No key with kid" in err


@pytest.mark.parametrize("bad", ["not-a-token", "a.b", "eyJhbGciOiJSUzI1NiJ9.!!!.sig"])
def test_decode_bad_input(capsys, bad):
    code, out, err = run(capsys, "decode", bad)
    assert code == 1 and out == "" and "TokenDecodeError" in err


def test_decode_empty_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "decode")
    assert code == 1 and "no token given" in err


# --- doctor -----------------------------------------------------------------------------------------------
def test_doctor_reports_endpoint_identities_and_clock(transport_emu, capsys, monkeypatch):
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    user = transport_emu.vm.user_identities[0]
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url,
                       "--client-id", user.client_id, "--client-id", UNKNOWN_GUID)
    assert code == 1  # a named identity failed
    assert f"given: {transport_emu.imds_url}" in out
    assert "none set" in out
    assert re.search(r"OK\s+system-assigned", out)
    assert re.search(rf"OK\s+user-assigned \(client_id={user.client_id}\)", out)
    assert re.search(rf"FAIL user-assigned \(client_id={UNKNOWN_GUID}\): IdentityNotFoundError, HTTP 400", out)
    assert re.search(r"skew estimate .*: [+-]\d+ s: fine", out)
    assert not JWT.search(out)


def test_doctor_in_emulator_mode_lists_the_identities_through_arm(capsys):
    code, out, _ = run(capsys, "doctor", "--mode", "emulator")
    assert code == 0 and "Using the embedded emulator" in out
    assert re.search(r"user   id-notebook-1: client id [0-9a-f-]{36}, principal id", out)
    assert re.search(r"OK\s+user-assigned \(client_id=[0-9a-f-]{36}\) 'id-notebook-2': .*expires in 23 h 59 min", out)
    assert " min, sha256" not in out.replace("59 min, sha256", "")  # human durations, never "1439 min"


def test_doctor_names_the_missing_role_on_403_and_carries_on(transport_emu, capsys, monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_ARM_URL", transport_emu.arm_url)
    monkeypatch.setenv("MI_NOTEBOOK_ARM_CA_BUNDLE", transport_emu.ca_bundle)
    transport_emu.vm.role_assignments.clear()
    user = transport_emu.vm.user_identities[0]
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url, "--client-id", user.client_id)
    assert code == 0
    assert "ARM said 403 (AuthorizationFailed)" in out and "Reader" in out and "Carrying on" in out
    assert re.search(r"OK\s+system-assigned", out) and re.search(rf"OK\s+user-assigned \(client_id={user.client_id}\)", out)


def test_doctor_network_checks_each_target(transport_emu, capsys):
    from helpers import free_port

    closed = f"https://127.0.0.1:{free_port()}/"
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url, "--network",
                       "--arm-url", transport_emu.arm_url, "--entra-url", closed, "--ca-bundle", transport_emu.ca_bundle)
    assert code == 1
    assert re.search(rf"ARM {re.escape(transport_emu.arm_url)}: reachable \(HTTP \d+ in \d+ ms\)", out)
    assert f"Entra ID {closed}: NOT reachable: connection refused" in out
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url, "--network",
                       "--arm-url", transport_emu.arm_url, "--entra-url", transport_emu.arm_url,
                       "--ca-bundle", transport_emu.ca_bundle)
    assert code == 0 and "NOT reachable" not in out


@pytest.mark.parametrize(("no_proxy", "verdict"), [("", "does NOT cover"), ("localhost,169.254.0.0/16", "covers"),
                                                   ("169.254.169.254", "covers"), ("*", "covers")])
def test_doctor_proxy_report(transport_emu, capsys, monkeypatch, no_proxy, verdict):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:s3cret@127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.delenv("no_proxy", raising=False)
    code, out, _ = run(capsys, "doctor", "--imds-url", transport_emu.imds_url)
    assert code == 0
    assert "HTTPS_PROXY=http://***@127.0.0.1:3128" in out and "s3cret" not in out
    assert f"{verdict} 169.254.169.254" in out


def test_doctor_exit_1_when_nothing_answers(capsys):
    from helpers import free_port

    code, out, _ = run(capsys, "doctor", "--imds-url", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "FAIL system-assigned: EndpointUnreachableError, no answer" in out


# --- one real process ---------------------------------------------------------------------------------------
def test_real_subprocess_token_arm():
    exe = shutil.which("mi-notebook")
    argv = [exe] if exe else [sys.executable, "-m", "mi_notebook"]
    env = dict(os.environ, MI_NOTEBOOK_MODE="emulator")
    env.pop("MI_NOTEBOOK_IMDS_URL", None)
    proc = subprocess.run([*argv, "token", "arm"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Token for https://management.azure.com/ (system-assigned)" in proc.stdout
    assert "Using the embedded emulator" in proc.stderr
    assert not JWT.search(proc.stdout + proc.stderr) and "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["agent", "--help"], ["emulator", "--help"], ["token", "arm"]],
                         ids=" ".join)
def test_the_command_runs_without_docstrings(argv):
    """``python -OO`` strips docstrings: nothing the command does may need one."""
    env = dict(os.environ, MI_NOTEBOOK_MODE="emulator")
    env.pop("MI_NOTEBOOK_IMDS_URL", None)
    proc = subprocess.run([sys.executable, "-OO", "-m", "mi_notebook", *argv], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "usage: mi-notebook" in proc.stdout or "Token for https://management.azure.com/" in proc.stdout


def test_doctor_on_an_azure_ml_host_names_it_and_hides_the_secret(capsys, monkeypatch):
    from mi_notebook.emulator import Emulator

    with Emulator(profile="azureml", throttle=False) as emu:
        monkeypatch.delenv("MI_NOTEBOOK_MODE", raising=False)
        for name, value in emu.environment.items():
            monkeypatch.setenv(name, value)
        code, out, err = run(capsys, "doctor", "--resource", "storage")
        secret = emu.environment["MSI_SECRET"]
    assert code == 0, err
    assert "Using Azure ML compute at " in out and "no network probe was needed" in out
    assert secret not in out + err
    assert "OK   system-assigned" in out and "DefaultAzureCredential" not in out  # the chain is for --verbose
    with Emulator(profile="azureml", throttle=False) as emu:
        for name, value in emu.environment.items():
            monkeypatch.setenv(name, value)
        code, out, err = run(capsys, "doctor", "--resource", "storage", "--verbose")
        secret = emu.environment["MSI_SECRET"]
    assert code == 0, err
    assert "decides azureml: Azure ML compute: " in out and "MSI_SECRET=(value hidden)" in out
    assert secret not in out + err
    assert "cloudshell: needs MSI_ENDPOINT without MSI_SECRET (but MSI_SECRET is set)" in out
    assert "DefaultAzureCredential (azure-identity 1.27)" in out and "ManagedIdentityCredential: Azure ML" in out


def test_token_output_says_when_the_emulator_issued_it(capsys):
    code, out, err = run(capsys, "token", "arm", "--mode", "emulator")
    assert code == 0 and "issued by    the mi-notebook emulator (not Azure)" in out
    assert err.startswith("NOT an Azure token: issued by the mi-notebook emulator.")
    code, out, err = run(capsys, "token", "vault", "--mode", "emulator", "--json")
    assert code == 0 and json.loads(out)["emulated"] is True and json.loads(out)["host"] == "vm"
