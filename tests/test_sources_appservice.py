"""App Service's IDENTITY_ENDPOINT protocol: the request, the three selectors, expires_on forms, the
vague statusCode-500 body, and from_environment."""

from __future__ import annotations

import pytest
from test_sources_common import AS_URL, CLIENT_ID, EXPIRES, NOW, OBJECT_ID, RESOURCE_ID, SECRET, body, ok

from mi_notebook import errors
from mi_notebook.clock import VirtualClock
from mi_notebook.http import MockTransport
from mi_notebook.identity import Identity
from mi_notebook.sources import AppServiceSource

VAGUE = {"statusCode": 500, "message": "An unexpected error occured while fetching the AAD Token.",
         "correlationId": "8997f3a2-4774-4406-bcc2-14da6f7c387a"}


def source(handler=None, **kw):
    mock = MockTransport(handler or ok())
    return AppServiceSource(AS_URL, SECRET, transport=mock, clock=VirtualClock(NOW), **kw), mock


def test_the_request_is_the_protocol():
    src, mock = source()
    src.request_token("storage")
    (request,) = mock.requests
    assert (request.method, request.url, request.data) == ("GET", AS_URL, None)
    assert list(request.params) == [("api-version", "2019-08-01"), ("resource", "https://storage.azure.com/")]
    assert request.headers["X-IDENTITY-HEADER"] == SECRET and "secret" not in request.headers


@pytest.mark.parametrize(("identity", "param"), [
    (Identity.user(client_id=CLIENT_ID), ("client_id", CLIENT_ID)),
    (Identity.user(object_id=OBJECT_ID), ("principal_id", OBJECT_ID)),
    (Identity.user(resource_id=RESOURCE_ID), ("mi_res_id", RESOURCE_ID)),
])
def test_each_selector_has_its_parameter(identity, param):
    src, mock = source()
    tok = src.request_token("arm", identity)
    assert mock.requests[0].params[-1] == param and len(mock.requests[0].params) == 3
    assert tok.identity == identity


@pytest.mark.parametrize("expires_on", [str(EXPIRES), "01/01/2026 01:00:00 +00:00", "1/1/2026 1:00:00 AM +00:00"])
def test_expires_on_forms(expires_on):
    src, _ = source(lambda r: (200, {}, {**body(), "expires_on": expires_on, "client_id": CLIENT_ID}))
    tok = src.request_token("arm")
    assert tok.expires_on == EXPIRES and tok.client_id == CLIENT_ID


def test_the_vague_500_is_explained_as_a_wrong_resource_and_not_retried():
    src, mock = source(lambda r: (500, {"Content-Type": "application/json"}, VAGUE))
    with pytest.raises(errors.InvalidResourceError) as caught:
        src.request_token("api://not-a-known-api")
    err = caught.value
    assert len(mock.requests) == 1 and len(err.timeline) == 1 and err.status == 500
    assert "most likely 'api://not-a-known-api' is not a resource" in str(err)
    assert err.request_id == VAGUE["correlationId"] and err.error_description == VAGUE["message"]
    assert "App ID URI" in err.hint and "try again" in err.hint


def test_the_vague_500_with_an_identity_mentions_it():
    src, _ = source(lambda r: (500, {}, VAGUE))
    with pytest.raises(errors.InvalidResourceError, match="or user-assigned .* is not assigned to this app"):
        src.request_token("arm", Identity.user(client_id=CLIENT_ID))


def test_the_same_body_with_503_is_a_passing_failure():
    src, mock = source(lambda r: (503, {}, {**VAGUE, "statusCode": 503}))
    with pytest.raises(errors.ServerError):
        src.request_token("arm")
    assert len(mock.requests) == 4


def test_an_unassigned_identity():
    src, _ = source(lambda r: (400, {}, {"statusCode": 400, "message": "Unable to load the proper Managed Identity."}))
    with pytest.raises(errors.IdentityNotFoundError) as caught:
        src.request_token("arm", Identity.user(client_id=CLIENT_ID))
    assert "Identity blade" in caught.value.hint and caught.value.error == "statusCode 400"


def test_a_refused_header_says_restart():
    src, _ = source(lambda r: (401, {}, b""))
    with pytest.raises(errors.BadRequestError, match="IDENTITY_HEADER was refused"):
        src.request_token("arm")


def test_from_environment():
    src = AppServiceSource.from_environment({"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": SECRET})
    assert src.endpoint == AS_URL and SECRET not in repr(src) and src.host == "appservice"


@pytest.mark.parametrize(("env", "named"), [
    ({"IDENTITY_HEADER": SECRET}, "IDENTITY_ENDPOINT"),
    ({"IDENTITY_ENDPOINT": "not a url", "IDENTITY_HEADER": SECRET}, "IDENTITY_ENDPOINT"),
    ({"IDENTITY_ENDPOINT": AS_URL, "IDENTITY_HEADER": ""}, "IDENTITY_HEADER"),
])
def test_from_environment_names_the_bad_variable(env, named):
    with pytest.raises(errors.HostConfigurationError, match=named):
        AppServiceSource.from_environment(env)
