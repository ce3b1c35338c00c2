"""Is Azure IMDS at this address? One bounded probe, and the pure classification of its answer.

The probe sends a token request *without* ``Metadata: true``, which IMDS refuses with a 400 before
touching any identity: nothing is issued, nothing is throttled. Only an answer that is recognisably
Azure IMDS counts (a ``Server: IMDS/...`` header, or the documented 400 for a request without the
``Metadata`` header); AWS's and Google's metadata services, a 404 page, or nothing at all mean "not
IMDS". A bug in this code is raised, never read as "not Azure".

Example::

    >>> probe_imds("http://127.0.0.1:9", timeout=0.3).is_imds   # port 9: nothing listens
    False
    >>> classify_probe_answer(400, {"Server": "IMDS/150.870.65.1684"}, b"{}").is_imds
    True
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from .http import USER_AGENT, Request, Transport, describe_failure, exchange
from .sources.imds import IMDS_URL, TOKEN_PATH

__all__ = ["DEFAULT_PROBE_TIMEOUT", "ProbeResult", "classify_probe_answer", "probe_imds"]

DEFAULT_PROBE_TIMEOUT = 0.8


@dataclass(frozen=True)
class ProbeResult:
    """What answered at the probe address, and whether it is Azure IMDS.

    Example::

        >>> ProbeResult(False, "nothing answered within 0.8 s", elapsed=0.8).is_imds
        False
    """

    is_imds: bool
    detail: str
    status: int | None = None
    server: str | None = None
    elapsed: float = 0.0


def probe_imds(probe_url: str = IMDS_URL, *, timeout: float = DEFAULT_PROBE_TIMEOUT,
               transport: Transport | None = None) -> ProbeResult:
    """Ask ``probe_url`` whether it is Azure IMDS, within ``timeout`` seconds in all (hard bound).

    The request runs in a daemon thread joined with the deadline, so even a server that trickles
    bytes cannot hold the caller longer than ``timeout`` (plus thread start-up). Only a network
    failure (nothing listening, no answer in time) or a foreign answer means "not IMDS"; an
    exception from the probe's own code is a bug and is raised here, never read as "not Azure".
    ``transport``: the real wire by default (a :class:`~mi_notebook.http.MockTransport` in tests).

    Example::

        >>> probe_imds("http://127.0.0.1:9", timeout=0.3).is_imds   # port 9: nothing listens
        False
        >>> from mi_notebook.http import MockTransport
        >>> probe_imds("http://127.0.0.1:9", transport=MockTransport(
        ...     lambda request: (400, {"Server": "IMDS/150.870.65.1684"}, {}))).detail
        'Azure IMDS answered (Server: IMDS/150.870.65.1684)'
    """

    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 3600:
        raise ValueError(f"probe timeout must be a positive number of seconds, got {timeout!r}")
    request = Request("GET", probe_url.rstrip("/") + TOKEN_PATH,  # ValueError for a bad URL, before any thread
                      params=[("api-version", "2018-02-01"), ("resource", "https://management.azure.com/")],
                      headers={"User-Agent": f"{USER_AGENT}-probe"}, timeout=(timeout, timeout), proxies=False)
    started = time.monotonic()
    results: list[ProbeResult] = []
    bugs: list[Exception] = []

    def run() -> None:
        try:
            results.append(_probe_once(request, transport))
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, never swallowed
            bugs.append(exc)

    thread = threading.Thread(target=run, name="mi-notebook-imds-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    elapsed = time.monotonic() - started
    if bugs:  # a bug in the probe (or a transport's), not a network failure: never "not Azure"
        note = getattr(bugs[0], "add_note", None)  # Python 3.11+
        if note is not None:
            note(f"raised inside mi-notebook's IMDS probe of {probe_url}: a bug, not an answer from the network")
        raise bugs[0]
    if not results:
        return ProbeResult(False, f"nothing answered within {timeout:g} s", elapsed=elapsed)
    result = results[0]
    return ProbeResult(result.is_imds, result.detail, result.status, result.server, elapsed)


def _probe_once(request: Request, transport: Transport | None = None) -> ProbeResult:
    """One probe exchange: a network failure is "not IMDS", an answer is classified."""
    answer = exchange(request, transport=transport)
    if answer.answered:
        return classify_probe_answer(answer.status, answer.headers, answer.body[:4096])  # type: ignore[arg-type]
    if answer.kind in ("timeout", "connect-timeout"):
        return ProbeResult(False, f"nothing answered within {request.timeout[1]:g} s")
    if "refused" in describe_failure(answer):
        return ProbeResult(False, "the connection was refused (nothing listens there)")
    return ProbeResult(False, f"no HTTP answer ({describe_failure(answer)})")


def classify_probe_answer(status: int, headers: Any, body: bytes) -> ProbeResult:
    """Decide from one answer whether Azure IMDS is speaking (pure; the probe's logic).

    Example::

        >>> classify_probe_answer(400, {"Server": "IMDS/150.870.65.1684"}, b"{}").is_imds
        True
        >>> classify_probe_answer(404, {"Server": "EC2ws"}, b"<html>Not Found</html>").detail
        'an AWS-like metadata service answered (Server: EC2ws), not Azure IMDS'
    """
    server = headers.get("Server") or ""
    if headers.get("Metadata-Flavor"):
        return ProbeResult(
            False, "a Google Cloud-like metadata service answered (Metadata-Flavor header), not Azure IMDS",
            status, server,
        )
    if server.lower().startswith(("ec2ws", "amazon")):
        return ProbeResult(False, f"an AWS-like metadata service answered (Server: {server}), not Azure IMDS",
                           status, server)
    if server.upper().startswith("IMDS/"):
        return ProbeResult(True, f"Azure IMDS answered (Server: {server})", status, server)
    document: Any = None
    try:
        document = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        document = None
    if status == 400 and isinstance(document, dict):
        said = f"{document.get('error', '')} {document.get('error_description', '')}".lower()
        if "metadata" in said and "header" in said:
            return ProbeResult(True, "Azure IMDS answered (the documented 400 for a request without the "
                                     "Metadata header)", status, server)
    kind = "an HTML page" if body.lstrip()[:1] == b"<" else ("a JSON body" if document is not None else "a body")
    who = f" (Server: {server})" if server else ""
    return ProbeResult(False, f"something answered HTTP {status} with {kind}{who}, which is not Azure IMDS",
                       status, server)
