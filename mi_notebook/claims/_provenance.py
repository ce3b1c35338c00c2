"""Whose token is it? The label every surface shows for a token, from its claims alone.

What was *asked* for says little: with no identity named, Azure ML answers with the signed-in user's
own token, and the compute's identity named through ``DEFAULT_IDENTITY_CLIENT_ID`` is the compute's
system-assigned one. So the CLI, the doctor, the widgets and the token card all label a token with
:func:`token_identity`, which reads the claims: a person's own token (``idtyp`` ``user``, or ``upn`` /
``unique_name`` / ``scp`` and no ``xms_mirid``; :func:`~mi_notebook.claims.user_token_evidence`), a
system-assigned identity (``xms_mirid`` names the resource it belongs to: a VM, a compute, a web
app) or a user-assigned one (``xms_mirid`` names a ``userAssignedIdentities`` resource), with the
client id from ``appid`` / ``azp``.

Example::

    >>> str(token_identity({"idtyp": "user", "upn": "ada@contoso.com"}))
    'YOUR OWN user token (ada@contoso.com)'
    >>> uai = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app"
    >>> str(token_identity({"appid": "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b", "xms_mirid": uai}))
    'user-assigned (client_id=6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b)'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._checks import user_token_evidence
from ._glossary import mirid_kind

__all__ = ["EMULATOR_CLAIM", "TokenIdentity", "emulator_evidence", "token_identity"]

#: the claim the mi-notebook emulator puts in every token it signs (read here from the claims alone:
#: the client never imports the emulator)
EMULATOR_CLAIM = "mi_notebook_emulator"

IdentityKind = Literal["system-assigned", "user-assigned", "user", "app", "unknown"]


@dataclass(frozen=True)
class TokenIdentity:
    """Who a token acts as, by its claims: ``kind`` and what names it.

    ``kind``: ``"system-assigned"`` or ``"user-assigned"`` (a managed identity), ``"user"`` (a
    person's OWN token: anything done with it acts as them), ``"app"`` (an application that is not a
    managed identity the claims name) or ``"unknown"`` (an opaque token, or claims that do not say).
    ``name`` is the person's ``upn`` (or ``unique_name``) for a user token, else the last segment of
    ``xms_mirid`` (the identity's name; the VM's, compute's or app's for system-assigned). ``evidence``
    says which claims decided.

    Example::

        >>> who = token_identity({"idtyp": "user", "unique_name": "ada@contoso.com", "oid": "o"})
        >>> who.kind, who.name, who.is_user_token, who.to_dict()["label"]
        ('user', 'ada@contoso.com', True, 'YOUR OWN user token (ada@contoso.com)')
    """

    kind: IdentityKind
    client_id: str | None = None
    object_id: str | None = None
    name: str | None = None
    resource_id: str | None = None
    evidence: str | None = None

    @property
    def is_user_token(self) -> bool:
        """Whether this is a signed-in person's own token (not a managed identity's)."""
        return self.kind == "user"

    @property
    def label(self) -> str:
        """The short label: ``system-assigned``, ``user-assigned (client_id=...)``, ``YOUR OWN user token (...)``.

        Example::

            >>> TokenIdentity("unknown").label, TokenIdentity("app", client_id="c").label
            ('identity not shown in the claims', 'application (client_id=c), not a managed identity')
        """
        if self.kind == "system-assigned":
            return "system-assigned"
        if self.kind == "user-assigned":
            return f"user-assigned (client_id={self.client_id})" if self.client_id else \
                f"user-assigned '{self.name}'"
        if self.kind == "user":
            return f"YOUR OWN user token ({self.name or 'the signed-in user'})"
        if self.kind == "app":
            return f"application (client_id={self.client_id}), not a managed identity"
        return "identity not shown in the claims"

    def label_for(self, asked: object = None) -> str:
        """:attr:`label`; when the claims cannot say (``unknown``) and ``asked`` is given, what was asked, said so.

        Example::

            >>> TokenIdentity("unknown").label_for("system-assigned")
            'system-assigned as asked (the token does not say)'
        """
        if self.kind == "unknown" and asked is not None:
            return f"{asked} as asked (the token does not say)"
        return self.label

    def describe(self, asked: object = None) -> str:
        """One phrase for a card: the label, and whose identity it is (``asked``: as in :meth:`label_for`).

        Example::

            >>> TokenIdentity("system-assigned", name="vm-1").describe()
            "system-assigned identity of 'vm-1'"
            >>> TokenIdentity("user", name="ada@contoso.com").describe()
            'YOUR OWN user token (ada@contoso.com): it acts as you, not as a managed identity'
        """
        if self.kind == "unknown":
            return self.label_for(asked)
        if self.kind == "system-assigned":
            return f"system-assigned identity of '{self.name}'" if self.name else "system-assigned identity"
        if self.kind == "user-assigned" and self.name:
            return f"user-assigned identity '{self.name}'" + (f" (client_id={self.client_id})" if self.client_id else "")
        if self.kind == "user":
            return f"{self.label}: it acts as you, not as a managed identity"
        return self.label

    def __str__(self) -> str:
        return self.label

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output: ``kind``, ``label``, ``name``, ``clientId``, ``objectId``, ``resourceId``.

        Example::

            >>> sorted(TokenIdentity("system-assigned").to_dict())
            ['clientId', 'evidence', 'kind', 'label', 'name', 'objectId', 'resourceId']
        """
        return {"kind": self.kind, "label": self.label, "name": self.name, "clientId": self.client_id,
                "objectId": self.object_id, "resourceId": self.resource_id, "evidence": self.evidence}


