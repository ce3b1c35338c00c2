"""AccessToken: the token never shows itself; parsing IMDS's body; expiry from expires_on."""

from __future__ import annotations

import copy
import logging
import pickle
import sys
import types

import jwt
import pytest

from mi_notebook.errors import ManagedIdentityError, UnexpectedResponseError
from mi_notebook.identity import Identity
from mi_notebook.retry import RetryPolicy, simulate
from mi_notebook.tokens import AccessToken, parse_expires_on

ARM = "https://management.azure.com/"
CLIENT_ID = "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"
EXPIRES_ON = 1_795_788_160  # 2026-11-27T14:02:40Z
NOT_BEFORE = EXPIRES_ON - 86_700
FETCHED_AT = NOT_BEFORE + 300


def make_jwt(exp: int = EXPIRES_ON, **extra) -> str:
    payload = {"aud": ARM, "exp": exp, "nbf": NOT_BEFORE, "iat": NOT_BEFORE, "appid": CLIENT_ID, **extra}
    return jwt.encode(payload, "not-a-real-key-but-long-enough-for-hs256", algorithm="HS256")


def imds_body(token: str | None = None, **changes) -> dict:
    body = {
        "access_token": token or make_jwt(),
        "client_id": CLIENT_ID,
        "expires_in": "86317",
        "expires_on": str(EXPIRES_ON),
        "ext_expires_in": "86399",
        "not_before": str(NOT_BEFORE),
        "resource": ARM,
        "token_type": "Bearer",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def parse(body: dict, **kw) -> AccessToken:
    kw.setdefault("identity", Identity.system())
    kw.setdefault("resource_requested", ARM)
    kw.setdefault("host", "vm")
    kw.setdefault("endpoint", "http://127.0.0.1:5000")
    kw.setdefault("fetched_at", FETCHED_AT)
    kw.setdefault("timeline", None)
    return AccessToken.from_response(body, **kw)


@pytest.fixture
def secret() -> str:
    return make_jwt()


@pytest.fixture
def token(secret) -> AccessToken:
    return parse(imds_body(secret))


def assert_hidden(text: str, secret: str) -> None:
    assert secret not in text
    for part in secret.split("."):
        assert part not in text  # not even one segment (header, claims or signature)


# --- redaction ---------------------------------------------------------------------------------------
def test_repr_str_format_and_html_never_show_the_token(token, secret):
    shown = [
        repr(token),
        str(token),
        f"{token}",
        f"{token!r}",
        f"{token:>300}",
        "{}".format(token),  # noqa: UP032 - str.format is a separate path
        "%s %r" % (token, token),  # noqa: UP031 - %-formatting too
        token._repr_html_(),
        repr([token]),
        str({"t": token}),
        repr(token.to_dict()),
    ]
    for text in shown:
        assert_hidden(text, secret)
    assert token.fingerprint in repr(token) and token.fingerprint in str(token)
    assert token.fingerprint in token._repr_html_()
    assert "0x" not in repr(token)


def test_repr_is_stable_and_informative(token):
    assert repr(token) == (
        "AccessToken(resource='https://management.azure.com/', identity=system-assigned, "
        f"expires_on=2026-11-27T14:02:40Z, fingerprint='{token.fingerprint}', host='vm')"
    )
    assert str(token) == (f"Bearer token for {ARM} (system-assigned), expires 2026-11-27T14:02:40Z, "
                          f"{token.fingerprint}, issued by Azure VM (IMDS)")


def test_logging_never_shows_the_token(token, secret, caplog):
    logger = logging.getLogger("mi_notebook.test")
    with caplog.at_level(logging.DEBUG, logger="mi_notebook.test"):
        logger.info("got %s", token)
        logger.info("got %r", token)
        logger.info("tokens %s", [token])
    assert len(caplog.records) == 3
    assert_hidden(caplog.text, secret)


def test_pickling_is_refused_without_showing_the_token(token, secret):
    with pytest.raises(TypeError, match="refuses to be pickled") as info:
        pickle.dumps(token)
    assert_hidden(str(info.value), secret)
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [token]})


def test_copy_works_and_returns_the_same_immutable_token(token):
    assert copy.copy(token) is token
    assert copy.deepcopy({"t": token})["t"] is token


def test_explicit_export_and_reveal(token, secret):
    assert token.reveal() == secret
    assert "token" not in token.to_dict()
    exported = token.to_dict(include_token=True)
    assert exported["token"] == secret
    rebuilt = AccessToken.from_dict(exported)
    assert rebuilt == token and rebuilt.reveal() == secret
    with pytest.raises(ValueError, match="include_token=True"):
        AccessToken.from_dict(token.to_dict())


