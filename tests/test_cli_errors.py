"""CLI errors that say what happened and what to do, in CLI terms: each case's message and exit code."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from helpers import PYTHON_ADVICE, UNKNOWN_GUID
from helpers import run_cli as run
from test_cli import virtual_time  # noqa: F401 - the fixture: clients sleep on a virtual clock

from mi_notebook.cli import main

pytestmark = pytest.mark.usefixtures("clean_connection")


# --- a typo'd App ID URI ---------------------------------------------------------------------------------------
def test_a_typoed_app_id_uri_gets_did_you_mean_and_clean_service_text(transport_emu, capsys):
    code, out, err = run(capsys, "token", "https://vault.azure.com", "--imds-url", transport_emu.imds_url)
    assert code == 1 and out == ""
    assert err.startswith("mi-notebook: InvalidResourceError: Entra ID does not know the resource "
                          "'https://vault.azure.com'")
    assert "What to do: did you mean https://vault.azure.net (alias 'vault')?" in err
    answered = next(line for line in err.splitlines() if line.startswith("The service answered:"))
    assert "AADSTS500011" in answered and re.search(r"\(Trace ID: [0-9a-f-]+; Correlation ID: [0-9a-f-]+; Timestamp", answered)
    assert "\\r" not in err and "\\n" not in err and "\r" not in err  # neither escaped nor raw line breaks
    assert not PYTHON_ADVICE.search(err)
    assert len(transport_emu.requests.filter(endpoint="token")) == 1  # only a hint: Entra ID was asked


def test_an_unknown_uri_far_from_any_known_one_lists_the_aliases(transport_emu, capsys):
    code, _, err = run(capsys, "token", "https://unknown.example.com/", "--imds-url", transport_emu.imds_url)
    assert code == 1 and "did you mean" not in err
    assert "What to do: Use the App ID URI exactly as the service (or your app registration) spells it, or an " \
           "alias: arm, vault, storage" in err


def test_a_host_without_its_scheme_is_refused_before_any_request_with_the_uri_meant(transport_emu, capsys):
    code, out, err = run(capsys, "token", "management.azure.com", "--imds-url", transport_emu.imds_url)
    assert code == 1 and out == ""
    assert "did you mean 'https://management.azure.com/'?" in err and "`mi-notebook token --help`" in err
    assert not PYTHON_ADVICE.search(err) and transport_emu.requests.filter(endpoint="token") == []


def test_token_help_lists_every_alias_the_hints_send_people_to(capsys):
    from mi_notebook.resources import WELL_KNOWN_RESOURCES

    with pytest.raises(SystemExit):
        main(["token", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(re.search(rf"\b{alias}\b", text) for alias in WELL_KNOWN_RESOURCES)


# --- an unknown client id on Azure ML ----------------------------------------------------------------------------
def test_an_unknown_client_id_on_azure_ml_names_the_identity_and_where_the_ids_are(capsys, monkeypatch):
    from mi_notebook.emulator import Emulator

    with Emulator(profile="azureml", throttle=False, arm=False) as emu:
        monkeypatch.delenv("MI_NOTEBOOK_MODE", raising=False)
        monkeypatch.delenv("MI_NOTEBOOK_IMDS_URL", raising=False)
        for name, value in emu.environment.items():
            monkeypatch.setenv(name, value)
        code, out, err = run(capsys, "token", "--client-id", UNKNOWN_GUID)
    assert code == 1 and out == ""
    assert f"The compute refused user-assigned (client_id={UNKNOWN_GUID})" in err
    assert "Azure ML Studio -> Compute -> the instance -> Managed identity" in err
    assert "DEFAULT_IDENTITY_CLIENT_ID" in err and "Fix the request" not in err
    assert not PYTHON_ADVICE.search(err)


# --- an explicit URL that refuses ----------------------------------------------------------------------------------
def test_a_refused_url_from_the_environment_is_named_with_its_variable(capsys, monkeypatch, virtual_time):  # noqa: F811
    from helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MI_NOTEBOOK_IMDS_URL", url)
    code, _, err = run(capsys, "token")
    assert code == 1 and f"Nothing listens at {url}" in err and f"{url} is the URL MI_NOTEBOOK_IMDS_URL gave" in err
    assert len(virtual_time.slept) == 1 and "this machine is an Azure VM" not in err


def test_a_url_that_answers_503_is_still_retried_in_full(transport_emu, capsys, virtual_time):  # noqa: F811
    transport_emu.inject(503, "token", count=None)
    code, _, err = run(capsys, "token", "--imds-url", transport_emu.imds_url)
    assert code == 1 and "ServerError" in err
    assert len([line for line in err.splitlines() if line.startswith("IMDS attempt")]) == 5


# --- decode: the emulator's tokens, and keys that cannot be fetched ------------------------------------------------
def _emulator_token(capsys, *argv):
    code, raw, _ = run(capsys, "token", "arm", "-o", "raw", *argv)
    assert code == 0
    return raw.strip()


def test_the_client_reads_the_mark_the_emulator_writes():
    from mi_notebook.claims import EMULATOR_CLAIM
    from mi_notebook.emulator.keys import EMULATOR_CLAIM as WRITTEN

    assert EMULATOR_CLAIM == WRITTEN


def test_decode_says_emulator_on_every_output(transport_emu, capsys):
    raw = _emulator_token(capsys, "--imds-url", transport_emu.imds_url)
    code, out, _ = run(capsys, "decode", raw)
    assert code == 0 and out.startswith("NOT an Azure token: the mi-notebook emulator issued it (its claim "
                                        "mi_notebook_emulator says")
    code, out, _ = run(capsys, "decode", raw, "--json")
    assert code == 0 and json.loads(out)["issuedBy"] == "the mi-notebook emulator"
    code, out, _ = run(capsys, "decode", raw, "--verify", "--imds-url", transport_emu.imds_url)
    assert code == 0 and out.startswith("NOT an Azure token") and "(signature verified)" in out


def test_decode_of_an_azure_shaped_token_says_nothing_of_the_emulator(capsys):
    import jwt
    from token_samples import make_token, rsa_key

    code, out, _ = run(capsys, "decode", make_token(rsa_key(0)))
    assert code == 0 and "emulator" not in out.lower()
    code, out, _ = run(capsys, "decode", make_token(rsa_key(0)), "--json")
    assert json.loads(out)["issuedBy"] is None
    assert jwt.decode(make_token(rsa_key(0)), options={"verify_signature": False}).get("mi_notebook_emulator") is None


def test_verify_of_an_emulator_token_against_entra_says_why_it_never_can(capsys, monkeypatch):
    import mi_notebook.jwks as jwks_module

    monkeypatch.setattr(jwks_module, "exchange", lambda *a, **kw: pytest.fail("nothing may be fetched"))
    raw = _emulator_token(capsys, "--mode", "emulator")  # MI_NOTEBOOK_MODE=emulator: its keys die with it
    code, out, err = run(capsys, "decode", "--verify", raw)
    assert code == 1 and out == ""
    assert "this token was issued by the mi-notebook emulator, not Azure" in err
    assert "keys that live only as long as that emulator" in err and "`mi-notebook emulator`" in err
    assert "audience" not in err and "TokenVerificationError" not in err


def test_verify_against_another_emulators_keys_says_keys_live_with_their_emulator(transport_emu, capsys):
    from mi_notebook.emulator import Emulator

    raw = _emulator_token(capsys, "--imds-url", transport_emu.imds_url)
    with Emulator(arm=False) as other:
        code, out, err = run(capsys, "decode", raw, "--verify", "--imds-url", other.imds_url)
    assert code == 1 and out == "" and "TokenVerificationError: No key with kid" in err
    assert "another emulator run signed it" in err and "live only as long as that emulator" in err


def test_verify_offline_says_the_keys_could_not_be_fetched(capsys, monkeypatch):
    """Entra ID cannot be reached (no DNS here): a whole-word reason, no audience hint, exit 1."""
    from token_samples import TID, make_token, rsa_key

    import mi_notebook.jwks as jwks_module
    from mi_notebook.http import Answer

    cut = ("HTTPSConnectionPool(host='login.microsoftonline.com', port=443): Max retries exceeded with url: "
           f"/{TID}/discovery/v2.0/keys (Caused by NameResolutionError(\"<urllib3.connection.HTTPSConnection object "
           "at 0x7f>: Failed to resolve 'login.microsoftonline.com' ([Errno -3] Temporary failure in name resolution)\"))")
    seen = []

    def offline(request, **kw):
        seen.append(request.url)
        return Answer("unreachable", exception=ConnectionError(cut))

    monkeypatch.setattr(jwks_module, "exchange", offline)
    code, out, err = run(capsys, "decode", "--verify", make_token(rsa_key(0)))
    assert seen == [f"https://login.microsoftonline.com/{TID}/discovery/v2.0/keys"]
    assert code == 1 and out == ""
    assert err.startswith(f"mi-notebook: could not reach login.microsoftonline.com to fetch the signing keys "
                          f"({seen[0]}): the host name does not resolve (no DNS: is this machine offline?)")
    assert "`mi-notebook doctor --network`" in err
    assert "audience" not in err and "HTTPSConnectionPool" not in err and "…" not in err


def test_verify_with_keys_at_a_closed_port(capsys):
    from helpers import free_port
    from token_samples import make_token, rsa_key

    url = f"http://127.0.0.1:{free_port()}/keys"
    code, _, err = run(capsys, "decode", "--verify", "--jwks", url, make_token(rsa_key(0)))
    assert code == 1 and f"could not reach 127.0.0.1 to fetch the signing keys ({url}): the connection was refused" in err


# --- a reader that goes away: `| head` --------------------------------------------------------------------------
class _ClosedPipe:
    """A stdout whose reader went away: every write and flush raises BrokenPipeError."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["decode", "--json"], ["decode"], ["token", "--mode", "emulator"],
                                  ["token", "--mode", "emulator", "-o", "json"], ["doctor", "--mode", "emulator"],
                                  ["--help"], ["token", "--help"]])
