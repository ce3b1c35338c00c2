"""The IMDS token request on the wire, the parsing of its answer, and the classification of failures.

``ImdsClient`` sends exactly the documented request (``GET <base>/metadata/identity/oauth2/token``
with ``api-version``, ``resource`` and at most one of ``client_id`` / ``object_id`` / ``msi_res_id``,
header ``Metadata: true``), through the retry machinery of :mod:`mi_notebook.retry`, and turns the
last answer into an :class:`~mi_notebook.tokens.AccessToken` or one error of :mod:`mi_notebook.errors`.
It does not cache: :mod:`mi_notebook.connection` puts the process-wide cache in front of it.

Transport decisions (each one fixes a failure seen in other clients):

* Proxies are never used for IMDS, whatever ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` say: our
  own session has ``trust_env = False`` and every request also nulls the proxy keys explicitly, so a
  caller's session cannot route IMDS through a proxy either. A set proxy variable is logged once.
* Redirects are never followed; IMDS never redirects, so a 3xx is someone else answering.
* Connect and read time-outs are explicit (``timeout=(connect, read)``).

How each answer counts (``AttemptOutcome``) and ends (the error raised once retries stop):

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

import email.utils
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.exceptions import ChunkedEncodingError, ConnectTimeout, ReadTimeout
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from . import errors
from .clock import SYSTEM_CLOCK, Clock
from .identity import Identity
from .resources import resolve_resource
from .retry import AttemptOutcome, RetryPolicy, execute
from .tokens import as_int

if TYPE_CHECKING:  # pragma: no cover
    from .retry import Attempt, Timeline
    from .tokens import AccessToken

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_TIMEOUT",
    "IMDS_URL",
    "TOKEN_PATH",
    "ImdsClient",
    "ImdsAnswer",
    "proxy_variables",
]

logger = logging.getLogger(__name__)

IMDS_URL = "http://169.254.169.254"
TOKEN_PATH = "/metadata/identity/oauth2/token"
DEFAULT_API_VERSION = "2018-02-01"
#: (connect, read) seconds. IMDS is link-local: a connection takes milliseconds or never happens;
#: a token answer may need a round trip to Entra ID, so the read time-out is more generous.
DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 10.0)
#: Bodies larger than this are not IMDS (a token answer is a few kB); reading stops there.
MAX_BODY = 1 << 20
USER_AGENT = "mi-notebook"

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_proxy_warned = False
_proxy_warn_lock = threading.Lock()

OnAttempt = Callable[["Attempt", "float | None", int], None]


def proxy_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy variables that are set (name -> value), which IMDS requests ignore.

    Example::

        >>> proxy_variables({"HTTPS_PROXY": "http://proxy:3128", "PATH": "/bin"})
        {'HTTPS_PROXY': 'http://proxy:3128'}
    """
    env = os.environ if environ is None else environ
    return {name: env[name] for name in PROXY_VARIABLES if env.get(name)}


def _warn_proxies_once() -> None:
    global _proxy_warned
    if _proxy_warned:
        return
    found = proxy_variables()
    if not found:
        return
    with _proxy_warn_lock:
        if _proxy_warned:
            return
        _proxy_warned = True
    logger.warning(
        "%s set: ignored for IMDS requests (IMDS must never be reached through a proxy; "
        "requests to other hosts are not affected).",
        ", ".join(sorted(found)),
    )


@dataclass(frozen=True)
class ImdsAnswer:
    """What one HTTP exchange produced, beyond the ``AttemptOutcome`` fields (for error messages).

    ``kind``: ``"json"`` (a JSON object body), ``"empty"``, ``"html"``, ``"text"`` (anything else),
    ``"truncated"`` (fewer bytes than announced), ``"redirect"``, ``"timeout"``, ``"connect-timeout"``,
    ``"unreachable"``. ``problem`` says what is wrong with a body that was meant to be a token.

    Example::

        >>> ImdsAnswer(kind="html", status=200, content_type="text/html").kind
        'html'
    """

    kind: str
    status: int | None = None
    content_type: str | None = None
    snippet: str | None = None
    location: str | None = None
    server: str | None = None
    problem: str | None = None
    exception: BaseException | None = None
    emulator: bool = False  # the answer carried the emulator's X-Mi-Notebook-Emulator header


