"""``mi-notebook emulator``: serve the emulator in the foreground until SIGINT/SIGTERM.

The first line of stdout (flushed at once) is ``IMDS <url>`` (the base URL, whatever the profile),
so a parent process can read where to connect; ``ARM <url>`` and ``CA <path>`` follow when the ARM
side runs (``CA`` also for ``--profile workload``, whose Entra ID speaks HTTPS). Then, for every profile,
``export NAME=value`` lines: what a second shell needs to use this emulator (``eval "$(... | grep ^export)"``):
the variables a real host of that kind sets (for the VM, ``MI_NOTEBOOK_IMDS_URL``; for ``workload`` the four a
labelled AKS pod gets, whose clients must also trust the ``CA``: the summary says how),
``MI_NOTEBOOK_ARM_URL`` / ``MI_NOTEBOOK_ARM_CA_BUNDLE`` when the ARM side runs, and last
``MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN``: the token of the control plane (``/__emulator__/...``, sent as
``Authorization: Bearer <token>``), which ``mi-notebook demo`` and other clients read from that variable; an
emulator started where it is set uses it instead of a random one. Then a short summary of the VM. Binding
anything but loopback needs an explicit ``--host`` and prints a warning: the emulator hands out tokens to
anyone who asks.

Example::

    $ mi-notebook emulator --port 8080 --no-throttle --no-arm
    IMDS http://127.0.0.1:8080
    export MI_NOTEBOOK_IMDS_URL=http://127.0.0.1:8080
    $ mi-notebook emulator --profile appservice --no-arm --quiet
    IMDS http://127.0.0.1:41234
    export IDENTITY_ENDPOINT=http://127.0.0.1:41234/msi/token
    export IDENTITY_HEADER=8d1c...
    export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN=Zq3v...
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .admin import ADMIN_TOKEN_ENV
from .clouds import CLOUD_NAMES, cloud
from .hosts.profiles import PROFILES

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from . import Emulator

__all__ = ["build_parser", "exports", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The emulator's own options (the mi-notebook CLI forwards everything after ``emulator``).

    Example::

        >>> args = build_parser().parse_args(["--profile", "azureml", "--sso", "off", "--no-arm"])
        >>> args.profile, args.sso, args.no_arm, args.port
        ('azureml', 'off', True, 0)
    """
    p = argparse.ArgumentParser(prog="mi-notebook emulator",
                                description="Serve the Azure IMDS (+ ARM) emulator in the foreground.")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; others print a warning)")
    p.add_argument("--port", type=int, default=0, help="IMDS port (default: any free port)")
    p.add_argument("--config", metavar="FILE", help="a JSON (or TOML) emulator config file")
    p.add_argument("--seed", default=None, help="derive every GUID from this seed (default 0)")
    p.add_argument("--no-throttle", action="store_true", help="do not enforce IMDS's request limits")
    p.add_argument("--no-system-assigned", action="store_true", help="the VM has no system-assigned identity")
    p.add_argument("--user-assigned", type=int, default=None, metavar="N",
                   help="number of user-assigned identities (default 2)")
    p.add_argument("--token-lifetime", type=int, default=None, metavar="SECONDS", help="default 86400")
    p.add_argument("--latency", type=float, default=None, metavar="SECONDS",
                   help="added to each identity-endpoint answer")
    p.add_argument("--no-arm", action="store_true", help="IMDS only: no ARM side")
    p.add_argument("--profile", choices=PROFILES, default=None,
                   help="the host to play (default vm; workload: an AKS pod with workload identity); prints the "
                        "variables that host sets as export lines")
    p.add_argument("--sso", choices=("on", "off", "unavailable"), default=None,
                   help="azureml: the signed-in user's SSO token for requests without clientid (default on)")
    p.add_argument("--azureml-expires-on", choices=("int", "string", "date"), default=None,
                   help="azureml: how expires_on is written (default int)")
    p.add_argument("--arc-key-dir", metavar="DIR", default=None,
                   help="arc: where the challenge key files go (default /var/opt/azcmagent/tokens)")
    p.add_argument("--cloud", choices=CLOUD_NAMES, default=None,
                   help="the cloud to play: its azEnvironment, audiences and token issuer (default AzurePublicCloud)")
    p.add_argument("--quiet", action="store_true", help="print only the URL and export lines")
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM (or until ``stop`` is set, for embedding and tests);
    returns the exit code: 0 after a clean stop, 2 on bad options or when the port cannot be bound.

    Example (``stop`` already set: serve, print where, stop at once)::

        >>> stop = threading.Event(); stop.set()
        >>> main(["--profile", "cloudshell", "--no-arm", "--quiet"], stop=stop)
        IMDS http://127.0.0.1:...
        export MSI_ENDPOINT=http://127.0.0.1:.../oauth2/token
        export AZUREPS_HOST_ENVIRONMENT=cloud-shell/1.0
        export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN=...
        0
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from . import Emulator  # after parsing, so --help is instant
    from .config import load_config
    from .hosts.arckeys import KeyDirectoryError

    try:
        config = load_config(args.config) if args.config else {}
    except (OSError, ValueError) as exc:
        print(f"mi-notebook emulator: cannot read the config: {exc}", file=sys.stderr)
        return 2
    configured = config.get("host")
    if args.host is None and configured and not _is_loopback(str(configured)):
        print(f"mi-notebook emulator: the config asks to listen on {configured}, which is not loopback; "
              "pass --host explicitly to confirm", file=sys.stderr)
        return 2
    host = args.host or str(configured or "127.0.0.1")
    try:
        seed: int | str | None = None
        if args.seed is not None:
            seed = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
        emu = Emulator(
            config=config, host=host, port=args.port or None, seed=seed,
            throttle=False if args.no_throttle else None,
            system_assigned=False if args.no_system_assigned else None,
            user_assigned=args.user_assigned, token_lifetime=args.token_lifetime,
            latency=args.latency, arm=False if args.no_arm else None, profile=args.profile,
            sso=args.sso, azureml_expires_on=args.azureml_expires_on, arc_key_dir=args.arc_key_dir,
            cloud=args.cloud,
        )
    except (OSError, ValueError) as exc:
        print(f"mi-notebook emulator: {exc}", file=sys.stderr)
        return 2

    if stop is None:
        stop = threading.Event()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        event = stop
        previous = {sig: signal.signal(sig, lambda *_: event.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            emu.start()
        except KeyDirectoryError as exc:
            print(f"mi-notebook emulator: {exc.strerror}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"mi-notebook emulator: cannot listen on {host}:{args.port}: {exc}", file=sys.stderr)
            return 2
        lines = [f"IMDS {emu.imds_url}"]
        if emu.arm_url:
            lines.append(f"ARM {emu.arm_url}")
        if emu.ca_bundle:
            lines.append(f"CA {emu.ca_bundle}")
        lines += [f"export {name}={shlex.quote(value)}" for name, value in exports(emu).items()]
        lines.append(f"export {ADMIN_TOKEN_ENV}={shlex.quote(emu.admin_token)}")
        print("\n".join(lines), flush=True)
        if not _is_loopback(host):
            print(f"WARNING: the emulator listens on {host}, not loopback: anyone who can reach it gets "
                  "tokens for its identities. Use it only on a network you trust.", file=sys.stderr, flush=True)
        if not args.quiet:
            _summary(emu)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def exports(emu: Emulator) -> dict[str, str]:
    """What a second shell needs to use ``emu``: the host's own variables (the VM has none: then
    ``MI_NOTEBOOK_IMDS_URL``), and ``MI_NOTEBOOK_ARM_URL`` / ``MI_NOTEBOOK_ARM_CA_BUNDLE`` when ARM runs.

    Example::

        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(arm=False) as emu:
        ...     list(exports(emu)) == ["MI_NOTEBOOK_IMDS_URL"] and exports(emu)["MI_NOTEBOOK_IMDS_URL"] == emu.imds_url
        True
    """
    found = dict(emu.environment) or {"MI_NOTEBOOK_IMDS_URL": emu.imds_url}
    if emu.arm_url:
        found["MI_NOTEBOOK_ARM_URL"] = emu.arm_url
        if emu.ca_bundle:
            found["MI_NOTEBOOK_ARM_CA_BUNDLE"] = emu.ca_bundle
    return found


def _summary(emu: Emulator) -> None:
    vm = emu.vm
    print(f"VM {vm.name} in {vm.resource_group} ({vm.location}), subscription {vm.subscription_id}, "
          f"tenant {vm.tenant_id}")
    for ident in vm.identities:
        print(f"  {ident.kind:6} {ident.name}: client_id={ident.client_id} object_id={ident.object_id}")
    if emu.profile in ("azureml", "cloudshell"):
        print(f"  signed-in user {emu.user.upn}: object_id={emu.user.object_id}")
    pod = emu.workload
    if pod is not None:
        print(f"  pod {pod.options.namespace}/{pod.options.pod} as {pod.cluster.subject}, federated with "
              f"{pod.identity.name}; issuer {pod.cluster.issuer}; token file rotated at 80% of "
              f"{pod.options.token_lifetime} s")
        print(f"trust: export REQUESTS_CA_BUNDLE={pod.ca_bundle} (requests: azure-identity, MSAL) or "
              f"SSL_CERT_FILE={pod.ca_bundle} (httpx, aiohttp): Entra ID here speaks HTTPS with the emulator's CA")
    throttle = "on" if emu.throttle else "off"
    print(f"profile {emu.profile}; cloud {emu.cloud}; throttling {throttle}; JWKS {emu.jwks_url}; admin {emu.imds_url}/__emulator__/ "
          f"(faults, requests, vm, environment: -H \"Authorization: Bearer ${ADMIN_TOKEN_ENV}\")")
    print("try: " + _try_line(emu), flush=True)


def _try_line(emu: Emulator) -> str:
    """A curl command for the profile's token endpoint, as its host documents it (secrets by variable)."""
    arm = cloud(emu.cloud).arm_endpoint
    if emu.profile == "azureml":
        return f"curl '{emu.token_url}?api-version=2017-09-01&resource={arm}' -H \"secret: $MSI_SECRET\""
    if emu.profile == "appservice":
        return (f"curl '{emu.token_url}?api-version=2019-08-01&resource={arm}' "
                "-H \"X-IDENTITY-HEADER: $IDENTITY_HEADER\"")
    if emu.profile == "arc":
        return (f"curl -si '{emu.token_url}?api-version=2020-06-01&resource={arm}' -H Metadata:true "
                "(401: WWW-Authenticate names the key file; repeat with -H \"Authorization: Basic $(cat FILE)\")")
    if emu.profile == "cloudshell":
        return f"curl {emu.token_url} --data 'resource={arm}' -H Metadata:true"
    if emu.profile == "workload":
        return (f"curl --cacert {emu.ca_bundle} {emu.token_url} -d grant_type=client_credentials "
                f"-d client_id=$AZURE_CLIENT_ID -d scope={arm}.default "
                "-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer "
                "--data-urlencode client_assertion@$AZURE_FEDERATED_TOKEN_FILE")
    return ("curl '" + emu.imds_url + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
            + arm + "' -H Metadata:true")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
