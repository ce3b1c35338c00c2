"""``abfs://`` paths with a managed identity: pandas and Dask through fsspec's adlfs, on Azurite over HTTPS.

The reads run in a fresh interpreter (tests/abfs_reads.py): aiohttp, adlfs' HTTP client, reads its
trust store once, at import, so that process trusts Azurite's certificate authority before anything
imports aiohttp. The loopback guard is on in it and in every Dask worker it starts (they inherit
``PYTHONPATH`` and ``MI_NOTEBOOK_LOOPBACK_GUARD``), and Azurite runs under the Node guard: anything
that tries a public name fails the test through the guard's log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("adlfs")
pytest.importorskip("distributed")

from azure.storage.blob import BlobServiceClient  # noqa: E402
from test_agent_support import agent_dir, agent_pid, alive, token_requests  # noqa: E402

import mi_notebook as mi  # noqa: E402
from mi_notebook.aio import AsyncManagedIdentityTokenCredential  # noqa: E402
from mi_notebook.data import abfs_options  # noqa: E402
from mi_notebook.emulator import Emulator  # noqa: E402

HERE = Path(__file__).resolve().parent
READS = HERE / "abfs_reads.py"
PARTITIONS = 16
#: a local cluster of spawned worker processes on a loaded 2-core machine: generous on purpose
CLUSTER_TIMEOUT = 240

pytestmark = pytest.mark.usefixtures("clean_connection")


@pytest.fixture
def emu():
    with Emulator(throttle=False) as emulator:
        yield emulator


@pytest.fixture
def lake(azurite, emu):
    """A fresh container holding ``part-00.csv`` ... ``part-15.csv`` (``units`` 0+1, 1+2, ...), uploaded
    with a token from ``emu``; the emulator's log is emptied afterwards, so only the reads count."""
    container = f"lake-{uuid.uuid4().hex[:8]}"
    conn = mi.connect(emu.imds_url)
    with BlobServiceClient(azurite.account_url, credential=mi.credential(connection=conn),
                           connection_verify=azurite.ca_bundle) as service:
        blobs = service.create_container(container)
        for i in range(PARTITIONS):
            blobs.upload_blob(f"part-{i:02d}.csv", f"region,units\nnorth,{i}\nsouth,{i + 1}\n".encode())
    mi.disconnect()
    emu.requests.clear()
    return container


def read(emu, azurite, container, *extra, env=None, timeout=CLUSTER_TIMEOUT):
    argv = [sys.executable, str(READS), "--imds-url", emu.imds_url, "--container", container, *extra,
            "--account-url", azurite.account_url, "--ca", azurite.ca_bundle]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent)


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the options ------------------------------------------------------------------------------------
def test_options_on_azure_are_the_account_and_the_async_credential():
    default = abfs_options("mydatalake")
    assert sorted(default) == ["account_name", "credential"] and default["account_name"] == "mydatalake"
    assert isinstance(default["credential"], AsyncManagedIdentityTokenCredential)
    assert default["credential"].identity.kind == "system"
    cred = mi.aio.credential("client_id=4b3a2f61-9c2e-4d5b-8f0a-1e2d3c4b5a69")
    assert abfs_options("mydatalake", credential=cred) == {"account_name": "mydatalake", "credential": cred}
    # adlfs' own default host needs no account_host
    assert "account_host" not in abfs_options("mydatalake", credential=cred,
                                              account_url="https://mydatalake.blob.core.windows.net/")


def test_options_for_another_cloud_and_for_azurite_name_the_host_adlfs_builds_its_url_from():
    cred = mi.aio.credential()
    gov = abfs_options("mydatalake", credential=cred, account_url="https://mydatalake.blob.core.usgovcloudapi.net")
    assert gov["account_host"] == "mydatalake.blob.core.usgovcloudapi.net"
    azurite = abfs_options("devstoreaccount1", credential=cred, account_url="https://127.0.0.1:10000/devstoreaccount1")
    assert azurite["account_host"] == "127.0.0.1:10000/devstoreaccount1"  # adlfs: https://{account_host}


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"account_name": "My_Lake"}, ValueError, "3 to 24 lowercase letters and digits"),
    ({"account_name": "ab"}, ValueError, "3 to 24 lowercase letters and digits"),
    ({"account_name": "lake", "account_url": "http://127.0.0.1:10000/lake"}, ValueError, "must be an https URL"),
    ({"account_name": "lake", "account_url": "https://127.0.0.1:10000/other"}, ValueError, "names the account 'other'"),
    ({"account_name": "lake", "account_url": "https://lake.blob.core.windows.net/?sv=x"}, ValueError, "without a query"),
    ({"account_name": "lake", "ca_bundle": "/nonexistent/ca.pem"}, ValueError, "no certificate authority at"),
])
def test_bad_input_is_refused_before_any_request(kwargs, error, words):
    with pytest.raises(error, match=words):
        abfs_options(credential=mi.aio.credential(), **kwargs)


