"""One redaction for every surface (issue 19): the HTTP error bodies, the widgets' panels and the CLI say
the same thing about the same text, and none of them lets a bearer credential through, whatever its
shape: a JWT (whole or cut), an opaque value after ``Bearer``, a JSON credential value."""

from __future__ import annotations

import pytest

from mi_notebook.commands import _common
from mi_notebook.http import redact as http_redact
from mi_notebook.secret import redact_text
from mi_notebook.widgets import panels

OPAQUE = "0paqueT0kenValue_42~x"
CASES = [
    f"Authorization: Bearer {OPAQUE}",                      # http_types.redact used to miss this
    f'{{"access_token": "{OPAQUE}", "expires_on": "1"}}',   # widgets' redact used to miss this
    f'{{"access_token": "{OPAQUE}',                         # cut short on the wire
    "got eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl back",
    "cut eyJhbGciOiJSUzI1NiJ9.eyJhdW",
    f'{{"refresh_token": "{OPAQUE}"}}',
    f'client_assertion={OPAQUE} and {{"client_assertion": "{OPAQUE}"}}',
]


@pytest.mark.parametrize("text", CASES)
def test_every_surface_redacts_the_same_way(text):
    said = {"core": redact_text(text), "http": http_redact(text, limit=10_000, one_line=False),
            "widgets": panels.redact(text)}
    assert len(set(said.values())) == 1, said
    shown = said["core"]
    assert OPAQUE not in shown
    assert "eyJhdWQ" not in shown and "<redacted>" in shown


def test_text_without_credentials_is_left_alone():
    text = "IMDS answered 400: Identity not found (Trace ID: 1)"
    assert redact_text(text) == panels.redact(text) == http_redact(text, limit=10_000) == text


def test_the_cli_prints_a_fixed_placeholder_never_derived_from_the_token():
    assert _common.TOKEN_HIDDEN == "<redacted: use --show-token to print it>"
    assert not hasattr(_common, "redact")  # the old redact(value) ignored its argument: gone
