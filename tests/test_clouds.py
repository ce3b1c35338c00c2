"""The client knows its cloud: Azure Government and China besides the public cloud.

How a connection learns its cloud (connect(cloud=...), a host's environment, a VM's IMDS asked once and
only when needed), aliases resolving per cloud with one token per resource, another cloud's audience
refused locally naming the right one, mi.arm() at the cloud's ARM, and the claim checks. The emulated
VMs play the cloud (mi_notebook.emulator.clouds); their request logs count what reached IMDS.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from helpers import run_cli

import mi_notebook as mi
from mi_notebook import clouds
from mi_notebook.arm_client import ArmClient
from mi_notebook.arm_client._urls import locate
from mi_notebook.claims._checks import check_audience, check_issuer
from mi_notebook.clouds import CLOUDS, STORAGE_AUDIENCE, CloudSlot, UnknownCloudError, WrongCloudError, cloud
from mi_notebook.connection import Connection
from mi_notebook.emulator import Emulator
from mi_notebook.resources import depends_on_cloud, resolve_resource, resource_to_scope

GOV, CHINA, PUBLIC = "AzureUSGovernmentCloud", "AzureChinaCloud", "AzurePublicCloud"
ARM = {PUBLIC: "https://management.azure.com/", GOV: "https://management.usgovcloudapi.net/",
       CHINA: "https://management.chinacloudapi.cn/"}
# next-wave table 2.2: the aliases whose audience differs per cloud
PER_CLOUD = {
    GOV: {"vault": "https://vault.usgovcloudapi.net", "sql": "https://database.usgovcloudapi.net/",
          "graph": "https://graph.microsoft.us/", "cognitiveservices": "https://cognitiveservices.azure.us",
          "ossrdbms": "https://ossrdbms-aad.database.usgovcloudapi.net"},
    CHINA: {"vault": "https://vault.azure.cn", "sql": "https://database.chinacloudapi.cn/",
            "graph": "https://microsoftgraph.chinacloudapi.cn", "cognitiveservices": "https://cognitiveservices.azure.cn",
            "ossrdbms": "https://ossrdbms-aad.database.chinacloudapi.cn"},
}


def instance_requests(emu: Emulator) -> int:
    return len(emu.requests.filter(service="imds", endpoint="instance"))


def token_requests(emu: Emulator) -> int:
    return len(emu.requests.filter(service="imds", endpoint="token"))


@pytest.fixture
def played(request, clean_connection):
    """A connection to an emulated VM in the cloud ``request.param``, learning its cloud from IMDS."""
    conn = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(cloud=request.param, throttle=False))
    yield conn
    mi.disconnect()


# ---- the table -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spelling", "name"), [
    ("AzureUSGovernmentCloud", GOV), ("AzureUSGovernment", GOV), ("AZURE_US_GOVERNMENT", GOV),
    (" azurechinacloud ", CHINA), ("AZURE_CHINA_CLOUD", CHINA), ("AzureCloud", PUBLIC), ("AZURE_PUBLIC_CLOUD", PUBLIC),
])
def test_a_cloud_by_imds_az_and_azure_core_names(spelling, name):
    assert cloud(spelling).name == name


@pytest.mark.parametrize("bad", ["AzureGermanCloud", "", "gov", "login.microsoftonline.us"])
def test_an_unknown_cloud_is_a_value_error_naming_the_choices(bad):
    with pytest.raises(ValueError, match="AzureUSGovernmentCloud .az: AzureUSGovernment, azure-core: AZURE_US_GOV"):
        cloud(bad)


def test_the_table_matches_the_emulators_own():
    from mi_notebook.emulator.clouds import CLOUDS as PLAYED

    for name, mine in CLOUDS.items():
        theirs = PLAYED[name]
        assert (mine.authority_host, mine.arm_endpoint, mine.issuer_prefix) == (
            theirs.authority_host, theirs.arm_endpoint, theirs.issuer_prefix)
        assert set(mine.arm_audiences) <= set(theirs.arm_audiences)
        assert (mine.resources["vault"], mine.resources["sql"], mine.resources["graph"]) == (
            theirs.vault, theirs.sql, theirs.graph)
        assert mine.resources["storage"] == STORAGE_AUDIENCE


@pytest.mark.parametrize(("environ", "name", "learnt"), [
    ({"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"}, GOV, "AZURE_AUTHORITY_HOST"),
    ({"AZURE_AUTHORITY_HOST": "login.chinacloudapi.cn"}, CHINA, "AZURE_AUTHORITY_HOST"),
    ({"AZURE_AUTHORITY_HOST": "https://login.partner.microsoftonline.cn"}, CHINA, "AZURE_AUTHORITY_HOST"),
    ({"AZURE_SDK_CLOUD_CONF": "AZURE_US_GOVERNMENT"}, GOV, "AZURE_SDK_CLOUD_CONF"),
    ({"AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/", "AZURE_SDK_CLOUD_CONF": "AZURE_CHINA_CLOUD"}, CHINA,
     "AZURE_SDK_CLOUD_CONF"),  # an emulator's loopback authority names no cloud
    ({}, PUBLIC, "nothing in the environment"),
])
def test_the_environment_names_the_cloud(environ, name, learnt):
    found = clouds.from_environment(environ)
    assert found.name == name and found.learnt.startswith(learnt)


@pytest.mark.parametrize("environ", [{"AZURE_AUTHORITY_HOST": "https://login.sovcloud-identity.fr/"},
                                     {"AZURE_SDK_CLOUD_CONF": "AZURE_GERMANY"}])
def test_an_environment_naming_an_unknown_cloud_says_so(environ):
    with pytest.raises(UnknownCloudError, match="AZURE_"):
        clouds.from_environment(environ)


# ---- resources per cloud ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", [GOV, CHINA])
def test_aliases_resolve_per_cloud_and_storage_is_the_same_everywhere(where):
    assert resolve_resource("arm", where) == ARM[where]
    for alias, uri in PER_CLOUD[where].items():
        assert resolve_resource(alias, where) == uri
        assert resolve_resource(alias) != uri  # the public cloud's is another
    assert resolve_resource("storage", where) == resolve_resource("storage") == STORAGE_AUDIENCE
    assert resolve_resource("https://storage.azure.com/.default", where) == STORAGE_AUDIENCE
    assert not depends_on_cloud("storage") and depends_on_cloud("arm") and depends_on_cloud(ARM[where])


@pytest.mark.parametrize("where", [PUBLIC, GOV, CHINA])
def test_one_token_per_resource_in_every_cloud(where):
    for alias, uri in [("arm", ARM[where]), *PER_CLOUD.get(where, {}).items()]:
        bare = uri.rstrip("/")
        spellings = [alias, alias.upper(), uri, bare, bare + "/", uri.upper(), resource_to_scope(uri)]
        assert {resolve_resource(s, where) for s in spellings} == {uri}, alias


@pytest.mark.parametrize(("where", "asked", "right"), [
    (GOV, "https://management.azure.com/", ARM[GOV]),
    (GOV, "https://management.azure.com/.default", ARM[GOV]),
    (GOV, "https://management.core.windows.net/", ARM[GOV]),
    (GOV, "https://vault.azure.net", "https://vault.usgovcloudapi.net"),
    (GOV, "https://graph.microsoft.com/.default", "https://graph.microsoft.us/"),
    (GOV, "https://cognitiveservices.azure.com", "https://cognitiveservices.azure.us"),
    (CHINA, "https://management.usgovcloudapi.net", ARM[CHINA]),
    (CHINA, "https://database.windows.net/", "https://database.chinacloudapi.cn/"),
    (PUBLIC, "https://management.chinacloudapi.cn/", ARM[PUBLIC]),
])
def test_another_clouds_audience_is_refused_naming_the_right_one(where, asked, right):
    place = cloud(where).because("IMDS's compute.azEnvironment is " + where)
    with pytest.raises(WrongCloudError) as caught:
        resolve_resource(asked, place)
    assert isinstance(caught.value, ValueError) and caught.value.right == right
    message = str(caught.value)
    assert message.startswith(f"this VM is in {place.title}") and f": use {right} " in message
    assert "AADSTS500011" in message


@pytest.mark.parametrize("where", [GOV, CHINA])
def test_custom_audiences_go_through_and_public_only_aliases_are_refused(where):
    for custom in ("api://my-api", "https://contoso.onmicrosoft.com/api", "https://cosmos.azure.com",
                   "00001111-aaaa-2222-bbbb-3333cccc4444", "https://management.core.usgovcloudapi.net/"
                   if where == GOV else "https://management.core.chinacloudapi.cn/"):
        assert resolve_resource(custom, where) == resolve_resource(custom)
    with pytest.raises(WrongCloudError, match="knows the alias 'cosmos' only in the public cloud"):
        resolve_resource("cosmos", where)


def test_bad_input_is_refused_alike_in_every_cloud():
    for where in CLOUDS:
        with pytest.raises(ValueError, match="http://"):
            resolve_resource("http://management.usgovcloudapi.net/", where)
        with pytest.raises(ValueError, match="unknown resource alias"):
            resolve_resource("nope", where)


# ---- connections -----------------------------------------------------------------------------------
@pytest.mark.parametrize("played", [GOV], indirect=True)
def test_done_when_an_emulated_government_vm(played):
    emu = played.emulator
    assert played.cloud_slot.known is None and instance_requests(emu) == 0  # nothing asked yet
    tok = mi.get_token("arm")
    assert tok.resource == ARM[GOV] and tok.claims.audience == ARM[GOV]
    assert played.cloud.name == GOV and played.cloud.learnt == "IMDS's compute.azEnvironment is 'AzureUSGovernmentCloud'"
    vm = mi.arm().vm()
    assert vm["name"] == emu.vm.name
    tokens = token_requests(emu)
    with pytest.raises(WrongCloudError, match=r"^this VM is in Azure Government \(IMDS's compute.azEnvironment is "
                                              r"'AzureUSGovernmentCloud'\): use https://management.usgovcloudapi.net/ "):
        mi.get_token("https://management.azure.com/.default")
    assert token_requests(emu) == tokens  # refused locally: nothing reached IMDS
    # the SDKs' scope for the same resource is the same token
    assert mi.get_token("https://management.usgovcloudapi.net/.default").from_cache
    assert mi.get_token("storage").resource == STORAGE_AUDIENCE
    for _ in range(50):
        mi.get_token("arm")
        played.get_token("vault")
    assert instance_requests(emu) == 1  # one compute document served the cloud and ArmClient.metadata()


@pytest.mark.parametrize("played", [CHINA], indirect=True)
def test_an_emulated_china_vm(played):
    emu = played.emulator
    assert mi.get_token("arm").resource == ARM[CHINA]
    assert mi.get_token("graph").resource == "https://microsoftgraph.chinacloudapi.cn"
    assert mi.get_token("vault").claims.get("iss") == f"https://sts.chinacloudapi.cn/{emu.vm.tenant_id}/"
    assert mi.arm().vm()["id"].lower() == emu.vm.resource_id.lower()
    with pytest.raises(WrongCloudError, match="use https://management.chinacloudapi.cn/"):
        mi.get_token("https://management.usgovcloudapi.net/")
    assert instance_requests(emu) == 1


@pytest.mark.parametrize("played", [GOV], indirect=True)
def test_nothing_cloud_dependent_asks_imds_nothing(played):
    emu = played.emulator
    for resource in ("storage", "https://storage.azure.com/.default"):
        assert played.get_token(resource).resource == STORAGE_AUDIENCE
    with pytest.raises(mi.errors.InvalidResourceError, match="AADSTS500011"):  # a custom audience goes through
        played.get_token("api://my-api")
    assert instance_requests(emu) == 0 and played.cloud_slot.known is None


@pytest.mark.parametrize("played", [GOV], indirect=True)
def test_threads_learn_the_cloud_once(played):
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def work() -> None:
        barrier.wait()
        seen.append(played.get_token("arm").resource)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [ARM[GOV]] * 8 and instance_requests(played.emulator) == 1


def test_a_given_url_to_an_emulator_playing_government(clean_connection, monkeypatch):
    with Emulator(cloud=GOV, throttle=False) as emu:  # as `mi-notebook emulator --cloud` + its printed lines
        monkeypatch.setenv("MI_NOTEBOOK_ARM_URL", emu.arm_url)
        monkeypatch.setenv("MI_NOTEBOOK_ARM_CA_BUNDLE", emu.ca_bundle)
        conn = mi.connect(emu.imds_url)
        assert conn.chosen == "given" and mi.get_token("arm").resource == ARM[GOV]
        assert mi.arm().vm()["name"] == emu.vm.name
        assert conn.cloud.name == GOV and instance_requests(emu) == 1
        mi.disconnect()


def test_connect_cloud_is_validated_before_anything_and_plays_the_emulator(clean_connection):
    def never() -> Emulator:
        raise AssertionError("no emulator may start for a bad cloud")

    with pytest.raises(ValueError, match="unknown cloud 'Azure Gov'"):
        mi.connect(mode="emulator", cloud="Azure Gov", emulator_factory=never)
    conn = mi.connect(mode="emulator", cloud="AzureUSGovernment")  # az's spelling
    assert conn.emulator.cloud == GOV and conn.cloud.learnt == "connect(cloud=...) said so"
    assert mi.get_token("arm").resource == ARM[GOV] and instance_requests(conn.emulator) == 0
    mi.disconnect()


def test_other_hosts_take_the_cloud_from_their_environment(clean_connection):
    environ = {"MSI_ENDPOINT": "http://127.0.0.1:9/MSI/auth", "MSI_SECRET": "s3cr3t",
               "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"}
    conn = mi.connect(host="azureml", environ=environ)
    assert conn.cloud.name == GOV and conn.cloud.learnt == "AZURE_AUTHORITY_HOST is https://login.microsoftonline.us/"
    conn = mi.connect(host="azureml", environ={**environ, "AZURE_AUTHORITY_HOST": "https://login.example.org"})
    with pytest.raises(UnknownCloudError, match="login.example.org"):
        conn.get_token("arm")  # only what needs the cloud fails
    mi.disconnect()


def test_an_emulated_host_plays_the_cloud(clean_connection):
    conn = mi.connect(mode="emulator", profile="appservice",
                      emulator_factory=lambda: Emulator(profile="appservice", cloud=CHINA, throttle=False))
    assert conn.cloud.name == CHINA and conn.cloud.learnt == "the embedded emulator plays AzureChinaCloud"
    assert mi.get_token("arm").resource == ARM[CHINA]
    mi.disconnect()


class _Imds:
    """A stand-in VM's IMDS answering instance metadata with ``az_environment`` (counts the questions)."""

    def __init__(self, az_environment: str | None) -> None:
        self.az_environment, self.asked = az_environment, 0
        self.host, self.endpoint = "vm", "http://169.254.169.254"

    def get_json(self, path, params=None, *, on_attempt=None):
        self.asked += 1
        assert path == "/metadata/instance/compute" and params == [("api-version", "2021-02-01")]
        return ({"azEnvironment": self.az_environment} if self.az_environment else {"name": "vm"}), None


