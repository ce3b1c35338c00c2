"""Edge inputs to the hosts' settings (issue 24, findings 7, 8 and 10): a host secret outside ASCII, a
malformed Arc realm, user info in an endpoint URL. Each is refused with a ``HostConfigurationError`` that
says what to do, before any request (or, for Arc, after the challenge and before any file is read), and
never shows the secret."""

from __future__ import annotations

import os
import pickle

import pytest
from test_sources_common import ARC_URL, AS_URL, ML_URL, NOW, arc_keys, challenged, ok

import mi_notebook as mi
from mi_notebook import errors
from mi_notebook.arm_client import ArmClient
from mi_notebook.clock import VirtualClock
from mi_notebook.http import MockTransport
from mi_notebook.sources import AppServiceSource, ArcSource, AzureMlSource, Secret
from mi_notebook.sources._settings import check_endpoint, check_secret

pytestmark = pytest.mark.usefixtures("clean_connection")

TAIL = "TAILVALUE-9f2c41"
NON_ASCII = [f"s\u20accret-{TAIL}",  # outside Latin-1: http.client cannot encode it at all
             f"s\u00e9cret-{TAIL}",  # Latin-1 but not ASCII: no real host secret looks like it
             f"\u0441ecret-{TAIL}"]  # a Cyrillic look-alike


def _shows_nothing(err: BaseException, secret: str) -> None:
    """Neither the error nor anything it carries holds the secret (or its tail)."""
    texts = [str(err), repr(err), repr(err.args), repr(vars(err)), repr(err.__cause__), repr(err.__context__)]
    if isinstance(err, errors.ManagedIdentityError):
        texts.append(repr(err.to_dict()))
    for text in texts:
        assert secret not in text and TAIL not in text, text


# --- finding 7: a host secret outside ASCII ---------------------------------------------------------------
@pytest.mark.parametrize("secret", NON_ASCII)
def test_check_secret_refuses_a_non_ascii_secret_without_showing_it(secret):
    with pytest.raises(errors.HostConfigurationError, match="outside ASCII") as caught:
        check_secret(secret, "MSI_SECRET")
    assert "MSI_SECRET" in str(caught.value) and caught.value.hint
    _shows_nothing(caught.value, secret)


@pytest.mark.parametrize("secret", NON_ASCII)
def test_a_secret_already_wrapped_is_checked_too(secret):
    with pytest.raises(errors.HostConfigurationError, match="outside ASCII") as caught:
        AzureMlSource(ML_URL, Secret(secret))
    _shows_nothing(caught.value, secret)


@pytest.mark.parametrize("secret", NON_ASCII)
@pytest.mark.parametrize("host", ["azureml", "appservice"])
def test_a_non_ascii_host_secret_is_refused_before_any_request(host, secret):
    mock = MockTransport(ok())
    build = {"azureml": lambda: AzureMlSource.from_environment(
                 {"MSI_ENDPOINT": ML_URL, "MSI_SECRET": secret}, transport=mock),
             "appservice": lambda: AppServiceSource.from_environment(
                 {"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": secret}, transport=mock)}[host]
    with pytest.raises(errors.HostConfigurationError) as caught:
        build().request_token("arm")
    assert not isinstance(caught.value.__context__, UnicodeError)
    assert mock.requests == []
    _shows_nothing(caught.value, secret)


def test_connect_refuses_a_non_ascii_secret_as_a_host_error():
    secret = NON_ASCII[0]
    env = {"MSI_ENDPOINT": "http://127.0.0.1:9/MSI/auth", "MSI_SECRET": secret}
    with pytest.raises(errors.HostConfigurationError) as caught:
        mi.connect(host="azureml", environ=env).get_token("arm")
    _shows_nothing(caught.value, secret)


@pytest.mark.parametrize("contents", ["k\u00e9y-" + TAIL, "k\u20acy-" + TAIL])
def test_an_arc_key_outside_ascii_is_refused_and_never_sent(tmp_path, contents):
    key_dir, path = arc_keys(tmp_path, contents=contents)
    mock = MockTransport(challenged(path, ok()))
    src = ArcSource(ARC_URL, key_dir=key_dir, transport=mock, clock=VirtualClock(NOW))
    with pytest.raises(errors.HostConfigurationError, match="outside ASCII") as caught:
        src.request_token("arm")
    assert len(mock.requests) == 1  # the challenge only: the key never went out
    _shows_nothing(caught.value, contents)


def test_the_error_of_a_refused_secret_pickles_without_it():
    with pytest.raises(errors.HostConfigurationError) as caught:
        check_secret(NON_ASCII[0], "IDENTITY_HEADER")
    assert TAIL.encode() not in pickle.dumps(caught.value)


