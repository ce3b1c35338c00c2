"""glossary.py: a meaning for every claim of a managed-identity token (v1 and v2), as data."""

from __future__ import annotations

import pytest

from mi_notebook.claims import (
    CLAIM_MEANINGS,
    HEADER_MEANINGS,
    TIME_CLAIMS,
    UNKNOWN_CLAIM,
    UNKNOWN_HEADER,
    VALUE_NOTES,
    explain_claim,
    explain_header,
    mirid_kind,
)

# every claim of a v1 managed-identity token (docs/emulator.md's claim rows), and the v2 differences
# (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference)
REFERENCE_V1 = ["aud", "iss", "iat", "nbf", "exp", "aio", "appid", "appidacr", "idp", "idtyp", "oid", "rh",
                "sub", "tid", "uti", "ver", "xms_mirid", "xms_az_rid", "xms_tcdt"]
REFERENCE_V2 = ["azp", "azpacr"]
OTHER_STANDARD = ["amr", "roles", "scp", "wids", "groups", "xms_cc", "xms_idrel", "acr", "name", "upn",
                  "unique_name", "ipaddr", "family_name", "given_name", "preferred_username"]


def test_every_reference_and_standard_claim_has_a_meaning():
    for name in REFERENCE_V1 + REFERENCE_V2 + OTHER_STANDARD:
        assert name in CLAIM_MEANINGS, name
        assert len(CLAIM_MEANINGS[name]) > 10




def test_the_glossary_is_data_about_known_claims():
    assert all(isinstance(text, str) and text for text in {**CLAIM_MEANINGS, **HEADER_MEANINGS}.values())
    assert CLAIM_MEANINGS.keys() >= TIME_CLAIMS
    assert VALUE_NOTES.keys() <= CLAIM_MEANINGS.keys()
    assert all(isinstance(note, str) for notes in VALUE_NOTES.values() for note in notes.values())


@pytest.mark.parametrize(
    "name,value,note",
    [
        ("idtyp", "app", "an application or managed identity"),
        ("idtyp", "user", None),
        ("appidacr", "2", "certificate"),
        ("azpacr", 1, "client secret"),  # numbers read as their text
        ("xms_idrel", "8", "guest"),
        ("xms_mirid", "/x/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id", "a user-assigned identity"),
        ("xms_mirid", "/x/providers/Microsoft.Compute/virtualMachineScaleSets/vmss", "a system-assigned identity"),
        ("xms_mirid", 42, None),
    ],
)
def test_value_notes(name, value, note):
    text = explain_claim(name, value)
    assert text.startswith(CLAIM_MEANINGS[name])
    assert text.endswith(f"(here: {note})") if note else text == CLAIM_MEANINGS[name]


def test_unknown_names():
    assert explain_claim("x_custom", 1) == UNKNOWN_CLAIM
    assert explain_header("zip") == UNKNOWN_HEADER and explain_header("alg") == HEADER_MEANINGS["alg"]


def test_mirid_kind_ignores_case_and_other_resource_types():
    assert mirid_kind("/SUBSCRIPTIONS/S/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM") == "system"
    assert mirid_kind("/subscriptions/s/providers/Microsoft.Web/sites/app") is None
    assert mirid_kind(None) is None
