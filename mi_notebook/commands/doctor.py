"""``mi-notebook doctor``: which host and why, proxies, which identities answer, clock skew.

The host section shows the managed-identity variables this process sees (secret values hidden),
which host won and why, what each other host would need, whether the machine is an Azure VM by its
DMI asset tag, and what azure-identity's ``DefaultAzureCredential`` would try here, in its order.

Example::

    $ mi-notebook doctor --client-id 11111111-2222-3333-4444-555555555555
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._common import EXIT_ERROR, EXIT_OK, add_connection_arguments, connection_from_args, guarded

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..identity import Identity
    from ..tokens import AccessToken

IMDS_HOST = "169.254.169.254"
#: IMDS back-dates ``nbf`` / ``iat`` by about 5 minutes; beyond that, a difference is skew.
BACKDATE = 300
SKEW_WARNING = 120


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``doctor`` on the ``mi-notebook`` parser."""
    parser = subparsers.add_parser(
        "doctor",
        help="diagnose: endpoint, proxies, identities, clock skew",
        description="Check where tokens come from, proxy settings, which identities answer, and clock skew.",
    )
    parser.add_argument("--client-id", action="append", default=[], metavar="GUID",
                        help="also try this user-assigned identity (repeatable)")
    parser.add_argument("--resource", default="arm", help="resource to request tokens for (default: arm)")
    add_connection_arguments(parser)
    parser.set_defaults(func=guarded(run))
    return parser


