"""Emulator config: a JSON or TOML file (or a dict), and how the VM's keys are spelled in it.

A config file holds the emulator's options and the VM's (docs/emulator.md, "Options"); its keys
may use ``-`` for ``_``, say ``resources`` for :meth:`~.world.VirtualMachine.build`'s
``extra_resources`` and ``vm_name`` for its ``name``.

Example::

    >>> vm_keywords(load_config({"vm-name": "vm-a", "resources": ["api://demo"]}))
    {'extra_resources': ['api://demo'], 'name': 'vm-a'}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_config", "vm_keywords"]


def load_config(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Read an emulator config: a dict is copied; a path ending in ``.toml`` is TOML, else JSON.

    Example::

        >>> load_config({"seed": 1})
        {'seed': 1}
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        if sys.version_info < (3, 11):
            raise ValueError("TOML config files need Python 3.11+; use JSON")
        else:
            import tomllib
            data = tomllib.loads(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a JSON/TOML object")
    return data


def vm_keywords(data: Mapping[str, Any]) -> dict[str, Any]:
    """The VM's config keys as :meth:`~.world.VirtualMachine.build`'s keyword names (unknown ones kept).

    Example::

        >>> vm_keywords({"user-assigned": 1, "token_lifetime": 60})
        {'user_assigned': 1, 'token_lifetime': 60}
    """
    keywords = {k.replace("-", "_"): v for k, v in data.items()}
    if "resources" in keywords:  # config files say "resources" for the extra ones
        keywords["extra_resources"] = keywords.pop("resources")
    if "vm_name" in keywords:
        keywords["name"] = keywords.pop("vm_name")
    return keywords
