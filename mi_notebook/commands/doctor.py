"""``mi-notebook doctor``: why doesn't it work? The verdict first, then the evidence.

The first line is the verdict: ``OK: ...`` or ``N problems``, each problem numbered with its fix (in
flags and variables). Then the endpoint actually used, described once; the VM's managed identities
through ARM when it may list them (names and client ids; a 403 says which role is missing and the
doctor carries on with the system-assigned identity and every ``--client-id``); one token per
identity, labelled by what its claims say (a person's own token on Azure ML is a problem); proxy
variables (credentials masked); outbound reach to ARM and Entra ID with ``--network``; and the token's
times against this clock. ``--verbose`` adds host detection (the variables seen, what each other host
would need, the DMI verdict) and what azure-identity's ``DefaultAzureCredential`` would try here.

Exit code 1 when there is any problem, 0 when everything answered.

Example::

    $ mi-notebook doctor --client-id 11111111-2222-3333-4444-555555555555 --network
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..timefmt import format_duration, format_relative
from ._common import (
    EXIT_ERROR,
    EXIT_OK,
    add_connection_arguments,
    claims_judge_user_tokens,
    cloud_line,
    connection_from_args,
    given_url,
    guarded,
)
from ._doctor_host import host_report as host_report
from ._errors import cli_hint, cli_words
from ._identity import CliProblem, identity_problem
from ._proxies import IMDS_HOST as IMDS_HOST  # the doctor's names, kept importable from here
from ._proxies import mask_proxy as mask_proxy
from ._proxies import no_proxy_covers as no_proxy_covers
from ._proxies import proxy_lines

if TYPE_CHECKING:  # pragma: no cover
    from ..connection import Connection
    from ..errors import ManagedIdentityError
    from ..identity import Identity
    from ..tokens import AccessToken

#: IMDS back-dates ``nbf`` / ``iat`` by about 5 minutes; beyond that, a difference is skew.
BACKDATE = 300
SKEW_WARNING = 120
#: where --network looks by default: Azure Resource Manager and Entra ID (sign-in, signing keys)
NETWORK_TARGETS = {"ARM": "https://management.azure.com/", "Entra ID": "https://login.microsoftonline.com/"}
#: what ARM needs to list a VM's identities: read access to the VM record
READ_ROLE = ("Reader (or any role with Microsoft.Compute/virtualMachines/read) on the VM, "
             "its resource group or subscription")
CLOCK_FIX = "sync this machine's clock (timedatectl set-ntp true, or your NTP service)"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``doctor`` on the ``mi-notebook`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="why doesn't it work? the verdict first: endpoint, every identity, proxies, --network, clock",
        description="Say whether tokens can be had here (OK, or each problem with its fix), then the evidence: "
                    "the endpoint in use, which identities the VM has (through ARM) and whether each answers "
                    "(labelled by the token's claims), proxy settings, outbound reach to ARM and Entra ID "
                    "(--network) and clock skew. --verbose adds host detection and DefaultAzureCredential's "
                    "chain. Exit 1 when there is any problem.",
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
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show host detection (every host's variables) and DefaultAzureCredential's chain")
    add_connection_arguments(parser)
    parser.set_defaults(func=guarded(run))
    return parser


@dataclass
class Diagnosis:
    """What the doctor found: ``problems`` (each fails the run), ``warnings``, and the report's sections.

    Example::

        >>> d = Diagnosis()
        >>> d.section("Clock").append("iat 5 min ago")
        >>> d.problems.append(CliProblem("problem", "the clock is off", "sync it"))
        >>> print("\\n".join(d.lines()))
        1 problem
          1. the clock is off
             fix: sync it
        Clock
          iat 5 min ago
    """

    problems: list[CliProblem] = field(default_factory=list)
    warnings: list[CliProblem] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    summary: str = ""

    def section(self, title: str) -> list[str]:
        """A new section's list of lines (printed indented under ``title``)."""
        lines: list[str] = []
        self.sections.append((title, lines))
        return lines

    def add(self, found: CliProblem | None) -> None:
        """Keep a finding: a problem or a warning (``None`` is nothing)."""
        if found is not None:
            (self.problems if found.severity == "problem" else self.warnings).append(found)

    def lines(self) -> list[str]:
        """The report: the verdict, each problem with its fix, the warnings, then the sections."""
        count = len(self.problems)
        out = [f"OK: {self.summary}" if not count and self.summary else "OK" if not count else
               f"{count} problem{'s' if count > 1 else ''}"]
        for number, problem in enumerate(self.problems, 1):
            out.append(f"  {number}. {problem.message}")
            if problem.fix:
                out.append(f"     fix: {problem.fix}")
        out.extend(f"  warning: {w.message}" + (f" {w.fix}" if w.fix else "") for w in self.warnings)
        for title, lines in self.sections:
            out.append(title)
            out.extend(f"  {line}" for line in lines)
        return out


