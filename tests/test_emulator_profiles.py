"""The emulator's host profiles on the wire (azureml, appservice, arc, cloudshell), the marker header on
every answer, and ``mi-notebook emulator --profile``. The official clients against the same profiles
are in test_host_clients.py."""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import requests
from helpers import VirtualClock

from mi_notebook.emulator import MARKER_HEADER, Emulator

ARM = "https://management.azure.com/"
START = 1_800_000_000.0
ALL_HOST_PROFILES = ("azureml", "appservice", "arc", "cloudshell")


def _start(profile, tmp_path, **kw):
    if profile == "arc":
        kw.setdefault("arc_key_dir", str(tmp_path / "tokens"))
    kw.setdefault("throttle", False)
    kw.setdefault("arm", False)
    return Emulator(profile=profile, **kw).start()


@pytest.fixture
def started(tmp_path):
    emus: list[Emulator] = []

    def start(profile, **kw):
        emu = _start(profile, tmp_path, **kw)
        emus.append(emu)
        return emu

    yield start
    for emu in emus:
        emu.stop()


def user_claims_ok(emu, token, audience):
    claims = emu.verify(token, audience=audience)
    assert claims["idtyp"] == "user" and claims["oid"] == emu.user.object_id
    assert claims["upn"] == claims["unique_name"] == emu.user.upn and claims["name"] == emu.user.name
    assert claims["scp"] == "user_impersonation" and claims["ver"] == "1.0"
    assert "xms_mirid" not in claims and "xms_az_rid" not in claims and claims["sub"] != claims["oid"]
    return claims


def arc_token(emu, params, headers=None):
    """The Arc dance by hand: challenge, read the key file, repeat. Returns (first, second) responses."""
    headers = {"Metadata": "true", **(headers or {})}
    first = requests.get(emu.token_url, params=params, headers=headers, timeout=5)
    if first.status_code != 401:
        return first, None
    path = first.headers["WWW-Authenticate"].split("=", 1)[1]
    key = Path(path).read_text()
    second = requests.get(emu.token_url, params=params, headers={**headers, "Authorization": f"Basic {key}"},
                          timeout=5)
    return first, second


# ---- the marker header and the VM profile --------------------------------------------------------------
def test_marker_on_every_answer_of_the_vm_profile_and_arm_side():
    with Emulator(throttle=False) as emu:
        assert emu.profile == "vm" and emu.environment == {} and emu.token_url.endswith("/oauth2/token")
        answers = [
            requests.get(emu.token_url, params={"api-version": "2018-02-01", "resource": ARM},
                         headers={"Metadata": "true"}, timeout=5),
            requests.get(emu.token_url, timeout=5),  # 400
            requests.get(emu.imds_url + "/metadata/instance?api-version=2021-02-01", headers={"Metadata": "true"},
                         timeout=5),
            requests.get(emu.imds_url + "/__emulator__/health", timeout=5),
            requests.get(emu.arm_url + "/subscriptions?api-version=2022-12-01", verify=emu.ca_bundle, timeout=5),
            requests.get(emu.arm_url + "/__emulator__/jwks", verify=emu.ca_bundle, timeout=5),
        ]
        assert [r.status_code for r in answers] == [200, 400, 200, 200, 401, 200]
        assert all(r.headers[MARKER_HEADER] == "1" for r in answers)
        assert answers[0].headers["Server"].startswith("IMDS/150.870.65.")  # fidelity kept on the VM profile
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:  # a protocol-level error
            sock.sendall(b"GARBAGE\r\n\r\n")
            raw = sock.recv(4096).decode("latin-1")
        assert raw.startswith("HTTP/1.1 400") and f"{MARKER_HEADER}: 1" in raw


@pytest.mark.parametrize("profile", ALL_HOST_PROFILES)
def test_marker_and_server_header_on_every_host_profile(started, profile):
    emu = started(profile)
    for r in (requests.get(emu.token_url, timeout=5), requests.get(emu.imds_url + "/nowhere", timeout=5),
              requests.get(emu.imds_url + "/__emulator__/environment", timeout=5)):
        assert r.headers[MARKER_HEADER] == "1"
    r = requests.get(emu.imds_url + "/nowhere", timeout=5)
    assert r.status_code == 404
    assert r.headers.get("Server") == ("Kestrel" if profile == "appservice" else None)
    served = requests.get(emu.imds_url + "/__emulator__/environment", headers=emu.admin_headers, timeout=5).json()
    # every variable the host sets but its secret, which never crosses HTTP
    assert served == {k: v for k, v in emu.environment.items() if k not in ("MSI_SECRET", "IDENTITY_HEADER")}
    assert emu.secret not in json.dumps(served)
    assert requests.get(emu.imds_url + "/__emulator__/health", timeout=5).json()["profile"] == profile


