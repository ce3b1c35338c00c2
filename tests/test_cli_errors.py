"""CLI errors that say what happened and what to do, in CLI terms: each case's message and exit code."""

from __future__ import annotations

import re

import pytest
from test_cli import virtual_time  # noqa: F401 - the fixture: clients sleep on a virtual clock

from mi_notebook.cli import main

pytestmark = pytest.mark.usefixtures("clean_connection")

UNKNOWN_GUID = "11111111-2222-3333-4444-555555555555"
PYTHON_ADVICE = re.compile(r"mi\.connect\(|Identity\.user\(|request_token\(|identity='|mi_notebook\.")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


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
