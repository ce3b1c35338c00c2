"""What a kernel trusts of its token agent (issue 24, findings 1 and 4).

* A user's own token keeps its marker across the socket, and the kernel re-checks the claims itself:
  with ``share=True`` a Cloud Shell or Azure ML SSO token is still a ``UserAccessToken`` and still raises
  a ``UserTokenWarning`` *in the kernel* (the agent runs in another process here, as in real use).
* The kernel checks who serves the socket (``SO_PEERCRED``: the server's uid must be its own), checks
  the directory again on every new connection (owner, mode 0700, not a symlink), and refuses a parent
  directory that others may write unless it is sticky. Each refusal makes the kernel ask the endpoint
  itself, with a warning, as for a gone agent.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import stat
import tempfile
import warnings

import jwt
import pytest
from test_agent_support import agent_dir

import mi_notebook as mi
from mi_notebook.agent.client import (
    AgentClient,
    AgentTokenInfo,
    AgentUnavailable,
    AgentUnavailableWarning,
    SharedCache,
)
from mi_notebook.agent.protocol import agent_paths, token_from_wire, token_to_wire
from mi_notebook.agent.server import AgentServer
from mi_notebook.cache import CacheKey
from mi_notebook.cli import main as cli_main
from mi_notebook.emulator import Emulator
from mi_notebook.identity import Identity
from mi_notebook.sources import UserAccessToken, UserTokenWarning
from mi_notebook.sources._user import as_user_token
from mi_notebook.tokens import AccessToken

pytestmark = pytest.mark.usefixtures("clean_connection")

FAR = 2**31 - 1


def user_jwt(**claims) -> str:
    return jwt.encode({"aud": "https://management.azure.com/", "exp": FAR, **claims}, "k" * 32, algorithm="HS256")


def recorded(action):
    """``(result, [warning categories])`` of ``action()``, every warning recorded."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = action()
    return result, [w.category for w in seen]


# --- finding 1: the user-token marker across the socket -----------------------------------------------------
@pytest.fixture(scope="module")
def agent_process():
    """A real agent in its own process (a warning it raises lands in its log, never in this process)."""
    with agent_dir() as directory:
        client = AgentClient(directory, idle_timeout=120)
        assert client.ensure_running()
        assert client.ping()["pid"] != os.getpid()
        yield directory


@pytest.mark.parametrize("profile", ["cloudshell", "azureml"])
def test_a_shared_user_token_keeps_its_marker_and_warns_in_the_kernel(profile, agent_process):
    with Emulator(profile=profile, keyvault=False, throttle=False) as emu:
        env = dict(emu.environment)
        if profile == "azureml":
            env["DEFAULT_IDENTITY_CLIENT_ID"] = "clientid"  # a compute without an identity: the SSO user's token
        for share in (False, True):
            conn = mi.connect(environ=env, share=share, agent_dir=agent_process)
            token, seen = recorded(lambda conn=conn: conn.get_token("arm", force_refresh=True))
            assert isinstance(token, UserAccessToken), (share, type(token))
            assert token.is_user_token and "user token" in repr(token) and token.user_token_reason
            assert UserTokenWarning in seen, (share, seen)
            mi.disconnect()
        # another kernel of the user, served from the agent's cache: still marked, still warned
        conn = mi.connect(environ=env, share=True, agent_dir=agent_process)
        token, seen = recorded(lambda: conn.get_token("arm"))
        assert token.from_cache and isinstance(token, UserAccessToken) and UserTokenWarning in seen
        assert conn.cache.served >= 1 and conn.cache.fallbacks == 0  # it did come through the agent
        infos = [t for t in conn.cache.tokens() if isinstance(t, AgentTokenInfo) and t.fingerprint == token.fingerprint]
        assert infos and all(t.is_user_token for t in infos)  # the agent's status says so too
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli_main(["agent", "status", "--dir", agent_process]) == 0
        assert "(USER TOKEN)" in out.getvalue()
        mi.disconnect()


