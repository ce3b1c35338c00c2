"""The requests-based wire: HTTPS and proxied requests (ARM, Entra ID's keys, Key Vault), and every
request sent through a caller's own ``requests.Session``.

``requests`` is imported when a :class:`RequestsTransport` is built, never when this module is: a
plain-HTTP request to IMDS, a host's local endpoint or loopback goes through
:class:`~mi_notebook.http.StdlibTransport` and never loads it. :class:`RequestsTransport` reports
what the network did in the terms ``exchange`` understands (:class:`~mi_notebook.http.ConnectTimeout`,
:class:`~mi_notebook.http.ReadTimeout`, :class:`~mi_notebook.http.TlsFailure`,
:class:`~mi_notebook.http.Truncated`); :func:`proxies_for` is its proxy decision. Import both from
:mod:`mi_notebook.http`.

Example::

    >>> transport = RequestsTransport()
    >>> transport.session.trust_env, transport.session.proxies
    (False, {})
    >>> transport.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._models import (
    MAX_BODY,
    ConnectTimeout,
    ReadTimeout,
    Request,
    TlsFailure,
    Truncated,
    _Headers,
    is_loopback_host,
)

__all__ = ["RequestsTransport", "proxies_for"]


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
    """The wire through one ``requests.Session`` (connection pooling; thread-safe for sends).

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
        from http.cookiejar import DefaultCookiePolicy

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
            status, headers = response.status_code, _Headers(response.headers)
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
