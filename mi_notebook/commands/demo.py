"""``mi-notebook demo``: the whole toolkit in a few seconds, on any machine.

Off Azure it starts the embedded emulator; on an Azure VM it uses the real IMDS, read-only. It

1. fetches tokens for two identities (system-assigned and one user-assigned) and two resources
   (ARM and Key Vault) and prints what their decoded claims say (never the tokens),
2. provokes one retry episode: a 503 and a throttling 429 (``Retry-After: 3``) injected into the
   emulator, retried per the documented policy in **virtual time** (the waits are computed and
   recorded, not slept). Real IMDS gets no faults: there the episode is simulated with
   :func:`mi_notebook.retry.simulate` and labelled so,
3. reads this VM's record and resource groups from Azure Resource Manager (when ``mi_notebook.arm``
   is installed and ARM is reachable for the chosen endpoint),
4. writes ``retry-timeline.png`` and ``token-lifetimes.png`` (matplotlib's Agg canvas, used inside
   this command only) to ``--out`` and says where; each chart's subtitle says where its data came
   from (the emulator, the injected faults, virtual time, or a simulation).

``--write-readme-images [DIR]`` also writes both charts, small, to ``docs/images`` (or ``DIR``).
The endpoint follows ``--imds-url`` / ``--mode``, else ``MI_NOTEBOOK_IMDS_URL`` /
``MI_NOTEBOOK_MODE``. An explicit URL that turns out to be an mi-notebook emulator (it answers
``/__emulator__/health``) gets its faults over HTTP, with the admin token ``mi-notebook emulator``
printed (``MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN``; without it the episode is simulated and the demo says
why); any other explicit URL is treated like IMDS.

Example::

    $ mi-notebook demo --out /tmp/mi-demo
    $ MI_NOTEBOOK_MODE=emulator mi-notebook demo --write-readme-images
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import VirtualClock  # the retry episode's waits cost no time
from ..timefmt import format_duration, format_utc
from ._common import (
    EXIT_OK,
    add_connection_arguments,
    add_identity_arguments,
    connection_from_args,
    guarded,
    identity_from_args,
)
from .token import progress_printer

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..connection import Connection
    from ..identity import Identity
    from ..retry import Timeline
    from ..tokens import AccessToken

RESOURCES = ("arm", "vault")
CHART_FILES = ("retry-timeline.png", "token-lifetimes.png")
README_IMAGES_DIR = Path("docs") / "images"
#: chart resolution: 8 x 3 inches at this many dots per inch
DPI = 100
README_DPI = 80
#: the variable holding an out-of-process emulator's admin token (``mi-notebook emulator`` prints it)
ADMIN_TOKEN_ENV = "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``demo`` on the ``mi-notebook`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="tokens, claims, a retry episode, ARM and two charts, in a few seconds (emulator off Azure)",
        description=(
            "Fetch tokens for two identities and two resources, decode them, provoke one retry episode "
            "(virtual time; emulator only), read ARM, and write the retry-timeline and token-lifetime "
            "charts as PNG files."
        ),
    )
    parser.add_argument("--out", metavar="DIR", default="mi-notebook-demo",
                        help="where to write the PNG charts (default: ./mi-notebook-demo)")
    parser.add_argument("--write-readme-images", metavar="DIR", nargs="?", const=str(README_IMAGES_DIR),
                        default=None,
                        help=f"also write small copies of both charts for the README (default DIR: {README_IMAGES_DIR})")
    add_identity_arguments(parser)
    add_connection_arguments(parser)
    parser.set_defaults(func=guarded(run))
    return parser


def run(ns: argparse.Namespace) -> int:
    """The demo; returns the exit code (errors are turned into messages by ``guarded``)."""
    started = time.monotonic()
    out_dir = Path(ns.out)
    conn = connection_from_args(ns)
    print("mi-notebook demo")
    print(f"Endpoint: {conn.reason}")
    faults = _fault_injector(conn)

    # 1. tokens for two identities and two resources
    identities = _identities(conn, identity_from_args(ns))
    _section("Tokens (the tokens themselves are never shown)")
    tokens: list[AccessToken] = []
    progress = progress_printer()  # retries of a struggling endpoint are reported on stderr
    for ident in identities:
        for resource in RESOURCES:
            tok = conn.get_token(resource, identity=ident, on_attempt=progress)
            tokens.append(tok)
            claims = tok.claims
            checks = [c for c in claims.checks() if c.status not in ("ok", "skipped")]
            print(f"- {resource:5} as {ident}")
            print(f"    aud {claims.audience}  expires {format_utc(tok.expires_on)} "
                  f"({format_duration(tok.lifetime)} token)  {tok.fingerprint}")
            print(f"    got the {claims.describe_identity()}")
            for check in checks:
                print(f"    [{check.status}] {check.name}: {check.explanation}")
    if len(identities) < 2:
        print("  (only the system-assigned identity: pass --client-id to add a user-assigned one)")

    # 2. one retry episode
    _section("Retry episode")
    timeline = _retry_episode(conn, faults)

    # 3. ARM
    _section("Azure Resource Manager")
    _arm_summary(conn)

    # 4. charts
    _section("Charts")
    sources = _provenance(faults is not None, tokens)
    written = _write_charts(out_dir, timeline, tokens, dpi=DPI, sources=sources)
    for path in written:
        print(f"wrote {path}")
    if ns.write_readme_images:
        for path in _write_charts(Path(ns.write_readme_images), timeline, tokens, dpi=README_DPI, sources=sources):
            print(f"wrote {path} (README image)")
    print(f"\nDone in {time.monotonic() - started:.1f} s.")
    return EXIT_OK


# --- the steps -------------------------------------------------------------------------------------------
def _section(title: str) -> None:
    print(f"\n== {title}")


def _identities(conn: Connection, chosen: Identity) -> list[Identity]:
    """System-assigned plus one user-assigned identity: the one named, else the emulator's first."""
    from ..identity import Identity

    found: list[Identity] = [Identity.system()]
    if chosen.kind == "user":
        found.append(chosen)
        return found
    client_id = None
    if conn.emulator is not None and conn.emulator.vm.user_identities:
        client_id = conn.emulator.vm.user_identities[0].client_id
    elif conn.chosen == "given":
        vm = _admin_json(conn.endpoint, "/vm")
        users = [i for i in (vm or {}).get("identities", []) if i.get("kind") == "user"]
        client_id = users[0].get("client_id") if users else None
    if client_id:
        found.append(Identity.user(client_id=client_id))
    return found


