"""An Azure VM's IMDS: the VM's token source, one more source on the one pipeline.

:class:`ImdsSource` (also public as ``mi.ImdsClient``) sends exactly the documented request
(``GET <base>/metadata/identity/oauth2/token`` with ``api-version``, ``resource`` and at most one of
``client_id`` / ``object_id`` / ``msi_res_id``, header ``Metadata: true``, a fresh
``x-ms-client-request-id`` per attempt) through :class:`~mi_notebook.sources.TokenSource`'s retry
loop, classification and error mapping. What is IMDS's own lives here, as that base's hooks:

* the documented retry table (:class:`~mi_notebook.retry.RetryPolicy`'s defaults: 404, 410, 429 and
  5xx retried, waits about 0, 2, 6, 14, 30 s, and the 410 rule: keep trying for at least 70 s);
* IMDS always answers JSON, so a 4xx in plain text is not IMDS speaking (``text_errors = False``);
* its errors: 404/410 after the retries are :class:`~mi_notebook.errors.ImdsUpdatingError`, "Multiple
  user assigned identities" is :class:`~mi_notebook.errors.MultipleIdentitiesError`, time-outs are
  :class:`~mi_notebook.errors.ImdsTimeoutError`;
* instance metadata (:meth:`ImdsSource.get_json`), under the same wire rules.

It does not cache: :mod:`mi_notebook.connection` puts the process-wide cache in front of it. Wire
rules (:mod:`mi_notebook.http` applies them): never a proxy, never a redirect, explicit
``(connect, read)`` time-outs.

==========================================  ===========  ===========================================
answer                                      retried      error when it is the last answer
==========================================  ===========  ===========================================
2xx with a valid token body                 (success)    -
400 ``invalid_resource``                    no           InvalidResourceError
400 "Identity not found"                    no           IdentityNotFoundError
400 "Multiple user assigned identities"     no           MultipleIdentitiesError
other 4xx (400, 401, 403, 405, ...)         no           BadRequestError
404 / 410 with a JSON (or empty) body       yes          ImdsUpdatingError (410: for >= 70 s)
429 (JSON, text or empty body)              yes          ThrottledError (Retry-After honoured)
5xx (JSON, text or empty body)              yes          ServerError
connect or read time-out                    yes          ImdsTimeoutError
refused / reset / dropped before an answer  yes          EndpointUnreachableError
TLS failure (an https url)                  no           EndpointUnreachableError
body cut short on the wire                  yes          UnexpectedResponseError (status kept)
3xx (never followed), an HTML page, a 2xx   no           UnexpectedResponseError
or 4xx that is not JSON, a 2xx without a
usable token (missing fields, bad
``expires_on``)
==========================================  ===========  ===========================================

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator() as emu, ImdsSource(url=emu.imds_url) as client:
    ...     token = client.request_token("arm")
    >>> token.resource
    'https://management.azure.com/'
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import USER_AGENT, Answer, Request, Transport, choose_transport
from ..identity import Identity
from ..resources import resolve_resource
from ..retry import RetryPolicy, Timeline
from ._base import OnAttempt, TokenSource
from ._settings import check_endpoint

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_TIMEOUT", "IMDS_URL", "TOKEN_PATH", "ImdsClient", "ImdsSource"]

IMDS_URL = "http://169.254.169.254"
TOKEN_PATH = "/metadata/identity/oauth2/token"
DEFAULT_API_VERSION = "2018-02-01"
#: (connect, read) seconds. IMDS is link-local: a connection takes milliseconds or never happens;
#: a token answer may need a round trip to Entra ID, so the read time-out is more generous.
DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 10.0)


class ImdsSource(TokenSource):
    """Tokens from IMDS (or anything speaking its protocol, like the emulator), with its retries.

    ``url`` is the base of the endpoint (``http://169.254.169.254``, or an emulator's
    ``http://127.0.0.1:PORT``); the token path is appended. It is checked like every host's
    endpoint (no user info, no query or fragment). ``retry`` is the policy (default: the documented
    table), ``clock`` a :class:`~mi_notebook.clock.Clock` (a ``VirtualClock`` runs retries in
    virtual time), ``timeout`` ``(connect, read)`` in seconds (a single number is used for both).
    ``transport`` sends the requests (default: the real wire; a
    :class:`~mi_notebook.http.MockTransport` in tests); ``session`` may be a caller's
    ``requests.Session`` instead: proxies are bypassed and redirects refused on it too. An answer
    carrying the emulator's ``X-Mi-Notebook-Emulator`` header is labelled as the emulator's. Thread-safe.

    Example::

        >>> client = ImdsSource(url="http://127.0.0.1:8080", timeout=(0.5, 5))
        >>> client.host, client.token_url
        ('vm', 'http://127.0.0.1:8080/metadata/identity/oauth2/token')
        >>> client.token_params("arm")
        [('api-version', '2018-02-01'), ('resource', 'https://management.azure.com/')]
        >>> client.close()
    """

    host = "vm"
    service = "IMDS"
    text_errors = False
    timeout_error = errors.ImdsTimeoutError
    unreachable_hint: ClassVar[str | None] = None  # the error classes' own hints are IMDS's
    auth_hint: ClassVar[str | None] = None  # IMDS takes no secret
    identity_hint: ClassVar[str | None] = None
    identity_where = " on this VM (or the VM has no identity)"
    foreign_hint: ClassVar[str | None] = None

    def __init__(
        self,
        url: str = IMDS_URL,
        *,
        retry: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        transport: Transport | None = None,
        session: Any = None,
        api_version: str = DEFAULT_API_VERSION,
        source: str | None = None,
    ) -> None:
        base = check_endpoint(url, "IMDS url",
                              what_to_do="Pass the base URL of IMDS (http://169.254.169.254) or of an emulator "
                                         "(http://127.0.0.1:PORT), without a path to the token.")
        if "?" in base:
            raise errors.HostConfigurationError(f"IMDS url={base!r} must be a base URL without a query.",
                                                hint="Pass the base URL only, e.g. http://169.254.169.254.")
        super().__init__(base.rstrip("/"), retry=retry if retry is not None else RetryPolicy(), clock=clock,
                         timeout=timeout, transport=choose_transport(transport, session), setting="IMDS url")
        if not api_version or not isinstance(api_version, str):
            raise ValueError(f"api_version must be a non-empty string, got {api_version!r}")
        self.api_version = api_version
        self._labelled_emulator = False
        if source is not None:
            import warnings

            warnings.warn("ImdsSource(source=...) is deprecated: a token says the emulator issued it when the "
                          "answer says so (AccessToken.emulated)", DeprecationWarning, stacklevel=2)
            if source not in ("imds", "emulator"):
                raise ValueError(f"source must be 'imds' or 'emulator'; got {source!r}")
            self._labelled_emulator = source == "emulator"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], **options: Any) -> ImdsSource:
        """IMDS at ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` if set (as azure-identity reads it), else at
        :data:`IMDS_URL`; ``options`` go to the constructor.

        Example::

            >>> ImdsSource.from_environment({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9/"}).url
            'http://127.0.0.1:9'
        """
        return cls((environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or IMDS_URL).strip(), **options)

    @property
    def url(self) -> str:
        """The base URL (the endpoint tokens name)."""
        return self.endpoint

    @property
    def token_url(self) -> str:
        """The full token endpoint URL."""
        return self.endpoint + TOKEN_PATH

    def token_params(self, resource: str, identity: Identity | str | None = None) -> list[tuple[str, str]]:
        """The query parameters, in the order they are sent; ``ValueError`` for bad input.

        Example::

            >>> from mi_notebook.identity import Identity
            >>> ImdsSource(url="http://127.0.0.1:1").token_params(
            ...     "vault", Identity.user(client_id="11111111-2222-3333-4444-555555555555"))[2]
            ('client_id', '11111111-2222-3333-4444-555555555555')
        """
        ident = Identity.parse(identity)
        params = [("api-version", self.api_version), ("resource", resolve_resource(resource))]
        params.extend(ident.query_params().items())
        return params

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None, *,
                 on_attempt: OnAttempt | None = None) -> tuple[dict[str, Any], Timeline]:
        """GET a JSON document from another IMDS path (instance metadata), on the same pipeline.

        Returns ``(document, timeline)``; errors are classified as for tokens. Used by
        :mod:`mi_notebook.metadata`.

        Example::

            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator() as emu, ImdsSource(url=emu.imds_url) as client:
            ...     doc, timeline = client.get_json("/metadata/versions")
            >>> "2018-02-01" in doc["apiVersions"], timeline.summary()[:9]
            (True, '1 attempt')
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        return self._fetch_json(self._get(self.endpoint + path, tuple(params or ())), on_attempt,
                                "instance metadata request")

    # --- the protocol ---------------------------------------------------------------------------------
    def _request(self, resource: str, identity: Identity) -> Request:
        return self._get(self.token_url, tuple(self.token_params(resource, identity)))

    def _get(self, url: str, params: tuple[tuple[str, str], ...]) -> Request:
        return Request("GET", url, params=params, timeout=self.timeout, proxies=False, headers={
            "Metadata": "true", "Accept": "application/json", "User-Agent": USER_AGENT})

    def _attempt(self, request: Request) -> Request:
        return dataclasses.replace(request, headers={**request.headers, "x-ms-client-request-id": str(uuid.uuid4())})

    def _retryable(self, answer: Answer, error: str | None, description: str | None) -> bool | None:
        return None  # the documented table: the policy's statuses (404, 410, 429, 5xx)

    def _emulated(self, answer: Answer) -> bool:
        return answer.from_emulator or self._labelled_emulator

    def _explain(self, status: int, error: str | None, description: str | None, answer: Answer,
                 resource: str | None, identity: Identity | None,
                 common: dict[str, Any]) -> errors.ManagedIdentityError | None:
        timeline = common.get("timeline")
        attempts = len(timeline) if timeline is not None else 1
        tried = f"after {attempts} attempts" if attempts > 1 else "on the only attempt"
        what = "token request" if resource is not None else "instance metadata request"
        if status in (404, 410):
            gone = " (410: IMDS says it is updating and will be back within 70 seconds)" if status == 410 else ""
            total = f" for {timeline.total:.0f} s" if timeline is not None else ""
            res = f" (resource {resource})" if resource else ""
            return errors.ImdsUpdatingError(
                f"IMDS at {self.endpoint} kept answering HTTP {status}{gone} to the {what}{res}{total} ({tried}).",
                **common)
        code, desc = (error or "").strip().lower(), (description or "").lower()
        if status == 400 and code in ("invalid_request", "bad_request", "") and "multiple" in desc and "identit" in desc:
            who = f"for {identity}" if identity is not None else "for the default identity"
            return errors.MultipleIdentitiesError(
                "This VM has several user-assigned identities and no system-assigned one, so IMDS needs to be "
                f"told which to use; the request asked {who}.", **common)
        return None

    def __repr__(self) -> str:
        connect, read = self.timeout
        return (f"{type(self).__name__}(url={self.endpoint!r}, api_version={self.api_version!r}, "
                f"timeout=({connect:g}, {read:g}), max_attempts={self.retry.max_attempts})")


#: the name IMDS's source had before every host shared one pipeline (``mi.ImdsClient``): the same class
ImdsClient = ImdsSource
