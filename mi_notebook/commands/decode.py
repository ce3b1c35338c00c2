"""``mi-notebook decode [TOKEN|-]``: every claim, its value and what it means (jwt.ms in a terminal).

Reads the token from the argument, or from stdin for ``-`` or no argument. ``--verify`` checks the
signature (and ``exp`` / ``nbf``): against ``--jwks URL`` when given, else the JWKS of the emulator
at ``--imds-url`` / ``MI_NOTEBOOK_IMDS_URL`` when one is set, else Entra ID's keys for the token's
tenant. A token that does not verify exits 1 and says why. The token itself is never printed.

A token the mi-notebook emulator issued (its ``mi_notebook_emulator`` claim says so) is called that on
every output (``NOT an Azure token`` first in text, ``"issuedBy"`` in JSON); Entra ID's keys never
verify it, so ``--verify`` without an emulator URL says so before fetching anything.

Example::

    $ mi-notebook token arm -o raw | mi-notebook decode
    $ mi-notebook decode --verify --imds-url http://127.0.0.1:8080 "$TOKEN"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._common import EXIT_OK, fail, guarded

if TYPE_CHECKING:  # pragma: no cover
    from ..claims import Claims
    from ..errors import TokenVerificationError

#: where an mi-notebook emulator publishes its signing keys, below its base URL
EMULATOR_JWKS_PATH = "/__emulator__/jwks"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``decode`` on the ``mi-notebook`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "decode",
        help="explain every claim of an access token; --verify checks its signature",
        description="Decode a JWT access token and explain every claim and header parameter. Reads stdin "
                    "for '-' or no argument. The signature is checked only with --verify.",
    )
    parser.add_argument("token", nargs="?", default="-", help="the token, or '-' to read it from stdin")
    parser.add_argument("--json", action="store_true", help="print header, payload and meanings as JSON")
    parser.add_argument("--verify", action="store_true",
                        help="verify the signature, audience and times (exit 1 if it does not verify)")
    parser.add_argument("--jwks", metavar="URL|entra",
                        help="the keys to verify with: a JWKS or OpenID-configuration URL, or 'entra' "
                             "(default: the emulator at --imds-url if given, else Entra ID's keys for the "
                             "token's tenant); implies --verify")
    parser.add_argument("--imds-url", metavar="URL",
                        help="an mi-notebook emulator's base URL: its JWKS verifies its tokens")
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # accepted for symmetry; decode needs no endpoint
    parser.set_defaults(func=guarded(run))
    return parser


def keys_for(ns: argparse.Namespace, environ: Any = None) -> str | None:
    """Where the keys come from for these options: ``None`` (do not verify), a JWKS URL, or ``"entra"``.

    Example::

        >>> ns = argparse.Namespace(verify=True, jwks=None, imds_url="http://127.0.0.1:8080/")
        >>> keys_for(ns, {})
        'http://127.0.0.1:8080/__emulator__/jwks'
        >>> keys_for(argparse.Namespace(verify=True, jwks=None, imds_url=None), {})
        'entra'
    """
    env = os.environ if environ is None else environ
    if ns.jwks:
        return str(ns.jwks)
    if not ns.verify:
        return None
    base = ns.imds_url or env.get("MI_NOTEBOOK_IMDS_URL")
    return base.rstrip("/") + EMULATOR_JWKS_PATH if base else "entra"


def claim_lines(claims: Claims, width: int = 100) -> list[str]:
    """The claims and header parameters, each with its value and, indented below, its meaning.

    Example::

        >>> from mi_notebook.claims import Claims
        >>> print("\\n".join(claim_lines(Claims({"alg": "RS256"}, {"aud": "https://vault.azure.net"}), width=60)))
        Claims (1):
          aud  https://vault.azure.net
               audience: the resource the token is for; IMDS sets it
               to the requested resource verbatim
        Header (1):
          alg  RS256
               signature algorithm (Entra ID signs with RS256)
    """
    lines: list[str] = []
    for title, rows in ((f"Claims ({len(claims.payload)}):", claims.rows(relative=False)),
                        (f"Header ({len(claims.header)}):", claims.header_rows())):
        lines.append(title)
        pad = max((len(name) for name, _, _ in rows), default=0) + 4
        for name, value, meaning in rows:
            lines.append(f"  {name:<{pad - 4}}  {value}")
            lines.extend(textwrap.wrap(meaning, width=max(width, pad + 20), initial_indent=" " * pad,
                                       subsequent_indent=" " * pad))
    return lines


def run(ns: argparse.Namespace) -> int:
    """Decode (and, when asked, verify) and print; an emulator token says so on every output."""
    from ..claims import decode_unverified, emulator_evidence
    from ..errors import TokenVerificationError
    from ..jwks import decode

    raw = sys.stdin.read() if ns.token == "-" else ns.token
    raw = raw.strip()
    if not raw:
        return fail("no token given (pass it as an argument, or pipe it in with '-')")
    jwks = keys_for(ns)
    emulator = emulator_evidence(decode_unverified(raw))  # TokenDecodeError for garbage, before any fetch
    if jwks == "entra" and emulator is not None:
        return fail("\n".join(_entra_cannot_verify_the_emulator(emulator)))
    try:
        claims = decode(raw, jwks=jwks) if jwks else decode(raw)
    except TokenVerificationError as exc:
        return fail("\n".join(_verification_failed(exc, emulator)))
    if ns.json:
        print(json.dumps({"header": claims.header, "payload": claims.payload,
                          "meanings": {name: meaning for name, _, meaning in claims.rows()},
                          "verified": claims.verified, "verification": claims.verification,
                          "fingerprint": claims.fingerprint,
                          "issuedBy": EMULATOR_ISSUER if emulator else None}, indent=2, default=str))
        return EXIT_OK
    if emulator is not None:
        print(f"NOT an Azure token: {EMULATOR_ISSUER} issued it ({emulator}).")
    head = claims.to_text().split("\nClaims (", 1)[0]  # the overview and the checks
    print(head)
    print("\n".join(claim_lines(claims, shutil.get_terminal_size((100, 24)).columns)))
    print(f"Token {claims.fingerprint} (the token itself is never shown)")
    return EXIT_OK


EMULATOR_ISSUER = "the mi-notebook emulator"
_EMULATOR_KEYS = ("emulator tokens are signed by keys that live only as long as that emulator: with "
                  "MI_NOTEBOOK_MODE=emulator every command starts its own emulator, whose keys are gone when the "
                  "command ends. Verify against a running one: start `mi-notebook emulator` in another shell, get "
                  "the token with `mi-notebook token -o raw --imds-url <its IMDS URL>`, and give `decode --verify` "
                  "the same --imds-url.")


def _entra_cannot_verify_the_emulator(evidence: str) -> list[str]:
    return [f"this token was issued by {EMULATOR_ISSUER}, not Azure ({evidence}): Entra ID's keys can never "
            "verify it, so none were fetched.", f"What to do: {_EMULATOR_KEYS}"]


def _verification_failed(exc: TokenVerificationError, emulator: str | None) -> list[str]:
    """What happened and what to do: keys that could not be fetched, or a token they do not verify."""
    if exc.endpoint is not None and exc.status is None:  # nothing answered: no keys, nothing verified
        host = urlsplit(exc.endpoint).hostname or exc.endpoint
        why = _short_reason(f"{exc.message} {exc.__cause__!r}")  # the cause: the wire's own words, whole
        return [f"could not reach {host} to fetch the signing keys ({exc.endpoint}): {why}; "
                "nothing was verified.",
                "What to do: check this machine's network and proxy settings (`mi-notebook doctor --network` "
                "checks the reach to Entra ID); without --verify, decode still shows the claims, unverified."]
    lines = [f"{type(exc).__name__}: {exc.message}"]
    if emulator is not None and "No key with" in exc.message:
        lines.append(f"What to do: this token is the emulator's, and another emulator run signed it; {_EMULATOR_KEYS}")
    elif exc.hint:
        lines.append(f"What to do: {exc.hint}")
    return lines


def _short_reason(message: str) -> str:
    """Why a fetch failed, in a few whole words (the library's text may end in a cut-off urllib3 message)."""
    text = message.lower()
    for markers, reason in (
        (("resolve", "name resolution", "nodename", "getaddrinfo", "name or service"),
         "the host name does not resolve (no DNS: is this machine offline?)"),
        (("refused",), "the connection was refused"),
        (("time-out", "timed out", "timeout"), "no answer in time"),
        (("tls", "certificate", "ssl"), "TLS verification failed (a proxy that intercepts TLS needs its CA)"),
        (("reset", "closed", "aborted"), "the connection was closed"),
    ):
        if any(marker in text for marker in markers):
            return reason
    return "no connection"
