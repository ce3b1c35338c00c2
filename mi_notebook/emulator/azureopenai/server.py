"""Serves the emulated Azure OpenAI (:class:`~.service.OpenAIService`) on its own loopback port over HTTPS.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(arm=False, keyvault=False) as emu:
    ...     emu.openai_url.startswith("https://127.0.0.1:"), emu.openai_ca_bundle == emu.openai_server.ca_bundle
    (True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..server import HttpServer
from ..tls import TlsMaterial
from .auth import OpenAITokenCheck
from .deployments import OpenAIOptions
from .service import OpenAIService

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["OpenAIServer"]


class OpenAIServer:
    """Serves :class:`OpenAIService` for an emulator on its own loopback port over HTTPS.

    :meth:`start` takes the certificate material to present (``tls``: the ARM side's, so one CA bundle
    serves ARM, the vault and this); without it a fresh CA is made here and removed at :meth:`stop`.
    ``url`` and ``ca_bundle`` are set by :meth:`start`.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     isinstance(emu.openai_server, OpenAIServer), emu.openai_url == emu.openai_server.url
        (True, True)
        >>> emu.openai_ca_bundle == emu.ca_bundle or emu.openai_ca_bundle is None  # one CA; none once stopped
        True
    """

    def __init__(self, emulator: Emulator, options: OpenAIOptions) -> None:
        self.emulator = emulator
        self.options = options
        check = OpenAITokenCheck(emulator.keys, tenant_id=emulator.vm.tenant_id, issuer=emulator.issuer_url,
                                 audiences=options.audiences, clock=emulator.clock)
        self.service = OpenAIService(emulator.vm, check=check, options=options, faults=emulator.faults,
                                     clock=emulator.clock)
        self.tls: TlsMaterial | None = None  # only when made here
        self._server: HttpServer | None = None
        self.url: str | None = None
        self.ca_bundle: str | None = None

    def start(self, tls: TlsMaterial | None = None) -> OpenAIServer:
        if self._server is not None:
            return self
        host = self.emulator.host
        if tls is None:
            hosts = ("localhost", "127.0.0.1", "::1")
            self.tls = tls = TlsMaterial.generate(hosts if host in hosts else (*hosts, host))
        server = HttpServer(self.service.handle, host=host, port=self.options.port,
                            server_header="mi-notebook-openai-emulator", request_log=self.emulator.requests,
                            clock=self.emulator.clock, service="openai", ssl_context=tls.server_context())
        try:
            server.start()
        except BaseException:
            self.stop()
            raise
        self._server = server
        shown = f"[{host}]" if ":" in host else host
        self.url = f"https://{shown}:{server.port}"
        self.ca_bundle = tls.ca_bundle
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.tls is not None:
            self.tls.cleanup()
            self.tls = None
        self.url = None
        self.ca_bundle = None
