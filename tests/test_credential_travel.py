"""Credentials that travel (issue 20, item 1): pickled after use, they carry how to get a token, never a
token or a host secret, and get their tokens in another process from the endpoint they describe.

Each fresh process is a real ``python`` subprocess (with the suite's loopback guard), pointed at a SECOND
emulator through its environment: the explicit URL (``MI_NOTEBOOK_IMDS_URL``) or Azure ML's variables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import hashlib
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from typing import Any

import pytest

import mi_notebook as mi
from mi_notebook import aio
from mi_notebook.clock import VirtualClock
from mi_notebook.emulator import Emulator
from mi_notebook.errors import EndpointUnreachableError
from mi_notebook.sdk_credential import Travel

pytestmark = [pytest.mark.usefixtures("clean_connection"), pytest.mark.filterwarnings("ignore::UserWarning")]

SCOPE = "https://management.azure.com/.default"

# unpickles the credential read from stdin, asks it for a token, and says what it got (no token: its hash)
CHILD = r"""
import asyncio, hashlib, json, logging, pickle, sys, warnings
warnings.simplefilter("ignore")
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
import mi_notebook
from mi_notebook import connection
cred = pickle.loads(sys.stdin.buffer.read())
scope = sys.argv[1]
try:
    if hasattr(cred, "__aenter__"):
        async def ask():
            async with cred:
                return await cred.get_token(scope)
        token = asyncio.run(ask())
    else:
        token = cred.get_token(scope)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(0)
conn = cred.connection if cred.connection is not None else connection.current()
print(json.dumps({"sha": hashlib.sha256(token.token.encode()).hexdigest(), "endpoint": conn.endpoint,
                  "host": conn.host, "chosen": conn.chosen, "reason": conn.reason, "cred": repr(cred)}))
