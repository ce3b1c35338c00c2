"""The first token in a fresh process: mi-notebook against azure-identity 1.27, whole processes timed.

Not a test: run it and read the table. One emulator runs in its own process on loopback
(``python -m mi_notebook emulator``); each run is a new interpreter that imports the client, points it
at that emulator and fetches one ARM token, timed from the parent (process start to exit):

- ours:   ``import mi_notebook as mi; mi.connect(URL); mi.get_token("arm")``
- theirs: ``ManagedIdentityCredential().get_token("https://management.azure.com/.default")``, pointed at
  the emulator by ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (azure-identity's ``ImdsCredential`` and MSAL's
  VM path both build the token URL from it, and with it set azure-identity skips its IMDS probe);
- for context: ``import requests`` alone, and ``python -c pass``.

The runs are interleaved (one of each per round) so both clients see the same load. The table shows
medians of wall time and of CPU time (user + system: the work each process did, which a busy
neighbour on a shared machine does not stretch), and ours / theirs [bar: <= 0.5x wall].

Bytecode: an installed package's modules are compiled once (pip does it at install time); an
editable checkout under ``PYTHONDONTWRITEBYTECODE=1`` would instead compile mi-notebook's sources in
every run while azure-identity's stay compiled. So by default the runs share a throw-away
``PYTHONPYCACHEPREFIX``, filled by a warm-up run of each: both clients start from compiled bytecode,
as installed. ``--no-bytecode-cache`` keeps the environment as it is.

Before timing, each client is rehearsed once under the test suite's loopback guard (``tests/_guard``):
a rehearsal that tried to reach anything but loopback stops the bench.

    python bench/bench_first_token.py
    python bench/bench_first_token.py --runs 20 --importtime
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
GUARD_DIR = ROOT / "tests" / "_guard"
ARM_SCOPE = "https://management.azure.com/.default"
BAR = 0.5

#: what would send either client anywhere but the emulator (another host's protocol, a proxy)
_STRIPPED = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
             "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET",
             "IMDS_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
             "AZURE_POD_IDENTITY_AUTHORITY_HOST", "MI_NOTEBOOK_IMDS_URL", "MI_NOTEBOOK_MODE", "MI_NOTEBOOK_SHARE",
             "MI_NOTEBOOK_LOOPBACK_GUARD", "PYTHONPATH")


def commands(url: str) -> dict[str, str]:
    """The code each kind of run executes (``url``: the emulator's IMDS base URL)."""
    return {
        "mi-notebook": f"import mi_notebook as mi; mi.connect({url!r}); mi.get_token('arm')",
        "azure-identity": ("from azure.identity import ManagedIdentityCredential; "
                           f"ManagedIdentityCredential().get_token({ARM_SCOPE!r})"),
        "import requests": "import requests",
        "python -c pass": "pass",
    }


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """``python -m mi_notebook emulator`` in its own process; returns it and its IMDS URL (loopback)."""
    proc = subprocess.Popen([sys.executable, "-m", "mi_notebook", "emulator", "--no-throttle", "--no-arm", "--quiet"],
                            stdout=subprocess.PIPE, text=True, env=base_env(), cwd=ROOT)
    line = proc.stdout.readline().split() if proc.stdout else []
    if len(line) != 2 or line[0] != "IMDS":
        proc.kill()
        raise SystemExit(f"the emulator did not start (first line {line!r})")
    url = line[1]
    if urlsplit(url).hostname not in ("127.0.0.1", "::1", "localhost"):
        proc.kill()
        raise SystemExit(f"the emulator is not on loopback ({url}); refusing to run")
    return proc, url


def rehearse(code: str, env: dict[str, str]) -> None:
    """Run ``code`` once under the loopback guard; stop if it failed or reached past loopback."""
    with tempfile.TemporaryDirectory(prefix="mi-bench-guard-") as tmp:
        log = Path(tmp) / "violations.log"
        guarded = dict(env, PYTHONPATH=f"{GUARD_DIR}{os.pathsep}{env['PYTHONPATH']}",
                       MI_NOTEBOOK_LOOPBACK_GUARD="1", MI_NOTEBOOK_GUARD_LOG=str(log))
        done = subprocess.run([sys.executable, "-c", code], env=guarded, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        if log.exists() and log.read_text().strip():
            raise SystemExit(f"non-loopback traffic in a rehearsal, stopping:\n{log.read_text()}")
        if done.returncode != 0:
            raise SystemExit(f"rehearsal of {code!r} failed:\n{done.stderr[-2000:]}")


def run_once(code: str, env: dict[str, str]) -> tuple[float, float]:
    """One whole process: (wall seconds from start to exit, CPU seconds it used, user + system)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{code!r} exited with {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def importtime_top(code: str, env: dict[str, str], count: int) -> list[str]:
    """The ``count`` imports with the largest cumulative time in one ``python -X importtime`` run."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=120)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            own, cumulative, name = line[len("import time:"):].split("|")
            rows.append((int(cumulative), int(own), name.rstrip()))
    rows.sort(reverse=True)
    return [f"{c / 1000:7.1f} ms cumulative {o / 1000:6.1f} ms own  {n}" for c, o, n in rows[:count]]


def measure(args: argparse.Namespace, pycache: str | None) -> int:
    emulator, url = start_emulator()
    try:
        env = dict(base_env(), AZURE_POD_IDENTITY_AUTHORITY_HOST=url)
        if pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache
        code = commands(url)
        for name in ("mi-notebook", "azure-identity"):
            rehearse(code[name], env)
        for text in code.values():  # warm-up: fills the bytecode cache, not timed
            run_once(text, env)
        times: dict[str, list[float]] = {name: [] for name in code}
        cpu: dict[str, list[float]] = {name: [] for name in code}
        for _ in range(args.runs):
            for name, text in code.items():
                elapsed, used = run_once(text, env)
                times[name].append(elapsed)
                cpu[name].append(used)
        top = importtime_top(code["mi-notebook"], env, 25) if args.importtime else []
    finally:
        emulator.terminate()
        emulator.wait(10)

    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    ratio = med["mi-notebook"] / med["azure-identity"]
    cpu_ratio = med_cpu["mi-notebook"] / med_cpu["azure-identity"]
    compiled = "from cached bytecode" if pycache is not None else "bytecode as the environment has it"
    print(f"first token in a fresh process, median of {args.runs} whole-process runs, {compiled} "
          f"(emulator at {url})")
    width = max(len(name) for name in med)
    print(f"  {''.ljust(width)}  {'wall':>9}   {'(min / max)':<17}  {'CPU':>9}")
    for name, value in med.items():
        spread = f"({min(times[name]) * 1000:.0f} / {max(times[name]) * 1000:.0f} ms)"
        print(f"  {name.ljust(width)}  {value * 1000:6.1f} ms   {spread:<17}  {med_cpu[name] * 1000:6.1f} ms")
    verdict = "PASS" if ratio <= BAR else "FAIL"
    print(f"  mi-notebook / azure-identity: {ratio:.2f}x wall [bar <= {BAR}x] {verdict}; {cpu_ratio:.2f}x CPU")
    if top:
        print("\npython -X importtime, ours (largest cumulative):")
        print("\n".join(f"  {line}" for line in top))
    return 0 if verdict == "PASS" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="whole-process runs of each (default 10)")
    parser.add_argument("--importtime", action="store_true", help="also print -X importtime's top entries for ours")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep the environment's bytecode settings (PYTHONDONTWRITEBYTECODE...)")
    args = parser.parse_args(argv)
    if args.no_bytecode_cache:
        return measure(args, None)
    with tempfile.TemporaryDirectory(prefix="mi-bench-pycache-") as pycache:
        return measure(args, pycache)


if __name__ == "__main__":
    raise SystemExit(main())
