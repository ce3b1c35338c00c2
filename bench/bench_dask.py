"""Dask workers reading ``abfs://`` with a managed identity: the token requests each credential makes.

Not a test: run it and read the table. On loopback only: the embedded emulator (IMDS) and Azurite
(Blob Storage over HTTPS with OAuth) run here, 16 small CSVs are uploaded, and a fresh interpreter
(``tests/abfs_reads.py``) reads them with ``dask.dataframe.read_csv("abfs://...", storage_options=...)``
on a ``distributed.LocalCluster`` of 4 worker processes, once per credential:

- mi-notebook's async credential, not shared: each process asks the endpoint for its own token;
- the same with sharing on (``share=True``): the processes ask this user's token agent, which asks once;
- azure-identity 1.27's ``ManagedIdentityCredential``, sync and aio, written the way people write it
  (``storage_options={"account_name": ..., "credential": ManagedIdentityCredential()}``), pointed at the
  emulator by ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (as in bench_first_token.py: with it set,
  azure-identity builds its token URL from it and skips its IMDS probe).

Every process, the workers included, runs under the test suite's loopback guard (``tests/_guard``), and
Azurite under its Node guard: anything that tries to leave loopback stops the bench. The emulator's
request log counts the token requests. Then the cost of a cached token: ``await`` on mi-notebook's
async credential next to a call of the sync one.

    python bench/bench_dask.py
    python bench/bench_dask.py --workers 2 --calls 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
GUARD_DIR = ROOT / "tests" / "_guard"
READS = ROOT / "tests" / "abfs_reads.py"
STORAGE_SCOPE = "https://storage.azure.com/.default"
sys.path[:0] = [str(GUARD_DIR), str(ROOT)]

from bench.bench_first_token import base_env  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from mi_notebook.emulator import Emulator
    from mi_notebook.emulator.azurite import Azurite

#: (label, --credential, shared)
VARIANTS = [("mi-notebook", "mi", False), ("mi-notebook, shared", "mi", True),
            ("azure-identity sync", "azure-identity", False), ("azure-identity aio", "azure-identity-aio", False)]


def guarded_env(log: Path) -> dict[str, str]:
    env = base_env()
    env.update(PYTHONPATH=f"{GUARD_DIR}{os.pathsep}{env['PYTHONPATH']}", MI_NOTEBOOK_LOOPBACK_GUARD="1",
               MI_NOTEBOOK_GUARD_LOG=str(log))
    env["NODE_OPTIONS"] = f'--require "{GUARD_DIR / "loopback_guard.js"}"'
    return env


def upload(azurite: Azurite, emu: Emulator, partitions: int) -> str:
    from azure.storage.blob import BlobServiceClient

    import mi_notebook as mi

    container = f"bench-{uuid.uuid4().hex[:8]}"
    conn = mi.connect(emu.imds_url)
    with BlobServiceClient(azurite.account_url, credential=mi.credential(connection=conn),
                           connection_verify=azurite.ca_bundle) as service:
        blobs = service.create_container(container)
        for i in range(partitions):
            blobs.upload_blob(f"part-{i:02d}.csv", f"region,units\nnorth,{i}\nsouth,{i + 1}\n".encode())
    mi.disconnect()
    return container


def one_read(label: str, credential: str, shared: bool, args: argparse.Namespace, emu: Emulator, azurite: Azurite,
             container: str, env: dict[str, str]) -> dict[str, object]:
    import mi_notebook as mi

    emu.requests.clear()
    with tempfile.TemporaryDirectory(prefix="mib-") as runtime:
        run_env = dict(env, XDG_RUNTIME_DIR=runtime, AZURE_POD_IDENTITY_AUTHORITY_HOST=emu.imds_url)
        argv = [sys.executable, str(READS), "--imds-url", emu.imds_url, "--account-url",
                azurite.account_url, "--ca", azurite.ca_bundle, "--container", container,
                "--workers", str(args.workers), "--credential", credential, *(["--share"] if shared else [])]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=run_env, cwd=ROOT)
        seconds = time.monotonic() - started
        if shared:
            mi.AgentClient(os.path.join(runtime, "mi-notebook"), start=False, read_timeout=0.5).stop()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": proc.stderr.strip().splitlines()[-1][:300]}
    time.sleep(0.2)  # the emulator logs just after answering
    tokens = len(emu.requests.filter(service="imds", endpoint="token"))
    return {"label": label, "tokens": tokens, "seconds": seconds, **result}


#: the child that reports what pickle does with a credential that served one token
PICKLE_AFTER_USE = """
import asyncio, inspect, pickle, sys
credential = sys.argv[1]
if credential == "mi":
    import mi_notebook as mi
    from mi_notebook import aio
    mi.connect(sys.argv[2])
    c = aio.credential()
