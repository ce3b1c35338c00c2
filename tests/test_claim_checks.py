"""claim_checks.py: signature, audience, identity, exp vs expires_on, validity."""

from __future__ import annotations

from types import SimpleNamespace

import jwt
import pytest
from token_samples import (
    ARM,
    NOW,
    SUB,
    SYSTEM_CLIENT,
    SYSTEM_OID,
    UAMI_ID,
    USER_CLIENT,
    USER_OID,
    VM_ID,
    FakeAccessToken,
    emulator_token,
    make_token,
    payload,
    rsa_key,
    status_of,
)

from mi_notebook.claims import (
    Check,
    check_identity,
    check_validity,
    checks_frame,
    requested_resource,
    token_identity,
    worst,
)
from mi_notebook.claims import (
    decode_unverified as decode,
)
from mi_notebook.identity import Identity


@pytest.fixture(scope="module")
def key():
    return rsa_key(0)


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
        # a well-known resource's scope and slash-less URI are the one resource mi-notebook asks for
        (ARM, "https://management.azure.com/.default", "ok", ["(= 'https://management.azure.com/')"]),
        (ARM, "https://management.azure.com", "ok", ["exactly", "(= 'https://management.azure.com/')"]),
        # a token another client asked for with the other spelling (azure-identity sends the scope minus /.default)
        ("https://management.azure.com", "https://management.azure.com/.default", "warning",
         ["trailing slash", "(= 'https://management.azure.com/')"]),
        # any other resource is sent verbatim, so the slash is a different audience
        ("api://my-api/", "api://my-api", "warning",
         ["trailing slash", "'api://my-api/' ends with '/'", "'api://my-api' does not", "verbatim"]),
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


def test_emulator_single_user_quirk_is_caught():
    from mi_notebook.emulator import Emulator
    from mi_notebook.identity import Identity

    with Emulator(seed=12, system_assigned=True, user_assigned=1, single_user_quirk=True, throttle=False,
                  arm=False) as emu:
        tok = emulator_token(emu, Identity.system())
        check = status_of(decode(tok).checks(), "identity")
        assert check.status == "problem" and "got a token for the user-assigned identity" in check.explanation




# --- the check functions on their own ------------------------------------------------------------------
def test_validity_tolerates_leeway_both_ways():
    window = {"nbf": NOW, "exp": NOW + 60}
    assert check_validity(window, NOW + 61).status == "problem"
    assert check_validity(window, NOW + 61, soon=0, leeway=5).status == "warning"  # within leeway: not expired
    assert check_validity(window, NOW - 3).status == "problem"
    assert check_validity(window, NOW - 3, soon=0, leeway=5).status == "ok"


def test_worst_and_requested_resource():
    assert worst([Check("a", "skipped", "."), Check("b", "problem", "."), Check("c", "ok", ".")]) == "problem"
    assert worst([Check("a", "skipped", ".")]) == "skipped"
    assert requested_resource("vault") == "https://vault.azure.net"
    assert requested_resource("not a resource at all") == "not a resource at all"


def test_identity_check_reads_any_token_view():
    view = SimpleNamespace(identity_kind="user", client_id=USER_CLIENT, object_id=USER_OID, mi_resource_id=UAMI_ID,
                           describe_identity=lambda: "user-assigned identity 'id-app'")
    assert check_identity(view, f"client_id={USER_CLIENT}").status == "ok"
    assert check_identity(view, None).status == "skipped"
    with pytest.raises(ValueError):
        check_identity(view, SimpleNamespace(kind="robot", selector=None))


def test_checks_frame_of_a_list():
    assert checks_frame([Check("a", "ok", "fine")]).values.tolist() == [["a", "ok", "fine"]]
    assert checks_frame([]).columns.tolist() == ["name", "status", "explanation"]


# --- whose token: the label every surface shows ----------------------------------------------------------------
APP_SERVICE = f"/subscriptions/{SUB}/resourcegroups/rg-demo/providers/Microsoft.Web/sites/app-demo"


@pytest.mark.parametrize(("claims", "kind", "label", "name"), [
    ({"appid": SYSTEM_CLIENT, "idtyp": "app", "xms_mirid": VM_ID}, "system-assigned", "system-assigned", "vm-demo"),
    ({"appid": SYSTEM_CLIENT, "xms_mirid": APP_SERVICE}, "system-assigned", "system-assigned", "app-demo"),
    ({"appid": USER_CLIENT, "xms_mirid": UAMI_ID}, "user-assigned", f"user-assigned (client_id={USER_CLIENT})", "id-app"),
    ({"azp": USER_CLIENT, "xms_mirid": UAMI_ID.lower()}, "user-assigned", f"user-assigned (client_id={USER_CLIENT})",
     "id-app"),
    ({"xms_mirid": UAMI_ID}, "user-assigned", "user-assigned 'id-app'", "id-app"),
    ({"idtyp": "user", "upn": "ada@contoso.com", "appid": "c"}, "user", "YOUR OWN user token (ada@contoso.com)",
     "ada@contoso.com"),
    ({"unique_name": "bob@contoso.com", "scp": "user_impersonation"}, "user", "YOUR OWN user token (bob@contoso.com)",
     "bob@contoso.com"),
    ({"idtyp": "user"}, "user", "YOUR OWN user token (the signed-in user)", None),
    ({"idtyp": "app", "appid": "c"}, "app", "application (client_id=c), not a managed identity", None),
    ({"aud": ARM}, "unknown", "identity not shown in the claims", None),
])
def test_token_identity_reads_the_claims(claims, kind, label, name):
    who = token_identity(claims)
    assert (who.kind, who.label, who.name) == (kind, label, name)
    assert who.is_user_token == (kind == "user") and who.to_dict()["kind"] == kind


def test_token_identity_never_takes_what_was_asked(key):
    """A token asked as system-assigned that is a user's, and one asked by client id that is the VM's."""
    user = make_token(key, kind="system")
    person = jwt.encode({"idtyp": "user", "upn": "ada@contoso.com", "exp": NOW + 3600}, key, algorithm="RS256")
    asked_user = FakeAccessToken(user, identity=Identity.user(client_id=SYSTEM_CLIENT))
    assert str(token_identity(asked_user)) == "system-assigned"
    asked_system = FakeAccessToken(person, identity=Identity.system())
    assert token_identity(asked_system).label_for(Identity.system()) == "YOUR OWN user token (ada@contoso.com)"
    assert token_identity(decode(person)).kind == "user" and token_identity(person).kind == "user"


def test_an_opaque_token_says_what_was_asked_and_that_the_claims_cannot_tell():
    from mi_notebook.tokens import AccessToken

    opaque = AccessToken("not-a-jwt", resource=ARM, expires_on=NOW, identity=Identity.user(client_id=USER_CLIENT))
    who = token_identity(opaque)
    assert who.kind == "unknown" and "not a decodable JWT" in (who.evidence or "")
    assert who.label_for(opaque.identity) == f"user-assigned (client_id={USER_CLIENT}) as asked (the token does not say)"
    assert "as asked" in opaque._repr_html_()
