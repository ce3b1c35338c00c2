"""mi-notebook: Azure managed identities made visible and dependable from Jupyter.

Public names are imported lazily, so ``import mi_notebook`` stays fast and never pulls in pandas,
matplotlib or ipywidgets until a view, a chart or a widget is asked for.

Example::

    >>> import mi_notebook as mi
    >>> mi.RetryPolicy(jitter=0).delays()
    [0.0, 2.0, 6.0, 14.0, 30.0]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module (relative to this package) that defines it
_LAZY: dict[str, str] = {
    # core
    "Identity": "identity",
    "resolve_resource": "resources",
    "WELL_KNOWN_RESOURCES": "resources",
    "list_resources": "resources",
    "RetryPolicy": "retry_policy",
    "AttemptOutcome": "retry",
    "Attempt": "retry",
    "Timeline": "retry",
    "simulate": "retry",
    "VirtualClock": "clock",
    "Clock": "clock",
    "AccessToken": "tokens",
    "TokenCache": "cache",
    "default_cache": "cache",
    "Claims": "claims",
    # errors
    "ManagedIdentityError": "errors",
    "EndpointUnreachableError": "errors",
    "ImdsTimeoutError": "errors",
    "EndpointTimeoutError": "errors",
    "HostConfigurationError": "errors",
    "UnsupportedHostError": "errors",
    "IdentityNotFoundError": "errors",
    "MultipleIdentitiesError": "errors",
    "InvalidResourceError": "errors",
    "ThrottledError": "errors",
    "ImdsUpdatingError": "errors",
    "UnexpectedResponseError": "errors",
    "BadRequestError": "errors",
    "ServerError": "errors",
    "TokenDecodeError": "errors",
    "TokenVerificationError": "errors",
    "ArmError": "errors",
    # transport
    "decode": "jwks",
    "ImdsClient": "imds",
    "detect": "detect",
    "connect": "connection",
    "get_token": "connection",
    "disconnect": "connection",
    "credential": "sdk_credential",
    "ManagedIdentityTokenCredential": "sdk_credential",
    "ArmClient": "arm_client",
    "arm": "arm_client",
    "AgentClient": "agent.client",
    # presentation
    "plot_retry_timeline": "charts",
    "plot_token_lifetimes": "charts",
    "plot_policy_comparison": "charts",
    "connect_or_carry_on": "tutorial",
    "TokenExplorer": "widgets",
    "ArmExplorer": "widgets",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mi_notebook' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .cache import TokenCache  # noqa: F401
    from .identity import Identity  # noqa: F401
    from .retry import Attempt, RetryPolicy, Timeline, simulate  # noqa: F401
    from .tokens import AccessToken  # noqa: F401
