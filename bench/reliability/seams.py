"""Every reach of the reliability scenarios into mi_notebook's internals, one function each.

The scenarios call mi_notebook's public names directly. Where they need something that is not public
(a client's state, the emulator's issuer), they go through this module, so a change of those internals
is met here and only here:

- :data:`VirtualClock`: the tests' clock (``mi_notebook.clock.VirtualClock``), re-exported;
- :func:`connect_current` / :func:`disconnect_current`: ``mi.connect`` and ``mi.disconnect``;
- :func:`forget_connection`: no current connection and an empty process-wide token cache;
- :func:`explicit_connection`: a ``Connection`` chosen ``"given"`` around a client built here;
- :func:`use_virtual_time` / :func:`client_timeout`: change a live ``ImdsClient``'s clock and time-outs;
- :func:`intercept_token_requests`: wrap a client's ``request_token`` (what the cache calls to refresh);
- :func:`record_issued_tokens`: every token the emulator's issuer hands out.

Example::

    >>> clock = VirtualClock()
    >>> clock.sleep(1.5); clock(), clock.slept
    (1.5, [1.5])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from mi_notebook.clock import VirtualClock

__all__ = ["VirtualClock", "client_timeout", "connect_current", "disconnect_current", "explicit_connection",
           "forget_connection", "intercept_token_requests", "record_issued_tokens", "use_virtual_time"]


def connect_current(imds_url: str, **options: Any) -> Any:
    """``mi.connect(imds_url, **options)``: make a connection to ``imds_url`` the current one, return it.

    Example::

        >>> conn = connect_current("http://127.0.0.1:9")  # explicit: nothing is sent
        >>> conn.chosen, conn.endpoint
        ('given', 'http://127.0.0.1:9')
        >>> disconnect_current()
    """
    from mi_notebook.connection import connect

    return connect(imds_url, **options)


def disconnect_current() -> None:
    """Close the current connection (stopping an emulator it started); the token cache is kept.

    Example::

        >>> disconnect_current(); disconnect_current()  # nothing to close: no error
    """
    from mi_notebook.connection import disconnect

    disconnect()


def forget_connection() -> None:
    """No current connection and an empty process-wide token cache.

    Example::

        >>> from mi_notebook.cache import default_cache
        >>> _ = connect_current("http://127.0.0.1:9")
        >>> forget_connection()
        >>> default_cache().entries()
        []
    """
    from mi_notebook.cache import default_cache

    disconnect_current()
    default_cache().clear()


def explicit_connection(imds_url: str, client: Any, reason: str) -> Any:
    """A ``Connection`` to ``imds_url`` through ``client`` (not made current).

    Example::

        >>> from mi_notebook.sources.imds import ImdsClient
        >>> conn = explicit_connection("http://127.0.0.1:9", ImdsClient(url="http://127.0.0.1:9"), "a test")
        >>> conn.chosen, str(conn)
        ('given', 'a test')
    """
    from mi_notebook.connection import Connection

    return Connection(imds_url, "vm", client, chosen="given", reason=reason)


def use_virtual_time(client: Any, clock: VirtualClock) -> None:
    """Make a live ``ImdsClient`` (e.g. the one ``connect`` built) wait and tell time on ``clock``.

    Example::

        >>> from mi_notebook.sources.imds import ImdsClient
        >>> client, clock = ImdsClient(url="http://127.0.0.1:9"), VirtualClock()
        >>> use_virtual_time(client, clock)
        >>> client.clock.sleep(3); clock()
        3.0
    """
    client.clock = clock


@contextlib.contextmanager
def client_timeout(client: Any, timeout: tuple[float, float]) -> Iterator[None]:
    """Give a live ``ImdsClient`` the ``(connect, read)`` time-outs ``timeout`` for the block.

    Example::

        >>> from mi_notebook.sources.imds import ImdsClient
        >>> client = ImdsClient(url="http://127.0.0.1:9", timeout=(1.0, 2.0))
        >>> with client_timeout(client, (1.0, 0.1)):
        ...     client.timeout
        (1.0, 0.1)
        >>> client.timeout
        (1.0, 2.0)
    """
    old = client.timeout
    client.timeout = timeout
    try:
        yield
    finally:
        client.timeout = old


def intercept_token_requests(client: Any, around: Callable[..., Any]) -> None:
    """Route ``client.request_token(resource, identity, **kw)`` through ``around(original, resource, identity, **kw)``.

    Every token fetch of a connection built on ``client`` (the cache's refreshes included) goes this way.

    Example::

        >>> from mi_notebook.sources.imds import ImdsClient
        >>> client, asked = ImdsClient(url="http://127.0.0.1:9"), []
        >>> intercept_token_requests(client, lambda original, resource, identity=None: asked.append(resource))
        >>> client.request_token("arm"); asked
        ['arm']
    """
    original = client.request_token

    def intercepted(resource: Any, identity: Any = None, **kw: Any) -> Any:
        return around(original, resource, identity, **kw)

    client.request_token = intercepted


def record_issued_tokens(emu: Any, sink: set[str]) -> Callable[[], None]:
    """Add every access token ``emu``'s issuer hands out from now on to ``sink``.

    Returns ``issued()``, which also adds the tokens the issuer holds in its own cache.

    Example::

        >>> import requests
        >>> from mi_notebook.emulator import Emulator
        >>> tokens: set[str] = set()
        >>> with Emulator(throttle=False) as emu:
        ...     issued = record_issued_tokens(emu, tokens)
        ...     raw = requests.get(emu.token_url, headers={"Metadata": "true"}, timeout=5,
        ...                        params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
        ...                        ).json()["access_token"]
        ...     issued()
        >>> tokens == {raw}
        True
    """
    issue = emu.issuer.get

    def recording_get(*args: Any, **kw: Any) -> Any:
        token = issue(*args, **kw)
        sink.add(token.access_token)
        return token

    emu.issuer.get = recording_get

    def issued() -> None:
        sink.update(t.access_token for t in emu.issuer.cached())

    return issued
