"""The emulator's control plane over HTTP, under the reserved prefix ``/__emulator__/``, locked.

Every admin request is refused (403) when it carries an ``Origin`` header (a web page: browsers send
one on every cross-origin request and every POST) or, while the emulator listens on loopback, when
its ``Host`` header names anything but a loopback address or ``localhost`` (a DNS-rebinding page).
Every route but ``jwks`` and ``health`` also needs the emulator's admin token, a random value made
per emulator (:attr:`~mi_notebook.emulator.Emulator.admin_token`; ``mi-notebook emulator`` prints it
as ``export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN=...``): ``Authorization: Bearer <admin token>``, compared
in constant time; missing or wrong: 401. A body must be ``application/json`` (else 415). The host
secret (``MSI_SECRET``, ``IDENTITY_HEADER``) is never served.

Routes (JSON in, JSON out; kept out of the request log):

- ``GET /__emulator__/faults`` pending faults; ``POST`` one fault object or a list (``{"fault": 503,
  "endpoint": "token", "count": 2}``) -> 201; ``DELETE`` clears them.
- ``GET /__emulator__/requests`` the request log; ``DELETE`` clears it.
- ``GET /__emulator__/vm`` the emulated VM, identities, resources and role assignments.
- ``DELETE /__emulator__/tokens`` forgets the cached tokens, the signed-in user's too (the next request
  signs new ones).
- ``GET /__emulator__/environment`` the variables the emulated host sets, without its secret (``{}``
  for the VM profile).
- No token needed: ``GET /__emulator__/jwks`` the token-signing public keys (JWKS: public, as Entra
  ID's are), ``GET /__emulator__/health`` ``{"status": "ok", "profile": ..., ...}``.

Example::

    >>> import json, urllib.error, urllib.request
    >>> from mi_notebook.emulator import Emulator
    >>> def status(request):
    ...     try:
    ...         with urllib.request.urlopen(request) as answer:
    ...             return answer.status
    ...     except urllib.error.HTTPError as err:
    ...         return err.code
    >>> with Emulator() as emu:
    ...     url, body = emu.imds_url + "/__emulator__/faults", json.dumps({"fault": 503, "endpoint": "token"}).encode()
    ...     anyone = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    ...     holder = urllib.request.Request(url, body, {"Content-Type": "application/json", **emu.admin_headers},
    ...                                     method="POST")
    ...     status(anyone), status(holder), [f.kind for f in emu.faults.pending()]
    (401, 201, [503])
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .faults import Fault
from .server import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from . import Emulator

__all__ = ["ADMIN_PREFIX", "ADMIN_TOKEN_ENV", "AdminEndpoint", "check_admin_token", "is_loopback_host",
           "new_admin_token"]

ADMIN_PREFIX = "/__emulator__"
#: a parent process may choose the admin token of the emulators started under it (a notebook kernel's)
ADMIN_TOKEN_ENV = "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 16
PUBLIC_ROUTES = {("/jwks", "GET"), ("/health", "GET")}
ROUTES = ("/faults", "/requests", "/jwks", "/vm", "/tokens", "/environment", "/health")
#: the variables that carry a host's secret, never served (values equal to the secret are dropped too)
SECRET_VARIABLES = {"MSI_SECRET", "IDENTITY_HEADER"}
WWW_AUTHENTICATE = 'Bearer realm="mi-notebook emulator control plane"'


def _answer(status: int, payload: Any, **kwargs: Any) -> HttpResponse:
    return json_response(status, payload, log=False, endpoint="admin", **kwargs)


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == "application/json"


def new_admin_token() -> str:
    """A fresh random admin token (256 bits, URL-safe).

    Example::

        >>> len(new_admin_token()), new_admin_token() != new_admin_token()
        (43, True)
    """
    return secrets.token_urlsafe(32)


def check_admin_token(token: str, where: str = "admin_token") -> str:
    """``token`` if it can serve as an admin token (printable ASCII, no spaces, 16 characters or
    more), else ``ValueError`` naming ``where`` and never the value.

    Example::

        >>> check_admin_token("short", "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN")
        Traceback (most recent call last):
        ValueError: MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN must be 16 or more printable ASCII characters without spaces
    """
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH or not all(33 <= ord(c) < 127 for c in token):
        raise ValueError(f"{where} must be {MIN_TOKEN_LENGTH} or more printable ASCII characters without spaces")
    return token


def is_loopback_host(host: str) -> bool:
    """True when ``host`` (an address or a ``Host`` header value, with or without a port) is loopback.

    Example::

        >>> [is_loopback_host(h) for h in ("127.0.0.1:8080", "[::1]:80", "localhost", "evil.example", "10.0.0.4")]
        [True, True, True, False, False]
    """
    name = host.strip()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class AdminEndpoint:
    """Serves ``/__emulator__/*`` for one :class:`~mi_notebook.emulator.Emulator`, locked by its admin token.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> admin = AdminEndpoint(Emulator(arm=False))  # handle() needs no running server
        >>> def post(*headers):
        ...     return admin.handle(HttpRequest("POST", "", ADMIN_PREFIX + "/faults", "", [
        ...         ("Host", "127.0.0.1:1"), ("Content-Type", "application/json"), *headers], b'{"fault": "drop"}'))
        >>> post().status, post(("Authorization", "Bearer wrong-token-0123456789")).status
        (401, 401)
        >>> post(("Authorization", "Bearer " + admin.emu.admin_token), ("Origin", "http://evil.example")).status
        403
        >>> r = post(("Authorization", "Bearer " + admin.emu.admin_token))
        >>> r.status, [f.kind for f in admin.emu.faults.pending()], r.log
        (201, ['drop'], False)
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def handle(self, request: HttpRequest) -> HttpResponse:
        route = request.path[len(ADMIN_PREFIX):].rstrip("/") or "/"
        method = request.method
        refused = self._refusal(request, public=(route, method) in PUBLIC_ROUTES)
        if refused is not None:
            return refused
        routes: dict[tuple[str, str], Callable[[HttpRequest], HttpResponse]] = {
            ("/faults", "GET"): self._faults_list,
            ("/faults", "POST"): self._faults_add,
            ("/faults", "DELETE"): self._faults_clear,
            ("/requests", "GET"): self._requests_list,
            ("/requests", "DELETE"): self._requests_clear,
            ("/jwks", "GET"): lambda _r: _answer(200, self.emu.jwks),
            ("/vm", "GET"): lambda _r: _answer(200, self.emu.vm.to_dict()),
            ("/tokens", "DELETE"): self._tokens_clear,
            ("/environment", "GET"): self._environment,
            ("/health", "GET"): lambda _r: _answer(200, {"status": "ok", "profile": self.emu.profile,
                                                         "imds_url": self.emu.imds_url,
                                                         "arm_url": self.emu.arm_url}),
        }
        handler = routes.get((route, method))
        if handler is not None:
            return handler(request)
        if route in ROUTES:
            return _answer(405, {"error": "method_not_allowed",
                                 "error_description": f"{method} is not supported on {ADMIN_PREFIX}{route}"})
        return _answer(404, {"error": "not_found", "error_description":
                             f"no admin route {request.path}; known: " + ", ".join(sorted(ROUTES))})

    # ---- the lock -----------------------------------------------------------------------------------
    def _refusal(self, request: HttpRequest, *, public: bool) -> HttpResponse | None:
        """Why this request may not use the control plane (None: it may)."""
        if request.header_all("Origin"):
            return _answer(403, {"error": "forbidden", "error_description":
                                 "the emulator's control plane refuses requests from web pages (an Origin header "
                                 "was sent); call it from a program on this machine"})
        hosts = request.header_all("Host")
        if is_loopback_host(self.emu.host) and (len(hosts) != 1 or not is_loopback_host(hosts[0])):
            return _answer(403, {"error": "forbidden", "error_description":
                                 "the emulator's control plane answers only requests addressed to a loopback host "
                                 "(Host: 127.0.0.1, [::1] or localhost)"})
        if public:
            return None
        sent = [value.strip()[7:].strip() for value in request.header_all("Authorization")
                if value.strip()[:7].lower() == "bearer "]
        expected = self.emu.admin_token.encode("ascii")
        if len(sent) == 1 and hmac.compare_digest(sent[0].encode("utf-8", "replace"), expected):
            if request.method == "POST" and not _is_json(request.header("Content-Type")):
                return _answer(415, {"error": "unsupported_media_type",
                                     "error_description": "send the body as Content-Type: application/json"})
            return None
        problem = "wrong admin token" if sent else "no admin token"
        return _answer(401, {"error": "unauthorized", "error_description":
                             f"{problem}: send Authorization: Bearer <admin token> (the Emulator's admin_token; "
                             f"`mi-notebook emulator` prints it as {ADMIN_TOKEN_ENV})"},
                       headers=[("WWW-Authenticate", WWW_AUTHENTICATE + (', error="invalid_token"' if sent else ""))])

    # ---- the routes ---------------------------------------------------------------------------------
    def _environment(self, _request: HttpRequest) -> HttpResponse:
        shown = {name: value for name, value in self.emu.environment.items()
                 if name not in SECRET_VARIABLES and value != self.emu.secret}
        return _answer(200, shown)

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