# --- finding 8: a malformed Arc realm ---------------------------------------------------------------------
def _realms(key_dir) -> dict[str, str]:
    loop = os.path.join(key_dir, "loop.key")
    os.symlink(loop, loop)  # a link to itself: stat fails with ELOOP
    deep = os.path.join(key_dir, "d" * 250)
    return {
        "NUL byte": os.path.join(key_dir, "x\x00.key"),
        "name over 255 bytes": os.path.join(key_dir, "a" * 300 + ".key"),
        "path over PATH_MAX": os.path.join(key_dir, *(["d" * 250] * 20), "x.key"),
        "lone surrogate": os.path.join(key_dir, "\ud800.key"),
        "symlink loop": loop,
        "a directory of the name": deep + os.sep,
        "only the directory": str(key_dir),
    }


REALM_CASES = ["NUL byte", "name over 255 bytes", "path over PATH_MAX", "lone surrogate", "symlink loop",
               "a directory of the name", "only the directory"]


@pytest.mark.parametrize("case", REALM_CASES)
def test_every_malformed_arc_realm_is_a_host_configuration_error(tmp_path, case):
    key_dir, _ = arc_keys(tmp_path)
    realm = _realms(str(key_dir))[case]
    mock = MockTransport(challenged(realm, ok()))
    src = ArcSource(ARC_URL, key_dir=key_dir, transport=mock, clock=VirtualClock(NOW))
    with pytest.raises(errors.ManagedIdentityError) as caught:
        src.request_token("arm")
    err = caught.value
    assert isinstance(err, errors.HostConfigurationError), type(err)
    assert err.hint and err.status == 401 and err.timeline is not None
    assert len(mock.requests) == 1  # the challenge; nothing was sent with a key
    assert len(str(err)) < 2000  # an over-long realm is cut, not echoed in full


@pytest.mark.parametrize("case", REALM_CASES)
def test_read_key_itself_never_raises_outside_the_error_tree(tmp_path, case):
    key_dir, _ = arc_keys(tmp_path)
    with pytest.raises(errors.HostConfigurationError):
        ArcSource(ARC_URL, key_dir=key_dir).read_key(_realms(str(key_dir))[case])


def test_a_key_dir_with_a_nul_byte_is_refused_as_a_host_error(tmp_path):
    key_dir, path = arc_keys(tmp_path)
    with pytest.raises(errors.HostConfigurationError):
        ArcSource(ARC_URL, key_dir=str(key_dir) + "\x00x").read_key(str(path))


# --- finding 10: user info in an endpoint URL --------------------------------------------------------------
USER_INFO = ["http://127.0.0.1:1@192.0.2.9/msi/token",  # reads as loopback, goes to 192.0.2.9
             "http://@192.0.2.9/msi/token",  # an empty user name is user info too
             "http://:@127.0.0.1:1/msi/token",
             "http://looks-local:pw@127.0.0.1:4141/msi/token",
             "http://user@[::1]:4141/msi/token"]


@pytest.mark.parametrize("url", USER_INFO)
def test_check_endpoint_refuses_any_user_info(url):
    with pytest.raises(errors.HostConfigurationError, match="user info") as caught:
        check_endpoint(url, "IDENTITY_ENDPOINT")
    assert caught.value.hint


@pytest.mark.parametrize("url", USER_INFO)
def test_the_hosts_refuse_user_info_before_any_request(url):
    mock = MockTransport(ok())
    with pytest.raises(errors.HostConfigurationError, match="user info"):
        AppServiceSource.from_environment({"IDENTITY_ENDPOINT": url, "IDENTITY_HEADER": "h"}, transport=mock)
    with pytest.raises(errors.HostConfigurationError, match="user info"):
        AzureMlSource(url, "s", transport=mock)
    with pytest.raises(errors.HostConfigurationError, match="user info"):
        ArcSource(url, transport=mock)
    assert mock.requests == []


@pytest.mark.parametrize("url", ["http://@127.0.0.1:8443", "http://u:p@127.0.0.1:8443", "https://@management.azure.com"])
def test_arm_refuses_user_info_too(url):
    with pytest.raises(ValueError, match="user"):
        ArmClient(url)


def test_an_at_sign_elsewhere_is_not_user_info():
    assert check_endpoint("http://127.0.0.1:1/msi/token?x=a@b", "E") == "http://127.0.0.1:1/msi/token?x=a@b"
    assert check_endpoint("http://127.0.0.1:1/a@b/token", "E") == "http://127.0.0.1:1/a@b/token"
