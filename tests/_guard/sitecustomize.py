"""Loaded by every Python subprocess of the test suite (``tests/_guard`` is put on PYTHONPATH)."""

import os

if os.environ.get("MI_NOTEBOOK_LOOPBACK_GUARD") == "1":
    import loopback_guard

    loopback_guard.install(log_to_file=True)
