"""Managed-identity-shaped tokens for the claims, checks, glossary and JWKS tests (signed locally).

The payloads follow the claim rows of docs/emulator.md (each with its public source): every claim of
a v1 managed-identity token; and the v2 differences of Microsoft's access token claims reference
(https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
System-assigned tokens name the VM in ``xms_mirid``, user-assigned ones the identity (and the VM in
``xms_az_rid``).
"""

from __future__ import annotations

import base64
import functools
import json

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

NOW = 1_767_225_600  # 2026-01-01 00:00:00 UTC
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
VM_ID = f"/subscriptions/{SUB}/resourcegroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-demo"
UAMI_ID = f"/subscriptions/{SUB}/resourcegroups/rg-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app"
SYSTEM_CLIENT, SYSTEM_OID = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
USER_CLIENT, USER_OID = "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"
ARM = "https://management.azure.com/"


@functools.cache
def rsa_key(index: int = 0) -> rsa.RSAPrivateKey:
    """A private key per index, generated once per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_for(private_key: rsa.RSAPrivateKey, kid: str = "key-1") -> dict:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", x5t=kid)
    return {"keys": [jwk]}


def payload(kind: str = "system", version: str = "1.0", now: int = NOW, lifetime: int = 86400, **changes) -> dict:
    """An emulator-like managed-identity payload; ``changes`` set claims (``None`` removes one)."""
    issued = now - 300
    p = {
        "aud": ARM,
        "iss": f"https://sts.windows.net/{TID}/" if version == "1.0" else f"https://login.microsoftonline.com/{TID}/v2.0",
        "iat": issued,
        "nbf": issued,
        "exp": now + lifetime,
        "aio": "k2BgYDi8uvf1",
        "idp": f"https://sts.windows.net/{TID}/",
        "idtyp": "app",
        "rh": "0.AXAAv4j5cvGGr0GRqy180BHbRw",
        "tid": TID,
        "uti": "Q8dTNU2xlEeyXq5Ur7AAAA",
        "ver": version,
        "xms_tcdt": 1289241547,
    }
    client, oid = (SYSTEM_CLIENT, SYSTEM_OID) if kind == "system" else (USER_CLIENT, USER_OID)
    if version == "1.0":
        p.update(appid=client, appidacr="2")
    else:
        p.update(azp=client, azpacr="2")
    p.update(oid=oid, sub=oid)
    if kind == "system":
        p["xms_mirid"] = VM_ID
    else:
        p.update(xms_mirid=UAMI_ID, xms_az_rid=VM_ID)
    for name, value in changes.items():
        if value is None:
            p.pop(name, None)
        else:
            p[name] = value
    return p


def make_token(private_key: rsa.RSAPrivateKey, kid: str = "key-1", **kw) -> str:
    return jwt.encode(payload(**kw), private_key, algorithm="RS256", headers={"kid": kid, "x5t": kid})


class FakeAccessToken:
    """The duck type decode() accepts: anything with reveal() (tokens.AccessToken's shape)."""

    def __init__(self, raw, resource=ARM, identity=None, expires_on=None):
        self._raw = raw
        self.resource = resource
        self.identity = identity
        self.expires_on = expires_on

    def reveal(self):
        return self._raw

    def __repr__(self):
        return "FakeAccessToken(<redacted>)"


def status_of(checks, name):
    return next(c for c in checks if c.name == name)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj) -> str:
    return b64(json.dumps(obj).encode())


def emulator_token(emu, identity, **selector):
    """An ``AccessToken`` for ARM from a running emulator's IMDS side (loopback)."""
    import requests

    from mi_notebook.tokens import AccessToken

    params = {"api-version": "2018-02-01", "resource": ARM, **selector}
    response = requests.get(f"{emu.imds_url}/metadata/identity/oauth2/token", params=params,
                            headers={"Metadata": "true"}, timeout=5)
    assert response.status_code == 200, response.text
    return AccessToken.from_response(response.json(), host="vm", emulated=True, identity=identity,
                                     resource_requested=ARM, endpoint=emu.imds_url)
