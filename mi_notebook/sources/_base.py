"""What every host source shares: one retry loop over :func:`mi_notebook.http.exchange`, the answer
classification, and the error for the last answer. Each host module keeps only its protocol.

A host subclass of :class:`TokenSource` says how to build its :class:`~mi_notebook.http.Request`
(``_request``), which identities it accepts (``_select``), and optionally how it exchanges
(``_exchange``: Arc's challenge), what it checks in a good answer (``_check``: Arc's identity
confirmation), what it does with a finished token (``_finish``: the user-token flag) and how it
explains a failure only it sends (``_explain``, ``_retryable``).

How each answer counts and ends (the host's own answers aside):

==============================================  ========  ===========================================
answer                                          retried   error when it is the last answer
==============================================  ========  ===========================================
2xx JSON with a usable token                    (success) -
2xx JSON without ``access_token``/``expires_on``  no      UnexpectedResponseError
or an ``expires_on`` in ms or already past
2xx that is not JSON, any HTML, any 3xx         no        UnexpectedResponseError
body cut short after the status                 yes       UnexpectedResponseError (status kept)
connect or read time-out                        yes       EndpointTimeoutError
refused / reset / no answer                     yes       EndpointUnreachableError
TLS failure                                     no        EndpointUnreachableError
408, 429, 5xx but 501/505 (JSON, text, empty)   yes       ThrottledError (429), ServerError
401 / 403                                       no        BadRequestError (the host's secret refused)
4xx: invalid_resource / AADSTS500011            no        InvalidResourceError
4xx: "identity not found" and kin               no        IdentityNotFoundError
other 4xx (404 and 410 too: their IMDS          no        BadRequestError
meaning, "updating", does not apply here)
==============================================  ========  ===========================================

``text/plain`` failure bodies are kept (redacted, cut at 300 characters) as ``error_description``.
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
from typing import Any, ClassVar

from .. import errors
from ..clock import SYSTEM_CLOCK, Clock
from ..http import Answer, Request, Transport, describe_failure, exchange, redact, timeout_pair
from ..identity import Identity
from ..resources import resolve_resource
from ..retry import Attempt, AttemptOutcome, RetryPolicy, Timeline, execute
from ..tokens import AccessToken
from ._settings import DEFAULT_TIMEOUT, check_endpoint

__all__ = ["DEFAULT_TIMEOUT", "OnAttempt", "TokenSource", "host_retry_policy"]

logger = logging.getLogger("mi_notebook.sources")

OnAttempt = Callable[[Attempt, "float | None", int], None]
_NOT_RETRIED_5XX = frozenset({501, 505})
_DESCRIPTION_LIMIT = 300


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


class _Unusable(ValueError):
    """An answer that is not the host's token protocol (recorded in the timeline; ``problem`` says why)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class TokenSource:
    """The shape every host source has (the same as ``ImdsClient``): ``kind``, ``endpoint``,
    ``request_token(resource, identity=None, *, on_attempt=None)``, ``close()``, a context manager,
    and a repr without secrets.

    ``retry`` (default: the host's :func:`host_retry_policy`), ``clock`` (a ``VirtualClock`` runs
    retries in virtual time), ``timeout`` ``(connect, read)`` seconds, ``transport`` (default: the
    real wire; tests pass a :class:`~mi_notebook.http.MockTransport`). ``note`` is one sentence about
    how identities are chosen here, for the connection's reason (``None`` when there is nothing to say).

    Example::

        >>> from mi_notebook.sources import CloudShellSource
        >>> with CloudShellSource("http://localhost:50342/oauth2/token") as src:
        ...     src.kind, src.endpoint
        ('cloudshell', 'http://localhost:50342/oauth2/token')
    """

    kind: ClassVar[str] = ""
    host: ClassVar[str] = ""  # for people: "Azure ML compute"
    unreachable_hint: ClassVar[str] = "The host's token service is not answering; restart the kernel, or check the host."
    auth_hint: ClassVar[str] = "The host's secret was refused; restart the kernel so that it gets the current one."
    identity_hint: ClassVar[str] = "Check the identity's client id and that it is assigned to this resource."
    request_hint: ClassVar[str | None] = None  # for other 4xx (None: BadRequestError's own)

    def __init__(self, endpoint: str, *, retry: RetryPolicy | None = None, clock: Clock = SYSTEM_CLOCK,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, transport: Transport | None = None,
                 setting: str = "endpoint") -> None:
        self.endpoint = check_endpoint(endpoint, setting)
        self.retry = retry if retry is not None else host_retry_policy(self.kind)
        if not isinstance(self.retry, RetryPolicy):
            raise ValueError(f"retry must be a mi_notebook.retry.RetryPolicy; got {type(retry).__name__}")
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must be a mi_notebook.clock.Clock (e.g. VirtualClock()); got {clock!r}")
        self.clock = clock
        self.timeout = timeout_pair(timeout)
        self.transport = transport
        self.note: str | None = None
        self._closed = False

    # --- what each host says ------------------------------------------------------------------------
    def _select(self, identity: Identity) -> Identity:
        """The identity to request (``ValueError`` for a selector the host cannot honour)."""
        return identity

    def _request(self, resource: str, identity: Identity) -> Request:  # pragma: no cover - abstract
        raise NotImplementedError

    def _exchange(self, request: Request) -> Answer:
        """One attempt on the wire (Arc overrides it: challenge, then the authorised request)."""
        return exchange(request, transport=self.transport, clock=self.clock)

    def _check(self, token: AccessToken, document: dict[str, Any], identity: Identity) -> None:
        """Raise a ``ManagedIdentityError`` if a good-looking answer must still be refused."""

    def _finish(self, token: AccessToken, identity: Identity) -> AccessToken:
        """The token handed to the caller (Azure ML and Cloud Shell mark user tokens here)."""
        return token

    def _retryable(self, answer: Answer, error: str | None, description: str | None) -> bool:
        """Whether an error answer with a status is worth another try (see the module table)."""
        status = answer.status or 0
        return status in (408, 429) or (500 <= status <= 599 and status not in _NOT_RETRIED_5XX)

    def _explain(self, status: int, error: str | None, description: str | None, answer: Answer,
                 resource: str, identity: Identity, common: dict[str, Any]) -> errors.ManagedIdentityError | None:
        """A host-specific error for a failure only this host sends, or ``None`` for the generic one."""
        return None

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
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} was closed; build a new one")
        resource_uri = resolve_resource(resource)
        ident = self._select(Identity.parse(identity))
        request = self._request(resource_uri, ident)
        answers: list[Answer | None] = []

        def send(number: int) -> AttemptOutcome:
            answer: Answer | None = None
            try:
                answer = self._exchange(request)
                outcome = self._outcome(answer, resource_uri, ident)
            except errors.ManagedIdentityError as err:  # a host hook's verdict: final, not retried
                outcome = AttemptOutcome(status=err.status, request_id=err.request_id, exception=err, retryable=False)
            answers.append(answer)
            return outcome

        outcome, timeline = execute(send, self.retry, clock=self.clock, on_attempt=on_attempt)
        if outcome.ok:
            return self._finish(dataclasses.replace(outcome.value, timeline=timeline), ident)
        if isinstance(outcome.exception, errors.ManagedIdentityError):
            raise _with_timeline(outcome.exception, timeline)
        last = answers[-1]
        assert last is not None  # only hook errors come without an answer
        raise self._failure(outcome, last, timeline, resource_uri, ident)

    def _outcome(self, answer: Answer, resource: str, identity: Identity) -> AttemptOutcome:
        seen: dict[str, Any] = {"status": answer.status, "request_id": answer.request_id,
                                "retry_after": answer.retry_after}
        if not answer.answered:
            exc = answer.exception or TimeoutError(describe_failure(answer))
            return AttemptOutcome(exception=exc, request_id=answer.request_id, retryable=answer.kind != "tls")
        status = answer.status or 0
        if answer.kind in ("truncated", "timeout"):
            return AttemptOutcome(**seen, exception=_Unusable(_cut_short(answer, self.timeout)), retryable=True)
        if answer.kind in ("redirect", "html") or (200 <= status < 300 and answer.kind != "json"):
            return AttemptOutcome(**seen, exception=_Unusable(_foreign(answer)), retryable=False)
        if 200 <= status < 300:
            return AttemptOutcome(**seen, value=self._token(answer, resource, identity))
        error, description = _error_fields(answer)
        return AttemptOutcome(**seen, error=error, error_description=description,
                              retryable=self._retryable(answer, error, description))

    def _token(self, answer: Answer, resource: str, identity: Identity) -> AccessToken:
        document = answer.document
        now = self.clock.wall()
        token = AccessToken.from_response(
            document, source="emulator" if answer.from_emulator else self.kind,  # type: ignore[arg-type]
            identity=identity, resource_requested=resource, endpoint=self.endpoint, fetched_at=now)
        problem = None
        if token.expires_on > 10**11:
            problem = f"expires_on {token.expires_on} is not epoch seconds (milliseconds?)"
        elif token.expires_on <= now:
            problem = f"expires_on {token.expires_on} is already past by this machine's clock ({int(now - token.expires_on)} s ago)"
        if problem:
            raise errors.UnexpectedResponseError(
                f"{self.host} at {self.endpoint} answered {answer.status} but {problem}.", status=answer.status,
                request_id=answer.request_id, endpoint=self.endpoint,
                hint="Check this machine's clock (timedatectl); if it is right, the host's token service is misbehaving.")
        self._check(token, document, identity)
        return token

    # --- the error for the last answer --------------------------------------------------------------------
    def _failure(self, outcome: AttemptOutcome, answer: Answer, timeline: Timeline, resource: str,
                 identity: Identity) -> errors.ManagedIdentityError:
        common: dict[str, Any] = {"status": answer.status, "error": outcome.error,
                                  "error_description": outcome.error_description,
                                  "request_id": outcome.request_id, "timeline": timeline, "endpoint": self.endpoint}
        tried = f"after {len(timeline)} attempts" if len(timeline) > 1 else "on the only attempt"
        where = f"{self.host} at {self.endpoint}"
        if not answer.answered:
            cls = errors.EndpointTimeoutError if answer.kind in ("timeout", "connect-timeout") else errors.EndpointUnreachableError
            return cls(f"No answer from {where}: {describe_failure(answer)} ({tried}).",
                       hint=self.unreachable_hint, **common)
        if isinstance(outcome.exception, _Unusable):
            server = f" The server calls itself {answer.server!r}." if answer.server else ""
            return errors.UnexpectedResponseError(
                f"{where} answered with {outcome.exception.problem} ({tried}); that is not this host's token "
                f"service speaking.{server}",
                hint=f"Check that nothing (a proxy, another service) answers at {self.endpoint}; {self.unreachable_hint}",
                **common)
        status = answer.status or 0
        special = self._explain(status, outcome.error, outcome.error_description, answer, resource, identity, common)
        if special is not None:
            return special
        code, desc = (outcome.error or "").lower(), (outcome.error_description or "").lower()
        if status == 429:
            return errors.ThrottledError(f"{where} throttled the token request (HTTP 429) {tried}.", **common)
        if status in (401, 403):
            return errors.BadRequestError(f"{where} refused the request's credentials (HTTP {status}).",
                                          hint=self.auth_hint, **common)
        if 400 <= status < 500:
            if code == "invalid_resource" or "aadsts500011" in desc or "aadsts50001:" in desc:
                return errors.InvalidResourceError(
                    f"Entra ID does not know the resource {resource!r} in this tenant, so {self.host} refused it.", **common)
            if ("identity" in desc and "not found" in desc) or "unable to load the proper managed identity" in desc:
                return errors.IdentityNotFoundError(
                    f"{self.host} has no identity matching {identity}.", hint=self.identity_hint, **common)
            return errors.BadRequestError(f"{where} rejected the token request for {resource} (HTTP {status}).",
                                          hint=self.request_hint, **common)
        if 500 <= status < 600:
            return errors.ServerError(f"{where} failed on its side (HTTP {status}) {tried}.", **common)
        return errors.UnexpectedResponseError(f"{where} answered HTTP {status}, which it never sends.", **common)

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
        error, description = document.get("error"), document.get("error_description")
        if isinstance(error, dict):
            error, description = error.get("code"), description or error.get("message")
        if description is None:
            description = document.get("message") or document.get("Message")
        if error is None and document.get("statusCode") is not None:
            error = f"statusCode {document['statusCode']}"
        return (str(error) if error is not None else None,
                redact(str(description), _DESCRIPTION_LIMIT) if description is not None else None)
    text = redact(answer.body, _DESCRIPTION_LIMIT)
    return None, text or None


def _cut_short(answer: Answer, timeout: tuple[float, float]) -> str:
    if answer.kind == "timeout":
        return f"HTTP {answer.status} but not the whole body within the {timeout[1]:g} s read time-out"
    return f"HTTP {answer.status} but a body cut short (the connection closed early)"


def _foreign(answer: Answer) -> str:
    if answer.kind == "redirect":
        to = f" to {answer.location!r}" if answer.location else ""
        return f"a redirect (HTTP {answer.status}){to}, which token services never send"
    what = {"html": "an HTML page", "empty": "an empty body", "text": "a body that is not JSON",
            "invalid-json": "malformed JSON"}.get(answer.kind, f"a {answer.kind} body")
    snippet = f" starting {answer.snippet!r}" if answer.kind in ("html", "text", "invalid-json") and answer.snippet else ""
    return f"HTTP {answer.status} and {what}{snippet}"
