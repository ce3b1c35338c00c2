"""The emulated ARM's request pipeline and handlers: :class:`ArmService`, ``(HttpRequest) -> HttpResponse``.

Each request goes through, in order: an injected fault (endpoint ``"arm"``, :mod:`.answers`); the
bearer token (:mod:`.auth`, 401s); the read throttle (:mod:`.throttle`, 429); ``api-version``
(400) and the route (:mod:`.routes`); the subscription (404); role-based access (403
``AuthorizationFailed``); the resource (404, from :mod:`.catalog`); the answer, paged for lists
(:mod:`.paging`). :class:`ArmOptions` says how it behaves; :class:`~.server.ArmServer` serves it.

Example::

    >>> import json
    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> vm, keys = VirtualMachine.build(), SigningKeys()
    >>> svc = ArmService(vm, keys, FaultQueue(), issuer=f"https://sts.windows.net/{vm.tenant_id}/",
    ...                  clock=lambda: 1000.0)
    >>> tok = keys.issue({"aud": "https://management.azure.com/", "iss": f"https://sts.windows.net/{vm.tenant_id}/",
    ...                   "tid": vm.tenant_id, "oid": vm.system_identity.object_id, "nbf": 0, "exp": 2000})
    >>> r = svc.handle(HttpRequest("GET", "", vm.resource_id, "api-version=2024-07-01",
    ...                            [("Authorization", "Bearer " + tok)]))
    >>> r.status, json.loads(r.body)["name"], r.endpoint
    (200, 'vm-notebook', 'resource')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ..faults import Fault, FaultQueue
from ..server import HttpRequest, HttpResponse, json_response
from ..world import VirtualMachine
from .answers import RequestIds, arm_error, fault_answer
from .auth import TokenCheck
from .catalog import ArmCatalog, list_item
from .paging import page, parse_query
from .routes import METHOD_ACTIONS, Route, action_and_scope, parse_route, read_action, version_problem
from .throttle import READ_CAPACITY, READ_REFILL, TokenBuckets, throttled_message

if TYPE_CHECKING:  # pragma: no cover
    from ..keys import SigningKeys

__all__ = ["ArmOptions", "ArmService"]


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
        self.auth = TokenCheck(keys, tenant_id=vm.tenant_id, issuer=issuer, clock=clock, cloud=vm.cloud)
        self.buckets = TokenBuckets(capacity=self.options.read_capacity, refill=self.options.read_refill,
                                    clock=clock)

    @property
    def catalog(self) -> ArmCatalog:
        return ArmCatalog(self.vm, demo_data=self.options.demo_data)

    # ---- the pipeline --------------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        ids = RequestIds(request)
        route = parse_route(request.path)
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

    def _answer(self, request: HttpRequest, route: Route, ids: RequestIds) -> HttpResponse:
        auth = self.auth.check(request.header("Authorization"), tenant_level=route.subscription is None)
        if not auth.ok:
            return arm_error(401, auth.code or "InvalidAuthenticationToken", auth.message or "",
                             headers=[("WWW-Authenticate", auth.www_authenticate or "Bearer")])
        claims = auth.claims or {}
        oid = str(claims["oid"])
        extra: dict[str, Any] = {"principal": oid, "appid": claims.get("appid")}
        ident = next((i for i in self.vm.identities if i.object_id.lower() == oid.lower()), None)
        if ident is not None:
            extra["identity"] = ident.name
            extra["kind"] = ident.kind

        query, duplicate = parse_query(request.query)
        headers: list[tuple[str, str]] = []
        if request.method in ("GET", "HEAD"):
            scoped = route.subscription is not None
            key = ("subscription" if scoped else "tenant",
                   (route.subscription or str(claims.get("tid", ""))).lower(), oid.lower())
            allowed, remaining, retry_after = self.buckets.take(key)
            if not allowed and self.throttle:
                where = (f"subscription '{route.subscription}'" if scoped else f"tenant '{claims.get('tid')}'")
                return arm_error(429, "SubscriptionRequestsThrottled" if scoped else "TenantRequestsThrottled",
                                 throttled_message(where, oid, retry_after),
                                 headers=[("Retry-After", f"{retry_after:g}")], extra=extra)
            name = "subscription" if scoped else "tenant"
            headers.append((f"x-ms-ratelimit-remaining-{name}-reads", str(remaining)))

        response = self._checked(request, route, query, duplicate, oid, extra)
        response.headers = headers + response.headers
        response.extra.update(extra)
        return response

    def _checked(self, request: HttpRequest, route: Route, query: dict[str, str], duplicate: str | None,
                 oid: str, extra: dict[str, Any]) -> HttpResponse:
        if duplicate is not None:
            return arm_error(400, "InvalidQueryParameter",
                             f"The query parameter '{duplicate}' is specified more than once.")
        version = query.get("api-version")
        if version is None or version == "":
            return arm_error(400, "MissingApiVersionParameter",
                             "The api-version query parameter (?api-version=) is required for all requests.")
        if route.kind == "not-found":
            return arm_error(404, "InvalidRequestUri",
                             f"The request URI '{request.path}' is not served by the emulated Azure Resource "
                             "Manager (it serves subscriptions, resource groups and resource reads).")
        problem = version_problem(route, version, self.vm.location)
        if problem is not None:
            return arm_error(400, *problem)

        sub = route.subscription
        catalog = self.catalog
        if sub is not None and sub.lower() != self.vm.subscription_id.lower():
            return arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")

        verb = METHOD_ACTIONS.get(request.method, "read")
        action, scope = action_and_scope(route, verb)
        extra.update(action=action, scope=scope)
        listing = route.kind in ("subscriptions", "groups", "resources", "type-in-sub")
        if not listing and not self._allowed(oid, action, scope, route):
            return self._forbidden(oid, action, scope)
        if request.method not in ("GET", "HEAD"):
            return arm_error(405, "MethodNotAllowed", f"The emulated Azure Resource Manager is read-only: "
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
                return arm_error(404, "ResourceGroupNotFound", f"Resource group '{route.group}' could not be found.")
            return json_response(200, group.record())
        if route.kind in ("group-resources", "type-in-group"):
            if catalog.group(route.group or "") is None:
                return arm_error(404, "ResourceGroupNotFound", f"Resource group '{route.group}' could not be found.")
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
                records = [r for r in records if self.vm.is_authorized(oid, read_action(r["type"]), r["id"])]
                if not records and not self._has_any_role(oid):
                    return self._forbidden(oid, action, scope)
            return self._page(request, query, records if route.kind == "type-in-sub" else
                              [list_item(r) for r in records])
        # a single resource
        if catalog.group(route.group or "") is None:
            return arm_error(404, "ResourceGroupNotFound", f"Resource group '{route.group}' could not be found.")
        record = catalog.find(route.resource_id)
        if record is None:
            return arm_error(404, "ResourceNotFound",
                             f"The Resource '{route.full_type}/{route.name}' under resource group "
                             f"'{route.group}' was not found. For more details please go to "
                             "https://aka.ms/ARMResourceNotFoundFix")
        return json_response(200, record)

    def _allowed(self, oid: str, action: str, scope: str, route: Route) -> bool:
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
        return arm_error(403, "AuthorizationFailed",
                         f"The client '{oid}' with object id '{oid}' does not have authorization to perform "
                         f"action '{action}' over scope '{scope}' or the scope is invalid. If access was "
                         "recently granted, please refresh your credentials.")

    def _page(self, request: HttpRequest, query: dict[str, str], items: list[dict[str, Any]],
              extra_body: dict[str, Any] | None = None) -> HttpResponse:
        return page(request, query, items, page_size=self.options.page_size, base_url=self.base_url(),
                    extra_body=extra_body)

    def _fault(self, fault: Fault, request: HttpRequest, route: Route, ids: RequestIds) -> HttpResponse:
        return fault_answer(fault, request, ids, subscription=route.subscription or self.vm.subscription_id,
                            clock=self.clock, answer=lambda: self._answer(request, route, ids))
