"""claims.py: decoding, the explained table, the checks, bad input, JWKS verification, no token leaks."""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
import traceback
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import JsonAnswerHandler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mi_notebook import claims as claims_mod
from mi_notebook.claims import (
    CLAIM_MEANINGS,
    Check,
    Claims,
    TokenVerificationError,
    decode,
    format_duration,
    format_relative,
    format_utc,
)
from mi_notebook.errors import TokenDecodeError

NOW = 1_767_225_600  # 2026-01-01 00:00:00 UTC
TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
VM_ID = f"/subscriptions/{SUB}/resourcegroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-demo"
UAMI_ID = f"/subscriptions/{SUB}/resourcegroups/rg-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app"
SYSTEM_CLIENT, SYSTEM_OID = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
USER_CLIENT, USER_OID = "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444"
ARM = "https://management.azure.com/"

# section 2 of imds-and-arm.md: every claim of a v1 managed-identity token, and the v2 differences
REFERENCE_V1 = ["aud", "iss", "iat", "nbf", "exp", "aio", "appid", "appidacr", "idp", "idtyp", "oid", "rh",
                "sub", "tid", "uti", "ver", "xms_mirid", "xms_az_rid", "xms_tcdt"]
REFERENCE_V2 = ["azp", "azpacr"]
OTHER_STANDARD = ["amr", "roles", "scp", "wids", "groups", "xms_cc", "xms_idrel", "acr", "name", "upn",
                  "unique_name", "ipaddr", "family_name", "given_name", "preferred_username"]


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_for(private_key, kid="key-1"):
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", x5t=kid)
    return {"keys": [jwk]}


def payload(kind="system", version="1.0", now=NOW, lifetime=86400, **changes):
    """An emulator-like managed-identity payload (the shapes of the reference, section 2)."""
    issued = now - 300
    p = {
        "aud": ARM,
        "iss": f"https://sts.windows.net/{TID}/" if version == "1.0" else f"https://login.microsoftonline.com/{TID}/v2.0",
        "iat": issued,
        "nbf": issued,
        "exp": now + lifetime,
        "aio": "k2BgYDi8uvf1",
        "idp": f"https://sts.windows.net/{TID}/",
        "idtyp": "app",
        "rh": "0.AXAAv4j5cvGGr0GRqy180BHbRw",
        "tid": TID,
        "uti": "Q8dTNU2xlEeyXq5Ur7AAAA",
        "ver": version,
        "xms_tcdt": 1289241547,
    }
    client, oid = (SYSTEM_CLIENT, SYSTEM_OID) if kind == "system" else (USER_CLIENT, USER_OID)
    if version == "1.0":
        p.update(appid=client, appidacr="2")
    else:
        p.update(azp=client, azpacr="2")
    p.update(oid=oid, sub=oid)
    if kind == "system":
        p["xms_mirid"] = VM_ID
    else:
        p.update(xms_mirid=UAMI_ID, xms_az_rid=VM_ID)
    for name, value in changes.items():
        if value is None:
            p.pop(name, None)
        else:
            p[name] = value
    return p


def make_token(private_key, kid="key-1", **kw):
    return jwt.encode(payload(**kw), private_key, algorithm="RS256", headers={"kid": kid, "x5t": kid})


class FakeAccessToken:
    """The duck type decode() accepts: anything with reveal() (tokens.AccessToken's shape)."""

    def __init__(self, raw, resource=ARM, identity=None, expires_on=None):
        self._raw = raw
        self.resource = resource
        self.identity = identity
        self.expires_on = expires_on

    def reveal(self):
        return self._raw

    def __repr__(self):
        return "FakeAccessToken(<redacted>)"


def status_of(checks, name):
    return next(c for c in checks if c.name == name)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the explained table -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,version", [("system", "1.0"), ("user", "1.0"), ("system", "2.0"), ("user", "2.0")])
def test_a_row_for_every_claim_with_a_meaning(key, kind, version):
    raw = make_token(key, kind=kind, version=version)
    claims = decode(raw, now=NOW)
    frame = claims.to_frame()
    assert list(frame.columns) == ["claim", "value", "meaning"]
    assert frame["claim"].tolist() == list(payload(kind=kind, version=version))
    assert not any(frame["meaning"].str.startswith("unknown claim")), frame
    assert claims.unknown_claims == []
    assert claims.version == version
    assert claims.client_id == (SYSTEM_CLIENT if kind == "system" else USER_CLIENT)