def test_a_vm_outside_any_known_cloud_is_said_once():
    imds = _Imds("AzureGermanCloud")
    conn = Connection("http://169.254.169.254", "vm", imds, chosen="probed")  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(UnknownCloudError, match="'AzureGermanCloud'"):
            _ = conn.cloud
    assert imds.asked == 1


def test_an_imds_without_az_environment_means_the_public_cloud_said_so():
    slot = CloudSlot()
    found = slot.get(lambda: clouds.ask_imds(_Imds(None), slot))
    assert found.name == PUBLIC and "no compute.azEnvironment" in found.learnt and slot.compute == {"name": "vm"}


def test_arm_on_a_real_vm_is_its_clouds():
    conn = Connection("http://169.254.169.254", "vm", _Imds(GOV), chosen="probed")  # type: ignore[arg-type]
    assert locate(conn) == ("https://management.usgovcloudapi.net", None)
    assert ArmClient(connection=conn).url == "https://management.usgovcloudapi.net"
    assert locate(SimpleNamespace(chosen="probed", endpoint="http://169.254.169.254", emulator=None))[0] == \
        "https://management.azure.com"


# ---- claims ------------------------------------------------------------------------------------------
def test_the_audience_check_knows_each_clouds_audiences():
    assert check_audience(ARM[GOV], "arm").status == "ok"
    assert check_audience(ARM[GOV], "arm", cloud=GOV).status == "ok"
    wrong = check_audience(ARM[PUBLIC], "arm", cloud=GOV)
    assert wrong.status == "problem" and "use https://management.usgovcloudapi.net/" in wrong.explanation
    assert check_audience("https://vault.azure.cn", "vault", cloud=CHINA).status == "ok"
    assert check_audience("https://vault.azure.cn", "https://vault.azure.net").status == "problem"


