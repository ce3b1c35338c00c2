"""The Azure Arc profile: the Connected Machine agent's local IMDS-like endpoint and its key-file challenge.

``GET $IDENTITY_ENDPOINT?api-version=2020-06-01&resource=...`` with ``Metadata: true``. The first
answer is ``401`` with ``WWW-Authenticate: Basic realm=<path of a freshly written key file>``; the
repeat with ``Authorization: Basic <file contents>`` gets an IMDS-shaped token body. A wrong key is
401 again (with a fresh challenge). User-assigned identities are named with ``client_id``,
``object_id`` or ``msi_res_id`` (``mi_res_id`` is not understood: it yields the system-assigned
identity), and the answer echoes which identity it is (``client_id``, plus ``object_id`` and
``msi_res_id`` for a user-assigned one), which clients check. Errors use IMDS's JSON shape.

Example::

    >>> import json, tempfile
    >>> from mi_notebook.emulator.hosts.base import HostContext
    >>> from mi_notebook.emulator.server import HttpRequest
    >>> svc = ArcService(HostContext.build(key_dir=tempfile.mkdtemp())); svc.start()
    >>> query = "api-version=2020-06-01&resource=https://management.azure.com/"
    >>> first = svc.handle(HttpRequest("GET", "", TOKEN_PATH, query, [("Metadata", "true")]))
    >>> realm = dict(first.headers)["WWW-Authenticate"].split("=", 1)[1]
    >>> first.status, realm.endswith(".key")
    (401, True)
    >>> auth = ("Authorization", "Basic " + open(realm).read())
    >>> r = svc.handle(HttpRequest("GET", "", TOKEN_PATH, query, [("Metadata", "true"), auth]))
    >>> r.status, json.loads(r.body)["client_id"] == svc.vm.system_identity.client_id
    (200, True)
    >>> svc.stop()
"""

from __future__ import annotations

from typing import Any

from ..imds import FAULT_BODIES, IDENTITY_API_VERSIONS, MISSING_HEADER_TOKEN, THROTTLED
from ..issuer import resource_not_found
from ..server import HttpRequest, HttpResponse, json_response
from ..world import VmIdentity
from .arckeys import DEFAULT_KEY_DIR, ArcKeyStore
from .base import HostContext, HostService, parse_form

__all__ = ["ARC_API_VERSIONS", "TOKEN_PATH", "ArcService"]

TOKEN_PATH = "/metadata/identity/oauth2/token"
# 2019-11-01 is what Microsoft Learn's Arc samples send, 2020-06-01 what azure-identity and MSAL send
ARC_API_VERSIONS = tuple(v for v in IDENTITY_API_VERSIONS if v >= "2019-11-01")
SELECTORS = {"client_id": "client_id", "object_id": "object_id", "msi_res_id": "resource_id"}


