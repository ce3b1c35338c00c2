"""ArmClient against the emulator: the IMDS article's flow, paging, RBAC errors, the 401 refresh, throttling
and 5xx retries in virtual time, and the rules that keep the token safe (https only, no redirects)."""

from __future__ import annotations

import pytest
import requests
from helpers import StubServer, VirtualClock, canned, http_response

import mi_notebook as mi
from mi_notebook import errors
from mi_notebook.arm_client import ArmClient, ArmList, default_api_version
from mi_notebook.emulator import Emulator
from mi_notebook.metadata import instance_metadata
from mi_notebook.retry import RetryPolicy

START = 1_800_000_000.0


@pytest.fixture
def clock():
    """Virtual epoch time shared by the emulator (token times, throttle refill) and the client's sleeps."""
    return VirtualClock(START)


@pytest.fixture
def make_conn(clean_connection, clock):
    def make(**emu_kw):
        emu_kw.setdefault("throttle", False)
        emu_kw.setdefault("clock", clock)
        return mi.connect(mode="emulator", emulator_factory=lambda: Emulator(**emu_kw))

    yield make
    mi.disconnect()


@pytest.fixture
def conn(make_conn):
    return make_conn(seed=3)


def client_for(conn, clock, **kw) -> ArmClient:
    kw.setdefault("clock", clock)
    kw.setdefault("retry", RetryPolicy(jitter=0))
    return ArmClient(connection=conn, **kw)


def user(conn, n: int) -> mi.Identity:
    return mi.Identity.user(client_id=conn.emulator.vm.user_identities[n].client_id)


# ---- the bars --------------------------------------------------------------------------------------
def test_imds_article_flow_token_then_this_vms_record(conn):
    """The article's PowerShell: token for ARM from IMDS, then GET the VM, found through instance metadata."""
    emu = conn.emulator
    token = mi.get_token("arm")
    md = instance_metadata()
    assert (md.subscription_id, md.resource_group, md.vm_name) == (emu.vm.subscription_id, emu.vm.resource_group,
                                                                   emu.vm.name)
    by_hand = requests.get(emu.arm_url + md.resource_id, params={"api-version": "2024-07-01"},
                           headers={"Authorization": f"Bearer {token.reveal()}"}, verify=emu.ca_bundle)
    assert by_hand.status_code == 200
    vm = mi.arm().vm()
    assert vm == by_hand.json()
    assert vm["id"] == md.resource_id and vm["identity"]["principalId"] == token.claims["oid"]
    # one token served both: the client went through the same cache
    assert len(emu.requests.filter(service="imds", endpoint="token")) == 1


def test_paging_over_several_pages(conn, clock):
    emu = conn.emulator
    client = client_for(conn, clock)
    groups = client.resource_groups()
    assert isinstance(groups, ArmList) and groups.pages >= 3 and not groups.truncated
    assert [g["name"] for g in groups][0] == emu.vm.resource_group and len(groups) >= 7
    assert len({g["id"] for g in groups}) == len(groups)
    frame = groups.to_frame()
    assert list(frame.columns) == ["name", "location", "provisioning_state", "tags", "id"]
    assert frame["name"].tolist() == [g["name"] for g in groups]
    calls = emu.requests.filter(service="arm", endpoint="groups")
    assert len(calls) == groups.pages and sum("$skiptoken" in c.query for c in calls) == groups.pages - 1
    limited = client_for(conn, clock, page_limit=2).resource_groups()
    assert limited.truncated and limited.pages == 2 and len(limited) == 6


def test_403_for_the_identity_without_a_role(conn, clock):
    emu = conn.emulator
    nobody = emu.vm.user_identities[1]
    client = client_for(conn, clock, identity=user(conn, 1))
    with pytest.raises(errors.ArmError) as info:
        client.vm()
    err = info.value
    assert (err.status, err.code) == (403, "AuthorizationFailed")
    assert err.action == "Microsoft.Compute/virtualMachines/read" and err.scope == emu.vm.resource_id
    assert err.principal_id == nobody.object_id and err.request_id and err.correlation_id
    text = str(err)
    assert nobody.client_id in text and nobody.object_id in text          # which identity
    assert "Microsoft.Compute/virtualMachines/read" in text and emu.vm.resource_id in text  # what, where
    assert "Reader" in text and "az role assignment create" in text          # what to do
    assert "direct role assignment takes effect within minutes" in text      # and how long: not a day,
    assert "through a group waits for the identity's next token" in text     # unless a group gives the role
    assert len(err.timeline) == 1 and clock.slept == []                      # not retried
    assert isinstance(err, errors.ManagedIdentityError)


