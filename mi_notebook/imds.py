"""The IMDS token request: what is sent, how often, and what comes back.

``ImdsClient`` sends exactly the documented request (``GET <base>/metadata/identity/oauth2/token``
with ``api-version``, ``resource`` and at most one of ``client_id`` / ``object_id`` / ``msi_res_id``,
header ``Metadata: true``) through the one HTTP exchange (:func:`mi_notebook.http.exchange`) and the
retry machinery of :mod:`mi_notebook.retry`, and turns the last answer into an
:class:`~mi_notebook.tokens.AccessToken` or one error of :mod:`mi_notebook.errors`. It does not
cache: :mod:`mi_notebook.connection` puts the process-wide cache in front of it.

Wire rules (each one fixes a failure seen in other clients; :mod:`mi_notebook.http` applies them):

* Proxies are never used for IMDS, whatever ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` say,
  not even through a caller's ``requests.Session``; a set proxy variable is logged once.
* Redirects are never followed; IMDS never redirects, so a 3xx is someone else answering.
* Connect and read time-outs are explicit (``timeout=(connect, read)``).

How each answer counts and ends (:mod:`mi_notebook.imds_errors` implements this table):

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
body cut short on the wire (fewer bytes     yes          UnexpectedResponseError (IMDS did answer:
than Content-Length, connection closed)                  its status is in the error)
3xx (never followed)                        no           UnexpectedResponseError
an HTML page, whatever the status           no           UnexpectedResponseError
2xx / 4xx with a non-JSON body, malformed   no           UnexpectedResponseError
or truncated JSON, missing fields, bad
``expires_on`` (2xx)
==========================================  ===========  ===========================================

A body cut short in transit is treated like a dropped connection (a transient transport failure,
so it is retried), whereas a complete body that is not a valid token answer is deterministic
(a proxy page, another cloud's metadata service) and retrying it only wastes the user's time.
Error classes are chosen from the status and IMDS's ``error`` code first; ``error_description``
is only a hint (Microsoft says the wording may change), with :class:`BadRequestError` as fallback.

Example::

    >>> from mi_notebook.emulator import Emulator
    >>> with Emulator() as emu, ImdsClient(url=emu.imds_url) as client:
    ...     token = client.request_token("arm")
    >>> token.resource
    'https://management.azure.com/'
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .clock import SYSTEM_CLOCK, Clock
from .http import (
    USER_AGENT,
    Answer,
    Request,
    Transport,
    choose_transport,
    exchange,
    proxy_variables,
    timeout_pair,
)
from .identity import Identity
from .imds_errors import classify_failure, judge
from .resources import resolve_resource
from .retry import AttemptOutcome, RetryPolicy, execute
from .tokens import AccessToken

if TYPE_CHECKING:  # pragma: no cover
    from .retry import Attempt, Timeline

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TIMEOUT",
    "IMDS_URL",
    "TOKEN_PATH",
    "ImdsClient",
    "classify_failure",
    "proxy_variables",
]

IMDS_URL = "http://169.254.169.254"
TOKEN_PATH = "/metadata/identity/oauth2/token"
DEFAULT_API_VERSION = "2018-02-01"
#: (connect, read) seconds. IMDS is link-local: a connection takes milliseconds or never happens;
#: a token answer may need a round trip to Entra ID, so the read time-out is more generous.
DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 10.0)

OnAttempt = Callable[["Attempt", "float | None", int], None]


class ImdsClient:
    """Requests managed-identity tokens from IMDS (or anything speaking its protocol), with retries.

    ``url`` is the base of the endpoint (``http://169.254.169.254``, or an emulator's
    ``http://127.0.0.1:PORT``); the token path is appended. ``retry`` is the policy, ``clock`` a
    :class:`~mi_notebook.clock.Clock` (a ``VirtualClock`` runs retries in virtual time),
    ``source`` what the tokens are labelled as (``"imds"``, or ``"emulator"``: an answer carrying the
    emulator's ``X-Mi-Notebook-Emulator`` header is labelled so whatever this says), ``timeout`` is
    ``(connect, read)`` in seconds (a single number is used for both). ``transport`` sends the
    requests (default: the real wire; a :class:`~mi_notebook.http.MockTransport` in tests);
    ``session`` may be a caller's ``requests.Session`` instead: proxies are bypassed and redirects
    refused on it too. Thread-safe.

    Example::

        >>> client = ImdsClient(url="http://127.0.0.1:8080", timeout=(0.5, 5))
        >>> client.token_url
        'http://127.0.0.1:8080/metadata/identity/oauth2/token'
        >>> client.token_params("arm")
        [('api-version', '2018-02-01'), ('resource', 'https://management.azure.com/')]
        >>> client.close()
    """

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
        source: str = "imds",
    ) -> None:
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"IMDS url must look like http://host[:port], got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"IMDS url must be a base url without query or fragment, got {url!r}")
        self.url = url.rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy()
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must be a mi_notebook.clock.Clock (e.g. VirtualClock()); got {clock!r}")
        self.clock = clock
        if source not in ("imds", "emulator"):
            raise ValueError(f"source must be 'imds' or 'emulator'; got {source!r}")
        self.source = source
        self.timeout = timeout_pair(timeout)
        if not api_version or not isinstance(api_version, str):
            raise ValueError(f"api_version must be a non-empty string, got {api_version!r}")
        self.api_version = api_version
        self.transport = choose_transport(transport, session)

    # -- the request ---------------------------------------------------------------------------
    @property
    def token_url(self) -> str:
        """The full token endpoint URL."""
        return self.url + TOKEN_PATH

    def token_params(self, resource: str, identity: Identity | str | None = None) -> list[tuple[str, str]]:
        """The query parameters, in the order they are sent; ``ValueError`` for bad input.

        Example::

            >>> from mi_notebook.identity import Identity
            >>> ImdsClient(url="http://127.0.0.1:1").token_params(
            ...     "vault", Identity.user(client_id="11111111-2222-3333-4444-555555555555"))[2]
            ('client_id', '11111111-2222-3333-4444-555555555555')
        """
        ident = Identity.parse(identity)
        params = [("api-version", self.api_version), ("resource", resolve_resource(resource))]
        params.extend(ident.query_params().items())
        return params

    def request_token(
        self,
        resource: str,
        identity: Identity | str | None = None,
        *,
        on_attempt: OnAttempt | None = None,
    ) -> AccessToken:
        """Ask IMDS for a token for ``resource`` (alias, App ID URI or ``.default`` scope), no cache.

        ``identity``: ``Identity.system()`` (default), ``Identity.user(...)``, or text accepted by
        ``Identity.parse``. ``on_attempt(attempt, next_wait, max_attempts)`` is called after every
        attempt (progress for the CLI and widgets). Returns an ``AccessToken`` whose ``timeline``
        records every attempt; raises a :class:`~mi_notebook.errors.ManagedIdentityError` subclass.
        Bad input raises ``ValueError`` before any request.

        Example::

            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator() as emu, ImdsClient(url=emu.imds_url) as client:
            ...     tok = client.request_token("vault")
            >>> tok.resource, len(tok.timeline), tok.source
            ('https://vault.azure.net', 1, 'emulator')

        Without sockets, the answer comes from a :class:`~mi_notebook.http.MockTransport`::

            >>> from mi_notebook.clock import VirtualClock
            >>> from mi_notebook.http import MockTransport
            >>> body = {"access_token": "a.b.c", "expires_on": "1800000000", "not_before": "1.7e9"}
            >>> client = ImdsClient(url="http://127.0.0.1:1", clock=VirtualClock(1_750_000_000),
            ...                     transport=MockTransport(lambda request: (200, {}, body)))
            >>> tok = client.request_token("vault")
            >>> tok.not_before, tok.source, client.transport.requests[0].headers["Metadata"]
            (1700000000, 'imds', 'true')
        """
        ident = Identity.parse(identity)
        params = self.token_params(resource, ident)
        outcome, last, timeline = self._with_retries(self.token_url, params, on_attempt, expect_token=True)
        if not _is_success(outcome):
            raise classify_failure(outcome, last, timeline, endpoint=self.url, resource=params[1][1],
                                   identity=ident, timeout=self.timeout)
        return AccessToken.from_response(
            outcome.value,
            source="emulator" if last.from_emulator else self.source,  # type: ignore[arg-type]
            identity=ident,
            resource_requested=params[1][1],
            endpoint=self.url,
            fetched_at=self.clock.wall(),
            timeline=timeline,
        )

    def get_json(
        self,
        path: str,
        params: list[tuple[str, str]] | None = None,
        *,
        on_attempt: OnAttempt | None = None,
    ) -> tuple[dict[str, Any], Timeline]:
        """GET a JSON document from another IMDS path (instance metadata), with the same wire rules.

        Returns ``(document, timeline)``; errors are classified as for tokens. Used by
        :mod:`mi_notebook.metadata`.

        Example::

            >>> from mi_notebook.emulator import Emulator
            >>> with Emulator() as emu, ImdsClient(url=emu.imds_url) as client:
            ...     doc, timeline = client.get_json("/metadata/versions")
            >>> "2018-02-01" in doc["apiVersions"], timeline.summary()[:9]
            (True, '1 attempt')
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        outcome, last, timeline = self._with_retries(self.url + path, list(params or []), on_attempt,
                                                     expect_token=False)
        if _is_success(outcome):
            return outcome.value, timeline
        raise classify_failure(outcome, last, timeline, endpoint=self.url, timeout=self.timeout,
                               what="instance metadata request")

    def _with_retries(
        self, url: str, params: list[tuple[str, str]], on_attempt: OnAttempt | None, *, expect_token: bool
    ) -> tuple[AttemptOutcome, Answer, Timeline]:
        """Send with the retry policy; returns the final outcome, its answer, and the timeline."""
        answers: list[Answer] = []

        def send(number: int) -> AttemptOutcome:
            client_request_id = str(uuid.uuid4())
            request = Request("GET", url, params=params, timeout=self.timeout, proxies=False, headers={
                "Metadata": "true",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                "x-ms-client-request-id": client_request_id,
            })
            answer = exchange(request, transport=self.transport, clock=self.clock)
            answers.append(answer)
            return judge(answer, client_request_id=client_request_id, now=self.clock.wall(),
                         expect_token=expect_token)

        outcome, timeline = execute(send, self.retry, clock=self.clock, on_attempt=on_attempt)
        return outcome, answers[-1], timeline

    def close(self) -> None:
        """Nothing to release: the real transport is process-wide, a caller's session or transport is theirs."""

    def __enter__(self) -> ImdsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        connect, read = self.timeout
        return (
            f"ImdsClient(url={self.url!r}, api_version={self.api_version!r}, "
            f"timeout=({connect:g}, {read:g}), max_attempts={self.retry.max_attempts})"
        )


def _is_success(outcome: AttemptOutcome) -> bool:
    return outcome.ok and outcome.value is not None
