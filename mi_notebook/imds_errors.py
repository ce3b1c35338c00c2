"""How each IMDS answer counts, and the error it ends in: the table in :mod:`mi_notebook.imds`.

Two pure functions over an :class:`~mi_notebook.http.Answer` (no sockets, no clock of their own):

* :func:`judge` turns one answer into the :class:`~mi_notebook.retry.AttemptOutcome` the retry
  machinery sees (success, retried, or final);
* :func:`classify_failure` turns the last answer of a failed request into one
  :class:`~mi_notebook.errors.ManagedIdentityError` that says what happened and what to do.

An answer that is not IMDS speaking (a redirect, an HTML page, a body that is not a token) is
marked by an :class:`~mi_notebook.http.UnexpectedAnswer` as the attempt's exception: it is
recorded in the timeline and not retried, and its ``problem`` is what the error message says.

Example::

    >>> from mi_notebook.http import Answer
    >>> answer = Answer("html", 200, {"Content-Type": "text/html"}, b"<html>proxy</html>")
    >>> outcome = judge(answer, client_request_id="c-1", now=0.0)
    >>> outcome.status, outcome.exception.problem
    (200, 'an HTML page')
    >>> type(classify_failure(outcome, answer, None, endpoint="http://127.0.0.1:1")).__name__
    'UnexpectedResponseError'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .http import Answer, UnexpectedAnswer, describe_failure, wire_outcome
from .retry import AttemptOutcome
from .tokens import as_int, parse_expires_on

if TYPE_CHECKING:  # pragma: no cover
    from .identity import Identity
    from .retry import Timeline

__all__ = ["classify_failure", "judge"]

_BODY_PROBLEMS = {
    "html": "an HTML page",
    "empty": "an empty body",
    "text": "a body that is not JSON",
    "invalid-json": "malformed or truncated JSON",
}


def judge(answer: Answer, *, client_request_id: str, now: float, expect_token: bool = True) -> AttemptOutcome:
    """How one answer counts: success (``value`` is the JSON object), retried, or final.

    ``now`` (epoch seconds) checks that a token's ``expires_on`` is still ahead; ``expect_token``
    is ``False`` for instance metadata (any JSON object is a success). The rules are the table in
    :mod:`mi_notebook.imds`.

    Example::

        >>> from mi_notebook.http import Answer
        >>> judge(Answer("empty", 503), client_request_id="c-1", now=0).status
        503
        >>> judge(Answer("unreachable", exception=ConnectionResetError()), client_request_id="c-1", now=0).label
        'ConnectionResetError'
    """
    decided, base = wire_outcome(answer, client_request_id)
    if decided is not None:  # nothing answered, or the body was cut short: the wire decided
        return decided
    status: int = answer.status  # type: ignore[assignment]
    if answer.kind == "redirect":
        problem = f"a redirect to {answer.location!r}" if answer.location else "a redirect"
        return AttemptOutcome(exception=UnexpectedAnswer(f"HTTP {status}: {problem}; IMDS never redirects",
                                                         problem=problem), **base)
    if answer.kind != "json":
        # An HTML page, whatever its status, is never IMDS (a proxy, a captive portal, another cloud's
        # 404 page). Plain text or nothing on 429 / 5xx (or nothing on another 4xx): the status decides.
        foreign = answer.kind == "html" or (answer.kind != "empty" and status < 500 and status != 429)
        if foreign or (answer.kind == "empty" and 200 <= status < 300):
            problem = _BODY_PROBLEMS.get(answer.kind, "a body that is not JSON")
            return AttemptOutcome(exception=UnexpectedAnswer(f"HTTP {status} with {problem}", problem=problem),
                                  **base)
        return AttemptOutcome(error=None, error_description=answer.snippet or None, **base)
    document = answer.document
    if 200 <= status < 300:
        problem = _token_body_problem(document, now) if expect_token else None
        if problem:
            return AttemptOutcome(exception=UnexpectedAnswer(f"HTTP {status} but {problem}", problem=problem),
                                  **base)
        return AttemptOutcome(value=document, **base)
    error, description = _error_fields(document)
    return AttemptOutcome(error=error, error_description=description, **base)


def classify_failure(
    outcome: AttemptOutcome,
    answer: Answer,
    timeline: Timeline | None,
    *,
    endpoint: str,
    resource: str | None = None,
    identity: Identity | None = None,
    timeout: tuple[float, float] = (2.0, 10.0),
    what: str = "token request",
) -> errors.ManagedIdentityError:
    """The error for the last answer of a failed request (see the table in :mod:`mi_notebook.imds`).

    Example::

        >>> from mi_notebook.http import Answer
        >>> from mi_notebook.retry import AttemptOutcome
        >>> err = classify_failure(
        ...     AttemptOutcome(status=400, error="invalid_resource", error_description="AADSTS500011"),
        ...     Answer("json", 400), None, endpoint="http://127.0.0.1:1", resource="https://nope.example/")
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
    res = f" (resource {resource})" if resource else ""

    if answer.kind in ("timeout", "connect-timeout"):
        connect, read = timeout
        if answer.kind == "connect-timeout":
            msg = f"No connection to {endpoint} within the {connect:g} s connect time-out ({tried})."
        elif answer.status is not None:
            msg = (f"{endpoint} sent HTTP {answer.status} but not the whole body within the {read:g} s "
                   f"read time-out ({tried}).")
        else:
            msg = (f"{endpoint} accepted the connection but sent no answer within the {read:g} s read "
                   f"time-out ({tried}).")
        return errors.ImdsTimeoutError(msg, **common)
    if answer.kind in ("unreachable", "tls"):
        common["status"] = None
        return errors.EndpointUnreachableError(
            f"Could not reach {endpoint}: {describe_failure(answer)} ({tried}); no HTTP answer was received.",
            **common)
    if answer.kind == "truncated":
        return errors.UnexpectedResponseError(
            f"{endpoint} answered HTTP {answer.status} to the {what}, but {describe_failure(answer)} ({tried}). "
            "Something between this machine and IMDS cut the answer short.", **common)
    if isinstance(outcome.exception, UnexpectedAnswer):
        return _not_imds(outcome.exception.problem, answer, status, endpoint, what, common)
    if status is None:
        return errors.EndpointUnreachableError(
            f"The {what} to {endpoint} failed ({tried}): {describe_failure(answer)}.", **common)
    return _refusal(status, outcome, timeline, endpoint, what, resource, identity, tried, res, common)


