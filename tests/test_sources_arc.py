"""Azure Arc's himds protocol: the 401 challenge, every key-file check (in a temporary key directory),
the authorised repeat, user-assigned identities and their confirmation, and from_environment."""

from __future__ import annotations

import os

import pytest
from test_sources_common import (
    ARC_URL,
    CLIENT_ID,
    KEY,
    NOW,
    OBJECT_ID,
    RESOURCE_ID,
    arc_keys,
    body,
    challenged,
    jwt_token,
    ok,
)

from mi_notebook import errors
from mi_notebook.clock import VirtualClock
from mi_notebook.http import MockTransport
from mi_notebook.identity import Identity
from mi_notebook.sources import ArcSource
from mi_notebook.sources.arc import default_key_dir

OTHER_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def keys(tmp_path):
    return arc_keys(tmp_path)  # (key directory, a key file in it)


def source(key_dir, agent, **kw):
    mock = MockTransport(agent)
    return ArcSource(ARC_URL, key_dir=key_dir, transport=mock, clock=VirtualClock(NOW), **kw), mock


def refused(src, *args):
    with pytest.raises(errors.HostConfigurationError) as caught:
        src.request_token("arm", *args)
    err = caught.value
    assert err.status == 401 and len(err.timeline) == 1 and err.timeline[0].outcome == "failed"
    assert KEY not in str(err) and KEY not in repr(err.timeline.to_dict())
    return err


# --- the challenge ------------------------------------------------------------------------------------------
def test_challenge_then_the_authorised_request(keys):
    key_dir, path = keys
    src, mock = source(key_dir, challenged(path, ok()))
    tok = src.request_token("arm")
    first, second = mock.requests
    for request in (first, second):
        assert (request.method, request.url, request.headers["Metadata"]) == ("GET", ARC_URL, "true")
        assert list(request.params) == [("api-version", "2020-06-01"), ("resource", "https://management.azure.com/")]
    assert "Authorization" not in first.headers and second.headers["Authorization"] == f"Basic {KEY}"
    assert tok.host == "arc" and len(tok.timeline) == 1


def test_a_quoted_realm_and_a_trailing_newline(tmp_path):
    key_dir, path = arc_keys(tmp_path, contents=KEY + "\n")
    src, mock = source(key_dir, lambda r: (401, {"www-authenticate": f'Basic realm="{path}"'}, b"")
                       if "Authorization" not in r.headers else (200, {}, body()))
    src.request_token("arm")
    assert mock.requests[1].headers["Authorization"] == f"Basic {KEY}"


def test_an_answer_without_challenge_is_taken_as_it_comes(keys):
    src, mock = source(keys[0], ok())
    src.request_token("arm")
    assert len(mock.requests) == 1


def test_every_retry_answers_a_new_challenge(keys):
    key_dir, path = keys
    answers = iter([(503, {}, b"")])
    src, mock = source(key_dir, challenged(path, lambda r: next(answers, (200, {}, body()))))
    assert src.request_token("arm").timeline.statuses == ["503", "200"]
    assert ["Authorization" in r.headers for r in mock.requests] == [False, True, False, True]


def test_the_key_refused_again(keys):
    key_dir, path = keys
    src, _ = source(key_dir, challenged(path, lambda r: (401, {"WWW-Authenticate": f"Basic realm={path}"}, b"")))
    with pytest.raises(errors.BadRequestError, match="refused the request's credentials") as caught:
        src.request_token("arm")
    assert "keys are made per request" in caught.value.hint and KEY not in str(caught.value)


@pytest.mark.parametrize("header", [None, "", "Bearer realm=/x", "Basic", "Basic realm=", "Basic charset=UTF-8"])
def test_a_challenge_without_a_realm_names_the_header(keys, header):
    headers = {} if header is None else {"WWW-Authenticate": header}
    src, mock = source(keys[0], lambda r: (401, headers, b""))
    err = refused(src)
    assert "WWW-Authenticate" in str(err) or "realm" in str(err)
    assert len(mock.requests) == 1