class ImdsClient:
    """Requests managed-identity tokens from IMDS (or anything speaking its protocol), with retries.

    ``url`` is the base of the endpoint (``http://169.254.169.254``, or an emulator's
    ``http://127.0.0.1:PORT``); the token path is appended. ``retry`` is the policy, ``clock`` a
    :class:`~mi_notebook.clock.Clock` (a ``VirtualClock`` runs retries in virtual time),
    ``source`` what the tokens are labelled as (``"imds"``, or ``"emulator"``: an answer carrying the
    emulator's ``X-Mi-Notebook-Emulator`` header is labelled so whatever this says),
    ``timeout`` is ``(connect, read)`` in
    seconds (a single number is used for both). ``session`` may be a caller's ``requests.Session``:
    proxies are bypassed and redirects refused on it too. Thread-safe (requests' connection pool is).

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
        session: requests.Session | None = None,
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
        self.timeout = _normalise_timeout(timeout)
        if not api_version or not isinstance(api_version, str):
            raise ValueError(f"api_version must be a non-empty string, got {api_version!r}")
        self.api_version = api_version
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies, no .netrc, no REQUESTS_CA_BUNDLE from the env
            session.proxies.clear()
        self.session = session

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
        """
        ident = Identity.parse(identity)
        params = self.token_params(resource, ident)
        resource_uri = params[1][1]
        outcome, last, timeline = self._with_retries(lambda: self._send_token_request(params), on_attempt)
        if _is_success(outcome):
            return self._token_from(outcome.value, resource_uri, ident, timeline, emulator=last.emulator)
        raise self._error_from(outcome, last, timeline, resource_uri, ident)

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
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        outcome, last, timeline = self._with_retries(
            lambda: self._send(self.url + path, list(params or []), expect_token=False), on_attempt
        )
        if _is_success(outcome):
            return outcome.value, timeline
        raise self._error_from(outcome, last, timeline, None, None, what="instance metadata request")

    def _with_retries(
        self, send_once: Callable[[], tuple[AttemptOutcome, ImdsAnswer]], on_attempt: OnAttempt | None
    ) -> tuple[AttemptOutcome, ImdsAnswer, Timeline]:
        """Apply the retry policy to ``send_once``; returns the final outcome, its raw answer, the timeline."""
        answers: list[ImdsAnswer] = []

        def send(number: int) -> AttemptOutcome:
            outcome, answer = send_once()
            answers.append(answer)
            return outcome

        outcome, timeline = execute(send, self.retry, clock=self.clock, on_attempt=on_attempt)
        return outcome, answers[-1], timeline

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._own_session:
            self.session.close()

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

    # -- one HTTP exchange ---------------------------------------------------------------------
    def _send_token_request(self, params: list[tuple[str, str]]) -> tuple[AttemptOutcome, ImdsAnswer]:
        return self._send(self.token_url, params, expect_token=True)

    def _send(
        self, url: str, params: list[tuple[str, str]], *, expect_token: bool
    ) -> tuple[AttemptOutcome, ImdsAnswer]:
        _warn_proxies_once()
        client_request_id = str(uuid.uuid4())
        headers = {
            "Metadata": "true",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "x-ms-client-request-id": client_request_id,
        }
        try:
            response = self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                proxies=_no_proxies(url),
                stream=True,
            )
        except ConnectTimeout as exc:
            answer = ImdsAnswer(kind="connect-timeout", exception=exc)
            return AttemptOutcome(exception=exc, request_id=client_request_id), answer
        except ReadTimeout as exc:
            answer = ImdsAnswer(kind="timeout", exception=exc)
            return AttemptOutcome(exception=exc, request_id=client_request_id), answer
        except requests.RequestException as exc:
            answer = ImdsAnswer(kind="unreachable", exception=exc)
            return AttemptOutcome(exception=exc, request_id=client_request_id), answer
        except OSError as exc:  # e.g. a PermissionError from a sandbox
            answer = ImdsAnswer(kind="unreachable", exception=exc)
            return AttemptOutcome(exception=exc, request_id=client_request_id), answer

        with response:
            return self._read_answer(response, client_request_id, expect_token=expect_token)

    def _read_answer(
        self, response: requests.Response, client_request_id: str, *, expect_token: bool
    ) -> tuple[AttemptOutcome, ImdsAnswer]:
        status = response.status_code
        headers = response.headers
        request_id = headers.get("x-ms-request-id") or headers.get("x-ms-client-request-id") or client_request_id
        content_type = headers.get("Content-Type")
        server = headers.get("Server")
        retry_after = _parse_retry_after(headers.get("Retry-After"), self.clock.wall)

        def outcome(**kw: Any) -> AttemptOutcome:
            return AttemptOutcome(status=status, request_id=request_id, retry_after=retry_after, **kw)

        try:
            body = _read_body(response)
        except (ChunkedEncodingError, ProtocolError, requests.ConnectionError, ReadTimeoutError) as exc:
            timed_out = _is_read_timeout(exc)
            answer = ImdsAnswer(
                kind="timeout" if timed_out else "truncated",
                status=status,
                content_type=content_type,
                server=server,
                problem=(
                    f"the body did not arrive within the {self.timeout[1]:g} s read time-out"
                    if timed_out
                    else f"the connection closed before the whole body arrived ({_short(exc)})"
                ),
                exception=exc,
            )
            # A transport failure: retried like a dropped connection; the status is kept because
            # something did answer (the error must never say "no response").
            return outcome(exception=exc, retryable=True), answer

        if 300 <= status < 400:
            location = headers.get("Location")
            problem = f"a redirect to {location!r}" if location else "a redirect"
            exc = _UnexpectedAnswer(f"HTTP {status}: {problem}; IMDS never redirects")
            answer = ImdsAnswer("redirect", status, content_type, _snippet(body), location, server, problem, exc)
            return outcome(exception=exc), answer

        kind, document = _parse_body(body, content_type)
        snippet = _snippet(body)
        if kind != "json":
            # An HTML page, whatever its status, is never IMDS (a proxy, a captive portal, another
            # cloud's 404 page): not retried. Plain text on 429 / 5xx: the status decides.
            foreign = kind == "html" or (kind != "empty" and status < 500 and status != 429)
            if foreign or (kind == "empty" and 200 <= status < 300):
                # Not IMDS speaking (a proxy page, another cloud's metadata service): not retried.
                problem = {
                    "html": "an HTML page",
                    "empty": "an empty body",
                    "text": "a body that is not JSON",
                    "invalid-json": "malformed or truncated JSON",
                }[kind]
                exc = _UnexpectedAnswer(f"HTTP {status} with {problem}")
                answer = ImdsAnswer(kind, status, content_type, snippet, None, server, problem, exc)
                return outcome(exception=exc), answer
            # An error status with an empty/plain body: the status alone decides.
            answer = ImdsAnswer(kind, status, content_type, snippet, None, server)
            return outcome(error=None, error_description=snippet or None), answer

        error_code, description = _error_fields(document)
        if 200 <= status < 300:
            if expect_token:
                problem = _token_body_problem(document, self.clock.wall())
                if problem:
                    exc = _UnexpectedAnswer(f"HTTP {status} but {problem}")
                    answer = ImdsAnswer("json", status, content_type, None, None, server, problem, exc)
                    return outcome(exception=exc), answer
            answer = ImdsAnswer("json", status, content_type, None, None, server,
                                emulator="X-Mi-Notebook-Emulator" in headers)
            return outcome(value=document), answer
        answer = ImdsAnswer("json", status, content_type, snippet, None, server)
        return outcome(error=error_code, error_description=description), answer

    # -- the end result ------------------------------------------------------------------------
    def _token_from(
        self,
        document: dict[str, Any],
        resource: str,
        identity: Identity,
        timeline: Timeline,
        *,
        emulator: bool,
    ) -> AccessToken:
        from .tokens import AccessToken

        return AccessToken.from_response(
            document,
            source="emulator" if emulator else self.source,  # type: ignore[arg-type]
            identity=identity,
            resource_requested=resource,
            endpoint=self.url,
            fetched_at=self.clock.wall(),
            timeline=timeline,
        )

    def _error_from(
        self,
        outcome: AttemptOutcome,
        answer: ImdsAnswer,
        timeline: Timeline,
        resource: str | None,
        identity: Identity | None,
        *,
        what: str = "token request",
    ) -> errors.ManagedIdentityError:
        return classify_failure(
            outcome,
            answer,
            timeline,
            endpoint=self.url,
            resource=resource,
            identity=identity,
            timeout=self.timeout,
            what=what,
        )


