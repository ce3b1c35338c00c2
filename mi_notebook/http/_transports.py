"""The wires under :func:`mi_notebook.http.exchange`: the real one (one ``requests.Session``, our rules
on it) and :class:`MockTransport`, a function in its place for tests.

:class:`RequestsTransport` sends a :class:`~mi_notebook.http.Request` and reports what the network
did in the terms ``exchange`` understands (:class:`~mi_notebook.http.ConnectTimeout`,
:class:`~mi_notebook.http.ReadTimeout`, :class:`~mi_notebook.http.TlsFailure`,
:class:`~mi_notebook.http.Truncated`); :func:`proxies_for` is its proxy decision. Everything here is
importable from :mod:`mi_notebook.http` too, which is where callers should import it from.

Example::

    >>> transport = RequestsTransport()
    >>> transport.session.trust_env, default_transport() is default_transport()
    (False, True)
    >>> transport.close()
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

from ._models import (
    MAX_BODY,
    ConnectTimeout,
    ReadTimeout,
    Request,
    TlsFailure,
    Transport,
    Truncated,
    is_loopback_host,
)

__all__ = ["MockTransport", "RequestsTransport", "choose_transport", "default_transport", "proxies_for"]


class MockTransport:
    """A transport that calls ``handler(request)`` instead of the network: the tests' seam.

    The handler returns ``(status, headers, body)`` (``body`` bytes or str, or a dict sent as JSON),
    or an exception instance to raise as the wire would. ``requests`` records what was sent.

    Example::

        >>> from mi_notebook.http._exchange import exchange
        >>> mock = MockTransport(lambda r: (200, {}, {"ok": True}))
        >>> exchange(Request("GET", "http://127.0.0.1:1/"), transport=mock).document, len(mock.requests)
        ({'ok': True}, 1)
    """

    def __init__(self, handler: Callable[[Request], Any]) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> tuple[int, Mapping[str, str], bytes]:
        self.requests.append(request)
        result = self.handler(request)
        if isinstance(result, BaseException):
            raise result
        status, headers, body = result
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            body = body.encode()
        return int(status), headers, bytes(body or b"")


def proxies_for(request: Request) -> dict[str, Any]:
    """The proxies the real transport uses for ``request``: the environment's (``HTTP(S)_PROXY``,
    ``NO_PROXY``) when it asks for them and the host is not loopback, else every key nulled.

    Example::

        >>> set(proxies_for(Request("GET", "http://127.0.0.1:1/", proxies=True)).values())
        {None}
    """
    host = urlsplit(request.url).hostname or ""
    if request.proxies and not is_loopback_host(host):
        import requests

        return dict(requests.utils.get_environ_proxies(request.url))
    return _no_proxies(request.url)


class RequestsTransport:
    """The real wire, through one ``requests.Session`` (connection pooling; thread-safe for sends).

    The session never reads the environment (``trust_env`` off: no proxies, ``.netrc`` or CA bundle
    behind our back) and keeps no cookies (it is shared by IMDS, ARM, key servers and the probe);
    each request's proxies are set explicitly from ``Request.proxies``. A caller's own ``session``
    may be given: the same rules are applied per request.

    Example::

        >>> transport = RequestsTransport()          # sends nothing until called
        >>> transport.session.trust_env, transport.session.proxies
        (False, {})
        >>> transport.close()
    """

    def __init__(self, session: Any = None) -> None:
        import requests

        self._own = session is None
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.proxies.clear()
            session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.session = session

    def close(self) -> None:
        """Close the session if this transport created it (a caller's session is theirs)."""
        if self._own:
            self.session.close()

    def __call__(self, request: Request) -> tuple[int, Mapping[str, str], bytes]:
        import requests
        from requests.exceptions import ChunkedEncodingError
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        try:
            response = self.session.request(
                request.method, request.url, params=list(request.params), headers=dict(request.headers),
                data=dict(request.data) if request.data is not None else None, timeout=request.timeout,
                allow_redirects=False, proxies=proxies_for(request), verify=request.verify, stream=True,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise ConnectTimeout(str(exc)) from exc
        except requests.exceptions.SSLError as exc:
            raise TlsFailure(str(exc)) from exc
        except requests.exceptions.Timeout as exc:
            raise ReadTimeout(str(exc)) from exc
        with response:
            status, headers = response.status_code, dict(response.headers)
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(chunk_size=16384):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= MAX_BODY:
                        break
            except (ChunkedEncodingError, ProtocolError, requests.ConnectionError, ReadTimeoutError) as exc:
                raise Truncated(status, headers, b"".join(chunks), exc, timed_out=_is_read_timeout(exc)) from exc
        return status, headers, b"".join(chunks)


def choose_transport(transport: Transport | None = None, session: Any = None) -> Transport | None:
    """What a client sends through: ``transport`` as given, a caller's ``requests.Session`` wrapped in
    :class:`RequestsTransport` (the same rules apply on it), or ``None`` for :func:`default_transport`.

    Example::

        >>> choose_transport() is None, isinstance(choose_transport(session=__import__("requests").Session()),
        ...                                        RequestsTransport)
        (True, True)
    """
    if transport is not None and session is not None:
        raise ValueError("give transport= or session=, not both")
    if transport is not None and not callable(transport):
        raise ValueError(f"transport must be callable (e.g. mi_notebook.http.MockTransport); got {transport!r}")
    if session is not None:
        if not callable(getattr(session, "request", None)):
            raise ValueError(f"session must be a requests.Session; got {session!r}")
        return RequestsTransport(session)
    return transport


_DEFAULT_TRANSPORT: RequestsTransport | None = None
_DEFAULT_LOCK = threading.Lock()


def default_transport() -> RequestsTransport:
    """The process-wide real transport (created on first use).

    Example::

        >>> default_transport() is default_transport()
        True
    """
    global _DEFAULT_TRANSPORT
    if _DEFAULT_TRANSPORT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT_TRANSPORT is None:
                _DEFAULT_TRANSPORT = RequestsTransport()
    return _DEFAULT_TRANSPORT


# --- helpers -------------------------------------------------------------------------------------
def _no_proxies(url: str) -> dict[str, None]:
    """Proxy keys nulled for this request: requests drops None entries after merging the session's
    and the environment's proxies, so none of them can apply."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return {
        key: None
        for key in (parts.scheme, "all", f"{parts.scheme}://{host}", f"all://{host}", "http", "https")
    }


def _is_read_timeout(exc: BaseException) -> bool:
    from requests.exceptions import Timeout as RequestsTimeout
    from urllib3.exceptions import ReadTimeoutError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (ReadTimeoutError, RequestsTimeout, TimeoutError)):
            return True
        if any(isinstance(arg, (ReadTimeoutError, TimeoutError)) for arg in getattr(cur, "args", ())):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
