"""Fixtures for the real-browser tests: Debian's chromium through Playwright, and a throwaway JupyterLab.

JupyterLab runs on 127.0.0.1 at a free port with a random token, its own workspace, settings,
config and runtime directories (news and update checks off), in its own process group, which is
always torn down. Chromium is told to resolve nothing but loopback names, and the page's requests
are checked to stay on loopback.

On CI (``CI`` set) a missing chromium or Playwright fails the test; locally it skips with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# the helper notebooks are driven by the browser test, never collected by nbval
collect_ignore_glob = ["*.ipynb"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-pings",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
START_TIMEOUT = 60.0


def _missing(reason: str) -> None:
    """Fail on CI (the browser test must run there), skip locally."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the browser test must run, but {reason} (see .ci/apt-packages)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    override = os.environ.get("MI_NOTEBOOK_CHROMIUM")  # another chromium binary, e.g. to test the skip
    candidates = (override,) if override else CHROMIUM_CANDIDATES
    path = next((p for p in candidates if os.access(p, os.X_OK)), None)
    if not path:
        _missing(f"no chromium executable at {' or '.join(candidates)} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright is not installed (pip install -e '.[test]')")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _missing("jupyterlab is not installed (pip install -e '.[test]')")
    return str(path)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``artifacts/`` at the repo root (git-ignored): screenshots for humans and CI uploads."""
    path = REPO / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen
    admin_token: str  # the kernel's emulator's control-plane token (the kernel inherits it)

    def api(self, path: str, method: str = "GET", body: object = None, timeout: float = 5.0) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode() or "null"
        return json.loads(text)

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"

    def log_tail(self, n: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""


def _write_settings(settings: Path) -> None:
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _stop(lab: Lab) -> None:
    """Shut the kernels down, then the server's whole process group (TERM, then KILL)."""
    with contextlib.suppress(Exception):
        for kernel in lab.api("/api/kernels", timeout=2) or []:  # type: ignore[union-attr]
            with contextlib.suppress(Exception):
                lab.api(f"/api/kernels/{kernel['id']}", method="DELETE", timeout=5)
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.process.pid, sig)
        try:
            lab.process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def jupyter_lab(chromium_path, tmp_path) -> Iterator[Lab]:
    """JupyterLab serving a copy of tests/browser/*.ipynb from a temp dir; always torn down."""
    root = tmp_path / "notebooks"
    root.mkdir()
    for notebook in HERE.glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
    settings = tmp_path / "settings"
    _write_settings(settings)
    for name in ("workspaces", "config", "runtime"):
        (tmp_path / name).mkdir()
    port, token, admin_token = _free_port(), secrets.token_hex(24), secrets.token_urlsafe(32)
    env = dict(os.environ)
    env.update({
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "MI_NOTEBOOK_MODE": "emulator",  # the kernel inherits it: never a probe of 169.254.169.254
        "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN": admin_token,  # so the test can reach the kernel's emulator's admin
    })
    env.pop("MI_NOTEBOOK_IMDS_URL", None)
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, process, admin_token)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{lab.log_tail()}", pytrace=False)
            try:
                lab.api("/api/status", timeout=2)
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT:g} s:\n{lab.log_tail()}",
                                pytrace=False)
                time.sleep(0.2)
        yield lab
    finally:
        _stop(lab)
