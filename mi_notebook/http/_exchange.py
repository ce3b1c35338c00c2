"""One exchange: :func:`exchange` sends a :class:`~mi_notebook.http.Request` once and says what happened.

Example::

    >>> from mi_notebook.http._models import Request
    >>> from mi_notebook.http._transports import MockTransport
    >>> exchange(Request("GET", "http://127.0.0.1:1/x"), transport=MockTransport(lambda r: (204, {}, b""))).kind
    'empty'
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..clock import SYSTEM_CLOCK, Clock
from ..retry import AttemptOutcome
from ._models import (
    Answer,
    ConnectTimeout,
    ReadTimeout,
    Request,
    TlsFailure,
    Transport,
    Truncated,
    _Headers,
    parse_retry_after,
    proxy_variables,
)
from ._transports import default_transport

__all__ = ["AnswerFacts", "exchange", "wire_outcome"]

logger = logging.getLogger(__name__)


_proxy_warned = threading.Event()


def exchange(request: Request, *, transport: Transport | None = None, clock: Clock = SYSTEM_CLOCK) -> Answer:
    """Send ``request`` once and say what happened (never raises for network or server behaviour).

    ``transport``: the real wire by default (:func:`default_transport`), or a :class:`MockTransport`.
    ``clock``: its ``wall()`` turns an HTTP-date ``Retry-After`` into seconds, ``monotonic()`` times it.

    Example::

        >>> from mi_notebook.http._transports import MockTransport
        >>> exchange(Request("GET", "http://127.0.0.1:9/"), transport=MockTransport(
        ...     lambda r: (302, {"Location": "http://elsewhere/"}, b""))).kind
        'redirect'
    """
    if not request.proxies and proxy_variables() and not _proxy_warned.is_set():
        _proxy_warned.set()
        logger.warning("%s set: ignored for %s (managed-identity endpoints are never reached through a proxy; "
                       "requests to other hosts are not affected).", ", ".join(sorted(proxy_variables())),
                       urlsplit(request.url).netloc)
    if transport is None:
        transport = default_transport()
    started = clock.monotonic()
    try:
        status, headers, body = transport(request)
    except Truncated as cut:
        kind = "timeout" if cut.timed_out else "truncated"
        return Answer(kind, cut.status, cut.headers, cut.body, _retry_after(cut.headers, clock), cut.cause,
                      clock.monotonic() - started)
    except ConnectTimeout as exc:
        return Answer("connect-timeout", exception=_original(exc), elapsed=clock.monotonic() - started)
    except TlsFailure as exc:
        return Answer("tls", exception=_original(exc), elapsed=clock.monotonic() - started)
    except TimeoutError as exc:
        return Answer("timeout", exception=_original(exc), elapsed=clock.monotonic() - started)
    except (ConnectionError, OSError) as exc:
        return Answer("unreachable", exception=exc, elapsed=clock.monotonic() - started)
    except Exception as exc:  # requests' own exceptions (RequestException is an IOError, but be sure)
        if type(exc).__module__.startswith(("requests", "urllib3")):
            return Answer("unreachable", exception=exc, elapsed=clock.monotonic() - started)
        raise
    elapsed = clock.monotonic() - started
    kind = "redirect" if 300 <= status < 400 else _body_kind(body, _Headers(headers).get("Content-Type"))
    return Answer(kind, status, headers, body, _retry_after(headers, clock), None, elapsed)


@dataclass(frozen=True)
class AnswerFacts:
    """What every outcome built from one answer carries: its status, request id and ``Retry-After``.

    :meth:`outcome` builds the :class:`~mi_notebook.retry.AttemptOutcome` a protocol decides on,
    with these facts filled in (no dictionary to splat, so type checkers see every field).

    Example::

        >>> facts = AnswerFacts(status=503, request_id="r-1", retry_after=2.0)
        >>> facts.outcome(error="busy").retry_after, facts.outcome(error="busy").status
        (2.0, 503)
    """

    status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None

    def outcome(
        self,
        *,
        value: Any = None,
        error: str | None = None,
        error_description: str | None = None,
        exception: BaseException | None = None,
        retryable: bool | None = None,
    ) -> AttemptOutcome:
        """The outcome with these facts and what the protocol decided."""
        return AttemptOutcome(status=self.status, error=error, error_description=error_description,
                              request_id=self.request_id, retry_after=self.retry_after, exception=exception,
                              value=value, retryable=retryable)


def wire_outcome(answer: Answer, client_request_id: str | None = None) -> tuple[AttemptOutcome | None, AnswerFacts]:
    """What every protocol agrees on about one answer: ``(outcome, facts)``.

    ``outcome`` is set when the wire decided: nothing answered (retried, except a TLS failure,
    which retrying cannot fix), or the body was cut short or timed out after the status (retried
    like a dropped connection, keeping the status: something did answer). Otherwise it is ``None``
    and the protocol judges the body; ``facts`` (status, request id, Retry-After) build whatever
    outcome it decides on (:meth:`AnswerFacts.outcome`). ``client_request_id`` is the id the request
    carried, used when the answer names none.

    Example::

        >>> outcome, _ = wire_outcome(Answer("tls", exception=ConnectionError("bad cert")), "c-1")
        >>> outcome.retryable, outcome.request_id
        (False, 'c-1')
        >>> wire_outcome(Answer("json", 429, {}, b"{}", retry_after=3.0), "c-1")
        (None, AnswerFacts(status=429, request_id='c-1', retry_after=3.0))
    """
    if not answer.answered:
        return AttemptOutcome(exception=answer.exception, request_id=answer.request_id or client_request_id,
                              retryable=False if answer.kind == "tls" else None), AnswerFacts()
    facts = AnswerFacts(answer.status, answer.request_id or client_request_id, answer.retry_after)
    if answer.kind in ("truncated", "timeout"):
        return facts.outcome(exception=answer.exception, retryable=True), facts
    return None, facts


# --- helpers -------------------------------------------------------------------------------------
def _original(exc: BaseException) -> BaseException:
    """The library's own exception behind one the real transport translated (requests' ReadTimeout...)."""
    if isinstance(exc, (ConnectTimeout, ReadTimeout, TlsFailure)) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _retry_after(headers: Mapping[str, str], clock: Clock) -> float | None:
    return parse_retry_after(_Headers(headers).get("Retry-After"), clock.wall())


def _body_kind(body: bytes, content_type: str | None) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return "empty"
    head = text[:200].lower()
    if "html" in (content_type or "").lower() or head.startswith(("<!doctype", "<html", "<?xml")) or "<html" in head:
        return "html"
    if text[0] in "{[":
        try:
            return "json" if isinstance(json.loads(text), dict) else "text"  # an array is no answer here
        except ValueError:
            return "invalid-json"
    return "text"