def test_every_reference_and_standard_claim_has_a_meaning():
    for name in REFERENCE_V1 + REFERENCE_V2 + OTHER_STANDARD:
        assert name in CLAIM_MEANINGS, name
        assert len(CLAIM_MEANINGS[name]) > 10


def test_times_show_utc_and_relative_to_the_injected_now(key):
    claims = decode(make_token(key), now=NOW)
    values = dict(zip(claims.to_frame()["claim"], claims.to_frame()["value"], strict=True))
    assert values["exp"] == f"{NOW + 86400} = 2026-01-02 00:00:00 UTC (in 24 h)"
    assert values["iat"] == f"{NOW - 300} = 2025-12-31 23:55:00 UTC (5 min ago)"
    later = claims.to_frame(now=NOW + 60)
    assert later.loc[later["claim"] == "exp", "value"].item().endswith("(in 23 h 59 min)")


def test_unknown_claims_are_listed_as_such(key):
    raw = jwt.encode({**payload(), "x_custom": [1, 2], "zz": {"b": 1, "a": 2}}, key, algorithm="RS256")
    claims = decode(raw, now=NOW)
    assert claims.unknown_claims == ["x_custom", "zz"]
    rows = {row[0]: row for row in claims.rows()}
    assert rows["x_custom"][2].startswith("unknown claim")
    assert rows["zz"][1] == '{"a": 2, "b": 1}'  # stable (sorted) JSON
    assert re.search(r"\n  x_custom +\[1, 2\]  \(unknown claim\)\n", str(claims))


def test_value_specific_explanations(key):
    rows = {r[0]: r[2] for r in decode(make_token(key, kind="user"), now=NOW).rows()}
    assert rows["xms_mirid"].endswith("(here: a user-assigned identity)")
    assert rows["appidacr"].endswith("(here: certificate)")
    rows = {r[0]: r[2] for r in decode(make_token(key, kind="system"), now=NOW).rows()}
    assert rows["xms_mirid"].endswith("(here: a system-assigned identity)")


def test_identity_shape_is_read_from_the_token(key):
    system = decode(make_token(key, kind="system"))
    user = decode(make_token(key, kind="user"))
    assert (system.identity_kind, system.identity_name) == ("system", "vm-demo")
    assert (user.identity_kind, user.identity_name) == ("user", "id-app")
    assert user.describe_identity().startswith("user-assigned identity 'id-app', client id " + USER_CLIENT)


def test_duration_formatting():
    assert [format_duration(s) for s in (0, 59.9, 60, 61, 3600, 86400 + 300, 86399, 3 * 86400 + 7200)] == [
        "0 s", "59 s", "1 min", "1 min 1 s", "1 h", "24 h 5 min", "23 h 59 min", "3 d 2 h"]
    assert format_relative(NOW + 90, NOW) == "in 1 min 30 s"
    assert format_relative(NOW - 7200, NOW) == "2 h ago"
    assert format_utc(NOW) == "2026-01-01 00:00:00 UTC"


# --- checks ------------------------------------------------------------------------------------------
def test_check_rejects_unknown_status():
    with pytest.raises(ValueError, match="status must be one of"):
        Check("x", "fine", "y")


def test_signature_check_says_unverified(key):
    check = status_of(decode(make_token(key)).checks(now=NOW), "signature")
    assert check.status == "skipped" and "NOT verified" in check.explanation


@pytest.mark.parametrize(
    "aud,resource,status,fragments",
    [
        (ARM, ARM, "ok", ["exactly"]),
        (ARM, "arm", "ok", ["(= 'https://management.azure.com/')"]),
        # a .default scope becomes the resource without the slash, and aud then differs by it
        (ARM, "https://management.azure.com/.default", "warning", ["(= 'https://management.azure.com')", "trailing slash"]),
        (ARM, "https://management.azure.com", "warning",
         ["trailing slash", "'https://management.azure.com/' ends with '/'", "'https://management.azure.com' does not",
          "verbatim"]),
        ("https://management.azure.com", ARM, "warning",
         ["trailing slash", "'https://management.azure.com/' ends with '/'", "'https://management.azure.com' does not"]),
        ("https://Management.Azure.com/", ARM, "warning", ["letter case"]),
        ("https://vault.azure.net", ARM, "problem", ["not the requested resource", "InvalidAuthenticationTokenAudience"]),
        (["api://a", ARM], ARM, "ok", ["exactly"]),
        (ARM, None, "skipped", ["no requested resource"]),
        (None, ARM, "problem", ["no aud claim"]),
    ],
)
def test_audience_check(key, aud, resource, status, fragments):
    claims = decode(jwt.encode(payload(aud=aud), key, algorithm="RS256"))
    check = status_of(claims.checks(resource=resource, now=NOW), "audience")
    assert check.status == status, check
    for fragment in fragments:
        assert fragment in check.explanation, (fragment, check.explanation)


