"""Serves the emulated Azure OpenAI (:class:`~.service.OpenAIService`) on its own loopback port over HTTPS.

Example (a request without a token, told why in Azure OpenAI's words)::

    >>> import json, ssl, urllib.error, urllib.request
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(arm=False, keyvault=False) as emu:
    ...     trust = ssl.create_default_context(cafile=emu.openai_ca_bundle)
    ...     try:
    ...         urllib.request.urlopen(f"{emu.openai_url}/openai/deployments?api-version=2024-10-21", context=trust)
    ...     except urllib.error.HTTPError as refused:
    ...         print(refused.code, json.load(refused)["message"].split(".")[0])
    401 Unauthorized
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._https_side import HttpsSide
from ..server import HttpRequest, HttpResponse
from .auth import OpenAITokenCheck
from .deployments import OpenAIOptions
from .service import OpenAIService

if TYPE_CHECKING:  # pragma: no cover
    from .. import Emulator

__all__ = ["OpenAIServer"]


class OpenAIServer(HttpsSide):
    """Serves :class:`OpenAIService` for an emulator on its own loopback port over HTTPS.

    The emulator starts it on first use of ``openai_url``, presenting the ARM side's certificate so one CA
    bundle serves ARM, the vault and this (:class:`~.._https_side.HttpsSide` says how ``start``/``stop`` go).

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     isinstance(emu.openai_server, OpenAIServer), emu.openai_url == emu.openai_server.url
        (True, True)
        >>> emu.openai_ca_bundle == emu.ca_bundle or emu.openai_ca_bundle is None  # one CA; none once stopped
        True
    """

    service_name = "openai"
    server_header = "mi-notebook-openai-emulator"

    def __init__(self, emulator: Emulator, options: OpenAIOptions) -> None:
        super().__init__(emulator, port=options.port)
        self.options = options
        check = OpenAITokenCheck(emulator.keys, tenant_id=emulator.vm.tenant_id, issuer=emulator.issuer_url,
                                 audiences=options.audiences, clock=emulator.clock)
        self.service = OpenAIService(emulator.vm, check=check, options=options, faults=emulator.faults,
                                     clock=emulator.clock)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        return self.service.handle(request)