def run(ns: argparse.Namespace) -> int:
    """Diagnose, print the verdict and the evidence; exit 1 on any problem."""
    from ..http import Request
    from ..identity import Identity
    from ..resources import resolve_resource

    resolve_resource(ns.resource)  # bad input fails before any connection is made
    extra = [Identity.user(client_id=c) for c in ns.client_id]  # validated before connecting
    for url in (ns.arm_url, ns.entra_url) if ns.network else ():
        Request("GET", url)  # a bad URL is a ValueError before anything is sent

    conn = connection_from_args(ns)
    found = Diagnosis()
    found.section("Endpoint").extend(endpoint_lines(conn))
    resource = _in_cloud(conn, ns.resource)
    if conn.host == "workload":
        from ._doctor_workload import workload_report

        lines, problems = workload_report(conn)
        found.section("Workload identity (AKS: the pod's variables and service-account token)").extend(lines)
        for problem in problems:
            found.add(problem)
    listed, has_system = _arm_identities(conn, found)
    named = {i.client_id for i in extra}
    rows: list[tuple[Identity, str]] = [(Identity.system(), "")]
    rows += [(i, "") for i in extra]
    rows += [(Identity.user(client_id=c), f" {name!r}") for name, c in listed if c and c not in named]
    first_token = _identities(conn, rows, resource, has_system, found, given=given_url(ns))
    found.section("Endpoint").append(f"cloud: {cloud_line(conn)}")  # known once a token or ARM needed it
    found.section("Proxy variables").extend(proxy_lines())
    if ns.network:
        lines = found.section("Network (outbound reach)")
        for line, ok in network_report({"ARM": ns.arm_url, "Entra ID": ns.entra_url}, ca_bundle=ns.ca_bundle):
            lines.append(line)
            if not ok:
                found.add(CliProblem("problem", line.replace(": NOT reachable: ", " is NOT reachable: ", 1)))
    clock = found.section("Clock")
    if first_token is None:
        clock.append("no token to compare with")
    else:
        now = time.time()
        clock.extend(clock_report(first_token, now))
        found.add(clock_problem(first_token, now))
    if ns.verbose:
        title, lines = host_report(conn)
        found.section(title).extend(lines)
    print("\n".join(found.lines()))
    return EXIT_ERROR if found.problems else EXIT_OK


def endpoint_lines(conn: Connection) -> list[str]:
    """The endpoint actually used, said once: what it is, and why it was chosen.

    Example::

        >>> from mi_notebook.connection import Connection
        >>> endpoint_lines(Connection("http://127.0.0.1:9", "vm", None, chosen="given",
        ...                           reason="Using http://127.0.0.1:9 because --imds-url gave it."))
        ['given: http://127.0.0.1:9', 'Using http://127.0.0.1:9 because --imds-url gave it.', 'spoken to as IMDS; host detection was not used (--verbose shows what it would decide)']
    """
    how = "given" if conn.chosen == "given" else "emulator" if conn.emulated else f"{conn.label} ({conn.chosen})"
    lines = [f"{how}: {conn.endpoint}", conn.reason]
    if conn.chosen == "given":
        lines.append("spoken to as IMDS; host detection was not used (--verbose shows what it would decide)")
    elif conn.emulated:
        lines.append("its tokens are NOT Azure's: they work only against the emulator's own services")
    return lines