def test_user_identity_round_trips_through_to_dict(secret):
    ident = Identity.user(client_id=CLIENT_ID)
    tok = parse(imds_body(secret), identity=ident)
    assert AccessToken.from_dict(tok.to_dict(include_token=True)).identity == ident


def test_no_instance_dict_to_leak_through(token, secret):
    with pytest.raises(TypeError):
        vars(token)
    assert_hidden(repr(dir(token)), secret)


def test_constructor_errors_do_not_echo_the_token():
    with pytest.raises(ValueError) as info:
        AccessToken(b"bytes-secret-token", resource=ARM, expires_on=1)  # type: ignore[arg-type]
    assert "bytes-secret-token" not in str(info.value)
    with pytest.raises(ValueError, match="expires_on"):
        AccessToken("t", resource=ARM, expires_on="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="host"):
        AccessToken("t", resource=ARM, expires_on=1, host="disk")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identity"):
        AccessToken("t", resource=ARM, expires_on=1, identity="system")  # type: ignore[arg-type]


def test_token_is_immutable(token):
    with pytest.raises(AttributeError, match="cannot assign to field 'expires_on'"):
        token.expires_on = 0  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete field 'resource'"):
        del token.resource
    with pytest.raises(AttributeError):
        token._secret = "other"  # type: ignore[misc]


# --- from_response --------------------------------------------------------------------------------
def test_from_response_reads_the_documented_body(secret):
    timeline = simulate(RetryPolicy.documented(), [500, 200])
    tok = parse(imds_body(secret), timeline=timeline, identity=Identity.user(client_id=CLIENT_ID))
    assert tok.reveal() == secret
    assert tok.resource == ARM and tok.endpoint == "http://127.0.0.1:5000"
    assert tok.expires_on == EXPIRES_ON and tok.not_before == NOT_BEFORE and tok.expires_in == 86317
    assert tok.token_type == "Bearer" and tok.client_id == CLIENT_ID
    assert tok.fetched_at == FETCHED_AT and tok.host == "vm" and not tok.emulated
    assert tok.timeline is timeline and tok.identity == Identity.user(client_id=CLIENT_ID)
    assert tok.lifetime == 86_700
    assert tok.exp_skew == 0
    assert "2 attempts" in tok._repr_html_()


def test_expiry_comes_from_expires_on_not_expires_in(secret):
    # IMDS serves its cached token: expires_in shrinks, expires_on stays the absolute truth.
    tok = parse(imds_body(secret, expires_in="60"), fetched_at=EXPIRES_ON - 3600)
    assert tok.expires_on == EXPIRES_ON
    assert tok.time_left(now=EXPIRES_ON - 3600) == 3600.0
    assert not tok.is_expired(now=EXPIRES_ON - 3600 + 61)
    assert tok.is_expired(now=EXPIRES_ON)


def test_expires_on_in_the_date_string_form(secret):
    tok = parse(imds_body(secret, expires_on="11/27/2026 2:02:40 PM +00:00"))
    assert tok.expires_on == EXPIRES_ON
    assert parse_expires_on("11/27/2026 14:02:40 +00:00") == EXPIRES_ON
    assert parse_expires_on("11/27/2026 4:02:40 PM +02:00") == EXPIRES_ON
    assert parse_expires_on("11/27/2026 2:02:40 PM") == EXPIRES_ON  # no offset: UTC
    assert parse_expires_on("27/11/2026 2:02:40 PM +00:00") is None
    assert parse_expires_on(f"{EXPIRES_ON}.0") == EXPIRES_ON
    assert parse_expires_on(EXPIRES_ON) == EXPIRES_ON


def test_optional_fields_may_be_missing_or_odd(secret):
    tok = parse({"access_token": secret, "expires_on": str(EXPIRES_ON), "expires_in": "soon", "token_type": ""})
    assert tok.not_before is None and tok.expires_in is None and tok.client_id is None
    assert tok.token_type == "Bearer"
    assert tok.lifetime == EXPIRES_ON - FETCHED_AT


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"access_token": None}, "access_token", "is missing"),
        ({"access_token": ""}, "access_token", "is empty or not a string"),
        ({"access_token": 12345}, "access_token", "is empty or not a string"),
        ({"expires_on": None}, "expires_on", "is missing"),
        ({"expires_on": "tomorrow"}, "expires_on", "got 'tomorrow'"),
        ({"expires_on": ""}, "expires_on", "is not epoch seconds"),
        ({"expires_on": ["1"]}, "expires_on", "got list"),
        ({"expires_on": True}, "expires_on", "got bool"),
        ({"expires_on": "NaN"}, "expires_on", "is not epoch seconds"),
    ],
)
def test_bad_bodies_raise_unexpected_response_naming_the_field(secret, changes, field, problem):
    body = imds_body(secret)
    for key, value in changes.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    timeline = simulate(RetryPolicy.documented(), [200])
    with pytest.raises(UnexpectedResponseError) as info:
        parse(body, timeline=timeline)
    err = info.value
    assert isinstance(err, ManagedIdentityError)
    assert f"'{field}'" in err.message and problem in err.message
    assert err.status == 200 and err.endpoint == "http://127.0.0.1:5000" and err.timeline is timeline
    assert_hidden(str(err), secret)
    assert_hidden(repr(err.to_dict()), secret)