def test_expired_token_is_refreshed_once_and_the_call_retried(make_conn, clock):
    conn = make_conn(token_lifetime=600)
    emu = conn.emulator
    client = client_for(conn, clock)
    first = client.token()
    clock.now += 3600  # the token the cache holds has expired for ARM (the emulator's clock)
    vm = client.vm()
    assert vm["id"] == emu.vm.resource_id
    tl = client.last_timeline
    assert [a.status for a in tl] == [401, 200] and tl[0].error == "ExpiredAuthenticationToken"
    assert tl[0].wait == 0 and clock.slept == []
    assert client.token().fingerprint != first.fingerprint
    assert len(emu.requests.filter(service="imds", endpoint="token")) == 2


def test_invalid_token_refreshed_only_once_then_explained(make_conn, clock):
    conn = make_conn()
    client = client_for(conn, clock)
    client.token()
    clock.now -= 3600  # now the cached token (and IMDS's cached one) is not valid yet for ARM
    with pytest.raises(errors.ArmError) as info:
        client.resource_groups()
    err = info.value
    assert (err.status, err.code) == (401, "InvalidAuthenticationToken")
    assert [a.status for a in err.timeline] == [401, 401]
    assert "even after fetching a fresh token" in str(err)


def test_429_waited_out_in_virtual_time(conn, clock):
    emu = conn.emulator
    emu.inject(429, endpoint="arm", retry_after=7)
    client = client_for(conn, clock)
    assert client.get(emu.vm.resource_group_id)["name"] == emu.vm.resource_group
    tl = client.last_timeline
    assert [a.status for a in tl] == [429, 200]
    assert tl[0].wait == 7 and tl[0].wait_reason == "retry-after" and clock.slept == [7]
    assert tl[0].error == "SubscriptionRequestsThrottled"


def test_token_bucket_throttle_waited_out_and_remaining_reported(make_conn, clock):
    conn = make_conn(arm={"throttle": True, "read_capacity": 2, "read_refill": 0.25})
    emu = conn.emulator
    client = client_for(conn, clock)
    client.get(emu.vm.resource_group_id)
    assert client.last_ratelimit_remaining == 1
    client.get(emu.vm.resource_group_id)
    assert client.last_ratelimit_remaining == 0
    client.get(emu.vm.resource_group_id)  # 429, Retry-After 4 (1 token at 0.25/s), then 200
    assert [a.status for a in client.last_timeline] == [429, 200] and clock.slept == [4]


def test_5xx_retried_with_the_policy_backoff(conn, clock):
    emu = conn.emulator
    emu.inject(503, endpoint="arm", count=2)
    client = client_for(conn, clock)
    client.get(emu.vm.resource_group_id)
    assert [a.status for a in client.last_timeline] == [503, 503, 200] and clock.slept == [2, 6]
    emu.inject(500, endpoint="arm", count=None)
    with pytest.raises(errors.ArmError) as info:
        client.get(emu.vm.resource_group_id)
    assert info.value.status == 500 and len(info.value.timeline) == 5
    assert "5 attempts" in str(info.value) and info.value.code == "InternalServerError"
    emu.clear_faults()


def test_not_found_is_not_retried(conn, clock):
    client = client_for(conn, clock)
    with pytest.raises(errors.ArmError) as info:
        client.resources("rg-does-not-exist")
    assert (info.value.status, info.value.code) == (404, "ResourceGroupNotFound")
    assert len(info.value.timeline) == 1


def test_hang_then_success_and_html_not_retried(conn, clock):
    emu = conn.emulator
    emu.inject("hang", endpoint="arm", seconds=3)
    client = client_for(conn, clock, timeout=(2, 0.2))
    client.get(emu.vm.resource_group_id)
    tl = client.last_timeline
    assert tl[0].status is None and "Timeout" in tl[0].exception and tl[1].status == 200
    emu.inject("html", endpoint="arm", status=502)
    emu.inject("html", endpoint="arm")
    with pytest.raises(errors.UnexpectedResponseError) as info:
        client.get(emu.vm.resource_group_id)
    assert [a.status for a in info.value.timeline] == [502, 200]  # a 502 page retried, a 200 page not


