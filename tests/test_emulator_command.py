"""``mi-notebook emulator`` as a subprocess (and in-process for the option handling)."""

from __future__ import annotations

import json
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time

import jwt
import pytest
import requests

from mi_notebook.emulator import command

DOCUMENTED_QUERY = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/"


def _reader(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


class Served:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mi_notebook.cli", "emulator", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(self.proc.stdout, self.lines), daemon=True).start()

    def line(self, timeout: float = 10.0) -> str:
        line = self.lines.get(timeout=timeout)
        assert line is not None, self.proc.stderr.read()
        return line.rstrip("\n")

    def close(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.stdout.close()
            self.proc.stderr.close()


def admin_token_of(lines: list[str]) -> str:
    """The admin token from ``mi-notebook emulator``'s ``export MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN=...`` line."""
    exports = [shlex.split(line.removeprefix("export "))[0] for line in lines if line.startswith("export ")]
    return next(e.split("=", 1)[1] for e in exports if e.startswith("MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN="))


@pytest.fixture
def served():
    procs: list[Served] = []

    def start(*args: str) -> Served:
        s = Served(*args)
        procs.append(s)
        return s

    yield start
    for s in procs:
        s.close(signal.SIGKILL)


def test_first_line_is_the_url_and_the_documented_curl_request_works(served):
    s = served()
    first = s.line()
    assert first.startswith("IMDS http://127.0.0.1:")
    url = first.split(" ", 1)[1]
    # curl '<url>/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...' -H Metadata:true
    r = requests.get(url + DOCUMENTED_QUERY, headers={"Metadata": "true"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Server"].startswith("IMDS/150.870.65.")
    access_token = r.json()["access_token"]
    jwks = requests.get(url + "/__emulator__/jwks", timeout=5).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(access_token)["kid"]].key
    claims = jwt.decode(access_token, key, algorithms=["RS256"], audience="https://management.azure.com/")
    assert claims["ver"] == "1.0"
    # ... and without the header: the documented 400
    r = requests.get(url + DOCUMENTED_QUERY, timeout=5)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_request", "error_description": "Required metadata header not specified"}
    assert s.close(signal.SIGTERM) == 0


def test_sigint_stops_cleanly_and_options_apply(served, tmp_path):
    cfg = tmp_path / "emu.json"
    cfg.write_text(json.dumps({"seed": 3, "name": "vm-from-config"}))
    s = served("--config", str(cfg), "--no-throttle", "--user-assigned", "1", "--token-lifetime", "3600")
    url = s.line().split(" ", 1)[1]
    rest = [s.line() for _ in range(7)]  # ARM, CA, three exports (IMDS, ARM, CA), the admin token's, the summary
    admin = admin_token_of(rest)
    vm = requests.get(url + "/__emulator__/vm", headers={"Authorization": f"Bearer {admin}"}, timeout=5).json()
    assert vm["name"] == "vm-from-config" and len(vm["identities"]) == 2 and vm["token_lifetime"] == 3600
    rest = [line for line in rest if not line.startswith(("ARM ", "CA ", "export "))]
    assert rest[0].startswith("VM vm-from-config")
    with requests.Session() as session:
        assert {session.get(url + DOCUMENTED_QUERY, headers={"Metadata": "true"}, timeout=5).status_code
                for _ in range(30)} == {200}  # --no-throttle
    assert s.close(signal.SIGINT) == 0


def test_explicit_port(served):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = served("--port", str(port), "--quiet")
    assert s.line() == f"IMDS http://127.0.0.1:{port}"
    assert s.close() == 0


def test_bad_config_exits_2_with_a_message(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"colour": "blue"}')
    proc = subprocess.run([sys.executable, "-m", "mi_notebook.cli", "emulator", "--config", str(bad)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown VM config keys" in proc.stderr and proc.stdout == ""


def _run_in_thread(argv):
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(command.main(argv, stop=stop)))
    t.start()
    return stop, t, result


def test_non_loopback_from_config_needs_explicit_host(tmp_path, capsys):
    cfg = tmp_path / "emu.json"
    cfg.write_text(json.dumps({"host": "0.0.0.0"}))
    assert command.main(["--config", str(cfg)]) == 2
    assert "pass --host explicitly" in capsys.readouterr().err


def test_non_loopback_host_prints_a_warning(monkeypatch, capsys):
    # Binding a real non-loopback interface is avoided in tests: pretend 127.0.0.1 is not loopback.
    monkeypatch.setattr(command, "_is_loopback", lambda host: False)
    stop, t, result = _run_in_thread(["--host", "127.0.0.1", "--quiet"])
    deadline = time.monotonic() + 5
    out = ""
    while "IMDS" not in out and time.monotonic() < deadline:
        time.sleep(0.02)
        captured = capsys.readouterr()
        out += captured.out + captured.err
    time.sleep(0.05)
    stop.set()
    t.join(timeout=5)
    captured = capsys.readouterr()
    out += captured.out + captured.err
    assert result == [0]
    assert "WARNING: the emulator listens on 127.0.0.1, not loopback" in out


def test_is_loopback():
    assert command._is_loopback("127.0.0.1") and command._is_loopback("::1") and command._is_loopback("localhost")
    assert not command._is_loopback("0.0.0.0") and not command._is_loopback("10.0.0.4")
