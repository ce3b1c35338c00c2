"""The signed-in user of the hosts that hand out *user* tokens, and those tokens.

Two hosts answer a managed-identity style request with the token of the person signed in rather than
a managed identity's: Azure Cloud Shell (always) and an Azure ML compute instance with SSO on (when
the request names no client id). Their tokens are v1 *delegated* tokens: ``idtyp`` "user", ``upn`` /
``unique_name`` / ``name``, the user's ``oid``, ``scp``, ``amr``, and no ``xms_mirid`` (that claim
only names managed identities). Like IMDS, the endpoints keep a token per (app, resource) until it
is nearly spent (Cloud Shell documents it: "The local authentication endpoint caches tokens").

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> from mi_notebook.emulator.world import VirtualMachine
    >>> vm = VirtualMachine.build()
    >>> user = SignedInUser.build(seed=vm.seed)
    >>> users = UserTokenIssuer(vm, user, SigningKeys(), clock=lambda: 1_700_000_000)
    >>> tok = users.get("cloudshell", "https://management.azure.com/")
    >>> claims = users.keys.verify(tok.access_token, now=1_700_000_000)
    >>> claims["idtyp"], claims["upn"] == user.upn, "xms_mirid" in claims, tok.expires_on - tok.issued_at
    ('user', True, False, 3600)
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..issuer import BACKDATE_SECONDS, _opaque
from ..keys import SigningKeys
from ..world import VirtualMachine, stable_guid

__all__ = ["USER_TOKEN_LIFETIME", "IssuedUserToken", "SignedInUser", "UserTokenIssuer"]

USER_TOKEN_LIFETIME = 3600  # seconds; Entra's user access tokens live 60-90 minutes (default lifetime)
# the built-in "User" role template id Entra puts in ``wids`` for ordinary members
_USER_ROLE_TEMPLATE = "b79fbf4d-3ef9-4689-8143-76b194e85509"


@dataclass(frozen=True)
class SignedInUser:
    """The person signed in to the portal / the compute instance (all values are made up).

    Example::

        >>> u = SignedInUser.build(seed=0)
        >>> u.upn, u.name
        ('ada.lovelace@contoso.onmicrosoft.com', 'Ada Lovelace')
        >>> SignedInUser.build(seed=0, spec={"upn": "grace@contoso.onmicrosoft.com"}).name
        'grace'
    """

    upn: str
    name: str
    given_name: str
    family_name: str
    object_id: str
    puid: str

    @classmethod
    def build(cls, *, seed: int | str = 0, spec: Mapping[str, Any] | None = None) -> SignedInUser:
        """A user whose ids derive from ``seed``; ``spec`` may set ``upn``, ``name``, ``given_name``,
        ``family_name``, ``object_id``."""
        spec = dict(spec or {})
        unknown = set(spec) - {"upn", "name", "given_name", "family_name", "object_id"}
        if unknown:
            raise ValueError(f"unknown user keys: {sorted(unknown)} (known: upn, name, given_name, "
                             "family_name, object_id)")
        upn = str(spec.get("upn") or "ada.lovelace@contoso.onmicrosoft.com")
        if "@" not in upn:
            raise ValueError(f"a user's upn looks like name@domain, got {upn!r}")
        default_name = "Ada Lovelace" if "upn" not in spec else upn.split("@")[0]
        name = str(spec.get("name") or default_name)
        given, _, family = name.partition(" ")
        puid = hashlib.sha256(f"{seed}:puid:{upn}".encode()).hexdigest()[:16].upper()
        return cls(upn=upn, name=name, given_name=str(spec.get("given_name") or given),
                   family_name=str(spec.get("family_name") or family),
                   object_id=str(spec.get("object_id") or stable_guid(seed, f"user-principal:{upn}")),
                   puid=puid)

    def to_dict(self) -> dict[str, str]:
        return {"upn": self.upn, "name": self.name, "given_name": self.given_name,
                "family_name": self.family_name, "object_id": self.object_id}


@dataclass(frozen=True)
class IssuedUserToken:
    """A user token the emulator issued for ``app`` (the raw JWT is ``access_token``: never log it).

    Example::

        >>> users = UserTokenIssuer(VirtualMachine.build(), SignedInUser.build(), SigningKeys())
        >>> users.get("azureml", "https://vault.azure.net")  # the repr leaves the JWT out
        IssuedUserToken(user='ada.lovelace@contoso.onmicrosoft.com', app='azureml', resource='https://vault.azure.net')
    """

    access_token: str
    user: SignedInUser
    app: str
    resource: str
    issued_at: int
    not_before: int
    expires_on: int

    def __repr__(self) -> str:
        return f"IssuedUserToken(user={self.user.upn!r}, app={self.app!r}, resource={self.resource!r})"


class UserTokenIssuer:
    """Signs and caches the signed-in user's tokens, per (app, resource), with the emulator's keys.

    ``app`` names the first-party application that asks Entra on the user's behalf (``"cloudshell"``,
    ``"azureml"``); its ``appid`` is a GUID derived from the seed (the real apps' ids are not
    reproduced). Lifetime: :data:`USER_TOKEN_LIFETIME`, or the VM's token lifetime when shorter.

    Example::

        >>> vm = VirtualMachine.build(token_lifetime=600)
        >>> users = UserTokenIssuer(vm, SignedInUser.build(seed=vm.seed), SigningKeys(), clock=lambda: 1_700_000_000)
        >>> tok = users.get("cloudshell", "https://management.azure.com/")
        >>> tok.expires_on - tok.issued_at, users.get("cloudshell", "https://management.azure.com/") is tok
        (600, True)
        >>> users.app_id("cloudshell") != users.app_id("azureml"), users.clear()
        (True, 1)
    """

    def __init__(self, vm: VirtualMachine, user: SignedInUser, keys: SigningKeys, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.vm = vm
        self.user = user
        self.keys = keys
        self.clock = clock
        self._cache: dict[tuple[str, str], IssuedUserToken] = {}
        self._lock = threading.Lock()

    def app_id(self, app: str) -> str:
        return stable_guid(self.vm.seed, f"first-party-app:{app}")

    def get(self, app: str, resource: str) -> IssuedUserToken:
        """The cached token for (app, resource), or a fresh one when less than min(300 s, half its
        lifetime) is left."""
        now = int(self.clock())
        key = (app, resource)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                lifetime = cached.expires_on - cached.issued_at
                if cached.expires_on - now > min(BACKDATE_SECONDS, lifetime // 2):
                    return cached
            lifetime = min(USER_TOKEN_LIFETIME, int(self.vm.token_lifetime))
            nbf = now - BACKDATE_SECONDS
            token = IssuedUserToken(self.keys.issue(self.claims(app, resource, iat=nbf, exp=now + lifetime)),
                                    self.user, app, resource, now, nbf, now + lifetime)
            self._cache[key] = token
            return token

    def claims(self, app: str, resource: str, *, iat: int, exp: int) -> dict[str, Any]:
        """The v1 delegated claims: ``aud`` is the resource verbatim; ``sub`` is pairwise (per app)."""
        user = self.user
        tenant = self.vm.tenant_id
        iss = self.vm.issuer_url
        sub = base64.urlsafe_b64encode(
            hashlib.sha256(f"{user.object_id}:{app}".encode()).digest()).rstrip(b"=").decode("ascii")
        return {
            "aud": resource, "iss": iss, "iat": iat, "nbf": iat, "exp": exp,
            "acr": "1", "aio": "AVQAq/8" + _opaque(40), "amr": ["pwd", "mfa"],
            "appid": self.app_id(app), "appidacr": "0",
            "family_name": user.family_name, "given_name": user.given_name,
            "idtyp": "user", "ipaddr": "203.0.113.7", "name": user.name, "oid": user.object_id,
            "puid": user.puid, "rh": "1.A" + _opaque(40) + ".", "scp": "user_impersonation",
            "sub": sub, "tid": tenant, "unique_name": user.upn, "upn": user.upn, "uti": _opaque(16),
            "ver": "1.0", "wids": [_USER_ROLE_TEMPLATE], "xms_tcdt": str(self.vm.tenant_created),
        }

    def clear(self) -> int:
        with self._lock:
            n = len(self._cache)
            self._cache.clear()
        return n

    def cached(self) -> list[IssuedUserToken]:
        with self._lock:
            return list(self._cache.values())