def token_identity(token: Any) -> TokenIdentity:
    """Who ``token`` acts as, from its claims: a payload mapping, a :class:`~mi_notebook.claims.Claims`,
    or an ``AccessToken`` (decoded here; an opaque token is ``"unknown"``). Never what was asked.

    Example::

        >>> vm = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
        >>> who = token_identity({"appid": "c", "oid": "o", "idtyp": "app", "xms_mirid": vm})
        >>> str(who), who.name, who.client_id
        ('system-assigned', 'vm-1', 'c')
        >>> token_identity("not a token").kind
        'unknown'
    """
    payload = _payload(token)
    if payload is None:
        return TokenIdentity("unknown", evidence="the token is not a decodable JWT")
    client_id = _text(payload.get("appid")) or _text(payload.get("azp"))
    object_id = _text(payload.get("oid"))
    evidence = user_token_evidence(payload)
    if evidence is not None:
        name = _text(payload.get("upn")) or _text(payload.get("unique_name")) or _text(payload.get("name"))
        return TokenIdentity("user", client_id, object_id, name, None, evidence)
    mirid = _text(payload.get("xms_mirid"))
    if mirid is not None:
        name = mirid.rstrip("/").rsplit("/", 1)[-1]
        if mirid_kind(mirid) == "user":
            return TokenIdentity("user-assigned", client_id, object_id, name, mirid,
                                 "xms_mirid names a user-assigned identity")
        # Azure has two kinds of managed identity: any other resource id is the resource's own identity
        return TokenIdentity("system-assigned", client_id, object_id, name, mirid,
                             f"xms_mirid names the resource '{name}' (its system-assigned identity)")
    if str(payload.get("idtyp", "")).lower() == "app" and client_id:
        return TokenIdentity("app", client_id, object_id, None, None, "idtyp is 'app' and there is no xms_mirid")
    return TokenIdentity("unknown", client_id, object_id, None, None, "no xms_mirid, idtyp or user claims")


def _payload(token: Any) -> Mapping[str, Any] | None:
    if isinstance(token, Mapping):
        return token
    payload = getattr(token, "payload", None)
    if isinstance(payload, Mapping):
        return payload
    from ..errors import TokenDecodeError
    from ._decode import decode_unverified as decode

    try:  # an AccessToken keeps its decoded claims; anything else (a string, a look-alike) is decoded here
        claims = token.claims if hasattr(token, "reveal") and hasattr(token, "claims") else decode(token)
    except (TokenDecodeError, ValueError, TypeError):
        return None
    payload = getattr(claims, "payload", None)
    return payload if isinstance(payload, Mapping) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def emulator_evidence(token: Any) -> str | None:
    """Why ``token`` (a payload, :class:`~mi_notebook.claims.Claims`, ``AccessToken`` or string) is the
    mi-notebook emulator's, or ``None`` when its claims do not say so.

    Example::

        >>> emulator_evidence({"aud": "api://x", "mi_notebook_emulator": "issued by the mi-notebook emulator"})
        "its claim mi_notebook_emulator says 'issued by the mi-notebook emulator'"
        >>> emulator_evidence({"aud": "api://x"}) is None
        True
    """
    payload = _payload(token)
    if payload is None or EMULATOR_CLAIM not in payload:
        return None
    said = str(payload[EMULATOR_CLAIM])
    return f"its claim {EMULATOR_CLAIM} says {said[:120]!r}"
