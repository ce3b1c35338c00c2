"""Which managed identity a token is for: the system-assigned one, or a user-assigned one.

A user-assigned identity is selected by exactly one of its client id, its object (principal) id or
its Azure resource id; IMDS calls the last one ``msi_res_id``. Everything is checked here, before
any request, so that a typo is a clear ``ValueError`` instead of a confusing 400 from IMDS.

Example::

    >>> from mi_notebook.identity import Identity
    >>> Identity.system().query_params()
    {}
    >>> uai = Identity.user(client_id="6F2E0B2A-9C3D-4E5F-8A1B-2C3D4E5F6A7B")
    >>> str(uai), uai.query_params()
    ('user-assigned (client_id=6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b)', {'client_id': '6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b'})
    >>> Identity.parse("system") == Identity.system()
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Identity", "is_guid", "validate_guid", "validate_identity_resource_id"]

Selector = Literal["client_id", "object_id", "resource_id"]
SELECTORS: tuple[Selector, ...] = ("client_id", "object_id", "resource_id")

# IMDS's query parameter for each selector.
QUERY_PARAM = {"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"}

GUID_SHAPE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (32 hex digits in groups 8-4-4-4-12)"
RESOURCE_ID_SHAPE = (
    "/subscriptions/<subscription guid>/resourceGroups/<resource group>"
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>"
)

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Resource group names: 1-90 of letters (any script), digits, _ - . ( ), not ending in a period.
_RESOURCE_GROUP = re.compile(r"[\w\-.()]{0,89}[\w\-()]", re.UNICODE)
# User-assigned identity names: 3-128 of letters, digits, - and _, starting with a letter or digit.
_UAI_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}")
_RESOURCE_ID = re.compile(
    r"/subscriptions/(?P<sub>[^/]*)/resourcegroups/(?P<rg>[^/]*)"
    r"/providers/(?P<ns>[^/]*)/(?P<type>[^/]*)/(?P<name>[^/]*)",
    re.IGNORECASE,
)


def is_guid(text: object) -> bool:
    """Whether ``text`` is a GUID in the 8-4-4-4-12 form Azure uses.

    Example::

        >>> is_guid("6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"), is_guid("6f2e0b2a")
        (True, False)
    """
    return isinstance(text, str) and _GUID.fullmatch(text) is not None


def validate_guid(value: object, what: str) -> str:
    """``value`` as a lower-case GUID, or a ``ValueError`` that says what is wrong with it.

    Example::

        >>> validate_guid(" 6F2E0B2A-9C3D-4E5F-8A1B-2C3D4E5F6A7B ", "client_id")
        '6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b'
    """
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string GUID like {GUID_SHAPE}; got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError(f"{what} is empty; expected a GUID like {GUID_SHAPE}")
    if _GUID.fullmatch(text):
        return text.lower()
    if text.startswith("{") and text.endswith("}") and _GUID.fullmatch(text[1:-1]):
        raise ValueError(f"{what} {text!r} has braces; pass the bare GUID {text[1:-1]!r}")
    if text.lower().startswith("/subscriptions/"):
        raise ValueError(
            f"{what} {text!r} is a resource id, not a GUID; use resource_id=... for resource ids "
            f"(expected {what} like {GUID_SHAPE})"
        )
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", text)
    detail = f"it has {len(hexdigits)} hex digits" if len(hexdigits) != 32 else "the dashes are misplaced"
    if re.search(r"[^0-9a-fA-F-]", text):
        detail = "it contains characters other than hex digits and dashes"
    raise ValueError(f"{what} {_short(text)!r} is not a GUID ({detail}); expected {GUID_SHAPE}")


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_identity_resource_id(value: object) -> str:
    """A user-assigned identity's resource id, checked (segment names are case-insensitive).

    Example::

        >>> rid = ("/subscriptions/6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b/resourcegroups/rg-demo"
        ...        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-demo")
        >>> validate_identity_resource_id(rid) == rid
        True
    """
    if not isinstance(value, str):
        raise ValueError(f"resource_id must be a string like {RESOURCE_ID_SHAPE}; got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError(f"resource_id is empty; expected {RESOURCE_ID_SHAPE}")
    if is_guid(text):
        raise ValueError(
            f"resource_id {text!r} is a GUID, not a resource id: pass it as client_id=... or "
            f"object_id=..., or give the full resource id {RESOURCE_ID_SHAPE}"
        )
    if not text.startswith("/"):
        hint = " (add the leading '/')" if text.lower().startswith("subscriptions/") else ""
        raise ValueError(f"resource_id {_short(text)!r} must start with '/subscriptions/'{hint}; expected {RESOURCE_ID_SHAPE}")
    if any(ch.isspace() for ch in text):
        raise ValueError(f"resource_id {_short(text)!r} contains whitespace; expected {RESOURCE_ID_SHAPE}")
    match = _RESOURCE_ID.fullmatch(text)
    if match is None:
        raise ValueError(
            f"resource_id {_short(text)!r} does not have the shape of a user-assigned identity's "
            f"resource id; expected {RESOURCE_ID_SHAPE}"
        )
    if not is_guid(match["sub"]):
        raise ValueError(f"resource_id: the subscription {match['sub']!r} is not a GUID; expected {RESOURCE_ID_SHAPE}")
    if not _RESOURCE_GROUP.fullmatch(match["rg"]):
        raise ValueError(
            f"resource_id: {match['rg']!r} is not a valid resource group name (1-90 letters, digits, "
            f"'_', '-', '.', '(', ')', not ending in '.'); expected {RESOURCE_ID_SHAPE}"
        )
    kind = f"{match['ns']}/{match['type']}"
    if kind.lower() != "microsoft.managedidentity/userassignedidentities":
        raise ValueError(
            f"resource_id names a {kind!r}, not a user-assigned identity: IMDS needs the identity's "
            f"own resource id, {RESOURCE_ID_SHAPE}"
        )
    if not _UAI_NAME.fullmatch(match["name"]):
        raise ValueError(
            f"resource_id: {match['name']!r} is not a valid identity name (3-128 letters, digits, "
            f"'-' or '_', starting with a letter or digit); expected {RESOURCE_ID_SHAPE}"
        )
    return text


@dataclass(frozen=True)
class Identity:
    """A managed identity: system-assigned (no selector) or user-assigned (exactly one selector).

    Frozen and hashable, so it is part of token cache keys. GUIDs are stored lower-case. Build
    one with :meth:`system`, :meth:`user` or :meth:`parse`; direct construction validates the same way.

    Example::

        >>> Identity.user(object_id="0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0").selector
        ('object_id', '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0')
        >>> Identity.system().kind, Identity.system().selector
        ('system', None)
    """

    client_id: str | None = None
    object_id: str | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        given = [name for name in SELECTORS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(
                f"choose exactly one of client_id, object_id or resource_id to select a user-assigned "
                f"identity; got {' and '.join(given)} (IMDS rejects several selectors)"
            )
        if self.client_id is not None:
            object.__setattr__(self, "client_id", validate_guid(self.client_id, "client_id"))
        if self.object_id is not None:
            object.__setattr__(self, "object_id", validate_guid(self.object_id, "object_id"))
        if self.resource_id is not None:
            object.__setattr__(self, "resource_id", validate_identity_resource_id(self.resource_id))

    @classmethod
    def system(cls) -> Identity:
        """The VM's system-assigned identity (the request names no identity).

        Example::

            >>> str(Identity.system())
            'system-assigned'
        """
        return cls()

    @classmethod
    def user(
        cls,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        resource_id: str | None = None,
    ) -> Identity:
        """A user-assigned identity, by exactly one of client id, object id or resource id.

        Example::

            >>> Identity.user(client_id="6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b").kind
            'user'
            >>> Identity.user()
            Traceback (most recent call last):
            ...
            ValueError: Identity.user() needs exactly one of client_id=, object_id= or resource_id=; use Identity.system() for the system-assigned identity
        """
        if client_id is None and object_id is None and resource_id is None:
            raise ValueError(
                "Identity.user() needs exactly one of client_id=, object_id= or resource_id=; "
                "use Identity.system() for the system-assigned identity"
            )
        return cls(client_id=client_id, object_id=object_id, resource_id=resource_id)

    @classmethod
    def parse(cls, text: str | Identity | None) -> Identity:
        """An identity from text, as typed in a CLI or a widget.

        Accepts ``"system"`` (or ``""``/``None``), a bare GUID (taken as a client id),
        ``client_id=<guid>``, ``object_id=<guid>`` (``principal_id=`` too),
        ``resource_id=/subscriptions/...`` (``msi_res_id=``/``mi_res_id=`` too) or a bare resource id.

        Example::

            >>> Identity.parse("object_id=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0").selector[0]
            'object_id'
            >>> Identity.parse("6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b").selector[0]
            'client_id'
        """
        if isinstance(text, Identity):
            return text
        if text is None:
            return cls.system()
        if not isinstance(text, str):
            raise ValueError(f"an identity must be given as text or an Identity; got {type(text).__name__}")
        value = text.strip()
        if value.lower() in ("", "system", "system-assigned", "systemassigned"):
            return cls.system()
        if "=" in value:
            key, _, rest = value.partition("=")
            key = key.strip().lower().replace("-", "_")
            selector = {
                "client_id": "client_id",
                "clientid": "client_id",
                "object_id": "object_id",
                "objectid": "object_id",
                "principal_id": "object_id",
                "resource_id": "resource_id",
                "msi_res_id": "resource_id",
                "mi_res_id": "resource_id",
            }.get(key)
            if selector is None:
                raise ValueError(
                    f"unknown identity selector {_short(key)!r}; use client_id=<guid>, object_id=<guid> "
                    f"or resource_id={RESOURCE_ID_SHAPE}, or 'system'"
                )
            return cls.user(**{selector: rest.strip()})
        if value.startswith("/") or value.lower().startswith("subscriptions/"):
            return cls.user(resource_id=value)
        if is_guid(value):
            return cls.user(client_id=value)
        raise ValueError(
            f"cannot read {_short(value)!r} as an identity; expected 'system', a client id GUID "
            f"({GUID_SHAPE}), client_id=<guid>, object_id=<guid> or a resource id {RESOURCE_ID_SHAPE}"
        )

    @property
    def kind(self) -> Literal["system", "user"]:
        """``"system"`` or ``"user"``."""
        return "system" if self.selector is None else "user"

    @property
    def selector(self) -> tuple[Selector, str] | None:
        """``("client_id" | "object_id" | "resource_id", value)``, or ``None`` when system-assigned."""
        for name in SELECTORS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        return None

    @property
    def name(self) -> str | None:
        """The identity's name when selected by resource id (its last segment), else ``None``."""
        return self.resource_id.rsplit("/", 1)[-1] if self.resource_id else None

    def query_params(self) -> dict[str, str]:
        """The IMDS query parameters that select this identity.

        Example::

            >>> rid = ("/subscriptions/6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b/resourceGroups/rg"
            ...        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app")
            >>> list(Identity.user(resource_id=rid).query_params())
            ['msi_res_id']
        """
        selector = self.selector
        if selector is None:
            return {}
        name, value = selector
        return {QUERY_PARAM[name]: value}

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"kind": ..., "client_id": ..., "object_id": ..., "resource_id": ...}``."""
        return {"kind": self.kind, "client_id": self.client_id, "object_id": self.object_id,
                "resource_id": self.resource_id}

    def __str__(self) -> str:
        selector = self.selector
        if selector is None:
            return "system-assigned"
        return f"user-assigned ({selector[0]}={selector[1]})"

    def __repr__(self) -> str:
        selector = self.selector
        if selector is None:
            return "Identity.system()"
        return f"Identity.user({selector[0]}={selector[1]!r})"