def test_a_managed_identity_token_through_the_agent_stays_plain(agent_process):
    with Emulator(profile="appservice", keyvault=False, throttle=False) as emu:
        conn = mi.connect(environ=emu.environment, share=True, agent_dir=agent_process)
        token, seen = recorded(lambda: conn.get_token("arm", force_refresh=True))
        assert not isinstance(token, UserAccessToken) and UserTokenWarning not in seen
        assert conn.cache.served == 1


def test_the_wire_keeps_the_marker():
    plain = AccessToken(user_jwt(idtyp="user"), resource="api://x", expires_on=FAR, fetched_at=1, host="cloudshell")
    marked = as_user_token(plain, "Cloud Shell hands out the signed-in user's token.")
    again = token_from_wire(token_to_wire(marked))
    assert isinstance(again, UserAccessToken) and again.user_token_reason == marked.user_token_reason
    assert again == marked and again.reveal() == marked.reveal()
    assert not isinstance(token_from_wire(token_to_wire(plain)), UserAccessToken)


class _Told(AgentClient):
    """An agent that hands back ``token`` whatever is asked (it may leave out the marker)."""

    def __init__(self, directory: str, token: AccessToken) -> None:
        super().__init__(directory, start=False)
        self.given = token

    def token(self, upstream, resource, identity, *, force_refresh=False):
        return self.given


def test_the_kernel_rechecks_the_claims_itself(tmp_path):
    unmarked = AccessToken(user_jwt(idtyp="user", upn="ada@contoso.com"), resource="https://management.azure.com/",
                           expires_on=FAR, host="azureml")
    cache = SharedCache(_Told(str(tmp_path), unmarked), {"host": "azureml", "endpoint": "http://127.0.0.1:9"})
    key = CacheKey("http://127.0.0.1:9", Identity.system(), "https://management.azure.com/")
    token, seen = recorded(lambda: cache.get(key, lambda: pytest.fail("asked the endpoint")))
    assert isinstance(token, UserAccessToken) and "idtyp" in token.user_token_reason
    assert seen.count(UserTokenWarning) == 1 and cache.served == 1
    again, seen = recorded(lambda: cache.get(key, lambda: pytest.fail("asked the endpoint")))
    assert again.from_cache and isinstance(again, UserAccessToken) and again.fingerprint == token.fingerprint
    assert seen == [] and cache.served == 1  # this process's own cache: warned once per fetch, as without the agent


def test_a_managed_identity_token_from_the_agent_is_not_flagged(tmp_path):
    mi_token = AccessToken(user_jwt(idtyp="app", xms_mirid="/subscriptions/s/x/userAssignedIdentities/id"),
                           resource="https://management.azure.com/", expires_on=FAR, host="azureml")
    cache = SharedCache(_Told(str(tmp_path), mi_token), {"host": "azureml", "endpoint": "http://127.0.0.1:9"})
    key = CacheKey("http://127.0.0.1:9", Identity.system(), "https://management.azure.com/")
    token, seen = recorded(lambda: cache.get(key, lambda: pytest.fail("asked the endpoint")))
    assert token is mi_token and seen == []


# --- finding 4: the kernel checks its agent ------------------------------------------------------------------
@pytest.fixture
def served():
    with agent_dir() as directory:
        server = AgentServer(directory, idle_timeout=30, read_timeout=0.5, heartbeat=0.05).start()
        try:
            yield server
        finally:
            server.stop()


def test_an_agent_served_by_another_uid_is_refused(served):
    foreign = AgentClient(served.paths.directory, start=False, peer=lambda sock: (4242, os.getuid() + 1))
    with pytest.raises(AgentUnavailable, match=f"uid {os.getuid() + 1}"):
        foreign.ping()
    assert AgentClient(served.paths.directory, start=False).ping()["pid"] == os.getpid()  # the real check passes


def test_a_peer_check_that_fails_is_a_refusal(served):
    def broken(sock: socket.socket) -> tuple[int, int]:
        raise OSError("no SO_PEERCRED here")

    with pytest.raises(AgentUnavailable, match="SO_PEERCRED"):
        AgentClient(served.paths.directory, start=False, peer=broken).ping()


