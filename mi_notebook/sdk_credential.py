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

Example::

    >>> import mi_notebook as mi
    >>> from azure.mgmt.resource.resources import ResourceManagementClient
    >>> conn = mi.connect(mode="emulator")
    >>> client = ResourceManagementClient(mi.credential(connection=conn), conn.emulator.vm.subscription_id)
    >>> conn.close()
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from . import connection as _connection
from .cache import refresh_at
from .connection import current_or_connect
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
            "Azure: they work only against the emulator's own services (its ARM and Key Vault, or "
            "Azurite), never against Azure (warned once).",
            EmulatorTokenWarning,
            stacklevel=4,
        )


def _refuse_pickling(kind: str) -> NoReturn:
    raise TypeError(f"{kind} refuses to be pickled: it holds a bearer token, and pickles end up in files "
                    "(ask the credential again in the other process)")


class SdkAccessToken(NamedTuple):
    """Shaped like ``azure.core.credentials.AccessToken`` (a namedtuple ``(token, expires_on)``),
    but its repr never shows the token and it refuses to be pickled (azure-core only reads
    ``.token`` and ``.expires_on``; it never copies or pickles a token). Copies are the object itself.

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


class SdkAccessTokenInfo:
    """Shaped like ``azure.core.credentials.AccessTokenInfo``: token, expires_on, token_type, refresh_on.
    Its repr never shows the token; it refuses to be pickled (copies are new objects).

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


class ManagedIdentityTokenCredential:
    """A TokenCredential for one identity, served by ``connect``'s cache.

    ``connection`` pins a :class:`~mi_notebook.connection.Connection`; by default the current one is used
    at each call (connecting on first use). Exactly one scope per call, as azure-identity requires
    for managed identity. A ``claims`` challenge bypasses the cache (the cached token was rejected).
    ``tenant_id`` is ignored: a managed identity lives in one tenant.

    Example::

        >>> cred = ManagedIdentityTokenCredential(Identity.system())
        >>> cred.get_token()
        Traceback (most recent call last):
        ValueError: get_token needs exactly one scope, e.g. 'https://management.azure.com/.default'; got none
    """

    def __init__(self, identity: Identity | str | None = None, *, connection: Connection | None = None) -> None:
        self.identity = Identity.parse(identity)  # ValueError for bad input
        self.connection = connection
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
            # few dictionary look-ups and a time comparison (the cache's lock-free hit, inlined)
            hot = self._hot.get(scopes[0])
            if hot is not None:
                conn, key = hot
                if not conn.closed and (conn is self.connection or conn is _connection._current):
                    store = conn.cache
                    fresh = store._fresh.get(key)
                    if fresh is not None and fresh[0] is last[0] and store._clock() < fresh[1]:
                        next(store._fast_hits)
                        return last[1]
        token = self._fetch(scopes, claims=claims, method="get_token")
        if last is None or last[0] is not token:  # the cache hands out one object per token
            last = self._last = (token, SdkAccessToken(token.reveal(), int(token.expires_on)))
        return last[1]

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
        opts = dict(options or {})
        token = self._fetch(scopes, claims=opts.get("claims"), method="get_token_info")
        return SdkAccessTokenInfo(
            token.reveal(),
            int(token.expires_on),
            token_type=token.token_type or "Bearer",
            refresh_on=_refresh_on(token),
        )

    def close(self) -> None:
        """Nothing to release (the connection and cache are shared); the credential stays usable."""

    def __enter__(self) -> ManagedIdentityTokenCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.connection.endpoint if self.connection is not None else "current connection"
        return f"ManagedIdentityTokenCredential({self.identity}, {where})"

    # --- internals ---------------------------------------------------------------------------
    def _fetch(self, scopes: tuple[str, ...], *, claims: str | None, method: str) -> AccessToken:
        if len(scopes) != 1:
            got = "none" if not scopes else f"{len(scopes)}: {', '.join(map(repr, scopes))}"
            raise ValueError(
                f"{method} needs exactly one scope, e.g. 'https://management.azure.com/.default'; got {got}"
            )
        scope = scopes[0]
        if not isinstance(scope, str) or not scope.strip():
            raise ValueError(f"the scope must be a non-empty string; got {scope!r}")
        conn = self.connection if self.connection is not None else current_or_connect()
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
