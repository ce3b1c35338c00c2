"""Azure ML's MSI_ENDPOINT protocol: the request, DEFAULT_IDENTITY_CLIENT_ID, refused selectors, the SSO
user token flag, text/plain failures, and from_environment."""

from __future__ import annotations

import logging
import warnings

import pytest
from test_sources_common import (
    CLIENT_ID,
    EXPIRES,
    ML_URL,
    NOW,
    OBJECT_ID,
    RESOURCE_ID,
    SECRET,
    body,
    jwt_token,
    ok,
)

from mi_notebook import errors
from mi_notebook.clock import VirtualClock
from mi_notebook.http import MockTransport
from mi_notebook.identity import Identity
from mi_notebook.sources import AzureMlSource, UserAccessToken, UserTokenWarning

ENV = {"MSI_ENDPOINT": ML_URL, "MSI_SECRET": SECRET}
OTHER_ID = "11111111-2222-3333-4444-555555555555"
SSO_TEXT = "SSO failure: unable to retrieve a token. Error Token service my-compute01. Token not found"


def source(handler=None, **kw):
    mock = MockTransport(handler or ok())
    return AzureMlSource(ML_URL, SECRET, transport=mock, clock=VirtualClock(NOW), **kw), mock


def test_the_request_is_the_protocol():
    src, mock = source()
    src.request_token("https://vault.azure.net/.default")
    (request,) = mock.requests
    assert (request.method, request.url, request.data) == ("GET", ML_URL, None)
    assert list(request.params) == [("api-version", "2017-09-01"), ("resource", "https://vault.azure.net")]
    assert request.headers["secret"] == SECRET and "Metadata" not in request.headers


def test_a_client_id_goes_as_clientid():
    src, mock = source()
    tok = src.request_token("arm", Identity.user(client_id=CLIENT_ID))
    assert mock.requests[0].params[-1] == ("clientid", CLIENT_ID)
    assert tok.identity == Identity.user(client_id=CLIENT_ID)


def test_default_identity_is_sent_when_none_is_named(caplog):
    caplog.set_level(logging.INFO, logger="mi_notebook.sources")
    src, mock = source(default_client_id=CLIENT_ID.upper())
    tok = src.request_token("arm")
    assert mock.requests[0].params[-1] == ("clientid", CLIENT_ID)
    assert tok.identity == Identity.user(client_id=CLIENT_ID)
    assert src.default_client_id == CLIENT_ID and f"DEFAULT_IDENTITY_CLIENT_ID={CLIENT_ID}" in src.note
    assert f"DEFAULT_IDENTITY_CLIENT_ID={CLIENT_ID}" in caplog.text


def test_a_named_identity_wins_over_the_default():
    src, mock = source(default_client_id=CLIENT_ID)
    src.request_token("arm", f"client_id={OTHER_ID}")
    assert mock.requests[0].params[-1] == ("clientid", OTHER_ID)


@pytest.mark.parametrize("identity", [Identity.user(object_id=OBJECT_ID), Identity.user(resource_id=RESOURCE_ID),
                                      f"object_id={OBJECT_ID}"])
def test_object_and_resource_ids_are_refused_before_any_request(identity):
    src, mock = source(default_client_id=CLIENT_ID)
    with pytest.raises(ValueError, match="client id only"):
        src.request_token("arm", identity)
    assert mock.requests == []


def test_a_bad_default_client_id_in_the_constructor():
    with pytest.raises(ValueError, match="default_client_id"):
        AzureMlSource(ML_URL, SECRET, default_client_id="my-identity")


# --- the SSO user token -----------------------------------------------------------------------------------
USER_CLAIMS = [{"idtyp": "user", "upn": "ada@contoso.com"}, {"upn": "ada@contoso.com"},
               {"unique_name": "ada@contoso.com"}, {"scp": "user_impersonation"}]


