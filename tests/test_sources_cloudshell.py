"""Cloud Shell (POST with a form body; every token the user's) and Service Fabric (named, not spoken)."""

from __future__ import annotations

import pytest
from test_sources_common import CLIENT_ID, CS_URL, NOW, OBJECT_ID, RESOURCE_ID, SECRET, ok

from mi_notebook import errors
from mi_notebook.clock import VirtualClock
from mi_notebook.http import MockTransport
from mi_notebook.identity import Identity
from mi_notebook.sources import CloudShellSource, ServiceFabricSource, UserAccessToken, UserTokenWarning


def source(handler=None):
    mock = MockTransport(handler or ok())
    return CloudShellSource(CS_URL, transport=mock, clock=VirtualClock(NOW)), mock


def test_the_request_is_the_protocol():
    src, mock = source()
    with pytest.warns(UserTokenWarning):
        src.request_token("https://graph.microsoft.com/.default")
    (request,) = mock.requests
    assert (request.method, request.url, list(request.params)) == ("POST", CS_URL, [])
    assert dict(request.data) == {"resource": "https://graph.microsoft.com/"}  # the SDKs' scope: Graph's one form
    assert request.headers["Metadata"] == "true"


def test_every_token_is_labelled_the_users():
    src, _ = source()
    with pytest.warns(UserTokenWarning, match="your own user token, not a managed identity's") as seen:
        tok = src.request_token("arm")
    assert seen[0].filename == __file__
    assert isinstance(tok, UserAccessToken) and tok.is_user_token and tok.host == "cloudshell"
    assert "Cloud Shell" in tok.user_token_reason and "user token" in repr(tok)
    assert "user's own" in src.note


@pytest.mark.parametrize("identity", [Identity.user(client_id=CLIENT_ID), Identity.user(object_id=OBJECT_ID),
                                      Identity.user(resource_id=RESOURCE_ID), CLIENT_ID])
def test_identity_selectors_are_refused_before_any_request(identity):
    src, mock = source()
    with pytest.raises(ValueError, match="Cloud Shell has no managed identities"):
        src.request_token("arm", identity)
    assert mock.requests == []


def test_an_audience_cloud_shell_does_not_serve():
    src, _ = source(lambda r: (400, {}, {"error": "invalid_request", "error_description": "audience not allowed"}))
    with pytest.raises(errors.BadRequestError) as caught:
        src.request_token("api://my-api")
    assert "some audiences only" in caught.value.hint and caught.value.error_description == "audience not allowed"


def test_from_environment():
    assert CloudShellSource.from_environment({"MSI_ENDPOINT": CS_URL}).endpoint == CS_URL
    with pytest.raises(errors.HostConfigurationError, match="MSI_ENDPOINT"):
        CloudShellSource.from_environment({"MSI_ENDPOINT": "nope"})


# --- Service Fabric ------------------------------------------------------------------------------------------
SF_ENV = {"IDENTITY_ENDPOINT": "https://127.0.0.1:2377/metadata/identity/oauth2/token", "IDENTITY_HEADER": SECRET,
          "IDENTITY_SERVER_THUMBPRINT": "AB12CD"}


def test_service_fabric_is_named_and_refuses_honestly():
    src = ServiceFabricSource.from_environment(SF_ENV)
    with src, pytest.raises(errors.UnsupportedHostError) as caught:
        src.request_token("arm")
    err = caught.value
    assert "Service Fabric" in str(err) and "ManagedIdentityCredential" in err.hint
    assert err.endpoint == SF_ENV["IDENTITY_ENDPOINT"] and SECRET not in str(err) + repr(src) + repr(vars(src))
    assert src.host == "servicefabric" and src.server_thumbprint == "AB12CD"


def test_service_fabric_settings_are_checked():
    with pytest.raises(errors.HostConfigurationError, match="IDENTITY_HEADER"):
        ServiceFabricSource.from_environment({**SF_ENV, "IDENTITY_HEADER": ""})
