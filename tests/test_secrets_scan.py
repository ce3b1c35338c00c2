"""No token, nor any 40-character piece of one, in anything a user or a log could see over a full run.

The run (bench/reliability/leaks.py ``collect_secret_surfaces``) covers success for three identities
and three resources, the cache, each error class (404, 429, 500, time-out, dropped connection, HTML,
truncated JSON, bad ``expires_on``, unknown identity, unknown resource, bad input, undecodable JWT), the
Azure SDK credential, ARM (lists, a 403, a 500 on every attempt), claims, frames, charts' text, the
widgets' state (TokenExplorer with a token and with an error, ArmExplorer) and the CLI without
``--show-token``, with a DEBUG handler on the root logger and on urllib3 / requests. The tokens searched
for are read on the emulator's side (every token its issuer handed out), plus ``.reveal()``. Stored
notebook outputs are scanned for JWT-shaped strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.reliability.leaks import JWT_SHAPE, capture_logs, collect_secret_surfaces, find_leaks

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def run(clean_connection_module):
    return collect_secret_surfaces()


@pytest.mark.timeout(60)
def test_no_token_leaks_anywhere_over_a_full_run(run):
    assert len(run.tokens) >= 9  # 3 identities x 3 resources at least
    assert all(JWT_SHAPE.fullmatch(t) for t in run.tokens)
    leaks = run.leaks()
    assert leaks == [], f"{len(leaks)} leaks, e.g. {leaks[:3]}"


@pytest.mark.timeout(60)
def test_the_run_saw_every_surface(run):
    """The scan is not vacuous: each surface produced text, and DEBUG records of the HTTP stack were caught."""
    expected = {"token", "cache", "credential", "arm", "arm-error", "claims", "charts", "cli", "log", "widgets",
                "error:404", "error:429", "error:500", "error:hang", "error:drop", "error:html", "error:truncated",
                "error:bad-expires", "error:identity", "error:resource", "error:bad-input", "error:decode"}
    assert expected <= set(run.texts), expected - set(run.texts)
    assert all(any(t.strip() for t in run.texts[s]) for s in expected)
    logs = "\n".join(run.texts["log"])
    assert "urllib3.connectionpool" in logs and "DEBUG" in logs  # the wire-level records were captured
    cli = "\n".join(run.texts["cli"])
    assert "sha256:" in cli  # the CLI shows the fingerprint instead
    widgets = "\n".join(run.texts["widgets"])
    assert "sha256:" in widgets and "HTTP 500" in widgets  # a token card and an error panel were rendered
    assert run.scanned_chars > 50_000


def test_the_scanner_finds_any_40_character_piece():
    token = "eyJhbGciOi." + "".join(chr(65 + (i * 7) % 26) for i in range(300)) + ".sig"
    piece = token[100:140]
    assert find_leaks({"log": [f"prefix {piece} suffix"]}, [token]) != []
    assert find_leaks({"log": [token]}, [token]) != []
    assert find_leaks({"log": [piece[:-1]]}, [token]) == []  # 39 characters are not a leak
    assert find_leaks({"log": ["nothing here"]}, [token]) == []


def test_a_planted_leak_is_caught_in_a_log_record(run):
    """Control: a logger that did print part of a token would be found by the same scan."""
    import logging

    token = next(iter(run.tokens))
    with capture_logs() as logs:
        logging.getLogger("urllib3.connectionpool").debug("oops %s", token[60:110])
    assert find_leaks({"log": logs.texts}, run.tokens)


# --- stored notebook outputs ---------------------------------------------------------------------------
def _outputs(notebook: Path) -> list[str]:
    doc = json.loads(notebook.read_text(encoding="utf-8"))
    texts = []
    for cell in doc.get("cells", []):
        for out in cell.get("outputs", []):
            texts.append(json.dumps(out))  # text, data (html, plain, widget state), tracebacks
    texts.append(json.dumps(doc.get("metadata", {})))  # widget state is stored here too
    return texts


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_jwt_in_stored_notebook_outputs(notebook):
    texts = _outputs(notebook)
    found = [m.group(0)[:40] for t in texts for m in JWT_SHAPE.finditer(t)]
    assert found == [], f"{notebook.name} stores JWT-shaped strings: {found[:3]}"
    # nor an access_token field with a value other than a redaction
    values = re.findall(r'access_?token\\?"\s*:\s*\\?"([^"\\]{20,})', "\n".join(texts), flags=re.I)
    assert [v for v in values if "redacted" not in v.lower()] == []


def test_the_notebook_scan_would_see_a_token():
    fake = {"cells": [{"outputs": [{"output_type": "stream", "text": ["eyJ0eXAiOiJKV1Qi.eyJhdWQiOiJodHRw.c2lnbmF0dXJl"]}]}]}
    texts = [json.dumps(out) for cell in fake["cells"] for out in cell["outputs"]]
    assert any(JWT_SHAPE.search(t) for t in texts)
    assert NOTEBOOKS, "no notebooks found to scan"
