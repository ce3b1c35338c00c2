"""The emulated Entra side of IMDS: v1 access tokens for the VM's identities, cached as IMDS caches them.

IMDS keeps one token per (identity, resource) for most of its life: a repeated request gets the
same token and ``expires_on`` with a smaller ``expires_in``. A fresh token has ``nbf`` and ``iat``
back-dated 300 s, so ``exp - nbf = lifetime + 300`` (86700 s by default).

Example::

    >>> from mi_notebook.emulator.keys import SigningKeys
    >>> from mi_notebook.emulator.world import VirtualMachine
    >>> now = [1_700_000_000.0]
    >>> issuer = TokenIssuer(VirtualMachine.build(), SigningKeys(), clock=lambda: now[0])
    >>> ident = issuer.vm.system_identity
    >>> first = issuer.get(ident, "https://management.azure.com/")
    >>> first.expires_on - first.not_before
    86700
    >>> now[0] += 60
    >>> again = issuer.get(ident, "https://management.azure.com/")
    >>> again is first, issuer.response_body(again)["expires_in"]
    (True, '86340')
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .keys import SigningKeys
from .world import VirtualMachine, VmIdentity

__all__ = ["BACKDATE_SECONDS", "RESOURCE_NOT_FOUND", "IssuedToken", "TokenIssuer", "resource_not_found", "trace_ids"]

BACKDATE_SECONDS = 300
#: AADSTS500011's sentence (Entra's; IMDS and the other hosts relay it)
RESOURCE_NOT_FOUND = ("The resource principal named {resource} was not found in the tenant named {tenant}. This can "
                      "happen if the application has not been installed by the administrator of the tenant or "
                      "consented to by any user in the tenant. You might have sent your authentication request "
                      "to the wrong tenant.")


def _opaque(n: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class IssuedToken:
    """A token the emulator issued (the raw JWT is ``access_token``: never log it).

    Example::

        >>> issuer = TokenIssuer(VirtualMachine.build(), SigningKeys(), clock=lambda: 1_700_000_000)
        >>> issuer.get(issuer.vm.system_identity, "https://vault.azure.net")  # the repr leaves the JWT out
        IssuedToken(identity='vm-notebook', resource='https://vault.azure.net', expires_on=1700086400)
    """

    access_token: str
    identity: VmIdentity
    resource: str
    issued_at: int
    not_before: int
    expires_on: int
    ext_expires_in: int

    def __repr__(self) -> str:  # the token itself stays out of reprs and logs
        return (f"IssuedToken(identity={self.identity.name!r}, resource={self.resource!r}, "
                f"expires_on={self.expires_on})")


class TokenIssuer:
    """Issues and caches tokens for ``vm``'s identities, signed by ``keys``, timed by ``clock``.

    Example::

        >>> vm = VirtualMachine.build(seed=1)
        >>> issuer = TokenIssuer(vm, SigningKeys(), clock=lambda: 1_700_000_000)
        >>> tok = issuer.get(vm.user_identities[0], "https://storage.azure.com/")
        >>> claims = issuer.keys.verify(tok.access_token, issuer=issuer.issuer_url(), now=1_700_000_000)
        >>> claims["oid"] == vm.user_identities[0].object_id, claims["aud"], issuer.issued
        (True, 'https://storage.azure.com/', 1)
        >>> sorted(issuer.response_body(tok))
        ['access_token', 'client_id', 'expires_in', 'expires_on', 'ext_expires_in', 'not_before', 'resource', 'token_type']
    """

    def __init__(self, vm: VirtualMachine, keys: SigningKeys, *, clock: Callable[[], float] = time.time) -> None:
        self.vm = vm
        self.keys = keys
        self.clock = clock
        self._cache: dict[tuple[str, str], IssuedToken] = {}
        self._lock = threading.Lock()
        self.issued = 0  # fresh tokens signed (cache misses)

    def issuer_url(self) -> str:
        """The tokens' ``iss``: the VM's cloud's v1 issuer for its tenant (``https://sts.windows.net/<tenant>/``)."""
        return self.vm.issuer_url

    def get(self, identity: VmIdentity, resource: str) -> IssuedToken:
        """The cached token for (identity, resource), or a fresh one when none is left with enough life.

        A cached token is served while more than ``min(300 s, lifetime / 2)`` of it remains.
        """
        key = (identity.object_id.lower(), resource)
        now = int(self.clock())
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.identity == identity:
                lifetime = cached.expires_on - cached.issued_at
                if cached.expires_on - now > min(BACKDATE_SECONDS, lifetime // 2):
                    return cached
            token = self._issue(identity, resource, now)
            self._cache[key] = token
            self.issued += 1
            return token

    def _issue(self, identity: VmIdentity, resource: str, now: int) -> IssuedToken:
        lifetime = int(self.vm.token_lifetime)
        nbf = now - BACKDATE_SECONDS
        exp = now + lifetime
        token = self.keys.issue(self.claims(identity, resource, iat=nbf, nbf=nbf, exp=exp))
        # ext_expires_in: every public capture shows one second less than the lifetime ("86399")
        return IssuedToken(token, identity, resource, now, nbf, exp, max(lifetime - 1, 0))

    def claims(self, identity: VmIdentity, resource: str, *, iat: int, nbf: int, exp: int) -> dict[str, Any]:
        """The v1 app-only claims of a managed-identity token for ``resource`` (``aud`` = it, verbatim)."""
        vm = self.vm
        iss = self.issuer_url()
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": iss,
            "iat": iat,
            "nbf": nbf,
            "exp": exp,
            "aio": "k2BgYP" + _opaque(30),
            "appid": identity.client_id,
            "appidacr": "2",
            "idp": iss,
            "idtyp": "app",
            "oid": identity.object_id,
            "rh": "0.A" + _opaque(40) + ".",
            "sub": identity.object_id,
            "tid": vm.tenant_id,
            "uti": _opaque(16),
            "ver": "1.0",
            "xms_mirid": identity.mirid,
        }
        if identity.kind == "user":
            claims["xms_az_rid"] = _lower_ids(vm.resource_id)
        claims["xms_tcdt"] = str(vm.tenant_created)  # a string in live tokens (captured)
        return claims

    def response_body(self, token: IssuedToken) -> dict[str, str]:
        """The success body IMDS sends: every value a string, keys as seen live (alphabetical)."""
        now = int(self.clock())
        return {
            "access_token": token.access_token,
            "client_id": token.identity.client_id,
            "expires_in": str(max(0, token.expires_on - now)),
            "expires_on": str(token.expires_on),
            "ext_expires_in": str(token.ext_expires_in),
            "not_before": str(token.not_before),
            "resource": token.resource,
            "token_type": "Bearer",
        }

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def cached(self) -> list[IssuedToken]:
        with self._lock:
            return list(self._cache.values())


