"""How the emulated AKS pod is set up: :class:`WorkloadOptions` (``Emulator(profile="workload", workload={...})``).

The pod runs as the Kubernetes service account ``system:serviceaccount:<namespace>:<service_account>``;
the kubelet projects that account's token (audience ``api://AzureADTokenExchange``, lifetime
``token_lifetime``) into ``AZURE_FEDERATED_TOKEN_FILE`` and rotates it; Entra ID trades it for tokens
of the user-assigned identity named ``identity``, whose federated identity credentials must match the
token's issuer, subject and audience. Bad values raise ``ValueError`` when the options are built.

Example::

    >>> WorkloadOptions(token_lifetime=600).subject
    'system:serviceaccount:jhub:jupyter-notebook'
    >>> WorkloadOptions.from_mapping({"namespace": "data", "entra_errors": "2022"}).namespace
    'data'
    >>> WorkloadOptions(token_lifetime=5)
    Traceback (most recent call last):
    ValueError: token_lifetime must be between 60 and 86400 seconds (the kubelet's range is 3600-86400), got 5
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_AUDIENCE", "ENTRA_ERRORS", "TOKEN_FILE_NAME", "WorkloadOptions"]

DEFAULT_AUDIENCE = "api://AzureADTokenExchange"  # the webhook's DefaultAudience
TOKEN_FILE_NAME = "azure-identity-token"  # the file name the webhook projects
#: "current": Entra's answers as captured since 2024 (700211 issuer, 700213 subject, 7002138 subject case; one-line
#: descriptions); "2022": as captured in 2022 (70021 for any federated-credential mismatch; \r\n-separated lines)
ENTRA_ERRORS = ("current", "2022")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FIC_KEYS = {"name", "identity", "issuer", "subject", "audiences"}


@dataclass(frozen=True)
class WorkloadOptions:
    """The pod, its service account and the federation (every field has a working default).

    ``namespace``, ``service_account``, ``pod``: the Kubernetes names (the token's ``sub`` is
    ``system:serviceaccount:<namespace>:<service_account>``); ``identity``: the user-assigned identity
    the pod federates (a name; None: the VM's first user-assigned one); ``token_lifetime``: the
    projected token's lifetime in seconds (the kubelet accepts 3600-86400; the emulator also takes
    shorter ones, down to 60, so that rotation shows in a test); ``token_dir``: where the token file
    goes (None: a private temporary directory, removed at stop); ``audience``: the token's audience;
    ``issuer``: the cluster's OIDC issuer URL (None: the emulator serves one on its HTTPS port);
    ``federated_credentials``: the identity's federated credentials as dicts (``name``, ``identity``,
    ``issuer``, ``subject``, ``audiences``; a missing key takes the matching value; None: one credential
    that matches); ``entra_errors``: ``"current"`` (default: the codes and layout of Entra's answers
    captured since 2024: 700211, 700213, 7002138) or ``"2022"`` (70021 for every federated-credential
    mismatch, descriptions on separate lines, as the 2022 captures show); ``propagation``:
    seconds of the emulator's clock before a credential added at run time takes effect;
    ``rotation``: rotate the token file in the background, at 80% of its lifetime by the emulator's
    clock (``rotation_poll`` real seconds between looks).

    Example::

        >>> WorkloadOptions(federated_credentials=[{"subject": "system:serviceaccount:jhub:Jupyter-Notebook"}])
        ... # doctest: +ELLIPSIS
        WorkloadOptions(namespace='jhub', ..., federated_credentials=({'subject': 'system:serviceaccount:jhub:Jupyter-Notebook'},), ...)
    """

    namespace: str = "jhub"
    service_account: str = "jupyter-notebook"
    pod: str = "jupyter-ada"
    identity: str | None = None
    token_lifetime: int = 3600
    token_dir: str | Path | None = None
    audience: str = DEFAULT_AUDIENCE
    issuer: str | None = None
    federated_credentials: tuple[Mapping[str, Any], ...] | None = None
    entra_errors: str = "current"
    propagation: float = 0.0
    rotation: bool = True
    rotation_poll: float = 1.0

    def __post_init__(self) -> None:
        for name in ("namespace", "service_account", "pod"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _DNS_LABEL.match(value):
                raise ValueError(f"{name} must be a Kubernetes name (lower-case letters, digits, '-'), got {value!r}")
        lifetime = self.token_lifetime
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not 60 <= lifetime <= 86400:
            raise ValueError("token_lifetime must be between 60 and 86400 seconds (the kubelet's range is "
                             f"3600-86400), got {lifetime!r}")
        if self.token_dir is not None and not Path(self.token_dir).is_absolute():
            raise ValueError(f"token_dir must be an absolute directory, got {str(self.token_dir)!r}")
        if not isinstance(self.audience, str) or not self.audience:
            raise ValueError("audience must be a non-empty string")
        if self.issuer is not None and not str(self.issuer).startswith("https://"):
            raise ValueError(f"the cluster's issuer must be an https URL, got {self.issuer!r}")
        if self.federated_credentials is not None:
            object.__setattr__(self, "federated_credentials", tuple(self.federated_credentials))
            for spec in self.federated_credentials:
                if not isinstance(spec, Mapping) or set(spec) - _FIC_KEYS:
                    raise ValueError(f"a federated credential is a dict with keys among {sorted(_FIC_KEYS)}, "
                                     f"got {spec!r}")
        if self.entra_errors not in ENTRA_ERRORS:
            raise ValueError(f"entra_errors must be 'current' or '2022', got {self.entra_errors!r}")
        for name in ("propagation", "rotation_poll"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
                raise ValueError(f"{name} must be between 0 and 3600 seconds, got {value!r}")
        if self.rotation_poll <= 0:
            raise ValueError("rotation_poll must be more than 0 seconds")

    @property
    def subject(self) -> str:
        """The projected token's ``sub``: ``system:serviceaccount:<namespace>:<service_account>``."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | WorkloadOptions | None) -> WorkloadOptions:
        """From a dict (a config file's ``"workload"`` object, ``-`` allowed for ``_``); unknown keys: ValueError.

        Example::

            >>> WorkloadOptions.from_mapping({"token-lifetime": 600}).token_lifetime
            600
            >>> WorkloadOptions.from_mapping({"lifetime": 600})
            Traceback (most recent call last):
            ValueError: unknown workload option(s) ['lifetime']
        """
        if isinstance(data, WorkloadOptions):
            return data
        values = {str(k).replace("-", "_"): v for k, v in (data or {}).items()}
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown workload option(s) {sorted(unknown)}")
        return cls(**values)