def test_identity_check_system_assigned(key):
    system = decode(make_token(key, kind="system"))
    check = status_of(system.checks(identity="system", now=NOW), "identity")
    assert check.status == "ok" and "vm-demo" in check.explanation


def test_identity_check_asked_for_system_got_user_assigned(key):
    user = decode(make_token(key, kind="user"))
    check = status_of(user.checks(identity="system", now=NOW), "identity")
    assert check.status == "problem"
    assert "asked for the system-assigned identity but got a token for the user-assigned identity 'id-app'" in check.explanation
    assert f"Identity.user(client_id='{USER_CLIENT}')" in check.explanation


def test_identity_check_unknown_kind_is_a_warning(key):
    bare = decode(jwt.encode(payload(xms_mirid=None, xms_az_rid=None), key, algorithm="RS256"))
    check = status_of(bare.checks(identity="system", now=NOW), "identity")
    assert check.status == "warning" and "cannot show which kind" in check.explanation


@pytest.mark.parametrize(
    "selector,value,status",
    [
        ("client_id", USER_CLIENT, "ok"),
        ("client_id", USER_CLIENT.upper(), "ok"),
        ("client_id", SYSTEM_CLIENT, "problem"),
        ("object_id", USER_OID, "ok"),
        ("object_id", SYSTEM_OID, "problem"),
        ("resource_id", UAMI_ID.replace("resourcegroups", "resourceGroups"), "ok"),
        ("resource_id", UAMI_ID.replace("id-app", "id-other"), "problem"),
    ],
)
@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_identity_check_user_assigned_selectors(key, selector, value, status, version):
    claims = decode(make_token(key, kind="user", version=version))
    identity = SimpleNamespace(kind="user", selector=(selector, value))  # the Identity duck type
    check = status_of(claims.checks(identity=identity, now=NOW), "identity")
    assert check.status == status, check.explanation
    if status == "problem":
        assert f"asked for {selector}={value}" in check.explanation


def test_identity_check_with_the_real_identity_class(key):
    from mi_notebook.identity import Identity

    user = decode(make_token(key, kind="user"))
    assert status_of(user.checks(identity=Identity.user(client_id=USER_CLIENT), now=NOW), "identity").status == "ok"
    assert status_of(user.checks(identity=Identity.system(), now=NOW), "identity").status == "problem"
    assert status_of(user.checks(identity=f"object_id={SYSTEM_OID}", now=NOW), "identity").status == "problem"
    system = decode(make_token(key, kind="system"))
    # the client id of a system-assigned identity, asked for as if user-assigned: say what it is
    check = status_of(system.checks(identity=Identity.user(client_id=SYSTEM_CLIENT), now=NOW), "identity")
    assert check.status == "warning" and "looks system-assigned" in check.explanation


def test_identity_check_skipped_names_the_identity(key):
    check = status_of(decode(make_token(key, kind="user")).checks(now=NOW), "identity")
    assert check.status == "skipped" and "user-assigned identity 'id-app'" in check.explanation


@pytest.mark.parametrize(
    "expires_on,status,fragment",
    [
        (NOW + 86400, "ok", "equals"),
        (str(NOW + 86400), "ok", "equals"),
        (NOW + 86395, "problem", "by +5 s"),
        (NOW + 90000, "problem", "by -3600 s"),
        ("soon", "problem", "not epoch seconds"),
        (None, "skipped", "no expires_on"),
    ],
)
def test_exp_agrees_with_expires_on(key, expires_on, status, fragment):
    check = status_of(decode(make_token(key)).checks(expires_on=expires_on, now=NOW), "expires_on")
    assert check.status == status and fragment in check.explanation, check


