"""The token agent's wire: where its socket lives, who may talk to it, and how messages are framed.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON: an object with
``"v"`` (:data:`VERSION`). Frames over :data:`MAX_FRAME` bytes are refused before their body is read,
and every read has a deadline for the whole frame, so a slow or silent peer costs a bounded time.

The socket lives in a private directory (mode 0700, owned by this user, not a symlink):
``$XDG_RUNTIME_DIR/mi-notebook`` when that variable is set, else ``<tempdir>/mi-notebook-<uid>``. Its
parent must not be writable by others unless it is sticky (``/tmp``'s way), or another user could swap
the directory. Both ends check the other's uid (``SO_PEERCRED``) on every connection: the agent
answers only its own user, and a kernel talks only to an agent of its own user.

A token crosses the socket as :func:`token_to_wire` makes it: the token's plain data, its timeline,
and the user-token marker (``user_token_reason``) when it is a signed-in user's token.

Example::

    >>> import socket
    >>> a, b = socket.socketpair()
    >>> send_frame(a, {"v": VERSION, "op": "ping"})
    >>> recv_frame(b, timeout=1.0)
    {'v': 2, 'op': 'ping'}
    >>> a.close(); b.close()
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from ..retry import Timeline
from ..sources._user import UserAccessToken, as_user_token
from ..tokens import AccessToken

__all__ = [
    "MAX_FRAME",
    "VERSION",
    "AgentPaths",
    "PeerClosed",
    "ProtocolError",
    "agent_paths",
    "check_directory",
    "peer_credentials",
    "recv_frame",
    "send_frame",
    "token_from_wire",
    "token_to_wire",
]

#: the protocol version; an agent speaking another one is treated as absent. 2: tokens say ``host`` and
#: ``emulated`` (1 said ``source``), and the agent keys tokens by the digest of what chose them
VERSION = 2
#: the largest frame either side accepts (a token answer is a few kilobytes)
MAX_FRAME = 256 * 1024
_HEADER = struct.Struct(">I")
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ProtocolError(Exception):
    """The peer broke the framing: too big, cut short, too slow, not JSON, not an object, no version."""


class PeerClosed(ProtocolError):
    """The peer closed the connection (or let it idle past its time) between frames: not an error of
    the framing, the end of a conversation."""


def send_frame(sock: socket.socket, message: Mapping[str, Any]) -> None:
    """Send ``message`` as one frame (the socket's own time-out applies). ``ProtocolError`` if too big.

    Example::

        >>> a, b = socket.socketpair()
        >>> send_frame(a, {"v": 1, "x": "y" * 10})
        >>> len(b.recv(100))
        28
        >>> a.close(); b.close()
    """
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a frame of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    sock.sendall(_HEADER.pack(len(body)) + body)


def _read_exactly(sock: socket.socket, size: int, deadline: float, *, at_start: bool = False) -> bytes:
    chunks: list[bytes] = []
    missing = size
    while missing:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProtocolError(f"the peer sent {size - missing} of {size} bytes before the deadline")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(missing, 65536))
        except TimeoutError:
            raise ProtocolError(f"the peer sent {size - missing} of {size} bytes before the deadline") from None
        if not chunk:
            if at_start and missing == size:
                raise PeerClosed("the peer closed the connection")
            raise ProtocolError(f"the peer closed the connection after {size - missing} of {size} bytes")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, *, timeout: float, idle: float | None = None) -> dict[str, Any]:
    """One frame from ``sock``, read within ``timeout`` seconds in all; a JSON object with a ``"v"``.

    ``idle``: first wait up to this long for the frame to begin (a connection kept open between
    requests); the ``timeout`` then runs from its first byte. :class:`PeerClosed` when the peer closes
    (or stays silent through ``idle``) before a frame begins; :class:`ProtocolError` for anything
    else that is not a frame (and ``OSError`` if the connection breaks).

    Example::

        >>> a, b = socket.socketpair()
        >>> _ = a.sendall(b"\\xff\\xff\\xff\\xff")
        >>> recv_frame(b, timeout=0.5)
        Traceback (most recent call last):
        ...
        mi_notebook.agent.protocol.ProtocolError: a frame of 4294967295 bytes is over the 262144-byte limit
        >>> a.close(); b.close()
    """
    first = b""
    if idle is not None:
        sock.settimeout(idle)
        try:
            first = sock.recv(1)
        except TimeoutError:
            raise PeerClosed(f"no request for {idle:g} s") from None
        if not first:
            raise PeerClosed("the peer closed the connection")
    deadline = time.monotonic() + timeout
    head = first + _read_exactly(sock, _HEADER.size - len(first), deadline, at_start=not first)
    (size,) = _HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    raw = _read_exactly(sock, size, deadline)
    try:
        message = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"a frame of {size} bytes that is not UTF-8 JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("v"), int) or isinstance(message["v"], bool):
        raise ProtocolError("a frame that is not a JSON object with an integer 'v' (the protocol version)")
    return message


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """``(pid, uid)`` of the process at the other end of a connected Unix socket (Linux ``SO_PEERCRED``).

    Example::

        >>> a, b = socket.socketpair()
        >>> peer_credentials(a) == (os.getpid(), os.getuid())
        True
        >>> a.close(); b.close()
    """
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, _gid = _UCRED.unpack(raw)
    return pid, uid


class AgentPaths:
    """The files of one user's agent, all in one private directory: ``socket``, ``lock`` (held while
    starting one), ``pid`` (held by the running agent, with its pid) and ``log`` (never a token).

    Example::

        >>> p = AgentPaths("/run/user/1000/mi-notebook")
        >>> p.socket
        '/run/user/1000/mi-notebook/agent.sock'
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.socket = os.path.join(directory, "agent.sock")
        self.lock = os.path.join(directory, "start.lock")
        self.pid = os.path.join(directory, "agent.pid")
        self.log = os.path.join(directory, "agent.log")

    def __repr__(self) -> str:
        return f"AgentPaths({self.directory!r})"