def test_profile_options_are_checked():
    with pytest.raises(ValueError, match="unknown profile"):
        Emulator(profile="aks")
    with pytest.raises(ValueError, match="sso only applies to the azureml profile"):
        Emulator(profile="cloudshell", sso=False)
    with pytest.raises(ValueError, match="absolute path"):
        Emulator(profile="arc", arc_key_dir="relative/dir")
    with pytest.raises(ValueError, match="expires_on must be one of"):
        Emulator(profile="azureml", azureml_expires_on="iso")
    assert Emulator(config={"profile": "appservice", "secret": "from-config"}).secret == "from-config"


# ---- Azure ML ---------------------------------------------------------------------------------------------
def test_azureml_environment_and_the_sso_trap(started):
    emu = started("azureml")
    env = emu.environment
    assert set(env) == {"MSI_ENDPOINT", "MSI_SECRET", "DEFAULT_IDENTITY_CLIENT_ID"}
    assert env["MSI_ENDPOINT"] == emu.imds_url + "/MSI/auth" and env["MSI_SECRET"] == emu.secret
    assert env["DEFAULT_IDENTITY_CLIENT_ID"] == emu.vm.system_identity.client_id
    base = {"api-version": "2017-09-01", "resource": ARM}
    secret = {"secret": env["MSI_SECRET"]}
    # no clientid, or a clientid that is not a GUID: the signed-in user's token
    for params in (base, {**base, "clientid": "clientid"}, {**base, "client_id": env["DEFAULT_IDENTITY_CLIENT_ID"]}):
        r = requests.get(env["MSI_ENDPOINT"], params=params, headers=secret, timeout=5)
        assert r.status_code == 200 and sorted(r.json()) == ["access_token", "expires_on", "resource", "token_type"]
        assert isinstance(r.json()["expires_on"], int)
        user_claims_ok(emu, r.json()["access_token"], ARM)
    # clientid names the compute's identity (or another identity of the world)
    for ident in emu.vm.identities:
        r = requests.get(env["MSI_ENDPOINT"], params={**base, "clientid": ident.client_id}, headers=secret, timeout=5)
        claims = emu.verify(r.json()["access_token"], audience=ARM)
        assert claims["idtyp"] == "app" and claims["appid"] == ident.client_id and claims["xms_mirid"] == ident.mirid
    assert [r.extra["kind"] for r in emu.requests] == ["user"] * 3 + ["system", "user", "user"]


