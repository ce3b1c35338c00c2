"""The key files of the Azure Arc challenge: what the Connected Machine agent writes for each 401.

An Arc token request first gets ``401`` with ``WWW-Authenticate: Basic realm=<path of a key file>``;
only a process that can read that file (on Linux: root or the ``himds`` group) can repeat the
request with ``Authorization: Basic <file contents>``. Clients check the file before reading it: it
must sit in the platform directory (``/var/opt/azcmagent/tokens`` on Linux, the one azure-identity
and MSAL insist on), end in ``.key`` and hold at most 4096 bytes.

A key file is not a token: it is the local secret that proves the caller may read that directory,
and writing it is exactly what the real agent does. The store writes ``<random>.key`` files (mode
0600), keeps at most :data:`MAX_KEY_FILES` of them (the oldest one's key stops working when it is
removed), and removes every file it wrote, and any directory it had to create, when it is closed.

Example::

    >>> import os, tempfile
    >>> store = ArcKeyStore(tempfile.mkdtemp())
    >>> store.open()
    >>> path = store.challenge()
    >>> path.endswith(".key"), os.path.getsize(path) <= 4096
    (True, True)
    >>> store.accepts("Basic " + open(path).read()), store.accepts("Basic wrong"), store.accepts(None)
    (True, False, False)
    >>> store.close(); os.path.exists(path)
    False
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

__all__ = ["DEFAULT_KEY_DIR", "MAX_KEY_BYTES", "MAX_KEY_FILES", "ArcKeyStore", "KeyDirectoryError"]

DEFAULT_KEY_DIR = "/var/opt/azcmagent/tokens"  # the Linux platform directory the clients require
MAX_KEY_BYTES = 4096  # what the clients accept
MAX_KEY_FILES = 64


class KeyDirectoryError(OSError):
    """The key directory cannot be created or written (``/var/opt/...`` usually needs root)."""


class ArcKeyStore:
    """Writes and checks the challenge key files in ``directory`` (thread-safe).

    Example::

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     store = ArcKeyStore(Path(tmp) / "tokens")
        ...     store.open()  # creates the missing directory (mode 0700)
        ...     key = Path(store.challenge())
        ...     store.accepts("Basic " + key.read_text()), len(store.files)
        ...     store.close()  # removes the key files, then the directory it created
        ...     key.parent.exists()
        (True, 1)
        False
    """

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_KEY_DIR) -> None:
        path = Path(directory)
        if not path.is_absolute():
            raise ValueError(f"the Arc key directory must be an absolute path, got {str(directory)!r}")
        if "=" in str(path):
            # clients split 'Basic realm=<path>' on '=': a path holding one could never be read back
            raise ValueError(f"the Arc key directory may not contain '=': {str(directory)!r}")
        self.directory = path
        self._keys: OrderedDict[Path, bytes] = OrderedDict()
        self._created: list[Path] = []  # directories this store made (removed again at close, if empty)
        self._lock = threading.Lock()

    def open(self) -> None:
        """Make sure the directory exists (creating it, mode 0700, if needed) and is writable; raises
        :class:`KeyDirectoryError` when it is not (``/var/opt/...`` usually needs root)."""
        with self._lock:
            try:
                self._ensure_directory()
                if not os.access(self.directory, os.W_OK | os.X_OK):
                    raise PermissionError(13, "Permission denied", str(self.directory))
            except OSError as exc:
                raise KeyDirectoryError(
                    exc.errno, f"cannot write Arc key files in {self.directory} ({exc.strerror or exc}); the "
                    "official clients only read them from /var/opt/azcmagent/tokens (run as root there), or "
                    "choose another directory with arc_key_dir= / --arc-key-dir for clients of your own") from exc

    def _ensure_directory(self) -> None:
        missing = []
        probe = self.directory
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                continue
            self._created.append(directory)

    def challenge(self) -> str:
        """Write a fresh key file and return its path (for ``WWW-Authenticate: Basic realm=<path>``)."""
        secret = secrets.token_urlsafe(48).encode("ascii")  # 64 characters, far below 4096 bytes
        with self._lock:
            self._ensure_directory()
            path = self.directory / f"{uuid.uuid4()}.key"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secret)
            finally:
                os.close(fd)
            self._keys[path] = secret
            while len(self._keys) > MAX_KEY_FILES:
                oldest, _ = self._keys.popitem(last=False)
                with contextlib.suppress(OSError):
                    oldest.unlink()
        return str(path)

    def accepts(self, authorization: str | None) -> bool:
        """True for ``Basic <contents of a key file this store wrote and still keeps>``."""
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "basic" or not value:
            return False
        given = value.strip().encode("utf-8", "replace")
        with self._lock:
            keys = list(self._keys.values())
        return any(hmac.compare_digest(given, key) for key in keys)

    @property
    def files(self) -> list[str]:
        """The key files currently written."""
        with self._lock:
            return [str(p) for p in self._keys]

    def close(self) -> None:
        """Remove every key file written, then the directories this store created (if empty)."""
        with self._lock:
            for path in self._keys:
                with contextlib.suppress(OSError):
                    path.unlink()
            self._keys.clear()
            for directory in reversed(self._created):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            self._created.clear()
