"""``mi-notebook emulator`` prints where ARM is and its CA; a client in another process uses exactly that."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import pytest

import mi_notebook as mi
from mi_notebook.arm_client import ENV_ARM_CA_BUNDLE, ENV_ARM_URL


def _lines(proc: subprocess.Popen, n: int, timeout: float = 15.0) -> list[str]:
    box: queue.Queue = queue.Queue()

    def read() -> None:
        for _ in range(n):
            box.put(proc.stdout.readline().rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return [box.get(timeout=timeout) for _ in range(n)]


@pytest.fixture
def served():
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "mi_notebook.cli", "emulator", "--quiet", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.stderr.close()


def test_command_prints_arm_and_ca_and_a_client_uses_them(served, clean_connection, monkeypatch):
    proc = served("--no-throttle")
    imds, arm, ca, *exports = _lines(proc, 6)
    assert imds.startswith("IMDS http://127.0.0.1:")
    assert arm.startswith("ARM https://127.0.0.1:") and ca.startswith("CA ") and os.path.isfile(ca[3:])
    assert exports == [f"export MI_NOTEBOOK_IMDS_URL={imds[5:]}", f"export {ENV_ARM_URL}={arm[4:]}",
                       f"export {ENV_ARM_CA_BUNDLE}={ca[3:]}"]  # what a second shell needs, ready to eval
    monkeypatch.setenv(ENV_ARM_URL, arm[4:])
    monkeypatch.setenv(ENV_ARM_CA_BUNDLE, ca[3:])
    mi.connect(imds[5:])
    client = mi.arm()
    assert (client.url, client.verify) == (arm[4:], ca[3:])
    vm = client.vm()
    assert vm["identity"]["type"] == "SystemAssigned, UserAssigned"
    mi.disconnect()
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert not os.path.exists(ca[3:])  # the CA's temp dir goes with the emulator


def test_no_arm_prints_only_imds(served):
    proc = served("--no-arm")
    first, export, admin = _lines(proc, 3)
    assert first.startswith("IMDS ") and export == f"export MI_NOTEBOOK_IMDS_URL={first[5:]}"
    assert admin.startswith("export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN=")
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == ""
