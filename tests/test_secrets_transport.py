"""Where secrets may travel: the Metadata header only to IMDS, the bearer token only to ARM over TLS (or a
loopback endpoint chosen explicitly), and proxies.

Proxies: IMDS must never be reached through a proxy (Microsoft: "unsupported"; a proxy would also see the
Metadata header and the token in the answer), so every IMDS request bypasses HTTP_PROXY / HTTPS_PROXY /
ALL_PROXY. ARM is different: on a real VM a corporate proxy may legitimately be the only way out to
management.azure.com, so ARM requests honour the user's proxy settings (and NO_PROXY), except to a
loopback ARM (the emulator), which is never proxied. Through a proxy the token stays inside the TLS
tunnel: the proxy sees ``CONNECT management.azure.com:443`` and nothing else.
"""

from __future__ import annotations

import pytest
from helpers import StubServer, VirtualClock, canned, header_of, http_response

from bench.reliability.fuzz import run_cli
from bench.reliability.seams import explicit_connection
from mi_notebook import errors
from mi_notebook.arm_client import ArmClient
from mi_notebook.cache import TokenCache
from mi_notebook.emulator import Emulator
from mi_notebook.metadata import instance_metadata
from mi_notebook.retry import RetryPolicy
from mi_notebook.sdk_credential import credential
from mi_notebook.sources.imds import ImdsClient

pytestmark = pytest.mark.timeout(30)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def emu():
    with Emulator(throttle=False, seed="transport-secrets") as e:
        yield e


@pytest.fixture
def conn(emu):
    clock = VirtualClock()
    client = ImdsClient(url=emu.imds_url, clock=clock, timeout=(1.0, 2.0))
    connection = explicit_connection(emu.imds_url, client, "transport secrets")
    yield connection
    client.close()


def arm_client(emu, conn, **kw) -> ArmClient:
    clock = VirtualClock()
    kw.setdefault("url", emu.arm_url)
    kw.setdefault("verify", emu.ca_bundle)
    return ArmClient(connection=conn, clock=clock, retry=RetryPolicy(jitter=0), **kw)


def _exercise(emu, conn) -> None:
    """Tokens, instance metadata, the credential and ARM reads (success and errors)."""
    cache = TokenCache()
    for resource in ("arm", "vault", "graph"):
        conn.get_token(resource, cache=cache)
    instance_metadata(conn.client)
    cred = credential(connection=conn)
    cred.get_token("https://storage.azure.com/.default")
    client = arm_client(emu, conn)
    client.get(emu.vm.resource_group_id)
    client.resource_groups(emu.vm.subscription_id)
    with pytest.raises(errors.ArmError):
        client.get("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/x")
    client.close()


def test_metadata_header_only_to_imds_and_the_token_only_to_arm(emu, conn):
    emu.requests.clear()
    _exercise(emu, conn)
    records = emu.requests.snapshot()
    imds = [r for r in records if r.service == "imds"]
    arm = [r for r in records if r.service == "arm"]
    assert imds and arm
    for r in imds:
        names = {k.lower(): v for k, v in r.headers.items()}
        assert names.get("metadata") == "true", r.path
        assert "authorization" not in names, r.path  # no bearer token ever goes to IMDS
    for r in arm:
        names = {k.lower(): v for k, v in r.headers.items()}
        assert "metadata" not in names, r.path  # the SSRF-mitigation header is for IMDS only
        assert names["authorization"].startswith("Bearer sha256:")  # (the log keeps a fingerprint)
    assert emu.arm_url.startswith("https://")


def test_a_proxy_sees_nothing_of_imds_nor_of_a_loopback_arm(emu, conn, monkeypatch):
    with StubServer(canned(http_response(502, b"proxy", {"Content-Type": "text/plain"}))) as proxy:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        _exercise(emu, conn)
        code, out, err = run_cli(["token", "arm", "--json", "--imds-url", emu.imds_url])
        assert code == 0, err
        assert proxy.connections == 0 and proxy.requests == []


def _connect_proxy(recorded: list[bytes]):
    """A proxy that records the CONNECT request and refuses the tunnel (403)."""

    def handler(sock, request: bytes) -> None:
        recorded.append(request)
        sock.sendall(http_response(403, b"tunnel refused", {"Content-Type": "text/plain"}, "Forbidden"))

    return handler


def _as_real_imds(emu):
    """A client of the emulator's IMDS whose answers lack the emulator's mark, as a real VM's would:
    only such tokens may be sent to Azure's ARM at all."""
    from mi_notebook.http import EMULATOR_HEADER, RequestsTransport

    wire = RequestsTransport()

    def unmarked(request):
        status, headers, body = wire(request)
        return status, {k: v for k, v in headers.items() if k.lower() != EMULATOR_HEADER.lower()}, body

    return ImdsClient(url=emu.imds_url, transport=unmarked, timeout=(1.0, 2.0))


def test_arm_on_a_real_vm_honours_the_users_proxy_and_the_token_stays_in_the_tunnel(emu, monkeypatch):
    conn = explicit_connection(emu.imds_url, _as_real_imds(emu), "a real VM's IMDS, as far as the client can tell")
    conn.cache = TokenCache()  # not the process-wide one, which may hold this endpoint's emulator tokens
    assert not conn.get_token("arm").emulated
    recorded: list[bytes] = []
    with StubServer(_connect_proxy(recorded)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = arm_client(emu, conn, url="https://management.azure.com", verify=True)
        with pytest.raises(errors.EndpointUnreachableError) as info:
            client.get("/subscriptions")
        client.close()
    assert recorded, "ARM did not go through the configured proxy"
    head = recorded[0].decode("latin-1")
    assert head.startswith("CONNECT management.azure.com:443 ")
    assert header_of(recorded[0], "Authorization") is None and "Bearer" not in head
    token = conn.get_token("arm", cache=TokenCache()).reveal()
    assert token[:40] not in b"".join(recorded).decode("latin-1")
    assert token not in str(info.value)


def test_imds_requests_bypass_even_a_session_with_proxies(emu, monkeypatch):
    """A caller-supplied requests.Session with proxies configured still does not proxy IMDS."""
    import requests

    with StubServer(canned(http_response(502, b"proxy"))) as proxy:
        session = requests.Session()
        session.proxies = {"http": proxy.url, "https": proxy.url, "all": proxy.url}
        client = ImdsClient(url=emu.imds_url, session=session, timeout=(1.0, 2.0))
        token = client.request_token("arm")
        doc, _ = client.get_json("/metadata/instance", [("api-version", "2021-02-01")])
        session.close()
        assert token.resource == "https://management.azure.com/" and doc["compute"]
        assert proxy.connections == 0


def test_a_plain_http_arm_that_is_not_loopback_is_refused_before_any_token_is_fetched(emu):
    before = len(emu.requests)
    for url in ("http://management.azure.com", "http://10.0.0.4:8080", "http://169.254.169.254"):
        with pytest.raises(ValueError, match="plain http"):
            ArmClient(url, connection=object())  # type: ignore[arg-type]
    assert len(emu.requests) == before
