"""An Azure SDK compatible credential over mi-notebook's client and process-wide cache.

:class:`ManagedIdentityTokenCredential` satisfies azure-core's ``TokenCredential`` and
``SupportsTokenInfo`` protocols (``get_token`` / ``get_token_info`` / ``close`` / context manager)
without importing azure-core: azure-core only reads ``.token`` and ``.expires_on`` (and
``refresh_on`` if present) from what is returned, so small look-alike types do. Every Azure SDK
client (``azure-mgmt-*``, ``azure-storage-*``, ``azure-keyvault-*``...) can use it, and every client
in the process then shares one cached token per (endpoint, identity, resource): one IMDS request
instead of one per client. The SDKs' scope of a well-known resource
(``https://management.azure.com/.default``) resolves to the same resource as its alias, so
``mi.get_token("arm")`` and every ARM client share that one token too.

A credential travels (``pickle``, Dask, process pools): it pickles as a :class:`Travel`, a description
of how to get a token, never a token or a host's secret; see :class:`Travel` for what each kind of
connection becomes in the process that unpickles it. The async flavour, for ``azure.*.aio`` clients
and adlfs, is :func:`mi_notebook.aio.credential`.

Example::

    >>> import mi_notebook as mi
    >>> from azure.mgmt.resource.resources import ResourceManagementClient
    >>> conn = mi.connect(mode="emulator")
    >>> client = ResourceManagementClient(mi.credential(connection=conn), conn.emulator.vm.subscription_id)
    >>> conn.close()
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, NoReturn

from . import connection as _connection
from .cache import refresh_at
from .clock import SYSTEM_CLOCK
from .connection import current_or_connect
from .detection import detect
from .errors import EndpointUnreachableError
from .identity import Identity

if TYPE_CHECKING:  # pragma: no cover
    from .cache import CacheKey
    from .connection import Connection
    from .tokens import AccessToken

__all__ = [
    "EmulatorTokenWarning",
    "ManagedIdentityTokenCredential",
    "SdkAccessToken",
    "SdkAccessTokenInfo",
    "Travel",
    "credential",
]


class EmulatorTokenWarning(UserWarning):
    """An Azure SDK client was handed a token from the mi-notebook emulator, not from Azure."""


_warned = threading.Event()


def _warn_if_emulator(token: AccessToken) -> None:
    if token.emulated and not _warned.is_set():
        _warned.set()
        warnings.warn(
            "mi.credential() is handing Azure SDK clients tokens from the mi-notebook emulator, not from "
            "Azure: they work only against the emulator's own services (its ARM, Key Vault and Azure OpenAI, "
            "or Azurite), never against Azure (warned once).",
            EmulatorTokenWarning,
            stacklevel=4,
        )


def _refuse_pickling(kind: str) -> NoReturn:
    raise TypeError(f"{kind} refuses to be pickled: it holds a bearer token, and pickles end up in files "
                    "(pickle the credential instead: it travels without its tokens)")


def _refuse_awaiting() -> NoReturn:
    # azure-core's async pipelines await whatever get_token/get_token_info return when it is awaitable
    # (await_result), and adlfs hands its credential to them: so a sync credential in an async client
    # arrives here, instead of silently blocking the event loop on every token fetch
    raise TypeError("mi.credential() is the synchronous credential and its token was awaited (by an async Azure "
                    "SDK client such as azure.storage.blob.aio, by adlfs, or by `await`): a fetch there would block "
                    "the event loop. Use mi_notebook.aio.credential() (same arguments) for async clients.")


class SdkAccessToken(NamedTuple):
    """Shaped like ``azure.core.credentials.AccessToken`` (a namedtuple ``(token, expires_on)``),
    but its repr never shows the token and it refuses to be pickled (azure-core only reads
    ``.token`` and ``.expires_on``; it never copies or pickles a token). Copies are the object itself.
    Awaiting it raises a ``TypeError`` naming :func:`mi_notebook.aio.credential`: that is how a sync
    credential handed to an async client (``azure.*.aio``, adlfs) says what to use instead.

    Example::

        >>> SdkAccessToken("eyJ0eXAi.secret.sig", 1700000000)
        SdkAccessToken(token=<redacted>, expires_on=1700000000)
    """

    token: str
    expires_on: int

    def __repr__(self) -> str:
        return f"SdkAccessToken(token=<redacted>, expires_on={self.expires_on})"

    def __copy__(self) -> SdkAccessToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SdkAccessToken:
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        _refuse_pickling("SdkAccessToken")

    def __await__(self) -> Generator[Any, None, NoReturn]:
        _refuse_awaiting()


class SdkAccessTokenInfo:
    """Shaped like ``azure.core.credentials.AccessTokenInfo``: token, expires_on, token_type, refresh_on.
    Its repr never shows the token; it refuses to be pickled (copies are new objects), and to be awaited
    (see :class:`SdkAccessToken`).

    Example::

        >>> info = SdkAccessTokenInfo("secret", 1700000000, refresh_on=1699990000)
        >>> info.token_type, info.refresh_on, "secret" in repr(info)
        ('Bearer', 1699990000, False)
    """

    __slots__ = ("token", "expires_on", "token_type", "refresh_on")

    def __init__(
        self, token: str, expires_on: int, *, token_type: str = "Bearer", refresh_on: int | None = None
    ) -> None:
        self.token = token
        self.expires_on = expires_on
        self.token_type = token_type
        self.refresh_on = refresh_on

    def __repr__(self) -> str:
        return (
            f"SdkAccessTokenInfo(token=<redacted>, expires_on={self.expires_on}, "
            f"token_type={self.token_type!r}, refresh_on={self.refresh_on})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SdkAccessTokenInfo):
            return NotImplemented
        return (self.token, self.expires_on, self.token_type, self.refresh_on) == (
            other.token, other.expires_on, other.token_type, other.refresh_on,
        )

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> SdkAccessTokenInfo:
        return SdkAccessTokenInfo(self.token, self.expires_on, token_type=self.token_type, refresh_on=self.refresh_on)

    def __deepcopy__(self, memo: dict[int, Any]) -> SdkAccessTokenInfo:
        return self.__copy__()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        _refuse_pickling("SdkAccessTokenInfo")

    def __await__(self) -> Generator[Any, None, NoReturn]:
        _refuse_awaiting()


class ManagedIdentityTokenCredential:
    """A TokenCredential for one identity, served by ``connect``'s cache.

    ``connection`` pins a :class:`~mi_notebook.connection.Connection`; by default the current one is used
    at each call (connecting on first use). Exactly one scope per call, as azure-identity requires
    for managed identity. A ``claims`` challenge bypasses the cache (the cached token was rejected).
    ``tenant_id`` is ignored: a managed identity lives in one tenant.

    It pickles (and so crosses to Dask workers and process pools) as a :class:`Travel`: the identity and
    how to reach an endpoint, never a token or a host's secret. ``copy.deepcopy`` gives a credential on
    the same connection.

    Example::

        >>> cred = ManagedIdentityTokenCredential(Identity.system())
        >>> cred.get_token()
        Traceback (most recent call last):
        ValueError: get_token needs exactly one scope, e.g. 'https://management.azure.com/.default'; got none
    """

    def __init__(self, identity: Identity | str | None = None, *, connection: Connection | None = None) -> None:
        self.identity = Identity.parse(identity)  # ValueError for bad input
        self.connection = connection
        # how this credential came here, when it was unpickled (None: made in this process)
        self._travel: Travel | None = None
        # the last cached token handed out and its SDK shape (both immutable), reused while the cache
        # keeps serving that same token object
        self._last: tuple[AccessToken, SdkAccessToken] | None = None
        # scope -> (the connection, its cache key) of the last call: the hot path of get_token
        self._hot: dict[str, tuple[Connection, CacheKey]] = {}

    # --- azure-core protocols ----------------------------------------------------------------
    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> SdkAccessToken:
        """An ``AccessToken``-shaped ``(token, expires_on)`` for exactly one scope.

        Example::

            >>> from mi_notebook.connection import connect
            >>> conn = connect(mode="emulator")
            >>> credential(connection=conn).get_token("https://management.azure.com/.default").expires_on > 0
            True
            >>> conn.close()
        """
        last = self._last
        if claims is None and last is not None and len(scopes) == 1 and type(scopes[0]) is str:
            # every SDK call comes here: while the cache serves the token handed out last, a call is a
            # few dictionary look-ups and a time comparison (the cache's lock-free hit, inlined; the same
            # read as _cached, which the async credential uses)
            hot = self._hot.get(scopes[0])
            if hot is not None:
                conn, key = hot
                if not conn.closed and (conn is self.connection or conn is _connection._current):
                    store = conn.cache
                    fresh = store._fresh.get(key)
                    if fresh is not None and fresh[0] is last[0] and store._clock() < fresh[1]:
                        next(store._fast_hits)
                        return last[1]
        return self._sdk_token(self._fetch(self._scope(scopes, "get_token"), claims=claims))

    def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> SdkAccessTokenInfo:
        """An ``AccessTokenInfo``-shaped object (token, expires_on, token_type, refresh_on).

        ``refresh_on`` is when the cache will fetch a fresh token, so SDK clients come back then.

        Example::

            >>> from mi_notebook.connection import connect
            >>> conn = connect(mode="emulator")
            >>> credential(connection=conn).get_token_info("https://vault.azure.net/.default").token_type
            'Bearer'
            >>> conn.close()
        """
        scope = self._scope(scopes, "get_token_info")
        return _token_info(self._fetch(scope, claims=dict(options or {}).get("claims")))

    def close(self) -> None:
        """Nothing to release (the connection and cache are shared); the credential stays usable."""

    def __enter__(self) -> ManagedIdentityTokenCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ManagedIdentityTokenCredential({self.identity}, {self._where()})"

    # --- travelling --------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrive, (type(self), self.identity, self._travel_description()))

    def __copy__(self) -> ManagedIdentityTokenCredential:
        twin = type(self)(self.identity, connection=self.connection)
        twin._travel = self._travel
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> ManagedIdentityTokenCredential:
        return self.__copy__()  # a connection (sessions, an emulator) is shared, never duplicated

    def _travel_description(self) -> Travel:
        if self._travel is not None:
            return self._travel
        # a credential that follows the current connection settles it first (as its first use would),
        # so that it travels as what this process uses, never as a guess
        return Travel.of(self.connection if self.connection is not None else current_or_connect())

    def _set_travel(self, travel: Travel) -> None:
        self._travel = travel

    def _where(self) -> str:
        if self.connection is not None:
            return self.connection.endpoint
        if self._travel is not None:
            return f"{self._travel}, connecting on first use"
        return "current connection"

    # --- internals ---------------------------------------------------------------------------
    @staticmethod
    def _scope(scopes: tuple[Any, ...], method: str) -> str:
        """The one scope of a call; bad input raises ``ValueError`` before any request."""
        if len(scopes) != 1:
            got = "none" if not scopes else f"{len(scopes)}: {', '.join(map(repr, scopes))}"
            raise ValueError(
                f"{method} needs exactly one scope, e.g. 'https://management.azure.com/.default'; got {got}"
            )
        scope = scopes[0]
        if not isinstance(scope, str) or not scope.strip():
            raise ValueError(f"the scope must be a non-empty string; got {scope!r}")
        return scope

    def _connect(self) -> Connection:
        travel = self._travel
        if travel is None:
            return self.connection if self.connection is not None else current_or_connect()
        if travel.how == "auto":  # follows this process's current connection, like credential() does
            return travel.connect()
        conn = self.connection
        if conn is None or conn.closed:
            conn = self.connection = travel.connect()
        return conn

    def _cached(self, scope: str) -> AccessToken | None:
        """The cached token for ``scope`` if the cache's lock-free snapshot holds a fresh one, else ``None``
        (never a request, never a lock: the hot path of get_token, for callers that must not block)."""
        hot = self._hot.get(scope)
        if hot is None:
            return None
        conn, key = hot
        if conn.closed or not (conn is self.connection or conn is _connection._current):
            return None
        store = conn.cache
        fresh = store._fresh.get(key)
        if fresh is None or store._clock() >= fresh[1]:
            return None
        next(store._fast_hits)
        return fresh[0]

    def _sdk_token(self, token: AccessToken) -> SdkAccessToken:
        last = self._last
        if last is None or last[0] is not token:  # the cache hands out one object per token
            last = self._last = (token, SdkAccessToken(token.reveal(), int(token.expires_on)))
        return last[1]

    def _fetch(self, scope: str, *, claims: str | None) -> AccessToken:
        conn = self._connect()
        token = conn.get_token(scope, identity=self.identity, force_refresh=bool(claims))
        _warn_if_emulator(token)
        memo = conn._keys.get((scope, self.identity))
        if memo is not None:
            if len(self._hot) >= 64:
                self._hot.clear()
            self._hot[scope] = (conn, memo[0])
        return token


def _refresh_on(token: AccessToken) -> int:
    return int(refresh_at(token))


def _token_info(token: AccessToken) -> SdkAccessTokenInfo:
    return SdkAccessTokenInfo(token.reveal(), int(token.expires_on), token_type=token.token_type or "Bearer",
                              refresh_on=_refresh_on(token))


def credential(identity: Identity | str | None = None, *, connection: Connection | None = None) -> (
    ManagedIdentityTokenCredential
):
    """A TokenCredential for Azure SDK clients: the given identity (default system-assigned).

    Example::

        >>> cred = credential()
        >>> cred.identity.kind
        'system'
    """
    return ManagedIdentityTokenCredential(identity, connection=connection)


# --- travelling: what a pickled credential carries -------------------------------------------------
@dataclass(frozen=True)
class Travel:
    """How a pickled credential gets its tokens in the process that unpickles it: never a token, never a
    host's secret (``MSI_SECRET``, ``IDENTITY_HEADER``, Arc's key: the receiving process reads its own).

    ``how`` is one of:

    - ``"auto"``: this machine's own endpoint, decided afresh on first use where it lands (so each Dask
      worker uses its own node's identity). A connection auto mode found on a host (its variables, or
      IMDS answering) travels so. ``endpoint`` is where to probe for IMDS. It never starts an emulator:
      where no endpoint answers, the first use fails, naming the address it tried.
    - ``"url"``: the IMDS-protocol ``endpoint`` it was made for (``connect(url)``,
      ``MI_NOTEBOOK_IMDS_URL``), whatever the receiving machine is. An embedded emulator (``emulator``)
      travels so too, while the process that started it lives: it dies with that process, and then
      a worker fails with the usual error naming the URL it tried; it never starts one of its own.
    - ``"host"``: the ``host`` asked for (``connect(host="azureml")``), configured from the receiving
      process's own variables; an emulator playing a host with a secret travels so as well (its
      secret stays behind). For ``"vm"``, ``endpoint`` is IMDS's base.

    ``share`` says whether tokens go through the user's token agent (on the receiving machine);
    ``origin`` is the process id that made it (for the reasons shown). Where the credential arrives,
    the connection's ``reason`` says which endpoint it uses and why; retry and time-out settings are
    the host's defaults there.

    Example::

        >>> import pickle
        >>> from mi_notebook.connection import connect, disconnect
        >>> conn = connect("http://127.0.0.1:8080")
        >>> Travel.of(conn).how, Travel.of(conn).endpoint
        ('url', 'http://127.0.0.1:8080')
        >>> cred = pickle.loads(pickle.dumps(credential(connection=conn)))
        >>> cred
        ManagedIdentityTokenCredential(system-assigned, the endpoint http://127.0.0.1:8080, connecting on first use)
        >>> disconnect()
    """

    how: Literal["auto", "url", "host"]
    endpoint: str
    host: str = "vm"
    share: bool = False
    emulator: bool = False
    origin: int = 0

    @classmethod
    def of(cls, conn: Connection) -> Travel:
        """What ``conn`` becomes in another process (see the class docstring).

        Example::

            >>> from mi_notebook.connection import connect, disconnect
            >>> Travel.of(connect(mode="emulator")).how
            'url'
            >>> disconnect()
        """
        agent = sys.modules.get("mi_notebook.agent.client")  # loaded whenever a connection shares
        shared = agent is not None and isinstance(conn.cache, agent.SharedCache)
        pid = os.getpid()
        if conn.chosen == "given" or (conn.chosen == "emulator" and conn.host == "vm"):
            return cls("url", conn.endpoint, emulator=conn.emulated, share=shared, origin=pid)
        probe = conn.endpoint if conn.host == "vm" else _connection.IMDS_URL
        if conn.chosen == "requested" or (conn.chosen == "emulator" and conn.host in _connection.CONNECTABLE):
            return cls("host", probe, host=conn.host, share=shared, origin=pid)
        return cls("auto", probe, share=shared, origin=pid)  # detected or probed: each machine finds its own

    def __str__(self) -> str:
        if self.how == "url":
            return f"the {'emulator' if self.emulator else 'endpoint'} {self.endpoint}"
        if self.how == "host":
            return f"host={self.host!r} as this machine's variables configure it"
        return "this machine's own managed-identity endpoint"

    def connect(self) -> Connection:
        """The connection this description names in this process (one per description and process, shared
        by every credential that arrived with it; ``"auto"``: the current connection).

        Example::

            >>> from mi_notebook.connection import disconnect
            >>> Travel("url", "http://127.0.0.1:8080").connect().reason.startswith("Using http://127.0.0.1:8080 ")
            True
            >>> disconnect()
        """
        if self.how == "auto":
            return self._auto()
        with _connection._lock:
            conn = _arrived.get(self)
            if conn is None or conn.closed:
                conn = _arrived[self] = self._build()
        return conn

    def _build(self) -> Connection:
        made = f"process {self.origin}" if self.origin != os.getpid() else "this process"
        options: dict[str, Any] = {"clock": SYSTEM_CLOCK}
        if self.how == "url":
            why = f"the credential was made for it in {made}"
            if self.emulator:
                why += (", where it is the embedded emulator (not Azure) that process started: it answers only while "
                        "that process lives")
            conn = _connection._explicit(self.endpoint, why, options)
        else:
            why = f"the credential was made in {made} for host={self.host!r}, read from this process's variables"
            conn = _connection._host_connection(detect(os.environ), self.host, why, self.endpoint,
                                                options, chosen="requested")
        if self.share:
            _connection._share(conn, None, SYSTEM_CLOCK)
        _connection.logger.info("%s", conn.reason)
        return conn

    def _auto(self) -> Connection:
        conn = _connection._current
        if conn is not None and not conn.closed:
            return conn
        with _connection._lock:
            conn = _connection._current
            if conn is not None and not conn.closed:
                return conn
            env_url = os.environ.get(_connection.ENV_IMDS_URL, "").strip()
            if not env_url and os.environ.get(_connection.ENV_MODE, "").strip().lower() == "emulator":
                self._no_emulator(f"{_connection.ENV_MODE}=emulator asks for one here")
            return _connection.connect(probe_url=self.endpoint, share=self.share,
                                       emulator_factory=lambda: self._no_emulator(
                                           f"no host variables are set and no Azure IMDS answered at {self.endpoint}"))

    def _no_emulator(self, found: str) -> NoReturn:
        raise EndpointUnreachableError(
            f"This credential was made for the managed-identity endpoint of the machine it runs on (in process "
            f"{self.origin}, on an Azure host), but here {found}; a credential that travelled never uses an emulator "
            "the process that made it did not use.",
            endpoint=self.endpoint,
            hint="Run it where a managed identity is available, give this process its endpoint (MI_NOTEBOOK_IMDS_URL "
                 "or the host's variables), or make the credential for an explicit endpoint: "
                 "mi.credential(connection=mi.connect(url)).")


#: description -> the connection made for it in this process (Dask unpickles a credential per task)
_arrived: dict[Travel, Connection] = {}


def _arrive(cls: type[ManagedIdentityTokenCredential], identity: Identity, travel: Travel) -> Any:
    """Unpickling: a credential of ``cls`` that connects as ``travel`` says, on first use."""
    cred = cls(identity)
    cred._set_travel(travel)
    return cred
