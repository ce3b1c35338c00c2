"""The tutorials' helpers (mi_notebook/tutorial.py): on Azure they add nothing, off Azure they wire the emulator.

Each helper stands for one piece of emulator wiring the notebooks used to carry in their cells; these
tests check both faces: what the emulator needs really works with the unmodified Azure SDK clients,
and on an Azure-like connection (IMDS with Azure's ARM) nothing is added.
"""

from __future__ import annotations

import io
import time

import pytest

from mi_notebook import tutorial
from mi_notebook.connection import connect, current
from mi_notebook.emulator import Emulator
from mi_notebook.identity import Identity
from mi_notebook.tokens import AccessToken

# a VM's IMDS (in the cloud given: a VM's IMDS would be asked which), Azure's ARM: nothing is sent
AZURE_LIKE = {"mode": "imds", "probe_url": "http://127.0.0.1:9", "cloud": "AzurePublicCloud"}


@pytest.fixture
def conn(clean_connection, monkeypatch):
    """The embedded emulator, and mi.credential()'s once-per-process emulator warning not yet given."""
    from mi_notebook import sdk_credential

    monkeypatch.setattr(sdk_credential, "_warned", sdk_credential.threading.Event())
    return connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False))


def test_connect_or_carry_on_says_why_and_goes_on_on_an_emulator(clean_connection, capsys, monkeypatch):
    with Emulator(system_assigned=False, user_assigned=0, throttle=False) as no_identity:
        monkeypatch.setenv("MI_NOTEBOOK_IMDS_URL", no_identity.imds_url)
        conn = tutorial.connect_or_carry_on()
        said = capsys.readouterr().out
        assert conn.emulated and conn.endpoint != no_identity.imds_url and current() is conn
        assert "az vm identity assign" in said and "continues on a private emulator: " + conn.endpoint in said


def test_arm_sdk_options_reach_the_emulators_arm_with_an_unmodified_sdk_client(conn):
    from azure.mgmt.resource.resources import ResourceManagementClient

    from mi_notebook.sdk_credential import credential

    options = tutorial.arm_sdk_options()
    assert options == {"base_url": conn.emulator.arm_url, "connection_verify": conn.emulator.ca_bundle}
    with pytest.warns(UserWarning, match="emulator"), \
            ResourceManagementClient(credential(), conn.emulator.vm.subscription_id, **options) as client:
        assert client.resource_groups.get(conn.emulator.vm.resource_group).name == conn.emulator.vm.resource_group


def test_arm_sdk_options_add_nothing_on_azure_and_follow_an_arm_given_by_the_environment(clean_connection, monkeypatch):
    assert tutorial.arm_sdk_options(connect(**AZURE_LIKE)) == {}
    monkeypatch.setenv("MI_NOTEBOOK_ARM_URL", "https://127.0.0.1:8443")
    monkeypatch.setenv("MI_NOTEBOOK_ARM_CA_BUNDLE", __file__)  # any existing file stands for a CA bundle
    assert tutorial.arm_sdk_options(connect("http://127.0.0.1:9")) == {
        "base_url": "https://127.0.0.1:8443", "connection_verify": __file__}


def test_user_identities_are_what_arm_lists_and_nothing_without_a_role(conn):
    found = tutorial.user_identities()
    expected = {i.name: Identity.user(client_id=i.client_id) for i in conn.emulator.vm.user_identities}
    assert found == expected and list(found) == ["id-notebook-1", "id-notebook-2"]
    with Emulator(throttle=False, role_assignments=[]) as no_roles:  # ARM answers 403
        assert tutorial.user_identities(tutorial.private_connection(no_roles)) == {}


def test_jwks_for_names_entra_for_azure_tokens_and_the_emulators_keys_for_its_own(conn):
    from mi_notebook.jwks import decode

    now = int(time.time())
    azure = AccessToken("a.b.c", resource="https://management.azure.com/", fetched_at=now, expires_on=now + 60)
    assert (azure.host, azure.emulated) == ("vm", False) and tutorial.jwks_for(azure) == "entra"
    token = conn.get_token("arm")
    assert tutorial.jwks_for(token) == conn.emulator.jwks_url
    assert decode(token, jwks=tutorial.jwks_for(token)).verified
    with Emulator(throttle=False) as elsewhere:  # an emulator in another process: reached by URL only
        explicit = connect(elsewhere.imds_url)
        other = explicit.get_token("arm")
        assert tutorial.jwks_for(other) == elsewhere.imds_url + "/__emulator__/jwks"
        assert decode(other, jwks=tutorial.jwks_for(other)).verified


def test_a_private_connection_leaves_the_notebooks_own_alone(conn):
    with Emulator(throttle=False) as lab:
        private = tutorial.private_connection(lab)
        assert private.get_token("arm").emulated and private.endpoint == lab.imds_url
        assert current() is conn and private is not conn
        private.client.close()
    assert conn.emulator.running and conn.get_token("arm").emulated


def test_data_targets_on_azure_are_what_you_gave_with_no_extra_keywords(clean_connection):
    targets = tutorial.data_targets("https://acct.blob.core.windows.net", "c/q1.csv",
                                    "https://kv.vault.azure.net", connection=connect(**AZURE_LIKE))
    assert (targets.storage_url, targets.blob, targets.vault_url) == (
        "https://acct.blob.core.windows.net", "c/q1.csv", "https://kv.vault.azure.net")
    assert targets.storage_options == {} == targets.vault_options and targets.azurite is None
    assert str(targets) == ("Blob Storage: c/q1.csv at https://acct.blob.core.windows.net | "
                            "Key Vault: https://kv.vault.azure.net")
    nothing = tutorial.data_targets(connection=connect(**AZURE_LIKE))
    assert "not set (STORAGE_URL and BLOB)" in str(nothing) and "not set (VAULT_URL)" in str(nothing)


def test_data_targets_off_azure_are_read_with_the_unmodified_sdk_clients(conn, azurite):
    import pandas as pd
    from azure.keyvault.secrets import SecretClient
    from azure.storage.blob import BlobServiceClient

    from mi_notebook.sdk_credential import credential

    targets = tutorial.data_targets("https://ignored.blob.core.windows.net", "x/y.csv")
    try:
        assert targets.blob == tutorial.SAMPLE_BLOB and targets.azurite.running
        assert targets.storage_url == targets.azurite.account_url and "Azurite at" in str(targets)
        assert targets.vault_url == conn.emulator.vault_url and "the emulator's vault" in str(targets)
        container, _, name = targets.blob.partition("/")
        blobs = BlobServiceClient(targets.storage_url, credential=credential(), **targets.storage_options)
        with pytest.warns(UserWarning, match="emulator"), blobs:  # the set-up did not use up the SDK warning
            raw = blobs.get_blob_client(container, name).download_blob().readall()
        assert pd.read_csv(io.BytesIO(raw))["units"].sum() == 358
        with SecretClient(targets.vault_url, credential=credential(), **targets.vault_options) as vault:
            assert vault.get_secret("greeting").value
        azurite_process = targets.azurite
    finally:
        targets.close()
    assert not azurite_process.running and targets.azurite is None
