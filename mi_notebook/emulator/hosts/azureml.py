"""The Azure ML compute profile: ``GET $MSI_ENDPOINT?api-version=2017-09-01&resource=...[&clientid=<guid>]``.

The compute's local token service answers requests carrying the header ``secret: $MSI_SECRET``. Only
``clientid`` (not ``client_id``) selects an identity. The trap it reproduces: on a compute instance
with SSO on (the default), a request **without** ``clientid``, or with one that is not a GUID, gets
the signed-in *user's* token, not the compute's identity. The platform sets ``DEFAULT_IDENTITY_CLIENT_ID``
(the assigned identity's client id, or the literal ``clientid`` when managed identity is off) so that
clients can send it; azure-identity 1.27 and MSAL Python 1.39 do not.

Success: JSON ``access_token``, ``expires_on`` (an integer by default), ``resource``, ``token_type``.
Failures are ``text/plain`` bodies, as seen live (the captured SSO failure is reproduced with
``sso="unavailable"``); docs/emulator.md lists which parts are documented, captured or our guess.

Example::

    >>> from mi_notebook.emulator.hosts.base import HostContext
    >>> from mi_notebook.emulator.server import HttpRequest
    >>> ctx = HostContext.build(secret="s3")
    >>> svc = AzureMlService(ctx)
    >>> def get(query, secret="s3"):
    ...     return svc.handle(HttpRequest("GET", "", "/MSI/auth", query, [("secret", secret)]))
    >>> r = get("api-version=2017-09-01&resource=https://management.azure.com/")
    >>> import json; body = json.loads(r.body); type(body["expires_on"]).__name__, r.extra["kind"]
    ('int', 'user')
    >>> cid = ctx.vm.system_identity.client_id
    >>> get(f"api-version=2017-09-01&resource=https://management.azure.com/&clientid={cid}").extra["kind"]
    'system'
    >>> r = get("api-version=2017-09-01&resource=https://management.azure.com/", secret="nope")
    >>> r.status, r.content_type
    (401, 'text/plain; charset=utf-8')
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..issuer import resource_not_found
from ..server import TEXT, HttpRequest, HttpResponse, json_response
from ..world import VmIdentity
from .base import HostService, parse_form, secret_matches
from .profiles import EXPIRES_ON_FORMATS

__all__ = ["AZUREML_API_VERSION", "AzureMlService", "EXPIRES_ON_FORMATS", "SSO_MODES"]

AZUREML_API_VERSION = "2017-09-01"
SSO_MODES = (True, False, "unavailable")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    """``8-4-4-4-12`` hex digits, the only shape Azure ML takes as a client id.

    Example::

        >>> is_guid("11111111-2222-3333-4444-555555555555"), is_guid("clientid")
        (True, False)
    """
    return bool(_GUID.match(value))


class AzureMlService(HostService):
    """Azure ML's ``MSI_ENDPOINT``. Options (``ctx.options``): ``sso`` True (default: no clientid ->
    the user's token), False (SSO off: the compute's identity) or ``"unavailable"`` (SSO on, but the
    user's token cannot be had: the captured ``SSO failure ... Token not found``); ``expires_on``
    ``"int"`` (default), ``"string"`` (epoch seconds as a string) or ``"date"`` (the 2017 API's
    ``MM/DD/YYYY HH:MM:SS +00:00``).

    Example::

        >>> from mi_notebook.emulator.hosts.base import HostContext
        >>> svc = AzureMlService(HostContext.build(secret="s", sso=False))
        >>> sorted(svc.environment("http://127.0.0.1:1"))
        ['DEFAULT_IDENTITY_CLIENT_ID', 'MSI_ENDPOINT', 'MSI_SECRET']
        >>> query = "api-version=2017-09-01&resource=https://vault.azure.net"
        >>> svc.handle(HttpRequest("GET", "", "/MSI/auth", query, [("secret", "s")])).extra["kind"]  # SSO off
        'system'
    """

    profile = "azureml"
    token_paths = ("/MSI/auth", "/MSI/token")
    paths_ignore_case = True

    @property
    def sso(self) -> bool | str:
        return self.ctx.options.get("sso", True)

    def compute_identity(self) -> VmIdentity | None:
        """The identity assigned to the compute: the system-assigned one, else the first user-assigned."""
        return self.vm.system_identity or next(iter(self.vm.user_identities), None)

    def environment(self, base_url: str) -> dict[str, str]:
        ident = self.compute_identity()
        return {"MSI_ENDPOINT": self.token_url(base_url), "MSI_SECRET": self.ctx.secret,
                "DEFAULT_IDENTITY_CLIENT_ID": ident.client_id if ident else "clientid"}

    def error(self, status: int, message: str, **kw: Any) -> HttpResponse:
        code = kw.pop("code", None) or "error"
        kw.setdefault("endpoint", "token")
        return HttpResponse(status, message.encode("utf-8"), TEXT, error=code, error_description=message, **kw)

    def answer(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return self.error(405, f"The HTTP method {request.method[:20]} is not allowed; use GET",
                              headers=[("Allow", "GET")])
        if not secret_matches(request.header_all("secret"), self.ctx.secret):
            return self.error(401, "Unauthorized: the 'secret' header is missing or does not match MSI_SECRET",
                              code="unauthorized")
        query, duplicate = parse_form(request.query)
        if duplicate is not None:
            return self.error(400, f"Bad request: duplicate query parameter '{duplicate}'")
        if query.get("api-version") != AZUREML_API_VERSION:
            return self.error(400, f"Bad request: api-version must be {AZUREML_API_VERSION}")
        resource = query.get("resource")
        if not resource:
            return self.error(400, "Bad request: the 'resource' query parameter is required")
        clientid = query.get("clientid")
        if clientid is not None and is_guid(clientid):
            ident = next((i for i in self.vm.identities if i.client_id.lower() == clientid.lower()), None)
            if ident is None:
                return self.error(400, f"Error Token service {self.vm.name}. No managed identity with client "
                                  f"id {clientid} is assigned to this compute", code="identity_not_found")
            return self._identity_token(ident, resource)
        if self.sso is False:
            ident = self.compute_identity()
            if ident is None:
                return self.error(400, f"Error Token service {self.vm.name}. No managed identity is assigned "
                                  "to this compute", code="identity_not_found")
            return self._identity_token(ident, resource)
        if self.sso == "unavailable":
            return self.error(400, f"SSO failure: unable to retrieve a token. Error Token service "
                              f"{self.vm.name}. Token not found", code="sso_failure")
        if self.vm.match_resource(resource) is None:
            return self.error(400, resource_not_found(resource, self.vm.tenant_id, self.ctx.clock()),
                              code="invalid_resource")
        self.pause()
        token = self.ctx.users.get("azureml", resource)
        return json_response(200, self._body(token.access_token, token.expires_on, resource), endpoint="token",
                             extra={"identity": token.user.upn, "kind": "user"})

    def _identity_token(self, ident: VmIdentity, resource: str) -> HttpResponse:
        if self.vm.match_resource(resource) is None:
            return self.error(400, resource_not_found(resource, self.vm.tenant_id, self.ctx.clock()),
                              code="invalid_resource")
        self.pause()
        token = self.ctx.issuer.get(ident, resource)
        return json_response(200, self._body(token.access_token, token.expires_on, resource), endpoint="token",
                             extra={"identity": ident.name, "kind": ident.kind})

    def _body(self, access_token: str, expires_on: int, resource: str) -> dict[str, Any]:
        fmt = self.ctx.options.get("expires_on", "int")
        shown: int | str = expires_on
        if fmt == "string":
            shown = str(expires_on)
        elif fmt == "date":
            shown = time.strftime("%m/%d/%Y %H:%M:%S +00:00", time.gmtime(expires_on))
        return {"access_token": access_token, "expires_on": shown, "resource": resource, "token_type": "Bearer"}

    def sample_body(self, request: HttpRequest) -> dict[str, Any]:
        resource = self.requested_resource(request)
        ident = self.compute_identity()
        if self.sso is False and ident is not None:
            token = self.ctx.issuer.get(ident, resource)
            return self._body(token.access_token, token.expires_on, resource)
        user_token = self.ctx.users.get("azureml", resource)
        return self._body(user_token.access_token, user_token.expires_on, resource)
