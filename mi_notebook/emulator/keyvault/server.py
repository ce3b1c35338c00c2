"""Serves the emulated Key Vault (:class:`~.service.VaultService`) on its own loopback port over HTTPS.

Without a token, the vault challenges for one, naming its resource (as Key Vault does)::

    >>> import requests
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(arm=False) as emu:  # no ARM side: the vault makes its own CA
    ...     challenge = requests.get(emu.vault_url + "/secrets?api-version=7.4", verify=emu.vault_ca_bundle)
    >>> challenge.status_code, challenge.headers["WWW-Authenticate"].endswith('resource="https://vault.azure.net"')
    (401, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._https_side import HttpsSide
from ..clouds import cloud
from ..server import HttpRequest, HttpResponse
from .auth import VaultTokenCheck
from .service import VaultService

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["VaultServer"]


class VaultServer(HttpsSide):
    """Serves :class:`VaultService` for an emulator on its own loopback port over HTTPS.

    The emulator starts it on first use of ``vault_url``, presenting the ARM side's certificate so one CA
    bundle serves both (:class:`~.._https_side.HttpsSide` says how ``start``/``stop`` go).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     isinstance(emu.keyvault, VaultServer), emu.vault_url == emu.keyvault.url, emu.vault_ca_bundle == emu.ca_bundle
        (True, True, True)
    """

    service_name = "keyvault"
    server_header = "mi-notebook-keyvault-emulator"

    def __init__(self, emulator: Emulator, *, secrets: Mapping[str, str] | None = None, port: int = 0) -> None:
        super().__init__(emulator, port=port)
        check = VaultTokenCheck(emulator.keys, tenant_id=emulator.vm.tenant_id, issuer=emulator.issuer_url,
                                clock=emulator.clock, cloud=emulator.vm.cloud)
        suffix = cloud(emulator.vm.cloud).vault_suffix
        self.service = VaultService(emulator.vm, check=check, secrets=secrets, clock=emulator.clock,
                                    base_url=lambda: self.url or f"https://{self.service.name}{suffix}")

    def _handle(self, request: HttpRequest) -> HttpResponse:
        return self.service.handle(request)
