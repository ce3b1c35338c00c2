"""The guard itself: non-loopback traffic is refused before a packet leaves, and recorded."""

from __future__ import annotations

import socket
import subprocess
import sys

import loopback_guard
import pytest


@pytest.mark.parametrize("host", ["169.254.169.254", "10.1.2.3", "8.8.8.8", "::ffff:10.0.0.1"])
def test_connect_to_non_loopback_is_refused_and_recorded(host):
    before = len(loopback_guard.violations)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(loopback_guard.NonLoopbackTraffic):
        sock.connect((host, 80))
    assert len(loopback_guard.violations) == before + 1
    del loopback_guard.violations[before:]  # expected here; the autouse check must not fail this test


def test_name_lookup_of_a_real_host_is_refused():
    before = len(loopback_guard.violations)
    with pytest.raises(loopback_guard.NonLoopbackTraffic):
        socket.getaddrinfo("management.azure.com", 443)
    del loopback_guard.violations[before:]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "::1", "localhost", "[::1]", None])
def test_loopback_is_allowed(host):
    assert loopback_guard.is_loopback_host(host)


def test_loopback_connection_works():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass


def test_subprocesses_are_guarded_too(tmp_path):
    code = "import socket\ntry:\n    socket.create_connection(('169.254.169.254', 80), timeout=0.1)\nexcept PermissionError as e:\n    print('refused', type(e).__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "refused NonLoopbackTraffic" in out.stdout, out.stderr
    # The subprocess recorded it in the shared log; clear it so this expected refusal passes.
    import os
    from pathlib import Path

    log = Path(os.environ["MI_NOTEBOOK_GUARD_LOG"])
    assert "169.254.169.254" in log.read_text()
    log.write_text("")