"""


def in_fresh_process(blob: bytes, environ: dict[str, str], scope: str = SCOPE) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MI_NOTEBOOK_IMDS", "MSI_", "IDENTITY_", "IMDS_", "DEFAULT_IDENTITY"))}
    env.pop("MI_NOTEBOOK_MODE", None)  # the suite's default: a travelled credential must not need it
    env.update(environ)
    done = subprocess.run([sys.executable, "-c", CHILD, scope], input=blob, capture_output=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    result["log"] = done.stderr.decode()
    return result


def issued_hashes(emu: Emulator) -> set[str]:
    return {hashlib.sha256(t.access_token.encode()).hexdigest() for t in emu.issuer.cached()}


def token_requests(emu: Emulator) -> int:
    return len(emu.requests.filter(endpoint="token"))


def used(flavour: str, conn: mi.connection.Connection | None) -> tuple[Any, str]:
    """A credential of ``flavour`` (sync, async) that has fetched a token, and that token."""
    if flavour == "sync":
        cred: Any = mi.credential(connection=conn)
        return cred, cred.get_token(SCOPE).token
    acred = aio.credential(connection=conn)
    return acred, asyncio.run(acred.get_token(SCOPE)).token


def assert_carries_no_secret(blob: bytes, *secrets: str) -> None:
    text = blob.decode("latin-1")
    for secret in secrets:
        assert secret, "a secret to look for"
        pieces = {secret[i:i + 8] for i in range(0, max(1, len(secret) - 7))}
        assert not [p for p in pieces if p in text], "a pickled credential carries a secret"


@pytest.fixture(scope="module")
def second():
    """The second emulator: the one the fresh processes are pointed at."""
    with Emulator(throttle=False, seed=2) as emu:
        yield emu


@pytest.fixture(scope="module")
def second_azureml():
    """A second emulator playing Azure ML (its variables go to the fresh process)."""
    with Emulator(profile="azureml", throttle=False, seed=3) as emu:
        yield emu


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("pointed", ["explicit-url", "azureml-variables"])
def test_a_used_credential_pickles_without_secrets_and_gets_a_token_from_the_second_emulator(
        flavour, pointed, second, second_azureml):
    with Emulator(profile="azureml", throttle=False, seed=1) as first:
        # this process: auto mode found Azure ML by its variables (MSI_SECRET among them)
        conn = mi.connect(environ=first.environment)
        assert conn.chosen == "detected"
        cred, token = used(flavour, conn)
        blob = pickle.dumps(cred)
        assert_carries_no_secret(blob, token, first.environment["MSI_SECRET"], second_azureml.environment["MSI_SECRET"])
        before = token_requests(first)
        target = second if pointed == "explicit-url" else second_azureml
        environ = {"MI_NOTEBOOK_IMDS_URL": second.imds_url} if pointed == "explicit-url" else second_azureml.environment
        got = in_fresh_process(blob, environ)
        assert "error" not in got, got
        assert got["sha"] in issued_hashes(target)  # a token issued there, by the second emulator
        assert token_requests(first) == before  # the first one was never asked
        assert got["sha"] != hashlib.sha256(token.encode()).hexdigest()
        assert got["endpoint"].startswith(target.imds_url)
        assert (got["host"], got["chosen"]) == (("vm", "given") if pointed == "explicit-url" else ("azureml", "detected"))
        assert got["reason"] in got["log"]  # the usual surfaces: the log says which endpoint and why
    with pytest.raises(TypeError, match="refuses to be pickled"):
        pickle.dumps(cred.get_token(SCOPE) if flavour == "sync" else asyncio.run(cred.get_token(SCOPE)))


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_credential_made_for_an_explicit_url_stays_pointed_at_it(flavour, second, second_azureml):
    with Emulator(throttle=False, seed=4) as first:
        made_for = mi.connect(second.imds_url)
        cred, token = used(flavour, made_for)
        mi.disconnect()
        before = token_requests(second)
        # the other process says "use the first emulator" (and has Azure ML's variables): the credential wins
        got = in_fresh_process(pickle.dumps(cred), {"MI_NOTEBOOK_IMDS_URL": first.imds_url,
                                                    **second_azureml.environment})
        assert got["sha"] in issued_hashes(second) and token_requests(first) == 0
        assert token_requests(second) == before + 1
        assert got["endpoint"] == second.imds_url and got["chosen"] == "given"
        assert f"made for it in process {os.getpid()}" in got["reason"]


def test_a_credential_made_for_a_host_reads_that_hosts_variables_where_it_lands(second_azureml):
    with Emulator(profile="azureml", throttle=False, seed=5) as first:
        cred, token = used("sync", mi.connect(host="azureml", environ=first.environment))
        blob = pickle.dumps(cred)
        assert Travel.of(cred.connection) == Travel("host", "http://169.254.169.254", host="azureml", origin=os.getpid())
        assert_carries_no_secret(blob, token, first.environment["MSI_SECRET"])
        got = in_fresh_process(blob, second_azureml.environment)
        assert got["sha"] in issued_hashes(second_azureml) and token_requests(first) == 1
        assert (got["host"], got["chosen"]) == ("azureml", "requested") and "host='azureml'" in got["reason"]


def test_a_credential_following_the_current_connection_travels_as_what_it_uses(second):
    # settled at pickling (as on first use): the explicit endpoint, not auto mode in the other process
    mi.connect(second.imds_url)
    blob = pickle.dumps(mi.credential("client_id=" + second.vm.user_identities[0].client_id))
    got = in_fresh_process(blob, {})
    assert "error" not in got, got
    assert got["endpoint"] == second.imds_url and got["sha"] in issued_hashes(second)
    assert "client_id=" in got["cred"]


def test_an_emulator_this_process_started_travels_as_its_url_and_no_other_emulator_starts(second):
    conn = mi.connect(mode="emulator", emulator_factory=lambda: Emulator(throttle=False, seed=6))
    cred, _ = used("async", conn)
    assert Travel.of(conn) == Travel("url", conn.endpoint, emulator=True, origin=os.getpid())
    got = in_fresh_process(pickle.dumps(cred), {"MI_NOTEBOOK_MODE": "emulator"})
    assert got["sha"] in issued_hashes(conn.emulator) and token_requests(conn.emulator) == 2
    assert "embedded emulator (not Azure)" in got["reason"] and "only while that process lives" in got["reason"]
    assert "NOT Azure: every token now comes from the embedded emulator" not in got["log"]  # none started there


def test_auto_mode_travels_and_never_falls_back_to_an_emulator_where_none_answers(second):
    with Emulator(throttle=False, seed=7) as first:
        conn = mi.connect(probe_url=first.imds_url, environ={}, sysfs_root="/nonexistent")  # probed: "Azure IMDS"
        assert conn.chosen == "probed"
        cred, _ = used("sync", conn)
        blob = pickle.dumps(cred)
        probed = first.imds_url
        assert pickle.loads(blob)._travel == Travel("auto", probed, origin=os.getpid())
        here = in_fresh_process(blob, {"MI_NOTEBOOK_IMDS_URL": second.imds_url})  # its own endpoint: used
        assert here["sha"] in issued_hashes(second)
    # the first is gone: nothing answers at the address the other process probes, and no emulator starts
    got = in_fresh_process(blob, {})
    assert got["error"] == "EndpointUnreachableError"
    assert f"no Azure IMDS answered at {probed}" in got["message"]
    assert "never uses an emulator" in got["message"] and "What to do:" in got["message"]
    told = in_fresh_process(blob, {"MI_NOTEBOOK_MODE": "emulator"})
    assert told["error"] == "EndpointUnreachableError" and "MI_NOTEBOOK_MODE=emulator asks for one" in told["message"]


def test_a_credential_unpickled_where_its_endpoint_is_gone_fails_naming_it(monkeypatch):
    with Emulator(throttle=False, seed=8) as gone:
        url = gone.imds_url
        cred, _ = used("sync", mi.connect(url))
    mi.disconnect()
    mi.default_cache().clear()  # as in another process: nothing cached
    monkeypatch.setattr("mi_notebook.sdk_credential.SYSTEM_CLOCK", VirtualClock())  # its retries in virtual time
    arrived = pickle.loads(pickle.dumps(cred))
    with pytest.raises(EndpointUnreachableError, match=f"Could not reach IMDS at {url}") as caught:
        arrived.get_token(SCOPE)
    assert caught.value.endpoint and url in caught.value.endpoint


def test_copies_share_the_connection_and_arrivals_share_one(second):
    conn = mi.connect(second.imds_url)
    for cred in (mi.credential(connection=conn), aio.credential(connection=conn)):
        twin = copy.deepcopy(cred)
        assert twin is not cred and twin.connection is conn and twin.identity == cred.identity
        assert copy.copy(cred).connection is conn
    # Dask unpickles a credential per task: they all use one connection in the receiving process
    blob = pickle.dumps(mi.credential(connection=conn))
    a, b = pickle.loads(blob), pickle.loads(blob)
    a.get_token(SCOPE), b.get_token(SCOPE)
    assert a.connection is b.connection and a.connection is not conn
    assert pickle.loads(pickle.dumps(a))._travel == a._travel  # travels on as it came


def _token_in_worker(cred: Any) -> tuple[int, str]:
    return os.getpid(), hashlib.sha256(cred.get_token(SCOPE).token.encode()).hexdigest()


def test_one_credential_across_a_spawned_process_pool(second):
    mi.connect(second.imds_url)
    cred = mi.credential()
    before = token_requests(second)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        results = list(pool.map(_token_in_worker, [cred] * 6))
    workers = {pid for pid, _ in results}
    assert os.getpid() not in workers
    assert {sha for _, sha in results} <= issued_hashes(second)
    # each worker asked once, then its own cache answered (one connection per description and process)
    assert token_requests(second) - before == len(workers)


def test_sharing_travels_and_the_receiving_process_uses_its_own_agent(second, tmp_path):
    conn = mi.connect(second.imds_url, share=True, agent_dir=str(tmp_path / "parent"))
    assert type(conn.cache).__name__ == "SharedCache"
    travel = pickle.loads(pickle.dumps(mi.credential(connection=conn)))._travel
    assert travel == Travel("url", second.imds_url, share=True, origin=os.getpid())
    arrived = travel.connect()  # through this machine's agent, at its default place (not the parent's directory)
    assert type(arrived.cache).__name__ == "SharedCache" and "token agent at" in arrived.reason
    assert str(tmp_path / "parent") not in arrived.reason
    unshared = pickle.loads(pickle.dumps(mi.credential(connection=mi.connect(second.imds_url))))._travel
    assert unshared.share is False
