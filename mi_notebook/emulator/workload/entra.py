"""Entra ID's token endpoint for a workload-identity pod, its OIDC discovery, and the cluster's issuer.

:class:`EntraService` is a pure dispatcher ``(HttpRequest) -> HttpResponse`` for the emulator's
HTTPS login port (``AZURE_AUTHORITY_HOST``):

- ``POST /{tenant}/oauth2/v2.0/token`` with the client-assertion grant (``grant_type=client_credentials``,
  ``client_id``, ``scope=<resource>/.default``, ``client_assertion_type=urn:ietf:params:oauth:
  client-assertion-type:jwt-bearer``, ``client_assertion=<the projected token>``): ``{"token_type",
  "expires_in", "ext_expires_in", "access_token"}`` (a v1 token, as the first-party resources get), or
  Entra's error body (:mod:`.aadsts`);
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/discovery/v2.0/keys`` (what
  MSAL asks before its first token request);
- the emulated cluster's issuer: ``<issuer>.well-known/openid-configuration`` and ``<issuer>openid/v1/jwks``
  (dropped without an answer while the issuer is "unreachable": Entra then says AADSTS90061).

The assertion is checked in this order (best guess where Entra's order is not public): readable JWT
(50027); a federated credential matching its issuer, subject and audience (70025, 700211, 700213,
7002138, 70021); the issuer reachable (90061); its signature by the issuer's key (50013); its time
range by the emulator's clock (700024); then the resource (500011).

Example::

    >>> import json
    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator(profile="workload", arm=False, keyvault=False) as emu:
    ...     r = emu.workload.entra.handle(HttpRequest("GET", "", f"/{emu.vm.tenant_id}/oauth2/v2.0/token", "", []))
    ...     r.status, json.loads(r.body)["error_codes"]
    (400, [900561])
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import jwt

from ..clouds import cloud
from ..faults import Fault, proxy_html
from ..issuer import RESOURCE_NOT_FOUND, trace_ids
from ..server import HttpRequest, HttpResponse, json_response
from ..world import VmIdentity
from .aadsts import entra_error, entra_instant
from .federation import FederatedCredential, Refusal, match_assertion

if TYPE_CHECKING:  # pragma: no cover
    from .pod import WorkloadPod

__all__ = ["ASSERTION_TYPE", "EntraService"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CERT_DOC = {"current": "https://learn.microsoft.com/entra/identity-platform/certificate-credentials",
            "2022": "https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials"}
NO_STORE = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]
FAULT_ERRORS = {404: "not_found", 410: "gone", 429: "temporarily_unavailable", 500: "server_error",
                502: "temporarily_unavailable", 503: "temporarily_unavailable", 504: "temporarily_unavailable"}


class EntraService:
    """Entra ID for the pod of ``pod`` (a :class:`~.pod.WorkloadPod`): tokens, discovery, the cluster's issuer.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(profile="workload", arm=False, keyvault=False) as emu:
        ...     doc = emu.workload.entra.handle(HttpRequest(
        ...         "GET", "", f"/{emu.vm.tenant_id}/v2.0/.well-known/openid-configuration", "", []))
        ...     json.loads(doc.body)["token_endpoint"] == emu.token_url
        True
    """

    def __init__(self, pod: WorkloadPod) -> None:
        self.pod = pod
        self.vm = pod.vm

    # ---- routing ---------------------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpResponse:
        response = self._route(request)
        response.service = "entra"
        return response

    def _route(self, request: HttpRequest) -> HttpResponse:
        cluster = self.pod.cluster
        issuer_path = cluster.issuer_path
        if self.pod.options.issuer is None and request.path.startswith(issuer_path):
            return self._cluster_oidc(request, request.path[len(issuer_path):])
        parts = request.path.strip("/").split("/")
        tenant, rest = parts[0], "/".join(parts[1:])
        kind = {"oauth2/v2.0/token": "token", "v2.0/.well-known/openid-configuration": "openid-configuration",
                "discovery/v2.0/keys": "keys"}.get(rest)
        if kind is None:
            return json_response(404, {"error": "not_found", "error_description": "The emulated Entra ID answers "
                                       f"{', '.join(self.routes())}, not {request.path[:200]}"}, endpoint="not-found")
        fault = self.pod.faults.take("token" if kind == "token" else "instance")
        if fault is not None:
            return self._fault(fault, kind)
        if tenant.lower() != self.vm.tenant_id.lower():
            return self._error(90002, f"Tenant '{tenant[:100]}' not found. Check to make sure you have the correct "
                               "tenant ID and are signing into the correct cloud. Check with your subscription "
                               "administrator, this may happen if there are no active subscriptions for the tenant.",
                               kind)
        if kind == "token":
            return self._token(request)
        if request.method != "GET":
            return self._error(900561, f"The endpoint only accepts GET requests. Received a {request.method[:10]} "
                               "request.", kind)
        if kind == "keys":
            return json_response(200, self.pod.keys.jwks(), endpoint=kind)
        return json_response(200, self.discovery(), endpoint=kind)

    def routes(self) -> list[str]:
        """The paths served (for the 404's message)."""
        t = self.vm.tenant_id
        return [f"POST /{t}/oauth2/v2.0/token", f"GET /{t}/v2.0/.well-known/openid-configuration",
                f"GET /{t}/discovery/v2.0/keys"]

    def discovery(self) -> dict[str, Any]:
        """The tenant's v2.0 OpenID configuration, its endpoints on the emulator's login port."""
        base, tenant = self.pod.authority, self.vm.tenant_id
        played = cloud(self.vm.cloud)
        return {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                                 "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "tenant_region_scope": None,
            "cloud_instance_name": played.authority_host.removeprefix("login."),
        }

    # ---- the token endpoint ------------------------------------------------------------------------------
    def _token(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._error(900561, f"The endpoint only accepts POST, OPTIONS requests. Received a "
                               f"{request.method[:10]} request.")
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        for name in ("grant_type", "client_id", "scope"):
            if not form.get(name):
                return self._error(900144, f"The request body must contain the following parameter: '{name}'.")
        if form["grant_type"] != "client_credentials":
            return self._error(70003, f"The app requested an unsupported grant type '{form['grant_type'][:60]}'.")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            return self._error(7000216, "'client_assertion', 'client_secret' or 'request' is required for the "
                               "'client_credentials' grant type.")
        identity = self._identity(form["client_id"])
        if identity is None:
            return self._error(700016, f"Application with identifier '{form['client_id'][:60]}' was not found in the "
                               f"directory '{self.vm.tenant_id}'. This can happen if the application has not been "
                               "installed by the administrator of the tenant or consented to by any user in the "
                               "tenant. You may have sent your authentication request to the wrong tenant.")
        scopes = form["scope"].split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default") or len(scopes[0]) <= len("/.default"):
            return self._error(70011, f"The provided value for the input parameter 'scope' is not valid. The scope "
                               f"{form['scope'][:200]} is not valid.")
        resource = scopes[0][: -len("/.default")]
        verdict = self._check_assertion(form["client_assertion"], identity)
        if isinstance(verdict, HttpResponse):
            return verdict
        credential, claims = verdict
        extra = {"identity": identity.name, "credential": credential.name, "assertion_iat": claims.get("iat"),
                 "assertion_exp": claims.get("exp")}
        if self.vm.match_resource(resource) is None:
            return self._error(500011, RESOURCE_NOT_FOUND.format(resource=resource, tenant=self.vm.tenant_id),
                               extra=extra)
        body = self._issue(identity, resource)
        return json_response(200, body, endpoint="token", extra=extra, headers=[*NO_STORE, *self._echo(request)])

    def _identity(self, client_id: str) -> VmIdentity | None:
        wanted = client_id.strip().lower()
        return next((i for i in self.vm.user_identities if i.client_id.lower() == wanted), None)

    def _check_assertion(self, assertion: str,
                         identity: VmIdentity) -> tuple[FederatedCredential, dict[str, Any]] | HttpResponse:
        pod = self.pod
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return self._error(50027, "JWT token is invalid or malformed.")
        issuer, subject, audience = claims.get("iss"), claims.get("sub"), claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if not isinstance(issuer, str) or not isinstance(subject, str) or not all(isinstance(a, str) for a in audiences):
            return self._error(50027, "JWT token is invalid or malformed.")
        now = self.pod.clock()
        found = match_assertion(pod.federated_credentials, issuer=issuer, subject=subject, audiences=audiences,
                                client_id=identity.client_id, now=now, propagation=pod.options.propagation,
                                era=pod.options.entra_errors, identity_name=identity.name)
        if isinstance(found, Refusal):
            return self._error(found.code, found.sentence, extra={"identity": identity.name})
        extra = {"identity": identity.name, "credential": found.name}
        if not pod.issuer_reachable or issuer != pod.cluster.issuer:
            return self._error(90061, "Request to External OIDC endpoint failed.", extra=extra)
        try:
            pod.cluster.verify(assertion)
        except (jwt.InvalidTokenError, ValueError):
            return self._error(50013, "Assertion failed signature validation. [Reason - The key was not found.]",
                               extra=extra)
        nbf, exp = claims.get("nbf"), claims.get("exp")
        valid_from = float(nbf) if isinstance(nbf, (int, float)) else 0.0
        if not isinstance(exp, (int, float)) or now >= exp or now < valid_from:
            expiry = entra_instant(exp) if isinstance(exp, (int, float)) else entra_instant(0)
            return self._error(700024, f"Client assertion is not within its valid time range. Current time: "
                               f"{entra_instant(now)}, assertion valid from {entra_instant(valid_from)}, expiry time "
                               f"of assertion {expiry}. Review the documentation at "
                               f"{CERT_DOC[pod.options.entra_errors]} .",
                               extra={**extra, "assertion_iat": claims.get("iat"), "assertion_exp": exp})
        return found, claims

    def _issue(self, identity: VmIdentity, resource: str) -> dict[str, Any]:
        """A fresh v1 token for ``identity`` (Entra signs a new one per request: no cache here)."""
        now = int(self.pod.clock())
        lifetime = int(self.vm.token_lifetime)
        issuer = self.pod.issuer
        claims = issuer.claims(identity, resource, iat=now - 300, nbf=now - 300, exp=now + lifetime)
        expires_in = max(lifetime - 1, 0)  # the documented example answers 3599 for an hour
        return {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                "access_token": self.pod.keys.issue(claims)}

    # ---- answers ------------------------------------------------------------------------------------------
    def _error(self, code: int, sentence: str, endpoint: str = "token",
               extra: dict[str, Any] | None = None) -> HttpResponse:
        status, body = entra_error(code, sentence, now=self.pod.clock(), one_line=self.pod.options.entra_errors ==
                                   "current", authority_host=cloud(self.vm.cloud).authority_host)
        return json_response(status, body, endpoint=endpoint, extra={**(extra or {}), "aadsts": code},
                             headers=[*NO_STORE, ("x-ms-request-id", body["trace_id"])])

    @staticmethod
    def _echo(request: HttpRequest) -> list[tuple[str, str]]:
        sent = request.header("client-request-id")
        return [("client-request-id", sent[:100])] if sent else []

    def _cluster_oidc(self, request: HttpRequest, rest: str) -> HttpResponse:
        if not self.pod.issuer_reachable:
            return HttpResponse(0, endpoint="cluster-oidc", action="drop")
        if request.method != "GET":
            return json_response(405, {"error": "method not allowed"}, endpoint="cluster-oidc",
                                 headers=[("Allow", "GET")])
        if rest == ".well-known/openid-configuration":
            return json_response(200, self.pod.cluster.discovery(), endpoint="cluster-oidc")
        if rest == "openid/v1/jwks":
            return json_response(200, self.pod.cluster.jwks(), endpoint="cluster-oidc")
        return json_response(404, {"error": "not found"}, endpoint="cluster-oidc")

    def _fault(self, fault: Fault, endpoint: str) -> HttpResponse:
        kind, label = fault.kind, fault.label
        if isinstance(kind, int):
            trace, correlation = trace_ids()
            gap = " " if self.pod.options.entra_errors == "current" else "\r\n"
            body = {"error": FAULT_ERRORS[kind], "error_codes": [], "trace_id": trace, "correlation_id": correlation,
                    "error_description": f"The service answered {kind} (an injected fault).{gap}Trace ID: {trace}"}
            headers = [("Retry-After", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
            return json_response(kind, body, endpoint=endpoint, fault=label, headers=headers)
        if kind in ("hang", "drop"):
            return HttpResponse(0, endpoint=endpoint, fault=label, action=str(kind), hang_seconds=fault.seconds)
        if kind == "html":
            status = fault.status or 200
            return HttpResponse(status, proxy_html(status), "text/html; charset=utf-8", endpoint=endpoint,
                                fault=label)
        identity = self.pod.identity
        body = self._issue(identity, cloud(self.vm.cloud).arm_endpoint.rstrip("/"))
        if kind == "bad-expires":
            if fault.variant == "string":
                body["expires_in"] = "tomorrow"
            else:
                body.pop("expires_in")
        raw = json.dumps(body, separators=(",", ":")).encode()
        if kind == "truncated":
            if fault.variant == "incomplete":
                return HttpResponse(200, raw, endpoint=endpoint, fault=label, action="incomplete")
            raw = raw[: max(1, len(raw) // 2)]
        return HttpResponse(200, raw, endpoint=endpoint, fault=label)
