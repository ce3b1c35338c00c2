"""AKS workload identity: a pod's service-account token traded at Entra ID for the identity's token.

The azure-workload-identity webhook sets four variables on a pod labelled
``azure.workload.identity/use: "true"`` (its ``pkg/webhook/webhook.go``): ``AZURE_CLIENT_ID`` (the
service account's ``azure.workload.identity/client-id`` annotation), ``AZURE_TENANT_ID``,
``AZURE_FEDERATED_TOKEN_FILE`` (the projected service-account token) and ``AZURE_AUTHORITY_HOST``
(``https://login.microsoftonline.com/``, the trailing ``/`` included). A token is the client-assertion
grant (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow, the
federated-credential case)::

    POST {AZURE_AUTHORITY_HOST}/{AZURE_TENANT_ID}/oauth2/v2.0/token
    client_id=<AZURE_CLIENT_ID>&scope=<resource>/.default&grant_type=client_credentials
    &client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    &client_assertion=<the file's contents>

* **The authority** is read as azure-identity's ``normalize_authority`` reads it: the trailing ``/``
  dropped, ``https://`` added when there is no scheme, ``http://`` refused. The cloud is whatever
  ``AZURE_AUTHORITY_HOST`` names.
* **The scope** is the resource with ``/.default`` appended, as the webhook's IMDS-compatible proxy
  sidecar does (``pkg/proxy/proxy.go``), so a token has the audience IMDS would give it
  (``https://management.azure.com/`` asks for ``https://management.azure.com//.default``).
* **The file is read again for every attempt** (:func:`~mi_notebook.sources._assertion.read_assertion`),
  never cached: the kubelet rotates it at about 80% of its lifetime and the old token dies at its
  ``exp``. azure-identity 1.27 re-reads it only every 600 s (``TokenFileMixin``), which is how
  long-running kernels come to send an expired assertion and meet AADSTS700024
  (azure-sdk-for-python#44488). An assertion already past its ``exp`` is never sent.
* **The identity** is ``AZURE_CLIENT_ID``, or one named by client id (``Identity.user(client_id=...)``,
  for a service account federated to several identities); object and resource ids are refused before
  any request (Entra's ``client_id`` is a client id).
* **Trust**: the system's CA bundle as ``requests`` sees it, or ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE`` (what azure-identity and MSAL, both on ``requests``, honour; ``SSL_CERT_FILE`` is
  not read by them, nor here), or ``verify=``. The environment's proxies apply (Entra ID is remote).
* **Errors**: Entra's refusals become the typed errors of :mod:`mi_notebook.sources._entra`, the
  AADSTS code kept (``err.aadsts``) and the fix for that code in the hint.
* **Retries**: :func:`entra_retry_policy`: 408, 429, 500, 502, 503 and 504 are retried (azure-core's
  ``RetryPolicy`` list, which azure-identity's pipeline uses), ``Retry-After`` honoured up to 60 s;
  other 4xx never (Entra's refusals do not change on a retry). Every attempt is in the timeline.

Example::

    >>> import jwt, os, tempfile
    >>> from mi_notebook.http import MockTransport
    >>> path = os.path.join(tempfile.mkdtemp(), "azure-identity-token")
    >>> with open(path, "w") as fh:
    ...     _ = fh.write(jwt.encode({"iss": "https://oidc.example/x/", "sub": "system:serviceaccount:jhub:nb",
    ...                              "aud": ["api://AzureADTokenExchange"], "exp": 4_000_000_000}, "k" * 32))
    >>> mock = MockTransport(lambda r: (200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": "a.b.c"}))
    >>> src = WorkloadIdentitySource("https://login.microsoftonline.com/", "contoso.onmicrosoft.com", path,
    ...                              client_id="6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b", transport=mock)
    >>> tok = src.request_token("arm")
    >>> tok.host, tok.identity, mock.requests[0].url
    ('workload', Identity.user(client_id='6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b'), 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token')
    >>> sorted(mock.requests[0].data), mock.requests[0].data["scope"]
    (['client_assertion', 'client_assertion_type', 'client_id', 'grant_type', 'scope'], 'https://management.azure.com//.default')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import Answer, Request, Transport, default_verify, exchange
from ..identity import Identity, validate_guid
from ..retry import AttemptOutcome, RetryPolicy, Timeline
from ..tokens import as_int
from ._assertion import Assertion, read_assertion
from ._base import TokenSource
from ._entra import entra_error
from ._settings import Secret, check_endpoint, fingerprint

__all__ = ["ASSERTION_TYPE", "VARIABLES", "WorkloadIdentitySource", "entra_retry_policy", "normalize_authority"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: the webhook's variables, in the order it sets them
VARIABLES = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST")
#: Entra ID is across the network, not a local agent: more patience than a host's endpoint
ENTRA_TIMEOUT: tuple[float, float] = (5.0, 30.0)
_RETRIED = frozenset({408, 429, 500, 502, 503, 504})
_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,256}$")
_SETUP_FIX = ("The workload-identity webhook sets it on pods labelled azure.workload.identity/use: \"true\" whose "
              "service account is annotated azure.workload.identity/client-id; check the pod (kubectl describe pod).")


def entra_retry_policy() -> RetryPolicy:
    """How a token request to Entra ID is retried: 4 attempts, waits about 0.8, 1.6 and 3.2 s (+-20%),
    ``Retry-After`` honoured up to 60 s (azure-core's back-off factor 0.8; its retried statuses).

    Example::

        >>> p = entra_retry_policy()
        >>> p.max_attempts, p.replace(jitter=0).delays(), p.max_retry_after, p.label
        (4, [0.0, 0.8, 1.6, 3.2], 60.0, 'entra')
    """
    return RetryPolicy(max_attempts=4, schedule=(0.8, 1.6, 3.2), max_backoff=60.0, jitter=0.2, gone_window=0.0,
                       max_retry_after=60.0, name="entra")


def normalize_authority(value: object, setting: str = "AZURE_AUTHORITY_HOST") -> str:
    """The authority as azure-identity reads it: no trailing ``/``, ``https://`` added when there is no
    scheme; an ``http://`` one is a :class:`~mi_notebook.errors.HostConfigurationError` (the assertion
    would travel in clear).

    Example::

        >>> normalize_authority("https://login.microsoftonline.com/"), normalize_authority("login.microsoftonline.us")
        ('https://login.microsoftonline.com', 'https://login.microsoftonline.us')
        >>> normalize_authority("http://127.0.0.1:8443/")
        Traceback (most recent call last):
        ...
        mi_notebook.errors.HostConfigurationError: AZURE_AUTHORITY_HOST='http://127.0.0.1:8443/' is not an https URL: the service-account token would be sent in clear.
        What to do: Set it to the cloud's login host, e.g. https://login.microsoftonline.com/ (the webhook sets it), or unset it.
    """
    fix = "Set it to the cloud's login host, e.g. https://login.microsoftonline.com/ (the webhook sets it), or unset it."
    if not isinstance(value, str) or not value.strip():
        raise errors.HostConfigurationError(f"{setting} is empty.", hint=fix)
    text = value.strip()
    if "://" not in text:
        text = "https://" + text
    elif not text.lower().startswith("https://"):
        raise errors.HostConfigurationError(
            f"{setting}={value.strip()[:120]!r} is not an https URL: the service-account token would be sent in clear.",
            hint=fix)
    return check_endpoint(text, setting, what_to_do=fix).rstrip("/")


class WorkloadIdentitySource(TokenSource):
    """Tokens for an AKS pod's federated identity, from Entra ID in exchange for its service-account token.

    ``authority`` (``AZURE_AUTHORITY_HOST``), ``tenant_id`` (``AZURE_TENANT_ID``), ``token_file``
    (``AZURE_FEDERATED_TOKEN_FILE``: its path; the file is read for every attempt), ``client_id``
    (``AZURE_CLIENT_ID``; ``None``: every request must name one), ``verify`` (TLS: ``True``, a CA
    bundle path; default ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, else the system's).

    Example::

        >>> WorkloadIdentitySource.from_environment({"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
        ...     "AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        ...     "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/wi/token/azure-identity-token"})
        WorkloadIdentitySource(endpoint='https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token', token_file='/var/run/secrets/azure/wi/token/azure-identity-token', client_id=None, timeout=(5, 30), retry='entra')
    """

    host = "workload"
    service = "Entra ID"
    auth_hint = None  # Entra's 401s carry an AADSTS code, explained one by one
    unreachable_hint = ("Entra ID is not answering from this pod: check outbound HTTPS (a NetworkPolicy, an egress "
                        "firewall, HTTPS_PROXY / NO_PROXY) and that AZURE_AUTHORITY_HOST is the cloud's login host.")
    foreign_hint = ("Something other than Entra ID answered at AZURE_AUTHORITY_HOST (a proxy?): check the variable "
                    "and the proxy settings.")

    def __init__(self, authority: str, tenant_id: str, token_file: str, *, client_id: str | None = None,
                 verify: bool | str | None = None, retry: RetryPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | tuple[float, float] = ENTRA_TIMEOUT, transport: Transport | None = None) -> None:
        base = normalize_authority(authority)
        tenant = tenant_id.strip() if isinstance(tenant_id, str) else ""
        if not _TENANT.match(tenant):
            raise errors.HostConfigurationError(
                f"AZURE_TENANT_ID={str(tenant_id)[:80]!r} is not a tenant id (a GUID or a domain name).",
                hint=_SETUP_FIX)
        if not isinstance(token_file, str) or not token_file.strip():
            raise errors.HostConfigurationError("AZURE_FEDERATED_TOKEN_FILE is empty.", hint=_SETUP_FIX)
        super().__init__(f"{base}/{tenant}/oauth2/v2.0/token", retry=retry or entra_retry_policy(), clock=clock,
                         timeout=timeout, transport=transport, setting="AZURE_AUTHORITY_HOST")
        self.authority, self.tenant_id, self.token_file = base, tenant, token_file.strip()
        try:
            self.client_id = validate_guid(client_id, "AZURE_CLIENT_ID") if client_id else None
        except ValueError as exc:
            raise errors.HostConfigurationError(f"{exc}.", hint="Set it to the identity's client id (the service "
                                                "account's annotation azure.workload.identity/client-id).") from None
        self.verify: bool | str = default_verify() if verify is None else verify
        # the last assertion sent, without its value, for the hints of Entra's refusals (its iss, sub and aud
        # are the same in every rotation of the file, so threads sharing the source agree on them)
        self._sent: Assertion | None = None
        who = (f"the identity AZURE_CLIENT_ID={self.client_id}" if self.client_id else
               "the identity each request names (AZURE_CLIENT_ID is not set)")
        self.note = (f"AKS workload identity: the service-account token in AZURE_FEDERATED_TOKEN_FILE is traded at "
                     f"Entra ID for a token of {who}; the file is read again for every request, so a rotated token "
                     "is always the one sent.")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> WorkloadIdentitySource:
        """Built from the webhook's four variables (``AZURE_CLIENT_ID`` may be missing: then each request
        must name the identity). ``options`` go to the constructor.

        Example::

            >>> WorkloadIdentitySource.from_environment({"AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/f"})
            Traceback (most recent call last):
            ...
            mi_notebook.errors.HostConfigurationError: AZURE_AUTHORITY_HOST is empty.
            What to do: Set it to the cloud's login host, e.g. https://login.microsoftonline.com/ (the webhook sets it), or unset it.
        """
        return cls(environ.get("AZURE_AUTHORITY_HOST", ""), environ.get("AZURE_TENANT_ID", ""),
                   environ.get("AZURE_FEDERATED_TOKEN_FILE", ""), client_id=environ.get("AZURE_CLIENT_ID") or None,
                   **options)

    @property
    def fingerprint(self) -> str | None:
        """A keyed digest of the token file's path: another service account's file, another cache key."""
        return fingerprint("workload-token-file", self.token_file)

    # --- the protocol ---------------------------------------------------------------------------------
    def _select(self, identity: Identity) -> Identity:
        selector = identity.selector
        if selector is None:
            if self.client_id is None:
                raise ValueError(
                    "AZURE_CLIENT_ID is not set, so no identity is known here: name the federated identity by its "
                    "client id (identity='client_id=<guid>'), or annotate the pod's service account with "
                    "azure.workload.identity/client-id so that the webhook sets AZURE_CLIENT_ID.")
            return Identity.user(client_id=self.client_id)
        if selector[0] != "client_id":
            raise ValueError(
                f"workload identity names an identity by its client id only (Entra ID's client_id); {selector[0]} "
                "cannot be used here. Pass the identity's client id: identity='client_id=<guid>'")
        return identity

    def _request(self, resource: str, identity: Identity) -> Request:
        read_assertion(self.token_file, now=self.clock.wall())  # a bad or expired file fails before any request
        scope = resource + "/.default"
        return Request("POST", self.endpoint, timeout=self.timeout, proxies=True, verify=self.verify,
                       headers={"Accept": "application/json"},
                       data={"client_id": str(identity.client_id), "scope": scope, "grant_type": "client_credentials",
                             "client_assertion_type": ASSERTION_TYPE})

    def _exchange(self, request: Request) -> Answer:
        assertion = read_assertion(self.token_file, now=self.clock.wall())  # read now: it may have rotated
        self._sent = dataclasses.replace(assertion, value=Secret.withheld())
        form = {**(request.data or {}), "client_assertion": assertion.value.reveal()}
        del assertion
        return exchange(dataclasses.replace(request, data=form), transport=self.transport, clock=self.clock)

    def _document(self, answer: Answer) -> Any:
        document = answer.document
        if isinstance(document, dict) and "expires_on" not in document:
            expires_in = as_int(document.get("expires_in"))
            if expires_in is not None:  # counted from when the request left, as azure-identity does
                estimate = int(self.clock.wall() - answer.elapsed) + expires_in
                document = {**document, "expires_on": _own_exp(document.get("access_token"), estimate)}
        return document

    def _retryable(self, answer: Answer, error: str | None, description: str | None) -> bool | None:
        return (answer.status or 0) in _RETRIED

    def _explain(self, status: int, error: str | None, description: str | None, answer: Answer,
                 resource: str | None, identity: Identity | None,
                 common: dict[str, Any]) -> errors.ManagedIdentityError | None:
        if status == 429 or status >= 500:
            return None
        sent = self._sent
        return entra_error(answer.document, issuer=sent.iss if sent else None, subject=sent.sub if sent else None,
                           audiences=sent.aud if sent else (), client_id=identity.client_id if identity else None,
                           tenant=self.tenant_id, resource=resource, **common)

    def _failure(self, outcome: AttemptOutcome, answer: Answer, timeline: Timeline | None, resource: str | None,
                 identity: Identity | None, what: str = "token request") -> errors.ManagedIdentityError:
        err = super()._failure(outcome, answer, timeline, resource, identity, what)
        if answer.kind == "tls":
            err.hint = (f"The TLS certificate of {self.authority} was not trusted: a pod trusts Entra ID's through the "
                        "system's CA bundle; behind a TLS-inspecting proxy (or with the mi-notebook emulator) point "
                        "REQUESTS_CA_BUNDLE at the CA bundle to trust.")
            err.args = (err._compose(),)
        return err

    def _repr_extra(self) -> str:
        return f", token_file={self.token_file!r}, client_id={self.client_id!r}"


def _own_exp(token: Any, estimate: int) -> int:
    """The token's own ``exp`` when it is a JWT whose ``exp`` is within five minutes of ``estimate`` (Entra's
    ``expires_in`` is counted on its clock, one second short of the lifetime: ``exp`` is the truth, as
    IMDS's ``expires_on`` is), else ``estimate`` (an opaque token, or a clock too far off to trust ``exp``).

    Example::

        >>> import jwt
        >>> _own_exp(jwt.encode({"exp": 1_800_000_001}, "k" * 32), 1_800_000_000), _own_exp("opaque", 5)
        (1800000001, 5)
    """
    from ..claims import decode_unverified
    from ..errors import TokenDecodeError

    try:
        exp = as_int(decode_unverified(token).payload.get("exp"))
    except (TokenDecodeError, TypeError, ValueError):
        return estimate
    return exp if exp is not None and abs(exp - estimate) <= 300 else estimate
