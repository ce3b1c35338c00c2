"""Every docstring example in the package runs, so none of them can quietly go wrong."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mi_notebook"
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if "__pycache__" not in p.parts and p.name != "__main__.py"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, clean_connection):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (see above)"


def test_every_public_function_and_class_has_an_example():
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            exempt = isinstance(obj, type) and (issubclass(obj, BaseException) or getattr(obj, "_is_protocol", False))
            if (callable(obj) and not exempt and getattr(obj, "__module__", None) == name
                    and ">>>" not in (getattr(obj, "__doc__", None) or "")):
                missing.append(f"{name}.{attr}")
    assert not missing, "public names without a docstring example:\n" + "\n".join(missing)