class ArcService(HostService):
    """The Arc agent's identity endpoint. Option (``ctx.options``): ``key_dir``, where key files are
    written (default ``/var/opt/azcmagent/tokens``, created at start when missing).

    Example::

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> svc = ArcService(HostContext.build(key_dir=tmp.name)); svc.start()
        >>> svc.environment("http://127.0.0.1:1")["IMDS_ENDPOINT"]
        'http://127.0.0.1:1'
        >>> query = "api-version=2020-06-01&resource=x&client_id=" + svc.vm.system_identity.client_id
        >>> r = svc.handle(HttpRequest("GET", "", TOKEN_PATH, query, [("Metadata", "true")]))
        >>> r.status, r.error_description, svc.keys.files  # refused before any key file is written
        (400, 'Identity not found', [])
        >>> svc.stop(); tmp.cleanup()
    """

    profile = "arc"
    token_paths = (TOKEN_PATH,)

    def __init__(self, ctx: HostContext) -> None:
        super().__init__(ctx)
        self.keys = ArcKeyStore(ctx.options.get("key_dir") or DEFAULT_KEY_DIR)

    def start(self) -> None:
        self.keys.open()

    def stop(self) -> None:
        self.keys.close()

    def environment(self, base_url: str) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.token_url(base_url), "IMDS_ENDPOINT": base_url}

    def error(self, status: int, message: str, **kw: Any) -> HttpResponse:
        code = kw.pop("code", None)
        kw.setdefault("endpoint", "token")
        if kw.get("fault") is not None and status in FAULT_BODIES or code == "TooManyRequests":
            return json_response(status, dict(THROTTLED if status == 429 else FAULT_BODIES[status]), **kw)
        if code == "NotFound":  # other paths: IMDS's not-found body
            return json_response(status, {"error": "Not found"}, **kw)
        return json_response(status, {"error": code or "invalid_request", "error_description": message}, **kw)

    def answer(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return self.error(405, f"The HTTP method {request.method[:20]} is not allowed; only GET is",
                              code="invalid_request", headers=[("Allow", "GET")])
        values = request.header_all("Metadata")
        if not values or any(v.strip().lower() != "true" for v in values):
            return json_response(400, MISSING_HEADER_TOKEN, endpoint="token")
        query, duplicate = parse_form(request.query)
        if duplicate is not None:
            return self.error(400, f"Duplicate query parameter '{duplicate}' in the request", code="invalid_request")
        if query.get("api-version") not in ARC_API_VERSIONS:
            return self.error(400, "api-version is invalid or was not specified in the request; "
                              "use 2020-06-01", code="invalid_request")
        resource = query.get("resource")
        if not resource:
            return self.error(400, "Required query parameter 'resource' is missing or empty", code="invalid_request")
        given = [name for name in SELECTORS if name in query]
        if len(given) > 1:
            return self.error(400, "Only one of client_id, object_id, msi_res_id may be given; the request "
                              f"has {', '.join(given)}", code="invalid_request")
        ident = self._identity(given[0], query[given[0]]) if given else self.vm.system_identity
        if ident is None:  # validated before the challenge, as the agent does
            return self.error(400, "Identity not found", code="invalid_request")
        authorization = request.header("Authorization")
        if not authorization:
            return self._challenge("Authorization is required: read the key file named in WWW-Authenticate "
                                   "and send its contents as 'Authorization: Basic <contents>'")
        if not self.keys.accepts(authorization):
            return self._challenge("The Authorization header does not hold a valid key")
        if self.vm.match_resource(resource) is None:
            return self.error(400, resource_not_found(resource, self.vm.tenant_id, self.ctx.clock()),
                              code="invalid_resource")
        self.pause()
        return json_response(200, self._body(ident, resource, echo=bool(given)), endpoint="token",
                             extra={"identity": ident.name, "kind": ident.kind})

    def _identity(self, name: str, value: str) -> VmIdentity | None:
        """A user-assigned identity named by a selector (a selector naming the system-assigned one is refused)."""
        try:
            selector: dict[str, Any] = {SELECTORS[name]: value}  # one of find_identity's str keywords
            ident = self.vm.find_identity(**selector)
        except LookupError:
            return None
        return ident if ident.kind == "user" else None

    def _challenge(self, description: str) -> HttpResponse:
        try:
            path = self.keys.challenge()
        except OSError as exc:
            return self.error(500, f"Failed to write the challenge key file: {exc.strerror or exc}",
                              code="unknown")
        return json_response(401, {"error": "unauthorized_client", "error_description": description},
                             endpoint="token", headers=[("WWW-Authenticate", f"Basic realm={path}")])

    def _body(self, ident: VmIdentity, resource: str, *, echo: bool) -> dict[str, str]:
        body = self.ctx.issuer.response_body(self.ctx.issuer.get(ident, resource))
        if echo or ident.kind == "user":
            body["object_id"] = ident.object_id
            body["msi_res_id"] = ident.resource_id
        return dict(sorted(body.items()))

    def sample_body(self, request: HttpRequest) -> dict[str, Any]:
        ident = self.vm.system_identity or next(iter(self.vm.identities), None)
        resource = self.requested_resource(request)
        if ident is None:
            return {"access_token": "", "expires_on": "0", "resource": resource, "token_type": "Bearer"}
        return self._body(ident, resource, echo=False)
