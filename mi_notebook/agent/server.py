"""The token agent: one process per user that holds tokens in memory and serves them over a Unix socket.

:class:`AgentServer` listens on the socket of :func:`~mi_notebook.agent.protocol.agent_paths`, checks
every connection's uid (``SO_PEERCRED``; another uid is closed without a word), then answers the
requests that come on it, one after another (a client keeps its connection for the next one; one
left silent for ``connection_idle`` seconds is closed). Each frame, once begun, must arrive within
``read_timeout``. Token requests go through one
:class:`~mi_notebook.cache.TokenCache` (refresh-ahead, single-flight across every client) and one
:class:`~mi_notebook.agent.upstream.Upstream` per endpoint (a 429 or 410 holds back every client).
While a fetch is in flight the client gets a ``{"op": "wait"}`` frame every ``heartbeat`` seconds,
so a client tells a busy agent from a hung one. A ``stop`` request is answered before the agent
begins to stop (stopping shuts every open connection).

Only one agent runs per directory: it holds an exclusive ``flock`` on ``agent.pid`` for its life,
and removes a socket file left behind by a dead one before binding. It exits after ``idle_timeout``
seconds without a request. Tokens live in memory only; logs name tokens by fingerprint.

Example::

    >>> import tempfile
    >>> from mi_notebook.agent.client import AgentClient
    >>> d = tempfile.mkdtemp()
    >>> server = AgentServer(d, idle_timeout=5).start()
    >>> AgentClient(d, start=False).ping()["pid"] == os.getpid()
    True
    >>> server.stop()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..cache import CacheKey, TokenCache
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ManagedIdentityError
from ..resources import resolve_resource
from .protocol import (
    VERSION,
    AgentPaths,
    PeerClosed,
    ProtocolError,
    agent_paths,
    peer_credentials,
    recv_frame,
    send_frame,
    token_to_wire,
)
from .upstream import Upstream

__all__ = ["AgentAlreadyRunning", "AgentServer", "error_payload"]

logger = logging.getLogger("mi_notebook.agent")

#: most connections served at once; more are closed at once (the client falls back)
MAX_CLIENTS = 128
_UPSTREAM_LIMIT = 64


class AgentAlreadyRunning(RuntimeError):
    """Another agent holds this directory's pid lock."""


