"""ARM's answers other than the resources themselves: the error envelope, the request-id headers, faults.

Every failure is ``{"error": {"code": ..., "message": ...}}`` (:func:`arm_error`); every answer carries
ARM's per-request ids and cache headers (:class:`RequestIds`); an injected fault (endpoint ``"arm"``)
answers as ARM would fail (:func:`fault_answer`).

Example::

    >>> import json
    >>> r = arm_error(404, "SubscriptionNotFound", "The subscription 's' could not be found.")
    >>> r.status, json.loads(r.body)["error"]["code"], r.service
    (404, 'SubscriptionNotFound', 'arm')
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..faults import Fault, proxy_html
from ..server import HttpRequest, HttpResponse, json_response
from .throttle import throttled_message

__all__ = ["FAULT_ERRORS", "RequestIds", "arm_error", "fault_answer"]

#: injected status -> ARM's error code and message (``{stamp}``, ``{rid}``, ``{cid}`` filled in)
FAULT_ERRORS = {
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


def arm_error(status: int, code: str, message: str, **kw: Any) -> HttpResponse:
    """ARM's error envelope; keywords go to :func:`~.server.json_response` (``headers``, ``extra``, ...).

    Example::

        >>> r = arm_error(429, "SubscriptionRequestsThrottled", "Try again later.", headers=[("Retry-After", "5")])
        >>> r.body, r.error, r.headers
        (b'{"error":{"code":"SubscriptionRequestsThrottled","message":"Try again later."}}', 'SubscriptionRequestsThrottled', [('Retry-After', '5')])
    """
    kw.setdefault("service", "arm")
    return json_response(status, {"error": {"code": code, "message": message}}, **kw)


class RequestIds:
    """ARM's per-request ids: a new request id; the caller's correlation id when it sent one.

    Example::

        >>> ids = RequestIds(HttpRequest("GET", "/", "/", "", [("x-ms-correlation-request-id", "c-1")]))
        >>> ids.correlation_id, dict(ids.headers())["x-ms-request-id"] == ids.request_id
        ('c-1', True)
    """

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


def fault_answer(fault: Fault, request: HttpRequest, ids: RequestIds, *, subscription: str,
                 clock: Callable[[], float], answer: Callable[[], HttpResponse]) -> HttpResponse:
    """What ARM answers instead of ``answer()`` when ``fault`` is injected.

    ``subscription`` is named in an injected 429's message, ``clock()`` (epoch seconds) dates a 500's;
    ``answer`` gives the real answer, which ``"truncated"`` cuts (``"bad-expires"``, which only IMDS
    knows, leaves it whole).

    Example::

        >>> ok = lambda: json_response(200, {"value": []})
        >>> r = fault_answer(Fault.create(503), HttpRequest("GET", "/", "/", "", []), RequestIds(
        ...     HttpRequest("GET", "/", "/", "", [])), subscription="s", clock=lambda: 0.0, answer=ok)
        >>> r.status, r.error
        (503, 'ServiceUnavailable')
    """
    kind, label = fault.kind, fault.label
    if isinstance(kind, int):
        if kind == 429:
            retry_after = fault.retry_after if fault.retry_after is not None else 5.0
            return arm_error(429, "SubscriptionRequestsThrottled",
                             throttled_message(f"subscription '{subscription}'", _actor(request), retry_after),
                             headers=[("Retry-After", f"{retry_after:g}")], fault=label)
        code, message = FAULT_ERRORS[kind]
        stamp = _dt.datetime.fromtimestamp(clock(), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        headers = [("Retry-After", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
        return arm_error(kind, code, message.format(stamp=stamp, rid=ids.request_id, cid=ids.correlation_id),
                         headers=headers, fault=label)
    if kind == "hang":
        return HttpResponse(0, fault=label, action="hang", hang_seconds=fault.seconds)
    if kind == "drop":
        return HttpResponse(0, fault=label, action="drop")
    if kind == "html":
        status = fault.status or 200
        return HttpResponse(status, proxy_html(status), "text/html; charset=utf-8", fault=label,
                            error="html" if status != 200 else None)
    whole = answer()  # truncated (and bad-expires, which only IMDS knows)
    if kind != "truncated":
        return whole
    if fault.variant == "incomplete":
        return replace(whole, fault=label, action="incomplete")
    return replace(whole, body=whole.body[: max(1, len(whole.body) // 2)], fault=label)


def _actor(request: HttpRequest) -> str:
    """The token's ``oid`` without checking it (only for an injected 429's message)."""
    import jwt

    auth = request.header("Authorization") or ""
    try:
        return str(jwt.decode(auth.partition(" ")[2], options={"verify_signature": False}).get("oid", ""))
    except jwt.InvalidTokenError:
        return ""
