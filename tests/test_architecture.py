"""The house rules of docs/architecture.md, enforced: layers, no import circles, cheap imports.

Every module's imports are read from its source (module level, inside functions, anywhere except
``if TYPE_CHECKING:`` blocks, which never run), so a lazy import inside a method counts as much as one
at the top of the file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mi_notebook"

CORE = {"identity", "resources", "clock", "timefmt", "retry", "tokens", "cache", "claims", "errors", "html", "clouds",
        "secret", "hosts", "addresses"}
TRANSPORT = {"http", "imds", "sources", "detection", "metadata", "arm_client", "jwks", "probe",
             "connection", "sdk_credential", "aio", "agent", "azure_openai"}
PRESENTATION = {"frames", "charts", "widgets", "cli", "commands", "tutorial", "data", "__main__"}
EMULATOR = {"emulator"}
LAYER = {**{m: 1 for m in CORE}, **{m: 2 for m in TRANSPORT}, **{m: 3 for m in PRESENTATION},
         **{m: 4 for m in EMULATOR}}
#: the only places allowed to reach the emulator: connect() starts it lazily, the CLI runs its command,
#: the tutorials' helper starts Azurite for notebook 9 off Azure (tutorial.data_targets)
EMULATOR_USERS = {"connection", "cli", "tutorial"}
THIRD_PARTY_NOT_IN_CORE = {"requests", "urllib3", "pandas", "matplotlib", "ipywidgets", "IPython"}


def public_names() -> dict[str, str]:
    """The package's lazy table: each ``mi.NAME`` -> the module that defines it (``mi_notebook/__init__.py``)."""
    from mi_notebook import _LAZY

    return dict(_LAZY)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top(name: str) -> str:
    """The first component below the package: ``mi_notebook.widgets.panels`` -> ``widgets``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path) -> set[str]:
    """Absolute names this module imports (package-relative imports resolved), TYPE_CHECKING excluded.

    A public name taken from the package (``from mi_notebook import connect``, ``from .. import connect``,
    or ``mi.connect`` after ``import mi_notebook as mi``) counts as an import of the module defining it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    here = dotted(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    public = public_names()
    found: set[str] = set()
    package_names: set[str] = set()  # what the package itself is bound to in this module
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            for alias in node.names:  # import mi_notebook [as mi], or import mi_notebook.x (binds mi_notebook)
                if alias.name == "mi_notebook" or (alias.name.startswith("mi_notebook.") and not alias.asname):
                    package_names.add(alias.asname or "mi_notebook")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: x may be a module
                    found.update(f"{mod}.{alias.name}" for alias in node.names)
                found.add(mod)
            else:
                mod = node.module or ""
                found.add(mod)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            if mod == "mi_notebook":
                found.update(f"mi_notebook.{public[alias.name]}" for alias in node.names if alias.name in public)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in package_names
                and node.attr in public and node.lineno not in skip):
            found.add(f"mi_notebook.{public[node.attr]}")
    return found


def internal_imports(path: Path) -> set[str]:
    return {top(name) for name in imports_of(path) if name.startswith("mi_notebook.")} - {"__init__"}


def test_every_module_has_a_layer():
    unknown = {top(dotted(p)) for p in modules()} - set(LAYER) - {"__init__"}
    assert not unknown, f"put these modules in a layer (docs/architecture.md and this test): {sorted(unknown)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_reaches_a_lower_layer(path):
    me = top(dotted(path))
    if me == "__init__":
        return
    mine = LAYER[me]
    wrong = []
    for other in internal_imports(path) - {me}:
        theirs = LAYER.get(other)
        if theirs is None:
            continue
        if mine == 4:
            wrong.append(f"the emulator imports the client module {other}")
        elif theirs == 4 and me not in EMULATOR_USERS:
            wrong.append(f"{me} reaches the emulator (only {sorted(EMULATOR_USERS)} may)")
        elif theirs != 4 and theirs > mine:
            wrong.append(f"layer {mine} module {me} imports layer {theirs} module {other}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name, source, complaint", [
    ("identity", "from mi_notebook import connect\n", "layer 1 module identity imports layer 2 module connection"),
    ("identity", "def f():\n    from . import get_token\n", "layer 1 module identity imports layer 2 module connection"),
    ("tokens", "import mi_notebook as mi\n\ndef f():\n    return mi.arm()\n",
     "layer 1 module tokens imports layer 2 module arm_client"),
    ("retry", "import mi_notebook.clock\n\nmi_notebook.connect()\n", "layer 1 module retry imports layer 2 module connection"),
    ("claims", "from . import TokenExplorer\n", "layer 1 module claims imports layer 3 module widgets"),
    ("emulator/imds", "from .. import Identity\n", "the emulator imports the client module identity"),
    ("widgets/panels", "from .. import AgentClient\n", None),  # presentation may use transport
    ("tokens", "from mi_notebook import Identity, __version__\nimport mi_notebook as mi\nmi.Identity\n", None),
], ids=["from-package", "from-dot-in-a-function", "alias-attribute", "package-attribute", "layer-3-name",
        "emulator", "allowed-downward", "allowed-same-layer"])
