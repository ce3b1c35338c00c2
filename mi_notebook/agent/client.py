"""The kernel's side of the token agent: ask it, start it when it is not running, and never be worse off.

:class:`AgentClient` speaks to this user's agent (one request per connection, bounded in time:
``connect_timeout`` to connect, ``read_timeout`` between frames, ``max_wait`` in all; a busy agent
sends a heartbeat frame every half second, a hung one does not). Anything but a proper answer
(no agent, a refused or reset connection, a time-out, garbage, another protocol version, an agent
directory that is no longer safe, a socket served by another uid) raises :class:`AgentUnavailable`. ``ensure_running()`` starts a detached ``python -m mi_notebook agent run``
when none answers; a lock file makes two kernels starting at once end with one agent.

:class:`SharedCache` is what a sharing connection (``mi.connect(share=True)`` or
``MI_NOTEBOOK_SHARE=1``) caches with: a :class:`~mi_notebook.cache.TokenCache` in the process, in
front of the agent. A token the process does not hold (or must refresh) is asked of the agent,
which single-flights it across every kernel of the user; if the agent cannot answer, the process
asks the endpoint itself, warns once, and tries the agent again ``retry_after`` seconds later.
It trusts the agent with tokens, not with their meaning: whether a token is the signed-in user's own
is decided again here from its claims (and the agent's marker), and warned about in this process.
Its ``tokens()`` and ``entries()`` are the agent's (every kernel's tokens, as facts without the
secret), so ``mi.plot_token_lifetimes(conn.cache)`` and ``tokens_frame(conn.cache)`` show them.

Example::

    >>> import tempfile
    >>> import mi_notebook as mi
    >>> from mi_notebook.agent.server import AgentServer
    >>> d = tempfile.mkdtemp()
    >>> server = AgentServer(d, idle_timeout=5).start()
    >>> conn = mi.connect(mode="emulator", share=True, agent_dir=d)
    >>> first, again = conn.get_token("arm", force_refresh=True), conn.get_token("arm")
    >>> first.from_cache, again.from_cache, again.fingerprint == first.fingerprint
    (False, True, True)
    >>> [t.resource for t in conn.cache.tokens()]
    ['https://management.azure.com/']
    >>> mi.disconnect(); server.stop()
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..cache import TokenCache
from ..clock import SYSTEM_CLOCK, Clock
from ..identity import Identity
from ..retry import Timeline
from ..secret import Secret
from ..sources._user import UserAccessToken, UserTokenWarning, as_user_token, token_user_evidence
from ..tokens import AccessToken
from .protocol import (
    VERSION,
    AgentPaths,
    PeerClosed,
    ProtocolError,
    agent_paths,
    check_directory,
    peer_credentials,
    recv_frame,
    send_frame,
    token_from_wire,
)

__all__ = ["ENV_SHARE", "AgentClient", "AgentTokenInfo", "AgentUnavailable", "AgentUnavailableWarning",
           "SharedCache", "share_requested"]

logger = logging.getLogger("mi_notebook.agent")

#: set to 1 (e.g. in a JupyterHub spawner's environment) to share tokens through the agent
ENV_SHARE = "MI_NOTEBOOK_SHARE"
_POOL_SIZE = 4  # connections kept open to the agent, at most
_TRUE = ("1", "true", "yes", "on")


def share_requested(share: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to share: ``share`` when given, else ``MI_NOTEBOOK_SHARE`` (``1``/``true``/``yes``/``on``).

    Example::

        >>> share_requested(None, {"MI_NOTEBOOK_SHARE": "1"}), share_requested(False, {"MI_NOTEBOOK_SHARE": "1"})
        (True, False)
    """
    if share is not None:
        if not isinstance(share, bool):
            raise ValueError(f"share must be True or False; got {share!r}")
        return share
    env = os.environ if environ is None else environ
    return env.get(ENV_SHARE, "").strip().lower() in _TRUE


class AgentUnavailable(Exception):
    """The agent did not give a proper answer (absent, hung, gone mid-request, another version, garbage)."""


class AgentUnavailableWarning(UserWarning):
    """The token agent could not answer: this process asks the endpoint itself for now."""


