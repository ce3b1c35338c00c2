"""connect() on every host: detection without the network, never the emulator on Azure, and the
emulator saying what it is on every surface."""

from __future__ import annotations

import os
import tempfile
import warnings

import pytest
from helpers import VirtualClock, free_port

import mi_notebook as mi
from mi_notebook import connection, errors
from mi_notebook.emulator import Emulator
from mi_notebook.sdk_credential import EmulatorTokenWarning

pytestmark = pytest.mark.usefixtures("clean_connection")

AZURE_TAG = "7783-7084-3265-9085-8269-3286-77"
HOST_VARIABLES = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                  "MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID", "AZUREPS_HOST_ENVIRONMENT",
                  "MI_NOTEBOOK_MODE", "MI_NOTEBOOK_IMDS_URL")


@pytest.fixture
def no_probe(monkeypatch):
    """Fail the test if auto mode sends the IMDS probe."""
    def probe(*args, **kwargs):
        raise AssertionError("auto mode probed the network although a host's variables were set")

    monkeypatch.setattr(connection, "probe_imds", probe)


@pytest.fixture
def no_emulator():
    def factory():
        raise AssertionError("the emulator was started")

    return factory


@pytest.fixture
def azure_vm_dmi(tmp_path):
    (tmp_path / "chassis_asset_tag").write_text(AZURE_TAG + "\n")
    (tmp_path / "sys_vendor").write_text("Microsoft Corporation\n")
    return str(tmp_path)


def profile_emulator(profile: str) -> Emulator:
    options = {"arc_key_dir": tempfile.mkdtemp(prefix="arc-keys-")} if profile == "arc" else {}
    return Emulator(profile=profile, throttle=False, **options)


def only_host_variables(monkeypatch, variables: dict[str, str]) -> None:
    for name in HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("profile", ["azureml", "appservice", "arc", "cloudshell"])
