"""Library errors, said on the command line: what happened, the service's words cleaned, and what to do
in flags and variables (never ``mi.connect(...)`` or ``Identity.user(...)``).

:func:`error_lines` renders any :class:`~mi_notebook.errors.ManagedIdentityError` for stderr;
:func:`cli_hint` is the "What to do" for where the command was pointed (a URL given with
``--imds-url``, real IMDS, an Azure ML compute...). :func:`stop_when_nothing_listens` makes a
refused loopback URL that was given explicitly fail after two attempts instead of retrying for
most of a minute.

Example::

    >>> from mi_notebook.errors import InvalidResourceError
    >>> err = InvalidResourceError("Entra ID does not know the resource 'https://vault.azure.com'.", status=400,
    ...     error="invalid_resource", error_description="AADSTS500011: not found.\\r\\nTrace ID: t-1\\r\\nTimestamp: x")
    >>> print("\\n".join(error_lines(err, resource="https://vault.azure.com")))
    InvalidResourceError: Entra ID does not know the resource 'https://vault.azure.com'.
    The service answered: HTTP 400, error 'invalid_resource': AADSTS500011: not found. (Trace ID: t-1; Timestamp: x)
    What to do: did you mean https://vault.azure.net (alias 'vault')? Use the App ID URI exactly as the service documents it, or an alias (`mi-notebook token --help` lists them all).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..addresses import is_loopback_host
from ._identity import AZUREML_IDENTITY_WHERE

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..errors import ManagedIdentityError
    from ..identity import Identity
    from ..retry import Attempt

__all__ = ["clean_service_text", "cli_hint", "cli_words", "error_lines", "stop_when_nothing_listens"]

#: how many refused attempts a loopback URL given explicitly gets (a second one covers a server still starting)
REFUSED_LOOPBACK_ATTEMPTS = 2
_LINE_BREAKS = re.compile(r"(?:\r\n|\r|\n|\\r\\n|\\n|\\r)+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_service_text(text: str, limit: int = 600) -> str:
    """A service's text on one line: its first line, then the rest (Trace ID, Correlation ID...) in
    parentheses; real or escaped ``\\r\\n`` alike; cut at ``limit`` characters.

    Example::

        >>> clean_service_text("AADSTS500011: The resource was not found.\\r\\nTrace ID: 1\\r\\nCorrelation ID: 2")
        'AADSTS500011: The resource was not found. (Trace ID: 1; Correlation ID: 2)'
    """
    lines = [_CONTROL.sub(" ", line).strip() for line in _LINE_BREAKS.split(str(text))]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    said = lines[0] + (f" ({'; '.join(lines[1:])})" if len(lines) > 1 else "")
    return said if len(said) <= limit else said[: limit - 1] + "…"


def error_lines(exc: ManagedIdentityError, *, conn: Connection | None = None, resource: str | None = None,
                identity: Identity | None = None, given: str | None = None) -> list[str]:
    """The lines for stderr: ``Type: message``, what the service answered (cleaned), the attempts, the
    request id, and ``What to do:`` from :func:`cli_hint`. ``given`` names where an explicit URL came
    from (``--imds-url``).

    Example::

        >>> from mi_notebook.errors import ServerError
        >>> error_lines(ServerError("IMDS failed on its side.", status=503))[:2]
        ['ServerError: IMDS failed on its side.', 'The service answered: HTTP 503.']
    """
    lines = [f"{type(exc).__name__}: {exc.message}"]
    said = []
    if exc.status is not None:
        said.append(f"HTTP {exc.status}")
    if exc.error:
        said.append(f"error {clean_service_text(exc.error, 80)!r}")
    answer = ", ".join(said)
    if exc.error_description:
        answer += (": " if answer else "") + clean_service_text(exc.error_description)
    if answer:
        lines.append(f"The service answered: {answer}" + ("" if answer.endswith((".", ")")) else "."))
    if exc.timeline is not None and len(exc.timeline):
        lines.append(f"Attempts: {exc.timeline.summary()}")
    if exc.request_id:
        lines.append(f"Request id: {exc.request_id}.")
    hint = cli_hint(exc, conn=conn, resource=resource, identity=identity, given=given)
    if hint:
        lines.append(f"What to do: {hint}")
    return lines


def cli_hint(exc: ManagedIdentityError, *, conn: Connection | None = None, resource: str | None = None,
             identity: Identity | None = None, given: str | None = None) -> str:
    """What to do, in CLI terms, for ``exc`` where ``conn`` points (the library's own hint otherwise).

    Example::

        >>> from mi_notebook.errors import MultipleIdentitiesError
        >>> cli_hint(MultipleIdentitiesError("Several identities."))
        'Name one with --client-id, --object-id or --resource-id (`mi-notebook doctor` lists them, with Reader on the VM).'
    """
    from .. import errors

    given_url = getattr(conn, "chosen", None) == "given"
    vm_imds = (getattr(conn, "host", None) == "vm" and not given_url and not getattr(conn, "emulated", False)
               and conn is not None)
    host = getattr(conn, "host", None)
    endpoint = getattr(conn, "endpoint", None) or exc.endpoint
    if isinstance(exc, errors.InvalidResourceError):
        return _resource_hint(resource)
    if isinstance(exc, errors.MultipleIdentitiesError):
        return "Name one with --client-id, --object-id or --resource-id (`mi-notebook doctor` lists them, with Reader on the VM)."
    if host == "azureml" and isinstance(exc, errors.BadRequestError) and _names_a_client_id(exc, identity):
        return (f"The compute refused {identity}: name an identity assigned to this compute by its client id "
                f"(--client-id <guid>), as {AZUREML_IDENTITY_WHERE} shows it. When one is "
                "assigned, DEFAULT_IDENTITY_CLIENT_ID holds it (`echo $DEFAULT_IDENTITY_CLIENT_ID`) and `mi-notebook "
                "token` without --client-id uses it.")
    if isinstance(exc, errors.IdentityNotFoundError) and host in (None, "vm"):
        if identity is not None and identity.selector is not None:
            return (f"Check the id ({identity}): it must be a user-assigned identity assigned to this VM. "
                    "`mi-notebook doctor` lists the VM's identities (with Reader on the VM); so does the portal: "
                    "the VM's Identity blade, 'User assigned' tab. Changes take a few minutes to reach IMDS.")
        return ("This VM may have no identity at all: turn on its system-assigned identity (portal: the VM's "
                "Identity blade, 'System assigned' tab, Status On; or `az vm identity assign --resource-group "
                "<group> --name <vm>`), give it a role such as Reader, and wait a few minutes; or name a "
                "user-assigned one with --client-id.")
    if isinstance(exc, errors.EndpointUnreachableError) and given_url:
        source = given or "--imds-url or MI_NOTEBOOK_IMDS_URL"
        return (f"{endpoint} is the URL {source} gave: check its address and port, and that the emulator (or "
                "service) runs there; `mi-notebook emulator` prints `IMDS <url>` when it starts.")
    if isinstance(exc, errors.EndpointUnreachableError) and vm_imds:
        return ("Check that this machine is an Azure VM and that no firewall or proxy blocks 169.254.169.254 "
                "(`mi-notebook doctor`). Off Azure, use the embedded emulator: --mode emulator, or export "
                "MI_NOTEBOOK_MODE=emulator.")
    if isinstance(exc, errors.UnexpectedResponseError) and given_url:
        return f"Check that {endpoint} is an IMDS endpoint (an emulator's `IMDS <url>`), not another service."
    return cli_words(exc.hint or "")


def stop_when_nothing_listens(conn: Connection, on_attempt: Callable[..., None], *,
                              given: str = "--imds-url") -> Callable[..., None]:
    """``on_attempt`` that gives up early on a refused loopback URL given explicitly: nothing listens
    there, and retrying for most of a minute will not start it. Other endpoints are left alone.

    Example::

        >>> from types import SimpleNamespace
        >>> callback = lambda *a: None
        >>> stop_when_nothing_listens(SimpleNamespace(chosen="probed", endpoint="http://169.254.169.254"), callback) is callback
        True
    """
    if conn.chosen != "given" or not _is_loopback(conn.endpoint):
        return on_attempt

    def watch(attempt: Attempt, next_wait: float | None, max_attempts: int) -> None:
        from ..errors import EndpointUnreachableError

        said = attempt.exception or ""
        refused = "refused" in said.lower() or "NewConnectionError" in said  # urllib3's text may be cut short
        stop = refused and next_wait is not None and attempt.number >= REFUSED_LOOPBACK_ATTEMPTS
        on_attempt(attempt, None if stop else next_wait, max_attempts)
        if not stop:
            return
        raise EndpointUnreachableError(
            f"Nothing listens at {conn.endpoint}: the connection was refused on "
            f"{attempt.number} attempts over {attempt.start + attempt.duration:.1f} s, so mi-notebook stopped "
            "retrying (a loopback address that refuses has no server to wait for).",
            endpoint=conn.endpoint,
            hint=(f"{conn.endpoint} is the URL {given} gave: check its port, and that the emulator (or service) "
                  "still runs there; `mi-notebook emulator` prints `IMDS <url>` when it starts."))

    return watch


def _resource_hint(resource: str | None) -> str:
    from ..resources import WELL_KNOWN_RESOURCES, alias_for, suggest_resources

    close = suggest_resources(resource) if resource else []
    meant = ""
    if close:
        alias = alias_for(close[0])
        meant = f"did you mean {close[0]}" + (f" (alias '{alias}')" if alias else "") + "? "
    known = ", ".join(WELL_KNOWN_RESOURCES)
    tail = ("Use the App ID URI exactly as the service documents it, or an alias "
            "(`mi-notebook token --help` lists them all).")
    if not meant:
        tail = ("Use the App ID URI exactly as the service (or your app registration) spells it, or an alias: "
                f"{known}.")
    return meant + tail


def _names_a_client_id(exc: ManagedIdentityError, identity: Identity | None) -> bool:
    text = f"{exc.error or ''} {exc.error_description or ''}".lower()
    named = identity is not None and identity.client_id is not None
    return named and exc.status == 400 and ("identit" in text or "client" in text)


_PYTHON_ADVICE = (
    (re.compile(r"(?:(?:run|use) )?mi\.connect\(mode='emulator'\)(\s*/\s*set MI_NOTEBOOK_MODE=emulator)?"),
     "use --mode emulator (or export MI_NOTEBOOK_MODE=emulator)"),
    (re.compile(r"request_token\(resource, identity='client_id=<guid>'\)"), "--client-id <guid>"),
    (re.compile(r"identity='client_id=<guid>'"), "--client-id <guid>"),
    (re.compile(r"Identity\.user\(client_id=[^)]*\)(, object_id=\.\.\. or resource_id=\.\.\.)?"),
     "--client-id (or --object-id, --resource-id)"),
    (re.compile(r"mi_notebook\.resources\.(WELL_KNOWN_RESOURCES|list_resources\(\))"), "`mi-notebook token --help`"),
    (re.compile(r",? or pass url=\.\.\. explicitly"), ""),
)


def cli_words(hint: str) -> str:
    """The library's advice with its Python spellings replaced by the CLI's flags and variables.

    Example::

        >>> cli_words("IMDS will most likely not answer; use mi.connect(mode='emulator') to try things out.")
        'IMDS will most likely not answer; use --mode emulator (or export MI_NOTEBOOK_MODE=emulator) to try things out.'
    """
    for pattern, words in _PYTHON_ADVICE:
        hint = pattern.sub(words, hint)
    return hint


def _is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)