# --- the key file -------------------------------------------------------------------------------------------
def test_a_file_outside_the_key_directory_is_not_read(tmp_path, keys):
    outside = tmp_path / "elsewhere.key"
    outside.write_text(KEY)
    src, mock = source(keys[0], challenged(outside, ok()))
    err = refused(src)
    assert "not directly inside the key directory" in str(err) and len(mock.requests) == 1


def test_a_subdirectory_and_a_dotdot_escape_are_refused(keys):
    key_dir, _ = keys
    (key_dir / "sub").mkdir()
    (key_dir / "sub" / "x.key").write_text(KEY)
    for path in (key_dir / "sub" / "x.key", f"{key_dir}/../tokens/../x.key"):
        src, _ = source(key_dir, challenged(path, ok()))
        refused(src)


def test_a_symlink_out_of_the_key_directory_is_refused(tmp_path, keys):
    key_dir, _ = keys
    target = tmp_path / "secret.key"
    target.write_text(KEY)
    (key_dir / "link.key").symlink_to(target)
    src, _ = source(key_dir, challenged(key_dir / "link.key", ok()))
    refused(src)


def test_only_key_files(keys):
    key_dir, _ = keys
    (key_dir / "note.txt").write_text(KEY)
    src, _ = source(key_dir, challenged(key_dir / "note.txt", ok()))
    assert "not a .key file" in str(refused(src))


@pytest.mark.parametrize(("size", "fine"), [(4096, True), (4097, False)])
def test_the_size_limit(tmp_path, size, fine):
    key_dir, path = arc_keys(tmp_path, contents="k" * size)
    src, mock = source(key_dir, challenged(path, ok()))
    if fine:
        src.request_token("arm")
        assert mock.requests[1].headers["Authorization"] == "Basic " + "k" * 4096
    else:
        assert "4097 bytes" in str(refused(src))


@pytest.mark.parametrize("contents", ["", "  \n", "two\nlines", "bad\x00byte"])
def test_unusable_contents(tmp_path, contents):
    key_dir, path = arc_keys(tmp_path, contents=contents)
    src, _ = source(key_dir, challenged(path, ok()))
    assert "contents not shown" in str(refused(src))


def test_a_missing_file_and_a_directory(keys):
    key_dir, _ = keys
    (key_dir / "dir.key").mkdir()
    for name, phrase in (("gone.key", "does not exist"), ("dir.key", "not a regular file")):
        src, _ = source(key_dir, challenged(key_dir / name, ok()))
        assert phrase in str(refused(src))