def test_auto_mode_picks_the_host_from_its_variables_without_any_probe(profile, monkeypatch, no_probe,
                                                                       no_emulator):
    with profile_emulator(profile) as emu:
        only_host_variables(monkeypatch, emu.environment)
        conn = mi.connect(sysfs_root="/nonexistent", himds_path="/nonexistent", arc_key_dir=emu.arc_key_dir,
                          emulator_factory=no_emulator)
        assert conn.chosen == "detected" and conn.host == profile and conn.emulator is None
        assert "no network probe was needed" in conn.reason
        assert all(value not in conn.reason for name, value in emu.environment.items()
                   if name in ("MSI_SECRET", "IDENTITY_HEADER"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Cloud Shell's token is the user's, and it says so
            token = mi.get_token("storage")
        assert token.resource == "https://storage.azure.com/" and token.emulated and token.host == profile
        again = mi.get_token("storage")
        assert again.from_cache and again.fingerprint == token.fingerprint
        for tok in (token, again):  # the emulator says so on every surface, cached or not
            assert "emulated=True" in repr(tok) and "emulator" in str(tok) and "emulator" in tok._repr_html_()
        assert len(emu.requests.filter(endpoint="token")) >= 1


def test_an_azure_vm_whose_imds_does_not_answer_never_gets_the_emulator(azure_vm_dmi, no_emulator):
    silent = f"http://127.0.0.1:{free_port()}"
    conn = mi.connect(environ={}, sysfs_root=azure_vm_dmi, himds_path="/nonexistent", probe_url=silent,
                      probe_timeout=0.3, emulator_factory=no_emulator, clock=VirtualClock())
    assert (conn.host, conn.chosen) == ("vm", "detected") and conn.emulator is None and conn.endpoint == silent
    assert "Azure VM" in conn.reason and "never falls back" in conn.reason
    with pytest.raises(errors.EndpointUnreachableError) as info:
        mi.get_token("arm")
    assert len(info.value.timeline) == 5  # retried per the documented policy, in virtual time


def test_off_azure_auto_mode_falls_back_to_the_emulator_and_says_so_once(capsys, monkeypatch):
    monkeypatch.setattr(connection, "_announced", connection.threading.Event())
    silent = f"http://127.0.0.1:{free_port()}"
    conn = mi.connect(environ={}, sysfs_root="/nonexistent", himds_path="/nonexistent", probe_url=silent,
                      probe_timeout=0.3)
    assert conn.chosen == "emulator" and "does not look like an Azure host" in conn.reason
    mi.connect(environ={}, sysfs_root="/nonexistent", himds_path="/nonexistent", probe_url=silent,
               probe_timeout=0.3)
    err = capsys.readouterr().err
    assert err.count("NOT Azure: every token now comes from the embedded emulator") == 1


def test_host_variables_pointing_nowhere_fail_clearly_and_start_no_emulator(no_probe, no_emulator):
    env = {"MSI_ENDPOINT": f"http://127.0.0.1:{free_port()}/MSI/auth", "MSI_SECRET": "s3cr3t"}
    conn = mi.connect(environ=env, sysfs_root="/nonexistent", himds_path="/nonexistent",
                      emulator_factory=no_emulator, clock=VirtualClock())
    assert (conn.host, conn.chosen) == ("azureml", "detected")
    with pytest.raises(errors.EndpointUnreachableError) as info:
        mi.get_token("storage")
    assert "s3cr3t" not in str(info.value) and len(info.value.timeline) > 1


def test_a_forced_source_without_its_variables_names_the_variable():
    with pytest.raises(errors.HostConfigurationError, match="MSI_ENDPOINT"):
        mi.connect(host="azureml", environ={})


def test_service_fabric_is_named_and_refused_clearly():
    env = {"IDENTITY_ENDPOINT": "https://127.0.0.1:2377/metadata/identity/oauth2/token",
           "IDENTITY_HEADER": "h", "IDENTITY_SERVER_THUMBPRINT": "ab" * 20}
    conn = mi.connect(environ=env, sysfs_root="/nonexistent", himds_path="/nonexistent")
    assert conn.host == "servicefabric" and "Service Fabric" in conn.reason
    with pytest.raises(errors.UnsupportedHostError):
        mi.get_token("arm")


@pytest.mark.parametrize("profile", ["azureml", "appservice", "cloudshell"])
def test_the_emulator_plays_a_host_with_that_hosts_protocol(profile):
    conn = mi.connect(mode="emulator", profile=profile)
    assert conn.chosen == "emulator" and conn.emulated and conn.host == profile and conn.emulator.profile == profile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = mi.get_token("vault")
    assert token.emulated and token.host == profile and conn.emulator.requests.filter(endpoint="token")


def test_bad_combinations_are_value_errors_before_anything_starts(no_emulator):
    with pytest.raises(ValueError, match="host must be one of"):
        mi.connect(host="aks")
    with pytest.raises(ValueError, match="not imds_url and host"):
        mi.connect("http://127.0.0.1:1", host="vm")
    with pytest.raises(ValueError, match="profile="):
        mi.connect(profile="azureml", environ={}, emulator_factory=no_emulator)


def test_the_sdk_credential_warns_once_about_emulator_tokens(monkeypatch):
    from mi_notebook import sdk_credential

    monkeypatch.setattr(sdk_credential, "_warned", sdk_credential.threading.Event())
    mi.connect(mode="emulator")
    cred = mi.credential()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cred.get_token("https://management.azure.com/.default")
        cred.get_token("https://vault.azure.net/.default")
    emulator_warnings = [w for w in caught if issubclass(w.category, EmulatorTokenWarning)]
    assert len(emulator_warnings) == 1 and emulator_warnings[0].filename == __file__


def test_environ_replaces_the_process_environment_for_the_decision(monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_MODE", "emulator")
    conn = mi.connect(environ={"MI_NOTEBOOK_IMDS_URL": "http://127.0.0.1:5"})
    assert conn.chosen == "given" and conn.endpoint == "http://127.0.0.1:5"
    assert os.environ["MI_NOTEBOOK_MODE"] == "emulator"


def test_an_emulator_token_is_never_sent_to_azures_arm():
    from mi_notebook.arm_client import ArmClient

    conn = mi.connect(mode="emulator")
    client = ArmClient("https://management.azure.com", connection=conn)
    with pytest.raises(ValueError, match="refusing to send a token issued by the mi-notebook emulator"):
        client.vm()  # the loopback guard would also fail the test had anything gone to Azure


def test_the_old_words_still_work_for_one_release_with_a_deprecation_warning():
    env = {"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth", "MSI_SECRET": "s3cr3t"}
    with pytest.warns(DeprecationWarning, match="connect\\(host=...\\)"):
        conn = mi.connect(source="azureml", environ=env)
    assert conn.host == "azureml"
    with pytest.warns(DeprecationWarning, match="Connection.kind"):
        assert conn.kind == "azureml"
    with pytest.warns(DeprecationWarning, match="use .host"):
        assert conn.client.kind == "azureml"
    with pytest.warns(DeprecationWarning):
        assert mi.connect(source="imds").kind == "imds"
    with pytest.warns(DeprecationWarning):
        assert mi.connect("http://127.0.0.1:5").kind == "explicit"
    emulated = mi.connect(mode="emulator")
    with pytest.warns(DeprecationWarning):
        assert emulated.kind == "emulator"
    token = mi.get_token("arm")
    with pytest.warns(DeprecationWarning, match="AccessToken.source"):
        assert token.source == "emulator"
    old = {**token.to_dict(include_token=True), "source": "azureml"}
    del old["host"], old["emulated"]
    assert mi.AccessToken.from_dict(old).host == "azureml" and not mi.AccessToken.from_dict(old).emulated
    assert mi.AccessToken.from_dict({**old, "source": "emulator"}).emulated
    with pytest.warns(DeprecationWarning, match="source="):
        assert mi.ImdsClient(emulated.endpoint, source="imds").host == "vm"


def test_a_connection_built_the_old_way_still_works_for_one_release():
    from mi_notebook.connection import Connection

    with pytest.warns(DeprecationWarning, match="second argument is the host"):
        conn = Connection("http://127.0.0.1:9", "explicit", mi.ImdsClient("http://127.0.0.1:9"))
    assert (conn.host, conn.chosen) == ("vm", "given")
    with pytest.raises(ValueError, match="host must be one of"):
        Connection("http://127.0.0.1:9", "mainframe", mi.ImdsClient("http://127.0.0.1:9"))
