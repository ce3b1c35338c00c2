"""Serves the emulated Key Vault (:class:`~.service.VaultService`) on its own loopback port over HTTPS.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(arm=False) as emu:
    ...     emu.vault_url.startswith("https://127.0.0.1:"), emu.vault_ca_bundle == emu.keyvault.ca_bundle
    (True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..clouds import cloud
from ..server import HttpServer
from ..tls import TlsMaterial
from .auth import VaultTokenCheck
from .service import VaultService

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["VaultServer"]


class VaultServer:
    """Serves :class:`VaultService` for an emulator on its own loopback port over HTTPS.

    :meth:`start` takes the certificate material to present (``tls``: the ARM side's, so one CA bundle
    serves both); without it a fresh CA is made here and removed at :meth:`stop`. ``url`` and
    ``ca_bundle`` are set by :meth:`start`.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     isinstance(emu.keyvault, VaultServer), emu.vault_url == emu.keyvault.url, emu.vault_ca_bundle == emu.ca_bundle
        (True, True, True)
    """

    def __init__(self, emulator: Emulator, *, secrets: Mapping[str, str] | None = None, port: int = 0) -> None:
        self.emulator = emulator
        check = VaultTokenCheck(emulator.keys, tenant_id=emulator.vm.tenant_id, issuer=emulator.issuer_url,
                                clock=emulator.clock, cloud=emulator.vm.cloud)
        suffix = cloud(emulator.vm.cloud).vault_suffix
        self.service = VaultService(emulator.vm, check=check, secrets=secrets, clock=emulator.clock,
                                    base_url=lambda: self.url or f"https://{self.service.name}{suffix}")
        self.tls: TlsMaterial | None = None  # only when made here
        self._port = port
        self._server: HttpServer | None = None
        self.url: str | None = None
        self.ca_bundle: str | None = None

    def start(self, tls: TlsMaterial | None = None) -> VaultServer:
        if self._server is not None:
            return self
        host = self.emulator.host
        if tls is None:
            hosts = ("localhost", "127.0.0.1", "::1")
            self.tls = tls = TlsMaterial.generate(hosts if host in hosts else (*hosts, host))
        server = HttpServer(self.service.handle, host=host, port=self._port, server_header="mi-notebook-keyvault-emulator",
                            request_log=self.emulator.requests, clock=self.emulator.clock, service="keyvault",
                            ssl_context=tls.server_context())
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