def test_identities_for_the_picker(conn, clock):
    emu = conn.emulator
    rows = client_for(conn, clock).identities()
    assert [r["kind"] for r in rows] == ["system", "user", "user"]
    system = rows[0]
    assert system["principal_id"] == emu.vm.system_identity.object_id
    assert system["client_id"] == emu.vm.system_identity.client_id
    for row, ua in zip(rows[1:], emu.vm.user_identities, strict=True):
        assert (row["name"], row["client_id"], row["principal_id"]) == (ua.name, ua.client_id, ua.object_id)
        assert row["identity"] == mi.Identity.user(client_id=ua.client_id)
        assert mi.get_token("arm", identity=row["identity"]).claims["oid"] == ua.object_id
    assert list(rows.to_frame().columns) == ["kind", "name", "client_id", "principal_id", "resource_id"]


def test_subscriptions_resources_and_rbac_views(conn, clock):
    emu = conn.emulator
    subs = client_for(conn, clock).subscriptions()
    assert [s["subscriptionId"] for s in subs] == [emu.vm.subscription_id]
    assert subs.to_frame()["display_name"].iloc[0]
    assert client_for(conn, clock, identity=user(conn, 1)).subscriptions() == []
    rows = client_for(conn, clock).resources()
    frame = rows.to_frame()
    assert list(frame.columns) == ["name", "type", "resource_group", "location", "id"]
    assert set(frame["resource_group"]) == {emu.vm.resource_group} and emu.vm.name in set(frame["name"])
    only_rg = client_for(conn, clock, identity=user(conn, 0)).resource_groups()
    assert [g["name"] for g in only_rg] == [emu.vm.resource_group]


def test_module_factory_uses_the_emulators_url_and_ca(conn):
    client = mi.arm(identity="system")
    assert client.url == conn.emulator.arm_url and client.verify == conn.emulator.ca_bundle
    import mi_notebook.arm_client  # noqa: F401 - the submodule must not shadow the factory

    assert isinstance(mi.arm(), ArmClient)
    assert "Bearer" not in repr(client)


# ---- rules that keep the token safe ----------------------------------------------------------------
def test_token_only_over_https_except_loopback(conn):
    with pytest.raises(ValueError, match="plain http"):
        ArmClient("http://management.azure.com", connection=conn)
    with pytest.raises(ValueError, match="base url"):
        ArmClient("https://management.azure.com/subscriptions", connection=conn)
    assert ArmClient("http://127.0.0.1:9", connection=conn).url == "http://127.0.0.1:9"
    assert ArmClient("http://localhost:9", connection=conn).url == "http://localhost:9"
    client = ArmClient(connection=conn)
    with pytest.raises(ValueError, match="leaves"):
        client.get("https://evil.example.com/subscriptions")
    with pytest.raises(ValueError):
        client.get("subscriptions")
    with pytest.raises(ValueError):
        client.resources("a/b")
    with pytest.raises(ValueError):
        ArmClient(connection=conn, page_limit=0)
    assert not conn.emulator.requests.filter(service="arm")


def test_next_link_to_another_host_is_refused_before_sending(conn, clock):
    with StubServer(None) as other:
        link = f"http://localhost:{other.port}/subscriptions?api-version=1"
        page = ('{"value": [{"name": "a"}], "nextLink": "' + link + '"}').encode()
        with StubServer(canned(http_response(200, page, {"Content-Type": "application/json"}))) as stub:
            client = client_for(conn, clock, url=stub.url)
            with pytest.raises(ValueError, match="leaves"):
                client.list("/subscriptions")
        assert other.connections == 0


def test_redirects_are_not_followed(conn, clock):
    with StubServer(None) as target:
        moved = http_response(302, b"", {"Location": f"http://127.0.0.1:{target.port}/steal"}, "Found")
        with StubServer(canned(moved)) as stub:
            with pytest.raises(errors.UnexpectedResponseError, match="not followed"):
                client_for(conn, clock, url=stub.url).get("/subscriptions")
            assert len(stub.requests) == 1
        assert target.connections == 0


