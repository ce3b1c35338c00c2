"""Serves the emulated ARM (:class:`~.service.ArmService`) for an emulator on its own loopback port.

The control plane answers on the ARM port too, so a process that knows only that URL can inject faults::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(keyvault=False) as emu:
    ...     reply = requests.get(emu.arm_url + "/__emulator__/vm", headers=emu.admin_headers, verify=emu.ca_bundle)
    >>> emu.arm_url is None, reply.status_code, reply.headers["Server"]
    (True, 200, 'mi-notebook-arm-emulator')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._https_side import HttpsSide
from ..server import HttpRequest, HttpResponse
from .service import ArmOptions, ArmService

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["ArmServer"]


class ArmServer(HttpsSide):
    """Serves :class:`ArmService` for an emulator on its own loopback port (HTTPS by default).

    The emulator's admin routes (``/__emulator__/...``) answer here too, so a process that only knows
    the ARM URL can inject faults. It makes its own CA (``tls``), which the other sides present too
    (:class:`~.._https_side.HttpsSide` says how ``start``/``stop`` go).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     isinstance(emu.arm, ArmServer), emu.arm.url == emu.arm_url, emu.arm.options.page_size
        (True, True, 3)
    """

    service_name = "arm"
    server_header = "mi-notebook-arm-emulator"

    def __init__(self, emulator: Emulator, options: Mapping[str, Any] | ArmOptions | None = None) -> None:
        self.options = ArmOptions.from_mapping(options if options is not None else emulator.options.arm)
        super().__init__(emulator, port=self.options.port, https=self.options.tls)
        self.service = ArmService(emulator.vm, emulator.keys, emulator.faults, issuer=emulator.issuer_url,
                                  options=self.options, clock=emulator.clock, throttle=emulator.throttle,
                                  base_url=lambda: self.url or "https://management.azure.com")

    def _handle(self, request: HttpRequest) -> HttpResponse:
        from ..admin import ADMIN_PREFIX

        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self.emulator.admin.handle(request)
        return self.service.handle(request)
