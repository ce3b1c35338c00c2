"""How each Azure Resource Manager answer counts, and the error it ends in, explained.

Two pure functions over an :class:`~mi_notebook.http.Answer`, as the token sources' base
(:mod:`mi_notebook.sources`) is for the managed-identity endpoints:

* :func:`judge`: success (``value`` is ARM's JSON object), retried (429 with ``Retry-After``, 5xx,
  time-outs, dropped connections, bodies cut short, a 5xx HTML gateway page) or final (every other
  4xx, a redirect, an HTML page or a body that is not ARM's JSON on a 2xx, a TLS failure);
* :func:`arm_error`: the error for the last answer, saying which identity was refused what, where,
  and what to do (the 401 and 403 explanations name the principal, the action and the scope).

Example::

    >>> from mi_notebook.http import Answer
    >>> body = b'{"error": {"code": "ResourceGroupNotFound", "message": "Resource group \\'x\\' could not be found."}}'
    >>> answer = Answer("json", 404, {"Content-Type": "application/json"}, body)
    >>> outcome = judge(answer, client_request_id="c-1")
    >>> outcome.error, outcome.retryable
    ('ResourceGroupNotFound', False)
    >>> err = arm_error(outcome, answer, timeline=None, endpoint="https://127.0.0.1:1", path="/x",
    ...                 who={"identity": "system-assigned"})
    >>> type(err).__name__, str(err).splitlines()[0]
    ('ArmError', 'ARM found nothing at /x (ResourceGroupNotFound).')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import errors
from ..clouds import CLOUDS
from ..http import Answer, UnexpectedAnswer, describe_failure, wire_outcome
from ..retry import AttemptOutcome

_ARM_AUDIENCES = ", ".join(f"{c.arm_endpoint} in {c.title}" for c in CLOUDS.values())

if TYPE_CHECKING:  # pragma: no cover
    from ..retry import Timeline

__all__ = ["arm_error", "explain", "judge"]

_FORBIDDEN = re.compile(r"perform action '(?P<action>[^']+)' over scope '(?P<scope>[^']+)'")
_NETWORK_HINT = ("Check network access to ARM (proxy settings in HTTPS_PROXY / NO_PROXY, firewall, NSG outbound "
                 "rules), then try again.")
_PROXY_HINT = "A proxy or captive portal may be in the way; check HTTPS_PROXY / NO_PROXY and the ARM url."
_TLS_HINT = ("For the emulator pass verify=emu.ca_bundle (mi.arm() does this for you); on a real VM a proxy that "
             "intercepts TLS needs its CA in MI_NOTEBOOK_ARM_CA_BUNDLE.")


def judge(answer: Answer, *, client_request_id: str) -> AttemptOutcome:
    """How one ARM answer counts for the retry machinery (see the module doc).

    Example::

        >>> from mi_notebook.http import Answer
        >>> judge(Answer("json", 429, {"Retry-After": "7"}, b'{"error": {"code": "Throttled"}}', retry_after=7.0),
        ...       client_request_id="c-1").retry_after
        7.0
    """
    decided, facts = wire_outcome(answer, client_request_id)
    if decided is not None:  # nothing answered, or the body was cut short: the wire decided
        return decided
    status: int = answer.status  # type: ignore[assignment]
    transient = status == 429 or 500 <= status <= 599
    if answer.kind == "redirect":
        problem = f"a redirect to {answer.location!r} (not followed)"
        return facts.outcome(exception=UnexpectedAnswer(f"HTTP {status}: {problem}", problem=problem),
                             retryable=False)
    if answer.kind != "json":
        if 200 <= status <= 299 or answer.kind == "html":
            problem = "an HTML page" if answer.kind == "html" else "a body that is not ARM's JSON"
            return facts.outcome(exception=UnexpectedAnswer(f"HTTP {status} with {problem}", problem=problem),
                                 retryable=transient or None)
        return facts.outcome(error_description=answer.snippet or None, retryable=transient)
    document = answer.document
    if 200 <= status <= 299:
        return facts.outcome(value=document)
    envelope = document.get("error")
    code = envelope.get("code") if isinstance(envelope, dict) else None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    return facts.outcome(error=None if code is None else str(code),
                         error_description=None if message is None else str(message), retryable=transient)


def arm_error(outcome: AttemptOutcome, answer: Answer, *, timeline: Timeline | None, endpoint: str, path: str,
              who: dict[str, Any], refreshed: bool = False,
              correlation_id: str | None = None) -> errors.ManagedIdentityError:
    """The error for the last answer of a failed ARM read.

    ``who``: ``{"identity": ..., "oid": ...}`` for the message; ``refreshed``: whether a fresh token
    was already fetched after a 401; ``correlation_id``: the request's ``x-ms-correlation-request-id``.

    Example::

        >>> from mi_notebook.http import Answer
        >>> answer = Answer("timeout", exception=TimeoutError("read timed out"))
        >>> err = arm_error(judge(answer, client_request_id="c-1"), answer, timeline=None,
        ...                 endpoint="https://127.0.0.1:1", path="/subscriptions", who={})
        >>> type(err).__name__, isinstance(err, errors.ImdsTimeoutError)
        ('EndpointTimeoutError', False)
    """
    common: dict[str, Any] = {"timeline": timeline, "endpoint": endpoint, "request_id": outcome.request_id}
    status = answer.status
    reason = describe_failure(answer)
    if not answer.answered:
        if answer.kind == "tls":
            return errors.EndpointUnreachableError(f"TLS verification of {endpoint} failed: {reason}.", **common,
                                                   hint=_TLS_HINT)
        if answer.kind in ("timeout", "connect-timeout"):
            return errors.EndpointTimeoutError(
                f"Azure Resource Manager at {endpoint} did not answer {path} in time: {reason}.", **common,
                hint=_NETWORK_HINT)
        return errors.EndpointUnreachableError(
            f"Azure Resource Manager at {endpoint} could not be reached: {reason}.", **common, hint=_NETWORK_HINT)
    if answer.kind == "timeout":
        return errors.EndpointTimeoutError(f"{endpoint} answered {path} with HTTP {status}, but {reason}.",
                                           status=status, **common, hint=_NETWORK_HINT)
    if answer.kind == "truncated":
        return errors.UnexpectedResponseError(
            f"{endpoint} answered {path} with HTTP {status}, but {reason}.", status=status, **common,
            hint="A network problem between this machine and ARM, or a proxy cutting answers short; try again.")
    if isinstance(outcome.exception, UnexpectedAnswer):
        return errors.UnexpectedResponseError(
            f"{endpoint} answered {path} with HTTP {status} and {outcome.exception.problem}: that is not Azure "
            "Resource Manager speaking.", status=status, **common, hint=_PROXY_HINT)
    code, arm_message = outcome.error, outcome.error_description
    message, hint = explain(status, code, arm_message, path, who, refreshed=refreshed)
    match = _FORBIDDEN.search(arm_message or "")
    return errors.ArmError(
        message, code=code, arm_message=arm_message, status=status, hint=hint,
        correlation_id=answer.headers.get("x-ms-correlation-request-id") or correlation_id,
        principal_id=who.get("oid"),
        action=match.group("action") if match else None,
        scope=match.group("scope") if match else None,
        **common,
    )


def explain(status: int | None, code: str | None, arm_message: str | None, path: str, who: dict[str, Any], *,
            refreshed: bool = False) -> tuple[str, str]:
    """``(message, hint)`` for ARM's refusal: who was refused what where, and what to do about it.

    Example::

        >>> message, hint = explain(403, "AuthorizationFailed",
        ...     "The client 'o' with object id 'o' does not have authorization to perform action "
        ...     "'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '/subscriptions/s' or the "
        ...     "scope is invalid.", "/subscriptions/s/resourcegroups", {"identity": "system-assigned", "oid": "o"})
        >>> message
        "ARM refused: system-assigned (object id o) may not perform 'Microsoft.Resources/subscriptions/resourceGroups/read' on '/subscriptions/s'."
        >>> hint.split(",")[0]
        "Assign it a role that allows 'Microsoft.Resources/subscriptions/resourceGroups/read' (for reading: Reader) at '/subscriptions/s' or above"
    """
    identity = who.get("identity", "this identity")
    oid = who.get("oid")
    principal = f"{identity} (object id {oid})" if oid else identity
    if status == 403:
        match = _FORBIDDEN.search(arm_message or "")
        action = match.group("action") if match else "this action"
        scope = match.group("scope") if match else path
        message = f"ARM refused: {principal} may not perform '{action}' on '{scope}'."
        hint = (f"Assign it a role that allows '{action}' (for reading: Reader) at '{scope}' or above, e.g. "
                f"az role assignment create --assignee-object-id {oid or '<principal id>'} "
                f"--assignee-principal-type ServicePrincipal --role Reader --scope {scope}. "
                "A direct role assignment takes effect within minutes (up to about 10); only a role "
                "given through a group waits for the identity's next token (managed-identity tokens are cached "
                "for up to 24 hours).")
        return message, hint
    if status == 401:
        again = " even after fetching a fresh token" if refreshed else ""
        message = f"ARM rejected the token of {principal}{again} ({code})."
        if code == "InvalidAuthenticationTokenAudience":
            hint = ("Request the token for this cloud's Azure Resource Manager: resource 'arm' (mi-notebook asks for "
                    f"the connection's cloud: {_ARM_AUDIENCES}); ARM's message lists the audiences it accepts.")
        elif code == "ExpiredAuthenticationToken":
            hint = "The token had expired; check this machine's clock, then try again (a fresh token is fetched)."
        elif code == "InvalidAuthenticationTokenTenant":
            hint = "The subscription belongs to another tenant than the identity; use an identity of that tenant."
        else:
            hint = "Get a new token (force_refresh=True) and check it with mi.decode(token).checks(resource='arm')."
        return message, hint
    if status == 429:
        return (f"ARM throttled the reads of {principal} ({code}) and kept doing so through the retries.",
                "Make fewer requests (ARM allows about 250 reads in a burst, refilled at 25 per second per "
                "subscription and identity); wait for Retry-After and try again.")
    if status == 404:
        return (f"ARM found nothing at {path} ({code}).",
                "Check the subscription, resource group and resource names (the path is case-insensitive; "
                "names must exist).")
    if status == 400 and code in ("MissingApiVersionParameter", "InvalidApiVersionParameter",
                                  "NoRegisteredProviderFound"):
        return (f"ARM does not accept the api-version sent for {path} ({code}).",
                "Pass api_version=... with a version ARM lists as supported in the message above.")
    if status is not None and 500 <= status <= 599:
        return (f"ARM failed on its side for {path} (HTTP {status}, {code}) and kept failing through the retries.",
                "This is on Azure's side; try again later, and check Azure status if it persists.")
    return (f"ARM answered {path} with HTTP {status} ({code}).",
            "Fix the request; retrying the same request will not help.")
