"""The emulator playing a cloud: US Government and China besides the public cloud.

IMDS's ``compute.azEnvironment`` (JSON and ``format=text``), the audiences the emulated tenant knows
(another cloud's get AADSTS500011, laid out as the emulator answers any unknown resource), the v1
``iss`` per cloud, ARM accepting its cloud's audiences (both forms) and refusing the public one with
the captured message, the Key Vault's resource and challenge, and the options and command line.
"""

from __future__ import annotations

import threading

import pytest
import requests

from mi_notebook.emulator import Emulator, EmulatorOptions
from mi_notebook.emulator import command as emulator_command
from mi_notebook.emulator.clouds import CLOUD_NAMES, STORAGE_AUDIENCE, cloud

GOV, CHINA, PUBLIC = "AzureUSGovernmentCloud", "AzureChinaCloud", "AzurePublicCloud"
# per cloud: ARM (both forms), Key Vault, SQL, Graph, Cognitive Services (next-wave table 2.2)
AUDIENCES = {
    PUBLIC: ("https://management.azure.com/", "https://management.core.windows.net/", "https://vault.azure.net",
             "https://database.windows.net/", "https://graph.microsoft.com/", "https://cognitiveservices.azure.com"),
    GOV: ("https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net/",
          "https://vault.usgovcloudapi.net", "https://database.usgovcloudapi.net/", "https://graph.microsoft.us/",
          "https://cognitiveservices.azure.us"),
    CHINA: ("https://management.chinacloudapi.cn/", "https://management.core.chinacloudapi.cn/",
            "https://vault.azure.cn", "https://database.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn",
            "https://cognitiveservices.azure.cn"),
}
ISSUER_PREFIX = {PUBLIC: "https://sts.windows.net/", GOV: "https://sts.windows.net/",
                 CHINA: "https://sts.chinacloudapi.cn/"}


def imds_token(emu: Emulator, resource: str) -> requests.Response:
    return requests.get(emu.imds_url + "/metadata/identity/oauth2/token", headers={"Metadata": "true"},
                        params={"api-version": "2018-02-01", "resource": resource}, timeout=10)


def instance(emu: Emulator, path: str = "", **params: str) -> requests.Response:
    return requests.get(emu.imds_url + "/metadata/instance" + path, headers={"Metadata": "true"},
                        params={"api-version": "2021-02-01", **params}, timeout=10)


@pytest.fixture(scope="module", params=CLOUD_NAMES)
def played(request):
    with Emulator(cloud=request.param, throttle=False, keyvault=False) as emu:
        yield emu


def test_instance_metadata_says_which_cloud(played):
    assert instance(played).json()["compute"]["azEnvironment"] == played.cloud
    assert instance(played, "/compute").json()["azEnvironment"] == played.cloud
    text = instance(played, "/compute/azEnvironment", format="text")
    assert text.status_code == 200 and text.headers["Content-Type"].startswith("text/plain")
    assert text.text == played.cloud
    # introduced in 2018-10-01: an older api-version does not have it
    old = requests.get(played.imds_url + "/metadata/instance/compute/azEnvironment", headers={"Metadata": "true"},
                       params={"api-version": "2018-04-02", "format": "text"}, timeout=10)
    assert old.status_code == 404


def test_the_tenant_knows_its_clouds_audiences_and_storage_everywhere(played):
    for resource in (*AUDIENCES[played.cloud], STORAGE_AUDIENCE):
        r = imds_token(played, resource)
        assert r.status_code == 200, (resource, r.text)
        claims = played.verify(r.json()["access_token"], audience=resource)
        assert claims["iss"] == ISSUER_PREFIX[played.cloud] + played.vm.tenant_id + "/"
        assert claims["idp"] == claims["iss"]


def test_another_clouds_audience_gets_aadsts500011_in_the_usual_layout(played):
    unknown = requests.get(played.imds_url + "/metadata/identity/oauth2/token", headers={"Metadata": "true"},
                           params={"api-version": "2018-02-01", "resource": "https://nope.example/"}, timeout=10)
    for other in CLOUD_NAMES:
        if other == played.cloud:
            continue
        for resource in AUDIENCES[other]:
            r = imds_token(played, resource)
            assert r.status_code == 400, (played.cloud, resource)
            body = r.json()
            assert sorted(body) == sorted(unknown.json()) == ["error", "error_description"]
            assert body["error"] == "invalid_resource"
            first, *rest = body["error_description"].split("\r\n")
            assert first.startswith(f"AADSTS500011: The resource principal named {resource} was not found in the "
                                    f"tenant named {played.vm.tenant_id}.")
            assert [line.split(":")[0] for line in rest] == ["Trace ID", "Correlation ID", "Timestamp"]