def test_azureml_failures_are_text_plain(started):
    emu = started("azureml")
    url, base = emu.token_url, {"api-version": "2017-09-01", "resource": ARM}

    def call(params=None, headers=None):
        r = requests.get(url, params=params or base, headers={"secret": emu.secret} if headers is None else headers,
                         timeout=5)
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8", r.text
        return r

    assert call(headers={}).status_code == 401
    assert call(headers={"secret": "wrong"}).status_code == 401
    r = call(params={**base, "clientid": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 400 and "No managed identity with client id" in r.text
    assert call(params={"resource": ARM}).status_code == 400  # api-version missing
    assert call(params={**base, "api-version": "2018-02-01"}).status_code == 400
    assert call(params={"api-version": "2017-09-01"}).status_code == 400  # resource missing
    r = call(params={**base, "resource": "https://nope.example/"})
    assert r.status_code == 400 and r.text.startswith("AADSTS500011")
    r = requests.post(url, params=base, headers={"secret": emu.secret}, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    # secrets never reach the request log
    assert all(emu.secret not in json.dumps(rec.to_dict()) for rec in emu.requests)


def test_azureml_sso_off_unavailable_expires_on_formats_and_mi_off(started):
    base = {"api-version": "2017-09-01", "resource": ARM}
    off = started("azureml", sso=False)
    r = requests.get(off.token_url, params=base, headers={"secret": off.secret}, timeout=5)
    assert off.verify(r.json()["access_token"])["oid"] == off.vm.system_identity.object_id
    unavailable = started("azureml", sso="unavailable")
    r = requests.get(unavailable.token_url, params=base, headers={"secret": unavailable.secret}, timeout=5)
    assert r.status_code == 400 and r.text == ("SSO failure: unable to retrieve a token. Error Token service "
                                               f"{unavailable.vm.name}. Token not found")
    as_string = started("azureml", azureml_expires_on="string")
    value = requests.get(as_string.token_url, params=base, headers={"secret": as_string.secret},
                         timeout=5).json()["expires_on"]
    assert isinstance(value, str) and value.isdigit()
    as_date = started("azureml", azureml_expires_on="date")
    value = requests.get(as_date.token_url, params=base, headers={"secret": as_date.secret},
                         timeout=5).json()["expires_on"]
    assert value.endswith(" +00:00") and value[2] == "/"
    mi_off = started("azureml", system_assigned=False, user_assigned=0)
    assert mi_off.environment["DEFAULT_IDENTITY_CLIENT_ID"] == "clientid"  # what the platform sets then
    r = requests.get(mi_off.token_url, params={**base, "clientid": "clientid"}, headers={"secret": mi_off.secret},
                     timeout=5)
    user_claims_ok(mi_off, r.json()["access_token"], ARM)


# ---- App Service ------------------------------------------------------------------------------------------
def test_appservice_protocol(started):
    emu = started("appservice")
    env = emu.environment
    assert env == {"IDENTITY_ENDPOINT": emu.imds_url + "/msi/token", "IDENTITY_HEADER": emu.secret}
    base = {"api-version": "2019-08-01", "resource": "https://vault.azure.net"}
    header = {"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}
    r = requests.get(env["IDENTITY_ENDPOINT"], params=base, headers=header, timeout=5)
    body = r.json()
    assert sorted(body) == ["access_token", "client_id", "expires_on", "resource", "token_type"]
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()
    assert body["client_id"] == emu.vm.system_identity.client_id and r.headers["Server"] == "Kestrel"
    assert int(body["expires_on"]) == emu.verify(body["access_token"], audience="https://vault.azure.net")["exp"]
    user = emu.vm.user_identities[0]
    for name, value in (("client_id", user.client_id), ("principal_id", user.object_id),
                        ("object_id", user.object_id), ("mi_res_id", user.resource_id)):
        r = requests.get(emu.imds_url + "/MSI/token/", params={**base, name: value}, headers=header, timeout=5)
        assert r.json()["client_id"] == user.client_id, name  # Windows' spelling of the path works too


def test_appservice_errors(started):
    emu = started("appservice")
    base = {"api-version": "2019-08-01", "resource": ARM}

    def call(params=None, headers=None):
        r = requests.get(emu.token_url, params=params or base,
                         headers={"X-IDENTITY-HEADER": emu.secret} if headers is None else headers, timeout=5)
        body = r.json()
        assert body["statusCode"] == r.status_code and body["correlationId"] == r.headers["X-CORRELATION-ID"]
        return r.status_code, body["message"]

    assert call(headers={})[0] == 401
    assert call(headers={"X-IDENTITY-HEADER": "wrong"})[0] == 401
    assert call(params={**base, "client_id": "00000000-0000-0000-0000-000000000000"}) == (
        400, "Unable to load the proper Managed Identity.")
    assert call(params={**base, "resource": "https://nope.example/"}) == (
        500, "An unexpected error occured while fetching the AAD Token.")
    status, message = call(params={**base, "client_id": "a", "mi_res_id": "b"})
    assert status == 400 and "client_id, mi_res_id" in message
    assert call(params={**base, "api-version": "2017-09-01"})[0] == 400


# ---- Arc ----------------------------------------------------------------------------------------------------
def test_arc_challenge_key_files_and_echo(started, tmp_path):
    key_dir = tmp_path / "agent" / "tokens"  # missing: created at start, removed at stop
    emu = started("arc", arc_key_dir=str(key_dir))
    assert emu.environment == {"IDENTITY_ENDPOINT": emu.imds_url + "/metadata/identity/oauth2/token",
                               "IMDS_ENDPOINT": emu.imds_url}
    params = {"api-version": "2020-06-01", "resource": ARM}
    first, second = arc_token(emu, params)
    assert first.status_code == 401 and first.headers["WWW-Authenticate"].startswith("Basic realm=")
    key_file = Path(first.headers["WWW-Authenticate"].split("=", 1)[1])
    assert key_file.parent == key_dir and key_file.suffix == ".key" and key_file.stat().st_size <= 4096
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    body = second.json()
    assert second.status_code == 200 and body["client_id"] == emu.vm.system_identity.client_id
    assert "msi_res_id" not in body and emu.verify(body["access_token"])["xms_mirid"] == emu.vm.system_identity.mirid
    user = emu.vm.user_identities[1]
    _, second = arc_token(emu, {**params, "msi_res_id": user.resource_id})
    assert second.json()["msi_res_id"] == user.resource_id and second.json()["client_id"] == user.client_id
    _, second = arc_token(emu, {**params, "mi_res_id": user.resource_id})  # not understood: system-assigned
    assert "msi_res_id" not in second.json() and second.json()["client_id"] == emu.vm.system_identity.client_id
    # the Authorization header is only ever logged as a fingerprint
    logged = [rec.headers.get("Authorization", "") for rec in emu.requests]
    assert any(v.startswith("Basic sha256:") for v in logged) and key_file.read_text() not in json.dumps(logged)
    emu.stop()
    assert not key_dir.exists() and not key_dir.parent.exists()


def test_arc_wrong_key_missing_header_and_selector_checks(started):
    emu = started("arc")
    params = {"api-version": "2020-06-01", "resource": ARM}
    r = requests.get(emu.token_url, params=params, headers={"Metadata": "true", "Authorization": "Basic nope"},
                     timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic realm=")  # a fresh challenge
    r = requests.get(emu.token_url, params=params, headers={"Authorization": "Basic nope"}, timeout=5)
    assert r.status_code == 400 and r.json()["error_description"] == "Required metadata header not specified"
    # a selector naming the system-assigned identity, or nothing, is refused before any challenge
    for selector in ({"client_id": emu.vm.system_identity.client_id}, {"object_id": "nobody"}):
        r = requests.get(emu.token_url, params={**params, **selector}, headers={"Metadata": "true"}, timeout=5)
        assert r.status_code == 400 and r.json() == {"error": "invalid_request", "error_description": "Identity not found"}
    _, second = arc_token(emu, {**params, "resource": "https://nope.example/"})
    assert second.status_code == 400 and second.json()["error"] == "invalid_resource"
    assert requests.get(emu.token_url, params={"resource": ARM}, headers={"Metadata": "true"}, timeout=5).status_code == 400


def test_arc_key_directory_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="cannot write Arc key files"):
        Emulator(profile="arc", arc_key_dir=str(blocker / "tokens"), arm=False).start()


# ---- Cloud Shell --------------------------------------------------------------------------------------------
def test_cloudshell_user_token_and_refusals(started):
    emu = started("cloudshell")
    env = emu.environment
    assert env == {"MSI_ENDPOINT": emu.imds_url + "/oauth2/token", "AZUREPS_HOST_ENVIRONMENT": "cloud-shell/1.0"}
    meta = {"Metadata": "true"}
    r = requests.post(env["MSI_ENDPOINT"], data={"resource": "https://management.azure.com"}, headers=meta, timeout=5)
    body = r.json()
    assert r.status_code == 200 and {"access_token", "expires_in", "expires_on", "resource", "token_type"} <= set(body)
    user_claims_ok(emu, body["access_token"], "https://management.azure.com")
    again = requests.post(env["MSI_ENDPOINT"], data={"resource": "https://management.azure.com"}, headers=meta,
                          timeout=5).json()
    assert again["access_token"] == body["access_token"]  # the local endpoint caches tokens
    r = requests.get(emu.imds_url + "/metadata/identity/oauth2/token", params={"resource": ARM}, headers=meta,
                     timeout=5)
    assert r.status_code == 200  # the IMDS-style GET seen on the same port

    def refused(data, headers=meta):
        r = requests.post(env["MSI_ENDPOINT"], data=data, headers=headers, timeout=5)
        return r.status_code, r.json()["error"]["code"], r.json()["error"]["message"]

    status, code, message = refused({"resource": "https://cognitiveservices.azure.com"})
    assert (status, code) == (400, "AudienceNotSupported")
    assert message.startswith("Audience https://cognitiveservices.azure.com is not a supported MSI token audience. "
                              "Supported audiences: https://management.core.windows.net/,")
    assert refused({"resource": ARM, "client_id": emu.vm.system_identity.client_id})[0] == 400
    assert refused({"resource": ARM}, headers={})[0] == 400
    assert refused({})[0] == 400
    r = requests.get(env["MSI_ENDPOINT"], params={"resource": ARM}, headers=meta, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_cloudshell_huge_and_garbage_bodies_do_not_hurt_it(started):
    emu = started("cloudshell")
    meta = {"Metadata": "true"}
    r = requests.post(emu.token_url, data=b"resource=" + b"A" * 200_000, headers=meta, timeout=10)
    assert r.status_code == 413 and r.json()["error"]["code"] == "RequestEntityTooLarge"
    r = requests.post(emu.token_url, data=b"x" * (2 << 20), headers=meta, timeout=10)
    assert r.status_code == 413  # beyond the server's own 1 MiB limit
    r = requests.post(emu.token_url, data=bytes(range(256)) * 10, headers=meta, timeout=5)
    assert r.status_code == 400
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:  # chunked body: never read
        sock.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nMetadata: true\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\nnot hex\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    r = requests.post(emu.token_url, data={"resource": ARM}, headers=meta, timeout=5)
    assert r.status_code == 200


@pytest.mark.parametrize("profile", ALL_HOST_PROFILES)
def test_garbage_headers_never_crash_a_profile(started, profile):
    emu = started(profile)
    nasty = [b"secret: \xff\xfe\x00x", b"X-IDENTITY-HEADER: \xe9\xe9", b"Authorization: Basic \xc3\x28",
             b"Metadata: " + b"t" * 60000, b"Authorization: " + b"=" * 5000, b"secret: a", b"secret: a"]
    path = emu.token_url.split(str(emu.port), 1)[1].encode()
    version = {"azureml": b"2017-09-01", "appservice": b"2019-08-01"}.get(profile, b"2020-06-01")
    method = b"POST" if profile == "cloudshell" else b"GET"
    for query in (b"resource=%ff%fe&api-version=\x7f", b"resource=https://vault.azure.net&api-version=" + version):
        for header in nasty:
            with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
                sock.sendall(method + b" " + path + b"?" + query + b" HTTP/1.1\r\nHost: x\r\nMetadata: true\r\n"
                             + header + b"\r\nContent-Length: 12\r\n\r\nresource=\xff\x00\xfe")
                answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 4"), answer[:300]
    assert requests.get(emu.imds_url + "/__emulator__/health", timeout=5).status_code == 200


# ---- faults, throttling and the request log on every profile ----------------------------------------------
ERROR_SHAPE = {
    "azureml": lambda r: r.headers["Content-Type"].startswith("text/plain"),
    "appservice": lambda r: r.json()["statusCode"] == r.status_code,
    "arc": lambda r: isinstance(r.json()["error"], str),
    "cloudshell": lambda r: isinstance(r.json()["error"]["code"], str),
}


def _plain_request(emu):
    if emu.profile == "cloudshell":
        return requests.post(emu.token_url, data={"resource": ARM}, headers={"Metadata": "true"}, timeout=5)
    params = {"azureml": {"api-version": "2017-09-01", "resource": ARM},
              "appservice": {"api-version": "2019-08-01", "resource": ARM},
              "arc": {"api-version": "2020-06-01", "resource": ARM}}[emu.profile]
    headers = {"secret": emu.secret, "X-IDENTITY-HEADER": emu.secret, "Metadata": "true"}
    return requests.get(emu.token_url, params=params, headers=headers, timeout=5)


@pytest.mark.parametrize("profile", ALL_HOST_PROFILES)
def test_faults_reach_every_profile_in_its_own_error_shape(started, profile):
    emu = started(profile)
    emu.inject(503, endpoint="token", retry_after=2)
    r = _plain_request(emu)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and ERROR_SHAPE[profile](r)
    assert emu.requests.last.fault == "503" and emu.requests.last.service == profile
    emu.inject("bad-expires", endpoint="token", variant="missing")
    r = _plain_request(emu)
    assert r.status_code == 200 and "access_token" in r.json() and "expires_on" not in r.json()
    emu.inject("truncated", endpoint="token")
    with pytest.raises(ValueError):
        _plain_request(emu).json()
    emu.inject("drop", endpoint="token")
    with pytest.raises(requests.ConnectionError):
        _plain_request(emu)
    # the admin endpoint injects too
    requests.post(emu.imds_url + "/__emulator__/faults", json={"fault": 500, "endpoint": "token"}, timeout=5,
                  headers=emu.admin_headers)
    assert _plain_request(emu).status_code == 500


@pytest.mark.parametrize("profile", ALL_HOST_PROFILES)
def test_throttling_applies_to_every_profile(started, profile):
    clock = VirtualClock(START)
    emu = started(profile, throttle=True, clock=clock)
    statuses = [_plain_request(emu).status_code for _ in range(25)]
    assert statuses.count(429) >= 5 and ERROR_SHAPE[profile](_plain_request(emu))
    clock.now += 1.5
    assert _plain_request(emu).status_code in (200, 401)  # Arc: the challenge


# ---- the command line -------------------------------------------------------------------------------------
def _serve(*args):
    proc = subprocess.Popen([sys.executable, "-m", "mi_notebook.cli", "emulator", "--no-arm", "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def test_cli_profile_prints_the_host_variables(tmp_path):
    proc = _serve("--profile", "azureml", "--sso", "off")
    try:
        first = proc.stdout.readline().rstrip("\n")
        exports = [proc.stdout.readline().rstrip("\n") for _ in range(3)]
        assert first.startswith("IMDS http://127.0.0.1:")
        env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports)
        assert all(line.startswith("export ") for line in exports)
        assert env["MSI_ENDPOINT"] == first.split(" ", 1)[1] + "/MSI/auth"
        r = requests.get(env["MSI_ENDPOINT"], params={"api-version": "2017-09-01", "resource": ARM},
                         headers={"secret": env["MSI_SECRET"]}, timeout=5)
        claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
        assert claims["appid"] == env["DEFAULT_IDENTITY_CLIENT_ID"]  # --sso off: the compute's identity
        assert r.headers[MARKER_HEADER] == "1"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_cli_arc_key_dir_problems_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "mi_notebook.cli", "emulator", "--no-arm", "--profile", "arc",
                           "--arc-key-dir", str(blocker / "tokens")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "cannot write Arc key files" in proc.stderr and proc.stdout == ""
    proc = subprocess.run([sys.executable, "-m", "mi_notebook.cli", "emulator", "--profile", "vm", "--sso", "off"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "sso only applies" in proc.stderr


def test_cli_vm_profile_prints_the_export_lines_a_second_shell_needs():
    proc = _serve("--profile", "vm")
    try:
        first = proc.stdout.readline()
        assert first.startswith("IMDS ")
        url = first.split(" ", 1)[1].strip()
        assert proc.stdout.readline().rstrip("\n") == f"export MI_NOTEBOOK_IMDS_URL={url}"
        second = proc.stdout.readline()
        requests.get(url + "/__emulator__/health", timeout=5)
    finally:
        proc.terminate()
        rest = proc.stdout.read()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    # a VM sets no variable of its own: the URL, then the control plane's token, and nothing more (--no-arm)
    assert proc.returncode == 0 and second.startswith("export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN=") and rest == ""


def test_stop_removes_arc_key_files_even_after_many_challenges(tmp_path):
    key_dir = tmp_path / "tokens"
    key_dir.mkdir()
    (key_dir / "someone-elses.key").write_text("keep me")
    with Emulator(profile="arc", arc_key_dir=str(key_dir), throttle=False, arm=False) as emu:
        for _ in range(70):
            requests.get(emu.token_url, params={"api-version": "2020-06-01", "resource": ARM},
                         headers={"Metadata": "true"}, timeout=5)
        assert len(os.listdir(key_dir)) == 65  # at most 64 of ours at a time
    assert os.listdir(key_dir) == ["someone-elses.key"]  # ours are gone; the directory was not ours to remove
