"""``mi-notebook agent``: run this user's token agent, show what it holds, or stop it.

``mi-notebook agent run [--idle S] [--dir D]`` serves in the foreground (a kernel that shares starts
it detached); ``mi-notebook agent status`` prints its tokens by identity and resource with time left
and fingerprints (never the token), requests made and saved, and clients; ``mi-notebook agent stop``
asks it to exit.

Example::

    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="mi-notebook")
    >>> add_parser(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["agent", "status"]).action
    'status'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from ..timefmt import format_duration
from .client import AgentClient, AgentUnavailable
from .server import AgentAlreadyRunning, AgentServer

__all__ = ["add_parser", "format_status", "run"]

# `mi-notebook agent --help` says this; a literal, not the docstring (which `python -OO` strips)
_DESCRIPTION = ("mi-notebook agent run [--idle S] [--dir D] serves in the foreground (a kernel that shares starts "
                "it detached); mi-notebook agent status prints its tokens by identity and resource with time left "
                "and fingerprints (never the token), requests made and saved, and clients; mi-notebook agent stop "
                "asks it to exit.")


def add_parser(subparsers: Any) -> None:
    """Register ``agent`` with its ``run``, ``status`` and ``stop`` actions.

    Example::

        >>> import argparse
        >>> p = argparse.ArgumentParser(); add_parser(p.add_subparsers())
        >>> p.parse_args(["agent", "run", "--idle", "60"]).idle
        60.0
    """
    parser = subparsers.add_parser("agent", help="share tokens between this user's processes (run, status, stop)",
                                   description=_DESCRIPTION)
    parser.add_argument("action", choices=("run", "status", "stop"), help="what to do")
    parser.add_argument("--dir", default=None, help="the agent's private directory (default: under $XDG_RUNTIME_DIR)")
    parser.add_argument("--idle", type=float, default=1800.0, help="run: exit after this many seconds without a request")
    parser.add_argument("--json", action="store_true", help="status: print the status as JSON")
    parser.set_defaults(func=run)


def format_status(status: dict[str, Any], now: float | None = None) -> str:
    """The status as text: one line per token (identity, resource, time left, fingerprint, who issued it,
    ``(USER TOKEN)`` for a signed-in user's own), the counters.

    Example::

        >>> print(format_status({"pid": 7, "version": "0.1.0", "socket": "/run/a.sock", "started_at": 0,
        ...     "tokens": [{"identity": "system-assigned", "resource": "https://vault.azure.net", "expires_on": 7200,
        ...                 "fingerprint": "sha256:0011aabb", "host": "vm", "emulated": True,
        ...                 "refresh_at": 3600}],
        ...     "holds": {}, "stats": {"requests_made": 1, "requests_saved": 15, "failures": 0,
        ...     "clients_seen": 16, "clients_alive": 2, "refused": 0}}, now=600))
        mi-notebook agent 0.1.0, pid 7, at /run/a.sock, up 10 min
        requests made 1, saved 15; clients 16 seen, 2 alive; refused 0; failures 0
        identity         resource                 time left   refresh in  fingerprint      issued by
        system-assigned  https://vault.azure.net  1 h 50 min  50 min      sha256:0011aabb  the emulator, as vm
    """
    when = time.time() if now is None else now
    s = status["stats"]
    lines = [
        f"mi-notebook agent {status['version']}, pid {status['pid']}, at {status['socket']}, "
        f"up {format_duration(max(when - status['started_at'], 0))}",
        f"requests made {s['requests_made']}, saved {s['requests_saved']}; clients {s['clients_seen']} seen, "
        f"{s['clients_alive']} alive; refused {s['refused']}; failures {s['failures']}",
    ]
    for endpoint, seconds in status.get("holds", {}).items():
        lines.append(f"holding back requests to {endpoint} for {seconds:.1f} s (429 / 410)")
    if not status["tokens"]:
        lines.append("no tokens held")
        return "\n".join(lines)
    rows = [("identity", "resource", "time left", "refresh in", "fingerprint", "issued by")]
    for tok in sorted(status["tokens"], key=lambda t: (t["identity"], t["resource"])):
        left = tok["expires_on"] - when
        refresh = tok.get("refresh_at")
        rows.append((tok["identity"], tok["resource"], "expired" if left <= 0 else format_duration(left),
                     "-" if refresh is None else ("due" if refresh <= when else format_duration(refresh - when)),
                     tok["fingerprint"], (f"the emulator, as {tok['host']}" if tok.get("emulated") else tok["host"])
                     + (" (USER TOKEN)" if tok.get("user_token_reason") else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows]
    return "\n".join(lines)


def run(ns: argparse.Namespace) -> int:
    """Carry out ``mi-notebook agent ACTION``; the exit code (1: no agent answers, or one already runs).

    Example::

        >>> import contextlib, io, tempfile
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     run(argparse.Namespace(action="status", dir=tempfile.mkdtemp(), json=False))
        1
        >>> "no agent answers" in err.getvalue()
        True
    """
    if ns.action == "run":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                            stream=sys.stderr)
        try:
            AgentServer(ns.dir, idle_timeout=ns.idle).serve_forever()
        except AgentAlreadyRunning as exc:
            print(f"mi-notebook agent: {exc}", file=sys.stderr)
            return 1
        return 0
    client = AgentClient(ns.dir, start=False)
    try:
        status = client.request({"op": ns.action})
    except AgentUnavailable as exc:  # what went wrong: no socket, refused, timed out, another version
        hint = "" if ns.action == "stop" else (" A kernel that shares (mi.connect(share=True) or "
                                                "MI_NOTEBOOK_SHARE=1) starts one.")
        print(f"mi-notebook agent: {exc}.{hint}", file=sys.stderr)
        return 1
    if ns.action == "stop":
        print(f"stopped the agent (pid {status.get('pid')})")
        return 0
    status.pop("v", None)
    status.pop("ok", None)
    print(json.dumps(status, indent=2) if ns.json else format_status(status))
    return 0
