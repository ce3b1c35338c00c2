"""One side of the emulator (ARM, Key Vault, Azure OpenAI) served on its own loopback port.

:class:`HttpsSide` holds what those servers share: binding on the emulator's host, the TLS material
(the emulator's, passed to :meth:`~HttpsSide.start`, or made fresh and removed at :meth:`~HttpsSide.stop`),
and the :class:`~.server.HttpServer` with the emulator's request log and clock. A subclass says what is
its own: the service that answers (``_handle``), ``service_name`` and ``server_header``.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator() as emu:
    ...     isinstance(emu.arm, HttpsSide), emu.keyvault.ca_bundle in (None, emu.ca_bundle)
    (True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeVar

from .server import HttpRequest, HttpResponse, HttpServer
from .tls import DEFAULT_HOSTS, TlsMaterial

if TYPE_CHECKING:  # pragma: no cover
    from . import Emulator

__all__ = ["HttpsSide"]

_Side = TypeVar("_Side", bound="HttpsSide")


class HttpsSide:
    """A server for one side of an emulator, on its own loopback port (HTTPS unless ``https=False``).

    :meth:`start` takes the certificate material to present (``tls``: another side's, so one CA bundle
    serves them all); without it a fresh CA is made here (kept in ``tls``) and removed at :meth:`stop`.
    ``url``, ``ca_bundle`` (None over plain http) and ``port`` are set while it runs.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     side = emu.arm
        ...     side.url == f"https://127.0.0.1:{side.port}", side.service_name, side.tls is not None
        (True, 'arm', True)
        >>> side.url, side.ca_bundle, side.port, side.tls  # stopped: the generated CA is gone
        (None, None, None, None)
    """

    #: the request log's name for this side's requests
    service_name: ClassVar[str]
    #: the ``Server`` header it answers with
    server_header: ClassVar[str]

    def __init__(self, emulator: Emulator, *, port: int = 0, https: bool = True) -> None:
        self.emulator = emulator
        self.tls: TlsMaterial | None = None  # only when made here
        self._port = port
        self._https = https
        self._server: HttpServer | None = None
        self.url: str | None = None
        self.ca_bundle: str | None = None

    def _handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request (the subclass's service does)."""
        raise NotImplementedError

    def start(self: _Side, tls: TlsMaterial | None = None) -> _Side:
        """Serve on the emulator's host (idempotent); ``tls``: the certificate material to present."""
        if self._server is not None:
            return self
        host = self.emulator.host
        context = None
        if self._https:
            if tls is None:
                self.tls = tls = TlsMaterial.generate(DEFAULT_HOSTS if host in DEFAULT_HOSTS
                                                      else (*DEFAULT_HOSTS, host))
            context = tls.server_context()
        server = HttpServer(self._handle, host=host, port=self._port, server_header=self.server_header,
                            request_log=self.emulator.requests, clock=self.emulator.clock,
                            service=self.service_name, ssl_context=context)
        try:
            server.start()
        except BaseException:
            self.stop()
            raise
        self._server = server
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{'https' if self._https else 'http'}://{shown}:{server.port}"
        self.ca_bundle = tls.ca_bundle if self._https and tls is not None else None
        return self

    def stop(self) -> None:
        """Stop serving and remove a CA made here. Idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.tls is not None:
            self.tls.cleanup()
            self.tls = None
        self.url = None
        self.ca_bundle = None

    @property
    def port(self) -> int | None:
        """The port it listens on, None when stopped."""
        return self._server.port if self._server is not None else None