@pytest.mark.parametrize("claims", USER_CLAIMS)
def test_a_user_token_is_flagged_loudly(claims):
    src, _ = source(lambda r: (200, {}, body(jwt_token(**claims))))
    with pytest.warns(UserTokenWarning) as seen:
        tok = src.request_token("arm")
    message = str(seen[0].message)
    assert "this is your own user token, not the compute's managed identity" in message.lower()
    assert "DEFAULT_IDENTITY_CLIENT_ID" in message and "client_id=<guid>" in message
    assert seen[0].filename == __file__  # points at the caller
    assert isinstance(tok, UserAccessToken) and tok.is_user_token and tok.user_token_reason == message
    assert "user token" in repr(tok) and "USER TOKEN" in str(tok) and "not a managed identity" in tok._repr_html_()
    assert tok.served_from_cache().is_user_token and tok.timeline is not None and tok.host == "azureml"
    assert tok.claims.payload == {"aud": "https://management.azure.com/", "exp": EXPIRES, **claims}


def test_a_user_token_despite_a_client_id_says_so():
    src, _ = source(lambda r: (200, {}, body(jwt_token(idtyp="user"))), default_client_id=CLIENT_ID)
    with pytest.warns(UserTokenWarning, match=f"clientid={CLIENT_ID} was sent"):
        src.request_token("arm")


@pytest.mark.parametrize("claims", [{"idtyp": "app", "xms_mirid": RESOURCE_ID, "oid": OBJECT_ID},
                                    {"scp": "x", "xms_mirid": RESOURCE_ID}, {}])
def test_a_managed_identity_token_is_not_flagged(claims):
    src, _ = source(lambda r: (200, {}, body(jwt_token(**claims))))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserTokenWarning)
        tok = src.request_token("arm")
    assert type(tok).__name__ == "AccessToken" and not getattr(tok, "is_user_token", False)


def test_an_opaque_token_is_not_flagged():
    src, _ = source(ok())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserTokenWarning)
        assert not getattr(src.request_token("arm"), "is_user_token", False)


# --- failures only Azure ML sends ---------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "cls"), [(500, errors.ServerError), (400, errors.BadRequestError)])
def test_sso_token_not_found_is_explained_and_not_retried(status, cls):
    src, mock = source(lambda r: (status, {"Content-Type": "text/plain"}, SSO_TEXT))
    with pytest.raises(cls) as caught:
        src.request_token("arm")
    err = caught.value
    assert type(err) is cls and len(mock.requests) == 1 and err.error_description == SSO_TEXT
    assert "holds none right now" in str(err) and "Azure ML Studio" in err.hint and "DEFAULT_IDENTITY_CLIENT_ID" in err.hint


def test_a_refused_secret_says_restart_the_kernel():
    src, _ = source(lambda r: (401, {"Content-Type": "text/plain"}, "Unauthorized"))
    with pytest.raises(errors.BadRequestError, match="MSI_SECRET was refused"):
        src.request_token("arm")


# --- from_environment ---------------------------------------------------------------------------------------------
def test_from_environment_reads_the_variables():
    src = AzureMlSource.from_environment({**ENV, "DEFAULT_IDENTITY_CLIENT_ID": f" {CLIENT_ID} "})
    assert (src.endpoint, src.default_client_id) == (ML_URL, CLIENT_ID)
    assert SECRET not in repr(src)


def test_the_placeholder_default_means_no_identity():
    src = AzureMlSource.from_environment({**ENV, "DEFAULT_IDENTITY_CLIENT_ID": "clientid"})
    assert src.default_client_id is None and "placeholder 'clientid'" in src.note and "user token" in src.note


@pytest.mark.parametrize(("env", "named"), [
    ({"MSI_SECRET": SECRET}, "MSI_ENDPOINT"),
    ({**ENV, "MSI_ENDPOINT": "127.0.0.1:46808/MSI/auth"}, "MSI_ENDPOINT"),
    ({**ENV, "MSI_SECRET": ""}, "MSI_SECRET"),
    ({**ENV, "MSI_SECRET": "   "}, "MSI_SECRET"),
    ({**ENV, "MSI_SECRET": "a\nb"}, "MSI_SECRET"),
    ({**ENV, "DEFAULT_IDENTITY_CLIENT_ID": "my-identity"}, "DEFAULT_IDENTITY_CLIENT_ID"),
])
def test_from_environment_names_the_bad_variable(env, named):
    with pytest.raises(errors.HostConfigurationError) as caught:
        AzureMlSource.from_environment(env)
    assert str(caught.value).startswith(named) or named in str(caught.value).split("\n")[0]
    assert "What to do:" in str(caught.value) and "a\nb" not in str(caught.value)
