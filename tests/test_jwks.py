"""jwks.py: mi.decode verifies against a given JWKS, a fetched one (loopback only), Entra's URL; the
warning when asked not to verify."""

from __future__ import annotations

import http.server
import json
import re
import threading
import warnings

import jwt
import pytest
from helpers import JsonAnswerHandler, StubServer, canned, http_response
from token_samples import (
    ARM,
    NOW,
    TID,
    FakeAccessToken,
    emulator_token,
    jwks_for,
    make_token,
    payload,
    rsa_key,
    status_of,
)

import mi_notebook as mi
from mi_notebook import jwks as jwks_mod
from mi_notebook.errors import TokenDecodeError, TokenVerificationError
from mi_notebook.jwks import decode


@pytest.fixture(scope="module")
def key():
    return rsa_key(0)


@pytest.fixture(scope="module")
def other_key():
    return rsa_key(1)


def test_unsigned_token_decodes_but_never_verifies(key):
    raw = jwt.encode(payload(), None, algorithm="none")
    claims = decode(raw)
    assert claims.header["alg"] == "none" and not claims.verified
    with pytest.raises(TokenVerificationError, match="not an asymmetric signature algorithm"):
        decode(raw, jwks=jwks_for(key))


def test_verifies_against_a_jwks_dict(key):
    claims = decode(make_token(key), jwks=jwks_for(key), audience=ARM, now=NOW)
    assert claims.verified
    assert "RS256 signature verified with key 'key-1' from the given JWKS" in claims.verification
    assert "audience 'https://management.azure.com/'" in claims.verification
    assert status_of(claims.checks(), "signature").status == "ok"
    assert "signature verified" in claims._repr_html_()


def test_verify_uses_the_access_tokens_resource_as_audience(key):
    tok = FakeAccessToken(make_token(key, aud="https://vault.azure.net"), resource=ARM)
    with pytest.raises(TokenVerificationError, match="audience is wrong: aud is 'https://vault.azure.net'"):
        decode(tok, jwks=jwks_for(key))


def test_wrong_key_fails(key, other_key):
    with pytest.raises(TokenVerificationError, match="does not verify with kid 'key-1'") as info:
        decode(make_token(key), jwks=jwks_for(other_key))
    assert isinstance(info.value, TokenDecodeError) and info.value.__cause__ is None


def test_unknown_kid_fails_and_lists_the_keys(key):
    with pytest.raises(TokenVerificationError, match=r"No key with kid 'key-1' .*its keys: 'rotated'"):
        decode(make_token(key), jwks=jwks_for(key, kid="rotated"))


def test_wrong_audience_fails(key):
    with pytest.raises(TokenVerificationError, match="audience is wrong"):
        decode(make_token(key), jwks=jwks_for(key), audience="https://vault.azure.net")


def test_wrong_issuer_fails(key):
    with pytest.raises(TokenVerificationError, match="issuer is wrong"):
        decode(make_token(key), jwks=jwks_for(key), issuer="https://evil.example/")


def test_expired_token_fails_verification_at_now(key):
    raw = make_token(key, lifetime=60)
    assert decode(raw, jwks=jwks_for(key), now=NOW).verified
    with pytest.raises(TokenVerificationError, match="expired at"):
        decode(raw, jwks=jwks_for(key), now=NOW + 61)
    assert decode(raw, jwks=jwks_for(key), now=NOW + 61, leeway=120).verified


def test_mi_decode_is_this_decode():
    assert mi.decode is decode
    assert mi.TokenVerificationError is TokenVerificationError and issubclass(TokenVerificationError, TokenDecodeError)


def test_verify_true_needs_a_jwks(key):
    with pytest.raises(ValueError, match="needs jwks="):
        decode(make_token(key), verify=True)
    with pytest.raises(ValueError, match="jwks must be"):
        decode(make_token(key), jwks="keys.json")


