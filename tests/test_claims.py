"""claims.py: decoding without verifying, the explained table, the views, bad input, no token leaks."""

from __future__ import annotations

import ast
import json
import re
import traceback
from pathlib import Path
from types import SimpleNamespace

import jwt
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from token_samples import (
    ARM,
    NOW,
    SYSTEM_CLIENT,
    USER_CLIENT,
    FakeAccessToken,
    b64,
    make_token,
    payload,
    rsa_key,
    status_of,
)

from mi_notebook.claims import CLAIM_MEANINGS, CLAIMS_COLUMNS, Claims
from mi_notebook.claims import decode_unverified as decode
from mi_notebook.errors import TokenDecodeError
from mi_notebook.timefmt import format_duration, format_relative, format_utc


@pytest.fixture(scope="module")
def key():
    return rsa_key(0)


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


def test_duration_formatting():  # the formatting every claims view uses (timefmt)
    assert [format_duration(s) for s in (0, 59.9, 60, 61, 3600, 86400 + 300, 86399, 3 * 86400 + 7200)] == [
        "0 s", "59 s", "1 min", "1 min 1 s", "1 h", "24 h 5 min", "23 h 59 min", "3 d 2 h"]
    assert format_relative(NOW + 90, NOW) == "in 1 min 30 s"
    assert format_relative(NOW - 7200, NOW) == "2 h ago"
    assert format_utc(NOW) == "2026-01-01 00:00:00 UTC"


def test_access_token_input_supplies_the_context(key):
    raw = make_token(key, kind="user")
    tok = FakeAccessToken(raw, resource=ARM, identity="system", expires_on=NOW + 86400)
    claims = decode(tok, now=NOW)
    statuses = {c.name: c.status for c in claims.checks()}
    assert statuses == {"signature": "skipped", "audience": "ok", "identity": "problem", "principal": "ok",
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


# --- frames -------------------------------------------------------------------------------------------
def test_claims_and_checks_frames_are_built_from_their_own_rows():
    claims = decode(jwt.encode({"aud": ARM, "exp": NOW + 60, "odd": True}, "k" * 32), now=NOW)
    frame = claims.to_frame()
    assert tuple(frame.columns) == CLAIMS_COLUMNS
    assert frame["claim"].tolist() == ["aud", "exp", "odd"]
    assert frame["value"].tolist()[1:] == [f"{NOW + 60} = 2026-01-01 00:01:00 UTC (in 1 min)", "true"]
    assert frame["meaning"].tolist()[2].startswith("unknown claim")
    assert frame.values.tolist() == [list(row) for row in claims.rows()]
    checks = claims.checks_frame(resource="arm")
    assert tuple(checks.columns) == ("name", "status", "explanation")
    assert checks.set_index("name")["status"].to_dict() == {
        "signature": "skipped", "audience": "ok", "identity": "skipped", "principal": "skipped",
        "expires_on": "skipped",
        "validity": "warning"}
    pd.testing.assert_frame_equal(checks, pd.DataFrame([(c.name, c.status, c.explanation)
                                                        for c in claims.checks(resource="arm")],
                                                       columns=["name", "status", "explanation"]))


# --- layers --------------------------------------------------------------------------------------------
PACKAGE = Path(__file__).resolve().parent.parent / "mi_notebook"
CORE = ("claims/__init__", "claims/_decode", "claims/_checks", "claims/_glossary", "html", "timefmt", "errors")
NEVER_FROM_CORE = {"frames", "charts", "widgets", "jwks", "http", "imds", "cli", "commands", "requests"}
HEAVY = {"pandas", "matplotlib", "ipywidgets"}  # inside a function (to_frame) is fine


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """``(module, at module level)`` for every import; this package's modules by their own name."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module.startswith("mi_notebook"):
                module = module.removeprefix("mi_notebook").lstrip(".")
                names = [module.split(".")[0]] if module else [alias.name for alias in node.names]
            else:
                names = [module]
            found += [(name, id(node) in top) for name in names]
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_modules_reach_no_presentation_or_transport(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    imports = _imports(tree)
    assert not {name for name, _ in imports} & NEVER_FROM_CORE, imports
    assert not {name.split(".")[0] for name, top in imports if top} & HEAVY, imports


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
    assert traceback.extract_tb(err.__traceback__)[-1].filename.endswith(("claims/_decode.py", "claims\\_decode.py"))
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_bearer_prefix_and_whitespace_are_tolerated(key):
    raw = make_token(key)
    assert decode(f"  Bearer {raw}\n").payload == decode(raw).payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.binary(), st.text(alphabet="abcXYZ019-_=.", max_size=40),
                 st.lists(st.text(alphabet="eyJhbGciOiJSUzI1NiJ9-_", max_size=20), min_size=3, max_size=3).map(".".join)))
def test_arbitrary_input_gives_only_token_decode_error(value):
    try:
        claims = decode(value)
    except TokenDecodeError as exc:
        assert traceback.extract_tb(exc.__traceback__)[-1].filename.endswith(("claims/_decode.py", "claims\\_decode.py"))
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
    assert [c.name for c in checks] == ["signature", "audience", "identity", "principal", "expires_on", "validity"]


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


def test_a_time_claim_sent_as_a_string_is_explained_as_a_time():
    """Live tokens carry xms_tcdt as a string of epoch seconds (captured); it still reads as a date."""
    claims = Claims({}, {"xms_tcdt": "1289241547", "aud": "api://x"})
    value = dict((name, shown) for name, shown, _ in claims.rows())["xms_tcdt"]
    assert value.startswith("1289241547 = 2010-11-08")


def test_one_name_one_contract_for_decoding():
    """Issue 19: two public ``decode`` functions had different contracts. ``mi.decode`` may verify (with
    keys); the claims package's never does, and its name says so now; the old name warns for a release."""
    import warnings

    import mi_notebook as mi
    from mi_notebook import claims as claims_package

    raw = jwt.encode({"aud": "api://x"}, "k" * 32)
    assert mi.decode is not claims_package.decode_unverified and not claims_package.decode_unverified(raw).verified
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert claims_package.decode(raw).audience == "api://x"
    assert [w.category for w in seen] == [DeprecationWarning] and "decode_unverified" in str(seen[0].message)