# --- classification ------------------------------------------------------------------------------
class _UnexpectedAnswer(ValueError):
    """Marks an attempt whose answer is not IMDS speaking (recorded in the timeline, not retried)."""


def classify_failure(
    outcome: AttemptOutcome,
    answer: ImdsAnswer,
    timeline: Timeline | None,
    *,
    endpoint: str,
    resource: str | None = None,
    identity: Identity | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    what: str = "token request",
) -> errors.ManagedIdentityError:
    """The error for the last answer of a failed request (see the module table).

    Example::

        >>> from mi_notebook.retry import AttemptOutcome
        >>> err = classify_failure(
        ...     AttemptOutcome(status=400, error="invalid_resource", error_description="AADSTS500011"),
        ...     ImdsAnswer(kind="json", status=400), None, endpoint="http://127.0.0.1:1",
        ...     resource="https://nope.example/")
        >>> type(err).__name__, err.status
        ('InvalidResourceError', 400)
    """
    status = answer.status if answer.status is not None else outcome.status
    common: dict[str, Any] = {
        "status": status,
        "error": outcome.error,
        "error_description": outcome.error_description,
        "request_id": outcome.request_id,
        "timeline": timeline,
        "endpoint": endpoint,
    }
    attempts = len(timeline) if timeline is not None else 1
    tried = f"after {attempts} attempts" if attempts > 1 else "on the only attempt"
    who = f"for {identity}" if identity is not None else ""
    res = f" (resource {resource})" if resource else ""

    if answer.kind in ("timeout", "connect-timeout"):
        connect, read = timeout
        if answer.kind == "connect-timeout":
            msg = f"No connection to {endpoint} within the {connect:g} s connect time-out ({tried})."
        elif answer.status is not None:
            msg = (
                f"{endpoint} sent HTTP {answer.status} but not the whole body within the {read:g} s "
                f"read time-out ({tried})."
            )
        else:
            msg = f"{endpoint} accepted the connection but sent no answer within the {read:g} s read time-out ({tried})."
        common["status"] = answer.status
        return errors.ImdsTimeoutError(msg, **common)

    if answer.kind == "unreachable":
        msg = f"Could not reach {endpoint}: {_reason(answer.exception)} ({tried}); no HTTP answer was received."
        common["status"] = None
        return errors.EndpointUnreachableError(msg, **common)

    if answer.kind == "truncated":
        msg = (
            f"{endpoint} answered HTTP {answer.status} to the {what}, but {answer.problem} ({tried}). "
            "Something between this machine and IMDS cut the answer short."
        )
        return errors.UnexpectedResponseError(msg, **common)

    if answer.exception is not None and isinstance(answer.exception, _UnexpectedAnswer):
        detail = answer.problem or str(answer.exception)
        if answer.kind == "redirect":
            msg = f"{endpoint} answered the {what} with HTTP {status}, {detail}; IMDS never redirects, so this is not IMDS."
        else:
            ctype = f" ({answer.content_type})" if answer.content_type else ""
            msg = f"{endpoint} answered the {what} with HTTP {status}{ctype} and {detail}: that is not a valid IMDS answer."
        if answer.server and not answer.server.upper().startswith("IMDS"):
            msg += f" The server calls itself {answer.server!r}."
        if answer.snippet and answer.kind in ("html", "text", "invalid-json"):
            msg += f" The body starts: {answer.snippet!r}."
        return errors.UnexpectedResponseError(msg, **common)

    code = (outcome.error or "").strip().lower()
    desc = (outcome.error_description or "").lower()
    if status is None:
        return errors.EndpointUnreachableError(
            f"The {what} to {endpoint} failed ({tried}): {_reason(outcome.exception)}.", **common
        )
    if status in (404, 410):
        gone = " (410: IMDS says it is updating and will be back within 70 seconds)" if status == 410 else ""
        total = f" for {timeline.total:.0f} s" if timeline is not None else ""
        return errors.ImdsUpdatingError(
            f"IMDS at {endpoint} kept answering HTTP {status}{gone} to the {what}{res}{total} ({tried}).",
            **common,
        )
    if status == 429:
        return errors.ThrottledError(
            f"IMDS at {endpoint} throttled the {what} (HTTP 429) {tried}: too many token requests from this VM.",
            **common,
        )
    if 500 <= status < 600:
        return errors.ServerError(
            f"IMDS at {endpoint} failed on its side (HTTP {status}) {tried}{res}.", **common
        )
    if 400 <= status < 500:
        if code == "invalid_resource" or "aadsts500011" in desc or "aadsts50001:" in desc:
            return errors.InvalidResourceError(
                f"Entra ID does not know the resource {resource!r} in this tenant, so IMDS refused the token request."
                if resource
                else f"IMDS refused the {what}: unknown resource.",
                **common,
            )
        if status == 400 and code in ("invalid_request", "bad_request", "") or code.startswith("bad_request"):
            if "multiple" in desc and "identit" in desc:
                return errors.MultipleIdentitiesError(
                    f"This VM has several user-assigned identities and no system-assigned one, so IMDS "
                    f"needs to be told which to use; the request asked {who or 'for the default identity'}.",
                    **common,
                )
            if "identity not found" in desc or ("identity" in desc and "not found" in desc):
                target = str(identity) if identity is not None else "the requested identity"
                return errors.IdentityNotFoundError(
                    f"IMDS found no identity matching {target} on this VM (or the VM has no identity).",
                    **common,
                )
        return errors.BadRequestError(
            f"IMDS rejected the {what}{res} with HTTP {status}; the request itself must change.", **common
        )
    return errors.UnexpectedResponseError(
        f"{endpoint} answered the {what} with HTTP {status}, which IMDS never sends.", **common
    )