@pytest.mark.parametrize(
    "changes,now,status,fragment",
    [
        ({}, NOW, "ok", "(expires in 24 h)"),
        ({}, NOW + 86400 - 120, "warning", "expires soon"),
        ({}, NOW + 86400, "problem", "expired at 2026-01-02 00:00:00 UTC (now)"),
        ({}, NOW + 90000, "problem", "(1 h ago)"),
        ({"nbf": NOW + 600}, NOW, "problem", "not valid yet"),
        ({"exp": None}, NOW, "problem", "no usable exp"),
        ({"exp": "tomorrow"}, NOW, "problem", "no usable exp"),
    ],
)
def test_validity_check(key, changes, now, status, fragment):
    raw = jwt.encode(payload(**changes), key, algorithm="RS256")
    check = status_of(decode(raw).checks(now=now), "validity")
    assert check.status == status and fragment in check.explanation, check


def test_access_token_input_supplies_the_context(key):
    raw = make_token(key, kind="user")
    tok = FakeAccessToken(raw, resource=ARM, identity="system", expires_on=NOW + 86400)
    claims = decode(tok, now=NOW)
    statuses = {c.name: c.status for c in claims.checks()}
    assert statuses == {"signature": "skipped", "audience": "ok", "identity": "problem",
                        "expires_on": "ok", "validity": "ok"}
    assert raw not in repr(vars(claims))
    # explicit arguments win over the recorded context
    assert status_of(claims.checks(identity=SimpleNamespace(kind="user", selector=("client_id", USER_CLIENT))),
                     "identity").status == "ok"


def test_real_access_token(key):
    from mi_notebook import tokens
    from mi_notebook.identity import Identity

    raw = make_token(key)
    tok = tokens.AccessToken(raw, resource=ARM, identity=Identity.system(), expires_on=NOW + 86400,
                             not_before=NOW - 300, fetched_at=NOW)
    claims = decode(tok, now=NOW)
    assert claims.resource == ARM and claims.expires_on == NOW + 86400
    assert claims.fingerprint == tok.fingerprint
    assert all(c.status in ("ok", "skipped") for c in claims.checks())


# --- views -------------------------------------------------------------------------------------------
def test_views_never_show_the_token_and_are_stable(key):
    raw = make_token(key, kind="user")
    header_seg, payload_seg, signature = raw.split(".")
    claims = decode(FakeAccessToken(raw, expires_on=NOW + 86400), now=NOW)
    outputs = {
        "repr": repr(claims),
        "str": str(claims),
        "html": claims._repr_html_(),
        "frame": claims.to_frame().to_string(),
        "frame_html": claims.to_frame().to_html(),
        "checks": repr(claims.checks()),
        "checks_frame": claims.checks_frame().to_string(),
        "vars": repr(vars(claims)),
    }
    for name, text in outputs.items():
        for secret in (raw, payload_seg, signature):
            assert secret not in text, name
        assert not re.search(r"0x[0-9a-f]{6,}", text), name  # no memory addresses
    html = outputs["html"]
    assert " id=" not in html and "<script" not in html
    assert html == decode(FakeAccessToken(raw, expires_on=NOW + 86400), now=NOW)._repr_html_()
    assert "signature not verified" in html and "signature NOT verified" in outputs["str"]
    assert "2026-01-02 00:00:00 UTC (in 24 h)" in html
    assert f"All {len(claims)} claims" in html and "id-app" in html
    assert claims.fingerprint in html and claims.fingerprint in outputs["repr"]


def test_repr_has_no_relative_times(key):
    claims = decode(make_token(key), now=NOW)
    assert repr(claims) == repr(decode(make_token(key), now=NOW + 5000))
    assert " ago" not in repr(claims) and " in " not in repr(claims).replace("signature", "")


def test_html_card_shows_each_check_status(key):
    claims = decode(FakeAccessToken(make_token(key, kind="user"), identity="system", expires_on=NOW + 86400), now=NOW)
    html = claims._repr_html_()
    assert html.count("<tr>") >= 5 + len(claims) + len(claims.header)
    assert ">problem</span>" in html and ">checks: problem</span>" in html
    text = str(claims)
    assert "[problem] identity: asked for the system-assigned identity" in text


# --- bad input ---------------------------------------------------------------------------------------
def _hdr(obj) -> str:
    return b64(json.dumps(obj).encode())


GOOD_HEADER = _hdr({"alg": "RS256", "typ": "JWT"})
GOOD_PAYLOAD = _hdr({"aud": ARM})

