"""The projected service-account token file (``AZURE_FEDERATED_TOKEN_FILE``), written and rotated as the kubelet does.

The kubelet starts trying to rotate a projected token "if the token is older than 80 percent of its
time to live or if the token is older than 24 hours"; the old token stays valid until its ``exp``.
:class:`ProjectedTokenFile` does the same by the emulator's clock: :meth:`~ProjectedTokenFile.rotate_if_due`
looks once (a test calls it after moving a virtual clock: no real waiting), a background thread looks
every ``poll`` real seconds (for a real clock), and :meth:`~ProjectedTokenFile.rotate` rotates at once.
Each write is atomic (a new file renamed over the old one), so a reader never sees half a token; the
file is mode 0644, as on Kubernetes 1.19+.

Example::

    >>> from mi_notebook.emulator.workload.cluster import Cluster
    >>> from mi_notebook.emulator.workload.options import WorkloadOptions
    >>> now = [1_700_000_000.0]
    >>> cluster = Cluster(WorkloadOptions(token_lifetime=600), seed=0, tenant_id="t")
    >>> cluster.bind("https://127.0.0.1:1")
    >>> tokens = ProjectedTokenFile(cluster, clock=lambda: now[0], rotation=False).start()
    >>> first = tokens.current
    >>> now[0] += 479; tokens.rotate_if_due()  # 79.8% of 600 s: not yet
    False
    >>> now[0] += 1; tokens.rotate_if_due(), tokens.current.serial, tokens.read() != first.token
    (True, 2, True)
    >>> tokens.stop(); os.path.exists(tokens.path)
    False
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .cluster import Cluster, ServiceAccountToken
from .options import TOKEN_FILE_NAME

__all__ = ["MAX_AGE", "ROTATE_AT", "ProjectedTokenFile"]

ROTATE_AT = 0.8  # of the token's lifetime (Kubernetes API reference, ServiceAccountTokenProjection)
MAX_AGE = 86400  # ... or when older than 24 hours


class ProjectedTokenFile:
    """The pod's token file: ``path`` (set by :meth:`start`), the ``current`` token, ``rotations`` so far.

    ``directory``: where the file goes (created if missing; directories made here are removed at
    :meth:`stop` when empty; None: a private temporary directory, removed at stop); ``rotation``: rotate in a background thread, looking every
    ``poll`` real seconds at the emulator's ``clock``.

    Example::

        >>> from mi_notebook.emulator.workload.options import WorkloadOptions
        >>> c = Cluster(WorkloadOptions(), seed=0, tenant_id="t"); c.bind("https://127.0.0.1:1")
        >>> f = ProjectedTokenFile(c, clock=lambda: 1_700_000_000, rotation=False).start()
        >>> os.path.basename(f.path), oct(os.stat(f.path).st_mode & 0o777), f.current.expires_on - 1_700_000_000
        ('azure-identity-token', '0o644', 3600)
        >>> f.stop()
    """

    def __init__(self, cluster: Cluster, *, clock: Callable[[], float] = time.time,
                 directory: str | Path | None = None, rotation: bool = True, poll: float = 1.0) -> None:
        self.cluster = cluster
        self.clock = clock
        self.directory = Path(directory) if directory is not None else None
        self.rotation = rotation
        self.poll = poll
        self.path: str | None = None
        self.current: ServiceAccountToken | None = None
        self.rotations = 0
        self._created: list[Path] = []  # directories made for a given token_dir (deepest first)
        self._private: Path | None = None  # the temporary directory made when none was given
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- life cycle ------------------------------------------------------------------------------------
    def start(self) -> ProjectedTokenFile:
        """Create the directory, write the first token and start the rotation thread. Returns self."""
        if self.path is not None:
            return self
        if self.directory is None:
            where = Path(tempfile.mkdtemp(prefix="mi-notebook-wi-"))  # mode 0700
            self._private = where
        else:
            where = self.directory
            missing = [p for p in (where, *where.parents) if not p.exists()]
            where.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._created.extend(missing)  # deepest first: removed in this order at stop
        self.path = str(where / TOKEN_FILE_NAME)
        self.rotate()
        self._stop.clear()
        if self.rotation:
            self._thread = threading.Thread(target=self._run, name="emulator-kubelet-rotation", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop rotating and remove the file (and the directories made for it). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
            for made in self._created:  # only if nothing else was put there
                with contextlib.suppress(OSError):
                    made.rmdir()
            self._created.clear()
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)
                self._private = None

    # ---- rotation --------------------------------------------------------------------------------------
    def due(self, now: float | None = None) -> bool:
        """Whether the kubelet would rotate now: the token is older than 80% of its lifetime, or than 24 h."""
        token = self.current
        if token is None:
            return True
        age = (self.clock() if now is None else now) - token.issued_at
        return age >= ROTATE_AT * token.lifetime or age >= MAX_AGE

    def rotate(self) -> ServiceAccountToken:
        """Write a fresh token now (by the emulator's clock); the previous one stays valid until its ``exp``."""
        with self._lock:
            return self._rotate()

    def rotate_if_due(self) -> bool:
        """Rotate if :meth:`due` (one look, by the emulator's clock); True when it rotated."""
        with self._lock:
            if self.path is None or not self.due():
                return False
            self._rotate()
            return True

    def _rotate(self) -> ServiceAccountToken:
        if self.path is None:
            raise RuntimeError("the token file is not started")
        token = self.cluster.mint(self.clock())
        _write_atomically(self.path, token.token)
        if self.current is not None:
            self.rotations += 1
        self.current = token
        return token

    def read(self) -> str:
        """What a reader of the file gets now."""
        if self.path is None:
            raise RuntimeError("the token file is not started")
        return Path(self.path).read_text(encoding="utf-8")

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            with contextlib.suppress(OSError, RuntimeError):  # the directory went away: stop() follows
                self.rotate_if_due()


def _write_atomically(path: str, text: str) -> None:
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
