"""Deprecated: IMDS is now the VM's source, :mod:`mi_notebook.sources.imds` (``ImdsSource``).

Kept for one release so that existing imports go on working: importing this module warns with a
``DeprecationWarning`` and re-exports the old names. ``mi.ImdsClient`` and
``from mi_notebook.sources import ImdsClient`` are the same class, without a warning.

Example::

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     from mi_notebook.imds import ImdsClient, TOKEN_PATH
    >>> from mi_notebook.sources import ImdsSource
    >>> ImdsClient is ImdsSource, TOKEN_PATH
    (True, '/metadata/identity/oauth2/token')
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .http import proxy_variables
from .sources.imds import DEFAULT_API_VERSION, DEFAULT_TIMEOUT, IMDS_URL, TOKEN_PATH, ImdsClient, ImdsSource

if TYPE_CHECKING:  # pragma: no cover
    from . import errors
    from .http import Answer
    from .identity import Identity
    from .retry import AttemptOutcome, Timeline

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TIMEOUT",
    "IMDS_URL",
    "TOKEN_PATH",
    "ImdsClient",
    "classify_failure",
    "proxy_variables",
]

warnings.warn("mi_notebook.imds is deprecated: import ImdsClient (ImdsSource) and IMDS's constants from "
              "mi_notebook.sources (or use mi.ImdsClient)", DeprecationWarning, stacklevel=2)


def classify_failure(
    outcome: AttemptOutcome,
    answer: Answer,
    timeline: Timeline | None,
    *,
    endpoint: str,
    resource: str | None = None,
    identity: Identity | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    what: str = "token request",
) -> errors.ManagedIdentityError:
    """Deprecated: the error IMDS's source maps the last answer of a failed request to.

    Example::

        >>> from mi_notebook.http import Answer
        >>> from mi_notebook.retry import AttemptOutcome
        >>> err = classify_failure(
        ...     AttemptOutcome(status=400, error="invalid_resource", error_description="AADSTS500011"),
        ...     Answer("json", 400), None, endpoint="http://127.0.0.1:1", resource="https://nope.example/")
        >>> type(err).__name__, err.status
        ('InvalidResourceError', 400)
    """
    source = ImdsSource(endpoint, timeout=timeout)
    return source._failure(outcome, answer, timeline, resource, identity, what)