def agent_paths(directory: str | None = None, *, environ: Mapping[str, str] | None = None,
                uid: int | None = None) -> AgentPaths:
    """The agent's files under ``directory``, default ``$XDG_RUNTIME_DIR/mi-notebook`` (else
    ``<tempdir>/mi-notebook-<uid>``). The directory is created with mode 0700, then checked with
    :func:`check_directory` (``uid``: whose it must be, default this process's): a ``PermissionError``
    if it is not safe.

    Example::

        >>> import tempfile
        >>> run = tempfile.mkdtemp()
        >>> p = agent_paths(environ={"XDG_RUNTIME_DIR": run})
        >>> p.directory == os.path.join(run, "mi-notebook"), oct(os.stat(p.directory).st_mode & 0o777)
        (True, '0o700')
    """
    env = os.environ if environ is None else environ
    if directory is None:
        runtime = env.get("XDG_RUNTIME_DIR", "").strip()
        if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
            directory = os.path.join(runtime, "mi-notebook")
        else:
            directory = os.path.join(tempfile.gettempdir(), f"mi-notebook-{os.getuid()}")
    _check_parent(directory, os.getuid() if uid is None else uid)  # before creating anything in it
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    check_directory(directory, uid=uid)
    return AgentPaths(directory)


def check_directory(directory: str, *, uid: int | None = None) -> None:
    """``PermissionError`` unless ``directory`` is safe for the agent's socket: a real directory (not a
    symlink) owned by ``uid`` (default this process's) with mode 0700, in a parent others cannot write
    (or a sticky one, like ``/tmp``) that belongs to ``uid`` or root. A kernel checks it again before
    every new connection, so a directory swapped since is never talked to.

    Example::

        >>> import tempfile
        >>> d = tempfile.mkdtemp(); os.chmod(d, 0o755)
        >>> check_directory(d)
        Traceback (most recent call last):
        ...
        PermissionError: ... must be a directory owned by uid ... with mode 0700 (it holds the token agent's socket); it is not (mode 0o755, owner ...). Remove it, or point the agent elsewhere.
    """
    expected = os.getuid() if uid is None else uid
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode):
        raise PermissionError(f"{directory} is a symlink, not the token agent's own directory: refused. Remove it, "
                              "or point the agent elsewhere.")
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != expected or info.st_mode & 0o077:
        raise PermissionError(
            f"{directory} must be a directory owned by uid {expected} with mode 0700 (it holds the token "
            f"agent's socket); it is not (mode {oct(info.st_mode & 0o777)}, owner {info.st_uid}). Remove it, "
            "or point the agent elsewhere.")
    _check_parent(directory, expected)


def _check_parent(directory: str, uid: int) -> None:
    """Others must not be able to rename ``directory`` away: its parent is theirs to write only if sticky."""
    parent = os.path.dirname(os.path.abspath(directory))
    info = os.stat(parent)
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise PermissionError(
            f"{parent} (where the token agent's directory is) may be written by others and has no sticky bit "
            f"(mode {oct(info.st_mode & 0o7777)}): another user could swap the agent's directory. Use a private "
            "XDG_RUNTIME_DIR (e.g. /run/user/<uid>), make it sticky (chmod +t), or point the agent elsewhere.")
    if info.st_uid not in (uid, 0):
        raise PermissionError(
            f"{parent} (where the token agent's directory is) belongs to uid {info.st_uid}, who could swap the "
            f"agent's directory; it must belong to uid {uid} or root. Point the agent elsewhere.")


def token_to_wire(token: AccessToken) -> dict[str, Any]:
    """A token as plain data for the socket: its facts, the token, its timeline, and the user-token
    marker (``user_token_reason``, ``None`` for a managed identity's token).

    Example::

        >>> tok = as_user_token(AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1), "why")
        >>> wire = token_to_wire(tok)
        >>> wire["user_token_reason"], wire["token"]
        ('why', 'a.b.c')
    """
    data = token.to_dict(include_token=True)
    data["timeline"] = token.timeline.to_dict() if token.timeline is not None else None
    data["user_token_reason"] = token.user_token_reason if isinstance(token, UserAccessToken) else None
    return data


def token_from_wire(data: Mapping[str, Any], *, from_cache: bool = False) -> AccessToken:
    """The token :func:`token_to_wire` sent: a :class:`~mi_notebook.sources.UserAccessToken` when it
    carries the marker. ``KeyError``/``TypeError``/``ValueError`` for data that is not a token.

    Example::

        >>> tok = AccessToken("a.b.c", resource="api://x", expires_on=5, fetched_at=1)
        >>> again = token_from_wire(token_to_wire(as_user_token(tok, "why")), from_cache=True)
        >>> type(again).__name__, again.user_token_reason, again.from_cache, again.fingerprint == tok.fingerprint
        ('UserAccessToken', 'why', True, True)
    """
    fields = dict(data)
    timeline = fields.pop("timeline", None)
    reason = fields.pop("user_token_reason", None)
    fields["from_cache"] = from_cache
    token = AccessToken.from_dict(fields)
    if timeline is not None:
        token = dataclasses.replace(token, timeline=Timeline.from_dict(timeline))
    if reason is not None:
        if not isinstance(reason, str):
            raise TypeError("user_token_reason must be text")
        token = as_user_token(token, reason or "The signed-in user's own token, not a managed identity's.")
    return token
