"""connect(): the endpoint decision (probe aimed at loopback stubs only), get_token caching, disconnect."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import (
    AWS_LIKE,
    GCP_LIKE,
    IMDS_LIKE,
    IMDS_LIKE_NO_SERVER,
    NGINX_404,
    StubServer,
    canned,
    free_port,
    hang,
    logged,
)

from mi_notebook.cache import default_cache
from mi_notebook.connection import Connection, connect, current, disconnect, get_token
from mi_notebook.identity import Identity
from mi_notebook.probe import classify_probe_answer, probe_imds

pytestmark = pytest.mark.usefixtures("clean_connection")

DECISION_BUDGET = 1.5


class FakeEmulator:
    """Stands in for the emulator where only the decision matters (no server needed)."""

    def __init__(self) -> None:
        self.imds_url = "http://127.0.0.1:1"
        self.started = self.stopped = False

    def start(self):
        self.started = True
        return self

    def stop(self):
        self.stopped = True


# --- explicit and forced modes -------------------------------------------------------------------------
def test_explicit_url_argument_is_used_as_is(transport_emu):
    conn = connect(transport_emu.imds_url + "/")
    assert conn.chosen == "given" and conn.host == "vm" and conn.endpoint == transport_emu.imds_url
    assert conn.emulator is None and current() is conn
    assert "because it was passed to connect()" in conn.reason
    assert get_token("arm").emulated  # the emulator marks its answers, whatever the URL


def test_explicit_url_from_the_environment(transport_emu, monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_IMDS_URL", transport_emu.imds_url)
    conn = connect()
    assert conn.chosen == "given" and "MI_NOTEBOOK_IMDS_URL is set" in conn.reason


def test_mode_emulator_starts_the_embedded_emulator_and_disconnect_stops_it():
    conn = connect(mode="emulator")
    emu = conn.emulator
    assert conn.chosen == "emulator" and conn.emulated and emu.running and conn.endpoint == emu.imds_url
    assert conn.reason.startswith(f"Using the embedded emulator at {emu.imds_url} because")
    token = get_token("arm")
    assert emu.verify(token.reveal())["aud"] == "https://management.azure.com/"
    disconnect()
    assert not emu.running and current() is None


def test_mode_from_the_environment_is_emulator_in_the_test_suite():
    conn = connect()  # conftest sets MI_NOTEBOOK_MODE=emulator
    assert conn.chosen == "emulator" and "MI_NOTEBOOK_MODE=emulator" in conn.reason


def test_mode_imds_does_not_probe():
    with StubServer(canned(IMDS_LIKE)) as stub:
        conn = connect(mode="imds", probe_url=stub.url)
        assert (conn.host, conn.chosen) == ("vm", "requested") and conn.endpoint == stub.url and "without probing" in conn.reason
        time.sleep(0.05)
        assert stub.connections == 0


def test_a_new_connection_replaces_and_closes_the_previous_one():
    first = connect(mode="emulator", emulator_factory=FakeEmulator)
    second = connect("http://127.0.0.1:2")
    assert first.closed and first.emulator.stopped and current() is second


@pytest.mark.parametrize("kwargs", [{"mode": "cloud"}, {"imds_url": "http://127.0.0.1:1", "mode": "emulator"},
                                    {"imds_url": "not a url"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        connect(**kwargs)


def test_bad_mode_in_the_environment(monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_MODE", "sometimes")
    with pytest.raises(ValueError, match="MI_NOTEBOOK_MODE"):
        connect()


# --- auto mode: the probe ------------------------------------------------------------------------------
def auto(probe_url: str) -> tuple[Connection, float]:
    started = time.monotonic()
    conn = connect(mode="auto", probe_url=probe_url, emulator_factory=FakeEmulator, environ={},
                   sysfs_root="/nonexistent", himds_path="/nonexistent")
    return conn, time.monotonic() - started


@pytest.mark.parametrize(
    ("name", "server", "why"),
    [
        ("hangs", lambda: StubServer(hang(3.0)), "nothing answered within"),
        ("silent", lambda: StubServer(None, accept=False), "nothing answered within"),
        ("aws", lambda: StubServer(canned(AWS_LIKE)), "AWS-like"),
        ("gcp", lambda: StubServer(canned(GCP_LIKE)), "Google Cloud-like"),
        ("nginx-404", lambda: StubServer(canned(NGINX_404)), "HTTP 404 with an HTML page"),
    ],
)
def test_not_azure_decides_emulator_quickly(name, server, why):
    with server() as stub:
        conn, elapsed = auto(stub.url)
    assert conn.chosen == "emulator" and conn.emulator.started
    assert elapsed <= DECISION_BUDGET, f"{name}: {elapsed:.2f} s"
    assert why in conn.reason and "does not look like an Azure host" in conn.reason
    assert conn.reason.startswith("Using the embedded emulator at http://127.0.0.1:1 because")


def test_nothing_listening_decides_emulator_quickly():
    conn, elapsed = auto(f"http://127.0.0.1:{free_port()}")
    assert conn.chosen == "emulator" and elapsed <= DECISION_BUDGET
    assert "refused" in conn.reason


@pytest.mark.parametrize("answer", [IMDS_LIKE, IMDS_LIKE_NO_SERVER], ids=["server-header", "documented-400"])
def test_imds_like_answer_is_accepted(answer):
    with StubServer(canned(answer)) as stub:
        conn, elapsed = auto(stub.url)
        assert (conn.host, conn.chosen) == ("vm", "probed") and conn.endpoint == stub.url and conn.emulator is None
        assert elapsed <= DECISION_BUDGET and "Using Azure IMDS at" in conn.reason
        (request,) = stub.requests
    # the probe is a token request WITHOUT the Metadata header: IMDS refuses it before issuing anything
    assert b"/metadata/identity/oauth2/token" in request and b"metadata: true" not in request.lower()


def test_the_probe_does_not_go_through_a_proxy(monkeypatch):
    with StubServer(canned(IMDS_LIKE)) as proxy, StubServer(canned(IMDS_LIKE)) as target:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        assert probe_imds(target.url, timeout=1.0).is_imds
        assert proxy.connections == 0


def test_the_real_emulator_is_recognised_as_imds(transport_emu):
    result = probe_imds(transport_emu.imds_url, timeout=1.0)
    assert result.is_imds and result.server.startswith("IMDS/")


@pytest.mark.parametrize(
    ("status", "headers", "body", "is_imds"),
    [
        (400, {"Server": "IMDS/150.870.65.1684"}, b"{}", True),
        (400, {}, b'{"error":"invalid_request","error_description":"Required metadata header not specified"}', True),
        (400, {}, b'{"error":"Bad request. Required metadata header not specified"}', True),
        (404, {"Server": "EC2ws"}, b"<html></html>", False),
        (200, {"Metadata-Flavor": "Google"}, b"computeMetadata/", False),
        (400, {"Server": "IMDS/1", "Metadata-Flavor": "Google"}, b"{}", False),
        (200, {}, b'{"access_token": "x"}', False),
    ],
)
def test_probe_classification(status, headers, body, is_imds):
    assert classify_probe_answer(status, headers, body).is_imds is is_imds


# --- get_token and the cache ---------------------------------------------------------------------------
def test_get_token_caches_per_endpoint_identity_and_resource(transport_emu):
    connect(transport_emu.imds_url)
    first = get_token("arm")
    second = get_token("https://management.azure.com/")
    assert not first.from_cache and second.from_cache and first.emulated and second.emulated
    assert second.reveal() == first.reveal()
    assert len(logged(transport_emu, 1)) == 1

    user = Identity.user(client_id=transport_emu.vm.user_identities[0].client_id)
    assert get_token("arm", identity=user).client_id == user.client_id
    assert get_token("vault").resource == "https://vault.azure.net"
    assert len(logged(transport_emu, 3)) == 3
    keys = {(t.endpoint, t.identity, t.resource) for t in default_cache().tokens()}
    assert (transport_emu.imds_url, Identity.system(), "https://management.azure.com/") in keys


def test_force_refresh_asks_imds_again(transport_emu):
    connect(transport_emu.imds_url)
    get_token("arm")
    again = get_token("arm", force_refresh=True)
    assert not again.from_cache
    assert len(logged(transport_emu, 2)) == 2


def test_get_token_connects_on_first_use():
    assert current() is None
    token = get_token("arm")
    conn = current()
    assert conn is not None and conn.chosen == "emulator" and token.endpoint == conn.endpoint


def test_concurrent_callers_share_one_request(transport_emu):
    connect(transport_emu.imds_url)
    barrier = threading.Barrier(16)
    results = []

    def worker():
        barrier.wait()
        results.append(get_token("storage"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 16 and len({t.reveal() for t in results}) == 1
    assert len(logged(transport_emu, 1)) == 1


def test_bad_input_before_any_request(transport_emu):
    connect(transport_emu.imds_url)
    with pytest.raises(ValueError):
        get_token("not a resource")
    with pytest.raises(ValueError):
        get_token("arm", identity="object_id=nope")
    assert transport_emu.requests.filter(endpoint="token") == []


def test_a_closed_connection_refuses_politely(transport_emu):
    conn = connect(transport_emu.imds_url)
    conn.close()
    with pytest.raises(RuntimeError, match="connect"):
        conn.get_token("arm")
    assert "mi-notebook connection" in conn._repr_html_()
    disconnect()


# --- the probe without sockets, and its own bugs --------------------------------------------------------
def mock(result):
    from mi_notebook.http import MockTransport

    return MockTransport(lambda request: result)


@pytest.mark.parametrize(
    ("result", "why"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (TimeoutError("read timed out"), "nothing answered within 0.5 s"),
        (ConnectionResetError(104, "Connection reset by peer"), "no HTTP answer (the connection was reset)"),
        ((404, {"Server": "EC2ws"}, b"<html>Not Found</html>"), "AWS-like"),
        ((200, {}, b"hello"), "HTTP 200 with a body"),
    ],
)
def test_network_failures_and_foreign_answers_mean_not_imds(result, why):
    probed = probe_imds("http://127.0.0.1:9", timeout=0.5, transport=mock(result))
    assert not probed.is_imds and why in probed.detail


def test_the_probe_request_has_no_metadata_header_and_no_proxy():
    wire = mock((400, {"Server": "IMDS/150.870.65.1684"}, {}))
    assert probe_imds("http://127.0.0.1:9", transport=wire).is_imds
    (request,) = wire.requests
    assert "Metadata" not in request.headers and request.proxies is False
    assert request.url == "http://127.0.0.1:9/metadata/identity/oauth2/token"


def test_a_bug_in_the_probes_classification_is_raised_not_read_as_not_azure(monkeypatch):
    """Before: any exception inside the probe became "not IMDS", so a bug silently chose the emulator."""
    import mi_notebook.probe as probe_module

    def broken(status, headers, body):
        raise TypeError("a bug in the classification")

    monkeypatch.setattr(probe_module, "classify_probe_answer", broken)
    wire = mock((400, {"Server": "IMDS/150.870.65.1684"}, {}))
    with pytest.raises(TypeError, match="a bug in the classification"):
        probe_imds("http://127.0.0.1:9", transport=wire)
    started = []
    with StubServer(canned(IMDS_LIKE)) as stub, pytest.raises(TypeError):
        connect(mode="auto", probe_url=stub.url, emulator_factory=lambda: started.append(1) or FakeEmulator(),
                environ={}, sysfs_root="/nonexistent", himds_path="/nonexistent")
    assert started == [] and current() is None


def test_a_bug_in_the_transport_is_raised_too():
    with pytest.raises(KeyError):
        probe_imds("http://127.0.0.1:9", transport=mock(KeyError("a bug on the wire side")))


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": "1"}, {"probe_url": "169.254.169.254"}])
def test_bad_probe_arguments(kwargs):
    kw = {"probe_url": "http://127.0.0.1:9", **kwargs}
    with pytest.raises(ValueError):
        probe_imds(kw.pop("probe_url"), transport=mock((200, {}, b"")), **kw)
