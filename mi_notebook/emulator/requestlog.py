"""A thread-safe log of what the emulator received and what it answered.

Secrets never enter the log: an ``Authorization`` header is kept as its scheme plus a short SHA-256
fingerprint, and response bodies (which hold tokens) are not recorded at all.

Example::

    >>> log = RequestLog()
    >>> _ = log.add(RequestRecord(time=0.0, service="imds", endpoint="token", method="GET",
    ...                           path="/metadata/identity/oauth2/token", query={}, headers={},
    ...                           status=400, error="invalid_request"))
    >>> len(log), log[-1].status
    (1, 400)
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RequestLog", "RequestRecord", "redact_headers"]

_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-identity-header", "secret"}


def redact_headers(headers: Mapping[str, str] | list[tuple[str, str]]) -> dict[str, str]:
    """Copy request headers, replacing credentials by ``<scheme> sha256:<8 hex>`` (never the token).

    Repeated headers are joined with ``", "``.

    Example::

        >>> redact_headers({"Authorization": "Bearer abc.def.ghi"})["Authorization"]
        'Bearer sha256:6559e90b'
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        if name.lower() in _SECRET_HEADERS:
            scheme, _, secret = value.partition(" ")
            if not secret:
                scheme, secret = "", value
            digest = hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()[:8]
            value = f"{scheme} sha256:{digest}".strip()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


@dataclass(frozen=True)
class RequestRecord:
    """One request as received, and the answer (``status`` None: no answer, e.g. a dropped connection).

    ``service`` is ``"imds"`` (``"arm"`` for the ARM side; the profile's name, such as ``"azureml"``,
    for the other hosts' token endpoints); ``endpoint`` is ``"token"``,
    ``"instance"``, ``"versions"``, ``"identity-info"``, ``"other"``...; ``fault`` names an injected fault
    that shaped the answer; ``time`` is the emulator clock's epoch seconds at arrival.

    Example::

        >>> rec = RequestRecord(time=0.0, service="arm", endpoint="subscriptions", method="GET",
        ...                     path="/subscriptions", query={"api-version": ["2022-12-01"]},
        ...                     headers=redact_headers({"Authorization": "Bearer abc.def.ghi"}), status=200)
        >>> rec.to_dict()["headers"], rec.fault
        ({'Authorization': 'Bearer sha256:6559e90b'}, None)
    """

    time: float
    service: str
    endpoint: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int | None
    error: str | None = None
    error_description: str | None = None
    fault: str | None = None
    client: str = ""
    duration: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """A bounded, thread-safe sequence of :class:`RequestRecord` (oldest dropped beyond ``maxlen``).

    Example::

        >>> log = RequestLog(maxlen=2)
        >>> for s in (200, 400, 429):
        ...     _ = log.add(RequestRecord(0.0, "imds", "token", "GET", "/", {}, {}, s))
        >>> [r.status for r in log]
        [400, 429]
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, record: RequestRecord) -> RequestRecord:
        with self._lock:
            self._records.append(record)
        return record

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def filter(self, *, service: str | None = None, endpoint: str | None = None,
               status: int | None = None) -> list[RequestRecord]:
        """Records matching every given field."""
        return [r for r in self.snapshot()
                if (service is None or r.service == service)
                and (endpoint is None or r.endpoint == endpoint)
                and (status is None or r.status == status)]

    @property
    def last(self) -> RequestRecord | None:
        with self._lock:
            return self._records[-1] if self._records else None

    def statuses(self, endpoint: str | None = None) -> list[int | None]:
        return [r.status for r in self.filter(endpoint=endpoint)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __getitem__(self, index: int) -> RequestRecord:
        with self._lock:
            return self._records[index]

    def __repr__(self) -> str:
        return f"<RequestLog {len(self)} requests>"
