"""The agent's protocol under abuse, like the emulator's: garbage, huge frames, slow clients, random
requests, another uid. The agent never crashes, never hangs a client, never answers another uid; a
client never hangs on a broken agent."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_agent_support import agent_dir

from mi_notebook.agent.client import AgentClient, AgentUnavailable
from mi_notebook.agent.protocol import MAX_FRAME, VERSION, ProtocolError, agent_paths, recv_frame, send_frame
from mi_notebook.agent.server import AgentServer
from mi_notebook.identity import Identity

READ_TIMEOUT = 2.0  # the agents' frame deadline: long enough for a loaded machine to send a whole frame
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server():
    with agent_dir() as directory:
        agent = AgentServer(directory, idle_timeout=60, read_timeout=READ_TIMEOUT, heartbeat=0.05).start()
        yield agent
        agent.stop()


def raw(server, payload: bytes, *, close_write: bool = True) -> tuple[bytes, float]:
    """Send ``payload``, then read whatever comes back until the agent closes; (bytes, seconds)."""
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(READ_TIMEOUT * 10)
        sock.connect(server.paths.socket)
        try:
            if payload:
                sock.sendall(payload)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):  # the agent closed first (another uid: at once)
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # closed with bytes of ours unread (past a frame, or never read at all)
            pass
    return b"".join(chunks), time.monotonic() - started


def decode(answer: bytes) -> dict:
    (size,) = struct.unpack(">I", answer[:4])
    assert size == len(answer) - 4
    return json.loads(answer[4:])


def still_serving(server) -> None:
    assert AgentClient(server.paths.directory, start=False).ping()["pid"] == os.getpid()


@FUZZ
@given(st.binary(max_size=600))
def test_garbage_gets_an_error_or_nothing_quickly_and_the_agent_goes_on(server, payload):
    answer, seconds = raw(server, payload)
    assert seconds < READ_TIMEOUT * 5
    if answer:
        reply = decode(answer)
        assert reply["v"] == VERSION
        if reply["ok"] is not True:
            assert reply["error"]["type"] in ("ProtocolError", "VersionMismatch", "ValueError")
    still_serving(server)


@FUZZ
@given(st.dictionaries(st.sampled_from(["v", "op", "upstream", "resource", "identity", "force_refresh", "x"]),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30)
                                    | st.sampled_from(["token", "ping", "status", "arm", "vm"]),
                                    lambda inner: st.lists(inner, max_size=3)
                                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8),
                       max_size=7))
def test_random_requests_get_an_answer_and_the_agent_goes_on(server, request):
    if request.get("op") == "stop":
        request["op"] = "ping"
    body = json.dumps(request).encode()
    answer, seconds = raw(server, struct.pack(">I", len(body)) + body)
    assert seconds < READ_TIMEOUT * 5
    reply = decode(answer)
    assert reply["v"] == VERSION and (reply["ok"] is True or reply["error"]["message"])
    still_serving(server)


def test_a_huge_frame_is_refused_before_its_body_is_read(server):
    answer, seconds = raw(server, struct.pack(">I", MAX_FRAME + 1), close_write=False)
    assert "over the 262144-byte limit" in decode(answer)["error"]["message"] and seconds < READ_TIMEOUT * 2
    still_serving(server)


def test_a_frame_of_the_largest_size_is_read_and_answered(server):
    body = json.dumps({"v": VERSION, "op": "ping", "pad": "x" * (MAX_FRAME - 40)}).encode()
    assert len(body) <= MAX_FRAME
    answer, _ = raw(server, struct.pack(">I", len(body)) + body)
    assert decode(answer)["ok"] is True


def test_slow_clients_are_cut_off_and_do_not_hold_up_the_others(server):
    slow = []
    for _ in range(20):  # each sends half a header, then nothing
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(server.paths.socket)
        sock.sendall(b"\x00\x00")
        slow.append(sock)
    try:
        still_serving(server)
        for sock in slow:  # the ping was answered while every one of them was still held
            with pytest.raises(BlockingIOError):
                sock.recv(1, socket.MSG_DONTWAIT)
        for sock in slow:  # the agent answers the broken frame and closes, after its read time-out
            sock.settimeout(READ_TIMEOUT * 10)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert "before the deadline" in decode(data)["error"]["message"]
    finally:
        for sock in slow:
            sock.close()


def test_a_trickling_client_is_cut_off_at_the_deadline_for_the_whole_frame():
    body = json.dumps({"v": VERSION, "op": "ping", "pad": "x" * 200}).encode()
    frame = struct.pack(">I", len(body)) + body
    with agent_dir() as directory:
        agent = AgentServer(directory, idle_timeout=60, read_timeout=0.2).start()  # the deadline under test
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(agent.paths.socket)
                sent = 0
                with pytest.raises((BrokenPipeError, ConnectionResetError)):
                    for byte in frame:  # one byte every 40 ms: each read is quick, the whole takes 9 s
                        sock.sendall(bytes([byte]))
                        sent += 1
                        time.sleep(0.04)
                assert sent < len(frame)  # cut off mid-frame, however slow the machine
        finally:
            agent.stop()


@pytest.fixture(scope="module")
def foreign():
    """An agent that sees every peer as another uid."""
    with agent_dir() as directory:
        agent = AgentServer(directory, idle_timeout=60, read_timeout=READ_TIMEOUT,
                            peer=lambda conn: (1, os.getuid() + 1)).start()
        yield agent
        agent.stop()


@FUZZ
@given(st.binary(max_size=200))
def test_another_uid_never_gets_a_byte(foreign, payload):
    refused = foreign.refused
    body = json.dumps({"v": VERSION, "op": "status"}).encode()
    for data in (payload, struct.pack(">I", len(body)) + body):
        answer, _ = raw(foreign, data)
        assert answer == b""
    assert foreign.refused == refused + 2


def test_a_peer_check_that_fails_closes_the_connection():
    def broken(conn):
        raise OSError("no SO_PEERCRED here")

    with agent_dir() as directory:
        agent = AgentServer(directory, idle_timeout=60, read_timeout=READ_TIMEOUT, peer=broken).start()
        try:
            answer, _ = raw(agent, b"")
            assert answer == b""
        finally:
            agent.stop()


# --- the client against a broken agent -------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=300))
def test_a_client_never_hangs_on_a_broken_agent(answer):
    with agent_dir() as directory:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(agent_paths(directory).socket)
        listener.listen()

        def broken_agent():
            conn, _ = listener.accept()
            with conn:
                try:
                    recv_frame(conn, timeout=30)
                    conn.sendall(answer)
                except (OSError, ProtocolError):
                    pass

        thread = threading.Thread(target=broken_agent)
        thread.start()
        client = AgentClient(directory, start=False)
        started = time.monotonic()
        try:
            reply = client.token({"host": "vm", "endpoint": "http://127.0.0.1:9"}, "arm", Identity.system())
        except AgentUnavailable:
            pass
        else:  # garbage that happens to be a well-formed token answer: not reachable from random bytes
            pytest.fail(f"a token from garbage: {reply!r}")
        assert time.monotonic() - started < client.read_timeout  # at the agent's close, not a time-out
        thread.join()
        listener.close()


def test_a_client_refuses_a_frame_too_big_to_send(server):
    a, b = socket.socketpair()
    with a, b, pytest.raises(ProtocolError, match="over the"):
        send_frame(a, {"v": VERSION, "pad": "x" * MAX_FRAME})
