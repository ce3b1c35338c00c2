"""``mi-notebook token [RESOURCE]``: get a managed-identity token, redacted unless asked for.

``--output`` (``-o``) as ``az account get-access-token`` has it: ``text`` (the default, a readable
card), ``json`` (az's shape: ``accessToken``, ``expiresOn``, ``expires_on``, ``resource``,
``tokenType``, plus ``identity``, ``problem``, ``fingerprint``, ``endpoint``), ``tsv`` (the same
values, one line, tab-separated) and ``raw`` (the token alone, for ``$(...)``). The token is
redacted in ``text``, ``json`` and ``tsv`` unless ``--show-token``; ``raw`` exists to print it.
While the endpoint is being retried, one short line per attempt goes to stderr.

The identity is the token's own: its claims say whether it is a system-assigned or user-assigned
managed identity, or a person's OWN user token. On Azure ML with no identity named, the compute
answers with the signed-in user's token: that is a failure (exit 1, the fix on stderr, and with
``-o raw`` the token is not printed).

Example::

    $ mi-notebook token arm -o json
    $ curl -H "Authorization: Bearer $(mi-notebook token arm -o raw)" https://management.azure.com/...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ..timefmt import format_relative, format_utc
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    TOKEN_HIDDEN,
    add_connection_arguments,
    add_identity_arguments,
    claims_judge_user_tokens,
    connection_from_args,
    given_url,
    guarded,
    identity_from_args,
)
from ._errors import stop_when_nothing_listens
from ._identity import CliProblem, identity_problem

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..retry import Attempt
    from ..tokens import AccessToken


OUTPUTS = ("text", "json", "tsv", "raw")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``token`` on the ``mi-notebook`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "token",
        help="get a managed-identity access token (redacted unless --show-token)",
        description="Get a managed-identity access token from IMDS (or the emulator).",
    )
    from ..resources import WELL_KNOWN_RESOURCES

    parser.add_argument("resource", nargs="?", default="arm",
                        help=f"alias ({', '.join(WELL_KNOWN_RESOURCES)}), App ID URI or .default scope "
                             "(default: arm)")
    add_identity_arguments(parser)
    parser.add_argument("-o", "--output", choices=OUTPUTS, default="text",
                        help="text (default), json (like `az account get-access-token`), tsv, or raw: "
                             "the token alone, for $(...)")
    parser.add_argument("--json", dest="output", action="store_const", const="json", help="same as --output json")
    parser.add_argument("--show-token", action="store_true",
                        help="show the token itself in text, json and tsv output (it is a secret!)")
    add_connection_arguments(parser)
    parser.set_defaults(func=guarded(run))
    return parser


class _Recorded(Exception):
    """A timeline's exception text standing in for the exception (the timeline keeps only the text)."""

    def __repr__(self) -> str:
        return str(self)


def attempt_reason(attempt: Attempt) -> str:
    """What one attempt got, in a few words: ``HTTP 503 ...``, ``connection refused``, ``ReadTimeout``.

    Failures on the wire read as :func:`mi_notebook.http.describe_failure` says them; anything it
    does not recognise is named by its exception type alone (never a cut-off urllib3 message).

    Example::

        >>> from mi_notebook.retry import Attempt
        >>> text = "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): ... [Errno 111] Connection refused"
        >>> attempt_reason(Attempt(number=1, start=0, duration=0.1, exception=text))
        'connection refused'
        >>> cut = "ConnectionError: HTTPConnectionPool(...) (Caused by NewConnectionError('... Failed to establish a..."
        >>> attempt_reason(Attempt(number=1, start=0, duration=0.1, exception=cut))
        'could not connect'
        >>> attempt_reason(Attempt(number=1, start=0, duration=0.1, status=429, error="throttled"))
        'HTTP 429 throttled'
    """
    from ..http import Answer, describe_failure

    if attempt.status is not None:
        return f"HTTP {attempt.status}" + (f" {attempt.error}" if attempt.error else "")
    if not attempt.exception:
        return "no answer"
    name = attempt.exception.split(":", 1)[0].strip()
    kind = "connect-timeout" if "ConnectTimeout" in name else "timeout" if "Timeout" in name else "unreachable"
    said = describe_failure(Answer(kind, exception=_Recorded(attempt.exception)))
    if not said.startswith(_Recorded.__name__):
        return said.split(" (", 1)[0]
    # The timeline keeps only the first 300 characters of urllib3's message, often cut before the errno.
    return "could not connect" if "NewConnectionError" in attempt.exception else name


def progress_printer(stream: Any = None, *, label: str = "IMDS") -> Any:
    """An ``on_attempt`` callback printing one short line per retried attempt on ``stream`` (default stderr).

    Example::

        >>> import io
        >>> from mi_notebook.retry import Attempt
        >>> out = io.StringIO()
        >>> progress_printer(out)(Attempt(number=2, start=0, duration=0.1, status=503, outcome="retried"), 6.0, 5)
        >>> out.getvalue()
        'IMDS attempt 2 of 5: HTTP 503; next in 6.0 s\\n'
    """

    def on_attempt(attempt: Attempt, next_wait: float | None, max_attempts: int) -> None:
        if attempt.outcome == "success" or (next_wait is None and attempt.number == 1):
            return  # nothing was retried: the result (or the error) says it all
        out = stream if stream is not None else sys.stderr
        of = f" of {max_attempts}" if attempt.number <= max_attempts else f" (past {max_attempts}: 410 window)"
        then = f"next in {next_wait:.1f} s" if next_wait is not None else "giving up"
        print(f"{label} attempt {attempt.number}{of}: {attempt_reason(attempt)}; {then}", file=out, flush=True)

    return on_attempt


