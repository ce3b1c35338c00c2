"""README.md: written for users first, and every number and command in it true.

Contributor material lives in CONTRIBUTING.md and docs/; the role advice lives in docs/roles.md and
the README, docs/troubleshooting.md and the ARM 403 hint agree with it.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency reads TOML there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
ROLES = (ROOT / "docs" / "roles.md").read_text(encoding="utf-8")
HOSTS = (ROOT / "docs" / "hosts.md").read_text(encoding="utf-8")
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
TEST_COMMAND = 'python -m pip install -e ".[test]" && bash .ci/install-azurite && python -m pytest'
#: the documents a user is sent to, whose links and commands must work
DOCS = {"README.md": README, "CONTRIBUTING.md": CONTRIBUTING, "docs/roles.md": ROLES, "docs/hosts.md": HOSTS,
        **{f"docs/{p.name}": p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")}}
#: the four roles of docs/roles.md, as Azure names them
ROLE_NAMES = ("Reader", "Storage Blob Data Reader", "Key Vault Secrets User", "Cognitive Services OpenAI User")


def section(title: str, text: str = README) -> str:
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 4)
    return text[start:end if end != -1 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)\n\s*```", text, re.S)


# --- what a user meets first ---------------------------------------------------------------------
def test_the_test_command_is_the_one_ci_runs():
    block = re.search(r"<!-- test-command -->\n```\n(.*?)\n```\n<!-- /test-command -->", README, re.S)
    assert block and block.group(1) == TEST_COMMAND
    assert TEST_COMMAND in CONTRIBUTING  # the contributor's page gives the same command


def test_the_readme_is_short_and_for_users():
    assert len(README.splitlines()) < 160
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:3] == ["Quickstart (any machine, no Azure needed)", "Day one on a Data Science VM",
                            "Read your data"]
    assert headings.index("Tutorials") < headings.index("When it does not work")
    # contributor material moved out, to CONTRIBUTING.md and docs/
    for moved, home in (("nbval", CONTRIBUTING), ("regenerate.sh", CONTRIBUTING),
                        ("MI_NOTEBOOK_UPDATE_SCREENSHOTS", CONTRIBUTING), ("--write-readme-images", CONTRIBUTING),
                        ("reliability_report.py", CONTRIBUTING), ("Service Fabric", HOSTS),
                        ("tests/test_architecture.py", CONTRIBUTING)):
        assert moved not in README, moved
        assert moved in home, moved
    assert "### The fault matrix" not in README and "| token | 404 |" not in README
    assert "reliability figures: generated" in (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")


def test_the_quickstart_runs_from_the_clone_command_on():
    (block,) = code_blocks(section("Quickstart"), "console")
    commands = [line.removeprefix("$ ") for line in block.splitlines()]
    clone = re.fullmatch(r"git clone https://github\.com/([\w.-]+)/([\w.-]+)\.git && cd ([\w.-]+)", commands[0])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert clone and clone.group(2) == clone.group(3) == project["name"]
    assert commands[-1] == "python -m pip install -e . && mi-notebook demo --mode emulator"
    # the clone is the repository the Binder badge and the DSVM steps use
    assert f"mybinder.org/v2/gh/{clone.group(1)}/{clone.group(2)}/HEAD" in README
    assert README.count(commands[0]) == 2
    # the demo needs nothing beyond the base install: matplotlib writes its charts
    assert any(dep.startswith("matplotlib") for dep in project["dependencies"])


def test_day_one_on_a_dsvm_leads_to_a_first_token_and_notebook_1():
    day_one = section("Day one on a Data Science VM")
    for needed in ("az vm identity assign", "az role assignment create", "docs/roles.md", "git clone",
                   "conda create", 'pip install -e ".[lab,sdk,data]"', "mi-notebook doctor", "mi-notebook token arm",
                   "ipykernel install", "notebooks/01-first-token.ipynb", "JupyterHub", "VS Code", "Azure ML",
                   "MI_NOTEBOOK_MODE=imds", "--client-id"):
        assert needed in day_one, needed
    order = [day_one.index(step) for step in ("az role assignment create", "pip install", "mi-notebook doctor",
                                              "notebooks/01-first-token.ipynb")]
    assert order == sorted(order), "roles, install, doctor, notebook 1"


def test_reading_data_comes_right_after_the_first_token():
    data = section("Read your data")
    (snippet,) = code_blocks(data, "python")
    tree = ast.parse(snippet)
    calls = {ast.unparse(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for client in ("BlobServiceClient", "SecretClient"):
        keywords = {k.arg: ast.unparse(k.value) for k in calls[client].keywords}
        assert keywords == {"credential": "mi.credential()"}, client
    assert 'pip install -e ".[data]"' in data and "docs/roles.md" in data and "notebooks/09-your-data.ipynb" in data
    # the extra it names installs what the snippet imports, and the snippet's calls exist in those SDKs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert {d.split(">")[0].split("=")[0] for d in extras["data"]} >= {"azure-storage-blob", "azure-keyvault-secrets"}
    from azure.keyvault.secrets import SecretClient
    from azure.storage.blob import BlobClient, BlobServiceClient, StorageStreamDownloader

    for owner, name in ((BlobServiceClient, "get_blob_client"), (BlobClient, "download_blob"),
                        (StorageStreamDownloader, "readall"), (SecretClient, "get_secret")):
        assert callable(getattr(owner, name)) and f".{name}(" in snippet, name


def test_the_tutorials_table_lists_every_notebook_and_a_fast_path():
    table = section("Tutorials")
    linked = re.findall(r"\]\((notebooks/\d\d-[\w-]+\.ipynb)\)", table)
    on_disk = sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert sorted(set(linked)) == on_disk
    fast = re.search(r"\*\*Fast path:\*\* (\d), then (\d), then (\d)", table)
    assert fast and fast.groups() == ("1", "9", "7")
    assert all(any(name.startswith(f"notebooks/0{n}-") for name in on_disk) for n in fast.groups())


def test_every_picture_exists_and_says_emulator():
    pictures = re.findall(r"!\[([^\]]+)\]\((docs/images/[\w.-]+\.png)\)", README)
    assert {path for _, path in pictures} == {"docs/images/retry-timeline.png", "docs/images/token-lifetimes.png",
                                              "docs/images/token-explorer.png"}
    for caption, path in pictures:
        assert (ROOT / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert "emulator" in caption, f"{path}: say where the picture's data came from"


# --- roles: one story -----------------------------------------------------------------------------
def test_roles_page_has_a_row_and_a_command_for_every_role():
    rows = re.findall(r"^\| (.+?) \| \*\*(.+?)\*\* \| (.+?) \| (.+?) \|$", ROLES, re.M)
    assert [role for _, role, _, _ in rows] == list(ROLE_NAMES)
    for _, role, scope, needed_by in rows:
        assert scope.startswith("the resource group that holds the VM"), role  # one scope for the tutorials
        assert needed_by.strip(), role
        assert re.search(rf'--role "{re.escape(role)}" --scope "\$scope"', ROLES), role
    assert 'scope=$(az group show --name <group> --query id --output tsv)' in ROLES
    # the notebooks named are real notebooks, and each one that calls ARM or reads data is named
    named = {int(n) for _, _, _, needed in rows for n in re.findall(r"\b(\d)\b", needed)}
    assert named >= {5, 6, 7, 9} and all(list((ROOT / "notebooks").glob(f"0{n}-*.ipynb")) for n in named)


def test_roles_page_tells_the_truth_about_propagation_and_cites_microsoft():
    assert "A role assigned directly to the identity applies within minutes" in ROLES
    assert "up to 10 minutes" in ROLES and "around 24 hours" in ROLES
    assert "through a group waits for its next token" in ROLES
    cited = set(re.findall(r"\]\((https://learn\.microsoft\.com/[^)\s]+)\)", ROLES))
    for page in ("azure/role-based-access-control/troubleshooting",
                 "entra/identity/managed-identities-azure-resources/managed-identities-faq",
                 "azure/role-based-access-control/built-in-roles"):
        assert any(url.endswith(page) for url in cited), page


def test_readme_troubleshooting_and_the_arm_hint_agree_with_the_roles_page():
    day_one = section("Day one on a Data Science VM")
    assert "the resource group that holds the VM" in day_one and "the VM's resource id" not in README
    for role in ROLE_NAMES[:3]:
        assert role in day_one, role
    assert "applies within minutes" in day_one and "through a group waits for the identity's next token" in day_one
    troubleshooting = DOCS["docs/troubleshooting.md"]
    assert "roles.md" in troubleshooting and "roles.md" in section("When it does not work")
    # the ARM 403 hint (tests/test_arm.py checks it on a real refusal), wherever its module lives
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "mi_notebook").rglob("*.py"))
    assert "A direct role assignment takes effect within minutes" in sources
    assert "only show once the token is renewed" not in sources


# --- errors, numbers, commands --------------------------------------------------------------------
def test_the_troubleshooting_table_names_real_errors():
    from mi_notebook import errors

    table = section("When it does not work")
    named = set(re.findall(r"`(\w+Error)`", table))
    assert len(named) >= 8
    for name in named:
        assert issubclass(getattr(errors, name), errors.ManagedIdentityError), name
    assert "docs/troubleshooting.md" in table


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_relative_link_exists(name):
    base = ROOT / Path(name).parent
    links = re.findall(r"\]\(((?!https?://)[^)#\s]+)", DOCS[name])
    for link in links:
        assert (base / link).exists(), f"{name}: {link}"

def test_the_user_docs_cite_public_sources_only():
    for name in ("README.md", "CONTRIBUTING.md", "docs/roles.md", "docs/hosts.md", "docs/cli.md",
                 "docs/troubleshooting.md"):
        assert not re.search(r"/work/|\.\./shared|/tmp/", DOCS[name]), name


def test_the_readme_links_every_page_a_user_needs():
    links = set(re.findall(r"\]\(((?!https?://)[^)#\s]+)", README))
    assert links >= {"docs/roles.md", "docs/troubleshooting.md", "docs/performance.md", "docs/cli.md",
                     "docs/hosts.md", "docs/agent.md", "docs/emulator.md", "docs/reliability.md", "CONTRIBUTING.md"}
    assert "architecture.md" in CONTRIBUTING and "docs/emulator.md" in CONTRIBUTING


def test_numbers_match_the_code():
    from mi_notebook.probe import DEFAULT_PROBE_TIMEOUT
    from mi_notebook.retry import RetryPolicy

    assert f"at most {DEFAULT_PROBE_TIMEOUT} s" in README and "1.5 s" not in README
    assert f"up to {RetryPolicy().gone_window:.0f} s" in README
    assert f"at most {DEFAULT_PROBE_TIMEOUT} s" in HOSTS


def test_every_figure_quoted_comes_from_the_performance_page_with_its_command():
    paragraph = next(p for p in README.split("\n\n") if p.startswith("**Performance**"))
    figure = r"\d+(?:\.\d+)?(?: µs| ms|x)\b"
    quoted = 0
    # each command follows the figures it produces: "1.21 µs ... 9.9x faster; `python bench/bench_client.py`"
    for chunk, command in re.findall(r"(.*?)`(python bench/\w+\.py)`", paragraph, re.S):
        assert (ROOT / command.split()[1]).exists() and f"$ {command}" in PERFORMANCE, command
        for value in re.findall(figure, chunk):
            rows = [line for line in PERFORMANCE.splitlines() if value in line]
            assert rows, f"{value} is not on docs/performance.md"
            quoted += 1
    assert quoted == len(re.findall(figure, paragraph)) >= 4  # no figure without its command
    threads = re.search(r"^\| 64 threads asking for the same token at once: IMDS requests \| (\d+) \| (\d+) \| \|$", PERFORMANCE, re.M)
    assert threads and int(threads.group(1)) == 1 < int(threads.group(2))  # single-flight: ours one, theirs many


def test_the_exit_codes_are_the_clis():
    from mi_notebook.commands._common import EXIT_CODES

    rows = re.findall(r"^\| (\d+) \| (.+) \|$", DOCS["docs/cli.md"], re.M)
    assert [int(code) for code, _ in rows] == [code for code, _ in EXIT_CODES]
    for (_, text), (_, meaning) in zip(rows, EXIT_CODES, strict=True):
        assert text.split(":")[0] == meaning.split(":")[0]


def shown_commands() -> list[tuple[str, str]]:
    """Every ``mi-notebook ...`` command line in a console block of the docs a user reads."""
    found = []
    for name, text in sorted(DOCS.items()):
        for block in code_blocks(text, "console"):
            for line in block.splitlines():
                if not line.startswith("$ "):
                    continue
                line = line[2:].split(" #")[0].rstrip(" \\")
                inner = re.findall(r"\$\(([^)]*)\)", line)
                for part in [*re.split(r"&&|\||;", re.sub(r"\$\([^)]*\)", "", line)), *inner]:
                    match = re.fullmatch(r"(?:[A-Z_]+=\S+\s+)*(mi-notebook\b.*)", part.strip())
                    if match:
                        found.append((name, match.group(1).strip()))
    return found


@pytest.mark.parametrize(("doc", "command"), shown_commands())
def test_every_command_shown_parses(doc, command):
    from mi_notebook.cli import build_parser

    words = shlex.split(command)
    assert "--help" not in words, "show the help's content, not the command"
    build_parser().parse_args(words[1:])  # argparse exits (a failure here) on an unknown option


def test_the_commands_shown_include_the_first_ones_a_user_types():
    shown = {command for _, command in shown_commands()}
    assert {"mi-notebook demo --mode emulator", "mi-notebook doctor", "mi-notebook token arm"} <= shown
