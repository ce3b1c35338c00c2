"""Serves the emulated ARM (:class:`~.service.ArmService`) for an emulator on its own loopback port.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(keyvault=False) as emu:
    ...     emu.arm_url.startswith("https://127.0.0.1:"), emu.ca_bundle == emu.arm.ca_bundle
    (True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..server import HttpRequest, HttpResponse, HttpServer
from ..tls import TlsMaterial
from .service import ArmOptions, ArmService

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["ArmServer"]


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
        self.options = ArmOptions.from_mapping(options if options is not None else emulator.options.arm)
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
            hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
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
        from ..admin import ADMIN_PREFIX

        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self.emulator.admin.handle(request)
        return self.service.handle(request)