def error_payload(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data for the wire: its type and the parts of a ``ManagedIdentityError``.

    Example::

        >>> from mi_notebook.errors import ThrottledError
        >>> error_payload(ThrottledError("IMDS said 429.", status=429))["type"]
        'ThrottledError'
    """
    data: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ManagedIdentityError):
        data.update(message=exc.message, hint=exc.hint, status=exc.status, error=exc.error,
                    error_description=exc.error_description, request_id=exc.request_id, endpoint=exc.endpoint,
                    timeline=exc.timeline.to_dict() if exc.timeline is not None else None)
    return data


class AgentServer:
    """The agent (see the module docstring). ``directory``: where its files live (default
    :func:`agent_paths`'s); ``peer`` returns ``(pid, uid)`` of a connection (default ``SO_PEERCRED``;
    tests inject another); ``uid`` is the only one served (default this process's).

    ``start()`` serves in background threads (returns ``self``); ``serve_forever()`` in the calling
    thread until idle or stopped; ``stop()`` ends either.

    Example::

        >>> import tempfile
        >>> server = AgentServer(tempfile.mkdtemp(), idle_timeout=5).start()
        >>> server.status()["stats"]["requests_made"]
        0
        >>> server.stop()
    """

    def __init__(self, directory: str | None = None, *, idle_timeout: float = 1800.0, read_timeout: float = 2.0,
                 heartbeat: float = 0.5, connection_idle: float = 300.0, clock: Clock = SYSTEM_CLOCK,
                 peer: Callable[[socket.socket], tuple[int, int]] = peer_credentials,
                 uid: int | None = None) -> None:
        self.paths: AgentPaths = agent_paths(directory)
        self.idle_timeout = float(idle_timeout)
        self.read_timeout = float(read_timeout)
        self.heartbeat = float(heartbeat)
        self.connection_idle = float(connection_idle)
        self.uid = os.getuid() if uid is None else uid
        self._peer = peer
        self._clock = clock
        self.cache = TokenCache(clock=clock)
        self._upstreams: dict[str, Upstream] = {}
        self._wire_forms: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, threading.Lock] = {}
        self._active = 0  # connections open
        self._busy = 0  # requests being answered
        self._open: set[socket.socket] = set()
        self._last_request = time.monotonic()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._closing = False
        self._clients: set[int] = set()
        self.refused = 0
        self.started_at = time.time()
        self._pid_fd: int | None = None
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # --- life -------------------------------------------------------------------------------------
    def _bind(self) -> None:
        fd = os.open(self.paths.pid, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AgentAlreadyRunning(f"another mi-notebook agent already serves {self.paths.socket}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._pid_fd = fd
        if os.path.lexists(self.paths.socket):  # we hold the pid lock: whoever bound it is gone
            logger.info("removing the stale socket %s", self.paths.socket)
            os.unlink(self.paths.socket)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.paths.socket)
        finally:
            os.umask(old_umask)
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        logger.info("mi-notebook agent %s (protocol %d) pid %d serving %s, idle exit after %.0f s",
                    __version__, VERSION, os.getpid(), self.paths.socket, self.idle_timeout)

    def start(self) -> AgentServer:
        """Bind and serve in background threads; ``AgentAlreadyRunning`` if another agent has the directory."""
        self._bind()
        for target in (self._accept_loop, self._heartbeat_loop):
            thread = threading.Thread(target=target, name=f"mi-agent-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def serve_forever(self) -> None:
        """Bind and serve until idle for ``idle_timeout`` or stopped."""
        self._bind()
        beat = threading.Thread(target=self._heartbeat_loop, name="mi-agent-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)
        self._accept_loop()

    def stop(self) -> None:
        """Stop serving, remove the socket, release the pid lock."""
        self._stopping.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
        with self._lock:
            still_open = list(self._open)
        for conn in still_open:  # wake the threads waiting on kept-open connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths.socket)
        for upstream in self._upstreams.values():
            upstream.close()
        self.cache.clear()
        self._wire_forms.clear()
        if self._pid_fd is not None:
            os.close(self._pid_fd)
        logger.info("mi-notebook agent pid %d stopped", os.getpid())
        self._stopped.set()

    def _idle(self) -> bool:
        with self._lock:
            return self._busy == 0 and time.monotonic() - self._last_request > self.idle_timeout

    def _accept_loop(self) -> None:
        assert self._listener is not None
        try:
            while not self._stopping.is_set():
                if self._idle():
                    logger.info("no request for %.0f s: exiting", self.idle_timeout)
                    break
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                with self._lock:
                    busy = self._active >= MAX_CLIENTS
                    if not busy:
                        self._active += 1
                if busy:
                    conn.close()
                    continue
                threading.Thread(target=self._serve, args=(conn,), name="mi-agent-client", daemon=True).start()
        finally:
            self._stopping.set()
            self._close()

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.heartbeat):
            with self._lock:
                waiting = list(self._waiting.items())
            for conn, send_lock in waiting:
                if send_lock.acquire(blocking=False):
                    try:
                        if self._waiting.get(conn) is send_lock:  # not answered meanwhile
                            send_frame(conn, {"v": VERSION, "op": "wait"})
                    except OSError:
                        pass  # the client left; its request still finishes for the others
                    finally:
                        send_lock.release()

    # --- one connection ---------------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        """One client connection: the uid check, then its requests one after another until it closes,
        idles past ``connection_idle``, or breaks the framing."""
        send_lock = threading.Lock()
        try:
            try:
                pid, uid = self._peer(conn)
            except OSError:
                return
            if uid != self.uid:
                with self._lock:
                    self.refused += 1
                logger.warning("refused a connection from uid %d (pid %d): this agent serves uid %d only",
                               uid, pid, self.uid)
                return
            with self._lock:
                self._clients.add(pid)
                self._open.add(conn)
            while not self._stopping.is_set():
                try:
                    request = recv_frame(conn, timeout=self.read_timeout, idle=self.connection_idle)
                except PeerClosed:
                    return
                except ProtocolError as exc:
                    self._reply(conn, send_lock, _failure("ProtocolError", str(exc)))
                    return
                with self._lock:
                    self._busy += 1
                    self._last_request = time.monotonic()
                try:
                    answer = self._answer(conn, send_lock, request)
                finally:
                    with self._lock:
                        self._busy -= 1
                        self._last_request = time.monotonic()
                stop_asked = request.get("op") == "stop" and answer.get("ok") is True
                try:
                    self._reply(conn, send_lock, answer)
                finally:
                    if stop_asked:  # only now: a stopping agent shuts every connection, this one too
                        self._stopping.set()
        except OSError:
            pass  # the client went away
        except Exception:  # never let one client take the agent down
            logger.exception("unexpected error while serving a client")
        finally:
            conn.close()
            with self._lock:
                self._active -= 1
                self._open.discard(conn)

    def _reply(self, conn: socket.socket, send_lock: threading.Lock, message: dict[str, Any]) -> None:
        """Send ``message`` whole: on a Unix socket ``sendall`` returns once every byte is queued at the
        peer, where a later shutdown or close of this end leaves it to be read."""
        with send_lock:
            conn.settimeout(self.read_timeout)
            send_frame(conn, message)

    def _answer(self, conn: socket.socket, send_lock: threading.Lock, request: dict[str, Any]) -> dict[str, Any]:
        if request["v"] != VERSION:
            return _failure("VersionMismatch", f"this agent speaks protocol {VERSION}, not {request['v']}")
        op = request.get("op")
        if op == "ping":
            return {"v": VERSION, "ok": True, "pid": os.getpid(), "version": __version__}
        if op == "status":
            return {"v": VERSION, "ok": True, **self.status()}
        if op == "stop":  # the caller sets the stopping flag once this answer is sent
            return {"v": VERSION, "ok": True, "pid": os.getpid()}
        if op != "token":
            return _failure("ProtocolError", f"unknown op {str(op)[:40]!r}")
        with self._lock:
            self._waiting[conn] = send_lock
        try:
            return self._token(request)
        finally:
            with self._lock:
                self._waiting.pop(conn, None)

    def _token(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            desc = request.get("upstream")
            if not isinstance(desc, dict):
                raise ValueError("a token request needs the connection's description ('upstream')")
            upstream = self._upstream(desc)
            resource = request.get("resource")
            if not isinstance(resource, str):
                raise ValueError("a token request needs 'resource' as text")
            selector = request.get("identity")
            # keyed by everything that chose the token: the source's host, endpoint and secret (as a
            # fingerprint), the identity as the host resolves it, the resource
            identity = upstream.client.resolve_identity(None if selector is None else _identity_text(selector))
            key = CacheKey.of(upstream.client, identity, resolve_resource(resource))
            token = self.cache.get(key, lambda: self._fetch(upstream, key),
                                   force_refresh=request.get("force_refresh") is True)
        except ManagedIdentityError as exc:
            return {"v": VERSION, "ok": False, "error": error_payload(exc)}
        except Exception as exc:
            return _failure(type(exc).__name__, str(exc))
        return {"v": VERSION, "ok": True, "token": self._wire(token), "from_cache": token.from_cache}

    def _wire(self, token: Any) -> dict[str, Any]:
        """The token as plain data, built once per token object (a cache hit returns the same object)."""
        with self._lock:
            known = self._wire_forms.get(id(token))
        if known is not None and known[0] is token:
            return known[1]
        data = token_to_wire(token)
        with self._lock:
            if len(self._wire_forms) >= _UPSTREAM_LIMIT * 4:
                self._wire_forms.clear()
            self._wire_forms[id(token)] = (token, data)  # the token is kept alive: its id stays its own
        return data

    def _upstream(self, desc: dict[str, Any]) -> Upstream:
        name = json.dumps(desc, sort_keys=True)
        with self._lock:
            upstream = self._upstreams.get(name)
        if upstream is None:
            built = Upstream(desc, clock=self._clock)  # ValueError for a bad description
            evicted = []
            with self._lock:
                upstream = self._upstreams.setdefault(name, built)
                while len(self._upstreams) > _UPSTREAM_LIMIT:  # e.g. the emulators of kernels long gone
                    evicted.append(self._upstreams.pop(next(iter(self._upstreams))))
            if upstream is not built:
                evicted.append(built)
            for old in evicted:
                old.close()
        return upstream

    def _fetch(self, upstream: Upstream, key: CacheKey) -> Any:
        token = upstream.fetch(key.resource, key.identity)
        logger.info("fetched a token for %s (%s) from %s: %s, expires_on %d",
                    key.resource, key.identity, upstream.endpoint, token.fingerprint, token.expires_on)
        return token

    # --- what it holds ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``mi-notebook agent status`` shows: tokens (facts and fingerprints, never the token),
        requests made and saved, clients, the endpoints' holds.

        Example::

            >>> import tempfile
            >>> sorted(AgentServer(tempfile.mkdtemp()).status()["stats"])
            ['clients_alive', 'clients_seen', 'failures', 'refused', 'requests_made', 'requests_saved']
        """
        stats = self.cache.stats
        tokens = []
        for row in self.cache.entries():
            tok = row["token"]
            if tok is None:
                continue
            info = tok.to_dict()
            info.update(refresh_at=row["refresh_at"], in_flight=row["in_flight"], last_error=row["last_error"])
            tokens.append(info)
        with self._lock:
            clients = sorted(self._clients)
            holds = {u.endpoint: round(u.held_for(), 3) for u in self._upstreams.values() if u.held_for() > 0}
        return {
            "pid": os.getpid(), "version": __version__, "protocol": VERSION, "socket": self.paths.socket,
            "started_at": self.started_at, "idle_timeout": self.idle_timeout, "tokens": tokens, "holds": holds,
            "stats": {"requests_made": stats.fetches, "requests_saved": stats.hits + stats.shared,
                      "failures": stats.failures, "clients_seen": len(clients),
                      "clients_alive": sum(1 for pid in clients if _alive(pid)), "refused": self.refused},
        }


def _identity_text(selector: Any) -> str:
    if isinstance(selector, list) and len(selector) == 2 and all(isinstance(s, str) for s in selector):
        return f"{selector[0]}={selector[1]}"
    raise ValueError("'identity' must be null or [kind, value]")


def _failure(kind: str, message: str) -> dict[str, Any]:
    return {"v": VERSION, "ok": False, "error": {"type": kind, "message": message[:500]}}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
