"""The token agent across processes: many kernels starting it at once single-flight through one agent;
an agent killed mid-refresh leaves its clients whole; no token reaches any file the agent writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest
from test_agent_support import agent_dir, agent_pid, alive, token_requests

import mi_notebook as mi
from mi_notebook.agent.client import AgentUnavailableWarning
from mi_notebook.emulator import Emulator

pytestmark = pytest.mark.usefixtures("clean_connection")

KERNEL = """
import sys
import mi_notebook as mi
conn = mi.connect(sys.argv[1], share=True, agent_dir=sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
tok = conn.get_token("arm")
print(tok.fingerprint, tok.from_cache, conn.cache.served, conn.cache.fallbacks, flush=True)
"""


@pytest.fixture
def emu():
    with Emulator(throttle=False) as emulator:
        yield emulator


def kernels(emu, directory: str, count: int) -> list[list[str]]:
    """``count`` processes that connect with sharing on, then ask for the same token at the same moment
    (each waits for a line on stdin); their answers (fingerprint, from_cache, served, fallbacks)."""
    procs = [subprocess.Popen([sys.executable, "-c", KERNEL, emu.imds_url, directory], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:  # the starting gun
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = []
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            answers.append(out.split())
        return answers
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def scan_for_tokens(directory: str, tokens: list[str]) -> dict[str, int]:
    """Every regular file under ``directory`` -> its size; fails if any 40-character piece of a token is in one."""
    seen = {}
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        for token in tokens:
            pieces = {token[i:i + 40] for i in range(0, max(len(token) - 39, 1), 20)}
            assert not any(piece.encode() in data for piece in pieces), f"token bytes in {path}"
        seen[name] = len(data)
    return seen


def test_eight_kernels_starting_the_agent_at_once_make_one_request(emu):
    with agent_dir() as directory:
        answers = kernels(emu, directory, 8)
        assert token_requests(emu) == 1
        assert len({a[0] for a in answers}) == 1  # one token for all
        assert sorted(a[1] for a in answers).count("False") >= 1
        assert all(a[2:] == ["1", "0"] for a in answers)  # each served by the agent, none fell back
        status = mi.AgentClient(directory, start=False).status()
        assert status["stats"]["requests_made"] == 1 and status["stats"]["requests_saved"] == 7
        assert status["stats"]["clients_seen"] >= 8
        with open(os.path.join(directory, "agent.log")) as f:
            log = f.read()
        assert log.count(" serving ") == 1 and "already serves" not in log  # two starters, one agent
        token = mi.connect(emu.imds_url, share=True, agent_dir=directory).get_token("arm")
        assert token.fingerprint == answers[0][0]
        files = scan_for_tokens(directory, [token.reveal()])
        assert files["agent.log"] > 0 and set(files) == {"agent.log", "agent.pid", "start.lock"}


def test_the_agent_killed_mid_refresh_and_its_clients_recover(emu):
    with agent_dir() as directory:
        conn = mi.connect(emu.imds_url, share=True, agent_dir=directory)
        agent = conn.cache.agent
        assert agent.ensure_running()
        first_pid = agent.ping()["pid"]
        emu.inject("hang", endpoint="token", seconds=20)  # the agent's request hangs...
        got: list = []
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            thread = threading.Thread(target=lambda: got.append(conn.get_token("arm")))
            thread.start()
            deadline = time.monotonic() + 30
            while token_requests(emu) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(first_pid, signal.SIGKILL)  # ...and the agent dies with it in flight, its socket left behind
            thread.join(30)
        # the client saw the connection break, found no agent holding the pid lock, started a new one
        # (which removed the stale socket) and asked it: still one request for every kernel of the user
        assert got and got[0].from_cache is False
        assert not [str(w.message) for w in seen if w.category is AgentUnavailableWarning]
        assert (conn.cache.served, conn.cache.fallbacks) == (1, 0) and token_requests(emu) == 2
        second_pid = agent.ping()["pid"]
        assert not alive(first_pid) and second_pid not in (first_pid, os.getpid())
        assert agent_pid(directory) == second_pid
        scan_for_tokens(directory, [got[0].reveal()])


def test_an_agent_that_cannot_be_restarted_leaves_the_kernel_asking_itself(emu):
    with agent_dir() as directory:
        conn = mi.connect(emu.imds_url, share=True, agent_dir=directory)
        agent = conn.cache.agent
        assert agent.ensure_running()
        pid = agent.ping()["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        agent.start = False  # e.g. the agent cannot start on this machine
        with pytest.warns(AgentUnavailableWarning, match="Connection refused"):
            tok = conn.get_token("arm")
        assert tok.from_cache is False and conn.cache.fallbacks == 1 and token_requests(emu) == 1


def test_a_stopped_agent_is_passed_by_within_a_bounded_time(emu):
    with agent_dir() as directory:
        conn = mi.connect(emu.imds_url, share=True, agent_dir=directory)
        agent = conn.cache.agent
        assert agent.ensure_running()
        pid = agent.ping()["pid"]
        agent.read_timeout = 0.3  # the bound under test
        agent.start_timeout = 60.0  # waiting for an agent to start would show, too
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.warns(AgentUnavailableWarning):
                tok = conn.get_token("arm")
            # the request's read time-out, then a short look for a live agent: not the fetch's 150 s,
            # nor the 60 s of waiting for an agent to start
            assert time.monotonic() - started < 10 and tok.from_cache is False
        finally:
            os.kill(pid, signal.SIGCONT)


RESOURCES = ["https://management.azure.com/", "https://vault.azure.net", "https://graph.microsoft.com/",
             "https://storage.azure.com/"]


def _ask_the_agent(task: int) -> tuple[int, bool]:
    from mi_notebook.agent.upstream import describe
    from mi_notebook.connection import current
    from mi_notebook.identity import Identity

    conn = current()
    agent = conn.cache.agent
    right = True
    for i in range(25):  # many exchanges: a socket shared with another process would mix answers up
        resource = RESOURCES[(task + i) % len(RESOURCES)]
        right &= agent.token(describe(conn), resource, Identity.system()).resource == resource
    return os.getpid(), right


def test_forked_workers_open_their_own_connections_to_the_agent(emu):
    import multiprocessing

    with agent_dir() as directory:
        conn = mi.connect(emu.imds_url, share=True, agent_dir=directory)
        conn.get_token("arm")  # the parent now keeps a connection to the agent
        with multiprocessing.get_context("fork").Pool(4) as pool:
            answers = pool.map(_ask_the_agent, range(16), chunksize=1)
        assert all(right for _, right in answers)
        assert len({worker for worker, _ in answers}) > 1
        assert conn.get_token("vault").resource == "https://vault.azure.net"
        assert token_requests(emu) == len(RESOURCES)