def test_tls_failure_is_explained_not_retried(conn, clock):
    client = client_for(conn, clock, url=conn.emulator.arm_url, verify=True)
    with pytest.raises(errors.EndpointUnreachableError, match="TLS") as info:
        client.get("/subscriptions")
    assert len(info.value.timeline) == 1


def test_errors_never_carry_the_token(conn, clock):
    client = client_for(conn, clock, identity=user(conn, 1))
    secret = client.token().reveal()
    with pytest.raises(errors.ArmError) as info:
        client.resource_groups()
    err = info.value
    assert secret not in str(err) + repr(err) + repr(err.to_dict()) + repr(vars(err))


def test_default_api_versions():
    assert default_api_version("/subscriptions/s/resourceGroups/rg/providers/"
                               "Microsoft.ManagedIdentity/userAssignedIdentities/x") == "2023-01-31"
    assert default_api_version("/subscriptions/s/resourceGroups/rg/resources") == "2021-04-01"


def test_refresh_happens_even_with_a_no_retry_policy(make_conn, clock):
    conn = make_conn(token_lifetime=600)
    client = client_for(conn, clock, retry=RetryPolicy.no_retry())
    client.token()
    clock.now += 3600
    assert client.get(conn.emulator.vm.resource_group_id)["name"] == conn.emulator.vm.resource_group
    tl = client.last_timeline
    assert [(a.number, a.status, a.outcome) for a in tl] == [(1, 401, "retried"), (2, 200, "success")]
    emu = conn.emulator
    emu.inject(503, endpoint="arm")
    with pytest.raises(errors.ArmError) as info:
        client.get(emu.vm.resource_group_id)
    assert [a.status for a in info.value.timeline] == [503]  # and nothing else is retried


def test_instance_metadata_read_once_per_client(make_conn, clock):
    conn = make_conn(throttle=True)  # IMDS allows 5 instance-metadata requests per second
    emu = conn.emulator
    client = client_for(conn, clock)
    for _ in range(4):
        client.vm()
        client.resource_groups()
        client.resources()
    assert len(emu.requests.filter(service="imds", endpoint="instance")) == 1
    assert clock.slept == []


def test_instance_metadata_needs_a_vm_connection_and_says_so_before_any_request():
    from mi_notebook.connection import Connection
    from mi_notebook.sources import CloudShellSource

    url = "http://127.0.0.1:9/oauth2/token"  # nothing listens: a request would fail differently
    conn = Connection(url, "cloudshell", CloudShellSource(url))
    with pytest.raises(errors.UnsupportedHostError, match=r"VM's IMDS.*127\.0\.0\.1:9/oauth2/token \(cloudshell\)"):
        ArmClient("http://127.0.0.1:9/", connection=conn).metadata()


def test_explicit_loopback_imds_needs_to_be_told_where_arm_is(clean_connection, monkeypatch):
    # An emulator in another process (`mi-notebook emulator`) reached by URL: its tokens mean nothing to
    # Azure's ARM, so the client must ask for MI_NOTEBOOK_ARM_URL instead of calling management.azure.com.
    monkeypatch.delenv("MI_NOTEBOOK_ARM_URL", raising=False)
    with Emulator(throttle=False) as emu:
        conn = mi.connect(imds_url=emu.imds_url)
        assert conn.chosen == "given"
        with pytest.raises(ValueError, match="MI_NOTEBOOK_ARM_URL"):
            ArmClient(connection=conn)
        monkeypatch.setenv("MI_NOTEBOOK_ARM_URL", emu.arm_url)
        monkeypatch.setenv("MI_NOTEBOOK_ARM_CA_BUNDLE", emu.ca_bundle)
        with ArmClient(connection=conn) as client:
            assert client.vm()["name"] == emu.vm.name
        mi.disconnect()


# ---- answer parsing without sockets (MockTransport) -------------------------------------------------
class TokenSource:
    """Stands in for a Connection: hands out numbered tokens and counts forced refreshes."""

    endpoint, kind, emulator = "http://127.0.0.1:1", "explicit", None

    def __init__(self) -> None:
        self.forced = 0
        self.issued = 0

    def get_token(self, resource, *, identity=None, force_refresh=False):
        from mi_notebook.tokens import AccessToken

        self.forced += bool(force_refresh)
        self.issued += 1
        return AccessToken(f"eyJ.token-{self.issued}.secret", resource=resource, expires_on=int(START) + 3600)