elif credential == "azure-identity":
    from azure.identity import ManagedIdentityCredential
    c = ManagedIdentityCredential()
else:
    from azure.identity.aio import ManagedIdentityCredential
    c = ManagedIdentityCredential()
got = c.get_token(sys.argv[3])
if inspect.isawaitable(got):
    async def wait():
        return await got
    asyncio.run(wait())
try:
    print(f"{len(pickle.dumps(c)) / 1024:.1f} KB")
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
"""


def pickled_after_use(credential: str, emu: Emulator, env: dict[str, str]) -> str:
    """What ``pickle.dumps`` does with the credential after it served one token (in a guarded child)."""
    done = subprocess.run([sys.executable, "-c", PICKLE_AFTER_USE, credential, emu.imds_url, STORAGE_SCOPE],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(env, AZURE_POD_IDENTITY_AUTHORITY_HOST=emu.imds_url))
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return lines[-1][:70] if lines else f"exit {done.returncode}"


def cached_cost(emu: Emulator, calls: int) -> tuple[float, float]:
    """Median ns per cached token: the sync credential's call, the async one's ``await``."""
    import mi_notebook as mi
    from mi_notebook import aio

    conn = mi.connect(emu.imds_url)
    sync = mi.credential(connection=conn)
    sync.get_token(STORAGE_SCOPE)
    sync_runs, async_runs = [], []
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(calls):
            sync.get_token(STORAGE_SCOPE)
        sync_runs.append((time.perf_counter_ns() - started) / calls)

    async def awaited() -> None:
        cred = aio.credential(connection=conn)
        await cred.get_token(STORAGE_SCOPE)
        for _ in range(5):
            started = time.perf_counter_ns()
            for _ in range(calls):
                await cred.get_token(STORAGE_SCOPE)
            async_runs.append((time.perf_counter_ns() - started) / calls)

    asyncio.run(awaited())
    mi.disconnect()
    return statistics.median(sync_runs), statistics.median(async_runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="Dask worker processes (default 4)")
    parser.add_argument("--partitions", type=int, default=16, help="CSV files, one partition each (default 16)")
    parser.add_argument("--calls", type=int, default=20000, help="cached-token calls per timing run")
    args = parser.parse_args(argv)

    import loopback_guard

    loopback_guard.install()
    with tempfile.TemporaryDirectory(prefix="mi-bench-guard-") as tmp:
        log = Path(tmp) / "violations.log"
        env = guarded_env(log)
        os.environ["NODE_OPTIONS"] = env["NODE_OPTIONS"]  # Azurite, started from here, under the Node guard
        from mi_notebook.emulator import Emulator
        from mi_notebook.emulator.azurite import Azurite

        with Emulator(throttle=False) as emu, Azurite() as azurite:
            container = upload(azurite, emu, args.partitions)
            rows = [one_read(*variant, args, emu, azurite, container, env) for variant in VARIANTS]
            pickles = {credential: pickled_after_use(credential, emu, env) for _, credential, _ in VARIANTS[1:]}
            sync_ns, async_ns = cached_cost(emu, args.calls)
        refused = log.read_text().strip() if log.exists() else ""
    if refused or loopback_guard.violations:
        raise SystemExit(f"non-loopback traffic, the figures are void:\n{refused}\n{loopback_guard.violations}")

    print(f"dask.dataframe.read_csv('abfs://...'): {args.partitions} partitions, LocalCluster of {args.workers} worker "
          "processes, Azurite and the IMDS emulator on loopback")
    print(f"  {'credential':<21} {'token requests':>14}  {'processes read':>14}  {'wall':>7}  pickle after one token")
    for row in rows:
        credential = next(c for label, c, _ in VARIANTS if label == row["label"])
        read = len(row.get("pids", [])) or "-"
        print(f"  {row['label']:<21} {row['tokens']:>14}  {read:>14}  {row['seconds']:5.1f} s  {pickles[credential]}")
        if "error" in row:
            print(f"  {'':<21} the read failed: {row.get('cause') or row['error']}")
    print(f"cached token, median of 5 x {args.calls} calls: sync get_token {sync_ns:,.0f} ns, "
          f"await aio get_token {async_ns:,.0f} ns ({async_ns / sync_ns:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
