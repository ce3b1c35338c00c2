"""The emulated Azure OpenAI account: :class:`OpenAIService`, a pure dispatcher ``(HttpRequest) -> HttpResponse``.

Each request goes through, in order: an injected fault (endpoint ``"openai"``); the caller (:mod:`.auth`:
an ``api-key`` gets the invalid-key 401, a bad or foreign token the ``statusCode`` 401); the route
(404 ``Resource not found``); ``api-version`` on the classic paths (404 too); the JSON body (400);
data-plane RBAC (401 ``PermissionDenied``); the deployment (404 ``DeploymentNotFound``, 400 when it
runs the other kind of model); the per-deployment limit (429, only with ``requests_per_minute``); the
answer (:mod:`.answers`). Every answer carries ``apim-request-id`` and ``x-ms-region``; the request
log's ``extra`` says who asked (``oid``, ``appid``), for which ``deployment`` and ``operation``.

Example::

    >>> from mi_notebook.emulator.world import VirtualMachine
    >>> svc = OpenAIService(VirtualMachine.build(seed=1), check=None, options=OpenAIOptions())
    >>> r = svc.handle(HttpRequest("POST", "", "/openai/deployments/gpt-4o-mini/chat/completions",
    ...                            "api-version=2024-10-21", [], b'{"messages": [{"role": "user", "content": "hi"}]}'))
    >>> r.status, r.service, r.endpoint, json.loads(r.body)["model"]
    (200, 'openai', 'chat', 'gpt-4o-mini-2024-07-18')
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from ..faults import Fault, FaultQueue, proxy_html
from ..server import HttpRequest, HttpResponse, json_response
from ..world import VirtualMachine, stable_guid
from .answers import chat_completion, embeddings, sse_stream
from .auth import INVALID_KEY, PERMISSION_DENIED, OpenAITokenCheck
from .deployments import Deployment, OpenAIOptions

__all__ = ["ACTIONS", "NOMINAL_RPM", "OPENAI_USER", "OpenAIService"]

OPENAI_USER = "Cognitive Services OpenAI User"
#: operation -> the data action it needs (the built-in roles page)
ACTIONS = {"chat": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action",
           "embeddings": "Microsoft.CognitiveServices/accounts/OpenAI/deployments/embeddings/action"}
#: the request limit reported in an injected 429's headers when no ``requests_per_minute`` is set
NOMINAL_RPM = 1000
_CLASSIC = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)/?$")
_V1 = re.compile(r"^/openai/v1/(chat/completions|embeddings)/?$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
_DEPLOYMENT_NOT_FOUND = {"error": {"code": "DeploymentNotFound", "message": (
    "The API deployment for this resource does not exist. If you created the deployment within the last 5 "
    "minutes, please wait a moment and try again.")}}
_OPERATION_NAMES = {"chat": "chatCompletion", "embeddings": "embeddings"}


class OpenAIService:
    """One Azure OpenAI account: its ``name``, ``resource_id`` (the RBAC scope) and ``deployments``.

    ``check`` None turns the caller checks off (for unit tests of the answers); ``faults`` is the
    emulator's queue (endpoint ``"openai"``); ``clock`` dates answers and drives the rate window.

    Example::

        >>> svc = OpenAIService(VirtualMachine.build(seed=1), check=None, options=OpenAIOptions())
        >>> svc.name.startswith("aoai-notebook-"), sorted(svc.deployments)
        (True, ['gpt-4o-mini', 'text-embedding-3-small'])
    """

    def __init__(self, vm: VirtualMachine, *, check: OpenAITokenCheck | None, options: OpenAIOptions,
                 faults: FaultQueue | None = None, clock: Callable[[], float] = time.time) -> None:
        self.vm = vm
        self.check = check
        self.options = options
        self.faults = faults if faults is not None else FaultQueue()
        self.clock = clock
        self.name = "aoai-notebook-" + stable_guid(vm.seed, "openai")[:6]
        self.resource_id = f"{vm.resource_group_id}/providers/Microsoft.CognitiveServices/accounts/{self.name}"
        self.deployments: dict[str, Deployment] = {d.name: d for d in options.deployment_list()}
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._window: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(collections.deque)

    # ---- the pipeline -----------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        extra: dict[str, Any] = {}
        fault = self.faults.take("openai")
        response = (self._fault(fault, lambda: self._serve(request, extra)) if fault is not None
                    else self._serve(request, extra))
        response.headers += [("apim-request-id", str(uuid.uuid4())), ("x-ms-region", self.vm.location)]
        response.extra.update(extra)
        return response

    def _serve(self, request: HttpRequest, extra: dict[str, Any]) -> HttpResponse:
        authorization = request.header("Authorization")
        if self.check is not None:
            if authorization is None and request.header("api-key") is not None:
                extra["auth"] = "api-key"
                return self._json(401, INVALID_KEY)
            auth = self.check.check(authorization)
            if not auth.ok:
                extra.update(auth=auth.code, aud=self.check.audience_of(authorization))
                return self._json(401, self.check.body, error="Unauthorized", error_description=auth.code)
            claims = auth.claims or {}
            extra.update(oid=claims.get("oid"), appid=claims.get("appid"))
        classic, v1 = _CLASSIC.match(request.path), _V1.match(request.path)
        route = classic.group(2) if classic else v1.group(1) if v1 else None
        if request.method != "POST" or route is None:
            return self._json(404, _NOT_FOUND)
        operation = "chat" if route == "chat/completions" else "embeddings"
        extra.update(operation=operation, api="classic" if classic else "v1")
        version = (parse_qs(request.query).get("api-version") or [""])[0]
        if classic and not _API_VERSION.match(version):
            return self._json(404, _NOT_FOUND, endpoint=operation)
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._invalid("The request body must be a JSON object.", None, operation)
        name = classic.group(1) if classic else body.get("model")
        if not isinstance(name, str) or not name:
            return self._invalid("you must provide a model parameter", "model", operation)
        extra["deployment"] = name
        oid = str(extra.get("oid") or "")
        if self.check is not None and not self.vm.is_data_authorized(oid, ACTIONS[operation], self.resource_id):
            return self._json(401, PERMISSION_DENIED, endpoint=operation)
        deployment = self.deployments.get(name)
        if deployment is None:
            return self._json(404, _DEPLOYMENT_NOT_FOUND, endpoint=operation)
        if deployment.kind != operation:
            return self._json(400, {"error": {"code": "OperationNotSupported", "message": (
                f"The {_OPERATION_NAMES[operation]} operation does not work with the specified model, "
                f"{deployment.model}. Please choose different model and try again.")}}, endpoint=operation)
        return self._answer(deployment, operation, body)

    def _answer(self, deployment: Deployment, operation: str, body: dict[str, Any]) -> HttpResponse:
        if operation == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in messages):
                return self._invalid("'messages' must be a non-empty array of messages with a 'role'.",
                                     "messages", operation)
        else:
            inputs = _inputs(body.get("input"))
            if inputs is None:
                return self._invalid("'input' must be a string, an array of strings or of token arrays.",
                                     "input", operation)
            dims = body.get("dimensions")
            if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool)
                                     or not 1 <= dims <= deployment.dimensions):
                return self._invalid(f"'dimensions' must be between 1 and {deployment.dimensions}.",
                                     "dimensions", operation)
        now = self.clock()
        limited, headers = self._take_rate(deployment, now)
        if limited is not None:
            return limited
        sequence = next(self._sequence)
        if operation == "chat":
            if body.get("stream"):
                payload = sse_stream(deployment, body, created=int(now), sequence=sequence)
                tokens = chat_completion(deployment, body, created=int(now), sequence=sequence)["usage"]["total_tokens"]
                response = HttpResponse(200, payload, "text/event-stream; charset=utf-8", service="openai",
                                        endpoint=operation)
            else:
                answer = chat_completion(deployment, body, created=int(now), sequence=sequence)
                tokens = answer["usage"]["total_tokens"]
                response = json_response(200, answer, service="openai", endpoint=operation)
        else:
            encoding = "base64" if body.get("encoding_format") == "base64" else "float"
            answer = embeddings(deployment, inputs or [], dimensions=body.get("dimensions"), encoding=encoding)
            tokens = answer["usage"]["total_tokens"]
            response = json_response(200, answer, service="openai", endpoint=operation)
        self._record(deployment, now, tokens)
        response.headers += headers
        return response

    # ---- the per-deployment limit -------------------------------------------------------------------
    def _take_rate(self, deployment: Deployment, now: float) -> tuple[HttpResponse | None, list[tuple[str, str]]]:
        """A 429 when the deployment's minute is full; else the ``x-ratelimit-*`` headers of this call."""
        rpm = self.options.requests_per_minute
        if rpm is None:
            return None, []
        tpm = rpm * 1000 // 6  # Azure's quota ratio: 6 requests per minute for each 1000 tokens per minute
        with self._lock:
            window = self._window[deployment.name]
            while window and window[0][0] <= now - 60:
                window.popleft()
            used_tokens = sum(t for _, t in window)
            if len(window) >= rpm:
                wait = max(1, math.ceil(window[0][0] + 60 - now))
                return self._throttled(wait, rpm, tpm - used_tokens), []
            return None, [("x-ratelimit-limit-requests", str(rpm)),
                          ("x-ratelimit-remaining-requests", str(rpm - len(window) - 1)),
                          ("x-ratelimit-remaining-tokens", str(max(0, tpm - used_tokens)))]

    def _record(self, deployment: Deployment, now: float, tokens: int) -> None:
        if self.options.requests_per_minute is not None:
            with self._lock:
                self._window[deployment.name].append((now, tokens))

    def _throttled(self, wait: float, rpm: int, tokens_left: int) -> HttpResponse:
        body = {"error": {"code": "429", "message": f"Rate limit is exceeded. Try again in {wait:g} seconds."}}
        return self._json(429, body, headers=[
            ("retry-after", f"{wait:g}"), ("x-ratelimit-limit-requests", str(rpm)),
            ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-remaining-tokens", str(max(0, tokens_left)))])

    # ---- faults and errors --------------------------------------------------------------------------
    def _fault(self, fault: Fault, answer: Callable[[], HttpResponse]) -> HttpResponse:
        kind, label = fault.kind, fault.label
        if kind == 429:
            rpm = self.options.requests_per_minute or NOMINAL_RPM
            wait = fault.retry_after if fault.retry_after is not None else 2.0
            return replace(self._throttled(wait, rpm, 0), fault=label)
        if isinstance(kind, int):
            headers = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
            return replace(self._json(kind, {"error": {"code": str(kind), "message": (
                f"The service answered {kind} (a fault injected into the emulator).")}}, headers=headers), fault=label)
        if kind in ("hang", "drop"):
            return HttpResponse(0, service="openai", fault=label, action=str(kind), hang_seconds=fault.seconds)
        if kind == "html":
            status = fault.status or 200
            return HttpResponse(status, proxy_html(status), "text/html; charset=utf-8", service="openai",
                                fault=label, error="html" if status != 200 else None)
        whole = answer()  # truncated ("bad-expires" is IMDS's alone and leaves the answer whole)
        if kind != "truncated":
            return whole
        if fault.variant == "incomplete":
            return replace(whole, fault=label, action="incomplete")
        return replace(whole, body=whole.body[: max(1, len(whole.body) // 2)], fault=label)

    def _invalid(self, message: str, param: str | None, operation: str) -> HttpResponse:
        return self._json(400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                          "code": None}}, endpoint=operation, error="invalid_request_error")

    @staticmethod
    def _json(status: int, body: Mapping[str, Any], *, endpoint: str = "other", **kw: Any) -> HttpResponse:
        return json_response(status, dict(body), service="openai", endpoint=endpoint, **kw)


def _inputs(value: Any) -> list[str] | None:
    """The embedding inputs as texts: a string, strings, a token array or token arrays (None: invalid)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(map(str, v)) for v in value]
    return None

