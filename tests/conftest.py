"""Test-suite wide rules: loopback only, emulator mode, and no leftover guard violations."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

_GUARD_DIR = Path(__file__).parent / "_guard"
sys.path.insert(0, str(_GUARD_DIR))
import loopback_guard  # noqa: E402

loopback_guard.install()

# Subprocesses (the CLI, notebook kernels, the emulator command) get the same guard.
_GUARD_LOG = Path(tempfile.mkdtemp(prefix="mi-guard-")) / "violations.log"
os.environ["MI_NOTEBOOK_LOOPBACK_GUARD"] = "1"
os.environ["MI_NOTEBOOK_GUARD_LOG"] = str(_GUARD_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
)
# Nothing in the suite may probe 169.254.169.254: auto mode would.
os.environ["MI_NOTEBOOK_MODE"] = "emulator"
os.environ.pop("MI_NOTEBOOK_IMDS_URL", None)
os.environ.pop("MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN", None)  # a shell's emulator token must not reach the tests' emulators
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_proxy, None)

# MSAL's Cloud Shell code posts to the fixed port 50342, which is also in the kernel's ephemeral range: under
# a busy suite an outgoing loopback connection can hold it at the moment the Cloud Shell test binds it.
# Reserve it for the whole session (no ephemeral port is handed out while a listener holds it) and give it
# to that test only (cloud_shell_port()).
CLOUD_SHELL_PORT = 50342
_cloud_shell_holder: socket.socket | None = None
try:
    _cloud_shell_holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _cloud_shell_holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _cloud_shell_holder.bind(("127.0.0.1", CLOUD_SHELL_PORT))
    _cloud_shell_holder.listen(1)
except OSError:
    _cloud_shell_holder = None


@pytest.fixture
def cloud_shell_port():
    """Port 50342, released for this test (reserved since the session started); fails in CI if another
    process already held it then, skips elsewhere."""
    global _cloud_shell_holder
    if _cloud_shell_holder is None:
        message = f"port {CLOUD_SHELL_PORT} (Cloud Shell's fixed port, which MSAL hard-codes) was in use when the suite started"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    _cloud_shell_holder.close()
    _cloud_shell_holder = None
    return CLOUD_SHELL_PORT


@pytest.fixture(autouse=True)
def _no_non_loopback_traffic():
    """Fail the test that caused non-loopback traffic, even if the code swallowed the error."""
    before = len(loopback_guard.violations)
    log_before = _GUARD_LOG.read_text() if _GUARD_LOG.exists() else ""
    yield
    new = loopback_guard.violations[before:]
    log_after = _GUARD_LOG.read_text() if _GUARD_LOG.exists() else ""
    new_log = log_after[len(log_before):]
    if new or new_log:
        del loopback_guard.violations[before:]
        pytest.fail("non-loopback traffic attempted:\n" + "\n".join(new) + new_log, pytrace=False)


# --- transport fixtures (imds / connect / credential / CLI tests) ---------------------------------
@pytest.fixture
def transport_emu():
    """A running emulator without rate limits (tests send bursts in virtual time)."""
    from mi_notebook.emulator import Emulator

    with Emulator(throttle=False) as emu:
        yield emu


@pytest.fixture
def virtual_clock():
    """A clock that only moves when slept on: ``virtual_clock.sleep`` is the injected sleep."""
    from helpers import VirtualClock

    return VirtualClock()


@pytest.fixture
def make_imds_client(transport_emu, virtual_clock):
    """Build ImdsClients against ``transport_emu`` in virtual time (jitter from a seeded rng)."""
    from mi_notebook.sources.imds import ImdsClient

    clients = []

    def make(**kw):
        kw.setdefault("url", transport_emu.imds_url)
        kw.setdefault("clock", virtual_clock)
        kw.setdefault("timeout", (1.0, 2.0))
        client = ImdsClient(**kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _forget_connection() -> None:
    """Close the current connection (stopping its emulator) and empty the process-wide token cache."""
    from bench.reliability.seams import forget_connection

    forget_connection()


@pytest.fixture
def clean_connection():
    """No current connection and an empty process-wide token cache, before and after the test."""
    _forget_connection()
    yield
    _forget_connection()


@pytest.fixture(scope="module")
def clean_connection_module():
    """``clean_connection`` once around a whole module (for module-scoped fixtures that connect)."""
    _forget_connection()
    yield
    _forget_connection()


# --- Azurite (Storage emulator, a Node process) ---------------------------------------------------
# The Python guard cannot see into Node: every Node process the suite starts (Azurite, also from a
# notebook kernel) preloads the Node guard, which refuses non-loopback connects and DNS look-ups and
# writes them to the same log the autouse fixture above checks. Azurite also always runs with
# --disableTelemetry (mi_notebook/emulator/azurite.py).
_NODE_GUARD = _GUARD_DIR / "loopback_guard.js"
os.environ["NODE_OPTIONS"] = " ".join(filter(None, [f'--require "{_NODE_GUARD}"', os.environ.get("NODE_OPTIONS")]))


@pytest.fixture(scope="session")
def azurite():
    """A running Azurite Blob service (HTTPS, OAuth); skipped where Node/Azurite are missing, failed in CI."""
    from mi_notebook.emulator.azurite import Azurite, AzuriteUnavailable, find_azurite

    try:
        find_azurite()
    except AzuriteUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Azurite tests (.ci/run installs it): {exc}", pytrace=False)
        pytest.skip(f"{exc}")
    with Azurite() as az:
        yield az
