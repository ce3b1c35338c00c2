"""What users read cites what users can open: no path on one machine, no file they do not have.

README.md, docs/*.md, the notebooks' markdown cells and every docstring of the package are read.
A machine path (``/work/...``, ``../shared/...``, a home directory) is refused anywhere outside a URL.
A file named on its own (``hosts.md``) must be one of this repository's; a path into a folder this
repository has (``docs/agent.md``) must exist; a path into folders it does not have (``articles/...md``
after another repository's name) is that repository's business; a relative markdown link must resolve.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mi_notebook"
MACHINE_PATH = re.compile(r"(?<![\w.:/-])(?:/(?:work|root|Users)/|(?:\.\./)+shared/|shared/reference/|[A-Za-z]:\\Users\\)")
FILE_NAME = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w.-]+\.(?:md|ipynb))\b")
URL = re.compile(r"\bhttps?://\S+")
MARKDOWN_LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)")


@functools.cache
def _repo_names() -> frozenset[str]:
    return frozenset(p.name.lower() for p in ROOT.rglob("*") if ".git" not in p.parts and "node_modules" not in p.parts)


def problems(text: str, here: Path, names: frozenset[str] | set[str] | None = None) -> list[str]:
    """What in ``text`` (read in the folder ``here``) points at something a user of the project cannot open."""
    found = [f"a path on one machine: {m.group(0)!r}" for m in MACHINE_PATH.finditer(text)]
    bare = URL.sub(" ", text)
    for match in FILE_NAME.finditer(bare):
        name = match.group(1)
        if "/" not in name:
            known = _repo_names() if names is None else names
            if name.lower() not in known:
                found.append(f"a file this repository does not have: {name!r}")
        elif (ROOT / name).parent.is_dir() and not (ROOT / name).exists():
            found.append(f"a path into this repository that does not exist: {name!r}")
    for link in MARKDOWN_LINK.findall(bare):
        if not ((here / link).exists() or (ROOT / link).exists()):
            found.append(f"a link that does not resolve: {link!r}")
    return found


def _docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    return "\n".join(doc for node in nodes if (doc := ast.get_docstring(node, clean=False)))


def _markdown_cells(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


SOURCES = [
    *[(p, p.read_text(encoding="utf-8")) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]],
    *[(p, _markdown_cells(p)) for p in sorted((ROOT / "notebooks").glob("*.ipynb"))],
    *[(p, _docstrings(p)) for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts],
]


@pytest.mark.parametrize("path, text", SOURCES, ids=[str(p.relative_to(ROOT)) for p, _ in SOURCES])
def test_cites_only_what_users_can_open(path, text):
    assert not problems(text, path.parent), f"{path.relative_to(ROOT)}:\n" + "\n".join(problems(text, path.parent))


@pytest.mark.parametrize("text, complaint", [
    ("| /work/shared/reference/imds-and-arm.md §2 |", "a path on one machine: '/work/'"),
    ("see ../shared/reference/hosts.md", "a path on one machine: '../shared/'"),
    ("the shared imds-and-arm.md reference", "a file this repository does not have: 'imds-and-arm.md'"),
    ("see docs/nowhere.md", "a path into this repository that does not exist: 'docs/nowhere.md'"),
    ("[the agent](nowhere.md)", "a link that does not resolve: 'nowhere.md'"),
    ("written in C:\\Users\\me\\notes.txt", "a path on one machine"),
])
def test_the_check_finds_what_users_cannot_open(text, complaint):
    assert any(p.startswith(complaint) for p in problems(text, ROOT / "docs", {"readme.md", "agent.md"}))


@pytest.mark.parametrize("text", [
    "https://github.com/Azure/azure-sdk-for-python/issues/41962 (reproduced with curl)",
    "MicrosoftDocs/azure-compute-docs `articles/virtual-machines/instance-metadata-service.md`",
    "MicrosoftDocs/entra-docs `docs/identity/managed-identities-azure-resources/how-to-use-vm-token.md`",
    "`specification/imds/data-plane/InstanceMetadataService/` (`readme.md`, `stable/2023-07-01/imds.json`)",
    "docs/agent.md, [the agent](agent.md), https://example.com/work/x.md",
    "the CA at /tmp/mi-notebook-arm-tls-.../ca.pem",
])
def test_the_check_lets_public_and_own_sources_pass(text):
    assert problems(text, ROOT / "docs", {"readme.md", "agent.md"}) == []
