"""The Binder files agree with the package: what they install is what the notebooks import, the
extras exist, ``start`` forces emulator mode and execs its arguments, ``postBuild`` silences
JupyterLab's news prompt, and the launch badge opens the first notebook.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EDITABLE = re.compile(r"^-e\s+\.(?:\[(?P<extras>[\w,\s-]+)\])?$")


def requirement_lines() -> list[str]:
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split(" #")[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def binder_requirements() -> tuple[set[str], list[Requirement]]:
    """(extras of the editable install of this repo, the other requirements)."""
    extras: set[str] = set()
    others: list[Requirement] = []
    for line in requirement_lines():
        match = EDITABLE.match(line)
        if match:
            extras |= {e.strip() for e in (match.group("extras") or "").split(",") if e.strip()}
        else:
            others.append(Requirement(line))
    return extras, others


def installed_closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution (canonical name) that installing ``requirements`` brings in, per the
    metadata of what is installed here, with markers evaluated for this Python."""
    env = default_environment()
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} (needed by the Binder image) is not installed here")
        for line in requires:
            sub = Requirement(line)
            wanted = any(sub.marker.evaluate({**env, "extra": e}) for e in (extras or {""})) if sub.marker else True
            if wanted:
                todo.append((sub, frozenset(sub.extras)))
    return {key.split("[")[0] for key in seen}


def notebook_imports() -> set[str]:
    """Modules (full dotted names) imported by the tutorials' code cells."""
    modules: set[str] = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import):
                    modules |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module)
    return modules


def owning_distribution(module: str) -> str | None:
    """The installed distribution whose files hold ``module`` (works for namespace packages such as
    ``azure.*``, where the top-level name belongs to many distributions)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"the notebooks import {module!r}, which is not installed"
    origin = Path(spec.origin or next(iter(spec.submodule_search_locations or []), "")).resolve()
    for dist in metadata.distributions():
        base = Path(dist.locate_file("")).resolve()
        try:
            relative = origin.relative_to(base)
        except ValueError:
            continue
        if any(Path(str(f)) == relative for f in dist.files or ()):
            return canonicalize_name(dist.metadata["Name"])
    return None


def test_runtime_is_python_311_which_the_package_supports():
    assert (BINDER / "runtime.txt").read_text(encoding="utf-8").strip() == "python-3.11"
    assert SpecifierSet(PROJECT["requires-python"]).contains("3.11")


def test_requirements_install_this_repo_editable_with_existing_extras():
    extras, others = binder_requirements()
    assert any(EDITABLE.match(line) for line in requirement_lines()), "binder/requirements.txt needs '-e .[...]'"
    assert "lab" in extras
    assert extras <= set(PROJECT["optional-dependencies"]), f"unknown extras {extras - set(PROJECT['optional-dependencies'])}"
    # every extra requirement matches the package's own pins (one source of truth for versions)
    declared = {canonicalize_name(Requirement(r).name): Requirement(r)
                for group in [PROJECT["dependencies"], *PROJECT["optional-dependencies"].values()] for r in group}
    for req in others:
        name = canonicalize_name(req.name)
        assert name in declared, f"{req.name} is installed on Binder but declared nowhere in pyproject.toml"
        assert req.specifier == declared[name].specifier, f"{req.name}: {req.specifier} vs {declared[name].specifier}"


def test_what_binder_installs_covers_every_notebook_import():
    extras, others = binder_requirements()
    wanted = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    closure = installed_closure(wanted + others) | {canonicalize_name(PROJECT["name"])}
    imports = notebook_imports()
    missing = {}
    for module in sorted(imports):
        if module.split(".")[0] in sys.stdlib_module_names or module.split(".")[0] == "mi_notebook":
            continue  # the standard library; the repo itself (-e .)
        dist = owning_distribution(module)
        assert dist, f"no installed distribution provides {module!r}"
        if dist not in closure:
            missing[module] = dist
    assert not missing, f"imported by the notebooks but not installed by binder/requirements.txt: {missing}"
    assert {"azure.mgmt.compute", "azure.mgmt.resource.resources", "pandas", "requests"} <= imports


def test_the_lab_extra_brings_jupyterlab_and_a_kernel():
    lab = {canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "ipykernel"} <= lab
    core = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert {"ipywidgets", "matplotlib", "pandas"} <= core  # widgets and charts work on Binder


def run_start(*argv: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MI_NOTEBOOK_MODE", "MI_NOTEBOOK_IMDS_URL")}
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([str(BINDER / "start"), *argv], capture_output=True, text=True, timeout=10, env=env)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_start_is_executable_and_execs_its_arguments_in_emulator_mode():
    start = BINDER / "start"
    assert os.access(start, os.X_OK), "binder/start must be executable"
    text = start.read_text(encoding="utf-8")
    assert text.startswith("#!")
    assert [line for line in text.splitlines() if line.strip()][-1].strip() == 'exec "$@"'

    assert run_start("true").returncode == 0
    assert run_start("sh", "-c", "exit 7").returncode == 7  # exec: the argument's exit status is start's
    shown = run_start("env", MI_NOTEBOOK_IMDS_URL="http://127.0.0.1:1")
    variables = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    assert variables.get("MI_NOTEBOOK_MODE") == "emulator"
    assert "MI_NOTEBOOK_IMDS_URL" not in variables
    if Path("/proc/self/comm").exists():  # exec replaces start's shell: the command's parent is this test
        parent = run_start("sh", "-c", "cat /proc/$PPID/comm").stdout.strip()
        assert parent == Path(f"/proc/{os.getpid()}/comm").read_text().strip(), parent


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_post_build_turns_off_jupyterlab_news_and_update_checks(tmp_path):
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert re.search(r"^set -e", post_build.read_text(encoding="utf-8"), re.M)
    proc = subprocess.run([str(post_build)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "NB_PYTHON_PREFIX": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    overrides = json.loads((tmp_path / "share/jupyter/lab/settings/overrides.json").read_text(encoding="utf-8"))
    notification = overrides["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}


def test_the_launch_badge_opens_the_first_notebook():
    sections = (ROOT / "README.md").read_text(encoding="utf-8")
    badge = re.search(r"\(https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/HEAD\?urlpath=lab/tree/([^)\s]+)\)", sections)
    assert badge, "no mybinder.org launch link in README.md"
    assert "https://mybinder.org/badge_logo.svg" in sections
    target = ROOT / badge.group(3)
    assert target.name.startswith("01-") and target.exists(), f"the badge opens {badge.group(3)}, which is not notebook 1"