def _fault_injector(conn: Connection) -> Callable[..., object] | None:
    """How to inject faults into this endpoint, or None for real IMDS (never injected into)."""
    if conn.emulator is not None:
        return conn.emulator.inject
    if conn.chosen == "given" and _admin_json(conn.endpoint, "/health"):
        headers = _admin_headers()
        if not headers:
            print(f"This endpoint is an mi-notebook emulator, but {ADMIN_TOKEN_ENV} is not set: its control "
                  "plane needs the admin token `mi-notebook emulator` printed, so no fault is injected.")
            return None
        import requests

        def inject(fault: Any, endpoint: str = "any", count: int = 1, **options: Any) -> None:
            body = {"fault": fault, "endpoint": endpoint, "count": count,
                    **{k: v for k, v in options.items() if v is not None}}
            with requests.Session() as session:
                session.trust_env = False
                session.post(conn.endpoint + "/__emulator__/faults", json=body, headers=headers,
                             timeout=(2, 5)).raise_for_status()

        return inject
    return None


def _admin_headers() -> dict[str, str]:
    """``Authorization: Bearer <admin token>`` from :data:`ADMIN_TOKEN_ENV`, or none when it is unset."""
    token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _admin_json(endpoint: str, route: str) -> dict[str, Any] | None:
    """GET an emulator admin route at ``endpoint``; None if it is not an mi-notebook emulator (or the
    route needs the admin token and :data:`ADMIN_TOKEN_ENV` does not hold it).

    Only loopback endpoints are asked (and sent the token): real IMDS (or anything remote) never sees
    these requests.
    """
    from urllib.parse import urlsplit

    from ..http import Request, exchange, is_loopback_host

    if not is_loopback_host(urlsplit(endpoint).hostname or ""):
        return None
    answer = exchange(Request("GET", endpoint + "/__emulator__" + route, headers=_admin_headers(),
                              timeout=(1.0, 2.0)))
    document = answer.document if answer.status == 200 else None
    return document if isinstance(document, dict) else None