def test_public_names_taken_through_the_package_are_checked_too(tmp_path, monkeypatch, name, source, complaint):
    fake = tmp_path / "mi_notebook"
    path = fake / f"{name}.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    monkeypatch.setitem(globals(), "PACKAGE", fake)  # dotted() names the synthetic module as if it were ours
    if complaint is None:
        test_no_module_reaches_a_lower_layer(path)
    else:
        with pytest.raises(AssertionError, match=complaint):
            test_no_module_reaches_a_lower_layer(path)


@pytest.mark.parametrize("path", [p for p in modules() if LAYER.get(top(dotted(p))) == 1],
                         ids=lambda p: p.name)
def test_core_imports_no_network_or_presentation_library(path):
    outside = {name.split(".")[0] for name in imports_of(path)} & THIRD_PARTY_NOT_IN_CORE
    allowed = {"pandas"}  # only inside a to_frame() method, checked below
    assert not outside - allowed, f"{path.name} imports {sorted(outside - allowed)}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:  # module level: pandas never
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] == "pandas" for n in names), f"{path.name} imports pandas at import time"


def test_no_import_circle_between_modules():
    graph = {top(dotted(p)): set() for p in modules()}
    for path in modules():
        graph[top(dotted(path))] |= internal_imports(path) - {top(dotted(path))}
    graph.pop("__init__", None)
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in trail:
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif len(trail) < len(graph):
                visit(nxt, trail + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles))[:20])


def test_importing_the_package_and_its_core_loads_no_heavy_library():
    core = ", ".join(f"mi_notebook.{m}" for m in sorted(CORE))
    code = (f"import mi_notebook, {core}, sys; "
            "print(sorted(m for m in ('pandas', 'matplotlib', 'ipywidgets', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_first_token_from_an_explicit_http_endpoint_loads_no_requests():
    """Plain HTTP to loopback/IMDS goes through the standard library's wire: a fresh process that
    connects and fetches one token never imports requests (most of a first token's time)."""
    from mi_notebook.emulator import Emulator

    with Emulator(throttle=False, arm=False) as emu:
        code = (f"import sys, mi_notebook as mi; mi.connect({emu.imds_url!r}); "
                "assert mi.get_token('arm').resource == 'https://management.azure.com/'; "
                "print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert len(emu.requests.filter(endpoint="token")) == 1
    assert out.strip() == "[]"


def test_no_callable_modules_and_the_public_functions_are_functions():
    import types

    import mi_notebook as mi
    import mi_notebook.connection  # noqa: F401 - importing the modules must not shadow the functions
    import mi_notebook.sdk_credential  # noqa: F401

    for name in ("connect", "get_token", "credential", "arm", "decode"):
        assert isinstance(getattr(mi, name), types.FunctionType), name
    assert not any(type(m).__name__.startswith("CallableModule") for m in sys.modules.values())


def test_modules_stay_small():
    big = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 600}
    assert not big, f"modules over 600 lines (one job each): {big}"


def test_public_names_are_visible_to_type_checkers() -> None:
    """``__all__`` is the literal list of the lazy names, and each is imported under TYPE_CHECKING, so an
    editor or mypy sees ``mi.connect``'s real signature instead of ``Any``."""
    import mi_notebook

    source = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    seen: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if isinstance(child, ast.ImportFrom):
                    module = child.module or child.names[0].name  # `from . import aio`: a lazy submodule
                    assert mi_notebook._LAZY.get(child.names[0].name) == module, module
                    seen.update(alias.name for alias in child.names)
    assert mi_notebook.__all__ == sorted(mi_notebook._LAZY)
    assert seen == set(mi_notebook._LAZY)
    assert (PACKAGE / "py.typed").exists()
