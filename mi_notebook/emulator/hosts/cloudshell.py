"""The Azure Cloud Shell profile: ``POST $MSI_ENDPOINT`` (``/oauth2/token``) with a form body ``resource=...``.

Cloud Shell's local endpoint returns the token of the user signed in to the portal: it is not a
managed identity ("Azure Managed Identities aren't available in the Azure Cloud Shell"), so identity
selectors are refused, and only an allowlist of audiences is served (anything else:
``{"error": {"code": "AudienceNotSupported", "message": "Audience <x> is not a supported MSI token
audience. Supported audiences: ..."}}``, captured live). Errors use that ``{"error": {"code",
"message"}}`` shape, which MSAL's Cloud Shell code reads. The IMDS-style ``GET
/metadata/identity/oauth2/token?resource=...`` seen live on the same port is served as well.

Example::

    >>> import json, jwt
    >>> from mi_notebook.emulator.hosts.base import HostContext
    >>> from mi_notebook.emulator.server import HttpRequest
    >>> svc = CloudShellService(HostContext.build())
    >>> def post(body, headers=(("Metadata", "true"),)):
    ...     return svc.handle(HttpRequest("POST", "", "/oauth2/token", "", list(headers), body.encode()))
    >>> r = post("resource=https://management.azure.com")
    >>> jwt.decode(json.loads(r.body)["access_token"], options={"verify_signature": False})["idtyp"]
    'user'
    >>> json.loads(post("resource=https://cognitiveservices.azure.com").body)["error"]["code"]
    'AudienceNotSupported'
"""

from __future__ import annotations

from typing import Any

from ..server import HttpRequest, HttpResponse, json_response
from .base import HostService, parse_form

__all__ = ["ALLOWED_AUDIENCES", "CloudShellService"]

# The allowlist as the AudienceNotSupported message listed it (Azure/CloudShell issue 351, 2023; the
# capture is cut off after these), plus the audience MSAL's msal/cloudshell.py says Cloud Shell takes as-is.
ALLOWED_AUDIENCES = (
    "https://management.core.windows.net/", "https://management.azure.com/", "https://graph.windows.net/",
    "https://vault.azure.net", "https://datalake.azure.net/", "https://outlook.office365.com/",
    "https://graph.microsoft.com/", "https://batch.core.windows.net/", "https://analysis.windows.net/powerbi/api",
    "https://storage.azure.com/", "https://rest.media.azure.net", "https://api.loganalytics.io",
    "https://ossrdbms-aad.database.windows.net", "https://www.yammer.com", "https://digitaltwins.azure.net",
    "0b07f429-9f4b-4714-9392-cc5e8e80c8b0", "822c8694-ad95-4735-9c55-256f7db2f9b4",
    "https://dev.azuresynapse.net", "https://database.windows.net", "https://quantum.microsoft.com",
    "https://pas.windows.net/CheckMyAccess/Linux/.default",
)
SELECTORS = ("client_id", "clientid", "object_id", "principal_id", "msi_res_id", "mi_res_id")
MAX_FORM_BYTES = 16 * 1024  # a token request's form is a few hundred bytes; beyond this: 413 (best guess)
_POST_PATH, _GET_PATH = "/oauth2/token", "/metadata/identity/oauth2/token"


def _key(audience: str) -> str:
    key = audience.strip().lower()
    return key[:-1] if key.endswith("/") else key


_ALLOWED_KEYS = {_key(a) for a in ALLOWED_AUDIENCES}


class CloudShellService(HostService):
    """Cloud Shell's ``MSI_ENDPOINT``: the signed-in user's tokens for allowlisted audiences.

    Example::

        >>> from mi_notebook.emulator.hosts.base import HostContext
        >>> svc = CloudShellService(HostContext.build())
        >>> svc.environment("http://127.0.0.1:1")["AZUREPS_HOST_ENVIRONMENT"]
        'cloud-shell/1.0'
        >>> body = b"resource=https://vault.azure.net&client_id=x"
        >>> r = svc.handle(HttpRequest("POST", "", "/oauth2/token", "", [("Metadata", "true")], body))
        >>> r.status, r.error  # no managed identity here: selectors are refused
        (400, 'BadRequest')
    """

    profile = "cloudshell"
    token_paths = (_POST_PATH, _GET_PATH)

    def environment(self, base_url: str) -> dict[str, str]:
        # MSAL's PublicClientApplication detects Cloud Shell by this variable (prefix "cloud-shell")
        return {"MSI_ENDPOINT": self.token_url(base_url), "AZUREPS_HOST_ENVIRONMENT": "cloud-shell/1.0"}

    def error(self, status: int, message: str, **kw: Any) -> HttpResponse:
        code = kw.pop("code", None) or "BadRequest"
        kw.setdefault("endpoint", "token")
        return json_response(status, {"error": {"code": code, "message": message}}, **kw)

    def answer(self, request: HttpRequest) -> HttpResponse:
        form_path = request.path.rstrip("/") == _POST_PATH
        wanted = "POST" if form_path else "GET"
        if request.method != wanted:
            return self.error(405, f"The HTTP method {request.method[:20]} is not allowed here; use {wanted}",
                              code="MethodNotAllowed", headers=[("Allow", wanted)])
        values = request.header_all("Metadata")
        if not values or any(v.strip().lower() != "true" for v in values):
            return self.error(400, "Required metadata header not specified")
        if len(request.body) > MAX_FORM_BYTES:
            return self.error(413, f"The request body is too large (at most {MAX_FORM_BYTES} bytes)",
                              code="RequestEntityTooLarge", close=True)
        text = request.body.decode("utf-8", "replace") if form_path else request.query
        params, duplicate = parse_form(text)
        if duplicate is not None:
            return self.error(400, f"Duplicate parameter '{duplicate[:100]}'")
        selectors = [s for s in SELECTORS if s in params]
        if selectors:
            return self.error(400, "Managed identities aren't available in Azure Cloud Shell: the token is the "
                              f"signed-in user's, so {', '.join(selectors)} cannot be used")
        resource = params.get("resource")
        if not resource:
            return self.error(400, "The 'resource' parameter is required")
        if _key(resource) not in _ALLOWED_KEYS:
            return self.error(400, f"Audience {resource[:300]} is not a supported MSI token audience. "
                              f"Supported audiences: {','.join(ALLOWED_AUDIENCES)}", code="AudienceNotSupported")
        self.pause()
        return json_response(200, self._body(resource), endpoint="token",
                             extra={"identity": self.ctx.users.user.upn, "kind": "user"})

    def _body(self, resource: str) -> dict[str, str]:
        token = self.ctx.users.get("cloudshell", resource)
        now = int(self.ctx.clock())
        return {"access_token": token.access_token, "expires_in": str(max(0, token.expires_on - now)),
                "expires_on": str(token.expires_on), "not_before": str(token.not_before),
                "resource": resource, "token_type": "Bearer"}

    def sample_body(self, request: HttpRequest) -> dict[str, Any]:
        return self._body(self.requested_resource(request))
