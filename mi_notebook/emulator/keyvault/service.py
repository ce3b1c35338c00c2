"""The emulated Key Vault's secrets and the rules to reach them: :class:`VaultService`, a pure dispatcher.

Each request goes through, in order: the bearer token (:mod:`.auth`); ``api-version``; the route;
data-plane RBAC; the secret; the answer (the package's docstring tells the whole story).

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> from mi_notebook.emulator.keyvault.auth import VaultTokenCheck
    >>> vm, keys = VirtualMachine.build(), SigningKeys()
    >>> check = VaultTokenCheck(keys, tenant_id=vm.tenant_id, issuer=f"https://sts.windows.net/{vm.tenant_id}/")
    >>> svc = VaultService(vm, check=check, base_url=lambda: "https://kv")
    >>> r = svc.handle(HttpRequest("GET", "", "/secrets/greeting", "api-version=7.5", []))
    >>> r.status, r.service
    (401, 'keyvault')
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..server import HttpRequest, HttpResponse, json_response
from ..world import VirtualMachine, stable_guid
from .auth import VaultTokenCheck

__all__ = ["API_VERSIONS", "DEFAULT_SECRETS", "SECRETS_USER", "Secret", "VaultService"]

#: the data-plane api-versions answered (the SDKs of the last years send one of these)
API_VERSIONS = ("2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01")
SECRETS_USER = "Key Vault Secrets User"
ACTION = "Microsoft.KeyVault/vaults/secrets/{}/action"
NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
MAX_VALUE = 25 * 1024  # Key Vault's limit on a secret value (bytes)

#: the seeded vault's secrets (name -> value); "db-password" gets a value derived from the seed
DEFAULT_SECRETS: Mapping[str, str] = {"greeting": "hello from the emulated Key Vault", "db-password": ""}


@dataclass
class Secret:
    """One version of a secret (the newest version is the one served without a version).

    Example::

        >>> s = Secret("greeting", "hi", "0" * 32, created=1.0)
        >>> s.bundle("https://kv")["id"], "value" in s.bundle("https://kv", with_value=False)
        ('https://kv/secrets/greeting/00000000000000000000000000000000', False)
    """

    name: str
    value: str = field(repr=False)
    version: str
    created: float
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def bundle(self, vault_url: str, *, with_value: bool = True) -> dict[str, Any]:
        attributes = {"enabled": True, "created": int(self.created), "updated": int(self.created),
                      "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
        out: dict[str, Any] = {"id": f"{vault_url}/secrets/{self.name}/{self.version}", "attributes": attributes,
                               "tags": dict(self.tags)}
        if not with_value:  # a list item: the id without version, no value
            out["id"] = f"{vault_url}/secrets/{self.name}"
        else:
            out["value"] = self.value
        if self.content_type:
            out["contentType"] = self.content_type
        return out


class VaultService:
    """The secrets of one vault and the rules to reach them; ``base_url`` gives the vault URL for ids.

    ``name`` and ``resource_id`` are the vault's (the RBAC scope). ``secrets``: name -> value to seed
    (default :data:`DEFAULT_SECRETS`).

    Example::

        >>> vm = VirtualMachine.build(seed=1)
        >>> svc = VaultService(vm, check=None, base_url=lambda: "https://kv")
        >>> svc.name == VaultService(VirtualMachine.build(seed=1), check=None, base_url=str).name, sorted(svc.names())
        (True, ['db-password', 'greeting'])
    """

    def __init__(self, vm: VirtualMachine, *, check: VaultTokenCheck | None, base_url: Callable[[], str],
                 secrets: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.vm = vm
        self.check = check
        self.base_url = base_url
        self.clock = clock
        self.name = "kv-notebook-" + stable_guid(vm.seed, "keyvault")[:6]
        self.resource_id = f"{vm.resource_group_id}/providers/Microsoft.KeyVault/vaults/{self.name}"
        self._lock = threading.Lock()
        self._secrets: dict[str, list[Secret]] = {}
        for name, value in (DEFAULT_SECRETS if secrets is None else secrets).items():
            self.set(name, value or stable_guid(vm.seed, "secret:" + name).replace("-", ""))

    def names(self) -> list[str]:
        with self._lock:
            return list(self._secrets)

    def set(self, name: str, value: str, *, content_type: str | None = None,
            tags: Mapping[str, str] | None = None) -> Secret:
        """Add a new version of ``name`` (what ``PUT /secrets/{name}`` does)."""
        with self._lock:
            versions = self._secrets.setdefault(name, [])
            version = hashlib.sha256(f"{self.vm.seed}:{name}:{len(versions)}".encode()).hexdigest()[:32]
            secret = Secret(name, value, version, self.clock(), content_type, dict(tags or {}))
            versions.append(secret)
            return secret

    def get(self, name: str, version: str | None = None) -> Secret | None:
        with self._lock:
            versions = self._secrets.get(name, [])
            if version is None:
                return versions[-1] if versions else None
            return next((s for s in versions if s.version == version), None)

    # ---- the pipeline -----------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        if self.check is not None:
            auth = self.check.check(request.header("Authorization"))
            if not auth.ok:
                return self._error(401, "Unauthorized", auth.message or "", www_authenticate=auth.www_authenticate)
            claims = auth.claims or {}
        else:
            claims = {}
        query = parse_qs(request.query)
        version = (query.get("api-version") or [""])[0]
        if not version:
            return self._error(400, "BadParameter", "The 'api-version' query parameter is missing.")
        if version not in API_VERSIONS:
            return self._error(400, "BadParameter", f"The specified version ({version}) is not recognized. "
                               f"Consider using the latest supported version ({API_VERSIONS[-1]}).")
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0].lower() != "secrets" or len(parts) > 3:
            return self._error(404, "NotFound", f"The path {request.path!r} is not served by this emulated vault "
                               "(only /secrets).")
        if len(parts) == 1:
            if request.method != "GET":
                return self._not_allowed(request)
            return self._guarded(claims, "readMetadata", "/secrets", self._list)
        name = parts[1]
        if not NAME.match(name):
            return self._error(400, "BadParameter", f"The secret name '{name}' is invalid: use 1-127 letters, "
                               "digits and dashes.")
        if request.method == "GET" and len(parts) <= 3:
            return self._guarded(claims, "getSecret", f"/secrets/{name}",
                                 lambda: self._read(name, parts[2] if len(parts) == 3 else None))
        if request.method == "PUT" and len(parts) == 2:
            return self._guarded(claims, "setSecret", f"/secrets/{name}", lambda: self._write(name, request.body))
        return self._not_allowed(request)

    def _guarded(self, claims: Mapping[str, Any], verb: str, sub: str,
                 answer: Callable[[], HttpResponse]) -> HttpResponse:
        action = ACTION.format(verb)
        oid = str(claims.get("oid", ""))
        if self.check is None or self.vm.is_data_authorized(oid, action, self.resource_id + sub):
            return answer()
        message = ("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                   "assignments or role definitions were changed recently, please observe propagation time.\r\n"
                   f"Caller: appid={claims.get('appid', '')};oid={oid};iss={claims.get('iss', '')}\r\n"
                   f"Action: '{action}'\r\nResource: '{(self.resource_id + sub).lower()}'\r\n"
                   f"Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\n"
                   f"Vault: {self.name};location={self.vm.location}\r\n")
        return self._error(403, "Forbidden", message, inner="ForbiddenByRbac")

    def _list(self) -> HttpResponse:
        url = self.base_url()
        with self._lock:
            items = [versions[-1].bundle(url, with_value=False) for versions in self._secrets.values()]
        return json_response(200, {"value": items, "nextLink": None}, service="keyvault", endpoint="secrets")

    def _read(self, name: str, version: str | None) -> HttpResponse:
        secret = self.get(name, version)
        if secret is None:
            shown = name if version is None else f"{name}/{version}"
            return self._error(404, "SecretNotFound", f"A secret with (name/id) {shown} was not found in this key "
                               "vault. If you recently deleted this secret you may be able to recover it using the "
                               "correct recovery command. For help resolving this issue, please see "
                               "https://go.microsoft.com/fwlink/?linkid=2125182")
        return json_response(200, secret.bundle(self.base_url()), service="keyvault", endpoint="secret")

    def _write(self, name: str, body: bytes) -> HttpResponse:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        value = payload.get("value") if isinstance(payload, dict) else None
        if not isinstance(value, str):
            return self._error(400, "BadParameter", "The request body must be JSON with a string 'value'.")
        if len(value.encode()) > MAX_VALUE:
            return self._error(400, "BadParameter", f"The secret value is larger than {MAX_VALUE} bytes.")
        tags = payload.get("tags") if isinstance(payload.get("tags"), dict) else None
        content_type = payload.get("contentType") if isinstance(payload.get("contentType"), str) else None
        secret = self.set(name, value, content_type=content_type, tags=tags)
        return json_response(200, secret.bundle(self.base_url()), service="keyvault", endpoint="secret")

    def _not_allowed(self, request: HttpRequest) -> HttpResponse:
        return self._error(405, "BadParameter", f"The method {request.method} is not served for {request.path} by "
                           "this emulated vault.")

    @staticmethod
    def _error(status: int, code: str, message: str, *, inner: str | None = None,
               www_authenticate: str | None = None) -> HttpResponse:
        error: dict[str, Any] = {"code": code, "message": message}
        if inner:
            error["innererror"] = {"code": inner}
        headers = [("WWW-Authenticate", www_authenticate)] if www_authenticate else []
        return json_response(status, {"error": error}, headers=headers, service="keyvault", endpoint="secrets")
