"""Host detection: every combination of the order table (checked against an independent transcription of
the order and against the installed azure-identity 1.27 itself), the DMI asset tag, the reason texts,
secrets never shown, build_source, and DefaultAzureCredential's chain."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from test_sources_common import AS_URL, CLIENT_ID, CS_URL, ML_URL, NOW, SECRET, ok

from mi_notebook import errors
from mi_notebook.clock import VirtualClock
from mi_notebook.detection import AZURE_ASSET_TAG, default_azure_credential_chain, detect
from mi_notebook.http import MockTransport
from mi_notebook.sources import (
    AppServiceSource,
    ArcSource,
    AzureMlSource,
    CloudShellSource,
    ServiceFabricSource,
)
from mi_notebook.sources.arc import DEFAULT_ENDPOINT as ARC_DEFAULT

VALUES = {
    "IDENTITY_ENDPOINT": "http://127.0.0.1:40342/metadata/identity/oauth2/token",
    "IDENTITY_HEADER": SECRET,
    "IDENTITY_SERVER_THUMBPRINT": "AB12CD",
    "IMDS_ENDPOINT": "http://127.0.0.1:40342",
    "MSI_ENDPOINT": ML_URL,
    "MSI_SECRET": SECRET,
}
WORKLOAD = {"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/", "AZURE_TENANT_ID": "t",
            "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"}
NAMES = [*VALUES, "WORKLOAD"]
COMBOS = [dict(zip(NAMES, bits, strict=True)) for bits in itertools.product([False, True], repeat=len(NAMES))]


def env_of(combo: dict) -> dict:
    env = {name: VALUES[name] for name in VALUES if combo[name]}
    return {**env, **WORKLOAD} if combo["WORKLOAD"] else env


def expected(combo: dict, himds: bool) -> str:
    """The brief's order, written out independently of mi_notebook.detection."""
    ie, ih, tp, imds, me, ms, wi = (combo[n] for n in NAMES)
    if ie and ih:
        return "servicefabric" if tp else "appservice"
    if (ie and imds) or himds:
        return "arc"
    if me:
        return "azureml" if ms else "cloudshell"
    return "workload" if wi else "vm"


@pytest.fixture
def dmi(tmp_path) -> Path:
    root = tmp_path / "dmi"
    root.mkdir()
    return root


@pytest.fixture
def himds(tmp_path) -> Path:
    path = tmp_path / "himds"
    path.write_text("#!/bin/sh\n")
    return path


@pytest.mark.parametrize("with_himds", [False, True])
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "+".join(n for n in NAMES if c[n]) or "nothing")
def test_every_combination_in_the_order_table(combo, with_himds, dmi, himds):
    env = env_of(combo)
    found = detect(env, sysfs_root=str(dmi), himds_path=str(himds) if with_himds else "/nonexistent/himds")
    assert found.host == expected(combo, with_himds)
    assert found.himds_found is with_himds
    assert SECRET not in repr(found) + found.reason + repr(found.variables) + repr(found.others) + repr(found.notes)
    assert set(found.variables) == set(env)
    assert found.host not in found.others and len(found.others) == 6
    assert found.is_azure_host is (found.host != "vm")  # no asset tag here


