"""Shared pieces of the token-agent tests (a private agent directory, cleaned up with its agent), and
the test that the clean-up really ends an agent the tests started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time


def token_requests(emu, settle: float = 0.05) -> int:
    """Token requests the emulator logged, once its log has been still for ``settle`` seconds. The
    emulator logs a request before answering it, so every request a client has its answer to is
    counted; the wait only lets a late extra one (a duplicate fetch) show up too."""
    count, still_since, deadline = -1, 0.0, time.monotonic() + 2
    while time.monotonic() < deadline:
        now = len(emu.requests.filter(service="imds", endpoint="token"))
        if now != count:
            count, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= settle:
            break
        time.sleep(0.005)
    return count


def agent_pid(directory: str) -> int | None:
    """The pid the running agent wrote, if any."""
    try:
        with open(os.path.join(directory, "agent.pid")) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a child of ours that exited is reaped first, so a zombie counts as gone)."""
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def reap(pid: int) -> None:
    """Wait (briefly) for a child agent to exit so it leaves no zombie behind."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def agent_dir():
    """A fresh, short (sockets have a 108-byte path limit) 0700 directory; any agent started in it is
    stopped afterwards: asked first, killed if it does not go."""
    from mi_notebook.agent.client import AgentClient

    directory = tempfile.mkdtemp(prefix="mia-")
    try:
        yield directory
    finally:
        pid = agent_pid(directory)
        AgentClient(directory, start=False).stop()
        if pid is not None and pid != os.getpid():
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


def test_agent_dir_stops_the_agent_started_in_it():
    from mi_notebook.agent.client import AgentClient

    with agent_dir() as directory:
        client = AgentClient(directory, idle_timeout=30)
        assert client.ensure_running()
        pid = client.ping()["pid"]
        assert pid != os.getpid() and alive(pid)
    assert not alive(pid)