BAD_INPUTS = [
    (None, "got None"),
    ("", "empty"),
    ("  \n", "empty"),
    (b"a.b.c", "got bytes"),
    (bytearray(b"a.b.c"), "got bytearray"),
    (12345, "got int"),
    ("abc", "no '.'"),
    ("a.b", "2 dot-separated parts"),
    ("a.b.c.d", "4 dot-separated parts"),
    ("eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", "encrypted token (JWE"),
    (f"!!.{GOOD_PAYLOAD}.sig", "header (part 1 of 3) is not base64url (a character outside the base64url alphabet at position 0)"),
    (f"{GOOD_HEADER}.{GOOD_PAYLOAD}.s*g", "signature (part 3 of 3) is not base64url"),
    (f"{GOOD_HEADER}.abcde.sig", "payload (part 2 of 3) is not base64url (impossible length 5)"),
    (f"{GOOD_HEADER}.e30=x.sig", "misplaced '=' padding"),
    (f"{GOOD_HEADER}.eR.sig", "not canonical base64url"),
    (f".{GOOD_PAYLOAD}.sig", "header (part 1 of 3) is empty"),
    (f"{GOOD_HEADER}..sig", "payload (part 2 of 3) is empty"),
    (f"{b64(b'not json')}.{GOOD_PAYLOAD}.sig", "header (part 1 of 3) is not JSON"),
    (f"{GOOD_HEADER}.{b64(b'{bad')}.sig", "payload (part 2 of 3) is not JSON"),
    (f"{GOOD_HEADER}.{b64(b'[1, 2]')}.sig", "JSON but not an object (it is a list)"),
    (f"{b64(bytes([0xff, 0xfe]))}.{GOOD_PAYLOAD}.sig", "not UTF-8 text"),
    (f"{_hdr({'alg': 'RS256', 'kid': 5})}.{GOOD_PAYLOAD}.sig", "Key ID header parameter must be a string"),
    (f"{GOOD_HEADER}.{GOOD_PAYLOAD}.sig\u00e9", "position 3"),
]


@pytest.mark.parametrize("bad,fragment", BAD_INPUTS, ids=[repr(b)[:30] for b, _ in BAD_INPUTS])
def test_bad_input_gives_a_clear_token_decode_error(bad, fragment):
    with pytest.raises(TokenDecodeError) as info:
        decode(bad)
    err = info.value
    assert isinstance(err, ValueError)
    assert fragment in str(err), str(err)
    assert "What to do:" in str(err)
    if isinstance(bad, str) and len(bad.strip()) > 3:
        assert bad.strip() not in str(err)  # never the token
    # raised by our code, not from deep inside a library, and no chained inner traceback
    assert traceback.extract_tb(err.__traceback__)[-1].filename.endswith("claims.py")
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_bearer_prefix_and_whitespace_are_tolerated(key):
    raw = make_token(key)
    assert decode(f"  Bearer {raw}\n").payload == decode(raw).payload


def test_unsigned_token_decodes_but_never_verifies(key):
    raw = jwt.encode(payload(), None, algorithm="none")
    claims = decode(raw)
    assert claims.header["alg"] == "none" and not claims.verified
    with pytest.raises(TokenVerificationError, match="not an asymmetric signature algorithm"):
        decode(raw, jwks=jwks_for(key))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.binary(), st.text(alphabet="abcXYZ019-_=.", max_size=40),
                 st.lists(st.text(alphabet="eyJhbGciOiJSUzI1NiJ9-_", max_size=20), min_size=3, max_size=3).map(".".join)))
def test_arbitrary_input_gives_only_token_decode_error(value):
    try:
        claims = decode(value)
    except TokenDecodeError as exc:
        assert traceback.extract_tb(exc.__traceback__)[-1].filename.endswith("claims.py")
    else:  # rarely, a valid JWT: then every view must work
        assert isinstance(claims, Claims)
        claims.to_html(now=NOW)


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
_json = st.recursive(_json_scalars, lambda children: st.lists(children, max_size=3)
                     | st.dictionaries(st.text(max_size=5), children, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*CLAIM_MEANINGS, "odd", ""]), _json, max_size=12))
def test_any_payload_renders_in_every_view(claims_payload):
    body = b64(json.dumps(claims_payload).encode())
    claims = decode(f"{GOOD_HEADER}.{body}.")
    assert [r[0] for r in claims.rows(NOW)] == list(claims_payload)
    claims.to_html(now=NOW)
    claims.to_text(now=NOW)
    repr(claims)
    checks = claims.checks(resource=ARM, identity="system", expires_on=NOW, now=NOW)
    assert [c.name for c in checks] == ["signature", "audience", "identity", "expires_on", "validity"]


