"""The tutorials' stored outputs: no token anywhere, executed, and comparable by nbval in strict mode.

nbval itself (``pytest`` with the ``addopts`` in pyproject.toml) re-runs every notebook and compares
its outputs; these tests check what nbval cannot: that nothing secret is stored, that the stored
outputs are complete, and that the sanitize file hides what varies but not what matters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jwt
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = NOTEBOOKS / "nbval-sanitize.cfg"
TUTORIALS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
#: a JWT: three base64url segments, the first starting with "eyJ" (base64url for '{"'); the
#: signature may be empty (alg "none")
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "build", "dist", "__pycache__"}


def all_notebooks() -> list[Path]:
    """Every .ipynb in the repository (checkpoints included: they are files someone could commit)."""
    return sorted(p for p in ROOT.rglob("*.ipynb") if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def text_of(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def sanitize_patterns() -> list[tuple[str, str]]:
    # nbval 0.11's own parser: a "regex: " line directly followed by a "replace: " line
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns(SANITIZE.read_text(encoding="utf-8"))


def sanitize(text: str) -> str:
    for regex, replace in sanitize_patterns():
        text = re.sub(regex, replace, text)
    return text


def test_the_seven_tutorials_are_there_in_order():
    numbers = [int(p.name[:2]) for p in TUTORIALS]
    assert numbers[:4] == [1, 2, 3, 4] and 7 in numbers, [p.name for p in TUTORIALS]
    assert numbers == sorted(set(numbers))
    for path in TUTORIALS:
        first = json.loads(path.read_text(encoding="utf-8"))["cells"][0]
        assert first["cell_type"] == "markdown"
        assert text_of(first["source"]).startswith(f"# {int(path.name[:2])}. "), f"{path.name}: title first"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_tutorial_connects_first_with_connect_or_carry_on(path):
    """What mi_notebook/tutorial.py promises: its first code cell connects and, without an identity on
    this machine, says so and carries the lesson on (tests/test_notebooks_real_vm.py runs that case)."""
    first = text_of(code_cells(path)[0]["source"])
    assert "mi.connect_or_carry_on(" in first, f"{path.name}: the first code cell must call mi.connect_or_carry_on()"


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_token_is_stored_in_any_notebook(path):
    text = path.read_text(encoding="utf-8")  # sources, outputs, metadata, widget state: everything
    found = JWT_SHAPE.findall(text)
    assert not found, f"{path.name} stores {len(found)} JWT-shaped string(s), e.g. {found[0][:12]}..."


def test_the_token_scan_would_catch_a_real_token(tmp_path):
    from mi_notebook.emulator import Emulator
    from mi_notebook.sources.imds import ImdsClient

    with Emulator(throttle=False) as emu, ImdsClient(url=emu.imds_url) as client:
        raw = client.request_token("arm").reveal()
    leaked = {"cells": [{"cell_type": "code", "source": "tok", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": f"token: {raw}\n"}]}]}
    assert JWT_SHAPE.search(json.dumps(leaked))
    assert JWT_SHAPE.search(jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256"))
    assert JWT_SHAPE.search(jwt.encode({}, None, algorithm="none"))  # unsigned: empty third segment
    assert not JWT_SHAPE.search("sha256:1a2b3c4d header.payload.signature")


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_cell_was_executed_in_order_without_errors(path):
    cells = code_cells(path)
    counts = [c["execution_count"] for c in cells if text_of(c["source"]).strip()]
    assert None not in counts, f"{path.name}: cells without stored outputs; run notebooks/regenerate.sh"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not executed top to bottom in one kernel"
    for cell in cells:
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{path.name}: stored error {output.get('ename')}"
            assert not (output["output_type"] == "stream" and output["name"] == "stderr"), (
                f"{path.name}: stderr stored: {text_of(output['text'])[:200]}")


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_notebooks_follow_the_nbval_conventions(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in code_cells(path):
        source = text_of(cell["source"])
        # a trailing ';' does not hide a value under nbval: write `_ = ...` instead
        assert not source.rstrip().endswith(";"), f"{path.name}: trailing ';' in {source[-60:]!r}"
        assert "MPLBACKEND" not in source and "matplotlib.use(" not in source
        assert "169.254.169.254" not in source  # mi.connect() decides, never a hard-coded IMDS address
        if ".style" in source:
            assert "set_uuid(" in source, f"{path.name}: a pandas Styler needs set_uuid for stable output"


MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
PNG = b"\x89PNG\r\n\x1a\n"


def pictures(path: Path) -> list[tuple[str, str]]:
    """(description, target) of every image a notebook's markdown shows."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [m for c in cells if c["cell_type"] == "markdown" for m in MARKDOWN_IMAGE.findall(text_of(c["source"]))]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_picture_a_notebook_shows_is_in_the_repository_and_described(path):
    for description, target in pictures(path):
        assert len(description.split()) >= 3, f"{path.name}: say what {target} shows (alt text)"
        assert not target.startswith(("http:", "https:", "/")), f"{path.name}: {target} must be a file of the repo"
        picture = (path.parent / target).resolve()
        assert picture.is_file(), f"{path.name} shows {target}, which is missing"
        assert picture.read_bytes()[:8] == PNG, f"{target} is not a PNG"


MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s#]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_link_to_a_file_of_the_repository_resolves(path):
    """e.g. ../docs/roles.md, the one table of roles every notebook that needs a role points to."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    links = [m.group(1) for c in cells if c["cell_type"] == "markdown" for m in MARKDOWN_LINK.finditer(text_of(c["source"]))]
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    missing = [link for link in local if not (path.parent / link).resolve().exists()]
    assert not missing, f"{path.name} links to missing files: {missing}"


def test_the_notebooks_that_need_a_role_point_to_the_one_table_of_roles():
    for path in TUTORIALS:
        if path.name[:2] in ("01", "05", "06", "07", "09"):
            assert "](../docs/roles.md)" in path.read_text(encoding="utf-8"), path.name


def test_notebook_6_shows_its_widgets_and_no_picture_is_left_unused():
    """A static reader (GitHub) sees notebook 6's widgets only through the pictures the browser test
    takes (tests/browser, MI_NOTEBOOK_UPDATE_SCREENSHOTS=1 writes them to notebooks/images/)."""
    shown = {Path(target).name for path in TUTORIALS for _, target in pictures(path)}
    widgets = next(p for p in TUTORIALS if p.name.startswith("06-"))
    assert {"token-explorer.png", "arm-explorer.png", "arm-explorer-rbac.png"} <= {
        Path(t).name for _, t in pictures(widgets)}
    stored = {p.name for p in (NOTEBOOKS / "images").glob("*")}
    assert stored == shown, f"pictures nobody shows: {stored - shown}; missing: {shown - stored}"


def test_raw_token_bodies_are_shown_redacted():
    first = TUTORIALS[0].read_text(encoding="utf-8")
    assert '{**body, \\"access_token\\": \\"<redacted>\\"}' in first
    assert "'access_token': '<redacted>'" in first


def test_the_sanitize_file_parses_and_every_pattern_compiles():
    text = SANITIZE.read_text(encoding="utf-8")
    patterns = sanitize_patterns()
    assert len(patterns) == text.count("\nregex: ") and len(patterns) >= 8
    for regex, _ in patterns:
        re.compile(regex)


@pytest.mark.parametrize("varying, expected", [
    ("Using the embedded emulator at http://127.0.0.1:40433 because", "at http://127.0.0.1:PORT because"),
    ("fingerprint='sha256:970cb2e1'", "fingerprint='sha256:FINGERPRINT'"),
    ("expires_on=2026-11-27T14:21:06Z", "expires_on=TIMESTAMP"),
    ("exp=2026-11-27 14:21:45 UTC, signature", "exp=TIMESTAMP, signature"),
    ("'expires_on': '1795789266'", "'expires_on': 'EPOCH'"),
    ("(expires in 23 h 59 min)", "(expires in RELATIVE)"),
    ("(5 min 1 s ago)", "(RELATIVE ago)"),
    ("Attempts: 1 attempt over 0.0 s: 400", "Attempts: 1 attempt over 0.x s: 400"),
    ("Request id: 1a7d1942-7a0d-4654-981e-006891470754.", "Request id: REQUEST-ID."),
    ('>aio</td><td style="x">k2BgYPOOaS5u</td>', '>aio</td><td style="x">OPAQUE</td>'),
    ("<pandas.io.formats.style.Styler at 0x7f3a2b1c>", "<pandas.io.formats.style.Styler at 0xADDRESS>"),
    ("the connection was refused (nothing listens there) in 0.01 s: this", "refused (nothing listens there) in 0.xx s: this"),
    (" 'kid': 'dX9gPyzx0b0eb1m4sphakZBg0KQ',", " 'kid': 'KEY-ID',"),
    (" 'x5t': 'dX9gPyzx0b0eb1m4sphakZBg0KQ'}", " 'x5t': 'KEY-ID'}"),
    ("signature verified with key 'dX9gPyzx0b0eb1m4sphakZBg0KQ' from", "signature verified with key 'KEY-ID' from"),
])
def test_the_sanitizer_hides_what_varies(varying, expected):
    assert expected in sanitize(varying)


@pytest.mark.parametrize("stable", [
    "client id c76d2123-6ac4-4840-9e2e-88992bdac300",  # seeded emulator GUIDs are compared
    "/subscriptions/794eae9b-0a8e-4cee-8888-7b509c94fd6f/resourcegroups/rg-notebooks",
    "3 attempts over 7.0 s: 503, 503, 200",  # virtual-time retry stories are compared
    "6 attempts over 70.0 s: 410, 410, 410, 410, 410, 410",
    "documented: [0.0, 2.0, 6.0, 14.0, 30.0]",
    "exp - nbf = 86700 s = 24 h 5 min",
    "HTTP 400 {'error': 'invalid_request', 'error_description': 'Required metadata header not specified'}",
    "<Figure size 800x300 with 1 Axes>",
    "30 kernels, no shared cache: 20 tokens, 10 throttled (429)",
])
def test_the_sanitizer_keeps_what_matters(stable):
    assert sanitize(stable) == stable


def test_pytest_runs_the_notebooks_with_nbval_in_strict_mode():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests", "notebooks"]
    addopts = options["addopts"].split()
    assert "--nbval" in addopts and "--nbval-lax" not in addopts
    assert "--nbval-current-env" in addopts
    assert addopts[addopts.index("--nbval-sanitize-with") + 1] == "notebooks/nbval-sanitize.cfg"


def test_the_regenerate_script_uses_the_test_environment():
    script = NOTEBOOKS / "regenerate.sh"
    text = script.read_text(encoding="utf-8")
    assert script.stat().st_mode & 0o111, "notebooks/regenerate.sh must be executable"
    assert "nbconvert --to notebook --execute --inplace" in text
    assert "export MI_NOTEBOOK_MODE=emulator" in text
    assert "tests/_guard" in text and "MI_NOTEBOOK_LOOPBACK_GUARD=1" in text
    assert re.search(r"unset [^\n]*MI_NOTEBOOK_IMDS_URL[^\n]*MPLBACKEND", text)


def test_the_emulators_ids_are_seeded_so_the_notebooks_compare_them_unsanitized():
    from mi_notebook.emulator import Emulator

    first, second = Emulator(), Emulator()  # not started: the VM is built from the seed alone
    ids = lambda emu: [emu.vm.subscription_id, emu.vm.tenant_id, emu.vm.vm_id,  # noqa: E731
                       *[(i.client_id, i.object_id) for i in emu.vm.identities]]
    assert ids(first) == ids(second)
    assert ids(Emulator(seed=1)) != ids(first)
