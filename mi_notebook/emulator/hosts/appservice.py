"""The App Service profile (also Functions, Container Apps): ``GET $IDENTITY_ENDPOINT?api-version=2019-08-01``.

The sandbox's token service wants the header ``X-IDENTITY-HEADER: $IDENTITY_HEADER`` and takes at
most one selector: ``client_id``, ``principal_id`` (or its alias ``object_id``, which MSAL sends) or
``mi_res_id``. Success: JSON ``access_token``, ``expires_on`` (epoch seconds *as a string*),
``resource``, ``token_type``, ``client_id``. Errors are ``{"statusCode": N, "message": ...,
"correlationId": ...}`` with an ``X-CORRELATION-ID`` header and ``Server: Kestrel``, as captured from
live services; an unknown resource gets the vague 500 "An unexpected error occured while fetching the
AAD Token." (sic) that MSAL's source describes.

Example::

    >>> import json
    >>> from mi_notebook.emulator.hosts.base import HostContext
    >>> from mi_notebook.emulator.server import HttpRequest
    >>> ctx = HostContext.build(secret="h")
    >>> svc = AppServiceService(ctx)
    >>> def get(query, header="h"):
    ...     return svc.handle(HttpRequest("GET", "", "/msi/token", query, [("X-IDENTITY-HEADER", header)]))
    >>> body = json.loads(get("api-version=2019-08-01&resource=https://vault.azure.net").body)
    >>> sorted(body), body["client_id"] == ctx.vm.system_identity.client_id
    (['access_token', 'client_id', 'expires_on', 'resource', 'token_type'], True)
    >>> r = get("api-version=2019-08-01&resource=https://nope.example")
    >>> r.status, json.loads(r.body)["statusCode"]
    (500, 500)
"""

from __future__ import annotations

import uuid
from typing import Any

from ..server import HttpRequest, HttpResponse, json_response
from ..world import VmIdentity
from .base import HostService, parse_form, secret_matches

__all__ = ["APPSERVICE_API_VERSION", "AppServiceService"]

APPSERVICE_API_VERSION = "2019-08-01"
# query name -> VirtualMachine.find_identity keyword
SELECTORS = {"client_id": "client_id", "principal_id": "object_id", "object_id": "object_id",
             "mi_res_id": "resource_id"}
IDENTITY_NOT_LOADED = "Unable to load the proper Managed Identity."
TOKEN_FAILURE = "An unexpected error occured while fetching the AAD Token."  # sic, as captured


class AppServiceService(HostService):
    """App Service's ``IDENTITY_ENDPOINT`` (the 2019-08-01 protocol).

    Example::

        >>> import json
        >>> from mi_notebook.emulator.hosts.base import HostContext
        >>> svc = AppServiceService(HostContext.build(secret="h"))
        >>> sorted(svc.environment("http://127.0.0.1:1"))
        ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER']
        >>> r = svc.handle(HttpRequest("GET", "", "/MSI/token/", "api-version=2019-08-01&resource=x", []))
        >>> r.status, dict(r.headers)["X-CORRELATION-ID"] == json.loads(r.body)["correlationId"]
        (401, True)
    """

    profile = "appservice"
    token_paths = ("/msi/token",)
    paths_ignore_case = True  # Windows plans answer /MSI/token/ too
    server_header = "Kestrel"

    def environment(self, base_url: str) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.token_url(base_url), "IDENTITY_HEADER": self.ctx.secret}

    def error(self, status: int, message: str, **kw: Any) -> HttpResponse:
        kw.pop("code", None)
        kw.setdefault("endpoint", "token")
        correlation = str(uuid.uuid4())
        kw["headers"] = [("X-CORRELATION-ID", correlation), *kw.get("headers", [])]
        return json_response(status, {"statusCode": status, "message": message, "correlationId": correlation},
                             error=str(status), error_description=message, **kw)

    def answer(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return self.error(405, f"The HTTP method {request.method[:20]} is not allowed.",
                              headers=[("Allow", "GET")])
        if not secret_matches(request.header_all("X-IDENTITY-HEADER"), self.ctx.secret):
            return self.error(401, "Unauthorized: the X-IDENTITY-HEADER header is missing or invalid.")
        query, duplicate = parse_form(request.query)
        if duplicate is not None:
            return self.error(400, f"Duplicate query parameter '{duplicate}'.")
        version = query.get("api-version")
        if version != APPSERVICE_API_VERSION:
            return self.error(400, f"The api-version '{(version or '')[:40]}' is not supported; "
                              f"use {APPSERVICE_API_VERSION}.")
        resource = query.get("resource")
        if not resource:
            return self.error(400, "The 'resource' query parameter is required.")
        given = [name for name in SELECTORS if name in query]
        if len(given) > 1:
            return self.error(400, f"{IDENTITY_NOT_LOADED} Only one of client_id, principal_id (object_id), "
                              f"mi_res_id may be given; the request has {', '.join(given)}.")
        try:
            selector: dict[str, Any] = {SELECTORS[given[0]]: query[given[0]]} if given else {}
            ident = self.vm.find_identity(**selector)
        except LookupError:
            return self.error(400, IDENTITY_NOT_LOADED)
        if self.vm.match_resource(resource) is None:
            return self.error(500, TOKEN_FAILURE, extra={"identity": ident.name, "kind": ident.kind})
        self.pause()
        return json_response(200, self._body(ident, resource), endpoint="token",
                             extra={"identity": ident.name, "kind": ident.kind})

    def _body(self, ident: VmIdentity, resource: str) -> dict[str, Any]:
        token = self.ctx.issuer.get(ident, resource)
        return {"access_token": token.access_token, "expires_on": str(token.expires_on), "resource": resource,
                "token_type": "Bearer", "client_id": ident.client_id}

    def sample_body(self, request: HttpRequest) -> dict[str, Any]:
        ident = self.vm.system_identity or next(iter(self.vm.identities), None)
        resource = self.requested_resource(request)
        if ident is None:
            return {"access_token": "", "expires_on": "0", "resource": resource, "token_type": "Bearer"}
        return self._body(ident, resource)