def mocked_arm(*answers, url="https://127.0.0.1:8443", **kw):
    """An ArmClient in virtual time whose wire answers ``answers`` in turn (the last one repeats)."""
    from mi_notebook.http import MockTransport

    queue = list(answers)
    wire = MockTransport(lambda request: queue.pop(0) if len(queue) > 1 else queue[0])
    kw.setdefault("clock", VirtualClock(START))
    kw.setdefault("retry", RetryPolicy(jitter=0))
    source = TokenSource()
    return ArmClient(url, connection=source, transport=wire, verify=True, **kw), wire, source


def arm_error_body(code, message="said ARM"):
    return {"error": {"code": code, "message": message}}


def test_the_arm_request_on_the_wire():
    client, wire, _ = mocked_arm((200, {"x-ms-ratelimit-remaining-subscription-reads": "249"}, {"value": []}))
    client.list("/subscriptions", params={"$top": "2"})
    (request,) = wire.requests
    assert request.url == "https://127.0.0.1:8443/subscriptions"
    assert request.params == (("api-version", "2022-12-01"), ("$top", "2"))
    assert request.headers["Authorization"] == "Bearer eyJ.token-1.secret" and "secret" not in repr(request)
    assert request.proxies is True and request.verify is True  # the environment's proxies for ARM
    assert client.last_ratelimit_remaining == 249


@pytest.mark.parametrize("raised", ["read", "connect", "body"])
def test_arm_time_outs_are_endpoint_time_outs_not_imds_ones(raised):
    from mi_notebook.http import ConnectTimeout, Truncated

    answer = {"read": TimeoutError("read timed out"), "connect": ConnectTimeout("no connection"),
              "body": Truncated(200, {}, b'{"val', TimeoutError("slow"), timed_out=True)}[raised]
    client, wire, _ = mocked_arm(answer, retry=RetryPolicy(jitter=0, max_attempts=2))
    with pytest.raises(errors.EndpointTimeoutError) as info:
        client.get("/subscriptions")
    assert not isinstance(info.value, errors.ImdsTimeoutError)
    assert len(wire.requests) == 2 and "127.0.0.1:8443" in str(info.value)


def test_paging_and_a_next_link_that_leaves_is_refused_before_sending():
    here = "https://127.0.0.1:8443/subscriptions?api-version=2022-12-01&$skiptoken=2"
    client, wire, _ = mocked_arm((200, {}, {"value": [{"name": "a"}], "nextLink": here}),
                                 (200, {}, {"value": [{"name": "b"}]}))
    rows = client.list("/subscriptions")
    assert [r["name"] for r in rows] == ["a", "b"] and rows.pages == 2
    assert wire.requests[1].params == (("api-version", "2022-12-01"), ("$skiptoken", "2"))
    away = "https://127.0.0.1:9443/subscriptions?$skiptoken=2"
    client, wire, _ = mocked_arm((200, {}, {"value": [], "nextLink": away}))
    with pytest.raises(ValueError, match="leaves"):
        client.list("/subscriptions")
    assert len(wire.requests) == 1


def test_a_stale_token_is_refreshed_once():
    expired = (401, {}, arm_error_body("ExpiredAuthenticationToken"))
    client, wire, source = mocked_arm(expired, (200, {}, {"name": "rg"}))
    assert client.get("/subscriptions/s/resourceGroups/rg")["name"] == "rg"
    sent = [r.headers["Authorization"] for r in wire.requests]
    assert source.forced == 1 and sent == ["Bearer eyJ.token-1.secret", "Bearer eyJ.token-2.secret"]
    client, wire, source = mocked_arm(expired)
    with pytest.raises(errors.ArmError, match="even after fetching a fresh token") as info:
        client.get("/subscriptions/s/resourceGroups/rg")
    assert source.forced == 1 and len(wire.requests) == 2 and info.value.code == "ExpiredAuthenticationToken"