def _in_cloud(conn: Connection, asked: str) -> str:
    """``asked`` as the connection's cloud names it; a VM's IMDS asked once, quickly (the doctor does not
    wait out an outage: if it cannot say, the public cloud is assumed, and the Endpoint section says so)."""
    import copy

    from ..clouds import CLOUDS, PUBLIC, ask_imds
    from ..errors import ManagedIdentityError
    from ..resources import depends_on_cloud, resolve_resource
    from ..retry import RetryPolicy

    if not depends_on_cloud(asked):
        return resolve_resource(asked)
    from ..sources import TokenSource

    client = copy.copy(conn.client)
    if isinstance(client, TokenSource):  # one question, no retries: the doctor reports, it does not wait
        client.retry = RetryPolicy.no_retry()
    try:
        cloud = conn.cloud_slot.get(lambda: ask_imds(client, conn.cloud_slot))
    except ManagedIdentityError as exc:
        cloud = CLOUDS[PUBLIC].because(f"assumed: IMDS could not say ({type(exc).__name__})")
        conn.cloud_slot.set(cloud)
    return resolve_resource(asked, cloud)


def _identities(conn: Connection, rows: list[tuple[Identity, str]], resource: str, has_system: bool | None,
                found: Diagnosis, *, given: str | None = None) -> AccessToken | None:
    """One token per identity (labelled by its claims); problems for failures and for a person's token."""
    from ..claims import token_identity

    lines = found.section(f"Identities (token for {resource})")
    first: AccessToken | None = None
    answered = 0
    for identity, name in rows:
        ok, text, token, exc = _try_identity(conn, identity, resource)
        expected = not ok and identity.kind == "system" and has_system is False
        label = str(identity)
        problem = None
        if token is not None:
            label = token_identity(token).label_for(token.identity)
            problem = identity_problem(token_identity(token), conn.host, token.identity,
                                       command="mi-notebook doctor", endpoint=conn.endpoint)
            ok = problem is None or problem.severity != "problem"
            first = first or token
        elif exc is not None and not expected:
            problem = CliProblem("problem", f"{label}{name}: {type(exc).__name__}: {_one_line(exc.message)}",
                                 cli_hint(exc, conn=conn, resource=resource, identity=identity, given=given))
        answered += ok
        verdict = "OK  " if ok else "n/a " if expected else "FAIL"
        note = " (expected: the VM has no system-assigned identity)" if expected else ""
        lines.append(f"{verdict} {label}{name}: {text}{note}")
        found.add(problem)
    if answered:
        who = f"{answered} identit{'y' if answered == 1 else 'ies'}"
        found.summary = f"{who} answered at {conn.endpoint}" + (" (the emulator, NOT Azure)" if conn.emulated else "")
    elif not found.problems:
        found.add(CliProblem("problem", "no identity answered: this VM has no managed identity",
                             "turn on its system-assigned identity (portal: the VM > Security > Identity), or "
                             "assign a user-assigned one and name it with --client-id"))
    return first


