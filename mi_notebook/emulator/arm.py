"""The emulated Azure Resource Manager: authenticated, RBAC-checked, throttled, paged reads over HTTPS.

:class:`ArmService` is a pure dispatcher ``(HttpRequest) -> HttpResponse``; :class:`ArmServer` serves it
on its own loopback port (HTTPS with a per-run CA by default, see :mod:`.tls`) for an
:class:`~mi_notebook.emulator.Emulator`, which starts it and exposes ``emu.arm_url`` / ``emu.ca_bundle``.

Each request goes through, in order: an injected fault (endpoint ``"arm"``); the bearer token
(:mod:`.arm_auth`, 401s); the read throttle (:mod:`.arm_throttle`, 429); ``api-version`` (400); the
subscription (404); role-based access (403 ``AuthorizationFailed``); the resource (404); the answer.
Lists are paged: ``{"value": [...], "nextLink": "<absolute URL with $skiptoken>"}``.

Served paths (segment names are case-insensitive, as in ARM)::

    /subscriptions                                  /subscriptions/{s}
    /subscriptions/{s}/resourcegroups               /subscriptions/{s}/resourcegroups/{rg}
    /subscriptions/{s}/resourcegroups/{rg}/resources
    /subscriptions/{s}/resources                    /subscriptions/{s}/providers/{ns}/{type}
    /subscriptions/{s}/resourcegroups/{rg}/providers/{ns}/{type}[/{name}]

Example::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(throttle=False) as emu:
    ...     tok = requests.get(emu.token_url, headers={"Metadata": "true"},
    ...                        params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
    ...                        ).json()["access_token"]
    ...     r = requests.get(emu.arm_url + emu.vm.resource_id, params={"api-version": "2024-07-01"},
    ...                      headers={"Authorization": "Bearer " + tok}, verify=emu.ca_bundle)
    ...     r.status_code, r.json()["identity"]["principalId"] == emu.vm.system_identity.object_id
    (200, True)
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .arm_auth import TokenCheck
from .arm_catalog import UAMI_TYPE, VM_TYPE, ArmCatalog, list_item
from .arm_throttle import READ_CAPACITY, READ_REFILL, TokenBuckets
from .faults import Fault, FaultQueue, proxy_html
from .server import HttpRequest, HttpResponse, HttpServer, json_response
from .tls import TlsMaterial
from .world import VirtualMachine

if TYPE_CHECKING:  # pragma: no cover
    from . import Emulator
    from .keys import SigningKeys

__all__ = ["RESOURCES_API_VERSIONS", "ArmOptions", "ArmServer", "ArmService"]

# api-versions ARM accepts, per resource type (lists abridged from the providers' published versions,
# always including what the current official SDKs send).
RESOURCES_API_VERSIONS = (
    "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-12-01",
    "2022-09-01", "2022-05-01", "2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-08-01",
    "2020-06-01", "2020-01-01", "2019-11-01", "2019-10-01", "2019-08-01", "2019-07-01", "2019-06-01",
    "2019-05-10", "2019-05-01", "2019-03-01", "2018-09-01", "2018-06-01", "2018-05-01", "2018-02-01",
    "2017-05-10", "2016-09-01", "2016-06-01", "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01",
)
COMPUTE_API_VERSIONS = (
    "2026-04-01", "2025-11-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-09-01",
    "2023-07-01", "2023-03-01", "2022-11-01", "2022-08-01", "2022-03-01", "2021-11-01", "2021-07-01",
    "2021-04-01", "2021-03-01", "2020-12-01", "2020-06-01", "2019-12-01", "2019-07-01", "2019-03-01",
    "2018-10-01", "2018-06-01", "2018-04-01", "2017-12-01", "2017-03-30", "2016-04-30-preview",
    "2016-03-30", "2015-06-15",
)
MSI_API_VERSIONS = (
    "2025-01-31-preview", "2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview",
    "2021-09-30-preview", "2018-11-30", "2015-08-31-preview",
)
_VERSIONS_BY_TYPE = {VM_TYPE.lower(): COMPUTE_API_VERSIONS, UAMI_TYPE.lower(): MSI_API_VERSIONS}
_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-(preview|beta|privatepreview|alpha))?$")

READ_ACTIONS = {
    "subscriptions": "Microsoft.Resources/subscriptions/read",
    "groups": "Microsoft.Resources/subscriptions/resourceGroups/read",
    "group-resources": "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
    "resources": "Microsoft.Resources/subscriptions/resources/read",
}
_METHOD_ACTIONS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete",
                   "POST": "action"}

_FAULT_ERRORS = {
    404: ("NotFound", "The requested resource is temporarily unavailable (injected fault)."),
    410: ("Gone", "The requested resource is no longer available (injected fault)."),
    500: ("InternalServerError", "Encountered internal server error. Diagnostic information: timestamp "
                                 "'{stamp}', tracking id '{rid}', request correlation id '{cid}'."),
    502: ("BadGateway", "The gateway did not receive a valid response from the resource provider."),
    503: ("ServiceUnavailable", "The server (leader) is currently unable to handle the request. "
                                "Please retry the request."),
    504: ("GatewayTimeout", "The gateway did not receive a response from 'Microsoft.Compute' within the "
                            "specified time period."),
}


@dataclass(frozen=True)
class ArmOptions:
    """How the ARM side behaves; from ``Emulator(arm={...})`` or the config file's ``"arm"`` object.

    ``tls``: HTTPS with a per-run CA (default) or plain http; ``page_size``: items per list page (small
    so that paging shows); ``throttle``: the read token bucket (None: follow the emulator's
    ``throttle``); ``read_capacity`` / ``read_refill``: the bucket (documented: 250, 25 per second);
    ``demo_data``: the demo resource groups and resources; ``port``: 0 = any free port.

    Example::

        >>> ArmOptions.from_mapping({"page-size": 2, "tls": False})
        ArmOptions(tls=False, page_size=2, throttle=None, read_capacity=250, read_refill=25.0, demo_data=True, port=0)
    """

    tls: bool = True
    page_size: int = 3
    throttle: bool | None = None
    read_capacity: int = READ_CAPACITY
    read_refill: float = READ_REFILL
    demo_data: bool = True
    port: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or not 1 <= self.page_size <= 1000:
            raise ValueError(f"arm page_size must be an integer from 1 to 1000, got {self.page_size!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"arm port must be 0..65535, got {self.port!r}")
        TokenBuckets(capacity=self.read_capacity, refill=self.read_refill)  # validates both

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | ArmOptions | None) -> ArmOptions:
        if data is None:
            return cls()
        if isinstance(data, ArmOptions):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"arm options are a JSON object / dict, got {type(data).__name__}")
        clean = {str(k).replace("-", "_"): v for k, v in data.items()}
        known = {f.name for f in fields(cls)}
        unknown = set(clean) - known
        if unknown:
            raise ValueError(f"unknown arm options: {sorted(unknown)} (known: {sorted(known)})")
        return cls(**clean)


def _error(status: int, code: str, message: str, **kw: Any) -> HttpResponse:
    kw.setdefault("service", "arm")
    return json_response(status, {"error": {"code": code, "message": message}}, **kw)


@dataclass
class _Route:
    """What a path names: ``kind`` (see ``ArmService._route``) and the parts it carries."""

    kind: str
    subscription: str | None = None
    group: str | None = None
    namespace: str | None = None
    rtype: str | None = None
    name: str | None = None

    @property
    def log_name(self) -> str:
        return self.kind

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.rtype}"


class ArmService:
    """Answers ARM requests for ``vm``. Time (token expiry, throttle refill) comes from ``clock``.

    ``base_url`` is a callable returning this server's base URL (for absolute ``nextLink`` values).

    Example::

        >>> from mi_notebook.emulator.keys import SigningKeys
        >>> vm = VirtualMachine.build()
        >>> svc = ArmService(vm, SigningKeys(), FaultQueue(), issuer=f"https://sts.windows.net/{vm.tenant_id}/")
        >>> r = svc.handle(HttpRequest("GET", "", "/subscriptions", "api-version=2022-12-01", []))
        >>> r.status, r.error
        (401, 'AuthenticationFailed')
    """

    def __init__(self, vm: VirtualMachine, keys: SigningKeys, faults: FaultQueue, *, issuer: str,
                 options: ArmOptions | None = None, clock: Callable[[], float] = time.time,
                 throttle: bool = True, base_url: Callable[[], str] = lambda: "https://management.azure.com") -> None:
        self.vm = vm
        self.faults = faults
        self.options = options or ArmOptions()
        self.clock = clock
        self.throttle = throttle if self.options.throttle is None else self.options.throttle
        self.base_url = base_url
        self.auth = TokenCheck(keys, tenant_id=vm.tenant_id, issuer=issuer, clock=clock)
        self.buckets = TokenBuckets(capacity=self.options.read_capacity, refill=self.options.read_refill,
                                    clock=clock)

    @property
    def catalog(self) -> ArmCatalog:
        return ArmCatalog(self.vm, demo_data=self.options.demo_data)

    # ---- the pipeline --------------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        ids = _RequestIds(request)
        route = self._route(request.path)
        fault = self.faults.take("arm")
        if fault is not None:
            response = self._fault(fault, request, route, ids)
        else:
            response = self._answer(request, route, ids)
        response.service = "arm"
        response.endpoint = route.log_name
        response.headers = ids.headers() + response.headers
        response.extra.setdefault("request_id", ids.request_id)
        return response

    def _answer(self, request: HttpRequest, route: _Route, ids: _RequestIds) -> HttpResponse:
        auth = self.auth.check(request.header("Authorization"))
        if not auth.ok:
            return _error(401, auth.code or "InvalidAuthenticationToken", auth.message or "",
                          headers=[("WWW-Authenticate", auth.www_authenticate or "Bearer")])
        claims = auth.claims or {}
        oid = str(claims["oid"])
        extra: dict[str, Any] = {"principal": oid, "appid": claims.get("appid")}
        ident = next((i for i in self.vm.identities if i.object_id.lower() == oid.lower()), None)
        if ident is not None:
            extra["identity"] = ident.name
            extra["kind"] = ident.kind

        query, duplicate = _parse_query(request.query)
        headers: list[tuple[str, str]] = []
        if request.method in ("GET", "HEAD"):
            scoped = route.subscription is not None
            key = ("subscription" if scoped else "tenant",
                   (route.subscription or str(claims.get("tid", ""))).lower(), oid.lower())
            allowed, remaining, retry_after = self.buckets.take(key)
            if not allowed and self.throttle:
                where = (f"subscription '{route.subscription}'" if scoped else f"tenant '{claims.get('tid')}'")
                return _error(429, "SubscriptionRequestsThrottled" if scoped else "TenantRequestsThrottled",
                              f"Number of 'read' requests for {where} actor '{oid}' exceeded. "
                              f"Please try again after '{retry_after:g}' seconds.",
                              headers=[("Retry-After", f"{retry_after:g}")], extra=extra)
            name = "subscription" if scoped else "tenant"
            headers.append((f"x-ms-ratelimit-remaining-{name}-reads", str(remaining)))

        response = self._checked(request, route, query, duplicate, oid, extra)
        response.headers = headers + response.headers
        response.extra.update(extra)
        return response

    def _checked(self, request: HttpRequest, route: _Route, query: dict[str, str], duplicate: str | None,
                 oid: str, extra: dict[str, Any]) -> HttpResponse:
        if duplicate is not None:
            return _error(400, "InvalidQueryParameter",
                          f"The query parameter '{duplicate}' is specified more than once.")
        version = query.get("api-version")
        if version is None or version == "":
            return _error(400, "MissingApiVersionParameter",
                          "The api-version query parameter (?api-version=) is required for all requests.")
        if route.kind == "not-found":
            return _error(404, "InvalidRequestUri",
                          f"The request URI '{request.path}' is not served by the emulated Azure Resource "
                          "Manager (it serves subscriptions, resource groups and resource reads).")
        problem = self._check_version(route, version)
        if problem is not None:
            return problem

        sub = route.subscription
        catalog = self.catalog
        if sub is not None and sub.lower() != self.vm.subscription_id.lower():
            return _error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

        verb = _METHOD_ACTIONS.get(request.method, "read")
        action, scope = self._action_and_scope(route, verb)
        extra.update(action=action, scope=scope)
        listing = route.kind in ("subscriptions", "groups", "resources", "type-in-sub")
        if not listing and not self._allowed(oid, action, scope, route):
            return self._forbidden(oid, action, scope)
        if request.method not in ("GET", "HEAD"):
            return _error(405, "MethodNotAllowed", f"The emulated Azure Resource Manager is read-only: "
                          f"{request.method} is not supported.", headers=[("Allow", "GET")])

        if route.kind == "subscriptions":
            visible = [catalog.subscription_record()] if self._has_any_role(oid) else []
            return self._page(request, query, visible, extra_body={"count": {"type": "Total",
                                                                             "value": len(visible)}})
        if route.kind == "subscription":
            return json_response(200, catalog.subscription_record())
        if route.kind == "groups":
            groups = catalog.groups()
            if not self.vm.is_authorized(oid, action, scope):
                groups = [g for g in groups if self.vm.is_authorized(oid, action, g.id)]
                if not groups:
                    return self._forbidden(oid, action, scope)
            return self._page(request, query, [g.record() for g in groups])
        if route.kind == "group":
            group = catalog.group(route.group or "")
            if group is None:
                return _error(404, "ResourceGroupNotFound", f"Resource group '{route.group}' could not be found.")
            return json_response(200, group.record())
        if route.kind in ("group-resources", "type-in-group"):
            if catalog.group(route.group or "") is None:
                return _error(404, "ResourceGroupNotFound", f"Resource group '{route.group}' could not be found.")
            records = catalog.in_group(route.group or "")
            if route.kind == "type-in-group":
                records = [r for r in records if r["type"].lower() == route.full_type.lower()]
                return self._page(request, query, records)
            return self._page(request, query, [list_item(r) for r in records])
        if route.kind in ("resources", "type-in-sub"):
            records = catalog.resources()
            if route.kind == "type-in-sub":
                records = [r for r in records if r["type"].lower() == route.full_type.lower()]
            if not self.vm.is_authorized(oid, action, scope):
                records = [r for r in records if self.vm.is_authorized(oid, _read_action(r["type"]), r["id"])]
                if not records and not self._has_any_role(oid):
                    return self._forbidden(oid, action, scope)
            return self._page(request, query, records if route.kind == "type-in-sub" else
                              [list_item(r) for r in records])
        # a single resource
        if catalog.group(route.group or "") is None:
            return _error(404, "ResourceGroupNotFound", f"Resource group '{route.group}' could not be found.")
        record = catalog.find(self._resource_id(route))
        if record is None:
            return _error(404, "ResourceNotFound",
                          f"The Resource '{route.full_type}/{route.name}' under resource group "
                          f"'{route.group}' was not found. For more details please go to "
                          "https://aka.ms/ARMResourceNotFoundFix")
        return json_response(200, record)

    # ---- pieces --------------------------------------------------------------------------------------
    def _route(self, path: str) -> _Route:
        segs = [unquote(s) for s in path.split("/") if s]
        low = [s.lower() for s in segs]
        n = len(segs)
        if n == 0 or low[0] != "subscriptions":
            return _Route("not-found")
        if n == 1:
            return _Route("subscriptions")
        sub, rest, lrest = segs[1], segs[2:], low[2:]
        if not rest:
            return _Route("subscription", sub)
        if lrest == ["resourcegroups"]:
            return _Route("groups", sub)
        if lrest == ["resources"]:
            return _Route("resources", sub)
        if len(rest) == 3 and lrest[0] == "providers":
            return _Route("type-in-sub", sub, namespace=rest[1], rtype=rest[2])
        if lrest[0] == "resourcegroups" and len(rest) >= 2:
            group, tail, ltail = rest[1], rest[2:], lrest[2:]
            if not tail:
                return _Route("group", sub, group)
            if ltail == ["resources"]:
                return _Route("group-resources", sub, group)
            if ltail[0] == "providers" and len(tail) == 3:
                return _Route("type-in-group", sub, group, tail[1], tail[2])
            if ltail[0] == "providers" and len(tail) == 4:
                return _Route("resource", sub, group, tail[1], tail[2], tail[3])
        return _Route("not-found", sub)

    def _check_version(self, route: _Route, version: str) -> HttpResponse | None:
        if route.kind in ("resource", "type-in-group", "type-in-sub"):
            supported = _VERSIONS_BY_TYPE.get(route.full_type.lower())
            if supported is None:  # other providers: any well-formed version (a simplification)
                ok = bool(_VERSION_SHAPE.match(version))
                supported = ()
            else:
                ok = version in supported
            if not ok:
                return _error(400, "NoRegisteredProviderFound",
                              f"No registered resource provider found for location '{self.vm.location}' and "
                              f"API version '{version}' for type '{route.rtype}'. The supported api-versions "
                              f"are '{', '.join(supported) or 'YYYY-MM-DD'}'. The supported locations are "
                              f"'{self.vm.location}'.")
            return None
        if version not in RESOURCES_API_VERSIONS:
            return _error(400, "InvalidApiVersionParameter",
                          f"The api-version '{version}' is invalid. The supported versions are "
                          f"'{','.join(RESOURCES_API_VERSIONS)}'.")
        return None

    def _resource_id(self, route: _Route) -> str:
        return (f"/subscriptions/{route.subscription}/resourceGroups/{route.group}"
                f"/providers/{route.namespace}/{route.rtype}/{route.name}")

    def _action_and_scope(self, route: _Route, verb: str) -> tuple[str, str]:
        sub_scope = f"/subscriptions/{route.subscription}"
        group_scope = f"{sub_scope}/resourceGroups/{route.group}"
        if route.kind in ("subscriptions", "subscription"):
            return READ_ACTIONS["subscriptions"].replace("/read", f"/{verb}"), \
                sub_scope if route.subscription else "/"
        if route.kind == "groups":
            return READ_ACTIONS["groups"], sub_scope
        if route.kind == "group":
            return READ_ACTIONS["groups"].replace("/read", f"/{verb}"), group_scope
        if route.kind == "group-resources":
            return READ_ACTIONS["group-resources"], group_scope
        if route.kind == "resources":
            return READ_ACTIONS["resources"], sub_scope
        full = _canonical_type(route.full_type)
        if route.kind == "type-in-sub":
            return f"{full}/read", sub_scope
        if route.kind == "type-in-group":
            return f"{full}/read", group_scope
        return f"{full}/{verb}", self._resource_id(route)

    def _allowed(self, oid: str, action: str, scope: str, route: _Route) -> bool:
        if self.vm.is_authorized(oid, action, scope):
            return True
        # Any role inside a subscription lets its principal read the subscription itself (as
        # `az account show` works for someone who is only Reader on one resource group).
        return route.kind == "subscription" and action.endswith("/read") and self._has_any_role(oid)

    def _has_any_role(self, oid: str) -> bool:
        sub = f"/subscriptions/{self.vm.subscription_id}".lower()
        return any(a.scope.lower().startswith(sub) or sub.startswith(a.scope.rstrip("/").lower() or "/")
                   for a in self.vm.assignments_for(oid))

    def _forbidden(self, oid: str, action: str, scope: str) -> HttpResponse:
        return _error(403, "AuthorizationFailed",
                      f"The client '{oid}' with object id '{oid}' does not have authorization to perform "
                      f"action '{action}' over scope '{scope}' or the scope is invalid. If access was "
                      "recently granted, please refresh your credentials.")

    def _page(self, request: HttpRequest, query: dict[str, str], items: list[dict[str, Any]],
              extra_body: dict[str, Any] | None = None) -> HttpResponse:
        expression = query.get("$filter")
        if expression is not None:
            clauses = _parse_filter(expression)
            if clauses is None:
                return _error(400, "InvalidFilter",
                              f"The $filter '{expression}' is not supported by the emulated Resource Manager: use "
                              "resourceType eq '...', name eq '...' or location eq '...', joined with 'and'.")
            items = [i for i in items
                     if all(str(i.get(field, "")).lower() == value.lower() for field, value in clauses)]
        size = self.options.page_size
        top = query.get("$top")
        if top is not None:
            if not top.isdigit() or not 1 <= int(top) <= 1000:
                return _error(400, "InvalidTopParameter", f"The value '{top}' of $top is invalid: use 1 to 1000.")
            size = int(top)
        offset = 0
        token = query.get("$skiptoken")
        if token is not None:
            offset = _decode_skiptoken(token)
            if offset is None:
                return _error(400, "InvalidSkipToken", f"The $skiptoken '{token}' is invalid.")
        body: dict[str, Any] = {"value": items[offset:offset + size]}
        if offset + size < len(items):
            params = [(k, v) for k, v in parse_qsl(request.query, keep_blank_values=True) if k != "$skiptoken"]
            params.append(("$skiptoken", _encode_skiptoken(offset + size)))
            body["nextLink"] = f"{self.base_url()}{quote(request.path)}?{urlencode(params)}"
        if extra_body:
            body.update(extra_body)
        return json_response(200, body)

    # ---- faults --------------------------------------------------------------------------------------
    def _fault(self, fault: Fault, request: HttpRequest, route: _Route, ids: _RequestIds) -> HttpResponse:
        kind, label = fault.kind, fault.label
        if isinstance(kind, int):
            if kind == 429:
                retry_after = fault.retry_after if fault.retry_after is not None else 5.0
                sub = route.subscription or self.vm.subscription_id
                return _error(429, "SubscriptionRequestsThrottled",
                              f"Number of 'read' requests for subscription '{sub}' actor "
                              f"'{_actor(request)}' exceeded. Please try again after '{retry_after:g}' seconds.",
                              headers=[("Retry-After", f"{retry_after:g}")], fault=label)
            code, message = _FAULT_ERRORS[kind]
            stamp = _dt.datetime.fromtimestamp(self.clock(), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            headers = [("Retry-After", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
            return _error(kind, code, message.format(stamp=stamp, rid=ids.request_id, cid=ids.correlation_id),
                          headers=headers, fault=label)
        if kind == "hang":
            return HttpResponse(0, fault=label, action="hang", hang_seconds=fault.seconds)
        if kind == "drop":
            return HttpResponse(0, fault=label, action="drop")
        if kind == "html":
            status = fault.status or 200
            return HttpResponse(status, proxy_html(status), "text/html; charset=utf-8", fault=label,
                                error="html" if status != 200 else None)
        answer = self._answer(request, route, ids)  # truncated (and bad-expires, which only IMDS knows)
        if kind != "truncated":
            return answer
        if fault.variant == "incomplete":
            return replace(answer, fault=label, action="incomplete")
        return replace(answer, body=answer.body[: max(1, len(answer.body) // 2)], fault=label)


class _RequestIds:
    """ARM's per-request ids: a new request id; the caller's correlation id when it sent one."""

    def __init__(self, request: HttpRequest) -> None:
        self.request_id = str(uuid.uuid4())
        given = request.header("x-ms-correlation-request-id")
        self.correlation_id = given if given and len(given) <= 100 else str(uuid.uuid4())
        self.client_request_id = request.header("x-ms-client-request-id")

    def headers(self) -> list[tuple[str, str]]:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = [("Cache-Control", "no-cache"), ("Pragma", "no-cache"), ("Expires", "-1"),
               ("x-ms-request-id", self.request_id), ("x-ms-correlation-request-id", self.correlation_id),
               ("x-ms-routing-request-id", f"WESTEUROPE:{stamp}:{self.request_id}"),
               ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
               ("X-Content-Type-Options", "nosniff")]
        if self.client_request_id and len(self.client_request_id) <= 100:
            out.append(("x-ms-client-request-id", self.client_request_id))
        return out


def _actor(request: HttpRequest) -> str:
    """The token's ``oid`` without checking it (only for an injected 429's message)."""
    import jwt

    auth = request.header("Authorization") or ""
    try:
        return str(jwt.decode(auth.partition(" ")[2], options={"verify_signature": False}).get("oid", ""))
    except jwt.InvalidTokenError:
        return ""


def _canonical_type(full_type: str) -> str:
    known = {t.lower(): t for t in (VM_TYPE, UAMI_TYPE)}
    return known.get(full_type.lower(), full_type)


def _read_action(rtype: str) -> str:
    return f"{rtype}/read"


_FILTER_CLAUSE = re.compile(r"^\s*(resourceType|name|location)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def _parse_filter(expression: str) -> list[tuple[str, str]] | None:
    """``[(field, value)]`` for ``field eq 'value' [and ...]`` (field: resourceType, name, location), else None."""
    clauses = []
    for part in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _FILTER_CLAUSE.match(part)
        if match is None:
            return None
        field = {"resourcetype": "type"}.get(match.group(1).lower(), match.group(1).lower())
        clauses.append((field, match.group(2)))
    return clauses


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return offset if isinstance(offset, int) and offset >= 0 else None


def _parse_query(query: str) -> tuple[dict[str, str], str | None]:
    values: dict[str, str] = {}
    duplicate = None
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        key = name.lower() if name.lower() == "api-version" else name
        if key in values and duplicate is None:
            duplicate = name
        values.setdefault(key, value)
    return values, duplicate


class ArmServer:
    """Serves :class:`ArmService` for an emulator on its own loopback port (HTTPS by default).

    The emulator's admin routes (``/__emulator__/...``) answer here too, so a process that only knows
    the ARM URL can inject faults. ``url`` and ``ca_bundle`` (None over plain http) are set by
    :meth:`start`; :meth:`stop` removes the generated certificate files.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     isinstance(emu.arm, ArmServer), emu.arm.url == emu.arm_url, emu.arm.options.page_size
        (True, True, 3)
    """

    def __init__(self, emulator: Emulator, options: Mapping[str, Any] | ArmOptions | None = None) -> None:
        if options is None:
            options = getattr(emulator, "arm_options", None)
        if options is None and isinstance(emulator.config.get("arm"), Mapping):
            options = emulator.config["arm"]
        self.options = ArmOptions.from_mapping(options)
        self.emulator = emulator
        self.service = ArmService(emulator.vm, emulator.keys, emulator.faults, issuer=emulator.issuer_url,
                                  options=self.options, clock=emulator.clock, throttle=emulator.throttle,
                                  base_url=lambda: self.url or "https://management.azure.com")
        self.tls: TlsMaterial | None = None
        self._server: HttpServer | None = None
        self.url: str | None = None
        self.ca_bundle: str | None = None

    def start(self) -> ArmServer:
        if self._server is not None:
            return self
        host = self.emulator.host
        context = None
        if self.options.tls:
            hosts = ("localhost", "127.0.0.1", "::1")
            if host not in hosts:
                hosts = (*hosts, host)
            self.tls = TlsMaterial.generate(hosts)
            context = self.tls.server_context()
        server = HttpServer(self._dispatch, host=host, port=self.options.port,
                            server_header="mi-notebook-arm-emulator", request_log=self.emulator.requests,
                            clock=self.emulator.clock, service="arm", ssl_context=context)
        try:
            server.start()
        except BaseException:
            if self.tls is not None:
                self.tls.cleanup()
            raise
        self._server = server
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if self.options.tls else 'http'}://{shown}:{server.port}"
        self.ca_bundle = self.tls.ca_bundle if self.tls is not None else None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.tls is not None:
            self.tls.cleanup()
            self.tls = None

    @property
    def port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        from .admin import ADMIN_PREFIX

        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self.emulator.admin.handle(request)
        return self.service.handle(request)