def _lower_ids(resource_id: str) -> str:
    parts = resource_id.split("/")
    return "/".join(p.lower() if p.lower() in {"subscriptions", "resourcegroups", "providers"} else p
                    for p in parts)


def trace_ids() -> tuple[str, str]:
    """A (trace id, correlation id) pair for AADSTS error descriptions.

    Example::

        >>> trace, correlation = trace_ids()
        >>> len(trace), trace != correlation
        (36, True)
    """
    return str(uuid.uuid4()), str(uuid.uuid4())


def resource_not_found(resource: str, tenant_id: str, now: float) -> str:
    """Entra's AADSTS500011 description for a resource the tenant does not know (IMDS relays it).

    The layout is Entra's: the sentence, then ``Trace ID``, ``Correlation ID`` and ``Timestamp`` each on
    a line of its own (``\\r\\n``), as the bodies quoted in public threads show.

    Example::

        >>> text = resource_not_found("https://nope.example/", "t", 0)
        >>> text.split(". ")[0]
        'AADSTS500011: The resource principal named https://nope.example/ was not found in the tenant named t'
        >>> [line.split(":")[0] for line in text.split("\\r\\n")[1:]]
        ['Trace ID', 'Correlation ID', 'Timestamp']
    """
    trace, correlation = trace_ids()
    stamp = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return (f"AADSTS500011: {RESOURCE_NOT_FOUND.format(resource=resource, tenant=tenant_id)}\r\nTrace ID: "
            f"{trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}")
