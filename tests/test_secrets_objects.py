"""No secret in an object a user can dump (issue 24, findings 3 and 11): a detection keeps only the
variables the sources read, its secrets wrapped; a token's ``dataclasses.asdict`` holds no token; the
Azure SDK token shapes refuse pickling. Every way of dumping is tried: ``asdict``, ``astuple``, ``vars``,
``copy.deepcopy``, ``pickle``, ``json.dumps(..., default=str)``.

The whole-package sweep over every host profile is tests/test_secrets_dump.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest

import mi_notebook as mi
from mi_notebook import errors
from mi_notebook.detection import detect
from mi_notebook.sdk_credential import SdkAccessToken, SdkAccessTokenInfo
from mi_notebook.secret import Secret
from mi_notebook.sources._user import as_user_token
from mi_notebook.tokens import AccessToken

pytestmark = pytest.mark.usefixtures("clean_connection")

MSI_SECRET = "REAL-MSI-SECRET-VALUE-5b9e"
HEADER = "REAL-IDENTITY-HEADER-0c7d"
SP_SECRET = "SP-CLIENT-SECRET-a41f"
PASSWORD = "AZURE-PASSWORD-77e2"
UNRELATED = "UNRELATED-SETTING-3d0a"
SECRETS = (MSI_SECRET, HEADER, SP_SECRET, PASSWORD, UNRELATED)
TOKEN = "eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.SIGNATURE-PART-ab12cd"
EXTRA = {"AZURE_CLIENT_SECRET": SP_SECRET, "AZURE_PASSWORD": PASSWORD, "SOME_OTHER_SETTING": UNRELATED,
         "AZURE_CLIENT_ID": "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"}
ENVIRONS = {
    "azureml": {"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth", "MSI_SECRET": MSI_SECRET, **EXTRA},
    "appservice": {"IDENTITY_ENDPOINT": "http://127.0.0.1:4141/msi/token", "IDENTITY_HEADER": HEADER, **EXTRA},
    "servicefabric": {"IDENTITY_ENDPOINT": "https://127.0.0.1:2377/metadata/identity/oauth2/token",
                      "IDENTITY_HEADER": HEADER, "IDENTITY_SERVER_THUMBPRINT": "AB" * 20, **EXTRA},
    "arc": {"IDENTITY_ENDPOINT": "http://127.0.0.1:40342/metadata/identity/oauth2/token",
            "IMDS_ENDPOINT": "http://127.0.0.1:40342", **EXTRA},
    "cloudshell": {"MSI_ENDPOINT": "http://127.0.0.1:50342/oauth2/token", **EXTRA},
    "vm": dict(EXTRA),
}


def dumps(obj) -> dict[str, str]:
    """Every text a dump of ``obj`` gives (a dump that refuses is recorded as its error's text)."""
    out: dict[str, str] = {}

    def attempt(name, make):
        try:
            out[name] = make()
        except Exception as exc:  # a refusal is fine; its message is scanned too
            out[name] = f"refused: {type(exc).__name__}: {exc}"

    attempt("repr", lambda: repr(obj))
    attempt("str", lambda: str(obj))
    if dataclasses.is_dataclass(obj):
        attempt("asdict", lambda: json.dumps(dataclasses.asdict(obj), default=str))
        attempt("asdict-repr", lambda: repr(dataclasses.asdict(obj)))
        attempt("astuple", lambda: repr(dataclasses.astuple(obj)))
    attempt("vars", lambda: repr(vars(obj)))
    attempt("deepcopy", lambda: repr(vars(copy.deepcopy(obj))) if hasattr(obj, "__dict__") else repr(copy.deepcopy(obj)))
    attempt("pickle", lambda: pickle.dumps(obj).decode("latin-1"))
    return out


def leaks(texts: dict[str, str], secrets=SECRETS) -> list[tuple[str, str]]:
    return [(how, s) for how, text in texts.items() for s in secrets if s in text]


# --- finding 3: a detection keeps only what the sources read, secrets wrapped -------------------------------
@pytest.mark.parametrize("host", sorted(ENVIRONS))
def test_no_dump_of_a_detection_shows_a_secret_or_an_unrelated_variable(host):
    found = detect(ENVIRONS[host], sysfs_root="/nonexistent", himds_path="/nonexistent")
    assert found.host == host
    texts = dumps(found)
    assert not leaks(texts), leaks(texts)
    assert not texts["pickle"].startswith("refused"), texts["pickle"]  # it pickles, without them


@pytest.mark.parametrize("host", ["azureml", "appservice", "cloudshell"])
def test_no_dump_of_a_connections_detection_shows_a_secret(host):
    conn = mi.connect(source=host, environ=ENVIRONS[host])
    texts = dumps(conn.detection)
    assert not leaks(texts), leaks(texts)


def test_the_default_environment_is_not_kept_either(monkeypatch):
    for name, value in ENVIRONS["azureml"].items():
        monkeypatch.setenv(name, value)
    texts = dumps(mi.detect(sysfs_root="/nonexistent", himds_path="/nonexistent"))
    assert not leaks(texts), leaks(texts)
    assert not texts["pickle"].startswith("refused"), texts["pickle"]  # not an accident of os.environ


def test_an_emulator_connections_detection_pickles_without_the_header():
    conn = mi.connect(mode="emulator", profile="appservice")
    header = conn.emulator.environment["IDENTITY_HEADER"]
    assert header.encode() not in pickle.dumps(conn.detection)
    assert header not in json.dumps(dataclasses.asdict(conn.detection), default=str)


def test_a_detection_still_builds_its_source_and_shows_which_variables_were_seen():
    found = detect(ENVIRONS["azureml"], sysfs_root="/nonexistent", himds_path="/nonexistent")
    source = found.build_source()
    assert source.host == "azureml" and source._secret == Secret(MSI_SECRET)
    assert found.variables["MSI_SECRET"] == "(value hidden)"
    assert "AZURE_CLIENT_SECRET" not in found.variables and "SOME_OTHER_SETTING" not in found.variables


def test_a_pickled_detection_says_its_secret_stayed_behind():
    found = pickle.loads(pickle.dumps(detect(ENVIRONS["appservice"], sysfs_root="/x", himds_path="/x")))
    assert (found.host, found.endpoint) == ("appservice", "http://127.0.0.1:4141/msi/token")
    with pytest.raises(errors.HostConfigurationError, match="left behind"):
        found.build_source()
    # a detection without secrets rebuilds its source on the other side
    cloud = pickle.loads(pickle.dumps(detect(ENVIRONS["cloudshell"], sysfs_root="/x", himds_path="/x")))
    assert cloud.build_source().endpoint == "http://127.0.0.1:50342/oauth2/token"


# --- finding 11: tokens ---------------------------------------------------------------------------------------
def _tokens():
    plain = AccessToken(TOKEN, resource="https://management.azure.com/", expires_on=2_000_000_000, fetched_at=1)
    return {"plain": plain, "user": as_user_token(plain, "a person's token"),
            "cached": plain.served_from_cache()}


@pytest.mark.parametrize("kind", ["plain", "user", "cached"])
def test_no_dump_of_a_token_holds_it(kind):
    token = _tokens()[kind]
    texts = dumps(token)
    pieces = (TOKEN, "SIGNATURE-PART", TOKEN.split(".")[1])
    assert not leaks(texts, pieces), leaks(texts, pieces)
    assert token.reveal() == TOKEN and token.to_dict(include_token=True)["token"] == TOKEN  # the explicit ways stay


def test_a_token_inside_a_users_dataclass_stays_hidden_under_asdict():
    @dataclasses.dataclass
    class Holder:
        token: AccessToken
        tokens: list

    held = Holder(_tokens()["plain"], [_tokens()["user"]])
    assert TOKEN not in json.dumps(dataclasses.asdict(held), default=str)
    assert TOKEN not in repr(dataclasses.astuple(held))


def test_a_token_rebuilt_by_replace_is_the_same_token():
    token = _tokens()["plain"]
    again = dataclasses.replace(token, resource="https://vault.azure.net")
    assert again.reveal() == TOKEN and again.fingerprint == token.fingerprint


@pytest.mark.parametrize("shape", ["token", "info"])
def test_the_sdk_token_shapes_refuse_pickling_but_copy(shape):
    value = (SdkAccessToken(TOKEN, 2_000_000_000) if shape == "token"
             else SdkAccessTokenInfo(TOKEN, 2_000_000_000, refresh_on=1_999_990_000))
    with pytest.raises(TypeError, match="refuses to be pickled") as caught:
        pickle.dumps(value)
    assert TOKEN not in str(caught.value)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [value]})
    for made in (copy.copy(value), copy.deepcopy(value)):
        assert made.token == TOKEN and made.expires_on == 2_000_000_000  # copies still work
    assert TOKEN not in repr(value) and TOKEN not in str(value)


def test_the_sdk_token_still_behaves_as_azure_cores_named_tuple():
    value = SdkAccessToken(TOKEN, 2_000_000_000)
    token, expires_on = value
    assert (token, expires_on) == (TOKEN, 2_000_000_000) and value[0] == TOKEN
    assert value._replace(expires_on=5).expires_on == 5 and isinstance(value, tuple)


@pytest.mark.filterwarnings("ignore::mi_notebook.sdk_credential.EmulatorTokenWarning")
def test_a_credential_never_pickles_a_token():
    conn = mi.connect(mode="emulator")
    cred = mi.credential(connection=conn)
    issued = cred.get_token("https://management.azure.com/.default").token
    texts = dumps(cred)
    assert not leaks(texts, (issued,)), leaks(texts, (issued,))
