"""A host's settings, checked once: endpoints that must be URLs, secrets that must never show.

Every source takes its settings explicitly and reads them from the environment in
``from_environment``; both paths go through these checks, so a bad value is a
:class:`~mi_notebook.errors.HostConfigurationError` naming the setting (the variable, or the
constructor argument) and what to do, before any request. Secret values are wrapped in
:class:`Secret`, whose repr, str and pickling never show them.

Example::

    >>> check_endpoint(" http://127.0.0.1:46808/MSI/auth ", "MSI_ENDPOINT")
    'http://127.0.0.1:46808/MSI/auth'
    >>> secret_from({"MSI_SECRET": "s3cr3t"}, "MSI_SECRET")
    Secret(<hidden>)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import urlsplit

from ..errors import HostConfigurationError

__all__ = ["Secret", "check_endpoint", "check_secret", "endpoint_from", "fingerprint", "secret_from"]

DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 10.0)
#: the key of every fingerprint, new in each process: a fingerprint cannot be tested against guesses
#: of a short secret anywhere else, and says nothing once the process is gone
_FINGERPRINT_KEY = os.urandom(32)


def fingerprint(*parts: str) -> str:
    """A keyed digest (HMAC-SHA-256, this process's key) of ``parts``: equal for equal parts in this
    process, and neither reversible nor testable against guesses outside it. Cache keys use it for
    host secrets.

    Example::

        >>> fingerprint("secret", "s3cr3t") == fingerprint("secret", "s3cr3t") != fingerprint("secret", "other")
        True
        >>> fingerprint("x")[:12], len(fingerprint("x"))
        ('hmac-sha256:', 44)
    """
    mac = hmac.new(_FINGERPRINT_KEY, "\0".join(parts).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "hmac-sha256:" + mac.hexdigest()[:32]


class Secret:
    """A secret value (``MSI_SECRET``, ``IDENTITY_HEADER``): shows as ``Secret(<hidden>)`` everywhere.

    Example::

        >>> s = Secret("abc")
        >>> s, str(s), f"{s}", s.reveal()
        (Secret(<hidden>), 'Secret(<hidden>)', 'Secret(<hidden>)', 'abc')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself, for the one header that carries it."""
        return self._value

    @property
    def fingerprint(self) -> str:
        """A keyed digest of the value (:func:`fingerprint`), never the value."""
        return fingerprint("secret", self._value)

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret refuses to be pickled (it would end up in a file)")


def _fail(setting: str, problem: str, what_to_do: str) -> NoReturn:
    raise HostConfigurationError(f"{setting} {problem}.", hint=what_to_do)


def check_endpoint(value: object, setting: str, *, what_to_do: str | None = None) -> str:
    """``value`` as an ``http(s)://host[:port]/path`` URL, or a ``HostConfigurationError`` naming ``setting``.

    Example::

        >>> check_endpoint("localhost:40342", "IDENTITY_ENDPOINT")
        Traceback (most recent call last):
        ...
        mi_notebook.errors.HostConfigurationError: IDENTITY_ENDPOINT='localhost:40342' is not an http(s) URL.
        What to do: Set IDENTITY_ENDPOINT to the URL the host gives (e.g. http://localhost:40342/...), or unset it.
    """
    todo = what_to_do or f"Set {setting} to the URL the host gives (e.g. http://localhost:40342/...), or unset it."
    if not isinstance(value, str):
        _fail(setting, f"must be a URL string, not {type(value).__name__}", todo)
    text = value.strip()
    if not text:
        _fail(setting, "is empty", todo)
    shown = text if len(text) <= 120 else text[:117] + "..."
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        _fail(f"{setting}={shown!r}", "is not a valid URL (bad port or brackets)", todo)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail(f"{setting}={shown!r}", "is not an http(s) URL", todo)
    if parts.username or parts.password or parts.fragment or any(c.isspace() for c in text):
        _fail(f"{setting}={shown!r}", "must not hold user info, a fragment or spaces", todo)
    return text


def check_secret(value: object, setting: str, *, what_to_do: str | None = None) -> Secret:
    """``value`` wrapped in a :class:`Secret`; empty, blank or multi-line values are refused (never shown).

    Example::

        >>> check_secret("  ", "IDENTITY_HEADER")
        Traceback (most recent call last):
        ...
        mi_notebook.errors.HostConfigurationError: IDENTITY_HEADER is empty.
        What to do: The host sets IDENTITY_HEADER for the processes it starts; start this kernel from the host (or restart it) instead of copying the value by hand.
    """
    todo = what_to_do or (
        f"The host sets {setting} for the processes it starts; start this kernel from the host "
        "(or restart it) instead of copying the value by hand."
    )
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        _fail(setting, f"must be a string, not {type(value).__name__}", todo)
    if not value.strip():
        _fail(setting, "is empty", todo)
    if any(ch in value for ch in "\r\n\0"):
        _fail(setting, "contains a line break or NUL (it cannot be sent as a header; value not shown)", todo)
    return Secret(value.strip())


def endpoint_from(environ: Mapping[str, str], name: str) -> str:
    """The URL in variable ``name`` (which must be set).

    Example::

        >>> endpoint_from({"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth"}, "MSI_ENDPOINT")
        'http://127.0.0.1:46808/MSI/auth'
    """
    if not environ.get(name):
        _fail(name, "is not set", f"This host sets {name} for its processes; check how the kernel was started.")
    return check_endpoint(environ[name], name)


def secret_from(environ: Mapping[str, str], name: str) -> Secret:
    """The secret in variable ``name`` (which must be set and non-empty), as a :class:`Secret`.

    Example::

        >>> secret_from({}, "MSI_SECRET")
        Traceback (most recent call last):
        ...
        mi_notebook.errors.HostConfigurationError: MSI_SECRET is empty.
        What to do: The host sets MSI_SECRET for the processes it starts; start this kernel from the host (or restart it) instead of copying the value by hand.
    """
    return check_secret(environ.get(name, ""), name)
