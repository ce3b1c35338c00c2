"""Every reach of the reliability scenarios into mi_notebook's internals, one function each.

The scenarios call mi_notebook's public names directly. Where they need something that is not public
(a module shadowed by the function of the same name, a client's private state, the emulator's
issuer), they go through this module, so a change of those internals is met here and only here:

- :data:`VirtualClock`: the tests' clock (``mi_notebook.retry.VirtualClock``), re-exported;
- :func:`connect_current` / :func:`disconnect_current`: ``mi.connect`` and ``disconnect`` of the module
  ``mi_notebook.connect`` (reached with ``importlib``: the package attribute is the function);
- :func:`forget_connection`: no current connection and an empty process-wide token cache;
- :func:`explicit_connection`: a ``Connection`` of kind ``"explicit"`` around a client built here;
- :func:`locate_arm`: tell a connection where ARM is (an attribute ``Connection`` does not declare);
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
import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from mi_notebook.retry import VirtualClock

__all__ = ["VirtualClock", "client_timeout", "connect_current", "disconnect_current", "explicit_connection",
           "forget_connection", "intercept_token_requests", "locate_arm", "record_issued_tokens", "use_virtual_time"]


def _connect_module() -> ModuleType:
    return importlib.import_module("mi_notebook.connect")


def connect_current(imds_url: str, **options: Any) -> Any:
    """``connect(imds_url, **options)``: make a connection to ``imds_url`` the current one, return it.

    Example::

        >>> conn = connect_current("http://127.0.0.1:9")  # explicit: nothing is sent
        >>> conn.kind, conn.endpoint
        ('explicit', 'http://127.0.0.1:9')
        >>> disconnect_current()
    """
    return _connect_module().connect(imds_url, **options)


def disconnect_current() -> None:
    """Close the current connection (stopping an emulator it started); the token cache is kept.

    Example::

        >>> disconnect_current(); disconnect_current()  # nothing to close: no error
    """
    _connect_module().disconnect()


def forget_connection() -> None:
    """No current connection and an empty process-wide token cache.

    Example::

        >>> from mi_notebook.tokens import default_cache
        >>> _ = connect_current("http://127.0.0.1:9")
        >>> forget_connection()
        >>> default_cache().entries()
        []
    """
    from mi_notebook.tokens import default_cache

    disconnect_current()
    default_cache().clear()


def explicit_connection(imds_url: str, client: Any, reason: str, *, arm_url: str | None = None) -> Any:
    """A ``Connection`` to ``imds_url`` through ``client`` (not made current), and where ARM is.

    Example::

        >>> from mi_notebook.imds import ImdsClient
        >>> conn = explicit_connection("http://127.0.0.1:9", ImdsClient(url="http://127.0.0.1:9"), "a test")
        >>> conn.kind, str(conn)
        ('explicit', 'a test')
    """
    from mi_notebook.connect import Connection

    conn = Connection(imds_url, "explicit", client, reason=reason)
    if arm_url is not None:
        locate_arm(conn, arm_url)
    return conn


def locate_arm(conn: Any, arm_url: str) -> None:
    """Record on ``conn`` the ARM endpoint that goes with it (the emulator's, in the scenarios).

    Example::

        >>> from types import SimpleNamespace
        >>> conn = SimpleNamespace()
        >>> locate_arm(conn, "https://127.0.0.1:8443"); conn.arm_url
        'https://127.0.0.1:8443'
    """
    conn.arm_url = arm_url


def use_virtual_time(client: Any, clock: VirtualClock) -> None:
    """Make a live ``ImdsClient`` (e.g. the one ``connect`` built) wait and tell time on ``clock``.

    Example::

        >>> from mi_notebook.imds import ImdsClient
        >>> client, clock = ImdsClient(url="http://127.0.0.1:9"), VirtualClock()
        >>> use_virtual_time(client, clock)
        >>> client.sleep(3); clock()
        3.0
    """
    client.sleep, client.clock = clock.sleep, clock


@contextlib.contextmanager
def client_timeout(client: Any, timeout: tuple[float, float]) -> Iterator[None]:
    """Give a live ``ImdsClient`` the ``(connect, read)`` time-outs ``timeout`` for the block.

    Example::

        >>> from mi_notebook.imds import ImdsClient
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

        >>> from mi_notebook.imds import ImdsClient
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
