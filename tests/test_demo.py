"""``mi-notebook demo``: in-process through mi_notebook.cli.main, once as a real subprocess."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import VirtualClock

from mi_notebook.cli import main
from mi_notebook.commands import demo
from mi_notebook.sources.imds import ImdsClient

pytestmark = pytest.mark.usefixtures("clean_connection")

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails if the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def run_demo(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["demo", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert not JWT.search(out + err), "a token was printed"
    return code, out, err


def test_demo_on_the_embedded_emulator(tmp_path, capsys):
    started = time.monotonic()
    code, out, err = run_demo(capsys, "--out", str(tmp_path / "charts"), "--mode", "emulator")
    assert time.monotonic() - started < 15
    assert code == 0, err
    assert "Using the embedded emulator at http://127.0.0.1:" in out
    # two identities x two resources, with what the claims say
    for line in ("- arm   as system-assigned", "- vault as system-assigned",
                 "- arm   as user-assigned (client_id=", "- vault as user-assigned (client_id="):
        assert line in out
    assert out.count("aud https://management.azure.com/") == 2 and out.count("aud https://vault.azure.net") == 2
    assert "got the system-assigned identity of 'vm-notebook'" in out
    assert "got the user-assigned identity 'id-notebook-1'" in out
    assert len(set(re.findall(r"sha256:[0-9a-f]{8}", out))) == 4  # four different tokens
    # the retry episode: injected faults, virtual time, said so
    assert "VIRTUAL time" in out
    assert re.search(r"attempt 1 at +0\.0 s: 503 -> retried; waited \d+\.\d s \(backoff\)", out)
    assert re.search(r"attempt 2 at +\d+\.\d s: 429 -> retried; waited 3\.0 s \(retry-after\)", out)
    assert "3 attempts over" in out and ": 503, 429, 200" in out
    # ARM (the emulator always has its ARM side)
    assert "VM vm-notebook (westeurope): identity type 'SystemAssigned, UserAssigned', 2 user-assigned" in out
    assert re.search(r"\d+ resource groups readable \(\d+ pages\): rg-notebooks", out)
    # the charts, and where they are
    for name in demo.CHART_FILES:
        path = tmp_path / "charts" / name
        assert f"wrote {path}" in out
        assert png_size(path) == (800, 300)
    assert not (tmp_path / "docs").exists()


def test_demo_honours_the_mode_variable_and_writes_readme_images(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_MODE", "emulator")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_demo(capsys, "--write-readme-images")
    assert code == 0, err
    assert "because MI_NOTEBOOK_MODE=emulator" in out
    for name in demo.CHART_FILES:
        default_out = tmp_path / "mi-notebook-demo" / name
        readme = tmp_path / "docs" / "images" / name
        assert png_size(default_out) == (800, 300)
        assert png_size(readme) == (640, 240)  # small, commit-ready
        assert readme.stat().st_size < 60_000
        assert f"wrote {Path('docs') / 'images' / name} (README image)" in out


def test_every_chart_says_where_its_data_came_from(tmp_path, capsys, monkeypatch, transport_emu):
    from mi_notebook import charts

    seen = {}

    def spy(name, real):
        def plot(*args, **kwargs):
            seen[name] = kwargs.get("provenance")
            return real(*args, **kwargs)
        return plot

    for name in ("plot_retry_timeline", "plot_token_lifetimes"):
        monkeypatch.setattr(charts, name, spy(name, getattr(charts, name)))
    code, _, err = run_demo(capsys, "--out", str(tmp_path), "--mode", "emulator")
    assert code == 0, err
    assert seen == {"plot_retry_timeline": "data: mi-notebook emulator (not Azure) · injected 503, 429 (Retry-After 3 s)"
                                           " · virtual time",
                    "plot_token_lifetimes": "data: mi-notebook emulator (not Azure)"}
    monkeypatch.setattr(demo, "_admin_json", lambda endpoint, route: None)  # "not an emulator": like IMDS
    code, _, err = run_demo(capsys, "--imds-url", transport_emu.imds_url, "--out", str(tmp_path))
    assert code == 0, err
    assert seen["plot_retry_timeline"] == ("data: simulated (scripted answers, no endpoint) · virtual time"
                                           " · not a real incident")
    assert seen["plot_token_lifetimes"] == "data: the mi-notebook emulator (not Azure) playing Azure VM (IMDS)"  # the tokens' own issuer


def test_demo_against_an_explicit_emulator_url_injects_over_http(transport_emu, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_IMDS_URL", transport_emu.imds_url)
    monkeypatch.setenv("MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN", transport_emu.admin_token)  # as `mi-notebook emulator` prints
    monkeypatch.delenv("MI_NOTEBOOK_ARM_URL", raising=False)
    code, out, err = run_demo(capsys, "--out", str(tmp_path))
    assert code == 0, err
    assert f"Using {transport_emu.imds_url} because MI_NOTEBOOK_IMDS_URL is set" in out
    assert "- vault as user-assigned (client_id=" in out  # learned from the emulator's /__emulator__/vm
    faulted = [(r.status, r.fault) for r in transport_emu.requests.filter(service="imds", endpoint="token") if r.fault]
    assert faulted == [(503, "503"), (429, "429")]  # injected through /__emulator__/faults
    assert ": 503, 429, 200" in out
    assert "skipped: the IMDS endpoint was given explicitly" in out


def test_an_emulator_without_its_admin_token_gets_no_faults_and_the_demo_says_why(transport_emu, tmp_path, capsys,
                                                                                    monkeypatch):
    monkeypatch.setenv("MI_NOTEBOOK_IMDS_URL", transport_emu.imds_url)
    monkeypatch.delenv("MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("MI_NOTEBOOK_ARM_URL", raising=False)
    code, out, err = run_demo(capsys, "--out", str(tmp_path))
    assert code == 0, err
    assert "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN is not set" in out and "this episode is SIMULATED" in out
    assert not [r for r in transport_emu.requests if r.fault]  # nothing was injected
    assert transport_emu.admin_token not in out + err


def test_real_imds_gets_no_faults_and_the_episode_is_labelled_simulated(transport_emu, tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(demo, "_admin_json", lambda endpoint, route: None)  # "not an emulator": like IMDS
    code, out, err = run_demo(capsys, "--imds-url", transport_emu.imds_url, "--out", str(tmp_path),
                              "--client-id", transport_emu.vm.user_identities[1].client_id)
    assert code == 0, err
    assert "this episode is SIMULATED" in out and ": 503, 429, 200" in out
    assert not [r for r in transport_emu.requests if r.fault]  # nothing was injected
    assert "id-notebook-2" in out  # the identity named on the command line
    assert all(png_size(tmp_path / name) == (800, 300) for name in demo.CHART_FILES)


def test_demo_reports_an_unreachable_endpoint_without_a_traceback(tmp_path, capsys, monkeypatch):
    clock = VirtualClock()  # the documented retries of a refused connection, in virtual time
    original = ImdsClient.__init__
    monkeypatch.setattr(ImdsClient, "__init__", lambda self, *a, **kw: original(self, *a, **{**kw, "clock": clock}))
    code, out, err = run_demo(capsys, "--imds-url", "http://127.0.0.1:9", "--out", str(tmp_path))
    assert code == 1
    assert "IMDS attempt 1 of 5" in err  # progress while retrying
    assert "mi-notebook: EndpointUnreachableError" in err and "127.0.0.1:9" in err
    assert not any(tmp_path.iterdir())


def test_demo_as_a_subprocess(tmp_path):
    env = {**os.environ, "MI_NOTEBOOK_MODE": "emulator"}
    env.pop("MI_NOTEBOOK_IMDS_URL", None)
    env.pop("MPLBACKEND", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mi_notebook", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 20, f"the demo took {elapsed:.1f} s"
    assert "Traceback" not in proc.stdout + proc.stderr and not JWT.search(proc.stdout + proc.stderr)
    assert "3 attempts over" in proc.stdout and "resource groups readable" in proc.stdout
    assert re.search(r"Done in \d+\.\d s\.", proc.stdout)
    for name in demo.CHART_FILES:
        assert png_size(tmp_path / name) == (800, 300)


def test_virtual_clock_only_moves_when_slept_on():
    clock = demo.VirtualClock()
    clock.sleep(2.0)
    clock.sleep(-1)  # a negative wait is no wait
    assert clock() == 2.0