def _retry_episode(conn: Connection, inject: Callable[..., object] | None) -> Timeline:
    """A 503 then a 429 (Retry-After: 3 s) against the emulator, retried in virtual time."""
    from ..retry import AttemptOutcome, RetryPolicy, simulate
    from ..sources import ImdsClient

    policy = RetryPolicy()
    rng = random.Random(2)  # the jitter draws, fixed so the chart is the same every run
    if inject is None:
        print("No fault is injected here (real IMDS never gets one): this episode is SIMULATED "
              "(mi_notebook.retry.simulate),")
        print("with the answers a 503 and a 429 (Retry-After: 3 s) would give, then a token.")
        timeline = simulate(policy, [503, AttemptOutcome(status=429, retry_after=3.0), 200], rng=rng)
    else:
        print("Injected into the emulator's token endpoint: one 503, then one 429 with Retry-After: 3.")
        print("Retried per the documented policy in VIRTUAL time: the waits are computed and recorded, "
              "not slept.")
        inject(503, endpoint="token", count=1)
        inject(429, endpoint="token", count=1, retry_after=3)
        clock = VirtualClock(seed=2)  # the jitter draws, fixed so the chart is the same every run
        with ImdsClient(url=conn.endpoint, retry=policy, clock=clock) as client:
            timeline = client.request_token("storage").timeline  # type: ignore[assignment]
    for attempt in timeline:
        answer = attempt.status if attempt.status is not None else (attempt.exception or "no answer")
        wait = f"; waited {attempt.wait:.1f} s ({attempt.wait_reason})" if attempt.wait else ""
        print(f"  attempt {attempt.number} at {attempt.start:5.1f} s: {answer} -> {attempt.outcome}{wait}")
    print(f"  {timeline.summary()}")
    return timeline


def _arm_summary(conn: Connection) -> None:
    """This VM's ARM record and the resource groups it may read, or why ARM was skipped."""
    from ..arm_client import ArmClient
    from ..errors import ManagedIdentityError

    if conn.chosen == "given" and not os.environ.get("MI_NOTEBOOK_ARM_URL"):
        print("skipped: the IMDS endpoint was given explicitly; set MI_NOTEBOOK_ARM_URL (and "
              "MI_NOTEBOOK_ARM_CA_BUNDLE) to read ARM too")
        return
    try:
        client = ArmClient(connection=conn)
    except ValueError as exc:
        print(f"skipped: {exc}")
        return
    try:
        record = client.vm()
        identity = record.get("identity") or {}
        print(f"VM {record.get('name')} ({record.get('location')}): identity type {identity.get('type')!r}, "
              f"{len(identity.get('userAssignedIdentities') or {})} user-assigned")
        groups = client.resource_groups()
        names = [g.get("name") for g in groups]
        shown = ", ".join(str(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        print(f"{len(names)} resource groups readable ({groups.pages} pages): {shown}")
    except ManagedIdentityError as exc:  # e.g. a 403 on a real VM whose identity has no role
        print(f"ARM refused or failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        client.close()


def _provenance(emulator: bool, tokens: list[AccessToken]) -> tuple[str, str]:
    """The charts' subtitles: the retry episode's and the tokens' sources, so no PNG passes for Azure."""
    from ..charts import describe_provenance

    if emulator:  # faults can be injected only into an emulator
        return (describe_provenance(emulator=True, injected=["503", "429 (Retry-After 3 s)"], virtual_time=True),
                describe_provenance(emulator=True))
    return (describe_provenance(simulated=True, virtual_time=True) + " · not a real incident",
            describe_provenance(tokens[0].issuer_label if tokens else None))


def _write_charts(directory: Path, timeline: Timeline, tokens: list[AccessToken], *, dpi: int,
                  sources: tuple[str, str] = ("", "")) -> list[Path]:
    """Both charts as PNG files in ``directory`` (created), on matplotlib's Agg canvas.

    Figures are made without pyplot, so no global backend is switched and nothing is shown.
    ``sources`` are the two charts' subtitles (:func:`_provenance`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..charts import FIGSIZE, plot_retry_timeline, plot_token_lifetimes

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    charts: dict[str, Callable[[Axes], object]] = {
        CHART_FILES[0]: lambda ax: plot_retry_timeline(timeline, ax=ax, provenance=sources[0]),
        CHART_FILES[1]: lambda ax: plot_token_lifetimes(tokens, ax=ax, provenance=sources[1] or None),
    }
    for name, draw in charts.items():
        fig = Figure(figsize=FIGSIZE)
        FigureCanvasAgg(fig)
        draw(fig.add_subplot())
        fig.tight_layout()
        path = directory / name
        fig.savefig(path, dpi=dpi, format="png", metadata={"Software": None})
        written.append(path)
    return written
