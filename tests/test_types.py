"""What a type checker (and so an editor) sees of the public names: real signatures, never ``Any``.

The names are loaded lazily at run time (``mi_notebook.__getattr__``, typed ``Any``); the literal
``__all__`` and the ``TYPE_CHECKING`` imports in ``mi_notebook/__init__.py`` are what make them
visible. CI's ``mypy`` step checks the package itself; this checks the view from a user's file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mi_notebook

ROOT = Path(__file__).resolve().parent.parent

# name -> the start and the end of the type mypy reveals for ``mi.<name>``
EXPECTED = {
    "connect": ("def (imds_url: str | None =", "-> mi_notebook.connection.Connection"),
    "get_token": ("def (resource: str =", "-> mi_notebook.tokens.AccessToken"),
    "credential": ("def (identity: mi_notebook.identity.Identity | str | None =",
                   "-> mi_notebook.sdk_credential.ManagedIdentityTokenCredential"),
    "ManagedIdentityError": ("def (message: str,", "-> mi_notebook.errors.ManagedIdentityError"),
}


def test_the_public_names_have_their_real_types_for_a_type_checker(tmp_path):
    names = sorted(mi_notebook.__all__)
    snippet = tmp_path / "user_code.py"
    snippet.write_text("import mi_notebook as mi\n\n" + "".join(f"reveal_type(mi.{n})\n" for n in names))
    # Run from tmp_path (no pyproject: plain --strict), this checkout's package first on mypy's path;
    # errors inside the package are CI's mypy step's business (follow-imports=silent).
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(tmp_path / "mypy-cache"), snippet.name],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110,
    )
    revealed = dict(re.findall(r":(\d+): note: Revealed type is \"(.*)\"", done.stdout))
    by_name = {name: revealed.get(str(line)) for line, name in enumerate(names, start=3)}

    assert done.returncode == 0, done.stdout + done.stderr
    assert [n for n, t in by_name.items() if t is None or t == "Any"] == []
    for name, (start, end) in EXPECTED.items():
        assert by_name[name].startswith(start) and by_name[name].endswith(end), (name, by_name[name])