def endpoint_label(host: str | None) -> str:
    """What the progress lines call the token endpoint of ``host`` (``IMDS``, ``Azure ML``, ...).

    Example::

        >>> endpoint_label("vm"), endpoint_label("azureml")
        ('IMDS', 'Azure ML endpoint')
    """
    names = {"azureml": "Azure ML", "appservice": "App Service", "arc": "Azure Arc", "cloudshell": "Cloud Shell",
             "workload": "Entra ID (workload identity)"}
    return f"{names[host]} endpoint" if host in names else "IMDS"


def token_json(token: AccessToken, *, show_token: bool = False, problem: CliProblem | None = None) -> dict[str, Any]:
    """The ``--json`` document: ``az account get-access-token``'s shape, plus ``identity`` (whose token
    it is, by its claims: ``kind``, ``label``, ``name``, ids), ``problem`` (``null``, or what is wrong
    and the fix), the fingerprint, the endpoint and who issued it.

    Example::

        >>> from mi_notebook.tokens import AccessToken
        >>> doc = token_json(AccessToken("opaque", resource="api://x", expires_on=1_800_000_000))
        >>> doc["identity"]["kind"], doc["identity"]["label"], doc["problem"]
        ('unknown', 'system-assigned as asked (the token does not say)', None)
    """
    from ..claims import token_identity

    who = token_identity(token)
    expires = dt.datetime.fromtimestamp(token.expires_on)  # local time, as az prints it
    return {
        "accessToken": token.reveal() if show_token else TOKEN_HIDDEN,
        "expiresOn": expires.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "expires_on": int(token.expires_on),
        "resource": token.resource,
        "tokenType": token.token_type or "Bearer",
        "identity": {**who.to_dict(), "label": who.label_for(token.identity)},
        "clientId": token.client_id,
        "fingerprint": token.fingerprint,
        "endpoint": token.endpoint,
        "host": token.host,
        "emulated": token.emulated,
        "problem": problem.to_dict() if problem is not None else None,
    }


def _tsv(doc: dict[str, Any]) -> str:
    """One tab-separated line of the JSON document's values (the identity as its label, a problem as its text)."""
    values = {**doc, "identity": doc["identity"]["label"],
              "problem": doc["problem"]["message"] if doc["problem"] else None}
    return "\t".join("" if value is None else str(value) for value in values.values())


def run(ns: argparse.Namespace) -> int:
    """Fetch the token, label it by its claims, and print it; exit 1 when it is not the identity meant."""
    from ..claims import token_identity
    from ..resources import resolve_resource

    identity = identity_from_args(ns)
    resource = resolve_resource(ns.resource)  # bad input fails before any connection is made
    conn = connection_from_args(ns)
    progress = stop_when_nothing_listens(conn, progress_printer(label=endpoint_label(conn.host)),
                                         given=given_url(ns) or "--imds-url")
    with claims_judge_user_tokens():
        token = conn.get_token(resource, identity=identity, on_attempt=progress)
    if token.emulated:
        print(f"NOT an Azure token: issued by the mi-notebook emulator. {conn.reason}", file=sys.stderr)
    who = token_identity(token)
    again = "mi-notebook token" + ("" if ns.resource == "arm" else f" {ns.resource}")
    problem = identity_problem(who, conn.host, token.identity, command=again, endpoint=conn.endpoint)
    failed = problem is not None and problem.severity == "problem"
    if ns.output == "raw":
        if failed:  # a script asked for the identity's token: do not hand it the person's instead
            assert problem is not None
            _report(problem, "the token was not printed")
            return EXIT_ERROR
        print(token.reveal())
    elif ns.output in ("json", "tsv"):
        doc = token_json(token, show_token=ns.show_token, problem=problem)
        print(json.dumps(doc, indent=2) if ns.output == "json" else _tsv(doc))
    else:
        print("\n".join(card_lines(token, conn, show_token=ns.show_token)))
    if problem is not None:
        _report(problem)
    return EXIT_ERROR if failed else EXIT_OK


def card_lines(token: AccessToken, conn: Connection, *, show_token: bool = False) -> list[str]:
    """The text card: resource and whose token it is (by its claims), endpoint, expiry, issuer, fingerprint."""
    from ..claims import token_identity

    label = token_identity(token).label_for(token.identity)
    lines = [
        f"Token for {token.resource} ({label})" if "(" not in label else f"Token for {token.resource}: {label}",
        f"  identity     {token_identity(token).describe(token.identity)}",
        f"  endpoint     {conn.endpoint} ({conn.host}, {conn.chosen})",
        f"  expires_on   {token.expires_on} = {format_utc(token.expires_on)} "
        f"({format_relative(token.expires_on, time.time())})",
        f"  issued by    {token.issuer_label}",
        f"  token_type   {token.token_type or 'Bearer'}",
        f"  fingerprint  {token.fingerprint}",
    ]
    if token.client_id:
        lines.append(f"  client_id    {token.client_id}")
    if token.timeline is not None:
        lines.append(f"  attempts     {token.timeline.summary()}")
    lines.append(f"  access_token {token.reveal() if show_token else TOKEN_HIDDEN}")
    return lines


def _report(problem: CliProblem, note: str | None = None) -> None:
    lines = problem.lines()
    if note:
        lines[0] += f" ({note})"
    print("\n".join(lines), file=sys.stderr, flush=True)
