"""Benchmark the per-user token agent: many processes, one request per refresh.

Not a test: run it and read the table. Everything talks to one embedded emulator on loopback
(throttling off, so every request is counted, none refused); azure-identity 1.27's
``ManagedIdentityCredential`` reaches it through ``AZURE_POD_IDENTITY_AUTHORITY_HOST``.

    python bench/bench_agent.py
    python bench/bench_agent.py --processes 32 --calls 20000

Rows (bar in brackets):
- N processes asking for the same token at the same moment: token requests the emulator received,
  with the agent (the first process starts it) [exactly 1], without it, and azure-identity's count
- a cached token through the agent (a local round trip on its Unix socket), per call, next to a
  cached token in the process (``conn.get_token``) and azure-identity's cached ``get_token``
- how long the first process waits for the agent to start
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_client import token_requests  # noqa: E402 - after the path; it also clears the host variables

ARM_SCOPE = "https://management.azure.com/.default"

# Never through a proxy, never to a real metadata service.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
              "AZURE_FEDERATED_TOKEN_FILE", "MI_NOTEBOOK_IMDS_URL", "MI_NOTEBOOK_SHARE"):
    os.environ.pop(_name, None)

OURS = """
import sys
import mi_notebook as mi
conn = mi.connect(sys.argv[1], share=sys.argv[2] == "share", agent_dir=sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
tok = conn.get_token("arm")
print(tok.fingerprint, flush=True)
"""

THEIRS = """
import sys
from azure.identity import ManagedIdentityCredential
cred = ManagedIdentityCredential()
print("ready", flush=True)
sys.stdin.readline()
cred.get_token(sys.argv[1])
print("done", flush=True)
"""


def at_once(emu, code: str, args: list[str], processes: int) -> tuple[int, int]:
    """Start ``processes`` interpreters running ``code``; once all are ready (imported, connected),
    release them together. Returns (token requests the emulator received, processes that failed)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    before = token_requests(emu)
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    failed = 0
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                failed += 1
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failed += 1
                print(err, file=sys.stderr)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return token_requests(emu) - before, failed


def per_call(fn, calls: int, rounds: int = 5) -> float:
    """Seconds per call, best of ``rounds`` blocks."""
    fn()
    best = float("inf")
    block = max(1, calls // rounds)
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(block):
            fn()
        best = min(best, (time.perf_counter() - t0) / block)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--calls", type=int, default=20000, help="cached calls per measure")
    args = parser.parse_args(argv)

    from azure.identity import ManagedIdentityCredential

    import mi_notebook as mi
    from mi_notebook.agent.client import AgentClient
    from mi_notebook.agent.upstream import describe
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity

    rows: list[tuple[str, str, str, str]] = []
    directory = tempfile.mkdtemp(prefix="mi-bench-agent-")
    try:
        with Emulator(throttle=False) as emu:
            os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = emu.imds_url
            n = args.processes

            shared, shared_failed = at_once(emu, OURS, [emu.imds_url, "share", directory], n)
            alone, alone_failed = at_once(emu, OURS, [emu.imds_url, "alone", directory], n)
            theirs, theirs_failed = at_once(emu, THEIRS, [ARM_SCOPE], n)
            rows.append((f"{n} processes, same token, same moment: token requests",
                         f"{shared} with the agent ({shared_failed} failed)",
                         f"{alone} without it ({alone_failed} failed)", f"{theirs} ({theirs_failed} failed)"))

            # the cost of a cached token: through the agent (already running, token held) vs in-process
            conn = mi.connect(emu.imds_url)
            agent = AgentClient(directory)
            upstream = describe(conn)
            system = Identity.system()
            through_agent = per_call(lambda: agent.token(upstream, "arm", system), args.calls // 10)
            in_process = per_call(lambda: conn.get_token("arm"), args.calls)
            cred = ManagedIdentityCredential()
            theirs_cached = per_call(lambda: cred.get_token(ARM_SCOPE), args.calls)
            rows.append(("a cached token, per call", f"{through_agent * 1e6:.0f} us through the agent (round trip)",
                         f"{in_process * 1e6:.2f} us in the process", f"{theirs_cached * 1e6:.2f} us"))
            mi.disconnect()

            # how long the first process waits for an agent to start
            agent.stop()
            fresh = AgentClient(tempfile.mkdtemp(prefix="mi-bench-agent-"))
            t0 = time.perf_counter()
            fresh.ensure_running()
            started = time.perf_counter() - t0
            fresh.stop()
            shutil.rmtree(fresh.paths.directory, ignore_errors=True)
            rows.append(("starting the agent (first process only)", f"{started * 1000:.0f} ms", "", ""))
    finally:
        AgentClient(directory, start=False).stop()
        shutil.rmtree(directory, ignore_errors=True)

    header = ("measure", "mi-notebook, share=True", "mi-notebook, share=False", "azure-identity 1.27")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    verdict = shared == 1 and shared_failed == 0
    print(f"\nbar: exactly 1 request with the agent: {'PASS' if verdict else 'FAIL'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
