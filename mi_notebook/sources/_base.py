"""The one token pipeline every source runs on, IMDS included: one retry loop over
:func:`mi_notebook.http.exchange`, one classification of answers, one "not this protocol" rule, one
expiry check and one error mapping. Each host module keeps only its protocol, as hooks.

A host subclass of :class:`TokenSource` says how to build its :class:`~mi_notebook.http.Request`
(``_request``; ``_attempt`` for what changes per attempt, e.g. IMDS's client request id), which
identities it accepts (``_select``), and optionally how it exchanges (``_exchange``: Arc's
challenge), what it checks in a good answer (``_check``: Arc's identity confirmation), what it does
with a finished token (``_finish``: the user-token flag), which failures are worth another try
(``_retryable``: ``None`` lets the retry policy's status table decide, as IMDS's documented one
does), how it reads a good answer (``_document``: Entra ID's ``expires_in``) and how it explains a
failure only it sends (``_explain``). Its class attributes name it (``host``, ``service``), say
whether it answers failures in plain text (``text_errors``) and give the hints of its errors.

How each answer counts and ends (the host's own answers aside):

==============================================  ========  ===========================================
answer                                          retried   error when it is the last answer
==============================================  ========  ===========================================
2xx JSON with a usable token                    (success) -
2xx JSON without ``access_token``/``expires_on``  no      UnexpectedResponseError
or an ``expires_on`` in ms or already past
2xx that is not JSON, any HTML, any 3xx         no        UnexpectedResponseError
4xx in plain text where the host never sends    no        UnexpectedResponseError
it (IMDS: ``text_errors = False``)
body cut short after the status                 yes       UnexpectedResponseError (status kept)
connect or read time-out                        yes       EndpointTimeoutError (IMDS: ImdsTimeoutError)
refused / reset / no answer                     yes       EndpointUnreachableError
TLS failure                                     no        EndpointUnreachableError
408, 429, 5xx but 501/505 (JSON, text, empty)   yes       ThrottledError (429), ServerError
(IMDS: its documented table, 404/410/429/5xx)
401 / 403 (hosts with a secret)                 no        BadRequestError (the host's secret refused)
4xx: invalid_resource / AADSTS500011            no        InvalidResourceError
4xx: "identity not found" and kin               no        IdentityNotFoundError
other 4xx                                       no        BadRequestError (IMDS: 404/410 are
                                                          ImdsUpdatingError, after the 410 window)
==============================================  ========  ===========================================

Failure bodies that are not JSON are kept (redacted, cut at 300 characters) as ``error_description``.
A host hook that raises a :class:`~mi_notebook.errors.ManagedIdentityError` during an attempt ends
the request at once (not retried); the error is raised with the timeline of every attempt.

Example::

    >>> from mi_notebook.sources import AppServiceSource
    >>> from mi_notebook.http import MockTransport
    >>> from mi_notebook.clock import VirtualClock
    >>> mock = MockTransport(lambda r: (503, {}, "busy") if len(mock.requests) < 2 else
    ...     (200, {}, {"access_token": "a.b.c", "expires_on": "1800000000"}))
    >>> src = AppServiceSource("http://127.0.0.1:4141/msi/token", "hdr", transport=mock, clock=VirtualClock(1.7e9))
    >>> src.request_token("arm").timeline.summary()
    '2 attempts over 0.5 s: 503, 200'
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import (
    Answer,
    Request,
    Transport,
    UnexpectedAnswer,
    describe_failure,
    exchange,
    redact,
    timeout_pair,
)
from ..http import wire_outcome as _wire_outcome
from ..identity import Identity
from ..resources import resolve_resource
from ..retry import Attempt, AttemptOutcome, RetryPolicy, Timeline, execute
from ..tokens import AccessToken, as_int, parse_expires_on
from ._settings import DEFAULT_TIMEOUT, check_endpoint

__all__ = ["DEFAULT_TIMEOUT", "OnAttempt", "Source", "TokenSource", "host_retry_policy"]

logger = logging.getLogger("mi_notebook.sources")

OnAttempt = Callable[[Attempt, "float | None", int], None]
_NOT_RETRIED_5XX = frozenset({501, 505})
_DESCRIPTION_LIMIT = 300  # a text body (a proxy's page, a host's own words)
#: a JSON error_description: the service's own words, whole (AADSTS texts run to ~500 characters)
_JSON_DESCRIPTION_LIMIT = 1000
_BODY_PROBLEMS = {"html": "an HTML page", "empty": "an empty body", "text": "a body that is not JSON",
                  "invalid-json": "malformed or truncated JSON"}
_CLOCK_HINT = "Check this machine's clock (timedatectl); if it is right, the token service is misbehaving."


@runtime_checkable
class Source(Protocol):
    """What a connection holds: any token source (:class:`TokenSource` and Service Fabric's).

    ``host`` is the kind of endpoint (``"vm"``, ``"azureml"``, ...), ``endpoint`` its URL, ``note``
    one sentence about how identities are chosen there (or ``None``), ``fingerprint`` a keyed digest
    of the secret settings that choose its tokens (never the secret; ``None`` without one).

    Example::

        >>> from mi_notebook.sources import CloudShellSource
        >>> isinstance(CloudShellSource("http://127.0.0.1:50342/oauth2/token"), Source)
        True
    """

    endpoint: str
    note: str | None

    @property
    def host(self) -> str: ...  # pragma: no cover - a protocol

    @property
    def fingerprint(self) -> str | None: ...  # pragma: no cover

    def resolve_identity(self, identity: Identity | str | None) -> Identity: ...  # pragma: no cover

    def request_token(self, resource: str, identity: Identity | str | None = None, *,
                      on_attempt: OnAttempt | None = None) -> AccessToken: ...  # pragma: no cover

    def close(self) -> None: ...  # pragma: no cover


def host_retry_policy(name: str) -> RetryPolicy:
    """mi-notebook's own policy for a host's local token endpoint (no host documents one).

    4 attempts, waits about 0.5, 1 and 2 s (+-20% jitter), ``Retry-After`` honoured up to 10 s, no
    410 window (that rule is IMDS's). The endpoints are local agents that answer in milliseconds or
    are down, so a long schedule only delays the error. Which answers are retried is decided per
    answer (see the module table), not by the policy's IMDS status list.

    Example::

        >>> p = host_retry_policy("azureml")
        >>> p.max_attempts, p.replace(jitter=0).delays(), p.label
        (4, [0.0, 0.5, 1.0, 2.0], 'azureml')
    """
    return RetryPolicy(max_attempts=4, schedule=(0.5, 1.0, 2.0), max_backoff=10.0, jitter=0.2,
                       gone_window=0.0, max_retry_after=10.0, name=name)


class TokenSource:
    """The base of every token source: ``host``, ``endpoint``, ``note``, ``fingerprint``,
    ``request_token(resource, identity=None, *, on_attempt=None)``, ``close()``, a context manager,
    and a repr without secrets (the :class:`Source` protocol).

    ``retry`` (default: the host's :func:`host_retry_policy`), ``clock`` (a ``VirtualClock`` runs
    retries in virtual time), ``timeout`` ``(connect, read)`` seconds, ``transport`` (default: the
    real wire; tests pass a :class:`~mi_notebook.http.MockTransport`). ``note`` is one sentence about
    how identities are chosen here, for the connection's reason (``None`` when there is nothing to say).

    Example::

        >>> from mi_notebook.sources import CloudShellSource
        >>> with CloudShellSource("http://localhost:50342/oauth2/token") as src:
        ...     src.host, src.endpoint
        ('cloudshell', 'http://localhost:50342/oauth2/token')
    """

    host: ClassVar[str] = ""  # the kind of endpoint: "vm", "azureml", ...
    service: ClassVar[str] = ""  # who answers, for people: "IMDS", "Azure ML compute"
    #: whether the service may answer a failure in plain text (IMDS always answers JSON)
    text_errors: ClassVar[bool] = True
    timeout_error: ClassVar[type[errors.EndpointTimeoutError]] = errors.EndpointTimeoutError
    unreachable_hint: ClassVar[str | None] = (
        "The host's token service is not answering; restart the kernel, or check the host.")
    auth_hint: ClassVar[str | None] = (
        "The host's secret was refused; restart the kernel so that it gets the current one.")
    identity_hint: ClassVar[str | None] = "Check the identity's client id and that it is assigned to this resource."
    identity_where: ClassVar[str] = ""  # after "found no identity matching X": where it looked
    request_hint: ClassVar[str | None] = None  # for other 4xx (None: BadRequestError's own)
    foreign_hint: ClassVar[str | None] = None  # for an answer that is not the protocol (None: built from the others)

    def __init__(self, endpoint: str, *, retry: RetryPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, transport: Transport | None = None,
                 setting: str = "endpoint") -> None:
        self.endpoint = check_endpoint(endpoint, setting)
        self.retry = retry if retry is not None else host_retry_policy(self.host)
        if not isinstance(self.retry, RetryPolicy):
            raise ValueError(f"retry must be a mi_notebook.retry.RetryPolicy; got {type(retry).__name__}")
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must be a mi_notebook.clock.Clock (e.g. VirtualClock()); got {clock!r}")
        self.clock = clock
        self.timeout = timeout_pair(timeout)
        self.transport = transport
        self.note: str | None = None
        self._closed = False

    @property
    def kind(self) -> str:
        """Deprecated: the old name of :attr:`host` (``"imds"`` for the VM's)."""
        import warnings

        warnings.warn(f"{type(self).__name__}.kind is deprecated: use .host", DeprecationWarning, stacklevel=2)
        return "imds" if self.host == "vm" else self.host

    @property
    def fingerprint(self) -> str | None:
        """A keyed digest of the secret settings that choose this source's tokens (``None``: none)."""
        return None

    def resolve_identity(self, identity: Identity | str | None) -> Identity:
        """The identity a request for ``identity`` actually asks for (``ValueError`` for one this host
        cannot honour): Azure ML substitutes its ``DEFAULT_IDENTITY_CLIENT_ID`` for "none named".

        Example::

            >>> from mi_notebook.sources import CloudShellSource
            >>> CloudShellSource("http://127.0.0.1:50342/oauth2/token").resolve_identity(None)
            Identity.system()
        """
        return self._select(Identity.parse(identity))

    # --- what each host says ------------------------------------------------------------------------
    def _select(self, identity: Identity) -> Identity:
        """The identity to request (``ValueError`` for a selector the host cannot honour)."""
        return identity

    def _request(self, resource: str, identity: Identity) -> Request:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attempt(self, request: Request) -> Request:
        """The request as sent on one attempt (IMDS gives each attempt its own client request id)."""
        return request

    def _exchange(self, request: Request) -> Answer:
        """One attempt on the wire (Arc overrides it: challenge, then the authorised request)."""
        return exchange(request, transport=self.transport, clock=self.clock)

    def _document(self, answer: Answer) -> Any:
        """A 2xx answer's JSON as the one expiry check reads it (Entra ID's v2 answer has only
        ``expires_in``: the workload source adds ``expires_on``)."""
        return answer.document

    def _check(self, token: AccessToken, document: dict[str, Any], identity: Identity) -> None:
        """Raise a ``ManagedIdentityError`` if a good-looking answer must still be refused."""

    def _finish(self, token: AccessToken, identity: Identity) -> AccessToken:
        """The token handed to the caller (Azure ML and Cloud Shell mark user tokens here)."""
        return token

    def _retryable(self, answer: Answer, error: str | None, description: str | None) -> bool | None:
        """Whether an error answer with a status is worth another try (``None``: the policy decides)."""
        status = answer.status or 0
        return status in (408, 429) or (500 <= status <= 599 and status not in _NOT_RETRIED_5XX)

    def _explain(self, status: int, error: str | None, description: str | None, answer: Answer,
                 resource: str | None, identity: Identity | None,
                 common: dict[str, Any]) -> errors.ManagedIdentityError | None:
        """A host-specific error for a failure only this host sends, or ``None`` for the generic one."""
        return None

    def _emulated(self, answer: Answer) -> bool:
        """Whether the emulator sent ``answer`` (it marks every answer; Azure never does)."""
        return answer.from_emulator

    # --- the one request ------------------------------------------------------------------------------
    def request_token(self, resource: str, identity: Identity | str | None = None, *,
                      on_attempt: OnAttempt | None = None) -> AccessToken:
        """A token for ``resource`` (alias, App ID URI or ``.default`` scope) from this host, no cache.

        Bad input raises ``ValueError`` before any request; failures raise a
        :class:`~mi_notebook.errors.ManagedIdentityError` carrying the timeline. ``on_attempt`` is
        called after every attempt (see :func:`mi_notebook.retry.execute`).

        Example::

            >>> from mi_notebook.sources import CloudShellSource
            >>> CloudShellSource("http://localhost:50342/oauth2/token").request_token("nope nope")
            Traceback (most recent call last):
            ...
            ValueError: one resource at a time: 'nope nope' holds 2 (IMDS issues a token for a single resource)
        """
        self._check_open()
        resource_uri = resolve_resource(resource)
        ident = self._select(Identity.parse(identity))
        request = self._request(resource_uri, ident)
        outcome, timeline = self._run(request, on_attempt, resource_uri, ident)
        return self._finish(dataclasses.replace(outcome.value, timeline=timeline), ident)

    def _fetch_json(self, request: Request, on_attempt: OnAttempt | None, what: str) -> tuple[dict[str, Any], Timeline]:
        """Any JSON object from this service (IMDS's instance metadata), on the same pipeline."""
        self._check_open()
        outcome, timeline = self._run(request, on_attempt, None, None, what=what)
        return outcome.value, timeline

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} was closed; build a new one")

    def _run(self, request: Request, on_attempt: OnAttempt | None, resource: str | None,
             identity: Identity | None, *, what: str = "token request") -> tuple[AttemptOutcome, Timeline]:
        """The retry loop: the successful outcome and its timeline, or the error for the last answer."""
        answers: list[Answer | None] = []

        def send(number: int) -> AttemptOutcome:
            answer: Answer | None = None
            sent = self._attempt(request)
            try:
                answer = self._exchange(sent)
                outcome = self._judge(answer, sent, resource, identity)
            except errors.ManagedIdentityError as err:  # a host hook's verdict: final, not retried
                outcome = AttemptOutcome(status=err.status, request_id=err.request_id, exception=err, retryable=False)
            answers.append(answer)
            return outcome

        outcome, timeline = execute(send, self.retry, clock=self.clock, on_attempt=on_attempt)
        if outcome.ok:
            return outcome, timeline
        if isinstance(outcome.exception, errors.ManagedIdentityError):
            raise _with_timeline(outcome.exception, timeline)
        last = answers[-1]
        assert last is not None  # only hook errors come without an answer
        raise self._failure(outcome, last, timeline, resource, identity, what)

    # --- the one classification -------------------------------------------------------------------------
    def _judge(self, answer: Answer, request: Request, resource: str | None,
               identity: Identity | None) -> AttemptOutcome:
        """How one answer counts: success (``value``: the token, or the JSON object), retried, or final."""
        decided, facts = _wire_outcome(answer, request.headers.get("x-ms-client-request-id"))
        if decided is not None:  # nothing answered, or the body was cut short: the wire decided
            return decided
        status = answer.status or 0
        problem = self._foreign(answer)
        if problem is not None:
            return facts.outcome(exception=UnexpectedAnswer(f"HTTP {status} with {problem}", problem=problem),
                                 retryable=False)
        if 200 <= status < 300:
            document = self._document(answer)
            if resource is None or identity is None:  # any JSON object will do
                return facts.outcome(value=document)
            problem = _token_body_problem(document, self.clock.wall())
            if problem is not None:
                return facts.outcome(exception=UnexpectedAnswer(f"HTTP {status} but {problem}", problem=problem),
                                     retryable=False)
            return facts.outcome(value=self._token(answer, document, resource, identity))
        error, description = _error_fields(answer)
        return facts.outcome(error=error, error_description=description,
                             retryable=self._retryable(answer, error, description))

    def _foreign(self, answer: Answer) -> str | None:
        """The one "not this protocol" rule: what makes ``answer`` someone else speaking, or ``None``."""
        status = answer.status or 0
        if answer.kind == "redirect":
            to = f" to {answer.location!r}" if answer.location else ""
            return f"a redirect{to}; {self.service} never redirects, so this is not {self.service}"
        if answer.kind == "json":
            return None
        if answer.kind == "html" or 200 <= status < 300:
            return _BODY_PROBLEMS.get(answer.kind, f"a {answer.kind} body")
        if status >= 500 or status == 429 or answer.kind == "empty" or self.text_errors:
            return None  # the status speaks (anything in front may send a bare 5xx)
        return _BODY_PROBLEMS.get(answer.kind, f"a {answer.kind} body")

    def _token(self, answer: Answer, document: dict[str, Any], resource: str, identity: Identity) -> AccessToken:
        token = AccessToken.from_response(
            document, host=self.host, emulated=self._emulated(answer),  # type: ignore[arg-type]
            identity=identity, resource_requested=resource, endpoint=self.endpoint, fetched_at=self.clock.wall())
        self._check(token, document, identity)
        return token

    # --- the one error mapping ------------------------------------------------------------------------------
    def _failure(self, outcome: AttemptOutcome, answer: Answer, timeline: Timeline | None, resource: str | None,
                 identity: Identity | None, what: str = "token request") -> errors.ManagedIdentityError:
        """The error for the last answer of a failed request (the module table)."""
        common: dict[str, Any] = {"status": answer.status, "error": outcome.error,
                                  "error_description": outcome.error_description,
                                  "request_id": outcome.request_id, "timeline": timeline, "endpoint": self.endpoint}
        attempts = len(timeline) if timeline is not None else 1
        tried = f"after {attempts} attempts" if attempts > 1 else "on the only attempt"
        where = f"{self.service} at {self.endpoint}"
        for_res = f" for {resource}" if resource else ""
        if answer.kind in ("timeout", "connect-timeout"):
            connect, read = self.timeout
            if answer.kind == "connect-timeout":
                msg = f"No connection to {where} within the {connect:g} s connect time-out ({tried})."
            elif answer.answered:
                msg = f"{where} sent HTTP {answer.status} but not the whole body within the {read:g} s read time-out ({tried})."
            else:
                msg = f"{where} accepted the connection but sent no answer within the {read:g} s read time-out ({tried})."
            return self.timeout_error(msg, hint=self.unreachable_hint, **common)
        if answer.kind in ("unreachable", "tls") or not answer.answered:
            return errors.EndpointUnreachableError(
                f"Could not reach {where}: {describe_failure(answer)} ({tried}); no HTTP answer was received.",
                hint=self.unreachable_hint, **common)
        if answer.kind == "truncated":
            return errors.UnexpectedResponseError(
                f"{where} answered HTTP {answer.status} to the {what}, but {describe_failure(answer)} ({tried}): the "
                f"answer was cut short between {self.service} and this machine.", hint=self._foreign_hint(), **common)
        status = answer.status or 0
        if isinstance(outcome.exception, UnexpectedAnswer):
            return self._not_protocol(outcome.exception.problem, answer, status, where, what, tried, common)
        special = self._explain(status, outcome.error, outcome.error_description, answer, resource, identity, common)
        if special is not None:
            return special
        code, desc = (outcome.error or "").strip().lower(), (outcome.error_description or "").lower()
        if status == 429:
            return errors.ThrottledError(f"{where} throttled the {what} (HTTP 429) {tried}.", **common)
        if 500 <= status < 600:
            return errors.ServerError(f"{where} failed on its side (HTTP {status}) {tried}{for_res}.", **common)
        if not 400 <= status < 500:
            return errors.UnexpectedResponseError(f"{where} answered the {what} with HTTP {status}, which it never "
                                                  "sends.", hint=self._foreign_hint(), **common)
        if status in (401, 403) and self.auth_hint is not None:
            return errors.BadRequestError(f"{where} refused the request's credentials (HTTP {status}).",
                                          hint=self.auth_hint, **common)
        if code == "invalid_resource" or "aadsts500011" in desc or "aadsts50001:" in desc:
            return errors.InvalidResourceError(
                f"Entra ID does not know the resource {resource!r} in this tenant, so {self.service} refused the "
                f"{what}." if resource else f"{self.service} refused the {what}: unknown resource.", **common)
        if ("identity" in desc and "not found" in desc) or "unable to load the proper managed identity" in desc:
            who = identity if identity is not None else "the requested identity"
            return errors.IdentityNotFoundError(f"{self.service} found no identity matching {who}{self.identity_where}.",
                                                hint=self.identity_hint, **common)
        return errors.BadRequestError(f"{where} rejected the {what}{for_res} (HTTP {status}).",
                                      hint=self.request_hint, **common)

    def _not_protocol(self, problem: str, answer: Answer, status: int, where: str, what: str, tried: str,
                      common: dict[str, Any]) -> errors.ManagedIdentityError:
        if answer.kind == "redirect":
            msg = f"{where} answered the {what} with HTTP {status}, {problem} ({tried})."
        elif "by this machine's clock" in problem:
            msg = f"{where} answered the {what} with HTTP {status}, but {problem} ({tried})."
        else:
            ctype = f" ({answer.content_type})" if answer.content_type else ""
            msg = (f"{where} answered the {what} with HTTP {status}{ctype} and {problem} ({tried}): that is not a "
                   f"valid {self.service} answer.")
        if answer.server and not answer.server.upper().startswith("IMDS"):
            msg += f" The server calls itself {answer.server!r}."
        if answer.snippet and answer.kind in ("html", "text", "invalid-json"):
            msg += f" The body starts: {answer.snippet!r}."
        hint = _CLOCK_HINT if "by this machine's clock" in problem else self._foreign_hint()
        return errors.UnexpectedResponseError(msg, hint=hint, **common)

    def _foreign_hint(self) -> str | None:
        if self.foreign_hint is not None or self.unreachable_hint is None:
            return self.foreign_hint
        return f"Check that nothing (a proxy, another service) answers at {self.endpoint}; {self.unreachable_hint}"

    # --- life cycle ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop using this source (a transport passed in belongs to the caller and stays open)."""
        self._closed = True

    def __enter__(self) -> TokenSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        connect, read = self.timeout
        return (f"{type(self).__name__}(endpoint={self.endpoint!r}{self._repr_extra()}, "
                f"timeout=({connect:g}, {read:g}), retry={self.retry.label!r})")

    def _repr_extra(self) -> str:
        return ""


# --- helpers -----------------------------------------------------------------------------------------------
def _with_timeline(err: errors.ManagedIdentityError, timeline: Timeline) -> errors.ManagedIdentityError:
    err.timeline = timeline
    err.args = (err._compose(),)
    return err


def _error_fields(answer: Answer) -> tuple[str | None, str | None]:
    """``(error, error_description)`` from a JSON error body (IMDS/OAuth, ARM-style, App Service's
    ``{"statusCode", "message"}``) or, for any other body, its redacted text."""
    document = answer.document
    if isinstance(document, dict):
        error: Any = document.get("error")
        description: Any = document.get("error_description")
        if isinstance(error, dict):
            error, description = error.get("code"), description or error.get("message")
        if description is None:
            description = document.get("message") or document.get("Message")
        if error is None and document.get("statusCode") is not None:
            error = f"statusCode {document['statusCode']}"
        return (str(error) if error is not None else None,
                redact(str(description), _JSON_DESCRIPTION_LIMIT, one_line=False) if description is not None else None)
    text = redact(answer.body, _DESCRIPTION_LIMIT)
    return None, text or None


def _token_body_problem(document: dict[str, Any], now: float) -> str | None:
    """The one expiry check: what makes a 2xx JSON object no usable token answer, or ``None`` (the
    numbers are read as :meth:`~mi_notebook.tokens.AccessToken.from_response` reads them)."""
    token = document.get("access_token")
    if not isinstance(token, str) or not token.strip():
        return "the body has no access_token"
    if "expires_on" not in document:
        return "the body has no expires_on"
    expires_on = parse_expires_on(document.get("expires_on"))
    if expires_on is None:
        return f"expires_on is not epoch seconds or a date ({_value(document.get('expires_on'))})"
    if expires_on > 10**11:
        return f"expires_on {expires_on} is not epoch seconds (milliseconds?)"
    if expires_on <= now:
        return (f"expires_on {expires_on} is already in the past by this machine's clock "
                f"({int(now - expires_on)} s ago)")
    for name in ("not_before", "expires_in"):
        if document.get(name) not in (None, "") and as_int(document.get(name)) is None:
            return f"{name} is not a number ({_value(document.get(name))})"
    return None


def _value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
