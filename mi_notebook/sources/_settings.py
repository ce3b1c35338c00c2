"""A host's settings, checked once: endpoints that must be URLs, secrets that must never show.

Every source takes its settings explicitly and reads them from the environment in
``from_environment``; both paths go through these checks, so a bad value is a
:class:`~mi_notebook.errors.HostConfigurationError` naming the setting (the variable, or the
constructor argument) and what to do, before any request. Secret values are wrapped in
:class:`~mi_notebook.secret.Secret` (the package's one secret type), whose repr, str, ``asdict``,
``deepcopy`` and pickling never show them. A secret must be one line of ASCII (real host secrets
are): anything else could not be sent as a header, and would escape as an encoding error carrying it.

Example::

    >>> check_endpoint(" http://127.0.0.1:46808/MSI/auth ", "MSI_ENDPOINT")
    'http://127.0.0.1:46808/MSI/auth'
    >>> secret_from({"MSI_SECRET": "s3cr3t"}, "MSI_SECRET")
    Secret(<hidden>)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import urlsplit

from ..errors import HostConfigurationError
from ..secret import Secret, fingerprint

__all__ = ["Secret", "check_endpoint", "check_secret", "endpoint_from", "fingerprint", "secret_from"]

DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 10.0)


def _fail(setting: str, problem: str, what_to_do: str) -> NoReturn:
    raise HostConfigurationError(f"{setting} {problem}.", hint=what_to_do)


def check_endpoint(value: object, setting: str, *, what_to_do: str | None = None) -> str:
    """``value`` as an ``http(s)://host[:port]/path`` URL, or a ``HostConfigurationError`` naming ``setting``.

    The one check of every token endpoint's URL: no user info (any ``@`` before the host, even an
    empty user name), no fragment, no spaces, a valid port.

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
    if "@" in parts.netloc:  # even an empty user name: 'http://127.0.0.1:1@192.0.2.9' goes to 192.0.2.9
        masked = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()  # it may be a password
        shown = masked if len(masked) <= 120 else masked[:117] + "..."
        _fail(f"{setting}={shown!r}", "holds user info (a '@' before the host): refused, because the request "
              f"would go to {parts.hostname}, with the user info as a Basic credential", todo)
    if parts.fragment or any(c.isspace() for c in text):
        _fail(f"{setting}={shown!r}", "must not hold a fragment or spaces", todo)
    return text


def check_secret(value: object, setting: str, *, what_to_do: str | None = None) -> Secret:
    """``value`` wrapped in a :class:`Secret`; empty, blank, multi-line or non-ASCII values (and a
    ``Secret`` holding one) are refused, never shown.

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
        value = value.reveal()  # a wrapped value meets the same rules (a withheld one raises here)
    if not isinstance(value, str):
        _fail(setting, f"must be a string, not {type(value).__name__}", todo)
    text = value.strip()
    if not text:
        problem = "is empty"
    elif any(ch in value for ch in "\r\n\0"):
        problem = "contains a line break or NUL (it cannot be sent as a header; value not shown)"
    elif not text.isascii():
        problem = "holds a character outside ASCII (it cannot be sent as a header; value not shown)"
    else:
        return Secret(text)
    del value, text  # the raising frame keeps no copy
    _fail(setting, problem, todo)


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