# --- helpers -------------------------------------------------------------------------------------
def _is_success(outcome: AttemptOutcome) -> bool:
    return outcome.ok and outcome.value is not None



def _normalise_timeout(timeout: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        pair = (float(timeout), float(timeout))
    elif isinstance(timeout, tuple) and len(timeout) == 2:
        pair = (float(timeout[0]), float(timeout[1]))
    else:
        raise ValueError(f"timeout must be seconds or (connect, read) seconds, got {timeout!r}")
    if not all(0 < t < 3600 for t in pair):
        raise ValueError(f"time-outs must be positive and under an hour, got {timeout!r}")
    return pair


def _no_proxies(url: str) -> dict[str, None]:
    """Proxy keys nulled for this request: requests drops None entries after merging the session's
    and the environment's proxies, so none of them can apply."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return {
        key: None
        for key in (parts.scheme, "all", f"{parts.scheme}://{host}", f"all://{host}", "http", "https")
    }


def _read_body(response: requests.Response) -> bytes:
    chunks = []
    size = 0
    for chunk in response.iter_content(chunk_size=16384):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)


def _is_read_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (ReadTimeoutError, ReadTimeout, TimeoutError)):
            return True
        for arg in getattr(cur, "args", ()):
            if isinstance(arg, (ReadTimeoutError, TimeoutError)):
                return True
        cur = cur.__cause__ or cur.__context__
    return False


def _parse_body(body: bytes, content_type: str | None) -> tuple[str, Any]:
    """(kind, document): kind is json | empty | html | text | invalid-json."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return "empty", None
    ctype = (content_type or "").lower()
    head = text[:200].lower()
    if "html" in ctype or head.startswith(("<!doctype", "<html", "<?xml")) or "<html" in head:
        return "html", None
    if text[0] in "{[":
        try:
            document = json.loads(text)
        except ValueError:
            return "invalid-json", None
        if isinstance(document, dict):
            return "json", document
        return "text", None
    return "text", None


def _error_fields(document: dict[str, Any]) -> tuple[str | None, str | None]:
    error = document.get("error")
    description = document.get("error_description")
    if isinstance(error, dict):  # an ARM-style envelope, not IMDS, but keep what it says
        description = description or error.get("message")
        error = error.get("code")
    return (str(error) if error is not None else None, str(description) if description is not None else None)


def _token_body_problem(document: dict[str, Any], now: float) -> str | None:
    token = document.get("access_token")
    if not isinstance(token, str) or not token.strip():
        return "the body has no access_token"
    if "expires_on" not in document:
        return "the body has no expires_on"
    from .tokens import parse_expires_on

    expires_on = parse_expires_on(document.get("expires_on"))
    if expires_on is None:
        return f"expires_on is not epoch seconds ({_snippet_value(document.get('expires_on'))})"
    if expires_on > 10**11:
        return f"expires_on {expires_on} is not epoch seconds (milliseconds?)"
    if expires_on <= now:
        return (
            f"expires_on {expires_on} is already in the past by this machine's clock "
            f"({int(now - expires_on)} s ago)"
        )
    for name in ("not_before", "expires_in"):
        if document.get(name) not in (None, "") and as_int(document.get(name)) is None:
            return f"{name} is not a number ({_snippet_value(document.get(name))})"
    return None


def _parse_retry_after(value: str | None, wall_clock: Callable[[], float]) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - wall_clock())


_TOKEN_VALUE = re.compile(r'("access_token"\s*:\s*)"[^"]*"?')
_JWT_LIKE = re.compile(r"eyJ[\w-]*(?:\.[\w-]*)*")


def _snippet(body: bytes, limit: int = 120) -> str:
    """The start of a body for an error message, with anything token-like redacted (a cut-off
    token answer still holds most of a token)."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    text = _JWT_LIKE.sub("<redacted>", _TOKEN_VALUE.sub(r'\1"<redacted>"', text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snippet_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _short(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown"
    return text if len(text) <= 160 else text[:159] + "…"


def _reason(exc: BaseException | None) -> str:
    """A short human reason for a connection failure."""
    if exc is None:
        return "no answer"
    text = str(exc).lower()
    chain = repr(exc).lower()
    if "refused" in text or "refused" in chain:
        return "connection refused (nothing listens there)"
    if "reset" in chain:
        return "the connection was reset"
    if "remotedisconnected" in chain or "without response" in chain or "aborted" in chain:
        return "the connection was closed before any answer"
    if "name or service" in chain or "nodename" in chain or "getaddrinfo" in chain:
        return "the host name does not resolve"
    return _short(exc)