def test_a_sync_credential_is_refused_with_the_name_of_the_async_one():
    with pytest.raises(TypeError) as caught:
        abfs_options("mydatalake", credential=mi.credential())
    assert "mi_notebook.aio.credential()" in str(caught.value) and "sync" in str(caught.value)


def test_trust_ca_makes_a_private_bundle_for_the_processes_started_afterwards(azurite):
    script = """
import os, stat, sys
from mi_notebook.data import trust_ca
path = trust_ca(sys.argv[1])
assert os.environ["SSL_CERT_FILE"] == path and trust_ca(sys.argv[1]) == path  # again: nothing changes
assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
text = open(path).read()
assert open(sys.argv[1]).read().strip() in text and text.count("BEGIN CERTIFICATE") > 1  # the defaults stay
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script, azurite.ca_bundle], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


TRUST_AFTER_IMPORT = """
import asyncio, sys
import azure.storage.blob, aiohttp  # noqa: F401 - the sync Storage SDK imports aiohttp: its trust is read now
from mi_notebook.data import trust_ca
if sys.argv[2] == "no-context":  # an aiohttp without the default context trust_ca adds to
    del aiohttp.connector._SSL_CONTEXT_VERIFIED
try:
    trust_ca(sys.argv[3])
except RuntimeError as err:
    sys.exit(f"refused: {err}")
async def main():
    async with aiohttp.ClientSession() as session, session.get(sys.argv[1]) as answer:
        print("HTTP", answer.status)
asyncio.run(main())
"""


@pytest.mark.parametrize("case", ["context", "no-context"])
def test_trust_ca_after_aiohttp_was_imported_adds_to_its_context_or_says_what_to_do(azurite, case):
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    proc = subprocess.run([sys.executable, "-c", TRUST_AFTER_IMPORT, azurite.account_url + "?comp=list", case,
                           azurite.ca_bundle], capture_output=True, text=True, timeout=60, env=env)
    if case == "context":
        assert proc.returncode == 0 and proc.stdout.startswith("HTTP 4"), proc.stderr  # verified: Azurite answered
    else:
        assert "refused: aiohttp was imported before the certificate authority was trusted" in proc.stderr
        assert "restarting the kernel" in proc.stderr


# --- pandas -----------------------------------------------------------------------------------------
def test_pandas_reads_an_abfs_path_from_azurite_with_a_managed_identity_token(emu, azurite, lake):
    result = result_of(read(emu, azurite, lake, timeout=120))
    assert result["rows"] == 2 and result["total"] == 1  # part-00.csv: units 0 and 1
    tokens = emu.requests.filter(service="imds", endpoint="token")
    assert [t.query["resource"] for t in tokens] == [["https://storage.azure.com/"]]


@pytest.mark.parametrize(("variable", "verified"), [("REQUESTS_CA_BUNDLE", False), ("SSL_CERT_FILE", True)])
def test_aiohttp_trusts_ssl_cert_file_not_requests_ca_bundle(azurite, variable, verified):
    """The fact trust_ca() is built on, asked of aiohttp's default context (what adlfs' client uses)."""
    script = """
import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(sys.argv[1]) as answer:
                print("HTTP", answer.status)
        except aiohttp.ClientConnectorCertificateError as err:
            print("not verified:", err.certificate_error.reason)
asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    env[variable] = azurite.ca_bundle
    proc = subprocess.run([sys.executable, "-c", script, azurite.account_url + "?comp=list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP 4" if verified else "not verified: CERTIFICATE_VERIFY_FAILED"), proc.stdout


def test_without_account_url_adlfs_asks_a_public_name_and_the_guard_refuses_it(emu, azurite, lake, tmp_path):
    """adlfs' default is https://<account>.blob.core.windows.net: the guard refuses even the name lookup
    (the child is stopped once it has been refused: azure-core would go on retrying for a minute)."""
    log = tmp_path / "guard.log"  # this child's own log: the refusal is what the test expects
    argv = [sys.executable, str(READS), "--imds-url", emu.imds_url, "--container", lake, "--ca", azurite.ca_bundle]
    child = subprocess.Popen(argv, env={**os.environ, "MI_NOTEBOOK_GUARD_LOG": str(log)}, cwd=HERE.parent,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while child.poll() is None and not log.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert "name lookup of 'devstoreaccount1.blob.core.windows.net'" in log.read_text()


# --- Dask ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(CLUSTER_TIMEOUT + 60)
def test_dask_workers_read_sixteen_partitions_each_asking_its_own_token(emu, azurite, lake):
    result = result_of(read(emu, azurite, lake, "--workers", "4"))
    assert result["partitions"] == PARTITIONS and result["rows"] == 2 * PARTITIONS
    assert result["total"] == sum(2 * i + 1 for i in range(PARTITIONS))
    workers = result["workers"]
    assert len(workers) == 4 and all(w["guard"] for w in workers), workers  # the guard reached every worker
    assert len(result["pids"]) >= 2 and result["parent"] not in result["pids"]  # read in worker processes
    # not shared: the parent (listing the files) and each worker that read asked the emulator once
    assert token_requests(emu) == 1 + len(result["pids"])


@pytest.mark.timeout(CLUSTER_TIMEOUT + 60)
def test_dask_workers_sharing_through_the_agent_make_one_token_request_between_them(emu, azurite, lake):
    with agent_dir() as runtime:  # the agent's directory is the default one, $XDG_RUNTIME_DIR/mi-notebook,
        directory = os.path.join(runtime, "mi-notebook")  # in the parent and in every worker it starts
        env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        try:
            result = result_of(read(emu, azurite, lake, "--workers", "4", "--share", env=env))
            assert result["partitions"] == PARTITIONS and result["total"] == sum(2 * i + 1 for i in range(PARTITIONS))
            assert len(result["pids"]) >= 2 and all(w["guard"] for w in result["workers"])
            assert token_requests(emu) == 1  # the parent and every worker, one request through the agent
            stats = mi.AgentClient(directory, start=False).status()["stats"]
            assert stats["requests_made"] == 1 and stats["clients_seen"] >= 1 + len(result["pids"])
        finally:
            stop_agent(directory)


def stop_agent(directory: str) -> None:
    """Stop the agent the read started in ``directory`` (asked first, killed if it does not go)."""
    pid = agent_pid(directory)
    mi.AgentClient(directory, start=False, read_timeout=0.5).stop()
    deadline = time.monotonic() + 5
    while pid is not None and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGKILL)


# --- notebook 10's helper -------------------------------------------------------------------------
def test_lake_targets_on_azure_are_your_account_and_nothing_else():
    from mi_notebook.tutorial import lake_targets

    conn = mi.connect("http://127.0.0.1:9")  # a given endpoint: what a VM's notebook sees
    lake = lake_targets("mydatalake", "sales", connection=conn)
    assert lake.azurite is None and lake.url("day-*.csv") == "abfs://sales/day-*.csv"
    assert lake.storage_options["account_name"] == "mydatalake" and "account_host" not in lake.storage_options
    assert isinstance(lake.storage_options["credential"], AsyncManagedIdentityTokenCredential)
    assert lake_targets(connection=conn).container is None  # not given: the notebook skips its reads


def test_lake_targets_without_azurite_say_how_to_install_it(monkeypatch):
    from mi_notebook.emulator import Azurite, AzuriteUnavailable
    from mi_notebook.tutorial import lake_targets

    def unavailable(self):
        raise AzuriteUnavailable("Node.js is not installed, so Azurite cannot run: install Node.js")

    monkeypatch.setattr(Azurite, "start", unavailable)
    lake = lake_targets(connection=mi.connect(mode="emulator"))
    assert lake.container is None and lake.storage_options == {}
    assert str(lake) == "abfs://: none here (Node.js is not installed, so Azurite cannot run: install Node.js)"


def test_lake_targets_stop_the_azurite_they_started_when_the_set_up_fails(azurite, monkeypatch):  # skipped without Node
    from mi_notebook import tutorial
    from mi_notebook.emulator import Azurite

    started: list[Azurite] = []
    real_start = Azurite.start

    def start(self):
        started.append(self)
        return real_start(self)

    def refuse(*args, **kwargs):
        raise RuntimeError("aiohttp was imported before the certificate authority was trusted")

    monkeypatch.setattr(Azurite, "start", start)
    monkeypatch.setattr(tutorial, "_upload_sample", refuse)
    with pytest.raises(RuntimeError, match="aiohttp was imported"):
        tutorial.lake_targets(connection=mi.connect(mode="emulator"))
    assert len(started) == 1 and not started[0].running and started[0].process is None