AZURE_IDENTITY_NAMES = {"ServiceFabricCredential": "servicefabric", "AppServiceCredential": "appservice",
                        "AzureArcCredential": "arc", "AzureMLCredential": "azureml", "CloudShellCredential": "cloudshell",
                        "WorkloadIdentityCredential": "workload", "ImdsCredential": "vm", "NoneType": None}


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "+".join(n for n in NAMES if c[n]) or "nothing")
def test_azure_identity_127_decides_the_same(combo, monkeypatch, dmi):
    identity = pytest.importorskip("azure.identity")
    env = {**env_of(combo), "AZURE_CLIENT_ID": CLIENT_ID}
    for name in [*VALUES, *WORKLOAD, "AZURE_CLIENT_ID", "AZURE_POD_IDENTITY_AUTHORITY_HOST"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    credential = identity.ManagedIdentityCredential()
    theirs = AZURE_IDENTITY_NAMES[type(credential._credential).__name__]
    found = detect(env, sysfs_root=str(dmi), himds_path="/nonexistent/himds")
    assert found.azure_identity_host == theirs
    if theirs is None:  # IDENTITY_ENDPOINT alone: azure-identity finds nothing, we go on as MSAL does
        assert any("finds no managed identity" in note for note in found.notes)
    else:
        assert found.host == theirs


# --- the asset tag ------------------------------------------------------------------------------------------
def test_the_azure_asset_tag_makes_an_azure_vm(dmi):
    (dmi / "chassis_asset_tag").write_text(AZURE_ASSET_TAG + "\n")
    found = detect({}, sysfs_root=str(dmi), himds_path="/nonexistent")
    assert found.is_azure_vm and found.is_azure_host and AZURE_ASSET_TAG in found.reason and not found.notes
    assert found.reason.startswith("Azure VM: ")


def test_a_reason_never_says_azure_vm_when_the_dmi_says_otherwise(dmi):
    (dmi / "chassis_asset_tag").write_text("0000-0000\n")
    found = detect({}, sysfs_root=str(dmi), himds_path="/nonexistent")
    assert not found.is_azure_vm and "Azure VM" not in found.reason.split(":")[0]
    assert found.reason.startswith("No managed-identity host found: ") and "would come from IMDS" in found.reason


def test_hyper_v_alone_is_not_azure(dmi):
    (dmi / "chassis_asset_tag").write_text("0000-0000\n")
    (dmi / "sys_vendor").write_text("Microsoft Corporation\n")
    (dmi / "product_name").write_text("Virtual Machine\n")
    found = detect({}, sysfs_root=str(dmi), himds_path="/nonexistent")
    assert not found.is_azure_vm and not found.is_azure_host
    assert "a Hyper-V guest, not an Azure VM" in found.vm_evidence
    assert any("emulator" in note for note in found.notes)


def test_no_dmi_at_all(tmp_path):
    found = detect({}, sysfs_root=str(tmp_path / "none"), himds_path="/nonexistent")
    assert not found.is_azure_vm and "no DMI chassis asset tag could be read" in found.reason


def test_a_host_is_azure_whatever_the_dmi(dmi, himds):
    assert detect({}, sysfs_root=str(dmi), himds_path=str(himds)).is_azure_host
    assert detect({"MSI_ENDPOINT": CS_URL}, sysfs_root=str(dmi), himds_path="/x").is_azure_host


# --- reasons ------------------------------------------------------------------------------------------------------
REASONS = [
    (dict(VALUES, MSI_ENDPOINT="", MSI_SECRET="", IMDS_ENDPOINT=""),
     "Service Fabric: IDENTITY_ENDPOINT=http://127.0.0.1:40342/metadata/identity/oauth2/token, IDENTITY_HEADER "
     "(value hidden) and IDENTITY_SERVER_THUMBPRINT=AB12CD are set."),
    ({"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": SECRET},
     f"App Service (or Functions, Container Apps): IDENTITY_ENDPOINT={AS_URL} and IDENTITY_HEADER (value hidden) are "
     "set, IDENTITY_SERVER_THUMBPRINT is not."),
    ({"MSI_ENDPOINT": ML_URL, "MSI_SECRET": SECRET, "DEFAULT_IDENTITY_CLIENT_ID": CLIENT_ID},
     f"Azure ML compute: MSI_ENDPOINT={ML_URL} and MSI_SECRET (value hidden) are set; "
     f"DEFAULT_IDENTITY_CLIENT_ID={CLIENT_ID}."),
    ({"MSI_ENDPOINT": CS_URL},
     f"Azure Cloud Shell: MSI_ENDPOINT={CS_URL} is set, MSI_SECRET is not; tokens here are the signed-in user's, "
     "not a managed identity's."),
    (WORKLOAD, "AKS workload identity: AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/, AZURE_TENANT_ID=t "
     "and AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token are set; AZURE_CLIENT_ID is "
     "not set (each request must name the identity's client id)."),
    ({**WORKLOAD, "AZURE_CLIENT_ID": CLIENT_ID}, "AKS workload identity: AZURE_AUTHORITY_HOST=https://login."
     "microsoftonline.com/, AZURE_TENANT_ID=t and AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/"
     f"azure-identity-token are set; AZURE_CLIENT_ID={CLIENT_ID}."),
    ({"IDENTITY_ENDPOINT": AS_URL},
     "No managed-identity host found: no host's variables are complete (set: IDENTITY_ENDPOINT), so the token would "
     "come from IMDS at http://169.254.169.254; no DMI chassis asset tag could be read under /nonexistent."),
    ({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:2579/"},
     "No managed-identity host found: no host's variables are set (IDENTITY_ENDPOINT, MSI_ENDPOINT, ...), so the "
     "token would come from IMDS at http://127.0.0.1:2579 (from AZURE_POD_IDENTITY_AUTHORITY_HOST); no DMI chassis "
     "asset tag could be read under /nonexistent."),
]


@pytest.mark.parametrize(("env", "reason"), REASONS)
def test_reason_texts(env, reason):
    assert detect(env, sysfs_root="/nonexistent", himds_path="/nonexistent").reason == reason


def test_the_himds_reason_and_note(himds):
    found = detect({}, sysfs_root="/nonexistent", himds_path=str(himds))
    assert found.reason.startswith(f"Azure Arc: the agent's himds binary is at {himds}")
    assert found.endpoint == ARC_DEFAULT
    assert found.notes == ("azure-identity 1.27 does not look for the himds binary: it would use Azure VM (IMDS) here.",)


def test_others_say_what_they_need_or_why_they_lost():
    found = detect({"MSI_ENDPOINT": ML_URL, "MSI_SECRET": SECRET}, sysfs_root="/x", himds_path="/x")
    assert found.others["cloudshell"] == "needs MSI_ENDPOINT without MSI_SECRET (but MSI_SECRET is set)"
    assert found.others["appservice"].endswith("(missing: IDENTITY_ENDPOINT, IDENTITY_HEADER)")
    both = detect({"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": SECRET, "IMDS_ENDPOINT": "http://127.0.0.1:1"},
                  sysfs_root="/x", himds_path="/x")
    assert both.host == "appservice" and both.others["arc"].startswith("would match too")


def test_empty_variables_count_as_unset():
    found = detect({"MSI_ENDPOINT": CS_URL, "MSI_SECRET": ""}, sysfs_root="/x", himds_path="/x")
    assert found.host == "cloudshell" and found.variables["MSI_SECRET"] == "(empty)"
    assert "MSI_SECRET is set but empty: it counts as unset." in found.notes


def test_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("MSI_ENDPOINT", CS_URL)
    monkeypatch.delenv("MSI_SECRET", raising=False)
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.delenv(name, raising=False)
    assert detect(sysfs_root="/x", himds_path="/x").host == "cloudshell"


# --- build_source ------------------------------------------------------------------------------------------------
BUILDS = [
    ({"MSI_ENDPOINT": ML_URL, "MSI_SECRET": SECRET, "DEFAULT_IDENTITY_CLIENT_ID": CLIENT_ID}, AzureMlSource, ML_URL),
    ({"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": SECRET}, AppServiceSource, AS_URL),
    ({"IDENTITY_ENDPOINT": VALUES["IDENTITY_ENDPOINT"], "IMDS_ENDPOINT": VALUES["IMDS_ENDPOINT"]}, ArcSource,
     VALUES["IDENTITY_ENDPOINT"]),
    ({"MSI_ENDPOINT": CS_URL}, CloudShellSource, CS_URL),
    ({k: VALUES[k] for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT")},
     ServiceFabricSource, VALUES["IDENTITY_ENDPOINT"]),
]


@pytest.mark.parametrize(("env", "cls", "endpoint"), BUILDS, ids=lambda v: getattr(v, "__name__", None))
def test_build_source(env, cls, endpoint):
    found = detect(env, sysfs_root="/x", himds_path="/x")
    built = found.build_source() if cls is ServiceFabricSource else found.build_source(timeout=(1, 3))
    assert type(built) is cls and built.endpoint == endpoint == found.endpoint
    if cls is AzureMlSource:
        assert built.default_client_id == CLIENT_ID


def test_build_source_passes_options_through():
    mock = MockTransport(ok())
    found = detect({"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": SECRET}, sysfs_root="/x", himds_path="/x")
    src = found.build_source(transport=mock, clock=VirtualClock(NOW))
    assert src.request_token("arm").host == "appservice" and mock.requests[0].headers["X-IDENTITY-HEADER"] == SECRET


def test_build_source_for_arc_found_by_himds(himds, tmp_path):
    src = detect({}, sysfs_root="/x", himds_path=str(himds)).build_source(key_dir=tmp_path)
    assert type(src) is ArcSource and src.endpoint == ARC_DEFAULT and src.key_dir == str(tmp_path)


def test_build_source_for_a_vm():
    from mi_notebook.sources.imds import ImdsClient

    client = detect({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:2579"}, sysfs_root="/x",
                    himds_path="/x").build_source(timeout=(1, 2))
    assert isinstance(client, ImdsClient) and client.url == "http://127.0.0.1:2579"
    client.close()


def test_build_source_speaks_workload_identity():
    from mi_notebook.sources import WorkloadIdentitySource

    found = detect({**WORKLOAD, "AZURE_CLIENT_ID": CLIENT_ID}, sysfs_root="/x", himds_path="/x")
    source = found.build_source()
    assert isinstance(source, WorkloadIdentitySource) and source.host == "workload"
    assert source.endpoint == found.endpoint == "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    assert (source.client_id, source.token_file) == (CLIENT_ID, WORKLOAD["AZURE_FEDERATED_TOKEN_FILE"])


def test_workload_variables_beside_another_hosts_say_what_default_azure_credential_would_do():
    found = detect({**WORKLOAD, "MSI_ENDPOINT": CS_URL}, sysfs_root="/x", himds_path="/x")
    assert found.host == "cloudshell"
    assert any("tries WorkloadIdentityCredential before any managed identity" in note for note in found.notes)


def test_build_source_with_a_bad_variable():
    found = detect({"MSI_ENDPOINT": "not-a-url", "MSI_SECRET": SECRET}, sysfs_root="/x", himds_path="/x")
    assert found.host == "azureml"
    with pytest.raises(errors.HostConfigurationError, match="MSI_ENDPOINT"):
        found.build_source()


# --- DefaultAzureCredential's chain -------------------------------------------------------------------------------
CHAIN_NAMES = {"FailedDACCredential": "WorkloadIdentityCredential"}
CLEAR = ["AZURE_TOKEN_CREDENTIALS", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME",
         "AZURE_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PATH", *VALUES, *WORKLOAD]


@pytest.mark.parametrize("choice", ["", "dev", "prod", "environmentcredential", "workloadidentitycredential",
                                    "managedidentitycredential", "visualstudiocodecredential", "azureclicredential",
                                    "azurepowershellcredential", "azuredeveloperclicredential",
                                    "interactivebrowsercredential", "Prod "])
def test_the_chain_matches_azure_identity(choice, monkeypatch):
    identity = pytest.importorskip("azure.identity")
    for name in CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", choice)
    theirs = [CHAIN_NAMES.get(type(c).__name__, type(c).__name__) for c in identity.DefaultAzureCredential().credentials]
    if "SharedTokenCacheCredential" in theirs:
        assert identity.SharedTokenCacheCredential.supported()
    ours = default_azure_credential_chain(dict(os.environ))
    assert [e.name for e in ours.tried] == theirs and ours.problem is None


def test_an_invalid_choice_is_the_constructors_error(monkeypatch):
    identity = pytest.importorskip("azure.identity")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "everything")
    with pytest.raises(ValueError) as caught:
        identity.DefaultAzureCredential()
    chain = default_azure_credential_chain(dict(os.environ))
    assert chain.problem == f"DefaultAzureCredential() raises ValueError: {caught.value}" and chain.tried == []
    assert chain.lines()[-1].startswith("  ! DefaultAzureCredential() raises ValueError")


def test_workload_without_a_client_id_breaks_the_constructor(monkeypatch):
    identity = pytest.importorskip("azure.identity")
    for name in CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in WORKLOAD.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        identity.DefaultAzureCredential()
    assert "AZURE_CLIENT_ID is not set" in default_azure_credential_chain(dict(os.environ)).problem
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "managedidentitycredential")  # WI left out: IMDS instead
    identity.DefaultAzureCredential()
    (entry,) = default_azure_credential_chain(dict(os.environ)).tried
    assert entry.detail.startswith("Azure VM (IMDS)") and "no probe" in entry.detail


def test_chain_details():
    env = {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "", "MSI_ENDPOINT": ML_URL,
           "MSI_SECRET": SECRET}
    chain = default_azure_credential_chain(env, platform="linux")
    detail = {e.name: e.detail for e in chain.entries}
    assert detail["EnvironmentCredential"].startswith("a service principal with a client secret")  # `is not None`
    assert detail["ManagedIdentityCredential"] == f"Azure ML compute, client_id={CLIENT_ID} (AZURE_CLIENT_ID)"
    assert detail["WorkloadIdentityCredential"] == "unavailable (missing AZURE_FEDERATED_TOKEN_FILE)"
    assert detail["InteractiveBrowserCredential"] == "excluded by default"
    assert SECRET not in "\n".join(chain.lines())
    ml = default_azure_credential_chain({"MSI_ENDPOINT": ML_URL, "MSI_SECRET": SECRET}, platform="linux")
    assert "your own user token" in {e.name: e.detail for e in ml.entries}["ManagedIdentityCredential"]
    vm = {e.name: e.detail for e in default_azure_credential_chain({}, platform="linux").entries}
    assert "probes IMDS first" in vm["ManagedIdentityCredential"]