def test_a_closed_pipe_ends_every_command_quietly(transport_emu, capsys, monkeypatch, argv):
    from token_samples import make_token, rsa_key

    if argv[0] == "decode":
        argv = [*argv, make_token(rsa_key(0))]
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 141
    assert "BrokenPipeError" not in err and "unexpected" not in err and "Traceback" not in err


def test_decode_json_piped_into_a_reader_that_is_gone_exits_quietly(transport_emu, capsys):
    """A real pipe whose read end is closed before the command writes (as `| head` leaves it)."""
    import os
    import shutil
    import subprocess

    raw = _emulator_token(capsys, "--imds-url", transport_emu.imds_url)
    exe = shutil.which("mi-notebook")
    argv = [exe] if exe else [sys.executable, "-m", "mi_notebook"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = subprocess.run([*argv, "decode", "--json", raw], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


# --- the emulator's exports ------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["vm", "azureml", "appservice", "arc", "cloudshell"])
def test_every_emulator_profile_prints_the_exports_a_second_shell_needs(capsys, tmp_path, profile):
    import shlex
    import threading

    from mi_notebook.emulator.command import main as emulator_main

    stop = threading.Event()
    stop.set()  # serve, print where, stop at once
    extra = ["--arc-key-dir", str(tmp_path / "tokens")] if profile == "arc" else []
    assert emulator_main(["--profile", profile, "--quiet", *extra], stop=stop) == 0
    out = capsys.readouterr().out.splitlines()
    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                   for line in out if line.startswith("export "))
    imds = next(line for line in out if line.startswith("IMDS "))[5:]
    arm = next((line[4:] for line in out if line.startswith("ARM ")), None)
    if profile == "vm":
        assert exports["MI_NOTEBOOK_IMDS_URL"] == imds
    else:
        assert "MI_NOTEBOOK_IMDS_URL" not in exports  # it would win over the host's own variables
        assert any(name in exports for name in ("MSI_ENDPOINT", "IDENTITY_ENDPOINT"))
    if arm is not None:
        assert exports["MI_NOTEBOOK_ARM_URL"] == arm and os.path.isabs(exports["MI_NOTEBOOK_ARM_CA_BUNDLE"])