def test_a_refused_agent_means_asking_the_endpoint_with_a_warning(served):
    with Emulator(throttle=False) as emu:
        conn = mi.connect(emu.imds_url, share=True, agent_dir=served.paths.directory)
        conn.cache.agent = AgentClient(served.paths.directory, start=False, peer=lambda sock: (1, os.getuid() + 1))
        token, seen = recorded(lambda: conn.get_token("arm"))
        assert token.emulated and AgentUnavailableWarning in seen
        assert (conn.cache.served, conn.cache.fallbacks) == (0, 1)
        assert served.status()["stats"]["requests_made"] == 0  # nothing was sent to, or asked of, the agent


def test_the_directory_is_checked_again_on_every_new_connection(served):
    directory = served.paths.directory
    client = AgentClient(directory, start=False)
    client.ping()
    client.close()  # no kept connection: the next request opens a new one
    os.chmod(directory, 0o755)
    try:
        with pytest.raises(AgentUnavailable, match="mode 0700"):
            client.ping()
    finally:
        os.chmod(directory, 0o700)
    assert client.ping()["pid"] == os.getpid()


def test_a_directory_swapped_for_a_symlink_is_refused(served):
    directory = served.paths.directory
    client = AgentClient(directory, start=False)
    moved = directory + "-moved"
    os.rename(directory, moved)
    os.symlink(moved, directory)  # the same agent behind it, but the path is no longer the directory checked
    try:
        with pytest.raises(AgentUnavailable, match="symlink|directory owned"):
            client.ping()
    finally:
        os.unlink(directory)
        os.rename(moved, directory)


def test_a_directory_swapped_for_one_others_can_write_is_refused_and_nothing_is_started_there(tmp_path):
    directory = str(tmp_path / "mi-notebook")
    client = AgentClient(directory, start_timeout=1)
    os.rmdir(directory)
    os.mkdir(directory)
    os.chmod(directory, 0o777)  # what the review's other uid put in its place
    with pytest.raises(AgentUnavailable, match="mode 0700"):
        client.token({"host": "vm", "endpoint": "http://127.0.0.1:9"}, "arm", Identity.system())
    assert os.listdir(directory) == []  # no lock file, no agent started into it


def test_the_owner_of_the_directory_must_be_this_user():
    with agent_dir() as directory, pytest.raises(PermissionError, match="owned by uid"):
        AgentClient(directory, start=False, uid=os.getuid() + 1)


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_a_parent_others_can_write_without_the_sticky_bit_is_refused(mode):
    parent = tempfile.mkdtemp(prefix="mia-parent-")
    try:
        os.chmod(parent, mode)
        with pytest.raises(PermissionError, match="sticky"):
            agent_paths(environ={"XDG_RUNTIME_DIR": parent})
        with pytest.raises(PermissionError, match="sticky"):
            agent_paths(os.path.join(parent, "agent"))
        os.chmod(parent, mode | stat.S_ISVTX)  # /tmp's way: others cannot rename what is not theirs
        assert agent_paths(environ={"XDG_RUNTIME_DIR": parent}).directory == os.path.join(parent, "mi-notebook")
    finally:
        os.chmod(parent, 0o700)
        for root, dirs, _ in os.walk(parent, topdown=False):
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(parent)


def test_an_unsafe_parent_means_no_sharing_with_a_warning():
    parent = tempfile.mkdtemp(prefix="mia-parent-")
    os.chmod(parent, 0o777)
    try:
        with Emulator(throttle=False) as emu:
            conn, seen = recorded(lambda: mi.connect(emu.imds_url, share=True, agent_dir=os.path.join(parent, "a")))
            assert AgentUnavailableWarning in seen and not isinstance(conn.cache, SharedCache)
            assert conn.get_token("arm").source == "emulator"
    finally:
        os.chmod(parent, 0o700)
        os.rmdir(parent)
