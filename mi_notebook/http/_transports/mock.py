""":class:`MockTransport`: a function in the wire's place, the tests' seam (in the spirit of httpx's).

Example::

    >>> from mi_notebook.http import Request, exchange
    >>> exchange(Request("GET", "http://127.0.0.1:1/"), transport=MockTransport(lambda r: (204, {}, b""))).kind
    'empty'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .._models import Request

__all__ = ["MockTransport"]


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
