"""The Node loopback guard (tests/_guard/loopback_guard.js) that watches Azurite refuses and logs what leaves.

The attempts run in a loopback-only network namespace (root, ``unshare -n``), so that even a guard
that failed could send nothing anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GUARD = Path(__file__).parent / "_guard" / "loopback_guard.js"
SCRIPT = """
const net = require("net"), dns = require("dns");
const out = [];
const a = net.connect(80, "192.0.2.1"); a.on("error", e => out.push("tcp:" + e.code));
const b = new net.Socket(); b.connect({port: 80, host: "192.0.2.1"}); b.on("error", e => out.push("tcp2:" + e.code));
dns.lookup("example.invalid", e => out.push("dns:" + (e && e.code)));
const ok = net.connect(1, "127.0.0.1"); ok.on("error", e => out.push("loopback:" + e.code));
setTimeout(() => console.log(out.sort().join(",")), 300);
"""


def test_non_loopback_connects_and_lookups_are_refused_and_logged(tmp_path):
    if shutil.which("node") is None or not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("unshare")):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must check the Node guard: it needs node, root and unshare")
        pytest.skip("needs node, root and unshare (a loopback-only namespace for the attempts)")
    log = tmp_path / "guard.log"
    env = {**os.environ, "MI_NOTEBOOK_GUARD_LOG": str(log), "NODE_OPTIONS": f'--require "{GUARD}"'}
    result = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$@"', "sh",
                             "node", "-e", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "dns:EACCES,loopback:ECONNREFUSED,tcp2:EACCES,tcp:EACCES", result.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and all("refused (not loopback)" in line for line in lines)
    assert any("192.0.2.1:80" in line for line in lines) and any("example.invalid" in line for line in lines)