@dataclass(frozen=True)
class AgentTokenInfo:
    """What the agent says about a token it holds: the facts, the fingerprint, never the token.

    Has the attributes ``tokens_frame`` and ``plot_token_lifetimes`` read from an ``AccessToken``.

    Example::

        >>> info = AgentTokenInfo.from_status({"resource": "https://vault.azure.net", "identity_selector": None,
        ...     "host": "vm", "emulated": True, "expires_on": 200, "fetched_at": 100.0, "not_before": 95,
        ...     "fingerprint": "sha256:0011aabb", "refresh_at": 150.0})
        >>> info.identity.kind, info.time_left(now=190), info.served_by
        ('system', 10.0, 'agent')
    """

    resource: str
    identity: Identity
    host: str
    emulated: bool
    expires_on: int
    fetched_at: float
    not_before: int | None
    fingerprint: str
    refresh_at: float | None = None
    client_id: str | None = None
    in_flight: bool = False
    last_error: str | None = None
    served_by: str = "agent"
    is_user_token: bool = False

    @classmethod
    def from_status(cls, row: Mapping[str, Any]) -> AgentTokenInfo:
        """One token row of the agent's status."""
        selector = row.get("identity_selector")
        identity = Identity(**{selector[0]: selector[1]}) if selector else Identity.system()
        return cls(resource=row["resource"], identity=identity, host=row["host"], emulated=bool(row.get("emulated")),
                   expires_on=int(row["expires_on"]),
                   fetched_at=float(row["fetched_at"]), not_before=row.get("not_before"),
                   fingerprint=row["fingerprint"], refresh_at=row.get("refresh_at"), client_id=row.get("client_id"),
                   in_flight=bool(row.get("in_flight")), last_error=row.get("last_error"),
                   is_user_token=bool(row.get("user_token_reason")))

    def time_left(self, now: float | None = None) -> float:
        """Seconds until ``expires_on`` at ``now`` (default: the current time)."""
        return float(self.expires_on - (time.time() if now is None else now))


def token_from_reply(reply: Mapping[str, Any]) -> AccessToken:
    """The ``AccessToken`` of an agent's token answer: ``host`` and ``emulated`` stay the issuer's, ``from_cache``
    says whether the agent served it from its cache, the timeline is the agent's fetch; a
    ``UserAccessToken`` when the agent marked it (:func:`~mi_notebook.agent.protocol.token_from_wire`).

    Example::

        >>> tok = AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1, emulated=True)
        >>> again = token_from_reply({"token": {**tok.to_dict(include_token=True), "timeline": None},
        ...                           "from_cache": True})
        >>> again == tok, again.from_cache, again.emulated
        (True, True, True)
    """
    return token_from_wire(reply["token"], from_cache=bool(reply.get("from_cache")))


def error_from_reply(error: Mapping[str, Any]) -> errors.ManagedIdentityError | None:
    """The endpoint's error the agent relayed, rebuilt as its own class; ``None`` if it is not one.

    Example::

        >>> err = error_from_reply({"type": "ThrottledError", "message": "IMDS said 429.", "status": 429})
        >>> type(err).__name__, err.status
        ('ThrottledError', 429)
    """
    cls = getattr(errors, str(error.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.ManagedIdentityError)):
        return None
    timeline = error.get("timeline")
    parts = {name: error.get(name) for name in ("status", "error", "error_description", "request_id", "endpoint",
                                                  "hint")}
    try:
        return cls(str(error.get("message") or ""), **parts,
                   timeline=Timeline.from_dict(timeline) if timeline else None)
    except (TypeError, ValueError):
        return None