# --- JWKS verification -------------------------------------------------------------------------------
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


def test_verify_true_needs_a_jwks(key):
    with pytest.raises(ValueError, match="needs jwks="):
        decode(make_token(key), verify=True)
    assert not decode(make_token(key), verify=False, jwks=jwks_for(key)).verified
    with pytest.raises(ValueError, match="jwks must be"):
        decode(make_token(key), jwks="keys.json")


def test_entra_keys_url_is_built_from_the_tenant_and_never_contacted_here(key, monkeypatch):
    fetched = []

    def fake_fetch(url, timeout, what):
        fetched.append((url, timeout))
        return jwks_for(key)

    monkeypatch.setattr(claims_mod, "_fetch_json", fake_fetch)
    claims = decode(make_token(key), jwks="entra", now=NOW)
    assert fetched == [(f"https://login.microsoftonline.com/{TID}/discovery/v2.0/keys", (3.05, 10.0))]
    assert claims.verified


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


def test_unreachable_jwks_url(key):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TokenVerificationError, match="Could not fetch the JWKS .*ConnectionError"):
        decode(make_token(key), jwks=f"http://127.0.0.1:{port}/keys", timeout=1)


def test_verification_against_the_real_clock(key):
    import time

    now = int(time.time())
    fresh = make_token(key, now=now)
    assert decode(fresh, jwks=jwks_for(key)).verified
    with pytest.raises(TokenVerificationError, match="expired at"):
        decode(make_token(key, now=now - 90000), jwks=jwks_for(key))


# --- against the embedded emulator (loopback) ---------------------------------------------------------
def _emulator_token(emu, identity, **selector):
    import requests

    from mi_notebook.tokens import AccessToken

    params = {"api-version": "2018-02-01", "resource": ARM, **selector}
    response = requests.get(f"{emu.imds_url}/metadata/identity/oauth2/token", params=params,
                            headers={"Metadata": "true"}, timeout=5)
    assert response.status_code == 200, response.text
    return AccessToken.from_imds_response(response.json(), identity=identity, resource_requested=ARM,
                                          endpoint=emu.imds_url)


def test_emulator_tokens_decode_verify_and_pass_every_check():
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity

    with Emulator(seed=11, user_assigned=1, throttle=False, arm=False) as emu:
        user = next(i for i in emu.vm.identities if i.kind == "user")
        for identity, selector in ((Identity.system(), {}), (Identity.user(client_id=user.client_id),
                                                             {"client_id": user.client_id})):
            tok = _emulator_token(emu, identity, **selector)
            claims = decode(tok, jwks=emu.jwks_url, timeout=5)
            assert claims.verified and claims.unknown_claims == []
            assert {c.name: c.status for c in claims.checks()} == {
                "signature": "ok", "audience": "ok", "identity": "ok", "expires_on": "ok", "validity": "ok"}
            assert claims.identity_kind == identity.kind
            assert tok.reveal() not in claims._repr_html_() + str(claims) + claims.to_frame().to_string()


def test_emulator_single_user_quirk_is_caught():
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity

    with Emulator(seed=12, system_assigned=True, user_assigned=1, single_user_quirk=True, throttle=False,
                  arm=False) as emu:
        tok = _emulator_token(emu, Identity.system())
        check = status_of(decode(tok).checks(), "identity")
        assert check.status == "problem" and "got a token for the user-assigned identity" in check.explanation


def test_relative_times_in_the_card_only_where_asked(key):
    raw = make_token(key)
    unpinned = decode(raw)  # now = the time of rendering
    text = str(unpinned)
    claims_part = text.split("\nClaims (")[1]
    assert "exp        " in claims_part and " ago" not in claims_part and "(in " not in claims_part
    assert "expired" in text.split("\nChecks:")[0]  # the overview still says how long ago (NOW is past)
    assert "(in " not in unpinned.to_html().split(" claims</summary>")[1]
    pinned = decode(raw, now=NOW)
    assert "2026-01-02 00:00:00 UTC (in 24 h)" in str(pinned).split("\nClaims (")[1]
    assert "(in 24 h)" in unpinned.to_html(now=NOW).split(" claims</summary>")[1]
