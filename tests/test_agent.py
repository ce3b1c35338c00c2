"""The token agent in one process: the server in threads, clients, the emulator, the connection's sharing,
the uid check, the stale socket, the shared hold-back, the views and the command."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import threading
import time
import warnings

import pytest
from test_agent_support import agent_dir, token_requests

import mi_notebook as mi
from mi_notebook.agent.client import (
    AgentClient,
    AgentTokenInfo,
    AgentUnavailable,
    AgentUnavailableWarning,
    SharedCache,
)
from mi_notebook.agent.command import format_status
from mi_notebook.agent.protocol import VERSION, agent_paths, recv_frame, send_frame
from mi_notebook.agent.server import AgentAlreadyRunning, AgentServer
from mi_notebook.agent.upstream import Upstream, describe
from mi_notebook.cli import main as cli_main
from mi_notebook.clock import Clock, VirtualClock
from mi_notebook.emulator import Emulator
from mi_notebook.identity import Identity

pytestmark = pytest.mark.usefixtures("clean_connection")


@pytest.fixture
def emu():
    with Emulator(throttle=False) as emulator:
        yield emulator


@pytest.fixture
def served():
    """An agent serving in this process's threads, in a fresh directory."""
    with agent_dir() as directory:
        server = AgentServer(directory, idle_timeout=30, heartbeat=0.05).start()
        try:
            yield server
        finally:
            server.stop()


