"""The IMDS endpoints: the managed-identity token endpoint and instance metadata, as a pure dispatcher.

``ImdsService.handle(HttpRequest) -> HttpResponse`` applies, in order: an injected fault, the
throttling limits, then the documented checks (GET only, no ``X-Forwarded-For``, ``Metadata: true``,
no duplicate query parameters, ``api-version``, ...) and finally answers. Bodies and headers follow
docs/emulator.md (which says, for each one, whether it is documented, captured live or a best guess).

Example::

    >>> from mi_notebook.emulator.issuer import TokenIssuer
    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> from mi_notebook.emulator.world import VirtualMachine
    >>> from mi_notebook.emulator.faults import FaultQueue
    >>> from mi_notebook.emulator.server import HttpRequest
    >>> vm = VirtualMachine.build()
    >>> svc = ImdsService(vm, TokenIssuer(vm, SigningKeys()), FaultQueue(), throttle=False)
    >>> req = HttpRequest("GET", "", "/metadata/identity/oauth2/token", "api-version=2018-02-01", [])
    >>> r = svc.handle(req); r.status, r.error_description
    (400, 'Required metadata header not specified')
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from ._instance_doc import API_VERSIONS, NEWEST_VERSIONS, document
from ._throttle import ConcurrencyLimiter, RateLimiter
from .faults import Fault, FaultQueue, proxy_html
from .issuer import TokenIssuer, resource_not_found
from .server import TEXT, HttpRequest, HttpResponse, json_response
from .world import VirtualMachine

__all__ = ["API_VERSIONS", "IDENTITY_API_VERSIONS", "NEWEST_VERSIONS", "TOKEN_PATH", "ImdsService"]

TOKEN_PATH = "/metadata/identity/oauth2/token"
IDENTITY_INFO_PATH = "/metadata/identity/info"
INSTANCE_PATH = "/metadata/instance"
VERSIONS_PATH = "/metadata/versions"

# the identity endpoint takes the listed versions from the token article's "2018-02-01 or greater"
IDENTITY_API_VERSIONS = tuple(v for v in API_VERSIONS if v >= "2018-02-01")
SELECTORS = ("client_id", "object_id", "msi_res_id", "mi_res_id")

IDENTITY_RATE, IDENTITY_CONCURRENCY, INSTANCE_RATE = 20, 5, 5

# --- bodies ---------------------------------------------------------------------------------------------
THROTTLED = {"error": "invalid_request", "error_description": "Temporarily throttled, too many requests"}
MISSING_HEADER_TOKEN = {"error": "invalid_request", "error_description": "Required metadata header not specified"}
MISSING_HEADER_INSTANCE = {"error": "Bad request. Required metadata header not specified"}
BAD_VERSION_INSTANCE = {
    "error": "Bad request. api-version is invalid or was not specified in the request. "
             "For more information refer to aka.ms/azureimds",
    "newest-versions": NEWEST_VERSIONS,
}
FAULT_BODIES: dict[int, dict[str, str]] = {
    404: {"error": "not_found", "error_description": "IMDS is updating; the endpoint is not available right now"},
    410: {"error": "gone", "error_description": "IMDS is updating and will be available again within 70 seconds"},
    429: THROTTLED,
    500: {"error": "unknown", "error_description": "Failed to retrieve token from the Active directory. "
          "For details see logs in /var/log/azure/Microsoft.ManagedIdentity.IMDS"},
    502: {"error": "bad_gateway", "error_description": "Bad gateway"},
    503: {"error": "service_unavailable", "error_description": "The service is temporarily unavailable"},
    504: {"error": "gateway_timeout", "error_description": "The upstream token service did not answer in time"},
}


def _token_error(status: int, description: str, error: str = "invalid_request", **kw: Any) -> HttpResponse:
    kw.setdefault("endpoint", "token")
    return json_response(status, {"error": error, "error_description": description}, **kw)


def _instance_error(status: int, message: str, endpoint: str = "instance", **kw: Any) -> HttpResponse:
    return json_response(status, {"error": message}, endpoint=endpoint, **kw)


class ImdsService:
    """Answers IMDS requests for ``vm``. ``throttle``: enforce IMDS's documented limits (429 beyond).

    ``latency`` adds that many seconds to every identity-endpoint answer (IMDS asking Entra), which is
    what makes the 5-concurrent-requests limit reachable; ``single_user_quirk``: with a
    system-assigned and exactly one user-assigned identity, a request naming no identity gets the
    user-assigned one (the known quirk); ``strict_metadata``: accept only the exact value ``true`` in the
    ``Metadata`` header, as the token article's error table words it (default: any letter case, since
    Microsoft's own samples send ``True``). ``stop`` is an event that cuts waits short at shutdown.

    Example::

        >>> from mi_notebook.emulator.keys import SigningKeys
        >>> vm = VirtualMachine.build()
        >>> svc = ImdsService(vm, TokenIssuer(vm, SigningKeys()), FaultQueue(), throttle=False)
        >>> query = "api-version=2018-02-01&resource=https://management.azure.com/"
        >>> r = svc.handle(HttpRequest("GET", "", TOKEN_PATH, query, [("Metadata", "true")]))
        >>> r.status, json.loads(r.body)["client_id"] == vm.system_identity.client_id, r.endpoint
        (200, True, 'token')
        >>> ImdsService.endpoint_of("/metadata/instance/compute")
        'instance'
    """

    def __init__(self, vm: VirtualMachine, issuer: TokenIssuer, faults: FaultQueue, *, throttle: bool = True,
                 clock: Callable[[], float] = time.time, latency: float = 0.0, single_user_quirk: bool = False,
                 strict_metadata: bool = False, stop: threading.Event | None = None) -> None:
        self.vm = vm
        self.issuer = issuer
        self.faults = faults
        self.throttle = throttle
        self.clock = clock
        self.latency = latency
        self.single_user_quirk = single_user_quirk
        self.strict_metadata = strict_metadata
        self.stop = stop or threading.Event()
        self.identity_rate = RateLimiter(IDENTITY_RATE, clock=clock)
        self.identity_concurrency = ConcurrencyLimiter(IDENTITY_CONCURRENCY)
        self.instance_rate = RateLimiter(INSTANCE_RATE, clock=clock)

    # ---- routing -----------------------------------------------------------------------------------
    @staticmethod
    def endpoint_of(path: str) -> str:
        """The log name of a path: token, identity-info, instance, versions or not-found."""
        if path == TOKEN_PATH:
            return "token"
        if path == IDENTITY_INFO_PATH:
            return "identity-info"
        if path == VERSIONS_PATH:
            return "versions"
        if path == INSTANCE_PATH or path.startswith(INSTANCE_PATH + "/"):
            return "instance"
        return "not-found"

    def handle(self, request: HttpRequest) -> HttpResponse:
        endpoint = self.endpoint_of(request.path)
        fault = self.faults.take("token" if endpoint == "token" else "instance")
        if fault is not None:
            return self._fault(fault, request, endpoint)
        if endpoint in ("token", "identity-info"):
            return self._identity(request, endpoint)
        if endpoint in ("instance", "versions"):
            if self.throttle and not self.instance_rate.try_acquire():
                return _instance_error(429, "Too many requests", endpoint)
            return self._metadata(request, endpoint)
        return _instance_error(404, "Not found", "not-found")

    def _identity(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        if self.throttle:
            if not self.identity_rate.try_acquire():
                return _token_error(429, THROTTLED["error_description"], endpoint=endpoint)
            if not self.identity_concurrency.try_enter():
                return _token_error(429, THROTTLED["error_description"], endpoint=endpoint)
            try:
                return self._identity_checked(request, endpoint)
            finally:
                self.identity_concurrency.leave()
        return self._identity_checked(request, endpoint)

    def _identity_checked(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        problem = self._common_checks(request, endpoint)
        if problem is not None:
            return problem
        query, duplicate = _parse_query(request.query)
        if duplicate is not None:
            return _token_error(400, f"Duplicate query parameter '{duplicate}' in the request", endpoint=endpoint)
        version = query.get("api-version")
        if version is None or version not in IDENTITY_API_VERSIONS:
            return _token_error(400, "api-version is invalid or was not specified in the request; "
                                f"use 2018-02-01 or later (newest: {', '.join(NEWEST_VERSIONS)})",
                                endpoint=endpoint)
        if self.latency > 0:
            self.stop.wait(self.latency)
        if endpoint == "identity-info":
            if not self.vm.identities:
                return _token_error(400, "Identity not found", endpoint=endpoint)
            return json_response(200, {"tenantId": self.vm.tenant_id}, endpoint=endpoint)
        return self._token(query)

    def _token(self, query: dict[str, str]) -> HttpResponse:
        resource = query.get("resource")
        if not resource:
            return _token_error(400, "Required query parameter 'resource' is missing or empty "
                                "(the App ID URI of the target resource, e.g. https://management.azure.com/)")
        given = [s for s in SELECTORS if s in query]
        if len(given) > 1:
            return _token_error(400, "Only one of client_id, object_id, msi_res_id (mi_res_id) may be given; "
                                f"the request has {', '.join(given)}")
        selector = {}
        if given:
            name = given[0]
            selector = {{"msi_res_id": "resource_id", "mi_res_id": "resource_id"}.get(name, name): query[name]}
        try:
            identity = self.vm.find_identity(**selector, single_user_quirk=self.single_user_quirk)
        except LookupError as exc:
            return _token_error(400, str(exc.args[0]))
        if self.vm.match_resource(resource) is None:
            return _token_error(400, resource_not_found(resource, self.vm.tenant_id, self.clock()),
                                error="invalid_resource")
        token = self.issuer.get(identity, resource)
        return json_response(200, self.issuer.response_body(token), endpoint="token",
                             extra={"identity": identity.name, "kind": identity.kind})

    def _common_checks(self, request: HttpRequest, endpoint: str) -> HttpResponse | None:
        token_style = endpoint in ("token", "identity-info")
        if request.method != "GET":
            desc = f"The HTTP method {request.method} is not allowed; IMDS only answers GET"
            if token_style:
                return _token_error(405, desc, endpoint=endpoint, headers=[("Allow", "GET")])
            return _instance_error(405, f"Bad request. {desc}", endpoint, headers=[("Allow", "GET")])
        if request.header_all("X-Forwarded-For"):
            desc = "Requests with an X-Forwarded-For header are rejected: IMDS must not be reached through a proxy"
            return (_token_error(400, desc, endpoint=endpoint) if token_style
                    else _instance_error(400, f"Bad request. {desc}", endpoint))
        values = request.header_all("Metadata")
        if not values or any(not self._metadata_ok(v) for v in values):
            return (json_response(400, MISSING_HEADER_TOKEN, endpoint=endpoint) if token_style
                    else json_response(400, MISSING_HEADER_INSTANCE, endpoint=endpoint))
        return None

    def _metadata_ok(self, value: str) -> bool:
        value = value.strip()
        return value == "true" if self.strict_metadata else value.lower() == "true"

    # ---- instance metadata -------------------------------------------------------------------------
    def _metadata(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        problem = self._common_checks(request, endpoint)
        if problem is not None:
            return problem
        query, duplicate = _parse_query(request.query)
        if duplicate is not None:
            return _instance_error(400, f"Bad request. Duplicate query parameter '{duplicate}'", endpoint)
        if endpoint == "versions":
            return json_response(200, {"apiVersions": list(API_VERSIONS)}, endpoint=endpoint)
        if query.get("api-version") not in API_VERSIONS:
            return json_response(400, BAD_VERSION_INSTANCE, endpoint=endpoint)
        fmt = query.get("format", "json")
        if fmt not in ("json", "text"):
            return _instance_error(400, "Bad request. Invalid format: use format=json or format=text", endpoint)
        node: Any = document(self.vm, query["api-version"])
        steps = [p for p in request.path[len(INSTANCE_PATH):].split("/") if p]
        for step in steps:
            if isinstance(node, dict) and step in node:
                node = node[step]
            elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
                node = node[int(step)]
            else:
                return _instance_error(404, "Not found", endpoint)
        leaf = not isinstance(node, (dict, list))
        if fmt == "text":
            if leaf:
                text = str(node)
            elif isinstance(node, dict):
                text = "\n".join(k + ("/" if isinstance(v, (dict, list)) else "") for k, v in node.items())
            else:
                text = "\n".join(f"{i}/" for i in range(len(node)))
            return HttpResponse(200, text.encode(), TEXT, endpoint=endpoint)
        if leaf:
            return _instance_error(400, "Bad request. Leaf nodes can only be read as text: add format=text",
                                   endpoint)
        return json_response(200, node, endpoint=endpoint)

    # ---- faults ------------------------------------------------------------------------------------
    def _fault(self, fault: Fault, request: HttpRequest, endpoint: str) -> HttpResponse:
        kind = fault.kind
        label = fault.label
        token_style = endpoint in ("token", "identity-info")
        if isinstance(kind, int):
            headers = [("Retry-After", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
            if token_style:
                return json_response(kind, FAULT_BODIES[kind], endpoint=endpoint, fault=label, headers=headers)
            message = "Too many requests" if kind == 429 else FAULT_BODIES[kind]["error_description"]
            return _instance_error(kind, message, endpoint, fault=label, headers=headers)
        if kind == "hang":
            return HttpResponse(0, endpoint=endpoint, fault=label, action="hang", hang_seconds=fault.seconds)
        if kind == "drop":
            return HttpResponse(0, endpoint=endpoint, fault=label, action="drop")
        if kind == "html":
            status = fault.status or 200
            return HttpResponse(status, proxy_html(status), "text/html; charset=utf-8", endpoint=endpoint,
                                fault=label, error="html" if status != 200 else None)
        body = self._fault_payload(request, endpoint)
        if kind == "bad-expires":
            if fault.variant == "string":
                body["expires_on"] = "tomorrow"
            else:
                body.pop("expires_on", None)
            return json_response(200, body, endpoint=endpoint, fault=label)
        raw = json.dumps(body, separators=(",", ":")).encode()  # truncated
        if fault.variant == "incomplete":
            return HttpResponse(200, raw, endpoint=endpoint, fault=label, action="incomplete")
        return HttpResponse(200, raw[: max(1, len(raw) // 2)], endpoint=endpoint, fault=label)

    def _fault_payload(self, request: HttpRequest, endpoint: str) -> dict[str, Any]:
        """A would-be success body to damage: the token for the request's identity/resource as far as
        they can be made out (else the default identity and ARM), or the metadata document."""
        if endpoint != "token":
            return document(self.vm, NEWEST_VERSIONS[0])
        query, _ = _parse_query(request.query)
        resource = query.get("resource") or "https://management.azure.com/"
        identity = None
        for name in SELECTORS:
            if name in query:
                key = {"msi_res_id": "resource_id", "mi_res_id": "resource_id"}.get(name, name)
                selector: dict[str, Any] = {key: query[name]}  # one of find_identity's str keywords
                with contextlib.suppress(LookupError, ValueError):
                    identity = self.vm.find_identity(**selector)
                break
        if identity is None:
            identity = self.vm.system_identity or (self.vm.identities[0] if self.vm.identities else None)
        if identity is None:
            return {"access_token": "", "expires_on": "0", "resource": resource, "token_type": "Bearer"}
        return self.issuer.response_body(self.issuer.get(identity, resource))


def _parse_query(query: str) -> tuple[dict[str, str], str | None]:
    """The query as a dict, and the first parameter name that appears twice (or None)."""
    values: dict[str, str] = {}
    duplicate = None
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if name in values and duplicate is None:
            duplicate = name
        values.setdefault(name, value)
    return values, duplicate
