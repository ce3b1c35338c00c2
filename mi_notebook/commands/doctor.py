"""``mi-notebook doctor``: why doesn't it work? Host, proxies, identities, network, clock.

It lists the VM's managed identities through ARM when it may (names and client ids; a 403 says
which role is missing and the doctor carries on with the system-assigned identity and every
``--client-id``), asks each for a token once, checks outbound reach to ARM and Entra ID with
``--network``, and compares the token's times with this clock. Exit code 1 when any identity it
tried fails (or a ``--network`` target is out of reach), 0 when everything answered.

The host section shows the managed-identity variables this process sees (secret values hidden),
which host won and why, what each other host would need, whether the machine is an Azure VM by its
DMI asset tag, and what azure-identity's ``DefaultAzureCredential`` would try here, in its order.

Example::

    $ mi-notebook doctor --client-id 11111111-2222-3333-4444-555555555555 --network
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..timefmt import format_duration, format_relative
from ._common import EXIT_ERROR, EXIT_OK, add_connection_arguments, connection_from_args, guarded

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..identity import Identity
    from ..tokens import AccessToken

IMDS_HOST = "169.254.169.254"
#: IMDS back-dates ``nbf`` / ``iat`` by about 5 minutes; beyond that, a difference is skew.
BACKDATE = 300
SKEW_WARNING = 120
#: where --network looks by default: Azure Resource Manager and Entra ID (sign-in, signing keys)
NETWORK_TARGETS = {"ARM": "https://management.azure.com/", "Entra ID": "https://login.microsoftonline.com/"}
#: what ARM needs to list a VM's identities: read access to the VM record
READ_ROLE = ("Reader (or any role with Microsoft.Compute/virtualMachines/read) on the VM, "
             "its resource group or subscription")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``doctor`` on the ``mi-notebook`` parser."""
    parser = subparsers.add_parser(
        "doctor",
        help="why doesn't it work? host, proxies, every identity, --network reach, clock skew",
        description="Check where tokens come from, proxy settings, which identities the VM has (through ARM) "
                    "and whether each answers, outbound reach to ARM and Entra ID (--network), and clock skew. "
                    "Exit 1 when anything it tried fails.",
    )
    parser.add_argument("--client-id", action="append", default=[], metavar="GUID",
                        help="also try this user-assigned identity (repeatable)")
    parser.add_argument("--resource", default="arm", help="resource to request tokens for (default: arm)")
    parser.add_argument("--network", action="store_true",
                        help="also check that ARM and Entra ID can be reached from here (TCP and TLS)")
    parser.add_argument("--arm-url", default=NETWORK_TARGETS["ARM"], metavar="URL",
                        help=f"the ARM endpoint --network checks (default: {NETWORK_TARGETS['ARM']})")
    parser.add_argument("--entra-url", default=NETWORK_TARGETS["Entra ID"], metavar="URL",
                        help=f"the Entra ID endpoint --network checks (default: {NETWORK_TARGETS['Entra ID']})")
    parser.add_argument("--ca-bundle", metavar="FILE",
                        help="CA bundle for the --network checks (default: the environment's, else certifi's)")
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
    from ..http import Request, proxy_variables
    from ..identity import Identity
    from ..resources import resolve_resource

    resource = resolve_resource(ns.resource)
    extra = [Identity.user(client_id=c) for c in ns.client_id]  # validated before connecting
    for url in (ns.arm_url, ns.entra_url) if ns.network else ():
        Request("GET", url)  # a bad URL is a ValueError before anything is sent

    print("Endpoint")
    conn = connection_from_args(ns)
    print(f"  {conn.label} ({conn.chosen}): {conn.endpoint}")
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

    print("Identities on this VM (through ARM)")
    listed, has_system = _arm_identities(conn)
    named = {i.client_id for i in extra}
    rows: list[tuple[Identity, str]] = [(Identity.system(), "")]
    rows += [(i, "") for i in extra]
    rows += [(Identity.user(client_id=c), f" {name!r}") for name, c in listed if c and c not in named]

    print(f"Identities (token for {resource})")
    first_token: AccessToken | None = None
    failed = answered = 0
    for identity, name in rows:
        ok, text, token = _try_identity(conn, identity, resource)
        expected = not ok and identity.kind == "system" and has_system is False
        answered += ok
        failed += not ok and not expected
        verdict = "OK  " if ok else "n/a " if expected else "FAIL"
        note = " (expected: the VM has no system-assigned identity)" if expected else ""
        print(f"  {verdict} {identity}{name}: {text}{note}")
        if token is not None and first_token is None:
            first_token = token

    unreachable = 0
    if ns.network:
        print("Network (outbound reach)")
        for line, ok in network_report({"ARM": ns.arm_url, "Entra ID": ns.entra_url}, ca_bundle=ns.ca_bundle):
            unreachable += not ok
            print(f"  {line}")

    print("Clock")
    if first_token is None:
        print("  no token to compare with")
    else:
        for line in clock_report(first_token, time.time()):
            print(f"  {line}")
    return EXIT_OK if answered and not failed and not unreachable else EXIT_ERROR