# --- the error for each kind of answer ------------------------------------------------------------
def _not_imds(problem: str, answer: Answer, status: int | None, endpoint: str, what: str,
              common: dict[str, Any]) -> errors.ManagedIdentityError:
    if answer.kind == "redirect":
        msg = f"{endpoint} answered the {what} with HTTP {status}, {problem}; IMDS never redirects, so this is not IMDS."
    else:
        ctype = f" ({answer.content_type})" if answer.content_type else ""
        msg = f"{endpoint} answered the {what} with HTTP {status}{ctype} and {problem}: that is not a valid IMDS answer."
    if answer.server and not answer.server.upper().startswith("IMDS"):
        msg += f" The server calls itself {answer.server!r}."
    if answer.snippet and answer.kind in ("html", "text", "invalid-json"):
        msg += f" The body starts: {answer.snippet!r}."
    return errors.UnexpectedResponseError(msg, **common)


def _refusal(status: int, outcome: AttemptOutcome, timeline: Timeline | None, endpoint: str, what: str,
             resource: str | None, identity: Identity | None, tried: str, res: str,
             common: dict[str, Any]) -> errors.ManagedIdentityError:
    """IMDS answered with an error status: the class from the status and IMDS's ``error`` code first;
    ``error_description`` is only a hint (Microsoft says its wording may change)."""
    code = (outcome.error or "").strip().lower()
    desc = (outcome.error_description or "").lower()
    if status in (404, 410):
        gone = " (410: IMDS says it is updating and will be back within 70 seconds)" if status == 410 else ""
        total = f" for {timeline.total:.0f} s" if timeline is not None else ""
        return errors.ImdsUpdatingError(
            f"IMDS at {endpoint} kept answering HTTP {status}{gone} to the {what}{res}{total} ({tried}).", **common)
    if status == 429:
        return errors.ThrottledError(
            f"IMDS at {endpoint} throttled the {what} (HTTP 429) {tried}: too many token requests from this VM.",
            **common)
    if 500 <= status < 600:
        return errors.ServerError(f"IMDS at {endpoint} failed on its side (HTTP {status}) {tried}{res}.", **common)
    if not 400 <= status < 500:
        return errors.UnexpectedResponseError(
            f"{endpoint} answered the {what} with HTTP {status}, which IMDS never sends.", **common)
    if code == "invalid_resource" or "aadsts500011" in desc or "aadsts50001:" in desc:
        return errors.InvalidResourceError(
            f"Entra ID does not know the resource {resource!r} in this tenant, so IMDS refused the token request."
            if resource else f"IMDS refused the {what}: unknown resource.", **common)
    if status == 400 and code in ("invalid_request", "bad_request", "") or code.startswith("bad_request"):
        if "multiple" in desc and "identit" in desc:
            who = f"for {identity}" if identity is not None else "for the default identity"
            return errors.MultipleIdentitiesError(
                "This VM has several user-assigned identities and no system-assigned one, so IMDS needs to be "
                f"told which to use; the request asked {who}.", **common)
        if "identity not found" in desc or ("identity" in desc and "not found" in desc):
            target = str(identity) if identity is not None else "the requested identity"
            return errors.IdentityNotFoundError(
                f"IMDS found no identity matching {target} on this VM (or the VM has no identity).", **common)
    return errors.BadRequestError(
        f"IMDS rejected the {what}{res} with HTTP {status}; the request itself must change.", **common)


# --- helpers -------------------------------------------------------------------------------------
def _error_fields(document: dict[str, Any]) -> tuple[str | None, str | None]:
    error = document.get("error")
    description = document.get("error_description")
    if isinstance(error, dict):  # an ARM-style envelope, not IMDS, but keep what it says
        description = description or error.get("message")
        error = error.get("code")
    return (str(error) if error is not None else None, str(description) if description is not None else None)


def _token_body_problem(document: dict[str, Any], now: float) -> str | None:
    """What makes a 2xx JSON object no token answer, or ``None`` (the numbers are read as
    :func:`~mi_notebook.tokens.AccessToken.from_response` reads them)."""
    token = document.get("access_token")
    if not isinstance(token, str) or not token.strip():
        return "the body has no access_token"
    if "expires_on" not in document:
        return "the body has no expires_on"
    expires_on = parse_expires_on(document.get("expires_on"))
    if expires_on is None:
        return f"expires_on is not epoch seconds ({_value(document.get('expires_on'))})"
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