@pytest.fixture
def fetches(key, monkeypatch):
    """Every URL the JWKS fetch is asked for (answered with ``key``'s JWKS; nothing goes on the wire)."""
    fetched = []

    def fake_fetch(url, timeout, what, transport=None):
        fetched.append((url, timeout))
        return jwks_for(key)

    monkeypatch.setattr(jwks_mod, "_fetch_json", fake_fetch)
    return fetched


def test_entra_keys_url_is_built_from_the_tenant_and_never_contacted_here(key, fetches):
    claims = decode(make_token(key), jwks="entra", now=NOW)
    assert fetches == [(f"https://login.microsoftonline.com/{TID}/discovery/v2.0/keys", (3.05, 10.0))]
    assert claims.verified


def test_entra_needs_the_tokens_tenant(key, fetches):
    with pytest.raises(TokenVerificationError, match="needs the token's tid claim"):
        decode(jwt.encode(payload(tid=None), key, algorithm="RS256", headers={"kid": "key-1"}), jwks="entra")
    assert fetches == []


def test_keys_alone_mean_verify(key, other_key):
    # secure by default: given keys, decode verifies (and fails loudly), without being told to
    assert decode(make_token(key), jwks=jwks_for(key), now=NOW).verified
    with pytest.raises(TokenVerificationError, match="does not verify"):
        decode(make_token(key), jwks=jwks_for(other_key), now=NOW)


@pytest.mark.parametrize("keys", ["dict", "entra", "url"])
def test_verify_false_with_keys_warns_and_ignores_them(key, other_key, fetches, keys):
    # the defect: decode(tok, verify=False, jwks=...) used to drop the keys without a word
    jwks = {"dict": jwks_for(other_key), "entra": "entra", "url": "https://keys.example/keys"}[keys]
    with pytest.warns(UserWarning, match=r"ignored jwks=: the signature is NOT verified \(verify=False was given\)"
                      ) as caught:
        claims = decode(make_token(key), verify=False, jwks=jwks, now=NOW)
    assert not claims.verified and status_of(claims.checks(), "signature").status == "skipped"
    assert fetches == []  # asked not to verify: nothing is fetched
    assert "drop verify=False" in str(caught[0].message)
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_verification_arguments_without_keys_warn(key):
    with pytest.warns(UserWarning, match=r"ignored audience=, issuer=, leeway=: .*\(no jwks= was given\)") as caught:
        claims = decode(make_token(key), audience=ARM, issuer="https://sts.windows.net/x/", leeway=5)
    assert not claims.verified and ".checks(resource=...)" in str(caught[0].message)
    assert caught[0].filename == __file__


def test_no_warning_when_nothing_is_ignored(key):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not decode(make_token(key)).verified
        assert not decode(make_token(key), verify=False, now=NOW).verified
        assert decode(make_token(key), jwks=jwks_for(key), audience=ARM, leeway=5, now=NOW).verified
        assert not mi.decode(make_token(key)).verified


