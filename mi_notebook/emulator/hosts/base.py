"""What every non-VM host profile shares: routing to its token endpoint, injected faults, throttling.

A host profile (Azure ML, App Service, Arc, Cloud Shell) is a :class:`HostService`: a pure
dispatcher ``(HttpRequest) -> HttpResponse`` like the IMDS one. The base class takes an injected
fault first (the ``token`` endpoint is the host's token path, ``instance`` every other path), then
the throttling limits, then hands the request to the subclass's :meth:`HostService.answer`. The
subclass says how its errors look (:meth:`HostService.error`), what a success body looks like (for
the ``truncated`` / ``bad-expires`` faults) and which environment variables the host sets.

Example::

    >>> from mi_notebook.emulator.server import HttpRequest
    >>> ctx = HostContext.build()
    >>> class Echo(HostService):
    ...     profile, token_paths = "echo", ("/token",)
    ...     def answer(self, request): return self.error(418, "short and stout")
    ...     def error(self, status, message, code=None, **kw):
    ...         return HttpResponse(status, message.encode(), error=code, **kw)
    ...     def sample_body(self, request): return {"access_token": "x"}
    ...     def environment(self, base_url): return {"ECHO_ENDPOINT": self.token_url(base_url)}
    >>> svc = Echo(ctx)
    >>> r = svc.handle(HttpRequest("GET", "/token", "/token", "", [])); (r.status, r.service, r.endpoint)
    (418, 'echo', 'token')
    >>> svc.handle(HttpRequest("GET", "/other", "/other", "", [])).endpoint
    'not-found'
    >>> svc.environment("http://127.0.0.1:1")
    {'ECHO_ENDPOINT': 'http://127.0.0.1:1/token'}
"""

from __future__ import annotations

import abc
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from .._throttle import ConcurrencyLimiter, RateLimiter
from ..faults import Fault, FaultQueue, proxy_html
from ..issuer import TokenIssuer
from ..keys import SigningKeys
from ..server import HttpRequest, HttpResponse
from ..world import VirtualMachine
from .usertokens import SignedInUser, UserTokenIssuer

__all__ = ["HOST_CONCURRENCY", "HOST_RATE", "HostContext", "HostService", "parse_form", "secret_matches"]

# No host but IMDS publishes limits; the emulator applies IMDS's identity-endpoint limits (best guess).
HOST_RATE, HOST_CONCURRENCY = 20, 5


@dataclass
class HostContext:
    """What a host service needs from its emulator (built by :class:`~mi_notebook.emulator.Emulator`).

    ``secret``: the value of ``MSI_SECRET`` / ``IDENTITY_HEADER``; ``options``: profile options
    (``sso``, ``expires_on``, ``key_dir``, ...), read by the profile that knows them.

    Example::

        >>> HostContext.build(secret="s").secret
        's'
    """

    vm: VirtualMachine
    issuer: TokenIssuer
    users: UserTokenIssuer
    faults: FaultQueue
    secret: str
    throttle: bool = True
    clock: Callable[[], float] = time.time
    latency: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, *, vm: VirtualMachine | None = None, secret: str = "secret", throttle: bool = False,
              **options: Any) -> HostContext:
        """A stand-alone context (fresh keys, an empty fault queue): handy in tests and examples."""
        vm = vm or VirtualMachine.build()
        keys = SigningKeys()
        return cls(vm, TokenIssuer(vm, keys), UserTokenIssuer(vm, SignedInUser.build(seed=vm.seed), keys),
                   FaultQueue(), secret, throttle=throttle, options=options)


