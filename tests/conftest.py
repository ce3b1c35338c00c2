"""Test-suite wide rules: loopback only, emulator mode, and no leftover guard violations."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

_GUARD_DIR = Path(__file__).parent / "_guard"
sys.path.insert(0, str(_GUARD_DIR))
import loopback_guard  # noqa: E402

loopback_guard.install()

# Subprocesses (the CLI, notebook kernels, the emulator command) get the same guard.
_GUARD_LOG = Path(tempfile.mkdtemp(prefix="mi-guard-")) / "violations.log"
os.environ["MI_NOTEBOOK_LOOPBACK_GUARD"] = "1"
os.environ["MI_NOTEBOOK_GUARD_LOG"] = str(_GUARD_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
)
# Nothing in the suite may probe 169.254.169.254: auto mode would.
os.environ["MI_NOTEBOOK_MODE"] = "emulator"
os.environ.pop("MI_NOTEBOOK_IMDS_URL", None)
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_proxy, None)


@pytest.fixture(autouse=True)
def _no_non_loopback_traffic():
    """Fail the test that caused non-loopback traffic, even if the code swallowed the error."""
    before = len(loopback_guard.violations)
    log_before = _GUARD_LOG.read_text() if _GUARD_LOG.exists() else ""
    yield
    new = loopback_guard.violations[before:]
    log_after = _GUARD_LOG.read_text() if _GUARD_LOG.exists() else ""
    new_log = log_after[len(log_before):]
    if new or new_log:
        del loopback_guard.violations[before:]
        pytest.fail("non-loopback traffic attempted:\n" + "\n".join(new) + new_log, pytrace=False)