def test_a_403_names_who_what_and_where():
    message = ("The client 'o' with object id 'o' does not have authorization to perform action "
               "'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '/subscriptions/s' or the scope "
               "is invalid.")
    client, wire, _ = mocked_arm((403, {"x-ms-correlation-request-id": "corr-1"},
                                  arm_error_body("AuthorizationFailed", message)))
    with pytest.raises(errors.ArmError) as info:
        client.list("/subscriptions/s/resourcegroups")
    err = info.value
    assert (err.status, err.action, err.scope, err.correlation_id) == (
        403, "Microsoft.Resources/subscriptions/resourceGroups/read", "/subscriptions/s", "corr-1")
    assert "Reader" in str(err) and len(wire.requests) == 1 and "secret" not in str(err)


@pytest.mark.parametrize(
    ("answer", "attempts", "error", "fragment"),
    [
        ((404, {}, arm_error_body("ResourceGroupNotFound")), 1, errors.ArmError, "found nothing"),
        ((503, {"Content-Type": "text/plain"}, b"busy"), 5, errors.ArmError, "failed on its side"),
        ((429, {"Retry-After": "7"}, arm_error_body("SubscriptionRequestsThrottled")), 5, errors.ArmError,
         "throttled"),
        ((200, {"Content-Type": "text/html"}, b"<html>portal</html>"), 1, errors.UnexpectedResponseError,
         "an HTML page"),
        ((502, {"Content-Type": "text/html"}, b"<html>gateway</html>"), 5, errors.UnexpectedResponseError,
         "an HTML page"),
        ((200, {}, b"[1, 2]"), 1, errors.UnexpectedResponseError, "not ARM's JSON"),
        ((301, {"Location": "https://127.0.0.1:9/x"}, b""), 1, errors.UnexpectedResponseError, "not followed"),
    ],
)
def test_arm_answers_parsed_and_classified_without_sockets(answer, attempts, error, fragment):
    client, wire, _ = mocked_arm(answer)
    with pytest.raises(error, match=fragment) as info:
        client.get("/subscriptions/s/resourceGroups/rg")
    assert len(wire.requests) == attempts and info.value.status == answer[0]
    if answer[0] == 429:
        assert client.clock.slept == [7.0] * 4


def test_tls_and_dropped_connections_without_sockets():
    from mi_notebook.http import TlsFailure

    client, wire, _ = mocked_arm(TlsFailure("certificate verify failed"))
    with pytest.raises(errors.EndpointUnreachableError, match="TLS verification") as info:
        client.get("/subscriptions")
    assert len(wire.requests) == 1 and not isinstance(info.value, errors.EndpointTimeoutError)
    client, wire, _ = mocked_arm(ConnectionResetError(104, "Connection reset by peer"), (200, {}, {"value": []}))
    assert client.list("/subscriptions") == [] and [a.status for a in client.last_timeline] == [None, 200]


def test_bad_arm_arguments_are_value_errors_before_any_request():
    client, wire, _ = mocked_arm((200, {}, {}))
    for call in (lambda: ArmClient("https://127.0.0.1:1", connection=TokenSource(), timeout="slow"),
                 lambda: ArmClient("https://127.0.0.1:1", connection=TokenSource(), transport="wire"),
                 lambda: client.list("/subscriptions", kind="tables"),
                 lambda: client.get("/subscriptions", api_version=" ")):
        with pytest.raises(ValueError):
            call()
    assert wire.requests == []


def test_a_non_loopback_arm_goes_through_the_users_proxy_and_the_token_stays_in_the_tunnel(monkeypatch):
    """On a real VM a corporate proxy may be the only way out to ARM: it sees CONNECT, never the token."""
    recorded: list[bytes] = []

    def refuse_tunnel(sock, request: bytes) -> None:
        recorded.append(request)
        sock.sendall(http_response(403, b"tunnel refused", {"Content-Type": "text/plain"}, "Forbidden"))

    with StubServer(refuse_tunnel) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        source = TokenSource()
        client = ArmClient("https://management.azure.com", connection=source, verify=True,
                           clock=VirtualClock(START), retry=RetryPolicy.no_retry(), timeout=(2, 2))
        with pytest.raises(errors.EndpointUnreachableError) as info:
            client.get("/subscriptions")
    assert recorded and recorded[0].startswith(b"CONNECT management.azure.com:443 ")
    assert b"secret" not in b"".join(recorded) and "secret" not in str(info.value)
