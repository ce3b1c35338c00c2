"""ARM's query string and its paged lists: duplicates, ``$filter``, ``$top``, ``$skiptoken``, ``nextLink``.

A list answer is ``{"value": [...], "nextLink": "<absolute URL with $skiptoken>"}``; the skip token is
opaque to clients (here: the offset, base64url-encoded JSON) and every other query parameter is
carried into the next link unchanged.

Example::

    >>> import json
    >>> from mi_notebook.emulator.server import HttpRequest
    >>> req = HttpRequest("GET", "", "/subscriptions/s/resources", "api-version=2022-12-01", [])
    >>> query, duplicate = parse_query(req.query)
    >>> body = json.loads(page(req, query, [{"n": i} for i in range(5)], page_size=2,
    ...                        base_url="https://127.0.0.1:1").body)
    >>> body["value"], body["nextLink"].startswith("https://127.0.0.1:1/subscriptions/s/resources?api-version=")
    ([{'n': 0}, {'n': 1}], True)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from ..server import HttpRequest, HttpResponse, json_response
from .answers import arm_error

__all__ = ["decode_skiptoken", "encode_skiptoken", "page", "parse_filter", "parse_query"]

_FILTER_CLAUSE = re.compile(r"^\s*(resourceType|name|location)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def parse_query(query: str) -> tuple[dict[str, str], str | None]:
    """``(first value of each parameter, the first name given twice or None)``; ``api-version`` in any case.

    Example::

        >>> parse_query("API-Version=1&$top=2&$top=3")
        ({'api-version': '1', '$top': '2'}, '$top')
    """
    values: dict[str, str] = {}
    duplicate = None
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        key = name.lower() if name.lower() == "api-version" else name
        if key in values and duplicate is None:
            duplicate = name
        values.setdefault(key, value)
    return values, duplicate


def page(request: HttpRequest, query: dict[str, str], items: list[dict[str, Any]], *, page_size: int,
         base_url: str, extra_body: dict[str, Any] | None = None) -> HttpResponse:
    """One page of ``items`` after ``$filter``, from ``$skiptoken``, ``$top`` (else ``page_size``) long.

    ``nextLink`` is ``base_url`` + the request's path and query with the next skip token; a bad
    ``$filter``, ``$top`` or ``$skiptoken`` is ARM's 400. ``extra_body`` is merged into the answer.

    Example::

        >>> req = HttpRequest("GET", "", "/subscriptions", "$top=0", [])
        >>> page(req, parse_query(req.query)[0], [], page_size=3, base_url="https://127.0.0.1:1").error
        'InvalidTopParameter'
    """
    expression = query.get("$filter")
    if expression is not None:
        clauses = parse_filter(expression)
        if clauses is None:
            return arm_error(400, "InvalidFilter",
                             f"The $filter '{expression}' is not supported by the emulated Resource Manager: use "
                             "resourceType eq '...', name eq '...' or location eq '...', joined with 'and'.")
        items = [i for i in items
                 if all(str(i.get(field, "")).lower() == value.lower() for field, value in clauses)]
    size = page_size
    top = query.get("$top")
    if top is not None:
        if not top.isdigit() or not 1 <= int(top) <= 1000:
            return arm_error(400, "InvalidTopParameter", f"The value '{top}' of $top is invalid: use 1 to 1000.")
        size = int(top)
    offset = 0
    token = query.get("$skiptoken")
    if token is not None:
        decoded = decode_skiptoken(token)
        if decoded is None:
            return arm_error(400, "InvalidSkipToken", f"The $skiptoken '{token}' is invalid.")
        offset = decoded
    body: dict[str, Any] = {"value": items[offset:offset + size]}
    if offset + size < len(items):
        params = [(k, v) for k, v in parse_qsl(request.query, keep_blank_values=True) if k != "$skiptoken"]
        params.append(("$skiptoken", encode_skiptoken(offset + size)))
        body["nextLink"] = f"{base_url}{quote(request.path)}?{urlencode(params)}"
    if extra_body:
        body.update(extra_body)
    return json_response(200, body)


def parse_filter(expression: str) -> list[tuple[str, str]] | None:
    """``[(field, value)]`` for ``field eq 'value' [and ...]`` (field: resourceType, name, location), else None.

    Example::

        >>> parse_filter("resourceType eq 'Microsoft.Compute/virtualMachines' and location eq 'westeurope'")
        [('type', 'Microsoft.Compute/virtualMachines'), ('location', 'westeurope')]
        >>> parse_filter("tagName eq 'x'") is None
        True
    """
    clauses = []
    for part in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _FILTER_CLAUSE.match(part)
        if match is None:
            return None
        field = {"resourcetype": "type"}.get(match.group(1).lower(), match.group(1).lower())
        clauses.append((field, match.group(2)))
    return clauses


def encode_skiptoken(offset: int) -> str:
    """The ``$skiptoken`` for the page starting at ``offset``.

    Example::

        >>> decode_skiptoken(encode_skiptoken(6))
        6
    """
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_skiptoken(token: str) -> int | None:
    """The offset a ``$skiptoken`` stands for, or None when it is not one of ours.

    Example::

        >>> decode_skiptoken("not-a-token") is None
        True
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return offset if isinstance(offset, int) and offset >= 0 else None