def test_arm_accepts_its_clouds_audiences_and_refuses_the_public_one(played):
    endpoint, core = AUDIENCES[played.cloud][:2]
    url = played.arm_url + f"/subscriptions/{played.vm.subscription_id}"
    for resource in (endpoint, core, endpoint.rstrip("/"), core.rstrip("/")):
        token = imds_token(played, resource).json()["access_token"]
        r = requests.get(url, params={"api-version": "2022-12-01"}, headers={"Authorization": "Bearer " + token},
                         verify=played.ca_bundle, timeout=10)
        assert r.status_code == 200, (resource, r.text)
    if played.cloud == PUBLIC:
        return
    # a token for the public ARM audience, as a client that hard-codes it would hold (signed by this emulator)
    now = int(played.clock())
    claims = played.issuer.claims(played.vm.system_identity, "https://management.azure.com/", iat=now - 300,
                                  nbf=now - 300, exp=now + 3600)
    public = played.keys.issue(claims)
    r = requests.get(url, params={"api-version": "2022-12-01"}, headers={"Authorization": "Bearer " + public},
                     verify=played.ca_bundle, timeout=10)
    assert r.status_code == 401
    error = r.json()["error"]
    host = endpoint.removeprefix("https://").rstrip("/")
    core_host = core.removeprefix("https://").rstrip("/")
    assert error["code"] == "InvalidAuthenticationTokenAudience"
    assert error["message"] == (
        "The access token has been obtained for wrong audience or resource 'https://management.azure.com/'. "
        f"It should exactly match with one of the allowed audiences 'https://{core_host}/','https://{core_host}',"
        f"'https://{host}/','https://{host}'.")
    authority = cloud(played.cloud).arm_authority
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer authorization_uri="{authority}{played.vm.tenant_id}"')


def test_key_vault_takes_its_clouds_resource():
    with Emulator(cloud=GOV, throttle=False, arm=False) as emu:
        bare = requests.get(emu.vault_url + "/secrets/greeting", params={"api-version": "7.5"},
                            verify=emu.vault_ca_bundle, timeout=10)
        assert bare.status_code == 401
        assert bare.headers["WWW-Authenticate"] == (
            f'Bearer authorization="https://login.microsoftonline.us/{emu.vm.tenant_id}", '
            'resource="https://vault.usgovcloudapi.net"')
        token = imds_token(emu, "https://vault.usgovcloudapi.net").json()["access_token"]
        r = requests.get(emu.vault_url + "/secrets/greeting", params={"api-version": "7.5"},
                         headers={"Authorization": "Bearer " + token}, verify=emu.vault_ca_bundle, timeout=10)
        assert r.status_code == 200 and r.json()["value"] == "hello from the emulated Key Vault"
        storage = imds_token(emu, STORAGE_AUDIENCE).json()["access_token"]
        r = requests.get(emu.vault_url + "/secrets/greeting", params={"api-version": "7.5"},
                         headers={"Authorization": "Bearer " + storage}, verify=emu.vault_ca_bundle, timeout=10)
        assert r.status_code == 401
        assert r.json()["error"]["message"] == ("AKV10022: Invalid audience. Expected https://vault.usgovcloudapi.net, "
                                                f"found: {STORAGE_AUDIENCE}.")


def test_cloud_options_and_their_refusals():
    assert Emulator(cloud="azurechinacloud", arm=False).cloud == CHINA
    assert Emulator(arm=False).cloud == PUBLIC
    assert Emulator(options=EmulatorOptions(cloud=GOV, arm=None)).vm.cloud == GOV
    assert Emulator(config={"cloud": GOV}, arm=False).cloud == GOV
    assert Emulator(config={"cloud": GOV}, cloud=CHINA, arm=False).cloud == CHINA  # the keyword wins
    with pytest.raises(ValueError, match="unknown cloud 'AzureGermanCloud'; choose one of AzurePublicCloud"):
        Emulator(cloud="AzureGermanCloud")
    with pytest.raises(ValueError, match="give the cloud once"):
        EmulatorOptions(vm={"cloud": CHINA}, cloud=GOV)
    assert Emulator(cloud=GOV, arm=False).vm.to_dict()["cloud"] == GOV


def test_the_command_line_plays_a_cloud(capsys):
    stop = threading.Event()
    stop.set()
    assert emulator_command.main(["--cloud", GOV, "--no-arm"], stop=stop) == 0
    out = capsys.readouterr().out
    assert f"cloud {GOV}" in out
    assert "resource=https://management.usgovcloudapi.net/" in out  # the try: line asks for the cloud's ARM
    with pytest.raises(SystemExit) as raised:
        emulator_command.main(["--cloud", "AzureGermanCloud"], stop=stop)
    assert raised.value.code == 2
