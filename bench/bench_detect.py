"""How long auto mode takes to decide where tokens come from, and how many network round trips it costs.

Not a test: run it and read the table. Everything is loopback; nothing is sent to 169.254.169.254
(the probe target is a loopback address here, and every socket connect is counted).

    python bench/bench_detect.py
    python bench/bench_detect.py --runs 200

Rows:
- each host's variables set (Azure ML, App Service, Arc, Cloud Shell): ``mi.connect()`` in auto mode
  reads them and decides; the endpoints point at a port where nothing listens, so any attempt to
  reach them would show as a connect below                         [0 round trips]
- no host variables, nothing listening where IMDS would be (refused at once): today's probe
- no host variables, something that accepts and never answers: the probe's time-out bound (0.8 s)
- the same with azure-identity 1.27: ``ManagedIdentityCredential()`` with the Azure ML variables (it
  also decides from the environment) for comparison
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
              "MI_NOTEBOOK_IMDS_URL", "MI_NOTEBOOK_MODE"):
    os.environ.pop(_name, None)

_connects: list[tuple[str, int]] = []
_real_connect = socket.socket.connect


def _counting_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else str(address)
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise OSError(f"bench_detect: refusing a non-loopback connection to {address!r}")
    _connects.append(address)  # type: ignore[arg-type]
    return _real_connect(self, address)


socket.socket.connect = _counting_connect  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_environments(port: int) -> dict[str, dict[str, str]]:
    base = f"http://127.0.0.1:{port}"
    return {
        "Azure ML": {"MSI_ENDPOINT": f"{base}/MSI/auth", "MSI_SECRET": "bench-secret",
                     "DEFAULT_IDENTITY_CLIENT_ID": "11111111-2222-3333-4444-555555555555"},
        "App Service": {"IDENTITY_ENDPOINT": f"{base}/msi/token", "IDENTITY_HEADER": "bench-header"},
        "Arc": {"IDENTITY_ENDPOINT": f"{base}/metadata/identity/oauth2/token", "IMDS_ENDPOINT": base},
        "Cloud Shell": {"MSI_ENDPOINT": f"{base}/oauth2/token"},
    }


def timed(fn: Callable[[], object], runs: int) -> tuple[float, int]:
    """Median seconds per call and socket connects per call."""
    samples = []
    before = len(_connects)
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), (len(_connects) - before) // max(runs, 1)


class Silent:
    """Accepts connections and never answers (a firewall that drops, or a hung metadata service)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="decisions timed per row (default 50)")
    ns = parser.parse_args(argv)

    import mi_notebook as mi

    nowhere = free_port()  # nothing listens: any attempt to reach a host endpoint would be a connect
    rows: list[tuple[str, float, int, str]] = []
    no_dmi = {"sysfs_root": "/nonexistent", "himds_path": "/nonexistent"}
    for name, env in host_environments(nowhere).items():
        def decide(env: dict[str, str] = env) -> object:
            return mi.connect(environ=env, **no_dmi).host
        seconds, connects = timed(decide, ns.runs)
        rows.append((f"mi-notebook, {name} variables set", seconds, connects, "no probe, no request"))

    refused = f"http://127.0.0.1:{free_port()}"
    seconds, connects = timed(lambda: mi.connect(environ={}, probe_url=refused, emulator_factory=_NoEmulator,
                                                 **no_dmi), max(ns.runs // 5, 3))
    rows.append(("mi-notebook, no host variables, probe refused", seconds, connects, "today's probe"))
    silent = Silent()
    try:
        seconds, connects = timed(lambda: mi.connect(environ={}, probe_url=silent.url,
                                                     emulator_factory=_NoEmulator, **no_dmi), 3)
    finally:
        silent.close()
    rows.append(("mi-notebook, no host variables, probe unanswered", seconds, connects, "the 0.8 s bound"))
    mi.disconnect()

    from azure.identity import ManagedIdentityCredential

    saved = dict(os.environ)
    os.environ.update(host_environments(nowhere)["Azure ML"])
    try:
        seconds, connects = timed(lambda: ManagedIdentityCredential().close(), ns.runs)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    rows.append(("azure-identity 1.27, Azure ML variables set", seconds, connects, "constructing the credential"))

    width = max(len(r[0]) for r in rows)
    print(f"{'decision':{width}}  {'median':>10}  {'connects':>8}  note")
    for label, seconds, connects, note in rows:
        print(f"{label:{width}}  {seconds * 1000:8.2f} ms  {connects:8d}  {note}")
    return 0


class _NoEmulator:
    """Stands in for the emulator so the bench times the decision, not an emulator's start-up."""

    imds_url = "http://127.0.0.1:9"
    profile = "vm"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
