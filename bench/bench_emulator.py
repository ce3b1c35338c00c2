"""Benchmark the embedded IMDS emulator: start-up time and cached-token requests per second.

Not a test: run it and read the figures.

    python bench/bench_emulator.py                 # in-process emulator, http.client and requests clients
    python bench/bench_emulator.py --seconds 5 --threads 4
    python bench/bench_emulator.py --subprocess    # emulator in its own process (`mi-notebook emulator`)

Throughput is measured with throttling off (IMDS's real limit is 20 requests/s), over keep-alive
connections, for a token that is already cached (the common case: IMDS serves its cache).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

QUERY = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"


def measure_startup(runs: int) -> dict[str, float]:
    t0 = time.perf_counter()
    from mi_notebook.emulator import Emulator

    import_s = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        emu = Emulator()
        emu.start()
        times.append(time.perf_counter() - t)
        emu.stop()
    return {"import_ms": import_s * 1000, "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000, "min_ms": min(times) * 1000}


def _worker_httpclient(host: str, port: int, stop: threading.Event, counts: list[int], i: int,
                       errors: list[str]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    n = 0
    while not stop.is_set():
        conn.request("GET", QUERY, headers={"Metadata": "true"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or b"access_token" not in body:
            errors.append(f"{resp.status}")
            break
        n += 1
    conn.close()
    counts[i] = n


def _worker_requests(url: str, stop: threading.Event, counts: list[int], i: int, errors: list[str]) -> None:
    import requests

    n = 0
    with requests.Session() as s:
        while not stop.is_set():
            r = s.get(url + QUERY, headers={"Metadata": "true"}, timeout=10)
            if r.status_code != 200:
                errors.append(str(r.status_code))
                break
            n += 1
    counts[i] = n


def measure_throughput(url: str, threads: int, seconds: float, client: str) -> float:
    parts = urlsplit(url)
    # prime the cache (the first request signs a token)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", QUERY, headers={"Metadata": "true"})
    assert conn.getresponse().read()
    conn.close()
    stop = threading.Event()
    counts = [0] * threads
    errors: list[str] = []
    if client == "http.client":
        targets = [threading.Thread(target=_worker_httpclient,
                                    args=(parts.hostname, parts.port, stop, counts, i, errors))
                   for i in range(threads)]
    else:
        targets = [threading.Thread(target=_worker_requests, args=(url, stop, counts, i, errors))
                   for i in range(threads)]
    start = time.perf_counter()
    for t in targets:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in targets:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"unexpected answers: {errors[:5]}")
    return sum(counts) / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--startup-runs", type=int, default=10)
    p.add_argument("--subprocess", action="store_true", help="also measure against `mi-notebook emulator`")
    args = p.parse_args()

    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    s = measure_startup(args.startup_runs)
    print(f"start-up (in-process: RSA-2048 key, bind, thread; ARM side too): median {s['median_ms']:.0f} ms, "
          f"min {s['min_ms']:.0f} ms, max {s['max_ms']:.0f} ms over {args.startup_runs} runs "
          f"(first import of the package: {s['import_ms']:.0f} ms)")

    from mi_notebook.emulator import Emulator

    with Emulator(throttle=False) as emu:
        for client in ("http.client", "requests"):
            rps = measure_throughput(emu.imds_url, args.threads, args.seconds, client)
            print(f"cached tokens, in-process emulator, {args.threads} threads x {client} keep-alive: "
                  f"{rps:,.0f} requests/s")

    if args.subprocess:
        proc = subprocess.Popen([sys.executable, "-m", "mi_notebook.cli", "emulator", "--no-throttle", "--quiet"],
                                stdout=subprocess.PIPE, text=True)
        try:
            url = proc.stdout.readline().split()[1]
            for client in ("http.client", "requests"):
                rps = measure_throughput(url, args.threads, args.seconds, client)
                print(f"cached tokens, emulator in a subprocess, {args.threads} threads x {client} keep-alive: "
                      f"{rps:,.0f} requests/s")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