# --- where it lives ----------------------------------------------------------------------------------
def test_the_directory_is_private_and_under_xdg_runtime_dir(tmp_path):
    paths = agent_paths(environ={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert paths.directory == str(tmp_path / "mi-notebook")
    assert stat.S_IMODE(os.stat(paths.directory).st_mode) == 0o700


def test_without_xdg_runtime_dir_a_private_temporary_directory(monkeypatch, tmp_path):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    paths = agent_paths(environ={})
    assert paths.directory == str(tmp_path / f"mi-notebook-{os.getuid()}")
    assert stat.S_IMODE(os.stat(paths.directory).st_mode) == 0o700


def test_a_directory_others_can_enter_is_refused(tmp_path):
    shared = tmp_path / "open"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(PermissionError, match="mode 0700"):
        agent_paths(str(shared))


def test_the_socket_is_not_reachable_by_others(served):
    assert stat.S_IMODE(os.stat(served.paths.socket).st_mode) & 0o077 == 0


# --- tokens through the agent --------------------------------------------------------------------------
def test_a_token_through_the_agent_then_from_its_cache(served, emu):
    client = AgentClient(served.paths.directory, start=False)
    upstream = {"host": "vm", "endpoint": emu.imds_url}
    first = client.token(upstream, "arm", Identity.system())
    again = client.token(upstream, "https://management.azure.com/", Identity.system())
    assert (first.from_cache, again.from_cache) == (False, True)
    assert first.emulated and again.emulated
    assert again.reveal() == first.reveal() and first.timeline is not None
    assert token_requests(emu) == 1
    stats = served.status()["stats"]
    assert (stats["requests_made"], stats["requests_saved"]) == (1, 1)


def test_the_endpoints_errors_reach_the_client_as_themselves(served, emu):
    client = AgentClient(served.paths.directory, start=False)
    with pytest.raises(mi.IdentityNotFoundError) as caught:
        client.token({"host": "vm", "endpoint": emu.imds_url}, "arm",
                     Identity.user(client_id="00000000-0000-0000-0000-00000000dead"))
    assert caught.value.status == 400 and caught.value.timeline is not None


def test_a_bad_description_makes_the_client_fall_back_not_fail(served):
    client = AgentClient(served.paths.directory, start=False)
    with pytest.raises(AgentUnavailable, match="no known host"):
        client.token({"host": "mainframe", "endpoint": "x"}, "arm", Identity.system())


def test_a_sharing_connection_serves_the_process_cache_first_then_the_agent(served, emu):
    conn = mi.connect(emu.imds_url, share=True, agent_dir=served.paths.directory)
    assert isinstance(conn.cache, SharedCache) and "token agent" in conn.reason
    first = mi.get_token("arm")
    assert first.from_cache is False and mi.get_token("arm").from_cache is True
    assert conn.cache.served == 1 and conn.cache.fallbacks == 0
    # another process (here: another connection's cache) gets the agent's cached token
    other = SharedCache(AgentClient(served.paths.directory, start=False), describe(conn))
    again = mi.connect(emu.imds_url, share=False).get_token("arm", cache=other)
    assert again.from_cache is True and again.fingerprint == first.fingerprint
    assert token_requests(emu) == 1


def test_the_share_variable_turns_it_on(served, emu):
    conn = mi.connect(emu.imds_url, agent_dir=served.paths.directory,
                      environ={"MI_NOTEBOOK_SHARE": "1"})
    assert isinstance(conn.cache, SharedCache)
    assert not isinstance(mi.connect(emu.imds_url, environ={}).cache, SharedCache)


def test_share_must_be_a_bool():
    with pytest.raises(ValueError, match="share must be True or False"):
        mi.connect("http://127.0.0.1:9", share="yes")


def test_the_sdk_credential_goes_through_the_agent(served, emu):
    mi.connect(emu.imds_url, share=True, agent_dir=served.paths.directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the emulator-token warning
        cred = mi.credential()
        token = cred.get_token("https://management.azure.com/.default")
    assert token.token and served.status()["stats"]["requests_made"] == 1


def test_every_host_profile_works_through_the_agent(served):
    with Emulator(profile="appservice", throttle=False) as appservice:
        conn = mi.connect(environ=appservice.environment, share=True, agent_dir=served.paths.directory,
                          sysfs_root="/nonexistent", himds_path="/nonexistent")
        assert conn.host == "appservice"
        tok = conn.get_token("vault")
        assert tok.emulated and conn.cache.served == 1
        assert served.status()["tokens"][0]["resource"] == "https://vault.azure.net"
        # the host's secret travels to the agent, and is shown nowhere
        secret = appservice.environment["IDENTITY_HEADER"]
        shown = [repr(conn.cache), str(conn.cache.__dict__.get("endpoint")), conn.reason, repr(conn.cache.agent),
                 json.dumps(served.status()), format_status(served.status()), repr(conn.cache.tokens())]
        assert not [text for text in shown if secret in text]


# --- never worse than without it ------------------------------------------------------------------------
def test_no_agent_and_not_allowed_to_start_one_falls_back_and_warns_once(emu):
    with agent_dir() as directory:
        conn = mi.connect(emu.imds_url, share=True, agent_dir=directory)
        conn.cache.agent.start = False
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            conn.get_token("arm")
            conn.cache.retry_after = 0.0  # try the agent at every miss: still one warning
            conn.get_token("vault")
        ours = [w for w in seen if w.category is AgentUnavailableWarning]
        assert len(ours) == 1 and "asks the endpoint itself" in str(ours[0].message)
        assert conn.cache.fallbacks == 2 and token_requests(emu) == 2


def test_an_agent_of_another_version_is_treated_as_absent(emu):
    with agent_dir() as directory:
        path = agent_paths(directory).socket
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen()

        def old_agent():
            conn, _ = listener.accept()
            with conn:
                recv_frame(conn, timeout=30)
                send_frame(conn, {"v": VERSION + 1, "ok": True})

        thread = threading.Thread(target=old_agent)
        thread.start()
        client = AgentClient(directory, start=False)
        with pytest.raises(AgentUnavailable, match=f"speaks protocol {VERSION + 1}"):
            client.ping()
        thread.join()
        listener.close()


def test_a_hung_agent_costs_a_bounded_time(emu):
    with agent_dir() as directory:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(agent_paths(directory).socket)
        listener.listen()  # accepted by the kernel, never answered: a stopped agent
        conn = mi.connect(emu.imds_url, share=True, agent_dir=directory)
        conn.cache.agent.read_timeout = 0.2
        conn.cache.agent.start = False
        started = time.monotonic()
        with pytest.warns(AgentUnavailableWarning, match="did not answer properly"):
            tok = conn.get_token("arm")
        # the read time-out, then the fetch itself: far from the 150 s an unbounded wait would cost
        assert time.monotonic() - started < 10 and tok.from_cache is False
        listener.close()


def test_a_stale_socket_file_is_removed_by_the_next_agent():
    with agent_dir() as directory:
        path = agent_paths(directory).socket
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(path)
        dead.close()  # the file stays, nobody listens
        with pytest.raises(AgentUnavailable, match="Connection refused"):
            AgentClient(directory, start=False).ping()
        server = AgentServer(directory, idle_timeout=30).start()
        try:
            assert AgentClient(directory, start=False).ping()["pid"] == os.getpid()
        finally:
            server.stop()
        assert not os.path.exists(path)


def test_a_second_agent_in_the_same_directory_refuses_to_start(served):
    with pytest.raises(AgentAlreadyRunning, match="already serves"):
        AgentServer(served.paths.directory).start()
    assert AgentClient(served.paths.directory, start=False).ping()["pid"] == os.getpid()


def test_an_idle_agent_exits_and_removes_its_socket():
    with agent_dir() as directory:
        server = AgentServer(directory, idle_timeout=0.2).start()
        assert server._stopped.wait(30)
        assert not os.path.exists(server.paths.socket)


# --- the uid check --------------------------------------------------------------------------------------
def test_another_uid_gets_no_answer_at_all(emu):
    with agent_dir() as directory:
        server = AgentServer(directory, idle_timeout=30, peer=lambda conn: (4242, os.getuid() + 1)).start()
        try:
            client = AgentClient(directory, start=False)
            with pytest.raises(AgentUnavailable, match="did not answer properly"):
                client.token({"host": "vm", "endpoint": emu.imds_url}, "arm",
                             Identity.system())
            assert server.refused == 1 and token_requests(emu) == 0
        finally:
            server.stop()


def test_the_real_peer_check_reads_this_process(served):
    client = AgentClient(served.paths.directory, start=False)
    client.ping()
    assert served.status()["stats"]["clients_seen"] == 1 and served.refused == 0


# --- the hold-back shared across clients ----------------------------------------------------------------
def test_a_429_with_retry_after_holds_back_the_next_request_to_the_endpoint(emu):
    clock = VirtualClock()
    upstream = Upstream({"host": "vm", "endpoint": emu.imds_url}, clock=clock)
    emu.inject(429, endpoint="token", retry_after=3)
    upstream.fetch("https://management.azure.com/", Identity.system())
    assert clock.slept == [3.0] and upstream.holds == 1
    # the 429 held every request: one that started while it was in force waits for its end
    clock.slept.clear()
    emu.inject(429, endpoint="token", retry_after=5)
    seen = []

    def observe(attempt, wait, max_attempts):
        seen.append(attempt.status)
        upstream._observe(attempt, wait, max_attempts)
        if attempt.status == 429:  # another client asks for another resource before the retry
            upstream.fetch("https://vault.azure.net", Identity.system())

    upstream.client.request_token("https://storage.azure.com/", Identity.system(), on_attempt=observe)
    assert clock.slept[0] == 5.0  # the vault request waited out the storage request's Retry-After
    upstream.close()


def test_status_shows_a_hold(emu):
    released = threading.Event()
    clock = Clock(sleep=released.wait)  # the agent's waits last until the test is done looking
    with agent_dir() as directory:
        server = AgentServer(directory, idle_timeout=30, heartbeat=0.05, clock=clock).start()
        client = AgentClient(directory, start=False)
        upstream = {"host": "vm", "endpoint": emu.imds_url}
        emu.inject(429, endpoint="token", retry_after=30)
        got = []
        thread = threading.Thread(target=lambda: got.append(client.token(upstream, "arm", Identity.system())))
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.status()["holds"] and time.monotonic() < deadline:
                time.sleep(0.01)
            holds = server.status()["holds"]
            assert list(holds) == [emu.imds_url] and 25 < holds[emu.imds_url] <= 30
            assert "holding back requests to" in format_status(server.status())
        finally:
            released.set()
            thread.join(30)
            server.stop()
    assert got and got[0].timeline.statuses == ["429", "200"]


# --- what it shows ---------------------------------------------------------------------------------------
def test_the_views_show_the_agents_tokens(served, emu):
    import matplotlib

    matplotlib.use("Agg")
    from mi_notebook.frames import tokens_frame

    conn = mi.connect(emu.imds_url, share=True, agent_dir=served.paths.directory)
    tok = conn.get_token("arm")
    # a token another process asked for: in the agent, not in this process
    AgentClient(served.paths.directory, start=False).token(describe(conn), "vault", Identity.system())
    infos = conn.cache.tokens()
    assert all(isinstance(t, AgentTokenInfo) and t.served_by == "agent" for t in infos)
    frame = tokens_frame(conn.cache)
    assert sorted(frame["resource"]) == ["https://management.azure.com/", "https://vault.azure.net"]
    assert tok.fingerprint in set(frame["fingerprint"])
    planned = frame.set_index("resource").loc["https://management.azure.com/", "refresh_at"].timestamp()
    assert planned == pytest.approx(served.cache.refresh_at(tok), abs=1)
    ax = mi.plot_token_lifetimes(conn.cache)
    assert ax.get_title() == "token lifetimes (2 tokens)"  # fetched together: one bar naming both
    assert all(name in "".join(t.get_text() for t in ax.get_yticklabels()) for name in ("arm", "vault"))
    assert [row["token"].resource for row in conn.cache.entries()] == [t.resource for t in infos]


def test_the_status_command_shows_fingerprints_never_tokens(served, emu):
    client = AgentClient(served.paths.directory, start=False)
    tok = client.token({"host": "vm", "endpoint": emu.imds_url}, "arm", Identity.system())
    for flag in ([], ["--json"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli_main(["agent", "status", "--dir", served.paths.directory, *flag]) == 0
        text = out.getvalue()
        assert tok.fingerprint in text and "https://management.azure.com/" in text
        assert tok.reveal() not in text and tok.reveal()[-40:] not in text
    assert "requests made 1, saved 0; clients 1 seen, 1 alive" in text or '"requests_made": 1' in text


def test_the_stop_command_stops_it(served):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli_main(["agent", "stop", "--dir", served.paths.directory]) == 0, err.getvalue()
    assert out.getvalue() == f"stopped the agent (pid {os.getpid()})\n"
    assert served._stopped.wait(30)
    for action in ("status", "stop"):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            assert cli_main(["agent", action, "--dir", served.paths.directory]) == 1
        assert err.getvalue().startswith(f"mi-notebook agent: no agent answers at {served.paths.socket} (")


def test_stop_is_answered_before_the_agent_begins_to_stop(served):
    """The worst interleaving, made certain: the instant the agent's stopping flag is set, its accept
    loop shuts every open connection, the one that asked to stop included. The answer must be out by then."""
    closing = served._close

    class ClosesAtOnce(threading.Event):
        def set(self) -> None:
            super().set()
            closing()

    served._stopping = ClosesAtOnce()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert cli_main(["agent", "stop", "--dir", served.paths.directory]) == 0, err.getvalue()
    assert served._stopped.wait(30) and not os.path.exists(served.paths.socket)


def test_an_unusable_agent_directory_means_no_sharing_not_a_failure(tmp_path, emu):
    shared = tmp_path / "open"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.warns(AgentUnavailableWarning, match="not shared between processes: .* mode 0700"):
        conn = mi.connect(emu.imds_url, share=True, agent_dir=str(shared))
    assert not isinstance(conn.cache, SharedCache) and "token agent" not in conn.reason
    assert conn.get_token("arm").from_cache is False


def test_the_agent_forgets_the_oldest_endpoint_past_its_limit(served, emu, monkeypatch):
    monkeypatch.setattr("mi_notebook.agent.server._UPSTREAM_LIMIT", 2)
    client = AgentClient(served.paths.directory, start=False)
    for n in (0, 1, 0):
        client.token({"host": "vm", "endpoint": emu.imds_url, "n": n}, "arm", Identity.system())
    client.token({"host": "vm", "endpoint": emu.imds_url + "/"}, "arm", Identity.system())
    assert len(served._upstreams) == 2
