"""What the widgets show, as plain HTML strings and PNG bytes (no widgets here: easy to test).

Progress lines, the error panels (a :class:`~mi_notebook.errors.ManagedIdentityError` explained,
bad input, or a bug), the RBAC lesson for an ARM 403, result tables, and charts rendered to PNG
with a bare matplotlib ``Figure`` (no pyplot: safe in a worker thread, nothing leaks into the
cell's outputs). Every text goes through :func:`redact` before it is shown, so a token can never
reach the page, even inside an unexpected exception's message.

Example::

    >>> from mi_notebook.errors import ServerError
    >>> html = error_panel(ServerError("IMDS kept failing", status=503))
    >>> "HTTP status" in html and "What to do" in html
    True
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import html as _h
from ..errors import ArmError, ManagedIdentityError
from ..secret import redact_text

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..retry import Attempt

__all__ = [
    "arm_error_panel",
    "bug_panel",
    "error_panel",
    "figure_png",
    "input_panel",
    "legend_outside",
    "note",
    "progress_text",
    "rbac_panel",
    "redact",
    "results_table",
    "title",
]

FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px"
_PANEL = "border-radius:6px;padding:10px 14px;margin:6px 0;max-width:960px;" + FONT + ";"
_RED = "border:1px solid #cf222e;border-left:5px solid #cf222e;background:#fff8f8;"
_AMBER = "border:1px solid #9a6700;border-left:5px solid #9a6700;background:#fff8e6;"
_HINT = "margin:6px 0;padding:6px 10px;background:#ffffff;border:1px dashed #d0d7de;border-radius:4px"

# JWTs (three base64url parts, the first starting like a JSON header) and bearer headers

#: a headline per error type, most specific first
HEADLINES: tuple[tuple[str, str], ...] = (
    ("ImdsTimeoutError", "The identity endpoint did not answer in time"),
    ("EndpointUnreachableError", "The identity endpoint could not be reached"),
    ("IdentityNotFoundError", "This identity is not assigned to the VM"),
    ("MultipleIdentitiesError", "Several identities: choose one"),
    ("InvalidResourceError", "Entra ID does not know this resource"),
    ("BadRequestError", "The request was refused"),
    ("ThrottledError", "Too many requests: IMDS throttled them"),
    ("ImdsUpdatingError", "IMDS is being updated"),
    ("ServerError", "Azure failed on its side"),
    ("UnexpectedResponseError", "Something that is not IMDS answered"),
    ("TokenDecodeError", "The token could not be decoded"),
    ("ArmError", "Azure Resource Manager said no"),
)


def redact(text: object) -> str:
    """``str(text)`` with anything token-like replaced by ``<redacted>``.

    >>> redact("got eyJhbGciOi.eyJhdWQiOiJ4.c2lnbmF0dXJl back")
    'got <redacted> back'
    """
    return redact_text(str(text))


def _esc(text: object) -> str:
    return _h.esc(redact(text))


def headline(err: BaseException) -> str:
    """A short, human title for an error, chosen by its type (its class or any base class).

    >>> from mi_notebook.errors import ThrottledError
    >>> headline(ThrottledError("x"))
    'Too many requests: IMDS throttled them'
    """
    names = [cls.__name__ for cls in type(err).__mro__]
    for name in names:
        for key, text in HEADLINES:
            if key == name:
                return text
    return "Could not get a token"


def progress_text(attempt: Attempt, next_wait: float | None, max_attempts: int) -> str:
    """One line of live progress for an attempt just made (HTML).

    >>> from mi_notebook.retry import Attempt
    >>> a = Attempt(number=2, start=2.0, duration=0.1, status=503, outcome="retried")
    >>> progress_text(a, 6.0, 5)
    '<b>Attempt 2 of 5</b>: HTTP 503, retrying in 6.0 s'
    """
    what = f"HTTP {attempt.status}" if attempt.status is not None else _esc(attempt.label)
    head = f"<b>Attempt {attempt.number} of {max(max_attempts, attempt.number)}</b>: {what}"
    if attempt.outcome == "success":
        return head + " (success)"
    if next_wait is not None:
        reason = {"retry-after": " (Retry-After)", "gone-window": " (IMDS is updating)"}.get(attempt.wait_reason or "", "")
        return head + f", retrying in {next_wait:.1f} s{reason}"
    return head + ", giving up"


def _details_rows(err: ManagedIdentityError) -> list[tuple[str, str]]:
    rows = [("error type", type(err).__name__)]
    for label, value in (("HTTP status", err.status), ("error", err.error),
                         ("error_description", err.error_description), ("request id", err.request_id),
                         ("endpoint", err.endpoint)):
        if value not in (None, ""):
            rows.append((label, redact(value)))
    if err.timeline is not None and len(err.timeline):
        rows.append(("attempts", err.timeline.summary()))
    return rows


def _panel(style: str, title: str, body: str) -> str:
    return (f'<div class="mi-error-panel" style="{_PANEL}{style}">'
            f'<div style="font-weight:600;font-size:14px;margin-bottom:4px">{_esc(title)}</div>{body}</div>')


def error_panel(err: ManagedIdentityError) -> str:
    """The readable panel for a failed request: headline, message, what to do, what the service said.

    >>> from mi_notebook.errors import IdentityNotFoundError
    >>> html = error_panel(IdentityNotFoundError("No such identity", status=400, error="invalid_request"))
    >>> "This identity is not assigned" in html and "invalid_request" in html
    True
    """
    body = f'<div style="margin:2px 0">{_esc(err.message)}</div>'
    if err.hint:
        body += f'<div style="{_HINT}"><b>What to do:</b> {_esc(err.hint)}</div>'
    body += _h.kv_table(_details_rows(err))
    return _panel(_RED, headline(err), body)


def input_panel(err: ValueError) -> str:
    """A panel for input refused before any request (identity or resource text).

    >>> "Check the input" in input_panel(ValueError("client_id: 'x' is not a GUID"))
    True
    """
    body = (f'<div style="margin:2px 0">{_esc(err)}</div>'
            f'<div style="{_HINT}"><b>What to do:</b> Check the input above; nothing was sent.</div>')
    return _panel(_AMBER, "Check the input", body)


def bug_panel(err: BaseException, where: str = "getting the token") -> str:
    """A panel for an unexpected exception: a bug in mi-notebook, said plainly, type and message.

    >>> html = bug_panel(KeyError("expires_on"))
    >>> "bug in mi-notebook" in html and "KeyError" in html
    True
    """
    body = (
        f'<div style="margin:2px 0">Something unexpected went wrong while {_esc(where)}. '
        "This is a bug in mi-notebook, not something you did.</div>"
        + _h.kv_table([("error type", type(err).__name__), ("message", redact(err) or "(no message)")])
        + f'<div style="{_HINT}"><b>What to do:</b> Please report it with the error type and message '
        "above (they never contain the token). The same call from a script is "
        "<code>mi.get_token(...)</code>.</div>"
    )
    return _panel(_RED, "Unexpected error (a bug)", body)


# --- ARM -------------------------------------------------------------------------------------------
_ACTION = re.compile(r"perform action '([^']+)'")
_SCOPE = re.compile(r"over scope '([^']+)'")
_OBJECT_ID = re.compile(r"object id '([^']+)'")


def rbac_panel(err: ArmError, identity: str) -> str:
    """A 403 ``AuthorizationFailed`` as the lesson it is: who, which action, which scope, which role.

    >>> from mi_notebook.errors import ArmError
    >>> msg = ("The client 'x' with object id 'x' does not have authorization to perform action "
    ...        "'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '/subscriptions/s1'.")
    >>> html = rbac_panel(ArmError("denied", code="AuthorizationFailed", arm_message=msg, status=403),
    ...                   "system-assigned")
    >>> "Reader" in html and "/subscriptions/s1" in html and "principal id x" in html
    True
    """
    said = err.arm_message or err.error_description or ""
    action_m, scope_m, oid_m = _ACTION.search(said), _SCOPE.search(said), _OBJECT_ID.search(said)
    action = action_m.group(1) if action_m else "(not stated by ARM)"
    scope = scope_m.group(1) if scope_m else "(not stated by ARM)"
    reading = action.lower().endswith("/read")
    role = "Reader" if reading else "a role that includes this action (e.g. Contributor)"
    who = identity + (f" (principal id {oid_m.group(1)})" if oid_m else "")
    rows = [("identity", who), ("action", action), ("scope", scope), ("role to assign", role),
            ("ARM code", err.code or "-")]
    if err.hint:
        todo = _esc(err.hint)
    else:
        command = (f"az role assignment create --assignee-object-id {oid_m.group(1) if oid_m else '<principal id>'} "
                   f"--assignee-principal-type ServicePrincipal --role Reader --scope {scope}")
        todo = f"assign {_esc(role)} on the scope (or a parent scope), e.g. <code>{_esc(command)}</code>"
    body = (
        '<div style="margin:2px 0">The token was accepted: Azure knows who is asking. That identity has '
        "no role assignment that allows this action at this scope. This is authorization (RBAC), "
        "not authentication.</div>"
        + _h.kv_table(rows)
        + f'<div style="{_HINT}"><b>What to do:</b> {todo}</div>'
        + f'<div style="color:#57606a;font-size:11px;margin-top:4px">ARM said: {_esc(said or err.message)}</div>'
    )
    return _panel(_AMBER, "403: this identity may not do that (RBAC)", body)


def arm_error_panel(err: ManagedIdentityError, identity: str) -> str:
    """The RBAC lesson for a 403, the general error panel for anything else.

    >>> from mi_notebook.errors import ArmError
    >>> "Azure Resource Manager said no" in arm_error_panel(ArmError("x", code="NotFound", status=404), "s")
    True
    """
    if isinstance(err, ArmError) and (err.status == 403 or err.code == "AuthorizationFailed"):
        return rbac_panel(err, identity)
    return error_panel(err)


# --- results ---------------------------------------------------------------------------------------
def results_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]], *,
                  empty: str = "none") -> str:
    """A titled card with a table (or ``empty`` when there are no rows); cells are escaped.

    >>> "2 items" in results_table("Groups", ["name"], [["a"], ["b"]])
    True
    """
    rows = [[redact(c) for c in row] for row in rows]
    n = len(rows)
    content = _h.table(list(columns), rows) if rows else f'<div style="color:#57606a">{_esc(empty)}</div>'
    return _h.card(f"{title} ({n} item{'s' if n != 1 else ''})", [content])


def where(conn: Any) -> str:
    """Where tokens come from, for a widget's title; the emulator always says it is not Azure.

    >>> from types import SimpleNamespace
    >>> where(SimpleNamespace(emulated=True, host="azureml", endpoint="http://127.0.0.1:1/MSI/auth", closed=False))
    'embedded emulator (not Azure) playing Azure ML at http://127.0.0.1:1/MSI/auth'
    >>> where(None)
    'connection chosen on the first request (mi.connect())'
    """
    if conn is None or conn.closed:
        return "connection chosen on the first request (mi.connect())"
    hosts = {"vm": "IMDS", "azureml": "Azure ML", "appservice": "App Service", "arc": "Azure Arc",
             "cloudshell": "Cloud Shell (your own user token)", "servicefabric": "Service Fabric"}
    if conn.emulated:
        playing = f" playing {hosts.get(conn.host, conn.host)}" if conn.host != "vm" else ""
        return f"embedded emulator (not Azure){playing} at {conn.endpoint}"
    label = "Azure IMDS" if conn.host == "vm" else hosts.get(conn.host, conn.host)
    return f"{label} at {conn.endpoint}"


def title(name: str, subtitle: str) -> str:
    """A widget's heading: its ``name`` in bold, then ``subtitle`` in small muted text (escaped).

    >>> "ARM Explorer" in title("ARM Explorer", "what this identity may read")
    True
    >>> "&lt;b&gt;" in title("Token Explorer", "<b>")
    True
    """
    return (f'<div style="{FONT};font-size:15px;font-weight:600;margin:2px 0 6px 0">{_esc(name)} '
            f'<span style="font-weight:400;color:#57606a;font-size:12px">{_esc(subtitle)}</span></div>')


def note(text: str, *, colour: str = "#57606a") -> str:
    """A small line of muted text (escaped).

    >>> note("<b>")
    '<span style="color:#57606a;font-size:12px">&lt;b&gt;</span>'
    """
    return f'<span style="color:{colour};font-size:12px">{_esc(text)}</span>'


def legend_outside(ax: Axes) -> Axes:
    """Move an Axes' legend to the right of the plot (as the lifetime chart has it): it never covers data.

    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot(); _ = ax.plot([0, 1], label="x"); _ = ax.legend()
    >>> legend_outside(ax).get_legend().get_texts()[0].get_text()
    'x'
    """
    legend = ax.get_legend()
    if legend is None:
        return ax
    kept = [(h, t.get_text()) for h, t in zip(legend.legend_handles, legend.get_texts(), strict=True) if h is not None]
    legend.remove()
    ax.legend([h for h, _ in kept], [label for _, label in kept], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return ax


def figure_png(draw: Callable[[Axes], Any], *, figsize: tuple[float, float] | None = None, dpi: int = 110) -> bytes:
    """Draw into a fresh ``Figure`` (not pyplot: thread-safe, never shown by the inline backend), as PNG.

    >>> png = figure_png(lambda ax: ax.plot([0, 1], [0, 1]))
    >>> png[:4] == b"\\x89PNG"
    True
    """
    from matplotlib.figure import Figure

    from ..charts import FIGSIZE

    fig = Figure(figsize=figsize or FIGSIZE, dpi=dpi)
    ax = fig.add_subplot()
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()
