"""The emulator's control plane over HTTP, under the reserved prefix ``/__emulator__/``.

Routes (JSON in, JSON out; kept out of the request log):

- ``GET /__emulator__/faults`` pending faults; ``POST`` one fault object or a list (``{"fault": 503,
  "endpoint": "token", "count": 2}``) -> 201; ``DELETE`` clears them.
- ``GET /__emulator__/requests`` the request log; ``DELETE`` clears it.
- ``GET /__emulator__/jwks`` the token-signing keys (JWKS).
- ``GET /__emulator__/vm`` the emulated VM, identities, resources and role assignments.
- ``DELETE /__emulator__/tokens`` forgets the cached tokens, the signed-in user's too (the next request
  signs new ones).
- ``GET /__emulator__/environment`` the variables the emulated host sets (``{}`` for the VM profile).
- ``GET /__emulator__/health`` ``{"status": "ok", "profile": ..., ...}``.

Example::

    >>> import json, urllib.request
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator() as emu:
    ...     req = urllib.request.Request(emu.imds_url + "/__emulator__/faults", method="POST",
    ...                                  data=json.dumps({"fault": 503, "endpoint": "token"}).encode())
    ...     urllib.request.urlopen(req).status, [f.kind for f in emu.faults.pending()]
    (201, [503])
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .faults import Fault
from .server import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from . import Emulator

__all__ = ["ADMIN_PREFIX", "AdminEndpoint"]

ADMIN_PREFIX = "/__emulator__"


def _answer(status: int, payload: Any) -> HttpResponse:
    return json_response(status, payload, log=False, endpoint="admin")


class AdminEndpoint:
    """Serves ``/__emulator__/*`` for one :class:`~mi_notebook.emulator.Emulator`.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> admin = AdminEndpoint(Emulator(arm=False))  # handle() needs no running server
        >>> r = admin.handle(HttpRequest("POST", "", ADMIN_PREFIX + "/faults", "", [], b'{"fault": "drop"}'))
        >>> r.status, [f.kind for f in admin.emu.faults.pending()], r.log
        (201, ['drop'], False)
        >>> admin.handle(HttpRequest("PUT", "", ADMIN_PREFIX + "/faults", "", [])).status
        405
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def handle(self, request: HttpRequest) -> HttpResponse:
        route = request.path[len(ADMIN_PREFIX):].rstrip("/") or "/"
        method = request.method
        handler = {
            ("/faults", "GET"): self._faults_list,
            ("/faults", "POST"): self._faults_add,
            ("/faults", "DELETE"): self._faults_clear,
            ("/requests", "GET"): self._requests_list,
            ("/requests", "DELETE"): self._requests_clear,
            ("/jwks", "GET"): lambda _r: _answer(200, self.emu.jwks),
            ("/vm", "GET"): lambda _r: _answer(200, self.emu.vm.to_dict()),
            ("/tokens", "DELETE"): self._tokens_clear,
            ("/environment", "GET"): lambda _r: _answer(200, self.emu.environment),
            ("/health", "GET"): lambda _r: _answer(200, {"status": "ok", "profile": self.emu.profile,
                                                         "imds_url": self.emu.imds_url,
                                                         "arm_url": self.emu.arm_url}),
        }.get((route, method))
        if handler is not None:
            return handler(request)
        known = {"/faults", "/requests", "/jwks", "/vm", "/tokens", "/environment", "/health"}
        if route in known:
            return _answer(405, {"error": "method_not_allowed",
                                 "error_description": f"{method} is not supported on {ADMIN_PREFIX}{route}"})
        return _answer(404, {"error": "not_found", "error_description":
                             f"no admin route {request.path}; known: " + ", ".join(sorted(known))})

    def _faults_list(self, _request: HttpRequest) -> HttpResponse:
        return _answer(200, {"faults": [f.to_dict() for f in self.emu.faults.pending()]})

    def _faults_add(self, request: HttpRequest) -> HttpResponse:
        try:
            data = json.loads(request.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _answer(400, {"error": "invalid_request", "error_description": f"body is not JSON: {exc}"})
        items = data if isinstance(data, list) else [data]
        try:
            faults = [Fault.from_dict(item) for item in items]
        except (ValueError, TypeError) as exc:
            return _answer(400, {"error": "invalid_request", "error_description": str(exc)})
        for fault in faults:
            self.emu.faults.add(fault)
        return _answer(201, {"faults": [f.to_dict() for f in faults]})

    def _faults_clear(self, _request: HttpRequest) -> HttpResponse:
        return _answer(200, {"cleared": self.emu.faults.clear()})

    def _requests_list(self, _request: HttpRequest) -> HttpResponse:
        return _answer(200, {"requests": [r.to_dict() for r in self.emu.requests]})

    def _requests_clear(self, _request: HttpRequest) -> HttpResponse:
        n = len(self.emu.requests)
        self.emu.requests.clear()
        return _answer(200, {"cleared": n})

    def _tokens_clear(self, _request: HttpRequest) -> HttpResponse:
        n = len(self.emu.issuer.cached())
        self.emu.issuer.clear()
        return _answer(200, {"cleared": n + self.emu.user_tokens.clear()})
