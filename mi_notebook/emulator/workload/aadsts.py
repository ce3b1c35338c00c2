"""Entra ID's error answers on its token endpoint, as the public captures lay them out.

A body holds ``error``, ``error_description`` (the ``AADSTS<code>: ...`` sentence, then ``Trace ID``,
``Correlation ID`` and ``Timestamp``), ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``
and, for some codes, ``error_uri``. The captures up to 2022 put each of the three on a line of its own
(``\\r\\n`` between); those since 2024 run them on with a space (``one_line=True``). The sentences are
the captured ones where a public thread quotes them (docs/emulator.md, "Workload identity", says
which); :data:`ERRORS` holds each code's HTTP status and ``error``.

Example::

    >>> status, body = entra_error(70021, "No matching federated identity record found for presented "
    ...                            "assertion.", now=1_700_000_000, authority_host="login.microsoftonline.com")
    >>> status, body["error"], body["error_codes"], body["error_uri"]
    (400, 'invalid_request', [70021], 'https://login.microsoftonline.com/error?code=70021')
    >>> body["error_description"].split("\\r\\n")[0]
    'AADSTS70021: No matching federated identity record found for presented assertion.'
    >>> [line.split(":")[0] for line in body["error_description"].split("\\r\\n")[1:]]
    ['Trace ID', 'Correlation ID', 'Timestamp']
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ..issuer import trace_ids

__all__ = ["ERRORS", "WIF_DOC", "WIF_DOC_2022", "entra_error", "entra_instant", "entra_timestamp"]

#: code -> (HTTP status, ``error``); "captured" in docs/emulator.md where a thread shows both
ERRORS: dict[int, tuple[int, str]] = {
    70021: (400, "invalid_request"),      # no matching federated identity record (issuer/subject/audience)
    70025: (400, "invalid_client"),       # the identity has no federated identity credential at all
    700211: (401, "invalid_client"),      # ... for the presented assertion issuer
    700213: (401, "invalid_client"),      # ... for the presented assertion subject
    7002138: (401, "invalid_client"),     # ... subject matches only case-insensitively
    700024: (401, "invalid_client"),      # client assertion not within its valid time range
    90061: (400, "invalid_request"),      # request to the external OIDC endpoint (the cluster's issuer) failed
    500011: (400, "invalid_resource"),    # resource principal not found in the tenant
    700016: (400, "unauthorized_client"), # application not found in the directory
    70011: (400, "invalid_scope"),        # the scope is not valid
    900144: (400, "invalid_request"),     # a required body parameter is missing
    7000216: (401, "invalid_client"),     # no client_assertion for the client_credentials grant
    70003: (400, "unsupported_grant_type"),
    50027: (400, "invalid_request"),      # the JWT is invalid or malformed
    50013: (401, "invalid_client"),       # assertion failed signature validation
    90002: (400, "invalid_request"),      # tenant not found
    900561: (400, "invalid_request"),     # the endpoint only accepts POST
}
#: codes whose captured bodies carry ``error_uri`` (the troubleshooting guide's 70021 capture)
WITH_ERROR_URI = {70021}
#: the workload-identity federation page Entra's newer federated-credential messages link to
WIF_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
#: the older link, as the 2022-2024 captures show it
WIF_DOC_2022 = "https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation"


def entra_timestamp(epoch: float) -> str:
    """A time as Entra's bodies spell ``timestamp``: ``2022-01-20 22:54:42Z``.

    Example::

        >>> entra_timestamp(1642719282)
        '2022-01-20 22:54:42Z'
    """
    return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def entra_instant(epoch: float) -> str:
    """A time as AADSTS700024's sentence spells it: ISO 8601 with seven fractional digits.

    Example::

        >>> entra_instant(1756446452.25)
        '2025-08-29T05:47:32.2500000Z'
        >>> entra_instant(0)
        '1970-01-01T00:00:00.0000000Z'
    """
    whole = int(epoch)
    fraction = int(round((epoch - whole) * 10_000_000))
    if fraction >= 10_000_000:
        whole, fraction = whole + 1, 0
    stamp = _dt.datetime.fromtimestamp(whole, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:07d}Z"


def entra_error(code: int, sentence: str, *, now: float, authority_host: str, one_line: bool = False,
                trace: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body Entra answers with for ``AADSTS<code>: <sentence>``.

    ``authority_host`` names the cloud's login host for ``error_uri`` (a link to Microsoft's error
    lookup page, never requested by the emulator); ``one_line``: a space, not ``\\r\\n``, before
    ``Trace ID`` and the rest (the newer layout); ``trace``: a (trace id, correlation id) pair.

    Example::

        >>> status, body = entra_error(700024, "Client assertion is not within its valid time range.",
        ...                            now=0, authority_host="login.microsoftonline.com")
        >>> status, body["error"], sorted(body)
        (401, 'invalid_client', ['correlation_id', 'error', 'error_codes', 'error_description', 'timestamp', 'trace_id'])
        >>> entra_error(90061, "Request to External OIDC endpoint failed.", now=0, one_line=True,
        ...             authority_host="login.microsoftonline.com")[1]["error_description"][:58]
        'AADSTS90061: Request to External OIDC endpoint failed. Tra'

    """
    status, error = ERRORS.get(code, (400, "invalid_request"))
    trace_id, correlation_id = trace or trace_ids()
    stamp = entra_timestamp(now)
    gap = " " if one_line else "\r\n"
    body: dict[str, Any] = {
        "error": error,
        "error_description": (f"AADSTS{code}: {sentence}{gap}Trace ID: {trace_id}{gap}Correlation ID: "
                              f"{correlation_id}{gap}Timestamp: {stamp}"),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    }
    if code in WITH_ERROR_URI:
        body["error_uri"] = f"https://{authority_host}/error?code={code}"
    return status, body