def secret_matches(values: list[str], expected: str) -> bool:
    """True when exactly one header value was sent and it equals ``expected`` (constant time, any bytes).

    Example::

        >>> secret_matches(["abc"], "abc"), secret_matches(["abc", "abc"], "abc"), secret_matches(["\\u00e9"], "e")
        (True, False, False)
    """
    if len(values) != 1:
        return False
    return hmac.compare_digest(values[0].strip().encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def parse_form(text: str) -> tuple[dict[str, str], str | None]:
    """A query string or form body as a dict (first value wins) and the first repeated name (or None).

    Example::

        >>> parse_form("resource=a&resource=b&x=%ZZ")
        ({'resource': 'a', 'x': '%ZZ'}, 'resource')
    """
    values: dict[str, str] = {}
    duplicate = None
    for name, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
        if name in values and duplicate is None:
            duplicate = name
        values.setdefault(name, value)
    return values, duplicate


class HostService(abc.ABC):
    """Base of the host profiles; subclasses set ``profile`` and ``token_paths`` and implement
    :meth:`answer`, :meth:`error`, :meth:`sample_body` and :meth:`environment`.

    ``paths_ignore_case``: match the token path case-insensitively (App Service on Windows answers
    ``/MSI/token/`` as well as ``/msi/token``); a trailing slash is always accepted.

    Example::

        >>> from mi_notebook.emulator.hosts.appservice import AppServiceService
        >>> svc: HostService = AppServiceService(HostContext.build())
        >>> svc.token_url("http://127.0.0.1:1"), svc.is_token_path("/MSI/token/")
        ('http://127.0.0.1:1/msi/token', True)
        >>> r = svc.handle(HttpRequest("GET", "", "/elsewhere", "", [])); r.status, r.service, r.endpoint
        (404, 'appservice', 'not-found')
    """

    profile: ClassVar[str] = "host"
    token_paths: ClassVar[tuple[str, ...]] = ()
    paths_ignore_case: ClassVar[bool] = False
    server_header: ClassVar[str | None] = None  # the Server header this host's endpoint sends

    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx
        self.vm = ctx.vm
        self.rate = RateLimiter(HOST_RATE, clock=ctx.clock)
        self.concurrency = ConcurrencyLimiter(HOST_CONCURRENCY)

    # ---- to implement ------------------------------------------------------------------------------
    @abc.abstractmethod
    def answer(self, request: HttpRequest) -> HttpResponse:
        """The token endpoint's answer (faults and throttling already applied)."""

    @abc.abstractmethod
    def error(self, status: int, message: str, **kw: Any) -> HttpResponse:
        """An error in this host's shape (``kw``: ``code``, ``endpoint``, ``headers``, ``fault``...)."""

    @abc.abstractmethod
    def sample_body(self, request: HttpRequest) -> dict[str, Any]:
        """A would-be success body for ``request`` (the default principal, the requested resource)."""

    @abc.abstractmethod
    def environment(self, base_url: str) -> dict[str, str]:
        """The environment variables a real host of this kind sets, pointing at ``base_url``."""

    # ---- life cycle hooks (Arc writes key files) ----------------------------------------------------
    def start(self) -> None:  # noqa: B027 - a hook: most hosts need nothing
        """Called when the emulator starts serving."""

    def stop(self) -> None:  # noqa: B027 - a hook: most hosts need nothing
        """Called when the emulator stops."""

    # ---- shared ------------------------------------------------------------------------------------
    def token_url(self, base_url: str) -> str:
        return base_url + self.token_paths[0]

    def is_token_path(self, path: str) -> bool:
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        if self.paths_ignore_case:
            return path.lower() in {p.lower() for p in self.token_paths}
        return path in self.token_paths

    def handle(self, request: HttpRequest) -> HttpResponse:
        endpoint = "token" if self.is_token_path(request.path) else "not-found"
        fault = self.ctx.faults.take("token" if endpoint == "token" else "instance")
        if fault is not None:
            response = self._fault(fault, request, endpoint)
        elif endpoint != "token":
            response = self.error(404, f"No such endpoint: {request.path[:200]}", code="NotFound",
                                  endpoint="not-found")
        else:
            response = self._throttled_answer(request)
        response.service = self.profile
        if response.endpoint == "other":
            response.endpoint = endpoint
        return response

    def pause(self) -> None:
        """The configured latency (the host asking Entra), cut short at shutdown."""
        if self.ctx.latency > 0:
            self.ctx.stop.wait(self.ctx.latency)

    def _throttled_answer(self, request: HttpRequest) -> HttpResponse:
        if not self.ctx.throttle:
            return self.answer(request)
        if not self.rate.try_acquire() or not self.concurrency.try_enter():
            return self.error(429, "Too many requests", code="TooManyRequests")
        try:
            return self.answer(request)
        finally:
            self.concurrency.leave()

    def _fault(self, fault: Fault, request: HttpRequest, endpoint: str) -> HttpResponse:
        kind, label = fault.kind, fault.label
        if isinstance(kind, int):
            headers = [("Retry-After", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
            return self.error(kind, FAULT_MESSAGES[kind], code=FAULT_CODES[kind], endpoint=endpoint,
                              fault=label, headers=headers)
        if kind in ("hang", "drop"):
            return HttpResponse(0, endpoint=endpoint, fault=label, action=str(kind), hang_seconds=fault.seconds)
        if kind == "html":
            status = fault.status or 200
            return HttpResponse(status, proxy_html(status), "text/html; charset=utf-8", endpoint=endpoint,
                                fault=label, error="html" if status != 200 else None)
        if endpoint != "token":  # nothing to damage but the not-found answer
            damaged = self.error(404, f"No such endpoint: {request.path[:200]}", code="NotFound",
                                 endpoint=endpoint, fault=label)
            damaged.body = damaged.body[: max(1, len(damaged.body) // 2)] if kind == "truncated" else damaged.body
            return damaged
        body = self.sample_body(request)
        if kind == "bad-expires":
            if fault.variant == "string":
                body["expires_on"] = "tomorrow"
            else:
                body.pop("expires_on", None)
            return HttpResponse(200, json.dumps(body, separators=(",", ":")).encode(), endpoint=endpoint,
                                fault=label)
        raw = json.dumps(body, separators=(",", ":")).encode()  # truncated
        if fault.variant == "incomplete":
            return HttpResponse(200, raw, endpoint=endpoint, fault=label, action="incomplete")
        return HttpResponse(200, raw[: max(1, len(raw) // 2)], endpoint=endpoint, fault=label)

    def requested_resource(self, request: HttpRequest) -> str:
        """The ``resource`` of the query (or of a form body), else ARM's: for fault bodies."""
        query, _ = parse_form(request.query)
        if "resource" not in query and request.body:
            query, _ = parse_form(request.body[:65536].decode("utf-8", "replace"))
        return query.get("resource") or "https://management.azure.com/"


FAULT_MESSAGES = {
    404: "Not found: the token service is not available right now",
    410: "Gone: the token service is being updated",
    429: "Too many requests",
    500: "An unexpected error occurred while fetching the token",
    502: "Bad gateway",
    503: "The service is temporarily unavailable",
    504: "The upstream token service did not answer in time",
}
FAULT_CODES = {404: "NotFound", 410: "Gone", 429: "TooManyRequests", 500: "InternalServerError",
               502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
