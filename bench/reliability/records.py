"""The emulator's request log, read without racing the emulator: :func:`logged`.

One helper for the scenarios and the tests (``tests/helpers.py`` re-exports it).
"""

from __future__ import annotations

import time
from typing import Any


def logged(emu: Any, n: int, endpoint: str | None = "token", *, service: str | None = None,
           timeout: float = 2.0) -> list[Any]:
    """The emulator's request records for ``service`` / ``endpoint`` (None: any) once at least ``n`` are there.

    The emulator logs a request just *after* writing its answer, so a client can finish before the
    record appears: poll briefly (real time, milliseconds) instead of reading too early, then read
    once more a moment later, so that a late extra request shows up too.

    Example::

        >>> import requests
        >>> from mi_notebook.emulator import Emulator
        >>> with Emulator(throttle=False) as emu:
        ...     _ = requests.get(emu.token_url, headers={"Metadata": "true"}, timeout=5,
        ...                      params={"api-version": "2018-02-01", "resource": "https://vault.azure.net"})
        ...     len(logged(emu, 1)), len(logged(emu, 0, "instance")), len(logged(emu, 1, None, service="imds"))
        (1, 0, 1)
    """
    def records() -> list[Any]:
        return emu.requests.filter(service=service, endpoint=endpoint)

    deadline = time.monotonic() + timeout
    found = records()
    while len(found) < n and time.monotonic() < deadline:
        time.sleep(0.005)
        found = records()
    time.sleep(0.01)  # anything more would be a late extra request: let it show up
    return records()
