"""README.md: written for users first, and every number and command in it true."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 4)
    return README[start:end if end != -1 else None]


def test_the_test_command_is_the_one_ci_runs():
    block = re.search(r"<!-- test-command -->\n```\n(.*?)\n```\n<!-- /test-command -->", README, re.S)
    assert block and block.group(1) == 'python -m pip install -e ".[test]" && bash .ci/install-azurite && python -m pytest'


def test_the_quickstart_comes_first_and_runs_on_the_emulator():
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[0].startswith("Quickstart")
    assert "python -m pip install -e . && mi-notebook demo --mode emulator" in section("Quickstart")


def test_a_newcomer_finds_the_way_to_a_first_token_on_a_dsvm():
    first = section("Your first real token")
    for needed in ("Before you start", "az vm identity assign", "az role assignment create", "git clone",
                   "conda create", "ipykernel install", "JupyterHub", "VS Code", "Azure ML", "mi-notebook doctor",
                   "mi-notebook token arm", "MI_NOTEBOOK_MODE=imds"):
        assert needed in first, needed
    assert headings_before("Your first real token") < headings_before("Hosts")


def headings_before(title: str) -> int:
    return README.index(f"\n## {title}")


def test_the_troubleshooting_table_names_real_errors():
    from mi_notebook import errors

    table = section("When it does not work")
    named = set(re.findall(r"`(\w+Error)`", table))
    assert len(named) >= 10
    for name in named:
        assert issubclass(getattr(errors, name), errors.ManagedIdentityError), name
    assert "docs/troubleshooting.md" in table


def test_the_figures_and_tables_moved_to_docs():
    assert "### The fault matrix" not in README and "| token | 404 |" not in README
    assert "reliability figures: generated" not in README  # bench/reliability/report.py writes docs/ only
    assert "reliability figures: generated" in (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert len(README.splitlines()) < 320


def test_every_relative_link_exists():
    links = re.findall(r"\]\(((?!https?://)[^)#\s]+)", README)
    assert "docs/troubleshooting.md" in links and "docs/performance.md" in links
    for link in links:
        assert (ROOT / link).exists(), link


def test_numbers_match_the_code_and_the_performance_page():
    from mi_notebook.probe import DEFAULT_PROBE_TIMEOUT
    from mi_notebook.retry import RetryPolicy

    assert f"at most {DEFAULT_PROBE_TIMEOUT} s" in README and "1.5 s" not in README
    assert f"up to {RetryPolicy().gone_window:.0f} s" in README
    performance = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    for figure in ("1.21 µs", "11.97 µs", "9.9x", "0.08 ms"):
        assert figure in README and figure.replace("0.08 ms", "0.07-0.08 ms") in performance, figure
    assert "| 64 threads asking for the same token at once: IMDS requests | 1 | 64 |" in performance


def test_the_exit_codes_are_the_clis():
    from mi_notebook.commands._common import EXIT_CODES

    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section("The command line"), re.M)
    assert [int(code) for code, _ in rows] == [code for code, _ in EXIT_CODES]
    for (_, text), (_, meaning) in zip(rows, EXIT_CODES, strict=True):
        assert text.split(":")[0] == meaning.split(":")[0]


@pytest.mark.parametrize("line", [line for line in README.splitlines()
                                  if re.match(r"^\$ mi-notebook (token|decode|doctor|demo)\b", line)])
def test_every_command_shown_parses(line):
    from mi_notebook.cli import build_parser

    words = shlex.split(line[2:].split("#")[0].split("|")[0])
    build_parser().parse_args(words[1:])  # argparse exits (a failure here) on an unknown option
