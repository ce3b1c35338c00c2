"""The emulated Azure Resource Manager: authenticated, RBAC-checked, throttled, paged reads over HTTPS.

:class:`ArmService` is a pure dispatcher ``(HttpRequest) -> HttpResponse``; :class:`ArmServer` serves it
on its own loopback port (HTTPS with a per-run CA by default, see :mod:`.tls`) for an
:class:`~mi_notebook.emulator.Emulator`, which starts it and exposes ``emu.arm_url`` / ``emu.ca_bundle``.

Each request goes through, in order: an injected fault (endpoint ``"arm"``); the bearer token
(:mod:`.arm_auth`, 401s); the read throttle (:mod:`.arm_throttle`, 429); ``api-version`` (400); the
subscription (404); role-based access (403 ``AuthorizationFailed``); the resource (404); the answer.
Lists are paged: ``{"value": [...], "nextLink": "<absolute URL with $skiptoken>"}``.

This module is the server and the public face; the parts live beside it: :mod:`.arm_service` (the
pipeline and handlers, :class:`ArmOptions`), :mod:`.arm_routes` (paths, api-versions, RBAC actions),
:mod:`.arm_paging` (the query string and paged lists), :mod:`.arm_answers` (error envelope, request
ids, injected faults), :mod:`.arm_auth`, :mod:`.arm_throttle` and :mod:`.arm_catalog`.

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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .arm_routes import RESOURCES_API_VERSIONS
from .arm_service import ArmOptions, ArmService
from .server import HttpRequest, HttpResponse, HttpServer
from .tls import TlsMaterial

if TYPE_CHECKING:  # pragma: no cover
    from . import Emulator

__all__ = ["RESOURCES_API_VERSIONS", "ArmOptions", "ArmServer", "ArmService"]


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
