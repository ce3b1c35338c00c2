"""``mi.detect()`` keeps working after ``mi.connect()`` (issue 24, finding 9): importing a submodule sets
the package attribute of its name, so a submodule named like a public function replaces the function."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import mi_notebook

AFTER_CONNECT = """
import mi_notebook as mi
conn = mi.connect(mode="emulator")
found = mi.detect({}, sysfs_root="/nonexistent", himds_path="/nonexistent")
print(type(mi.detect).__name__, found.host)
mi.disconnect()
"""


def test_detect_is_callable_after_connect_in_a_fresh_process():
    done = subprocess.run([sys.executable, "-c", AFTER_CONNECT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["function", "vm"]


def _packages(package: types.ModuleType):
    yield package
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            yield from _packages(importlib.import_module(f"{package.__name__}.{info.name}"))


def test_no_submodule_has_the_name_of_a_public_function():
    public = {name for name in mi_notebook.__all__ if isinstance(getattr(mi_notebook, name), types.FunctionType)}
    assert {"connect", "detect", "get_token", "credential", "decode"} <= public  # the check has something to check
    children = {info.name for info in pkgutil.iter_modules(mi_notebook.__path__)}
    assert not children & public, f"submodules named like public functions: {sorted(children & public)}"


def test_no_subpackage_shadows_its_own_public_names_either():
    clashes = []
    for package in _packages(mi_notebook):
        exported = set(getattr(package, "__all__", ()))
        # exporting a submodule itself (``mi.aio``) is no clash; exporting something else under its name is
        clashes += [f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
                    if info.name in exported and not isinstance(getattr(package, info.name), types.ModuleType)]
    assert clashes == []
