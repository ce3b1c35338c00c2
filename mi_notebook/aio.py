"""The async credential, for ``azure.*.aio`` clients and adlfs: :func:`credential`.

:class:`AsyncManagedIdentityTokenCredential` satisfies azure-core's ``AsyncTokenCredential`` and
``AsyncSupportsTokenInfo`` protocols (``await get_token`` / ``await get_token_info`` / ``await close`` /
``async with``) on the same process-wide cache and single-flight as :func:`mi_notebook.credential`:

- a cached token is the sync credential's lock-free read, on the event loop, with no thread hop;
- a token that must be fetched is fetched in a worker thread (the loop's default executor), so the event
  loop never waits on the network; the coroutines of one credential that await the same scope together
  share one fetch, and the cache's single-flight makes one request for every thread and credential;
- it needs no aiohttp (azure-core's async transports do, for the clients themselves);
- it travels (``pickle``, Dask) like the sync one (:class:`~mi_notebook.sdk_credential.Travel`).

After ``close()`` (or leaving ``async with``) it refuses to serve, saying to make a new one.

Example::

    >>> import asyncio
    >>> import mi_notebook as mi
    >>> conn = mi.connect(mode="emulator")
    >>> async def main():
    ...     async with mi.aio.credential(connection=conn) as cred:
    ...         return (await cred.get_token("https://storage.azure.com/.default")).expires_on > 0
    >>> asyncio.run(main())
    True
    >>> mi.disconnect()
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .sdk_credential import (
    ManagedIdentityTokenCredential,
    SdkAccessToken,
    SdkAccessTokenInfo,
    Travel,
    _arrive,
    _token_info,
)

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection
    from .identity import Identity
    from .tokens import AccessToken

__all__ = ["AsyncManagedIdentityTokenCredential", "credential"]


class AsyncManagedIdentityTokenCredential:
    """An ``AsyncTokenCredential`` for one identity, on the sync credential's cache (see the module docstring).

    ``identity`` and ``connection`` mean what they mean for :func:`mi_notebook.credential`: by default the
    system-assigned identity through the current connection (connecting on first use, in a worker thread).

    Example::

        >>> import asyncio
        >>> cred = AsyncManagedIdentityTokenCredential("client_id=4b3a2f61-9c2e-4d5b-8f0a-1e2d3c4b5a69")
        >>> cred.identity.kind, cred.closed
        ('user', False)
        >>> asyncio.run(cred.get_token())
        Traceback (most recent call last):
        ValueError: get_token needs exactly one scope, e.g. 'https://management.azure.com/.default'; got none
    """

    def __init__(self, identity: Identity | str | None = None, *, connection: Connection | None = None) -> None:
        self._sync = ManagedIdentityTokenCredential(identity, connection=connection)  # ValueError for bad input
        self.closed = False
        # (loop, scope, claims) -> the fetch its coroutines await together (futures belong to one loop)
        self._inflight: dict[tuple[asyncio.AbstractEventLoop, str, str | None], asyncio.Future[AccessToken]] = {}

    @property
    def identity(self) -> Identity:
        """The managed identity the tokens are for."""
        return self._sync.identity

    @property
    def connection(self) -> Connection | None:
        """The pinned connection (``None``: the current one, or one made on first use after travelling)."""
        return self._sync.connection

    # --- azure-core protocols ----------------------------------------------------------------
    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> SdkAccessToken:
        """An ``AccessToken``-shaped ``(token, expires_on)`` for exactly one scope.

        Example::

            >>> import asyncio
            >>> from mi_notebook.connection import connect
            >>> conn = connect(mode="emulator")
            >>> asyncio.run(credential(connection=conn).get_token("https://vault.azure.net/.default")).expires_on > 0
            True
            >>> conn.close()
        """
        sync = self._sync
        scope = self._usable(scopes, "get_token")
        token = sync._cached(scope) if claims is None else None
        if token is None:
            token = await self._fetch(scope, claims)
        return sync._sdk_token(token)

    async def get_token_info(self, *scopes: str, options: Mapping[str, Any] | None = None) -> SdkAccessTokenInfo:
        """An ``AccessTokenInfo``-shaped object (token, expires_on, token_type, refresh_on).

        Example::

            >>> import asyncio
            >>> from mi_notebook.connection import connect
            >>> conn = connect(mode="emulator")
            >>> asyncio.run(credential(connection=conn).get_token_info("https://vault.azure.net/.default")).token_type
            'Bearer'
            >>> conn.close()
        """
        scope = self._usable(scopes, "get_token_info")
        claims = dict(options or {}).get("claims")
        token = self._sync._cached(scope) if claims is None else None
        if token is None:
            token = await self._fetch(scope, claims)
        return _token_info(token)

    async def close(self) -> None:
        """Refuse further use (the connection and the cache are shared, so nothing else is released).

        Example::

            >>> import asyncio
            >>> cred = credential()
            >>> asyncio.run(cred.close()); cred.closed
            True
        """
        self.closed = True

    async def __aenter__(self) -> AsyncManagedIdentityTokenCredential:
        if self.closed:
            raise RuntimeError(self._closed_message())
        return self

    async def __aexit__(self, exc_type: object = None, exc_value: object = None, traceback: object = None) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = ", closed" if self.closed else ""
        return f"AsyncManagedIdentityTokenCredential({self.identity}, {self._sync._where()}{state})"

    # --- travelling (as the sync credential: see mi_notebook.sdk_credential.Travel) -------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrive, (type(self), self.identity, self._sync._travel_description()))

    def __copy__(self) -> AsyncManagedIdentityTokenCredential:
        twin = type(self)(self.identity, connection=self.connection)
        twin._set_travel(self._sync._travel)
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncManagedIdentityTokenCredential:
        return self.__copy__()  # a new, open credential on the same connection

    def _set_travel(self, travel: Travel | None) -> None:
        self._sync._travel = travel

    # --- internals ---------------------------------------------------------------------------
    def _usable(self, scopes: tuple[Any, ...], method: str) -> str:
        if self.closed:
            raise RuntimeError(self._closed_message())
        return self._sync._scope(scopes, method)  # ValueError for bad input, before any request

    def _closed_message(self) -> str:
        return ("this AsyncManagedIdentityTokenCredential was closed (close() or the end of its `async with`); make a "
                "new one with mi_notebook.aio.credential() (credentials are cheap: they share one cache)")

    async def _fetch(self, scope: str, claims: str | None) -> AccessToken:
        loop = asyncio.get_running_loop()
        key = (loop, scope, claims)
        shared = self._inflight.get(key)
        if shared is None:
            # connecting (a probe, an emulator start) and fetching both happen in the worker thread
            shared = loop.run_in_executor(None, functools.partial(self._sync._fetch, scope, claims=claims))
            self._inflight[key] = shared
            shared.add_done_callback(functools.partial(self._done, key))
        # shield: one awaiter cancelled (a timeout) leaves the fetch to the others
        return await asyncio.shield(shared)

    def _done(self, key: tuple[asyncio.AbstractEventLoop, str, str | None], future: asyncio.Future[AccessToken]) -> None:
        self._inflight.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved here too: every awaiter may have been cancelled meanwhile


def credential(identity: Identity | str | None = None, *, connection: Connection | None = None) -> (
    AsyncManagedIdentityTokenCredential
):
    """An ``AsyncTokenCredential`` for async Azure SDK clients and adlfs: the given identity (default
    system-assigned), with the same arguments as :func:`mi_notebook.credential`.

    Example::

        >>> cred = credential("object_id=0b8c1f2e-3d4a-4b5c-9d6e-7f8091a2b3c4")
        >>> cred.identity.kind, cred.closed
        ('user', False)
    """
    return AsyncManagedIdentityTokenCredential(identity, connection=connection)
