"""Let ``mi.connect(...)``, ``mi.credential(...)`` and ``mi.arm(...)`` work however they were reached.

The package exports the *functions* ``connect``, ``credential`` and ``arm`` lazily, but they live in
submodules of the same names. Importing a submodule (``from .connect import get_token`` anywhere)
makes the import system set the package attribute to the *module*, shadowing the function. Making
those three modules callable, as their function, keeps ``mi.connect(...)`` right in every order of
imports while ``mi_notebook.connect.current()`` and friends still work.

Example::

    >>> import sys, types
    >>> mod = types.ModuleType("demo_mod"); sys.modules["demo_mod"] = mod
    >>> mod.greet = lambda name: f"hello {name}"
    >>> make_callable("demo_mod", "greet")
    >>> mod("you")
    'hello you'
"""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str, function_name: str) -> None:
    """Make ``sys.modules[module_name](...)`` call that module's ``function_name(...)``."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(self, function_name)(*args, **kwargs)

    CallableModule.__name__ = CallableModule.__qualname__ = f"CallableModule[{function_name}]"
    sys.modules[module_name].__class__ = CallableModule
