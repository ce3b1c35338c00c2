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
    "RetryPolicy": "retry",
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
    "ImdsClient": "sources",
    "detect": "detection",
    "connect": "connection",
    "get_token": "connection",
    "disconnect": "connection",
    "credential": "sdk_credential",
    "ManagedIdentityTokenCredential": "sdk_credential",
    "aio": "aio",  # a submodule: mi.aio.credential() is the async credential
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

# literal, so that type checkers see the re-exports (tests/test_architecture.py checks it matches _LAZY)
__all__ = [
    "AccessToken",
    "AgentClient",
    "ArmClient",
    "ArmError",
    "ArmExplorer",
    "Attempt",
    "AttemptOutcome",
    "BadRequestError",
    "Claims",
    "Clock",
    "EndpointTimeoutError",
    "EndpointUnreachableError",
    "HostConfigurationError",
    "Identity",
    "IdentityNotFoundError",
    "ImdsClient",
    "ImdsTimeoutError",
    "ImdsUpdatingError",
    "InvalidResourceError",
    "ManagedIdentityError",
    "ManagedIdentityTokenCredential",
    "MultipleIdentitiesError",
    "RetryPolicy",
    "ServerError",
    "ThrottledError",
    "Timeline",
    "TokenCache",
    "TokenDecodeError",
    "TokenExplorer",
    "TokenVerificationError",
    "UnexpectedResponseError",
    "UnsupportedHostError",
    "VirtualClock",
    "WELL_KNOWN_RESOURCES",
    "aio",
    "arm",
    "connect",
    "connect_or_carry_on",
    "credential",
    "decode",
    "default_cache",
    "detect",
    "disconnect",
    "get_token",
    "list_resources",
    "plot_policy_comparison",
    "plot_retry_timeline",
    "plot_token_lifetimes",
    "resolve_resource",
    "simulate",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mi_notebook' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if module_name == name else getattr(module, name)  # a lazy submodule, or a name in one
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover - what type checkers and editors see for the lazy names
    from . import aio
    from .agent.client import AgentClient
    from .arm_client import ArmClient, arm
    from .cache import TokenCache, default_cache
    from .charts import plot_policy_comparison, plot_retry_timeline, plot_token_lifetimes
    from .claims import Claims
    from .clock import Clock, VirtualClock
    from .connection import connect, disconnect, get_token
    from .detection import detect
    from .errors import (
        ArmError,
        BadRequestError,
        EndpointTimeoutError,
        EndpointUnreachableError,
        HostConfigurationError,
        IdentityNotFoundError,
        ImdsTimeoutError,
        ImdsUpdatingError,
        InvalidResourceError,
        ManagedIdentityError,
        MultipleIdentitiesError,
        ServerError,
        ThrottledError,
        TokenDecodeError,
        TokenVerificationError,
        UnexpectedResponseError,
        UnsupportedHostError,
    )
    from .identity import Identity
    from .jwks import decode
    from .resources import WELL_KNOWN_RESOURCES, list_resources, resolve_resource
    from .retry import Attempt, AttemptOutcome, RetryPolicy, Timeline, simulate
    from .sdk_credential import ManagedIdentityTokenCredential, credential
    from .sources import ImdsClient
    from .tokens import AccessToken
    from .tutorial import connect_or_carry_on
    from .widgets import ArmExplorer, TokenExplorer