def _arm_identities(conn: Connection) -> tuple[list[tuple[str, str | None]], bool | None]:
    """``([(name, client_id) of the user-assigned identities], has a system-assigned one)`` from the VM's
    ARM record, printing what happened; ``([], None)`` when ARM could not say."""
    from ..arm_client import ArmClient
    from ..errors import ArmError, ManagedIdentityError
    from ..retry import RetryPolicy

    if conn.host != "vm":
        print(f"  skipped: ARM lists a VM's identities; this host is {conn.host}")
        return [], None
    try:
        client = ArmClient(connection=conn, retry=RetryPolicy.no_retry())
    except ValueError as exc:
        print(f"  skipped: {exc}")
        return [], None
    try:
        rows = client.identities()
    except ArmError as exc:
        if exc.status == 403:
            print(f"  ARM said 403 ({exc.code}): the system-assigned identity may not read this VM. Listing needs "
                  f"{READ_ROLE}. Carrying on with the system-assigned identity and any --client-id.")
        else:
            print(f"  ARM could not list them: {type(exc).__name__}, HTTP {exc.status} ({exc.code})")
        return [], None
    except ManagedIdentityError as exc:
        print(f"  ARM could not list them: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        return [], None
    finally:
        client.close()
    for row in rows:
        print(f"  {row['kind']:6} {row['name']}: client id {row['client_id'] or '(unknown)'}, "
              f"principal id {row['principal_id']}")
    if not len(rows):
        print("  none: enable a managed identity on the VM (portal: the VM > Security > Identity)")
    users = [(str(r["name"]), r["client_id"]) for r in rows if r["kind"] == "user"]
    return users, any(r["kind"] == "system" for r in rows)


def network_report(targets: Mapping[str, str], *, ca_bundle: str | None = None,
                   timeout: tuple[float, float] = (3.05, 5.0)) -> list[tuple[str, bool]]:
    """``(line, reachable)`` per target: one GET through the environment's proxies; any HTTP answer
    proves TCP and TLS (with certificate verification) work. The targets are parameters, so tests aim
    them at loopback servers.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator() as emu:
        ...     report = network_report({"ARM": emu.arm_url}, ca_bundle=emu.ca_bundle)
        >>> report[0][1], report[0][0].split(":")[0]
        (True, 'ARM https')
    """
    from ..http import Request, default_verify, describe_failure, exchange

    out = []
    for name, url in targets.items():
        request = Request("GET", url, timeout=timeout, proxies=True, verify=ca_bundle or default_verify())
        answer = exchange(request)
        where = f"{name} {url}"
        if answer.answered:
            out.append((f"{where}: reachable (HTTP {answer.status} in {answer.elapsed * 1000:.0f} ms)", True))
        else:
            fix = ("check the proxy variables above" if proxy_hint() else
                   "a firewall, NSG or route table may block outbound HTTPS (port 443)")
            out.append((f"{where}: NOT reachable: {describe_failure(answer)}; {fix}", False))
    return out


def proxy_hint() -> bool:
    """Whether a proxy variable is set (the --network checks then go through it)."""
    from ..http import proxy_variables

    return bool(proxy_variables())


def host_report(conn: Connection, environ: Mapping[str, str] | None = None) -> list[str]:
    """The host section's lines: variables seen, the decision, the other hosts, DefaultAzureCredential.

    Example::

        >>> from mi_notebook.connection import connect, disconnect
        >>> env = {"MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth", "MSI_SECRET": "s3cr3t"}
        >>> lines = host_report(connect(host="azureml", environ=env), env)
        >>> lines[0], any("s3cr3t" in line for line in lines)
        ('Host', False)
        >>> [line for line in lines if "cloudshell" in line][0].strip()
        'cloudshell: needs MSI_ENDPOINT without MSI_SECRET (but MSI_SECRET is set)'
        >>> disconnect()
    """
    from ..detection import default_azure_credential_chain, detect

    env = os.environ if environ is None else environ
    found = conn.detection or detect(env)
    lines = ["Host", f"  {found.label} ({found.host}): {found.reason}"]
    if conn.emulated:
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
    return True, f"{who}, expires {format_relative(token.expires_on, time.time())}, {token.fingerprint}", token


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
            lines.append(f"nbf is {format_duration(ahead)} in the future by this clock: the token is not yet valid here; "
                         "this machine's clock is behind")
        else:
            lines.append(f"nbf {format_duration(-ahead)} ago (IMDS back-dates nbf by ~{format_duration(BACKDATE)}; "
                         "cached tokens are older)")
    if iat is not None:
        lines.append(f"iat {format_duration(now - iat)} ago")
    if not lines:
        lines.append("the token carries no times to compare with")
    return lines