def no_proxy_covers(host: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``NO_PROXY`` / ``no_proxy`` exempts ``host`` (exact, ``*``, CIDR or domain suffix).

    Example::

        >>> no_proxy_covers("169.254.169.254", {"NO_PROXY": "localhost,169.254.0.0/16"})
        True
        >>> no_proxy_covers("169.254.169.254", {"no_proxy": ".corp.example"})
        False
    """
    env = os.environ if environ is None else environ
    raw = ",".join(filter(None, (env.get("NO_PROXY"), env.get("no_proxy"))))
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name = entry.split(":", 1)[0] if entry.count(":") == 1 else entry
        if addr is not None and "/" in name:
            try:
                if addr in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if name.lstrip(".") == host or (addr is None and host.endswith("." + name.lstrip("."))):
            return True
    return False


def mask_proxy(value: str) -> str:
    """A proxy URL with any password replaced by ``***``.

    Example::

        >>> mask_proxy("http://user:s3cret@proxy.example:3128")
        'http://user:***@proxy.example:3128'
    """
    try:
        parts = urlsplit(value)
    except ValueError:
        return "<unparsable>"
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def run(ns: argparse.Namespace) -> int:
    """Print the diagnosis; exit 1 if no identity answered."""
    from ..http import proxy_variables
    from ..identity import Identity
    from ..resources import resolve_resource

    resource = resolve_resource(ns.resource)
    extra = [Identity.user(client_id=c) for c in ns.client_id]  # validated before connecting

    print("Endpoint")
    conn = connection_from_args(ns)
    print(f"  {conn.kind}: {conn.endpoint}")
    print(f"  {conn.reason}")
    for line in host_report(conn):
        print(line)

    print("Proxy variables")
    found = proxy_variables()
    if not found:
        print("  none set")
    for name, value in sorted(found.items()):
        print(f"  {name}={mask_proxy(value)}")
    covered = no_proxy_covers(IMDS_HOST)
    no_proxy = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    if found:
        print(f"  NO_PROXY={no_proxy!r}: {'covers' if covered else 'does NOT cover'} {IMDS_HOST}")
        print("  mi-notebook ignores proxies for IMDS; other clients (azure-identity, az) honour them"
              + (": fine, NO_PROXY exempts IMDS" if covered else f": add {IMDS_HOST} to NO_PROXY for them"))
    else:
        print(f"  NO_PROXY={no_proxy!r}: not needed (no proxy variable is set)")

    print(f"Identities (token for {resource})")
    identities: list[Identity] = [Identity.system(), *extra, *_listed_identities(conn, extra)]
    first_token: AccessToken | None = None
    answered = 0
    for identity in identities:
        ok, text, token = _try_identity(conn, identity, resource)
        answered += ok
        print(f"  {'OK  ' if ok else 'FAIL'} {identity}: {text}")
        if token is not None and first_token is None:
            first_token = token

    print("Clock")
    if first_token is None:
        print("  no token to compare with")
    else:
        for line in clock_report(first_token, time.time()):
            print(f"  {line}")
    return EXIT_OK if answered else EXIT_ERROR


def _listed_identities(conn: Connection, already: list[Identity]) -> list[Identity]:
    """User-assigned identities the emulator's VM lists (real IMDS does not list them)."""
    from ..identity import Identity

    vm = getattr(conn.emulator, "vm", None) if conn.emulator is not None else None
    if vm is None:
        return []
    seen = {i.client_id for i in already}
    out = []
    for ident in getattr(vm, "identities", ()):
        client_id = getattr(ident, "client_id", None)
        if getattr(ident, "kind", None) == "user" and client_id and client_id not in seen:
            seen.add(client_id)
            out.append(Identity.user(client_id=client_id))
    return out


def host_report(conn: Connection, environ: Mapping[str, str] | None = None) -> list[str]:
    """The host section's lines: variables seen, the decision, the other hosts, DefaultAzureCredential.

    Example::

        >>> from mi_notebook.connection import connect, disconnect
        >>> env = {"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth", "MSI_SECRET": "s3cr3t"}
        >>> lines = host_report(connect(source="azureml", environ=env), env)
        >>> lines[0], any("s3cr3t" in line for line in lines)
        ('Host', False)
        >>> [line for line in lines if "cloudshell" in line][0].strip()
        'cloudshell: needs MSI_ENDPOINT without MSI_SECRET (but MSI_SECRET is set)'
        >>> disconnect()
    """
    from ..detect import default_azure_credential_chain, detect

    env = os.environ if environ is None else environ
    found = conn.detection or detect(env)
    lines = ["Host", f"  {found.label} ({found.host}): {found.reason}"]
    if conn.kind == "emulator":
        lines.append("  the embedded emulator serves the tokens: they are NOT Azure's")
    lines.append(f"  Azure VM by DMI: {'yes' if found.is_azure_vm else 'no'} ({found.vm_evidence})")
    lines.append("  variables: " + (", ".join(f"{k}={v}" for k, v in found.variables.items()) or "none set"))
    lines.append("  the other hosts:")
    lines.extend(f"    {host}: {need}" for host, need in found.others.items())
    lines.extend(f"  note: {note}" for note in found.notes)
    chain = default_azure_credential_chain(env)
    lines.extend("  " + line for line in chain.lines())
    if chain.problem:
        lines.append(f"  DefaultAzureCredential() would fail here: {chain.problem}")
    return lines


def _try_identity(conn: Connection, identity: Identity, resource: str) -> tuple[bool, str, AccessToken | None]:
    import copy

    from ..errors import ManagedIdentityError
    from ..retry import RetryPolicy

    # One quick attempt each, through the connection's own source: the doctor diagnoses, it does not
    # wait out an outage. The copy shares the source's transport, so it is not closed here.
    client = copy.copy(conn.client)
    client.retry = RetryPolicy.no_retry()
    try:
        token = client.request_token(resource, identity)
    except (ManagedIdentityError, ValueError) as exc:
        said = f" ({exc.error_description})" if getattr(exc, "error_description", None) else ""
        status = f"HTTP {exc.status}" if getattr(exc, "status", None) is not None else "no answer"
        if isinstance(exc, ValueError) and not isinstance(exc, ManagedIdentityError):
            return False, f"not possible on this host: {exc}", None
        return False, f"{type(exc).__name__}, {status}{said}", None
    who = f"client_id {token.client_id}" if token.client_id else "answered"
    return True, f"{who}, expires in {int((token.expires_on - time.time()) / 60)} min, {token.fingerprint}", token


def clock_report(token: AccessToken, now: float) -> list[str]:
    """Lines comparing the token's times with this machine's clock.

    IMDS answers ``expires_in`` seconds from *its* now, so ``expires_on - expires_in`` is IMDS's clock
    at the answer; ``nbf`` / ``iat`` are back-dated by about 5 minutes.
    """
    lines = []
    fetched = token.fetched_at
    if token.expires_in is not None:
        server_now = token.expires_on - token.expires_in
        skew = fetched - server_now
        verdict = "fine" if abs(skew) <= SKEW_WARNING else "this machine's clock is off: sync it (NTP)"
        lines.append(f"skew estimate (expires_on - expires_in vs this clock): {skew:+.0f} s: {verdict}")
    iat = nbf = None
    try:
        claims = token.claims
        iat, nbf = claims.issued_at, claims.not_before
    except Exception:  # noqa: BLE001 - an opaque token: times from the response only
        nbf = token.not_before
    if nbf is None:
        nbf = token.not_before
    if nbf is not None:
        ahead = nbf - now
        if ahead > 0:
            lines.append(f"nbf is {ahead:.0f} s in the future by this clock: the token is not yet valid here; "
                         "this machine's clock is behind")
        else:
            lines.append(f"nbf {-ahead:.0f} s ago (IMDS back-dates nbf by ~{BACKDATE} s; cached tokens are older)")
    if iat is not None:
        lines.append(f"iat {now - iat:.0f} s ago")
    if not lines:
        lines.append("the token carries no times to compare with")
    return lines

