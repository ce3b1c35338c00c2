"""The emulated AKS cluster: its OIDC issuer, its signing key, and the projected service-account tokens.

A projected token is a JWT the cluster signs (RS256, header ``alg`` and ``kid``) with the claims of the
public example: ``aud`` (a list: ``api://AzureADTokenExchange``), ``exp``, ``iat``, ``nbf``, ``iss`` (the
cluster's OIDC issuer URL, with its trailing ``/``), ``kubernetes.io`` (namespace, pod and service
account, with uids), ``sub`` (``system:serviceaccount:<namespace>:<name>``) and ``jti`` (a unique id,
as Kubernetes 1.29 and later add: two tokens minted in the same second still differ). The issuer publishes
``<issuer>.well-known/openid-configuration`` and ``<issuer>openid/v1/jwks`` (Kubernetes' service
account issuer discovery), which is where Entra ID fetches the keys to check the token.

Example::

    >>> from mi_notebook.emulator.workload.options import WorkloadOptions
    >>> cluster = Cluster(WorkloadOptions(token_lifetime=600), seed=0, tenant_id="t")
    >>> cluster.bind("https://127.0.0.1:8443")
    >>> cluster.issuer.endswith("/"), cluster.issuer.startswith("https://127.0.0.1:8443/aks-oidc/t/")
    (True, True)
    >>> sa = cluster.mint(1_700_000_000)
    >>> sa.expires_on - sa.issued_at, sorted(cluster.verify(sa.token))
    (600, ['aud', 'exp', 'iat', 'iss', 'jti', 'kubernetes.io', 'mi_notebook_emulator', 'nbf', 'sub'])
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ..keys import SigningKeys
from ..world import stable_guid
from .options import WorkloadOptions

__all__ = ["ISSUER_PREFIX", "Cluster", "ServiceAccountToken"]

ISSUER_PREFIX = "/aks-oidc"  # where the emulated cluster's issuer lives on the emulator's HTTPS port
_JWK_KEYS = ("use", "kty", "kid", "alg", "n", "e")  # what a Kubernetes JWKS publishes


@dataclass(frozen=True)
class ServiceAccountToken:
    """One projected token: the JWT (``token``: a credential, never shown) and its times.

    ``serial`` counts the tokens the kubelet wrote (1 for the first, 2 after the first rotation, ...).

    Example::

        >>> ServiceAccountToken("eyJ...", issued_at=100, expires_on=3700, serial=1)
        ServiceAccountToken(issued_at=100, expires_on=3700, serial=1)
    """

    token: str = field(repr=False)
    issued_at: int
    expires_on: int
    serial: int

    @property
    def lifetime(self) -> int:
        return self.expires_on - self.issued_at


class Cluster:
    """The cluster the pod runs in: its issuer, its key, its names; mints the pod's projected tokens.

    ``bind`` sets the issuer URL once the emulator's HTTPS port is known (unless ``options.issuer``
    fixed it). The key is the cluster's own, distinct from Entra's: a token it signs is no Entra
    token, and Entra checks it against the cluster's JWKS, never its own.

    Example::

        >>> c = Cluster(WorkloadOptions(issuer="https://oidc.example/abc/"), seed=1, tenant_id="t")
        >>> c.bind("https://127.0.0.1:1"); c.issuer
        'https://oidc.example/abc/'
        >>> c.discovery()["jwks_uri"]
        'https://oidc.example/abc/openid/v1/jwks'
    """

    def __init__(self, options: WorkloadOptions, *, seed: int | str, tenant_id: str) -> None:
        self.options = options
        self.tenant_id = tenant_id
        self.keys = SigningKeys()
        self.cluster_id = stable_guid(seed, "aks:cluster")
        self.pod_uid = stable_guid(seed, f"aks:pod:{options.namespace}/{options.pod}")
        self.service_account_uid = stable_guid(seed, f"aks:sa:{options.namespace}/{options.service_account}")
        self.issuer: str = options.issuer or ""
        self._serial = 0

    @property
    def subject(self) -> str:
        return self.options.subject

    @property
    def issuer_path(self) -> str:
        """The issuer's path on the emulator's HTTPS port (``/aks-oidc/<tenant>/<cluster id>/``)."""
        return f"{ISSUER_PREFIX}/{self.tenant_id}/{self.cluster_id}/"

    def bind(self, base_url: str) -> None:
        """Serve the issuer under ``base_url`` (an ``https://host:port``), unless the options named one."""
        if self.options.issuer is None:
            self.issuer = base_url.rstrip("/") + self.issuer_path

    def claims(self, now: int) -> dict[str, Any]:
        """The claims of a token issued at ``now`` (epoch seconds)."""
        o = self.options
        return {
            "aud": [o.audience],
            "exp": now + o.token_lifetime,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": o.namespace,
                "pod": {"name": o.pod, "uid": self.pod_uid},
                "serviceaccount": {"name": o.service_account, "uid": self.service_account_uid},
            },
            "nbf": now,
            "sub": self.subject,
        }

    def mint(self, now: float) -> ServiceAccountToken:
        """A fresh projected token issued at ``now``, signed by the cluster's key."""
        issued = int(now)
        self._serial += 1
        token = self.keys.issue(self.claims(issued), headers={"alg": "RS256", "kid": self.keys.kid})
        return ServiceAccountToken(token, issued, issued + self.options.token_lifetime, self._serial)

    def discovery(self) -> dict[str, Any]:
        """The issuer's ``.well-known/openid-configuration`` (Kubernetes' service account issuer discovery)."""
        return {"issuer": self.issuer, "jwks_uri": self.issuer + "openid/v1/jwks",
                "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"]}

    def jwks(self) -> dict[str, Any]:
        """The issuer's public keys (``openid/v1/jwks``)."""
        jwk = self.keys.jwk()
        return {"keys": [{k: jwk[k] for k in _JWK_KEYS}]}

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` if the cluster's key signed it (times are not checked here: Entra does).

        Raises ``jwt.InvalidTokenError`` (``InvalidSignatureError``, ``DecodeError``...) otherwise.
        """
        return self.keys.verify(token, now=lambda: 0.0, leeway=float("inf"))

