"""nbval runs the tutorials in emulator mode, behind the same loopback guard as the test suite.

``tests/conftest.py`` only applies to ``tests/``; ``pytest notebooks`` (or ``pytest`` from the repo
root, whose ``testpaths`` include this folder) needs the same environment for the notebook kernels:
``MI_NOTEBOOK_MODE=emulator`` (so ``mi.connect()`` never probes 169.254.169.254), no
``MI_NOTEBOOK_IMDS_URL``, no proxies, and ``tests/_guard`` on ``PYTHONPATH`` so that the kernel's
``sitecustomize`` installs the guard and records any non-loopback traffic in
``$MI_NOTEBOOK_GUARD_LOG``. A cell that caused such traffic fails, even if the notebook swallowed
the error. ``notebooks/regenerate.sh`` sets the same environment to store new outputs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_GUARD_DIR = Path(__file__).resolve().parent.parent / "tests" / "_guard"

os.environ["MI_NOTEBOOK_LOOPBACK_GUARD"] = "1"
# keep the log tests/conftest.py chose when both folders run in one session
os.environ.setdefault(
    "MI_NOTEBOOK_GUARD_LOG", str(Path(tempfile.mkdtemp(prefix="mi-guard-nb-")) / "violations.log")
)
if str(_GUARD_DIR) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join([str(_GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
os.environ["MI_NOTEBOOK_MODE"] = "emulator"
# Azurite (notebook 09) is a Node process: the Node twin of the guard refuses and logs off-loopback traffic
_NODE_GUARD = _GUARD_DIR / "loopback_guard.js"
if str(_NODE_GUARD) not in os.environ.get("NODE_OPTIONS", ""):
    os.environ["NODE_OPTIONS"] = " ".join(filter(None, [f'--require "{_NODE_GUARD}"', os.environ.get("NODE_OPTIONS")]))
os.environ.pop("MI_NOTEBOOK_IMDS_URL", None)
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_proxy, None)
# figures go to the notebook (inline backend), never to a non-interactive backend set outside
os.environ.pop("MPLBACKEND", None)


def _guard_log() -> str:
    path = Path(os.environ["MI_NOTEBOOK_GUARD_LOG"])
    return path.read_text(encoding="utf-8") if path.exists() else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail the notebook cell during which a kernel attempted non-loopback traffic."""
    before = len(_guard_log())
    result = yield
    new = _guard_log()[before:]
    if new:
        pytest.fail(f"{item.name}: non-loopback traffic attempted by the notebook kernel:\n{new}", pytrace=False)
    return result
