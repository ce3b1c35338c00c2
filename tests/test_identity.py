"""Identity: selectors, validation before any request, parsing, and the IMDS query parameters."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mi_notebook.identity import Identity, is_guid, validate_guid, validate_identity_resource_id

GUID = "6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b"
SUB = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
RID = f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app"


def test_system_assigned():
    ident = Identity.system()
    assert ident.kind == "system" and ident.selector is None
    assert ident.query_params() == {}
    assert str(ident) == "system-assigned" and repr(ident) == "Identity.system()"
    assert ident == Identity() and hash(ident) == hash(Identity())


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"client_id": GUID}, ("client_id", GUID)),
        ({"object_id": GUID}, ("object_id", GUID)),
        ({"resource_id": RID}, ("msi_res_id", RID)),
    ],
)
def test_user_assigned_selectors(kwargs, param):
    ident = Identity.user(**kwargs)
    name = next(iter(kwargs))
    assert ident.kind == "user"
    assert ident.selector == (name, kwargs[name])
    assert ident.query_params() == {param[0]: param[1]}
    assert str(ident) == f"user-assigned ({name}={kwargs[name]})"
    assert repr(ident) == f"Identity.user({name}={kwargs[name]!r})"


def test_identity_is_a_frozen_hashable_cache_key():
    a = Identity.user(client_id=GUID.upper())
    b = Identity.user(client_id=f"  {GUID}  ")
    assert a == b and hash(a) == hash(b) and a.client_id == GUID  # GUIDs normalised to lower case
    assert len({a, b, Identity.system(), Identity.user(object_id=GUID)}) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.client_id = "x"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a


def test_resource_id_segment_names_are_case_insensitive():
    variants = [
        RID,
        RID.replace("resourceGroups", "resourcegroups"),
        RID.replace("Microsoft.ManagedIdentity/userAssignedIdentities", "microsoft.managedidentity/USERASSIGNEDIDENTITIES"),
        RID.replace("/subscriptions/", "/SUBSCRIPTIONS/"),
    ]
    for rid in variants:
        assert Identity.user(resource_id=rid).resource_id == rid
    assert Identity.user(resource_id=RID).name == "id-app"


def test_user_needs_exactly_one_selector():
    with pytest.raises(ValueError, match="exactly one of client_id=, object_id= or resource_id="):
        Identity.user()
    with pytest.raises(ValueError, match="client_id and object_id"):
        Identity.user(client_id=GUID, object_id=GUID)
    with pytest.raises(ValueError, match="exactly one"):
        Identity(client_id=GUID, resource_id=RID)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("6f2e0b2a", "8 hex digits"),
        ("6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7", "31 hex digits"),
        ("6f2e0b2a9c3d4e5f8a1b2c3d4e5f6a7b", "dashes are misplaced"),
        ("6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7z", "characters other than hex"),
        ("{6f2e0b2a-9c3d-4e5f-8a1b-2c3d4e5f6a7b}", "braces; pass the bare GUID '6f2e0b2a-"),
        ("my-identity", "not a GUID"),
        (RID, "is a resource id"),
        (123, "must be a string"),
    ],
)
def test_bad_client_ids_are_clear_value_errors(value, message):
    with pytest.raises(ValueError, match=message) as info:
        Identity.user(client_id=value)
    text = str(info.value)
    assert "client_id" in text
    if isinstance(value, str) and value.strip() and not value.startswith("{"):
        assert "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" in text  # shows the expected shape


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        (GUID, "is a GUID, not a resource id"),
        (RID[1:], "add the leading '/'"),
        ("resource-id", "must start with '/subscriptions/'"),
        (RID + "/", "does not have the shape"),
        (RID + "/extra", "does not have the shape"),
        (RID.replace(SUB, "my-subscription"), "subscription 'my-subscription' is not a GUID"),
        (RID.replace("rg-demo", "rg."), "not a valid resource group name"),
        (RID.replace("rg-demo", "rg demo"), "whitespace"),
        (RID.replace("id-app", "a"), "not a valid identity name"),
        (RID.replace("id-app", "-bad"), "not a valid identity name"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
            "names a 'Microsoft.Compute/virtualMachines', not a user-assigned identity",
        ),
        (f"/subscriptions/{SUB}/resourceGroups/rg", "does not have the shape"),
    ],
)
def test_bad_resource_ids_are_clear_value_errors(value, message):
    with pytest.raises(ValueError, match=message) as info:
        Identity.user(resource_id=value)
    assert "userAssignedIdentities/<name>" in str(info.value)


def test_resource_group_names_may_use_the_documented_characters():
    for rg in ("a", "RG_1.(test)-x", "ré-groupe", "x" * 90):
        assert Identity.user(resource_id=RID.replace("rg-demo", rg)).resource_id
    with pytest.raises(ValueError):
        Identity.user(resource_id=RID.replace("rg-demo", "x" * 91))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system", Identity.system()),
        ("System-Assigned", Identity.system()),
        ("", Identity.system()),
        (None, Identity.system()),
        (GUID, Identity(client_id=GUID)),
        (f"client_id={GUID}", Identity(client_id=GUID)),
        (f" CLIENT-ID = {GUID} ", Identity(client_id=GUID)),
        (f"object_id={GUID}", Identity(object_id=GUID)),
        (f"principal_id={GUID}", Identity(object_id=GUID)),
        (f"resource_id={RID}", Identity(resource_id=RID)),
        (f"msi_res_id={RID}", Identity(resource_id=RID)),
        (f"mi_res_id={RID}", Identity(resource_id=RID)),
        (RID, Identity(resource_id=RID)),
    ],
)
def test_parse(text, expected):
    assert Identity.parse(text) == expected


def test_parse_passes_identities_through():
    ident = Identity.user(object_id=GUID)
    assert Identity.parse(ident) is ident


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sytem", "cannot read 'sytem' as an identity"),
        ("name=foo", "unknown identity selector 'name'"),
        ("client_id=", "client_id is empty"),
        ("object_id=nope", "object_id 'nope' is not a GUID"),
        (f"subscriptions/{SUB}/resourceGroups/rg", "add the leading '/'"),
        (42, "text or an Identity"),
    ],
)
def test_parse_errors(text, message):
    with pytest.raises(ValueError, match=message):
        Identity.parse(text)


def test_helpers():
    assert is_guid(GUID) and not is_guid(GUID + "0") and not is_guid(None)
    assert validate_guid(GUID.upper(), "x") == GUID
    assert validate_identity_resource_id(f" {RID} ") == RID
    assert Identity.user(client_id=GUID).to_dict() == {
        "kind": "user", "client_id": GUID, "object_id": None, "resource_id": None,
    }


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_only_ever_raises_value_error(text):
    try:
        ident = Identity.parse(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(ident, Identity)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["client_id", "object_id", "resource_id"]),
    st.one_of(st.text(), st.integers(), st.none(), st.binary()),
)
def test_user_only_ever_raises_value_error(selector, value):
    try:
        Identity.user(**{selector: value})
    except ValueError as exc:
        assert str(exc)


@settings(max_examples=100, deadline=None)
@given(st.uuids())
def test_any_uuid_is_accepted_in_either_case(uuid):
    text = str(uuid)
    assert Identity.user(client_id=text.upper()).client_id == text
    assert Identity.parse(text).query_params() == {"client_id": text}


def test_docstring_examples_run():
    import doctest

    import mi_notebook.identity as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