class AgentClient:
    """This user's agent, seen from a process (see the module docstring). ``directory``: the agent's
    (default :func:`~mi_notebook.agent.protocol.agent_paths`'s); ``start=False`` never starts one;
    ``idle_timeout`` is passed to an agent this client starts.

    Before every new connection the directory is checked again
    (:func:`~mi_notebook.agent.protocol.check_directory`), and once connected the server's uid must be
    ``uid`` (default this process's): ``peer`` returns ``(pid, uid)`` of the server (default
    ``SO_PEERCRED``; tests inject another). Either refusal is an :class:`AgentUnavailable`.

    Example::

        >>> import tempfile
        >>> client = AgentClient(tempfile.mkdtemp(), start=False)
        >>> client.ping()
        Traceback (most recent call last):
        ...
        mi_notebook.agent.client.AgentUnavailable: no agent answers at .../agent.sock (no socket)
    """

    def __init__(self, directory: str | None = None, *, start: bool = True, connect_timeout: float = 0.5,
                 read_timeout: float = 2.0, max_wait: float = 150.0, start_timeout: float = 5.0,
                 idle_timeout: float = 1800.0, peer: Callable[[socket.socket], tuple[int, int]] = peer_credentials,
                 uid: int | None = None) -> None:
        self.uid = os.getuid() if uid is None else uid
        self._peer = peer
        self.paths: AgentPaths = agent_paths(directory, uid=self.uid)
        self.start = start
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_wait = max_wait
        self.start_timeout = start_timeout
        self.idle_timeout = idle_timeout
        self._pool: list[socket.socket] = []
        self._pool_pid = os.getpid()
        self._pool_lock = threading.Lock()
        weakref.finalize(self, _close_all, self._pool)  # a client dropped with its connections kept

    def __repr__(self) -> str:
        return f"AgentClient({self.paths.socket!r})"

    # --- one exchange -----------------------------------------------------------------------------
    def request(self, message: Mapping[str, Any], *, read_timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return the agent's final answer (heartbeats skipped); ``AgentUnavailable``
        for anything but a proper answer in time (``read_timeout``: between frames, default the client's).

        The connection is kept for the next request (one per thread at a time); a kept connection the
        agent has closed since (idle, or a new agent) is replaced once, transparently.
        """
        between = self.read_timeout if read_timeout is None else read_timeout
        sock, kept = self._checkout()
        deadline = time.monotonic() + self.max_wait
        try:
            try:
                send_frame(sock, {"v": VERSION, **message})
                reply = recv_frame(sock, timeout=between)
            except (PeerClosed, BrokenPipeError, ConnectionResetError):
                if not kept:
                    raise
                sock.close()  # closed while kept: the agent never saw this request, so ask again
                sock, kept = self._checkout(fresh=True)
                send_frame(sock, {"v": VERSION, **message})
                reply = recv_frame(sock, timeout=between)
            while reply.get("op") == "wait":
                reply = recv_frame(sock, timeout=min(between, max(deadline - time.monotonic(), 0.001)))
        except (OSError, ProtocolError) as exc:
            sock.close()
            raise AgentUnavailable(f"the agent at {self.paths.socket} did not answer properly: {exc}") from None
        if reply["v"] != VERSION:
            sock.close()
            raise AgentUnavailable(f"the agent at {self.paths.socket} speaks protocol {reply['v']}, this process {VERSION}")
        self._checkin(sock)
        if reply.get("ok") is not True and not isinstance(reply.get("error"), dict):
            raise AgentUnavailable("the agent's answer is neither a result nor an error")
        return reply

    def _checkout(self, *, fresh: bool = False) -> tuple[socket.socket, bool]:
        """A connection to the agent: a kept one (``True``) unless ``fresh``, else a new one."""
        with self._pool_lock:
            if self._pool_pid != os.getpid():  # forked: the kept sockets are the parent's conversations
                _close_all(self._pool)  # (closing the child's copies leaves the parent's open)
                self._pool_pid = os.getpid()
            if self._pool and not fresh:
                return self._pool.pop(), True
        self._check_directory()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.paths.socket)
        except OSError as exc:
            sock.close()
            why = "no socket" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            raise AgentUnavailable(f"no agent answers at {self.paths.socket} ({why})") from None
        try:
            pid, uid = self._peer(sock)
        except OSError as exc:
            sock.close()
            raise AgentUnavailable(f"could not tell who serves {self.paths.socket} (SO_PEERCRED: {exc}): "
                                   "refused") from None
        if uid != self.uid:
            sock.close()
            raise AgentUnavailable(f"{self.paths.socket} is served by uid {uid} (pid {pid}), not by this user "
                                   f"(uid {self.uid}): refused")
        return sock, False

    def _check_directory(self) -> None:
        """The directory is what it was when this client was built (owner, mode, not a symlink, its parent)."""
        try:
            check_directory(self.paths.directory, uid=self.uid)
        except FileNotFoundError:
            raise AgentUnavailable(f"no agent directory at {self.paths.directory}") from None
        except OSError as exc:
            raise AgentUnavailable(f"the agent's directory is no longer safe to use: {exc}") from None

    def _checkin(self, sock: socket.socket) -> None:
        with self._pool_lock:
            if self._pool_pid == os.getpid() and len(self._pool) < _POOL_SIZE:
                self._pool.append(sock)
                return
        sock.close()

    def close(self) -> None:
        """Close the kept connections (the agent goes on)."""
        with self._pool_lock:
            _close_all(self._pool)

    def ping(self) -> dict[str, Any]:
        """The agent's pid and package version (``AgentUnavailable`` if none answers)."""
        return self.request({"op": "ping"})

    def status(self) -> dict[str, Any]:
        """The agent's tokens (facts and fingerprints), counters and clients (see ``AgentServer.status``)."""
        return self.request({"op": "status"})

    def stop(self) -> bool:
        """Ask the agent to exit; ``True`` if one was running."""
        try:
            self.request({"op": "stop"})
        except AgentUnavailable:
            return False
        return True

    def token(self, upstream: Mapping[str, Any], resource: str, identity: Identity, *,
              force_refresh: bool = False) -> AccessToken:
        """A token through the agent (starting it if needed and allowed). The endpoint's errors are
        raised as themselves; ``AgentUnavailable`` when the agent itself could not answer."""
        message = {"op": "token", "upstream": dict(upstream), "resource": resource,
                   "identity": list(identity.selector) if identity.selector else None,
                   "force_refresh": force_refresh}
        try:
            reply = self.request(message)
        except AgentUnavailable:
            if not self.start or not self.ensure_running():
                raise
            reply = self.request(message)
        if reply.get("ok") is True:
            try:
                return token_from_reply(reply)
            except (KeyError, TypeError, ValueError) as exc:
                raise AgentUnavailable(f"the agent's token answer is malformed ({type(exc).__name__})") from None
        relayed = error_from_reply(reply["error"])
        if relayed is not None:
            raise relayed
        raise AgentUnavailable(f"the agent could not serve the request: {reply['error'].get('message')}")

    # --- starting one -----------------------------------------------------------------------------
    def ensure_running(self) -> bool:
        """Start an agent if none runs (one, however many processes try at once); ``True`` once one answers.

        An agent that runs (it holds its pid lock) but does not answer (hung, or another version) is
        left alone: ``False``, and the caller asks the endpoint itself.
        """
        quick = min(self.read_timeout, 0.5)
        try:  # checked (and made, if it went away) again: nothing is written or started in an unsafe one
            agent_paths(self.paths.directory, uid=self.uid)
        except OSError as exc:
            logger.warning("not starting a token agent in %s: %s", self.paths.directory, exc)
            return False
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.start_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.01)
            settle = time.monotonic() + quick
            while self._agent_runs():  # started by whoever held the lock, hung, or dying right now
                if self._answers(quick):
                    return True
                if time.monotonic() > settle:
                    return False
                time.sleep(0.02)
            self._spawn()
            while time.monotonic() < deadline:
                try:
                    self.ping()
                    return True
                except AgentUnavailable:
                    time.sleep(0.02)
            return False
        finally:
            os.close(fd)  # releases the lock

    def _answers(self, timeout: float) -> bool:
        try:
            self.request({"op": "ping"}, read_timeout=timeout)
            return True
        except AgentUnavailable:
            return False

    def _agent_runs(self) -> bool:
        """Whether a live agent holds the pid lock (the lock dies with its process)."""
        try:
            fd = os.open(self.paths.pid, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _spawn(self) -> None:
        log = os.open(self.paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mi_notebook", "agent", "run", "--dir", self.paths.directory,
                 "--idle", str(self.idle_timeout)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                close_fds=True)
        finally:
            os.close(log)
        # reap it when it exits (idle), so it leaves no zombie in a long-lived kernel
        threading.Thread(target=proc.wait, name="mi-agent-reaper", daemon=True).start()
        logger.info("started the mi-notebook token agent for %s", self.paths.socket)


def _user_checked(token: AccessToken) -> AccessToken:
    """``token`` marked and warned about here if it is the signed-in user's own: by its claims (this
    process decides, whatever the agent said) or by the agent's marker (Cloud Shell marks every token)."""
    evidence = token_user_evidence(token)
    if evidence is None and not isinstance(token, UserAccessToken):
        return token
    if not isinstance(token, UserAccessToken):
        token = as_user_token(token, (
            f"This is the signed-in user's own token, not a managed identity's ({evidence}); the token agent "
            "served it, and this process checked its claims. Anything done with it acts as that person: to use a "
            "managed identity, name one where the host has one (identity='client_id=<guid>')."))
    warnings.warn(UserTokenWarning(token.user_token_reason), stacklevel=6)
    return token


def _close_all(sockets: list[socket.socket]) -> None:
    while sockets:
        sockets.pop().close()


class SharedCache(TokenCache):
    """The cache of a sharing connection (see the module docstring): this process's tokens in front,
    the agent behind, the endpoint itself whenever the agent cannot answer.

    ``upstream`` is the connection's description (:func:`~mi_notebook.agent.upstream.describe`); it
    may hold the host's secret, so it is kept as a :class:`~mi_notebook.secret.Secret` (``vars``,
    ``deepcopy`` and pickle never show it; ``endpoint`` is its endpoint).

    Example::

        >>> import tempfile
        >>> from mi_notebook.cache import CacheKey
        >>> cache = SharedCache(AgentClient(tempfile.mkdtemp(), start=False), {"host": "vm", "endpoint": "x"})
        >>> key = CacheKey("x", Identity.system(), "api://x")
        >>> tok = AccessToken("a.b.c", resource="api://x", expires_on=2 ** 31)
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     cache.get(key, lambda: tok) is tok, len(seen), cache.fallbacks
        (True, 1, 1)
    """

    def __init__(self, agent: AgentClient, upstream: Mapping[str, Any], *, clock: Clock = SYSTEM_CLOCK,
                 retry_after: float = 30.0) -> None:
        super().__init__(clock=clock)
        self.agent = agent
        # the description may hold the host's secret: kept as a Secret, so no dump of this cache shows it
        self._upstream = Secret(json.dumps(dict(upstream)))
        self.endpoint = upstream.get("endpoint")
        self.retry_after = retry_after
        self._down_since: float | None = None
        self._warned = False
        self._state = threading.Lock()
        self.served = 0
        self.fallbacks = 0

    @classmethod
    def for_connection(cls, conn: Any, directory: str | None = None, *, clock: Clock = SYSTEM_CLOCK) -> SharedCache | None:
        """The shared cache for ``conn`` (a ``Connection``), or ``None`` with a warning when the agent's
        directory cannot be used (e.g. another user owns it): the connection then keeps its own cache.

        Example::

            >>> import tempfile
            >>> from mi_notebook.connection import connect
            >>> SharedCache.for_connection(connect("http://127.0.0.1:9"), tempfile.mkdtemp()).endpoint
            'http://127.0.0.1:9'
        """
        from .upstream import describe

        try:
            agent = AgentClient(directory)
        except OSError as exc:
            warnings.warn(f"mi-notebook: tokens are not shared between processes: {exc}", AgentUnavailableWarning,
                          stacklevel=3)
            return None
        return cls(agent, describe(conn), clock=clock)

    def _load(self, key: Hashable, fetch: Callable[[], AccessToken], force_refresh: bool) -> AccessToken:
        """A token this process does not hold fresh: the agent's, else ``fetch()``'s (``get`` serves
        the fresh ones, as every cache does)."""
        return super()._load(key, lambda: self._through_agent(key, fetch, force_refresh), force_refresh)

    def _through_agent(self, key: Any, fetch: Callable[[], AccessToken], force_refresh: bool) -> AccessToken:
        down = self._down_since
        if down is None or time.monotonic() - down >= self.retry_after:
            try:
                upstream = json.loads(self._upstream.reveal())
                token = self.agent.token(upstream, key.resource, key.identity, force_refresh=force_refresh)
            except AgentUnavailable as exc:
                self._fell_back(exc)
            else:
                with self._state:
                    self.served += 1
                    if self._warned:
                        logger.info("the token agent at %s answers again", self.agent.paths.socket)
                    self._warned = False
                    self._down_since = None
                return _user_checked(token)
        with self._state:
            self.fallbacks += 1
        return fetch()

    def _fell_back(self, exc: AgentUnavailable) -> None:
        with self._state:
            self._down_since = time.monotonic()
            first, self._warned = not self._warned, True
        if first:
            message = (f"mi-notebook: the token agent could not answer ({exc}); this process asks the endpoint "
                       f"itself and tries the agent again in {self.retry_after:.0f} s.")
            logger.warning("%s", message)
            warnings.warn(message, AgentUnavailableWarning, stacklevel=5)

    # --- views: the agent's tokens ------------------------------------------------------------------
    def tokens(self) -> list[Any]:
        """Every token the agent holds (all this user's processes), as :class:`AgentTokenInfo`;
        this process's own tokens when the agent does not answer."""
        try:
            rows = self.agent.status()["tokens"]
        except (AgentUnavailable, KeyError):
            return super().tokens()
        return sorted((AgentTokenInfo.from_status(row) for row in rows), key=lambda t: t.fetched_at)

    def entries(self) -> list[dict[str, Any]]:
        """One row per token the agent holds (this process's when it does not answer); never the token."""
        infos = self.tokens()
        if not all(isinstance(t, AgentTokenInfo) for t in infos):
            return super().entries()
        return [{"key": (self.endpoint, t.identity, t.resource), "token": t,
                 "refresh_at": t.refresh_at, "hold_until": None, "in_flight": t.in_flight,
                 "last_error": t.last_error} for t in infos]

    def refresh_at(self, token: Any) -> float:
        """The agent's planned refresh for one of its tokens; this cache's for its own."""
        if isinstance(token, AgentTokenInfo) and token.refresh_at is not None:
            return float(token.refresh_at)
        return super().refresh_at(token)

    def __repr__(self) -> str:
        return f"SharedCache(agent={self.agent.paths.socket!r}, served={self.served}, fallbacks={self.fallbacks})"