class _JwksHandler(JsonAnswerHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def answer(self) -> tuple[int, bytes]:
        return self.routes.get(self.path, (404, b'{"error": "not found"}'))


@pytest.fixture(scope="module")
def jwks_server(key):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _JwksHandler.routes = {
        "/keys": (200, json.dumps(jwks_for(key)).encode()),
        "/.well-known/openid-configuration": (200, json.dumps({"jwks_uri": f"{base}/keys"}).encode()),
        "/html": (200, b"<html>proxy</html>"),
        "/empty": (200, b"{}"),
    }
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()


def test_verifies_against_a_loopback_jwks_url(key, jwks_server):
    claims = decode(make_token(key), jwks=f"{jwks_server}/keys", audience=ARM, timeout=2, now=NOW)
    assert claims.verified and f"from {jwks_server}/keys" in claims.verification


def test_follows_an_openid_configuration(key, jwks_server):
    claims = decode(make_token(key), jwks=f"{jwks_server}/.well-known/openid-configuration", timeout=2, now=NOW)
    assert claims.verified and f"from {jwks_server}/keys" in claims.verification


@pytest.mark.parametrize("path,fragment", [("/missing", "HTTP 404"), ("/html", "is not JSON"), ("/empty", "is not a JWKS")])
def test_jwks_url_failures(key, jwks_server, path, fragment):
    with pytest.raises(TokenVerificationError, match=re.escape(fragment)):
        decode(make_token(key), jwks=f"{jwks_server}{path}", timeout=2)


def test_redirects_are_not_followed(key):
    with StubServer(canned(b"")) as target:
        redirect = http_response(302, headers={"Location": f"{target.url}/keys"}, reason="Found")
        with StubServer(canned(redirect)) as moved, \
                pytest.raises(TokenVerificationError, match=r"HTTP 302 \(a redirect: not followed\)"):
            decode(make_token(key), jwks=f"{moved.url}/keys", timeout=2)
        assert target.connections == 0


def test_a_loopback_jwks_url_never_goes_through_a_proxy(key, jwks_server, monkeypatch):
    with StubServer(canned(http_response(502))) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert decode(make_token(key), jwks=f"{jwks_server}/keys", timeout=2, now=NOW).verified
    assert proxy.connections == 0


def test_unreachable_jwks_url(key):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TokenVerificationError, match="Could not fetch the JWKS .*connection refused .*ConnectionRefusedError"):
        decode(make_token(key), jwks=f"http://127.0.0.1:{port}/keys", timeout=1)


def test_verification_against_the_real_clock(key):
    import time

    now = int(time.time())
    fresh = make_token(key, now=now)
    assert decode(fresh, jwks=jwks_for(key)).verified
    with pytest.raises(TokenVerificationError, match="expired at"):
        decode(make_token(key, now=now - 90000), jwks=jwks_for(key))


def test_emulator_tokens_decode_verify_and_pass_every_check():
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity

    with Emulator(seed=11, user_assigned=1, throttle=False, arm=False) as emu:
        user = next(i for i in emu.vm.identities if i.kind == "user")
        for identity, selector in ((Identity.system(), {}), (Identity.user(client_id=user.client_id),
                                                             {"client_id": user.client_id})):
            tok = emulator_token(emu, identity, **selector)
            claims = decode(tok, jwks=emu.jwks_url, timeout=5)
            assert claims.verified and claims.unknown_claims == []
            assert {c.name: c.status for c in claims.checks()} == {
                "signature": "ok", "audience": "ok", "identity": "ok", "principal": "ok", "expires_on": "ok", "validity": "ok"}
            assert claims.identity_kind == identity.kind
            assert tok.reveal() not in claims._repr_html_() + str(claims) + claims.to_frame().to_string()




def test_fetching_keys_without_sockets(key):
    from mi_notebook.http import MockTransport, Truncated
    from mi_notebook.jwks import fetch_jwks

    entra = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/discovery/v2.0/keys"
    wire = MockTransport(lambda request: (200, {}, jwks_for(key)))
    document, url = fetch_jwks(entra, transport=wire)
    assert document == jwks_for(key) and url == entra
    (request,) = wire.requests
    assert request.proxies is True and request.timeout == (3.05, 10.0)  # Entra: the environment's proxies
    for answer, fragment in [((302, {"Location": "http://127.0.0.1:1/k"}, b""), "HTTP 302 (a redirect: not followed)"),
                             ((200, {}, b"<html>proxy</html>"), "is not JSON"),
                             ((200, {}, b"[1]"), "not a JSON object"),
                             (Truncated(200, {}, b'{"ke', ConnectionResetError()), "closed before the whole body"),
                             (TimeoutError("read timed out"), "no answer within the read time-out")]:
        with pytest.raises(TokenVerificationError, match=re.escape(fragment)):
            fetch_jwks(entra, transport=MockTransport(lambda request, answer=answer: answer))
