"""Where the widgets' slow work runs: a worker thread by default, inline in tests.

A notebook kernel handles one message at a time: while a button's callback runs, the page cannot
deliver the next click, and IMDS retries can take a minute. So a widget hands its slow work (token
requests, ARM listings, charts) to an executor and returns at once; the work then updates the
widgets from the worker thread (ipykernel sends those updates straight away).

Anything with ``submit(fn, *args, **kwargs)`` in the style of :class:`concurrent.futures.Executor`
will do. :class:`SyncExecutor` runs the call on the spot, so unit tests see the effects right after
``click()`` or the handler call returns.

Example::

    >>> ex = SyncExecutor()
    >>> ex.submit(sum, [1, 2, 3]).result()
    6
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

__all__ = ["Executor", "SyncExecutor", "default_executor"]

_lock = threading.Lock()
_shared: ThreadPoolExecutor | None = None


class SyncExecutor(Executor):
    """Runs each submitted call immediately in the caller's thread; the future is already done.

    An exception raised by the call is stored in the future (as a thread pool would), not raised.

    Example::

        >>> SyncExecutor().submit(int, "x").exception().__class__.__name__
        'ValueError'
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - a thread pool stores every exception too
            future.set_exception(exc)
        return future


def default_executor() -> Executor:
    """The process-wide worker pool the widgets share (created on first use; daemon threads).

    Example::

        >>> default_executor() is default_executor()
        True
    """
    global _shared
    with _lock:
        if _shared is None:
            _shared = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mi-notebook-widget")
        return _shared
