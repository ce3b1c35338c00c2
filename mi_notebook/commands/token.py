"""``mi-notebook token [RESOURCE]``: get a managed-identity token, redacted unless ``--show-token``.

``--json`` prints the shape of ``az account get-access-token`` (``accessToken``, ``expiresOn``,
``expires_on``, ``resource``, ``tokenType``) plus ``identity``, ``fingerprint`` and ``endpoint``.
While IMDS is being retried, progress goes to stderr (attempt n of m, last status, next wait).

Example::

    $ mi-notebook token arm --json
    $ mi-notebook token vault --client-id 11111111-2222-3333-4444-555555555555 --show-token
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
    EXIT_OK,
    add_connection_arguments,
    add_identity_arguments,
    connection_from_args,
    guarded,
    identity_from_args,
    redact,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..retry import Attempt
    from ..tokens import AccessToken


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``token`` on the ``mi-notebook`` parser."""
    parser = subparsers.add_parser(
        "token",
        help="get a managed-identity access token (redacted unless --show-token)",
        description="Get a managed-identity access token from IMDS (or the emulator).",
    )
    parser.add_argument("resource", nargs="?", default="arm",
                        help="alias (arm, vault, storage, graph, ...), App ID URI or .default scope (default: arm)")
    add_identity_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON like `az account get-access-token`")
    parser.add_argument("--show-token", action="store_true", help="print the token itself (it is a secret!)")
    add_connection_arguments(parser)
    parser.set_defaults(func=guarded(run))
    return parser


def progress_printer(stream: Any = None) -> Any:
    """An ``on_attempt`` callback that reports each failed attempt on ``stream`` (default stderr).

    Example::

        >>> import io
        >>> from mi_notebook.retry import Attempt
        >>> out = io.StringIO()
        >>> progress_printer(out)(Attempt(number=1, start=0, duration=0.1, status=503, outcome="retried"), 2.0, 5)
        >>> out.getvalue()
        'IMDS attempt 1 of 5: HTTP 503; next attempt in 2.0 s\\n'
    """

    def on_attempt(attempt: Attempt, next_wait: float | None, max_attempts: int) -> None:
        if attempt.outcome == "success" or (next_wait is None and attempt.number == 1):
            return  # nothing was retried: the result (or the error) says it all
        out = stream if stream is not None else sys.stderr
        last = f"HTTP {attempt.status}" if attempt.status is not None else (attempt.exception or "no answer")
        if attempt.error:
            last += f" {attempt.error}"
        of = f" of {max_attempts}" if attempt.number <= max_attempts else f" (past {max_attempts}: 410 window)"
        then = f"next attempt in {next_wait:.1f} s" if next_wait is not None else "giving up"
        print(f"IMDS attempt {attempt.number}{of}: {last}; {then}", file=out, flush=True)

    return on_attempt


def token_json(token: AccessToken, *, show_token: bool = False) -> dict[str, Any]:
    """The ``--json`` document (``az account get-access-token`` shape plus identity and fingerprint)."""
    expires = dt.datetime.fromtimestamp(token.expires_on)  # local time, as az prints it
    return {
        "accessToken": token.reveal() if show_token else redact(token),
        "expiresOn": expires.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "expires_on": int(token.expires_on),
        "resource": token.resource,
        "tokenType": token.token_type or "Bearer",
        "identity": str(token.identity),
        "clientId": token.client_id,
        "fingerprint": token.fingerprint,
        "endpoint": token.endpoint,
        "issuedBy": token.source,
    }


def run(ns: argparse.Namespace) -> int:
    """Fetch and print the token."""
    from ..resources import resolve_resource

    identity = identity_from_args(ns)
    resource = resolve_resource(ns.resource)  # bad input fails before any connection is made
    conn = connection_from_args(ns)
    token = conn.get_token(resource, identity=identity, on_attempt=progress_printer())
    if token.source == "emulator":
        print(f"NOT an Azure token: issued by the mi-notebook emulator. {conn.reason}", file=sys.stderr)
    if ns.json:
        print(json.dumps(token_json(token, show_token=ns.show_token), indent=2))
        return EXIT_OK
    lines = [
        f"Token for {token.resource} ({token.identity})",
        f"  endpoint     {conn.endpoint} ({conn.kind})",
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
    lines.append(f"  access_token {token.reveal() if ns.show_token else redact(token)}")
    print("\n".join(lines))
    return EXIT_OK

