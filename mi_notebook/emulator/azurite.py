"""Azurite, Microsoft's Storage emulator, started and stopped for a test or a notebook: Blob over HTTPS with OAuth.

Azurite (npm package ``azurite``, pinned to :data:`AZURITE_VERSION`, the last release that runs on
Node 20) is a real, independent Storage implementation. In ``--oauth basic`` mode over HTTPS it accepts
bearer tokens and checks their audience (``https://storage.azure.com`` or the account URL), issuer
and expiry, but not the signature and not RBAC, so the emulator's storage tokens work there and an ARM
token is refused. :class:`Azurite` generates a throw-away CA and certificate (:mod:`.tls`), starts
``azurite-blob`` on ``127.0.0.1`` and a free port, always with ``--disableTelemetry`` (Azurite sends
telemetry by default), keeps everything in memory, and removes it all at :meth:`Azurite.stop`.

Where the program is found: ``$MI_NOTEBOOK_AZURITE`` (the path of ``azurite-blob``), then
``azurite-blob`` on ``PATH``, then the repository's ``.ci/node`` (``.ci/install-azurite`` puts it
there). When Node or Azurite is missing, :class:`AzuriteUnavailable` says how to install them.

Example::

    >>> Azurite(port=0).argv(10000)[1:4]
    ['--blobHost', '127.0.0.1', '--blobPort']
    >>> "--disableTelemetry" in Azurite().argv(10000)
    True
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from .tls import TlsMaterial

__all__ = ["ACCOUNT", "AZURITE_VERSION", "Azurite", "AzuriteUnavailable", "find_azurite"]

AZURITE_VERSION = "3.35.0"  # 3.36+ needs Node 22
ACCOUNT = "devstoreaccount1"  # Azurite's built-in account
INSTALL_HINT = (f"install Node.js (20 or later) and Azurite {AZURITE_VERSION}: `bash .ci/install-azurite` in a "
                f"clone of mi-notebook, or `npm install -g azurite@{AZURITE_VERSION}`, or set MI_NOTEBOOK_AZURITE "
                "to the path of azurite-blob")
_REPO_BIN = Path(__file__).resolve().parents[2] / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"


class AzuriteUnavailable(RuntimeError):
    """Node.js or Azurite is not installed here (the message says how to install them)."""


def find_azurite() -> str:
    """The path of ``azurite-blob`` (and Node on PATH), or :class:`AzuriteUnavailable` saying what to install.

    Example::

        >>> try:
        ...     found = find_azurite()
        ... except AzuriteUnavailable as exc:
        ...     found = str(exc)
        >>> isinstance(found, str)
        True
    """
    if shutil.which("node") is None:
        raise AzuriteUnavailable(f"Node.js is not installed, so Azurite cannot run: {INSTALL_HINT}")
    for candidate in (os.environ.get("MI_NOTEBOOK_AZURITE"), shutil.which("azurite-blob"), str(_REPO_BIN)):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise AzuriteUnavailable(f"Azurite is not installed: {INSTALL_HINT}")


class Azurite:
    """One Azurite Blob service on loopback, HTTPS with OAuth, for as long as the ``with`` block lasts.

    Attributes once started: ``account_url`` (``https://127.0.0.1:PORT/devstoreaccount1``, what
    ``BlobServiceClient`` takes), ``ca_bundle`` (pass it as ``connection_verify=``), ``port``.

    Example::

        >>> az = Azurite()
        >>> az.running, az.account_url
        (False, None)
    """

    def __init__(self, *, executable: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 startup_timeout: float = 30.0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"Azurite listens on loopback only (127.0.0.1, localhost or ::1), not {host!r}")
        self.executable = executable
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.tls: TlsMaterial | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: str | None = None

    def argv(self, port: int) -> list[str]:
        """The command line: loopback, the given port, OAuth over HTTPS, telemetry off, in memory."""
        tls = self.tls
        argv = [self.executable or "azurite-blob", "--blobHost", self.host, "--blobPort", str(port),
                "--oauth", "basic", "--disableTelemetry", "--inMemoryPersistence", "--silent", "--loose",
                "--skipApiVersionCheck"]  # in memory: no --location (Azurite refuses both); its cwd is a temp dir
        if tls is not None:
            argv += ["--cert", tls.cert_file, "--key", tls.key_file]
        return argv

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def account_url(self) -> str | None:
        if not self.running:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/{ACCOUNT}"

    @property
    def ca_bundle(self) -> str | None:
        return self.tls.ca_bundle if self.tls is not None and self.running else None

    def start(self) -> Azurite:
        if self.running:
            return self
        self.executable = self.executable or find_azurite()
        self.tls = TlsMaterial.generate(("127.0.0.1", "localhost", "::1"))
        self._workdir = tempfile.mkdtemp(prefix="mi-notebook-azurite-")
        port = self.port or _free_port(self.host)
        log = open(os.path.join(self._workdir, "azurite.log"), "wb")  # noqa: SIM115 - closed below
        try:
            self.process = subprocess.Popen(self.argv(port), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self._workdir)
        finally:
            log.close()
        self.port = port
        if not self._wait_ready():
            message = self._log_tail()
            self.stop()
            raise AzuriteUnavailable(f"Azurite did not start within {self.startup_timeout:g} s on "
                                     f"{self.host}:{port}: {message or 'no output'}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None
        if self.tls is not None:
            self.tls.cleanup()
            self.tls = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Azurite {self.account_url or 'stopped'}>"

    def _wait_ready(self) -> bool:
        assert self.tls is not None and self.process is not None
        context = ssl.create_default_context(cafile=self.tls.ca_bundle)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as raw, \
                        context.wrap_socket(raw, server_hostname=self.host):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        if self._workdir is None:
            return ""
        try:
            return Path(self._workdir, "azurite.log").read_text(errors="replace")[-500:].strip()
        except OSError:
            return ""


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