def _arm_identities(conn: Connection, found: Diagnosis) -> tuple[list[tuple[str, str | None]], bool | None]:
    """``([(name, client_id) of the user-assigned identities], has a system-assigned one)`` from the VM's
    ARM record, with a section saying what happened; ``([], None)`` when ARM could not say (or this is
    not a VM: the section is left out)."""
    from ..arm_client import ArmClient
    from ..errors import ArmError, ManagedIdentityError
    from ..retry import RetryPolicy

    if conn.host != "vm":
        return [], None
    lines = found.section("Identities on this VM (through ARM)")
    try:
        client = ArmClient(connection=conn, retry=RetryPolicy.no_retry())
    except ValueError as exc:
        lines.append(f"skipped: {cli_words(str(exc))}")
        return [], None
    try:
        with claims_judge_user_tokens():
            rows = client.identities()
    except ArmError as exc:
        if exc.status == 403:
            lines.append(f"ARM said 403 ({exc.code}): the system-assigned identity may not read this VM. Listing "
                         f"needs {READ_ROLE}. Carrying on with the system-assigned identity and any --client-id.")
        else:
            lines.append(f"ARM could not list them: {type(exc).__name__}, HTTP {exc.status} ({exc.code})")
        return [], None
    except ManagedIdentityError as exc:
        lines.append(f"ARM could not list them: {type(exc).__name__}: {exc.message}")
        return [], None
    finally:
        client.close()
    for row in rows:
        lines.append(f"{row['kind']:6} {row['name']}: client id {row['client_id'] or '(unknown)'}, "
                     f"principal id {row['principal_id']}")
    if not len(rows):
        lines.append("none: enable a managed identity on the VM (portal: the VM > Security > Identity)")
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


def _try_identity(conn: Connection, identity: Identity,
                  resource: str) -> tuple[bool, str, AccessToken | None, ManagedIdentityError | None]:
    import copy

    from ..errors import ManagedIdentityError
    from ..retry import RetryPolicy
    from ..sources import TokenSource

    # One quick attempt each, through the connection's own source: the doctor diagnoses, it does not
    # wait out an outage. The copy shares the source's transport, so it is not closed here.
    client = copy.copy(conn.client)
    if isinstance(client, TokenSource):  # Service Fabric's source has no retry: it never sends
        client.retry = RetryPolicy.no_retry()
    try:
        with claims_judge_user_tokens():
            token = client.request_token(resource, identity)
    except (ManagedIdentityError, ValueError) as exc:
        if isinstance(exc, ValueError) and not isinstance(exc, ManagedIdentityError):
            return False, f"not possible on this host: {exc}", None, None
        said = f" ({_one_line(exc.error_description)})" if exc.error_description else ""
        status = f"HTTP {exc.status}" if exc.status is not None else "no answer"
        return False, f"{type(exc).__name__}, {status}{said}", None, exc
    from ..claims import token_identity

    client_id = token_identity(token).client_id or token.client_id  # the claims' (appid/azp), else the answer's
    who = f"client_id {client_id}" if client_id else "answered"
    return True, f"{who}, expires {format_relative(token.expires_on, time.time())}, {token.fingerprint}", token, None


def _one_line(text: str) -> str:
    from ._errors import clean_service_text

    return clean_service_text(text, 200)


def clock_problem(token: AccessToken, now: float) -> CliProblem | None:
    """A problem when this machine's clock and the endpoint's disagree by more than :data:`SKEW_WARNING`
    seconds, or the token is not valid yet here.

    Example::

        >>> from mi_notebook.tokens import AccessToken
        >>> tok = AccessToken("t", resource="api://x", expires_on=1000 + 3600, expires_in=3600, fetched_at=1600)
        >>> clock_problem(tok, 1600).message
        "this machine's clock is 600 s ahead of the token endpoint's (more than 120 s)"
    """
    if token.expires_in is not None:
        skew = token.fetched_at - (token.expires_on - token.expires_in)
        if abs(skew) > SKEW_WARNING:
            way = "ahead of" if skew > 0 else "behind"
            return CliProblem("problem", f"this machine's clock is {abs(skew):.0f} s {way} the token endpoint's "
                                         f"(more than {SKEW_WARNING} s)", CLOCK_FIX)
    nbf = token.not_before
    if nbf is not None and nbf - now > SKEW_WARNING:
        return CliProblem("problem", f"the token is valid only from {format_duration(nbf - now)} from now by this "
                                     "clock: this machine's clock is behind", CLOCK_FIX)
    return None


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