def test_permission_denied_says_join_the_himds_group(keys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("mi_notebook.sources.arc.open", denied, raising=False)
    key_dir, path = keys
    src, mock = source(key_dir, challenged(path, ok()))
    err = refused(src)
    assert "sudo usermod -a -G himds $USER" in err.hint and "log in again" in err.hint
    assert "permission denied" in str(err) and len(mock.requests) == 1


def test_no_key_directory_on_this_platform(keys, monkeypatch):
    src, _ = source(keys[0], challenged(keys[1], ok()))
    src.key_dir = None
    assert "no Arc key directory" in str(refused(src))


def test_default_key_directories():
    assert default_key_dir("linux") == "/var/opt/azcmagent/tokens"
    assert default_key_dir("win32", {"PROGRAMDATA": "C:\\ProgramData"}) == os.path.join(
        "C:\\ProgramData", "AzureConnectedMachineAgent", "Tokens")
    assert default_key_dir("win32", {}) is None and default_key_dir("darwin") is None
    assert ArcSource().key_dir == default_key_dir()


# --- user-assigned identities and their confirmation ------------------------------------------------------------
@pytest.mark.parametrize(("identity", "param"), [
    (Identity.user(client_id=CLIENT_ID), ("client_id", CLIENT_ID)),
    (Identity.user(object_id=OBJECT_ID), ("object_id", OBJECT_ID)),
    (Identity.user(resource_id=RESOURCE_ID), ("msi_res_id", RESOURCE_ID)),
])
def test_selectors_and_an_echo_confirm(keys, identity, param):
    echo = {param[0]: param[1].upper() if param[0] != "msi_res_id" else param[1].lower()}
    src, mock = source(keys[0], challenged(keys[1], lambda r: (200, {}, body(**echo))))
    tok = src.request_token("arm", identity)
    assert all(r.params[-1] == param for r in mock.requests) and tok.identity == identity


def test_mi_res_id_echo_is_accepted(keys):
    src, _ = source(keys[0], challenged(keys[1], lambda r: (200, {}, body(mi_res_id=RESOURCE_ID))))
    src.request_token("arm", Identity.user(resource_id=RESOURCE_ID))


@pytest.mark.parametrize(("selector", "claims"), [
    ("client_id", {"appid": CLIENT_ID}), ("client_id", {"azp": CLIENT_ID}),
    ("object_id", {"oid": OBJECT_ID}), ("resource_id", {"xms_mirid": RESOURCE_ID.lower()})])
def test_the_tokens_claims_confirm_without_an_echo(keys, selector, claims):
    value = {"client_id": CLIENT_ID, "object_id": OBJECT_ID, "resource_id": RESOURCE_ID}[selector]
    src, _ = source(keys[0], challenged(keys[1], lambda r: (200, {}, body(jwt_token(**claims)))))
    src.request_token("arm", Identity.user(**{selector: value}))


@pytest.mark.parametrize(("answer", "phrase"), [
    (body(), "neither the answer nor the token names any identity"),
    (body(client_id=OTHER_ID), f"the answer's client_id is '{OTHER_ID}'"),
    (body(jwt_token(appid=OTHER_ID, xms_mirid="/subscriptions/s/providers/Microsoft.Compute/virtualMachines/vm")),
     f"the token's appid claim is '{OTHER_ID}'"),
    (body(jwt_token(appid=OTHER_ID), client_id=CLIENT_ID), f"the token's appid claim is '{OTHER_ID}'"),
])
def test_an_unconfirmed_identity_is_refused(keys, answer, phrase):
    src, mock = source(keys[0], challenged(keys[1], lambda r: (200, {}, answer)))
    with pytest.raises(errors.IdentityNotFoundError) as caught:
        src.request_token("arm", Identity.user(client_id=CLIENT_ID))
    err = caught.value
    assert phrase in str(err) and "returned the system-assigned identity's token" in str(err)
    assert len(err.timeline) == 1 and err.timeline[0].status == 200 and err.timeline[0].outcome == "failed"
    assert "azcmagent version" in err.hint and len(mock.requests) == 2


def test_system_assigned_needs_no_confirmation(keys):
    src, _ = source(keys[0], challenged(keys[1], lambda r: (200, {}, body(client_id=OTHER_ID))))
    assert src.request_token("arm").identity == Identity.system()


# --- from_environment ------------------------------------------------------------------------------------------------
def test_from_environment(keys):
    src = ArcSource.from_environment({"IDENTITY_ENDPOINT": ARC_URL, "IMDS_ENDPOINT": "http://127.0.0.1:40342"},
                                     key_dir=keys[0])
    assert src.endpoint == ARC_URL and src.key_dir == str(keys[0])


@pytest.mark.parametrize(("env", "named"), [
    ({"IMDS_ENDPOINT": "http://127.0.0.1:40342"}, "IDENTITY_ENDPOINT"),
    ({"IDENTITY_ENDPOINT": ARC_URL, "IMDS_ENDPOINT": "localhost:40342"}, "IMDS_ENDPOINT"),
])
def test_from_environment_names_the_bad_variable(env, named):
    with pytest.raises(errors.HostConfigurationError, match=named):
        ArcSource.from_environment(env)