def test_the_issuer_check_knows_each_clouds_issuers():
    assert check_issuer("https://sts.chinacloudapi.cn/t/", CHINA).status == "ok"
    gov = check_issuer("https://sts.windows.net/t/", GOV)
    assert gov.status == "ok" and "shares with the Azure public cloud" in gov.explanation
    assert check_issuer("https://login.microsoftonline.us/t/v2.0", GOV).status == "ok"
    wrong = check_issuer("https://sts.chinacloudapi.cn/t/", PUBLIC)
    assert wrong.status == "problem" and "Azure China (21Vianet)'s" in wrong.explanation
    assert check_issuer(None, PUBLIC).status == "problem"


# ---- the command line ---------------------------------------------------------------------------------
_cli = run_cli


def test_the_token_card_names_the_cloud_and_refuses_another_clouds_audience(capsys, clean_connection):
    with Emulator(cloud=GOV, throttle=False) as emu:
        code, out, _ = _cli(capsys, "token", "--imds-url", emu.imds_url)
        assert code == 0 and out.startswith(f"Token for {ARM[GOV]} ")
        assert "  cloud        Azure Government (AzureUSGovernmentCloud): IMDS's compute.azEnvironment is " in out
        tokens = token_requests(emu)
        code, _, err = _cli(capsys, "token", "https://management.azure.com/.default", "--imds-url", emu.imds_url)
        assert code == 1 and "invalid input: this VM is in Azure Government" in err
        assert "use https://management.usgovcloudapi.net/" in err and token_requests(emu) == tokens
        code, out, _ = _cli(capsys, "token", "--mode", "emulator", "--cloud", "AzureChinaCloud")
        assert code == 0 and out.startswith(f"Token for {ARM[CHINA]} ") and "--cloud" in out
        code, _, err = _cli(capsys, "token", "--mode", "emulator", "--cloud", "Narnia")
        assert code == 1 and "unknown cloud 'Narnia'" in err


def test_doctor_names_the_cloud(capsys, clean_connection):
    code, out, _ = _cli(capsys, "doctor", "--mode", "emulator", "--cloud", "AzureUSGovernment")
    assert "cloud: Azure Government (AzureUSGovernmentCloud): --cloud said so" in out
    assert f"Identities (token for {ARM[GOV]})" in out and code in (0, 1)


@pytest.mark.parametrize("played", [GOV], indirect=True)
def test_the_token_explorer_card_names_the_cloud(played):
    from mi_notebook.widgets import SyncExecutor, TokenExplorer

    explorer = TokenExplorer("arm", executor=SyncExecutor(), list_identities=False)
    explorer.on_get()
    assert explorer.token is not None and explorer.token.resource == ARM[GOV]
    assert "Cloud: Azure Government (AzureUSGovernmentCloud): IMDS&#x27;s compute.azEnvironment" in \
        explorer.token_card.value
