"""The access-token struct ``pyodbc`` hands the Microsoft ODBC driver to sign in to Azure SQL with a token.

The driver reads connection attribute 1256 (``SQL_COPT_SS_ACCESS_TOKEN``) as a little-endian 4-byte
length followed by the token in UTF-16-LE, with no terminator. The token must be for
``https://database.windows.net/`` (:data:`SQL_RESOURCE`), and the connection string must then carry no
``UID``/``PWD``/``Authentication`` keyword. Use it as::

    token = mi.get_token("https://database.windows.net/")
    conn = pyodbc.connect(conn_str, attrs_before={SQL_COPT_SS_ACCESS_TOKEN: sql_token_struct(token)})

The struct holds the whole token: never print it, log it or store it.

Example::

    >>> packed = sql_token_struct("ab")
    >>> packed, SQL_COPT_SS_ACCESS_TOKEN
    (b'\\x04\\x00\\x00\\x00a\\x00b\\x00', 1256)
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["SQL_COPT_SS_ACCESS_TOKEN", "SQL_RESOURCE", "sql_token_struct"]

SQL_COPT_SS_ACCESS_TOKEN = 1256  # msodbcsql.h
SQL_RESOURCE = "https://database.windows.net/"


def sql_token_struct(token: Any) -> bytes:
    """Pack a token for ``attrs_before``: an :class:`~mi_notebook.tokens.AccessToken`, azure-core's
    ``AccessToken`` (from ``mi.credential().get_token(...)``) or the raw string.

    Raises ``ValueError`` for an empty token or one for another audience (when the token says which),
    since the driver would only answer "Login failed for user '<token-identified principal>'".

    Example::

        >>> import struct
        >>> length, = struct.unpack_from("<I", sql_token_struct("eyJ0"))
        >>> length
        8
        >>> sql_token_struct("")
        Traceback (most recent call last):
        ValueError: the token is empty: get one with mi.get_token("https://database.windows.net/")
    """
    audience = getattr(token, "resource", None)
    if audience is not None and audience.rstrip("/").lower() != SQL_RESOURCE.rstrip("/"):
        raise ValueError(f"this token is for {audience!r}, but Azure SQL accepts only tokens for {SQL_RESOURCE!r}: "
                         f'get one with mi.get_token("{SQL_RESOURCE}")')
    reveal = getattr(token, "reveal", None)  # mi-notebook's AccessToken; azure-core's has .token
    raw = token if isinstance(token, str) else reveal() if callable(reveal) else getattr(token, "token", None)
    if not isinstance(raw, str):
        raise ValueError(f"expected an AccessToken or a token string, got {type(token).__name__}")
    if not raw:
        raise ValueError(f'the token is empty: get one with mi.get_token("{SQL_RESOURCE}")')
    encoded = raw.encode("utf-16-le")
    return struct.pack(f"<I{len(encoded)}s", len(encoded), encoded)
