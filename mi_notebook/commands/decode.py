"""``mi-notebook decode [TOKEN|-]``: explain a token's claims (read from stdin with ``-`` or no argument).

The signature is not verified (the output says so); the token itself is never printed.

Example::

    $ mi-notebook token arm --show-token --json | jq -r .accessToken | mi-notebook decode -
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import EXIT_OK, fail, guarded


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``decode`` on the ``mi-notebook`` parser."""
    parser = subparsers.add_parser(
        "decode",
        help="explain the claims of an access token (signature not verified)",
        description="Decode a JWT access token and explain every claim. Reads stdin for '-' or no argument.",
    )
    parser.add_argument("token", nargs="?", default="-", help="the token, or '-' to read it from stdin")
    parser.add_argument("--json", action="store_true", help="print header and payload as JSON")
    parser.add_argument("--imds-url", help=argparse.SUPPRESS)  # accepted for symmetry; decode needs no endpoint
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.set_defaults(func=guarded(run))
    return parser


def run(ns: argparse.Namespace) -> int:
    """Decode and print."""
    from ..claims import decode

    raw = sys.stdin.read() if ns.token == "-" else ns.token
    raw = raw.strip()
    if not raw:
        return fail("no token given (pass it as an argument, or pipe it in with '-')")
    claims = decode(raw)
    if ns.json:
        print(json.dumps({"header": claims.header, "payload": claims.payload,
                          "verified": claims.verified, "fingerprint": claims.fingerprint}, indent=2, default=str))
    else:
        print(claims.to_text())
    return EXIT_OK
