"""What the emulated Azure OpenAI account serves: its deployments, the audiences it accepts, its limits.

:class:`OpenAIOptions` is the ``openai`` option of an :class:`~mi_notebook.emulator.Emulator`
(``Emulator(openai={"deployments": {...}})``, ``openai=False`` for none); :class:`Deployment` is one
deployment as the service sees it: its name (what the path or the v1 ``model`` names), the model it
runs (what answers report in ``model``) and its kind, chat or embeddings, told by the model's name.

Example::

    >>> opts = OpenAIOptions.from_mapping({"deployments": {"chat": "gpt-4o-2024-08-06"}})
    >>> [(d.name, d.model, d.kind) for d in opts.deployment_list()]
    [('chat', 'gpt-4o-2024-08-06', 'chat')]
    >>> OpenAIOptions().audiences
    ('https://cognitiveservices.azure.com',)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COGNITIVE_SERVICES", "DEFAULT_DEPLOYMENTS", "EMBEDDING_DIMENSIONS", "Deployment", "OpenAIOptions"]

#: the audience Azure OpenAI's data plane accepts (learn.microsoft.com, "managed identity" how-to)
COGNITIVE_SERVICES = "https://cognitiveservices.azure.com"

#: deployment name -> model (with its version, as chat answers report it)
DEFAULT_DEPLOYMENTS: Mapping[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "text-embedding-3-small": "text-embedding-3-small",
}

#: a model's full embedding length (the ``dimensions`` request option may shorten it)
EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072, "text-embedding-3-small": 1536,
                        "text-embedding-ada-002": 1536}

# Azure's rule for deployment names: 2-64 letters, digits, '-', '_' and '.'
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
_KEYS = {"deployments", "audiences", "requests_per_minute", "port"}


@dataclass(frozen=True)
class Deployment:
    """One deployment: ``name``, ``model`` and ``kind`` (``"chat"`` or ``"embeddings"``).

    Example::

        >>> Deployment.of("emb", "text-embedding-3-large").dimensions, Deployment.of("c", "gpt-4o").kind
        (3072, 'chat')
    """

    name: str
    model: str
    kind: str

    @classmethod
    def of(cls, name: str, model: str) -> Deployment:
        return cls(name, model, "embeddings" if "embedding" in model.lower() else "chat")

    @property
    def dimensions(self) -> int:
        """The embedding length of the model (1536 for a model this table does not know)."""
        return next((n for prefix, n in EMBEDDING_DIMENSIONS.items() if self.model.lower().startswith(prefix)), 1536)


@dataclass(frozen=True)
class OpenAIOptions:
    """The emulated Azure OpenAI account.

    ``deployments``: name -> model (default :data:`DEFAULT_DEPLOYMENTS`: a ``gpt-4o-mini`` chat
    deployment and a ``text-embedding-3-small`` one); ``audiences``: the token audiences accepted,
    each with or without a trailing slash (default Cognitive Services'; add ``"https://ai.azure.com"``
    to model a Foundry resource that takes Foundry tokens: whether classic resources do is not
    confirmed); ``requests_per_minute``: enforce a per-deployment limit over a sliding minute of the
    emulator clock (None: none; injected 429 faults work either way); ``port``: where it listens.

    Example::

        >>> OpenAIOptions(requests_per_minute=0)
        Traceback (most recent call last):
        ValueError: requests_per_minute must be a positive integer or None, got 0
        >>> OpenAIOptions.from_mapping({"deployment": {}})
        Traceback (most recent call last):
        ValueError: unknown openai option(s) ['deployment']: use audiences, deployments, port, requests_per_minute
    """

    deployments: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DEPLOYMENTS))
    audiences: tuple[str, ...] = (COGNITIVE_SERVICES,)
    requests_per_minute: int | None = None
    port: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.deployments, Mapping) or not self.deployments:
            raise ValueError("openai deployments must be a non-empty mapping of deployment name -> model")
        for name, model in self.deployments.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"deployment name {name!r} is invalid: use 2-64 letters, digits, '-', '_' or '.'")
            if not isinstance(model, str) or not model.strip():
                raise ValueError(f"deployment {name!r} needs a model name, got {model!r}")
        object.__setattr__(self, "deployments", dict(self.deployments))
        audiences = (self.audiences,) if isinstance(self.audiences, str) else tuple(self.audiences)
        if not audiences or not all(isinstance(a, str) and a.strip() for a in audiences):
            raise ValueError(f"openai audiences must be one or more non-empty strings, got {self.audiences!r}")
        object.__setattr__(self, "audiences", audiences)
        rpm = self.requests_per_minute
        if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
            raise ValueError(f"requests_per_minute must be a positive integer or None, got {rpm!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"openai port must be 0..65535, got {self.port!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | OpenAIOptions | None) -> OpenAIOptions:
        """From a dict (a config file's ``"openai"`` object); None gives the defaults."""
        if isinstance(data, OpenAIOptions):
            return data
        data = dict(data or {})
        unknown = set(data) - _KEYS
        if unknown:
            raise ValueError(f"unknown openai option(s) {sorted(unknown)}: use {', '.join(sorted(_KEYS))}")
        audiences: Iterable[str] = data.get("audiences") or (COGNITIVE_SERVICES,)
        return cls(deployments=data.get("deployments") or dict(DEFAULT_DEPLOYMENTS),
                   audiences=(audiences,) if isinstance(audiences, str) else tuple(audiences),
                   requests_per_minute=data.get("requests_per_minute"), port=int(data.get("port", 0)))

    def deployment_list(self) -> list[Deployment]:
        """The deployments, in the order given."""
        return [Deployment.of(name, model) for name, model in self.deployments.items()]
