"""Injected faults: what the next N requests to an endpoint get instead of a normal answer.

A fault is an HTTP status (404, 410, 429, 500, 502, 503, 504) or a misbehaviour: ``"hang"`` (hold the
connection, answer nothing, then close), ``"drop"`` (close without an answer), ``"truncated"`` (cut
the JSON body short), ``"html"`` (an HTML page, as a misconfigured proxy sends) and ``"bad-expires"``
(a 200 token body whose ``expires_on`` is missing or not a number).

Endpoints: ``"token"`` (the identity endpoint), ``"instance"`` (every other IMDS path), ``"arm"``
(the ARM side), ``"openai"`` (the Azure OpenAI data plane), ``"any"`` (all of them). Faults are taken in the order they were injected.

Example::

    >>> q = FaultQueue()
    >>> _ = q.add(Fault.create(503, endpoint="token", count=2))
    >>> [getattr(q.take("token"), "kind", None) for _ in range(3)]
    [503, 503, None]
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["ENDPOINTS", "FAULT_KINDS", "Fault", "FaultQueue", "proxy_html"]

STATUS_FAULTS = (404, 410, 429, 500, 502, 503, 504)
BEHAVIOUR_FAULTS = ("hang", "drop", "truncated", "html", "bad-expires")
FAULT_KINDS: tuple[int | str, ...] = (*STATUS_FAULTS, *BEHAVIOUR_FAULTS)
ENDPOINTS = ("token", "instance", "arm", "openai", "any")
MAX_HANG_SECONDS = 300.0

_ids = itertools.count(1)


@dataclass(frozen=True)
class Fault:
    """One injected fault. ``count`` None means "until cleared".

    Options: ``retry_after`` (seconds, a ``Retry-After`` header for 429/503), ``seconds`` (how long a
    hang holds the connection, bounded by 300 s and by the emulator's shutdown), ``status`` (for
    ``"html"``: 200 or 502), ``variant`` (``"bad-expires"``: ``"missing"`` or ``"string"``;
    ``"truncated"``: ``"short"`` (honest Content-Length) or ``"incomplete"`` (advertises the full
    length, sends half, closes)).

    Example::

        >>> Fault.create("html", status=502).status
        502
        >>> Fault.create(418)
        Traceback (most recent call last):
        ValueError: unknown fault 418; choose one of 404, 410, 429, 500, 502, 503, 504, hang, drop, truncated, html, bad-expires
    """

    kind: int | str
    endpoint: str = "any"
    count: int | None = 1
    retry_after: float | None = None
    seconds: float = 10.0
    status: int | None = None
    variant: str | None = None
    id: int = 0

    @classmethod
    def create(cls, fault: int | str, *, endpoint: str = "any", count: int | None = 1,
               retry_after: float | None = None, seconds: float | None = None, status: int | None = None,
               variant: str | None = None) -> Fault:
        """Validate the options and build a fault (``ValueError`` naming the bad option)."""
        kind: int | str = fault
        if isinstance(kind, str) and kind.strip().isdigit():
            kind = int(kind)
        if isinstance(kind, str):
            kind = kind.strip().lower()
        if isinstance(kind, bool) or kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; choose one of "
                             + ", ".join(str(k) for k in FAULT_KINDS))
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; choose one of {', '.join(ENDPOINTS)}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count must be a positive integer or None (until cleared), got {count!r}")
        if retry_after is not None:
            if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or retry_after < 0:
                raise ValueError(f"retry_after must be a number of seconds >= 0, got {retry_after!r}")
            if kind not in (429, 503):
                raise ValueError("retry_after only goes with a 429 or 503 fault")
        if seconds is None:
            seconds = 10.0
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_HANG_SECONDS:
            raise ValueError(f"seconds must be between 0 and {MAX_HANG_SECONDS:g}, got {seconds!r}")
        if status is not None and not (kind == "html" and status in (200, 502)):
            raise ValueError("status only goes with the 'html' fault, and must be 200 or 502")
        allowed_variants = {"bad-expires": ("missing", "string"), "truncated": ("short", "incomplete")}
        if variant is not None and variant not in allowed_variants.get(str(kind), ()):
            raise ValueError(f"variant {variant!r} does not go with fault {kind!r} "
                             f"(allowed: {allowed_variants.get(str(kind), ())})")
        if kind == "bad-expires" and endpoint not in ("token", "any"):
            raise ValueError("bad-expires only applies to the token endpoint")
        if kind == "html" and status is None:
            status = 200
        if kind == "bad-expires" and variant is None:
            variant = "missing"
        if kind == "truncated" and variant is None:
            variant = "short"
        return cls(kind, endpoint, count, None if retry_after is None else float(retry_after),
                   float(seconds), status, variant, next(_ids))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """From a config file / admin request: ``{"fault": 503, "endpoint": "token", "count": 2, ...}``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault is a JSON object, got {type(data).__name__}")
        data = {k.replace("-", "_"): v for k, v in data.items()}
        if "fault" not in data:
            raise ValueError("a fault needs a 'fault' key (e.g. 503, 'hang', 'drop')")
        unknown = set(data) - {"fault", "endpoint", "count", "retry_after", "seconds", "status", "variant"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        return cls.create(data.pop("fault"), **data)

    def applies_to(self, endpoint: str) -> bool:
        if self.endpoint == "any":
            return True
        return self.endpoint == endpoint

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["fault"] = out.pop("kind")
        return out

    @property
    def label(self) -> str:
        return str(self.kind)


class FaultQueue:
    """Pending faults, consumed first-in first-out by the requests they apply to (thread-safe).

    Example::

        >>> q = FaultQueue()
        >>> _ = q.add(Fault.create(429, endpoint="token", count=None))  # until cleared
        >>> q.take("instance") is None, q.take("token").kind, q.take("token").kind
        (True, 429, 429)
        >>> q.clear(), len(q)
        (1, 0)
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, endpoint: str) -> Fault | None:
        """The first pending fault for ``endpoint`` (one use of it is consumed), or None."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.applies_to(endpoint):
                    if fault.count is not None:
                        if fault.count <= 1:
                            del self._faults[i]
                        else:
                            self._faults[i] = replace(fault, count=fault.count - 1)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> int:
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
        return n

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)


def proxy_html(status: int) -> bytes:
    """The kind of page a corporate proxy or captive portal answers with instead of IMDS.

    Example::

        >>> proxy_html(502).decode().splitlines()[:2]
        ['<!DOCTYPE html>', '<html><head><title>502 Bad Gateway</title></head>']
    """
    title = "502 Bad Gateway" if status == 502 else "Network access message"
    text = ("The proxy server received an invalid response from an upstream server."
            if status == 502 else "The page you are trying to reach requires authentication with the proxy.")
    return (f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
            f"<body><h1>{title}</h1><p>{text}</p><hr><address>squid/5.7</address></body></html>\n").encode()