@pytest.mark.parametrize("body", [[], "text", None, 42])
def test_non_object_bodies_raise_unexpected_response(body):
    with pytest.raises(UnexpectedResponseError, match="not an object"):
        parse(body)  # type: ignore[arg-type]


# --- derived facts -------------------------------------------------------------------------------------
def test_exp_skew():
    assert parse(imds_body(make_jwt(exp=EXPIRES_ON + 5))).exp_skew == 5
    assert parse(imds_body("not-a-jwt")).exp_skew is None
    assert parse(imds_body("a.!!!.c")).exp_skew is None
    assert parse(imds_body("eyJhIjoxfQ.WzFd.c")).exp_skew is None  # payload is a list
    assert parse(imds_body(make_jwt(exp="soon"))).exp_skew is None  # type: ignore[arg-type]


def test_fingerprint_tells_tokens_apart(secret):
    a = parse(imds_body(secret))
    b = parse(imds_body(make_jwt(exp=EXPIRES_ON + 1)))
    assert a.fingerprint.startswith("sha256:") and len(a.fingerprint) == len("sha256:") + 8
    assert a.fingerprint != b.fingerprint and a != b
    assert a == parse(imds_body(secret)) and hash(a) == hash(parse(imds_body(secret)))


def test_served_from_cache_keeps_everything_else(token):
    cached = token.served_from_cache()
    assert cached.from_cache and not token.from_cache and cached.host == token.host == "vm"
    assert cached == token and cached.reveal() == token.reveal() and cached.fetched_at == token.fetched_at
    assert cached.served_from_cache() is cached


@pytest.mark.parametrize("host", ["vm", "azureml", "appservice", "arc", "cloudshell"])
@pytest.mark.parametrize("emulated", [False, True])
def test_every_surface_names_who_issued_the_token(secret, host, emulated):
    tok = parse(imds_body(secret), host=host, emulated=emulated)
    for cached in (tok, tok.served_from_cache()):
        assert f"host={host!r}" in repr(cached) and ("emulated=True" in repr(cached)) == emulated
        assert cached.issuer_label in str(cached) and cached.issuer_label in cached._repr_html_()
    if emulated:
        for cached in (tok, tok.served_from_cache()):
            assert all("emulat" in text for text in (repr(cached), str(cached), cached._repr_html_()))
            assert "emulator" in str(cached) and "emulator" in cached._repr_html_()
    else:
        assert "emulator" not in repr(tok) + str(tok) + tok._repr_html_()


def test_claims_are_decoded_lazily_once(monkeypatch, token, secret):
    calls = []
    fake = types.ModuleType("mi_notebook.claims")

    def decode_unverified(raw):
        calls.append(raw)
        return {"decoded": True}

    fake.decode_unverified = decode_unverified  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mi_notebook.claims", fake)
    assert calls == []
    assert token.claims == {"decoded": True}
    assert token.claims == {"decoded": True}
    assert calls == [token]  # decoded from the AccessToken itself, so checks get its context
    assert token.served_from_cache().claims == {"decoded": True} and len(calls) == 1


def test_defaults_for_a_hand_made_token():
    tok = AccessToken("t", resource=ARM, expires_on=EXPIRES_ON)
    assert tok.identity == Identity.system() and tok.host == "vm" and not tok.emulated and tok.timeline is None
    assert tok.fetched_at > 1_600_000_000


def test_docstring_examples_run():
    import doctest

    import mi_notebook.tokens as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
